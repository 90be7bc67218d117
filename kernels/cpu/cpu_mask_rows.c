// Span-mask application on the CPU (masked_spec_embed): masked rows := emb, and its backward.
#include <string.h>

#include "common/error.h"
#include "kernels/cpu/cpu_internal.h"

#define MR_COLS 64  // columns per task of the backward's column sums

int cpu_mask_rows(hb_ctx *ctx, float *x, const uint8_t *mask, const float *emb, int N, int C) {
  if (N < 0 || C < 0) return hb_fail("mask_rows: bad shape N=%d C=%d", N, C);
#pragma omp parallel for schedule(static) num_threads(cpu_threads(ctx))
  for (int n = 0; n < N; n++)
    if (mask[n]) memcpy(x + (size_t)n * C, emb, sizeof(float) * (size_t)C);
  return 0;
}

// demb[c] += (float) sum_{n ascending, mask[n]} dx[n, c] in double: each task owns MR_COLS
// columns and walks the rows in order, so the result does not depend on the thread count.
int cpu_mask_rows_backward(hb_ctx *ctx, float *dx, float *demb, const uint8_t *mask, int N, int C) {
  if (N < 0 || C < 0) return hb_fail("mask_rows_backward: bad shape N=%d C=%d", N, C);
  const int nt = cpu_threads(ctx);
  if (demb) {
    const int nblk = (C + MR_COLS - 1) / MR_COLS;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int blk = 0; blk < nblk; blk++) {
      const int c0 = blk * MR_COLS, w = C - c0 < MR_COLS ? C - c0 : MR_COLS;
      double s[MR_COLS] = {0};
      for (int n = 0; n < N; n++)
        if (mask[n]) {
          const float *r = dx + (size_t)n * C + c0;
          for (int j = 0; j < w; j++) s[j] += r[j];
        }
      for (int j = 0; j < w; j++) demb[c0 + j] += (float)s[j];
    }
  }
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int n = 0; n < N; n++)
    if (mask[n]) memset(dx + (size_t)n * C, 0, sizeof(float) * (size_t)C);
  return 0;
}
