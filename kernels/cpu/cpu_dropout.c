// Dropout with a counter-based mask: element i of a launch is kept iff the Philox4x32 draw
// (seed, counter i / 4, word i % 4) is >= p * 2^32, so the mask is a pure function of (seed, i):
// independent of thread count and launch order, and the backward regenerates it from the seed.
#include <math.h>

#include "common/rng.h"
#include "kernels/cpu/cpu_internal.h"

int cpu_dropout(hb_ctx *ctx, float *y, const float *x, size_t n, float p, uint64_t seed) {
  (void)ctx;
  if (p <= 0.0f) {
    if (y != x)
      for (size_t i = 0; i < n; i++) y[i] = x[i];
    return 0;
  }
  const double thr_d = ldexp((double)p, 32);
  const uint64_t thr = thr_d >= 4294967296.0 ? 4294967296ull : (uint64_t)thr_d;
  const float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  const size_t nblocks = (n + 3) / 4;
#pragma omp parallel for schedule(static)
  for (size_t blk = 0; blk < nblocks; blk++) {
    uint32_t r[4];
    rng_philox(seed, blk, 0, r);
    for (size_t j = 0; j < 4 && blk * 4 + j < n; j++) {
      const size_t i = blk * 4 + j;
      y[i] = (uint64_t)r[j] >= thr ? x[i] * keep_scale : 0.0f;
    }
  }
  return 0;
}
