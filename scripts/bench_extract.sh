#!/usr/bin/env bash
# HuBERT forward (feature extraction) benchmark: hubert.c vs torchaudio in the same run, same
# thread count, random weights, random audio. Prints both times, the ratio and peak memory.
#   scripts/bench_extract.sh [--config base|large] [--batch-size 4] [--seconds 10] [--threads 2] [--repeat 3]
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=base; BATCH=4; SECONDS_PER=10; THREADS=2; REPEAT=3
while [ $# -gt 0 ]; do
  case "$1" in
    --config) CONFIG=$2; shift 2 ;;
    --batch-size) BATCH=$2; shift 2 ;;
    --seconds) SECONDS_PER=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
HUBERT=${HUBERT_BIN:-build/hubert}
[ -x "$HUBERT" ] || { echo "build first: cmake -S . -B build && cmake --build build -j" >&2; exit 1; }
blas=$(readlink -f /etc/alternatives/libblas.so.3-x86_64-linux-gnu 2>/dev/null || echo unknown)
echo "== HuBERT $CONFIG forward, $BATCH x ${SECONDS_PER}s, $THREADS threads; torch BLAS: $blas; hubert.c BLAS: OpenBLAS (OpenMP build)"
ours=$(OMP_NUM_THREADS=$THREADS "$HUBERT" bench extract --config "$CONFIG" --batch-size "$BATCH" --seconds "$SECONDS_PER" --repeat "$REPEAT" --threads "$THREADS")
echo "$ours"
theirs=$(OMP_NUM_THREADS=$THREADS /usr/bin/python3 scripts/bench_extract.py --config "$CONFIG" --batch-size "$BATCH" --seconds "$SECONDS_PER" --repeat "$REPEAT" --threads "$THREADS")
echo "$theirs"
t_ours=$(echo "$ours" | sed -n 's/.*hubert_forward_s=\([0-9.]*\).*/\1/p')
m_ours=$(echo "$ours" | sed -n 's/RESULT.*peak_rss_mb=\([0-9.]*\).*/\1/p')
t_ta=$(echo "$theirs" | sed -n 's/.*torchaudio_forward_s=\([0-9.]*\).*/\1/p')
m_ta=$(echo "$theirs" | sed -n 's/RESULT.*peak_rss_mb=\([0-9.]*\).*/\1/p')
/usr/bin/python3 -c "print(f'== speed: hubert.c {$t_ours:.3f} s vs torchaudio {$t_ta:.3f} s -> {$t_ta/$t_ours:.2f}x; peak RSS {$m_ours:.0f} MB vs {$m_ta:.0f} MB')"
