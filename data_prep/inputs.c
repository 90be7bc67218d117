// fairseq manifests (.tsv) and the INPUT... argument list.
#include "data_prep/inputs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileutil.h"

void manifest_free(hb_manifest *m) {
  if (!m) return;
  for (int i = 0; i < m->n; i++) free(m->relpath[i]);
  free(m->relpath);
  free(m->num_samples);
  free(m->root);
  memset(m, 0, sizeof *m);
}

static char *dup_range(const char *s, size_t n) {
  char *d = hb_malloc(n + 1);
  if (!d) return NULL;
  memcpy(d, s, n);
  d[n] = 0;
  return d;
}

// Shows a line in an error message: at most 60 bytes, tabs as "\t".
static const char *show_line(const char *s, size_t n, char *buf, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < n && o + 4 < cap && i < 60; i++) {
    if (s[i] == '\t') {
      buf[o++] = '\\';
      buf[o++] = 't';
    } else {
      buf[o++] = (unsigned char)s[i] < 32 ? '?' : s[i];
    }
  }
  if (n > 60 && o + 4 < cap) { memcpy(buf + o, "...", 3); o += 3; }
  buf[o] = 0;
  return buf;
}

static int parse_count(const char *s, size_t n, int64_t *out) {
  if (n == 0 || n > 19) return -1;
  int64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 0;
}

int manifest_read(const char *path, hb_manifest *m) {
  memset(m, 0, sizeof *m);
  char *text = NULL;
  size_t len = 0;
  if (file_read_all(path, &text, &len)) return -1;
  if (memchr(text, 0, len)) {
    free(text);
    return hb_fail("%s: contains NUL bytes; not a text manifest", path);
  }
  char show[128];
  int cap = 0;
  size_t pos = 0;
  int lineno = 0;
  int rc = 0;
  while (pos < len) {
    const char *line = text + pos;
    const char *nl = memchr(line, '\n', len - pos);
    size_t n = nl ? (size_t)(nl - line) : len - pos;
    pos += n + (nl ? 1 : 0);
    lineno++;
    if (n > 0 && line[n - 1] == '\r') n--;
    if (lineno == 1) {
      if (n == 0) { rc = hb_fail("%s: line 1: empty; expected the root directory", path); break; }
      if (memchr(line, '\t', n)) {
        rc = hb_fail("%s: line 1: missing root line: expected a directory, got '%s'", path,
                     show_line(line, n, show, sizeof show));
        break;
      }
      if (!(m->root = dup_range(line, n))) { rc = hb_fail_prefix("%s", path); break; }
      continue;
    }
    if (n == 0) {
      if (pos >= len) break;   // trailing empty line
      rc = hb_fail("%s: line %d: empty line", path, lineno);
      break;
    }
    const char *tab = memchr(line, '\t', n);
    if (!tab) {
      rc = hb_fail("%s: line %d: missing TAB between path and sample count in '%s'", path, lineno,
                   show_line(line, n, show, sizeof show));
      break;
    }
    size_t plen = (size_t)(tab - line);
    const char *cnt = tab + 1;
    size_t clen = n - plen - 1;
    if (plen == 0) { rc = hb_fail("%s: line %d: empty path", path, lineno); break; }
    if (memchr(cnt, '\t', clen)) {
      rc = hb_fail("%s: line %d: expected 2 tab-separated fields (path, num_samples), got more in '%s'",
                   path, lineno, show_line(line, n, show, sizeof show));
      break;
    }
    int64_t count;
    if (parse_count(cnt, clen, &count) || count <= 0) {
      rc = hb_fail("%s: line %d: bad sample count '%s' (need a positive integer)", path, lineno,
                   show_line(cnt, clen, show, sizeof show));
      break;
    }
    if (m->n == cap) {
      int ncap = cap ? cap * 2 : 256;
      if (ncap < cap) { rc = hb_fail("%s: too many lines", path); break; }
      char **rp = hb_realloc(m->relpath, (size_t)ncap * sizeof *rp);
      if (!rp) { rc = hb_fail_prefix("%s", path); break; }
      m->relpath = rp;
      int64_t *ns = hb_realloc(m->num_samples, (size_t)ncap * sizeof *ns);
      if (!ns) { rc = hb_fail_prefix("%s", path); break; }
      m->num_samples = ns;
      cap = ncap;
    }
    if (!(m->relpath[m->n] = dup_range(line, plen))) { rc = hb_fail_prefix("%s", path); break; }
    m->num_samples[m->n] = count;
    m->n++;
  }
  free(text);
  if (rc == 0 && !m->root) rc = hb_fail("%s: empty manifest (no root line)", path);
  if (rc == 0 && m->n == 0) rc = hb_fail("%s: empty manifest: root line but no utterances", path);
  if (rc) manifest_free(m);
  return rc;
}

int manifest_write(const char *path, const hb_manifest *m) {
  if (!m->root || !m->root[0] || strchr(m->root, '\t') || strchr(m->root, '\n'))
    return hb_fail("%s: invalid manifest root '%s'", path, m->root ? m->root : "(null)");
  size_t total = strlen(m->root) + 2;
  for (int i = 0; i < m->n; i++) {
    const char *r = m->relpath[i];
    if (!r[0] || strpbrk(r, "\t\n\r")) return hb_fail("%s: entry %d: path '%s' is empty or has a tab/newline", path, i, r);
    if (m->num_samples[i] < 0) return hb_fail("%s: entry %d (%s): negative sample count", path, i, r);
    if (hb_add_size(total, strlen(r) + 24, &total)) return hb_fail_prefix("%s", path);
  }
  char *buf = hb_malloc(total);
  if (!buf) return hb_fail_prefix("%s", path);
  size_t o = (size_t)snprintf(buf, total, "%s\n", m->root);
  for (int i = 0; i < m->n; i++)
    o += (size_t)snprintf(buf + o, total - o, "%s\t%lld\n", m->relpath[i], (long long)m->num_samples[i]);
  int rc = file_write_atomic(path, buf, o);
  free(buf);
  return rc;
}

void inputs_free(hb_input_list *l) {
  if (!l) return;
  for (int i = 0; i < l->n; i++) {
    free(l->path[i]);
    free(l->utt_id[i]);
  }
  free(l->path);
  free(l->utt_id);
  free(l->num_samples);
  memset(l, 0, sizeof *l);
}

static int ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && strcmp(s + a - b, suf) == 0;
}

// "dir/x.flac" -> "x" (keep_dirs = 0) or "dir/x" (keep_dirs = 1).
static char *strip_ext(const char *p, int keep_dirs) {
  const char *base = p;
  if (!keep_dirs) {
    const char *sl = strrchr(p, '/');
    if (sl) base = sl + 1;
  }
  const char *dot = strrchr(base, '.');
  const char *sl2 = strrchr(base, '/');
  size_t n = dot && dot > base && (!sl2 || dot > sl2 + 1) ? (size_t)(dot - base) : strlen(base);
  return dup_range(base, n);
}

static int list_push(hb_input_list *l, int *cap, char *path, char *utt, int64_t ns) {
  if (!path || !utt) {
    free(path);
    free(utt);
    return -1;
  }
  if (l->n == *cap) {
    int ncap = *cap ? *cap * 2 : 256;
    char **p = hb_realloc(l->path, (size_t)ncap * sizeof *p);
    if (p) l->path = p;
    char **u = p ? hb_realloc(l->utt_id, (size_t)ncap * sizeof *u) : NULL;
    if (u) l->utt_id = u;
    int64_t *s = u ? hb_realloc(l->num_samples, (size_t)ncap * sizeof *s) : NULL;
    if (s) l->num_samples = s;
    if (!s) {
      free(path);
      free(utt);
      return -1;
    }
    *cap = ncap;
  }
  l->path[l->n] = path;
  l->utt_id[l->n] = utt;
  l->num_samples[l->n] = ns;
  l->n++;
  return 0;
}

static const hb_input_list *g_sort_list;
static int cmp_utt(const void *a, const void *b) {
  int i = *(const int *)a, j = *(const int *)b;
  int c = strcmp(g_sort_list->utt_id[i], g_sort_list->utt_id[j]);
  return c ? c : (i > j) - (i < j);
}

int inputs_collect(int nargs, char **args, hb_input_list *out) {
  memset(out, 0, sizeof *out);
  int cap = 0;
  if (nargs <= 0) return hb_fail("no inputs: give audio files and/or .tsv manifests");
  for (int a = 0; a < nargs; a++) {
    const char *arg = args[a];
    if (ends_with(arg, ".tsv")) {
      hb_manifest m;
      if (manifest_read(arg, &m)) goto fail;
      if (!file_is_dir(m.root)) {
        hb_fail("%s: line 1: root directory '%s' does not exist", arg, m.root);
        manifest_free(&m);
        goto fail;
      }
      size_t rl = strlen(m.root);
      int slash = rl > 0 && m.root[rl - 1] == '/';
      for (int i = 0; i < m.n; i++) {
        size_t n = rl + strlen(m.relpath[i]) + 2;
        char *p = hb_malloc(n);
        if (p) snprintf(p, n, "%s%s%s", m.root, slash ? "" : "/", m.relpath[i]);
        if (list_push(out, &cap, p, strip_ext(m.relpath[i], 1), m.num_samples[i])) {
          hb_fail_prefix("%s", arg);
          manifest_free(&m);
          goto fail;
        }
      }
      manifest_free(&m);
    } else {
      if (!file_exists(arg)) {
        hb_fail("%s: no such file", arg);
        goto fail;
      }
      if (file_is_dir(arg)) {
        hb_fail("%s: is a directory; give audio files or a .tsv manifest", arg);
        goto fail;
      }
      if (list_push(out, &cap, strdup(arg), strip_ext(arg, 0), -1)) {
        if (!hb_errmsg()[0]) hb_fail("out of memory");
        hb_fail_prefix("%s", arg);
        goto fail;
      }
    }
  }
  {
    int *idx = hb_malloc((size_t)out->n * sizeof *idx);
    if (!idx) goto fail;
    for (int i = 0; i < out->n; i++) idx[i] = i;
    g_sort_list = out;
    qsort(idx, (size_t)out->n, sizeof *idx, cmp_utt);
    for (int i = 1; i < out->n; i++) {
      if (strcmp(out->utt_id[idx[i - 1]], out->utt_id[idx[i]]) == 0) {
        hb_fail("duplicate utterance id '%s': %s and %s (utterance ids are file names without "
                "extension; rename one or use a manifest)",
                out->utt_id[idx[i]], out->path[idx[i - 1]], out->path[idx[i]]);
        free(idx);
        goto fail;
      }
    }
    free(idx);
  }
  return 0;
fail:
  inputs_free(out);
  return -1;
}
