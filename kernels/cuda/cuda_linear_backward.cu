// linear backward (cuBLAS sgemm, fp32, no TF32) and the deterministic column sum used for bias
// gradients.
#include "kernels/cuda/cuda_backward.h"

#define CS_ROWS 8         // row lanes of a column-sum block (block = 32 columns x CS_ROWS)
#define CS_MAX_CHUNKS 1024

// part (nch, C): part[ch][c] = sum of src[r][c] over the rows of chunk ch (rows_per rows each).
// Warps read 32 consecutive columns of one row (coalesced); a block owns 32 columns of a chunk.
__global__ void cb_colsum_part_kernel(double *part, const float *src, size_t rows, int C, size_t rows_per) {
  __shared__ double sh[CS_ROWS][33];
  const int tx = threadIdx.x, ty = threadIdx.y, c = blockIdx.x * 32 + tx;
  const size_t r0 = blockIdx.y * rows_per, r1 = rows - r0 < rows_per ? rows : r0 + rows_per;
  double s = 0;
  if (c < C)
    for (size_t r = r0 + ty; r < r1; r += CS_ROWS) s += src[r * C + c];
  sh[ty][tx] = s;
  __syncthreads();
  if (ty == 0 && c < C) {
    double t = 0;
    for (int i = 0; i < CS_ROWS; i++) t += sh[i][tx];
    part[blockIdx.y * (size_t)C + c] = t;
  }
}

// dst[c] += sum over the chunks, in chunk order (deterministic).
__global__ void cb_colsum_final_kernel(float *dst, const double *part, int nch, int C) {
  CB_GRID_LOOP(c, (size_t)C) {
    double s = 0;
    for (int ch = 0; ch < nch; ch++) s += part[(size_t)ch * C + c];
    dst[c] += (float)s;
  }
}

int cuda_colsum_acc(hb_ctx *ctx, float *dst, const float *src, size_t rows, int C) {
  if (!rows || C <= 0) return 0;
  size_t rows_per = (rows + CS_MAX_CHUNKS - 1) / CS_MAX_CHUNKS;
  if (rows_per < 256) rows_per = 256;
  const size_t nch = (rows + rows_per - 1) / rows_per;
  double *part = (double *)ops_workspace(ctx, sizeof(double) * nch * (size_t)C);
  if (!part) return hb_fail_prefix("column sum workspace");
  cudaStream_t s = cuda_st(ctx)->stream;
  cb_colsum_part_kernel<<<dim3((unsigned)((C + 31) / 32), (unsigned)nch), dim3(32, CS_ROWS), 0, s>>>(part, src, rows, C,
                                                                                               rows_per);
  CHECK_LAUNCH();
  cb_colsum_final_kernel<<<cuda_grid((size_t)C, CB_NT), CB_NT, 0, s>>>(dst, part, (int)nch, C);
  CHECK_LAUNCH();
  return 0;
}

// Row-major matrices read column-major are their transposes (see cuda_linear):
//   dx (N, Cin) = dy (N, Cout) @ w (Cout, Cin)   <=>  dx^T (Cin, N) = w^T (Cin, Cout) @ dy^T (Cout, N)
//   dw (Cout, Cin) += dy^T @ x                    <=>  dw^T (Cin, Cout) += x^T (Cin, N) @ dy (N, Cout)
int cuda_linear_backward(hb_ctx *ctx, float *dx, float *dw, float *dbias, const float *dy, const float *x,
                         const float *w, int N, int Cin, int Cout) {
  if (N < 0 || Cin < 1 || Cout < 1) return hb_fail("linear_backward: bad shape N=%d Cin=%d Cout=%d", N, Cin, Cout);
  if (N == 0) return 0;
  if (ctx->precision == HB_PRECISION_BF16) return cuda_linear_backward_bf16(ctx, dx, dw, dbias, dy, x, w, N, Cin, Cout);
  cublasHandle_t h = cuda_st(ctx)->blas;
  const float one = 1.0f, zero = 0.0f;
  if (dx) CHECK_CUBLAS(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, Cin, N, Cout, &one, w, Cin, dy, Cout, &zero, dx, Cin));
  if (dw) CHECK_CUBLAS(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, Cin, Cout, N, &one, x, Cin, dy, Cout, &one, dw, Cin));
  if (dbias) HB_TRY(cuda_colsum_acc(ctx, dbias, dy, (size_t)N, Cout));
  return 0;
}
