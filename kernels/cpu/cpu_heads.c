// Training heads and losses on the CPU: row gather/scatter, cosine-logit cross-entropy (HuBERT's
// masked prediction), plain cross-entropy, masked mean pooling, CTC.
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "common/error.h"
#include "kernels/cpu/cpu_internal.h"

#define CE_BLOCK 256  // rows of logits held at once by cosine_ce

int cpu_gather_rows(hb_ctx *ctx, float *y, const float *x, const int *idx, int N, int C) {
  (void)ctx;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) memcpy(y + (size_t)n * C, x + (size_t)idx[n] * C, sizeof(float) * C);
  return 0;
}

int cpu_scatter_rows(hb_ctx *ctx, float *dx, const float *dy, const int *idx, int N, int C) {
  (void)ctx;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) memcpy(dx + (size_t)idx[n] * C, dy + (size_t)n * C, sizeof(float) * C);
  return 0;
}

// Softmax statistics of one row z (K): returns logsumexp; *amax the first maximum's index.
static double row_lse(const float *z, int K, int *amax) {
  float m = z[0];
  int a = 0;
  for (int k = 1; k < K; k++)
    if (z[k] > m) { m = z[k]; a = k; }
  double s = 0;
  for (int k = 0; k < K; k++) s += exp((double)z[k] - m);
  *amax = a;
  return m + log(s);
}

// torch.cosine_similarity clamps each norm below at eps = 1e-8.
static float inv_norm(const float *v, int D) {
  double s = 0;
  for (int d = 0; d < D; d++) s += (double)v[d] * v[d];
  double nrm = sqrt(s);
  return (float)(1.0 / (nrm > 1e-8 ? nrm : 1e-8));
}

// Math (c_k = cos(p, e_k) = p^ . e^_k, g_k = w (softmax_k - [k == t]) / temp):
//   dL/dp   = (sum_k g_k e^_k - (sum_k g_k c_k) p^) / |p|
//   dL/de_k = (sum_n g_nk p^_n - (sum_n g_nk c_nk) e^_k) / |e_k|
// so per block of rows: C = P^ E^T (GEMM), G from C, dP = G E^ (GEMM), A += G^T P^ (GEMM).
int cpu_cosine_ce(hb_ctx *ctx, float *loss, int *correct, float *logits, float *dp, float *de, const float *p, int ldp,
                  const float *e, const int *target, const float *w, int N, int D, int K, float inv_temp) {
  if (N <= 0) return 0;
  for (int n = 0; n < N; n++)
    if (target[n] < 0 || target[n] >= K) return hb_fail("cosine_ce: target %d of row %d outside [0, %d)", target[n], n, K);
  const int want_grad = dp != NULL || de != NULL;
  size_t KD = (size_t)K * D, bK = (size_t)CE_BLOCK * K, bD = (size_t)CE_BLOCK * D;
  size_t nf = KD + K + bD + CE_BLOCK + bK + (want_grad ? bK + CE_BLOCK : 0) + (de ? KD + K : 0);
  float *ws = (float *)ops_workspace(ctx, nf * sizeof(float));
  if (!ws) return hb_fail_prefix("cosine_ce workspace (%zu floats)", nf);
  float *eh = ws, *inv_en = eh + KD;          // (K, D) normalised embeddings, (K) 1/|e_k|
  float *ph = inv_en + K, *inv_pn = ph + bD;  // (blk, D), (blk)
  float *cz = inv_pn + CE_BLOCK;              // (blk, K) cosines
  float *gz = cz + bK, *rg = gz + (want_grad ? bK : 0);        // (blk, K) g, (blk) sum_k g c
  float *acc = rg + (want_grad ? CE_BLOCK : 0), *sk = acc + KD;  // (K, D) A, (K) sum_n g c
  if (de) memset(acc, 0, sizeof(float) * (KD + K));
#pragma omp parallel for schedule(static)
  for (int k = 0; k < K; k++) {
    inv_en[k] = inv_norm(e + (size_t)k * D, D);
    for (int d = 0; d < D; d++) eh[(size_t)k * D + d] = e[(size_t)k * D + d] * inv_en[k];
  }
  for (int n0 = 0; n0 < N; n0 += CE_BLOCK) {
    const int nb = N - n0 < CE_BLOCK ? N - n0 : CE_BLOCK;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < nb; i++) {
      const float *pr = p + (size_t)(n0 + i) * ldp;
      inv_pn[i] = inv_norm(pr, D);
      for (int d = 0; d < D; d++) ph[(size_t)i * D + d] = pr[d] * inv_pn[i];
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, K, D, 1.0f, ph, D, eh, D, 0.0f, cz, K);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < nb; i++) {
      const int n = n0 + i, t = target[n];
      float *c = cz + (size_t)i * K;
      float m = c[0] * inv_temp;
      int a = 0;
      for (int k = 1; k < K; k++)
        if (c[k] * inv_temp > m) { m = c[k] * inv_temp; a = k; }
      double s = 0;
      for (int k = 0; k < K; k++) s += exp((double)c[k] * inv_temp - m);
      const double lse = m + log(s);
      loss[n] = (float)(lse - (double)c[t] * inv_temp);
      if (correct) correct[n] = a == t;
      if (logits)
        for (int k = 0; k < K; k++) logits[(size_t)n * K + k] = c[k] * inv_temp;
      if (want_grad) {
        float *g = gz + (size_t)i * K;
        const double wn = w ? w[n] : 1.0;
        double r = 0;
        for (int k = 0; k < K; k++) {
          double pk = exp((double)c[k] * inv_temp - lse);
          g[k] = (float)(wn * (pk - (k == t)) * inv_temp);
          r += (double)g[k] * c[k];
        }
        rg[i] = (float)r;
      }
    }
    if (!want_grad) continue;
    if (dp) {
      float *dpb = dp + (size_t)n0 * ldp;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, D, K, 1.0f, gz, K, eh, D, 0.0f, dpb, ldp);
#pragma omp parallel for schedule(static)
      for (int i = 0; i < nb; i++)
        for (int d = 0; d < D; d++)
          dpb[(size_t)i * ldp + d] = inv_pn[i] * (dpb[(size_t)i * ldp + d] - rg[i] * ph[(size_t)i * D + d]);
    }
    if (de) {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, D, nb, 1.0f, gz, K, ph, D, 1.0f, acc, D);
      for (int i = 0; i < nb; i++)
        for (int k = 0; k < K; k++) sk[k] += gz[(size_t)i * K + k] * cz[(size_t)i * K + k];
    }
  }
  if (de) {
#pragma omp parallel for schedule(static)
    for (int k = 0; k < K; k++)
      for (int d = 0; d < D; d++)
        de[(size_t)k * D + d] += inv_en[k] * (acc[(size_t)k * D + d] - sk[k] * eh[(size_t)k * D + d]);
  }
  return 0;
}

int cpu_softmax_ce(hb_ctx *ctx, float *loss, int *correct, float *dz, const float *z, const int *target,
                   const float *w, int N, int K) {
  (void)ctx;
  for (int n = 0; n < N; n++)
    if (target[n] < 0 || target[n] >= K) return hb_fail("softmax_ce: target %d of row %d outside [0, %d)", target[n], n, K);
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float *zr = z + (size_t)n * K;
    int a;
    const double lse = row_lse(zr, K, &a);
    loss[n] = (float)(lse - zr[target[n]]);
    if (correct) correct[n] = a == target[n];
    if (dz) {
      const double wn = w ? w[n] : 1.0;
      for (int k = 0; k < K; k++) dz[(size_t)n * K + k] = (float)(wn * (exp(zr[k] - lse) - (k == target[n])));
    }
  }
  return 0;
}

int cpu_seq_mean_pool(hb_ctx *ctx, float *y, const float *x, const int *len, int B, int T, int C) {
  (void)ctx;
  for (int b = 0; b < B; b++)
    if (len[b] < 1 || len[b] > T) return hb_fail("seq_mean_pool: length %d of utterance %d outside [1, %d]", len[b], b, T);
#pragma omp parallel for schedule(static)
  for (int b = 0; b < B; b++) {
    for (int c = 0; c < C; c++) {
      double s = 0;
      for (int t = 0; t < len[b]; t++) s += x[((size_t)b * T + t) * C + c];
      y[(size_t)b * C + c] = (float)(s / len[b]);
    }
  }
  return 0;
}

int cpu_seq_mean_pool_backward(hb_ctx *ctx, float *dx, const float *dy, const int *len, int B, int T, int C) {
  (void)ctx;
  for (int b = 0; b < B; b++)
    if (len[b] < 1 || len[b] > T) return hb_fail("seq_mean_pool_backward: length %d of utterance %d outside [1, %d]", len[b], b, T);
#pragma omp parallel for schedule(static)
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      for (int c = 0; c < C; c++)
        dx[((size_t)b * T + t) * C + c] = t < len[b] ? dy[(size_t)b * C + c] / (float)len[b] : 0.0f;
  return 0;
}

static inline double lse2(double a, double b) {
  if (a == -INFINITY) return b;
  if (b == -INFINITY) return a;
  return a > b ? a + log1p(exp(b - a)) : b + log1p(exp(a - b));
}

// One utterance. lp (T, V) log-probabilities, ext (L) the blank-interleaved target
// (blank, l1, blank, ..., lS, blank; labels at odd s), alpha/beta (T, L) scratch. Returns -log p.
static double ctc_one(float *dz, const float *z, const int *ext, int L, int T, int V, float wb, double *lp,
                      double *alpha, double *beta) {
  for (int t = 0; t < T; t++) {  // log-softmax over V
    const float *zr = z + (size_t)t * V;
    int a;
    const double lse = row_lse(zr, V, &a);
    for (int v = 0; v < V; v++) lp[(size_t)t * V + v] = zr[v] - lse;
  }
  // alpha_t(s) = lp[t, ext_s] + lse(alpha_{t-1}(s), alpha_{t-1}(s-1), alpha_{t-1}(s-2) if ext_s is
  // a label differing from ext_{s-2}); beta mirrors it from the end. Both include lp at t.
  for (int s = 0; s < L; s++) alpha[s] = s < 2 ? lp[ext[s]] : -INFINITY;
  for (int t = 1; t < T; t++) {
    const double *ap = alpha + (size_t)(t - 1) * L;
    double *ac = alpha + (size_t)t * L;
    for (int s = 0; s < L; s++) {
      double v = ap[s];
      if (s >= 1) v = lse2(v, ap[s - 1]);
      if (s >= 2 && (s & 1) && ext[s] != ext[s - 2]) v = lse2(v, ap[s - 2]);
      ac[s] = v == -INFINITY ? -INFINITY : v + lp[(size_t)t * V + ext[s]];
    }
  }
  const double *aT = alpha + (size_t)(T - 1) * L;
  const double ll = L > 1 ? lse2(aT[L - 1], aT[L - 2]) : aT[0];
  if (!dz) return -ll;
  if (ll == -INFINITY) {
    memset(dz, 0, sizeof(float) * (size_t)T * V);
    return INFINITY;
  }
  double *bT = beta + (size_t)(T - 1) * L;
  for (int s = 0; s < L; s++) bT[s] = s >= L - 2 ? lp[(size_t)(T - 1) * V + ext[s]] : -INFINITY;
  for (int t = T - 2; t >= 0; t--) {
    const double *bn = beta + (size_t)(t + 1) * L;
    double *bc = beta + (size_t)t * L;
    for (int s = 0; s < L; s++) {
      double v = bn[s];
      if (s + 1 < L) v = lse2(v, bn[s + 1]);
      if (s + 2 < L && (s & 1) && ext[s] != ext[s + 2]) v = lse2(v, bn[s + 2]);
      bc[s] = v == -INFINITY ? -INFINITY : v + lp[(size_t)t * V + ext[s]];
    }
  }
  // dL/dlp[t, v] = -exp(lse_{s: ext_s = v}(alpha_t(s) + beta_t(s)) - lp[t, v] - ll); through the
  // log-softmax: dz = dlp - softmax * sum_v dlp. The (t, v) sums reuse dz as an accumulator of
  // exp(alpha + beta - ll) (<= 1 each, no overflow).
  for (int t = 0; t < T; t++) {
    float *dr = dz + (size_t)t * V;
    const double *lr = lp + (size_t)t * V;
    double *occ = beta + (size_t)t * L;  // overwritten in place: alpha + beta - ll, then exp
    for (int v = 0; v < V; v++) dr[v] = 0.0f;
    for (int s = 0; s < L; s++) {
      double o = alpha[(size_t)t * L + s] + occ[s] - ll;
      if (o > -INFINITY) dr[ext[s]] += (float)exp(o - lr[ext[s]]);
    }
    double sum = 0;
    for (int v = 0; v < V; v++) sum += dr[v];
    for (int v = 0; v < V; v++) dr[v] = (float)(wb * (-(double)dr[v] + exp(lr[v]) * sum));
  }
  return -ll;
}

int cpu_ctc_loss(hb_ctx *ctx, float *loss, float *dz, const float *z, const int *targets, const int *in_len,
                 const int *tgt_len, const float *w, int B, int T, int V, int S, int blank) {
  if (blank < 0 || blank >= V) return hb_fail("ctc_loss: blank %d outside [0, %d)", blank, V);
  for (int b = 0; b < B; b++) {
    if (in_len[b] < 1 || in_len[b] > T) return hb_fail("ctc_loss: input length %d of utterance %d outside [1, %d]", in_len[b], b, T);
    if (tgt_len[b] < 0 || tgt_len[b] > S) return hb_fail("ctc_loss: target length %d of utterance %d outside [0, %d]", tgt_len[b], b, S);
    for (int i = 0; i < tgt_len[b]; i++) {
      int l = targets[(size_t)b * S + i];
      if (l < 0 || l >= V || l == blank)
        return hb_fail("ctc_loss: target %d at position %d of utterance %d is the blank or outside [0, %d)", l, i, b, V);
    }
  }
  const size_t L = 2 * (size_t)S + 1;
  const size_t per = (size_t)T * V + 2 * (size_t)T * L + L;  // doubles: lp, alpha, beta, ext (as ints)
  double *ws = (double *)ops_workspace(ctx, sizeof(double) * per * (size_t)B);
  if (!ws) return hb_fail_prefix("ctc_loss workspace");
#pragma omp parallel for schedule(dynamic, 1)
  for (int b = 0; b < B; b++) {
    double *lp = ws + per * b, *alpha = lp + (size_t)T * V, *beta = alpha + (size_t)T * L;
    int *ext = (int *)(beta + (size_t)T * L);
    const int Lb = 2 * tgt_len[b] + 1;
    for (int s = 0; s < Lb; s++) ext[s] = s % 2 ? targets[(size_t)b * S + s / 2] : blank;
    const int Tb = in_len[b];
    float *dzb = dz ? dz + (size_t)b * T * V : NULL;
    double nll = ctc_one(dzb, z + (size_t)b * T * V, ext, Lb, Tb, V, w ? w[b] : 1.0f, lp, alpha, beta);
    loss[b] = (float)nll;
    if (dzb) memset(dzb + (size_t)Tb * V, 0, sizeof(float) * (size_t)(T - Tb) * V);
  }
  return 0;
}
