#!/usr/bin/env bash
# Training step of HuBERT Base on CPU: hubert.c trunk forward + backward (`hubert bench train`)
# vs torchaudio 0.13 hubert_pretrain_base (train mode: dropout 0.1, LayerDrop 0.05, masking,
# feature_grad_mult 0.1) trunk forward + backward of the same synthetic loss sum(hidden * R),
# and torchaudio's full pretraining step (its logits + cross-entropy) for context.
# Equal threads (default 2), same batch; peak RSS from /usr/bin/time -v of each process.
# Usage: scripts/bench_train_step.sh [BUILD_DIR] [THREADS] [BATCH] [SECONDS] [REPEAT]
set -euo pipefail
BUILD=${1:-build}
THREADS=${2:-2}
B=${3:-2}
SEC=${4:-8}
REP=${5:-3}
HUBERT=${BUILD}/hubert
export OMP_NUM_THREADS=$THREADS

echo "BLAS (libblas.so.3 alternative): $(update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | awk '/^Value:/ {print $2}')"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

/usr/bin/time -v "$HUBERT" bench train --config base -b "$B" -s "$SEC" -r "$REP" -t "$THREADS" >"$tmp/ours.txt" 2>"$tmp/ours.time"
cat "$tmp/ours.txt"
ours_s=$(awk '/^RESULT/ {split($2, a, "="); print a[2]}' "$tmp/ours.txt")
ours_rss=$(awk '/Maximum resident/ {printf "%.0f", $6 / 1024}' "$tmp/ours.time")

cat >"$tmp/ta.py" <<'PY'
import sys, time, torch, torchaudio
from torchaudio.models.wav2vec2 import components
mode, B, sec, rep, threads = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = torchaudio.models.hubert_pretrain_base(num_classes=100)
model.train()
L = int(sec * 16000)
wave = 0.1 * torch.randn(B, L)
lens = torch.full((B,), L)
w2v = model.wav2vec2
T = w2v.feature_extractor(wave[:1, :400 * 2], None)[0].shape[1]  # warm; real T below
times = []
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
        T = w2v.feature_extractor(wave, lens)[1].max().item() if i == 0 else T
        labels = torch.randint(0, 100, (B, int(T)))
        logit_m, logit_u, pen = model(wave, labels, lens)
        loss = torch.nn.functional.cross_entropy(logit_m, torch.zeros(logit_m.shape[0], dtype=torch.long)) + 10 * pen
    loss.backward()
    if i > 0:
        times.append(time.perf_counter() - t0)
times.sort()
print(f"torchaudio {mode}: median {times[len(times) // 2]:.3f} s (min {times[0]:.3f}, max {times[-1]:.3f})")
print(f"RESULT ta_{mode}_s={times[len(times) // 2]:.4f}")
PY
for mode in trunk full; do
  /usr/bin/time -v /usr/bin/python3 "$tmp/ta.py" "$mode" "$B" "$SEC" "$REP" "$THREADS" >"$tmp/ta_$mode.txt" 2>"$tmp/ta_$mode.time" || { cat "$tmp/ta_$mode.time"; exit 1; }
  cat "$tmp/ta_$mode.txt"
done
ta_s=$(awk -F= '/^RESULT/ {print $2}' "$tmp/ta_trunk.txt")
ta_rss=$(awk '/Maximum resident/ {printf "%.0f", $6 / 1024}' "$tmp/ta_trunk.time")
full_s=$(awk -F= '/^RESULT/ {print $2}' "$tmp/ta_full.txt")
full_rss=$(awk '/Maximum resident/ {printf "%.0f", $6 / 1024}' "$tmp/ta_full.time")
echo
echo "HuBERT Base training step, batch $B x $SEC s, $THREADS threads (median of $REP)"
printf "%-44s %9s %12s\n" "" "time (s)" "peak RSS MB"
printf "%-44s %9.3f %12s\n" "hubert.c trunk fwd+bwd (synthetic loss)" "$ours_s" "$ours_rss"
printf "%-44s %9.3f %12s\n" "torchaudio trunk fwd+bwd (synthetic loss)" "$ta_s" "$ta_rss"
printf "%-44s %9.3f %12s\n" "torchaudio full pretraining step" "$full_s" "$full_rss"
awk -v a="$ours_s" -v b="$ta_s" -v c="$ours_rss" -v d="$ta_rss" 'BEGIN {printf "speed-up vs torchaudio trunk: %.2fx, memory ratio %.2f\n", b / a, c / d}'
