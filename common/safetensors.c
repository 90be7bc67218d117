// safetensors reader (validates everything) and writer (F32 / BF16, atomic).
#include "common/safetensors.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/json.h"

#define ST_MAX_HEADER (100u * 1024 * 1024)   // the limit Hugging Face's implementation uses

static const struct { const char *name; hb_dtype dt; size_t size; } k_dtypes[] = {
    {"F32", HB_DT_F32, 4}, {"F16", HB_DT_F16, 2}, {"BF16", HB_DT_BF16, 2}, {"F64", HB_DT_F64, 8},
    {"I64", HB_DT_I64, 8}, {"I32", HB_DT_I32, 4}, {"I16", HB_DT_I16, 2},   {"I8", HB_DT_I8, 1},
    {"U8", HB_DT_U8, 1},   {"BOOL", HB_DT_BOOL, 1},
};
#define N_DTYPES (sizeof k_dtypes / sizeof k_dtypes[0])

const char *st_dtype_name(hb_dtype dt) {
  for (size_t i = 0; i < N_DTYPES; i++)
    if (k_dtypes[i].dt == dt) return k_dtypes[i].name;
  return "?";
}

size_t st_dtype_size(hb_dtype dt) {
  for (size_t i = 0; i < N_DTYPES; i++)
    if (k_dtypes[i].dt == dt) return k_dtypes[i].size;
  return 0;
}

size_t st_numel(const hb_st_tensor *t) {
  size_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];   // validated at open: no overflow
  return n;
}

void st_close(hb_safetensors *st) {
  if (!st) return;
  for (int i = 0; i < st->n; i++) free(st->tensors[i].name);
  for (int i = 0; i < st->n_meta; i++) {
    free(st->meta_keys[i]);
    free(st->meta_values[i]);
  }
  free(st->tensors);
  free(st->meta_keys);
  free(st->meta_values);
  free(st->data);
  free(st->path);
  memset(st, 0, sizeof *st);
}

const hb_st_tensor *st_find(const hb_safetensors *st, const char *name) {
  for (int i = 0; i < st->n; i++)
    if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i];
  return NULL;
}

// A JSON number that is an integer in [0, 2^53] (exactly representable).
static int json_uint(const json_value *v, uint64_t *out) {
  if (!v || v->type != JSON_NUMBER || v->number < 0 || v->number > 9007199254740992.0 || v->number != floor(v->number))
    return -1;
  *out = (uint64_t)v->number;
  return 0;
}

static int parse_tensor(const char *path, const char *name, const json_value *e, size_t data_len, hb_st_tensor *t) {
  if (e->type != JSON_OBJECT) return hb_fail("%s: tensor '%s': header entry is not an object", path, name);
  for (size_t i = 0; i < e->len; i++)
    if (strcmp(e->keys[i], "dtype") && strcmp(e->keys[i], "shape") && strcmp(e->keys[i], "data_offsets"))
      return hb_fail("%s: tensor '%s': unknown field '%s'", path, name, e->keys[i]);
  const json_value *dt = json_get(e, "dtype"), *sh = json_get(e, "shape"), *off = json_get(e, "data_offsets");
  if (!dt || dt->type != JSON_STRING) return hb_fail("%s: tensor '%s': missing or non-string 'dtype'", path, name);
  size_t k = 0;
  while (k < N_DTYPES && strcmp(k_dtypes[k].name, dt->string) != 0) k++;
  if (k == N_DTYPES) return hb_fail("%s: tensor '%s': unknown dtype '%s'", path, name, dt->string);
  t->dtype = k_dtypes[k].dt;
  if (!sh || sh->type != JSON_ARRAY) return hb_fail("%s: tensor '%s': missing or non-array 'shape'", path, name);
  if (sh->len > HB_ST_MAX_DIMS) return hb_fail("%s: tensor '%s': %zu dimensions, at most %d supported", path, name, sh->len, HB_ST_MAX_DIMS);
  t->ndim = (int)sh->len;
  size_t bytes = k_dtypes[k].size;
  for (int i = 0; i < t->ndim; i++) {
    uint64_t d;
    if (json_uint(&sh->items[i], &d)) return hb_fail("%s: tensor '%s': shape[%d] is not a non-negative integer", path, name, i);
    t->shape[i] = (int64_t)d;
    if (d > SIZE_MAX || hb_mul_size(bytes, (size_t)d, &bytes))
      return hb_fail("%s: tensor '%s': shape overflows the address space (size_t)", path, name);
  }
  uint64_t b, en;
  if (!off || off->type != JSON_ARRAY || off->len != 2 || json_uint(&off->items[0], &b) || json_uint(&off->items[1], &en))
    return hb_fail("%s: tensor '%s': 'data_offsets' must be [begin, end] with non-negative integers", path, name);
  if (b > en) return hb_fail("%s: tensor '%s': data_offsets [%llu, %llu] has begin > end", path, name, (unsigned long long)b, (unsigned long long)en);
  if (en > data_len)
    return hb_fail("%s: tensor '%s': data_offsets [%llu, %llu] outside the data block (%zu bytes)", path, name,
                   (unsigned long long)b, (unsigned long long)en, data_len);
  if (en - b != bytes) {
    char shape[160];
    size_t o = 0;
    for (int i = 0; i < t->ndim && o < sizeof shape - 24; i++)
      o += (size_t)snprintf(shape + o, sizeof shape - o, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    shape[o] = 0;
    return hb_fail("%s: tensor '%s': shape [%s] of %s needs %zu bytes but data_offsets span %llu", path, name,
                   shape, dt->string, bytes, (unsigned long long)(en - b));
  }
  t->begin = (size_t)b;
  t->end = (size_t)en;
  return 0;
}

static const hb_st_tensor *g_sort_tensors;
static int cmp_begin(const void *a, const void *b) {
  const hb_st_tensor *x = &g_sort_tensors[*(const int *)a], *y = &g_sort_tensors[*(const int *)b];
  return (x->begin > y->begin) - (x->begin < y->begin);
}

static int parse_header(hb_safetensors *st, const char *hdr, size_t hlen) {
  const char *path = st->path;
  json_value *root = NULL;
  if (json_parse(hdr, hlen, &root)) return hb_fail_prefix("%s: invalid JSON header", path);
  int rc = -1;
  if (root->type != JSON_OBJECT) {
    hb_fail("%s: header is not a JSON object", path);
    goto done;
  }
  size_t nt = 0;
  for (size_t i = 0; i < root->len; i++) nt += strcmp(root->keys[i], "__metadata__") != 0;
  if (nt > 1000000) {
    hb_fail("%s: implausible number of tensors (%zu)", path, nt);
    goto done;
  }
  st->tensors = hb_calloc(nt ? nt : 1, sizeof *st->tensors);
  if (!st->tensors) goto done;
  for (size_t i = 0; i < root->len; i++) {
    const char *key = root->keys[i];
    const json_value *e = &root->items[i];
    for (size_t j = 0; j < i; j++)
      if (strcmp(root->keys[j], key) == 0) {
        hb_fail("%s: tensor '%s' appears twice in the header", path, key);
        goto done;
      }
    if (strcmp(key, "__metadata__") == 0) {
      if (e->type != JSON_OBJECT) {
        hb_fail("%s: __metadata__ is not an object", path);
        goto done;
      }
      st->meta_keys = hb_calloc(e->len ? e->len : 1, sizeof(char *));
      st->meta_values = hb_calloc(e->len ? e->len : 1, sizeof(char *));
      if (!st->meta_keys || !st->meta_values) goto done;
      for (size_t m = 0; m < e->len; m++) {
        if (e->items[m].type != JSON_STRING) {
          hb_fail("%s: __metadata__ value '%s' is not a string", path, e->keys[m]);
          goto done;
        }
        st->meta_keys[st->n_meta] = strdup(e->keys[m]);
        st->meta_values[st->n_meta] = strdup(e->items[m].string);
        st->n_meta++;
        if (!st->meta_keys[st->n_meta - 1] || !st->meta_values[st->n_meta - 1]) {
          hb_fail("out of memory");
          goto done;
        }
      }
      continue;
    }
    hb_st_tensor *t = &st->tensors[st->n];
    if (parse_tensor(path, key, e, st->data_len, t)) goto done;
    if (!(t->name = strdup(key))) {
      hb_fail("out of memory");
      goto done;
    }
    st->n++;
  }
  // no two non-empty tensors share bytes
  int *idx = hb_malloc((size_t)(st->n ? st->n : 1) * sizeof *idx);
  if (!idx) goto done;
  int m = 0;
  for (int i = 0; i < st->n; i++)
    if (st->tensors[i].end > st->tensors[i].begin) idx[m++] = i;
  g_sort_tensors = st->tensors;
  qsort(idx, (size_t)m, sizeof *idx, cmp_begin);
  for (int i = 1; i < m; i++) {
    const hb_st_tensor *a = &st->tensors[idx[i - 1]], *b = &st->tensors[idx[i]];
    if (b->begin < a->end) {
      hb_fail("%s: tensors '%s' [%zu, %zu) and '%s' [%zu, %zu) overlap", path, a->name, a->begin, a->end, b->name,
              b->begin, b->end);
      free(idx);
      goto done;
    }
  }
  free(idx);
  rc = 0;
done:
  json_free(root);
  return rc;
}

int st_open(const char *path, hb_safetensors *st) {
  memset(st, 0, sizeof *st);
  if (!(st->path = strdup(path))) return hb_fail("out of memory");
  FILE *f = fopen(path, "rb");
  char *hdr = NULL;
  if (!f) {
    hb_fail("%s: cannot open: %s", path, strerror(errno));
    goto fail;
  }
  struct stat sb;
  if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
    hb_fail("%s: not a regular file", path);
    goto fail;
  }
  uint64_t fsize = (uint64_t)sb.st_size;
  unsigned char lenb[8];
  if (fsize < 8 || fread(lenb, 1, 8, f) != 8) {
    hb_fail("%s: truncated: %llu bytes, too short for the 8-byte header length", path, (unsigned long long)fsize);
    goto fail;
  }
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | lenb[i];
  if (hlen > fsize - 8) {
    hb_fail("%s: header length %llu is beyond the end of the file (%llu bytes): truncated or not safetensors", path,
            (unsigned long long)hlen, (unsigned long long)fsize);
    goto fail;
  }
  if (hlen < 2 || hlen > ST_MAX_HEADER) {
    hb_fail("%s: implausible header length %llu (not a safetensors file?)", path, (unsigned long long)hlen);
    goto fail;
  }
  if (!(hdr = hb_malloc((size_t)hlen))) goto fail;
  if (fread(hdr, 1, (size_t)hlen, f) != (size_t)hlen) {
    hb_fail("%s: short read in header", path);
    goto fail;
  }
  uint64_t dlen = fsize - 8 - hlen;
  if (dlen > SIZE_MAX) {
    hb_fail("%s: data block too large", path);
    goto fail;
  }
  st->data_len = (size_t)dlen;
  if (parse_header(st, hdr, (size_t)hlen)) goto fail;
  free(hdr);
  hdr = NULL;
  if (!(st->data = hb_malloc(st->data_len))) goto fail;
  if (st->data_len && fread(st->data, 1, st->data_len, f) != st->data_len) {
    hb_fail("%s: short read in data block", path);
    goto fail;
  }
  fclose(f);
  return 0;
fail:
  if (f) fclose(f);
  free(hdr);
  st_close(st);
  return -1;
}

// IEEE half -> float, exact for every input (subnormals, inf, NaN keep their meaning).
static float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (man << 13);
  } else if (exp == 0) {
    float m = ldexpf((float)man, -24);   // subnormal: man * 2^-24, exact in float
    return sign ? -m : m;
  } else {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

int st_read_f32(const hb_safetensors *st, const hb_st_tensor *t, float *dst, size_t count) {
  size_t n = st_numel(t);
  if (count != n)
    return hb_fail("%s: tensor '%s': has %zu elements, caller expects %zu", st->path, t->name, n, count);
  const uint8_t *p = st->data + t->begin;
  switch (t->dtype) {
    case HB_DT_F32:
      for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
        memcpy(&dst[i], &u, 4);
      }
      return 0;
    case HB_DT_F16:
      for (size_t i = 0; i < n; i++) dst[i] = half_to_float((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
      return 0;
    case HB_DT_BF16:
      for (size_t i = 0; i < n; i++) {
        uint32_t u = ((uint32_t)p[2 * i] | (uint32_t)p[2 * i + 1] << 8) << 16;
        memcpy(&dst[i], &u, 4);
      }
      return 0;
    case HB_DT_F64:
      for (size_t i = 0; i < n; i++) {
        uint64_t u = 0;
        for (int b = 7; b >= 0; b--) u = (u << 8) | p[8 * i + (size_t)b];
        double d;
        memcpy(&d, &u, 8);
        dst[i] = (float)d;
      }
      return 0;
    default:
      return hb_fail("%s: tensor '%s': dtype %s is not a floating-point type", st->path, t->name, st_dtype_name(t->dtype));
  }
}

// float -> bfloat16, round to nearest even; NaN stays a (quiet) NaN.
static uint16_t float_to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40);
  u += 0x7FFFu + ((u >> 16) & 1);
  return (uint16_t)(u >> 16);
}

int st_write(const char *path, int n, const hb_st_entry *entries, hb_dtype dtype,
             int n_meta, const char *const *meta_keys, const char *const *meta_values) {
  if (dtype != HB_DT_F32 && dtype != HB_DT_BF16)
    return hb_fail("%s: the writer stores F32 or BF16, not %s", path, st_dtype_name(dtype));
  size_t es = st_dtype_size(dtype);
  json_writer w;
  jw_init(&w, 0);
  jw_begin_object(&w);
  if (n_meta > 0) {
    jw_key(&w, "__metadata__");
    jw_begin_object(&w);
    for (int i = 0; i < n_meta; i++) {
      jw_key(&w, meta_keys[i]);
      jw_string(&w, meta_values[i] ? meta_values[i] : "");
    }
    jw_end_object(&w);
  }
  size_t off = 0;
  for (int i = 0; i < n; i++) {
    const hb_st_entry *e = &entries[i];
    if (!e->name || !e->name[0] || strcmp(e->name, "__metadata__") == 0) {
      free(jw_finish(&w, NULL));
      return hb_fail("%s: entry %d: invalid tensor name", path, i);
    }
    for (int j = 0; j < i; j++)
      if (strcmp(entries[j].name, e->name) == 0) {
        free(jw_finish(&w, NULL));
        return hb_fail("%s: tensor '%s' given twice", path, e->name);
      }
    size_t bytes = es;
    int bad = e->ndim < 0 || e->ndim > HB_ST_MAX_DIMS;
    for (int d = 0; !bad && d < e->ndim; d++)
      bad = e->shape[d] < 0 || hb_mul_size(bytes, (size_t)e->shape[d], &bytes) != 0;
    if (bad || (bytes && !e->data) || hb_add_size(off, bytes, &off)) {
      free(jw_finish(&w, NULL));
      return hb_fail("%s: tensor '%s': invalid shape or data", path, e->name);
    }
    jw_key(&w, e->name);
    jw_begin_object(&w);
    jw_key(&w, "dtype");
    jw_string(&w, st_dtype_name(dtype));
    jw_key(&w, "shape");
    jw_begin_array(&w);
    for (int d = 0; d < e->ndim; d++) jw_int(&w, e->shape[d]);
    jw_end_array(&w);
    jw_key(&w, "data_offsets");
    jw_begin_array(&w);
    jw_int(&w, (int64_t)(off - bytes));
    jw_int(&w, (int64_t)off);
    jw_end_array(&w);
    jw_end_object(&w);
  }
  jw_end_object(&w);
  size_t hlen;
  char *hdr = jw_finish(&w, &hlen);
  if (!hdr) return hb_fail_prefix("%s", path);
  size_t padded = (hlen + 7) / 8 * 8;   // spaces up to a multiple of 8, as Hugging Face writes
  char *h2 = hb_realloc(hdr, padded + 1);
  if (!h2) {
    free(hdr);
    return hb_fail_prefix("%s", path);
  }
  hdr = h2;
  memset(hdr + hlen, ' ', padded - hlen);

  size_t tl = strlen(path) + 8;
  char *tmp = hb_malloc(tl);
  if (!tmp) {
    free(hdr);
    return -1;
  }
  snprintf(tmp, tl, "%s.tmp", path);
  FILE *f = fopen(tmp, "wb");
  int rc = 0;
  if (!f) {
    rc = hb_fail("%s: cannot create: %s", tmp, strerror(errno));
  } else {
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int ok = fwrite(lenb, 1, 8, f) == 8 && fwrite(hdr, 1, padded, f) == padded;
    unsigned char buf[8192];
    for (int i = 0; ok && i < n; i++) {
      size_t cnt = 1;
      for (int d = 0; d < entries[i].ndim; d++) cnt *= (size_t)entries[i].shape[d];
      const float *x = entries[i].data;
      size_t per = sizeof buf / es;
      for (size_t s = 0; ok && s < cnt; s += per) {
        size_t k = cnt - s < per ? cnt - s : per;
        for (size_t j = 0; j < k; j++) {
          if (dtype == HB_DT_BF16) {
            uint16_t h = float_to_bf16(x[s + j]);
            buf[2 * j] = (unsigned char)h;
            buf[2 * j + 1] = (unsigned char)(h >> 8);
          } else {
            uint32_t u;
            memcpy(&u, &x[s + j], 4);
            for (int b = 0; b < 4; b++) buf[4 * j + (size_t)b] = (unsigned char)(u >> (8 * b));
          }
        }
        ok = fwrite(buf, es, k, f) == k;
      }
    }
    if (fflush(f) != 0) ok = 0;
    if (fclose(f) != 0) ok = 0;
    if (!ok) rc = hb_fail("%s: write failed: %s", tmp, strerror(errno));
    if (rc == 0) rc = file_commit_rename(tmp, path);
    if (rc) unlink(tmp);
  }
  free(tmp);
  free(hdr);
  return rc;
}

float *st_load_f32(const hb_safetensors *st, const char *name, int ndim, int64_t *shape, size_t *count) {
  const hb_st_tensor *t = st_find(st, name);
  if (!t) {
    hb_fail("%s: tensor '%s' missing", st->path, name);
    return NULL;
  }
  if (ndim >= 0 && t->ndim != ndim) {
    hb_fail("%s: tensor '%s' has %d dimensions, expected %d", st->path, name, t->ndim, ndim);
    return NULL;
  }
  const size_t n = st_numel(t);
  float *p = hb_malloc(sizeof(float) * (n ? n : 1));
  if (!p || st_read_f32(st, t, p, n)) {
    free(p);
    return NULL;
  }
  if (shape)
    for (int i = 0; i < t->ndim; i++) shape[i] = t->shape[i];
  if (count) *count = n;
  return p;
}
