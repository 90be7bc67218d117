#!/usr/bin/env bash
# MFCC + deltas (fairseq's HuBERT iteration-1 features; KIND=fbank: 80-d fbank) on ~10 minutes of
# 16 kHz audio:
# `hubert mfcc` vs torchaudio with fairseq's recipe (examples/hubert/simple_kmeans/
# dump_mfcc_feature.py: kaldi.mfcc(use_energy=False) -> compute_deltas -> compute_deltas -> concat),
# same files, same thread count, measured in the same run. Prints times, the ratio, x real time
# and peak RSS (/usr/bin/time -v).
#
#   scripts/bench_mfcc.sh [HUBERT_BIN]   env: THREADS (default 2), MINUTES (default 10),
#                                        KIND (mfcc | fbank, default mfcc), RUNS (default 5)
set -euo pipefail
SRC="$(cd "$(dirname "$0")/.." && pwd)"
HUBERT="${1:-${HUBERT_BIN:-$SRC/build/hubert}}"
THREADS="${THREADS:-2}"
MINUTES="${MINUTES:-10}"
KIND="${KIND:-mfcc}"
RUNS="${RUNS:-5}"
case "$KIND" in mfcc|fbank) ;; *) echo "KIND must be mfcc or fbank"; exit 1;; esac
PY=/usr/bin/python3
[ -x "$HUBERT" ] || { echo "no hubert binary at $HUBERT (build first or pass its path)"; exit 1; }
command -v sox >/dev/null || { echo "sox missing (scripts/setup.sh)"; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# MINUTES * 6 files of 10 s: a sweep (different per file) mixed with pink noise
mkdir -p "$T/wav"
nfiles=$((MINUTES * 6))
echo "$T/wav" >"$T/bench.tsv"
for i in $(seq 1 $nfiles); do
  f=$((100 + i * 7))
  sox -R -n -r 16000 -b 16 -c 1 "$T/a.wav" synth 10 sine $f-$((f * 20)) vol 0.3
  sox -R -n -r 16000 -b 16 -c 1 "$T/b.wav" synth 10 pinknoise vol 0.1
  sox -m "$T/a.wav" "$T/b.wav" "$T/wav/u$i.wav"
  printf 'u%d.wav\t160000\n' "$i" >>"$T/bench.tsv"
done

export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS
load0=$(cut -d' ' -f1-3 /proc/loadavg)
blas=$(readlink -f /etc/alternatives/libblas.so.3-x86_64-linux-gnu 2>/dev/null || echo unknown)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')

# ours: best of RUNS wall-clock runs of the whole command (process start, decoding, HDF5 writing
# + fsync), timed in ns by date; peak RSS from one more run under /usr/bin/time -v
best_ours=""
for r in $(seq 1 "$RUNS"); do
  t0=$(date +%s%N)
  "$HUBERT" "$KIND" --out "$T/ours.h5" "$T/bench.tsv" >"$T/ours.out"
  t1=$(date +%s%N)
  w=$(awk "BEGIN{printf \"%.4f\", ($t1 - $t0) / 1e9}")
  if [ -z "$best_ours" ] || awk "BEGIN{exit !($w < $best_ours)}"; then best_ours=$w; fi
done
/usr/bin/time -v "$HUBERT" "$KIND" -q --out "$T/ours.h5" "$T/bench.tsv" 2>"$T/ours.time"
ours_rss=$(grep 'Maximum resident' "$T/ours.time" | awk '{print $NF}')
# CPU time (user + sys, all threads) per run: less sensitive to other jobs than wall time
/usr/bin/time -f "%U %S" bash -c "for r in \$(seq 1 $RUNS); do \"$HUBERT\" $KIND -q --out \"$T/ours.h5\" \"$T/bench.tsv\"; done" 2>"$T/ours.cpu"
ours_cpu=$(tail -n 1 "$T/ours.cpu" | awk -v n="$RUNS" '{printf "%.4f", ($1 + $2) / n}')

# torchaudio: fairseq's MfccFeatureReader loop (read int16 wav as float, mfcc, deltas, concat; or
# kaldi.fbank), timed inside Python (import time excluded: favourable to the oracle); best of RUNS
cat >"$T/oracle.py" <<'EOF'
import sys, time, wave
import numpy as np, torch, torchaudio
torch.set_num_threads(int(sys.argv[2]))
root, *lines = open(sys.argv[1]).read().split("\n")
paths = [root + "/" + l.split("\t")[0] for l in lines if l]
def read(p):
    with wave.open(p, "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768.0
def feats(x):
    if sys.argv[4] == "fbank":
        with torch.no_grad():
            return torchaudio.compliance.kaldi.fbank(torch.from_numpy(x).float().view(1, -1),
                                                     num_mel_bins=80, sample_frequency=16000)
    with torch.no_grad():
        x = torch.from_numpy(x).float().view(1, -1)
        m = torchaudio.compliance.kaldi.mfcc(waveform=x, sample_frequency=16000, use_energy=False)
        m = m.transpose(0, 1)
        d = torchaudio.functional.compute_deltas(m)
        dd = torchaudio.functional.compute_deltas(d)
        return torch.cat([m, d, dd], dim=0).transpose(0, 1).contiguous()
best, best_cpu = 1e9, 1e9
for rep in range(int(sys.argv[5])):
    t, c = time.perf_counter(), time.process_time()
    out = [feats(read(p)).numpy() for p in paths]
    best, best_cpu = min(best, time.perf_counter() - t), min(best_cpu, time.process_time() - c)
np.save(sys.argv[3], np.concatenate(out))
print(f"{best_cpu:.4f}")
print(f"{best:.4f}")
EOF
/usr/bin/time -v $PY "$T/oracle.py" "$T/bench.tsv" "$THREADS" "$T/ref.npy" "$KIND" "$RUNS" >"$T/ref.out" 2>"$T/ref.time"
ref_s=$(tail -n 1 "$T/ref.out")
ref_cpu=$(tail -n 2 "$T/ref.out" | head -n 1)
ref_rss=$(grep 'Maximum resident' "$T/ref.time" | awk '{print $NF}')

# the two outputs agree (relative L2 over the whole corpus)
err=$($PY -c "
import h5py, numpy as np
a = h5py.File('$T/ours.h5', 'r')['feats'][()].astype(np.float64); b = np.load('$T/ref.npy').astype(np.float64)
print('%.2e' % (np.linalg.norm(a - b) / np.linalg.norm(b)) if a.shape == b.shape else 'shape %s vs %s' % (a.shape, b.shape))")

audio_s=$((nfiles * 10))
load=$(cut -d' ' -f1-3 /proc/loadavg)
[ "$KIND" = mfcc ] && what="MFCC + deltas" || what="fbank (80 bins)"
echo "$what, $nfiles files x 10 s = $audio_s s of 16 kHz audio, $THREADS threads, $cpu"
echo "BLAS for torch: $blas; load average before the timing: $load0, after: $load"
echo "ours  (hubert $KIND, whole command):      ${best_ours} s  $(awk "BEGIN{printf \"%.0f\", $audio_s/$best_ours}")x real time  peak RSS $((ours_rss / 1024)) MB"
echo "torchaudio ($KIND loop, imports excluded): ${ref_s} s  $(awk "BEGIN{printf \"%.0f\", $audio_s/$ref_s}")x real time  peak RSS $((ref_rss / 1024)) MB"
echo "ratio torchaudio / ours: $(awk "BEGIN{printf \"%.1f\", $ref_s/$best_ours}")x   (relative L2 ours vs torchaudio: $err)"
echo "CPU time (user + sys, all threads): ours ${ours_cpu} s per run (mean of $RUNS), torchaudio ${ref_cpu} s (best pass); ratio $(awk "BEGIN{printf \"%.1f\", $ref_cpu/$ours_cpu}")x"
echo "ours, internal: $(cat "$T/ours.out")"
