// Phone alignments -> frame labels (conventions in phones.h).
#include "eval/phones.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

void phone_inv_free(hb_phone_inv *v) {
  for (int i = 0; i < v->n; i++) free(v->name[i]);
  free(v->name);
  memset(v, 0, sizeof *v);
}

int phone_inv_id(hb_phone_inv *v, const char *name, int add) {
  for (int i = 0; i < v->n; i++)
    if (!strcmp(v->name[i], name)) return i;
  if (!add) return -1;
  if (v->n == v->cap) {
    int cap = v->cap ? 2 * v->cap : 64;
    char **p = hb_realloc(v->name, sizeof(char *) * (size_t)cap);
    if (!p) return -2;
    v->name = p;
    v->cap = cap;
  }
  size_t len = strlen(name);
  char *c = hb_malloc(len + 1);
  if (!c) return -2;
  memcpy(c, name, len + 1);
  v->name[v->n] = c;
  return v->n++;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void phone_inv_sort(hb_phone_inv *v) {
  if (v->n > 1) qsort(v->name, (size_t)v->n, sizeof(char *), cmp_str);
}

void alignment_free(hb_alignment *a) {
  free(a->id);
  free(a->end);
  memset(a, 0, sizeof *a);
}

// Splits token [p, p+len) as NAME:SECONDS at the last ':'. Returns 0 and fills name/end, -1 if not.
static int parse_token(const char *p, size_t len, char *name, size_t name_cap, double *end) {
  const char *colon = NULL;
  for (size_t i = 0; i < len; i++)
    if (p[i] == ':') colon = p + i;
  if (!colon || colon == p || (size_t)(colon - p) >= name_cap) return -1;
  size_t nlen = (size_t)(colon - p);
  char num[64];
  size_t tlen = len - nlen - 1;
  if (tlen == 0 || tlen >= sizeof num) return -1;
  memcpy(num, colon + 1, tlen);
  num[tlen] = 0;
  char *e;
  errno = 0;
  double v = strtod(num, &e);
  if (*e || errno || !isfinite(v) || v < 0) return -1;
  memcpy(name, p, nlen);
  name[nlen] = 0;
  *end = v;
  return 0;
}

int alignment_parse(const char *s, hb_phone_inv *inv, int add, hb_alignment *a) {
  memset(a, 0, sizeof *a);
  if (!s) return 1;
  int ntok = 0;
  for (const char *p = s; *p;) {
    while (*p == ' ') p++;
    if (!*p) break;
    ntok++;
    while (*p && *p != ' ') p++;
  }
  if (ntok == 0) return 1;
  char name[64];
  double end;
  const char *p = s;
  while (*p == ' ') p++;
  size_t len = strcspn(p, " ");
  if (parse_token(p, len, name, sizeof name, &end)) return 1;  // not an alignment
  a->id = hb_malloc(sizeof(int32_t) * (size_t)ntok);
  a->end = hb_malloc(sizeof(double) * (size_t)ntok);
  if (!a->id || !a->end) goto fail;
  for (int k = 0; k < ntok; k++) {
    while (*p == ' ') p++;
    len = strcspn(p, " ");
    if (parse_token(p, len, name, sizeof name, &end)) {
      hb_fail("phone %d '%.*s' is not PHONE:END_SECONDS", k + 1, (int)(len > 40 ? 40 : len), p);
      goto fail;
    }
    if (k > 0 && end < a->end[k - 1]) {
      hb_fail("phone %d '%s' ends at %.3f s, before the previous one (%.3f s)", k + 1, name, end, a->end[k - 1]);
      goto fail;
    }
    int id = phone_inv_id(inv, name, add);
    if (id == -2) goto fail;
    if (id < 0) {
      hb_fail("phone '%s' is not in the inventory", name);
      goto fail;
    }
    a->id[k] = id;
    a->end[k] = end;
    a->n++;
    p += len;
  }
  return 0;
fail:
  alignment_free(a);
  return -1;
}

int alignment_to_frames(const hb_alignment *a, double rate, int64_t T, int silence, int32_t *out) {
  if (a->n <= 0 || !(rate > 0)) return hb_fail("empty alignment or bad rate %g", rate);
  const double dur = (double)T / rate, last = a->end[a->n - 1];
  if (dur - last > HB_PHONE_TOL)
    return hb_fail("%lld frames at %g Hz = %.3f s, but the phones end at %.3f s (tolerance %.1f s)", (long long)T,
                   rate, dur, last, HB_PHONE_TOL);
  int k = a->n - 1;
  while (k > 0 && a->id[k] == silence) k--;
  if (a->id[k] != silence && a->end[k] > dur + HB_PHONE_TOL)
    return hb_fail("phone %d ends at %.3f s, past the %lld frames at %g Hz = %.3f s (tolerance %.1f s)", k + 1,
                   a->end[k], (long long)T, rate, dur, HB_PHONE_TOL);
  int j = 0;
  for (int64_t i = 0; i < T; i++) {
    double t = ((double)i + 0.5) / rate;
    while (j < a->n - 1 && a->end[j] <= t) j++;
    out[i] = a->id[j];
  }
  return 0;
}
