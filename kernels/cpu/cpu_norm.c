// Layer norm and group norm (channel-last), statistics accumulated in double.
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "common/error.h"
#include "kernels/cpu/cpu_internal.h"

int cpu_layer_norm(hb_ctx *ctx, float *y, const float *x, const float *gamma, const float *beta, int N, int C, float eps) {
  (void)ctx;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float *xr = x + (size_t)n * C;
    float *yr = y + (size_t)n * C;
    double s = 0;
    for (int c = 0; c < C; c++) s += xr[c];
    const double mean = s / C;
    double v = 0;
    for (int c = 0; c < C; c++) {
      double d = xr[c] - mean;
      v += d * d;
    }
    const float rstd = (float)(1.0 / sqrt(v / C + eps));
    const float m = (float)mean;
    for (int c = 0; c < C; c++) {
      float t = (xr[c] - m) * rstd;
      yr[c] = gamma ? t * gamma[c] + (beta ? beta[c] : 0.0f) : t;
    }
  }
  return 0;
}

// Statistics per (b, g) over T frames x C/G channels; x is (B, T, C). Channel-last makes a
// channel's values strided, so both passes walk rows (contiguous) and keep per-thread partial
// per-channel sums, reduced afterwards: (1) means, (2) centred sums of squares (two-pass: after
// the first conv |mean| can dwarf the std), then one normalising pass.
static void channel_sums(const float *xb, int T, int C, const double *center_g, int Cg, double *part, int nthr,
                         double *out) {
#pragma omp parallel num_threads(nthr)
  {
    const int th = omp_get_thread_num(), nt = omp_get_num_threads();
    double *acc = part + (size_t)th * C;
    for (int c = 0; c < C; c++) acc[c] = 0;
    const int t0 = (int)((long)T * th / nt), t1 = (int)((long)T * (th + 1) / nt);
    for (int t = t0; t < t1; t++) {
      const float *xr = xb + (size_t)t * C;
      if (center_g)
        for (int c = 0; c < C; c++) {
          double d = xr[c] - center_g[c / Cg];
          acc[c] += d * d;
        }
      else
        for (int c = 0; c < C; c++) acc[c] += xr[c];
    }
#pragma omp barrier
#pragma omp for schedule(static)
    for (int c = 0; c < C; c++) {
      double s = 0;
      for (int k = 0; k < nt; k++) s += part[(size_t)k * C + c];
      out[c] = s;
    }
  }
}

int cpu_group_norm(hb_ctx *ctx, float *y, const float *x, const float *gamma, const float *beta, int B, int T, int C,
                   int G, float eps) {
  if (G < 1 || C % G) return hb_fail("group_norm: %d channels not divisible by %d groups", C, G);
  const int Cg = C / G, nthr = cpu_threads(ctx);
  double *ws = ops_workspace(ctx, sizeof(double) * ((size_t)nthr * C + C + 2 * (size_t)G));
  if (!ws) return -1;
  double *part = ws, *csum = ws + (size_t)nthr * C, *gmean = csum + C, *grstd = gmean + G;
  const double n = (double)T * Cg;
  for (int b = 0; b < B; b++) {
    const float *xb = x + (size_t)b * T * C;
    float *yb = y + (size_t)b * T * C;
    channel_sums(xb, T, C, NULL, Cg, part, nthr, csum);
    for (int g = 0; g < G; g++) {
      double s = 0;
      for (int c = g * Cg; c < (g + 1) * Cg; c++) s += csum[c];
      gmean[g] = s / n;
    }
    channel_sums(xb, T, C, gmean, Cg, part, nthr, csum);
    for (int g = 0; g < G; g++) {
      double s = 0;
      for (int c = g * Cg; c < (g + 1) * Cg; c++) s += csum[c];
      grstd[g] = 1.0 / sqrt(s / n + eps);
    }
#pragma omp parallel for schedule(static) num_threads(nthr)
    for (int t = 0; t < T; t++) {
      const float *xr = xb + (size_t)t * C;
      float *yr = yb + (size_t)t * C;
      for (int c = 0; c < C; c++) {
        const int g = c / Cg;
        const float sc = (float)grstd[g] * (gamma ? gamma[c] : 1.0f);
        yr[c] = (xr[c] - (float)gmean[g]) * sc + (beta ? beta[c] : 0.0f);
      }
    }
  }
  return 0;
}
