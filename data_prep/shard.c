// Shard reader: opens a shard and validates every invariant listed in shard.h before use.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "data_prep/h5io.h"
#include "data_prep/shard.h"

typedef struct {
  char *name;
  int k;
  double rate;
  int64_t *offsets;   // (U+1)
} label_set;

typedef struct {
  char *name;
  int k;
  int32_t *topic;     // (U)
} topic_set;

struct hb_shard {
  char *path;
  hid_t file;
  int64_t U;
  int sample_rate;
  char **utt_id, **speaker, **text, **phones;
  int64_t *audio_off;   // (U+1)
  int n_labels, n_topics, feat_dim;
  label_set *labels;
  topic_set *topics;
};

void shard_close(hb_shard *s) {
  if (!s) return;
  if (s->file >= 0) H5Fclose(s->file);
  h5io_free_strings(s->utt_id, s->U);
  h5io_free_strings(s->speaker, s->U);
  h5io_free_strings(s->text, s->U);
  h5io_free_strings(s->phones, s->U);
  free(s->audio_off);
  for (int j = 0; j < s->n_labels; j++) {
    free(s->labels[j].name);
    free(s->labels[j].offsets);
  }
  for (int j = 0; j < s->n_topics; j++) {
    free(s->topics[j].name);
    free(s->topics[j].topic);
  }
  free(s->labels);
  free(s->topics);
  free(s->path);
  free(s);
}

// Reads an int64 (U+1) offsets dataset and checks: starts at 0, never decreases, ends at total.
static int read_offsets(hid_t loc, const char *name, int64_t U, int64_t total, int64_t **out) {
  int64_t n;
  void *p;
  char shown[H5IO_WHERE_LEN];
  if (h5io_read(loc, name, H5T_NATIVE_INT64, 1, &n, &p)) return -1;
  int64_t *o = p;
  h5io_where(loc, name, shown, sizeof shown);
  if (n != U + 1) {
    free(o);
    return hb_fail("%s has %lld entries, expected num_utts + 1 = %lld", shown, (long long)n, (long long)(U + 1));
  }
  const char *bad = NULL;
  int64_t at = 0;
  if (o[0] != 0) bad = "does not start at 0";
  for (int64_t i = 1; i <= U && !bad; i++)
    if (o[i] < o[i - 1]) { bad = "decreases"; at = i; }
  if (bad) {
    hb_fail("%s %s (entry %lld: %lld after %lld)", shown, bad, (long long)at, (long long)o[at], (long long)(at ? o[at - 1] : 0));
    free(o);
    return -1;
  }
  if (o[U] != total) {
    hb_fail("%s ends at %lld but the data has %lld elements", shown, (long long)o[U], (long long)total);
    free(o);
    return -1;
  }
  *out = o;
  return 0;
}

// Scans an int32 dataset in blocks and checks 0 <= v < k.
static int check_ids(hid_t loc, const char *name, int64_t n, int k) {
  enum { BLK = 1 << 16 };
  int32_t *buf = hb_malloc(BLK * sizeof *buf);
  if (!buf) return -1;
  for (int64_t s = 0; s < n; s += BLK) {
    int64_t m = n - s < BLK ? n - s : BLK;
    if (h5io_read_rows(loc, name, H5T_NATIVE_INT32, s, m, buf)) {
      free(buf);
      return -1;
    }
    for (int64_t i = 0; i < m; i++)
      if (buf[i] < 0 || buf[i] >= k) {
        char shown[H5IO_WHERE_LEN];
        hb_fail("%s[%lld] = %d is outside [0, k = %d)", h5io_where(loc, name, shown, sizeof shown), (long long)(s + i),
                buf[i], k);
        free(buf);
        return -1;
      }
  }
  free(buf);
  return 0;
}

typedef struct {
  char **names;
  int n, cap;
} name_list;

static herr_t collect_name(hid_t g, const char *name, const H5L_info_t *info, void *data) {
  (void)g;
  (void)info;
  name_list *l = data;
  if (l->n == l->cap) {
    int cap = l->cap ? 2 * l->cap : 8;
    char **p = realloc(l->names, (size_t)cap * sizeof *p);
    if (!p) return -1;
    l->names = p;
    l->cap = cap;
  }
  if (!(l->names[l->n] = strdup(name))) return -1;
  l->n++;
  return 0;
}

static int list_group(hid_t f, const char *group, name_list *l) {
  memset(l, 0, sizeof *l);
  if (!h5io_exists(f, group)) return 0;
  hid_t g = H5Gopen2(f, group, H5P_DEFAULT);
  if (g < 0) return h5io_fail(f, group, "not a group");
  hsize_t idx = 0;
  herr_t r = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_name, l);
  H5Gclose(g);
  return r < 0 ? h5io_fail(f, group, "cannot list the group") : 0;
}

static void free_names(name_list *l) {
  for (int i = 0; i < l->n; i++) free(l->names[i]);
  free(l->names);
}

static int open_labels(hb_shard *s) {
  name_list l;
  if (list_group(s->file, "labels", &l)) return -1;
  int rc = 0;
  s->labels = hb_calloc((size_t)l.n + 1, sizeof *s->labels);
  if (!s->labels) rc = -1;
  for (int j = 0; j < l.n && !rc; j++) {
    char gname[512];
    snprintf(gname, sizeof gname, "labels/%s", l.names[j]);
    label_set *ls = &s->labels[j];
    ls->name = l.names[j];
    l.names[j] = NULL;
    s->n_labels++;
    hid_t g = H5Gopen2(s->file, gname, H5P_DEFAULT);
    if (g < 0) { rc = h5io_fail(s->file, gname, "not a group"); break; }
    int64_t k = 0, nu = 0;
    if (h5io_read_f64_attr(g, "rate", &ls->rate) || h5io_read_i64_attr(g, "k", &k)) rc = -1;
    else if (!(ls->rate > 0 && ls->rate <= 1e5)) rc = h5io_fail(g, NULL, "attribute rate = %g is not a frame rate", ls->rate);
    else if (k < 1 || k > (1 << 30)) rc = h5io_fail(g, NULL, "attribute k = %lld out of range", (long long)k);
    if (!rc) {
      ls->k = (int)k;
      H5T_class_t c;
      rc = h5io_dims(g, "units", 1, &nu, &c);
      if (!rc && c != H5T_INTEGER) rc = h5io_fail(g, "units", "not an integer dataset");
    }
    if (!rc) rc = read_offsets(g, "offsets", s->U, nu, &ls->offsets);
    if (!rc) rc = check_ids(g, "units", nu, ls->k);
    for (int64_t i = 0; i < s->U && !rc; i++) {
      int64_t fr = ls->offsets[i + 1] - ls->offsets[i], sm = s->audio_off[i + 1] - s->audio_off[i];
      if (!shard_label_len_ok(sm, s->sample_rate, fr, ls->rate))
        rc = h5io_fail(g, NULL, "utterance %lld '%s': %lld labels at %g Hz = %.3f s, audio %lld samples = %.3f s (tolerance %.1f s)",
                       (long long)i, s->utt_id[i], (long long)fr, ls->rate, fr / ls->rate, (long long)sm,
                     (double)sm / s->sample_rate, HB_SHARD_LABEL_TOL);
    }
    H5Gclose(g);
  }
  free_names(&l);
  return rc;
}

static int open_topics(hb_shard *s) {
  name_list l;
  if (list_group(s->file, "topics", &l)) return -1;
  int rc = 0;
  s->topics = hb_calloc((size_t)l.n + 1, sizeof *s->topics);
  if (!s->topics) rc = -1;
  hid_t g = -1;
  if (!rc && l.n && (g = H5Gopen2(s->file, "topics", H5P_DEFAULT)) < 0) rc = h5io_fail(s->file, "topics", "cannot open the group");
  for (int j = 0; j < l.n && !rc; j++) {
    topic_set *t = &s->topics[j];
    t->name = l.names[j];
    l.names[j] = NULL;
    s->n_topics++;
    int64_t n, k = 0;
    H5T_class_t c;
    hid_t ds = -1;
    if (h5io_dims(g, t->name, 1, &n, &c)) { rc = -1; break; }
    if (c != H5T_INTEGER) { rc = h5io_fail(g, t->name, "not an integer dataset"); break; }
    if (n != s->U) { rc = h5io_fail(g, t->name, "has %lld entries, num_utts is %lld", (long long)n, (long long)s->U); break; }
    if ((ds = H5Dopen2(g, t->name, H5P_DEFAULT)) < 0) rc = h5io_fail(g, t->name, "cannot open the dataset");
    else rc = h5io_read_i64_attr(ds, "k", &k);
    if (ds >= 0) H5Dclose(ds);
    if (!rc && (k < 1 || k > (1 << 30))) rc = h5io_fail(g, t->name, "attribute k = %lld out of range", (long long)k);
    if (rc) break;
    t->k = (int)k;
    if (!(t->topic = hb_malloc((size_t)n * sizeof(int32_t) + 4))) { rc = -1; break; }
    if (h5io_read_rows(g, t->name, H5T_NATIVE_INT32, 0, n, t->topic)) { rc = -1; break; }
    char shown[H5IO_WHERE_LEN];
    for (int64_t i = 0; i < n && !rc; i++)
      if (t->topic[i] < 0 || t->topic[i] >= t->k)
        rc = hb_fail("%s[%lld] = %d is outside [0, k = %d)", h5io_where(g, t->name, shown, sizeof shown), (long long)i,
                     t->topic[i], t->k);
  }
  if (g >= 0) H5Gclose(g);
  free_names(&l);
  return rc;
}

static int open_strings(hb_shard *s, const char *name, char ***out) {
  if (!h5io_exists(s->file, name)) return 0;
  int64_t n;
  if (h5io_read_strings(s->file, name, &n, out)) return -1;
  if (n == s->U) return 0;
  h5io_free_strings(*out, n);
  *out = NULL;
  return h5io_fail(s->file, name, "has %lld entries, num_utts is %lld", (long long)n, (long long)s->U);
}

static int open_all(hb_shard *s) {
  char *fmt = NULL;
  int64_t version = 0, sr = 0;
  if (h5io_read_str_attr(s->file, "format", &fmt)) return -1;
  int bad = strcmp(fmt, HB_SHARD_FORMAT) != 0;
  if (bad) h5io_fail(s->file, NULL, "attribute format is '%s', expected '%s' (not a hubert shard)", fmt, HB_SHARD_FORMAT);
  free(fmt);
  if (bad) return -1;
  HB_TRY(h5io_read_i64_attr(s->file, "version", &version));
  if (version != HB_SHARD_VERSION)
    return h5io_fail(s->file, NULL, "shard version %lld, this build reads version %d", (long long)version, HB_SHARD_VERSION);
  HB_TRY(h5io_read_i64_attr(s->file, "sample_rate", &sr));
  if (sr < 1000 || sr > 384000) return h5io_fail(s->file, NULL, "attribute sample_rate = %lld is not a sample rate", (long long)sr);
  s->sample_rate = (int)sr;
  HB_TRY(h5io_read_i64_attr(s->file, "num_utts", &s->U));
  if (s->U < 0 || s->U > ((int64_t)1 << 40)) return h5io_fail(s->file, NULL, "attribute num_utts = %lld out of range", (long long)s->U);
  int64_t n;
  HB_TRY(h5io_read_strings(s->file, "utt_id", &n, &s->utt_id));
  if (n != s->U) {
    h5io_free_strings(s->utt_id, n);
    s->utt_id = NULL;
    return h5io_fail(s->file, "utt_id", "has %lld entries, attribute num_utts is %lld", (long long)n, (long long)s->U);
  }
  H5T_class_t c;
  HB_TRY(h5io_dims(s->file, "audio", 1, &n, &c));
  if (c != H5T_INTEGER) return h5io_fail(s->file, "audio", "not an integer (int16) dataset");
  HB_TRY(read_offsets(s->file, "audio_offsets", s->U, n, &s->audio_off));
  if (h5io_exists(s->file, "feats")) {
    int64_t d[2];
    HB_TRY(h5io_dims(s->file, "feats", 2, d, NULL));
    if (d[1] < 1) return h5io_fail(s->file, "feats", "expected a 2-d (frames, dim) dataset");
    s->feat_dim = (int)d[1];
    int64_t *fo = NULL;
    HB_TRY(read_offsets(s->file, "feat_offsets", s->U, d[0], &fo));
    free(fo);
  }
  HB_TRY(open_labels(s));
  HB_TRY(open_topics(s));
  HB_TRY(open_strings(s, "speaker", &s->speaker));
  HB_TRY(open_strings(s, "text", &s->text));
  HB_TRY(open_strings(s, "phones", &s->phones));
  return 0;
}

int shard_open(const char *path, hb_shard **out) {
  *out = NULL;
  hb_shard *s = hb_calloc(1, sizeof *s);
  if (!s) return -1;
  s->file = -1;
  if (!(s->path = strdup(path))) {
    shard_close(s);
    return hb_fail("%s: out of memory", path);
  }
  if (h5io_open(path, &s->file) || open_all(s)) {
    shard_close(s);
    return -1;
  }
  *out = s;
  return 0;
}

const char *shard_path(const hb_shard *s) { return s->path; }
int64_t shard_num_utts(const hb_shard *s) { return s->U; }
int shard_sample_rate(const hb_shard *s) { return s->sample_rate; }
const char *shard_utt_id(const hb_shard *s, int64_t i) { return s->utt_id[i]; }
const int64_t *shard_audio_offsets(const hb_shard *s) { return s->audio_off; }

int shard_read_audio(const hb_shard *s, int64_t i, int16_t *out) {
  if (i < 0 || i >= s->U) return hb_fail("%s: utterance index %lld out of range [0, %lld)", s->path, (long long)i, (long long)s->U);
  int64_t a = s->audio_off[i], n = s->audio_off[i + 1] - a;
  if (h5io_read_rows(s->file, "audio", H5T_NATIVE_INT16, a, n, out)) return hb_fail_prefix("utterance '%s'", s->utt_id[i]);
  return 0;
}

int shard_read_audio_f32(const hb_shard *s, int64_t i, float *out) {
  if (i < 0 || i >= s->U) return hb_fail("%s: utterance index %lld out of range [0, %lld)", s->path, (long long)i, (long long)s->U);
  int64_t n = s->audio_off[i + 1] - s->audio_off[i];
  int16_t *tmp = hb_malloc((size_t)n * sizeof *tmp + 2);
  if (!tmp) return -1;
  int rc = shard_read_audio(s, i, tmp);
  for (int64_t t = 0; t < n && !rc; t++) out[t] = (float)tmp[t] / 32768.0f;
  free(tmp);
  return rc;
}

int shard_num_label_sets(const hb_shard *s) { return s->n_labels; }
const char *shard_label_name(const hb_shard *s, int j) { return s->labels[j].name; }
int shard_label_k(const hb_shard *s, int j) { return s->labels[j].k; }
double shard_label_rate(const hb_shard *s, int j) { return s->labels[j].rate; }
const int64_t *shard_label_offsets(const hb_shard *s, int j) { return s->labels[j].offsets; }

int shard_find_labels(const hb_shard *s, const char *name) {
  for (int j = 0; j < s->n_labels; j++)
    if (!strcmp(s->labels[j].name, name)) return j;
  char have[512] = "";
  for (int j = 0; j < s->n_labels; j++) {
    size_t l = strlen(have);
    snprintf(have + l, sizeof have - l, "%s%s", j ? ", " : "", s->labels[j].name);
  }
  return hb_fail("%s: no label set '%s' (has: %s)", s->path, name, s->n_labels ? have : "none");
}

int shard_read_labels(const hb_shard *s, int j, int64_t i, int32_t *out) {
  if (j < 0 || j >= s->n_labels || i < 0 || i >= s->U) return hb_fail("%s: label set %d / utterance %lld out of range", s->path, j, (long long)i);
  char name[512];
  snprintf(name, sizeof name, "labels/%s/units", s->labels[j].name);
  int64_t a = s->labels[j].offsets[i], n = s->labels[j].offsets[i + 1] - a;
  if (h5io_read_rows(s->file, name, H5T_NATIVE_INT32, a, n, out)) return hb_fail_prefix("utterance '%s'", s->utt_id[i]);
  return 0;
}

int shard_num_topic_sets(const hb_shard *s) { return s->n_topics; }
const char *shard_topic_name(const hb_shard *s, int j) { return s->topics[j].name; }
int shard_topic_k(const hb_shard *s, int j) { return s->topics[j].k; }
const int32_t *shard_topics(const hb_shard *s, int j) { return s->topics[j].topic; }
const char *shard_speaker(const hb_shard *s, int64_t i) { return s->speaker ? s->speaker[i] : NULL; }
const char *shard_text(const hb_shard *s, int64_t i) { return s->text ? s->text[i] : NULL; }
const char *shard_phones(const hb_shard *s, int64_t i) { return s->phones ? s->phones[i] : NULL; }
int shard_feat_dim(const hb_shard *s) { return s->feat_dim; }
