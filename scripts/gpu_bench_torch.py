#!/usr/bin/env python3
"""HuBERT Base forward on the GPU with PyTorch, the oracle side of scripts/gpu_check.sh.

Random weights, random audio (B x seconds), fp32 (TF32 off, like our fp32 path) and bf16 autocast.
Times with CUDA events after warm-up; prints the median and one RESULT line per precision:
  RESULT torch_<prec>_forward_ms=<median> peak_mem_mb=<peak>
Uses torchaudio.models.hubert_base when available, else transformers' HubertModel (Base config).
"""
import argparse
import statistics
import sys

import torch


def build_model():
    try:
        import torchaudio
        m = torchaudio.models.hubert_base()
        return m, "torchaudio %s hubert_base" % torchaudio.__version__, lambda m, x: m(x)
    except Exception as e:  # torchaudio without the models module: fall back to transformers
        print("torchaudio hubert_base unavailable (%s); using transformers" % e, file=sys.stderr)
    import transformers
    m = transformers.HubertModel(transformers.HubertConfig())
    return m, "transformers %s HubertModel(Base)" % transformers.__version__, lambda m, x: m(x).last_hidden_state


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=10)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device visible to torch", file=sys.stderr)
        return 77
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    model, name, fwd = build_model()
    model = model.cuda().eval()
    x = 0.1 * torch.randn(a.batch_size, int(a.seconds * 16000), device="cuda")
    print("torch %s, %s, %s, batch %d x %.1f s" % (torch.__version__, name, torch.cuda.get_device_name(), a.batch_size, a.seconds))
    for prec in ("fp32", "bf16"):
        torch.cuda.reset_peak_memory_stats()
        ctx = torch.autocast("cuda", dtype=torch.bfloat16) if prec == "bf16" else torch.autocast("cuda", enabled=False)
        times = []
        with torch.inference_mode(), ctx:
            for _ in range(3):
                fwd(model, x)
            torch.cuda.synchronize()
            for _ in range(a.repeat):
                s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                s.record()
                fwd(model, x)
                e.record()
                torch.cuda.synchronize()
                times.append(s.elapsed_time(e))
        med = statistics.median(times)
        peak = torch.cuda.max_memory_allocated() / 2**20
        print("torch %s forward: median %.2f ms (min %.2f, max %.2f over %d), %.0fx real time, peak %.0f MB"
              % (prec, med, min(times), max(times), a.repeat, a.batch_size * a.seconds / (med / 1e3), peak))
        print("RESULT torch_%s_forward_ms=%.3f peak_mem_mb=%.0f" % (prec, med, peak))
    return 0


if __name__ == "__main__":
    sys.exit(main())
