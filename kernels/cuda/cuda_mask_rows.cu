// Span-mask application on the GPU (masked_spec_embed): masked rows := emb, and its backward with
// deterministic column sums (partial sums per row chunk in double, then the chunks in order; no
// atomics). The host mask is staged into the context workspace.
#include "kernels/cuda/cuda_backward.h"
#include "kernels/cuda/cuda_heads.h"

#define MR_ROWS 8          // threads per column in a block of the backward's partial sums
#define MR_MAX_CHUNKS 256  // row chunks of the partial sums

__global__ void mr_forward_kernel(float *x, const uint8_t *mask, const float *emb, size_t n, int C) {
  CB_GRID_LOOP(i, n) {
    if (mask[i / C]) x[i] = emb[i % C];
  }
}

// part[chunk, c] = sum of dx[r, c] over the masked rows r of the chunk (a fixed order: the MR_ROWS
// row strides, then their sum in order); the masked rows are zeroed after being read.
__global__ void mr_part_kernel(double *part, float *dx, const uint8_t *mask, size_t rows, int C, size_t rows_per,
                               int want_sum) {
  __shared__ double sh[MR_ROWS][33];
  const int tx = threadIdx.x, ty = threadIdx.y, c = blockIdx.x * 32 + tx;
  const size_t r0 = blockIdx.y * rows_per, r1 = rows - r0 < rows_per ? rows : r0 + rows_per;
  double s = 0;
  if (c < C)
    for (size_t r = r0 + ty; r < r1; r += MR_ROWS)
      if (mask[r]) {
        s += dx[r * C + c];
        dx[r * C + c] = 0.0f;
      }
  if (!want_sum) return;
  sh[ty][tx] = s;
  __syncthreads();
  if (ty == 0 && c < C) {
    double t = 0;
    for (int i = 0; i < MR_ROWS; i++) t += sh[i][tx];
    part[blockIdx.y * (size_t)C + c] = t;
  }
}

__global__ void mr_final_kernel(float *demb, const double *part, int nch, int C) {
  CB_GRID_LOOP(c, (size_t)C) {
    double s = 0;
    for (int ch = 0; ch < nch; ch++) s += part[(size_t)ch * C + c];
    demb[c] += (float)s;
  }
}

// Workspace: `front` bytes (256-aligned) for the caller, then the N mask bytes (copied from the
// pageable host array: staged before the call returns, so the caller may reuse it).
static int mr_stage_mask(hb_ctx *ctx, const uint8_t *mask, int N, size_t front, void **ws, const uint8_t **dmask) {
  front = (front + 255) / 256 * 256;
  char *w = (char *)ops_workspace(ctx, front + (size_t)N);
  if (!w) return hb_fail_prefix("mask_rows workspace (%zu bytes)", front + (size_t)N);
  CHECK_CUDA(cudaMemcpyAsync(w + front, mask, (size_t)N, cudaMemcpyHostToDevice, cuda_st(ctx)->stream));
  *ws = w;
  *dmask = (const uint8_t *)(w + front);
  return 0;
}

int cuda_mask_rows(hb_ctx *ctx, float *x, const uint8_t *mask, const float *emb, int N, int C) {
  if (N < 0 || C < 0) return hb_fail("mask_rows: bad shape N=%d C=%d", N, C);
  if (!N || !C) return 0;
  void *ws;
  const uint8_t *dmask;
  HB_TRY(mr_stage_mask(ctx, mask, N, 0, &ws, &dmask));
  const size_t n = (size_t)N * C;
  mr_forward_kernel<<<cuda_grid(n, CB_NT), CB_NT, 0, cuda_st(ctx)->stream>>>(x, dmask, emb, n, C);
  CHECK_LAUNCH();
  return 0;
}

int cuda_mask_rows_backward(hb_ctx *ctx, float *dx, float *demb, const uint8_t *mask, int N, int C) {
  if (N < 0 || C < 0) return hb_fail("mask_rows_backward: bad shape N=%d C=%d", N, C);
  if (!N || !C) return 0;
  size_t rows_per = ((size_t)N + MR_MAX_CHUNKS - 1) / MR_MAX_CHUNKS;
  if (rows_per < 64) rows_per = 64;
  const size_t nch = ((size_t)N + rows_per - 1) / rows_per;
  void *ws;
  const uint8_t *dmask;
  HB_TRY(mr_stage_mask(ctx, mask, N, demb ? sizeof(double) * nch * (size_t)C : 0, &ws, &dmask));
  double *part = (double *)ws;
  cudaStream_t s = cuda_st(ctx)->stream;
  mr_part_kernel<<<dim3((unsigned)((C + 31) / 32), (unsigned)nch), dim3(32, MR_ROWS), 0, s>>>(part, dx, dmask, (size_t)N,
                                                                                            C, rows_per, demb != NULL);
  CHECK_LAUNCH();
  if (demb) {
    mr_final_kernel<<<cuda_grid((size_t)C, CB_NT), CB_NT, 0, s>>>(demb, part, (int)nch, C);
    CHECK_LAUNCH();
  }
  return 0;
}
