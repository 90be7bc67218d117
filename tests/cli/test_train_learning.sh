#!/usr/bin/env bash
# ctest-labels: slow
# Learning check: a tiny HuBERT trained 300 updates on synthetic tone-segment shards
# (tests/cli/train_fixture.py, 8 frame classes at 50 Hz, segments 200-500 ms) must predict masked
# frames well above chance: valid acc_m >= 1/8 + MARGIN (MARGIN 0.06; measured 0.25, 0.31, 0.57 for seeds 12, 13, 14: ~20 s on one core).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
MARGIN=0.06
export OMP_NUM_THREADS=1   # one thread: fastest for the tiny model on a busy machine
echo "seed $SEED"
train_shards 64 16 200:500
# lr 1e-3: at 3e-3 (the first version of this test) some seeds collapse to the uniform prediction
# after first learning (measured: seed 1222 ends at valid acc_m 0.085 on this code and on that of
# b84ee94; with attention dropout seeds 1, 3347 and 13 end at 0.07-0.16); at 1e-3 the 13 seeds
# tried (19 runs, with and without attention dropout) end at 0.42-0.75.
cat > t.yaml <<YAML
common: {seed: $SEED, log_interval: 25}
checkpoint: {save_dir: run, save_interval_updates: 1000, keep_interval_updates: 1}
task: {data: shards, labels: [km], label_rate: 50, max_sample_size: 32000, min_sample_size: 8000}
dataset: {max_tokens: 64000, num_workers: 1, valid_subset: valid, validate_interval_updates: 150}
optimization: {max_update: 300, lr: [0.001], clip_norm: 10.0}
lr_scheduler: {warmup_updates: 20}
model: {preset: tiny, label_rate: 50, mask_prob: 0.3, mask_length: 2, encoder_layerdrop: 0.0}
topic: {name: tp, weight: 1.0}
YAML
"$BIN" train t.yaml >out.txt 2>err.txt || { echo "FAIL: train: $(tail -c 800 err.txt)"; exit 1; }
grep -E '^\[(train|valid)\]' out.txt | tail -4
"$PY" - run/train_log.jsonl "$MARGIN" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
v = [r for r in rows if r["split"] == "valid"]
first, last = v[0], v[-1]
chance, margin = 1 / 8, float(sys.argv[2])
print("valid acc_m: update %d %.4f -> update %d %.4f; chance %.4f, required >= %.4f" % (
    first["update"], first["acc_m"], last["update"], last["acc_m"], chance, chance + margin))
print("valid loss_m: %.4f -> %.4f (ln 8 = 2.0794)" % (first["loss_m"], last["loss_m"]))
ok = last["acc_m"] >= chance + margin and last["loss_m"] < 2.0794
print("PASS" if ok else "FAIL: masked accuracy not above chance by the margin")
sys.exit(0 if ok else 1)
PY
