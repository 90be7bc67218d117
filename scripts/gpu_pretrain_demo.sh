#!/usr/bin/env bash
# Pretrains two small HuBERTs on the demo corpus on the lent GPU (one call of the device tool), side
# by side on the one card, for docs/RESULTS.md: configs/demo_small.yaml (512-channel extractor,
# 4 x 256, lr 5e-4; run "small_c512") and the same with a 256-channel extractor at lr 1e-3 ("small"). Each run is stopped after
# TRAIN_SECONDS (default 270) if it has not reached max_update; checkpoints every 1000 updates;
# PRETRAIN_ARGS: more overrides for both runs (a dry run here: "common.device=cpu optimization.max_update=2").
# What comes back in $OUT: each run's checkpoint_best (model files only, tar split into 15 MB
# parts: the device tool returns files up to 16 MB) and its train log; join and unpack here with
#   cat small.tar.part* | tar -x -C DIR
# Usage (device tool; the shards come from scripts/demo.sh DEMO_DIR=data/demo_run here):
#   run(command="DEMO_SHARDS=data/demo_run/shards bash scripts/gpu_pretrain_demo.sh",
#       carry=[".debs", "data/demo_run/shards"], timeout_s=420)
set -uo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)
BUILD=${HUBERT_GPU_BUILD:-$SRC/build-gpu}
LOG=$BUILD/pretrain_logs
rm -rf "$LOG" && mkdir -p "$LOG"
T_START=$(date +%s)
row() { printf '%-28s %s\n' "$1" "$2"; }
elapsed() { echo $(( $(date +%s) - T_START ))s; }
JOBS=$(nproc 2>/dev/null || echo 8)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
GPU_BUILD_TARGET=hubert_cli
source "$SRC/scripts/gpu_build.sh"

DATA=${DEMO_SHARDS:-data/demo_run/shards}
SECS=${TRAIN_SECONDS:-270}
W=$BUILD/pretrain_runs
rm -rf "$W" && mkdir -p "$W"
train() {  # name, overrides...
  local name=$1; shift
  OMP_NUM_THREADS=4 timeout "$SECS" "$BUILD/hubert" train configs/demo_small.yaml task.data="$DATA" \
    checkpoint.save_dir="$W/$name" "$@" ${PRETRAIN_ARGS:-} >"$LOG/$name.out" 2>"$LOG/$name.err"
  echo "$name: exit $? after $(elapsed)" >>"$LOG/$name.out"
}
train small model.conv_dim=256 'optimization.lr=[0.001]' &
train small_c512 &
wait
for name in small small_c512; do
  grep -E '^\[valid\]' "$LOG/$name.out" | tail -3
  tail -2 "$LOG/$name.out"
  tail -3 "$LOG/$name.err"
  ck=$W/$name/checkpoint_best
  if [ -f "$ck/model.safetensors" ] && [ -n "${OUT:-}" ]; then
    cp "$W/$name/train_log.jsonl" "$OUT/${name}_train_log.jsonl"
    tar -C "$W/$name" -cf - checkpoint_best/config.json checkpoint_best/config.yaml checkpoint_best/model.safetensors \
      checkpoint_best/trainer_state.json | split -b 15M -d - "$OUT/$name.tar.part"
  fi
  row "$name" "$(grep -E '^\[valid\]' "$LOG/$name.out" | grep best | tail -1)"
done
echo "pretrain_demo done ($(elapsed))"
