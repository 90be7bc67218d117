#!/usr/bin/env bash
# hubert extract for downstream use, and the fairseq round trip it builds on:
#   fairseq files (manifest .tsv, .km, dict.km.txt) -> labels import -> shards -> labels export
#   gives the same .km and dict back; extract from the shards equals extract from the wav files
#   (bitwise); --weighted-sum (softmax as s3prl's Featurizer, --weighted-sum-raw, --weighted-sum-norm)
#   equals numpy's sum over the layer datasets (rel. err < 1e-6, float32 data summed in double);
#   mixed inputs; the throughput line; bad weights, bad inputs -> clear errors.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

echo "seed $SEED"
cd "$T"
"$PY" "$SRC/tests/cli/train_fixture.py" d "$SEED" 5 2 >/dev/null || { echo "FAIL: fixture"; exit 1; }
cd d
# A fairseq dictionary for the fixture's K = 8 units ("id count" lines).
for i in 0 1 2 3 4 5 6 7; do echo "$i 1"; done > dict.km.txt

# 1. fairseq -> shards -> fairseq
"$BIN" labels import --manifest train.tsv --km train.km --dict dict.km.txt --rate 50 --out km.h5 >/dev/null &&
  "$BIN" shard --out shards --manifest train.tsv --prefix train --labels km=km.h5 >/dev/null ||
  { echo "FAIL: shards"; exit 1; }
"$BIN" labels export shards/train-00000.h5 --name km --km rt.km --dict rt.dict >/dev/null || bad "labels export"
cmp -s rt.km train.km && ok "fairseq .km round trip (import -> shard -> export) identical" || bad ".km round trip differs"
[ "$(cut -d' ' -f1 rt.dict | tr '\n' ' ')" = "0 1 2 3 4 5 6 7 " ] && ok "dict.km.txt lists ids 0..7" || bad "dict: $(head -3 rt.dict)"
"$BIN" manifest wav --out scan.tsv -q && [ "$(tail -n +2 scan.tsv | sort)" = "$(tail -n +2 train.tsv; tail -n +2 valid.tsv)" ] &&
  ok "hubert manifest wav/ lists the fixture's files with their sample counts" || bad "manifest scan differs"

# 2. extract: shards vs wav files, weighted sums
"$BIN" init --config tiny --out m --seed "$SEED" >/dev/null || { echo "FAIL: init"; exit 1; }
"$BIN" extract --model m --out wav.h5 train.tsv >x1.out 2>x1.err || bad "extract wav: $(cat x1.err)"
grep -q "^throughput: .* audio-seconds per second" x1.out && ok "throughput printed: $(grep throughput x1.out)" || bad "no throughput line"
"$BIN" extract --model m --out sh.h5 --weighted-sum 0.5,-1,2 shards/train-00000.h5 >/dev/null 2>x2.err || bad "extract shard: $(cat x2.err)"
"$BIN" extract --model m --out raw.h5 --layers none --weighted-sum 0.25,0.5,0.25 --weighted-sum-raw shards/train-00000.h5 >/dev/null || bad "raw"
"$BIN" extract --model m --out ln.h5 --layers 1 --weighted-sum 1,2,3 --weighted-sum-norm -b 2 train.tsv >/dev/null || bad "norm"
"$BIN" extract --model m --out mix.h5 --layers 2 shards/train-00000.h5 valid.tsv >/dev/null || bad "mixed inputs"
"$PY" - <<'PY' || bad "feature checks"
import h5py, numpy as np, sys
f = lambda p: h5py.File(p, "r")
w, s, r, l, m = f("wav.h5"), f("sh.h5"), f("raw.h5"), f("ln.h5"), f("mix.h5")
bad = 0
def say(ok, what):
    global bad
    print(("  ok: " if ok else "FAIL: ") + what); bad += not ok
def rel(a, b): return float(np.linalg.norm(a - b) / np.linalg.norm(b))
L = [w["layer_%d" % i][:].astype(np.float64) for i in range(3)]
say(all(np.array_equal(w["layer_%d" % i][:], s["layer_%d" % i][:]) for i in range(3)) and
    list(w["utt_id"][:]) == list(s["utt_id"][:]), "extract from shards == extract from wav files (bitwise, same utt ids)")
p = np.exp([0.5, -1, 2]); p /= p.sum()
e = rel(s["weighted_sum"][:], sum(p[i] * L[i] for i in range(3)))
say(e < 1e-6, "weighted_sum = sum softmax(w)_i layer_i: rel err %.2e" % e)
say(sorted(k for k in r.keys() if k.startswith("layer")) == [], "--layers none writes only weighted_sum")
e = rel(r["weighted_sum"][:], 0.25 * L[0] + 0.5 * L[1] + 0.25 * L[2])
say(e < 1e-6 and r.attrs["weighted_sum_mode"] == "raw", "--weighted-sum-raw: weights as given: rel err %.2e" % e)
say(l.attrs["weighted_sum_mode"] == "softmax+layer_norm" and l["weighted_sum"].shape == l["layer_1"].shape,
    "--weighted-sum-norm recorded, shape %s" % (l["weighted_sum"].shape,))
say(m["offsets"].shape[0] == 5 + 2 + 1 and list(m["utt_id"][:5]) == list(w["utt_id"][:]), "mixed shard + manifest inputs: 7 utterances in order")
sys.exit(1 if bad else 0)
PY
# norm mode against numpy on batch 1 (batch-independent features)
"$BIN" extract --model m --out ln1.h5 --weighted-sum 1,2,3 --weighted-sum-norm train.tsv >/dev/null || bad "norm b1"
"$PY" - <<'PY' || bad "norm check"
import h5py, numpy as np
f = h5py.File("ln1.h5", "r")
p = np.exp([1., 2, 3]); p /= p.sum()
ln = lambda x: (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
ref = sum(p[i] * ln(f["layer_%d" % i][:].astype(np.float64)) for i in range(3))
e = float(np.linalg.norm(f["weighted_sum"][:] - ref) / np.linalg.norm(ref))
print(("  ok: " if e < 1e-6 else "FAIL: ") + "--weighted-sum-norm = sum softmax(w)_i LN(layer_i): rel err %.2e" % e)
raise SystemExit(e >= 1e-6)
PY

# 3. errors
expect_fail "too few weights" "2 weights given, the model has 3 hidden states" "$BIN" extract --model m --out e.h5 --weighted-sum 1,2 train.tsv
expect_fail "not a number" "not a comma-separated list of numbers" "$BIN" extract --model m --out e.h5 --weighted-sum 1,x,2 train.tsv
expect_fail "raw without weights" "need --weighted-sum" "$BIN" extract --model m --out e.h5 --weighted-sum-raw train.tsv
expect_fail "nothing to write" "writes nothing" "$BIN" extract --model m --out e.h5 --layers none train.tsv
expect_fail "feature file as a shard" "wav.h5" "$BIN" extract --model m --out e.h5 wav.h5
expect_fail "missing shard" "nope.h5" "$BIN" extract --model m --out e.h5 nope.h5
[ -e e.h5 ] && bad "a failed extract left e.h5 behind"

echo "$fails failure(s)"
[ "$fails" = 0 ]
