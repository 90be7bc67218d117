// Strict RFC 8259 JSON parser (DOM) and streaming writer.
#include "common/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

#define JSON_MAX_DEPTH 256

typedef struct {
  const char *s;
  size_t len, pos;
  int failed;
} jparser;

// Reports "line L, column C: reason" for byte offset `at` (columns count bytes, 1-based).
static int jfail_at(jparser *p, size_t at, const char *fmt, const char *arg) {
  size_t line = 1, col = 1;
  for (size_t i = 0; i < at && i < p->len; i++) {
    if (p->s[i] == '\n') {
      line++;
      col = 1;
    } else {
      col++;
    }
  }
  char msg[256];
  snprintf(msg, sizeof msg, fmt, arg ? arg : "");
  p->failed = 1;
  return hb_fail("line %zu, column %zu: %s", line, col, msg);
}
static int jfail(jparser *p, const char *fmt, const char *arg) { return jfail_at(p, p->pos, fmt, arg); }

static void skip_ws(jparser *p) {
  while (p->pos < p->len) {
    char c = p->s[p->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    p->pos++;
  }
}

static void free_contents(json_value *v) {
  if (v->type == JSON_STRING) free(v->string);
  if (v->type == JSON_ARRAY || v->type == JSON_OBJECT) {
    for (size_t i = 0; i < v->len; i++) {
      free_contents(&v->items[i]);
      if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
  }
  memset(v, 0, sizeof *v);
}

void json_free(json_value *v) {
  if (!v) return;
  free_contents(v);
  free(v);
}

static int hex4(const char *s, unsigned *out) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = s[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
    else return -1;
  }
  *out = v;
  return 0;
}

static size_t put_utf8(char *o, unsigned cp) {
  if (cp < 0x80) { o[0] = (char)cp; return 1; }
  if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | (cp >> 18));
  o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

// Length of the valid UTF-8 sequence at s (no overlongs, no surrogates, <= U+10FFFF), or 0.
static size_t utf8_len(const unsigned char *s, size_t avail) {
  unsigned c = s[0];
  size_t n;
  unsigned cp, min;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) { n = 2; cp = c & 0x1F; min = 0x80; }
  else if ((c & 0xF0) == 0xE0) { n = 3; cp = c & 0x0F; min = 0x800; }
  else if ((c & 0xF8) == 0xF0) { n = 4; cp = c & 0x07; min = 0x10000; }
  else return 0;
  if (n > avail) return 0;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

// Parses a string starting at the opening quote; *out is malloc'ed, NUL-terminated.
static int parse_string(jparser *p, char **out, size_t *out_len) {
  size_t start = ++p->pos;   // after '"'
  // decoded length <= raw length
  size_t end = start;
  while (end < p->len && p->s[end] != '"') end += (p->s[end] == '\\' && end + 1 < p->len) ? 2 : 1;
  if (end >= p->len) return jfail_at(p, start - 1, "unterminated string", NULL);
  char *o = hb_malloc(end - start + 1);
  if (!o) return jfail(p, "out of memory", NULL);
  size_t n = 0;
  while (p->pos < end) {
    unsigned char c = (unsigned char)p->s[p->pos];
    if (c < 0x20) {
      free(o);
      return jfail(p, "control character in string (escape it)", NULL);
    }
    if (c == '\\') {
      char e = p->s[p->pos + 1];
      const char *map = "\"\"\\\\//b\bf\fn\nr\rt\t";
      const char *hit = NULL;
      for (const char *m = map; *m; m += 2)
        if (*m == e) { hit = m; break; }
      if (hit) {
        o[n++] = hit[1];
        p->pos += 2;
        continue;
      }
      if (e != 'u') {
        free(o);
        return jfail(p, "invalid escape in string", NULL);
      }
      unsigned cp, lo;
      if (p->pos + 6 > end || hex4(p->s + p->pos + 2, &cp)) {
        free(o);
        return jfail(p, "invalid \\u escape (need 4 hex digits)", NULL);
      }
      size_t esc_at = p->pos;
      p->pos += 6;
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (p->pos + 6 > end || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u' || hex4(p->s + p->pos + 2, &lo) ||
            lo < 0xDC00 || lo > 0xDFFF) {
          free(o);
          return jfail_at(p, esc_at, "unpaired UTF-16 surrogate in \\u escape", NULL);
        }
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        p->pos += 6;
      } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        free(o);
        return jfail_at(p, esc_at, "unpaired UTF-16 surrogate in \\u escape", NULL);
      } else if (cp == 0) {
        free(o);
        return jfail_at(p, esc_at, "\\u0000 (NUL) in strings is not supported", NULL);
      }
      n += put_utf8(o + n, cp);
      continue;
    }
    size_t k = utf8_len((const unsigned char *)p->s + p->pos, end - p->pos);
    if (!k) {
      free(o);
      return jfail(p, "invalid UTF-8 in string", NULL);
    }
    memcpy(o + n, p->s + p->pos, k);
    n += k;
    p->pos += k;
  }
  o[n] = 0;
  p->pos = end + 1;
  *out = o;
  if (out_len) *out_len = n;
  return 0;
}

static int parse_number(jparser *p, double *out) {
  size_t i = p->pos, st = i;
  const char *s = p->s;
  if (i < p->len && s[i] == '-') i++;
  if (i >= p->len || s[i] < '0' || s[i] > '9') return jfail(p, "invalid number", NULL);
  if (s[i] == '0') {
    i++;
    if (i < p->len && s[i] >= '0' && s[i] <= '9') return jfail(p, "invalid number: leading zero", NULL);
  } else {
    while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
  }
  if (i < p->len && s[i] == '.') {
    i++;
    if (i >= p->len || s[i] < '0' || s[i] > '9') return jfail_at(p, i, "invalid number: digit expected after '.'", NULL);
    while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
  }
  if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < p->len && (s[i] == '+' || s[i] == '-')) i++;
    if (i >= p->len || s[i] < '0' || s[i] > '9') return jfail_at(p, i, "invalid number: digit expected in exponent", NULL);
    while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
  }
  char buf[64];
  char *heap = NULL, *txt = buf;
  size_t n = i - st;
  if (n >= sizeof buf) {
    if (!(heap = hb_malloc(n + 1))) return jfail(p, "out of memory", NULL);
    txt = heap;
  }
  memcpy(txt, s + st, n);
  txt[n] = 0;
  double v = strtod(txt, NULL);
  free(heap);
  if (isinf(v)) return jfail(p, "number out of range", NULL);
  *out = v;
  p->pos = i;
  return 0;
}

static int parse_value(jparser *p, json_value *v, int depth);

static int parse_container(jparser *p, json_value *v, int depth, int is_obj) {
  size_t open_at = p->pos;
  if (depth >= JSON_MAX_DEPTH) return jfail(p, "nesting deeper than 256 levels", NULL);
  v->type = is_obj ? JSON_OBJECT : JSON_ARRAY;
  p->pos++;
  size_t cap = 0;
  char close = is_obj ? '}' : ']';
  skip_ws(p);
  if (p->pos < p->len && p->s[p->pos] == close) {
    p->pos++;
    return 0;
  }
  for (;;) {
    skip_ws(p);
    if (p->pos >= p->len) return jfail_at(p, open_at, is_obj ? "unterminated object" : "unterminated array", NULL);
    if (v->len == cap) {
      size_t ncap = cap ? cap * 2 : 4;
      json_value *it = hb_realloc(v->items, ncap * sizeof *it);
      if (!it) return jfail(p, "out of memory", NULL);
      v->items = it;
      if (is_obj) {
        char **k = hb_realloc(v->keys, ncap * sizeof *k);
        if (!k) return jfail(p, "out of memory", NULL);
        v->keys = k;
      }
      cap = ncap;
    }
    json_value *item = &v->items[v->len];
    memset(item, 0, sizeof *item);
    if (is_obj) {
      if (p->s[p->pos] != '"') return jfail(p, p->s[p->pos] == '}' ? "trailing comma in object" : "expected a string key", NULL);
      char *key;
      if (parse_string(p, &key, NULL)) return -1;
      v->keys[v->len] = key;
      v->len++;   // counted now so free_contents releases the key on error
      skip_ws(p);
      if (p->pos >= p->len || p->s[p->pos] != ':') return jfail(p, "expected ':' after object key", NULL);
      p->pos++;
      skip_ws(p);
      if (parse_value(p, item, depth + 1)) return -1;
    } else {
      if (p->s[p->pos] == ']') return jfail(p, "trailing comma in array", NULL);
      v->len++;
      if (parse_value(p, item, depth + 1)) return -1;
    }
    skip_ws(p);
    if (p->pos >= p->len) return jfail_at(p, open_at, is_obj ? "unterminated object" : "unterminated array", NULL);
    char c = p->s[p->pos];
    if (c == ',') {
      p->pos++;
      continue;
    }
    if (c == close) {
      p->pos++;
      return 0;
    }
    return jfail(p, is_obj ? "expected ',' or '}' in object" : "expected ',' or ']' in array", NULL);
  }
}

static int parse_value(jparser *p, json_value *v, int depth) {
  skip_ws(p);
  if (p->pos >= p->len) return jfail(p, "unexpected end of input, expected a value", NULL);
  char c = p->s[p->pos];
  if (c == '{' || c == '[') return parse_container(p, v, depth, c == '{');
  if (c == '"') {
    v->type = JSON_STRING;
    return parse_string(p, &v->string, &v->len);
  }
  if (c == '-' || (c >= '0' && c <= '9')) {
    v->type = JSON_NUMBER;
    return parse_number(p, &v->number);
  }
  static const struct { const char *word; json_type t; int b; } lits[] = {
      {"true", JSON_BOOL, 1}, {"false", JSON_BOOL, 0}, {"null", JSON_NULL, 0}};
  for (int i = 0; i < 3; i++) {
    size_t n = strlen(lits[i].word);
    if (p->len - p->pos >= n && memcmp(p->s + p->pos, lits[i].word, n) == 0) {
      v->type = lits[i].t;
      v->boolean = lits[i].b;
      p->pos += n;
      return 0;
    }
  }
  char tok[16];
  size_t k = 0;
  while (k < 12 && p->pos + k < p->len && p->s[p->pos + k] > ' ' && p->s[p->pos + k] < 127 &&
         !strchr(",]}:", p->s[p->pos + k])) { tok[k] = p->s[p->pos + k]; k++; }
  tok[k] = 0;
  return jfail(p, k ? "unexpected token '%s'" : "unexpected character", tok);
}

int json_parse(const char *text, size_t len, json_value **out) {
  *out = NULL;
  jparser p = {text, len, 0, 0};
  if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) p.pos = 3;   // UTF-8 byte order mark
  json_value *v = hb_calloc(1, sizeof *v);
  if (!v) return -1;
  if (parse_value(&p, v, 0)) {
    json_free(v);
    return -1;
  }
  skip_ws(&p);
  if (p.pos < len) {
    jfail(&p, "unexpected content after the JSON value", NULL);
    json_free(v);
    return -1;
  }
  *out = v;
  return 0;
}

const json_value *json_get(const json_value *v, const char *key) {
  if (!v || v->type != JSON_OBJECT) return NULL;
  for (size_t i = v->len; i-- > 0;)
    if (strcmp(v->keys[i], key) == 0) return &v->items[i];
  return NULL;
}

int json_get_int(const json_value *obj, const char *key, int64_t *out) {
  const json_value *v = json_get(obj, key);
  if (!v) return 1;
  if (v->type != JSON_NUMBER) return hb_fail("'%s' must be an integer", key);
  double d = v->number;
  if (d != floor(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0)
    return hb_fail("'%s' must be an integer, got %.17g", key, d);
  *out = (int64_t)d;
  return 0;
}

int json_get_double(const json_value *obj, const char *key, double *out) {
  const json_value *v = json_get(obj, key);
  if (!v) return 1;
  if (v->type != JSON_NUMBER) return hb_fail("'%s' must be a number", key);
  *out = v->number;
  return 0;
}

int json_get_bool(const json_value *obj, const char *key, int *out) {
  const json_value *v = json_get(obj, key);
  if (!v) return 1;
  if (v->type != JSON_BOOL) return hb_fail("'%s' must be true or false", key);
  *out = v->boolean;
  return 0;
}

int json_get_string(const json_value *obj, const char *key, const char **out) {
  const json_value *v = json_get(obj, key);
  if (!v) return 1;
  if (v->type != JSON_STRING) return hb_fail("'%s' must be a string", key);
  *out = v->string;
  return 0;
}

// ---- writer -------------------------------------------------------------------------------------

void jw_init(json_writer *w, int pretty) {
  memset(w, 0, sizeof *w);
  w->pretty = pretty;
  w->first[0] = 1;
}

static void jw_put(json_writer *w, const char *s, size_t n) {
  if (w->failed) return;
  if (w->len + n + 1 > w->cap) {
    size_t ncap = w->cap ? w->cap : 256;
    while (ncap < w->len + n + 1) ncap *= 2;
    char *b = realloc(w->buf, ncap);
    if (!b) {
      w->failed = 1;
      return;
    }
    w->buf = b;
    w->cap = ncap;
  }
  memcpy(w->buf + w->len, s, n);
  w->len += n;
  w->buf[w->len] = 0;
}
static void jw_puts(json_writer *w, const char *s) { jw_put(w, s, strlen(s)); }

static void jw_newline(json_writer *w, int depth) {
  if (!w->pretty) return;
  jw_put(w, "\n", 1);
  for (int i = 0; i < depth; i++) jw_put(w, "  ", 2);
}

// Comma and indentation before a value or key.
static void jw_pre(json_writer *w) {
  if (w->after_key) {
    w->after_key = 0;
    return;
  }
  if (w->depth == 0) return;
  if (!w->first[w->depth]) jw_put(w, ",", 1);
  w->first[w->depth] = 0;
  jw_newline(w, w->depth);
}

static void jw_open(json_writer *w, const char *c) {
  jw_pre(w);
  jw_puts(w, c);
  if (w->depth + 1 >= (int)(sizeof w->first / sizeof w->first[0])) {
    w->failed = 2;
    return;
  }
  w->depth++;
  w->first[w->depth] = 1;
}

static void jw_close(json_writer *w, const char *c) {
  if (w->depth <= 0) {
    w->failed = 3;
    return;
  }
  int empty = w->first[w->depth];
  w->depth--;
  if (!empty) jw_newline(w, w->depth);
  jw_puts(w, c);
}

void jw_begin_object(json_writer *w) { jw_open(w, "{"); }
void jw_end_object(json_writer *w) { jw_close(w, "}"); }
void jw_begin_array(json_writer *w) { jw_open(w, "["); }
void jw_end_array(json_writer *w) { jw_close(w, "]"); }

static void jw_quoted(json_writer *w, const char *s) {
  jw_put(w, "\"", 1);
  const char *run = s;
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    const char *esc = NULL;
    char u[8];
    switch (c) {
      case '"': esc = "\\\""; break;
      case '\\': esc = "\\\\"; break;
      case '\n': esc = "\\n"; break;
      case '\r': esc = "\\r"; break;
      case '\t': esc = "\\t"; break;
      case '\b': esc = "\\b"; break;
      case '\f': esc = "\\f"; break;
      default:
        if (c < 0x20) {
          snprintf(u, sizeof u, "\\u%04x", c);
          esc = u;
        }
    }
    if (esc) {
      jw_put(w, run, (size_t)(s - run));
      jw_puts(w, esc);
      run = s + 1;
    }
  }
  jw_put(w, run, (size_t)(s - run));
  jw_put(w, "\"", 1);
}

void jw_key(json_writer *w, const char *key) {
  jw_pre(w);
  jw_quoted(w, key);
  jw_puts(w, w->pretty ? ": " : ":");
  w->after_key = 1;
}

void jw_string(json_writer *w, const char *s) {
  jw_pre(w);
  if (!s) jw_puts(w, "null");
  else jw_quoted(w, s);
}

void jw_int(json_writer *w, int64_t v) {
  char b[32];
  snprintf(b, sizeof b, "%lld", (long long)v);
  jw_pre(w);
  jw_puts(w, b);
}

void jw_double(json_writer *w, double v) {
  jw_pre(w);
  if (!isfinite(v)) {
    jw_puts(w, "null");
    return;
  }
  char b[40];
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(b, sizeof b, "%.*g", prec, v);
    if (strtod(b, NULL) == v) break;
  }
  if (!strpbrk(b, ".eEn")) strcat(b, ".0");   // keep it a float for Python readers: 3 -> 3.0
  jw_puts(w, b);
}

void jw_bool(json_writer *w, int v) {
  jw_pre(w);
  jw_puts(w, v ? "true" : "false");
}

void jw_null(json_writer *w) {
  jw_pre(w);
  jw_puts(w, "null");
}

char *jw_finish(json_writer *w, size_t *len) {
  const char *err = w->failed == 1 ? "out of memory" : w->failed == 2 ? "nesting deeper than 63 levels"
                  : w->failed == 3 ? "end without begin" : w->depth ? "unclosed object or array"
                  : w->after_key ? "key without value" : NULL;
  if (!err && w->len == 0) err = "nothing written";
  if (err) {
    hb_fail("JSON writer: %s", err);
    free(w->buf);
    w->buf = NULL;
    return NULL;
  }
  if (w->pretty) jw_put(w, "\n", 1);
  char *out = w->buf;
  if (len) *len = w->len;
  w->buf = NULL;
  w->len = w->cap = 0;
  return out;
}
