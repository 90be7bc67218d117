#!/usr/bin/env bash
# hubert finetune on tiny synthetic transcribed shards (tests/cli/finetune_fixture.py): a short CTC
# fine-tuning run on phones (the loss falls, valid/test PER reported, checkpoints are model folders
# with the CTC head and vocabulary that hubert info / extract load), resume, characters, and bad
# input: missing or incompatible model, mismatched vocabularies, shards without transcripts.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export OMP_NUM_THREADS=1

echo "seed $SEED"
cd "$T"
"$PY" "$SRC/tests/cli/finetune_fixture.py" d "$SEED" 40 6 6 || { echo "FAIL: fixture"; exit 1; }
cd d
for s in train valid test; do
  "$BIN" shard --out shards --manifest $s.tsv --prefix $s --meta meta.tsv >/dev/null || { echo "FAIL: shards"; exit 1; }
  "$BIN" shard --out bare --manifest $s.tsv --prefix $s >/dev/null || { echo "FAIL: shards without meta"; exit 1; }
done
"$BIN" init --config tiny --out pre --labels km:8 --seed 2 >/dev/null || { echo "FAIL: init"; exit 1; }
cat > ft.yaml <<YAML
common: {seed: $SEED, log_interval: 1}
checkpoint: {save_dir: run, save_interval_updates: 4, keep_interval_updates: 1, best_checkpoint_metric: per}
task: {data: shards, labels: [phn], min_sample_size: 8000}
dataset: {max_tokens: 200000, num_workers: 1, validate_interval_updates: 6}
criterion: {zero_infinity: true}
optimization: {max_update: 12, lr: [0.002], sentence_avg: true}
lr_scheduler: {_name: tri_stage, warmup_steps: 2, hold_steps: 6, decay_steps: 4, final_lr_scale: 0.05}
model: {w2v_path: pre, apply_mask: true, mask_prob: 0.3, mask_length: 4, mask_channel_prob: 0.2, mask_channel_length: 8,
        freeze_finetune_updates: 2, final_dropout: 0.1, layerdrop: 0.1, feature_grad_mult: 0.0, dropout: 0.0}
YAML

# 1. A run: 6 updates, then resumed to 12.
"$BIN" finetune ft.yaml optimization.max_update=6 >a.out 2>a.err || { bad "finetune: $(tail -c 800 a.err)"; echo "1 failure(s)"; exit 1; }
"$BIN" finetune ft.yaml >b.out 2>b.err || { bad "finetune resume: $(tail -c 800 b.err)"; echo "$fails failure(s)"; exit 1; }
grep -q "; resumed" b.out && ok "second run resumed from checkpoint_6" || bad "second run did not resume: $(grep fine-tuning b.out)"
[ "$(readlink run/checkpoint_last)" = checkpoint_12 ] && ok "checkpoint_last -> checkpoint_12" || bad "checkpoint_last -> $(readlink run/checkpoint_last)"
read -r first last < <("$PY" - run/finetune_log.jsonl <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
tr = [r["loss"] for r in rows if r["split"] == "train"]
print("%.4f %.4f" % (sum(tr[:2]) / 2, sum(tr[-2:]) / 2))
PY
)
"$PY" -c "import sys; sys.exit(0 if $last < 0.7 * $first else 1)" && ok "train CTC loss falls: $first -> $last per token (12 updates)" ||
  bad "train loss did not fall enough: $first -> $last"
grep -q '"split":"valid"' run/finetune_log.jsonl && ok "valid rows logged" || bad "no valid rows"
"$PY" - run/finetune_results.json <<'PY' && ok "finetune_results.json: valid and test PER" || bad "finetune_results.json"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["labels"] == "phn" and 0 <= r["valid"]["per"] <= 1.5 and 0 <= r["test"]["per"] <= 1.5, r
print("  valid PER %.3f, test PER %.3f" % (r["valid"]["per"], r["test"]["per"]))
PY
for f in config.json model.safetensors vocab.json trainer_state.json config.yaml; do
  [ -s run/checkpoint_best/$f ] || bad "checkpoint lacks $f"
done
"$BIN" info --model run/checkpoint_best >info.out 2>&1 && grep -q "CTC head" info.out && ok "hubert info: $(grep 'CTC head' info.out | head -1)" ||
  bad "hubert info: $(tail -c 300 info.out)"
head -n 3 test.tsv > one.tsv
"$BIN" extract --model run/checkpoint_best --out feats.h5 --layers all one.tsv >/dev/null 2>ex.err && ok "hubert extract loads the checkpoint" ||
  bad "extract: $(tail -c 300 ex.err)"
grep -q '"ctc_labels": "phn"' run/checkpoint_best/config.json && grep -q '"p0"' run/checkpoint_best/vocab.json &&
  ok "config.json hubert_c.ctc_labels + vocab.json" || bad "vocabulary not saved"

# 2. Characters; a fine-tuned folder as w2v_path with the same vocabulary continues.
"$BIN" finetune ft.yaml task.labels=[ltr] checkpoint.best_checkpoint_metric=wer checkpoint.save_dir=ltr \
  optimization.max_update=3 dataset.validate_interval_updates=3 >c.out 2>c.err && grep -q "WER" c.out &&
  ok "ltr: $(grep -m1 'CTC over' c.out | cut -c1-120)" || bad "ltr run: $(tail -c 500 c.err)"
grep -q '"|"' ltr/checkpoint_last/vocab.json && ok "ltr vocabulary has the word separator |" || bad "no | in the ltr vocabulary"
"$BIN" finetune ft.yaml task.labels=[ltr] checkpoint.best_checkpoint_metric=cer checkpoint.save_dir=ltr2 model.w2v_path=ltr/checkpoint_last optimization.max_update=1 \
  dataset.validate_interval_updates=0 >/dev/null 2>e.err && ok "continue from a fine-tuned folder with the same vocabulary" ||
  bad "continue from fine-tuned: $(tail -c 300 e.err)"

# 3. A train split that is mostly untranscribed audio (as the demo corpus, 148 of 323): with one
# utterance per batch, runs of batches hold no usable row. Each update must still train on a
# transcribed utterance (such batches are neither updates nor "non-finite" ones; before, 10 of
# them in a row stopped fine-tuning). If no transcribed utterance is usable (every transcript
# longer than its utterance's frames, zero_infinity), an epoch without one is a clear error.
"$PY" - meta.tsv <<'PY' || bad "meta variants"
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
with open("meta_sparse.tsv", "w") as f:  # train: only every 8th utterance keeps its phones
    for i, r in enumerate(rows):
        if i and r[1] == "train" and int(r[0][5:]) % 8:
            r = r[:7] + [""]
        f.write("\t".join(r) + "\n")
with open("meta_long.tsv", "w") as f:  # train: 200 phones for 1-2 s of audio (50-100 frames)
    for i, r in enumerate(rows):
        if i and r[1] == "train":
            r = r[:7] + [" ".join(["p1", "p2"] * 100)]
        f.write("\t".join(r) + "\n")
PY
for v in sparse long; do
  for s in train valid test; do
    "$BIN" shard --out shards_$v --manifest $s.tsv --prefix $s --meta meta_$v.tsv >/dev/null || bad "shards_$v"
  done
done
"$BIN" finetune ft.yaml checkpoint.save_dir=sparse task.data=shards_sparse dataset.max_tokens=32000 common.max_nan_updates=2 \
  optimization.max_update=8 dataset.validate_interval_updates=0 >sp.out 2>sp.err &&
  ok "mostly untranscribed train split: 8 updates, $(grep -c '^update' sp.out) logged" || bad "sparse transcripts: $(tail -c 400 sp.err)"
expect_fail "no usable transcript in an epoch" "no batch of a whole epoch" "$BIN" finetune ft.yaml checkpoint.save_dir=x10 \
  task.data=shards_long dataset.max_tokens=32000 optimization.max_update=2 dataset.validate_interval_updates=0

# 4. Bad input.
expect_fail "missing model" "is not a model folder" "$BIN" finetune ft.yaml checkpoint.save_dir=x1 model.w2v_path=nowhere
mkdir -p broken && cp pre/model.safetensors broken/ && "$BIN" init --config tiny --out other --labels km:8 >/dev/null &&
  sed 's/"hidden_size": 64/"hidden_size": 96/' other/config.json > broken/config.json
expect_fail "incompatible model (config vs tensors)" "model.w2v_path broken" "$BIN" finetune ft.yaml checkpoint.save_dir=x2 model.w2v_path=broken
expect_fail "no w2v_path" "model.w2v_path" "$BIN" finetune ft.yaml checkpoint.save_dir=x3 model.w2v_path=
expect_fail "resume with another vocabulary" "mismatched vocabularies" "$BIN" finetune ft.yaml task.labels=[ltr] \
  checkpoint.best_checkpoint_metric=wer
expect_fail "w2v_path with another CTC vocabulary" "mismatched vocabularies" "$BIN" finetune ft.yaml checkpoint.save_dir=x4 \
  model.w2v_path=ltr/checkpoint_last
expect_fail "shards without /phones" "no /phones dataset" "$BIN" finetune ft.yaml checkpoint.save_dir=x5 task.data=bare
expect_fail "shards without /text" "no /text dataset" "$BIN" finetune ft.yaml checkpoint.save_dir=x6 task.data=bare \
  task.labels=[ltr] checkpoint.best_checkpoint_metric=wer
expect_fail "label set that is not ltr/phn" "not a fine-tuning label set" "$BIN" finetune ft.yaml checkpoint.save_dir=x7 task.labels=[km]
expect_fail "unknown key" "model.mask_chanel_prob" "$BIN" finetune ft.yaml checkpoint.save_dir=x8 model.mask_chanel_prob=0.1
expect_fail "per on characters" "per needs task.labels [phn]" "$BIN" finetune ft.yaml checkpoint.save_dir=x9 task.labels=[ltr]

[ "$fails" = 0 ] && echo "test_finetune: all passed" || echo "$fails failure(s)"
[ "$fails" = 0 ]
