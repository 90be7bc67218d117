// meta.tsv access for evaluation commands (see evalmeta.h).
#include "eval/evalmeta.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"

void evalmeta_free(hb_evalmeta *m) {
  index_free(&m->idx);
  free(m->ids);
  tsv_free(&m->t);
  phone_inv_free(&m->phones);
  free(m->path);
  memset(m, 0, sizeof *m);
}

int evalmeta_load(const char *path, hb_evalmeta *m) {
  memset(m, 0, sizeof *m);
  m->silence = -1;
  size_t len = strlen(path);
  m->path = hb_malloc(len + 1);
  if (!m->path) return -1;
  memcpy(m->path, path, len + 1);
  if (tsv_read(path, &m->t)) goto fail;
  int cu = tsv_column(&m->t, "utt_id");
  if (cu < 0) {
    hb_fail("%s: no 'utt_id' column in the header", path);
    goto fail;
  }
  m->c_split = tsv_column(&m->t, "split");
  m->c_phones = tsv_column(&m->t, "phones");
  m->ids = hb_calloc(m->t.nrows ? (size_t)m->t.nrows : 1, sizeof(char *));
  if (!m->ids) goto fail;
  for (int64_t r = 0; r < m->t.nrows; r++) m->ids[r] = (char *)tsv_cell(&m->t, r, cu);
  if (index_build(&m->idx, m->ids, m->t.nrows)) {
    hb_fail_prefix("%s", path);
    goto fail;
  }
  if (m->c_phones >= 0) {
    for (int64_t r = 0; r < m->t.nrows; r++) {
      hb_alignment a;
      int rc = alignment_parse(tsv_cell(&m->t, r, m->c_phones), &m->phones, 1, &a);
      if (rc < 0) {
        hb_fail_prefix("%s: line %lld (utterance '%s'): phones", path, (long long)r + 2, m->ids[r]);
        goto fail;
      }
      if (rc == 0) m->n_aligned++;
      alignment_free(&a);
    }
    phone_inv_sort(&m->phones);
    m->silence = phone_inv_id(&m->phones, "pau", 0);
  }
  return 0;
fail:
  evalmeta_free(m);
  return -1;
}

int64_t evalmeta_row(const hb_evalmeta *m, const char *utt, const char *who) {
  int64_t r = index_find(&m->idx, utt);
  if (r < 0) hb_fail("%s: utterance '%s' is not in %s", who, utt, m->path);
  return r;
}

int evalmeta_column(const hb_evalmeta *m, const char *name) { return tsv_column(&m->t, name); }

int evalmeta_split(const hb_evalmeta *m, int64_t row) {
  if (m->c_split < 0) return -1;
  const char *s = tsv_cell(&m->t, row, m->c_split);
  if (!strcmp(s, "train")) return 0;
  if (!strcmp(s, "valid") || !strcmp(s, "dev")) return 1;
  if (!strcmp(s, "test")) return 2;
  return -1;
}

int evalmeta_frame_phones(const hb_evalmeta *m, int64_t row, double rate, int64_t T, int32_t *out) {
  if (m->c_phones < 0) return 1;
  hb_alignment a;
  int rc = alignment_parse(tsv_cell(&m->t, row, m->c_phones), (hb_phone_inv *)&m->phones, 0, &a);
  if (rc) return rc < 0 ? hb_fail_prefix("%s: utterance '%s'", m->path, m->ids[row]) : 1;
  rc = alignment_to_frames(&a, rate, T, m->silence, out);
  alignment_free(&a);
  if (rc) return hb_fail_prefix("%s: utterance '%s': label/phone length mismatch", m->path, m->ids[row]);
  return 0;
}

int evalmeta_phone_seq(const hb_evalmeta *m, int64_t row, int32_t *out, int cap, int *n) {
  *n = 0;
  if (m->c_phones < 0) return 1;
  hb_alignment a;
  int rc = alignment_parse(tsv_cell(&m->t, row, m->c_phones), (hb_phone_inv *)&m->phones, 0, &a);
  if (rc) return rc < 0 ? hb_fail_prefix("%s: utterance '%s'", m->path, m->ids[row]) : 1;
  for (int k = 0; k < a.n; k++) {
    if (a.id[k] == m->silence) continue;
    if (*n >= cap) {
      alignment_free(&a);
      return hb_fail("%s: utterance '%s': more than %d phones", m->path, m->ids[row], cap);
    }
    out[(*n)++] = a.id[k];
  }
  alignment_free(&a);
  return 0;
}
