#!/usr/bin/env bash
# The HDF5 loader alone (no model): batches/s and audio-seconds/s on the demo shards, for 0, 1
# and 2 prefetch threads, with peak RSS. Compare with the model's consumption (bench_train_step.sh).
#   scripts/bench_loader.sh [SHARD_DIR] [EPOCHS]
# Environment: BUILD (default build), LABELS (km100), TOPICS (lda20), MAX_TOKENS (1400000, fairseq
# Base per GPU), MAX_SAMPLE (250000).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-data/demo/shards}
EPOCHS=${2:-5}
BUILD=${BUILD:-build}
[ -f "$BUILD/libhubert.so" ] || { echo "no $BUILD/libhubert.so: build first (cmake --build $BUILD)"; exit 1; }
[ -d "$DIR" ] || { echo "no shard directory $DIR: run scripts/demo.sh (or hubert shard) first"; exit 1; }
BIN=$(mktemp -d)/bench_loader
trap 'rm -rf "$(dirname "$BIN")"' EXIT
cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -I. scripts/bench_loader.c -L"$BUILD" -lhubert -Wl,-rpath,"$PWD/$BUILD" -o "$BIN"
# only the train split's shards
TRAIN=$(mktemp -d)
trap 'rm -rf "$(dirname "$BIN")" "$TRAIN"' EXIT
for f in "$DIR"/train-*.h5; do ln -s "$PWD/$f" "$TRAIN/"; done
echo "shards: $(ls "$TRAIN" | wc -l) train shard(s) in $DIR; $EPOCHS epochs; max_tokens ${MAX_TOKENS:-1400000}"
for w in 0 1 2; do
  /usr/bin/time -v "$BIN" "$TRAIN" "${LABELS:-km100}" "${TOPICS:-lda20}" "${MAX_TOKENS:-1400000}" "${MAX_SAMPLE:-250000}" "$w" "$EPOCHS" 2> "$TRAIN.time" || { cat "$TRAIN.time"; exit 1; }
  grep "Maximum resident" "$TRAIN.time" | sed 's/^\s*/  /'
done
rm -f "$TRAIN.time"
