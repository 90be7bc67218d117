#!/usr/bin/env bash
# Training throughput on CPU (audio-seconds per second) of `hubert train`: the demo config
# (tiny model, configs/demo.yaml) and HuBERT Base (configs/base_iter1.yaml, a few updates with
# dataset.max_tokens=256000 so a batch is 16 s of audio), on the same shards; and torchaudio 0.13's
# hubert_pretrain_base full pretraining step (forward + hubert_loss + backward + AdamW) on a
# 2 x 8 s batch, measured in the same run with the same thread count. Peak RSS from /usr/bin/time -v.
# Ours is measured from the JSONL log (audio seconds / wall seconds of the logged interval,
# first update excluded for Base); it includes the loader, masking, heads and the optimizer.
# Usage: scripts/bench_train.sh [BUILD_DIR] [THREADS] [SHARDS_DIR] [DEMO_UPDATES] [BASE_UPDATES]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
THREADS=${2:-2}
SHARDS=${3:-data/demo/shards}
UD=${4:-100}
UB=${5:-4}
H=$BUILD/hubert
export OMP_NUM_THREADS=$THREADS
[ -e "$SHARDS" ] || { echo "no shards in $SHARDS (run scripts/demo.sh first, or give SHARDS_DIR)"; exit 1; }
echo "BLAS: $(update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | awk '/^Value:/ {print $2}')"
echo "threads: $THREADS, shards: $SHARDS, load average: $(cut -d' ' -f1-3 /proc/loadavg) (other jobs slow both sides; compare within one run)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rate() {  # rate LOG SKIP_FIRST: audio-s/s over the train rows (after the first SKIP_FIRST rows)
  /usr/bin/python3 - "$1" "$2" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"split":"train"' in l][int(sys.argv[2]):]
a, w = sum(r["audio_s"] for r in rows), sum(r["wall_s"] for r in rows)
print("%.2f %.1f %.2f %d" % (a / w, a, w, len(rows)))
PY
}
rss() { awk '/Maximum resident/ {printf "%.0f", $6 / 1024}' "$1"; }
cpu() { awk '/User time/ {u = $4} /System time/ {s = $4} END {printf "%.1f", u + s}' "$1"; }  # whole process

/usr/bin/time -v "$H" train configs/demo.yaml task.data="$SHARDS" checkpoint.save_dir="$tmp/demo" \
  optimization.max_update="$UD" common.log_interval="$UD" dataset.validate_interval_updates=0 \
  checkpoint.save_interval_updates=0 --resume none --threads "$THREADS" >"$tmp/demo.out" 2>"$tmp/demo.time"
read -r d_rate d_audio d_wall _ <<<"$(rate "$tmp/demo/train_log.jsonl" 0)"
echo "ours demo (tiny, 16 s batches): $UD updates, ${d_audio} s audio in ${d_wall} s: ${d_rate} audio-s/s, peak RSS $(rss "$tmp/demo.time") MB, process CPU $(cpu "$tmp/demo.time") s"

/usr/bin/time -v "$H" train configs/base_iter1.yaml task.data="$SHARDS" checkpoint.save_dir="$tmp/base" \
  optimization.max_update="$UB" common.log_interval=1 dataset.max_tokens=256000 task.min_sample_size=16000 \
  dataset.validate_interval_updates=0 checkpoint.save_interval_updates=0 dataset.valid_subset=none \
  common.device=cpu --resume none --threads "$THREADS" >"$tmp/base.out" 2>"$tmp/base.time" || { tail -n 5 "$tmp/base.out" "$tmp/base.time"; exit 1; }
read -r b_rate b_audio b_wall b_n <<<"$(rate "$tmp/base/train_log.jsonl" 1)"
echo "ours Base (16 s batches): updates 2..$UB, ${b_audio} s audio in ${b_wall} s: ${b_rate} audio-s/s, peak RSS $(rss "$tmp/base.time") MB, process CPU $(cpu "$tmp/base.time") s for $UB updates"

cat >"$tmp/ta.py" <<'PY'
import sys, time, torch, torchaudio
B, sec, rep, threads = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = torchaudio.models.hubert_pretrain_base(num_classes=100)
model.logit_generator.skip_nomask = True
model.train()
opt = torch.optim.AdamW(model.parameters(), lr=5e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)
L = int(sec * 16000)
wave, lens = 0.1 * torch.randn(B, L), torch.full((B,), L)
with torch.no_grad():
    T = int(model.wav2vec2.feature_extractor(wave[:1], None)[0].shape[1])
labels = torch.randint(0, 100, (B, T))
times = []
for i in range(rep + 1):
    t0 = time.perf_counter()
    opt.zero_grad()
    logit_m, logit_u, pen = model(wave, labels, lens)
    loss = pen * 10.0 * logit_m.shape[0] + torch.nn.functional.cross_entropy(
        logit_m, torch.zeros(logit_m.shape[0], dtype=torch.long), reduction="sum")
    (loss / logit_m.shape[0]).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
    opt.step()
    if i > 0:
        times.append(time.perf_counter() - t0)
times.sort()
t = times[len(times) // 2]
print("%.2f %.3f" % (B * sec / t, t))
PY
/usr/bin/time -v /usr/bin/python3 "$tmp/ta.py" 2 8 "$((UB - 1))" "$THREADS" >"$tmp/ta.out" 2>"$tmp/ta.time"
read -r t_rate t_step <<<"$(cat "$tmp/ta.out")"
echo "torchaudio Base full step (2 x 8 s): median ${t_step} s: ${t_rate} audio-s/s, peak RSS $(rss "$tmp/ta.time") MB, process CPU $(cpu "$tmp/ta.time") s for $UB steps"
/usr/bin/python3 -c "print('Base: ours / torchaudio throughput = %.2fx' % ($b_rate / $t_rate))"
