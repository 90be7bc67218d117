#!/usr/bin/env bash
# Bad inputs to `hubert kmeans` / `hubert topics` give clear errors naming the file and problem:
# dimension and kind mismatch, missing dataset, bad label files. Also a small happy path.
set -u
PY=${HUBERT_PYTHON:-/usr/bin/python3}
$PY -c "import h5py, numpy" 2>/dev/null || { echo "skip: h5py/numpy missing"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fails=0
expect_fail() {  # expect_fail "needle" cmd...
  local needle=$1; shift
  if out=$("$@" 2>&1); then echo "FAIL (succeeded): $*"; fails=$((fails+1)); return; fi
  if [[ "$out" != *"$needle"* ]]; then echo "FAIL: $* -> '$out' lacks '$needle'"; fails=$((fails+1)); return; fi
  echo "ok: ${out}"
}
$PY - "$T" "$HUBERT_SRC/tests/parity" <<'PYEOF'
import sys, numpy as np, h5py
sys.path.insert(0, sys.argv[2]); import km_data
d = sys.argv[1]; rng = np.random.default_rng(1)
km_data.write_feats(d + "/a.h5", km_data.mfcc_like(rng, 20, 100))
km_data.write_feats(d + "/dim13.h5", [u[:, :13] for u in km_data.mfcc_like(rng, 5, 100)])
km_data.write_feats(d + "/hub.h5", km_data.mfcc_like(rng, 5, 100), kind="hubert", name="layer_6")
km_data.write_feats(d + "/hub39.h5", km_data.mfcc_like(rng, 5, 100), kind="hubert", name="feats")
def units(path, units, off, k=10, fmt="hubert-units"):
    with h5py.File(path, "w") as f:
        f.attrs["format"] = fmt; f.attrs["k"] = np.int64(k); f.attrs["rate"] = 50.0
        f.create_dataset("utt_id", data=np.array(["u%d" % i for i in range(len(off) - 1)], dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("offsets", data=np.array(off, np.int64)); f.create_dataset("units", data=np.array(units, np.int32))
units(d + "/good10.h5", [1, 2, 3, 3], [0, 2, 4])
units(d + "/badunit.h5", [1, 2, 12, 3], [0, 2, 4])
units(d + "/badoff.h5", [1, 2, 3, 3], [0, 3, 2])
units(d + "/badend.h5", [1, 2, 3, 3], [0, 2, 5])
units(d + "/badfmt.h5", [1, 2, 3, 3], [0, 2, 4], fmt="hubert-features")
open(d + "/noth5.h5", "w").write("hello")
PYEOF
H=$HUBERT_BIN
$H kmeans fit --k 8 --n-init 2 --batch-size 500 --out "$T/km.h5" "$T/a.h5" || { echo "FAIL: kmeans fit"; fails=$((fails+1)); }
$H kmeans apply --model "$T/km.h5" --out "$T/lab.h5" "$T/a.h5" || { echo "FAIL: kmeans apply"; fails=$((fails+1)); }
expect_fail "dimension 13" $H kmeans apply --model "$T/km.h5" --out "$T/x.h5" "$T/dim13.h5"
expect_fail "kind 'hubert'" $H kmeans apply --model "$T/km.h5" --out "$T/x.h5" "$T/hub39.h5"
expect_fail "layer_6" $H kmeans apply --model "$T/km.h5" --out "$T/x.h5" "$T/hub.h5"
expect_fail "feats" $H kmeans fit --k 4 --layer feats --out "$T/x.h5" "$T/hub.h5"
expect_fail "dimension" $H kmeans fit --k 4 --out "$T/x.h5" "$T/a.h5" "$T/dim13.h5"
expect_fail "fewer than k" $H kmeans fit --k 100000 --out "$T/x.h5" "$T/dim13.h5"
expect_fail "no such file" $H kmeans apply --model "$T/nope.h5" --out "$T/x.h5" "$T/a.h5"
expect_fail "not an HDF5" $H kmeans apply --model "$T/noth5.h5" --out "$T/x.h5" "$T/a.h5"
expect_fail "hubert-kmeans" $H kmeans apply --model "$T/a.h5" --out "$T/x.h5" "$T/a.h5"
expect_fail "--percent" $H kmeans fit --k 4 --percent 0 --out "$T/x.h5" "$T/a.h5"
expect_fail "expected 'fit' or 'apply'" $H kmeans fti
[ -e "$T/x.h5" ] && { echo "FAIL: a failed run left $T/x.h5"; fails=$((fails+1)); }
# label files
expect_fail "outside [0, k=10)" $H topics fit --k 2 --out "$T/t.h5" "$T/badunit.h5"
expect_fail "/offsets decreases" $H topics fit --k 2 --out "$T/t.h5" "$T/badoff.h5"
expect_fail "/units has 4 frames" $H topics fit --k 2 --out "$T/t.h5" "$T/badend.h5"
expect_fail "expected 'hubert-units'" $H topics fit --k 2 --out "$T/t.h5" "$T/badfmt.h5"
expect_fail "badunit.h5" $H topics fit --k 2 --out "$T/t.h5" "$T/badunit.h5"
expect_fail "--method" $H topics fit --method gibbs --out "$T/t.h5" "$T/lab.h5"
$H topics fit --k 3 --bpe-merges 5 --ngram 2 --out "$T/tm.h5" "$T/lab.h5" || { echo "FAIL: topics fit"; fails=$((fails+1)); }
printf 'utt_id\tspeaker\nutt00000\ta\nutt00001\tb\nutt00002\ta\n' > "$T/meta.tsv"
$H topics apply --model "$T/tm.h5" --out "$T/top.h5" --meta "$T/meta.tsv" "$T/lab.h5" | grep -q "NMI(topic, speaker)" || { echo "FAIL: topics apply --meta"; fails=$((fails+1)); }
expect_fail "k=10 units" $H topics apply --model "$T/tm.h5" --out "$T/x.h5" "$T/good10.h5"
expect_fail "hubert-topic-model" $H topics apply --model "$T/lab.h5" --out "$T/x.h5" "$T/lab.h5"
echo "test_kmeans_cli: $fails failure(s)"
[ $fails -eq 0 ]
