#!/usr/bin/env bash
# ctest-labels: cuda
# hubert train on the GPU (--device cuda; the resume uses the key common.device=cuda): 20 updates of a tiny HuBERT (topic head on) on
# synthetic tone-segment shards (tests/cli/train_fixture.py). Checks: the run finishes, no update
# is skipped, the train loss falls (mean of updates 16-20 < mean of updates 1-5 by > 5%), the
# first update's loss equals the CPU run's (same seed, batch, masks and init; rel. < 1e-4, the
# whole-model fp32 tolerance), and a checkpoint written on the GPU resumes on the GPU.
# Skips (77) when the binary has no CUDA backend or the machine has no GPU.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_cuda
echo "seed $SEED"
train_shards 24 4 200:500
cat > t.yaml <<YAML
common: {seed: $SEED, log_interval: 1}
checkpoint: {save_dir: run, save_interval_updates: 10, keep_interval_updates: 2}
task: {data: shards, labels: [km], label_rate: 50, max_sample_size: 32000, min_sample_size: 8000}
dataset: {max_tokens: 160000, num_workers: 1, valid_subset: valid, validate_interval_updates: 20}
optimization: {max_update: 20, lr: [0.003], clip_norm: 10.0}
lr_scheduler: {warmup_updates: 3, total_num_update: 20}
model: {preset: tiny, label_rate: 50, mask_prob: 0.3, mask_length: 2, encoder_layerdrop: 0.0}
topic: {name: tp, weight: 1.0}
YAML
if ! "$BIN" train t.yaml --device cuda >out.txt 2>err.txt; then
  if grep -qE "no CUDA device|not built in" err.txt; then echo "SKIP: $(tail -1 err.txt)"; exit 77; fi
  echo "FAIL: train --device cuda: $(tail -c 800 err.txt)"; exit 1
fi
grep -E '^\[(train|valid)\]' out.txt | sed -n '1,3p;$p'
cp run/train_log.jsonl log_gpu.jsonl  # a resume rewinds the log to its checkpoint
# CPU reference for the first update (same seed: same batches, masks, dropout and init)
"$BIN" train t.yaml optimization.max_update=1 checkpoint.save_dir=run_cpu >out_cpu.txt 2>err_cpu.txt ||
  { echo "FAIL: train on the CPU: $(tail -c 800 err_cpu.txt)"; exit 1; }
# resume on the GPU from update 10 to 12
"$BIN" train t.yaml common.device=cuda optimization.max_update=12 checkpoint.save_dir=run \
  --resume run/checkpoint_10 >out_res.txt 2>err_res.txt ||
  { echo "FAIL: resume on the GPU: $(tail -c 800 err_res.txt)"; exit 1; }
"$PY" - log_gpu.jsonl run_cpu/train_log.jsonl run/train_log.jsonl <<'PY'
import json, sys
g = [json.loads(l) for l in open(sys.argv[1])]
c = [json.loads(l) for l in open(sys.argv[2])]
res = [json.loads(l) for l in open(sys.argv[3])]
tr = [r for r in g if r["split"] == "train"]
first = {r["update"]: r for r in tr}
fails = []
ups = sorted(first)
if ups[:20] != list(range(1, 21)):
    fails.append("updates logged: %s" % ups)
if any(r.get("nan_skipped", 0) for r in tr):
    fails.append("non-finite updates were skipped")
a = sum(first[u]["loss"] for u in range(1, 6)) / 5
b = sum(first[u]["loss"] for u in range(16, 21)) / 5
print("train loss: updates 1-5 mean %.4f -> updates 16-20 mean %.4f (required < %.4f)" % (a, b, 0.95 * a))
if not b < 0.95 * a:
    fails.append("loss did not fall")
c1 = [r for r in c if r["split"] == "train" and r["update"] == 1][0]
rel = abs(first[1]["loss"] - c1["loss"]) / abs(c1["loss"])
print("update 1 loss: cuda %.6f cpu %.6f rel.err %.2e (tol 1e-4)" % (first[1]["loss"], c1["loss"], rel))
if not rel <= 1e-4:
    fails.append("first update's loss differs from the CPU")
# the resumed run logged updates 11 and 12 again: an exact resume gives the same losses
for u in (11, 12):
    rows = [first[u]] + [r for r in res if r["split"] == "train" and r["update"] == u]
    if len(rows) != 2:
        fails.append("update %d logged %d times after the resume (expected 1)" % (u, len(rows) - 1))
        continue
    d = abs(rows[0]["loss"] - rows[1]["loss"]) / abs(rows[0]["loss"])
    print("update %d loss: first run %.6f, resumed %.6f (rel %.1e, tol 1e-5)" % (u, rows[0]["loss"], rows[1]["loss"], d))
    if not d <= 1e-5:
        fails.append("resumed update %d differs" % u)
for f in fails:
    print("FAIL:", f)
sys.exit(1 if fails else 0)
PY
