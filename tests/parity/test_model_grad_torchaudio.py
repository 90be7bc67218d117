"""Gradient parity of the trunk's backward (models/hubert_train.c) with torchaudio 0.13 autograd.

A torchaudio wav2vec2_model with random weights (tests/parity/hubert_testlib.py) plus a
masked_spec_embed vector is written as a model folder. On a padded batch with an explicit frame
mask, torchaudio computes (hubert_pretrain_model's order):
    f = feature_extractor(wave, lengths)          (feature_grad_mult: gradient hook f.grad * mult)
    x, attn = encoder._preprocess(f, flen)        (projection, padded frames zeroed)
    x[mask] = masked_spec_embed
    h = encoder.transformer(x, attn)
    loss = sum_valid(h * R) + 0.3 * sum_valid(f^2)
and loss.backward() (in float64). tests/tools/grad_dump runs our forward + backward on the same inputs and writes
every parameter gradient; every tensor's gradient must agree: relative L2 error < 1e-4
(TOL_F32_MODEL: fp32 on both sides, different summation orders). Cases: group-norm post-LN with
feature_grad_mult 0.1 and an even positional kernel; layer-norm pre-LN with conv bias, odd kernel
and mult 1.
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubert_testlib as tl  # noqa: E402

TOL = 1e-4  # TOL_F32_MODEL
PEN = 0.3

SMALL_CONV = [(32, 10, 5), (32, 3, 2), (32, 3, 2), (32, 3, 2), (32, 3, 2), (32, 2, 2), (32, 2, 2)]
CASES = [
    dict(name="group-norm post-LN, even pos kernel, feature_grad_mult 0.1", norm="group", conv=SMALL_CONV,
         conv_bias=False, hidden=64, layers=2, heads=4, ffn=96, pos_k=16, pos_g=4, pre_ln=False,
         lens=[8000, 5123, 3337], mult=0.1),
    dict(name="layer-norm pre-LN, conv bias, odd pos kernel, feature_grad_mult 1", norm="layer", conv=SMALL_CONV,
         conv_bias=True, hidden=48, layers=2, heads=3, ffn=80, pos_k=15, pos_g=3, pre_ln=True, lens=[6400, 4000],
         mult=1.0),
]


def find_tool():
    for cand in ["./grad_dump", os.path.join(os.path.dirname(os.path.abspath(tl.HUBERT_BIN)), "tests", "grad_dump")]:
        if os.path.exists(cand):
            return cand
    return None


def torch_grads(model, mask_emb, waves, lens, mask, R, mult):
    model.zero_grad()
    mask_emb.grad = None
    f, flen = model.feature_extractor(waves, lens)
    if mult != 1.0:
        f.register_hook(lambda g: g * mult)
    T = f.shape[1]
    valid = (torch.arange(T)[None, :] < flen[:, None]).float()  # (B, T)
    x, attn = model.encoder._preprocess(f, flen)
    x = torch.where(mask[:, :, None], mask_emb.expand_as(x), x)
    h = model.encoder.transformer(x, attention_mask=attn)
    loss = (h * R * valid[:, :, None]).sum() + PEN * (f.pow(2) * valid[:, :, None]).sum()
    loss.backward()
    grads = {tl.ta_to_hf_name(n): p.grad.detach().numpy() for n, p in model.named_parameters()}
    grads["masked_spec_embed"] = mask_emb.grad.detach().numpy()
    return grads, h.detach().numpy(), f.detach().numpy(), flen.numpy()


def run_case(case, seed, tmp, tool):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model = tl.build_torchaudio_model(case, seed)
    folder = os.path.join(tmp, "model")
    tl.save_hf_folder(model, case, folder)
    mask_emb = torch.nn.Parameter(torch.rand(case["hidden"]))
    st = tl.read_safetensors(os.path.join(folder, "model.safetensors"))
    st["masked_spec_embed"] = mask_emb.detach().numpy()
    tl.write_safetensors(os.path.join(folder, "model.safetensors"), st)

    lens = case["lens"]
    B, L = len(lens), max(lens)
    waves = np.zeros((B, L), dtype=np.float32)
    for i, n in enumerate(lens):
        waves[i, :n] = tl.speechlike(rng, n).astype(np.float32) / 32768.0
    with torch.no_grad():
        _, flen = model.feature_extractor(torch.from_numpy(waves), torch.tensor(lens))
    T = int(model.feature_extractor(torch.from_numpy(waves[:1]), None)[0].shape[1])
    mask = np.zeros((B, T), dtype=bool)
    for b in range(B):  # ~40% of the valid frames, in spans
        for t0 in rng.choice(int(flen[b]), size=max(1, int(flen[b]) // 8), replace=False):
            mask[b, t0:min(t0 + 3, int(flen[b]))] = True
    R = rng.standard_normal((B, T, case["hidden"])).astype(np.float32)

    # The oracle runs in float64: Debian's torch 1.13 float32 grouped-conv backward returns garbage
    # (~1e16) for the odd-kernel positional conv of case 2 (checked against its own float64).
    model.train(False)
    model.double()
    me64 = torch.nn.Parameter(mask_emb.detach().double())
    ref, h_ref, f_ref, flen = torch_grads(model, me64, torch.from_numpy(waves).double(), torch.tensor(lens),
                                          torch.from_numpy(mask), torch.from_numpy(R).double(), case["mult"])

    inp = os.path.join(tmp, "inputs.safetensors")
    tl.write_safetensors(inp, {"wave": waves, "lengths": np.array(lens, dtype=np.float32),
                               "mask": mask.astype(np.float32), "r": R})
    out = os.path.join(tmp, "grads.safetensors")
    p = subprocess.run([tool, folder, inp, out, str(case["mult"]), str(PEN)], capture_output=True, text=True)
    if p.returncode != 0:
        print(p.stdout, p.stderr)
        return False
    ours = tl.read_safetensors(out)
    ok = True
    worst, worst_name = 0.0, ""
    valid = np.arange(T)[None, :] < flen[:, None]
    e_h = tl.rel_err(ours["output.hidden"][valid], h_ref[valid])
    e_f = tl.rel_err(ours["output.features"], f_ref)
    print(f"  forward: hidden rel.err {e_h:.2e}, features {e_f:.2e}; masked frames {int(mask.sum())}/{int(valid.sum())}")
    ok &= e_h < TOL and e_f < TOL
    # Tensors whose exact gradient is 0 (k_proj.bias: softmax is invariant to a per-query shift)
    # are judged against a floor of 1e-3 x the median gradient norm instead of their own norm.
    floor = 1e-3 * float(np.median([np.linalg.norm(g) for g in ref.values()]))
    for name, g in ref.items():
        if name not in ours:
            print(f"  missing gradient {name}")
            ok = False
            continue
        e = float(np.linalg.norm(ours[name].astype(np.float64) - g) / max(np.linalg.norm(g), floor))
        if e > worst:
            worst, worst_name = e, name
        if not e < TOL:
            print(f"  {name}: rel.err {e:.3e} > {TOL:.0e} (|ref| {np.linalg.norm(g):.3e})")
            ok = False
    print(f"  {case['name']}: {len(ref)} gradient tensors, worst rel.err {worst:.3e} ({worst_name})  "
          f"{'ok' if ok else 'FAIL'}")
    return ok


def main():
    tool = find_tool()
    if tool is None:
        print("grad_dump tool not built (tests/tools/grad_dump.c); skipping")
        return 77
    seed = tl.test_seed()
    torch.set_num_threads(2)
    ok = True
    for i, case in enumerate(CASES):
        tmp = tempfile.mkdtemp()
        try:
            ok &= run_case(case, seed + i, tmp, tool)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print("test_model_grad_torchaudio:", "all cases passed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
