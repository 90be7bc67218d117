#include "common/error.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HB_ERR_LEN 1024
static _Thread_local char g_err[HB_ERR_LEN];

int hb_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_err, sizeof g_err, fmt, ap);
  va_end(ap);
  return -1;
}

int hb_fail_prefix(const char *fmt, ...) {
  char prefix[HB_ERR_LEN], old[HB_ERR_LEN];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, g_err, sizeof old);
  // prefix + ": " + old, truncated to the buffer.
  size_t n = strlen(prefix);
  if (n > HB_ERR_LEN - 3) n = HB_ERR_LEN - 3;
  memcpy(g_err, prefix, n);
  memcpy(g_err + n, ": ", 2);
  size_t m = strlen(old);
  if (m > HB_ERR_LEN - 1 - (n + 2)) m = HB_ERR_LEN - 1 - (n + 2);
  memcpy(g_err + n + 2, old, m);
  g_err[n + 2 + m] = 0;
  return -1;
}

const char *hb_errmsg(void) { return g_err; }
void hb_clear_error(void) { g_err[0] = 0; }

int hb_mul_size(size_t a, size_t b, size_t *out) {
  if (a != 0 && b > SIZE_MAX / a) return hb_fail("size overflow: %zu * %zu", a, b);
  *out = a * b;
  return 0;
}

int hb_add_size(size_t a, size_t b, size_t *out) {
  if (b > SIZE_MAX - a) return hb_fail("size overflow: %zu + %zu", a, b);
  *out = a + b;
  return 0;
}

void *hb_malloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) hb_fail("out of memory allocating %zu bytes", n);
  return p;
}

void *hb_calloc(size_t count, size_t size) {
  void *p = calloc(count ? count : 1, size ? size : 1);
  if (!p) hb_fail("out of memory allocating %zu x %zu bytes", count, size);
  return p;
}

void *hb_realloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) hb_fail("out of memory reallocating to %zu bytes", n);
  return q;
}

void *hb_aligned_alloc(size_t n) {
  void *p = NULL;
  if (posix_memalign(&p, 64, n ? n : 64) != 0) {
    hb_fail("out of memory allocating %zu bytes (aligned)", n);
    return NULL;
  }
  return p;
}

void hb_aligned_free(void *p) { free(p); }
