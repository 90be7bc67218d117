// CUDA training ops: the forward variants that save statistics and the backward of every trunk
// op (kernels/cuda/cuda_*_backward.cu, cuda_attention_train.cu); same contracts as kernels/ops.h.
// Parameter gradients accumulate (+=); input gradients are overwritten; NULL outputs are skipped.
#ifndef HB_CUDA_BACKWARD_H
#define HB_CUDA_BACKWARD_H

#include "kernels/cuda/cuda_check.h"
#include "kernels/dropout_mask.h"

#define CB_NT 256  // threads per block of the row / elementwise kernels (multiple of 32, <= 1024)

#define CB_GRID_LOOP(i, n) \
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

// Sum over the block (blockDim.x a multiple of 32); sh holds >= 32 doubles. Every thread gets
// the total. The leading barrier lets a block call it repeatedly with the same sh.
static __device__ inline double cb_block_sum(double v, double *sh) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) sh[w] = v;
  __syncthreads();
  if (w == 0) {
    v = lane < (int)(blockDim.x >> 5) ? sh[lane] : 0.0;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    if (lane == 0) sh[0] = v;
  }
  __syncthreads();
  return sh[0];
}

// Attention-probability dropout factor of (b, h, query t, key s): keep_scale = 1 / (1 - p) if the
// element is kept (kernels/dropout_mask.h rule on the virtual (B, H, T, T) tensor), else 0; 1
// without dropout (drop == 0).
static __device__ inline float cb_att_drop(int drop, uint64_t seed, uint64_t thr, float keep_scale, int b, int h,
                                           int t, int s, int H, int T) {
  if (!drop) return 1.0f;
  return hb_dropout_keep(seed, hb_attention_dropout_index(b, h, t, s, H, T), thr) ? keep_scale : 0.0f;
}

// Column sums of row-major src (rows, C), deterministic, in double: dst[c] += (float)sum_r src.
// Uses the context workspace (call it before taking the workspace for something else).
int cuda_colsum_acc(hb_ctx *ctx, float *dst, const float *src, size_t rows, int C);

// The conv1d forward's weight / input layouts (cuda_ops.cu), launched on the context stream:
//   wt (J, Cout, s*Cin): wt[j][o][u*Cin + c] = w[o][c][j*s + u], zero for taps j*s + u >= K
//   wp (Cout, K*Cg):     wp[o][k*Cg + c] = w[o][c][k]
//   col (nr, K*Cin):     im2col of output rows r0 .. r0+nr-1 of the (B*Tout) rows,
//                        [group][tap][channel], zero where the tap falls in the padding
int cuda_conv_taps_permute(hb_ctx *ctx, float *wt, const float *w, int Cout, int Cin, int K, int stride, int J);
int cuda_conv_permute(hb_ctx *ctx, float *wp, const float *w, int Cout, int Cg, int K);
int cuda_conv_im2col(hb_ctx *ctx, float *col, const float *x, size_t r0, size_t nr, int Tin, int Cin, int Tout, int K,
                     int stride, int pad, int Cg);
int cuda_conv1d_backward(hb_ctx *ctx, float *dx, float *dw, float *dbias, const float *dy, const float *x,
                         const float *w, int B, int Tin, int Cin, int Cout, int K, int stride, int pad, int groups);
int cuda_linear_backward(hb_ctx *ctx, float *dx, float *dw, float *dbias, const float *dy, const float *x,
                         const float *w, int N, int Cin, int Cout);
// Mixed precision (ctx->precision == HB_PRECISION_BF16; kernels/cuda/cuda_linear_bf16.cu): the
// GEMMs of linear / linear_backward with bf16 inputs, fp32 accumulation and outputs.
int cuda_linear_bf16(hb_ctx *ctx, float *y, const float *x, const float *w, const float *bias, int N, int Cin,
                     int Cout);
int cuda_linear_backward_bf16(hb_ctx *ctx, float *dx, float *dw, float *dbias, const float *dy, const float *x,
                              const float *w, int N, int Cin, int Cout);
// The norm forwards of cuda_ops.cu behind the checks (N, B >= 1): mean_rstd {mean, rstd} per row
// (may be NULL) / per (b, g) (required). Also the inference ops.
int cuda_layer_norm_rows(hb_ctx *ctx, float *y, float *mean_rstd, const float *x, const float *gamma,
                         const float *beta, int N, int C, float eps);
int cuda_group_norm_run(hb_ctx *ctx, float *y, float *mean_rstd, const float *x, const float *gamma,
                        const float *beta, int B, int T, int C, int G, float eps);
int cuda_layer_norm_train(hb_ctx *ctx, float *y, float *mean_rstd, const float *x, const float *gamma,
                          const float *beta, int N, int C, float eps);
int cuda_layer_norm_backward(hb_ctx *ctx, float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                             const float *mean_rstd, const float *gamma, int N, int C);
int cuda_group_norm_train(hb_ctx *ctx, float *y, float *mean_rstd, const float *x, const float *gamma,
                          const float *beta, int B, int T, int C, int G, float eps);
int cuda_group_norm_backward(hb_ctx *ctx, float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                             const float *mean_rstd, const float *gamma, int B, int T, int C, int G);
int cuda_gelu_backward(hb_ctx *ctx, float *dx, const float *dy, const float *x, size_t n);
int cuda_softmax_backward(hb_ctx *ctx, float *dx, const float *dy, const float *y, int N, int D);
int cuda_attention_train(hb_ctx *ctx, float *out, float *lse, const float *q, const float *k, const float *v,
                         const int *len, int B, int T, int H, int Dh, float scale, float dropout_p,
                         uint64_t dropout_seed);
// Launch of the fused attention forward (cuda_attention_train.cu) after the checks: d_len on the
// device (or NULL), lse may be NULL, dropout_p 0 disables dropout. Also the inference attention.
#define CUDA_ATT_DMAX 128  // largest head dimension of the kernel
int cuda_attention_launch(hb_ctx *ctx, float *out, float *lse, const float *q, const float *k, const float *v,
                          const int *d_len, int B, int T, int H, int Dh, float scale, float dropout_p,
                          uint64_t dropout_seed);
// Shared checks of the two (cuda_attention_train.cu): shape, Dh <= 128, grid limits, dropout_p in
// [0, 1], lengths in [1, T]; uploads len (*d_len = device copy, NULL when len is NULL).
int cuda_attention_check(hb_ctx *ctx, const char *op, const int *len, int B, int T, int H, int Dh, float dropout_p,
                         const int **d_len);
int cuda_attention_backward(hb_ctx *ctx, float *dq, float *dk, float *dv, const float *dout, const float *q,
                            const float *k, const float *v, const float *lse, const int *len, int B, int T, int H,
                            int Dh, float scale, float dropout_p, uint64_t dropout_seed);
int cuda_weight_norm_backward(hb_ctx *ctx, float *dv, float *dg, const float *dw, const float *v, const float *g,
                              int O, int In, int K);
int cuda_mask_padding_backward(hb_ctx *ctx, float *dx, const int *len, int B, int T, int C);
int cuda_axpy(hb_ctx *ctx, float *y, float a, const float *x, size_t n);
int cuda_scale(hb_ctx *ctx, float *y, const float *x, float a, size_t n);

#endif
