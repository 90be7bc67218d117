// conv1d backward on channel-last activations, with the forward's GEMM structure (cuBLAS, fp32).
//
// groups == 1, pad == 0, Cin > 1 (the extractor's later layers): the forward is
//   y_b = sum_j X_bj (Tout, taps_j*Cin; row stride s*Cin) @ W_j^T,   W_j (Cout, taps_j*Cin)
// on strided views X_bj of x_b (taps j*s .. j*s+taps_j-1, no copy), so
//   dW_j += dy_b^T @ X_bj    (per utterance, beta = 1)
//   dX_bj += dy_b @ W_j      (strided-batched over utterances; the views of j and j+1 overlap in
//                             frames, so the J GEMMs run in stream order with beta = 1 on a zeroed dx)
// Other cases (Cin == 1, groups, padding): rows r = (b, t) of the output in chunks; per chunk
//   col (nr, K*Cin) = im2col(x), [group][tap][channel] per row
//   dW_g (Cgo, K*Cg) += dy_g^T @ col_g          (strided-batched over groups)
//   dcol_g (nr, K*Cg) = dy_g @ W_g              (into the col buffer)
//   dx += col2im(dcol): a gather, one thread per dx element summing the taps that read it, so no
//   atomics; chunks run in stream order (deterministic).
#include "kernels/cuda/cuda_backward.h"

#define CONV_COL_CAP ((size_t)32 << 20)  // floats of im2col scratch per chunk (128 MB)

// dw[o][c][k] += dwt[k / s][o][(k % s)*Cin + c]
__global__ void cb_taps_unpermute_kernel(float *dw, const float *dwt, int Cout, int Cin, int K, int stride) {
  const size_t cols = (size_t)stride * Cin;
  CB_GRID_LOOP(i, (size_t)Cout * Cin * K) {
    const size_t o = i / ((size_t)Cin * K);
    const int c = (int)((i / K) % Cin), k = (int)(i % K);
    dw[i] += dwt[((size_t)(k / stride) * Cout + o) * cols + (size_t)(k % stride) * Cin + c];
  }
}

static int conv_backward_taps(hb_ctx *ctx, float *dx, float *dw, const float *dy, const float *x, const float *w,
                              int B, int Tin, int Cin, int Cout, int K, int stride, int Tout) {
  const int J = (K + stride - 1) / stride;
  const size_t cols = (size_t)stride * Cin, wn = (size_t)J * Cout * cols;
  float *wt = (float *)ops_workspace(ctx, sizeof(float) * 2 * wn);  // permuted w, then permuted dw
  if (!wt) return hb_fail_prefix("conv1d_backward workspace");
  float *dwt = wt + wn;
  cudaStream_t s = cuda_st(ctx)->stream;
  cublasHandle_t h = cuda_st(ctx)->blas;
  const float one = 1.0f;
  if (dx) {
    HB_TRY(cuda_conv_taps_permute(ctx, wt, w, Cout, Cin, K, stride, J));
    CHECK_CUDA(cudaMemsetAsync(dx, 0, sizeof(float) * (size_t)B * Tin * Cin, s));
    for (int j = 0; j < J; j++) {
      const int cj = (K - j * stride < stride ? K - j * stride : stride) * Cin;
      // column-major: dX_bj^T (cj, Tout; ld cols) += W_j^T (cj, Cout; ld cols) @ dy_b^T (Cout, Tout)
      CHECK_CUBLAS(cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, cj, Tout, Cout, &one, wt + (size_t)j * Cout * cols,
                                             (int)cols, 0, dy, Cout, (long long)Tout * Cout, &one,
                                             dx + (size_t)j * stride * Cin, (int)cols, (long long)Tin * Cin, B));
    }
  }
  if (dw) {
    CHECK_CUDA(cudaMemsetAsync(dwt, 0, sizeof(float) * wn, s));
    for (int b = 0; b < B; b++)
      for (int j = 0; j < J; j++) {
        const int cj = (K - j * stride < stride ? K - j * stride : stride) * Cin;
        // column-major: dW_j^T (cj, Cout; ld cols) += X_bj^T (cj, Tout; ld cols) @ dy_b (Tout, Cout)
        CHECK_CUBLAS(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, cj, Cout, Tout, &one,
                                 x + (size_t)b * Tin * Cin + (size_t)j * stride * Cin, (int)cols,
                                 dy + (size_t)b * Tout * Cout, Cout, &one, dwt + (size_t)j * Cout * cols, (int)cols));
      }
    cb_taps_unpermute_kernel<<<cuda_grid((size_t)Cout * Cin * K, CB_NT), CB_NT, 0, s>>>(dw, dwt, Cout, Cin, K, stride);
    CHECK_LAUNCH();
  }
  return 0;
}

// dw[o][c][k] += dwp[o][k*Cg + c]
__global__ void cb_conv_unpermute_kernel(float *dw, const float *dwp, int Cout, int Cg, int K) {
  const size_t kc = (size_t)K * Cg;
  CB_GRID_LOOP(i, (size_t)Cout * kc) {
    const size_t o = i / kc;
    const int c = (int)((i / K) % Cg), k = (int)(i % K);
    dw[i] += dwp[o * kc + (size_t)k * Cg + c];
  }
}

// dx[b, ti, c] += sum over output frames t of rows r0 .. r0+nr-1 with tap k = ti + pad - t*s in
// [0, K) of dcol[r - r0][g*K*Cg + k*Cg + c % Cg]. Threads cover the dx elements of flat frames
// f0 .. f0 + nf - 1 (f = b*Tin + ti): exactly the frames the chunk's rows read.
__global__ void cb_col2im_kernel(float *dx, const float *dcol, size_t r0, size_t nr, size_t f0, size_t nf, int Tin,
                                 int Cin, int Tout, int K, int stride, int pad, int Cg) {
  const size_t KC = (size_t)K * Cin, KCg = (size_t)K * Cg;
  CB_GRID_LOOP(i, nf * Cin) {
    const size_t f = f0 + i / Cin;
    const int c = (int)(i % Cin), g = c / Cg, cc = c % Cg;
    const long b = (long)(f / Tin), ti = (long)(f % Tin);
    // t*s <= ti + pad and t*s > ti + pad - K, within the utterance and the chunk
    long tlo = ti + pad - K + 1 > 0 ? (ti + pad - K + 1 + stride - 1) / stride : 0;
    long thi = (ti + pad) / stride;
    const long rlo = (long)r0 - b * Tout, rhi = (long)(r0 + nr) - 1 - b * Tout;
    if (tlo < rlo) tlo = rlo;
    if (thi > rhi) thi = rhi;
    if (thi > Tout - 1) thi = Tout - 1;
    float acc = 0.0f;
    for (long t = tlo; t <= thi; t++) {
      const long k = ti + pad - t * stride;
      acc += dcol[(size_t)(b * Tout + t - (long)r0) * KC + (size_t)g * KCg + (size_t)k * Cg + cc];
    }
    dx[f * Cin + c] += acc;
  }
}

static int conv_backward_im2col(hb_ctx *ctx, float *dx, float *dw, const float *dy, const float *x, const float *w,
                                int B, int Tin, int Cin, int Cout, int K, int stride, int pad, int groups, int Tout) {
  const int Cg = Cin / groups, Cgo = Cout / groups;
  const size_t KCg = (size_t)K * Cg, KC = (size_t)K * Cin, wn = (size_t)Cout * KCg;
  const size_t rows = (size_t)B * Tout;
  size_t chunk = CONV_COL_CAP / KC;
  if (chunk < 1) chunk = 1;
  if (chunk > rows) chunk = rows;
  float *wp = (float *)ops_workspace(ctx, sizeof(float) * (2 * wn + chunk * KC));
  if (!wp) return hb_fail_prefix("conv1d_backward workspace");
  float *dwp = wp + wn, *col = dwp + wn;
  cudaStream_t s = cuda_st(ctx)->stream;
  cublasHandle_t h = cuda_st(ctx)->blas;
  const float one = 1.0f, zero = 0.0f;
  HB_TRY(cuda_conv_permute(ctx, wp, w, Cout, Cg, K));
  if (dw) CHECK_CUDA(cudaMemsetAsync(dwp, 0, sizeof(float) * wn, s));
  if (dx) CHECK_CUDA(cudaMemsetAsync(dx, 0, sizeof(float) * (size_t)B * Tin * Cin, s));
  for (size_t r0 = 0; r0 < rows; r0 += chunk) {
    const size_t nr = rows - r0 < chunk ? rows - r0 : chunk;
    const float *dyc = dy + r0 * Cout;
    if (dw) {
      HB_TRY(cuda_conv_im2col(ctx, col, x, r0, nr, Tin, Cin, Tout, K, stride, pad, Cg));
      // column-major: dW_g^T (KCg, Cgo) += col_g^T (KCg, nr; ld KC) @ dy_g (nr, Cgo; ld Cout)
      CHECK_CUBLAS(cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_T, (int)KCg, Cgo, (int)nr, &one, col, (int)KC,
                                             (long long)KCg, dyc, Cout, (long long)Cgo, &one, dwp, (int)KCg,
                                             (long long)Cgo * KCg, groups));
    }
    if (dx) {
      // column-major: dcol_g^T (KCg, nr; ld KC) = W_g^T (KCg, Cgo) @ dy_g^T (Cgo, nr; ld Cout)
      CHECK_CUBLAS(cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, (int)KCg, (int)nr, Cgo, &one, wp, (int)KCg,
                                             (long long)Cgo * KCg, dyc, Cout, (long long)Cgo, &zero, col, (int)KC,
                                             (long long)KCg, groups));
      // frames read by rows r0 .. r0+nr-1: from (first row's b, its t*s - pad) to (last row's b,
      // its t*s - pad + K - 1), clamped to the utterances
      const size_t rl = r0 + nr - 1, bl = r0 / Tout, bh = rl / Tout;
      const long tl = (long)(r0 % Tout) * stride - pad, th = (long)(rl % Tout) * stride - pad + K - 1;
      const size_t f0 = bl * Tin + (size_t)(tl < 0 ? 0 : tl > Tin - 1 ? Tin - 1 : tl);
      const size_t f1 = bh * Tin + (size_t)(th < 0 ? 0 : th > Tin - 1 ? Tin - 1 : th);
      if (f1 >= f0) {
        const size_t nf = f1 - f0 + 1;
        cb_col2im_kernel<<<cuda_grid(nf * Cin, CB_NT), CB_NT, 0, s>>>(dx, col, r0, nr, f0, nf, Tin, Cin, Tout, K, stride,
                                                                     pad, Cg);
        CHECK_LAUNCH();
      }
    }
  }
  if (dw) {
    cb_conv_unpermute_kernel<<<cuda_grid(wn, CB_NT), CB_NT, 0, s>>>(dw, dwp, Cout, Cg, K);
    CHECK_LAUNCH();
  }
  return 0;
}

int cuda_conv1d_backward(hb_ctx *ctx, float *dx, float *dw, float *dbias, const float *dy, const float *x,
                         const float *w, int B, int Tin, int Cin, int Cout, int K, int stride, int pad, int groups) {
  if (groups < 1 || Cin % groups || Cout % groups)
    return hb_fail("conv1d_backward: channels %d->%d not divisible by groups %d", Cin, Cout, groups);
  if (K < 1 || stride < 1 || pad < 0) return hb_fail("conv1d_backward: bad kernel %d / stride %d / pad %d", K, stride, pad);
  if (Tin + 2 * pad < K) return hb_fail("conv1d_backward: input of %d frames is shorter than the kernel (%d)", Tin, K);
  if (B <= 0) return 0;
  const int Tout = (Tin + 2 * pad - K) / stride + 1;
  if (dbias) HB_TRY(cuda_colsum_acc(ctx, dbias, dy, (size_t)B * Tout, Cout));  // before the workspace is taken
  if (!dx && !dw) return 0;
  if (groups == 1 && pad == 0 && Cin > 1)
    return conv_backward_taps(ctx, dx, dw, dy, x, w, B, Tin, Cin, Cout, K, stride, Tout);
  return conv_backward_im2col(ctx, dx, dw, dy, x, w, B, Tin, Cin, Cout, K, stride, pad, groups, Tout);
}
