// Check macros and shared state of the CUDA backend (kernels/cuda/*.cu; C++ translation units).
// Library code never exits: a failed CUDA/cuBLAS call becomes hb_fail() naming the statement,
// the function, the file and the line, and the enclosing function returns -1.
#ifndef HB_CUDA_CHECK_H
#define HB_CUDA_CHECK_H

#include <cublas_v2.h>
#include <cuda_runtime.h>

extern "C" {
#include "common/error.h"
#include "kernels/ops.h"
}

static inline int cuda_fail_at(cudaError_t e, const char *stmt, const char *func, const char *file, int line) {
  return hb_fail("CUDA error %s (%s) in `%s` (%s, %s:%d)", cudaGetErrorName(e), cudaGetErrorString(e), stmt, func,
                 file, line);
}
static inline int cublas_fail_at(cublasStatus_t s, const char *stmt, const char *func, const char *file, int line) {
  return hb_fail("cuBLAS error %s (%d) in `%s` (%s, %s:%d)", cublasGetStatusString(s), (int)s, stmt, func, file, line);
}

#define CHECK_CUDA(stmt)                                                                 \
  do {                                                                                   \
    cudaError_t e_ = (stmt);                                                             \
    if (e_ != cudaSuccess) return cuda_fail_at(e_, #stmt, __func__, __FILE__, __LINE__); \
  } while (0)

#define CHECK_CUBLAS(stmt)                                                                          \
  do {                                                                                              \
    cublasStatus_t s_ = (stmt);                                                                     \
    if (s_ != CUBLAS_STATUS_SUCCESS) return cublas_fail_at(s_, #stmt, __func__, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: configuration errors surface here, execution errors at the next sync.
#define CHECK_LAUNCH() CHECK_CUDA(cudaGetLastError())

// ctx->backend_state of a CUDA context.
typedef struct {
  int device;
  cudaStream_t stream;    // every op and copy runs on this stream, in order
  cublasHandle_t blas;
  int *d_len;             // device copy of a host `len` array (attention), d_len_cap ints
  int d_len_cap;
} cuda_state;

static inline cuda_state *cuda_st(hb_ctx *ctx) { return (cuda_state *)ctx->backend_state; }

// Copies the host array len (n ints) to the context's device buffer; *out = device pointer.
int cuda_upload_len(hb_ctx *ctx, const int *len, int n, const int **out);

// y (rows, C) = bias broadcast over rows (bias: (C)), on the context's stream.
int cuda_fill_rows(hb_ctx *ctx, float *y, const float *bias, size_t rows, int C);

// Grid size for a grid-stride loop over n elements with `threads` per block.
static inline unsigned cuda_grid(size_t n, int threads) {
  size_t g = (n + (size_t)threads - 1) / (size_t)threads;
  if (g > 65535u * 16u) g = 65535u * 16u;
  return (unsigned)(g ? g : 1);
}

// Op implementations (kernels/cuda/*.cu), same contracts as kernels/ops.h.
int cuda_conv1d(hb_ctx *ctx, float *y, const float *x, const float *w, const float *bias, int B, int Tin, int Cin,
                int Cout, int K, int stride, int pad, int groups);
int cuda_linear(hb_ctx *ctx, float *y, const float *x, const float *w, const float *bias, int N, int Cin, int Cout);
int cuda_layer_norm(hb_ctx *ctx, float *y, const float *x, const float *gamma, const float *beta, int N, int C,
                    float eps);
int cuda_group_norm(hb_ctx *ctx, float *y, const float *x, const float *gamma, const float *beta, int B, int T, int C,
                    int G, float eps);
int cuda_gelu(hb_ctx *ctx, float *y, const float *x, size_t n);
int cuda_add(hb_ctx *ctx, float *y, const float *a, const float *b, size_t n);
int cuda_softmax(hb_ctx *ctx, float *x, int N, int D);
int cuda_attention(hb_ctx *ctx, float *out, const float *q, const float *k, const float *v, const int *len, int B,
                   int T, int H, int Dh, float scale);
int cuda_weight_norm(hb_ctx *ctx, float *w, const float *v, const float *g, int O, int In, int K);
int cuda_mask_padding(hb_ctx *ctx, float *x, const int *len, int B, int T, int C);

#endif
