"""Training heads vs PyTorch/torchaudio: masked-prediction head (torchaudio LogitGenerator /
_compute_logits + hubert_loss), feature penalty, topic head (mean-pool + [MLP] + F.cross_entropy),
CTC (F.ctc_loss, sum and mean), greedy decoding (brute force), and span-mask statistics vs
torchaudio's _compute_mask_indices. Drives tests/tools/heads_dump on random inputs."""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
from torchaudio.models.wav2vec2 import components as C

sys.path.insert(0, os.path.dirname(__file__))
from hubert_testlib import rel_err, test_seed  # noqa: E402

TOOL = os.path.join(os.getcwd(), "heads_dump")
if not os.path.exists(TOOL):
    print(f"SKIP: {TOOL} not built")
    sys.exit(77)
FAIL = []


def check(name, err, tol):
    ok = err <= tol
    print(f"  {name:44s} rel.err {err:.3e} (tol {tol:.0e}){'' if ok else '  <-- FAIL'}")
    if not ok:
        FAIL.append(name)


def check_eq(name, a, b):
    ok = a == b
    print(f"  {name:44s} ours {a} torch {b}{'' if ok else '  <-- FAIL'}")
    if not ok:
        FAIL.append(name)


def save(d, name, arr, dt):
    np.ascontiguousarray(arr, dtype=dt).tofile(os.path.join(d, name + ".bin"))


def load(d, name, dt, shape=None):
    a = np.fromfile(os.path.join(d, "out_" + name + ".bin"), dtype=dt)
    return a.reshape(shape) if shape is not None else a


def run(mode, d, cfg):
    with open(os.path.join(d, "cfg.txt"), "w") as f:
        f.write(" ".join(str(v) for v in cfg) + "\n")
    r = subprocess.run([TOOL, mode, d], capture_output=True, text=True)
    if r.returncode:
        print(r.stdout, r.stderr)
        raise SystemExit(f"heads_dump {mode} failed")


def pred_case(rng, d, B, T, H, Fd, Ks, untie, uw):
    S = len(Ks)
    Fout = Fd * S if untie else Fd
    x = rng.standard_normal((B, T, H)).astype(np.float32)
    w = (rng.standard_normal((Fout, H)) * 0.3).astype(np.float32)
    b = (rng.standard_normal(Fout) * 0.1).astype(np.float32)
    emb = rng.random((sum(Ks), Fd)).astype(np.float32)
    labels = np.stack([rng.integers(0, K, (B, T)) for K in Ks]).astype(np.int32)
    lens = rng.integers(T // 2, T + 1, B).astype(np.int32)
    lens[0] = T
    mask = np.zeros((B, T), np.uint8)
    for i in range(B):
        m = rng.random(lens[i]) < 0.5
        m[0] = True
        mask[i, :lens[i]] = m
    for n, a, dt in [("x", x, np.float32), ("w", w, np.float32), ("b", b, np.float32), ("emb", emb, np.float32),
                     ("labels", labels, np.int32), ("mask", mask, np.uint8), ("len", lens, np.int32)]:
        save(d, n, a, dt)
    run("pred", d, [B, T, H, Fd, S, int(untie), 1.0, uw] + list(Ks))
    # torch: torchaudio's LogitGenerator math per label set + hubert_loss (feature term separately)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    et = torch.tensor(emb, requires_grad=True)
    pad = torch.arange(T)[None, :] >= torch.tensor(lens)[:, None]
    mk = torch.tensor(mask.astype(bool))
    mask_m = mk & ~pad
    mask_u = ~pad & ~mask_m
    proj = F.linear(xt, wt, bt)
    projs = proj.chunk(S, dim=-1) if untie else [proj] * S
    embs = et.split(list(Ks), 0)
    total = 0.0
    lm, lu, cm, cu, logits = [], [], [], [], []
    for s in range(S):
        lab = torch.tensor(labels[s]).long()
        logit_m = C._compute_logits(projs[s][mask_m], lab[mask_m], embs[s])
        logit_u = C._compute_logits(projs[s][mask_u], lab[mask_u], embs[s])
        ce_m = F.cross_entropy(logit_m, torch.zeros(logit_m.shape[0], dtype=torch.long), reduction="sum")
        ce_u = F.cross_entropy(logit_u, torch.zeros(logit_u.shape[0], dtype=torch.long), reduction="sum")
        total = total + ce_m + (uw * ce_u if uw else 0.0)
        lm.append(ce_m.item())
        lu.append(ce_u.item())
        # fairseq's accuracy: argmax == 0 (the positive) and not also argmin (all equal)
        for lg, acc in [(logit_m, cm), (logit_u, cu)]:
            mx, mn = lg.argmax(-1) == 0, lg.argmin(-1) == 0
            acc.append(int(mx.sum() - (mx & mn).sum()))
        # K-way view: our logits (N, K) = torchaudio's logits[:, 1:] with the positive's slot restored
        plain = torch.cosine_similarity(projs[s][mask_m].unsqueeze(1), embs[s].unsqueeze(0), dim=-1) / 0.1
        plain_u = torch.cosine_similarity(projs[s][mask_u].unsqueeze(1), embs[s].unsqueeze(0), dim=-1) / 0.1
        logits.append(torch.cat([plain, plain_u]) if uw else plain)
        pos_slot = plain.gather(1, lab[mask_m][:, None])
        check(f"pred set {s}: K-way slot == torchaudio positive", rel_err(pos_slot[:, 0].detach(), logit_m[:, 0].detach()), 1e-6)
    total.backward()
    st = load(d, "stats", np.float64)
    check("pred loss", rel_err([st[0]], [float(total)]), 1e-5)
    check_eq("pred count_m", int(st[1]), int(mask_m.sum()))
    check_eq("pred count_u", int(st[2]), int(mask_u.sum()) if uw else 0)
    for s in range(S):
        check(f"pred loss_m set {s}", rel_err([st[4 + 4 * s]], [lm[s]]), 1e-5)
        if uw:
            check(f"pred loss_u set {s}", rel_err([st[5 + 4 * s]], [lu[s]]), 1e-5)
            check_eq(f"pred correct_u set {s}", int(st[7 + 4 * s]), cu[s])
        check_eq(f"pred correct_m set {s}", int(st[6 + 4 * s]), cm[s])
        ours = load(d, f"logits{s}", np.float32)
        check(f"pred logits set {s}", rel_err(ours, logits[s].detach().numpy().ravel()), 1e-5)
    check("pred dx", rel_err(load(d, "dx", np.float32), xt.grad.numpy().ravel()), 1e-4)
    check("pred d final_proj.weight", rel_err(load(d, "dw", np.float32), wt.grad.numpy().ravel()), 1e-4)
    check("pred d final_proj.bias", rel_err(load(d, "db", np.float32), bt.grad.numpy().ravel()), 1e-4)
    check("pred d label_embs", rel_err(load(d, "demb", np.float32), et.grad.numpy().ravel()), 1e-4)
    # feature penalty with hubert_loss's scaling: loss = pen * 10 * logit_m.shape[0]
    x2 = torch.tensor(x, requires_grad=True)
    pen = x2.float().pow(2).mean()
    (pen * 10.0 * int(mask_m.sum())).backward()
    check("feature penalty", rel_err(load(d, "pen", np.float64), [pen.item()]), 1e-6)
    check("feature penalty gradient", rel_err(load(d, "dpen", np.float32), x2.grad.numpy().ravel()), 1e-5)


def topic_case(rng, d, B, T, H, K, Hh, weight, mean):
    x = rng.standard_normal((B, T, H)).astype(np.float32)
    lens = rng.integers(1, T + 1, B).astype(np.int32)
    top = rng.integers(0, K, B).astype(np.int32)
    Hin = Hh or H
    hw = (rng.standard_normal((Hh, H)) * 0.3).astype(np.float32) if Hh else None
    hb = (rng.standard_normal(Hh) * 0.1).astype(np.float32) if Hh else None
    w = (rng.standard_normal((K, Hin)) * 0.3).astype(np.float32)
    b = (rng.standard_normal(K) * 0.1).astype(np.float32)
    for n, a, dt in [("x", x, np.float32), ("len", lens, np.int32), ("topics", top, np.int32), ("w", w, np.float32),
                     ("b", b, np.float32)] + ([("hw", hw, np.float32), ("hb", hb, np.float32)] if Hh else []):
        save(d, n, a, dt)
    run("topic", d, [B, T, H, K, Hh, weight, int(mean)])
    xt = torch.tensor(x, requires_grad=True)
    ts = {k: torch.tensor(v, requires_grad=True) for k, v in [("w", w), ("b", b), ("hw", hw), ("hb", hb)] if v is not None}
    valid = (torch.arange(T)[None, :] < torch.tensor(lens)[:, None]).float()
    pooled = (xt * valid[..., None]).sum(1) / torch.tensor(lens, dtype=torch.float32)[:, None]
    h = F.gelu(F.linear(pooled, ts["hw"], ts["hb"])) if Hh else pooled
    z = F.linear(h, ts["w"], ts["b"])
    loss = weight * F.cross_entropy(z, torch.tensor(top).long(), reduction="mean" if mean else "sum")
    loss.backward()
    st = load(d, "stats", np.float64)
    tag = f"topic (MLP {Hh}, {'mean' if mean else 'sum'})"
    check(f"{tag} loss", rel_err([st[0]], [loss.item()]), 1e-5)
    check_eq(f"{tag} correct", int(st[1]), int((z.argmax(-1) == torch.tensor(top)).sum()))
    check(f"{tag} dx", rel_err(load(d, "dx", np.float32), xt.grad.numpy().ravel()), 1e-4)
    for k, n in [("w", "dw"), ("b", "db")] + ([("hw", "dhw"), ("hb", "dhb")] if Hh else []):
        check(f"{tag} d{k}", rel_err(load(d, n, np.float32), ts[k].grad.numpy().ravel()), 1e-4)


def brute_greedy(lg, n):
    out, prev = [], -1
    for t in range(n):
        a = int(np.argmax(lg[t]))
        if a != prev and a != 0:
            out.append(a)
        prev = a
    return out


def ctc_case(rng, d, B, T, H, V, S, mean):
    x = rng.standard_normal((B, T, H)).astype(np.float32)
    w = (rng.standard_normal((V, H)) * 0.5).astype(np.float32)
    b = (rng.standard_normal(V) * 0.1).astype(np.float32)
    il = rng.integers(T // 2, T + 1, B).astype(np.int32)
    il[0] = T
    tl = np.array([rng.integers(0, min(S, (il[i] - 1) // 2) + 1) for i in range(B)], np.int32)
    tl[0] = min(S, (T - 1) // 2)
    tg = rng.integers(1, V, (B, S)).astype(np.int32)
    if S >= 2:
        tg[0, 1] = tg[0, 0]  # a repeated label (needs a blank between)
    for n, a, dt in [("x", x, np.float32), ("w", w, np.float32), ("b", b, np.float32), ("in_len", il, np.int32),
                     ("tgt_len", tl, np.int32), ("targets", tg, np.int32)]:
        save(d, n, a, dt)
    run("ctc", d, [B, T, H, V, S, int(mean)])
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    z = F.linear(xt, wt, bt)
    lp = z.log_softmax(-1).transpose(0, 1)
    loss = F.ctc_loss(lp, torch.tensor(tg).long(), torch.tensor(il).long(), torch.tensor(tl).long(), blank=0,
                      reduction="mean" if mean else "sum")
    loss.backward()
    tag = f"ctc ({'mean' if mean else 'sum'})"
    check(f"{tag} loss", rel_err(load(d, "loss", np.float64), [loss.item()]), 1e-5)
    check(f"{tag} dx", rel_err(load(d, "dx", np.float32), xt.grad.numpy().ravel()), 1e-4)
    check(f"{tag} d ctc_head.weight", rel_err(load(d, "dw", np.float32), wt.grad.numpy().ravel()), 1e-4)
    check(f"{tag} d ctc_head.bias", rel_err(load(d, "db", np.float32), bt.grad.numpy().ravel()), 1e-4)
    lg = load(d, "logits", np.float32, (B, T, V))
    dec, dl = load(d, "dec", np.int32, (B, T)), load(d, "dec_len", np.int32)
    ok = all(list(dec[i, :dl[i]]) == brute_greedy(lg[i], il[i]) for i in range(B))
    check_eq(f"{tag} greedy decoding == brute force ({B} utts)", ok, True)


def mask_case(rng, d, seed, B, T, lens, prob, length, draws):
    save(d, "len", lens, np.int32)
    run("mask", d, [B, T, prob, length, 2, draws, seed])
    ours = load(d, "frac", np.float64)
    m0 = load(d, "mask", np.uint8, (B, T))
    pad = np.arange(T)[None, :] >= lens[:, None]
    check_eq("mask: padded frames never masked", int(m0[pad].sum()), 0)
    check_eq("mask: rows share one count", len(set(m0.sum(1).tolist())), 1)
    torch.manual_seed(seed)
    padm = torch.tensor(pad)
    ref = np.array([C._compute_mask_indices((B, T), padm, prob, length, min_masks=2).numpy().sum() / lens.sum()
                    for _ in range(draws)])
    # Same distribution: means within 4 standard errors, standard deviations within 25%.
    se = np.sqrt(ours.var() / draws + ref.var() / draws)
    print(f"  mask fraction: ours {ours.mean():.4f} +- {ours.std():.4f}, torchaudio {ref.mean():.4f} +- {ref.std():.4f}"
          f" ({draws} draws, B {B}, T {T})")
    check("mask: mean masked fraction (in std errors/4)", abs(ours.mean() - ref.mean()) / max(se, 1e-12) / 4, 1.0)
    check("mask: std of masked fraction", abs(ours.std() - ref.std()) / max(ref.std(), 1e-12), 0.25)


def main():
    seed = test_seed()
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as d:
        pred_case(rng, d, B=3, T=37, H=24, Fd=16, Ks=[13], untie=False, uw=0.0)
        pred_case(rng, d, B=2, T=29, H=20, Fd=8, Ks=[11, 7], untie=True, uw=0.5)
        pred_case(rng, d, B=2, T=300, H=16, Fd=8, Ks=[9, 5], untie=False, uw=1.0)  # > one 256-row block
        topic_case(rng, d, B=5, T=23, H=16, K=7, Hh=0, weight=1.0, mean=True)
        topic_case(rng, d, B=4, T=19, H=12, K=5, Hh=10, weight=0.7, mean=False)
        ctc_case(rng, d, B=4, T=40, H=12, V=9, S=10, mean=False)
        ctc_case(rng, d, B=3, T=30, H=10, V=6, S=8, mean=True)
        mask_case(rng, d, seed, B=4, T=400, lens=np.array([400, 350, 237, 120], np.int32), prob=0.8, length=10,
                  draws=300)
        mask_case(rng, d, seed + 1, B=3, T=60, lens=np.array([60, 25, 12], np.int32), prob=0.65, length=10, draws=400)
    if FAIL:
        print(f"FAILED: {', '.join(FAIL)} (seed {seed})")
        return 1
    print("all heads checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
