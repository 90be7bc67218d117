// k-means: assignment equals brute force, Lloyd never increases inertia, separated blobs found.
#include <stdint.h>

#include "common/rng.h"
#include "data_prep/kmeans.h"
#include "tests/test_util.h"

// n points around k random centers (spread `sep`), unit-variance noise. truth (n) = blob id.
static void make_blobs(hb_rng *r, int64_t n, int d, int k, double sep, float *x, float *cent, int32_t *truth) {
  for (int c = 0; c < k; c++)
    for (int j = 0; j < d; j++) cent[c * d + j] = (float)(sep * rng_normal(r));
  for (int64_t i = 0; i < n; i++) {
    int c = (int)(i % k);
    truth[i] = c;
    for (int j = 0; j < d; j++) x[i * d + j] = cent[c * d + j] + (float)rng_normal(r);
  }
}

int main(void) {
  uint64_t seed = 1234;
  const char *env = getenv("HUBERT_TEST_SEED");
  if (env) seed = strtoull(env, NULL, 10);
  printf("test_kmeans seed=%llu\n", (unsigned long long)seed);
  hb_rng r;
  rng_init(&r, seed);

  // 1. kmeans_assign == brute-force nearest centroid (in double).
  {
    int64_t n = 3001; int d = 13, k = 37;
    float *x = malloc(n * d * sizeof(float)), *c = malloc(k * d * sizeof(float));
    int32_t *lab = malloc(n * sizeof(int32_t));
    for (int64_t i = 0; i < n * d; i++) x[i] = (float)rng_normal(&r);
    for (int i = 0; i < k * d; i++) c[i] = (float)rng_normal(&r);
    double in = 0;
    CHECK_OK(kmeans_assign(x, n, d, c, k, lab, &in));
    int64_t mism = 0; double bin = 0;
    for (int64_t i = 0; i < n; i++) {
      double bd = INFINITY; int bj = 0;
      for (int j = 0; j < k; j++) {
        double s = 0;
        for (int t = 0; t < d; t++) { double u = (double)x[i * d + t] - c[j * d + t]; s += u * u; }
        if (s < bd) { bd = s; bj = j; }
      }
      bin += bd;
      if (bj != lab[i]) {  // a tie within float rounding is not a mismatch
        double s = 0;
        for (int t = 0; t < d; t++) { double u = (double)x[i * d + t] - c[lab[i] * d + t]; s += u * u; }
        if (s - bd > 1e-4 * (1 + bd)) mism++;
      }
    }
    printf("  assign: %lld mismatches of %lld, inertia %.6f vs brute force %.6f\n", (long long)mism, (long long)n, in, bin);
    CHECK(mism == 0);
    CHECK_REL("assign inertia vs brute force", fabs(in - bin) / bin, 1e-5);
    // 2. Lloyd: inertia non-increasing iteration by iteration.
    double prev = in; int ok = 1;
    for (int it = 0; it < 8; it++) {
      double cur;
      CHECK_OK(kmeans_lloyd(x, n, d, k, c, 1, NULL, &cur));
      printf("  lloyd iter %d inertia %.6f\n", it + 1, cur);
      if (cur > prev * (1 + 1e-6)) ok = 0;
      prev = cur;
    }
    CHECK(ok);
    CHECK(prev < in);
    free(x); free(c); free(lab);
  }

  // 3. Well-separated blobs: mini-batch k-means finds each blob (purity 1) and inertia ~ n*d.
  {
    int64_t n = 20000; int d = 8, k = 10;
    float *x = malloc(n * d * sizeof(float)), *ct = malloc(k * d * sizeof(float)), *c = malloc(k * d * sizeof(float));
    int32_t *truth = malloc(n * sizeof(int32_t)), *lab = malloc(n * sizeof(int32_t));
    make_blobs(&r, n, d, k, 20.0, x, ct, truth);
    hb_kmeans_params p;
    kmeans_default_params(&p);
    p.k = k; p.batch_size = 2000; p.n_init = 3; p.seed = seed;
    hb_kmeans_stats st;
    CHECK_OK(kmeans_fit(x, n, d, &p, c, &st));
    CHECK_OK(kmeans_assign(x, n, d, c, k, lab, NULL));
    // map cluster -> blob by majority; count errors
    int64_t errors = 0;
    for (int j = 0; j < k; j++) {
      int64_t votes[10] = {0}, tot = 0, best = 0;
      for (int64_t i = 0; i < n; i++) if (lab[i] == j) { votes[truth[i]]++; tot++; }
      for (int b = 0; b < k; b++) if (votes[b] > best) best = votes[b];
      errors += tot - best;
    }
    printf("  blobs: steps %lld, inertia/(n*d) %.4f (ideal ~1), %lld impure points\n",
           (long long)st.steps, st.inertia / (double)(n * d), (long long)errors);
    CHECK(errors == 0);
    CHECK(st.inertia / (double)(n * d) < 1.1);
    // Lloyd refinement on top does not increase inertia.
    double li;
    CHECK_OK(kmeans_lloyd(x, n, d, k, c, 10, NULL, &li));
    printf("  lloyd after mini-batch: inertia %.6f -> %.6f\n", st.inertia, li);
    CHECK(li <= st.inertia * (1 + 1e-6));
    // n < k is an error naming the problem.
    CHECK_ERR(kmeans_fit(x, 5, d, &p, c, &st), "fewer than k");
    free(x); free(ct); free(c); free(truth); free(lab);
  }

  // 4. D > 128 (sgemm path): the bounds carried across mini-batch steps skip full searches but
  // give the same fit as searching every row (overlapping blobs, so labels keep changing).
  {
    int64_t n = 4000; int d = 160, k = 16;
    float *x = malloc(n * d * sizeof(float)), *ct = malloc(k * d * sizeof(float));
    float *c1 = malloc(k * d * sizeof(float)), *c2 = malloc(k * d * sizeof(float));
    int32_t *truth = malloc(n * sizeof(int32_t));
    make_blobs(&r, n, d, k, 0.3, x, ct, truth);
    hb_kmeans_params p;
    kmeans_default_params(&p);
    p.k = k; p.batch_size = 500; p.n_init = 1; p.max_iter = 20; p.seed = seed;
    hb_kmeans_stats s1, s2;
    CHECK_OK(kmeans_fit(x, n, d, &p, c1, &s1));
    p.no_bounds = 1;
    CHECK_OK(kmeans_fit(x, n, d, &p, c2, &s2));
    double md = 0, mc = 0;
    for (int i = 0; i < k * d; i++) {
      double t = fabs((double)c1[i] - c2[i]);
      if (t > md) md = t;
      if (fabs(c2[i]) > mc) mc = fabs(c2[i]);
    }
    printf("  bounds skipped %lld of %lld batch-row searches\n", (long long)s1.bound_skips, (long long)s1.steps * 500);
    CHECK(s1.bound_skips > 0 && s2.bound_skips == 0);
    printf("  bounds vs full search (d=%d): steps %lld / %lld, inertia %.6f / %.6f, max center diff %.3g (max |c| %.3g)\n",
           d, (long long)s1.steps, (long long)s2.steps, s1.inertia, s2.inertia, md, mc);
    CHECK(s1.steps == s2.steps);
    CHECK_REL("bounds vs full-search inertia", fabs(s1.inertia - s2.inertia) / s2.inertia, 1e-5);
    CHECK(md <= 1e-4 * (1 + mc));
    free(x); free(ct); free(c1); free(c2); free(truth);
  }
  return test_summary("test_kmeans");
}
