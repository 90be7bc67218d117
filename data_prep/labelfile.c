// Unit-label and topic-label files (see labelfile.h).
#include "data_prep/labelfile.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "data_prep/h5io.h"

#define UNITS_FORMAT "hubert-units"
#define TOPICS_FORMAT "hubert-topics"

void labelfile_free_units(hb_units *u) {
  h5io_free_strings(u->utt_id, u->n_utts);
  free(u->offsets); free(u->units); free(u->source);
  memset(u, 0, sizeof *u);
}

void labelfile_free_topics(hb_topics *t) {
  h5io_free_strings(t->utt_id, t->n_utts);
  free(t->topics); free(t->mixture); free(t->source);
  memset(t, 0, sizeof *t);
}

static char *tmp_name(const char *path) {
  size_t n = strlen(path) + 5;
  char *t = hb_malloc(n);
  if (t) snprintf(t, n, "%s.tmp", path);
  return t;
}

// Closes f and renames tmp over path when rc == 0, else removes tmp.
static int finish(hid_t f, char *tmp, const char *path, int rc) {
  if (rc) H5Fclose(f);
  else rc = h5io_close(f);
  if (rc == 0 && file_commit_rename(tmp, path)) rc = -1;
  if (rc) remove(tmp);
  free(tmp);
  return rc;
}

int labelfile_write_units(const char *path, const hb_units *u) {
  if (u->k <= 0 || !(u->rate > 0)) return hb_fail("%s: units need k > 0 and rate > 0", path);
  char *tmp = tmp_name(path);
  if (!tmp) return -1;
  hid_t f;
  int rc = -1;
  int64_t U = u->n_utts, U1 = U + 1, frames = u->offsets[U];
  if (h5io_create(tmp, &f)) { free(tmp); return -1; }
  if (h5io_write_str_attr(f, "format", UNITS_FORMAT) ||
      h5io_write_i64_attr(f, "k", u->k) ||
      h5io_write_f64_attr(f, "rate", u->rate) ||
      h5io_write_str_attr(f, "source", u->source ? u->source : "") ||
      h5io_write_i64_attr(f, "num_utts", U) ||
      h5io_write_strings(f, "utt_id", u->utt_id, U) ||
      h5io_write(f, "offsets", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &U1, u->offsets, 0) ||
      h5io_write(f, "units", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, &frames, u->units, 0))
    goto done;
  rc = 0;
done:
  return finish(f, tmp, path, rc);
}

static int check_format(hid_t f, const char *want) {
  char *fmt = NULL;
  if (h5io_read_str_attr(f, "format", &fmt)) return hb_fail_prefix("not a %s file", want);
  int ok = strcmp(fmt, want) == 0;
  if (!ok) h5io_fail(f, NULL, "format is '%s', expected '%s'", fmt, want);
  free(fmt);
  return ok ? 0 : -1;
}

int labelfile_read_units(const char *path, hb_units *u) {
  memset(u, 0, sizeof *u);
  hid_t f;
  if (h5io_open(path, &f)) return -1;
  int rc = -1;
  int64_t k, dims[1], nd[1];
  void *p;
  if (check_format(f, UNITS_FORMAT) || h5io_read_i64_attr(f, "k", &k) ||
      h5io_read_f64_attr(f, "rate", &u->rate))
    goto done;
  if (k <= 0 || k > (1 << 30)) { hb_fail("%s: attribute k = %lld is not a valid number of units", path, (long long)k); goto done; }
  if (!(u->rate > 0) || isinf(u->rate)) { hb_fail("%s: attribute rate = %g is not a positive frame rate", path, u->rate); goto done; }
  u->k = (int)k;
  if (h5io_attr_exists(f, "source")) {
    if (h5io_read_str_attr(f, "source", &u->source)) goto done;
  } else if (!(u->source = strdup(""))) {
    goto done;
  }
  if (h5io_read_strings(f, "utt_id", &u->n_utts, &u->utt_id)) goto done;
  if (h5io_read(f, "offsets", H5T_NATIVE_INT64, 1, dims, &p)) goto done;
  u->offsets = p;
  if (dims[0] != u->n_utts + 1) {
    hb_fail("%s: /offsets has %lld entries, expected %lld (utterances + 1)", path, (long long)dims[0], (long long)u->n_utts + 1);
    goto done;
  }
  if (h5io_read(f, "units", H5T_NATIVE_INT32, 1, nd, &p)) goto done;
  u->units = p;
  if (u->offsets[0] != 0) { hb_fail("%s: /offsets[0] = %lld, expected 0", path, (long long)u->offsets[0]); goto done; }
  for (int64_t i = 0; i < u->n_utts; i++)
    if (u->offsets[i + 1] < u->offsets[i]) {
      hb_fail("%s: /offsets decreases at utterance %lld ('%s')", path, (long long)i, u->utt_id[i]);
      goto done;
    }
  if (u->offsets[u->n_utts] != nd[0]) {
    hb_fail("%s: /offsets ends at %lld but /units has %lld frames", path, (long long)u->offsets[u->n_utts], (long long)nd[0]);
    goto done;
  }
  for (int64_t i = 0; i < nd[0]; i++)
    if (u->units[i] < 0 || u->units[i] >= u->k) {
      hb_fail("%s: /units[%lld] = %d is outside [0, k=%d)", path, (long long)i, u->units[i], u->k);
      goto done;
    }
  rc = 0;
done:
  H5Fclose(f);
  if (rc) labelfile_free_units(u);
  return rc;
}

int labelfile_write_topics(const char *path, const hb_topics *t) {
  if (t->k <= 0) return hb_fail("%s: topics need k > 0", path);
  char *tmp = tmp_name(path);
  if (!tmp) return -1;
  hid_t f;
  int rc = -1;
  int64_t k = t->k, U = t->n_utts, md[2] = {U, k};
  if (h5io_create(tmp, &f)) { free(tmp); return -1; }
  if (h5io_write_str_attr(f, "format", TOPICS_FORMAT) ||
      h5io_write_i64_attr(f, "k", k) ||
      h5io_write_str_attr(f, "source", t->source ? t->source : "") ||
      h5io_write_i64_attr(f, "num_utts", U) ||
      h5io_write_strings(f, "utt_id", t->utt_id, U) ||
      h5io_write(f, "topics", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, &U, t->topics, 0) ||
      h5io_write(f, "mixture", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, md, t->mixture, 0))
    goto done;
  rc = 0;
done:
  return finish(f, tmp, path, rc);
}

int labelfile_read_topics(const char *path, hb_topics *t) {
  memset(t, 0, sizeof *t);
  hid_t f;
  if (h5io_open(path, &f)) return -1;
  int rc = -1;
  int64_t k, td[1], md[2];
  void *p;
  if (check_format(f, TOPICS_FORMAT) || h5io_read_i64_attr(f, "k", &k)) goto done;
  if (k <= 0 || k > (1 << 20)) { hb_fail("%s: attribute k = %lld is not a valid number of topics", path, (long long)k); goto done; }
  t->k = (int)k;
  if (h5io_attr_exists(f, "source")) {
    if (h5io_read_str_attr(f, "source", &t->source)) goto done;
  } else if (!(t->source = strdup(""))) {
    goto done;
  }
  if (h5io_read_strings(f, "utt_id", &t->n_utts, &t->utt_id)) goto done;
  if (h5io_read(f, "topics", H5T_NATIVE_INT32, 1, td, &p)) goto done;
  t->topics = p;
  if (td[0] != t->n_utts) {
    hb_fail("%s: /topics has %lld entries but /utt_id has %lld", path, (long long)td[0], (long long)t->n_utts);
    goto done;
  }
  for (int64_t i = 0; i < td[0]; i++)
    if (t->topics[i] < 0 || t->topics[i] >= t->k) {
      hb_fail("%s: /topics[%lld] = %d is outside [0, k=%d)", path, (long long)i, t->topics[i], t->k);
      goto done;
    }
  if (h5io_read(f, "mixture", H5T_NATIVE_FLOAT, 2, md, &p)) goto done;
  t->mixture = p;
  if (md[0] != t->n_utts || md[1] != k) {
    hb_fail("%s: /mixture is (%lld, %lld), expected (%lld, %lld)", path, (long long)md[0], (long long)md[1], (long long)t->n_utts, (long long)k);
    goto done;
  }
  for (int64_t i = 0; i < md[0] * md[1]; i++)
    if (!(t->mixture[i] >= 0) || isinf(t->mixture[i])) {
      hb_fail("%s: /mixture[%lld, %lld] = %g is not a finite proportion", path, (long long)(i / k), (long long)(i % k), t->mixture[i]);
      goto done;
    }
  rc = 0;
done:
  H5Fclose(f);
  if (rc) labelfile_free_topics(t);
  return rc;
}
