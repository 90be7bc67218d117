// LDA: topics of synthetic documents drawn from known topics are recovered; perplexity is finite
// and falls with more passes (batch and online).
#include <stdint.h>

#include "common/rng.h"
#include "data_prep/lda.h"
#include "tests/test_util.h"

enum { K = 5, V = 60, WPT = 12 };  // topic t puts its mass on words [t*WPT, (t+1)*WPT)

// Each document: one dominant topic (90% of tokens), the rest uniform over all words.
static void make_docs(hb_rng *r, int64_t n_docs, int len, hb_csr *X, int *dom) {
  X->n_docs = n_docs; X->n_words = V;
  X->indptr = malloc((n_docs + 1) * sizeof(int64_t));
  X->indices = malloc(n_docs * V * sizeof(int32_t));
  X->data = malloc(n_docs * V * sizeof(float));
  int64_t nz = 0;
  X->indptr[0] = 0;
  for (int64_t d = 0; d < n_docs; d++) {
    int cnt[V] = {0};
    int t = (int)rng_below(r, K);
    dom[d] = t;
    for (int i = 0; i < len; i++) {
      int w = rng_uniform(r) < 0.9f ? t * WPT + (int)rng_below(r, WPT) : (int)rng_below(r, V);
      cnt[w]++;
    }
    for (int w = 0; w < V; w++)
      if (cnt[w]) { X->indices[nz] = w; X->data[nz] = (float)cnt[w]; nz++; }
    X->indptr[d + 1] = nz;
  }
}

// For every true topic, the best cosine similarity of a learned topic's word distribution.
static double worst_recovery(const hb_lda_model *m) {
  double worst = 1;
  for (int t = 0; t < K; t++) {
    double best = 0;
    for (int j = 0; j < m->k; j++) {
      const double *l = m->components + (size_t)j * V;
      double dot = 0, nn = 0;
      for (int w = 0; w < V; w++) { dot += (w / WPT == t) ? l[w] : 0; nn += l[w] * l[w]; }
      double cs = dot / (sqrt(nn) * sqrt((double)WPT));
      if (cs > best) best = cs;
    }
    if (best < worst) worst = best;
  }
  return worst;
}

int main(void) {
  uint64_t seed = 99;
  const char *env = getenv("HUBERT_TEST_SEED");
  if (env) seed = strtoull(env, NULL, 10);
  printf("test_lda seed=%llu\n", (unsigned long long)seed);
  hb_rng r;
  rng_init(&r, seed);
  CHECK(fabs(lda_digamma(1.0) + 0.5772156649015329) < 1e-10);
  CHECK(fabs(lda_digamma(0.1) + 10.423754940411076) < 1e-10);

  hb_csr X = {0}, H = {0};
  int dom[2000], hdom[300];
  make_docs(&r, 2000, 60, &X, dom);
  make_docs(&r, 300, 60, &H, hdom);
  for (int method = 0; method < 2; method++) {
    const char *name = method ? "online" : "batch";
    double prev = INFINITY;
    int ok = 1;
    hb_lda_model m = {0};
    for (int iters = 1; iters <= 16; iters *= 4) {
      hb_lda_params p;
      lda_default_params(&p);
      p.k = K; p.method = method ? HB_LDA_ONLINE : HB_LDA_BATCH; p.max_iter = iters; p.seed = seed;
      double tp, hp;
      lda_model_free(&m);
      CHECK_OK(lda_fit(&X, &p, &m, &tp));
      double *g = malloc(H.n_docs * K * sizeof(double));
      CHECK_OK(lda_transform(&m, &H, g));
      CHECK_OK(lda_perplexity(&m, &H, g, &hp));
      // held-out topic = argmax gamma; consistent with the dominant topic up to a permutation.
      int map[K][K] = {{0}};
      for (int64_t d = 0; d < H.n_docs; d++) {
        int a = 0;
        for (int t = 1; t < K; t++) if (g[d * K + t] > g[d * K + a]) a = t;
        map[hdom[d]][a]++;
      }
      int agree = 0;
      for (int t = 0; t < K; t++) { int b = 0; for (int j = 0; j < K; j++) if (map[t][j] > b) b = map[t][j]; agree += b; }
      free(g);
      double rec = worst_recovery(&m);
      printf("  %-6s passes %2d: train perplexity %.4f held-out %.4f, worst topic cosine %.3f, held-out agreement %d/%lld\n",
             name, iters, tp, hp, rec, agree, (long long)H.n_docs);
      if (!isfinite(tp) || !isfinite(hp) || hp > prev * 1.001) ok = 0;
      prev = hp;
      if (iters == 16) {
        CHECK(rec > 0.9);
        CHECK(agree > 0.9 * H.n_docs);
      }
    }
    CHECK(ok);
    // a word id outside the vocabulary is an error naming it
    H.indices[0] = V + 3;
    double *g = malloc(H.n_docs * K * sizeof(double));
    CHECK_ERR(lda_transform(&m, &H, g), "outside the vocabulary");
    H.indices[0] = 0;
    free(g);
    lda_model_free(&m);
  }
  csr_free(&X); csr_free(&H);
  return test_summary("test_lda");
}
