// Loader index (compact arrays over every shard), epoch plans and batch building (loader.h).
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/rng.h"
#include "data_prep/h5io.h"
#include "data_prep/shard.h"
#include "train/loader_internal.h"

// Independent Philox streams per purpose: seed -> (purpose, epoch[, batch]).
enum { STREAM_ORDER = 1, STREAM_BATCHES = 2, STREAM_CROP = 3 };

static uint64_t stream_seed(uint64_t seed, uint64_t purpose, uint64_t epoch) {
  return rng_derive_seed(rng_derive_seed(seed, purpose), epoch);
}

// ---- index -------------------------------------------------------------------------------------
typedef struct {
  char **p;
  int n, cap;
} str_list;

static int list_push(str_list *l, const char *s) {
  if (l->n == l->cap) {
    int cap = l->cap ? 2 * l->cap : 16;
    char **q = hb_realloc(l->p, (size_t)cap * sizeof *q);
    if (!q) return -1;
    l->p = q;
    l->cap = cap;
  }
  if (!(l->p[l->n] = strdup(s))) return hb_fail("out of memory");
  l->n++;
  return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int list_dir_h5(const char *dir, str_list *l) {
  DIR *d = opendir(dir);
  if (!d) return hb_fail("%s: cannot open directory", dir);
  int first = l->n, rc = 0;
  struct dirent *e;
  char buf[4096];
  while (!rc && (e = readdir(d))) {
    size_t n = strlen(e->d_name);
    if (n < 4 || strcmp(e->d_name + n - 3, ".h5")) continue;
    snprintf(buf, sizeof buf, "%s/%s", dir, e->d_name);
    rc = list_push(l, buf);
  }
  closedir(d);
  if (rc) return -1;
  if (l->n == first) return hb_fail("%s: no shard files (*.h5) in this directory", dir);
  qsort(l->p + first, (size_t)(l->n - first), sizeof *l->p, cmp_str);
  return 0;
}

// Copies what the loader needs from one validated shard and appends its kept utterances.
static int index_add_shard(hb_loader *L, const hb_shard *s, int id, size_t *cap) {
  const hb_loader_opts *o = &L->o;
  loader_shard *d = &L->shards[id];
  d->U = shard_num_utts(s);
  if (d->U > INT32_MAX) return hb_fail("%s: %lld utterances, at most %d per shard", shard_path(s), (long long)d->U, INT32_MAX);
  if (id == 0) L->sample_rate = shard_sample_rate(s);
  else if (shard_sample_rate(s) != L->sample_rate)
    return hb_fail("%s: sample_rate %d, but %s has %d", shard_path(s), shard_sample_rate(s), L->shards[0].path, L->sample_rate);
  size_t bytes = (size_t)(d->U + 1) * sizeof(int64_t);
  if (!(d->audio_off = hb_malloc(bytes))) return -1;
  memcpy(d->audio_off, shard_audio_offsets(s), bytes);
  for (int j = 0; j < o->n_labels; j++) {
    int k = shard_find_labels(s, o->labels[j]);
    if (k < 0) return -1;
    double rate = shard_label_rate(s, k);
    if (id == 0) {
      L->lab_rate[j] = rate;
      L->lab_k[j] = shard_label_k(s, k);
    } else if (rate != L->lab_rate[j] || shard_label_k(s, k) != L->lab_k[j]) {
      return hb_fail("%s: label set '%s' has rate %g Hz, k %d, but %s has %g Hz, k %d", shard_path(s), o->labels[j], rate,
                     shard_label_k(s, k), L->shards[0].path, L->lab_rate[j], L->lab_k[j]);
    }
    if (!(d->lab_off[j] = hb_malloc(bytes))) return -1;
    memcpy(d->lab_off[j], shard_label_offsets(s, k), bytes);
  }
  for (int j = 0; j < o->n_topics; j++) {
    int k = -1;
    for (int t = 0; t < shard_num_topic_sets(s); t++)
      if (!strcmp(shard_topic_name(s, t), o->topics[j])) k = t;
    if (k < 0) {
      char have[512] = "";
      for (int t = 0; t < shard_num_topic_sets(s); t++) {
        size_t l = strlen(have);
        snprintf(have + l, sizeof have - l, "%s%s", t ? ", " : "", shard_topic_name(s, t));
      }
      return hb_fail("%s: no topic set '%s' (has: %s)", shard_path(s), o->topics[j], have[0] ? have : "none");
    }
    if (id == 0) L->topic_k[j] = shard_topic_k(s, k);
    else if (shard_topic_k(s, k) != L->topic_k[j])
      return hb_fail("%s: topic set '%s' has k %d, but %s has k %d", shard_path(s), o->topics[j], shard_topic_k(s, k),
                     L->shards[0].path, L->topic_k[j]);
    if (!(d->topic[j] = hb_malloc((size_t)d->U * sizeof(int32_t) + 4))) return -1;
    memcpy(d->topic[j], shard_topics(s, k), (size_t)d->U * sizeof(int32_t));
  }
  for (int64_t i = 0; i < d->U; i++) {
    int64_t len = d->audio_off[i + 1] - d->audio_off[i];
    if (len < o->min_sample_size || (o->max_keep_size > 0 && len > o->max_keep_size) || len == 0) {
      L->skipped++;
      continue;
    }
    if (len > INT32_MAX) return hb_fail("%s: utterance %lld '%s' has %lld samples (at most %d)", shard_path(s), (long long)i, shard_utt_id(s, i), (long long)len, INT32_MAX);
    int64_t size = !o->pad_audio && o->max_sample_size > 0 && len > o->max_sample_size ? o->max_sample_size : len;
    if (size > o->max_tokens)
      return hb_fail("%s: utterance %lld '%s' has %lld samples, more than dataset.max_tokens = %lld (raise max_tokens, "
                     "set max_keep_size, or crop with max_sample_size)",
                     shard_path(s), (long long)i, shard_utt_id(s, i), (long long)size, (long long)o->max_tokens);
    if ((size_t)L->N == *cap) {
      size_t c = *cap ? 2 * *cap : 1024;
      int32_t *a = hb_realloc(L->u_shard, c * sizeof *a);
      if (!a) return -1;
      L->u_shard = a;
      if (!(a = hb_realloc(L->u_index, c * sizeof *a))) return -1;
      L->u_index = a;
      if (!(a = hb_realloc(L->u_len, c * sizeof *a))) return -1;
      L->u_len = a;
      *cap = c;
    }
    L->u_shard[L->N] = id;
    L->u_index[L->N] = (int32_t)i;
    L->u_len[L->N] = (int32_t)len;
    L->N++;
    L->total_samples += len;
  }
  return 0;
}

int loader_index_build(hb_loader *L) {
  const hb_loader_opts *o = &L->o;
  str_list files = {0};
  int rc = 0;
  for (int i = 0; i < o->n_paths && !rc; i++) {
    if (!o->paths[i]) rc = hb_fail("shard path %d is NULL", i);
    else if (file_is_dir(o->paths[i])) rc = list_dir_h5(o->paths[i], &files);
    else rc = list_push(&files, o->paths[i]);
  }
  if (!rc && files.n == 0) rc = hb_fail("no shards given");
  if (!rc && !(L->shards = hb_calloc((size_t)files.n, sizeof *L->shards))) rc = -1;
  size_t cap = 0;
  for (int i = 0; i < files.n && !rc; i++) {
    L->shards[i].path = files.p[i];
    files.p[i] = NULL;
    L->n_shards++;
    hb_shard *s = NULL;
    rc = shard_open(L->shards[i].path, &s);
    if (!rc) rc = index_add_shard(L, s, i, &cap);
    shard_close(s);
  }
  for (int i = 0; i < files.n; i++) free(files.p[i]);
  free(files.p);
  if (!rc && L->N == 0)
    rc = hb_fail("%s%s: no utterance is kept (%lld dropped by min_sample_size = %lld / max_keep_size = %lld)", L->shards[0].path,
                 L->n_shards > 1 ? " ..." : "", (long long)L->skipped, (long long)o->min_sample_size, (long long)o->max_keep_size);
  if (!rc && L->N > INT32_MAX) rc = hb_fail("%lld utterances: at most %d per loader", (long long)L->N, INT32_MAX);
  for (int j = 0; j < o->n_labels && !rc; j++) {
    size_t n = strlen(o->labels[j]) + 16;
    if (!(L->lab_dset[j] = hb_malloc(n))) rc = -1;
    else snprintf(L->lab_dset[j], n, "labels/%s/units", o->labels[j]);
  }
  return rc;
}

void loader_index_free(hb_loader *L) {
  for (int i = 0; i < L->n_shards; i++) {
    loader_shard *d = &L->shards[i];
    free(d->path);
    free(d->audio_off);
    for (int j = 0; j < HB_LOADER_MAX_SETS; j++) {
      free(d->lab_off[j]);
      free(d->topic[j]);
    }
  }
  free(L->shards);
  free(L->u_shard);
  free(L->u_index);
  free(L->u_len);
  for (int j = 0; j < HB_LOADER_MAX_SETS; j++) free(L->lab_dset[j]);
}

// ---- epoch plan --------------------------------------------------------------------------------
static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

void loader_plan_free(loader_plan *p) {
  free(p->utt);
  free(p->start);
  free(p->gbatch);
  free(p->is_pad);
  memset(p, 0, sizeof *p);
}

// Global batches as (first, count) pairs into the ordered utterance list.
typedef struct {
  int64_t first, count;
  int pad;
} gb;

int loader_plan_epoch(const hb_loader *L, int64_t epoch, loader_plan *p) {
  const hb_loader_opts *o = &L->o;
  int64_t N = L->N;
  loader_plan_free(p);
  int32_t *order = hb_malloc((size_t)N * sizeof *order);
  uint64_t *key = hb_malloc((size_t)N * sizeof *key);
  gb *b = hb_malloc((size_t)(N + o->world) * sizeof *b);
  int32_t *tmp = hb_malloc((size_t)N * sizeof *tmp);
  int rc = 0;
  if (!order || !key || !b || !tmp) { rc = -1; goto done; }
  for (int64_t i = 0; i < N; i++) order[i] = (int32_t)i;
  hb_rng r;
  if (o->shuffle) {   // Fisher-Yates on stream (seed, ORDER, epoch)
    rng_init(&r, stream_seed(o->seed, STREAM_ORDER, (uint64_t)epoch));
    for (int64_t i = N - 1; i > 0; i--) {
      int64_t j = (int64_t)rng_below(&r, (uint64_t)i + 1);
      int32_t t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
  }
  // Sort each window by size descending; key = (INT32_MAX - size) << 32 | position in the window.
  int64_t W = o->bucket_window > 0 ? o->bucket_window : N;
  if (W > ((int64_t)1 << 31)) W = (int64_t)1 << 31;
  int64_t nb = 0;
  for (int64_t w0 = 0; w0 < N; w0 += W) {
    int64_t wn = N - w0 < W ? N - w0 : W;
    for (int64_t i = 0; i < wn; i++) {
      int64_t u = order[w0 + i], len = L->u_len[u];
      int64_t size = !o->pad_audio && o->max_sample_size > 0 && len > o->max_sample_size ? o->max_sample_size : len;
      key[i] = ((uint64_t)(INT32_MAX - size) << 32) | (uint64_t)i;
    }
    qsort(key, (size_t)wn, sizeof *key, cmp_u64);
    for (int64_t i = 0; i < wn; i++) tmp[i] = order[w0 + (int64_t)(key[i] & 0xffffffffu)];
    memcpy(order + w0, tmp, (size_t)wn * sizeof *order);
    // greedy batch_by_size: sizes descend, so the first utterance of a batch is its longest
    int64_t cur_n = 0, cur_max = 0;
    for (int64_t i = 0; i < wn; i++) {
      int64_t size = (int64_t)(INT32_MAX - (int64_t)(key[i] >> 32));
      int64_t mx = size > cur_max ? size : cur_max;
      if (cur_n > 0 && (mx * (cur_n + 1) > o->max_tokens || (o->max_sentences > 0 && cur_n >= o->max_sentences))) {
        b[nb - 1].count = cur_n;
        cur_n = 0;
        mx = size;
      }
      if (cur_n == 0) b[nb++] = (gb){w0 + i, 0, 0};
      cur_n++;
      cur_max = mx;
    }
    if (cur_n) b[nb - 1].count = cur_n;
  }
  if (o->shuffle) {
    rng_init(&r, stream_seed(o->seed, STREAM_BATCHES, (uint64_t)epoch));
    for (int64_t i = nb - 1; i > 0; i--) {
      int64_t j = (int64_t)rng_below(&r, (uint64_t)i + 1);
      gb t = b[i];
      b[i] = b[j];
      b[j] = t;
    }
  }
  // Even out the ranks: split the largest batch (first of the largest) until nb % world == 0.
  while (nb % o->world) {
    int64_t best = -1;
    for (int64_t i = 0; i < nb; i++)
      if (b[i].count >= 2 && (best < 0 || b[i].count > b[best].count)) best = i;
    if (best < 0) break;
    memmove(b + best + 2, b + best + 1, (size_t)(nb - best - 1) * sizeof *b);
    int64_t h = (b[best].count + 1) / 2;
    b[best + 1] = (gb){b[best].first + h, b[best].count - h, 0};
    b[best].count = h;
    nb++;
  }
  for (int64_t i = 0; nb % o->world; i++) {   // all single utterances: repeat from the start
    b[nb] = b[i];
    b[nb++].pad = 1;
  }
  int64_t n = (nb - o->rank + o->world - 1) / o->world, total = 0;
  for (int64_t i = o->rank; i < nb; i += o->world) total += b[i].count;
  p->utt = hb_malloc((size_t)total * sizeof *p->utt + 4);
  p->start = hb_malloc((size_t)(n + 1) * sizeof *p->start);
  p->gbatch = hb_malloc((size_t)n * sizeof *p->gbatch + 8);
  p->is_pad = hb_malloc((size_t)n + 1);
  if (!p->utt || !p->start || !p->gbatch || !p->is_pad) { rc = -1; goto done; }
  int64_t k = 0, at = 0;
  for (int64_t i = o->rank; i < nb; i += o->world, k++) {
    p->start[k] = at;
    p->gbatch[k] = i;
    p->is_pad[k] = (uint8_t)b[i].pad;
    memcpy(p->utt + at, order + b[i].first, (size_t)b[i].count * sizeof *order);
    at += b[i].count;
  }
  p->start[n] = at;
  p->n = n;
  p->epoch = epoch;
  p->valid = 1;
done:
  free(order);
  free(key);
  free(b);
  free(tmp);
  if (rc) loader_plan_free(p);
  return rc;
}

// ---- reading -----------------------------------------------------------------------------------
static void cache_close(loader_open_file *c) {
  for (int j = 0; j < HB_LOADER_MAX_SETS; j++)
    if (c->units[j] >= 0) H5Dclose(c->units[j]);
  if (c->audio >= 0) H5Dclose(c->audio);
  if (c->file >= 0) H5Fclose(c->file);
  c->shard = -1;
  c->file = c->audio = -1;
  for (int j = 0; j < HB_LOADER_MAX_SETS; j++) c->units[j] = -1;
}

void loader_worker_close(loader_worker *w) {
  for (int i = 0; i < LOADER_CACHE; i++)
    if (w->cache[i].shard >= 0) cache_close(&w->cache[i]);
  free(w->pcm);
  free(w->lab);
  free(w->starts);
  w->pcm = NULL;
  w->lab = NULL;
  w->starts = NULL;
  w->pcm_cap = w->lab_cap = w->starts_cap = 0;
}

static loader_open_file *worker_open(hb_loader *L, loader_worker *w, int shard) {
  loader_open_file *c = NULL;
  for (int i = 0; i < LOADER_CACHE; i++)
    if (w->cache[i].shard == shard) c = &w->cache[i];
  if (!c) {
    c = &w->cache[0];
    for (int i = 1; i < LOADER_CACHE; i++)
      if (w->cache[i].used < c->used) c = &w->cache[i];
    if (c->shard >= 0) cache_close(c);
    const char *path = L->shards[shard].path;
    c->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (c->file < 0) {
      hb_fail("%s: cannot open as HDF5 (changed since the loader started?)", path);
      return NULL;
    }
    c->shard = shard;
    if ((c->audio = H5Dopen2(c->file, "audio", H5P_DEFAULT)) < 0) {
      hb_fail("%s: cannot open /audio", path);
      cache_close(c);
      return NULL;
    }
    for (int j = 0; j < L->o.n_labels; j++)
      if ((c->units[j] = H5Dopen2(c->file, L->lab_dset[j], H5P_DEFAULT)) < 0) {
        hb_fail("%s: cannot open /%s", path, L->lab_dset[j]);
        cache_close(c);
        return NULL;
      }
  }
  c->used = ++w->tick;
  return c;
}

// Names utterance i of a shard in an error (reads /utt_id only on this path).
static int fail_utt(hb_loader *L, loader_open_file *c, int64_t i, const char *what) {
  char **ids = NULL;
  const loader_shard *d = &L->shards[c->shard];
  char name[256] = "?";
  int64_t n = 0;
  if (h5io_read_strings(c->file, "utt_id", &n, &ids) == 0) {
    if (i < n) snprintf(name, sizeof name, "%s", ids[i]);
    h5io_free_strings(ids, n);
  }
  return hb_fail("%s: utterance %lld '%s': %s", d->path, (long long)i, name, what);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t c = need + need / 4 + 16, bytes;
  if (hb_mul_size(c, elem, &bytes)) return -1;
  void *q = hb_realloc(*p, bytes);
  if (!q) return -1;
  *p = q;
  *cap = c;
  return 0;
}

static int slot_reserve(hb_loader *L, loader_slot *s, int B, int T) {
  hb_batch *b = &s->b;
  size_t BT;
  if (hb_mul_size((size_t)B, (size_t)T, &BT)) return -1;
  size_t cap = s->cap_audio;
  if (grow((void **)&b->audio, &cap, BT, sizeof(float))) return -1;
  cap = s->cap_audio;
  if (grow((void **)&b->pad_mask, &cap, BT, 1)) return -1;
  s->cap_audio = cap;
  cap = s->cap_B;
  if (grow((void **)&b->lengths, &cap, (size_t)B, sizeof(int32_t))) return -1;
  cap = s->cap_B;
  if (grow((void **)&b->utt, &cap, (size_t)B, sizeof(int64_t))) return -1;
  for (int j = 0; j < L->o.n_labels; j++) {
    cap = s->cap_B;
    if (grow((void **)&b->label_lengths[j], &cap, (size_t)B, sizeof(int32_t))) return -1;
  }
  for (int j = 0; j < L->o.n_topics; j++) {
    cap = s->cap_B;
    if (grow((void **)&b->topics[j], &cap, (size_t)B, sizeof(int32_t))) return -1;
  }
  s->cap_B = cap;
  return 0;
}

// fairseq's normalize: F.layer_norm(wav, wav.shape) (biased variance, eps 1e-5).
static void layer_norm(float *x, int64_t n) {
  double m = 0, v = 0;
  for (int64_t i = 0; i < n; i++) m += x[i];
  m /= (double)n;
  for (int64_t i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m);
  double inv = 1.0 / sqrt(v / (double)n + 1e-5);
  for (int64_t i = 0; i < n; i++) x[i] = (float)((x[i] - m) * inv);
}

int loader_build_batch(hb_loader *L, loader_worker *w, const loader_plan *p, int64_t i, loader_slot *s) {
  const hb_loader_opts *o = &L->o;
  hb_batch *b = &s->b;
  const int32_t *utt = p->utt + p->start[i];
  int B = (int)(p->start[i + 1] - p->start[i]);
  int64_t T = 0;
  for (int r = 0; r < B; r++) {
    int64_t len = L->u_len[utt[r]];
    if (r == 0 || (o->pad_audio ? len > T : len < T)) T = len;
  }
  if (o->max_sample_size > 0 && T > o->max_sample_size) T = o->max_sample_size;
  HB_TRY(slot_reserve(L, s, B, (int)T));
  if (grow((void **)&w->starts, &w->starts_cap, (size_t)B, sizeof(int64_t))) return -1;
  b->epoch = p->epoch;
  b->index = i;
  b->n_batches = p->n;
  b->B = B;
  b->T = (int)T;
  b->is_pad = p->is_pad[i];
  b->n_samples = 0;
  b->n_labels = o->n_labels;
  b->n_topics = o->n_topics;
  // crop starts: one stream per global batch, a draw per cropped row in row order (fairseq)
  hb_rng r;
  rng_init(&r, rng_derive_seed(stream_seed(o->seed, STREAM_CROP, (uint64_t)p->epoch), (uint64_t)p->gbatch[i]));
  for (int row = 0; row < B; row++) {
    int64_t len = L->u_len[utt[row]], diff = len - T;
    w->starts[row] = diff > 0 && o->random_crop ? (int64_t)rng_below(&r, (uint64_t)diff + 1) : 0;
  }
  for (int row = 0; row < B; row++) {
    int32_t u = utt[row];
    const loader_shard *d = &L->shards[L->u_shard[u]];
    int64_t idx = L->u_index[u], len = L->u_len[u], st = w->starts[row];
    int64_t n = len < T ? len : T;
    loader_open_file *c = worker_open(L, w, L->u_shard[u]);
    if (!c) return -1;
    int64_t rd0 = o->normalize ? 0 : st, rdn = o->normalize ? len : n;
    if (grow((void **)&w->pcm, &w->pcm_cap, (size_t)rdn, sizeof(int16_t))) return -1;
    if (h5io_read_rows(c->audio, NULL, H5T_NATIVE_INT16, d->audio_off[idx] + rd0, rdn, w->pcm))
      return fail_utt(L, c, idx, "cannot read /audio");
    float *dst = b->audio + (size_t)row * (size_t)T;
    if (o->normalize) {   // normalise the whole waveform, then crop
      float *full = hb_malloc((size_t)len * sizeof *full);
      if (!full) return -1;
      for (int64_t t = 0; t < len; t++) full[t] = (float)w->pcm[t] / 32768.0f;
      layer_norm(full, len);
      memcpy(dst, full + st, (size_t)n * sizeof *dst);
      free(full);
    } else {
      for (int64_t t = 0; t < n; t++) dst[t] = (float)w->pcm[t] / 32768.0f;
    }
    for (int64_t t = n; t < T; t++) dst[t] = 0.0f;
    uint8_t *m = b->pad_mask + (size_t)row * (size_t)T;
    memset(m, 0, (size_t)n);
    memset(m + n, 1, (size_t)(T - n));
    b->lengths[row] = (int32_t)n;
    b->utt[row] = u;
    b->n_samples += n;
    for (int j = 0; j < o->n_topics; j++) b->topics[j][row] = d->topic[j][idx];
  }
  // labels: frame start = round(start * rate / sr), frames = round(T * rate / sr) (half to even)
  for (int j = 0; j < o->n_labels; j++) {
    double s2f = L->lab_rate[j] / L->sample_rate;
    int64_t fsize = (int64_t)nearbyint((double)T * s2f);
    if (!o->pad_audio)
      for (int row = 0; row < B; row++) {
        int32_t u = utt[row];
        const loader_shard *d = &L->shards[L->u_shard[u]];
        int64_t idx = L->u_index[u], nl = d->lab_off[j][idx + 1] - d->lab_off[j][idx];
        int64_t rem = nl - (int64_t)nearbyint((double)w->starts[row] * s2f);
        if (rem < fsize) fsize = rem;
      }
    if (fsize < 0) fsize = 0;
    int64_t LT = 0;   // padded width: the longest row after slicing
    for (int row = 0; row < B; row++) {
      int32_t u = utt[row];
      const loader_shard *d = &L->shards[L->u_shard[u]];
      int64_t idx = L->u_index[u], nl = d->lab_off[j][idx + 1] - d->lab_off[j][idx];
      int64_t fs = (int64_t)nearbyint((double)w->starts[row] * s2f);
      int64_t got = fs >= nl ? 0 : (nl - fs < fsize ? nl - fs : fsize);
      b->label_lengths[j][row] = (int32_t)got;
      if (got > LT) LT = got;
    }
    size_t need;
    if (hb_mul_size((size_t)B, (size_t)(LT ? LT : 1), &need)) return -1;
    if (grow((void **)&b->labels[j], &s->cap_lab[j], need, sizeof(int32_t))) return -1;
    b->label_T[j] = (int)LT;
    for (int row = 0; row < B; row++) {
      int32_t u = utt[row];
      const loader_shard *d = &L->shards[L->u_shard[u]];
      int64_t idx = L->u_index[u];
      int64_t fs = (int64_t)nearbyint((double)w->starts[row] * s2f), got = b->label_lengths[j][row];
      int32_t *dst = b->labels[j] + (size_t)row * (size_t)LT;
      loader_open_file *c = worker_open(L, w, L->u_shard[u]);
      if (!c) return -1;
      if (h5io_read_rows(c->units[j], NULL, H5T_NATIVE_INT32, d->lab_off[j][idx] + fs, got, dst)) {
        char what[300];
        snprintf(what, sizeof what, "cannot read /%s", L->lab_dset[j]);
        return fail_utt(L, c, idx, what);
      }
      for (int64_t t = 0; t < got; t++)
        if (dst[t] < 0 || dst[t] >= L->lab_k[j]) {
          char what[300];
          snprintf(what, sizeof what, "/%s: unit %d outside [0, %d) (file changed since the loader started?)", L->lab_dset[j], dst[t], L->lab_k[j]);
          return fail_utt(L, c, idx, what);
        }
      for (int64_t t = got; t < LT; t++) dst[t] = -1;
    }
  }
  return 0;
}
