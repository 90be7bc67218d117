"""HuBERT forward parity with torchaudio 0.13 (Debian's python3-torchaudio).

For several architectures (group/layer-norm extractor, post-/pre-LN transformer, even/odd
positional kernel, conv bias on/off, F32/BF16/F16 checkpoints, both weight-norm key spellings) a
torchaudio `wav2vec2_model` with random weights is written as a Hugging Face model folder,
`hubert extract` runs on a padded batch of wav files, and every layer's hidden states of every
utterance (valid frames) are compared: relative L2 error < 1e-4 (tests/tolerances.h: TOL_F32_MODEL).
One case is the full HuBERT Base architecture on 2 s of audio.
"""
import os
import sys
import tempfile

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hubert_testlib as tl  # noqa: E402

TOL = 1e-4  # TOL_F32_MODEL

SMALL_CONV = [(32, 10, 5), (32, 3, 2), (32, 3, 2), (32, 3, 2), (32, 3, 2), (32, 2, 2), (32, 2, 2)]
CASES = [
    dict(name="group-norm post-LN even pos kernel, padded batch", norm="group", conv=SMALL_CONV, conv_bias=False,
         hidden=64, layers=3, heads=4, ffn=96, pos_k=16, pos_g=4, pre_ln=False, lens=[8000, 5123, 3337], dtype="F32"),
    dict(name="layer-norm pre-LN odd pos kernel, conv bias, padded", norm="layer", conv=SMALL_CONV, conv_bias=True,
         hidden=48, layers=2, heads=3, ffn=80, pos_k=15, pos_g=3, pre_ln=True, lens=[6400, 4000], dtype="F32",
         parametrizations=True),
    dict(name="group-norm pre-LN, short 400-sample input, batch 1", norm="group",
         conv=[(24, 10, 5), (24, 3, 2), (24, 3, 2), (24, 3, 2), (24, 3, 2), (24, 2, 2), (24, 2, 2)],
         conv_bias=True, hidden=32, layers=2, heads=2, ffn=64, pos_k=8, pos_g=2, pre_ln=True, lens=[400], dtype="F32"),
    dict(name="layer-norm post-LN, bf16 checkpoint", norm="layer", conv=SMALL_CONV, conv_bias=False,
         hidden=64, layers=2, heads=4, ffn=64, pos_k=16, pos_g=4, pre_ln=False, lens=[3200, 3201], dtype="BF16"),
    dict(name="group-norm post-LN, f16 checkpoint", norm="group", conv=SMALL_CONV, conv_bias=False,
         hidden=64, layers=2, heads=4, ffn=64, pos_k=16, pos_g=4, pre_ln=False, lens=[4100], dtype="F16"),
    dict(name="HuBERT Base architecture, 2 s", norm="group", conv=[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2,
         conv_bias=False, hidden=768, layers=12, heads=12, ffn=3072, pos_k=128, pos_g=16, pre_ln=False,
         lens=[32000], dtype="F32"),
]


def quantize_like_checkpoint(model, dtype):
    """Round the torchaudio weights as the checkpoint stores them, so both sides use equal weights."""
    if dtype == "F32":
        return
    with torch.no_grad():
        for p in model.parameters():
            if dtype == "F16":
                p.copy_(p.half().float())
            else:
                p.copy_(p.bfloat16().float())


def run_case(case, seed, tmp):
    rng = np.random.default_rng(seed)
    model = tl.build_torchaudio_model(case, seed)
    folder = os.path.join(tmp, "model")
    tl.save_hf_folder(model, case, folder, dtype=case["dtype"], parametrizations=case.get("parametrizations", False))
    quantize_like_checkpoint(model, case["dtype"])

    lens = case["lens"]
    L = max(lens)
    waves = np.zeros((len(lens), L), dtype=np.float32)
    paths = []
    for i, n in enumerate(lens):
        pcm = tl.speechlike(rng, n)
        path = os.path.join(tmp, f"utt{i}.wav")
        tl.write_wav16(path, pcm)
        paths.append(path)
        waves[i, :n] = pcm.astype(np.float32) / 32768.0
    ref, flen = tl.torchaudio_hidden_states(model, torch.from_numpy(waves), torch.tensor(lens))

    out = os.path.join(tmp, "feats.h5")
    tl.run(["extract", "--model", folder, "--out", out, "--batch-size", str(len(lens))] + paths)
    worst = 0.0
    with h5py.File(out, "r") as f:
        offsets = f["offsets"][:]
        assert list(np.diff(offsets)) == list(flen), f"frame counts {np.diff(offsets)} != torchaudio {flen}"
        for k in range(case["layers"] + 1):
            ours = f[f"layer_{k}"][:]
            for b in range(len(lens)):
                e = tl.rel_err(ours[offsets[b]:offsets[b + 1]], ref[k][b, :flen[b]])
                worst = max(worst, e)
                if not e < TOL:
                    print(f"  layer {k} utt {b}: rel.err {e:.3e} > {TOL:.0e}")
    status = "ok" if worst < TOL else "FAIL"
    print(f"  {case['name']}: worst layer rel.err {worst:.3e} over {case['layers'] + 1} layers x {len(lens)} utts  {status}")
    return worst < TOL


def main():
    seed = tl.test_seed()
    torch.set_num_threads(2)
    ok = True
    for i, case in enumerate(CASES):
        with tempfile.TemporaryDirectory() as tmp:
            ok &= run_case(case, seed + i, tmp)
    print("test_model_torchaudio:", "all cases passed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
