// Shard writer: manifest + label/topic/meta/feature inputs -> PREFIX-NNNNN.h5 shards.
// Each shard is buffered in memory (bounded by --shard-mb), written to NAME.tmp, renamed.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "data_prep/audio.h"
#include "data_prep/featfile.h"
#include "data_prep/h5io.h"
#include "data_prep/inputs.h"
#include "data_prep/labelfile.h"
#include "data_prep/shard.h"
#include "data_prep/tsv.h"
#include "data_prep/uttindex.h"

int shard_label_len_ok(int64_t samples, int sample_rate, int64_t frames, double rate) {
  double a = (double)samples / sample_rate, l = (double)frames / rate;
  return fabs(a - l) <= HB_SHARD_LABEL_TOL + 1e-9;
}

// ---- growable buffers --------------------------------------------------------------------------
typedef struct {
  void *p;
  size_t n, cap, elem;
} vec;

static int vec_push(vec *v, const void *x, size_t count) {
  size_t need;
  if (hb_add_size(v->n, count, &need)) return -1;
  if (need > v->cap) {
    size_t cap = v->cap ? v->cap : 1024, bytes;
    while (cap < need) cap *= 2;
    if (hb_mul_size(cap, v->elem, &bytes)) return -1;
    void *q = hb_realloc(v->p, bytes);
    if (!q) return -1;
    v->p = q;
    v->cap = cap;
  }
  memcpy((char *)v->p + v->n * v->elem, x, count * v->elem);
  v->n = need;
  return 0;
}

// ---- meta.tsv ----------------------------------------------------------------------------------
typedef struct {
  hb_tsv tsv;
  int64_t n;
  char **utt, **speaker, **text, **phones;  // pointers into tsv (speaker/text/phones may be NULL)
  hb_index idx;
} meta_tsv;

static void meta_free(meta_tsv *m) {
  tsv_free(&m->tsv);
  free(m->utt);
  free(m->speaker);
  free(m->text);
  free(m->phones);
  index_free(&m->idx);
  memset(m, 0, sizeof *m);
}

static int meta_read(const char *path, meta_tsv *m) {
  memset(m, 0, sizeof *m);
  if (tsv_read(path, &m->tsv)) return -1;
  const hb_tsv *t = &m->tsv;
  const int c_utt = tsv_column(t, "utt_id"), c_spk = tsv_column(t, "speaker"), c_txt = tsv_column(t, "text"),
            c_ph = tsv_column(t, "phones");
  if (c_utt < 0) {
    hb_fail("%s: line 1: header has no 'utt_id' column", path);
    goto fail;
  }
  m->n = t->nrows;
  const size_t n = (size_t)(m->n ? m->n : 1);
  m->utt = hb_calloc(n, sizeof(char *));
  m->speaker = c_spk >= 0 ? hb_calloc(n, sizeof(char *)) : NULL;
  m->text = c_txt >= 0 ? hb_calloc(n, sizeof(char *)) : NULL;
  m->phones = c_ph >= 0 ? hb_calloc(n, sizeof(char *)) : NULL;
  if (!m->utt || (c_spk >= 0 && !m->speaker) || (c_txt >= 0 && !m->text) || (c_ph >= 0 && !m->phones)) goto fail;
  for (int64_t r = 0; r < m->n; r++) {
    m->utt[r] = (char *)tsv_cell(t, r, c_utt);
    if (m->speaker) m->speaker[r] = (char *)tsv_cell(t, r, c_spk);
    if (m->text) m->text[r] = (char *)tsv_cell(t, r, c_txt);
    if (m->phones) m->phones[r] = (char *)tsv_cell(t, r, c_ph);
  }
  if (index_build(&m->idx, m->utt, m->n)) { hb_fail_prefix("%s", path); goto fail; }
  return 0;
fail:
  meta_free(m);
  return -1;
}

// ---- one shard in memory -----------------------------------------------------------------------
typedef struct {
  vec audio, audio_off, feats, feat_off;
  vec *units, *unit_off;   // per label set
  vec *topics;             // per topic set
  vec utt, speaker, text, phones;   // char* (not owned)
  size_t bytes;
} shard_buf;

static void buf_reset(shard_buf *b, int nl, int nt, int has_feats) {
  int64_t zero = 0;
  b->audio.n = b->audio_off.n = b->feats.n = b->feat_off.n = 0;
  b->utt.n = b->speaker.n = b->text.n = b->phones.n = 0;
  for (int j = 0; j < nl; j++) b->units[j].n = b->unit_off[j].n = 0;
  for (int j = 0; j < nt; j++) b->topics[j].n = 0;
  b->bytes = 0;
  vec_push(&b->audio_off, &zero, 1);   // capacity 1024 from the first reset, cannot fail after
  if (has_feats) vec_push(&b->feat_off, &zero, 1);
  for (int j = 0; j < nl; j++) vec_push(&b->unit_off[j], &zero, 1);
}

static int write_shard(const hb_shard_opts *o, const hb_units *L, const hb_topics *T, const meta_tsv *meta,
                       hb_featfile *ff, const shard_buf *b, int index) {
  char path[4096], tmp[4200];
  snprintf(path, sizeof path, "%s/%s-%05d.h5", o->out_dir, o->prefix, index);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  hid_t f;
  if (h5io_create(tmp, &f)) return -1;
  int64_t U = (int64_t)b->utt.n;
  int rc = -1;
  if (h5io_write_str_attr(f, "format", HB_SHARD_FORMAT) || h5io_write_i64_attr(f, "version", HB_SHARD_VERSION) ||
      h5io_write_i64_attr(f, "sample_rate", HB_SAMPLE_RATE) || h5io_write_i64_attr(f, "num_utts", U))
    goto done;
  if (h5io_write_strings(f, "utt_id", b->utt.p, U)) goto done;
  if (h5io_write_1d(f, "audio", H5T_STD_I16LE, H5T_NATIVE_INT16, b->audio.p, (int64_t)b->audio.n, 1 << 16)) goto done;
  if (h5io_write_1d(f, "audio_offsets", H5T_STD_I64LE, H5T_NATIVE_INT64, b->audio_off.p, U + 1, 4096)) goto done;
  if (ff) {
    int d = 0;
    int64_t fr;
    if (featfile_dataset(ff, "feats", &d, &fr)) goto done;
    int64_t fd[2] = {(int64_t)(b->feats.n / (size_t)d), d};
    if (h5io_write(f, "feats", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, fd, b->feats.p, 4096 / d + 1)) goto done;
    if (h5io_write_1d(f, "feat_offsets", H5T_STD_I64LE, H5T_NATIVE_INT64, b->feat_off.p, U + 1, 4096)) goto done;
    hid_t ds = H5Dopen2(f, "feats", H5P_DEFAULT);
    int arc = ds < 0 ? h5io_fail(f, "feats", "cannot open the dataset") : h5io_write_f64_attr(ds, "rate", featfile_rate(ff));
    if (!arc) arc = h5io_write_str_attr(ds, "kind", featfile_kind(ff) ? featfile_kind(ff) : "");
    if (ds >= 0) H5Dclose(ds);
    if (arc) goto done;
  }
  if (o->n_labels) {
    hid_t g = H5Gcreate2(f, "labels", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) { h5io_fail(f, "labels", "cannot create the group"); goto done; }
    int lrc = 0;
    for (int j = 0; j < o->n_labels && !lrc; j++) {
      hid_t gj = H5Gcreate2(g, o->labels[j].name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      lrc = gj < 0 ? h5io_fail(g, o->labels[j].name, "cannot create the group") : 0;
      if (!lrc) lrc = h5io_write_f64_attr(gj, "rate", L[j].rate) || h5io_write_i64_attr(gj, "k", L[j].k);
      if (!lrc) lrc = h5io_write_1d(gj, "units", H5T_STD_I32LE, H5T_NATIVE_INT32, b->units[j].p, (int64_t)b->units[j].n, 1 << 14);
      if (!lrc) lrc = h5io_write_1d(gj, "offsets", H5T_STD_I64LE, H5T_NATIVE_INT64, b->unit_off[j].p, U + 1, 4096);
      if (gj >= 0) H5Gclose(gj);
    }
    H5Gclose(g);
    if (lrc) goto done;
  }
  if (o->n_topics) {
    hid_t g = H5Gcreate2(f, "topics", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) { h5io_fail(f, "topics", "cannot create the group"); goto done; }
    int trc = 0;
    for (int j = 0; j < o->n_topics && !trc; j++) {
      trc = h5io_write_1d(g, o->topics[j].name, H5T_STD_I32LE, H5T_NATIVE_INT32, b->topics[j].p, U, 4096);
      hid_t ds = trc ? -1 : H5Dopen2(g, o->topics[j].name, H5P_DEFAULT);
      if (!trc) trc = ds < 0 ? h5io_fail(g, o->topics[j].name, "cannot open the dataset") : h5io_write_i64_attr(ds, "k", T[j].k);
      if (ds >= 0) H5Dclose(ds);
    }
    H5Gclose(g);
    if (trc) goto done;
  }
  if (meta && meta->speaker && h5io_write_strings(f, "speaker", b->speaker.p, U)) goto done;
  if (meta && meta->text && h5io_write_strings(f, "text", b->text.p, U)) goto done;
  if (meta && meta->phones && h5io_write_strings(f, "phones", b->phones.p, U)) goto done;
  rc = 0;
done:
  if (rc) H5Fclose(f);
  else rc = h5io_close(f);
  if (rc) {
    remove(tmp);
    return -1;
  }
  return file_commit_rename(tmp, path);
}

// ---- driver ------------------------------------------------------------------------------------
static int valid_name(const char *n) {
  return n && n[0] && !strchr(n, '/') && strcmp(n, ".") && strcmp(n, "..");
}

int shard_write(const hb_shard_opts *o, hb_shard_stats *stats) {
  memset(stats, 0, sizeof *stats);
  if (!(o->shard_mb > 0)) return hb_fail("--shard-mb must be > 0 (got %g)", o->shard_mb);
  for (int j = 0; j < o->n_labels; j++)
    if (!valid_name(o->labels[j].name)) return hb_fail("--labels: invalid label set name '%s'", o->labels[j].name);
  for (int j = 0; j < o->n_topics; j++)
    if (!valid_name(o->topics[j].name)) return hb_fail("--topics: invalid topic set name '%s'", o->topics[j].name);
  for (int a = 0; a < o->n_labels; a++)
    for (int c = 0; c < a; c++)
      if (!strcmp(o->labels[a].name, o->labels[c].name)) return hb_fail("--labels: name '%s' given twice", o->labels[a].name);
  for (int a = 0; a < o->n_topics; a++)
    for (int c = 0; c < a; c++)
      if (!strcmp(o->topics[a].name, o->topics[c].name)) return hb_fail("--topics: name '%s' given twice", o->topics[a].name);

  hb_input_list in = {0};
  hb_units *L = hb_calloc((size_t)o->n_labels + 1, sizeof *L);
  hb_topics *T = hb_calloc((size_t)o->n_topics + 1, sizeof *T);
  int64_t **lpos = hb_calloc((size_t)o->n_labels + 1, sizeof *lpos);
  int64_t *fpos = NULL, *mpos = NULL, **tpos = hb_calloc((size_t)o->n_topics + 1, sizeof *tpos);
  meta_tsv meta = {0}, *mp = NULL;
  hb_featfile *ff = NULL;
  hb_index fidx = {0}, *lidx = hb_calloc((size_t)o->n_labels + 1, sizeof *lidx),
           *tidx = hb_calloc((size_t)o->n_topics + 1, sizeof *tidx);
  shard_buf b = {0};
  float *fbuf = NULL;
  int rc = -1, shard_i = 0;
  if (!L || !T || !lpos || !tpos || !lidx || !tidx) goto done;
  char *margs[1] = {(char *)o->manifest};
  if (inputs_collect(1, margs, &in)) goto done;
  if (file_mkdirs(o->out_dir)) goto done;

  // Load every input and resolve each manifest utterance in it (errors name input + utt).
  for (int j = 0; j < o->n_labels; j++) {
    if (labelfile_read_units(o->labels[j].path, &L[j])) goto done;
    if (index_build(&lidx[j], L[j].utt_id, L[j].n_utts)) { hb_fail_prefix("%s", o->labels[j].path); goto done; }
    if (!(lpos[j] = hb_malloc((size_t)in.n * sizeof(int64_t)))) goto done;
    for (int i = 0; i < in.n; i++) {
      int64_t r = index_find(&lidx[j], in.utt_id[i]);
      if (r < 0) { hb_fail("%s (labels '%s'): no labels for utterance '%s' of %s", o->labels[j].path, o->labels[j].name, in.utt_id[i], o->manifest); goto done; }
      int64_t fr = L[j].offsets[r + 1] - L[j].offsets[r];
      if (in.num_samples[i] >= 0 && !shard_label_len_ok(in.num_samples[i], HB_SAMPLE_RATE, fr, L[j].rate)) {
        hb_fail("%s (labels '%s'): utterance '%s': %lld labels at %g Hz = %.3f s, but the audio has %lld samples = %.3f s "
                "(tolerance %.1f s)", o->labels[j].path, o->labels[j].name, in.utt_id[i], (long long)fr, L[j].rate,
                fr / L[j].rate, (long long)in.num_samples[i], (double)in.num_samples[i] / HB_SAMPLE_RATE, HB_SHARD_LABEL_TOL);
        goto done;
      }
      lpos[j][i] = r;
    }
  }
  for (int j = 0; j < o->n_topics; j++) {
    if (labelfile_read_topics(o->topics[j].path, &T[j])) goto done;
    if (index_build(&tidx[j], T[j].utt_id, T[j].n_utts)) { hb_fail_prefix("%s", o->topics[j].path); goto done; }
    if (!(tpos[j] = hb_malloc((size_t)in.n * sizeof(int64_t)))) goto done;
    for (int i = 0; i < in.n; i++) {
      if ((tpos[j][i] = index_find(&tidx[j], in.utt_id[i])) < 0) {
        hb_fail("%s (topics '%s'): no topic for utterance '%s' of %s", o->topics[j].path, o->topics[j].name, in.utt_id[i], o->manifest);
        goto done;
      }
    }
  }
  if (o->meta) {
    if (meta_read(o->meta, &meta)) goto done;
    mp = &meta;
    if (!(mpos = hb_malloc((size_t)in.n * sizeof(int64_t)))) goto done;
    for (int i = 0; i < in.n; i++)
      if ((mpos[i] = index_find(&meta.idx, in.utt_id[i])) < 0) {
        hb_fail("%s: no row for utterance '%s' of %s", o->meta, in.utt_id[i], o->manifest);
        goto done;
      }
  }
  int fdim = 0;
  if (o->feats) {
    int64_t frames;
    if (featfile_open(o->feats, &ff) || featfile_dataset(ff, "feats", &fdim, &frames)) goto done;
    int64_t nu = featfile_num_utts(ff);
    char **ids = hb_malloc((size_t)(nu + 1) * sizeof(char *));
    if (!ids) goto done;
    for (int64_t i = 0; i < nu; i++) ids[i] = (char *)featfile_utt_id(ff, i);
    int irc = index_build(&fidx, ids, nu);
    free(ids);
    if (irc) { hb_fail_prefix("%s", o->feats); goto done; }
    if (!(fpos = hb_malloc((size_t)in.n * sizeof(int64_t)))) goto done;
    for (int i = 0; i < in.n; i++)
      if ((fpos[i] = index_find(&fidx, in.utt_id[i])) < 0) {
        hb_fail("%s: no features for utterance '%s' of %s", o->feats, in.utt_id[i], o->manifest);
        goto done;
      }
  }

  b.audio.elem = 2; b.audio_off.elem = b.feat_off.elem = 8; b.feats.elem = 4;
  b.utt.elem = b.speaker.elem = b.text.elem = b.phones.elem = sizeof(char *);
  b.units = hb_calloc((size_t)o->n_labels + 1, sizeof(vec));
  b.unit_off = hb_calloc((size_t)o->n_labels + 1, sizeof(vec));
  b.topics = hb_calloc((size_t)o->n_topics + 1, sizeof(vec));
  if (!b.units || !b.unit_off || !b.topics) goto done;
  for (int j = 0; j < o->n_labels; j++) { b.units[j].elem = 4; b.unit_off[j].elem = 8; }
  for (int j = 0; j < o->n_topics; j++) b.topics[j].elem = 4;
  buf_reset(&b, o->n_labels, o->n_topics, ff != NULL);
  double limit = o->shard_mb * 1e6;
  hb_audio_opts aopt;
  audio_default_opts(&aopt);
  for (int i = 0; i < in.n; i++) {
    hb_audio a;
    if (audio_read(in.path[i], &aopt, &a)) goto done;
    if (in.num_samples[i] >= 0 && (int64_t)a.n != in.num_samples[i]) {
      hb_fail("%s: utterance '%s': the manifest says %lld samples, %s has %zu", o->manifest, in.utt_id[i],
              (long long)in.num_samples[i], in.path[i], a.n);
      audio_free(&a);
      goto done;
    }
    int prc = 0;
    for (size_t t = 0; t < a.n && !prc; t++) {
      float v = roundf(a.samples[t] * 32768.0f);
      int16_t s = (int16_t)(v > 32767.f ? 32767.f : v < -32768.f ? -32768.f : v);
      prc = vec_push(&b.audio, &s, 1);
    }
    size_t na = a.n;
    audio_free(&a);
    int64_t end = (int64_t)b.audio.n;
    if (prc || vec_push(&b.audio_off, &end, 1) || vec_push(&b.utt, &in.utt_id[i], 1)) goto done;
    b.bytes += na * 2;
    for (int j = 0; j < o->n_labels; j++) {
      int64_t r = lpos[j][i], s0 = L[j].offsets[r], fr = L[j].offsets[r + 1] - s0;
      if (!shard_label_len_ok((int64_t)na, HB_SAMPLE_RATE, fr, L[j].rate)) {
        hb_fail("%s (labels '%s'): utterance '%s': %lld labels at %g Hz = %.3f s, but %s has %zu samples = %.3f s (tolerance %.1f s)",
                o->labels[j].path, o->labels[j].name, in.utt_id[i], (long long)fr, L[j].rate, fr / L[j].rate,
                in.path[i], na, (double)na / HB_SAMPLE_RATE, HB_SHARD_LABEL_TOL);
        goto done;
      }
      if (vec_push(&b.units[j], L[j].units + s0, (size_t)fr)) goto done;
      end = (int64_t)b.units[j].n;
      if (vec_push(&b.unit_off[j], &end, 1)) goto done;
      b.bytes += (size_t)fr * 4;
    }
    for (int j = 0; j < o->n_topics; j++)
      if (vec_push(&b.topics[j], &T[j].topics[tpos[j][i]], 1)) goto done;
    if (mp) {
      int64_t r = mpos[i];
      static char empty[] = "";
      char *sp = meta.speaker ? meta.speaker[r] : empty, *tx = meta.text ? meta.text[r] : empty,
           *ph = meta.phones ? meta.phones[r] : empty;
      if (vec_push(&b.speaker, &sp, 1) || vec_push(&b.text, &tx, 1) || vec_push(&b.phones, &ph, 1)) goto done;
    }
    if (ff) {
      const int64_t *fo = featfile_offsets(ff);
      int64_t r = fpos[i], nr = fo[r + 1] - fo[r];
      size_t cnt;
      if (hb_mul_size((size_t)nr, (size_t)fdim, &cnt)) goto done;
      free(fbuf);
      if (!(fbuf = hb_malloc(cnt * 4 + 4))) goto done;
      if (featfile_read_rows(ff, "feats", fo[r], nr, fbuf) || vec_push(&b.feats, fbuf, cnt)) goto done;
      end = (int64_t)(b.feats.n / (size_t)fdim);
      if (vec_push(&b.feat_off, &end, 1)) goto done;
      b.bytes += cnt * 4;
    }
    stats->n_samples += (int64_t)na;
    stats->n_utts++;
    if ((double)b.bytes >= limit || i == in.n - 1) {
      if (write_shard(o, L, T, mp, ff, &b, shard_i++)) goto done;
      buf_reset(&b, o->n_labels, o->n_topics, ff != NULL);
    }
  }
  stats->n_shards = shard_i;
  rc = 0;
done:
  for (int j = 0; L && j < o->n_labels; j++) labelfile_free_units(&L[j]);
  for (int j = 0; T && j < o->n_topics; j++) labelfile_free_topics(&T[j]);
  for (int j = 0; lidx && j < o->n_labels; j++) index_free(&lidx[j]);
  for (int j = 0; tidx && j < o->n_topics; j++) index_free(&tidx[j]);
  free(lidx);
  free(tidx);
  for (int j = 0; lpos && j < o->n_labels; j++) free(lpos[j]);
  for (int j = 0; tpos && j < o->n_topics; j++) free(tpos[j]);
  if (b.units) for (int j = 0; j < o->n_labels; j++) { free(b.units[j].p); free(b.unit_off[j].p); }
  if (b.topics) for (int j = 0; j < o->n_topics; j++) free(b.topics[j].p);
  free(b.units); free(b.unit_off); free(b.topics);
  free(b.audio.p); free(b.audio_off.p); free(b.feats.p); free(b.feat_off.p);
  free(b.utt.p); free(b.speaker.p); free(b.text.p); free(b.phones.p);
  free(L); free(T); free(lpos); free(tpos); free(fpos); free(mpos); free(fbuf);
  meta_free(&meta);
  index_free(&fidx);
  if (ff) featfile_free(ff);
  inputs_free(&in);
  return rc;
}
