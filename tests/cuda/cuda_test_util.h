// Helpers of the CUDA-vs-CPU tests (tests/cuda/test_*_cuda.c): random host data,
// device copies followed by guard floats, downloads that check the guard, the skip rule.
#ifndef HB_CUDA_TEST_UTIL_H
#define HB_CUDA_TEST_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/rng.h"
#include "kernels/ops.h"
#include "tests/test_util.h"

#define CT_GUARD 64
#define CT_GUARD_VAL 12345.678f

static hb_rng ct_rng;
static hb_ctx ct_cpu, ct_gpu;

// Seed (fresh, HUBERT_TEST_SEED fixes it): printed, seeds ct_rng.
static inline uint64_t ct_seed(const char *name) {
  uint64_t seed = getenv("HUBERT_TEST_SEED") ? strtoull(getenv("HUBERT_TEST_SEED"), NULL, 10) : (uint64_t)time(NULL);
  printf("%s: seed %llu (HUBERT_TEST_SEED fixes it)\n", name, (unsigned long long)seed);
  rng_init(&ct_rng, seed);
  return seed;
}

// CPU and CUDA contexts; exits 77 without a GPU or without the CUDA backend.
static inline void ct_contexts(const char *name) {
  if (ops_ctx_init(&ct_gpu, "cuda", 0)) {
    const char *msg = hb_errmsg();
    if (strstr(msg, "no CUDA device") || strstr(msg, "not built in")) {
      printf("%s: SKIP: %s\n", name, msg);
      exit(77);
    }
    fprintf(stderr, "%s: FAIL: cuda context: %s\n", name, msg);
    exit(1);
  }
  if (ops_ctx_init(&ct_cpu, "cpu", 0)) {
    fprintf(stderr, "%s: cpu context: %s\n", name, hb_errmsg());
    exit(1);
  }
}

// ct_seed, then ct_contexts.
static inline uint64_t ct_init(const char *name) {
  const uint64_t seed = ct_seed(name);
  ct_contexts(name);
  return seed;
}

static inline float *ct_randn(size_t n, double sd) {
  float *p = malloc(sizeof(float) * (n ? n : 1));
  for (size_t i = 0; i < n; i++) p[i] = (float)(sd * rng_normal(&ct_rng));
  return p;
}
static inline float *ct_nan(size_t n) {
  float *p = malloc(sizeof(float) * (n ? n : 1));
  for (size_t i = 0; i < n; i++) p[i] = NAN;
  return p;
}
static inline float *ct_copy(const float *h, size_t n) {
  float *p = malloc(sizeof(float) * (n ? n : 1));
  memcpy(p, h, sizeof(float) * n);
  return p;
}

static inline void *ct_dev_bytes(const void *h, size_t bytes) {
  char *tmp = malloc(bytes + sizeof(float) * CT_GUARD);
  if (h) memcpy(tmp, h, bytes);
  else for (size_t i = 0; i < bytes / sizeof(float); i++) ((float *)tmp)[i] = NAN;
  for (int i = 0; i < CT_GUARD; i++) memcpy(tmp + bytes + sizeof(float) * i, &(float){CT_GUARD_VAL}, sizeof(float));
  void *d = ct_gpu.be->alloc(&ct_gpu, bytes + sizeof(float) * CT_GUARD);
  if (!d || ct_gpu.be->upload(&ct_gpu, d, tmp, bytes + sizeof(float) * CT_GUARD)) {
    fprintf(stderr, "device buffer of %zu bytes: %s\n", bytes, hb_errmsg());
    exit(1);
  }
  free(tmp);
  return d;
}
// Device copy of h (n floats; NULL: NaN) followed by CT_GUARD sentinel floats.
static inline float *ct_dev(const float *h, size_t n) { return (float *)ct_dev_bytes(h, sizeof(float) * n); }
static inline int *ct_dev_int(const int *h, size_t n) { return (int *)ct_dev_bytes(h, sizeof(int) * n); }

// Downloads bytes of d into h (host, bytes) and checks the guard after them; 0 if all is well.
static inline int ct_get(const char *name, void *h, const void *d, size_t bytes) {
  char *tmp = malloc(bytes + sizeof(float) * CT_GUARD);
  int rc = ct_gpu.be->sync(&ct_gpu);
  if (!rc) rc = ct_gpu.be->download(&ct_gpu, tmp, d, bytes + sizeof(float) * CT_GUARD);
  g_test_checks++;
  if (rc) {
    g_test_failures++;
    fprintf(stderr, "FAIL %s: download: %s\n", name, hb_errmsg());
    free(tmp);
    return -1;
  }
  memcpy(h, tmp, bytes);
  for (int i = 0; i < CT_GUARD; i++) {
    float g;
    memcpy(&g, tmp + bytes + sizeof(float) * i, sizeof g);
    if (g != CT_GUARD_VAL) {
      g_test_failures++;
      fprintf(stderr, "FAIL %s: write past the end of the output (guard overwritten)\n", name);
      free(tmp);
      return -1;
    }
  }
  free(tmp);
  return 0;
}

// Compares device output d (n floats + guard) with ref at rel. L2 error tol; d stays allocated.
static inline void ct_check_keep(const char *name, const float *d, const float *ref, size_t n, double tol) {
  float *h = malloc(sizeof(float) * (n ? n : 1));
  if (!ct_get(name, h, d, sizeof(float) * n)) CHECK_REL(name, rel_err_f32(h, ref, n), tol);
  free(h);
}
// ct_check_keep, then frees d.
static inline void ct_check(const char *name, float *d, const float *ref, size_t n, double tol) {
  ct_check_keep(name, d, ref, n, tol);
  ct_gpu.be->free(&ct_gpu, d);
}

// Bit-identical comparison of n floats; frees d.
static inline void ct_check_bits(const char *name, float *d, const float *ref, size_t n) {
  float *h = malloc(sizeof(float) * (n ? n : 1));
  if (!ct_get(name, h, d, sizeof(float) * n)) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += memcmp(h + i, ref + i, sizeof(float)) != 0;
    g_test_checks++;
    printf("  %-40s %zu of %zu floats differ in their bits%s\n", name, bad, n, bad ? "  <-- FAIL" : "");
    if (bad) g_test_failures++;
  }
  free(h);
  ct_gpu.be->free(&ct_gpu, d);
}

static inline void ct_free(void *d) {
  if (d) ct_gpu.be->free(&ct_gpu, d);
}

#endif
