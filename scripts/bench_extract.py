"""torchaudio side of scripts/bench_extract.sh: HuBERT forward on random weights / audio."""
import argparse
import resource
import time

import torch
import torchaudio

ap = argparse.ArgumentParser()
ap.add_argument("--config", default="base", choices=["base", "large"])
ap.add_argument("--batch-size", type=int, default=4)
ap.add_argument("--seconds", type=float, default=10.0)
ap.add_argument("--repeat", type=int, default=3)
ap.add_argument("--threads", type=int, default=2)
a = ap.parse_args()

torch.set_num_threads(a.threads)
torch.manual_seed(0)
model = (torchaudio.models.hubert_base() if a.config == "base" else torchaudio.models.hubert_large()).eval()
x = 0.1 * torch.randn(a.batch_size, int(a.seconds * 16000))
times = []
with torch.inference_mode():
    model.extract_features(x)  # warm-up
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        model.extract_features(x)
        times.append(time.perf_counter() - t0)
times.sort()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"torchaudio {torchaudio.__version__} (torch {torch.__version__}): forward median {times[len(times)//2]:.3f} s "
      f"(min {times[0]:.3f}), {a.batch_size * a.seconds / times[len(times)//2]:.1f}x real time, peak RSS {rss:.0f} MB")
print(f"RESULT torchaudio_forward_s={times[len(times)//2]:.4f} peak_rss_mb={rss:.0f}")
