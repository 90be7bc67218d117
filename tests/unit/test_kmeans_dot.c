// k-means++ scoring for large d (data_prep/kmeans_dist.c: km_cand_rows_dot and, on F16C builds,
// the half-precision rows of km_cand_rows_dot_h) against double-precision references, and
// kmeans_plusplus on d > 128 (the path that uses them): centers are distinct data rows, the
// result is the same for 1 and 2 threads, and on separated blobs the seeding finds the blobs.
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/rng.h"
#include "data_prep/kmeans.h"
#include "data_prep/kmeans_dist.h"
#include "tests/test_util.h"

// Relative error of dist (n, ld) columns < T and pot (T) against double sums on rows x (as float).
static void check_scores(const char *name, const float *x, int n, int d, const float *xsq, const float *cand,
                         const float *csq, int T, int ld, const float *closest, const float *dist, const double *pot) {
  double derr = 0, perr = 0;
  for (int t = 0; t < T; t++) {
    double want_pot = 0;
    for (int i = 0; i < n; i++) {
      double s = 0;
      for (int j = 0; j < d; j++) {
        const double v = (double)x[(size_t)i * d + j] - cand[(size_t)t * d + j];
        s += v * v;
      }
      // float rounding of ||x||^2 + ||c||^2 - 2 x.c is relative to the norms, not to s.
      derr = fmax(derr, fabs(dist[(size_t)i * ld + t] - s) / ((double)xsq[i] + csq[t]));
      want_pot += fmin(s, (double)closest[i]);
    }
    perr = fmax(perr, fabs(pot[t] - want_pot) / want_pot);
  }
  printf("  %-28s distances rel.err %.2e (tol 1e-5 of the norms), potentials %.2e (tol 1e-5)\n", name, derr, perr);
  CHECK(derr <= 1e-5);
  CHECK(perr <= 1e-5);
}

static void test_kernels(hb_rng *r) {
  const int n = 601, d = 203, T = 7, ld = 8;  // odd rows, d % 8 != 0, a partial candidate group
  float *x = malloc(sizeof(float) * n * d), *xsq = malloc(sizeof(float) * n), *cl = malloc(sizeof(float) * n);
  float *cand = malloc(sizeof(float) * T * d), csq[8], *dist = malloc(sizeof(float) * n * ld);
  for (int i = 0; i < n * d; i++) x[i] = (float)(3.0 * rng_normal(r) + 1.0);
  for (int i = 0; i < n; i++) {
    float s = 0;
    for (int j = 0; j < d; j++) s += x[(size_t)i * d + j] * x[(size_t)i * d + j];
    xsq[i] = s;
    cl[i] = (float)(2.0 * d * 9.0 * rng_uniform_double(r));  // some rows closer than the candidates
  }
  for (int t = 0; t < T; t++) {
    const int row = (int)rng_below(r, (uint64_t)n);
    memcpy(cand + (size_t)t * d, x + (size_t)row * d, sizeof(float) * d);
    csq[t] = xsq[row];
  }
  double pot[8] = {0};
  km_cand_rows_dot(x, n, d, xsq, cand, csq, T, ld, cl, dist, pot);
  check_scores("float32 rows", x, n, d, xsq, cand, csq, T, ld, cl, dist, pot);
#if KM_HAVE_F16C
  uint16_t *h = malloc(sizeof(uint16_t) * n * d);
  float *xr = malloc(sizeof(float) * n * d), *hsq = malloc(sizeof(float) * n);
  km_to_half(x, (size_t)n * d, h);
  km_from_half(h, (size_t)n * d, xr);
  double rt = 0;
  for (int i = 0; i < n * d; i++) rt = fmax(rt, fabs((double)xr[i] - x[i]) / fmax(fabs(x[i]), 6.2e-5));
  printf("  half round trip: max relative rounding %.2e (bound 2^-11 = 4.9e-4)\n", rt);
  CHECK(rt <= 0.00048828125);
  for (int i = 0; i < n; i++) {
    float s = 0;
    for (int j = 0; j < d; j++) s += xr[(size_t)i * d + j] * xr[(size_t)i * d + j];
    hsq[i] = s;
  }
  for (int t = 0; t < T; t++) {  // candidates as the scoring sees them: rounded rows
    km_from_half(h + (size_t)(t * 37) * d, (size_t)d, cand + (size_t)t * d);
    csq[t] = hsq[t * 37];
  }
  memset(pot, 0, sizeof pot);
  km_cand_rows_dot_h(h, n, d, hsq, cand, csq, T, ld, cl, dist, pot);
  check_scores("half rows (vs rounded rows)", xr, n, d, hsq, cand, csq, T, ld, cl, dist, pot);
  free(h), free(xr), free(hsq);
#else
  printf("  half rows: not built (no F16C)\n");
#endif
  free(x), free(xsq), free(cl), free(cand), free(dist);
}

static double inertia_of(const float *x, int64_t n, int d, const float *c, int k) {
  double in = 0;
  CHECK_OK(kmeans_assign(x, n, d, c, k, NULL, &in));
  return in;
}

static void test_plusplus(hb_rng *r, uint64_t seed) {
  const int n = 3000, d = 200, k = 12;
  float *x = malloc(sizeof(float) * n * d), *xsq = malloc(sizeof(float) * n), *means = malloc(sizeof(float) * k * d);
  float *c1 = malloc(sizeof(float) * k * d), *c2 = malloc(sizeof(float) * k * d);
  for (int i = 0; i < k * d; i++) means[i] = (float)(4.0 * rng_normal(r));  // blobs ~80 apart, spread ~14
  for (int i = 0; i < n; i++) {
    const int b = i % k;
    float s = 0;
    for (int j = 0; j < d; j++) {
      const float v = means[(size_t)b * d + j] + (float)rng_normal(r);
      x[(size_t)i * d + j] = v;
      s += v * v;
    }
    xsq[i] = s;
  }
  const int saved = omp_get_max_threads();
  hb_rng a, b;
  rng_init(&a, seed);
  rng_init(&b, seed);
  omp_set_num_threads(1);
  CHECK_OK(kmeans_plusplus(x, n, d, xsq, k, 8, &a, c1));  // 8 trials: a missed blob ~1e-3
  omp_set_num_threads(2);
  CHECK_OK(kmeans_plusplus(x, n, d, xsq, k, 8, &b, c2));
  omp_set_num_threads(saved);
  const int same = memcmp(c1, c2, sizeof(float) * k * d) == 0;
  int rows_ok = 1, distinct = 1;
  for (int c = 0; c < k; c++) {
    int found = 0;
    for (int i = 0; i < n && !found; i++) found = memcmp(c1 + (size_t)c * d, x + (size_t)i * d, sizeof(float) * d) == 0;
    rows_ok &= found;
    for (int e = 0; e < c; e++) distinct &= memcmp(c1 + (size_t)c * d, c1 + (size_t)e * d, sizeof(float) * d) != 0;
  }
  const double got = inertia_of(x, n, d, c1, k), truth = inertia_of(x, n, d, means, k);
  printf("  kmeans++ n=%d d=%d k=%d: 1 vs 2 threads %s, centers are data rows %s, distinct %s, "
         "inertia %.4g vs blob means %.4g (want < 2.5x: data-row centers give ~2x, a missed blob > 4x)\n",
         n, d, k, same ? "identical" : "DIFFER", rows_ok ? "yes" : "NO", distinct ? "yes" : "NO", got, truth);
  CHECK(same && rows_ok && distinct);
  CHECK(got < 2.5 * truth);
  free(x), free(xsq), free(means), free(c1), free(c2);
}

int main(void) {
  const uint64_t seed = getenv("HUBERT_TEST_SEED") ? strtoull(getenv("HUBERT_TEST_SEED"), NULL, 10) : (uint64_t)time(NULL);
  printf("test_kmeans_dot: seed %llu (HUBERT_TEST_SEED reproduces)\n", (unsigned long long)seed);
  hb_rng r;
  rng_init(&r, seed);
  test_kernels(&r);
  test_plusplus(&r, seed);
  return test_summary("test_kmeans_dot");
}
