// Mixed-precision linear layers (ctx->precision == HB_PRECISION_BF16): cuBLAS GemmEx with bf16
// copies of both GEMM inputs and fp32 accumulation (CUBLAS_COMPUTE_32F) into fp32 outputs. The
// fp32 tensors (weights = the fp32 master copy, activations, gradients) are rounded to bf16
// (nearest even) into the context workspace on each call: a read of 4 and a write of 2 bytes per
// element, small next to the GEMM that follows (docs/cuda.md "Mixed precision"). Biases, bias
// gradients (the deterministic column sum) and everything outside the GEMMs stay fp32.
#include <cuda_bf16.h>

#include "kernels/cuda/cuda_backward.h"

#define LB_ALIGN 128  // elements: each bf16 operand starts 256-byte aligned in the workspace

__global__ void lb_to_bf16_kernel(__nv_bfloat16 *dst, const float *src, size_t n) {
  CB_GRID_LOOP(i, n) dst[i] = __float2bfloat16_rn(src[i]);
}

static size_t lb_round(size_t n) { return (n + LB_ALIGN - 1) / LB_ALIGN * LB_ALIGN; }

// Rounds src (n floats) into dst (bf16), on the context's stream.
static int lb_convert(hb_ctx *ctx, __nv_bfloat16 *dst, const float *src, size_t n) {
  if (!n) return 0;
  lb_to_bf16_kernel<<<cuda_grid(n, CB_NT), CB_NT, 0, cuda_st(ctx)->stream>>>(dst, src, n);
  CHECK_LAUNCH();
  return 0;
}

// Workspace for `count` operands of the given sizes (elements); ops[i] = start of operand i.
static int lb_take(hb_ctx *ctx, const char *op, const size_t *sizes, int count, __nv_bfloat16 **ops) {
  size_t total = 0;
  for (int i = 0; i < count; i++) total += lb_round(sizes[i]);
  __nv_bfloat16 *w = (__nv_bfloat16 *)ops_workspace(ctx, sizeof(__nv_bfloat16) * (total ? total : 1));
  if (!w) return hb_fail_prefix("%s: bf16 workspace of %.1f MB", op, sizeof(__nv_bfloat16) * total / 1e6);
  for (int i = 0; i < count; i++) {
    ops[i] = w;
    w += lb_round(sizes[i]);
  }
  return 0;
}

// The same column-major reading as cuda_linear (kernels/cuda/cuda_backend.cu):
//   y^T (Cout, N) = w (Cout, Cin) @ x^T, A = w (op T, lda Cin), B = x^T (ldb Cin).
int cuda_linear_bf16(hb_ctx *ctx, float *y, const float *x, const float *w, const float *bias, int N, int Cin,
                     int Cout) {
  if (N < 0 || Cin < 1 || Cout < 1) return hb_fail("linear (bf16): bad shape N=%d Cin=%d Cout=%d", N, Cin, Cout);
  if (N == 0) return 0;
  const size_t sizes[2] = {(size_t)Cout * Cin, (size_t)N * Cin};
  __nv_bfloat16 *op[2];
  HB_TRY(lb_take(ctx, "linear (bf16)", sizes, 2, op));
  HB_TRY(lb_convert(ctx, op[0], w, sizes[0]));
  HB_TRY(lb_convert(ctx, op[1], x, sizes[1]));
  const float alpha = 1.0f;
  float beta = 0.0f;
  if (bias) {
    HB_TRY(cuda_fill_rows(ctx, y, bias, (size_t)N, Cout));
    beta = 1.0f;
  }
  CHECK_CUBLAS(cublasGemmEx(cuda_st(ctx)->blas, CUBLAS_OP_T, CUBLAS_OP_N, Cout, N, Cin, &alpha, op[0], CUDA_R_16BF, Cin,
                            op[1], CUDA_R_16BF, Cin, &beta, y, CUDA_R_32F, Cout, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT));
  return 0;
}

// As cuda_linear_backward (kernels/cuda/cuda_linear_backward.cu):
//   dx^T (Cin, N) = w^T (Cin, Cout) @ dy^T;  dw^T (Cin, Cout) += x^T (Cin, N) @ dy (N, Cout).
// The bias gradient is taken first: the column sum uses the workspace the bf16 copies then take.
int cuda_linear_backward_bf16(hb_ctx *ctx, float *dx, float *dw, float *dbias, const float *dy, const float *x,
                              const float *w, int N, int Cin, int Cout) {
  if (N < 0 || Cin < 1 || Cout < 1)
    return hb_fail("linear_backward (bf16): bad shape N=%d Cin=%d Cout=%d", N, Cin, Cout);
  if (N == 0) return 0;
  if (dbias) HB_TRY(cuda_colsum_acc(ctx, dbias, dy, (size_t)N, Cout));
  if (!dx && !dw) return 0;
  const size_t sizes[3] = {(size_t)N * Cout, dx ? (size_t)Cout * Cin : 0, dw ? (size_t)N * Cin : 0};
  __nv_bfloat16 *op[3];
  HB_TRY(lb_take(ctx, "linear_backward (bf16)", sizes, 3, op));
  HB_TRY(lb_convert(ctx, op[0], dy, sizes[0]));
  cublasHandle_t h = cuda_st(ctx)->blas;
  const float one = 1.0f, zero = 0.0f;
  if (dx) {
    HB_TRY(lb_convert(ctx, op[1], w, sizes[1]));
    CHECK_CUBLAS(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, Cin, N, Cout, &one, op[1], CUDA_R_16BF, Cin, op[0],
                              CUDA_R_16BF, Cout, &zero, dx, CUDA_R_32F, Cin, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
  if (dw) {
    HB_TRY(lb_convert(ctx, op[2], x, sizes[2]));
    CHECK_CUBLAS(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_T, Cin, Cout, N, &one, op[2], CUDA_R_16BF, Cin, op[0],
                              CUDA_R_16BF, Cout, &one, dw, CUDA_R_32F, Cin, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
  return 0;
}
