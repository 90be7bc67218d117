#!/usr/bin/env python3
# `hubert units-eval` against scikit-learn / numpy on seeded random labels: PNMI = I(y;z)/H(y) with
# sklearn.metrics.mutual_info_score (natural log) and the entropy of p(y); phone purity and cluster
# purity from the contingency table (sklearn.metrics.cluster.contingency_matrix). Frame phone labels
# come from a meta.tsv alignment whose segment ends sit on frame edges, so frame i (centre
# (i + 0.5) / 100 s) gets exactly the phone drawn for it. Tolerance: rel. err < 1e-6 (both sides sum
# in double; the JSON round-trips 17 digits).
import json, os, random, subprocess, sys, tempfile

import numpy as np
from sklearn.metrics import mutual_info_score
from sklearn.metrics.cluster import contingency_matrix

BIN = os.environ["HUBERT_BIN"]
seed = int(os.environ.get("HUBERT_TEST_SEED", random.randrange(1 << 30)))
print("seed", seed)
rng = np.random.default_rng(seed)
P, K, U = 12, 30, 6
with tempfile.TemporaryDirectory() as d:
    man, km, meta = [os.path.join(d, n) for n in ("m.tsv", "m.km", "meta.tsv")]
    ys, zs = [], []
    with open(man, "w") as fm, open(km, "w") as fk, open(meta, "w") as ft:
        fm.write(d + "\n")
        ft.write("utt_id\tsplit\tphones\n")
        for u in range(U):
            T = int(rng.integers(80, 300))
            # phones in runs (as real alignments), units correlated with phones plus noise
            y = np.repeat(rng.integers(0, P, T), rng.integers(1, 6, T))[:T]
            z = np.where(rng.random(T) < 0.6, (y * 7 + rng.integers(0, 3, T)) % K, rng.integers(0, K, T))
            ys.append(y), zs.append(z)
            fm.write("u%d.wav\t%d\n" % (u, T * 160))
            fk.write(" ".join(map(str, z)) + "\n")
            segs, i = [], 0
            while i < T:
                j = i
                while j + 1 < T and y[j + 1] == y[i]:
                    j += 1
                segs.append("p%02d:%.4f" % (y[i], (j + 1) / 100))
                i = j + 1
            ft.write("u%d\ttrain\t%s\n" % (u, " ".join(segs)))
        ft.write("espeak-x\ttrain\th @ l oU\n")   # an unaligned row (not in the units file) must parse
    units = os.path.join(d, "u.h5")
    subprocess.run([BIN, "labels", "import", "--manifest", man, "--km", km, "--rate", "100", "--k", str(K), "--out", units],
                   check=True, capture_output=True)
    out = os.path.join(d, "q.json")
    r = subprocess.run([BIN, "units-eval", "--meta", meta, "--json", out, units], capture_output=True, text=True)
    print(r.stdout.strip())
    if r.returncode:
        print("FAIL: units-eval:", r.stderr)
        sys.exit(1)
    q = json.load(open(out))
y, z = np.concatenate(ys), np.concatenate(zs)
c = contingency_matrix(y, z).astype(np.float64)
pxy = c / c.sum()
py = pxy.sum(1)
hy = -(py * np.log(py)).sum()
ref = {"phone_purity": pxy.max(0).sum(), "cluster_purity": pxy.max(1).sum(), "pnmi": mutual_info_score(y, z) / hy,
       "frames": len(y)}
ok = q["frames"] == ref["frames"] and q["utterances"] == U and q["skipped_unaligned"] == 0
for k in ("phone_purity", "cluster_purity", "pnmi"):
    e = abs(q[k] - ref[k]) / abs(ref[k])
    print("%-15s hubert %.12f sklearn/numpy %.12f rel.err %.2e" % (k, q[k], ref[k], e))
    ok = ok and e < 1e-6
print("frames %d (%d), utterances %d, skipped %d" % (q["frames"], ref["frames"], q["utterances"], q["skipped_unaligned"]))
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
