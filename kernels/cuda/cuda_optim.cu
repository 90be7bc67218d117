// Optimizer ops on CUDA: sum of squares over the parameter spans (the global gradient norm and
// its NaN/inf check; deterministic: fixed per-span block partials, reduced in a fixed order) and
// the fused AdamW update. The AdamW arithmetic uses explicitly rounded float operations (no FMA
// contraction), IEEE sqrt and division, so it matches the CPU loop (kernels/cpu/cpu_optim.c)
// operation for operation.
#include "kernels/cuda/cuda_heads.h"

#define OT 256          // threads per block
#define SS_MAX_BLOCKS 256  // partial sums per span at most (2 per SM on an H100)

static __device__ double warp_block_sum(double v, double *sh) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
  if (lane == 0) sh[wid] = v;
  __syncthreads();
  v = 0;
  if (threadIdx.x == 0)
    for (int i = 0; i < OT / 32; i++) v += sh[i];
  return v;  // valid in thread 0
}

// partial[blockIdx.x] = sum of x[i]^2 over this block's grid-stride share of x (n).
__global__ void sumsq_partial_kernel(double *partial, const float *x, size_t n) {
  __shared__ double sh[OT / 32];
  double s = 0;
  for (size_t i = blockIdx.x * (size_t)OT + threadIdx.x; i < n; i += (size_t)gridDim.x * OT) s += (double)x[i] * x[i];
  s = warp_block_sum(s, sh);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// out[0] = sum of partial[0 .. np) (one block; thread t sums t, t + OT, ..., then in thread order).
__global__ void sum_partials_kernel(double *out, const double *partial, int np) {
  __shared__ double sh[OT];
  double s = 0;
  for (int i = threadIdx.x; i < np; i += OT) s += partial[i];
  sh[threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    double t = 0;
    for (int i = 0; i < OT; i++) t += sh[i];
    out[0] = t;
  }
}

static int span_blocks(size_t n) {
  size_t b = (n + (size_t)OT * 4 - 1) / ((size_t)OT * 4);
  if (b > SS_MAX_BLOCKS) b = SS_MAX_BLOCKS;
  return (int)(b ? b : 1);
}

int cuda_sum_squares(hb_ctx *ctx, double *ss, const float *x, const hb_span *seg, int nseg) {
  *ss = 0;
  if (nseg <= 0) return 0;
  size_t np = 0;
  for (int i = 0; i < nseg; i++) np += (size_t)span_blocks(seg[i].numel);
  double *ws = (double *)ops_workspace(ctx, sizeof(double) * (np + 1));
  if (!ws) return hb_fail_prefix("sum_squares workspace (%zu partial sums)", np);
  cudaStream_t s = cuda_st(ctx)->stream;
  size_t off = 0;
  for (int i = 0; i < nseg; i++) {
    const int nb = span_blocks(seg[i].numel);
    if (seg[i].numel) {
      sumsq_partial_kernel<<<nb, OT, 0, s>>>(ws + 1 + off, x + seg[i].offset, seg[i].numel);
      CHECK_LAUNCH();
    } else {
      CHECK_CUDA(cudaMemsetAsync(ws + 1 + off, 0, sizeof(double) * nb, s));
    }
    off += (size_t)nb;
  }
  sum_partials_kernel<<<1, OT, 0, s>>>(ws, ws + 1, (int)np);
  CHECK_LAUNCH();
  CHECK_CUDA(cudaMemcpyAsync(ss, ws, sizeof(double), cudaMemcpyDeviceToHost, s));
  CHECK_CUDA(cudaStreamSynchronize(s));
  return 0;
}

__global__ void adamw_kernel(float *p, float *m, float *v, const float *g, size_t n, hb_adamw_args a, float decay) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    // gi = g gs; mi = b1 m + (1-b1) gi; vi = b2 v + (1-b2) gi gi;
    // p = p decay - step_size mi / (sqrt(vi) inv_sqrt_bc2 + eps), each operation rounded as in C.
    const float gi = __fmul_rn(g[i], a.grad_scale);
    const float mi = __fadd_rn(__fmul_rn(a.beta1, m[i]), __fmul_rn(a.one_m_beta1, gi));
    const float vi = __fadd_rn(__fmul_rn(a.beta2, v[i]), __fmul_rn(__fmul_rn(a.one_m_beta2, gi), gi));
    m[i] = mi;
    v[i] = vi;
    const float den = __fadd_rn(__fmul_rn(__fsqrt_rn(vi), a.inv_sqrt_bc2), a.eps);
    p[i] = __fsub_rn(__fmul_rn(p[i], decay), __fdiv_rn(__fmul_rn(a.step_size, mi), den));
  }
}

int cuda_adamw(hb_ctx *ctx, float *p, float *m, float *v, const float *g, const hb_span *seg, int nseg,
               const hb_adamw_args *a) {
  cudaStream_t s = cuda_st(ctx)->stream;
  for (int i = 0; i < nseg; i++) {
    const size_t n = seg[i].numel, off = seg[i].offset;
    if (!n) continue;
    adamw_kernel<<<cuda_grid(n, OT), OT, 0, s>>>(p + off, m + off, v + off, g + off, n, *a,
                                                 seg[i].decay ? a->decay : 1.0f);
    CHECK_LAUNCH();
  }
  return 0;
}
