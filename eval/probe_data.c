// Loading feature sets for `hubert probe` (see probe_data.h).
#include "eval/probe_data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "data_prep/featfile.h"

static char *dup_n(const char *s, size_t n) {
  char *c = hb_malloc(n + 1);
  if (c) memcpy(c, s, n), c[n] = 0;
  return c;
}

// Grows *p (elements of size es) to hold at least need, doubling.
static int grow(void **p, int64_t *cap, int64_t need, size_t es) {
  if (need <= *cap) return 0;
  int64_t c = *cap ? *cap : 256;
  while (c < need) c *= 2;
  size_t bytes;
  if (hb_mul_size((size_t)c, es, &bytes)) return -1;
  void *q = hb_realloc(*p, bytes);
  if (!q) return -1;
  *p = q;
  *cap = c;
  return 0;
}

void probe_set_free(hb_probe_set *ps) {
  for (int s = 0; s < 3; s++) {
    for (int l = 0; l < ps->L; l++) {
      if (ps->pooled[s]) free(ps->pooled[s][l]);
      if (ps->frames[s]) free(ps->frames[s][l]);
    }
    free(ps->pooled[s]), free(ps->frames[s]), free(ps->row[s]), free(ps->al_row[s]), free(ps->foff[s]), free(ps->fphone[s]);
  }
  for (int i = 0; i < ps->n_files; i++) free(ps->files[i]);
  for (int l = 0; l < ps->L; l++) free(ps->dsets[l]);
  free(ps->files), free(ps->dsets), free(ps->name);
  memset(ps, 0, sizeof *ps);
}

// Chooses the datasets of the first file: "feats", else layer_K (all, or the listed K).
static int pick_datasets(hb_probe_set *ps, const hb_featfile *f, const char *path, const char *layers) {
  int dim;
  int64_t fr;
  ps->dsets = hb_calloc(1025, sizeof(char *));
  if (!ps->dsets) return -1;
  if (featfile_dataset(f, "feats", &dim, &fr) == 0) {
    ps->dsets[0] = dup_n("feats", 5);
    ps->L = 1;
    return ps->dsets[0] ? 0 : -1;
  }
  hb_clear_error();
  char name[32];
  if (!strcmp(layers, "all")) {
    for (int k = 0; k <= 1024 && ps->L < 1024; k++) {
      snprintf(name, sizeof name, "layer_%d", k);
      if (featfile_dataset(f, name, &dim, &fr)) continue;
      if (!(ps->dsets[ps->L++] = dup_n(name, strlen(name)))) return -1;
    }
    hb_clear_error();
    if (ps->L == 0) return hb_fail("%s: no /feats and no /layer_K dataset", path);
    return 0;
  }
  for (const char *p = layers; *p && ps->L < 1024;) {
    char *end;
    long k = strtol(p, &end, 10);
    if (end == p || k < 0 || (*end && *end != ',')) return hb_fail("--layers: expected 'all' or a list like 0,2,4, got '%s'", layers);
    snprintf(name, sizeof name, "layer_%ld", k);
    if (featfile_dataset(f, name, &dim, &fr)) return hb_fail_prefix("--layers %s", layers);
    if (!(ps->dsets[ps->L++] = dup_n(name, strlen(name)))) return -1;
    p = *end ? end + 1 : end;
  }
  return 0;
}

typedef struct {
  int64_t ucap[3], rcap[3], fcap[3], alcap[3], ocap[3];
} caps;

static int load_file(hb_probe_set *ps, hb_featfile *f, const char *path, const hb_evalmeta *m, caps *c) {
  const int D = ps->D, L = ps->L;
  float *buf = NULL;
  int32_t *ph = NULL;
  int64_t bcap = 0, pcap = 0;
  int rc = -1;
  for (int l = 0; l < L; l++) {
    int dim;
    int64_t fr;
    if (featfile_dataset(f, ps->dsets[l], &dim, &fr)) goto done;
    if (dim != D) {
      hb_fail("%s: /%s has %d dims, the set's first file %d", path, ps->dsets[l], dim, D);
      goto done;
    }
  }
  if (featfile_rate(f) != ps->rate) {
    hb_fail("%s: rate %g Hz, the set's first file %g Hz", path, featfile_rate(f), ps->rate);
    goto done;
  }
  const int64_t *off = featfile_offsets(f);
  for (int64_t i = 0; i < featfile_num_utts(f); i++) {
    const char *utt = featfile_utt_id(f, i);
    int64_t row = evalmeta_row(m, utt, path);
    if (row < 0) goto done;
    int s = evalmeta_split(m, row);
    if (s < 0) {
      ps->n_nosplit++;
      continue;
    }
    const int64_t T = off[i + 1] - off[i];
    if (T < 1) {
      hb_fail("%s: utterance '%s' has no frames", path, utt);
      goto done;
    }
    const int64_t u = ps->nutt[s];
    if (grow((void **)&ps->row[s], &c->rcap[s], u + 1, sizeof(int64_t))) goto done;
    ps->row[s][u] = row;
    if (grow((void **)&ph, &pcap, T, sizeof(int32_t))) goto done;
    int al = evalmeta_frame_phones(m, row, ps->rate, T, ph);
    if (al < 0) {
      hb_fail_prefix("%s", path);
      goto done;
    }
    const int64_t a = ps->nal[s], f0 = a ? ps->foff[s][a] : 0;
    if (al == 0) {
      if (grow((void **)&ps->al_row[s], &c->alcap[s], a + 1, sizeof(int64_t)) ||
          grow((void **)&ps->foff[s], &c->ocap[s], a + 2, sizeof(int64_t)) ||
          grow((void **)&ps->fphone[s], &c->fcap[s], f0 + T, sizeof(int32_t)))
        goto done;
      ps->al_row[s][a] = row;
      ps->foff[s][0] = 0;
      ps->foff[s][a + 1] = f0 + T;
      memcpy(ps->fphone[s] + f0, ph, sizeof(int32_t) * (size_t)T);
    }
    if (grow((void **)&buf, &bcap, T * D, sizeof(float))) goto done;
    for (int l = 0; l < L; l++) {
      // pooled[s][l] and frames[s][l] grow with the shared capacities ucap / fcap (in rows).
      int64_t uc = c->ucap[s], fc = c->fcap[s] > 0 ? c->fcap[s] : 0;
      if (uc < u + 1) uc = u + 1 < 64 ? 64 : 2 * (u + 1);
      void *p = hb_realloc(ps->pooled[s][l], sizeof(float) * (size_t)uc * D);
      if (!p) goto done;
      ps->pooled[s][l] = p;
      if (featfile_read_rows(f, ps->dsets[l], off[i], T, buf)) goto done;
      float *pool = ps->pooled[s][l] + (size_t)u * D;
      for (int d = 0; d < D; d++) {
        double acc = 0;
        for (int64_t t = 0; t < T; t++) acc += buf[(size_t)t * D + d];
        pool[d] = (float)(acc / (double)T);
      }
      if (al == 0) {
        p = hb_realloc(ps->frames[s][l], sizeof(float) * (size_t)fc * D);
        if (!p) goto done;
        ps->frames[s][l] = p;
        memcpy(ps->frames[s][l] + (size_t)f0 * D, buf, sizeof(float) * (size_t)T * D);
      }
      if (l == L - 1) c->ucap[s] = uc;
    }
    ps->nutt[s]++;
    if (al == 0) ps->nal[s]++;
  }
  rc = 0;
done:
  free(buf);
  free(ph);
  return rc;
}

// Standardises x[s][l] (n[s], D) for every split with the train rows' mean and std.
static void standardise(float **x[3], const int64_t n[3], int L, int D) {
  for (int l = 0; l < L; l++) {
    if (n[0] < 1) continue;
    for (int d = 0; d < D; d++) {
      double mu = 0, var = 0;
      for (int64_t i = 0; i < n[0]; i++) mu += x[0][l][(size_t)i * D + d];
      mu /= (double)n[0];
      for (int64_t i = 0; i < n[0]; i++) {
        double v = x[0][l][(size_t)i * D + d] - mu;
        var += v * v;
      }
      const double inv = 1.0 / sqrt(var / (double)n[0] + 1e-5);
      for (int s = 0; s < 3; s++)
        for (int64_t i = 0; i < n[s]; i++) {
          float *v = &x[s][l][(size_t)i * D + d];
          *v = (float)((*v - mu) * inv);
        }
    }
  }
}

int probe_set_load(hb_probe_set *ps, const char *spec, const char *layers, const hb_evalmeta *m) {
  memset(ps, 0, sizeof *ps);
  const char *eq = strchr(spec, '=');
  if (!eq || eq == spec || !eq[1]) return hb_fail("feature set '%s': expected NAME=FILE.h5[,FILE.h5...]", spec);
  hb_featfile *f = NULL;
  if (!(ps->name = dup_n(spec, (size_t)(eq - spec)))) goto fail;
  const char *files = eq + 1;
  int nf = 1;
  for (const char *p = files; *p; p++) nf += *p == ',';
  ps->files = hb_calloc((size_t)nf, sizeof(char *));
  if (!ps->files) goto fail;
  for (const char *p = files; ps->n_files < nf;) {
    size_t len = strcspn(p, ",");
    if (len == 0) {
      hb_fail("feature set '%s': empty file name", spec);
      goto fail;
    }
    if (!(ps->files[ps->n_files++] = dup_n(p, len))) goto fail;
    p += len + (p[len] == ',');
  }
  caps c;
  memset(&c, 0, sizeof c);
  for (int i = 0; i < ps->n_files; i++) {
    if (featfile_open(ps->files[i], &f)) goto fail;
    if (i == 0) {
      if (pick_datasets(ps, f, ps->files[0], layers)) goto fail;
      int64_t fr;
      if (featfile_dataset(f, ps->dsets[0], &ps->D, &fr)) goto fail;
      ps->rate = featfile_rate(f);
      for (int s = 0; s < 3; s++) {
        ps->pooled[s] = hb_calloc((size_t)ps->L, sizeof(float *));
        ps->frames[s] = hb_calloc((size_t)ps->L, sizeof(float *));
        if (!ps->pooled[s] || !ps->frames[s]) goto fail;
      }
    }
    if (load_file(ps, f, ps->files[i], m, &c)) goto fail;
    featfile_free(f);
    f = NULL;
  }
  int64_t nf3[3];
  for (int s = 0; s < 3; s++) nf3[s] = ps->nal[s] ? ps->foff[s][ps->nal[s]] : 0;
  standardise(ps->pooled, ps->nutt, ps->L, ps->D);
  standardise(ps->frames, nf3, ps->L, ps->D);
  return 0;
fail:
  if (f) featfile_free(f);
  probe_set_free(ps);
  return -1;
}

int probe_set_same_utts(const hb_probe_set *a, const hb_probe_set *b, const hb_evalmeta *m) {
  static const char *split[3] = {"train", "valid", "test"};
  for (int s = 0; s < 3; s++) {
    if (a->nutt[s] != b->nutt[s] || a->nal[s] != b->nal[s])
      return hb_fail("feature sets '%s' (%s...) and '%s' (%s...) hold different %s utterances (%lld vs %lld, %lld vs %lld "
                     "with aligned phones): probe rows must use the same utterances",
                     a->name, a->files[0], b->name, b->files[0], split[s], (long long)a->nutt[s], (long long)b->nutt[s],
                     (long long)a->nal[s], (long long)b->nal[s]);
    for (int64_t i = 0; i < a->nutt[s]; i++)
      if (a->row[s][i] != b->row[s][i])
        return hb_fail("feature sets '%s' and '%s': %s utterance %lld is '%s' in one and '%s' in the other (same files, same "
                       "order needed)", a->name, b->name, split[s], (long long)i, m->ids[a->row[s][i]], m->ids[b->row[s][i]]);
  }
  return 0;
}
