// Backward of the elementwise ops (GELU, softmax, weight norm, padding mask) and the gradient
// accumulation helpers axpy / scale. Reductions in double, as the CPU reference.
#include <math.h>

#include "kernels/cuda/cuda_backward.h"

// gelu'(x) = Phi(x) + x phi(x), Phi(x) = 0.5 erfc(-x / sqrt 2), phi(x) = exp(-x^2 / 2) / sqrt(2 pi).
// The erfc form has no cancellation for negative x; NaN propagates.
__global__ void cb_gelu_backward_kernel(float *dx, const float *dy, const float *x, size_t n) {
  CB_GRID_LOOP(i, n) {
    const float v = x[i];
    const float Phi = 0.5f * erfcf(-v * 0.70710678118654752f);
    dx[i] = dy[i] * (Phi + v * 0.39894228040143268f * expf(-0.5f * v * v));
  }
}

int cuda_gelu_backward(hb_ctx *ctx, float *dx, const float *dy, const float *x, size_t n) {
  if (!n) return 0;
  cb_gelu_backward_kernel<<<cuda_grid(n, CB_NT), CB_NT, 0, cuda_st(ctx)->stream>>>(dx, dy, x, n);
  CHECK_LAUNCH();
  return 0;
}

// One block per row: s = sum_d dy y (double), dx = y (dy - s). dx may alias dy: every read of the
// sum pass precedes the block_sum barrier, and the write pass reads each element before writing it.
__global__ void cb_softmax_backward_kernel(float *dx, const float *dy, const float *y, int D) {
  __shared__ double sh[32];
  const size_t off = (size_t)blockIdx.x * D;
  const float *dyr = dy + off, *yr = y + off;
  float *dxr = dx + off;
  double s = 0;
  for (int d = threadIdx.x; d < D; d += blockDim.x) s += (double)dyr[d] * yr[d];
  const float sf = (float)cb_block_sum(s, sh);
  for (int d = threadIdx.x; d < D; d += blockDim.x) dxr[d] = yr[d] * (dyr[d] - sf);
}

int cuda_softmax_backward(hb_ctx *ctx, float *dx, const float *dy, const float *y, int N, int D) {
  if (N <= 0 || D <= 0) return 0;
  cb_softmax_backward_kernel<<<N, CB_NT, 0, cuda_st(ctx)->stream>>>(dx, dy, y, D);
  CHECK_LAUNCH();
  return 0;
}

// w = g v / n with n_k = ||v[:, :, k]||. With s_k = sum_oi dw v:
//   dg_k += s_k / n_k,   dv += (g_k / n_k) dw - (g_k s_k / n_k^3) v.
// One block per k: n_k and s_k in double; coef[k] = {g/n, g s / n^3}.
__global__ void cb_wn_backward_stats_kernel(double *coef, float *dg, const float *dw, const float *v, const float *g,
                                            size_t OI, int K) {
  __shared__ double sh[32];
  const int k = blockIdx.x;
  double nn = 0, s = 0;
  for (size_t oi = threadIdx.x; oi < OI; oi += blockDim.x) {
    const double t = v[oi * K + k];
    nn += t * t;
    s += (double)dw[oi * K + k] * t;
  }
  nn = cb_block_sum(nn, sh);
  s = cb_block_sum(s, sh);
  if (threadIdx.x == 0) {
    const double nrm = sqrt(nn);
    if (dg) dg[k] += (float)(s / nrm);
    coef[2 * k] = g[k] / nrm;
    coef[2 * k + 1] = g[k] * s / (nrm * nrm * nrm);
  }
}

__global__ void cb_wn_backward_apply_kernel(float *dv, const float *dw, const float *v, const double *coef, size_t n,
                                            int K) {
  CB_GRID_LOOP(i, n) {
    const int k = (int)(i % K);
    dv[i] += (float)(coef[2 * k] * dw[i] - coef[2 * k + 1] * v[i]);
  }
}

int cuda_weight_norm_backward(hb_ctx *ctx, float *dv, float *dg, const float *dw, const float *v, const float *g,
                              int O, int In, int K) {
  if (O < 1 || In < 1 || K < 1) return hb_fail("weight_norm_backward: bad shape (%d, %d, %d)", O, In, K);
  if (!dv && !dg) return 0;
  double *coef = (double *)ops_workspace(ctx, sizeof(double) * 2 * (size_t)K);
  if (!coef) return hb_fail_prefix("weight_norm_backward workspace");
  cudaStream_t s = cuda_st(ctx)->stream;
  const size_t OI = (size_t)O * In;
  cb_wn_backward_stats_kernel<<<K, CB_NT, 0, s>>>(coef, dg, dw, v, g, OI, K);
  CHECK_LAUNCH();
  if (dv) {
    cb_wn_backward_apply_kernel<<<cuda_grid(OI * K, CB_NT), CB_NT, 0, s>>>(dv, dw, v, coef, OI * K, K);
    CHECK_LAUNCH();
  }
  return 0;
}

// The mask zeroes padded frames, so its gradient zeroes them too.
int cuda_mask_padding_backward(hb_ctx *ctx, float *dx, const int *len, int B, int T, int C) {
  if (!len) return 0;
  for (int b = 0; b < B; b++) {
    if (len[b] < 0) return hb_fail("mask_padding_backward: negative length %d of item %d", len[b], b);
    if (len[b] >= T) continue;
    CHECK_CUDA(cudaMemsetAsync(dx + ((size_t)b * T + len[b]) * C, 0, sizeof(float) * (size_t)(T - len[b]) * C,
                               cuda_st(ctx)->stream));
  }
  return 0;
}

__global__ void cb_axpy_kernel(float *y, float a, const float *x, size_t n) {
  CB_GRID_LOOP(i, n) y[i] += a * x[i];
}

int cuda_axpy(hb_ctx *ctx, float *y, float a, const float *x, size_t n) {
  if (!n) return 0;
  cb_axpy_kernel<<<cuda_grid(n, CB_NT), CB_NT, 0, cuda_st(ctx)->stream>>>(y, a, x, n);
  CHECK_LAUNCH();
  return 0;
}

__global__ void cb_scale_kernel(float *y, const float *x, float a, size_t n) {
  CB_GRID_LOOP(i, n) y[i] = a * x[i];
}

int cuda_scale(hb_ctx *ctx, float *y, const float *x, float a, size_t n) {
  if (!n) return 0;
  cb_scale_kernel<<<cuda_grid(n, CB_NT), CB_NT, 0, cuda_st(ctx)->stream>>>(y, x, a, n);
  CHECK_LAUNCH();
  return 0;
}
