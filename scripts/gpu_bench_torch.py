#!/usr/bin/env python3
"""HuBERT Base on the GPU with PyTorch, the oracle side of scripts/gpu_check.sh.

Forward (default): random weights, random audio (B x seconds), fp32 (TF32 off, like our fp32 path)
and bf16 autocast. Times with CUDA events after warm-up; prints the median and one RESULT line per
precision:  RESULT torch_<prec>_forward_ms=<median> peak_mem_mb=<peak>
Uses torchaudio.models.hubert_base when available, else transformers' HubertModel (Base config).

--train: one pretraining step = forward + hubert_loss (masked CE over K labels, feature penalty x10)
+ backward + fused AdamW, torchaudio's hubert_pretrain_base(num_classes=K) in train mode (dropout,
LayerDrop, span masks), for each precision in --precisions (bf16 autocast with fp32 master
weights, and/or fp32 without TF32). Prints per precision
  RESULT torch_<prec>_train_ms=<median> audio_s_per_s=<x> mfu=<x> peak_mem_mb=<allocated> reserved_mb=<x>
MFU = 45.4 GFLOP per audio-second (HuBERT Base fwd+bwd) x audio-s/s / --peak-tflops (bf16 dense
peak of the card; 989 for an H100 SXM).
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


GFLOP_PER_AUDIO_S = 45.4  # HuBERT Base forward + backward per second of 16 kHz audio


def hubert_loss(logit_m, logit_u, pen, feature_weight=10.0):
    # torchaudio examples/hubert/loss/hubert_loss.py, reduction "sum", unmasked weight 0
    tgt = torch.zeros(logit_m.shape[0], dtype=torch.long, device=logit_m.device)
    return torch.nn.functional.cross_entropy(logit_m.float(), tgt, reduction="sum") + pen * feature_weight * logit_m.shape[0]


class HFPretrain(torch.nn.Module):
    """Fallback when torchaudio has no hubert_pretrain_base: transformers' HubertModel (Base) with a
    random ~65% frame mask, final_proj 768 -> 256, cosine logits against K label embeddings / 0.1
    over the masked frames, and the feature penalty; the same work as hubert_pretrain_base."""

    def __init__(self, classes):
        super().__init__()
        import transformers
        self.h = transformers.HubertModel(transformers.HubertConfig(mask_time_prob=0.0, layerdrop=0.05))
        self.proj = torch.nn.Linear(768, 256)
        self.emb = torch.nn.Parameter(torch.randn(classes, 256))

    def frames(self, wave):
        return int(self.h.feature_extractor(wave[:1]).shape[-1])

    def forward(self, wave, labels, lens):
        feats = self.h.feature_extractor(wave)  # (B, C, T)
        pen = feats.float().pow(2).mean()
        B, _, T = feats.shape
        mask = torch.rand(B, T, device=wave.device) < 0.65
        hid = self.h(wave, mask_time_indices=mask).last_hidden_state
        x = self.proj(hid[mask])
        logits = torch.nn.functional.cosine_similarity(x.float().unsqueeze(1), self.emb.float().unsqueeze(0), dim=-1) / 0.1
        # hubert_loss expects the target in column 0: put the true class's logit first
        t = labels[mask]
        pos = logits.gather(1, t[:, None])
        return torch.cat([pos, logits], 1), None, pen


def build_pretrain(classes):
    try:
        import torchaudio
        m = torchaudio.models.hubert_pretrain_base(num_classes=classes)
        m.logit_generator.skip_nomask = True  # unmasked frames carry weight 0: not computed (as ours)
        frames = lambda w: int(m.wav2vec2.feature_extractor(w[:1], None)[0].shape[1])
        return m, "torchaudio %s hubert_pretrain_base(num_classes=%d)" % (torchaudio.__version__, classes), frames
    except Exception as e:
        print("torchaudio hubert_pretrain_base unavailable (%s); using transformers HubertModel + heads" % e,
              file=sys.stderr)
    import transformers
    m = HFPretrain(classes)
    return m, "transformers %s HubertModel(Base) + cosine heads (K=%d)" % (transformers.__version__, classes), m.frames


def bench_train(a):
    torch.manual_seed(0)
    model, name, frames = build_pretrain(a.classes)
    model = model.cuda().train()
    L = int(a.seconds * 16000)
    wave = 0.1 * torch.randn(a.batch_size, L, device="cuda")
    lens = torch.full((a.batch_size,), L, device="cuda")
    with torch.no_grad():
        T = frames(wave)
    labels = torch.randint(0, a.classes, (a.batch_size, T), device="cuda")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01, fused=True)
    audio_s = a.batch_size * a.seconds
    print("torch %s, %s, %s, batch %d x %.2f s = %.1f s (%d samples)"
          % (torch.__version__, name, torch.cuda.get_device_name(), a.batch_size, a.seconds, audio_s, a.batch_size * L))
    for prec in a.precisions.split(","):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        ctx = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if prec == "bf16" else (lambda: torch.autocast("cuda", enabled=False))
        times = []
        for i in range(a.warmup + a.repeat):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            opt.zero_grad(set_to_none=True)
            with ctx():
                logit_m, logit_u, pen = model(wave, labels, lens)
                loss = hubert_loss(logit_m, logit_u, pen)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            e.record()
            torch.cuda.synchronize()
            if i >= a.warmup:
                times.append(s.elapsed_time(e))
        med = statistics.median(times)
        aps = audio_s / (med / 1e3)
        mfu = GFLOP_PER_AUDIO_S * aps / (a.peak_tflops * 1e3)
        peak = torch.cuda.max_memory_allocated() / 2**20
        res = torch.cuda.max_memory_reserved() / 2**20
        print("torch %s train step: median %.1f ms (min %.1f, max %.1f over %d), %.0f audio-s/s, MFU %.3f, peak %.0f MB "
              "(reserved %.0f MB), loss/frame %.3f" % (prec, med, min(times), max(times), a.repeat, aps, mfu, peak, res,
                                                       loss.item() / max(1, logit_m.shape[0])))
        print("RESULT torch_%s_train_ms=%.3f audio_s_per_s=%.1f mfu=%.4f peak_mem_mb=%.0f reserved_mb=%.0f"
              % (prec, med, aps, mfu, peak, res))
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--train", action="store_true", help="pretraining step (forward + loss + backward + AdamW)")
    ap.add_argument("--precisions", default="bf16,fp32", help="train: comma list of bf16, fp32")
    ap.add_argument("--classes", type=int, default=504, help="train: label classes K")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="train: dense bf16 peak of the card for MFU")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device visible to torch", file=sys.stderr)
        return 77
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if a.train:
        return bench_train(a)
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
