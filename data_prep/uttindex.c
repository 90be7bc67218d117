#include "data_prep/uttindex.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"

// Bottom-up merge sort of order[] by ids (qsort has no context pointer in C11).
static void merge_sort(int64_t *a, int64_t *tmp, int64_t n, char *const *ids) {
  for (int64_t w = 1; w < n; w *= 2) {
    for (int64_t lo = 0; lo < n; lo += 2 * w) {
      int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
      int64_t i = lo, j = mid, k = lo;
      while (i < mid && j < hi) tmp[k++] = strcmp(ids[a[j]], ids[a[i]]) < 0 ? a[j++] : a[i++];
      while (i < mid) tmp[k++] = a[i++];
      while (j < hi) tmp[k++] = a[j++];
    }
    memcpy(a, tmp, (size_t)n * sizeof *a);
  }
}

int index_build(hb_index *x, char *const *ids, int64_t n) {
  memset(x, 0, sizeof *x);
  if (n < 0) return hb_fail("negative utterance count");
  x->ids = hb_malloc(((size_t)n + 1) * sizeof(char *));
  x->order = hb_malloc(((size_t)n + 1) * sizeof(int64_t));
  int64_t *tmp = hb_malloc(((size_t)n + 1) * sizeof(int64_t));
  if (!x->ids || !x->order || !tmp) {
    free(tmp);
    index_free(x);
    return -1;
  }
  for (int64_t i = 0; i < n; i++) {
    x->ids[i] = ids[i];
    x->order[i] = i;
  }
  x->n = n;
  merge_sort(x->order, tmp, n, x->ids);
  free(tmp);
  for (int64_t i = 1; i < n; i++)
    if (!strcmp(x->ids[x->order[i - 1]], x->ids[x->order[i]])) {
      hb_fail("duplicate utterance id '%s'", x->ids[x->order[i]]);
      index_free(x);
      return -1;
    }
  return 0;
}

int64_t index_find(const hb_index *x, const char *id) {
  int64_t lo = 0, hi = x->n;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    int c = strcmp(x->ids[x->order[mid]], id);
    if (c == 0) return x->order[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return -1;
}

void index_free(hb_index *x) {
  free(x->ids);
  free(x->order);
  memset(x, 0, sizeof *x);
}
