#!/usr/bin/env bash
# k-means benchmark: `hubert kmeans fit` vs scikit-learn MiniBatchKMeans with fairseq's settings,
# same data, same thread count, measured in the same run. Prints time, peak RSS, full-data inertia.
#   scripts/bench_kmeans.sh [BUILD_DIR] [small|large|all]
#   small: K=100 on ~120k x 39 (MFCC-like), n_init=20 (fairseq)
#   large: K=500 on ~50k x 768 (HuBERT-layer-like), n_init=${LARGE_N_INIT:-3} on both sides
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build}
WHICH=${2:-small}
HUB=$BUILD/hubert
PY=/usr/bin/python3
THREADS=${OMP_NUM_THREADS:-2}
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
echo "threads=$THREADS  BLAS (numpy): $($PY -c 'import numpy; c=numpy.show_config if 0 else None; import numpy.core._multiarray_umath as m; print("libblas.so.3 ->", __import__("os").path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3"))')"
echo "BLAS (hubert): $(ldd "$BUILD/libhubert.so" | grep -o 'libopenblas[^ ]*' | head -1)"

run_case() {  # name n_utts frames dim k n_init
  local name=$1 nu=$2 fr=$3 dim=$4 k=$5 ninit=$6
  $PY - "$T/$name.h5" "$nu" "$fr" "$dim" "$SRC/tests/parity" <<'PYEOF'
import sys, numpy as np
sys.path.insert(0, sys.argv[5]); import km_data
u = km_data.mfcc_like(np.random.default_rng(0), int(sys.argv[2]), int(sys.argv[3]), dim=int(sys.argv[4]))
km_data.write_feats(sys.argv[1], u)
PYEOF
  /usr/bin/time -v "$HUB" kmeans fit --k "$k" --n-init "$ninit" --out "$T/km.h5" "$T/$name.h5" 2> "$T/ours.time" | tee "$T/ours.out"
  cat > "$T/skl.py" <<'PYEOF'
import sys, time, h5py, numpy as np
from sklearn.cluster import MiniBatchKMeans
x = h5py.File(sys.argv[1])["feats"][:]
k, n_init = int(sys.argv[2]), int(sys.argv[3])
t = time.time()
km = MiniBatchKMeans(n_clusters=k, init="k-means++", max_iter=100, batch_size=10000, tol=0.0, max_no_improvement=100,
                     n_init=n_init, reassignment_ratio=0.0, init_size=None, compute_labels=False, random_state=0).fit(x)
el = time.time() - t
print("sklearn fit %.3f s, %d steps, inertia per frame %.6g" % (el, km.n_steps_, -km.score(x) / len(x)))
PYEOF
  /usr/bin/time -v $PY "$T/skl.py" "$T/$name.h5" "$k" "$ninit" 2> "$T/skl.time" | tee "$T/skl.out"
  local ours_s skl_s ours_rss skl_rss ours_in skl_in
  ours_s=$(grep -o '[0-9.]* s$' "$T/ours.out" | cut -d' ' -f1)
  skl_s=$(grep -o 'fit [0-9.]*' "$T/skl.out" | cut -d' ' -f2)
  ours_in=$(grep -o '([0-9.e+]* per frame' "$T/ours.out" | tr -d '(' | cut -d' ' -f1)
  skl_in=$(grep -o 'per frame [0-9.e+]*' "$T/skl.out" | cut -d' ' -f3)
  ours_rss=$(grep 'Maximum resident' "$T/ours.time" | awk '{print $NF}')
  skl_rss=$(grep 'Maximum resident' "$T/skl.time" | awk '{print $NF}')
  printf '%s: K=%d n_init=%d  ours %.2f s (peak RSS %d MB, inertia/frame %s)  sklearn %.2f s (peak RSS %d MB, inertia/frame %s)  speedup %.1fx\n' \
    "$name" "$k" "$ninit" "$ours_s" $((ours_rss / 1024)) "$ours_in" "$skl_s" $((skl_rss / 1024)) "$skl_in" \
    "$(echo "$skl_s / $ours_s" | bc -l)"
}
if [ "$WHICH" = small ] || [ "$WHICH" = all ]; then run_case mfcc_120k 400 300 39 100 20; fi
if [ "$WHICH" = large ] || [ "$WHICH" = all ]; then run_case hubert_50k 170 300 768 500 "${LARGE_N_INIT:-3}"; fi
