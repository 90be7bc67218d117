#!/usr/bin/env bash
# Training step of HuBERT Base on CPU, the real pretraining objective on both sides:
#   hubert.c: `hubert bench train --loss pretrain` (models/hubert_pretrain.c: trunk forward with
#     dropout 0.1 / LayerDrop 0.05, span mask p 0.8 length 10, masked prediction over K = 100,
#     feature penalty x10, feature_grad_mult 0.1, backward);
#   torchaudio 0.13: hubert_pretrain_base(num_classes=100) in train mode, forward + hubert_loss
#     (torchaudio's examples/hubert/loss/hubert_loss.py: masked CE sum + 10 * n_m * penalty) +
#     backward. Its logit generator is set to skip the unmasked frames (skip_nomask), which
#     hubert_pretrain_base computes by default although hubert_loss weights them by 0: equal work.
# TRUNK=1 also compares the trunk alone (synthetic loss sum(hidden * R)) on both sides.
# Equal threads (default 2), same batch; peak RSS from /usr/bin/time -v of each process.
# Usage: scripts/bench_train_step.sh [BUILD_DIR] [THREADS] [BATCH] [SECONDS] [REPEAT]
set -euo pipefail
BUILD=${1:-build}
THREADS=${2:-2}
B=${3:-2}
SEC=${4:-8}
REP=${5:-3}
TRUNK=${TRUNK:-0}
HUBERT=${BUILD}/hubert
export OMP_NUM_THREADS=$THREADS

echo "BLAS (libblas.so.3 alternative): $(update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | awk '/^Value:/ {print $2}')"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/ta.py" <<'PY'
import sys, time, torch, torchaudio
from torchaudio.models.wav2vec2 import components
mode, B, sec, rep, threads = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = torchaudio.models.hubert_pretrain_base(num_classes=100)
model.logit_generator.skip_nomask = True  # hubert_loss's unmasked weight is 0: do not compute them
model.train()
L = int(sec * 16000)
wave = 0.1 * torch.randn(B, L)
lens = torch.full((B,), L)
w2v = model.wav2vec2


def hubert_loss(logit_m, logit_u, feature_penalty, masked_weight=1.0, unmasked_weight=0.0, feature_weight=10.0):
    # torchaudio examples/hubert/loss/hubert_loss.py (reduction "sum")
    loss = feature_penalty * feature_weight * logit_m.shape[0]
    loss += torch.nn.functional.cross_entropy(logit_m, torch.zeros(logit_m.shape[0], dtype=torch.long), reduction="sum") * masked_weight
    if logit_u is not None:
        loss += torch.nn.functional.cross_entropy(logit_u, torch.zeros(logit_u.shape[0], dtype=torch.long), reduction="sum") * unmasked_weight
    return loss


with torch.no_grad():
    T = int(w2v.feature_extractor(wave[:1], None)[0].shape[1])
labels = torch.randint(0, 100, (B, T))
times, obj = [], []
for i in range(rep + 1):
    model.zero_grad(set_to_none=False)
    t0 = time.perf_counter()
    if mode == "trunk":
        x, flen = w2v.feature_extractor(wave, lens)
        x = components.GradMultiply.apply(x, 0.1)
        x, amask = w2v.encoder._preprocess(x, flen)
        x, _ = model.mask_generator(x, None)
        h = w2v.encoder.transformer(x, attention_mask=amask)
        if i == 0:
            R = torch.randn_like(h)
        loss = (h * R).sum()
    else:
        logit_m, logit_u, pen = model(wave, labels, lens)
        loss = hubert_loss(logit_m, logit_u, pen)
        obj.append(loss.item() / logit_m.shape[0])
    loss.backward()
    if i > 0:
        times.append(time.perf_counter() - t0)
times.sort()
extra = f", objective per masked frame {sum(obj[1:]) / rep:.4f}" if obj else ""
print(f"torchaudio {mode}: median {times[len(times) // 2]:.3f} s (min {times[0]:.3f}, max {times[-1]:.3f}){extra}")
print(f"RESULT ta_{mode}_s={times[len(times) // 2]:.4f}")
PY

run_ours() {  # $1 = loss kind
  /usr/bin/time -v "$HUBERT" bench train --config base --loss "$1" -b "$B" -s "$SEC" -r "$REP" -t "$THREADS" >"$tmp/ours_$1.txt" 2>"$tmp/ours_$1.time" || { cat "$tmp/ours_$1.time"; exit 1; }
  cat "$tmp/ours_$1.txt"
}
run_ta() {  # $1 = full | trunk
  /usr/bin/time -v /usr/bin/python3 "$tmp/ta.py" "$1" "$B" "$SEC" "$REP" "$THREADS" >"$tmp/ta_$1.txt" 2>"$tmp/ta_$1.time" || { cat "$tmp/ta_$1.time"; exit 1; }
  cat "$tmp/ta_$1.txt"
}
secs() { awk -F= '/^RESULT/ {split($2, a, " "); print a[1]}' "$1"; }
rss() { awk '/Maximum resident/ {printf "%.0f", $6 / 1024}' "$1"; }

run_ours pretrain
run_ta full
if [ "$TRUNK" = 1 ]; then
  run_ours synthetic
  run_ta trunk
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "HuBERT Base training step, batch $B x $SEC s, $THREADS threads (median of $REP)"
printf "%-52s %9s %12s\n" "" "time (s)" "peak RSS MB"
printf "%-52s %9.3f %12s\n" "hubert.c pretrain step (hubert bench train)" "$(secs "$tmp/ours_pretrain.txt")" "$(rss "$tmp/ours_pretrain.time")"
printf "%-52s %9.3f %12s\n" "torchaudio hubert_pretrain_base + hubert_loss" "$(secs "$tmp/ta_full.txt")" "$(rss "$tmp/ta_full.time")"
awk -v a="$(secs "$tmp/ours_pretrain.txt")" -v b="$(secs "$tmp/ta_full.txt")" -v c="$(rss "$tmp/ours_pretrain.time")" -v d="$(rss "$tmp/ta_full.time")" \
  'BEGIN {printf "pretrain step: speed-up vs torchaudio %.2fx, memory ratio %.2f\n", b / a, c / d}'
if [ "$TRUNK" = 1 ]; then
  printf "%-52s %9.3f %12s\n" "hubert.c trunk fwd+bwd (--loss synthetic)" "$(secs "$tmp/ours_synthetic.txt")" "$(rss "$tmp/ours_synthetic.time")"
  printf "%-52s %9.3f %12s\n" "torchaudio trunk fwd+bwd (synthetic loss)" "$(secs "$tmp/ta_trunk.txt")" "$(rss "$tmp/ta_trunk.time")"
fi
