#!/usr/bin/env bash
# The main job, from a fresh machine: installs dependencies, builds, builds the demo corpus from
# Debian packages, and runs HuBERT's label pipeline and a HuBERT Base forward on it:
#
#   demo corpus (real + synthetic speech) -> MFCC 39-d -> k-means(100) units -> LDA topics
#   -> HDF5 shards (audio + units + topics + meta) -> HuBERT Base (random init) -> all 13 layers
#
# Training (hubert train) joins this pipeline when the trainer lands (see README, "Status").
# Options (environment): DEMO_MINUTES (corpus size, default 15), DEMO_DIR (default data/demo),
# DEMO_EXTRACT_UTTS (utterances for the Base forward, default 8), THREADS (default: all cores).
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
printf '\n== done: corpus, features, units, topics and shards in %s; Base hidden states in %s/base_layers.h5\n' "$DIR" "$DIR"
