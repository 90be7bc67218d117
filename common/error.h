// Error reporting for library code (stb-style: return a status, keep the reason).
//
// Library functions return 0 on success and -1 on failure after calling hb_fail(), which stores
// a message in a thread-local buffer. Callers add context with hb_fail_prefix() on the way up
// ("model.safetensors: tensor 'x': shape ..."). Only main() prints and exits.
#ifndef HB_ERROR_H
#define HB_ERROR_H

#include <stddef.h>

#if defined(__GNUC__)
#define HB_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define HB_PRINTF(a, b)
#endif

// Sets the thread's error message; always returns -1 so callers can `return hb_fail(...)`.
int hb_fail(const char *fmt, ...) HB_PRINTF(1, 2);
// Prepends "<prefix>: " to the current message; returns -1.
int hb_fail_prefix(const char *fmt, ...) HB_PRINTF(1, 2);
// The current message ("" if none).
const char *hb_errmsg(void);
void hb_clear_error(void);

// Overflow-checked size arithmetic: return 0 on success, -1 (with hb_fail) on overflow.
int hb_mul_size(size_t a, size_t b, size_t *out);
int hb_add_size(size_t a, size_t b, size_t *out);

// malloc/calloc that fail with a message naming the size instead of returning NULL silently.
void *hb_malloc(size_t n);
void *hb_calloc(size_t count, size_t size);
void *hb_realloc(void *p, size_t n);
// 64-byte aligned allocation (free with hb_aligned_free).
void *hb_aligned_alloc(size_t n);
void hb_aligned_free(void *p);

#define HB_TRY(expr) do { if ((expr) != 0) return -1; } while (0)

#endif
