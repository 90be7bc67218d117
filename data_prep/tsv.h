// Tab-separated tables with a header line (the demo corpus' meta.tsv, --meta files).
// Fields may be empty ("a\t\tc" has 3 fields); a trailing \r is stripped; blank lines are
// skipped; every row must have as many fields as the header (error names file and line).
#ifndef HB_TSV_H
#define HB_TSV_H

#include <stdint.h>

typedef struct {
  char *buf;       // the file text, split in place
  int ncol;
  char **header;   // (ncol) pointers into buf
  int64_t nrows;
  char **cells;    // (nrows, ncol) pointers into buf
} hb_tsv;

int tsv_read(const char *path, hb_tsv *t);
void tsv_free(hb_tsv *t);
// Column index by header name, -1 if absent.
int tsv_column(const hb_tsv *t, const char *name);
static inline const char *tsv_cell(const hb_tsv *t, int64_t row, int col) { return t->cells[row * t->ncol + col]; }

#endif
