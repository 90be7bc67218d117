// CTC vocabulary of `hubert finetune`: transcript tokenisation (characters / phones), building,
// encoding, saving into model folders and reading back; edit distance and error rates.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/json.h"
#include "train/finetune.h"

int ctc_kind_from_name(const char *name, int *kind) {
  if (!strcmp(name, "ltr")) { *kind = HB_CTC_LTR; return 0; }
  if (!strcmp(name, "phn")) { *kind = HB_CTC_PHN; return 0; }
  return hb_fail("task.labels: '%s' is not a fine-tuning label set (ltr: characters from the shards' /text, "
                 "phn: phones from /phones)", name);
}

const char *ctc_kind_name(int kind) { return kind == HB_CTC_PHN ? "phn" : "ltr"; }

// ---- tokenisation ----

typedef struct {
  char **tok;
  int n, cap;
} tok_list;

static int tl_push(tok_list *l, const char *s, size_t len) {
  if (l->n == l->cap) {
    int cap = l->cap ? 2 * l->cap : 32;
    char **t = hb_realloc(l->tok, sizeof(char *) * (size_t)cap);
    if (!t) return -1;
    l->tok = t;
    l->cap = cap;
  }
  char *c = hb_malloc(len + 1);
  if (!c) return -1;
  memcpy(c, s, len);
  c[len] = 0;
  l->tok[l->n++] = c;
  return 0;
}

// Decodes one UTF-8 code point at s (invalid bytes are taken one at a time); returns its length.
static int utf8_next(const unsigned char *s, unsigned *cp) {
  if (s[0] < 0x80) { *cp = s[0]; return 1; }
  int n = (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3 : (s[0] & 0xF8) == 0xF0 ? 4 : 1;
  unsigned v = n == 2 ? s[0] & 0x1F : n == 3 ? s[0] & 0x0F : s[0] & 0x07;
  for (int i = 1; i < n; i++) {
    if ((s[i] & 0xC0) != 0x80) { *cp = s[0]; return 1; }
    v = (v << 6) | (s[i] & 0x3F);
  }
  *cp = n == 1 ? s[0] : v;
  return n;
}

static int utf8_put(unsigned cp, char *out) {
  if (cp < 0x80) { out[0] = (char)cp; return 1; }
  if (cp < 0x800) { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12)); out[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18)); out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

// Character class: 0 letter (kept, lower-cased), 1 word break, 2 dropped punctuation.
static int char_class(unsigned *cp) {
  unsigned c = *cp;
  if (c < 0x80) {
    if (c >= 'A' && c <= 'Z') { *cp = c + 32; return 0; }
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '\'') return 0;
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '-' || c == '/') return 1;
    return 2;
  }
  if (c == 0xA0 || c == 0x2009 || c == 0x202F || c == 0x2013 || c == 0x2014) return 1;
  if ((c >= 0xA1 && c <= 0xBF) || c == 0xD7 || c == 0xF7 || (c >= 0x2000 && c <= 0x206F) || (c >= 0x3000 && c <= 0x303F))
    return 2;
  if ((c >= 0xC0 && c <= 0xDE)) *cp = c + 32;                    // Latin-1 capitals
  else if (c >= 0x410 && c <= 0x42F) *cp = c + 32;                // Cyrillic А..Я
  else if (c >= 0x400 && c <= 0x40F) *cp = c + 80;                // Cyrillic Ѐ..Џ
  else if (c >= 0x100 && c <= 0x17F && !(c & 1)) *cp = c + 1;     // Latin Extended-A pairs (mostly)
  return 0;
}

static int tokenize_ltr(const char *text, tok_list *l) {
  const unsigned char *s = (const unsigned char *)text;
  int pending_break = 0;
  while (*s) {
    unsigned cp;
    int k = utf8_next(s, &cp);
    s += k;
    int cls = char_class(&cp);
    if (cls == 1) { pending_break = 1; continue; }
    if (cls == 2) continue;
    if (pending_break && l->n > 0) HB_TRY(tl_push(l, "|", 1));
    pending_break = 0;
    char buf[4];
    HB_TRY(tl_push(l, buf, (size_t)utf8_put(cp, buf)));
  }
  return 0;
}

static int tokenize_phn(const char *text, tok_list *l) {
  const char *s = text;
  char buf[128];
  while (*s) {
    while (*s == ' ' || *s == '\t') s++;
    if (!*s) break;
    size_t n = 0;
    int stop = 0;  // after ':' (flite's end time) nothing more is kept
    for (; *s && *s != ' ' && *s != '\t'; s++) {
      if (*s == ':') stop = 1;
      if (stop || *s == '\'' || *s == ',') continue;
      if (n + 1 < sizeof buf) buf[n++] = *s;
    }
    buf[n] = 0;
    if (n && strcmp(buf, "pau")) HB_TRY(tl_push(l, buf, n));
  }
  return 0;
}

int ctc_tokenize(int kind, const char *text, char ***tok, int *n) {
  tok_list l = {0};
  int rc = kind == HB_CTC_PHN ? tokenize_phn(text ? text : "", &l) : tokenize_ltr(text ? text : "", &l);
  if (rc) {
    ctc_tokens_free(l.tok, l.n);
    return -1;
  }
  *tok = l.tok;
  *n = l.n;
  return 0;
}

void ctc_tokens_free(char **tok, int n) {
  for (int i = 0; i < n; i++) free(tok[i]);
  free(tok);
}

// ---- vocabulary ----

typedef struct {
  char *s;
  long count;
} sym_count;

static int cmp_count(const void *a, const void *b) {
  const sym_count *x = a, *y = b;
  if (x->count != y->count) return x->count > y->count ? -1 : 1;
  return strcmp(x->s, y->s);
}

int ctc_vocab_find(const hb_ctc_vocab *v, const char *sym) {
  for (int i = 0; i < v->n; i++)
    if (!strcmp(v->sym[i], sym)) return i;
  return -1;
}

static int vocab_push(hb_ctc_vocab *v, const char *s) {
  char **t = hb_realloc(v->sym, sizeof(char *) * (size_t)(v->n + 1));
  if (!t) return -1;
  v->sym = t;
  size_t len = strlen(s);
  if (!(v->sym[v->n] = hb_malloc(len + 1))) return -1;
  memcpy(v->sym[v->n++], s, len + 1);
  return 0;
}

int ctc_vocab_build(hb_ctc_vocab *v, int kind, char **const *toks, const int *ntok, int n_utts) {
  memset(v, 0, sizeof *v);
  v->kind = kind;
  sym_count *sc = NULL;
  int ns = 0, cap = 0, rc = -1;
  for (int u = 0; u < n_utts; u++)
    for (int i = 0; i < ntok[u]; i++) {
      const char *t = toks[u][i];
      if (kind == HB_CTC_LTR && !strcmp(t, "|")) continue;
      int j = 0;
      while (j < ns && strcmp(sc[j].s, t)) j++;
      if (j == ns) {
        if (ns == cap) {
          cap = cap ? 2 * cap : 64;
          sym_count *q = hb_realloc(sc, sizeof *sc * (size_t)cap);
          if (!q) goto done;
          sc = q;
        }
        sc[ns].s = toks[u][i];
        sc[ns++].count = 0;
      }
      sc[j].count++;
    }
  if (ns) qsort(sc, (size_t)ns, sizeof *sc, cmp_count);
  if (vocab_push(v, "<pad>") || vocab_push(v, "<unk>") || (kind == HB_CTC_LTR && vocab_push(v, "|"))) goto done;
  for (int j = 0; j < ns; j++)
    if (vocab_push(v, sc[j].s)) goto done;
  rc = 0;
done:
  free(sc);
  if (rc) ctc_vocab_free(v);
  return rc;
}

void ctc_vocab_free(hb_ctc_vocab *v) {
  for (int i = 0; i < v->n; i++) free(v->sym[i]);
  free(v->sym);
  memset(v, 0, sizeof *v);
}

void ctc_vocab_encode(const hb_ctc_vocab *v, char **tok, int n, int *ids) {
  for (int i = 0; i < n; i++) {
    int k = ctc_vocab_find(v, tok[i]);
    ids[i] = k >= 0 ? k : HB_CTC_UNK;
  }
}

int ctc_vocab_equal(const hb_ctc_vocab *a, const hb_ctc_vocab *b) {
  if (a->kind != b->kind || a->n != b->n) return 0;
  for (int i = 0; i < a->n; i++)
    if (strcmp(a->sym[i], b->sym[i])) return 0;
  return 1;
}

// ---- model folder I/O ----

int ctc_vocab_save(const hb_ctc_vocab *v, const char *dir) {
  char path[2048];
  // vocab.json: {"<pad>": 0, "<unk>": 1, ...} (HF Wav2Vec2CTCTokenizer)
  json_writer w;
  jw_init(&w, 1);
  jw_begin_object(&w);
  for (int i = 0; i < v->n; i++) {
    jw_key(&w, v->sym[i]);
    jw_int(&w, i);
  }
  jw_end_object(&w);
  size_t len;
  char *text = jw_finish(&w, &len);
  if (!text) return hb_fail_prefix("%s/vocab.json", dir);
  snprintf(path, sizeof path, "%s/vocab.json", dir);
  int rc = file_write_atomic(path, text, len);
  free(text);
  HB_TRY(rc);
  // config.json: insert our keys into the object written by config_write_json.
  snprintf(path, sizeof path, "%s/config.json", dir);
  char *cfg;
  size_t clen;
  HB_TRY(file_read_all(path, &cfg, &clen));
  const char *anchor = "\"hubert_c\": {";
  char *at = strstr(cfg, anchor);
  if (!at || cfg[0] != '{') {
    free(cfg);
    return hb_fail("%s: no hubert_c object to add the CTC vocabulary to", path);
  }
  json_writer x;
  jw_init(&x, 0);
  jw_begin_array(&x);
  for (int i = 0; i < v->n; i++) jw_string(&x, v->sym[i]);
  jw_end_array(&x);
  size_t xl;
  char *arr = jw_finish(&x, &xl);
  if (!arr) { free(cfg); return hb_fail_prefix("%s", path); }
  const size_t cap = clen + xl + 256;
  char *out = hb_malloc(cap);
  if (!out) { free(cfg); free(arr); return -1; }
  const size_t head = (size_t)(at - cfg) + strlen(anchor);
  int o = snprintf(out, cap, "{\n  \"vocab_size\": %d,\n  \"pad_token_id\": 0,", v->n);
  memcpy(out + o, cfg + 1, head - 1);
  size_t n = (size_t)o + head - 1;
  n += (size_t)snprintf(out + n, cap - n, "\n    \"ctc_labels\": \"%s\",\n    \"ctc_vocabulary\": %s,", ctc_kind_name(v->kind), arr);
  memcpy(out + n, cfg + head, clen - head);
  n += clen - head;
  rc = file_write_atomic(path, out, n);
  free(out);
  free(arr);
  free(cfg);
  return rc;
}

static int vocab_from_array(hb_ctc_vocab *v, const json_value *a, const char *path) {
  if (a->type != JSON_ARRAY || a->len < 2) return hb_fail("%s: ctc_vocabulary must be an array of >= 2 strings", path);
  for (size_t i = 0; i < a->len; i++) {
    if (a->items[i].type != JSON_STRING) return hb_fail("%s: ctc_vocabulary[%zu] is not a string", path, i);
    HB_TRY(vocab_push(v, a->items[i].string));
  }
  return 0;
}

static int vocab_from_map(hb_ctc_vocab *v, const json_value *m, const char *path) {
  if (m->type != JSON_OBJECT || m->len < 2) return hb_fail("%s: expected an object {symbol: index}", path);
  v->sym = hb_calloc(m->len, sizeof(char *));
  if (!v->sym) return -1;
  v->n = (int)m->len;
  for (size_t i = 0; i < m->len; i++) {
    const json_value *e = &m->items[i];
    if (e->type != JSON_NUMBER || e->number < 0 || e->number >= (double)m->len || e->number != (double)(long)e->number)
      return hb_fail("%s: index of '%s' must be an integer in [0, %zu)", path, m->keys[i], m->len);
    long k = (long)e->number;
    if (v->sym[k]) return hb_fail("%s: index %ld used twice", path, k);
    size_t len = strlen(m->keys[i]);
    if (!(v->sym[k] = hb_malloc(len + 1))) return -1;
    memcpy(v->sym[k], m->keys[i], len + 1);
  }
  return 0;
}

int ctc_vocab_load(hb_ctc_vocab *v, const char *dir, int *found) {
  memset(v, 0, sizeof *v);
  *found = 0;
  char path[2048];
  snprintf(path, sizeof path, "%s/config.json", dir);
  char *text;
  size_t len;
  json_value *root = NULL;
  int rc = -1;
  if (file_exists(path)) {
    HB_TRY(file_read_all(path, &text, &len));
    rc = json_parse(text, len, &root);
    free(text);
    if (rc) return hb_fail_prefix("%s", path);
    rc = -1;
    const json_value *x = json_get(root, "hubert_c");
    const json_value *a = x ? json_get(x, "ctc_vocabulary") : NULL;
    const json_value *k = x ? json_get(x, "ctc_labels") : NULL;
    if (a) {
      if (vocab_from_array(v, a, path)) goto done;
      if (k && (k->type != JSON_STRING || ctc_kind_from_name(k->string, &v->kind))) {
        hb_fail_prefix("%s: hubert_c.ctc_labels", path);
        goto done;
      }
      if (!k) v->kind = ctc_vocab_find(v, "|") >= 0 ? HB_CTC_LTR : HB_CTC_PHN;
      *found = 1;
      rc = 0;
      goto done;
    }
    json_free(root);
    root = NULL;
  }
  snprintf(path, sizeof path, "%s/vocab.json", dir);
  if (!file_exists(path)) return 0;
  HB_TRY(file_read_all(path, &text, &len));
  rc = json_parse(text, len, &root);
  free(text);
  if (rc) return hb_fail_prefix("%s", path);
  rc = -1;
  if (vocab_from_map(v, root, path)) goto done;
  v->kind = ctc_vocab_find(v, "|") >= 0 ? HB_CTC_LTR : HB_CTC_PHN;
  *found = 1;
  rc = 0;
done:
  json_free(root);
  if (rc) ctc_vocab_free(v);
  return rc;
}

// ---- scoring ----

long edit_distance(const int *a, int na, const int *b, int nb) {
  long *row = hb_malloc(sizeof(long) * (size_t)(nb + 1));
  if (!row) return -1;
  for (int j = 0; j <= nb; j++) row[j] = j;
  for (int i = 1; i <= na; i++) {
    long diag = row[0];
    row[0] = i;
    for (int j = 1; j <= nb; j++) {
      long up = row[j];
      long best = diag + (a[i - 1] != b[j - 1]);
      if (up + 1 < best) best = up + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      row[j] = best;
      diag = up;
    }
  }
  long d = row[nb];
  free(row);
  return d;
}

static int seq_eq(const int *a, int na, const int *b, int nb) {
  return na == nb && (na == 0 || !memcmp(a, b, sizeof(int) * (size_t)na));
}

// out[k] = word id of the k-th word of s (split at sep); returns the word count.
static int split_words(const int *s, int n, int sep, int *out, int *ws, int *wl, const int **wsrc, int *nw, int max_w) {
  int k = 0;
  for (int i = 0; i < n;) {
    while (i < n && s[i] == sep) i++;
    if (i >= n) break;
    int j = i;
    while (j < n && s[j] != sep) j++;
    int id = -1;
    for (int w = 0; w < *nw && id < 0; w++)
      if (seq_eq(wsrc[w] + ws[w], wl[w], s + i, j - i)) id = w;
    if (id < 0 && *nw < max_w) {
      id = (*nw)++;
      wsrc[id] = s;
      ws[id] = i;
      wl[id] = j - i;
    }
    out[k++] = id;
    i = j;
  }
  return k;
}

int ctc_score(const hb_ctc_vocab *v, const int *hyp, int nh, const int *ref, int nr, hb_err_counts *c) {
  long d = edit_distance(hyp, nh, ref, nr);
  if (d < 0) return -1;
  c->unit_err += (double)d;
  c->unit_n += nr;
  if (v->kind != HB_CTC_LTR) {
    c->word_err += (double)d;
    c->word_n += nr;
    return 0;
  }
  const int sep = ctc_vocab_find(v, "|");
  const int max_w = nh + nr + 1;
  int *buf = hb_malloc(sizeof(int) * (size_t)max_w * 5);
  const int **wsrc = hb_malloc(sizeof(int *) * (size_t)max_w);
  if (!buf || !wsrc) { free(buf); free(wsrc); return -1; }
  int *hw = buf, *rw = buf + max_w, *ws = buf + 2 * max_w, *wl = buf + 3 * max_w, nw = 0;
  int kh = split_words(hyp, nh, sep, hw, ws, wl, wsrc, &nw, max_w);
  int kr = split_words(ref, nr, sep, rw, ws, wl, wsrc, &nw, max_w);
  long dw = edit_distance(hw, kh, rw, kr);
  free(buf);
  free(wsrc);
  if (dw < 0) return -1;
  c->word_err += (double)dw;
  c->word_n += kr;
  return 0;
}
