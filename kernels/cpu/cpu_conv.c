// conv1d on channel-last activations, as GEMMs without an im2col copy where the layout allows.
//
// x (B, Tin, Cin) row-major: the Cin channels of frame t are contiguous, and frames follow each
// other. For groups == 1 and no padding, output frame t reads frames t*s .. t*s+K-1, so taps
// j*s .. j*s+s-1 of every output frame form one contiguous run of s*Cin floats starting at
// (t + j)*s*Cin: a matrix with Tout rows, s*Cin columns and leading dimension s*Cin. Hence
//   y = sum_{j < ceil(K/s)} X_j (Tout, s*Cin) @ W_j^T (s*Cin, Cout)
// with W_j the weight taps j*s .. j*s+s-1 permuted to (Cout, tap, Cin). The HuBERT extractor
// (K=3,s=2 and K=2,s=2) runs as 2 and 1 large GEMMs per utterance, no copies.
// Cin == 1 (the first layer, K=10, s=5) is a direct loop. Padding or groups (the positional
// convolution) use an im2col buffer per (utterance, group) in the workspace.
#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "common/error.h"
#include "kernels/cpu/cpu_internal.h"

// Direct conv for one input channel: y[t, o] = sum_k x[t*s + k] * w[o, k] + b[o].
static void conv_cin1(float *y, const float *x, const float *w, const float *bias, int B, int Tin, int Cout,
                      int K, int stride, int Tout) {
  (void)Tin;
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++)
    for (int t = 0; t < Tout; t++) {
      const float *xt = x + (size_t)b * Tin + (size_t)t * stride;
      float *yt = y + ((size_t)b * Tout + t) * Cout;
      for (int o = 0; o < Cout; o++) {
        const float *wo = w + (size_t)o * K;
        float acc = bias ? bias[o] : 0.0f;
        for (int k = 0; k < K; k++) acc += xt[k] * wo[k];
        yt[o] = acc;
      }
    }
}

static void fill_bias(float *y, const float *bias, size_t rows, int C) {
#pragma omp parallel for schedule(static)
  for (size_t r = 0; r < rows; r++) {
    float *yr = y + r * C;
    if (bias) memcpy(yr, bias, sizeof(float) * C);
    else memset(yr, 0, sizeof(float) * C);
  }
}

int cpu_conv1d(hb_ctx *ctx, float *y, const float *x, const float *w, const float *bias, int B, int Tin,
               int Cin, int Cout, int K, int stride, int pad, int groups) {
  if (groups < 1 || Cin % groups || Cout % groups) return hb_fail("conv1d: channels %d->%d not divisible by groups %d", Cin, Cout, groups);
  if (Tin + 2 * pad < K) return hb_fail("conv1d: input of %d frames is shorter than the kernel (%d)", Tin, K);
  const int Tout = (Tin + 2 * pad - K) / stride + 1;

  if (Cin == 1 && groups == 1 && pad == 0) {
    conv_cin1(y, x, w, bias, B, Tin, Cout, K, stride, Tout);
    return 0;
  }

  if (groups == 1 && pad == 0) {
    // Weight taps permuted to (J, Cout, s*Cin), taps past K zero-filled.
    const int J = (K + stride - 1) / stride;
    const size_t cols = (size_t)stride * Cin;
    float *wp = ops_workspace(ctx, sizeof(float) * (size_t)J * Cout * cols);
    if (!wp) return -1;
    memset(wp, 0, sizeof(float) * (size_t)J * Cout * cols);
    for (int o = 0; o < Cout; o++)
      for (int c = 0; c < Cin; c++)
        for (int k = 0; k < K; k++)
          wp[((size_t)(k / stride) * Cout + o) * cols + (size_t)(k % stride) * Cin + c] = w[((size_t)o * Cin + c) * K + k];
    if (bias) fill_bias(y, bias, (size_t)B * Tout, Cout);
    for (int b = 0; b < B; b++) {
      const float *xb = x + (size_t)b * Tin * Cin;
      float *yb = y + (size_t)b * Tout * Cout;
      for (int j = 0; j < J; j++) {
        // Only the taps that exist: reading past tap K-1 could run off the end of x.
        int taps = K - j * stride < stride ? K - j * stride : stride;
        size_t cols_j = (size_t)taps * Cin;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Tout, Cout, (int)cols_j, 1.0f,
                    xb + (size_t)j * stride * Cin, (int)cols, wp + (size_t)j * Cout * cols, (int)cols,
                    (j == 0 && !bias) ? 0.0f : 1.0f, yb, Cout);
      }
    }
    return 0;
  }

  // General path: per (b, group) im2col (Tout, K*Cg) then GEMM with weights (Cgo, K*Cg).
  const int Cg = Cin / groups, Cgo = Cout / groups;
  const size_t kc = (size_t)K * Cg;
  const int nthr = cpu_threads(ctx);
  size_t wbytes = sizeof(float) * (size_t)Cout * kc;
  size_t colbytes = sizeof(float) * (size_t)Tout * kc;
  char *ws = ops_workspace(ctx, wbytes + colbytes * nthr);
  if (!ws) return -1;
  float *wp = (float *)ws;
  // wp[o][k*Cg + c] = w[o][c][k]
#pragma omp parallel for schedule(static)
  for (int o = 0; o < Cout; o++)
    for (int c = 0; c < Cg; c++)
      for (int k = 0; k < K; k++) wp[(size_t)o * kc + (size_t)k * Cg + c] = w[((size_t)o * Cg + c) * K + k];

  const int tasks = B * groups;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthr)
  for (int task = 0; task < tasks; task++) {
    const int b = task / groups, g = task % groups;
    float *col = (float *)(ws + wbytes + colbytes * (size_t)omp_get_thread_num());
    const float *xb = x + (size_t)b * Tin * Cin + (size_t)g * Cg;
    for (int t = 0; t < Tout; t++) {
      float *row = col + (size_t)t * kc;
      for (int k = 0; k < K; k++) {
        int ti = t * stride + k - pad;
        if (ti < 0 || ti >= Tin) memset(row + (size_t)k * Cg, 0, sizeof(float) * Cg);
        else memcpy(row + (size_t)k * Cg, xb + (size_t)ti * Cin, sizeof(float) * Cg);
      }
    }
    float *yb = y + (size_t)b * Tout * Cout + (size_t)g * Cgo;
    for (int t = 0; t < Tout; t++) {
      float *yr = yb + (size_t)t * Cout;
      if (bias) memcpy(yr, bias + (size_t)g * Cgo, sizeof(float) * Cgo);
      else memset(yr, 0, sizeof(float) * Cgo);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Tout, Cgo, (int)kc, 1.0f, col, (int)kc,
                wp + (size_t)g * Cgo * kc, (int)kc, 1.0f, yb, Cout);
  }
  return 0;
}
