// Utterance-id lookup: a sorted permutation of an id array, searched by bisection.
#ifndef HB_UTTINDEX_H
#define HB_UTTINDEX_H

#include <stdint.h>

typedef struct {
  char **ids;       // (n) copies of the caller's pointers (the strings are not owned)
  int64_t *order;   // (n) indices sorted by strcmp of ids
  int64_t n;
} hb_index;

// Fails on a duplicate id ("duplicate utterance id 'X'").
int index_build(hb_index *x, char *const *ids, int64_t n);
// Position of id in the original array, or -1.
int64_t index_find(const hb_index *x, const char *id);
void index_free(hb_index *x);

#endif
