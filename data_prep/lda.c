// LDA by (online) variational Bayes, as scikit-learn's LatentDirichletAllocation.
#include "data_prep/lda.h"

#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/rng.h"
#include "kernels/cpu/cpu_math.h"

#if defined(__FMA__) && defined(__AVX__)
#include <immintrin.h>
#endif

// The E-step runs in float on 8-lane vectors (GCC vector extensions): topic vectors are padded
// to kp = k rounded up to 8 lanes, padding lanes hold 0 in exp(E[log beta]) and exp(E[log theta]).
#define LDA_KP(k) (((k) + 7) & ~7)

void csr_free(hb_csr *m) {
  free(m->indptr); free(m->indices); free(m->data);
  memset(m, 0, sizeof *m);
}

void lda_model_free(hb_lda_model *m) {
  free(m->components);
  memset(m, 0, sizeof *m);
}

void lda_default_params(hb_lda_params *p) {
  memset(p, 0, sizeof *p);
  p->k = 10;
  p->method = HB_LDA_ONLINE;
  p->max_iter = 10;
  p->batch_size = 128;
  p->learning_decay = 0.7;
  p->learning_offset = 10.0;
  p->mean_change_tol = 1e-3;
  p->max_doc_update_iter = 100;
  p->doc_topic_prior = -1;
  p->topic_word_prior = -1;
}

double lda_digamma(double x) {
  double r = 0;
  while (x < 6) { r -= 1 / x; x += 1; }
  double f = 1 / (x * x);
  return r + log(x) - 0.5 / x - f * (1.0 / 12 - f * (1.0 / 120 - f * (1.0 / 252 - f * (1.0 / 240 - f / 132))));
}

// Natural log of x > 0 (finite, normal): Cephes logf (relative error ~1e-7).
static inline hb_v8f lda_log8(hb_v8f x) {
  const hb_v8i bits = (hb_v8i)x;
  hb_v8f e = __builtin_convertvector(((bits >> 23) & 0xff) - 126, hb_v8f);
  hb_v8f m = (hb_v8f)((bits & 0x007fffff) | 0x3f000000);  // [0.5, 1)
  const hb_v8i lo = m < 0.707106781186547524f;
  e = hb_select8(lo, e - 1.0f, e);
  m = hb_select8(lo, m + m - 1.0f, m - 1.0f);
  const hb_v8f z = m * m;
  hb_v8f y = m * 7.0376836292e-2f - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z - 2.12194440e-4f * e - 0.5f * z;
  return m + y + 0.693359375f * e;
}

// Digamma for x > 0 on 8 lanes: psi(x) = psi(x + 6) - sum_{i<6} 1 / (x + i) for x < 6 (the six
// reciprocals as two 3-term fractions), then the asymptotic series as lda_digamma.
static inline hb_v8f lda_digamma8(hb_v8f x) {
  const hb_v8i small = x < 6.0f;
  const hb_v8f one = x - x + 1.0f;
  const hb_v8f a = hb_select8(small, x, one), b = a + 1.0f, c = a + 2.0f;
  const hb_v8f d = a + 3.0f, e = a + 4.0f, f = a + 5.0f;
  const hb_v8f p1 = a * b * c, p2 = d * e * f;  // <= 6 * 7 * ... * 11 for a < 6: no overflow
  const hb_v8f corr = ((b * c + a * c + a * b) * p2 + (e * f + d * f + d * e) * p1) / (p1 * p2);
  const hb_v8f xs = hb_select8(small, x + 6.0f, x);
  const hb_v8f inv = 1.0f / xs, f2 = inv * inv;
  const hb_v8f ser = f2 * (1.0f / 12 - f2 * (1.0f / 120 - f2 * (1.0f / 252 - f2 * (1.0f / 240 - f2 * (1.0f / 132)))));
  return lda_log8(xs) - 0.5f * inv - ser - hb_select8(small, corr, x - x);
}

static inline float lda_hsum8(hb_v8f v);

// a * b + c, fused where the target has FMA (-std=c11 does not contract a * b + c).
static inline hb_v8f lda_fma8(hb_v8f a, hb_v8f b, hb_v8f c) {
#if defined(__FMA__) && defined(__AVX__)
  return (hb_v8f)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
  return a * b + c;
#endif
}

// One E-step pass over a document's words: gv (nv) += sum_i cnt_i / (edt . e_i) * e_i, with
// e_i = eT row of word i; four words at a time so that their dot products overlap.
static void doc_word_pass(const float *eT, int kp, const int32_t *ids, const float *cnt, int64_t nz,
                          const hb_v8f *ev, hb_v8f *gv) {
  const int nv = kp / 8;
  const float eps = (float)DBL_EPSILON;
  int64_t i = 0;
  for (; i + 4 <= nz; i += 4) {
    const hb_v8f *e0 = (const hb_v8f *)(eT + (size_t)ids[i] * kp);
    const hb_v8f *e1 = (const hb_v8f *)(eT + (size_t)ids[i + 1] * kp);
    const hb_v8f *e2 = (const hb_v8f *)(eT + (size_t)ids[i + 2] * kp);
    const hb_v8f *e3 = (const hb_v8f *)(eT + (size_t)ids[i + 3] * kp);
    hb_v8f a0 = ev[0] * e0[0], a1 = ev[0] * e1[0], a2 = ev[0] * e2[0], a3 = ev[0] * e3[0];
    for (int v = 1; v < nv; v++) {
      a0 = lda_fma8(ev[v], e0[v], a0);
      a1 = lda_fma8(ev[v], e1[v], a1);
      a2 = lda_fma8(ev[v], e2[v], a2);
      a3 = lda_fma8(ev[v], e3[v], a3);
    }
    const hb_v8f c0 = (hb_v8f){0} + cnt[i] / (lda_hsum8(a0) + eps);
    const hb_v8f c1 = (hb_v8f){0} + cnt[i + 1] / (lda_hsum8(a1) + eps);
    const hb_v8f c2 = (hb_v8f){0} + cnt[i + 2] / (lda_hsum8(a2) + eps);
    const hb_v8f c3 = (hb_v8f){0} + cnt[i + 3] / (lda_hsum8(a3) + eps);
    for (int v = 0; v < nv; v++)
      gv[v] = lda_fma8(c3, e3[v], lda_fma8(c2, e2[v], lda_fma8(c1, e1[v], lda_fma8(c0, e0[v], gv[v]))));
  }
  for (; i < nz; i++) {
    const hb_v8f *e = (const hb_v8f *)(eT + (size_t)ids[i] * kp);
    hb_v8f acc = ev[0] * e[0];
    for (int v = 1; v < nv; v++) acc = lda_fma8(ev[v], e[v], acc);
    const hb_v8f c = (hb_v8f){0} + cnt[i] / (lda_hsum8(acc) + eps);
    for (int v = 0; v < nv; v++) gv[v] = lda_fma8(c, e[v], gv[v]);
  }
}

static inline float lda_hsum8(hb_v8f v) {
  return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

// Gamma(shape a >= 1, scale s) by Marsaglia & Tsang (2000).
static double rng_gamma(hb_rng *r, double a, double s) {
  double d = a - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
  for (;;) {
    double x = rng_normal(r), v = 1 + c * x;
    if (v <= 0) continue;
    v = v * v * v;
    double u = rng_uniform_double(r);
    if (u > 0 && log(u) < 0.5 * x * x + d - d * v + d * log(v)) return d * v * s;
  }
}

// E[log beta] rows: out[t, w] = psi(lambda_tw) - psi(sum_w lambda_tw); exp'd if do_exp.
static void dirichlet_expectation_rows(const double *lam, int rows, int cols, double *out, int do_exp) {
#pragma omp parallel for schedule(static)
  for (int t = 0; t < rows; t++) {
    const double *l = lam + (size_t)t * cols;
    double *o = out + (size_t)t * cols;
    double s = 0;
    for (int w = 0; w < cols; w++) s += l[w];
    double ps = lda_digamma(s);
    for (int w = 0; w < cols; w++) o[w] = do_exp ? exp(lda_digamma(l[w]) - ps) : lda_digamma(l[w]) - ps;
  }
}

static int check_csr(const hb_csr *X, int V) {
  if (X->n_docs < 0 || !X->indptr || X->indptr[0] != 0)
    return hb_fail("lda: bad document matrix (indptr)");
  for (int64_t d = 0; d < X->n_docs; d++)
    if (X->indptr[d + 1] < X->indptr[d]) return hb_fail("lda: document %lld: indptr decreases", (long long)d);
  int64_t nnz = X->indptr[X->n_docs];
  for (int64_t i = 0; i < nnz; i++) {
    if (X->indices[i] < 0 || X->indices[i] >= V)
      return hb_fail("lda: word id %d outside the vocabulary [0, %d)", X->indices[i], V);
    if (!(X->data[i] >= 0) || isinf(X->data[i])) return hb_fail("lda: count %g is not a finite count >= 0", X->data[i]);
  }
  return 0;
}

// expElogT (V, kp) float: exp(psi(lambda_tw) - psi(sum_w lambda_tw)) transposed, so that the
// topic vector of one word is contiguous; padding lanes 0. Serial: it is far cheaper than the
// E-step (8 lanes per digamma), and a fork/join per online step costs more on a busy machine.
static void topic_expelog_t(const double *lam, int k, int V, float *outT) {
  const int kp = LDA_KP(k);
  for (int t = 0; t < k; t++) {
    const double *l = lam + (size_t)t * V;
    double s = 0;
    for (int w = 0; w < V; w++) s += l[w];
    const float ps = (float)lda_digamma(s);
    int w = 0;
    for (; w + 8 <= V; w += 8) {
      hb_v8f v;
      for (int q = 0; q < 8; q++) v[q] = (float)l[w + q];
      v = hb_exp8(lda_digamma8(v) - ps);
      for (int q = 0; q < 8; q++) outT[(size_t)(w + q) * kp + t] = v[q];
    }
    for (; w < V; w++) outT[(size_t)w * kp + t] = (float)exp(lda_digamma(l[w]) - ps);
  }
  for (int w = 0; w < V; w++)
    for (int t = k; t < kp; t++) outT[(size_t)w * kp + t] = 0;
}

// exp(E[log theta]) of one document: edt (kp) = exp(psi(g) - psi(sum g)). g padding lanes must
// hold a positive value (they do: 1 at the start, alpha after each update); edt padding lanes
// come out 0.
static void doc_expelog(const float *g, int k, float *edt) {
  const int kp = LDA_KP(k);
  double s = 0;
  for (int t = 0; t < k; t++) s += g[t];
  const float ps = (float)lda_digamma(s);
  const hb_v8f *gv = (const hb_v8f *)g;
  hb_v8f *ev = (hb_v8f *)edt;
  for (int v = 0; v < kp / 8; v++) ev[v] = hb_exp8(lda_digamma8(gv[v]) - ps);
  for (int t = k; t < kp; t++) edt[t] = 0;
}

// E-step for documents [d0, d1) in float: gamma (rows d0..d1, k) in double. If ssT (V, kp) is
// non-NULL it accumulates exp(E[log theta_d]) * cnt / phi per word (sklearn's sstats before the
// final * exp(E[log beta]), transposed). rand_seed != 0: gamma initialised from Gamma(100, 0.01)
// with a per-document stream.
static int estep_docs(const hb_csr *X, int64_t d0, int64_t d1, const float *eT, int k, int V,
                      double alpha, int max_iter, double tol, uint64_t rand_seed, double *gamma,
                      double *ssT) {
  const int kp = LDA_KP(k), nv = kp / 8;
  const float falpha = (float)alpha;
  int failed = 0;
  int nth = omp_get_max_threads();
  float **tl_ss = NULL;
  size_t vkp = (size_t)V * kp;
  if (ssT) {
    tl_ss = hb_calloc((size_t)nth, sizeof(float *));
    if (!tl_ss) return -1;
  }
#pragma omp parallel
  {
    int tid = omp_get_thread_num();
    float *buf = hb_aligned_alloc((size_t)kp * 3 * sizeof(float));
    float *ss = NULL;
    if (ssT) {
      ss = tl_ss[tid] = hb_aligned_alloc(vkp * sizeof(float));
      if (ss) memset(ss, 0, vkp * sizeof(float));
    }
    if (!buf || (ssT && !ss)) {
#pragma omp atomic write
      failed = 1;
    } else {
      float *g = buf, *last = buf + kp, *edt = buf + 2 * kp;
      hb_v8f *gv = (hb_v8f *)g, *ev = (hb_v8f *)edt;
#pragma omp for schedule(dynamic, 4)
      for (int64_t d = d0; d < d1; d++) {
        int64_t p0 = X->indptr[d], nz = X->indptr[d + 1] - p0;
        const int32_t *ids = X->indices + p0;
        const float *cnt = X->data + p0;
        for (int t = k; t < kp; t++) g[t] = 1.0f;
        if (rand_seed) {
          hb_rng r;
          rng_init(&r, rng_derive_seed(rand_seed, (uint64_t)d));
          for (int t = 0; t < k; t++) g[t] = (float)rng_gamma(&r, 100.0, 0.01);
        } else {
          for (int t = 0; t < k; t++) g[t] = 1.0f;
        }
        doc_expelog(g, k, edt);
        for (int it = 0; it < max_iter; it++) {
          memcpy(last, g, (size_t)kp * sizeof(float));
          for (int v = 0; v < nv; v++) gv[v] = (hb_v8f){0};
          // gamma = alpha + edt * sum_i (cnt_i / phi_i) ewd_i, phi_i = edt . ewd_i.
          doc_word_pass(eT, kp, ids, cnt, nz, ev, gv);
          for (int v = 0; v < nv; v++) gv[v] = ev[v] * gv[v] + falpha;
          doc_expelog(g, k, edt);
          float mc = 0;
          for (int t = 0; t < k; t++) mc += fabsf(last[t] - g[t]);
          if (mc / k < tol) break;
        }
        for (int t = 0; t < k; t++) gamma[(size_t)d * k + t] = g[t];
        if (ss) {
          for (int64_t i = 0; i < nz; i++) {
            const hb_v8f *e = (const hb_v8f *)(eT + (size_t)ids[i] * kp);
            hb_v8f acc = ev[0] * e[0];
            for (int v = 1; v < nv; v++) acc += ev[v] * e[v];
            const float c = cnt[i] / (lda_hsum8(acc) + (float)DBL_EPSILON);
            hb_v8f *o = (hb_v8f *)(ss + (size_t)ids[i] * kp);
            for (int v = 0; v < nv; v++) o[v] += c * ev[v];
          }
        }
      }
    }
    hb_aligned_free(buf);
  }
  if (ssT) {
    if (!failed)
      for (int i = 0; i < nth; i++) {
        if (!tl_ss[i]) continue;
        for (size_t j = 0; j < vkp; j++) ssT[j] += tl_ss[i][j];
      }
    for (int i = 0; i < nth; i++) hb_aligned_free(tl_ss[i]);
    free(tl_ss);
  }
  return failed ? hb_fail_prefix("lda: E-step buffers") : 0;
}

// One EM step on docs [d0, d1) (sklearn _em_step). batch: lambda = eta + sstats; online:
// lambda = (1 - rho) lambda + rho (eta + N/|batch| sstats), rho = (offset + t)^-decay, with
// sstats_tw = ssT_wt * exp(E[log beta_tw]).
static int em_step(const hb_csr *X, int64_t d0, int64_t d1, const hb_lda_params *p, hb_lda_model *m,
                   float *eT, double *gamma, double *ssT, int batch_update, int64_t *n_batch_iter,
                   uint64_t seed) {
  int k = m->k, V = m->n_words, kp = LDA_KP(k);
  memset(ssT, 0, (size_t)V * kp * sizeof(double));
  if (estep_docs(X, d0, d1, eT, k, V, m->doc_topic_prior, p->max_doc_update_iter, p->mean_change_tol,
                 seed, gamma, ssT))
    return -1;
  double *lam = m->components;
  const double eta = m->topic_word_prior;
  if (batch_update) {
    for (int t = 0; t < k; t++)
      for (int w = 0; w < V; w++)
        lam[(size_t)t * V + w] = eta + ssT[(size_t)w * kp + t] * eT[(size_t)w * kp + t];
  } else {
    double rho = pow(p->learning_offset + (double)*n_batch_iter, -p->learning_decay);
    double ratio = (double)X->n_docs / (double)(d1 - d0);
    for (int t = 0; t < k; t++)
      for (int w = 0; w < V; w++) {
        size_t j = (size_t)t * V + w, jt = (size_t)w * kp + t;
        lam[j] = (1 - rho) * lam[j] + rho * (eta + ratio * ssT[jt] * eT[jt]);
      }
  }
  topic_expelog_t(lam, k, V, eT);
  (*n_batch_iter)++;
  return 0;
}

int lda_fit(const hb_csr *X, const hb_lda_params *p, hb_lda_model *m, double *train_perplexity) {
  memset(m, 0, sizeof *m);
  if (p->k <= 0 || p->k > (1 << 20)) return hb_fail("lda: number of topics must be in (0, 2^20] (got %d)", p->k);
  if (X->n_words <= 0 || X->n_docs <= 0) return hb_fail("lda: empty document matrix");
  if (p->batch_size <= 0 || p->max_iter < 0) return hb_fail("lda: batch_size must be > 0, max_iter >= 0");
  if (check_csr(X, X->n_words)) return -1;
  int k = p->k, V = X->n_words, kp = LDA_KP(k);
  size_t kv, vkp;
  if (hb_mul_size((size_t)k, (size_t)V, &kv) || hb_mul_size((size_t)kp, (size_t)V, &vkp))
    return hb_fail_prefix("lda: topics x vocabulary");
  m->k = k;
  m->n_words = V;
  m->doc_topic_prior = p->doc_topic_prior > 0 ? p->doc_topic_prior : 1.0 / k;
  m->topic_word_prior = p->topic_word_prior > 0 ? p->topic_word_prior : 1.0 / k;
  m->mean_change_tol = p->mean_change_tol;
  m->max_doc_update_iter = p->max_doc_update_iter;
  m->components = hb_malloc(kv * sizeof(double));
  float *eT = hb_aligned_alloc(vkp * sizeof(float));
  double *ssT = hb_malloc(vkp * sizeof(double));
  double *gamma = hb_malloc((size_t)X->n_docs * k * sizeof(double));
  int rc = -1;
  if (!m->components || !eT || !ssT || !gamma) goto done;
  hb_rng r;
  rng_init(&r, p->seed);
  for (size_t j = 0; j < kv; j++) m->components[j] = rng_gamma(&r, 100.0, 0.01);
  topic_expelog_t(m->components, k, V, eT);
  int64_t n_batch_iter = 1;
  uint64_t step_seed = rng_derive_seed(p->seed, 1);
  for (int it = 0; it < p->max_iter; it++) {
    if (p->method == HB_LDA_ONLINE) {
      for (int64_t d0 = 0; d0 < X->n_docs; d0 += p->batch_size) {
        int64_t d1 = d0 + p->batch_size < X->n_docs ? d0 + p->batch_size : X->n_docs;
        step_seed = rng_derive_seed(step_seed, 2) | 1;
        if (em_step(X, d0, d1, p, m, eT, gamma, ssT, 0, &n_batch_iter, step_seed)) goto done;
      }
    } else {
      step_seed = rng_derive_seed(step_seed, 2) | 1;
      if (em_step(X, 0, X->n_docs, p, m, eT, gamma, ssT, 1, &n_batch_iter, step_seed)) goto done;
    }
    if (p->verbose && p->evaluate_every > 0 && (it + 1) % p->evaluate_every == 0) {
      double perp;
      if (lda_transform(m, X, gamma) || lda_perplexity(m, X, gamma, &perp)) goto done;
      fprintf(stderr, "lda: pass %d/%d perplexity %.4f\n", it + 1, p->max_iter, perp);
    } else if (p->verbose) {
      fprintf(stderr, "lda: pass %d/%d\n", it + 1, p->max_iter);
    }
  }
  if (train_perplexity) {
    if (lda_transform(m, X, gamma) || lda_perplexity(m, X, gamma, train_perplexity)) goto done;
  }
  rc = 0;
done:
  hb_aligned_free(eT); free(ssT); free(gamma);
  if (rc) lda_model_free(m);
  return rc;
}

int lda_transform(const hb_lda_model *m, const hb_csr *X, double *gamma) {
  if (check_csr(X, m->n_words)) return -1;
  size_t vkp;
  if (m->k <= 0 || hb_mul_size((size_t)LDA_KP(m->k), (size_t)m->n_words, &vkp))
    return hb_fail("lda: bad model shape k=%d V=%d", m->k, m->n_words);
  float *eT = hb_aligned_alloc(vkp * sizeof(float));
  if (!eT) return -1;
  topic_expelog_t(m->components, m->k, m->n_words, eT);
  int rc = estep_docs(X, 0, X->n_docs, eT, m->k, m->n_words, m->doc_topic_prior, m->max_doc_update_iter,
                      m->mean_change_tol, 0, gamma, NULL);
  hb_aligned_free(eT);
  return rc;
}

// sklearn _loglikelihood(prior, distr, E[log distr], size) over rows of distr (rows, cols).
static double dirichlet_loglik(double prior, const double *distr, const double *elog, int64_t rows, int cols) {
  double score = 0;
#pragma omp parallel for reduction(+ : score) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const double *g = distr + (size_t)r * cols, *e = elog + (size_t)r * cols;
    double s = 0, acc = 0;
    for (int c = 0; c < cols; c++) {
      acc += (prior - g[c]) * e[c] + lgamma(g[c]) - lgamma(prior);
      s += g[c];
    }
    score += acc + lgamma(prior * cols) - lgamma(s);
  }
  return score;
}

int lda_perplexity(const hb_lda_model *m, const hb_csr *X, const double *gamma, double *out) {
  int k = m->k, V = m->n_words;
  if (check_csr(X, V)) return -1;
  size_t kv = (size_t)k * V;
  double *elb = hb_malloc(kv * sizeof(double));
  double *eth = hb_malloc((size_t)(X->n_docs ? X->n_docs : 1) * k * sizeof(double));
  if (!elb || !eth) { free(elb); free(eth); return -1; }
  dirichlet_expectation_rows(m->components, k, V, elb, 0);
  dirichlet_expectation_rows(gamma, (int)X->n_docs, k, eth, 0);
  double score = 0, words = 0;
#pragma omp parallel for reduction(+ : score, words) schedule(dynamic, 16)
  for (int64_t d = 0; d < X->n_docs; d++) {
    const double *et = eth + (size_t)d * k;
    for (int64_t i = X->indptr[d]; i < X->indptr[d + 1]; i++) {
      int w = X->indices[i];
      // log sum_t exp(E[log theta_dt] + E[log beta_tw])
      double mx = -INFINITY;
      for (int t = 0; t < k; t++) { double v = et[t] + elb[(size_t)t * V + w]; if (v > mx) mx = v; }
      double s = 0;
      for (int t = 0; t < k; t++) s += exp(et[t] + elb[(size_t)t * V + w] - mx);
      score += X->data[i] * (mx + log(s));
      words += X->data[i];
    }
  }
  score += dirichlet_loglik(m->doc_topic_prior, gamma, eth, X->n_docs, k);
  score += dirichlet_loglik(m->topic_word_prior, m->components, elb, k, V);
  free(elb); free(eth);
  if (!(words > 0)) return hb_fail("lda: perplexity of documents without words");
  *out = exp(-score / words);
  return 0;
}
