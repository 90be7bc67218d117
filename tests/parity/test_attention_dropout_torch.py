"""Attention with dropout on the probabilities (attention_train / attention_backward) vs PyTorch
in float64: A = softmax(scale q k^T over the valid keys), A' = A * M / (1 - p), out = A' v (the
order of torchaudio's SelfAttention: softmax -> F.dropout -> @ v), gradients by autograd.
The mask M is rebuilt here from the documented rule (kernels/ops.h, kernels/dropout_mask.h) with
a numpy port of Philox4x32-10 (checked against the Random123 known-answer vectors): element
i = ((b*H + h)*T + t)*T + s is kept iff Philox4x32(seed, i // 4)[i % 4] >= p * 2^32.
Drives tests/tools/attn_dump. Tolerance 1e-5 (relative L2; TOL_F32_OP of tests/tolerances.h): our float32
sums of <= 300 products against a float64 oracle give ~1e-7."""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from hubert_testlib import rel_err, test_seed  # noqa: E402

TOOL = os.path.join(os.getcwd(), "attn_dump")
if not os.path.exists(TOOL):
    print(f"SKIP: {TOOL} not built")
    sys.exit(77)
TOL = 1e-5
FAIL = []
M32 = np.uint64(0xFFFFFFFF)


def check(name, ok, msg):
    print(f"  {name:40s} {msg}{'' if ok else '  <-- FAIL'}")
    if not ok:
        FAIL.append(name)


def philox(seed, ctr):
    """Philox4x32-10 words for counters (ctr, 0) (uint64 array), key = seed: (4, n) uint64."""
    c0, c1 = ctr & M32, ctr >> np.uint64(32)
    c2 = np.zeros_like(c0)
    c3 = np.zeros_like(c0)
    k0, k1 = seed & 0xFFFFFFFF, seed >> 32
    for _ in range(10):
        p0 = np.uint64(0xD2511F53) * c0
        p1 = np.uint64(0xCD9E8D57) * c2
        c0, c1, c2, c3 = ((p1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0), p1 & M32,
                          (p0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1), p0 & M32)
        k0, k1 = (k0 + 0x9E3779B9) & 0xFFFFFFFF, (k1 + 0xBB67AE85) & 0xFFFFFFFF
    return np.stack([c0, c1, c2, c3])


def philox_kat():
    # Random123 kat_vectors, philox4x32 10 rounds, counter words (c0, c1) and key only, since
    # our counter words 2 and 3 (the stream) are 0 here.
    got = philox(0, np.array([0], dtype=np.uint64))[:, 0]
    want = [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    check("Philox4x32-10 known answer (0, 0)", [int(x) for x in got] == want,
          " ".join(f"{int(x):08x}" for x in got))


def keep_mask(seed, p, n):
    i = np.arange(n, dtype=np.uint64)
    words = philox(seed, i >> np.uint64(2))
    w = words[(i & np.uint64(3)).astype(np.int64), np.arange(n)]
    thr = int(float(np.float32(p)) * 4294967296.0)
    return w >= np.uint64(thr)


def case(rng, d, B, T, H, Dh, p, padded):
    C = H * Dh
    q, k, v, dout = (rng.standard_normal((B, T, C)).astype(np.float32) for _ in range(4))
    lens = np.array([T if (b == 0 or not padded) else int(rng.integers(1, T)) for b in range(B)], dtype=np.int32)
    scale = np.float32(1.0 / np.sqrt(Dh))
    seed = int(rng.integers(0, 2**63)) * 2 + int(rng.integers(0, 2))
    for name, a in (("q", q), ("k", k), ("v", v), ("dout", dout), ("len", lens)):
        a.tofile(os.path.join(d, name + ".bin"))
    with open(os.path.join(d, "cfg.txt"), "w") as f:
        f.write(f"{B} {T} {H} {Dh} {float(scale)!r} {float(np.float32(p))!r} {seed}\n")
    r = subprocess.run([TOOL, d], capture_output=True, text=True)
    if r.returncode:
        print(r.stdout, r.stderr)
        raise SystemExit("attn_dump failed")

    def load(name, shape):
        return np.fromfile(os.path.join(d, f"out_{name}.bin"), dtype=np.float32).reshape(shape)

    keep = keep_mask(seed, p, B * H * T * T).reshape(B, H, T, T)
    t = [torch.tensor(a, dtype=torch.float64).view(B, T, H, Dh).transpose(1, 2).requires_grad_() for a in (q, k, v)]
    s = (t[0] @ t[1].transpose(-1, -2)) * float(scale)
    valid = torch.arange(T)[None, :] < torch.tensor(lens)[:, None]  # (B, S)
    s = s.masked_fill(~valid[:, None, None, :], float("-inf"))
    A = torch.softmax(s, dim=-1)
    Ad = A * torch.tensor(keep, dtype=torch.float64) / (1.0 - float(np.float32(p)))
    out = (Ad @ t[2]).transpose(1, 2).reshape(B, T, C)
    out.backward(torch.tensor(dout, dtype=torch.float64))
    lse = torch.logsumexp(s, dim=-1)
    print(f"B{B} T{T} H{H} Dh{Dh} p {p} seed {seed} len {lens.tolist()} keep rate {keep.mean():.4f}")
    res = {"out": (load("out", (B, T, C)), out.detach().numpy()), "lse": (load("lse", (B, H, T)), lse.detach().numpy())}
    for name, x in zip(("dq", "dk", "dv"), t):
        res[name] = (load(name, (B, T, C)), x.grad.transpose(1, 2).reshape(B, T, C).numpy())
    for name, (ours, ref) in res.items():
        e = rel_err(ours, ref)
        check(name + " vs torch float64", e <= TOL, f"rel.err {e:.3e} (tol {TOL:.0e})")


def main():
    seed = test_seed()
    rng = np.random.default_rng(seed)
    philox_kat()
    with tempfile.TemporaryDirectory() as d:
        case(rng, d, 2, 13, 3, 8, 0.3, False)
        case(rng, d, 3, 150, 2, 16, 0.3, True)   # two query blocks (128), padded keys
        case(rng, d, 1, 40, 4, 8, 0.1, True)
        case(rng, d, 2, 20, 2, 8, 0.0, True)     # p = 0: plain attention
    if FAIL:
        print("FAILED:", ", ".join(FAIL))
        sys.exit(1)
    print("test_attention_dropout_torch: all checks passed")


if __name__ == "__main__":
    main()
