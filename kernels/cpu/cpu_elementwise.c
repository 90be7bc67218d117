// Elementwise ops: GELU (erf form), add, row softmax, padding mask, weight norm.
#include <math.h>
#include <string.h>

#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/cpu_math.h"

int cpu_gelu(hb_ctx *ctx, float *y, const float *x, size_t n) {
  (void)ctx;
  const size_t chunk = 4096;
  const size_t nchunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
  for (size_t c = 0; c < nchunks; c++) {
    size_t i0 = c * chunk, len = n - i0 < chunk ? n - i0 : chunk;
    hb_gelu_n(y + i0, x + i0, len);
  }
  return 0;
}

int cpu_add(hb_ctx *ctx, float *y, const float *a, const float *b, size_t n) {
  (void)ctx;
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
  return 0;
}

int cpu_softmax(hb_ctx *ctx, float *x, int N, int D) {
  (void)ctx;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    float *r = x + (size_t)n * D;
    float m = -INFINITY;
    for (int d = 0; d < D; d++) m = r[d] > m ? r[d] : m;
    const float inv = 1.0f / hb_exp_shift_sum(r, (size_t)D, m);
    for (int d = 0; d < D; d++) r[d] *= inv;
  }
  return 0;
}

int cpu_mask_padding(hb_ctx *ctx, float *x, const int *len, int B, int T, int C) {
  (void)ctx;
  if (!len) return 0;
  for (int b = 0; b < B; b++)
    if (len[b] < T) memset(x + ((size_t)b * T + len[b]) * C, 0, sizeof(float) * (size_t)(T - len[b]) * C);
  return 0;
}

// w[o, i, k] = g[k] * v[o, i, k] / ||v[:, :, k]||
int cpu_weight_norm(hb_ctx *ctx, float *w, const float *v, const float *g, int O, int In, int K) {
  double *norm = ops_workspace(ctx, sizeof(double) * (size_t)K);
  if (!norm) return -1;
  for (int k = 0; k < K; k++) norm[k] = 0;
  const size_t OI = (size_t)O * In;
  for (size_t oi = 0; oi < OI; oi++)
    for (int k = 0; k < K; k++) {
      double t = v[oi * K + k];
      norm[k] += t * t;
    }
  for (int k = 0; k < K; k++) norm[k] = g[k] / sqrt(norm[k]);
#pragma omp parallel for schedule(static)
  for (size_t oi = 0; oi < OI; oi++)
    for (int k = 0; k < K; k++) w[oi * K + k] = (float)(v[oi * K + k] * norm[k]);
  return 0;
}
