#!/usr/bin/env bash
# ctest-labels: mpi
# Data-parallel training under mpirun (docs/distributed.md) on tiny synthetic shards:
#   1. mpirun -np 2 (update_freq 3) and -np 3 (update_freq 2) end with the same parameters and
#      per-update losses as one process with update_freq 6 (same global batch; rel. err < 1e-5);
#   1b. the overlapped gradient all-reduce (default) equals overlap_comm=false bit for bit (np 2);
#   2. ZeRO-1 (np 2 and 3) equals plain data parallel, including the gathered optimizer moments,
#      and a ZeRO np 2 checkpoint resumed by 3 plain ranks continues as one process would;
#   3. a rank killed (SIGKILL) or hung (SIGSTOP) mid-run: the job exits non-zero within the
#      timeout with a message naming rank 1, and the last checkpoint resumes in one process.
# Skips (77) without mpirun or without MPI in the build.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_mpi
export OMP_NUM_THREADS=1 OMPI_MCA_rmaps_base_oversubscribe=1
MPI+=(--mca orte_base_help_aggregate 0)  # no warnings about the transport

echo "seed $SEED"
train_shards 24 6
# max_tokens = max_sample_size: one utterance per batch, 24 batches per epoch, so 1, 2 and 3 ranks
# share one epoch plan (no batch is split to even out the ranks) and the global batches match.
cat > t.yaml <<YAML
common: {seed: $SEED, log_interval: 1}
checkpoint: {save_dir: run, save_interval_updates: 2, keep_interval_updates: 1}
task: {data: shards, labels: [km], label_rate: 50, max_sample_size: 24000, min_sample_size: 8000}
dataset: {max_tokens: 24000, num_workers: 1, valid_subset: valid, validate_interval_updates: 2}
optimization: {max_update: 5, lr: [0.002], clip_norm: 1.0, update_freq: [6]}
lr_scheduler: {warmup_updates: 2, total_num_update: 5}
model: {preset: tiny, label_rate: 50, mask_prob: 0.65, mask_length: 5, encoder_layerdrop: 0.1}
topic: {name: tp, weight: 1.0}
YAML

# compare A B [moments]: relative L2 error of every parameter (and optimizer moment) and of every
# logged train value; fails above 1e-5. same A B: all of them bit for bit (tests/cli/dist_compare.py).
compare() { "$PY" "$SRC/tests/cli/dist_compare.py" rel "$1" "$2" 1e-5 ${3:+"$3"}; }
same() { "$PY" "$SRC/tests/cli/dist_compare.py" same "$1" "$2"; }
run() {  # run NAME NP UPDATE_FREQ [overrides...]
  local name=$1 np=$2 uf=$3; shift 3
  if [ "$np" = 1 ]; then
    "$BIN" train t.yaml checkpoint.save_dir=$name "optimization.update_freq=[$uf]" "$@" >$name.out 2>$name.err
  else
    "${MPI[@]}" -np "$np" "$BIN" train t.yaml checkpoint.save_dir=$name "optimization.update_freq=[$uf]" "$@" \
      >$name.out 2>$name.err
  fi || { bad "$name (np $np): $(tail -c 1500 $name.err)"; return 1; }
  grep -q "^done:" $name.out || { bad "$name: no done line"; return 1; }
  ok "$name: np $np, update_freq $uf $*: $(grep -c '"split":"train"' $name/train_log.jsonl) updates logged by rank 0"
}

# 1. + 2.
run single 1 6 && run dp2 2 3 && run dp3 3 2 && run zero2 2 3 distributed_training.zero=1 &&
  run zero3 3 2 distributed_training.zero=1 || { echo "$fails failure(s)"; exit 1; }
grep -q "distributed: 3 ranks" dp3.out && ok "$(grep '^distributed: 3' dp3.out)" || bad "no distributed line"
[ "$(grep -c '^\[train\]' dp2.out)" = 5 ] && ok "only rank 0 prints progress" || bad "progress lines: $(grep -c '^\[train\]' dp2.out)"
compare dp2 single && ok "np 2 == one process, update_freq 6" || bad "np 2 differs from one process"
compare dp3 single && ok "np 3 == one process, update_freq 6" || bad "np 3 differs from one process"
compare zero2 dp2 moments && ok "ZeRO-1 np 2 == plain DP (parameters and gathered moments)" || bad "ZeRO-1 np 2 differs"
compare zero3 dp3 moments && ok "ZeRO-1 np 3 == plain DP (parameters and gathered moments)" || bad "ZeRO-1 np 3 differs"

# 1b. The overlapped gradient all-reduce (distributed_training.overlap_comm, the default) gives the
# same bits as the all-reduce after the backward: 50 KiB buckets (about 8 for the tiny model, started
# out of order as the layers' gradients become final), parameters, moments and logged values equal.
run ovon 2 3 distributed_training.bucket_cap_mb=0.05 &&
  run ovoff 2 3 distributed_training.bucket_cap_mb=0.05 distributed_training.overlap_comm=false &&
  grep -q "overlapped with the backward" ovon.out && ! grep -q "overlapped with the backward" ovoff.out &&
  same ovon ovoff && ok "overlapped all-reduce == all-reduce after the backward, bit for bit (np 2, 50 KiB buckets)" ||
  bad "overlap on/off differ: $(grep '^distributed' ovon.out ovoff.out)"

# 2b. Checkpoints do not depend on the world size or on ZeRO: 2 ZeRO ranks to update 2, then
# 3 plain ranks resume to update 5 == one process all the way (parameters, moments, losses).
run part 2 3 distributed_training.zero=1 optimization.max_update=2 && run part 3 2 &&
  if grep -q "resuming from part/checkpoint_last at update 2" part.out && compare part single moments; then
    ok "ZeRO np 2 -> checkpoint -> plain np 3 == one process"
  else bad "resume across world sizes differs: $(grep resuming part.out)"; fi

# 3. A rank lost mid-run: SIGKILL (mpirun notices) and SIGSTOP (our deadline notices).
TIMEOUT=8   # above any legitimate lag (rank 0 fsyncing a checkpoint on a busy disk)
lose() {  # lose SIGNAL NP
  local sig=$1 np=$2 dir=lost_$1 victim=""
  rm -rf $dir
  "${MPI[@]}" -np $np "$BIN" train t.yaml checkpoint.save_dir=$dir optimization.max_update=400 \
    "optimization.update_freq=[2]" checkpoint.save_interval_updates=2 distributed_training.timeout=$TIMEOUT \
    >$dir.out 2>$dir.err &
  local mp=$!
  for _ in $(seq 1200); do [ -e $dir/checkpoint_2 ] && break; sleep 0.05; done
  for c in $(pgrep -P $mp); do
    tr '\0' '\n' </proc/$c/environ 2>/dev/null | grep -q '^OMPI_COMM_WORLD_RANK=1$' && victim=$c
  done
  if [ -z "$victim" ]; then bad "$sig: rank 1 not found"; kill $mp; wait $mp; return; fi
  kill -$sig $victim
  local t0=$SECONDS
  wait $mp
  local rc=$? dt=$((SECONDS - t0))
  kill -KILL $victim 2>/dev/null
  if [ $rc = 0 ]; then bad "$sig: job exited 0"; return; fi
  [ $dt -le $((TIMEOUT + 10)) ] && ok "$sig of rank 1 (np $np): job exited $rc after ${dt} s (timeout $TIMEOUT s)" ||
    bad "$sig: job took ${dt} s to stop"
  local msg
  msg=$(grep -E "rank 1 |rank 1$|ranks? 1 " $dir.err | head -2 | tr '\n' ' ')
  [ -n "$msg" ] && ok "message names rank 1: $msg" || bad "$sig: no message naming rank 1: $(tail -c 800 $dir.err)"
  local last
  last=$(readlink $dir/checkpoint_last)
  if "$BIN" train t.yaml checkpoint.save_dir=$dir "optimization.max_update=$((${last#checkpoint_} + 1))" \
       >$dir.res 2>&1 && grep -q "resuming from" $dir.res; then
    ok "$sig: $last resumed in one process: $(grep resuming $dir.res)"
  else bad "$sig: $last does not resume: $(tail -c 600 $dir.res)"; fi
}
lose KILL 2
lose STOP 3

echo "$fails failure(s)"
[ $fails = 0 ]
