// CUDA ops: conv1d (tap GEMMs, or im2col + strided-batched sgemm over groups), layer/group norm, GELU, add,
// row softmax, weight norm, padding mask. fp32 storage; reductions accumulate in double like the
// CPU reference, so both agree to ~1e-7.
#include <math.h>

#include "kernels/cuda/cuda_backward.h"

#define NT CB_NT  // threads per block of the row kernels

__device__ static float block_max(float v, float *sh) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, o));
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) sh[w] = v;
  __syncthreads();
  if (w == 0) {
    v = lane < (int)(blockDim.x >> 5) ? sh[lane] : -INFINITY;
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, o));
    if (lane == 0) sh[0] = v;
  }
  __syncthreads();
  return sh[0];
}

#define GRID_LOOP CB_GRID_LOOP

// ---- conv1d ---------------------------------------------------------------------------------------
// wp (Cout, K*Cg): wp[o][k*Cg + c] = w[o][c][k], so a group's weights are a (Cgo, K*Cg) block.
__global__ void conv_permute_kernel(float *wp, const float *w, int Cout, int Cg, int K) {
  const size_t kc = (size_t)K * Cg;
  GRID_LOOP(i, (size_t)Cout * kc) {
    const size_t o = i / kc, r = i % kc;
    const int k = (int)(r / Cg), c = (int)(r % Cg);
    wp[i] = w[(o * Cg + c) * K + k];
  }
}

// col (nr, K*Cin) for output rows r0 .. r0+nr-1 of the (B*Tout) rows; a row is laid out
// [group][tap][channel in group], zero where the tap falls in the padding.
__global__ void conv_im2col_kernel(float *col, const float *x, size_t r0, size_t nr, int Tin, int Cin, int Tout,
                                   int K, int stride, int pad, int Cg) {
  const size_t KC = (size_t)K * Cin, KCg = (size_t)K * Cg;
  GRID_LOOP(i, nr * KC) {
    const size_t r = r0 + i / KC, j = i % KC;
    const size_t b = r / Tout, t = r % Tout;
    const size_t g = j / KCg, rem = j % KCg;
    const int k = (int)(rem / Cg), c = (int)(rem % Cg);
    const long ti = (long)t * stride + k - pad;
    col[i] = (ti >= 0 && ti < Tin) ? x[(b * Tin + ti) * Cin + g * Cg + c] : 0.0f;
  }
}

int cuda_conv_permute(hb_ctx *ctx, float *wp, const float *w, int Cout, int Cg, int K) {
  conv_permute_kernel<<<cuda_grid((size_t)Cout * K * Cg, NT), NT, 0, cuda_st(ctx)->stream>>>(wp, w, Cout, Cg, K);
  CHECK_LAUNCH();
  return 0;
}

int cuda_conv_im2col(hb_ctx *ctx, float *col, const float *x, size_t r0, size_t nr, int Tin, int Cin, int Tout, int K,
                     int stride, int pad, int Cg) {
  conv_im2col_kernel<<<cuda_grid(nr * K * Cin, NT), NT, 0, cuda_st(ctx)->stream>>>(col, x, r0, nr, Tin, Cin, Tout, K,
                                                                                    stride, pad, Cg);
  CHECK_LAUNCH();
  return 0;
}

#define CONV_COL_CAP ((size_t)32 << 20)  // floats of im2col scratch per chunk (128 MB)

// wt (J, Cout, s*Cin): wt[j][o][u*Cin + c] = w[o][c][j*s + u], zero for taps j*s + u >= K.
__global__ void conv_taps_kernel(float *wt, const float *w, int Cout, int Cin, int K, int stride, int J) {
  const size_t cols = (size_t)stride * Cin;
  GRID_LOOP(i, (size_t)J * Cout * cols) {
    const size_t j = i / (Cout * cols), o = (i / cols) % Cout, r = i % cols;
    const int u = (int)(r / Cin), c = (int)(r % Cin), k = (int)j * stride + u;
    wt[i] = k < K ? w[(o * Cin + c) * K + k] : 0.0f;
  }
}

int cuda_conv_taps_permute(hb_ctx *ctx, float *wt, const float *w, int Cout, int Cin, int K, int stride, int J) {
  conv_taps_kernel<<<cuda_grid((size_t)J * Cout * stride * Cin, NT), NT, 0, cuda_st(ctx)->stream>>>(wt, w, Cout, Cin, K,
                                                                                                   stride, J);
  CHECK_LAUNCH();
  return 0;
}

// groups == 1, no padding (the extractor's layers): output frame t reads input frames
// t*s .. t*s+K-1, so taps j*s .. j*s+s-1 of every output frame are one contiguous run of s*Cin
// floats at (t + j)*s*Cin: a (Tout, s*Cin) matrix with row stride s*Cin, no copy needed. Hence
//   y_b = sum_{j < ceil(K/s)} X_bj (Tout, taps_j*Cin) @ W_j^T,
// one strided-batched GEMM over the utterances per j (taps_j = min(s, K - j*s): reading past
// tap K-1 could run off the end of x).
static int conv_taps(hb_ctx *ctx, float *y, const float *x, const float *w, const float *bias, int B, int Tin, int Cin,
                     int Cout, int K, int stride, int Tout) {
  const int J = (K + stride - 1) / stride;
  const size_t cols = (size_t)stride * Cin;
  float *wt = (float *)ops_workspace(ctx, sizeof(float) * (size_t)J * Cout * cols);
  if (!wt) return hb_fail_prefix("conv1d workspace");
  cudaStream_t s = cuda_st(ctx)->stream;
  HB_TRY(cuda_conv_taps_permute(ctx, wt, w, Cout, Cin, K, stride, J));
  if (bias) HB_TRY(cuda_fill_rows(ctx, y, bias, (size_t)B * Tout, Cout));
  const float alpha = 1.0f;
  for (int j = 0; j < J; j++) {
    const int taps = K - j * stride < stride ? K - j * stride : stride;
    const float beta = (j == 0 && !bias) ? 0.0f : 1.0f;
    CHECK_CUBLAS(cublasSgemmStridedBatched(cuda_st(ctx)->blas, CUBLAS_OP_T, CUBLAS_OP_N, Cout, Tout, taps * Cin, &alpha,
                                           wt + (size_t)j * Cout * cols, (int)cols, 0, x + (size_t)j * cols, (int)cols,
                                           (long long)Tin * Cin, &beta, y, Cout, (long long)Tout * Cout, B));
  }
  return 0;
}

// General path (groups, padding, Cin == 1):
// y rows are (b, t) pairs; per chunk of rows: im2col, then for each group g
//   y[rows, g*Cgo : (g+1)*Cgo] (+)= col[rows, g*K*Cg : (g+1)*K*Cg] @ wp_g^T
// as one strided-batched GEMM over the groups (column-major view as in cuda_linear).
int cuda_conv1d(hb_ctx *ctx, float *y, const float *x, const float *w, const float *bias, int B, int Tin, int Cin,
                int Cout, int K, int stride, int pad, int groups) {
  if (groups < 1 || Cin % groups || Cout % groups)
    return hb_fail("conv1d: channels %d->%d not divisible by groups %d", Cin, Cout, groups);
  if (K < 1 || stride < 1 || pad < 0) return hb_fail("conv1d: bad kernel %d / stride %d / padding %d", K, stride, pad);
  if (Tin + 2 * pad < K) return hb_fail("conv1d: input of %d frames is shorter than the kernel (%d)", Tin, K);
  const int Tout = (Tin + 2 * pad - K) / stride + 1;
  if (B <= 0) return 0;
  if (groups == 1 && pad == 0 && Cin > 1 && (size_t)stride * Cin <= INT32_MAX)
    return conv_taps(ctx, y, x, w, bias, B, Tin, Cin, Cout, K, stride, Tout);
  const int Cg = Cin / groups, Cgo = Cout / groups;
  const size_t KC = (size_t)K * Cin, KCg = (size_t)K * Cg, rows = (size_t)B * Tout;
  if (!rows) return 0;
  size_t chunk = CONV_COL_CAP / KC;
  if (chunk < 1) chunk = 1;
  if (chunk > rows) chunk = rows;
  if (chunk > (size_t)INT32_MAX) chunk = INT32_MAX;
  float *ws = (float *)ops_workspace(ctx, sizeof(float) * ((size_t)Cout * KCg + chunk * KC));
  if (!ws) return hb_fail_prefix("conv1d workspace");
  float *wp = ws, *col = ws + (size_t)Cout * KCg;
  cudaStream_t s = cuda_st(ctx)->stream;
  HB_TRY(cuda_conv_permute(ctx, wp, w, Cout, Cg, K));
  if (bias) HB_TRY(cuda_fill_rows(ctx, y, bias, rows, Cout));
  const float alpha = 1.0f, beta = bias ? 1.0f : 0.0f;
  for (size_t r0 = 0; r0 < rows; r0 += chunk) {
    const size_t nr = rows - r0 < chunk ? rows - r0 : chunk;
    HB_TRY(cuda_conv_im2col(ctx, col, x, r0, nr, Tin, Cin, Tout, K, stride, pad, Cg));
    CHECK_CUBLAS(cublasSgemmStridedBatched(cuda_st(ctx)->blas, CUBLAS_OP_T, CUBLAS_OP_N, Cgo, (int)nr, (int)KCg,
                                           &alpha, wp, (int)KCg, (long long)Cgo * KCg, col, (int)KC, (long long)KCg,
                                           &beta, y + r0 * Cout, Cout, (long long)Cgo, groups));
  }
  return 0;
}

// ---- norms ----------------------------------------------------------------------------------------
// One block per row: two-pass mean / centred variance in double; mean_rstd (N, 2) = {mean, rstd}
// per row unless NULL.
__global__ void layer_norm_kernel(float *y, float *mean_rstd, const float *x, const float *gamma, const float *beta,
                                  int C, float eps) {
  __shared__ double sh[32];
  const float *xr = x + (size_t)blockIdx.x * C;
  float *yr = y + (size_t)blockIdx.x * C;
  double s = 0;
  for (int c = threadIdx.x; c < C; c += blockDim.x) s += xr[c];
  const double mean = cb_block_sum(s, sh) / C;
  double v = 0;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    const double d = xr[c] - mean;
    v += d * d;
  }
  const double var = cb_block_sum(v, sh) / C;
  const float rstd = (float)(1.0 / sqrt(var + eps)), m = (float)mean;
  if (mean_rstd && threadIdx.x == 0) {
    mean_rstd[2 * (size_t)blockIdx.x] = m;
    mean_rstd[2 * (size_t)blockIdx.x + 1] = rstd;
  }
  // y may alias x: every read of the row above happened before the last block_sum barrier.
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    const float t = (xr[c] - m) * rstd;
    yr[c] = gamma ? t * gamma[c] + (beta ? beta[c] : 0.0f) : t;
  }
}

int cuda_layer_norm_rows(hb_ctx *ctx, float *y, float *mean_rstd, const float *x, const float *gamma,
                         const float *beta, int N, int C, float eps) {
  layer_norm_kernel<<<N, NT, 0, cuda_st(ctx)->stream>>>(y, mean_rstd, x, gamma, beta, C, eps);
  CHECK_LAUNCH();
  return 0;
}

int cuda_layer_norm(hb_ctx *ctx, float *y, const float *x, const float *gamma, const float *beta, int N, int C,
                    float eps) {
  if (N <= 0) return 0;
  return cuda_layer_norm_rows(ctx, y, NULL, x, gamma, beta, N, C, eps);
}

// Statistics mean_rstd (B*G, 2) = {mean, rstd} per (b, g). One block per (b, g): over the T frames x
// Cg channels of the group, in double (channel-last: element e is frame e / Cg, channel g*Cg + e % Cg).
__global__ void group_stats_kernel(float *mean_rstd, const float *x, int T, int C, int G, float eps) {
  __shared__ double sh[32];
  const int b = blockIdx.x / G, g = blockIdx.x % G, Cg = C / G;
  const float *xb = x + (size_t)b * T * C + (size_t)g * Cg;
  const size_t n = (size_t)T * Cg;
  double s = 0;
  for (size_t e = threadIdx.x; e < n; e += blockDim.x) s += xb[(e / Cg) * C + e % Cg];
  const double mean = cb_block_sum(s, sh) / (double)n;
  double v = 0;
  for (size_t e = threadIdx.x; e < n; e += blockDim.x) {
    const double d = xb[(e / Cg) * C + e % Cg] - mean;
    v += d * d;
  }
  const double var = cb_block_sum(v, sh) / (double)n;
  if (threadIdx.x == 0) {
    mean_rstd[2 * (size_t)blockIdx.x] = (float)mean;
    mean_rstd[2 * (size_t)blockIdx.x + 1] = (float)(1.0 / sqrt(var + eps));
  }
}

// G == C (HuBERT's first conv): block (32, 8) owns 32 consecutive channels of utterance
// blockIdx.y and walks the frames with stride 8 (warps read 32 consecutive floats).
__global__ void channel_stats_kernel(float *mean_rstd, const float *x, int T, int C, float eps) {
  __shared__ double part[8][33];
  __shared__ double mean_s[32];
  const int tx = threadIdx.x, ty = threadIdx.y, c = blockIdx.x * 32 + tx, b = blockIdx.y;
  const bool ok = c < C;
  const float *xb = x + (size_t)b * T * C;
  double s = 0;
  if (ok)
    for (int t = ty; t < T; t += 8) s += xb[(size_t)t * C + c];
  part[ty][tx] = s;
  __syncthreads();
  if (ty == 0) {
    double tot = 0;
    for (int i = 0; i < 8; i++) tot += part[i][tx];
    mean_s[tx] = tot / T;
  }
  __syncthreads();
  const double m = mean_s[tx];
  double v = 0;
  if (ok)
    for (int t = ty; t < T; t += 8) {
      const double d = xb[(size_t)t * C + c] - m;
      v += d * d;
    }
  part[ty][tx] = v;  // every read of part above happened before the last barrier
  __syncthreads();
  if (ty == 0 && ok) {
    double tot = 0;
    for (int i = 0; i < 8; i++) tot += part[i][tx];
    mean_rstd[2 * ((size_t)b * C + c)] = (float)m;
    mean_rstd[2 * ((size_t)b * C + c) + 1] = (float)(1.0 / sqrt(tot / T + eps));
  }
}

__global__ void group_apply_kernel(float *y, const float *x, const float *mean_rstd, const float *gamma,
                                   const float *beta, size_t n, int T, int C, int G) {
  const int Cg = C / G;
  GRID_LOOP(i, n) {
    const int c = (int)(i % C);
    const size_t bg = (i / ((size_t)T * C)) * G + c / Cg;
    const float sc = mean_rstd[2 * bg + 1] * (gamma ? gamma[c] : 1.0f);
    y[i] = (x[i] - mean_rstd[2 * bg]) * sc + (beta ? beta[c] : 0.0f);
  }
}

int cuda_group_norm_run(hb_ctx *ctx, float *y, float *mean_rstd, const float *x, const float *gamma,
                        const float *beta, int B, int T, int C, int G, float eps) {
  cudaStream_t s = cuda_st(ctx)->stream;
  if (G == C)
    channel_stats_kernel<<<dim3((unsigned)((C + 31) / 32), (unsigned)B), dim3(32, 8), 0, s>>>(mean_rstd, x, T, C, eps);
  else
    group_stats_kernel<<<B * G, NT, 0, s>>>(mean_rstd, x, T, C, G, eps);
  CHECK_LAUNCH();
  const size_t n = (size_t)B * T * C;
  group_apply_kernel<<<cuda_grid(n, NT), NT, 0, s>>>(y, x, mean_rstd, gamma, beta, n, T, C, G);
  CHECK_LAUNCH();
  return 0;
}

int cuda_group_norm(hb_ctx *ctx, float *y, const float *x, const float *gamma, const float *beta, int B, int T, int C,
                    int G, float eps) {
  if (G < 1 || C % G) return hb_fail("group_norm: %d channels not divisible by %d groups", C, G);
  if (B <= 0 || T <= 0) return 0;
  float *st = (float *)ops_workspace(ctx, sizeof(float) * 2 * (size_t)B * G);
  if (!st) return hb_fail_prefix("group_norm workspace");
  return cuda_group_norm_run(ctx, y, st, x, gamma, beta, B, T, C, G, eps);
}

// ---- elementwise ----------------------------------------------------------------------------------
// GELU = 0.5 x (1 + erf(x/sqrt2)) = 0.5 x erfc(-x/sqrt2): no cancellation for negative x.
__global__ void gelu_kernel(float *y, const float *x, size_t n) {
  GRID_LOOP(i, n) {
    const float v = x[i];
    y[i] = 0.5f * v * erfcf(-v * 0.70710678118654752f);
  }
}

int cuda_gelu(hb_ctx *ctx, float *y, const float *x, size_t n) {
  if (!n) return 0;
  gelu_kernel<<<cuda_grid(n, NT), NT, 0, cuda_st(ctx)->stream>>>(y, x, n);
  CHECK_LAUNCH();
  return 0;
}

__global__ void add_kernel(float *y, const float *a, const float *b, size_t n) {
  GRID_LOOP(i, n) y[i] = a[i] + b[i];
}

int cuda_add(hb_ctx *ctx, float *y, const float *a, const float *b, size_t n) {
  if (!n) return 0;
  add_kernel<<<cuda_grid(n, NT), NT, 0, cuda_st(ctx)->stream>>>(y, a, b, n);
  CHECK_LAUNCH();
  return 0;
}

// One block per row: max, exp and sum (double), scale.
__global__ void softmax_kernel(float *x, int D) {
  __shared__ double sh[32];
  float *r = x + (size_t)blockIdx.x * D;
  float m = -INFINITY;
  for (int d = threadIdx.x; d < D; d += blockDim.x) m = fmaxf(m, r[d]);
  m = block_max(m, (float *)sh);
  double s = 0;
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    const float e = expf(r[d] - m);
    r[d] = e;
    s += e;
  }
  const float inv = (float)(1.0 / cb_block_sum(s, sh));
  for (int d = threadIdx.x; d < D; d += blockDim.x) r[d] *= inv;
}

int cuda_softmax(hb_ctx *ctx, float *x, int N, int D) {
  if (N <= 0 || D <= 0) return 0;
  softmax_kernel<<<N, NT, 0, cuda_st(ctx)->stream>>>(x, D);
  CHECK_LAUNCH();
  return 0;
}

int cuda_mask_padding(hb_ctx *ctx, float *x, const int *len, int B, int T, int C) {
  if (!len) return 0;
  for (int b = 0; b < B; b++) {
    if (len[b] < 0) return hb_fail("mask_padding: negative length %d of item %d", len[b], b);
    if (len[b] >= T) continue;
    CHECK_CUDA(cudaMemsetAsync(x + ((size_t)b * T + len[b]) * C, 0, sizeof(float) * (size_t)(T - len[b]) * C,
                               cuda_st(ctx)->stream));
  }
  return 0;
}

// ---- weight norm (dim = 2) ------------------------------------------------------------------------
// scale[k] = g[k] / ||v[:, :, k]||, one block per k (double accumulation).
__global__ void wn_scale_kernel(double *scale, const float *v, const float *g, size_t OI, int K) {
  __shared__ double sh[32];
  const int k = blockIdx.x;
  double s = 0;
  for (size_t oi = threadIdx.x; oi < OI; oi += blockDim.x) {
    const double t = v[oi * K + k];
    s += t * t;
  }
  s = cb_block_sum(s, sh);
  if (threadIdx.x == 0) scale[k] = g[k] / sqrt(s);
}

__global__ void wn_apply_kernel(float *w, const float *v, const double *scale, size_t n, int K) {
  GRID_LOOP(i, n) w[i] = (float)(v[i] * scale[i % K]);
}

int cuda_weight_norm(hb_ctx *ctx, float *w, const float *v, const float *g, int O, int In, int K) {
  if (K <= 0 || O <= 0 || In <= 0) return 0;
  double *scale = (double *)ops_workspace(ctx, sizeof(double) * (size_t)K);
  if (!scale) return hb_fail_prefix("weight_norm workspace");
  cudaStream_t s = cuda_st(ctx)->stream;
  const size_t OI = (size_t)O * In;
  wn_scale_kernel<<<K, NT, 0, s>>>(scale, v, g, OI, K);
  CHECK_LAUNCH();
  wn_apply_kernel<<<cuda_grid(OI * K, NT), NT, 0, s>>>(w, v, scale, OI * K, K);
  CHECK_LAUNCH();
  return 0;
}
