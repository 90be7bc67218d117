// The CUDA backend table: context (device, stream, cuBLAS handle), device memory, and the linear
// layer (cuBLAS sgemm). Every call is checked; failures come back as -1 with hb_fail().
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_backward.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_heads.h"

// ---- memory ---------------------------------------------------------------------------------------
static void *cuda_alloc(hb_ctx *ctx, size_t bytes) {
  cuda_state *st = cuda_st(ctx);
  void *p = NULL;
  cudaError_t e = cudaMalloc(&p, bytes ? bytes : 256);
  if (e != cudaSuccess) {
    cudaGetLastError();  // an allocation error is not sticky: clear it
    size_t fr = 0, tot = 0;
    cudaMemGetInfo(&fr, &tot);
    hb_fail("cudaMalloc of %.1f MB failed: %s (device %d: %.1f MB free of %.1f MB)", bytes / 1e6,
            cudaGetErrorString(e), st->device, fr / 1e6, tot / 1e6);
    return NULL;
  }
  e = cudaMemsetAsync(p, 0, bytes, st->stream);
  if (e != cudaSuccess) {
    cuda_fail_at(e, "cudaMemsetAsync(p, 0, bytes, st->stream)", __func__, __FILE__, __LINE__);
    cudaFree(p);
    return NULL;
  }
  return p;
}

// Waits for the stream first: queued kernels may still read the buffer. free returns nothing, so
// a failure (a pointer freed twice, an earlier kernel's fault) is reported here and cleared: left
// pending it would surface as a wrong "invalid argument" at the next unrelated launch check.
static void cuda_free_mem(hb_ctx *ctx, void *p) {
  if (!p) return;
  cudaError_t e = cudaStreamSynchronize(cuda_st(ctx)->stream);
  if (e == cudaSuccess) e = cudaFree(p);
  if (e != cudaSuccess) {
    fprintf(stderr, "hubert: freeing device buffer %p failed: %s\n", p, cudaGetErrorString(e));
    cudaGetLastError();
  }
}

static int cuda_upload(hb_ctx *ctx, void *dst, const void *src, size_t bytes) {
  if (!bytes) return 0;
  cudaStream_t s = cuda_st(ctx)->stream;
  CHECK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s));
  CHECK_CUDA(cudaStreamSynchronize(s));
  return 0;
}

static int cuda_download(hb_ctx *ctx, void *dst, const void *src, size_t bytes) {
  if (!bytes) return 0;
  cudaStream_t s = cuda_st(ctx)->stream;
  CHECK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s));
  CHECK_CUDA(cudaStreamSynchronize(s));
  return 0;
}

static int cuda_copy(hb_ctx *ctx, void *dst, const void *src, size_t bytes) {
  if (!bytes || dst == src) return 0;
  CHECK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda_st(ctx)->stream));
  return 0;
}

static int cuda_zero(hb_ctx *ctx, void *p, size_t bytes) {
  if (!bytes) return 0;
  CHECK_CUDA(cudaMemsetAsync(p, 0, bytes, cuda_st(ctx)->stream));
  return 0;
}

static int cuda_sync(hb_ctx *ctx) {
  CHECK_CUDA(cudaStreamSynchronize(cuda_st(ctx)->stream));
  CHECK_CUDA(cudaGetLastError());
  return 0;
}

int cuda_upload_len(hb_ctx *ctx, const int *len, int n, const int **out) {
  cuda_state *st = cuda_st(ctx);
  if (n > st->d_len_cap) {
    if (st->d_len) cuda_free_mem(ctx, st->d_len);
    st->d_len = NULL;
    st->d_len_cap = 0;
    CHECK_CUDA(cudaMalloc((void **)&st->d_len, sizeof(int) * (size_t)n));
    st->d_len_cap = n;
  }
  // Pageable source: the copy is staged before the call returns, so `len` may change afterwards;
  // a later upload is ordered after the kernels that read this one (same stream).
  CHECK_CUDA(cudaMemcpyAsync(st->d_len, len, sizeof(int) * (size_t)n, cudaMemcpyHostToDevice, st->stream));
  *out = st->d_len;
  return 0;
}

// ---- linear ---------------------------------------------------------------------------------------
__global__ void fill_rows_kernel(float *y, const float *bias, size_t n, int C) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    y[i] = bias[i % C];
}

int cuda_fill_rows(hb_ctx *ctx, float *y, const float *bias, size_t rows, int C) {
  const size_t n = rows * (size_t)C;
  if (!n) return 0;
  fill_rows_kernel<<<cuda_grid(n, 256), 256, 0, cuda_st(ctx)->stream>>>(y, bias, n, C);
  CHECK_LAUNCH();
  return 0;
}

// Row-major y (N, Cout) = x (N, Cin) @ w^T is, read column-major, y^T (Cout, N) = w (Cout, Cin) @
// x^T: w's row-major storage is w^T column-major (lda Cin), hence op(A) = T; x's storage is x^T
// column-major (ldb Cin). Bias: rows prefilled, beta = 1.
int cuda_linear(hb_ctx *ctx, float *y, const float *x, const float *w, const float *bias, int N, int Cin, int Cout) {
  if (ctx->precision == HB_PRECISION_BF16) return cuda_linear_bf16(ctx, y, x, w, bias, N, Cin, Cout);
  if (N <= 0 || Cout <= 0) return 0;
  const float alpha = 1.0f;
  float beta = 0.0f;
  if (bias) {
    HB_TRY(cuda_fill_rows(ctx, y, bias, (size_t)N, Cout));
    beta = 1.0f;
  }
  CHECK_CUBLAS(cublasSgemm(cuda_st(ctx)->blas, CUBLAS_OP_T, CUBLAS_OP_N, Cout, N, Cin, &alpha, w, Cin, x, Cin, &beta,
                           y, Cout));
  return 0;
}

// ---- the table ------------------------------------------------------------------------------------
// Filled member by member (C++17 has no designated initialisers); members added later (backward
// ops) stay NULL, which ops_check_backward() reports by position.
static hb_backend cuda_make_table(void) {
  hb_backend b;
  memset(&b, 0, sizeof b);
  b.name = "cuda";
  b.alloc = cuda_alloc;
  b.free = cuda_free_mem;
  b.upload = cuda_upload;
  b.download = cuda_download;
  b.copy = cuda_copy;
  b.zero = cuda_zero;
  b.sync = cuda_sync;
  b.conv1d = cuda_conv1d;
  b.linear = cuda_linear;
  b.layer_norm = cuda_layer_norm;
  b.group_norm = cuda_group_norm;
  b.gelu = cuda_gelu;
  b.add = cuda_add;
  b.softmax = cuda_softmax;
  b.attention = cuda_attention;
  b.weight_norm = cuda_weight_norm;
  b.mask_padding = cuda_mask_padding;
  // heads, losses, dropout, optimizer (cuda_heads.cu, cuda_ctc.cu, cuda_dropout.cu, cuda_optim.cu)
  b.gather_rows = cuda_gather_rows;
  b.scatter_rows = cuda_scatter_rows;
  b.cosine_ce = cuda_cosine_ce;
  b.softmax_ce = cuda_softmax_ce;
  b.seq_mean_pool = cuda_seq_mean_pool;
  b.seq_mean_pool_backward = cuda_seq_mean_pool_backward;
  b.ctc_loss = cuda_ctc_loss;
  b.mask_rows = cuda_mask_rows;
  b.mask_rows_backward = cuda_mask_rows_backward;
  b.dropout = cuda_dropout;
  b.sum_squares = cuda_sum_squares;
  b.adamw = cuda_adamw;
  // training forwards and backwards of the trunk (cuda_backward.h)
  b.conv1d_backward = cuda_conv1d_backward;
  b.linear_backward = cuda_linear_backward;
  b.layer_norm_train = cuda_layer_norm_train;
  b.layer_norm_backward = cuda_layer_norm_backward;
  b.group_norm_train = cuda_group_norm_train;
  b.group_norm_backward = cuda_group_norm_backward;
  b.gelu_backward = cuda_gelu_backward;
  b.softmax_backward = cuda_softmax_backward;
  b.attention_train = cuda_attention_train;
  b.attention_backward = cuda_attention_backward;
  b.weight_norm_backward = cuda_weight_norm_backward;
  b.mask_padding_backward = cuda_mask_padding_backward;
  b.axpy = cuda_axpy;
  b.scale = cuda_scale;
  return b;
}

extern "C" const hb_backend hb_backend_cuda = cuda_make_table();

// ---- context --------------------------------------------------------------------------------------
static int cuda_setup(cuda_state *st) {
  CHECK_CUDA(cudaSetDevice(st->device));
  CHECK_CUDA(cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking));
  CHECK_CUBLAS(cublasCreate(&st->blas));
  CHECK_CUBLAS(cublasSetStream(st->blas, st->stream));
  // Plain fp32 GEMMs: no TF32 (the fp32 path is checked against the CPU at 1e-5).
  CHECK_CUBLAS(cublasSetMathMode(st->blas, CUBLAS_DEFAULT_MATH));
  return 0;
}

extern "C" void cuda_ctx_free(hb_ctx *ctx);

extern "C" int cuda_ctx_init(hb_ctx *ctx) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return hb_fail("no CUDA device: cudaGetDeviceCount: %s (%s)", cudaGetErrorString(e), cudaGetErrorName(e));
  }
  if (n <= 0) return hb_fail("no CUDA device: cudaGetDeviceCount found none");
  cuda_state *st = (cuda_state *)hb_calloc(1, sizeof *st);
  if (!st) return -1;
  st->device = 0;
  ctx->backend_state = st;
  ctx->be = &hb_backend_cuda;
  if (cuda_setup(st)) {
    const int dev = st->device;
    cuda_ctx_free(ctx);  // keeps the hb_fail message: nothing in it calls hb_fail
    ctx->be = NULL;
    return hb_fail_prefix("CUDA backend on device %d", dev);
  }
  return 0;
}

extern "C" void cuda_ctx_free(hb_ctx *ctx) {
  cuda_state *st = cuda_st(ctx);
  if (!st) return;
  if (st->stream) cudaStreamSynchronize(st->stream);
  if (st->d_len) cudaFree(st->d_len);
  if (st->blas) cublasDestroy(st->blas);
  if (st->stream) cudaStreamDestroy(st->stream);
  free(st);
  ctx->backend_state = NULL;
}
