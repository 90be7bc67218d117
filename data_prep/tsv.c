#include "data_prep/tsv.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileutil.h"

// Splits line in place at tabs into f[0..max); returns the field count (max + 1 if more).
static int split_tabs(char *line, char **f, int max) {
  int n = 0;
  for (char *p = line;;) {
    if (n == max) return max + 1;
    f[n++] = p;
    char *tab = strchr(p, '\t');
    if (!tab) break;
    *tab = 0;
    p = tab + 1;
  }
  return n;
}

int tsv_read(const char *path, hb_tsv *t) {
  memset(t, 0, sizeof *t);
  size_t len;
  if (file_read_all(path, &t->buf, &len)) return -1;
  int64_t lines = 1;
  for (size_t i = 0; i < len; i++) lines += t->buf[i] == '\n';
  enum { MAXF = 256 };
  char *f[MAXF + 1];
  char *line = t->buf;
  for (int64_t ln = 1; line && *line; ln++) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = 0;
    size_t ll = strlen(line);
    if (ll && line[ll - 1] == '\r') line[--ll] = 0;
    if (ll == 0 && ln > 1) {  // blank line
      line = nl ? nl + 1 : NULL;
      continue;
    }
    int nf = split_tabs(line, f, MAXF);
    if (nf > MAXF) {
      hb_fail("%s: line %lld: more than %d columns", path, (long long)ln, MAXF);
      goto fail;
    }
    if (ln == 1) {
      t->ncol = nf;
      t->header = hb_malloc(sizeof(char *) * (size_t)nf);
      t->cells = hb_malloc(sizeof(char *) * (size_t)nf * (size_t)lines);
      if (!t->header || !t->cells) goto fail;
      memcpy(t->header, f, sizeof(char *) * (size_t)nf);
    } else {
      if (nf != t->ncol) {
        hb_fail("%s: line %lld: %d tab-separated fields, the header has %d", path, (long long)ln, nf, t->ncol);
        goto fail;
      }
      memcpy(t->cells + t->nrows * t->ncol, f, sizeof(char *) * (size_t)nf);
      t->nrows++;
    }
    line = nl ? nl + 1 : NULL;
  }
  if (!t->header) {
    hb_fail("%s: empty file (expected a header line)", path);
    goto fail;
  }
  return 0;
fail:
  tsv_free(t);
  return -1;
}

void tsv_free(hb_tsv *t) {
  free(t->buf);
  free(t->header);
  free(t->cells);
  memset(t, 0, sizeof *t);
}

int tsv_column(const hb_tsv *t, const char *name) {
  for (int i = 0; i < t->ncol; i++)
    if (!strcmp(t->header[i], name)) return i;
  return -1;
}
