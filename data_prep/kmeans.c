// k-means: k-means++ seeding, mini-batch k-means (sklearn MiniBatchKMeans semantics), Lloyd.
#include "data_prep/kmeans.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "data_prep/kmeans_dist.h"

#define KM_BLOCK 1024     // rows per sgemm block in assignment
#define KM_FBLOCK 256     // rows per task of the fused kernel
#define KMPP_BLOCK 2048   // rows per task for k-means++ candidates (packed kernel, small d)
#define KMPP_DOT_BLOCK 512  // the same for the dot-product kernel (large d)
#ifndef KM_FUSED_MAX_D
#define KM_FUSED_MAX_D 128  // fused register-blocked kernel up to this dim, sgemm + argmin above
#endif

void kmeans_default_params(hb_kmeans_params *p) {
  memset(p, 0, sizeof *p);
  p->k = 100;
  p->max_iter = 100;
  p->batch_size = 10000;
  p->n_init = 20;
  p->max_no_improvement = 100;
  p->init_size = 0;
  p->tol = 0.0;
  p->lloyd_iters = 0;
  p->seed = 0;
}

static void row_sqnorms_serial(const float *x, int64_t n, int d, float *out) {
  for (int64_t i = 0; i < n; i++) {
    const float *r = x + (size_t)i * d;
    float s = 0;
    for (int j = 0; j < d; j++) s += r[j] * r[j];
    out[i] = s;
  }
}

static void row_sqnorms(const float *x, int64_t n, int d, float *out) {
#pragma omp parallel for schedule(static) if (n > 4 * KM_BLOCK)
  for (int64_t i = 0; i < n; i++) {
    const float *r = x + (size_t)i * d;
    float s = 0;
    for (int j = 0; j < d; j++) s += r[j] * r[j];
    out[i] = s;
  }
}

// Squared distances of nb rows to k centers: out (nb, k) = xsq - 2 x c^T + csq, clamped >= 0.
static void block_sqdist(const float *x, int64_t nb, int d, const float *xsq, const float *c,
                         const float *csq, int k, float *out) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, k, d, -2.0f, x, d, c, d, 0.0f, out, k);
  for (int64_t i = 0; i < nb; i++) {
    float *o = out + (size_t)i * k;
    for (int j = 0; j < k; j++) {
      float v = o[j] + xsq[i] + csq[j];
      o[j] = v > 0 ? v : 0;
    }
  }
}

// Nearest center of each row: labels (n) and/or mind (n) may be NULL; returns 0/-1.
static int assign_rows_fused(const float *x, int64_t n, int d, const float *c, int k, int32_t *labels,
                             float *mind, double *inertia) {
  km_packed pk;
  if (km_pack_init(&pk, c, k, d)) return -1;
  int64_t nblocks = (n + KM_FBLOCK - 1) / KM_FBLOCK;
  double total = 0;
#pragma omp parallel for schedule(dynamic, 4) reduction(+ : total) if (nblocks > 8)
  for (int64_t b = 0; b < nblocks; b++) {
    int64_t r0 = b * KM_FBLOCK, nb = n - r0 < KM_FBLOCK ? n - r0 : KM_FBLOCK;
    total += km_argmin_rows(x + (size_t)r0 * d, nb, d, &pk, labels ? labels + r0 : NULL, mind ? mind + r0 : NULL);
  }
  km_pack_free(&pk);
  if (inertia) *inertia = total;
  return 0;
}

// sgemm path; dall (n, k) (may be NULL) = all squared distances.
static int assign_rows_gemm(const float *x, int64_t n, int d, const float *xsq, const float *c, int k,
                            int32_t *labels, float *mind, float *dall, double *inertia) {
  float *csq = hb_malloc((size_t)k * sizeof(float));
  if (!csq) return -1;
  row_sqnorms_serial(c, k, d, csq);
  int64_t nblocks = (n + KM_BLOCK - 1) / KM_BLOCK;
  double total = 0;
  int failed = 0;
  if (dall && xsq && n <= INT32_MAX) {
    // All distances wanted: one sgemm into dall (OpenBLAS threads it and packs the centers
    // once), then the argmin rows in parallel (static: equal row counts per thread).
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, k, d, -2.0f, x, d, c, d, 0.0f, dall, k);
#pragma omp parallel for schedule(static) reduction(+ : total) if (n > KM_BLOCK)
    for (int64_t i = 0; i < n; i++) {
      float *o = dall + (size_t)i * k;
      int best = 0;
      float bv = INFINITY;
      for (int j = 0; j < k; j++) {
        float v = o[j] + xsq[i] + csq[j];
        v = v > 0 ? v : 0;
        o[j] = v;
        if (v < bv) { bv = v; best = j; }
      }
      if (labels) labels[i] = best;
      if (mind) mind[i] = bv;
      total += bv;
    }
    free(csq);
    if (inertia) *inertia = total;
    return 0;
  }
#pragma omp parallel reduction(+ : total) if (nblocks > 4)
  {
    float *buf = hb_malloc((size_t)KM_BLOCK * k * sizeof(float));
    float xs[KM_BLOCK];
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < nblocks; b++) {
      if (!buf) continue;
      int64_t r0 = b * KM_BLOCK, nb = n - r0 < KM_BLOCK ? n - r0 : KM_BLOCK;
      const float *xb = x + (size_t)r0 * d;
      if (xsq) {
        memcpy(xs, xsq + r0, (size_t)nb * sizeof(float));
      } else {
        row_sqnorms_serial(xb, nb, d, xs);
      }
      block_sqdist(xb, nb, d, xs, c, csq, k, buf);
      for (int64_t i = 0; i < nb; i++) {
        const float *o = buf + (size_t)i * k;
        int best = 0;
        float bv = o[0];
        for (int j = 1; j < k; j++)
          if (o[j] < bv) { bv = o[j]; best = j; }
        if (dall) memcpy(dall + (size_t)(r0 + i) * k, o, (size_t)k * sizeof(float));
        if (labels) labels[r0 + i] = best;
        if (mind) mind[r0 + i] = bv;
        total += bv;
      }
    }
    if (!buf) {
#pragma omp atomic write
      failed = 1;
    }
    free(buf);
  }
  free(csq);
  if (failed) return hb_fail_prefix("kmeans: distance buffer");
  if (inertia) *inertia = total;
  return 0;
}

static int assign_rows(const float *x, int64_t n, int d, const float *xsq, const float *c, int k,
                       int32_t *labels, float *mind, double *inertia) {
  if (d <= KM_FUSED_MAX_D) return assign_rows_fused(x, n, d, c, k, labels, mind, inertia);
  return assign_rows_gemm(x, n, d, xsq, c, k, labels, mind, NULL, inertia);
}

int kmeans_assign(const float *x, int64_t n, int d, const float *centers, int k, int32_t *labels,
                  double *inertia) {
  if (n < 0 || d <= 0 || k <= 0) return hb_fail("kmeans_assign: bad shape n=%lld d=%d k=%d", (long long)n, d, k);
  return assign_rows(x, n, d, NULL, centers, k, labels, NULL, inertia);
}

static int64_t search_cumsum(const double *cs, int64_t n, double v) {
  // First index i with cs[i] >= v (numpy searchsorted, side='left'), clipped to n-1.
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    if (cs[mid] < v) lo = mid + 1; else hi = mid;
  }
  return lo < n ? lo : n - 1;
}

// k-means++ scoring on large d (dot-product kernel). The rows are scored as IEEE half where the
// build has F16C and every |x| < 65504: the pass over the sample per center is memory-bound, and
// half the bytes make it ~1.9x faster. Distances are then exact distances between the rounded
// rows (relative rounding 2^-11 per coordinate, norms from the rounded values), so the choice
// between candidates whose potentials differ by less than ~1e-4 may differ from float32
// scoring; the chosen centers are the original float32 rows. Deterministic for any thread count.
typedef struct {
  const float *x;     // (n, d) float32 rows, or NULL when h is used
  uint16_t *h;        // (n, d) half rows (owned) or NULL
  float *sq;          // (n) squared norms of the scored rows (owned when h)
  const float *xsq;
  int64_t n;
  int d;
} kpp_rows;

static int kpp_rows_init(kpp_rows *r, const float *x, int64_t n, int d, const float *xsq) {
  memset(r, 0, sizeof *r);
  r->x = x, r->n = n, r->d = d, r->xsq = xsq;
#if KM_HAVE_F16C
  size_t nd = (size_t)n * d;
  int in_range = 1;
  for (size_t i = 0; i < nd && in_range; i++) in_range = fabsf(x[i]) < 65504.0f;  // NaN: out of range
  if (!in_range) return 0;
  r->h = hb_malloc(nd * sizeof(uint16_t));
  r->sq = hb_malloc((size_t)n * sizeof(float));
  float *row = hb_malloc((size_t)d * sizeof(float));
  if (!r->h || !r->sq || !row) {
    free(r->h), free(r->sq), free(row);
    return -1;
  }
  km_to_half(x, nd, r->h);
  for (int64_t i = 0; i < n; i++) {
    km_from_half(r->h + (size_t)i * d, (size_t)d, row);
    float s = 0;
    for (int j = 0; j < d; j++) s += row[j] * row[j];
    r->sq[i] = s;
  }
  free(row);
#endif
  return 0;
}

static void kpp_rows_free(kpp_rows *r) {
  free(r->h);
  free(r->sq);
  memset(r, 0, sizeof *r);
}

// Row i as scored (float32 of the half values when rounded) into out (d); its squared norm.
static float kpp_row(const kpp_rows *r, int64_t i, float *out) {
#if KM_HAVE_F16C
  if (r->h) {
    km_from_half(r->h + (size_t)i * r->d, (size_t)r->d, out);
    return r->sq[i];
  }
#endif
  memcpy(out, r->x + (size_t)i * r->d, (size_t)r->d * sizeof(float));
  return r->xsq[i];
}

// dist (n, ld), bpot (nblocks, ld) per-block potentials of T candidates (see km_cand_rows_dot).
static void kpp_score(const kpp_rows *r, const float *cand, const float *csq, int T, int ld, const float *closest,
                      float *dist, double *bpot) {
  const int64_t n = r->n;
  const int d = r->d;
  const int64_t nblocks = (n + KMPP_DOT_BLOCK - 1) / KMPP_DOT_BLOCK;
#pragma omp parallel for schedule(static) if (nblocks > 1)
  for (int64_t b = 0; b < nblocks; b++) {
    const int64_t r0 = b * KMPP_DOT_BLOCK, nb = n - r0 < KMPP_DOT_BLOCK ? n - r0 : KMPP_DOT_BLOCK;
    double *bp = bpot + (size_t)b * ld;
    for (int t = 0; t < ld; t++) bp[t] = 0;
#if KM_HAVE_F16C
    if (r->h) {
      km_cand_rows_dot_h(r->h + (size_t)r0 * d, nb, d, r->sq + r0, cand, csq, T, ld, closest + r0,
                         dist + (size_t)r0 * ld, bp);
      continue;
    }
#endif
    km_cand_rows_dot(r->x + (size_t)r0 * d, nb, d, r->xsq + r0, cand, csq, T, ld, closest + r0, dist + (size_t)r0 * ld,
                     bp);
  }
}

int kmeans_plusplus(const float *x, int64_t n, int d, const float *xsq, int k, int n_local_trials,
                    hb_rng *rng, float *centers) {
  if (n <= 0 || k <= 0 || k > n) return hb_fail("kmeans++: need 0 < k <= n (k=%d, n=%lld)", k, (long long)n);
  if (n_local_trials <= 0) n_local_trials = 2 + (int)log((double)k);
  if (n_local_trials > 64) return hb_fail("kmeans++: too many local trials (%d)", n_local_trials);
  int T = n_local_trials, Tp = (T + 7) & ~7;
  const int packed = d <= KM_FUSED_MAX_D;
  const int64_t blk = packed ? KMPP_BLOCK : KMPP_DOT_BLOCK, nblocks = (n + blk - 1) / blk;
  float *closest = hb_malloc((size_t)n * sizeof(float));
  float *cand_d = hb_malloc((size_t)n * Tp * sizeof(float));  // (n, Tp)
  double *bpot = hb_malloc((size_t)nblocks * Tp * sizeof(double));
  double *cum = hb_malloc((size_t)n * sizeof(double));
  float *cand = hb_malloc((size_t)T * d * sizeof(float));      // (T, d)
  int64_t *cid = hb_malloc((size_t)T * sizeof(int64_t));
  double *pot = hb_malloc((size_t)T * sizeof(double));
  float *csq = hb_malloc((size_t)T * sizeof(float));
  kpp_rows rows;
  memset(&rows, 0, sizeof rows);
  int rc = -1;
  if (!closest || !cand_d || !bpot || !cum || !cand || !cid || !pot || !csq) goto done;
  if (!packed && kpp_rows_init(&rows, x, n, d, xsq)) goto done;

  int64_t first = (int64_t)rng_below(rng, (uint64_t)n);
  memcpy(centers, x + (size_t)first * d, (size_t)d * sizeof(float));
  if (packed) {
    if (assign_rows(x, n, d, xsq, centers, 1, NULL, closest, NULL)) goto done;
  } else {  // the first center scored like the candidates: closest = dist (min with FLT_MAX)
    csq[0] = kpp_row(&rows, first, cand);
    for (int64_t i = 0; i < n; i++) closest[i] = FLT_MAX;
    kpp_score(&rows, cand, csq, 1, Tp, closest, cand_d, bpot);
    for (int64_t i = 0; i < n; i++) closest[i] = cand_d[(size_t)i * Tp];
  }
  double cur = 0;
  for (int64_t i = 0; i < n; i++) cur += closest[i];

  for (int c = 1; c < k; c++) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) { s += closest[i]; cum[i] = s; }
    for (int t = 0; t < T; t++) {
      cid[t] = search_cumsum(cum, n, rng_uniform_double(rng) * cur);
      if (packed) memcpy(cand + (size_t)t * d, x + (size_t)cid[t] * d, (size_t)d * sizeof(float));
      else csq[t] = kpp_row(&rows, cid[t], cand + (size_t)t * d);
    }
    // cand_d (n, Tp): distance of every row to every candidate; pot from per-block partial
    // sums added in block order (deterministic for any thread count).
    if (packed) {
      km_packed pk;
      if (km_pack_init(&pk, cand, T, d)) goto done;
#pragma omp parallel for schedule(static) if (nblocks > 1)
      for (int64_t b = 0; b < nblocks; b++) {
        int64_t r0 = b * KMPP_BLOCK, nb = n - r0 < KMPP_BLOCK ? n - r0 : KMPP_BLOCK;
        double *bp = bpot + (size_t)b * Tp;
        for (int t = 0; t < Tp; t++) bp[t] = 0;
        km_cand_rows(x + (size_t)r0 * d, nb, d, xsq + r0, &pk, closest + r0, cand_d + (size_t)r0 * Tp, bp);
      }
      km_pack_free(&pk);
    } else {
      kpp_score(&rows, cand, csq, T, Tp, closest, cand_d, bpot);
    }
    for (int t = 0; t < T; t++) pot[t] = 0;
    for (int64_t b = 0; b < nblocks; b++)
      for (int t = 0; t < T; t++) pot[t] += bpot[(size_t)b * Tp + t];
    int best = 0;
    for (int t = 1; t < T; t++)
      if (pot[t] < pot[best]) best = t;
    cur = pot[best];
    for (int64_t i = 0; i < n; i++) {
      float v = cand_d[(size_t)i * Tp + best];
      if (v < closest[i]) closest[i] = v;
    }
    memcpy(centers + (size_t)c * d, x + (size_t)cid[best] * d, (size_t)d * sizeof(float));
  }
  rc = 0;
done:
  free(closest); free(cand_d); free(bpot); free(cum); free(cand); free(cid); free(pot); free(csq);
  kpp_rows_free(&rows);
  return rc;
}

// Copies rows idx[0..m) of x into out (m, d) and their norms into osq.
static void gather_rows(const float *x, const float *xsq, int d, const int64_t *idx, int64_t m,
                        float *out, float *osq) {
  for (int64_t i = 0; i < m; i++) {
    memcpy(out + (size_t)i * d, x + (size_t)idx[i] * d, (size_t)d * sizeof(float));
    osq[i] = xsq[idx[i]];
  }
}

// sklearn _minibatch_update_dense: a center seen in the batch moves to the running mean of all
// points ever assigned to it: c <- (c * n_c + sum_batch x) / (n_c + m_c), n_c += m_c.
static void minibatch_update(const float *xb, int64_t m, int d, const int32_t *labels, int k,
                             float *centers, double *counts, double *acc /* (k, d) */, int64_t *cnt) {
  memset(acc, 0, (size_t)k * d * sizeof(double));
  memset(cnt, 0, (size_t)k * sizeof(int64_t));
  for (int64_t i = 0; i < m; i++) {
    double *a = acc + (size_t)labels[i] * d;
    const float *r = xb + (size_t)i * d;
    for (int j = 0; j < d; j++) a[j] += r[j];
    cnt[labels[i]]++;
  }
  for (int c = 0; c < k; c++) {
    if (!cnt[c]) continue;
    float *cc = centers + (size_t)c * d;
    double *a = acc + (size_t)c * d;
    double nc = counts[c] + (double)cnt[c];
    for (int j = 0; j < d; j++) cc[j] = (float)(((double)cc[j] * counts[c] + a[j]) / nc);
    counts[c] = nc;
  }
}

// Elkan-style bounds carried across mini-batch steps (sgemm path, large D): for each data row an
// upper bound ub on the distance to its label and lower bounds lbm (k) on the distance to every
// center, valid at the step they were taken; center movement since then loosens them by the
// triangle inequality (ub + moved(label), lbm_c - moved(c)). A sampled row whose exact distance
// to its label is below every other loosened lbm_c keeps its label without the k distances:
// labels are those of the full search up to float rounding (stored lbm have a rounding margin).
typedef struct {
  int k;
  float *ub, *lbm;           // (n), (n, k) distances, not squared
  int32_t *lab, *snap_s;     // (n) -1: no bounds yet; step of lbm
  double *snap_c;            // (n) cum_move[lab] when ub was taken
  double *hist;              // (steps + 1, k) cum_move after each step; row 0 = 0
  int64_t step;
  float *prev;               // (k, d) centers before the step
  float *bd2, *tx, *txsq, *tmind, *tdall;  // (bs), (bs, d), (bs), (bs), (bs, k)
  int32_t *tlab;             // (bs)
  int64_t *todo;             // (bs)
  int64_t pruned, visited;
} km_bounds;

static void bounds_free(km_bounds *B) {
  free(B->ub); free(B->lbm); free(B->lab); free(B->snap_s); free(B->snap_c); free(B->hist);
  free(B->prev); free(B->bd2); free(B->tx); free(B->txsq); free(B->tmind); free(B->tdall);
  free(B->tlab); free(B->todo);
  memset(B, 0, sizeof *B);
}

static int bounds_init(km_bounds *B, int64_t n, int d, int k, int64_t bs, int64_t steps) {
  memset(B, 0, sizeof *B);
  size_t nk, hk, bk;
  if (hb_mul_size((size_t)n, (size_t)k, &nk) || hb_mul_size((size_t)steps + 1, (size_t)k, &hk) ||
      hb_mul_size((size_t)bs, (size_t)k, &bk))
    return hb_fail_prefix("kmeans: bound buffers");
  B->k = k;
  B->ub = hb_malloc((size_t)n * sizeof(float));
  B->lbm = hb_malloc(nk * sizeof(float));
  B->lab = hb_malloc((size_t)n * sizeof(int32_t));
  B->snap_s = hb_malloc((size_t)n * sizeof(int32_t));
  B->snap_c = hb_malloc((size_t)n * sizeof(double));
  B->hist = hb_calloc(hk, sizeof(double));
  B->prev = hb_malloc((size_t)k * d * sizeof(float));
  B->bd2 = hb_malloc((size_t)bs * sizeof(float));
  B->tx = hb_malloc((size_t)bs * d * sizeof(float));
  B->txsq = hb_malloc((size_t)bs * sizeof(float));
  B->tmind = hb_malloc((size_t)bs * sizeof(float));
  B->tdall = hb_malloc(bk * sizeof(float));
  B->tlab = hb_malloc((size_t)bs * sizeof(int32_t));
  B->todo = hb_malloc((size_t)bs * sizeof(int64_t));
  if (!B->ub || !B->lbm || !B->lab || !B->snap_s || !B->snap_c || !B->hist || !B->prev || !B->bd2 ||
      !B->tx || !B->txsq || !B->tmind || !B->tdall || !B->tlab || !B->todo) {
    bounds_free(B);
    return hb_fail_prefix("kmeans: bound buffers");
  }
  for (int64_t i = 0; i < n; i++) B->lab[i] = -1;
  return 0;
}

// Labels lab (bs) of the gathered batch sub (bs, d) (rows idx of the data); *inertia = batch sum.
static int bounds_assign(km_bounds *B, const int64_t *idx, const float *sub, const float *subsq, int64_t bs,
                         int d, const float *centers, int k, int32_t *lab, double *inertia) {
  double tot = 0;
  const double *cur = B->hist + (size_t)B->step * k;
#pragma omp parallel for schedule(static) reduction(+ : tot)
  for (int64_t i = 0; i < bs; i++) {
    int64_t row = idx[i];
    int l = B->lab[row];
    lab[i] = -1;
    if (l < 0) continue;
    const double *h0 = B->hist + (size_t)B->snap_s[row] * k;
    const float *lb = B->lbm + (size_t)row * k;
    double lo = INFINITY;
    for (int c = 0; c < k; c++) {
      double v = (double)lb[c] - (cur[c] - h0[c]);
      if (c != l && v < lo) lo = v;
    }
    if ((double)B->ub[row] + (cur[l] - B->snap_c[row]) >= lo) continue;
    const float *xr = sub + (size_t)i * d, *cr = centers + (size_t)l * d;
    float e = 0;
    for (int j = 0; j < d; j++) { float t = xr[j] - cr[j]; e += t * t; }
    if (sqrt((double)e) < lo) { lab[i] = l; B->bd2[i] = e; tot += e; }
  }
  int64_t nt = 0;
  for (int64_t i = 0; i < bs; i++) {
    int64_t row = idx[i];
    if (lab[i] >= 0) {
      B->ub[row] = sqrtf(B->bd2[i]);
      B->snap_c[row] = cur[lab[i]];
    } else {
      memcpy(B->tx + (size_t)nt * d, sub + (size_t)i * d, (size_t)d * sizeof(float));
      B->txsq[nt] = subsq[i];
      B->todo[nt++] = i;
    }
  }
  double t2 = 0;
  if (nt && assign_rows_gemm(B->tx, nt, d, B->txsq, centers, k, B->tlab, B->tmind, B->tdall, &t2)) return -1;
  // A row drawn twice in the batch: the last draw owns its bounds (B->lab marks it meanwhile).
  for (int64_t j = 0; j < nt; j++) B->lab[idx[B->todo[j]]] = (int32_t)j;
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < nt; j++) {
    int64_t row = idx[B->todo[j]];
    if (B->lab[row] != (int32_t)j) continue;
    // Margin for the rounding of ||x||^2 + ||c||^2 - 2 x.c in float (||c||^2 <= 2 ||x||^2 + 2 d^2).
    const float *dr = B->tdall + (size_t)j * k;
    float *lb = B->lbm + (size_t)row * k;
    const float mx = 3e-6f * B->txsq[j];
    for (int c = 0; c < k; c++) {
      float m2 = dr[c] - mx - 2e-6f * dr[c];
      lb[c] = m2 > 0 ? sqrtf(m2) : 0;
    }
  }
  for (int64_t j = 0; j < nt; j++) {
    int64_t i = B->todo[j], row = idx[i];
    int l = B->tlab[j];
    lab[i] = l;
    B->lab[row] = l;
    B->ub[row] = sqrtf(B->tmind[j]);
    B->snap_s[row] = (int32_t)B->step;
    B->snap_c[row] = B->hist[(size_t)B->step * k + l];
  }
  B->pruned += bs - nt;
  B->visited += bs;
  *inertia = tot + t2;
  return 0;
}

// Movement of every center since B->prev: next row of the history.
static void bounds_moved(km_bounds *B, const float *centers, int k, int d) {
  const double *h = B->hist + (size_t)B->step * k;
  double *hn = B->hist + (size_t)(B->step + 1) * k;
  for (int c = 0; c < k; c++) {
    const float *a = centers + (size_t)c * d, *b = B->prev + (size_t)c * d;
    double s = 0;
    for (int j = 0; j < d; j++) { double t = (double)a[j] - b[j]; s += t * t; }
    hn[c] = h[c] + sqrt(s);
  }
  B->step++;
}

static double mean_variance(const float *x, int64_t n, int d) {
  double tot = 0;
  for (int j = 0; j < d; j++) {
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < n; i++) { double v = x[(size_t)i * d + j]; s += v; s2 += v * v; }
    double mu = s / (double)n;
    tot += s2 / (double)n - mu * mu;
  }
  return tot / d;
}

// k-means++ restarts, each on its own row sample and RNG stream (seed, 1000 + r), so the result
// does not depend on the thread count. D <= 128: restarts run in parallel, each serial inside
// (a fork/join per center costs far more than the work on a busy machine); larger D: one after
// another with parallel distance kernels. Lowest validation inertia wins (lowest r on ties).
static int run_inits(const float *x, const float *xsq, int64_t n, int d, int k, int n_init, int64_t init_size,
                     uint64_t seed, const float *val, const float *valsq, int64_t vsz, int verbose,
                     float *centers, double *best) {
  size_t kd = (size_t)k * d, all;
  if (hb_mul_size(kd, (size_t)n_init * sizeof(float), &all)) return hb_fail_prefix("kmeans: restarts");
  double *ins = hb_malloc((size_t)n_init * sizeof(double));
  float *cands = hb_malloc(all);
  if (!ins || !cands) { free(ins); free(cands); return -1; }
  int failed = 0;
#pragma omp parallel if (d <= KM_FUSED_MAX_D && n_init > 1)
  {
    float *sub = hb_malloc((size_t)init_size * d * sizeof(float));
    float *subsq = hb_malloc((size_t)init_size * sizeof(float));
    int64_t *idx = hb_malloc((size_t)init_size * sizeof(int64_t));
    int ok = sub && subsq && idx;
#pragma omp for schedule(dynamic, 1)
    for (int r = 0; r < n_init; r++) {
      if (!ok) continue;
      hb_rng rr;
      rng_init(&rr, rng_derive_seed(seed, 1000 + (uint64_t)r));
      for (int64_t i = 0; i < init_size; i++) idx[i] = (int64_t)rng_below(&rr, (uint64_t)n);
      gather_rows(x, xsq, d, idx, init_size, sub, subsq);
      if (kmeans_plusplus(sub, init_size, d, subsq, k, 0, &rr, cands + (size_t)r * kd) ||
          assign_rows(val, vsz, d, valsq, cands + (size_t)r * kd, k, NULL, NULL, &ins[r]))
        ok = 0;
    }
    if (!ok) {
#pragma omp atomic write
      failed = 1;
    }
    free(sub); free(subsq); free(idx);
  }
  int bi = 0;
  for (int r = 0; r < n_init && !failed; r++) {
    if (verbose) fprintf(stderr, "kmeans: init %d/%d inertia %.6g\n", r + 1, n_init, ins[r]);
    if (ins[r] < ins[bi]) bi = r;
  }
  if (!failed) {
    memcpy(centers, cands + (size_t)bi * kd, kd * sizeof(float));
    *best = ins[bi];
  }
  free(ins); free(cands);
  return failed ? hb_fail("kmeans: a k-means++ restart failed (out of memory)") : 0;
}

int kmeans_fit(const float *x, int64_t n, int d, const hb_kmeans_params *p, float *centers,
               hb_kmeans_stats *stats) {
  int k = p->k;
  if (k <= 0 || d <= 0) return hb_fail("kmeans: bad k=%d or dim=%d", k, d);
  if (n < k) return hb_fail("kmeans: %lld frames is fewer than k=%d clusters", (long long)n, k);
  if (p->batch_size <= 0 || p->max_iter < 0 || p->n_init <= 0)
    return hb_fail("kmeans: batch_size, n_init must be > 0 and max_iter >= 0");
  int64_t bs = p->batch_size < n ? p->batch_size : n;
  int64_t init_size = p->init_size > 0 ? p->init_size : 3 * bs;
  if (init_size < k) init_size = 3 * (int64_t)k;
  if (init_size > n) init_size = n;
  int64_t vsz = init_size, buf_rows = bs > init_size ? bs : init_size;
  hb_kmeans_stats st = {0};

  hb_rng rng;
  rng_init(&rng, p->seed);
  size_t kd = (size_t)k * d;
  float *xsq = hb_malloc((size_t)n * sizeof(float));
  float *sub = hb_malloc((size_t)buf_rows * d * sizeof(float));
  float *subsq = hb_malloc((size_t)buf_rows * sizeof(float));
  float *val = hb_malloc((size_t)vsz * d * sizeof(float));
  float *valsq = hb_malloc((size_t)vsz * sizeof(float));
  int64_t *idx = hb_malloc((size_t)buf_rows * sizeof(int64_t));
  float *cand = hb_malloc(kd * sizeof(float));
  int32_t *lab = hb_malloc((size_t)bs * sizeof(int32_t));
  double *counts = hb_calloc((size_t)k, sizeof(double));
  double *acc = hb_malloc(kd * sizeof(double));
  int64_t *cnt = hb_malloc((size_t)k * sizeof(int64_t));
  float *prev = p->tol > 0 ? hb_malloc(kd * sizeof(float)) : NULL;
  int rc = -1, use_bounds = 0;
  km_bounds bnd;
  memset(&bnd, 0, sizeof bnd);
  if (!xsq || !sub || !subsq || !val || !valsq || !idx || !cand || !lab || !counts || !acc || !cnt ||
      (p->tol > 0 && !prev))
    goto done;
  row_sqnorms(x, n, d, xsq);

  // Validation sample for choosing among the k-means++ restarts.
  for (int64_t i = 0; i < vsz; i++) idx[i] = (int64_t)rng_below(&rng, (uint64_t)n);
  gather_rows(x, xsq, d, idx, vsz, val, valsq);
  double best = INFINITY;
  if (run_inits(x, xsq, n, d, k, p->n_init, init_size, p->seed, val, valsq, vsz, p->verbose, centers, &best))
    goto done;
  st.init_inertia = best;

  double tol = p->tol > 0 ? p->tol * mean_variance(x, n, d) : 0;
  int64_t n_steps = (int64_t)p->max_iter * n / bs;
  use_bounds = d > KM_FUSED_MAX_D && !p->no_bounds;
  if (use_bounds && bounds_init(&bnd, n, d, k, bs, n_steps)) goto done;
  double ewa = 0, ewa_min = 0;
  int have_ewa = 0, have_min = 0, no_impr = 0;
  for (int64_t s = 0; s < n_steps; s++) {
    for (int64_t i = 0; i < bs; i++) idx[i] = (int64_t)rng_below(&rng, (uint64_t)n);
    gather_rows(x, xsq, d, idx, bs, sub, subsq);
    double bi;
    if (use_bounds) {
      if (bounds_assign(&bnd, idx, sub, subsq, bs, d, centers, k, lab, &bi)) goto done;
      memcpy(bnd.prev, centers, kd * sizeof(float));
    } else if (assign_rows(sub, bs, d, subsq, centers, k, lab, NULL, &bi)) {
      goto done;
    }
    if (prev) memcpy(prev, centers, kd * sizeof(float));
    minibatch_update(sub, bs, d, lab, k, centers, counts, acc, cnt);
    if (use_bounds) bounds_moved(&bnd, centers, k, d);
    st.steps = s + 1;
    // sklearn _mini_batch_convergence: skip step 1, EWA of mean batch inertia, stop after
    // max_no_improvement steps without a new EWA minimum.
    bi /= (double)bs;
    if (s == 0) continue;
    if (!have_ewa) { ewa = bi; have_ewa = 1; }
    else {
      double alpha = (double)bs * 2.0 / ((double)n + 1);
      if (alpha > 1) alpha = 1;
      ewa = ewa * (1 - alpha) + bi * alpha;
    }
    if (p->verbose && (s + 1) % 50 == 0)
      fprintf(stderr, "kmeans: step %lld/%lld batch inertia %.6g ewa %.6g\n", (long long)s + 1,
              (long long)n_steps, bi, ewa);
    if (prev) {
      double diff = 0;
      for (size_t i = 0; i < kd; i++) { double t = (double)centers[i] - prev[i]; diff += t * t; }
      if (diff <= tol) break;
    }
    if (!have_min || ewa < ewa_min) { no_impr = 0; ewa_min = ewa; have_min = 1; }
    else no_impr++;
    if (p->max_no_improvement > 0 && no_impr >= p->max_no_improvement) break;
  }
  st.bound_skips = bnd.pruned;
  if (use_bounds && p->verbose)
    fprintf(stderr, "kmeans: bounds skipped the full search for %lld of %lld sampled rows\n",
            (long long)bnd.pruned, (long long)bnd.visited);
  if (p->lloyd_iters > 0) {
    if (kmeans_lloyd(x, n, d, k, centers, p->lloyd_iters, &st.lloyd_iters, &st.inertia)) goto done;
  } else if (assign_rows(x, n, d, xsq, centers, k, NULL, NULL, &st.inertia)) {
    goto done;
  }
  if (stats) *stats = st;
  rc = 0;
done:
  free(xsq); free(sub); free(subsq); free(val); free(valsq); free(idx); free(cand); free(lab);
  free(counts); free(acc); free(cnt); free(prev);
  bounds_free(&bnd);
  return rc;
}

int kmeans_lloyd(const float *x, int64_t n, int d, int k, float *centers, int iters,
                 int *iters_run, double *inertia) {
  if (n <= 0 || d <= 0 || k <= 0) return hb_fail("kmeans_lloyd: bad shape n=%lld d=%d k=%d", (long long)n, d, k);
  int32_t *lab = hb_malloc((size_t)n * sizeof(int32_t));
  int32_t *old = hb_malloc((size_t)n * sizeof(int32_t));
  double *acc = hb_malloc((size_t)k * d * sizeof(double));
  int64_t *cnt = hb_malloc((size_t)k * sizeof(int64_t));
  int rc = -1, it = 0;
  if (!lab || !old || !acc || !cnt) goto done;
  double in = 0;
  for (it = 0; it < iters; it++) {
    if (assign_rows(x, n, d, NULL, centers, k, lab, NULL, &in)) goto done;
    if (it > 0 && memcmp(lab, old, (size_t)n * sizeof(int32_t)) == 0) break;
    memcpy(old, lab, (size_t)n * sizeof(int32_t));
    memset(acc, 0, (size_t)k * d * sizeof(double));
    memset(cnt, 0, (size_t)k * sizeof(int64_t));
    for (int64_t i = 0; i < n; i++) {
      double *a = acc + (size_t)lab[i] * d;
      const float *r = x + (size_t)i * d;
      for (int j = 0; j < d; j++) a[j] += r[j];
      cnt[lab[i]]++;
    }
    for (int c = 0; c < k; c++)
      if (cnt[c])
        for (int j = 0; j < d; j++) centers[(size_t)c * d + j] = (float)(acc[(size_t)c * d + j] / (double)cnt[c]);
  }
  // Inertia of the centers we return.
  if (assign_rows(x, n, d, NULL, centers, k, NULL, NULL, &in)) goto done;
  if (inertia) *inertia = in;
  if (iters_run) *iters_run = it;
  rc = 0;
done:
  free(lab); free(old); free(acc); free(cnt);
  return rc;
}
