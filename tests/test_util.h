// Tiny test harness: every check prints what failed and where; main returns test_summary().
#ifndef HB_TEST_UTIL_H
#define HB_TEST_UTIL_H

#include <math.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/error.h"
#include "tests/tolerances.h"

static int g_test_failures = 0;
static int g_test_checks = 0;

#define CHECK(cond)                                                                   \
  do {                                                                                \
    g_test_checks++;                                                                  \
    if (!(cond)) {                                                                    \
      g_test_failures++;                                                              \
      fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                 \
    }                                                                                 \
  } while (0)

// Expect a library call to succeed; on failure print hb_errmsg().
#define CHECK_OK(expr)                                                                \
  do {                                                                                \
    g_test_checks++;                                                                  \
    if ((expr) != 0) {                                                                \
      g_test_failures++;                                                              \
      fprintf(stderr, "FAIL %s:%d: %s -> %s\n", __FILE__, __LINE__, #expr, hb_errmsg()); \
    }                                                                                 \
  } while (0)

// Expect a library call to fail with an error message containing `needle`.
#define CHECK_ERR(expr, needle)                                                       \
  do {                                                                                \
    g_test_checks++;                                                                  \
    hb_clear_error();                                                                 \
    if ((expr) == 0) {                                                                \
      g_test_failures++;                                                              \
      fprintf(stderr, "FAIL %s:%d: %s succeeded, expected error '%s'\n", __FILE__, __LINE__, #expr, needle); \
    } else if (!strstr(hb_errmsg(), needle)) {                                        \
      g_test_failures++;                                                              \
      fprintf(stderr, "FAIL %s:%d: %s: error '%s' does not mention '%s'\n", __FILE__, __LINE__, #expr, hb_errmsg(), needle); \
    } else {                                                                          \
      printf("  ok: %s -> %s\n", #expr, hb_errmsg());                                 \
    }                                                                                 \
  } while (0)

// Relative L2 error ||a - b|| / max(||b||, tiny); NaN anywhere gives +inf (NaN never passes).
static inline double rel_err_f32(const float *a, const float *b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    if (isnan(a[i]) || isnan(b[i]) || isinf(a[i]) || isinf(b[i])) return INFINITY;
    double d = (double)a[i] - (double)b[i];
    num += d * d;
    den += (double)b[i] * b[i];
  }
  return sqrt(num) / (den > 1e-300 ? sqrt(den) : 1e-150);
}

static inline double rel_err_f32_f64(const float *a, const double *b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    if (isnan(a[i]) || isnan(b[i]) || isinf(a[i])) return INFINITY;
    double d = (double)a[i] - b[i];
    num += d * d;
    den += b[i] * b[i];
  }
  return sqrt(num) / (den > 1e-300 ? sqrt(den) : 1e-150);
}

#define CHECK_REL(name, err, tol)                                                     \
  do {                                                                                \
    double e_ = (err);                                                                \
    g_test_checks++;                                                                  \
    printf("  %-40s rel.err %.3e (tol %.0e)%s\n", name, e_, (double)(tol), e_ <= (tol) ? "" : "  <-- FAIL"); \
    if (!(e_ <= (tol))) g_test_failures++;                                            \
  } while (0)

static inline int test_summary(const char *name) {
  if (g_test_failures) {
    fprintf(stderr, "%s: %d of %d checks FAILED\n", name, g_test_failures, g_test_checks);
    return 1;
  }
  printf("%s: all %d checks passed\n", name, g_test_checks);
  return 0;
}

#endif
