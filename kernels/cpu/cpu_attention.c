// Multi-head attention with a key-padding mask, blocked over queries so memory is
// O(threads * block * T) instead of O(H * T^2): a 10-minute file (T = 30k frames) needs
// 2 * 128 * 30k floats of scratch, not 12 * 30k^2.
//
// For each (b, h, block of queries): S = scale * Q_blk K^T over the valid keys only (s < len[b],
// so masked keys never enter the softmax), row softmax, O_blk = S V. Tasks run in parallel;
// OpenBLAS (OpenMP build) runs single-threaded inside the parallel region.
#include <cblas.h>
#include <math.h>
#include <omp.h>

#include "common/error.h"
#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/cpu_math.h"

#define ATT_QBLOCK 128

int cpu_attention(hb_ctx *ctx, float *out, const float *q, const float *k, const float *v, const int *len, int B,
                  int T, int H, int Dh, float scale) {
  const int C = H * Dh;
  const int nblk = (T + ATT_QBLOCK - 1) / ATT_QBLOCK;
  const int nthr = cpu_threads(ctx);
  float *scratch = ops_workspace(ctx, sizeof(float) * (size_t)nthr * ATT_QBLOCK * T);
  if (!scratch) return -1;
  for (int b = 0; b < B; b++)
    if (len && (len[b] < 1 || len[b] > T)) return hb_fail("attention: length %d of item %d outside [1, %d]", len[b], b, T);
  const int tasks = B * H * nblk;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthr)
  for (int task = 0; task < tasks; task++) {
    const int b = task / (H * nblk), h = (task / nblk) % H, blk = task % nblk;
    const int t0 = blk * ATT_QBLOCK;
    const int m = T - t0 < ATT_QBLOCK ? T - t0 : ATT_QBLOCK;
    const int S = len ? len[b] : T;
    float *s = scratch + (size_t)omp_get_thread_num() * ATT_QBLOCK * T;
    const size_t base = (size_t)b * T * C + (size_t)h * Dh;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, S, Dh, scale, q + base + (size_t)t0 * C, C, k + base, C,
                0.0f, s, S);
    for (int i = 0; i < m; i++) {
      float *r = s + (size_t)i * S;
      float mx = -INFINITY;
      for (int j = 0; j < S; j++) mx = r[j] > mx ? r[j] : mx;
      const float inv = 1.0f / hb_exp_shift_sum(r, (size_t)S, mx);
      for (int j = 0; j < S; j++) r[j] *= inv;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, Dh, S, 1.0f, s, S, v + base, C, 0.0f,
                out + base + (size_t)t0 * C, C);
  }
  return 0;
}
