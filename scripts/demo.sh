#!/usr/bin/env bash
# The main job, from a fresh machine: installs dependencies, builds, builds the demo corpus from
# Debian packages, and runs HuBERT's label pipeline and a HuBERT Base forward on it:
#
#   demo corpus (real + synthetic speech) -> MFCC 39-d -> k-means(100) units -> LDA topics
#   -> HDF5 shards (audio + units + topics + meta) -> HuBERT Base (random init) -> all 13 layers
#
#   -> hubert train configs/demo.yaml (iteration 1: a tiny HuBERT, km100 masked prediction + LDA
#      topic head) -> checkpoints, JSONL log, curves.png -> hubert extract from the final checkpoint
# Options (environment): DEMO_MINUTES (corpus size, default 15), DEMO_DIR (default data/demo),
# DEMO_EXTRACT_UTTS (utterances for the Base forward, default 8), THREADS (default: all cores),
# DEMO_RESUME (hubert train --resume: auto (default, continues a killed run) | none),
# DEMO_TRAIN_ARGS (extra overrides, e.g. "optimization.max_update=200"), DEMO_TRAIN_THREADS (default: THREADS).
set -euo pipefail
cd "$(dirname "$0")/.."
MIN=${DEMO_MINUTES:-15}
DIR=${DEMO_DIR:-data/demo}
NX=${DEMO_EXTRACT_UTTS:-8}
export OMP_NUM_THREADS=${THREADS:-$(nproc)}
H=build/hubert
step() { printf '\n== %s\n' "$*"; }

step "set-up (Debian packages)"
bash scripts/setup.sh

step "build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > build.configure.log
cmake --build build -j"$(nproc)" 2>&1 | grep -E "error|warning|Built target hubert_cli" || true
[ -x "$H" ] || { echo "build failed (see above)"; exit 1; }

step "demo corpus ($MIN minutes) -> $DIR"
bash data_prep/demo_corpus.sh --out "$DIR" --minutes "$MIN"

step "MFCC + deltas (39-d, 100 Hz), fairseq's iteration-1 features"
for s in train valid test; do $H mfcc --out "$DIR/mfcc_$s.h5" "$DIR/$s.tsv"; done

step "k-means: 100 units fitted on train, applied to every split (one model for all splits)"
$H kmeans fit --k 100 --out "$DIR/km100.h5" --n-init 5 --seed 1 "$DIR/mfcc_train.h5"
for s in train valid test; do $H kmeans apply --model "$DIR/km100.h5" --out "$DIR/km100_$s.h5" "$DIR/mfcc_$s.h5"; done

step "HuBERTopic: LDA topics over each utterance's deduplicated units"
$H topics fit --k 20 --out "$DIR/topics_model.h5" --seed 1 "$DIR/km100_train.h5"
$H topics apply --model "$DIR/topics_model.h5" --out "$DIR/topics_train.h5" --meta "$DIR/meta.tsv" "$DIR/km100_train.h5"
for s in valid test; do $H topics apply --model "$DIR/topics_model.h5" --out "$DIR/topics_$s.h5" "$DIR/km100_$s.h5"; done

step "HDF5 shards (audio + km100 units + topics + speaker/text/phones)"
for s in train valid test; do
  $H shard --out "$DIR/shards" --manifest "$DIR/$s.tsv" --prefix "$s" --labels "km100=$DIR/km100_$s.h5" \
    --topics "lda20=$DIR/topics_$s.h5" --meta "$DIR/meta.tsv"
done
$H shard check "$DIR"/shards/*.h5

step "train: hubert train configs/demo.yaml (iteration 1, MFCC km100 units, topic head lda20)"
RUN="$DIR/run"
# Threads: all cores by default (247 vs 162 audio-s/s for 2 vs 1 on a quiet 2-core machine); on
# cores shared with other jobs one thread can be faster (DEMO_TRAIN_THREADS=1; docs/PERFORMANCE.md).
# shellcheck disable=SC2086
OMP_NUM_THREADS=${DEMO_TRAIN_THREADS:-$OMP_NUM_THREADS} \
  $H train configs/demo.yaml task.data="$DIR/shards" checkpoint.save_dir="$RUN" --resume "${DEMO_RESUME:-auto}" \
  ${DEMO_TRAIN_ARGS:-}
/usr/bin/python3 scripts/plot_log.py "$RUN/train_log.jsonl" --out "$RUN/curves.png" --title "hubert.c demo: tiny HuBERT, iteration 1"

step "extract all layers of the trained model (checkpoint_last) for $NX test utterances"
head -n $((NX + 1)) "$DIR/test.tsv" > "$DIR/test_head.tsv"
$H extract --model "$RUN/checkpoint_last" --out "$DIR/trained_layers.h5" --layers all "$DIR/test_head.tsv"

step "HuBERT Base, randomly initialised (torchaudio/fairseq init), as a Hugging Face model folder"
$H init --config base --out "$DIR/hubert_base_init" --labels km100:100 --seed 1
$H info --model "$DIR/hubert_base_init"

step "extract all 13 hidden states of HuBERT Base for $NX test utterances"
head -n $((NX + 1)) "$DIR/test.tsv" > "$DIR/test_head.tsv"
$H extract --model "$DIR/hubert_base_init" --out "$DIR/base_layers.h5" --layers all "$DIR/test_head.tsv"
/usr/bin/python3 - "$DIR/base_layers.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    off = f["offsets"][:]
    print(f"{sys.argv[1]}: {len(off) - 1} utterances, {off[-1]} frames at {f.attrs['rate']:g} Hz")
    for k in range(13):
        d = f[f"layer_{k}"]
        print(f"  layer_{k:<2d} {str(d.shape):>14} {d.dtype}  mean {d[:].mean():+.4f}  std {d[:].std():.4f}")
PY
step "summary"
/usr/bin/python3 - "$RUN" "$DIR" <<'PY'
import json, os, sys
run, d = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(os.path.join(run, "train_log.jsonl"))]
tr = [r for r in rows if r["split"] == "train"]
va = [r for r in rows if r["split"] == "valid"]
last = os.path.realpath(os.path.join(run, "checkpoint_last"))
print("trained %d updates (last logged interval: %.1f audio-seconds per second)" % (tr[-1]["update"], tr[-1]["audio_s_per_s"]))
print("first train row: update %d  loss_m %.3f  acc_m %.3f  topic loss %.3f  acc_topic %.3f" % (tr[0]["update"], tr[0]["loss_m"], tr[0]["acc_m"], tr[0]["loss_topic"], tr[0]["acc_topic"]))
print("last  train row: update %d  loss_m %.3f  acc_m %.3f  topic loss %.3f  acc_topic %.3f" % (tr[-1]["update"], tr[-1]["loss_m"], tr[-1]["acc_m"], tr[-1]["loss_topic"], tr[-1]["acc_topic"]))
if va:
    v0, v = va[0], va[-1]
    print("valid: update %d  loss_m %.3f  acc_m %.3f  acc_topic %.3f  ->  update %d  loss_m %.3f  acc_m %.3f  acc_topic %.3f" % (v0["update"], v0["loss_m"], v0["acc_m"], v0["acc_topic"], v["update"], v["loss_m"], v["acc_m"], v["acc_topic"]))
    import glob, h5py, numpy as np
    counts = np.zeros(100)
    for p in glob.glob(os.path.join(d, "shards", "valid*.h5")):
        with h5py.File(p, "r") as f:
            counts += np.bincount(f["labels/km100/units"][:], minlength=100)[:100]
    major = counts.max() / max(counts.sum(), 1)
    print("valid masked accuracy %.3f: chance 0.010 (1/100 units) -> %.1fx; always-the-most-frequent-unit baseline %.3f" % (v["acc_m"], v["acc_m"] / 0.01, major))
print("model folder: %s (config.json + model.safetensors; best: %s)" % (last, os.path.realpath(os.path.join(run, "checkpoint_best"))))
print("curves: %s   log: %s" % (os.path.join(run, "curves.png"), os.path.join(run, "train_log.jsonl")))
print("trained-model features: %s" % os.path.join(d, "trained_layers.h5"))
PY
printf '\n== done: corpus, features, units, topics and shards in %s; trained model in %s; Base hidden states in %s/base_layers.h5\n' "$DIR" "$RUN/checkpoint_last" "$DIR"
