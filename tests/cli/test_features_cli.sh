#!/usr/bin/env bash
# `hubert mfcc` / `hubert fbank` on bad inputs: each gives a non-zero exit and a message naming the
# file; --skip-bad skips and counts; a failing run never replaces an existing output file.
set -u
: "${HUBERT_BIN:?HUBERT_BIN must point to the hubert binary}"
command -v sox >/dev/null || { echo "skip: sox not installed (scripts/setup.sh)"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "  ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

# expect_fail NAME NEEDLE CMD...: non-zero exit and NEEDLE in stderr
expect_fail() {
  local name=$1 needle=$2; shift 2
  if "$@" >"$T/out.txt" 2>"$T/err.txt"; then
    bad "$name: succeeded, expected failure"
  elif ! grep -qF -- "$needle" "$T/err.txt"; then
    bad "$name: error does not mention '$needle': $(cat "$T/err.txt")"
  else
    ok "$name -> $(tail -n 1 "$T/err.txt")"
  fi
}
expect_ok() {
  local name=$1; shift
  if "$@" >"$T/out.txt" 2>"$T/err.txt"; then ok "$name: $(tail -n 1 "$T/out.txt")"; else bad "$name: exit $? $(cat "$T/err.txt")"; fi
}

sox -n -r 16000 -b 16 -c 1 "$T/good.wav" synth 1.0 sine 300:3000 vol 0.5
sox -n -r 16000 -b 16 -c 1 "$T/good2.wav" synth 0.5 pinknoise vol 0.3
sox -n -r 16000 -b 16 -c 2 "$T/stereo.wav" synth 0.5 sine 440 sine 880
sox -n -r 8000 -b 16 -c 1 "$T/tel.wav" synth 0.5 sine 440
sox -n -r 16000 -b 16 -c 1 "$T/short.wav" trim 0 300s
printf 'this is not audio\n' >"$T/text.wav"
printf '%s\n' "$T" >"$T/empty.tsv"

for cmd in mfcc fbank; do
  echo "== $cmd"
  expect_fail "$cmd missing file" "$T/nope.wav" "$HUBERT_BIN" $cmd --out "$T/o.h5" "$T/good.wav" "$T/nope.wav"
  expect_fail "$cmd stereo" "$T/stereo.wav" "$HUBERT_BIN" $cmd --out "$T/o.h5" "$T/stereo.wav"
  expect_fail "$cmd 8 kHz without --resample" "$T/tel.wav" "$HUBERT_BIN" $cmd --out "$T/o.h5" "$T/tel.wav"
  expect_fail "$cmd not audio" "$T/text.wav" "$HUBERT_BIN" $cmd --out "$T/o.h5" "$T/good.wav" "$T/text.wav"
  expect_fail "$cmd too short" "$T/short.wav" "$HUBERT_BIN" $cmd --out "$T/o.h5" "$T/short.wav"
  expect_fail "$cmd empty manifest" "$T/empty.tsv" "$HUBERT_BIN" $cmd --out "$T/o.h5" "$T/empty.tsv"
  expect_fail "$cmd no inputs" "no inputs" "$HUBERT_BIN" $cmd --out "$T/o.h5"
  expect_fail "$cmd no --out" "out" "$HUBERT_BIN" $cmd "$T/good.wav"
  [ -e "$T/o.h5" ] && bad "$cmd: a failing run left $T/o.h5 behind"
  ls "$T"/*.tmp >/dev/null 2>&1 && bad "$cmd: a failing run left a .tmp file"

  expect_ok "$cmd --resample" "$HUBERT_BIN" $cmd --out "$T/r.h5" --resample "$T/tel.wav"
  expect_ok "$cmd --channel 1" "$HUBERT_BIN" $cmd --out "$T/c.h5" --channel 1 "$T/stereo.wav"
  expect_fail "$cmd --channel 2 of 2" "$T/stereo.wav" "$HUBERT_BIN" $cmd --out "$T/c2.h5" --channel 2 "$T/stereo.wav"

  # --skip-bad: 4 bad files skipped and counted, the good ones written
  expect_ok "$cmd --skip-bad" "$HUBERT_BIN" $cmd --out "$T/s.h5" --skip-bad "$T/good.wav" "$T/stereo.wav" \
    "$T/tel.wav" "$T/text.wav" "$T/short.wav" "$T/good2.wav"
  grep -q "2 utterances" "$T/out.txt" && grep -q "skipped 4 bad files" "$T/out.txt" \
    && ok "$cmd --skip-bad summary: $(cat "$T/out.txt")" || bad "$cmd --skip-bad summary: $(cat "$T/out.txt")"
  for f in stereo tel text short; do
    grep -q "$T/$f.wav" "$T/err.txt" || bad "$cmd --skip-bad: $f.wav not reported: $(cat "$T/err.txt")"
  done
  expect_fail "$cmd --skip-bad, all bad" "no utterance could be read" "$HUBERT_BIN" $cmd --out "$T/s2.h5" \
    --skip-bad "$T/stereo.wav" "$T/text.wav"

  # a failing run does not clobber an existing output
  expect_ok "$cmd good run" "$HUBERT_BIN" $cmd --out "$T/keep.h5" "$T/good.wav" "$T/good2.wav"
  before=$(md5sum <"$T/keep.h5")
  expect_fail "$cmd failing run onto existing output" "$T/text.wav" "$HUBERT_BIN" $cmd --out "$T/keep.h5" "$T/good.wav" "$T/text.wav"
  [ "$before" = "$(md5sum <"$T/keep.h5")" ] && ok "$cmd: existing output unchanged" || bad "$cmd: existing output was modified"
  ls "$T"/*.tmp >/dev/null 2>&1 && bad "$cmd: a failing run left a .tmp file"

  if command -v h5dump >/dev/null; then
    dim=$([ $cmd = mfcc ] && echo 39 || echo 80)
    h5dump -H -d feats "$T/keep.h5" | grep -q "( 146, $dim )" \
      && ok "$cmd: feats is (98 + 48 frames, $dim)" || bad "$cmd: feats shape: $(h5dump -H -d feats "$T/keep.h5" | grep DATASPACE)"
    h5dump -a kind "$T/keep.h5" | grep -q "\"$cmd\"" && ok "$cmd: kind attribute" || bad "$cmd: kind attribute"
  fi
rm -f "$T/r.h5" "$T/c.h5" "$T/s.h5" "$T/keep.h5"
done

if [ $fails -ne 0 ]; then echo "FAILED: $fails checks"; exit 1; fi
echo "PASS"
