#!/usr/bin/env bash
# Data-parallel cost on CPU at world 2 (mpirun, shared-memory transport):
#   1. all-reduce of a flat float buffer through train/comm (tests/tools/comm_bench) at the tiny
#      model's size and at HuBERT Base's (94.7M floats), vs torch.distributed (gloo) all_reduce of
#      the same buffer, 2 processes, measured in the same run (median and fastest of REPS);
#   2. `hubert train` (tiny preset, synthetic corpus of the trainer tests, 4 s batches): one
#      process with update_freq 2 vs mpirun -np 2 with
#      update_freq 1 (the same global batch): wall per update, and the time rank 0 spent in the
#      gradient/statistics collectives per update (waiting for the slower rank included).
#   3. overlap on/off (distributed_training.overlap_comm) at world 2 on a wider model (30 MB of
#      gradients): ms per update and the time rank 0 still waits for the all-reduce after the backward.
# Usage: scripts/bench_allreduce.sh [BUILD_DIR] [UPDATES] [REPS] [OVERLAP_UPDATES]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
UPD=${2:-40}
REPS=${3:-5}
OUPD=${4:-12}
H=$BUILD/hubert
CB=$BUILD/tests/comm_bench
[ -x "$CB" ] || { echo "build $CB first (cmake --build $BUILD --target comm_bench)"; exit 1; }
ldd "$H" | grep libmpi >/dev/null || { echo "$H was built without MPI"; exit 1; }
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# shared memory with single-copy (CMA) when the container allows it, else without (2x slower)
MPI=(mpirun --oversubscribe --mca btl self,vader -np 2)
if ! "${MPI[@]}" "$CB" 1000 1 >/dev/null 2>&1; then
  MPI=(mpirun --oversubscribe --mca btl self,vader --mca btl_vader_single_copy_mechanism none
       --mca btl_vader_eager_limit 65536 --mca btl_vader_max_send_size 262144 -np 2)
fi
echo "mpirun: ${MPI[*]}"
echo "cores: $(nproc --all), 1 thread per rank, load average: $(cut -d' ' -f1-3 /proc/loadavg) (a loaded machine stretches every number here)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/gloo.py" <<'PY'
import os, sys, time, torch, torch.distributed as dist, torch.multiprocessing as mp
def run(rank, n, reps, port):
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    x = torch.full((n,), float(rank + 1))
    dist.all_reduce(x)
    t = []
    for _ in range(reps):
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(x)
        t.append(time.perf_counter() - t0)
    t.sort()
    if rank == 0:
        print("gloo n=%d ms=%.3f min_ms=%.3f" % (n, 1e3 * t[len(t) // 2], 1e3 * t[0]))
    dist.destroy_process_group()
if __name__ == "__main__":
    n, reps = int(sys.argv[1]), int(sys.argv[2])
    mp.spawn(run, args=(n, reps, 29500 + os.getpid() % 1000), nprocs=2)
PY

# Data: the synthetic corpus of the trainer tests (tests/cli/train_fixture.py), 96 utterances.
/usr/bin/python3 tests/cli/train_fixture.py "$tmp/d" 1 96 8 >/dev/null
for s in train valid; do
  "$H" labels import --manifest "$tmp/d/$s.tsv" --km "$tmp/d/$s.km" --rate 50 --k 8 --out "$tmp/d/km_$s.h5" >/dev/null
  "$H" shard --out "$tmp/d/shards" --manifest "$tmp/d/$s.tsv" --prefix $s --labels km="$tmp/d/km_$s.h5" \
    --topics tp="$tmp/d/topics_$s.h5" >/dev/null
done
cat >"$tmp/t.yaml" <<YAML
common: {seed: 1, log_interval: 1}
checkpoint: {save_dir: run, save_interval_updates: 0}
task: {data: $tmp/d/shards, labels: [km], label_rate: 50, max_sample_size: 32000, min_sample_size: 8000}
dataset: {max_tokens: 64000, num_workers: 1, valid_subset: none, validate_interval_updates: 0}
optimization: {max_update: $UPD, lr: [0.002], clip_norm: 10.0}
lr_scheduler: {warmup_updates: 10}
model: {preset: tiny, label_rate: 50, mask_prob: 0.65, mask_length: 5}
topic: {name: tp, weight: 1.0}
YAML
"$H" train "$tmp/t.yaml" checkpoint.save_dir="$tmp/probe" optimization.max_update=1 >"$tmp/probe.out" 2>&1
TINY=$(awk '/^model:/ && $2 + 0 > 0 {printf "%.0f", $2 * 1e6; exit}' "$tmp/probe.out")
echo "== all-reduce, world 2 =="
for n in "$TINY" 94700000; do
  ours=$("${MPI[@]}" "$CB" "$n" "$REPS")
  ref=$(/usr/bin/python3 "$tmp/gloo.py" "$n" "$REPS" 2>/dev/null)
  om=$(sed 's/.* ms=\([0-9.]*\).*/\1/' <<<"$ours"); rm_=$(sed 's/.* ms=\([0-9.]*\).*/\1/' <<<"$ref")
  echo "$ours"
  echo "$ref"
  awk -v a="$om" -v b="$rm_" -v n="$n" 'BEGIN {printf "  %d floats: ours %.3f ms, gloo %.3f ms (median): gloo/ours %.2fx\n", n, a, b, b / a}'
done

echo "== hubert train, tiny model, global batch 2 x 4 s, $UPD updates =="
per_update() {  # per_update LOG: wall seconds per update over the rows after the first
  /usr/bin/python3 - "$1" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"split":"train"' in l][1:]
print("%.4f" % (sum(r["wall_s"] for r in rows) / max(1, len(rows))))
PY
}
"$H" train "$tmp/t.yaml" checkpoint.save_dir="$tmp/w1" "optimization.update_freq=[2]" >"$tmp/w1.out" 2>&1
"${MPI[@]}" "$H" train "$tmp/t.yaml" checkpoint.save_dir="$tmp/w2" "optimization.update_freq=[1]" >"$tmp/w2.out" 2>&1
s1=$(per_update "$tmp/w1/train_log.jsonl")
s2=$(per_update "$tmp/w2/train_log.jsonl")
comm=$(awk '/^distributed: .* s of rank 0/ {print $2}' "$tmp/w2.out")
awk -v s1="$s1" -v s2="$s2" -v c="$comm" -v u="$UPD" 'BEGIN {
  printf "  1 process, update_freq 2: %.1f ms/update\n", 1e3 * s1;
  printf "  2 ranks, update_freq 1:   %.1f ms/update (speed-up %.2fx, scaling efficiency %.0f%%)\n", 1e3 * s2, s1 / s2, 50 * s1 / s2;
  printf "  collectives on rank 0:    %.1f ms/update = %.1f%% of the update (includes waiting for the other rank)\n", 1e3 * c / u, 100 * c / u / s2 }'

# 3. Overlap (distributed_training.overlap_comm): the same world-2 run with the gradient all-reduce
# overlapped with the backward or after it, on a wider model (4 layers x 384, ~7.6M floats = 30 MB of
# gradients, 4 MiB buckets) so that the all-reduce is a visible part of the update. Runs alternate
# on/off twice; per setting the faster of the two means is kept (the machine is shared).
echo "== overlap on/off, world 2, 4 layers x 384 (ffn 1536), 4 MiB buckets, $OUPD updates per run =="
WIDE=(model.encoder_layers=4 model.encoder_embed_dim=384 model.encoder_ffn_embed_dim=1536
      model.encoder_attention_heads=6 distributed_training.bucket_cap_mb=4 "optimization.update_freq=[1]")
best_on=1e9; best_off=1e9; comm_on=0; comm_off=0
for rep in 1 2; do
  for ov in true false; do
    d="$tmp/ov_${ov}_$rep"
    "${MPI[@]}" "$H" train "$tmp/t.yaml" checkpoint.save_dir="$d" optimization.max_update=$OUPD "${WIDE[@]}" \
      distributed_training.overlap_comm=$ov >"$d.out" 2>&1
    s=$(per_update "$d/train_log.jsonl")
    c=$(awk '/^distributed: .* s of rank 0/ {print $2}' "$d.out")
    echo "  overlap_comm=$ov run $rep: $(awk -v s="$s" -v c="$c" -v u=$OUPD 'BEGIN {printf "%.1f ms/update, rank 0 waited %.1f ms/update in collectives after the backward", 1e3 * s, 1e3 * c / u}')"
    if [ "$ov" = true ]; then
      best_on=$(awk -v a="$best_on" -v b="$s" 'BEGIN {print (b < a ? b : a)}'); comm_on=$c
    else
      best_off=$(awk -v a="$best_off" -v b="$s" 'BEGIN {print (b < a ? b : a)}'); comm_off=$c
    fi
  done
done
grep -q "overlapped with the backward" "$tmp/ov_true_1.out" || echo "  WARNING: the overlap_comm=true run did not report the overlap"
WN=$(awk '/^model:/ && $2 + 0 > 0 {printf "%.0f", $2 * 1e6; exit}' "$tmp/ov_true_1.out")
echo "  all-reduce alone of $WN floats: $("${MPI[@]}" "$CB" "$WN" "$REPS")"
awk -v a="$best_on" -v b="$best_off" 'BEGIN {printf "  best: overlap on %.1f ms/update, off %.1f ms/update: %.1f%% faster with the overlap\n", 1e3 * a, 1e3 * b, 100 * (b - a) / b}'
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
