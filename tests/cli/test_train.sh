#!/usr/bin/env bash
# hubert train on tiny synthetic shards (tests/cli/train_fixture.py): a run of N updates; the
# same run killed with SIGKILL after a checkpoint and resumed (every logged loss bitwise equal);
# a crash inside a checkpoint write (HUBERT_TEST_CRASH_IN_CHECKPOINT=1) keeps the previous one
# loadable and resumable; keep_interval_updates pruning; bad configs; hubert extract on the result.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export OMP_NUM_THREADS=1   # bitwise resume needs equal threads; one is fastest for the tiny model

echo "seed $SEED"
train_shards 24 6
cat > t.yaml <<YAML
common: {seed: $SEED, log_interval: 1}
checkpoint: {save_dir: run, save_interval_updates: 2, keep_interval_updates: 1}
task: {data: shards, labels: [km], label_rate: 50, max_sample_size: 24000, min_sample_size: 8000}
dataset: {max_tokens: 48000, num_workers: 1, valid_subset: valid, validate_interval_updates: 4}
optimization: {max_update: 8, lr: [0.002], clip_norm: 10.0}
lr_scheduler: {warmup_updates: 3}
model: {preset: tiny, label_rate: 50, mask_prob: 0.65, mask_length: 5, encoder_layerdrop: 0.1}
topic: {name: tp, weight: 1.0}
YAML
N=8

# 1. Uninterrupted run.
"$BIN" train t.yaml >a.out 2>a.err || { bad "train: $(tail -c 800 a.err)"; echo "1 failure(s)"; exit 1; }
grep -q "^  max_update: 8" a.out && ok "resolved config printed" || bad "resolved config not printed"
n=$(grep -c '"split":"train"' run/train_log.jsonl)
[ "$n" = $N ] && ok "$n train rows logged" || bad "expected $N train rows, got $n"
grep -q '"split":"valid"' run/train_log.jsonl && ok "valid rows logged" || bad "no valid rows"
[ "$(readlink run/checkpoint_last)" = checkpoint_$N ] && ok "checkpoint_last -> checkpoint_$N" || bad "checkpoint_last -> $(readlink run/checkpoint_last)"
best=$(readlink run/checkpoint_best)
kept=$(cd run && ls -d checkpoint_[0-9]* | sort | tr '\n' ' ')
want=$(printf '%s\n' checkpoint_$N $best | sort -u | tr '\n' ' ')
[ "$kept" = "$want" ] && ok "keep_interval_updates 1 keeps last + best: $kept" || bad "kept '$kept', want '$want'"
for f in config.json model.safetensors trainer_state.json trainer_state.safetensors config.yaml; do
  [ -s run/checkpoint_last/$f ] || bad "checkpoint lacks $f"
done
ls -a run | grep -q tmp && bad "temporary files left in run/"

# 2. The final checkpoint is a model folder for hubert extract.
if "$BIN" extract --model run/checkpoint_last --out feats.h5 --layers all valid.tsv >x.out 2>x.err; then
  ok "extract from checkpoint_last: $(head -1 x.out)"
else bad "extract: $(cat x.err)"; fi

# 3. Kill (SIGKILL) after the checkpoint of update 4, resume, compare every logged number.
"$BIN" train t.yaml checkpoint.save_dir=runB >b1.out 2>&1 &
pid=$!
for _ in $(seq 600); do [ "$(readlink runB/checkpoint_last 2>/dev/null)" = checkpoint_4 ] && break; sleep 0.05; done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
if grep -q "^done:" b1.out; then echo "  note: run finished before the kill (machine too fast); resume still checked"; fi
"$BIN" train t.yaml checkpoint.save_dir=runB >b2.out 2>b2.err || bad "resume: $(tail -c 500 b2.err)"
grep -q "resuming from runB/checkpoint_last" b2.out && ok "resumed: $(grep resuming b2.out)" || bad "did not resume: $(head -c 300 b2.out)"
cmp_logs() {  # cmp_logs A B: loss/accuracy/lr/gnorm fields of every row bitwise equal
  "$PY" - "$1" "$2" <<'PY'
import json, sys
keys = ["split", "update", "epoch", "loss", "loss_m", "loss_u", "loss_topic", "acc_m", "acc_topic", "sample_size", "lr", "gnorm"]
rows = [[{k: json.loads(l).get(k) for k in keys} for l in open(p)] for p in sys.argv[1:3]]
if len(rows[0]) != len(rows[1]):
    print("row counts differ: %d vs %d" % (len(rows[0]), len(rows[1]))); sys.exit(1)
for a, b in zip(*rows):
    if a != b:
        print("differ at %s update %s:\n  %s\n  %s" % (a["split"], a["update"], a, b)); sys.exit(1)
last = [r for r in rows[0] if r["split"] == "train"][-1]
print("%d rows identical; last train row: loss %.17g acc_m %.17g" % (len(rows[0]), last["loss"], last["acc_m"]))
PY
}
if r=$(cmp_logs run/train_log.jsonl runB/train_log.jsonl); then ok "resume after SIGKILL: $r"; else bad "resume: $r"; fi
cmp -s run/checkpoint_$N/model.safetensors runB/checkpoint_$N/model.safetensors && ok "final weights bitwise equal" || bad "final weights differ"

# 4. Crash inside a checkpoint write: the previous checkpoint stays last, loadable and resumable.
cp -a run runC
HUBERT_TEST_CRASH_IN_CHECKPOINT=1 "$BIN" train t.yaml checkpoint.save_dir=runC optimization.max_update=10 \
  lr_scheduler.total_num_update=8 >c1.out 2>&1 && bad "crash hook did not abort"
[ -d runC/.tmp_checkpoint_10 ] && ok "crash left the half-written .tmp_checkpoint_10" || bad "no .tmp_checkpoint_10 (hook not reached?) $(tail -c 300 c1.out)"
[ "$(readlink runC/checkpoint_last)" = checkpoint_$N ] && ok "checkpoint_last still -> checkpoint_$N" || bad "checkpoint_last -> $(readlink runC/checkpoint_last)"
"$BIN" extract --model runC/checkpoint_last --out c.h5 valid.tsv >/dev/null 2>c.err && ok "previous checkpoint loads" || bad "previous checkpoint: $(cat c.err)"
"$BIN" train t.yaml checkpoint.save_dir=runC optimization.max_update=10 lr_scheduler.total_num_update=8 >c2.out 2>c2.err &&
  [ "$(readlink runC/checkpoint_last)" = checkpoint_10 ] && [ ! -e runC/.tmp_checkpoint_10 ] && ok "resume after the crash reaches update 10" ||
  bad "resume after crash: $(tail -c 500 c2.err)"

# 5. Non-finite losses (test hook HUBERT_TEST_NAN_FROM_UPDATE): skipped, counted, then a clear stop.
HUBERT_TEST_NAN_FROM_UPDATE=3 "$BIN" train t.yaml checkpoint.save_dir=runN common.max_nan_updates=3 --resume none \
  >n.out 2>n.err && bad "NaN run succeeded"
grep -q "training stopped at update 5: 3 non-finite updates in a row" n.err && ok "NaN stop: $(head -c 200 n.err)" ||
  bad "NaN stop message: $(tail -c 400 n.err)"
"$PY" - runN/train_log.jsonl <<'PY' && ok "NaN updates logged as skipped" || bad "NaN rows"
import json, sys
rows = {r["update"]: r for r in map(json.loads, open(sys.argv[1])) if r["split"] == "train"}
assert rows[2]["nan_skipped"] == 0 and rows[3]["nan_skipped"] == 1 and rows[4]["nan_skipped"] == 1, rows
PY

# 6. A fresh run from a model folder (--init): the trained weights, not a random init.
"$BIN" train t.yaml checkpoint.save_dir=runI optimization.max_update=2 --resume none --init run/checkpoint_$N >i.out 2>i.err &&
  "$PY" - run/train_log.jsonl runI/train_log.jsonl <<'PY' && ok "--init starts from the trained model" || bad "--init: $(tail -c 300 i.err)"
import json, sys
a, b = ([json.loads(l) for l in open(p) if '"train"' in l] for p in sys.argv[1:3])
print("  first-row loss: random init %.4f, --init %.4f" % (a[0]["loss"], b[0]["loss"]))
sys.exit(0 if b[0]["loss"] < a[0]["loss"] else 1)
PY
"$BIN" init --config tiny --out other --labels km:9 --seed 1 >/dev/null 2>&1
expect_fail "--init with another architecture" "does not match" "$BIN" train t.yaml checkpoint.save_dir=runJ --resume none --init other

# 7. Bad configs and arguments.
expect_fail "unknown key" "optimization.lrr" "$BIN" train t.yaml optimization.lrr=0.1 --resume none
expect_fail "negative lr" "optimization.lr" "$BIN" train t.yaml optimization.lr=-1 --resume none
expect_fail "missing shard directory" "'nope' does not exist" "$BIN" train t.yaml task.data=nope --resume none checkpoint.save_dir=r5
expect_fail "missing label set" "nolab" "$BIN" train t.yaml 'task.labels=[nolab]' --resume none checkpoint.save_dir=r5
expect_fail "label rate mismatch" "100 Hz" "$BIN" train t.yaml task.label_rate=100 model.label_rate=100 --resume none checkpoint.save_dir=r5
expect_fail "bad --resume path" "no such checkpoint folder" "$BIN" train t.yaml --resume nowhere
expect_fail "seed differs on resume" "common.seed" "$BIN" train t.yaml common.seed=$((SEED + 1)) optimization.max_update=12

echo "$fails failure(s)"
[ $fails -eq 0 ]
