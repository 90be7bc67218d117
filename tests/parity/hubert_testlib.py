"""Helpers shared by the parity tests: seeds, safetensors I/O in pure numpy, model folders from
torchaudio modules, wav writing, running the hubert binary. Not a test itself."""
import json
import os
import struct
import subprocess
import sys
import time
import wave

import numpy as np

HUBERT_BIN = os.environ.get("HUBERT_BIN", "hubert")


def test_seed():
    """A fresh seed per run (printed), or HUBERT_TEST_SEED to reproduce one."""
    seed = int(os.environ.get("HUBERT_TEST_SEED", int(time.time() * 1000) % (2**31)))
    print(f"seed {seed} (rerun with HUBERT_TEST_SEED={seed})", flush=True)
    return seed


def rel_err(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if not np.all(np.isfinite(a)) or not np.all(np.isfinite(b)):
        return float("inf")
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


_DT = {"F32": (np.float32, 4), "F16": (np.float16, 2), "F64": (np.float64, 8), "BF16": (None, 2), "I64": (np.int64, 8)}


def _bf16_bytes(a):
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    # round to nearest even on the upper 16 bits
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return r.tobytes()


def write_safetensors(path, tensors, dtype="F32", metadata=None):
    """tensors: dict name -> np.ndarray (float). dtype F32 | F16 | BF16."""
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        arr = np.asarray(arr, dtype=np.float32)
        if dtype == "BF16":
            b = _bf16_bytes(arr)
        else:
            b = np.ascontiguousarray(arr.astype(_DT[dtype][0])).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = metadata or {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b0, b1 = info["data_offsets"]
        raw = data[base + b0:base + b1]
        if info["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=_DT[info["dtype"]][0]).astype(np.float32)
        out[name] = arr.reshape(info["shape"])
    return out


def ta_to_hf_name(name):
    """torchaudio wav2vec2_model state_dict key -> Hugging Face HubertModel key."""
    if name.startswith("encoder.feature_projection."):
        return name[len("encoder."):]
    if name.startswith("encoder.transformer."):
        return "encoder." + name[len("encoder.transformer."):]
    return name


def hf_config(cfg):
    """cfg: dict of our test-case parameters -> HF HubertConfig dict."""
    n = len(cfg["conv"])
    return {
        "architectures": ["HubertModel"], "model_type": "hubert",
        "feat_extract_norm": cfg["norm"], "feat_extract_activation": "gelu", "hidden_act": "gelu",
        "conv_dim": [c[0] for c in cfg["conv"]], "conv_kernel": [c[1] for c in cfg["conv"]],
        "conv_stride": [c[2] for c in cfg["conv"]], "conv_bias": cfg["conv_bias"], "num_feat_extract_layers": n,
        "hidden_size": cfg["hidden"], "num_hidden_layers": cfg["layers"], "num_attention_heads": cfg["heads"],
        "intermediate_size": cfg["ffn"], "num_conv_pos_embeddings": cfg["pos_k"],
        "num_conv_pos_embedding_groups": cfg["pos_g"], "do_stable_layer_norm": cfg["pre_ln"],
        "feat_proj_layer_norm": True, "layer_norm_eps": 1e-5,
        "hidden_dropout": 0.1, "attention_dropout": 0.1, "activation_dropout": 0.0, "feat_proj_dropout": 0.0,
        "layerdrop": 0.1, "mask_time_prob": 0.05, "mask_time_length": 10, "vocab_size": 32,
    }


def build_torchaudio_model(cfg, seed):
    import torch
    import torchaudio
    torch.manual_seed(seed)
    model = torchaudio.models.wav2vec2_model(
        extractor_mode="group_norm" if cfg["norm"] == "group" else "layer_norm",
        extractor_conv_layer_config=[tuple(c) for c in cfg["conv"]],
        extractor_conv_bias=cfg["conv_bias"],
        encoder_embed_dim=cfg["hidden"], encoder_projection_dropout=0.0,
        encoder_pos_conv_kernel=cfg["pos_k"], encoder_pos_conv_groups=cfg["pos_g"],
        encoder_num_layers=cfg["layers"], encoder_num_heads=cfg["heads"], encoder_attention_dropout=0.0,
        encoder_ff_interm_features=cfg["ffn"], encoder_ff_interm_dropout=0.0, encoder_dropout=0.0,
        encoder_layer_norm_first=cfg["pre_ln"], encoder_layer_drop=0.0, aux_num_out=None)
    # Perturb every parameter so norms, biases and gains are all non-trivial.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            elif "layer_norm.weight" in name or name.endswith("weight_g"):
                p.mul_(1.0 + 0.2 * torch.randn_like(p))
    return model.eval()


def save_hf_folder(model, cfg, folder, dtype="F32", parametrizations=False):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(hf_config(cfg), f, indent=2)
    tensors = {}
    for name, p in model.state_dict().items():
        hf = ta_to_hf_name(name)
        if parametrizations:
            hf = hf.replace("conv.weight_g", "conv.parametrizations.weight.original0")
            hf = hf.replace("conv.weight_v", "conv.parametrizations.weight.original1")
        tensors[hf] = p.detach().cpu().numpy()
    write_safetensors(os.path.join(folder, "model.safetensors"), tensors, dtype=dtype)


def torchaudio_hidden_states(model, waves, lengths):
    """HF-convention hidden states (num_layers + 1) of a torchaudio wav2vec2 model, and frame lengths."""
    import torch
    with torch.no_grad():
        x, flen = model.feature_extractor(waves, lengths)
        x, mask = model.encoder._preprocess(x, flen)
        t = model.encoder.transformer
        x = t._preprocess(x)
        hs = [x]
        for layer in t.layers:
            x = layer(x, mask)
            hs.append(x)
        if not t.layer_norm_first:  # pre-LN model: HF applies the final layer norm to the last state
            hs[-1] = t.layer_norm(hs[-1])
    return [h.numpy() for h in hs], flen.numpy()


def write_wav16(path, samples_int16, rate=16000, channels=1):
    with wave.open(path, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples_int16, dtype="<i2").tobytes())


def speechlike(rng, n):
    """Deterministic speech-like int16 waveform: harmonic bursts with noise and silence."""
    t = np.arange(n) / 16000.0
    f0 = 100 + 80 * rng.random()
    x = sum(np.sin(2 * np.pi * f0 * k * t + rng.random() * 6) / k for k in range(1, 8))
    env = (np.sin(2 * np.pi * (2 + 3 * rng.random()) * t) > -0.3).astype(np.float64)
    x = 0.3 * x * env + 0.02 * rng.standard_normal(n)
    return np.clip(x * 8000, -32768, 32767).astype(np.int16)


def run(args, expect_ok=True):
    p = subprocess.run([HUBERT_BIN] + args, capture_output=True, text=True)
    if expect_ok and p.returncode != 0:
        print(p.stdout, p.stderr, file=sys.stderr)
        raise SystemExit(f"hubert {' '.join(args)} failed with exit code {p.returncode}")
    return p
