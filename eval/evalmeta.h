// meta.tsv for evaluation (`units-eval`, `probe`): utt_id lookup, the split/speaker/language/
// keyword columns, and the phone inventory of every aligned `phones` cell (sorted names; "pau" is
// the silence phone that may be cut at an utterance's end, see eval/phones.h).
#ifndef HB_EVAL_EVALMETA_H
#define HB_EVAL_EVALMETA_H

#include <stdint.h>

#include "data_prep/tsv.h"
#include "data_prep/uttindex.h"
#include "eval/phones.h"

typedef struct {
  char *path;
  hb_tsv t;
  hb_index idx;
  char **ids;          // (nrows) pointers into t
  int c_split, c_phones;
  hb_phone_inv phones; // inventory over all aligned rows
  int silence;         // id of "pau" or -1
  int64_t n_aligned;   // rows with an alignment
} hb_evalmeta;

// Loads and indexes the table; parses every `phones` cell once (errors name the file and line).
int evalmeta_load(const char *path, hb_evalmeta *m);
void evalmeta_free(hb_evalmeta *m);
// Row of utterance `utt`, or -1 with hb_fail "WHO: utterance 'UTT' is not in META".
int64_t evalmeta_row(const hb_evalmeta *m, const char *utt, const char *who);
// Column index by name, -1 if absent.
int evalmeta_column(const hb_evalmeta *m, const char *name);
static inline const char *evalmeta_cell(const hb_evalmeta *m, int64_t row, int col) { return tsv_cell(&m->t, row, col); }
// Split of a row: 0 train, 1 valid, 2 test, -1 other/absent.
int evalmeta_split(const hb_evalmeta *m, int64_t row);
// Frame phone labels of a row at `rate` (eval/phones.h convention): 1 when the row has no
// alignment (nothing written), 0 ok, -1 on a length mismatch (names META and the utterance).
int evalmeta_frame_phones(const hb_evalmeta *m, int64_t row, double rate, int64_t T, int32_t *out);
// Phone id sequence of a row without silences (CTC targets): 1 no alignment, 0 ok (*n set;
// out holds at most cap ids, error if longer).
int evalmeta_phone_seq(const hb_evalmeta *m, int64_t row, int32_t *out, int cap, int *n);

#endif
