// Dropout on CUDA with the keep rule of kernels/dropout_mask.h (Philox4x32-10 counter mask):
// thread j handles Philox block j (elements 4j .. 4j+3), so the mask is bit-identical to the CPU
// op's for the same (seed, p) whatever the launch layout; kept elements are x * (1 / (1 - p)), the
// same single float multiplication as the CPU.
#include "kernels/cuda/cuda_heads.h"

extern "C" {
#include "kernels/dropout_mask.h"
}

__global__ void dropout_kernel(float *y, const float *x, size_t n, uint64_t seed, uint64_t thr, float keep_scale) {
  const size_t nblk = (n + 3) / 4;
  for (size_t blk = blockIdx.x * (size_t)blockDim.x + threadIdx.x; blk < nblk; blk += (size_t)gridDim.x * blockDim.x) {
    uint32_t r[4];
    hb_dropout_philox(seed, (uint64_t)blk, r);
    const size_t i0 = blk * 4;
    for (int j = 0; j < 4 && i0 + j < n; j++) y[i0 + j] = (uint64_t)r[j] >= thr ? x[i0 + j] * keep_scale : 0.0f;
  }
}

int cuda_dropout(hb_ctx *ctx, float *y, const float *x, size_t n, float p, uint64_t seed) {
  if (!n) return 0;
  cudaStream_t s = cuda_st(ctx)->stream;
  if (p <= 0.0f) {
    if (y != x) CHECK_CUDA(cudaMemcpyAsync(y, x, sizeof(float) * n, cudaMemcpyDeviceToDevice, s));
    return 0;
  }
  const uint64_t thr = hb_dropout_threshold(p);
  const float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  dropout_kernel<<<cuda_grid((n + 3) / 4, 256), 256, 0, s>>>(y, x, n, seed, thr, keep_scale);
  CHECK_LAUNCH();
  return 0;
}
