"""Shared body of tests/parity/test_pretrain_torchaudio*.py (not a test itself): one pretraining
step of models/hubert_pretrain.c (driven by tests/tools/pretrain_dump) against torchaudio 0.13's
hubert_pretrain_model + hubert_loss, plus the HuBERTopic head in plain PyTorch.

Oracle, per case:
    model = torchaudio.models.hubert_pretrain_model(..., all dropouts 0, layer_drop 0,
            mask_prob > 0, feature_grad_mult)               random weights, norms/biases perturbed
    components._compute_mask_indices := the explicit mask  (so MaskGenerator applies OUR mask)
    logit_m, logit_u, pen = model(wave, labels, lengths)   padded batch
    loss = hubert_loss(logit_m, logit_u, pen, w_m, w_u, w_f)
         + lambda * F.cross_entropy(topic_head(mean over valid frames of hidden[k]), topics)
    loss.backward()                                        every parameter gradient
hubert_loss is torchaudio's examples/hubert/loss/hubert_loss.py (not shipped in the Debian
package), reproduced below. hidden[k] is taken with a forward hook on transformer layer k
(k = NL: the transformer's output, i.e. after the final layer norm of a pre-LN model).

The oracle runs in float64 (model.double()): Debian's torch 1.13 float32 grouped-conv backward
returns garbage (~1e16) for odd positional-conv kernels (found by test_model_grad_torchaudio),
and float64 makes the oracle's own rounding negligible, so the errors printed are ours (fp32).
torchaudio computes the penalty as x.float().pow(2).mean(): a float32 cast inside the float64
graph, accurate to ~1e-7 relative, well inside the tolerances.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio
from torchaudio.models.wav2vec2 import components as C

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubert_testlib as tl  # noqa: E402

TOL_LOSS = 1e-5
TOL_LOGITS = 1e-4
TOL_GRAD = 1e-4  # TOL_F32_MODEL


def hubert_loss(logit_m, logit_u, feature_penalty, masked_weight=1.0, unmasked_weight=0.0, feature_weight=10.0,
                reduction="sum"):
    """torchaudio examples/hubert/loss/hubert_loss.py (0.13)."""
    loss = feature_penalty * feature_weight * logit_m.shape[0]
    if logit_m is not None:
        target_m = torch.zeros(logit_m.shape[0], dtype=torch.long, device=logit_m.device)
        loss_m = F.cross_entropy(logit_m, target_m, reduction=reduction)
        loss += loss_m * masked_weight
    if logit_u is not None:
        target_u = torch.zeros(logit_u.shape[0], dtype=torch.long, device=logit_m.device)
        loss_u = F.cross_entropy(logit_u, target_u, reduction=reduction)
        loss += loss_u * unmasked_weight
    return loss


def find_tool():
    for cand in ["./pretrain_dump",
                 os.path.join(os.path.dirname(os.path.abspath(tl.HUBERT_BIN)), "tests", "pretrain_dump")]:
        if os.path.exists(cand):
            return cand
    return None


def build(case, seed):
    """hubert_pretrain_model (dropout off) + topic head (Linear H -> Kt), perturbed like hubert_testlib."""
    torch.manual_seed(seed)
    mult = case["mult"]
    model = torchaudio.models.hubert_pretrain_model(
        extractor_mode="group_norm" if case["norm"] == "group" else "layer_norm",
        extractor_conv_layer_config=[tuple(c) for c in case["conv"]], extractor_conv_bias=case["conv_bias"],
        encoder_embed_dim=case["hidden"], encoder_projection_dropout=0.0, encoder_pos_conv_kernel=case["pos_k"],
        encoder_pos_conv_groups=case["pos_g"], encoder_num_layers=case["layers"], encoder_num_heads=case["heads"],
        encoder_attention_dropout=0.0, encoder_ff_interm_features=case["ffn"], encoder_ff_interm_dropout=0.0,
        encoder_dropout=0.0, encoder_layer_norm_first=case["pre_ln"], encoder_layer_drop=0.0,
        mask_prob=0.5, mask_selection="static", mask_other=0.0, mask_length=3, no_mask_overlap=False,
        mask_min_space=1, mask_channel_prob=0.0, mask_channel_selection="static", mask_channel_other=0.0,
        mask_channel_length=10, no_mask_channel_overlap=False, mask_channel_min_space=1,
        skip_masked=False, skip_nomask=case["w_u"] == 0.0, num_classes=case["K"], final_dim=case["final_dim"],
        feature_grad_mult=mult if mult != 1.0 else None)
    topic = torch.nn.Linear(case["hidden"], case["topic_k"])
    with torch.no_grad():
        for name, p in list(model.named_parameters()) + [("topic.bias", topic.bias)]:
            if name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            elif "layer_norm.weight" in name or name.endswith("weight_g"):
                p.mul_(1.0 + 0.2 * torch.randn_like(p))
    return model.eval(), topic


def hf_name(name):
    """hubert_pretrain_model parameter name -> our (HF) key."""
    if name.startswith("wav2vec2."):
        return tl.ta_to_hf_name(name[len("wav2vec2."):])
    return {"mask_generator.mask_embedding": "masked_spec_embed",
            "logit_generator.label_embeddings": "label_embs_concat",
            "logit_generator.final_proj.weight": "final_proj.weight",
            "logit_generator.final_proj.bias": "final_proj.bias",
            "topic.weight": "topic_head.out.weight", "topic.bias": "topic_head.out.bias"}[name]


def save_folder(model, topic, case, folder):
    os.makedirs(folder, exist_ok=True)
    cfg = tl.hf_config(case)
    cfg["hubert_c"] = {"final_dim": case["final_dim"], "labels": [{"name": "km", "k": case["K"]}],
                       "topic_k": case["topic_k"], "topic_layer": case["topic_layer"], "topic_hidden": 0}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    tensors = {hf_name(n): p.detach().numpy() for n, p in list(model.named_parameters()) +
               [("topic." + n, p) for n, p in topic.named_parameters()]}
    tl.write_safetensors(os.path.join(folder, "model.safetensors"), tensors)


def torch_step(model, topic, case, waves, lens, labels, mask, topics):
    """The oracle's loss terms, logits and gradients (float64)."""
    model.zero_grad()
    topic.zero_grad()
    real = C._compute_mask_indices
    C._compute_mask_indices = lambda *a, **k: mask.clone()
    caught = {}
    k, NL = case["topic_layer"], case["layers"]
    tr = model.wav2vec2.encoder.transformer
    target = tr if k == NL else tr.layers[k - 1]
    hook = target.register_forward_hook(lambda mod, inp, out: caught.__setitem__("h", out))
    try:
        logit_m, logit_u, pen = model(waves, labels, lens)
    finally:
        C._compute_mask_indices = real
        hook.remove()
    loss = hubert_loss(logit_m, logit_u, pen, case["w_m"], case["w_u"], case["w_f"])
    _, flen = model.wav2vec2.feature_extractor(waves, lens)
    h = caught["h"]
    T = h.shape[1]
    valid = (torch.arange(T)[None, :] < flen[:, None]).to(h.dtype)
    pooled = (h * valid[..., None]).sum(1) / flen[:, None].to(h.dtype)
    z = topic(pooled)
    topic_ce = F.cross_entropy(z, topics, reduction="mean")
    total = loss + case["topic_w"] * topic_ce
    total.backward()
    grads = {hf_name(n): p.grad.detach().numpy().copy() for n, p in model.named_parameters()}
    grads.update({hf_name("topic." + n): p.grad.detach().numpy().copy() for n, p in topic.named_parameters()})
    return dict(total=float(total), pred_loss=float(loss - pen * case["w_f"] * logit_m.shape[0]), pen=float(pen),
                topic_ce=float(topic_ce), topic_correct=int((z.argmax(-1) == topics).sum()),
                logit_m=logit_m.detach().numpy(), logit_u=None if logit_u is None else logit_u.detach().numpy(),
                flen=flen.numpy(), grads=grads)


def ta_layout(ours, tgt):
    """Our K-way logits (N, K) -> torchaudio's (N, K + 1): [positive, negatives with the positive at -inf]."""
    n = ours.shape[0]
    neg = ours.astype(np.float64).copy()
    neg[np.arange(n), tgt] = -np.inf
    return np.concatenate([ours[np.arange(n), tgt][:, None], neg], axis=1)


def fairseq_correct(lg):
    mx, mn = lg.argmax(-1) == 0, lg.argmin(-1) == 0
    return int(mx.sum() - (mx & mn).sum())


def speech_batch(case, model, rng):
    """The case's utterance lengths, speech-like waves (B, max len) zero-padded, and the frame count
    T and per-utterance valid frames of the model's feature extractor."""
    lens = case["lens"]
    waves = np.zeros((len(lens), max(lens)), dtype=np.float32)
    for i, n in enumerate(lens):
        waves[i, :n] = tl.speechlike(rng, n).astype(np.float32) / 32768.0
    with torch.no_grad():
        f, flen = model.wav2vec2.feature_extractor(torch.from_numpy(waves), torch.tensor(lens))
    return lens, waves, int(f.shape[1]), flen.numpy()


def run_case(case, seed, tool, fails):
    print(f"case: {case['name']} (seed {seed})", flush=True)
    rng = np.random.default_rng(seed)
    model, topic = build(case, seed)
    tmp = tempfile.mkdtemp()
    try:
        folder = os.path.join(tmp, "model")
        save_folder(model, topic, case, folder)
        lens, waves, T, flen = speech_batch(case, model, rng)
        B = len(lens)
        mask = np.zeros((B, T), dtype=bool)
        for b in range(B):  # spans of 3 over ~40% of the valid frames
            for t0 in rng.choice(int(flen[b]), size=max(1, int(flen[b]) // 8), replace=False):
                mask[b, t0:min(t0 + 3, int(flen[b]))] = True
        labels = rng.integers(0, case["K"], (B, T))
        topics = rng.integers(0, case["topic_k"], B)

        model.double()
        topic.double()
        ref = torch_step(model, topic, case, torch.from_numpy(waves).double(), torch.tensor(lens),
                         torch.from_numpy(labels).long(), torch.from_numpy(mask), torch.from_numpy(topics).long())

        inp = os.path.join(tmp, "inputs.safetensors")
        tl.write_safetensors(inp, {"wave": waves, "lengths": np.array(lens, np.float32),
                                   "mask": mask.astype(np.float32), "labels": labels[None].astype(np.float32),
                                   "topics": topics.astype(np.float32)})
        out = os.path.join(tmp, "out.safetensors")
        args = [tool, folder, inp, out] + [str(case[k]) for k in ["mult", "w_f", "w_m", "w_u", "topic_w", "topic_layer"]] + ["1"]
        p = subprocess.run(args, capture_output=True, text=True)
        if p.returncode != 0:
            print(p.stdout, p.stderr)
            fails.append(case["name"] + ": pretrain_dump failed")
            return
        print("  " + p.stderr.strip())
        st = {k: float(v) for k, v in re.findall(r"(\w+)=([-+0-9.eEinfa]+)", p.stdout.split("STATS", 1)[1])}
        ours = tl.read_safetensors(out)

        def check(name, err, tol):
            ok = err < tol
            print(f"  {name:40s} rel.err {err:.3e} (tol {tol:.0e}){'' if ok else '  <-- FAIL'}")
            if not ok:
                fails.append(f"{case['name']}: {name}")

        def check_eq(name, a, b):
            print(f"  {name:40s} ours {a} torch {b}{'' if a == b else '  <-- FAIL'}")
            if a != b:
                fails.append(f"{case['name']}: {name}")

        valid = np.arange(T)[None, :] < flen[:, None]
        mask_m, mask_u = mask & valid, valid & ~mask
        n_m = int(mask_m.sum())
        check("total loss (hubert_loss + lambda topic)", tl.rel_err([st["loss"]], [ref["total"]]), TOL_LOSS)
        check("masked-prediction CE term", tl.rel_err([st["pred_loss"]], [ref["pred_loss"]]), TOL_LOSS)
        check("feature penalty mean(f^2)", tl.rel_err([st["feature_pen"]], [ref["pen"]]), TOL_LOSS)
        check("topic CE (mean over the batch)", tl.rel_err([st["topic_ce"] / B], [ref["topic_ce"]]), TOL_LOSS)
        check_eq("masked frames n_m", int(st["count_m"]), n_m)
        check_eq("topic correct", int(st["topic_correct"]), ref["topic_correct"])
        lg = ours["output.logits0"]
        tgt_m = labels[mask_m]
        check("masked logits (torchaudio layout)", tl.rel_err(np.nan_to_num(ta_layout(lg[:n_m], tgt_m), neginf=0),
                                                              np.nan_to_num(ref["logit_m"], neginf=0)), TOL_LOGITS)
        check_eq("masked logits: -inf slots", int(np.isinf(ta_layout(lg[:n_m], tgt_m)).sum()),
                 int(np.isinf(ref["logit_m"]).sum()))
        check_eq("masked accuracy (correct_m)", int(st["correct_m0"]), fairseq_correct(ref["logit_m"]))
        if ref["logit_u"] is not None:
            check_eq("unmasked frames n_u", int(st["count_u"]), int(mask_u.sum()))
            lu = ta_layout(lg[n_m:], labels[mask_u])
            check("unmasked logits (torchaudio layout)", tl.rel_err(np.nan_to_num(lu, neginf=0),
                                                                    np.nan_to_num(ref["logit_u"], neginf=0)), TOL_LOGITS)
            check_eq("unmasked accuracy (correct_u)", int(st["correct_u0"]), fairseq_correct(ref["logit_u"]))
        # Tensors whose exact gradient is 0 (k_proj.bias: softmax is invariant to a per-query shift)
        # are judged against a floor of 1e-3 x the median gradient norm instead of their own norm.
        floor = 1e-3 * float(np.median([np.linalg.norm(g) for g in ref["grads"].values()]))
        worst, worst_name, nbad = 0.0, "", 0
        for name, g in ref["grads"].items():
            if name not in ours:
                print(f"  missing gradient {name}")
                fails.append(f"{case['name']}: missing {name}")
                continue
            e = float(np.linalg.norm(ours[name].astype(np.float64) - g) / max(np.linalg.norm(g), floor))
            if e > worst:
                worst, worst_name = e, name
            if not e < TOL_GRAD:
                nbad += 1
                print(f"  gradient {name}: rel.err {e:.3e} > {TOL_GRAD:.0e} (|ref| {np.linalg.norm(g):.3e})")
                fails.append(f"{case['name']}: gradient {name}")
        for name in ["topic_head.out.weight", "masked_spec_embed", "feature_extractor.conv_layers.0.conv.weight"]:
            g = ref["grads"][name]
            print(f"  gradient {name:40s} rel.err {np.linalg.norm(ours[name] - g) / max(np.linalg.norm(g), floor):.3e}")
        print(f"  {len(ref['grads'])} gradient tensors, worst rel.err {worst:.3e} ({worst_name}), {nbad} over tolerance")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def topic_contribution(case, seed, tool, fails):
    """The topic term's own contribution to the trunk gradient: the same step with lambda and with
    lambda = 0 on both sides; the differences of the trunk gradients must agree."""
    print(f"case: {case['name']}: topic contribution to the trunk gradients (seed {seed})", flush=True)
    rng = np.random.default_rng(seed)
    model, topic = build(case, seed)
    tmp = tempfile.mkdtemp()
    try:
        folder = os.path.join(tmp, "model")
        save_folder(model, topic, case, folder)
        lens, waves, T, flen = speech_batch(case, model, rng)
        B = len(lens)
        mask = np.zeros((B, T), dtype=bool)
        for b in range(B):
            mask[b, rng.choice(int(flen[b]), size=max(2, int(flen[b]) // 3), replace=False)] = True
        labels = rng.integers(0, case["K"], (B, T))
        topics = rng.integers(0, case["topic_k"], B)
        model.double()
        topic.double()
        inp = os.path.join(tmp, "inputs.safetensors")
        tl.write_safetensors(inp, {"wave": waves, "lengths": np.array(lens, np.float32),
                                   "mask": mask.astype(np.float32), "labels": labels[None].astype(np.float32),
                                   "topics": topics.astype(np.float32)})
        refs, ours = [], []
        for lam in [case["topic_w"], 0.0]:
            c2 = dict(case, topic_w=lam)
            refs.append(torch_step(model, topic, c2, torch.from_numpy(waves).double(), torch.tensor(lens),
                                   torch.from_numpy(labels).long(), torch.from_numpy(mask), torch.from_numpy(topics).long()))
            out = os.path.join(tmp, f"out{len(ours)}.safetensors")
            args = [tool, folder, inp, out] + [str(c2[k]) for k in ["mult", "w_f", "w_m", "w_u", "topic_w", "topic_layer"]] + ["1"]
            p = subprocess.run(args, capture_output=True, text=True)
            if p.returncode != 0:
                print(p.stdout, p.stderr)
                fails.append(case["name"] + ": pretrain_dump failed")
                return
            ours.append(tl.read_safetensors(out))
        worst, worst_name, n = 0.0, "", 0
        trunk = [k for k in refs[0]["grads"] if not k.startswith(("topic_head.", "final_proj.", "label_embs"))]
        d_refs = {k: refs[0]["grads"][k] - refs[1]["grads"][k] for k in trunk}
        # k_proj.bias has an exact gradient of 0 (rounding only): judged against 1e-3 x the median norm
        floor = 1e-3 * float(np.median([np.linalg.norm(d) for d in d_refs.values()]))
        for name in trunk:
            # layers above the pooled one get no topic gradient: skip exact zeros
            d_ref = d_refs[name]
            if np.linalg.norm(d_ref) == 0.0:
                continue
            d_ours = ours[0][name].astype(np.float64) - ours[1][name]
            e = float(np.linalg.norm(d_ours - d_ref) / max(np.linalg.norm(d_ref), floor))
            n += 1
            if e > worst:
                worst, worst_name = e, name
        # The difference of two fp32 gradients loses digits where the topic part is small next to
        # the masked-prediction part: judged with 10x the per-tensor tolerance.
        ok = worst < 10 * TOL_GRAD
        print(f"  topic part of {n} trunk gradients (lambda {case['topic_w']} vs 0): worst rel.err {worst:.3e} "
              f"({worst_name}) (tol {10 * TOL_GRAD:.0e}){'' if ok else '  <-- FAIL'}")
        if not ok:
            fails.append(f"{case['name']}: topic contribution")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(cases, name, contribution_case=None):
    tool = find_tool()
    if tool is None:
        print("pretrain_dump tool not built (tests/tools/pretrain_dump.c); skipping")
        return 77
    seed = tl.test_seed()
    torch.set_num_threads(2)
    fails = []
    for i, case in enumerate(cases):
        run_case(case, seed + i, tool, fails)
    if contribution_case is not None:
        topic_contribution(contribution_case, seed + 100, tool, fails)
    if fails:
        print(f"{name}: FAILED ({len(fails)}): " + "; ".join(fails[:10]) + f" (seed {seed})")
        return 1
    print(f"{name}: all cases passed (seed {seed})")
    return 0
