// Backward of the elementwise ops (GELU, softmax, weight norm, padding mask) and the gradient
// accumulation helpers axpy / scale.
#include <math.h>
#include <string.h>

#include "common/error.h"
#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/cpu_math.h"

// gelu'(x) = Phi(x) + x phi(x), Phi(x) = 0.5 erfc(-x / sqrt 2), phi(x) = exp(-x^2 / 2) / sqrt(2 pi).
static inline float gelu_grad(float x) {
  const float z = fabsf(x) * 0.70710678118654752f;
  const float e = 0.5f * hb_erfc_pos(z);
  const float Phi = x >= 0.0f ? 1.0f - e : e;
  return Phi + x * 0.39894228040143268f * hb_expf(-0.5f * x * x);
}

int cpu_gelu_backward(hb_ctx *ctx, float *dx, const float *dy, const float *x, size_t n) {
  (void)ctx;
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) dx[i] = dy[i] * gelu_grad(x[i]);
  return 0;
}

int cpu_softmax_backward(hb_ctx *ctx, float *dx, const float *dy, const float *y, int N, int D) {
  (void)ctx;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float *dyr = dy + (size_t)n * D, *yr = y + (size_t)n * D;
    float *dxr = dx + (size_t)n * D;
    double s = 0;
    for (int d = 0; d < D; d++) s += (double)dyr[d] * yr[d];
    const float sf = (float)s;
    for (int d = 0; d < D; d++) dxr[d] = yr[d] * (dyr[d] - sf);
  }
  return 0;
}

// w = g v / n with n_k = ||v[:, :, k]||. With s_k = sum_oi dw v:
//   dg_k += s_k / n_k,   dv += (g_k / n_k) dw - (g_k s_k / n_k^3) v.
int cpu_weight_norm_backward(hb_ctx *ctx, float *dv, float *dg, const float *dw, const float *v, const float *g,
                             int O, int In, int K) {
  if (O < 1 || In < 1 || K < 1) return hb_fail("weight_norm_backward: bad shape (%d, %d, %d)", O, In, K);
  double *ws = ops_workspace(ctx, sizeof(double) * 4 * (size_t)K);
  if (!ws) return -1;
  double *nrm = ws, *s = ws + K, *a = s + K, *c = a + K;
  for (int k = 0; k < K; k++) nrm[k] = s[k] = 0;
  const size_t OI = (size_t)O * In;
  for (size_t oi = 0; oi < OI; oi++)
    for (int k = 0; k < K; k++) {
      const double t = v[oi * K + k];
      nrm[k] += t * t;
      s[k] += (double)dw[oi * K + k] * t;
    }
  for (int k = 0; k < K; k++) {
    nrm[k] = sqrt(nrm[k]);
    if (dg) dg[k] += (float)(s[k] / nrm[k]);
    a[k] = g[k] / nrm[k];
    c[k] = g[k] * s[k] / (nrm[k] * nrm[k] * nrm[k]);
  }
  if (!dv) return 0;
#pragma omp parallel for schedule(static)
  for (size_t oi = 0; oi < OI; oi++)
    for (int k = 0; k < K; k++) dv[oi * K + k] += (float)(a[k] * dw[oi * K + k] - c[k] * v[oi * K + k]);
  return 0;
}

int cpu_axpy(hb_ctx *ctx, float *y, float a, const float *x, size_t n) {
  (void)ctx;
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) y[i] += a * x[i];
  return 0;
}

int cpu_scale(hb_ctx *ctx, float *y, const float *x, float a, size_t n) {
  (void)ctx;
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) y[i] = a * x[i];
  return 0;
}
