#!/usr/bin/env bash
# ctest-labels: cuda mpi
# Data-parallel training on GPU ranks (NCCL), mpirun -np 2, one GPU per rank (docs/distributed.md):
#   1. the gradient all-reduce overlapped with the backward (NCCL on its own stream after events on
#      the ops stream; the default) equals distributed_training.overlap_comm=false bit for bit
#      (50 KiB buckets; at world 2 each sum has two terms, so the order cannot change a bit);
#   2. ZeRO-1 on GPU ranks (reduce-scatter / all-gather of device buffers through NCCL, moment
#      shards in device memory) equals plain data parallel: parameters, gathered moments and
#      logged values to rel. err. < 1e-5 (the global norm is summed from partial squares);
#   3. that ZeRO checkpoint resumes on one GPU process and continues.
# Skips (77) without mpirun, MPI, CUDA, NCCL in the build, or fewer than 2 GPUs.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_mpi
ldd "$BIN" | grep libnccl >/dev/null || { echo "SKIP: $BIN was built without NCCL"; exit 77; }
need_cuda
ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
[ "${ngpu:-0}" -ge 2 ] || { echo "SKIP: $ngpu GPU(s) visible, NCCL needs one per rank (2)"; exit 77; }
export OMP_NUM_THREADS=1
MPI+=(-np 2)
echo "seed $SEED"
train_shards 24 6
cat > t.yaml <<YAML
common: {seed: $SEED, log_interval: 1, device: cuda}
checkpoint: {save_dir: run, save_interval_updates: 2, keep_interval_updates: 1}
task: {data: shards, labels: [km], label_rate: 50, max_sample_size: 24000, min_sample_size: 8000}
dataset: {max_tokens: 24000, num_workers: 1, valid_subset: valid, validate_interval_updates: 2}
optimization: {max_update: 5, lr: [0.002], clip_norm: 1.0, update_freq: [3]}
lr_scheduler: {warmup_updates: 2, total_num_update: 5}
model: {preset: tiny, label_rate: 50, mask_prob: 0.65, mask_length: 5, encoder_layerdrop: 0.1}
topic: {name: tp, weight: 1.0}
distributed_training: {bucket_cap_mb: 0.05}
YAML
run() {  # run NAME [overrides...]
  local name=$1; shift
  "${MPI[@]}" "$BIN" train t.yaml checkpoint.save_dir=$name "$@" >$name.out 2>$name.err ||
    { bad "$name: $(tail -c 1500 $name.err)"; return 1; }
  grep -q "^done:" $name.out || { bad "$name: no done line"; return 1; }
  ok "$name: $(grep '^distributed: 2' $name.out)"
}
cmp_runs() { "$PY" "$SRC/tests/cli/dist_compare.py" "$@"; }
run ov && run nov distributed_training.overlap_comm=false && run zero distributed_training.zero=1 ||
  { echo "$fails failure(s)"; exit 1; }
grep -q "nccl backend" ov.out && ok "NCCL backend" || bad "not the NCCL backend: $(grep '^distributed' ov.out)"
cmp_runs same ov nov && ok "overlapped NCCL all-reduce == after the backward, bit for bit" || bad "overlap on/off differ"
cmp_runs rel zero nov 1e-5 moments && ok "ZeRO-1 on GPU ranks == plain data parallel" || bad "ZeRO-1 on GPU differs"
if "$BIN" train t.yaml checkpoint.save_dir=zero optimization.max_update=6 >res.out 2>res.err &&
   grep -q "resuming from zero/checkpoint_last at update 5" res.out; then
  ok "ZeRO checkpoint resumed by one GPU process: $(grep '^done' res.out)"
else bad "ZeRO checkpoint does not resume: $(tail -c 600 res.err)"; fi
echo "$fails failure(s)"
[ $fails = 0 ]
