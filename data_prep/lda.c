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

// Per-thread scratch for the E-step of one document.
typedef struct {
  double *ewd;      // (nnz_max, k) exp(E[log beta]) of the document's words
  double *gam, *last, *edt;   // (k)
} estep_ws;

// E-step for documents [d0, d1): gamma (rows d0..d1, k). If sstats (k, V) is non-NULL it
// accumulates exp(E[log theta_d]) outer cnt/phi (sklearn, before the final * exp(E[log beta])).
// rand_seed != 0: gamma initialised from Gamma(100, 0.01) with a per-document stream.
static int estep_docs(const hb_csr *X, int64_t d0, int64_t d1, const double *expElog, int k, int V,
                      double alpha, int max_iter, double tol, uint64_t rand_seed, double *gamma,
                      double *sstats) {
  int64_t maxnnz = 0;
  for (int64_t d = d0; d < d1; d++) {
    int64_t z = X->indptr[d + 1] - X->indptr[d];
    if (z > maxnnz) maxnnz = z;
  }
  int failed = 0;
  int nth = omp_get_max_threads();
  double **tl_ss = NULL;
  if (sstats) {
    tl_ss = hb_calloc((size_t)nth, sizeof(double *));
    if (!tl_ss) return -1;
  }
#pragma omp parallel
  {
    int tid = omp_get_thread_num();
    estep_ws w;
    w.ewd = hb_malloc((size_t)(maxnnz ? maxnnz : 1) * k * sizeof(double));
    w.gam = hb_malloc((size_t)k * 3 * sizeof(double));
    double *ss = NULL;
    if (sstats) ss = tl_ss[tid] = (tid == 0) ? sstats : hb_calloc((size_t)k * V, sizeof(double));
    if (!w.ewd || !w.gam || (sstats && !ss)) {
#pragma omp atomic write
      failed = 1;
    } else {
      w.last = w.gam + k;
      w.edt = w.gam + 2 * k;
#pragma omp for schedule(dynamic, 16)
      for (int64_t d = d0; d < d1; d++) {
        int64_t p0 = X->indptr[d], nz = X->indptr[d + 1] - p0;
        const int32_t *ids = X->indices + p0;
        const float *cnt = X->data + p0;
        double *g = w.gam;
        if (rand_seed) {
          hb_rng r;
          rng_init(&r, rng_derive_seed(rand_seed, (uint64_t)d));
          for (int t = 0; t < k; t++) g[t] = rng_gamma(&r, 100.0, 0.01);
        } else {
          for (int t = 0; t < k; t++) g[t] = 1.0;
        }
        double s = 0;
        for (int t = 0; t < k; t++) s += g[t];
        double ps = lda_digamma(s);
        for (int t = 0; t < k; t++) w.edt[t] = exp(lda_digamma(g[t]) - ps);
        for (int64_t i = 0; i < nz; i++)
          for (int t = 0; t < k; t++) w.ewd[i * k + t] = expElog[(size_t)t * V + ids[i]];
        for (int it = 0; it < max_iter; it++) {
          memcpy(w.last, g, (size_t)k * sizeof(double));
          for (int t = 0; t < k; t++) g[t] = 0;
          for (int64_t i = 0; i < nz; i++) {
            const double *e = w.ewd + i * k;
            double ph = DBL_EPSILON;
            for (int t = 0; t < k; t++) ph += w.edt[t] * e[t];
            double c = cnt[i] / ph;
            for (int t = 0; t < k; t++) g[t] += c * e[t];
          }
          // gamma = alpha + edt * sum_i (cnt_i / phi_i) ewd_i ; edt = exp(E[log theta]).
          s = 0;
          for (int t = 0; t < k; t++) { g[t] = w.edt[t] * g[t] + alpha; s += g[t]; }
          ps = lda_digamma(s);
          double mc = 0;
          for (int t = 0; t < k; t++) {
            w.edt[t] = exp(lda_digamma(g[t]) - ps);
            mc += fabs(w.last[t] - g[t]);
          }
          if (mc / k < tol) break;
        }
        memcpy(gamma + (size_t)d * k, g, (size_t)k * sizeof(double));
        if (ss) {
          for (int64_t i = 0; i < nz; i++) {
            const double *e = w.ewd + i * k;
            double ph = DBL_EPSILON;
            for (int t = 0; t < k; t++) ph += w.edt[t] * e[t];
            double c = cnt[i] / ph;
            for (int t = 0; t < k; t++) ss[(size_t)t * V + ids[i]] += w.edt[t] * c;
          }
        }
      }
    }
    free(w.ewd); free(w.gam);
  }
  if (sstats) {
    for (int i = 1; i < nth; i++) {
      if (!tl_ss[i]) continue;
      size_t n = (size_t)k * V;
      for (size_t j = 0; j < n; j++) sstats[j] += tl_ss[i][j];
      free(tl_ss[i]);
    }
    free(tl_ss);
  }
  return failed ? hb_fail_prefix("lda: E-step buffers") : 0;
}

// One EM step on docs [d0, d1) (sklearn _em_step). batch: lambda = eta + sstats; online:
// lambda = (1 - rho) lambda + rho (eta + N/|batch| sstats), rho = (offset + t)^-decay.
static int em_step(const hb_csr *X, int64_t d0, int64_t d1, const hb_lda_params *p, hb_lda_model *m,
                   double *expElog, double *gamma, double *ss, int batch_update, int64_t *n_batch_iter,
                   uint64_t seed) {
  int k = m->k, V = m->n_words;
  size_t kv = (size_t)k * V;
  memset(ss, 0, kv * sizeof(double));
  if (estep_docs(X, d0, d1, expElog, k, V, m->doc_topic_prior, p->max_doc_update_iter, p->mean_change_tol,
                 seed, gamma, ss))
    return -1;
  double *lam = m->components;
  if (batch_update) {
    for (size_t j = 0; j < kv; j++) lam[j] = m->topic_word_prior + ss[j] * expElog[j];
  } else {
    double rho = pow(p->learning_offset + (double)*n_batch_iter, -p->learning_decay);
    double ratio = (double)X->n_docs / (double)(d1 - d0);
    for (size_t j = 0; j < kv; j++)
      lam[j] = (1 - rho) * lam[j] + rho * (m->topic_word_prior + ratio * ss[j] * expElog[j]);
  }
  dirichlet_expectation_rows(lam, k, V, expElog, 1);
  (*n_batch_iter)++;
  return 0;
}

int lda_fit(const hb_csr *X, const hb_lda_params *p, hb_lda_model *m, double *train_perplexity) {
  memset(m, 0, sizeof *m);
  if (p->k <= 0) return hb_fail("lda: number of topics must be > 0 (got %d)", p->k);
  if (X->n_words <= 0 || X->n_docs <= 0) return hb_fail("lda: empty document matrix");
  if (p->batch_size <= 0 || p->max_iter < 0) return hb_fail("lda: batch_size must be > 0, max_iter >= 0");
  if (check_csr(X, X->n_words)) return -1;
  int k = p->k, V = X->n_words;
  size_t kv;
  if (hb_mul_size((size_t)k, (size_t)V, &kv)) return hb_fail_prefix("lda: topics x vocabulary");
  m->k = k;
  m->n_words = V;
  m->doc_topic_prior = p->doc_topic_prior > 0 ? p->doc_topic_prior : 1.0 / k;
  m->topic_word_prior = p->topic_word_prior > 0 ? p->topic_word_prior : 1.0 / k;
  m->mean_change_tol = p->mean_change_tol;
  m->max_doc_update_iter = p->max_doc_update_iter;
  m->components = hb_malloc(kv * sizeof(double));
  double *expElog = hb_malloc(kv * sizeof(double));
  double *ss = hb_malloc(kv * sizeof(double));
  double *gamma = hb_malloc((size_t)X->n_docs * k * sizeof(double));
  int rc = -1;
  if (!m->components || !expElog || !ss || !gamma) goto done;
  hb_rng r;
  rng_init(&r, p->seed);
  for (size_t j = 0; j < kv; j++) m->components[j] = rng_gamma(&r, 100.0, 0.01);
  dirichlet_expectation_rows(m->components, k, V, expElog, 1);
  int64_t n_batch_iter = 1;
  uint64_t step_seed = rng_derive_seed(p->seed, 1);
  for (int it = 0; it < p->max_iter; it++) {
    if (p->method == HB_LDA_ONLINE) {
      for (int64_t d0 = 0; d0 < X->n_docs; d0 += p->batch_size) {
        int64_t d1 = d0 + p->batch_size < X->n_docs ? d0 + p->batch_size : X->n_docs;
        step_seed = rng_derive_seed(step_seed, 2) | 1;
        if (em_step(X, d0, d1, p, m, expElog, gamma, ss, 0, &n_batch_iter, step_seed)) goto done;
      }
    } else {
      step_seed = rng_derive_seed(step_seed, 2) | 1;
      if (em_step(X, 0, X->n_docs, p, m, expElog, gamma, ss, 1, &n_batch_iter, step_seed)) goto done;
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
  free(expElog); free(ss); free(gamma);
  if (rc) lda_model_free(m);
  return rc;
}

int lda_transform(const hb_lda_model *m, const hb_csr *X, double *gamma) {
  if (check_csr(X, m->n_words)) return -1;
  size_t kv = (size_t)m->k * m->n_words;
  double *expElog = hb_malloc(kv * sizeof(double));
  if (!expElog) return -1;
  dirichlet_expectation_rows(m->components, m->k, m->n_words, expElog, 1);
  int rc = estep_docs(X, 0, X->n_docs, expElog, m->k, m->n_words, m->doc_topic_prior, m->max_doc_update_iter,
                      m->mean_change_tol, 0, gamma, NULL);
  free(expElog);
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
