#include "data_prep/h5io.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"

void h5io_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

static hid_t str_type(void) {
  hid_t t = H5Tcopy(H5T_C_S1);
  if (t < 0) return -1;
  if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
    H5Tclose(t);
    return -1;
  }
  return t;
}

static int write_attr(hid_t loc, const char *key, hid_t type, const void *value) {
  int rc = -1;
  hid_t s = H5Screate(H5S_SCALAR), a = -1;
  if (s < 0) goto done;
  if (H5Aexists(loc, key) > 0 && H5Adelete(loc, key) < 0) goto done;
  if ((a = H5Acreate2(loc, key, type, s, H5P_DEFAULT, H5P_DEFAULT)) < 0) goto done;
  if (H5Awrite(a, type, value) < 0) goto done;
  rc = 0;
done:
  if (a >= 0) H5Aclose(a);
  if (s >= 0) H5Sclose(s);
  return rc ? hb_fail("cannot write attribute '%s'", key) : 0;
}

int h5io_write_str_attr(hid_t loc, const char *key, const char *value) {
  hid_t t = str_type();
  if (t < 0) return hb_fail("attribute '%s': string type", key);
  int rc = write_attr(loc, key, t, &value);
  H5Tclose(t);
  return rc;
}

int h5io_write_i64_attr(hid_t loc, const char *key, int64_t v) { return write_attr(loc, key, H5T_NATIVE_INT64, &v); }
int h5io_write_f64_attr(hid_t loc, const char *key, double v) { return write_attr(loc, key, H5T_NATIVE_DOUBLE, &v); }

static hid_t open_attr(hid_t loc, const char *key) {
  if (H5Aexists(loc, key) <= 0) {
    hb_fail("no attribute '%s'", key);
    return -1;
  }
  hid_t a = H5Aopen(loc, key, H5P_DEFAULT);
  if (a < 0) hb_fail("cannot open attribute '%s'", key);
  return a;
}

int h5io_read_str_attr(hid_t loc, const char *key, char **out) {
  *out = NULL;
  hid_t a = open_attr(loc, key);
  if (a < 0) return -1;
  int rc = -1;
  hid_t ft = H5Aget_type(a), sp = H5Aget_space(a), mt = -1;
  if (ft < 0 || sp < 0 || H5Tget_class(ft) != H5T_STRING || H5Sget_simple_extent_npoints(sp) != 1) {
    hb_fail("attribute '%s' is not a single string", key);
    goto done;
  }
  if (H5Tis_variable_str(ft) > 0) {
    char *v = NULL;
    if ((mt = str_type()) < 0 || H5Aread(a, mt, &v) < 0 || !v) {
      hb_fail("cannot read attribute '%s'", key);
      goto done;
    }
    *out = strdup(v);
    H5free_memory(v);
  } else {
    size_t n = H5Tget_size(ft);
    char *v = hb_calloc(n + 1, 1);
    if (!v) goto done;
    if ((mt = H5Tcopy(ft)) < 0 || H5Aread(a, mt, v) < 0) {
      free(v);
      hb_fail("cannot read attribute '%s'", key);
      goto done;
    }
    *out = v;
  }
  rc = *out ? 0 : hb_fail("out of memory reading attribute '%s'", key);
done:
  if (mt >= 0) H5Tclose(mt);
  if (ft >= 0) H5Tclose(ft);
  if (sp >= 0) H5Sclose(sp);
  H5Aclose(a);
  return rc;
}

static int read_num_attr(hid_t loc, const char *key, hid_t mt, void *v) {
  hid_t a = open_attr(loc, key);
  if (a < 0) return -1;
  hid_t ft = H5Aget_type(a), sp = H5Aget_space(a);
  H5T_class_t c = ft >= 0 ? H5Tget_class(ft) : H5T_NO_CLASS;
  int ok = (c == H5T_INTEGER || c == H5T_FLOAT) && sp >= 0 && H5Sget_simple_extent_npoints(sp) == 1 &&
           H5Aread(a, mt, v) >= 0;
  if (ft >= 0) H5Tclose(ft);
  if (sp >= 0) H5Sclose(sp);
  H5Aclose(a);
  return ok ? 0 : hb_fail("attribute '%s' is not a single number", key);
}

int h5io_read_i64_attr(hid_t loc, const char *key, int64_t *v) { return read_num_attr(loc, key, H5T_NATIVE_INT64, v); }
int h5io_read_f64_attr(hid_t loc, const char *key, double *v) { return read_num_attr(loc, key, H5T_NATIVE_DOUBLE, v); }

static int write_nd(hid_t loc, const char *name, hid_t ft, hid_t mt, const void *data, int rank,
                    const hsize_t *dims, const hsize_t *chunk) {
  hsize_t maxd[2] = {H5S_UNLIMITED, rank > 1 ? dims[1] : 0};
  hid_t sp = H5Screate_simple(rank, dims, maxd), pl = H5Pcreate(H5P_DATASET_CREATE), ds = -1;
  int rc = -1;
  if (sp < 0 || pl < 0 || H5Pset_chunk(pl, rank, chunk) < 0) goto done;
  if ((ds = H5Dcreate2(loc, name, ft, sp, H5P_DEFAULT, pl, H5P_DEFAULT)) < 0) goto done;
  if (dims[0] > 0 && H5Dwrite(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) goto done;
  rc = 0;
done:
  if (ds >= 0 && H5Dclose(ds) < 0) rc = -1;
  if (pl >= 0) H5Pclose(pl);
  if (sp >= 0) H5Sclose(sp);
  return rc ? hb_fail("cannot write dataset /%s (disk full?)", name) : 0;
}

static hsize_t clamp_chunk(int64_t c) { return (hsize_t)(c < 1 ? 1 : c > (1 << 20) ? (1 << 20) : c); }

int h5io_write_1d(hid_t loc, const char *name, hid_t ft, hid_t mt, const void *data, int64_t n, int64_t chunk) {
  hsize_t dims[1] = {(hsize_t)n}, ch[1] = {clamp_chunk(chunk)};
  return write_nd(loc, name, ft, mt, data, 1, dims, ch);
}

int h5io_write_2d_f32(hid_t loc, const char *name, const float *data, int64_t n, int d, int64_t chunk_rows) {
  hsize_t dims[2] = {(hsize_t)n, (hsize_t)d}, ch[2] = {clamp_chunk(chunk_rows), (hsize_t)d};
  return write_nd(loc, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, data, 2, dims, ch);
}

int h5io_write_strings(hid_t loc, const char *name, char *const *s, int64_t n) {
  hid_t t = str_type();
  if (t < 0) return hb_fail("/%s: string type", name);
  int rc = h5io_write_1d(loc, name, t, t, s, n, 1024);
  H5Tclose(t);
  return rc;
}

int h5io_len_1d(hid_t loc, const char *name, int64_t *n, H5T_class_t *cls) {
  htri_t ex = H5Lexists(loc, name, H5P_DEFAULT);
  if (ex <= 0) return hb_fail("no dataset /%s", name);
  hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
  if (ds < 0) return hb_fail("/%s is not a dataset", name);
  hid_t sp = H5Dget_space(ds), ft = H5Dget_type(ds);
  int rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
  hsize_t d = 0;
  if (rank == 1) H5Sget_simple_extent_dims(sp, &d, NULL);
  if (cls) *cls = ft >= 0 ? H5Tget_class(ft) : H5T_NO_CLASS;
  if (ft >= 0) H5Tclose(ft);
  if (sp >= 0) H5Sclose(sp);
  H5Dclose(ds);
  if (rank != 1) return hb_fail("/%s: expected a 1-d dataset, got rank %d", name, rank);
  *n = (int64_t)d;
  return 0;
}

int h5io_read_1d(hid_t loc, const char *name, hid_t mt, int64_t start, int64_t n, void *out) {
  if (n == 0) return 0;
  hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
  if (ds < 0) return hb_fail("no dataset /%s", name);
  hid_t fs = H5Dget_space(ds), ms = -1;
  hsize_t st[1] = {(hsize_t)start}, cnt[1] = {(hsize_t)n};
  int rc = -1;
  if (fs < 0 || (ms = H5Screate_simple(1, cnt, NULL)) < 0) goto done;
  if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, st, NULL, cnt, NULL) < 0) goto done;
  if (H5Dread(ds, mt, ms, fs, H5P_DEFAULT, out) < 0) goto done;
  rc = 0;
done:
  if (ms >= 0) H5Sclose(ms);
  if (fs >= 0) H5Sclose(fs);
  H5Dclose(ds);
  return rc ? hb_fail("/%s: cannot read elements [%lld, %lld) (wrong type or corrupt file)", name,
                      (long long)start, (long long)(start + n))
            : 0;
}

void h5io_free_strings(char **s, int64_t n) {
  if (!s) return;
  for (int64_t i = 0; i < n; i++) free(s[i]);
  free(s);
}

int h5io_read_strings(hid_t loc, const char *name, int64_t n, char ***out) {
  *out = NULL;
  size_t bytes;
  if (hb_mul_size((size_t)n + 1, sizeof(char *), &bytes)) return -1;
  char **s = hb_calloc((size_t)n + 1, sizeof(char *));
  if (!s) return -1;
  hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
  if (ds < 0) {
    free(s);
    return hb_fail("no dataset /%s", name);
  }
  hid_t ft = H5Dget_type(ds), mt = -1, sp = H5Dget_space(ds);
  hssize_t npts = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
  if (sp >= 0) H5Sclose(sp);
  int rc = -1;
  if (npts != (hssize_t)n) {
    hb_fail("/%s has %lld strings, expected %lld", name, (long long)npts, (long long)n);
    goto done;
  }
  if (ft < 0 || H5Tget_class(ft) != H5T_STRING) {
    hb_fail("/%s is not a string dataset", name);
    goto done;
  }
  if (H5Tis_variable_str(ft) > 0) {
    char **v = hb_calloc((size_t)n + 1, sizeof(char *));
    if (!v || (mt = str_type()) < 0 || (n > 0 && H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0)) {
      free(v);
      hb_fail("/%s: cannot read strings", name);
      goto done;
    }
    rc = 0;
    for (int64_t i = 0; i < n; i++) {
      s[i] = strdup(v[i] ? v[i] : "");
      if (!s[i]) rc = -1;
      if (v[i]) H5free_memory(v[i]);
    }
    free(v);
    if (rc) hb_fail("/%s: out of memory", name);
  } else {
    size_t w = H5Tget_size(ft), total;
    if (hb_mul_size(w, (size_t)n, &total)) goto done;
    char *buf = hb_malloc(total + 1);
    if (!buf || (mt = H5Tcopy(ft)) < 0 || (n > 0 && H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)) {
      free(buf);
      hb_fail("/%s: cannot read strings", name);
      goto done;
    }
    rc = 0;
    for (int64_t i = 0; i < n && rc == 0; i++) {
      s[i] = hb_calloc(w + 1, 1);
      if (!s[i]) rc = -1;
      else memcpy(s[i], buf + (size_t)i * w, w);
    }
    free(buf);
  }
done:
  if (mt >= 0) H5Tclose(mt);
  if (ft >= 0) H5Tclose(ft);
  H5Dclose(ds);
  if (rc) {
    h5io_free_strings(s, n);
    return -1;
  }
  *out = s;
  return 0;
}
