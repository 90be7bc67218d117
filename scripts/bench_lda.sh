#!/usr/bin/env bash
# LDA benchmark: `hubert topics fit` vs scikit-learn LatentDirichletAllocation (online, sklearn
# defaults: max_iter 10, batch 128, priors 1/K) on the same bag-of-units documents (K=50 topics,
# 2000 utterances of ~500 units over 500 unit ids), same thread count, same run. Prints time, peak
# RSS and perplexity on the training documents.   scripts/bench_lda.sh [BUILD_DIR]
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build}
PY=/usr/bin/python3
THREADS=${OMP_NUM_THREADS:-2}
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
$PY - "$T/lab.h5" <<'PYEOF'
import sys, numpy as np, h5py
rng = np.random.default_rng(0); KU, KT = 500, 50
topics = rng.dirichlet(np.full(KU, 0.05), KT); utts = []
for _ in range(2000):
    t = rng.dirichlet(np.full(KT, 0.1)); z = rng.choice(KT, size=250, p=t)
    seq = np.array([rng.choice(KU, p=topics[j]) for j in z], np.int32)
    utts.append(np.repeat(seq, rng.integers(1, 4, size=len(seq))))
with h5py.File(sys.argv[1], "w") as f:
    f.attrs["format"] = "hubert-units"; f.attrs["k"] = np.int64(KU); f.attrs["rate"] = 50.0
    f.create_dataset("utt_id", data=np.array(["u%d" % i for i in range(len(utts))], dtype=object), dtype=h5py.string_dtype())
    off = np.zeros(len(utts) + 1, np.int64); off[1:] = np.cumsum([len(u) for u in utts])
    f.create_dataset("offsets", data=off); f.create_dataset("units", data=np.concatenate(utts))
PYEOF
/usr/bin/time -v "$BUILD/hubert" topics fit --k 50 --out "$T/tm.h5" "$T/lab.h5" 2> "$T/ours.time" | tee "$T/ours.out"
cat > "$T/skl.py" <<'PYEOF'
import sys, time, h5py, numpy as np
from scipy.sparse import csr_matrix
from sklearn.decomposition import LatentDirichletAllocation
f = h5py.File(sys.argv[1]); u, off = f["units"][:], f["offsets"][:]
rows = []
for i in range(len(off) - 1):
    s = u[off[i]:off[i + 1]]; s = s[np.r_[True, s[1:] != s[:-1]]]
    rows.append(np.bincount(s, minlength=int(f.attrs["k"])))
X = csr_matrix(np.array(rows, np.float64))
t = time.time()
lda = LatentDirichletAllocation(n_components=50, learning_method="online", random_state=0).fit(X)
print("sklearn fit %.3f s, perplexity %.4f" % (time.time() - t, lda.bound_))
PYEOF
/usr/bin/time -v $PY "$T/skl.py" "$T/lab.h5" 2> "$T/skl.time" | tee "$T/skl.out"
ours_s=$(grep -o '[0-9.]* s$' "$T/ours.out" | cut -d' ' -f1)
skl_s=$(grep -o 'fit [0-9.]*' "$T/skl.out" | cut -d' ' -f2)
printf 'LDA K=50, 2000 docs: ours %.2f s (peak RSS %d MB, perplexity %s)  sklearn %.2f s (peak RSS %d MB, perplexity %s)  speedup %.1fx (threads %s)\n' \
  "$ours_s" $(( $(grep 'Maximum resident' "$T/ours.time" | awk '{print $NF}') / 1024 )) "$(grep -o 'perplexity [0-9.]*' "$T/ours.out" | cut -d' ' -f2)" \
  "$skl_s" $(( $(grep 'Maximum resident' "$T/skl.time" | awk '{print $NF}') / 1024 )) "$(grep -o 'perplexity [0-9.]*' "$T/skl.out" | cut -d' ' -f2)" \
  "$(echo "$skl_s / $ours_s" | bc -l)" "$THREADS"
