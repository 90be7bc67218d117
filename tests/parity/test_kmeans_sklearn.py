#!/usr/bin/env python3
# ctest-labels: parity slow
"""hubert kmeans fit vs scikit-learn MiniBatchKMeans with fairseq's settings on the same seeded
MFCC-like features (~50k x 39): our full-data inertia must be <= 1.01 x sklearn's. Both sides use
the same n_init (smaller than fairseq's 20, for test time). Also checks `kmeans apply` labels ==
nearest centroid computed here."""
import os, subprocess, sys, tempfile

try:
    import h5py, numpy as np
    from sklearn.cluster import MiniBatchKMeans
except ImportError as e:
    print("skip: %s" % e); sys.exit(77)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import km_data

seed = int(os.environ.get("HUBERT_TEST_SEED", np.random.SeedSequence().entropy % 100000))
print("seed", seed)
hub = os.environ["HUBERT_BIN"]
rng = np.random.default_rng(seed)
K, N_INIT = 100, 3
with tempfile.TemporaryDirectory() as d:
    utts = km_data.mfcc_like(rng, 170, 300)
    feats = os.path.join(d, "f.h5")
    km_data.write_feats(feats, utts)
    x = np.concatenate(utts)
    print("data %d x %d" % x.shape)
    subprocess.run([hub, "kmeans", "fit", "--k", str(K), "--n-init", str(N_INIT), "--seed", str(seed),
                    "--out", os.path.join(d, "km.h5"), feats], check=True)
    with h5py.File(os.path.join(d, "km.h5")) as f:
        c = f["centroids"][:].astype(np.float64)
        assert f.attrs["kind"] == "mfcc" and int(f.attrs["k"]) == K and int(f.attrs["n_frames"]) == len(x)
    km = MiniBatchKMeans(n_clusters=K, init="k-means++", max_iter=100, batch_size=10000, tol=0.0,
                         max_no_improvement=100, n_init=N_INIT, reassignment_ratio=0.0,
                         compute_labels=False, random_state=seed).fit(x)
    xd = x.astype(np.float64)
    dist = (xd ** 2).sum(1)[:, None] - 2 * xd @ c.T + (c ** 2).sum(1)[None]
    ours = np.maximum(dist.min(1), 0).sum()
    theirs = -km.score(x)
    ratio = ours / theirs
    print("inertia per frame: ours %.5f sklearn %.5f ratio %.4f (limit 1.01)" % (ours / len(x), theirs / len(x), ratio))
    subprocess.run([hub, "kmeans", "apply", "--model", os.path.join(d, "km.h5"), "--out", os.path.join(d, "lab.h5"), feats], check=True)
    with h5py.File(os.path.join(d, "lab.h5")) as f:
        units = f["units"][:]
        ok_fmt = f.attrs["format"] == "hubert-units" and int(f.attrs["k"]) == K
    best = dist.argmin(1)
    # ties within float rounding are not disagreements
    gap = dist[np.arange(len(x)), units] - dist[np.arange(len(x)), best]
    bad = int((gap > 1e-3 * (1 + dist[np.arange(len(x)), best])).sum())
    print("apply: %d of %d frames not at their nearest centroid" % (bad, len(x)))
    sys.exit(0 if ratio <= 1.01 and bad == 0 and ok_fmt else 1)
