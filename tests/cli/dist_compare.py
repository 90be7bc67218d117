"""Compare two hubert train runs (checkpoint_last + train_log.jsonl): used by the distributed tests.
usage: dist_compare.py same A B            every parameter, moment and logged update/loss/loss_m/
                                           sample_size/gnorm bit for bit equal
       dist_compare.py rel A B TOL [moments]  the same logged updates; relative L2 error of the parameters
                                           (and moments) and of every logged value below TOL
Prints what it compared; exit status 0 when the check passes."""
import json
import struct
import sys

import numpy as np


def tensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    return {k: np.frombuffer(b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], np.float32)
            for k, v in sorted(h.items()) if k != "__metadata__"}


def log(run):
    keys = ("update", "loss", "loss_m", "sample_size", "gnorm")
    return [[r[k] for k in keys] for r in map(json.loads, open(run + "/train_log.jsonl")) if r.get("split") == "train"]


def main():
    mode, a, b = sys.argv[1], sys.argv[2], sys.argv[3]
    files = ["model.safetensors"]
    if mode == "same" or (len(sys.argv) > 5 and sys.argv[5] == "moments"):
        files.append("trainer_state.safetensors")
    la, lb = log(a), log(b)
    if mode == "same":
        ok = bool(lb) and la == lb
        for f in files:
            ta, tb = tensors(a + "/checkpoint_last/" + f), tensors(b + "/checkpoint_last/" + f)
            diff = [k for k in tb if k not in ta or ta[k].tobytes() != tb[k].tobytes()]
            print("    %s: %d tensors, %d differ in any bit" % (f, len(tb), len(diff)))
            ok = ok and not diff and ta.keys() == tb.keys()
        print("    logged values of %d updates identical: %s" % (len(lb), la == lb))
        return 0 if ok else 1
    tol, worst = float(sys.argv[4]), 0.0
    for f in files:
        ta, tb = tensors(a + "/checkpoint_last/" + f), tensors(b + "/checkpoint_last/" + f)
        x = np.concatenate([ta[k].astype(np.float64) for k in sorted(ta)])
        y = np.concatenate([tb[k].astype(np.float64) for k in sorted(tb)])
        e = np.linalg.norm(x - y) / max(np.linalg.norm(y), 1e-30)
        print("    %s: rel err %.3g over %d floats" % (f, e, y.size))
        worst = max(worst, e)
    if [r[0] for r in la] != [r[0] for r in lb] or not lb:
        print("    logged updates differ: %d vs %d rows" % (len(la), len(lb)))
        return 1
    for ra, rb in zip(la, lb):
        worst = max([worst] + [abs(p - q) / max(abs(q), 1e-30) for p, q in zip(ra[1:], rb[1:])])
    print("    worst rel err %.3g (tolerance %g)" % (worst, tol))
    return 0 if worst < tol else 1


sys.exit(main())
