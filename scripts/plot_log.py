#!/usr/bin/python3
"""Loss and accuracy curves of a `hubert train` JSONL log (train and valid rows).

usage: scripts/plot_log.py LOG.jsonl --out curves.png [--title TEXT]
Uses Debian's python3-matplotlib (Agg backend: no display needed).
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log")
    ap.add_argument("--out", required=True)
    ap.add_argument("--title", default=None)
    a = ap.parse_args()
    rows = []
    with open(a.log) as f:
        for i, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as e:
                sys.exit("%s: line %d: not JSON (%s)" % (a.log, i, e))
    tr = [r for r in rows if r.get("split") == "train"]
    va = [r for r in rows if r.get("split") == "valid"]
    if not tr:
        sys.exit("%s: no train rows" % a.log)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    u = lambda rs: [r["update"] for r in rs]
    val = lambda rs, k: [r.get(k) if r.get(k) is not None else float("nan") for r in rs]
    ax[0].plot(u(tr), val(tr, "loss_m"), label="train loss_m")
    ax[0].plot(u(tr), val(tr, "loss_topic"), label="train topic loss", alpha=0.7)
    if va:
        ax[0].plot(u(va), val(va, "loss_m"), "o-", label="valid loss_m")
        ax[0].plot(u(va), val(va, "loss_topic"), "s--", label="valid topic loss")
    ax[0].set_xlabel("update")
    ax[0].set_ylabel("cross-entropy (nats)")
    ax[0].legend()
    ax[0].grid(alpha=0.3)
    ax[1].plot(u(tr), val(tr, "acc_m"), label="train acc_m")
    ax[1].plot(u(tr), val(tr, "acc_topic"), label="train topic acc", alpha=0.7)
    if va:
        ax[1].plot(u(va), val(va, "acc_m"), "o-", label="valid acc_m")
        ax[1].plot(u(va), val(va, "acc_topic"), "s--", label="valid topic acc")
    ax[1].set_xlabel("update")
    ax[1].set_ylabel("accuracy")
    ax[1].legend()
    ax[1].grid(alpha=0.3)
    fig.suptitle(a.title or a.log)
    fig.tight_layout()
    fig.savefig(a.out, dpi=100)
    print("%s: %d train rows, %d valid rows -> %s" % (a.log, len(tr), len(va), a.out))


if __name__ == "__main__":
    main()
