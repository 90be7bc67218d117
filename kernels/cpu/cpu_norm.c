// Layer norm and group norm (channel-last), statistics accumulated in double.
#include <math.h>
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

// Statistics per (b, g) over T frames x C/G channels; x is (B, T, C).
int cpu_group_norm(hb_ctx *ctx, float *y, const float *x, const float *gamma, const float *beta, int B, int T, int C,
                   int G, float eps) {
  if (G < 1 || C % G) return hb_fail("group_norm: %d channels not divisible by %d groups", C, G);
  const int Cg = C / G;
  double *stats = ops_workspace(ctx, sizeof(double) * ((size_t)B * C + 2 * (size_t)B * G));
  if (!stats) return -1;
  // Pass 1: per-channel means, then group means; pass 2: centred sums of squares (two-pass for
  // accuracy when |mean| >> std, as after the first conv).
#pragma omp parallel for schedule(static)
  for (int bc = 0; bc < B * C; bc++) {
    const int b = bc / C, c = bc % C;
    const float *xb = x + (size_t)b * T * C + c;
    double s = 0;
    for (int t = 0; t < T; t++) s += xb[(size_t)t * C];
    stats[bc] = s;
  }
  double *gmean = stats + (size_t)B * C;  // (B, G)
#pragma omp parallel for schedule(static)
  for (int bg = 0; bg < B * G; bg++) {
    const int b = bg / G, g = bg % G;
    double s = 0;
    for (int c = 0; c < Cg; c++) s += stats[(size_t)b * C + g * Cg + c];
    gmean[bg] = s / ((double)T * Cg);
  }
#pragma omp parallel for schedule(static)
  for (int bc = 0; bc < B * C; bc++) {
    const int b = bc / C, c = bc % C;
    const double m = gmean[b * G + c / Cg];
    const float *xb = x + (size_t)b * T * C + c;
    double v = 0;
    for (int t = 0; t < T; t++) {
      double d = xb[(size_t)t * C] - m;
      v += d * d;
    }
    stats[bc] = v;
  }
  double *grstd = gmean + (size_t)B * G;  // (B, G)
  for (int bg = 0; bg < B * G; bg++) {
    const int b = bg / G, g = bg % G;
    double v = 0;
    for (int c = 0; c < Cg; c++) v += stats[(size_t)b * C + g * Cg + c];
    grstd[bg] = 1.0 / sqrt(v / ((double)T * Cg) + eps);
  }
#pragma omp parallel for schedule(static)
  for (int bt = 0; bt < B * T; bt++) {
    const int b = bt / T;
    const float *xr = x + (size_t)bt * C;
    float *yr = y + (size_t)bt * C;
    for (int c = 0; c < C; c++) {
      const int bg = b * G + c / Cg;
      float t = (float)((xr[c] - gmean[bg]) * grstd[bg]);
      yr[c] = t * (gamma ? gamma[c] : 1.0f) + (beta ? beta[c] : 0.0f);
    }
  }
  return 0;
}
