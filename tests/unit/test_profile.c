// HUBERT_PROFILE=1 swaps a context's backend table for timing wrappers (kernels/ops.c). Every op
// member of hb_backend after `sync` must be wrapped, or that op silently drops out of the profile:
// the table is walked slot by slot (hb_backend holds only pointers after `name`), so a member added
// to ops.h without a wrapper fails here. Then a profiled op gives the same result as the plain
// one, and after freeing the profiled context a new one is profiled again.
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ops.h"
#include "tests/test_util.h"

typedef void (*fn_ptr)(void);

int main(void) {
  hb_ctx plain, prof;
  CHECK_OK(ops_ctx_init(&plain, "cpu", 1));
  setenv("HUBERT_PROFILE", "1", 1);
  CHECK_OK(ops_ctx_init(&prof, "cpu", 1));
  unsetenv("HUBERT_PROFILE");
  CHECK(prof.be != plain.be);
  CHECK(sizeof(hb_backend) % sizeof(fn_ptr) == 0 && offsetof(hb_backend, alloc) == sizeof(fn_ptr));
  const char *a = (const char *)plain.be, *b = (const char *)prof.be;
  int unwrapped = 0, wrapped = 0;
  for (size_t off = offsetof(hb_backend, copy); off < sizeof(hb_backend); off += sizeof(fn_ptr)) {
    if (off == offsetof(hb_backend, sync)) continue;  // synchronisation is what the wrappers call
    fn_ptr fa, fb;
    memcpy(&fa, a + off, sizeof fa);
    memcpy(&fb, b + off, sizeof fb);
    if (!fa) continue;  // the CPU backend lacks it: nothing to wrap
    if (fa == fb) {
      unwrapped++;
      fprintf(stderr, "FAIL: hb_backend member at byte offset %zu has no HUBERT_PROFILE wrapper (kernels/ops.c)\n", off);
    } else {
      wrapped++;
    }
  }
  printf("  %d op members wrapped, %d not\n", wrapped, unwrapped);
  CHECK(unwrapped == 0 && wrapped > 20);  // > 20: the walk did cover the op table

  // the wrapper computes what the op computes
  float x[6] = {1, -2, 3, -4, 5, -6}, y0[6], y1[6];
  CHECK_OK(plain.be->gelu(&plain, y0, x, 6));
  CHECK_OK(prof.be->gelu(&prof, y1, x, 6));
  CHECK(memcmp(y0, y1, sizeof y0) == 0);
  ops_ctx_free(&prof);  // prints the report to stderr and releases the process-wide profiler
  setenv("HUBERT_PROFILE", "1", 1);
  CHECK_OK(ops_ctx_init(&prof, "cpu", 1));  // so a later context is profiled again
  unsetenv("HUBERT_PROFILE");
  CHECK(prof.be != plain.be);
  ops_ctx_free(&prof);
  ops_ctx_free(&plain);
  return test_summary("test_profile");
}
