// Backward of conv1d and linear on channel-last activations, with the forward's GEMM structure.
//
// conv1d, groups == 1 and pad == 0 (the HuBERT extractor, Cin > 1): the forward is
//   y_b = sum_j X_j (Tout, taps_j*Cin; ld s*Cin) @ W_j^T,   W_j: (Cout, taps_j*Cin), taps j*s..
// on strided views X_j of x_b (no copy), so
//   dW_j += dy_b^T (Cout, Tout) @ X_j          dX_j += dy_b (Tout, Cout) @ W_j
// where dX_j is the same strided view of dx_b: views j and j+1 overlap in frames, so the GEMMs
// run one after another with beta = 1 on a zeroed dx. Called outside parallel regions: OpenBLAS
// threads each GEMM.
// Other cases (Cin == 1, groups, padding): per (b, group) im2col col (Tout, K*Cg), then
//   dW_g += dy_bg^T @ col,   dcol = dy_bg @ W_g,   col2im(dcol) -> dx (scatter-add)
// Tasks are the groups (each owns its dW_g and its dx channels: race-free) with a loop over b
// inside; with fewer groups than threads they run serially and BLAS threads instead.
#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "common/error.h"
#include "kernels/cpu/cpu_internal.h"

#define COLSUM_BLOCK 64

// dst[c] += sum_r src[r, c], src (rows, C). Each thread owns a block of columns: race-free and
// deterministic; sums in double.
static void colsum_acc(float *dst, const float *src, size_t rows, int C) {
  const int nblk = (C + COLSUM_BLOCK - 1) / COLSUM_BLOCK;
#pragma omp parallel for schedule(static)
  for (int blk = 0; blk < nblk; blk++) {
    const int c0 = blk * COLSUM_BLOCK, nc = C - c0 < COLSUM_BLOCK ? C - c0 : COLSUM_BLOCK;
    double acc[COLSUM_BLOCK] = {0};
    for (size_t r = 0; r < rows; r++) {
      const float *sr = src + r * C + c0;
      for (int c = 0; c < nc; c++) acc[c] += sr[c];
    }
    for (int c = 0; c < nc; c++) dst[c0 + c] += (float)acc[c];
  }
}

int cpu_linear_backward(hb_ctx *ctx, float *dx, float *dw, float *dbias, const float *dy, const float *x,
                        const float *w, int N, int Cin, int Cout) {
  (void)ctx;
  if (N < 0 || Cin < 1 || Cout < 1) return hb_fail("linear_backward: bad shape N=%d Cin=%d Cout=%d", N, Cin, Cout);
  if (N == 0) return 0;
  // dx (N, Cin) = dy (N, Cout) @ w (Cout, Cin)
  if (dx) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, Cin, Cout, 1.0f, dy, Cout, w, Cin, 0.0f, dx, Cin);
  // dw (Cout, Cin) += dy^T (Cout, N) @ x (N, Cin)
  if (dw) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Cout, Cin, N, 1.0f, dy, Cout, x, Cin, 1.0f, dw, Cin);
  if (dbias) colsum_acc(dbias, dy, (size_t)N, Cout);
  return 0;
}

// groups == 1, pad == 0, Cin > 1: strided-view GEMMs (see the top comment).
static int conv_backward_strided(hb_ctx *ctx, float *dx, float *dw, const float *dy, const float *x, const float *w,
                                 int B, int Tin, int Cin, int Cout, int K, int stride, int Tout) {
  const int J = (K + stride - 1) / stride;
  const size_t cols = (size_t)stride * Cin, wn = (size_t)J * Cout * cols;
  float *wp = ops_workspace(ctx, sizeof(float) * 2 * wn);  // permuted w, then permuted dw
  if (!wp) return -1;
  float *dwp = wp + wn;
  memset(wp, 0, sizeof(float) * 2 * wn);
  // wp[j][o][(k % s)*Cin + c] = w[o][c][k], j = k / s
  for (int o = 0; o < Cout; o++)
    for (int c = 0; c < Cin; c++)
      for (int k = 0; k < K; k++)
        wp[((size_t)(k / stride) * Cout + o) * cols + (size_t)(k % stride) * Cin + c] = w[((size_t)o * Cin + c) * K + k];
  if (dx) memset(dx, 0, sizeof(float) * (size_t)B * Tin * Cin);
  for (int b = 0; b < B; b++) {
    const float *xb = x + (size_t)b * Tin * Cin, *dyb = dy + (size_t)b * Tout * Cout;
    float *dxb = dx ? dx + (size_t)b * Tin * Cin : NULL;
    for (int j = 0; j < J; j++) {
      // Only the taps that exist (a view past tap K-1 could run off the end of x).
      const int taps = K - j * stride < stride ? K - j * stride : stride;
      const int cj = taps * Cin;
      if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Cout, cj, Tout, 1.0f, dyb, Cout,
                    xb + (size_t)j * stride * Cin, (int)cols, 1.0f, dwp + (size_t)j * Cout * cols, (int)cols);
      if (dxb)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Tout, cj, Cout, 1.0f, dyb, Cout,
                    wp + (size_t)j * Cout * cols, (int)cols, 1.0f, dxb + (size_t)j * stride * Cin, (int)cols);
    }
  }
  if (dw) {
#pragma omp parallel for schedule(static)
    for (int o = 0; o < Cout; o++)
      for (int c = 0; c < Cin; c++)
        for (int k = 0; k < K; k++)
          dw[((size_t)o * Cin + c) * K + k] += dwp[((size_t)(k / stride) * Cout + o) * cols + (size_t)(k % stride) * Cin + c];
  }
  return 0;
}

// Group g of conv_backward_im2col over all utterances; col, dcol: (Tout, kc) scratch.
static void im2col_backward_group(float *dx, float *dwp, const float *dy, const float *x, const float *wp, float *col,
                                  float *dcol, int g, int B, int Tin, int Cin, int Cout, int K, int stride, int pad,
                                  int groups, int Tout, int dw) {
  const int Cg = Cin / groups, Cgo = Cout / groups;
  const size_t kc = (size_t)K * Cg;
  for (int b = 0; b < B; b++) {
    const float *dyb = dy + (size_t)b * Tout * Cout + (size_t)g * Cgo;  // (Tout, Cgo), ld Cout
    if (dw) {
      const float *xb = x + (size_t)b * Tin * Cin + (size_t)g * Cg;
      for (int t = 0; t < Tout; t++) {
        float *row = col + (size_t)t * kc;
        for (int k = 0; k < K; k++) {
          const int ti = t * stride + k - pad;
          if (ti < 0 || ti >= Tin) memset(row + (size_t)k * Cg, 0, sizeof(float) * Cg);
          else memcpy(row + (size_t)k * Cg, xb + (size_t)ti * Cin, sizeof(float) * Cg);
        }
      }
      // dW_g (Cgo, kc) += dy_bg^T (Cgo, Tout) @ col (Tout, kc)
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Cgo, (int)kc, Tout, 1.0f, dyb, Cout, col, (int)kc, 1.0f,
                  dwp + (size_t)g * Cgo * kc, (int)kc);
    }
    if (dx) {
      // dcol (Tout, kc) = dy_bg (Tout, Cgo) @ W_g (Cgo, kc), then scatter-add into dx_bg.
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Tout, (int)kc, Cgo, 1.0f, dyb, Cout,
                  wp + (size_t)g * Cgo * kc, (int)kc, 0.0f, dcol, (int)kc);
      float *dxb = dx + (size_t)b * Tin * Cin + (size_t)g * Cg;
      for (int t = 0; t < Tin; t++) memset(dxb + (size_t)t * Cin, 0, sizeof(float) * Cg);
      for (int t = 0; t < Tout; t++) {
        const float *row = dcol + (size_t)t * kc;
        for (int k = 0; k < K; k++) {
          const int ti = t * stride + k - pad;
          if (ti < 0 || ti >= Tin) continue;
          float *d = dxb + (size_t)ti * Cin;
          const float *r = row + (size_t)k * Cg;
          for (int c = 0; c < Cg; c++) d[c] += r[c];
        }
      }
    }
  }
}

// General path: im2col / col2im per (b, group).
static int conv_backward_im2col(hb_ctx *ctx, float *dx, float *dw, const float *dy, const float *x, const float *w,
                                int B, int Tin, int Cin, int Cout, int K, int stride, int pad, int groups, int Tout) {
  const int Cg = Cin / groups;
  const size_t kc = (size_t)K * Cg, wn = (size_t)Cout * kc, coln = (size_t)Tout * kc;
  const int nthr = cpu_threads(ctx);
  const int par = groups >= nthr && nthr > 1;
  const int nbuf = par ? nthr : 1;
  float *wp = ops_workspace(ctx, sizeof(float) * (2 * wn + 2 * coln * (size_t)nbuf));
  if (!wp) return -1;
  float *dwp = wp + wn, *bufs = dwp + wn;
  memset(dwp, 0, sizeof(float) * wn);
  // wp[o][k*Cg + c] = w[o][c][k]
#pragma omp parallel for schedule(static)
  for (int o = 0; o < Cout; o++)
    for (int c = 0; c < Cg; c++)
      for (int k = 0; k < K; k++) wp[(size_t)o * kc + (size_t)k * Cg + c] = w[((size_t)o * Cg + c) * K + k];

  // Inside a parallel region OpenBLAS runs each GEMM single-threaded; with fewer groups than
  // threads the groups run outside any OpenMP construct so that OpenBLAS threads the GEMMs itself
  // (an inactive `if (0)` region would make it start a nested team per call).
  if (par) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthr)
    for (int g = 0; g < groups; g++) {
      float *col = bufs + 2 * coln * (size_t)omp_get_thread_num();
      im2col_backward_group(dx, dwp, dy, x, wp, col, col + coln, g, B, Tin, Cin, Cout, K, stride, pad, groups, Tout,
                            dw != NULL);
    }
  } else {
    for (int g = 0; g < groups; g++)
      im2col_backward_group(dx, dwp, dy, x, wp, bufs, bufs + coln, g, B, Tin, Cin, Cout, K, stride, pad, groups, Tout,
                            dw != NULL);
  }
  if (dw) {
#pragma omp parallel for schedule(static)
    for (int o = 0; o < Cout; o++)
      for (int c = 0; c < Cg; c++)
        for (int k = 0; k < K; k++) dw[((size_t)o * Cg + c) * K + k] += dwp[(size_t)o * kc + (size_t)k * Cg + c];
  }
  return 0;
}

int cpu_conv1d_backward(hb_ctx *ctx, float *dx, float *dw, float *dbias, const float *dy, const float *x,
                        const float *w, int B, int Tin, int Cin, int Cout, int K, int stride, int pad, int groups) {
  if (groups < 1 || Cin % groups || Cout % groups)
    return hb_fail("conv1d_backward: channels %d->%d not divisible by groups %d", Cin, Cout, groups);
  if (K < 1 || stride < 1 || pad < 0) return hb_fail("conv1d_backward: bad kernel %d / stride %d / pad %d", K, stride, pad);
  if (Tin + 2 * pad < K) return hb_fail("conv1d_backward: input of %d frames is shorter than the kernel (%d)", Tin, K);
  const int Tout = (Tin + 2 * pad - K) / stride + 1;
  if (dbias) colsum_acc(dbias, dy, (size_t)B * Tout, Cout);
  if (!dx && !dw) return 0;
  if (groups == 1 && pad == 0 && Cin > 1)
    return conv_backward_strided(ctx, dx, dw, dy, x, w, B, Tin, Cin, Cout, K, stride, Tout);
  return conv_backward_im2col(ctx, dx, dw, dy, x, w, B, Tin, Cin, Cout, K, stride, pad, groups, Tout);
}
