"""AdamW + global-norm clipping + LR schedules vs PyTorch.

tests/tools/optim_tool runs our optimizer (train/optim.c, float32) for 20 steps on random
parameters and gradients laid out like the flat buffer (segments with padding between them,
some without weight decay), with the settings of a trainer config. The oracle is
torch.optim.AdamW in float64 from the same float32 start, one parameter group per segment
(weight_decay 0 where the segment has decay 0), gradients clipped by
torch.nn.utils.clip_grad_norm_, and the learning rate set before each step from the schedule
written here in closed form (fairseq's formulas). A step whose gradient holds a NaN is skipped
by both (fairseq: no update, the update counter does not advance).

Tolerance 1e-6 (relative L2 over all parameters, every step): ours rounds the parameters to
float32 after each update (relative 2^-24 ~ 6e-8 per element and step), the oracle does not;
over 20 steps these roundings add up like a random walk, ~sqrt(20) * 6e-8 / sqrt(3) ~ 1.6e-7,
and 20 * 6e-8 = 1.2e-6 in the worst case where all roundings align. The update itself
(lr * m / (sqrt(v) + eps), float32 with a relative error of a few 1e-7) changes p by ~lr, so
its error is ~1e-3 below that. Norms and rates are compared with the same 1e-6 (float32 output).
"""
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubert_testlib as tl  # noqa: E402

try:
    import torch
except ImportError:
    print("skip: torch not available")
    sys.exit(77)

TOL = 1e-6
STEPS = 20


def find_tool():
    for cand in ["./optim_tool", os.path.join(os.path.dirname(os.path.abspath(tl.HUBERT_BIN)), "tests", "optim_tool")]:
        if os.path.exists(cand):
            return os.path.abspath(cand)
    print("optim_tool not built")
    sys.exit(1)


def sched_lr(kind, n, lr, warmup, total, end_lr=0.0, power=1.0, ratio=(0.1, 0.4, 0.5), init_s=0.01, final_s=0.01):
    """fairseq's schedules, written independently of the C code."""
    if kind in ("polynomial_decay", "cosine", "fixed") and warmup > 0 and n <= warmup:
        return lr * n / warmup
    if kind == "polynomial_decay":
        if n >= total:
            return end_lr
        return (lr - end_lr) * (1 - (n - warmup) / (total - warmup)) ** power + end_lr
    if kind == "cosine":
        p = min(1.0, (n - warmup) / (total - warmup))
        return end_lr + (lr - end_lr) * 0.5 * (1 + math.cos(math.pi * p))
    if kind == "fixed":
        return lr
    w, h, d = int(total * ratio[0]), int(total * ratio[1]), int(total * ratio[2])
    init, peak, final = init_s * lr, lr, final_s * lr
    if n < w:
        return init + (peak - init) / w * n
    if n < w + h:
        return peak
    if n <= w + h + d:
        return peak * math.exp(math.log(final_s) / d * (n - w - h))
    return final


def main():
    seed = tl.test_seed()
    rng = np.random.default_rng(seed)
    tool = find_tool()
    # Segments like the flat layout: 64-float aligned offsets, padding between tensors.
    sizes = [int(x) for x in rng.integers(1, 700, size=7)]
    segs, off = [], 0
    for i, n in enumerate(sizes):
        segs.append((off, n, 1 if i % 3 != 1 else 0))
        off = (off + n + 63) // 64 * 64
    total = off
    param = np.zeros(total, np.float32)
    pad_value = np.float32(123.0)  # padding must stay untouched
    param[:] = pad_value
    for o, n, _ in segs:
        param[o:o + n] = rng.standard_normal(n).astype(np.float32)
    grads = np.zeros((STEPS, total), np.float32)
    for s in range(STEPS):
        amp = 10.0 ** rng.uniform(-2, 1.5)  # some steps clip (norm > clip_norm), some do not
        for o, n, _ in segs:
            grads[s, o:o + n] = (amp * rng.standard_normal(n)).astype(np.float32)
    nan_step = int(rng.integers(3, STEPS - 3))
    o0, n0, _ = segs[-1]
    grads[nan_step, o0 + n0 // 2] = np.nan
    grad_scale = rng.uniform(0.25, 2.0, size=STEPS).astype(np.float32)
    seg_arr = np.array(segs, np.float32)

    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        inp = os.path.join(tmp, "in.safetensors")
        tl.write_safetensors(inp, {"param": param, "grad": grads, "segments": seg_arr, "grad_scale": grad_scale})
        cfg = os.path.join(tmp, "c.yaml")
        with open(cfg, "w") as f:
            f.write("optimizer:\n  adam_betas: (0.9,0.98)\n  adam_eps: 1e-06\n  weight_decay: 0.01\n")
        lr = float(10.0 ** rng.uniform(-3.3, -2))
        clip = float(rng.uniform(5, 40))
        cases = [
            ("polynomial_decay", dict(warmup=5, power=1.0, end_lr=0.0), []),
            ("polynomial_decay", dict(warmup=4, power=2.0, end_lr=lr / 10), ["lr_scheduler.power=2", f"lr_scheduler.end_learning_rate={lr / 10!r}",
                                                                              "lr_scheduler.warmup_updates=4"]),
            ("tri_stage", dict(warmup=0, ratio=(0.2, 0.3, 0.5), init_s=0.05, final_s=0.02),
             ["lr_scheduler.phase_ratio=[0.2,0.3,0.5]", "lr_scheduler.init_lr_scale=0.05", "lr_scheduler.final_lr_scale=0.02"]),
            ("cosine", dict(warmup=3, end_lr=lr / 20), ["lr_scheduler.warmup_updates=3", f"lr_scheduler.end_learning_rate={lr / 20!r}"]),
            ("fixed", dict(warmup=2), ["lr_scheduler.warmup_updates=2"]),
        ]
        for ci, (kind, sk, extra) in enumerate(cases):
            out = os.path.join(tmp, f"out{ci}.safetensors")
            total_upd = STEPS - 4  # the decay ends inside the run: the end/final phases are reached
            ov = [f"lr_scheduler._name={kind}", f"optimization.lr=[{lr!r}]", f"optimization.clip_norm={clip!r}",
                  f"optimization.max_update={total_upd}", "lr_scheduler.warmup_updates=5"] + extra
            args = [tool, cfg, inp, out] + (["--resume-at", str(STEPS // 2)] if ci % 2 else []) + ov
            r = subprocess.run(args, capture_output=True, text=True)
            if r.returncode:
                print(f"optim_tool failed: {r.stderr}")
                return 1
            res = tl.read_safetensors(out)

            # Oracle: float64 torch from the same float32 start.
            tp = [torch.tensor(param[o:o + n].astype(np.float64), requires_grad=True) for o, n, _ in segs]
            groups = [{"params": [t], "weight_decay": 0.01 if d else 0.0} for t, (_, _, d) in zip(tp, segs)]
            opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6)
            n_upd = 0
            worst = {"param": 0.0, "lr": 0.0, "norm": 0.0}
            for s in range(STEPS):
                want_lr = sched_lr(kind, n_upd, lr, sk.get("warmup", 5), total_upd, sk.get("end_lr", 0.0), sk.get("power", 1.0),
                                   sk.get("ratio", (0.1, 0.4, 0.5)), sk.get("init_s", 0.01), sk.get("final_s", 0.01))
                for t, (o, n, _) in zip(tp, segs):
                    t.grad = torch.tensor(grads[s, o:o + n].astype(np.float64) * float(grad_scale[s]))
                norm = float(torch.nn.utils.clip_grad_norm_(tp, clip))
                skipped = not math.isfinite(norm)
                if int(res["skipped"][s]) != int(skipped):
                    print(f"  {kind}: step {s}: skipped {int(res['skipped'][s])}, torch {int(skipped)}  <-- FAIL")
                    failures += 1
                if not skipped:
                    for gr in opt.param_groups:
                        gr["lr"] = want_lr
                    opt.step()
                    n_upd += 1
                    worst["norm"] = max(worst["norm"], abs(float(res["norm"][s]) - norm) / norm)
                worst["lr"] = max(worst["lr"], abs(float(res["lr"][s]) - want_lr) / max(want_lr, 1e-30) if want_lr else abs(float(res["lr"][s])))
                ours = res["param"][s]
                ref = np.concatenate([t.detach().numpy() for t in tp])
                mine = np.concatenate([ours[o:o + n] for o, n, _ in segs])
                worst["param"] = max(worst["param"], tl.rel_err(mine, ref))
                mask = np.ones(total, bool)
                for o, n, _ in segs:
                    mask[o:o + n] = False
                if np.any(ours[mask] != pad_value):
                    print(f"  {kind}: step {s}: padding between tensors was modified  <-- FAIL")
                    failures += 1
            clipped = int(np.sum(res["clip_coef"] < 1))
            resumed = " (state saved/loaded at step %d)" % (STEPS // 2) if ci % 2 else ""
            for key, val in worst.items():
                bad = not (val <= TOL)
                failures += bad
                print(f"  {kind:17s} {key:6s} max rel.err {val:.3e} (tol {TOL:.0e}){resumed}{'  <-- FAIL' if bad else ''}")
            print(f"  {kind:17s} {clipped} of {STEPS} steps clipped, NaN step {nan_step} skipped, {n_upd} updates, lr {lr:.3e}, clip {clip:.2f}")
            if clipped == 0 or clipped == STEPS - 1:
                print("  note: clipping was not exercised both ways in this run")
    if failures:
        print(f"test_optim_torch: {failures} failures (seed {seed})")
        return 1
    print("test_optim_torch: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
