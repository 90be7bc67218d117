#!/usr/bin/env bash
# ctest-labels: slow
# Pretraining helps the phone probe: on a small flite corpus with aligned phones
# (tests/cli/probe_fixture.py, offline), iteration 1 as in the demo (MFCC -> k-means units ->
# shards -> a tiny HuBERT, a short run), then `hubert probe --tasks phone` on MFCC, the trained
# model's layers and an untrained model of the same config. Asserts: the trained model's best layer
# (chosen on valid) beats the untrained model's best layer on test phone accuracy by MARGIN.
#
# Why not "beats MFCC": measured, a tiny model (2 layers x 64) trained for minutes does not reach
# single-frame MFCC phone accuracy — not on this fixture, not on the 15-minute demo corpus after
# 2000 updates (docs/RESULTS.md: best trained layer 33.9 % vs MFCC 57.3 %, untrained 25.3 %). The
# MFCC row is printed for reference. HuBERT's gains over MFCC need far more data and model.
# Measured gaps (trained - untrained, test phone accuracy, 200 utterances): with 1500 updates +5.8,
# +5.2, +6.3, +5.1 (seeds 1, 2, 3, 4) but +2.3 for seed 25253, which failed CI; with 3000 updates
# (now) +8.1, +8.4, +8.5, +7.4 (seeds 25253, 4, 7, 11; ~2 min of training each); docs/RESULTS.md.
set -u
BIN="${HUBERT_BIN:?}"
SRC="${HUBERT_SRC:?}"
PY="${HUBERT_PYTHON:-/usr/bin/python3}"
SEED="${HUBERT_TEST_SEED:-$RANDOM}"
MARGIN=0.03
UPDATES=${PROBE_UPDATES:-3000}
UTTS=${PROBE_UTTS:-200}
export OMP_NUM_THREADS=1
command -v flite >/dev/null && command -v sox >/dev/null || { echo "skip: flite/sox not installed (scripts/setup.sh)"; exit 77; }
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT
echo "seed $SEED"
cd "$T"
"$PY" "$SRC/tests/cli/probe_fixture.py" c "$SEED" "$UTTS" || { echo "FAIL: fixture"; exit 1; }
cd c
run() { "$@" >>log.txt 2>&1 || { echo "FAIL: $*: $(tail -c 600 log.txt)"; exit 1; }; }
for s in train valid test; do run "$BIN" mfcc --out mfcc_$s.h5 $s.tsv; done
run "$BIN" kmeans fit --k 50 --n-init 2 --seed 1 -q --out km.h5 mfcc_train.h5
for s in train valid; do
  run "$BIN" kmeans apply -q --model km.h5 --out km_$s.h5 mfcc_$s.h5
  run "$BIN" shard --out shards --manifest $s.tsv --prefix $s --labels km=km_$s.h5
done
cat > t.yaml <<YAML
common: {seed: $SEED, log_interval: 50}
checkpoint: {save_dir: run, save_interval_updates: 1000, keep_interval_updates: 1}
task: {data: shards, labels: [km], label_rate: 100, max_sample_size: 48000, min_sample_size: 8000}
dataset: {max_tokens: 96000, num_workers: 1, valid_subset: valid, validate_interval_updates: 1000}
optimization: {max_update: $UPDATES, lr: [0.002], clip_norm: 10.0}
lr_scheduler: {warmup_updates: 50}
model: {preset: tiny, label_rate: 100, mask_prob: 0.8, mask_length: 10, final_dim: 32, encoder_layerdrop: 0.0}
YAML
t0=$(date +%s)
run "$BIN" train t.yaml
echo "trained $UPDATES updates in $(( $(date +%s) - t0 )) s"
run "$BIN" init --config run/checkpoint_last/config.json --out untrained --seed 1
for s in train valid test; do
  run "$BIN" extract --model run/checkpoint_last --out tr_$s.h5 $s.tsv
  run "$BIN" extract --model untrained --out un_$s.h5 $s.tsv
done
run "$BIN" probe --meta meta.tsv --tasks phone --no-wsum --json p.json --md p.md \
  mfcc=mfcc_train.h5,mfcc_valid.h5,mfcc_test.h5 trained=tr_train.h5,tr_valid.h5,tr_test.h5 untrained=un_train.h5,un_valid.h5,un_test.h5
cat p.md
"$PY" - p.json "$MARGIN" <<'PY'
import json, sys
p, margin = json.load(open(sys.argv[1])), float(sys.argv[2])
def best(s):
    rows = [r for r in p["rows"] if r["set"] == s]
    return max(rows, key=lambda r: r["phone"]["valid"])
m, t, u = best("mfcc"), best("trained"), best("untrained")
print("phone accuracy (test; layer chosen on valid): MFCC %.4f, trained %s %.4f, untrained %s %.4f; required trained >= untrained + %.2f"
      % (m["phone"]["test"], t["layer"], t["phone"]["test"], u["layer"], u["phone"]["test"], margin))
ok = t["phone"]["test"] >= u["phone"]["test"] + margin
print("PASS" if ok else "FAIL: the trained model's best layer does not beat the untrained one by the margin")
sys.exit(0 if ok else 1)
PY
