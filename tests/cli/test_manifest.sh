#!/usr/bin/env bash
# `hubert manifest`: fairseq wav2vec_manifest.py layout (root line = absolute DIR, sorted
# "relpath<TAB>num_samples"), recursive scan, extension filter, deterministic seeded split, and
# errors that name the directory / file.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
command -v sox >/dev/null || { echo "skip: sox not installed (scripts/setup.sh)"; exit 77; }

C="$T/corpus"
mkdir -p "$C/spk1/ch1" "$C/spk2" "$C/.hidden" "$C/empty_dir"
n=0
for f in spk1/ch1/b.wav spk1/a.wav spk2/c.flac spk2/D.WAV top.wav .hidden/h.wav spk2/.dot.wav; do
  n=$((n + 1))
  sox -n -r 16000 -b 16 -c 1 "$C/$f" synth "0.$n" sine 440
done
printf 'notes\n' >"$C/spk1/readme.txt"
sox -n -r 16000 -c 1 "$C/spk2/e.ogg" synth 0.2 sine 440

expected="$(realpath "$C")
spk1/a.wav	3200
spk1/ch1/b.wav	1600
spk2/D.WAV	6400
spk2/c.flac	4800
top.wav	8000"
"$HUBERT_BIN" manifest "$C" --out "$T/all.tsv" >"$T/out.txt" 2>"$T/err.txt" || bad "manifest: exit $? $(cat "$T/err.txt")"
if [ "$(cat "$T/all.tsv")" = "$expected" ]; then ok "all.tsv: root + 5 sorted entries, hidden/.txt/.ogg left out ($(cat "$T/out.txt"))"
else bad "all.tsv differs:"; diff <(echo "$expected") "$T/all.tsv"; fi

"$HUBERT_BIN" manifest "$C" --out "$T/ogg.tsv" --ext ogg,.WAV -q || bad "--ext ogg,.WAV failed"
[ "$(tail -n +2 "$T/ogg.tsv" | cut -f1 | tr '\n' ' ')" = "spk1/a.wav spk1/ch1/b.wav spk2/D.WAV spk2/e.ogg top.wav " ] \
  && ok "--ext ogg,.WAV (case-insensitive)" || bad "--ext: $(cat "$T/ogg.tsv")"

# split: disjoint, complete, deterministic per seed
"$HUBERT_BIN" manifest "$C" --out "$T/tr.tsv" --valid-out "$T/va.tsv" --valid-percent 0.5 --seed 7 -q || bad "split failed"
"$HUBERT_BIN" manifest "$C" --out "$T/tr2.tsv" --valid-out "$T/va2.tsv" --valid-percent 0.5 --seed 7 -q || bad "split failed"
ntr=$(($(wc -l <"$T/tr.tsv") - 1)); nva=$(($(wc -l <"$T/va.tsv") - 1))
[ $((ntr + nva)) -eq 5 ] && ok "split 0.5: $ntr train + $nva valid = 5" || bad "split counts $ntr + $nva"
[ "$(head -n 1 "$T/va.tsv")" = "$(realpath "$C")" ] && ok "valid.tsv has the root line" || bad "valid root line"
[ "$(tail -n +2 "$T/tr.tsv" "$T/va.tsv" | grep -v '^==>' | grep . | sort)" = "$(tail -n +2 "$T/all.tsv" | sort)" ] \
  && ok "train + valid = all, disjoint" || bad "train + valid != all"
cmp -s "$T/tr.tsv" "$T/tr2.tsv" && cmp -s "$T/va.tsv" "$T/va2.tsv" && ok "same seed, same split" || bad "same seed gave a different split"
seen_other=0
for s in 1 2 3 4 5 6 8 9; do
  "$HUBERT_BIN" manifest "$C" --out "$T/t3.tsv" --valid-out "$T/v3.tsv" --valid-percent 0.5 --seed $s -q
  cmp -s "$T/va.tsv" "$T/v3.tsv" || seen_other=1
done
[ $seen_other -eq 1 ] && ok "other seeds give other splits" || bad "the seed does not change the split"
"$HUBERT_BIN" manifest "$C" --out "$T/t4.tsv" --valid-out "$T/v4.tsv" --valid-percent 0 -q
[ "$(wc -l <"$T/v4.tsv")" -eq 1 ] && cmp -s "$T/t4.tsv" "$T/all.tsv" && ok "--valid-percent 0: all in train" || bad "--valid-percent 0"
"$HUBERT_BIN" manifest "$C" --out "$T/t5.tsv" --valid-out "$T/v5.tsv" --valid-percent 1 -q
[ "$(wc -l <"$T/t5.tsv")" -eq 1 ] && [ "$(wc -l <"$T/v5.tsv")" -eq 6 ] && ok "--valid-percent 1: all in valid" || bad "--valid-percent 1"

# the manifest feeds `hubert mfcc`
"$HUBERT_BIN" mfcc --out "$T/m.h5" "$T/all.tsv" -q 2>"$T/err.txt" && ok "hubert mfcc reads the manifest" || bad "mfcc on manifest: $(cat "$T/err.txt")"

# errors
expect_fail "no DIR" "exactly one DIR" "$HUBERT_BIN" manifest --out "$T/x.tsv"
expect_fail "missing DIR" "$T/nope" "$HUBERT_BIN" manifest "$T/nope" --out "$T/x.tsv"
expect_fail "DIR is a file" "not a directory" "$HUBERT_BIN" manifest "$C/top.wav" --out "$T/x.tsv"
expect_fail "no audio" "no audio files" "$HUBERT_BIN" manifest "$C/empty_dir" --out "$T/x.tsv"
expect_fail "--valid-percent 1.5" "valid-percent" "$HUBERT_BIN" manifest "$C" --out "$T/x.tsv" --valid-out "$T/y.tsv" --valid-percent 1.5
expect_fail "--valid-percent without --valid-out" "--valid-out" "$HUBERT_BIN" manifest "$C" --out "$T/x.tsv" --valid-percent 0.1
expect_fail "--ext ," "--ext" "$HUBERT_BIN" manifest "$C" --out "$T/x.tsv" --ext ,
printf 'garbage' >"$C/spk2/broken.wav"
cp "$T/all.tsv" "$T/keep.tsv"
expect_fail "unreadable audio" "$C/spk2/broken.wav" "$HUBERT_BIN" manifest "$C" --out "$T/keep.tsv"
cmp -s "$T/keep.tsv" "$T/all.tsv" && ok "failed run left the existing manifest alone" || bad "failed run changed the manifest"
"$HUBERT_BIN" manifest "$C" --out "$T/sk.tsv" --skip-bad >"$T/out.txt" 2>"$T/err.txt"
grep -q "skipped 1 bad file" "$T/out.txt" && grep -q "broken.wav" "$T/err.txt" && cmp -s "$T/sk.tsv" "$T/all.tsv" \
  && ok "--skip-bad: $(cat "$T/out.txt")" || bad "--skip-bad: $(cat "$T/out.txt" "$T/err.txt")"
[ -e "$T/x.tsv" ] && bad "a failing run wrote $T/x.tsv"

if [ $fails -ne 0 ]; then echo "FAILED: $fails checks"; exit 1; fi
echo "PASS"
