// Backward of the elementwise ops (GELU, softmax, weight norm, padding mask) and the gradient
// accumulation helpers axpy / scale.
#include <math.h>
#include <string.h>

#include "common/error.h"
#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/cpu_math.h"

// gelu'(x) = Phi(x) + x phi(x), Phi(x) = 0.5 erfc(-x / sqrt 2), phi(x) = exp(-x^2 / 2) / sqrt(2 pi).
// Scalar for tails, 8-wide (cpu_math.h's vector extensions) for the bulk; NaN propagates.
static inline float gelu_grad(float x) {
  const float e = 0.5f * hb_erfc_pos(fabsf(x) * 0.70710678118654752f);
  const float Phi = x >= 0.0f ? 1.0f - e : e;
  return Phi + x * 0.39894228040143268f * hb_expf(-0.5f * x * x);
}
static inline hb_v8f gelu_grad8(hb_v8f x) {
  const hb_v8f z = (hb_v8f)((hb_v8i)x & 0x7fffffff) * 0.70710678118654752f;
  const hb_v8f t = 1.0f / (1.0f + 0.5f * z);
  const hb_v8f e = 0.5f * t * hb_exp8(-z * z + HB_ERFC_POLY(t));
  const hb_v8f Phi = hb_select8(x >= 0.0f, 1.0f - e, e);
  return Phi + x * 0.39894228040143268f * hb_exp8(-0.5f * x * x);
}

int cpu_gelu_backward(hb_ctx *ctx, float *dx, const float *dy, const float *x, size_t n) {
  (void)ctx;
  const size_t chunk = 4096, nchunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
  for (size_t c = 0; c < nchunks; c++) {
    const size_t i0 = c * chunk, i1 = n - i0 < chunk ? n : i0 + chunk;
    size_t i = i0;
    for (; i + 8 <= i1; i += 8) {
      hb_v8f xv, gv;
      memcpy(&xv, x + i, sizeof xv);
      memcpy(&gv, dy + i, sizeof gv);
      gv *= gelu_grad8(xv);
      memcpy(dx + i, &gv, sizeof gv);
    }
    for (; i < i1; i++) dx[i] = dy[i] * gelu_grad(x[i]);
  }
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
