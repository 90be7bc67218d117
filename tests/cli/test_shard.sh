#!/usr/bin/env bash
# hubert labels import/export + hubert shard + shard check, including the error paths.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
run() { "$@" >"$T/out" 2>"$T/err" || { bad "$*: $(cat "$T/err")"; return 1; }; }

echo "seed $SEED"
"$PY" "$SRC/tests/parity/shard_fixture.py" "$T" "$SEED" >/dev/null || { echo "FAIL: fixture"; exit 1; }
cd "$T"

run "$BIN" labels import --manifest m.tsv --km train.km --dict dict.km.txt --rate 50 --out km.h5 && ok "labels import"
run "$BIN" shard --out one --manifest m.tsv --labels km=km.h5 --topics lda=topics.h5 --meta meta.tsv && ok "shard (one file)"
[ -f one/m-00000.h5 ] && [ ! -e one/m-00001.h5 ] || bad "expected exactly one/m-00000.h5"
ls one | grep -q tmp && bad "temporary file left behind"
run "$BIN" shard check one/m-00000.h5 && ok "shard check: $(head -1 "$T/out")"
grep -q "labels/km: k = 13, rate = 50 Hz" "$T/out" || bad "check report lacks the label set: $(cat "$T/out")"
grep -q "topics/lda: k = 4" "$T/out" || bad "check report lacks the topic set"

# Round trip: .km -> label file -> shard -> .km gives identical files.
run "$BIN" labels export one/m-00000.h5 --name km --km rt.km --dict rt.dict && ok "export from shard"
cmp -s rt.km train.km && ok "round trip .km identical" || bad "round trip .km differs"
cmp -s rt.dict dict.km.txt && ok "round trip dict identical" || bad "round trip dict differs"
run "$BIN" labels export km.h5 --km rt2.km && cmp -s rt2.km train.km && ok "export from label file identical" || bad "label-file export differs"

# Several shards (tiny --shard-mb) hold the same utterances in order.
run "$BIN" shard --out many --prefix tr --manifest m.tsv --labels km=km.h5 --shard-mb 0.05 && ok "shard (many files)"
n=$(ls many/tr-*.h5 | wc -l)
[ "$n" -ge 3 ] && ok "$n shards" || bad "expected >= 3 shards, got $n"
run "$BIN" shard check many/tr-*.h5 && grep -q "total: $n shards, 7 utterances" "$T/out" && ok "check all: $(tail -1 "$T/out")" || bad "check many: $(cat "$T/out")"

# Features copied in from a feature file (hubert mfcc output).
if ! "$BIN" mfcc --out mf.h5 m.tsv >"$T/out" 2>"$T/err"; then
  echo "  note: hubert mfcc failed, --feats not tested: $(head -c 200 "$T/err")"
else
  run "$BIN" shard --out fe --manifest m.tsv --feats mf.h5 && run "$BIN" shard check fe/m-00000.h5 &&
    grep -q "feats: dim 39" "$T/out" && ok "shard --feats" || bad "shard --feats: $(cat "$T/out")"
fi

# Error paths.
head -n 6 train.km > short.km
expect_fail "wrong line count" "short.km: 6 lines" "$BIN" labels import --manifest m.tsv --km short.km --rate 50 --out x.h5
grep -v '^3 ' dict.km.txt > d2.txt
expect_fail "dict missing ids" "unit 3 is not in the dictionary" "$BIN" labels import --manifest m.tsv --km train.km --dict d2.txt --rate 50 --out x.h5
awk 'NR==2{$0=$0" 1 1 1 1 1 1 1 1 1 1"}1' train.km > long.km
expect_fail "km length mismatch" "line 2 (utterance 'spk1/utt01')" "$BIN" labels import --manifest m.tsv --km long.km --rate 50 --out x.h5
sed '1s/^/x/' train.km > nonint.km
expect_fail "non-integer unit" "line 1: 'x" "$BIN" labels import --manifest m.tsv --km nonint.km --rate 50 --out x.h5
expect_fail "label length mismatch" "utterance 'spk0/utt03'" "$BIN" shard --out e1 --manifest m.tsv --labels km=bad_len.h5
grep -q "0.5\|labels at 50 Hz" "$T/err" || bad "length error lacks lengths: $(cat "$T/err")"
[ ! -e e1/m-00000.h5 ] || bad "a failed shard run left a shard behind"
head -n 5 meta.tsv > meta_short.tsv
expect_fail "missing meta row" "no row for utterance" "$BIN" shard --out e2 --manifest m.tsv --meta meta_short.tsv
expect_fail "bad --labels syntax" "expected NAME=FILE.h5" "$BIN" shard --out e3 --manifest m.tsv --labels km.h5
expect_fail "not a shard" "format" "$BIN" shard check km.h5

# Corrupted shards: shard check names the dataset.
"$PY" - "$T" <<'EOF' || bad "corrupting shards"
import shutil, sys, h5py, numpy as np
t = sys.argv[1]
def corrupt(name, fn):
    shutil.copy(t + "/one/m-00000.h5", t + "/" + name)
    with h5py.File(t + "/" + name, "r+") as h:
        fn(h)
def offs(h):
    o = h["audio_offsets"][:]; o[2], o[3] = o[3], o[2]; h["audio_offsets"][:] = o
def lab_off(h):
    o = h["labels/km/offsets"][:]; o[-1] += 1; h["labels/km/offsets"][:] = o
def unit(h):
    h["labels/km/units"][5] = 13
def topic(h):
    h["topics/lda"][1] = -1
def nutt(h):
    h.attrs["num_utts"] = np.int64(9)
def ver(h):
    h.attrs["version"] = np.int64(2)
for n, f in [("offs", offs), ("laboff", lab_off), ("unit", unit), ("topic", topic), ("nutt", nutt), ("ver", ver)]:
    corrupt(n + ".h5", f)
EOF
expect_fail "broken audio offsets" "/audio_offsets decreases" "$BIN" shard check offs.h5
expect_fail "broken label offsets" "/labels/km/offsets ends at" "$BIN" shard check laboff.h5
expect_fail "unit id >= k" "/labels/km/units[5] = 13 is outside [0, k = 13)" "$BIN" shard check unit.h5
expect_fail "topic id < 0" "/topics/lda[1] = -1" "$BIN" shard check topic.h5
expect_fail "num_utts mismatch" "num_utts is 9" "$BIN" shard check nutt.h5
expect_fail "version" "shard version 2" "$BIN" shard check ver.h5
echo "x" > junk.h5
expect_fail "not HDF5" "junk.h5" "$BIN" shard check junk.h5

if [ "$fails" -ne 0 ]; then echo "test_shard: $fails FAILED (seed $SEED)"; exit 1; fi
echo "test_shard: all passed (seed $SEED)"
