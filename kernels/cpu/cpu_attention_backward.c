// Attention for training: a forward that saves the per-row logsumexp, and the backward that
// recomputes the probabilities blockwise from it (FlashAttention's recurrence, on the CPU).
//
// Per (b, h) and block of m query rows, with S the number of valid keys:
//   P  = exp(scale * Q_blk K^T - lse)            (m, S)   probabilities, recomputed
//   P' = P * M / (1 - p)                         (m, S)   dropped (M: keep mask; P' = P if p = 0)
//   dV += P'^T dO_blk                            (S, Dh)
//   dP = (dO_blk V^T) * M / (1 - p)              (m, S)   gradient of P through the dropout
//   D_i = sum_j P_ij dP_ij  (= sum_j P'_ij (dO V^T)_ij = dO_i . O_i)
//   dS = P * (dP - D)                            (m, S)
//   dQ_blk = scale * dS K,   dK += scale * dS^T Q_blk
// The mask of row (b, h, t) is regenerated from the seed at flat index ((b*H + h)*T + t)*T + s
// (kernels/dropout_mask.h); dS is formed before P is overwritten by P' for dV.
// A task is one (b, h): it owns the Dh columns of head h in dq/dk/dv for item b, so the dK/dV
// accumulation over query blocks is race-free. Scratch: 2 * block * T floats per thread.
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "common/error.h"
#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/cpu_math.h"
#include "kernels/dropout_mask.h"

#define ATT_QBLOCK 128

static int check_len(const char *op, const int *len, int B, int T) {
  for (int b = 0; b < B; b++)
    if (len && (len[b] < 1 || len[b] > T)) return hb_fail("%s: length %d of item %d outside [1, %d]", op, len[b], b, T);
  return 0;
}

static uint64_t row_index(int b, int h, int t, int H, int T) { return hb_attention_dropout_index(b, h, t, 0, H, T); }

int cpu_attention_train(hb_ctx *ctx, float *out, float *lse, const float *q, const float *k, const float *v,
                        const int *len, int B, int T, int H, int Dh, float scale, float dropout_p,
                        uint64_t dropout_seed) {
  if (B < 0 || T < 1 || H < 1 || Dh < 1) return hb_fail("attention_train: bad shape B=%d T=%d H=%d Dh=%d", B, T, H, Dh);
  HB_TRY(check_len("attention_train", len, B, T));
  const int C = H * Dh, nblk = (T + ATT_QBLOCK - 1) / ATT_QBLOCK, nthr = cpu_threads(ctx);
  float *scratch = ops_workspace(ctx, sizeof(float) * (size_t)nthr * ATT_QBLOCK * T);
  if (!scratch) return -1;
  const int drop = dropout_p > 0.0f;
  const uint64_t thr = hb_dropout_threshold(dropout_p);
  const float keep_scale = dropout_p < 1.0f ? 1.0f / (1.0f - dropout_p) : 0.0f;
  const int tasks = B * H * nblk;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthr)
  for (int task = 0; task < tasks; task++) {
    const int b = task / (H * nblk), h = (task / nblk) % H, blk = task % nblk;
    const int t0 = blk * ATT_QBLOCK, m = T - t0 < ATT_QBLOCK ? T - t0 : ATT_QBLOCK;
    const int S = len ? len[b] : T;
    float *s = scratch + (size_t)omp_get_thread_num() * ATT_QBLOCK * T;
    const size_t base = (size_t)b * T * C + (size_t)h * Dh;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, S, Dh, scale, q + base + (size_t)t0 * C, C, k + base, C,
                0.0f, s, S);
    for (int i = 0; i < m; i++) {
      float *r = s + (size_t)i * S;
      float mx = -INFINITY;
      for (int j = 0; j < S; j++) mx = r[j] > mx ? r[j] : mx;
      const float sum = hb_exp_shift_sum(r, (size_t)S, mx);
      const float inv = 1.0f / sum;
      if (drop)  // P' = P * M / (1 - p) in one pass
        cpu_dropout_span(r, r, (size_t)S, row_index(b, h, t0 + i, H, T), dropout_seed, thr, inv * keep_scale);
      else
        for (int j = 0; j < S; j++) r[j] *= inv;
      if (lse) lse[((size_t)b * H + h) * T + t0 + i] = mx + logf(sum);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, Dh, S, 1.0f, s, S, v + base, C, 0.0f,
                out + base + (size_t)t0 * C, C);
  }
  return 0;
}

int cpu_attention_backward(hb_ctx *ctx, float *dq, float *dk, float *dv, const float *dout, const float *q,
                           const float *k, const float *v, const float *lse, const int *len, int B, int T, int H,
                           int Dh, float scale, float dropout_p, uint64_t dropout_seed) {
  if (B < 0 || T < 1 || H < 1 || Dh < 1) return hb_fail("attention_backward: bad shape B=%d T=%d H=%d Dh=%d", B, T, H, Dh);
  HB_TRY(check_len("attention_backward", len, B, T));
  const int C = H * Dh, nthr = cpu_threads(ctx);
  const size_t per_thr = 2 * (size_t)ATT_QBLOCK * T;
  float *scratch = ops_workspace(ctx, sizeof(float) * (size_t)nthr * per_thr);
  if (!scratch) return -1;
  const int drop = dropout_p > 0.0f;
  const uint64_t thr = hb_dropout_threshold(dropout_p);
  const float keep_scale = dropout_p < 1.0f ? 1.0f / (1.0f - dropout_p) : 0.0f;
  const int tasks = B * H;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthr)
  for (int task = 0; task < tasks; task++) {
    const int b = task / H, h = task % H;
    const int S = len ? len[b] : T;
    float *p = scratch + (size_t)omp_get_thread_num() * per_thr, *dp = p + (size_t)ATT_QBLOCK * T;
    const size_t base = (size_t)b * T * C + (size_t)h * Dh;
    // dk, dv of this head: zero (padded keys stay zero), then accumulate over query blocks.
    for (int t = 0; t < T; t++) {
      if (dk) memset(dk + base + (size_t)t * C, 0, sizeof(float) * Dh);
      if (dv) memset(dv + base + (size_t)t * C, 0, sizeof(float) * Dh);
    }
    for (int t0 = 0; t0 < T; t0 += ATT_QBLOCK) {
      const int m = T - t0 < ATT_QBLOCK ? T - t0 : ATT_QBLOCK;
      const float *qb = q + base + (size_t)t0 * C, *dob = dout + base + (size_t)t0 * C;
      const float *lb = lse + ((size_t)b * H + h) * T + t0;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, S, Dh, scale, qb, C, k + base, C, 0.0f, p, S);
      for (int i = 0; i < m; i++) {
        (void)hb_exp_shift_sum(p + (size_t)i * S, (size_t)S, lb[i]);  // P = exp(s - lse)
      }
      if (dv && !drop)  // dV (S, Dh) += P^T (S, m) @ dO_blk (m, Dh)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, S, Dh, m, 1.0f, p, S, dob, C, 1.0f, dv + base, C);
      if (dq || dk) {
        // dP (m, S) = dO_blk (m, Dh) @ V^T (Dh, S)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, S, Dh, 1.0f, dob, C, v + base, C, 0.0f, dp, S);
        for (int i = 0; i < m; i++) {
          const float *pr = p + (size_t)i * S;
          float *dr = dp + (size_t)i * S;
          if (drop) cpu_dropout_span(dr, dr, (size_t)S, row_index(b, h, t0 + i, H, T), dropout_seed, thr, keep_scale);
          double d = 0;
          for (int j = 0; j < S; j++) d += (double)pr[j] * dr[j];
          const float df = (float)d;
#pragma omp simd
          for (int j = 0; j < S; j++) dr[j] = pr[j] * (dr[j] - df);
        }
        if (dq)  // dQ_blk (m, Dh) = scale * dS (m, S) @ K (S, Dh)
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, Dh, S, scale, dp, S, k + base, C, 0.0f,
                      dq + base + (size_t)t0 * C, C);
        if (dk)  // dK (S, Dh) += scale * dS^T (S, m) @ Q_blk (m, Dh)
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, S, Dh, m, scale, dp, S, qb, C, 1.0f, dk + base, C);
      }
      if (dv && drop) {  // P' = P * M / (1 - p) in place (dS no longer needs P), dV += P'^T dO_blk
        for (int i = 0; i < m; i++)
          cpu_dropout_span(p + (size_t)i * S, p + (size_t)i * S, (size_t)S, row_index(b, h, t0 + i, H, T), dropout_seed,
                           thr, keep_scale);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, S, Dh, m, 1.0f, p, S, dob, C, 1.0f, dv + base, C);
      }
    }
  }
  return 0;
}
