#include "data_prep/km_import.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "data_prep/audio.h"
#include "data_prep/h5io.h"
#include "data_prep/inputs.h"
#include "data_prep/labelfile.h"
#include "data_prep/shard.h"

#define KM_MAX_ID (1 << 30)

// Parses "123" (whole token) into *v; 0 on success.
static int parse_id(const char *s, size_t n, long *v) {
  char buf[32];
  if (n == 0 || n >= sizeof buf) return -1;
  memcpy(buf, s, n);
  buf[n] = 0;
  char *end;
  errno = 0;
  long x = strtol(buf, &end, 10);
  if (errno || *end || x < 0 || x >= KM_MAX_ID) return -1;
  *v = x;
  return 0;
}

// dict.km.txt: "SYMBOL COUNT" per line; our symbols are unit ids. Marks present[id] = 1.
static int read_dict(const char *path, unsigned char **present, int *max_id) {
  char *buf;
  size_t len;
  if (file_read_all(path, &buf, &len)) return -1;
  int cap = 1024;
  unsigned char *p = hb_calloc((size_t)cap, 1);
  *max_id = -1;
  int rc = p ? 0 : -1;
  long ln = 0;
  for (char *line = buf; line && *line && !rc;) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = 0;
    ln++;
    char *sp = line + strcspn(line, " \t");
    long id;
    if (*line == 0 || (*line == '\r' && !line[1])) {
      // empty line: ignored
    } else if (parse_id(line, (size_t)(sp - line), &id)) {
      rc = hb_fail("%s: line %ld: '%.40s' is not 'UNIT_ID COUNT' with a non-negative integer unit id", path, ln, line);
    } else {
      if (id >= cap) {
        int nc = cap;
        while (nc <= id) nc *= 2;
        unsigned char *q = hb_realloc(p, (size_t)nc);
        if (!q) { rc = -1; break; }
        memset(q + cap, 0, (size_t)(nc - cap));
        p = q;
        cap = nc;
      }
      if (p[id]) rc = hb_fail("%s: line %ld: unit %ld listed twice", path, ln, id);
      p[id] = 1;
      if (id > *max_id) *max_id = (int)id;
    }
    line = nl ? nl + 1 : NULL;
  }
  free(buf);
  if (!rc && *max_id < 0) rc = hb_fail("%s: empty dictionary", path);
  if (rc) { free(p); return -1; }
  *present = p;
  return 0;
}

int km_import(const char *manifest, const char *km, const char *dict, double rate, int k_opt, const char *out) {
  if (!(rate > 0)) return hb_fail("--rate must be > 0 (label frames per second, 50 for HuBERT)");
  hb_input_list in;
  char *margs[1] = {(char *)manifest};
  if (inputs_collect(1, margs, &in)) return -1;
  unsigned char *present = NULL;
  int dict_max = -1;
  char *buf = NULL;
  hb_units u = {0};
  int rc = -1;
  if (dict && read_dict(dict, &present, &dict_max)) goto done;
  size_t len;
  if (file_read_all(km, &buf, &len)) goto done;
  int64_t lines = 0;
  for (size_t i = 0; i < len; i++) lines += buf[i] == '\n';
  if (len && buf[len - 1] != '\n') lines++;
  if (lines != in.n) {
    hb_fail("%s: %lld lines, but %s has %d utterances (one line of units per utterance, in manifest order)", km,
            (long long)lines, manifest, in.n);
    goto done;
  }
  u.n_utts = in.n;
  u.rate = rate;
  u.utt_id = in.utt_id;
  u.offsets = hb_calloc((size_t)in.n + 1, sizeof(int64_t));
  size_t ucap = len / 2 + 1;   // every id takes at least 2 bytes ("1 ")
  u.units = hb_malloc(ucap * sizeof(int32_t));
  if (!u.offsets || !u.units) goto done;
  int64_t nu = 0;
  int max_id = -1;
  char *line = buf;
  for (int i = 0; i < in.n; i++) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = 0;
    for (char *p = line; *p;) {
      while (*p == ' ' || *p == '\t' || *p == '\r') p++;
      if (!*p) break;
      size_t n = strcspn(p, " \t\r");
      long id;
      if (parse_id(p, n, &id)) {
        hb_fail("%s: line %d: '%.*s' is not a non-negative integer unit id", km, i + 1, (int)(n > 40 ? 40 : n), p);
        goto done;
      }
      if (present && (id > dict_max || !present[id])) {
        hb_fail("%s: line %d: unit %ld is not in the dictionary %s", km, i + 1, id, dict);
        goto done;
      }
      if ((size_t)nu >= ucap) { hb_fail("%s: internal: unit buffer overflow", km); goto done; }
      u.units[nu++] = (int32_t)id;
      if (id > max_id) max_id = (int)id;
      p += n;
    }
    u.offsets[i + 1] = nu;
    int64_t fr = nu - u.offsets[i];
    if (in.num_samples[i] >= 0 && !shard_label_len_ok(in.num_samples[i], HB_SAMPLE_RATE, fr, rate)) {
      hb_fail("%s: line %d (utterance '%s'): %lld labels at %g Hz = %.3f s, but the manifest says %lld samples = %.3f s "
              "(tolerance %.1f s)", km, i + 1, in.utt_id[i], (long long)fr, rate, fr / rate, (long long)in.num_samples[i],
              (double)in.num_samples[i] / HB_SAMPLE_RATE, HB_SHARD_LABEL_TOL);
      goto done;
    }
    line = nl ? nl + 1 : line + strlen(line);
  }
  u.k = k_opt > 0 ? k_opt : dict ? dict_max + 1 : max_id + 1;
  if (u.k < 1) { hb_fail("%s: no units at all; give --k", km); goto done; }
  if (max_id >= u.k) { hb_fail("%s: unit %d >= --k %d", km, max_id, u.k); goto done; }
  char src[1024];
  snprintf(src, sizeof src, "fairseq %s", km);
  u.source = src;
  rc = labelfile_write_units(out, &u);
done:
  free(u.offsets);
  free(u.units);
  free(present);
  free(buf);
  inputs_free(&in);
  return rc;
}

// Appends the decimal ids of units[0..n) separated by spaces and a newline.
static int put_line(FILE *f, const int32_t *units, int64_t n, int64_t *count, int k) {
  for (int64_t t = 0; t < n; t++) {
    if (units[t] < 0 || units[t] >= k) return hb_fail("unit %d outside [0, %d)", units[t], k);
    count[units[t]]++;
    if (fprintf(f, t ? " %d" : "%d", units[t]) < 0) return hb_fail("write error");
  }
  return fputc('\n', f) == EOF ? hb_fail("write error") : 0;
}

static int is_shard(const char *path) {
  hid_t f;
  char *fmt = NULL;
  int yes = h5io_open(path, &f) == 0 && h5io_read_str_attr(f, "format", &fmt) == 0 && !strcmp(fmt, HB_SHARD_FORMAT);
  free(fmt);
  if (f >= 0) H5Fclose(f);
  hb_clear_error();
  return yes;
}

int km_export(const char *in, const char *name, const char *km, const char *dict) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", km);
  hb_shard *s = NULL;
  hb_units u = {0};
  int64_t *count = NULL;
  int32_t *ubuf = NULL;
  FILE *f = NULL;
  int rc = -1, k;
  if (is_shard(in)) {
    if (shard_open(in, &s)) return -1;
    int j = 0;
    if (name) {
      if ((j = shard_find_labels(s, name)) < 0) goto done;
    } else if (shard_num_label_sets(s) != 1) {
      hb_fail("%s: has %d label sets; choose one with --name", in, shard_num_label_sets(s));
      goto done;
    }
    k = shard_label_k(s, j);
    const int64_t *off = shard_label_offsets(s, j);
    int64_t U = shard_num_utts(s);
    if (!(count = hb_calloc((size_t)k, sizeof *count)) || !(ubuf = hb_malloc((size_t)off[U] * 4 + 4))) goto done;
    for (int64_t i = 0; i < U; i++)
      if (shard_read_labels(s, j, i, ubuf + off[i])) goto done;
    u.n_utts = U;
    u.offsets = (int64_t *)off;
    u.units = ubuf;
  } else {
    if (name) return hb_fail("%s: --name applies to shards; this is not a hubert shard", in);
    if (labelfile_read_units(in, &u)) return -1;
    k = u.k;
    if (!(count = hb_calloc((size_t)k, sizeof *count))) goto done;
  }
  if (!(f = fopen(tmp, "w"))) { hb_fail("%s: cannot create: %s", tmp, strerror(errno)); goto done; }
  for (int64_t i = 0; i < u.n_utts; i++)
    if (put_line(f, u.units + u.offsets[i], u.offsets[i + 1] - u.offsets[i], count, k)) {
      hb_fail_prefix("%s: utterance %lld", in, (long long)i);
      goto done;
    }
  if (fclose(f) != 0) { f = NULL; hb_fail("%s: write error (disk full?)", tmp); goto done; }
  f = NULL;
  if (file_commit_rename(tmp, km)) goto done;
  if (dict) {
    size_t cap = (size_t)k * 24 + 1, o = 0;
    char *d = hb_malloc(cap);
    if (!d) goto done;
    for (int i = 0; i < k; i++) o += (size_t)snprintf(d + o, cap - o, "%d %lld\n", i, (long long)count[i]);
    int wrc = file_write_atomic(dict, d, o);
    free(d);
    if (wrc) goto done;
  }
  rc = 0;
done:
  if (f) { fclose(f); remove(tmp); }
  if (s) shard_close(s);
  else labelfile_free_units(&u);
  free(ubuf);
  free(count);
  return rc;
}
