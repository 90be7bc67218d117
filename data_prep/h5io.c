// Checked HDF5 helpers (see h5io.h).
#include "data_prep/h5io.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define H5IO_MAX_LEN ((int64_t)1 << 50)   // larger extents are treated as corrupt

void h5io_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

const char *h5io_where(hid_t loc, const char *name, char *buf, size_t n) {
  char file[1024], obj[1024];
  if (H5Fget_name(loc, file, sizeof file) < 0) snprintf(file, sizeof file, "(HDF5 file)");
  if (H5Iget_name(loc, obj, sizeof obj) <= 0) obj[0] = 0;
  const char *base = strcmp(obj, "/") == 0 ? "" : obj;
  if (name && name[0] == '/') name++;
  if (name) snprintf(buf, n, "%s: %s/%s", file, base, name);
  else if (base[0]) snprintf(buf, n, "%s: %s", file, base);
  else snprintf(buf, n, "%s", file);
  return buf;
}

int h5io_fail(hid_t loc, const char *name, const char *fmt, ...) {
  char w[H5IO_WHERE_LEN], msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return hb_fail("%s: %s", h5io_where(loc, name, w, sizeof w), msg);
}

int h5io_create(const char *path, hid_t *f) {
  h5io_quiet();
  *f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  return *f < 0 ? hb_fail("%s: cannot create HDF5 file", path) : 0;
}

int h5io_open(const char *path, hid_t *f) {
  h5io_quiet();
  *f = -1;
  FILE *fp = fopen(path, "rb");
  if (!fp) return hb_fail("%s: cannot open (no such file or not readable)", path);
  fclose(fp);
  if (H5Fis_hdf5(path) <= 0) return hb_fail("%s: cannot open: not an HDF5 file", path);
  *f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  return *f < 0 ? hb_fail("%s: cannot open as HDF5 (truncated or corrupt?)", path) : 0;
}

int h5io_close(hid_t f) {
  if (f < 0) return 0;
  char name[1024];
  if (H5Fget_name(f, name, sizeof name) < 0) snprintf(name, sizeof name, "(HDF5 file)");
  return H5Fclose(f) < 0 ? hb_fail("%s: cannot close (disk full?)", name) : 0;
}

int h5io_exists(hid_t loc, const char *name) { return H5Lexists(loc, name, H5P_DEFAULT) > 0 ? 1 : 0; }
int h5io_attr_exists(hid_t loc, const char *key) { return H5Aexists(loc, key) > 0 ? 1 : 0; }

// ---- attributes ---------------------------------------------------------------------------------

static hid_t vlen_str_type(H5T_cset_t cset) {
  hid_t t = H5Tcopy(H5T_C_S1);
  if (t < 0) return -1;
  if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, cset) < 0) {
    H5Tclose(t);
    return -1;
  }
  return t;
}

// Memory type for the fixed-length string file type ft: one byte longer (*w), NUL-terminated.
static hid_t fixed_str_type(hid_t ft, size_t *w) {
  size_t n = H5Tget_size(ft);
  if (n == 0 || n > (1u << 24)) return -1;
  hid_t t = H5Tcopy(H5T_C_S1);
  if (t < 0) return -1;
  if (H5Tset_size(t, n + 1) < 0 || H5Tset_strpad(t, H5T_STR_NULLTERM) < 0 || H5Tset_cset(t, H5Tget_cset(ft)) < 0) {
    H5Tclose(t);
    return -1;
  }
  *w = n + 1;
  return t;
}

static int write_attr(hid_t loc, const char *key, hid_t ft, hid_t mt, const void *value) {
  hid_t s = H5Screate(H5S_SCALAR), a = -1;
  int rc = -1;
  htri_t ex = s < 0 ? -1 : H5Aexists(loc, key);
  if (ex < 0 || (ex > 0 && H5Adelete(loc, key) < 0)) goto done;
  if ((a = H5Acreate2(loc, key, ft, s, H5P_DEFAULT, H5P_DEFAULT)) < 0) goto done;
  if (H5Awrite(a, mt, value) < 0) goto done;
  rc = 0;
done:
  if (a >= 0 && H5Aclose(a) < 0) rc = -1;
  if (s >= 0) H5Sclose(s);
  return rc ? h5io_fail(loc, NULL, "cannot write attribute '%s'", key) : 0;
}

hid_t h5io_str_type(void) { return vlen_str_type(H5T_CSET_UTF8); }

int h5io_write_str_attr(hid_t loc, const char *key, const char *value) {
  hid_t t = vlen_str_type(H5T_CSET_UTF8);
  if (t < 0) return h5io_fail(loc, NULL, "attribute '%s': cannot make a string type", key);
  int rc = write_attr(loc, key, t, t, &value);
  H5Tclose(t);
  return rc;
}

int h5io_write_i64_attr(hid_t loc, const char *key, int64_t v) {
  return write_attr(loc, key, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}

int h5io_write_f64_attr(hid_t loc, const char *key, double v) {
  return write_attr(loc, key, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v);
}

static hid_t open_attr(hid_t loc, const char *key) {
  htri_t ex = H5Aexists(loc, key);
  if (ex <= 0) {
    h5io_fail(loc, NULL, ex < 0 ? "cannot look up attribute '%s'" : "missing attribute '%s'", key);
    return -1;
  }
  hid_t a = H5Aopen(loc, key, H5P_DEFAULT);
  if (a < 0) h5io_fail(loc, NULL, "cannot open attribute '%s'", key);
  return a;
}

int h5io_read_str_attr(hid_t loc, const char *key, char **out) {
  *out = NULL;
  hid_t a = open_attr(loc, key);
  if (a < 0) return -1;
  hid_t ft = H5Aget_type(a), sp = H5Aget_space(a), mt = -1;
  int rc = -1;
  if (ft < 0 || sp < 0 || H5Tget_class(ft) != H5T_STRING || H5Sget_simple_extent_npoints(sp) != 1) {
    h5io_fail(loc, NULL, "attribute '%s' is not a single string", key);
    goto done;
  }
  htri_t var = H5Tis_variable_str(ft);
  if (var > 0) {
    char *v = NULL;
    if ((mt = vlen_str_type(H5Tget_cset(ft))) < 0 || H5Aread(a, mt, &v) < 0) goto unreadable;
    *out = strdup(v ? v : "");
    H5free_memory(v);
  } else if (var == 0) {
    size_t w = 0;
    if ((mt = fixed_str_type(ft, &w)) < 0) goto unreadable;
    char *v = calloc(w, 1);
    if (v && H5Aread(a, mt, v) < 0) {
      free(v);
      goto unreadable;
    }
    *out = v;
  } else {
    goto unreadable;
  }
  rc = *out ? 0 : h5io_fail(loc, NULL, "attribute '%s': out of memory", key);
  goto done;
unreadable:
  h5io_fail(loc, NULL, "cannot read attribute '%s'", key);
done:
  if (mt >= 0) H5Tclose(mt);
  if (ft >= 0) H5Tclose(ft);
  if (sp >= 0) H5Sclose(sp);
  H5Aclose(a);
  return rc;
}

static int read_num_attr(hid_t loc, const char *key, hid_t mt, void *out) {
  hid_t a = open_attr(loc, key);
  if (a < 0) return -1;
  hid_t ft = H5Aget_type(a), sp = H5Aget_space(a);
  H5T_class_t c = ft >= 0 ? H5Tget_class(ft) : H5T_NO_CLASS;
  hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
  int rc = 0;
  if ((c != H5T_INTEGER && c != H5T_FLOAT) || np != 1)
    rc = h5io_fail(loc, NULL, "attribute '%s' is not a single number", key);
  else if (H5Aread(a, mt, out) < 0)
    rc = h5io_fail(loc, NULL, "cannot read attribute '%s'", key);
  if (sp >= 0) H5Sclose(sp);
  if (ft >= 0) H5Tclose(ft);
  H5Aclose(a);
  return rc;
}

int h5io_read_i64_attr(hid_t loc, const char *key, int64_t *v) { return read_num_attr(loc, key, H5T_NATIVE_INT64, v); }
int h5io_read_f64_attr(hid_t loc, const char *key, double *v) { return read_num_attr(loc, key, H5T_NATIVE_DOUBLE, v); }

// ---- writing datasets ---------------------------------------------------------------------------

int h5io_write(hid_t loc, const char *name, hid_t ft, hid_t mt, int rank, const int64_t *dims, const void *data,
               int64_t chunk_rows) {
  if (rank < 1 || rank > 2) return h5io_fail(loc, name, "cannot write a rank-%d dataset", rank);
  hsize_t d[2] = {0, 0}, maxd[2], ch[2];
  size_t total = 1;
  for (int i = 0; i < rank; i++) {
    if (dims[i] < 0 || dims[i] > H5IO_MAX_LEN) return h5io_fail(loc, name, "invalid dimension %lld", (long long)dims[i]);
    d[i] = (hsize_t)dims[i];
    if (hb_mul_size(total, (size_t)dims[i], &total)) return h5io_fail(loc, name, "too many elements");
  }
  hid_t sp = -1, pl = H5Pcreate(H5P_DATASET_CREATE), ds = -1;
  int rc = -1;
  if (pl < 0) goto done;
  if (chunk_rows > 0) {
    maxd[0] = H5S_UNLIMITED;
    maxd[1] = d[1];
    ch[0] = (hsize_t)(chunk_rows > (1 << 20) ? (1 << 20) : chunk_rows);
    ch[1] = d[1];
    if (H5Pset_chunk(pl, rank, ch) < 0) goto done;
    sp = H5Screate_simple(rank, d, maxd);
  } else {
    sp = H5Screate_simple(rank, d, NULL);
    if (total >= (1u << 16)) {   // chunks of ~64k elements along the first axis
      hsize_t row = rank == 2 ? d[1] : 1;
      ch[0] = ((1u << 16) + row - 1) / row;
      if (ch[0] > d[0]) ch[0] = d[0];
      ch[1] = d[1];
      if (H5Pset_chunk(pl, rank, ch) < 0 || H5Pset_deflate(pl, 1) < 0) goto done;
    }
  }
  if (sp < 0) goto done;
  if ((ds = H5Dcreate2(loc, name, ft, sp, H5P_DEFAULT, pl, H5P_DEFAULT)) < 0) goto done;
  if (total > 0 && H5Dwrite(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) goto done;
  rc = 0;
done:
  if (ds >= 0 && H5Dclose(ds) < 0) rc = -1;
  if (pl >= 0) H5Pclose(pl);
  if (sp >= 0) H5Sclose(sp);
  return rc ? h5io_fail(loc, name, "cannot write dataset (disk full?)") : 0;
}

int h5io_write_1d(hid_t loc, const char *name, hid_t ft, hid_t mt, const void *data, int64_t n, int64_t chunk_rows) {
  return h5io_write(loc, name, ft, mt, 1, &n, data, chunk_rows);
}

int h5io_write_strings(hid_t loc, const char *name, char *const *s, int64_t n) {
  hid_t t = vlen_str_type(H5T_CSET_UTF8);
  if (t < 0) return h5io_fail(loc, name, "cannot make a string type");
  int rc = h5io_write(loc, name, t, t, 1, &n, s, 1024);   // chunked: no filters on variable-length data
  H5Tclose(t);
  return rc;
}

// ---- reading datasets ---------------------------------------------------------------------------

// Opens dataset `name` under loc; name NULL: loc is the dataset (returned as is).
static hid_t open_ds(hid_t loc, const char *name) {
  if (!name) {
    if (H5Iget_type(loc) == H5I_DATASET) return loc;
    h5io_fail(loc, NULL, "not a dataset");
    return -1;
  }
  if (!h5io_exists(loc, name)) {
    h5io_fail(loc, name, "missing dataset");
    return -1;
  }
  hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
  if (ds < 0) h5io_fail(loc, name, "not a readable dataset");
  return ds;
}

static void close_ds(hid_t ds, const char *name) {
  if (name && ds >= 0) H5Dclose(ds);
}

static int get_dims(hid_t ds, hid_t loc, const char *name, int rank, int64_t *dims, H5T_class_t *cls) {
  hid_t sp = H5Dget_space(ds);
  int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
  hsize_t hd[H5S_MAX_RANK];
  int ok = r == rank && H5Sget_simple_extent_dims(sp, hd, NULL) == rank;
  if (sp >= 0) H5Sclose(sp);
  if (r < 0) return h5io_fail(loc, name, "cannot read the dataset's shape");
  if (!ok) return h5io_fail(loc, name, "dataset has rank %d, expected %d", r, rank);
  for (int i = 0; i < rank; i++) {
    if (hd[i] > (hsize_t)H5IO_MAX_LEN) return h5io_fail(loc, name, "implausible extent %llu", (unsigned long long)hd[i]);
    dims[i] = (int64_t)hd[i];
  }
  if (cls) {
    hid_t t = H5Dget_type(ds);
    *cls = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    if (t >= 0) H5Tclose(t);
    if (*cls == H5T_NO_CLASS) return h5io_fail(loc, name, "cannot read the dataset's type");
  }
  return 0;
}

int h5io_dims(hid_t loc, const char *name, int rank, int64_t *dims, H5T_class_t *cls) {
  hid_t ds = open_ds(loc, name);
  if (ds < 0) return -1;
  int rc = get_dims(ds, loc, name, rank, dims, cls);
  close_ds(ds, name);
  return rc;
}

int h5io_read(hid_t loc, const char *name, hid_t mt, int rank, int64_t *dims, void **data) {
  *data = NULL;
  hid_t ds = open_ds(loc, name);
  if (ds < 0) return -1;
  H5T_class_t have = H5T_NO_CLASS, want = H5Tget_class(mt);
  size_t total = 1, bytes = 0;
  int rc = get_dims(ds, loc, name, rank, dims, &have);
  if (rc) goto done;
  rc = -1;
  if (have != H5T_INTEGER && have != H5T_FLOAT) {
    h5io_fail(loc, name, "dataset is not numeric");
    goto done;
  }
  if (want == H5T_INTEGER && have != H5T_INTEGER) {
    h5io_fail(loc, name, "dataset holds floats, expected integers");
    goto done;
  }
  for (int i = 0; i < rank; i++)
    if (hb_mul_size(total, (size_t)dims[i], &total)) goto toobig;
  if (hb_mul_size(total, H5Tget_size(mt), &bytes)) goto toobig;
  if (!(*data = malloc(bytes ? bytes : 1))) goto toobig;
  if (total && H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, *data) < 0) {
    free(*data);
    *data = NULL;
    h5io_fail(loc, name, "cannot read dataset (values out of range for the expected type, or corrupt file?)");
    goto done;
  }
  rc = 0;
  goto done;
toobig:
  h5io_fail(loc, name, "out of memory for %zu elements", total);
done:
  close_ds(ds, name);
  return rc;
}

int h5io_read_rows(hid_t loc, const char *name, hid_t mt, int64_t row0, int64_t nrows, void *out) {
  if (nrows == 0) return 0;
  hid_t ds = open_ds(loc, name);
  if (ds < 0) return -1;
  hid_t fs = H5Dget_space(ds), ms = -1;
  int rank = fs >= 0 ? H5Sget_simple_extent_ndims(fs) : -1;
  hsize_t d[2] = {0, 0}, st[2] = {(hsize_t)row0, 0}, cnt[2] = {(hsize_t)nrows, 0};
  int rc = -1;
  if (rank < 1 || rank > 2 || H5Sget_simple_extent_dims(fs, d, NULL) < 0) {
    h5io_fail(loc, name, "expected a rank-1 or rank-2 dataset");
    goto done;
  }
  if (row0 < 0 || nrows < 0 || (hsize_t)row0 > d[0] || (hsize_t)nrows > d[0] - (hsize_t)row0) {
    h5io_fail(loc, name, "rows [%lld, %lld) outside [0, %llu)", (long long)row0, (long long)(row0 + nrows),
              (unsigned long long)d[0]);
    goto done;
  }
  cnt[1] = d[1];
  if ((ms = H5Screate_simple(rank, cnt, NULL)) < 0 || H5Sselect_hyperslab(fs, H5S_SELECT_SET, st, NULL, cnt, NULL) < 0 ||
      H5Dread(ds, mt, ms, fs, H5P_DEFAULT, out) < 0) {
    h5io_fail(loc, name, "cannot read rows [%lld, %lld) (wrong type or corrupt file?)", (long long)row0,
              (long long)(row0 + nrows));
    goto done;
  }
  rc = 0;
done:
  if (ms >= 0) H5Sclose(ms);
  if (fs >= 0) H5Sclose(fs);
  close_ds(ds, name);
  return rc;
}

void h5io_free_strings(char **s, int64_t n) {
  if (!s) return;
  for (int64_t i = 0; i < n; i++) free(s[i]);
  free(s);
}

int h5io_read_strings(hid_t loc, const char *name, int64_t *n, char ***out) {
  *out = NULL;
  *n = 0;
  hid_t ds = open_ds(loc, name);
  if (ds < 0) return -1;
  int64_t len = 0;
  H5T_class_t cls = H5T_NO_CLASS;
  hid_t ft = -1, mt = -1;
  char **s = NULL, *buf = NULL;
  int rc = get_dims(ds, loc, name, 1, &len, &cls);
  if (rc) goto done;
  rc = -1;
  if (cls != H5T_STRING) {
    h5io_fail(loc, name, "not a string dataset");
    goto done;
  }
  if (!(s = calloc((size_t)len + 1, sizeof *s))) goto oom;
  ft = H5Dget_type(ds);
  htri_t var = ft >= 0 ? H5Tis_variable_str(ft) : -1;
  if (var > 0) {
    char **v = calloc((size_t)len + 1, sizeof *v);
    if (!v) goto oom;
    if ((mt = vlen_str_type(H5Tget_cset(ft))) < 0 || (len > 0 && H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0)) {
      free(v);
      goto unreadable;
    }
    int bad = 0;
    for (int64_t i = 0; i < len; i++) {
      if (!(s[i] = strdup(v[i] ? v[i] : ""))) bad = 1;
      if (v[i]) H5free_memory(v[i]);
    }
    free(v);
    if (bad) goto oom;
  } else if (var == 0) {
    size_t w = 0, bytes = 0;
    if ((mt = fixed_str_type(ft, &w)) < 0 || hb_mul_size((size_t)len, w, &bytes)) goto unreadable;
    if (!(buf = malloc(bytes ? bytes : 1))) goto oom;
    if (len > 0 && H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) goto unreadable;
    for (int64_t i = 0; i < len; i++)
      if (!(s[i] = strdup(buf + (size_t)i * w))) goto oom;
  } else {
    goto unreadable;
  }
  *out = s;
  *n = len;
  s = NULL;
  rc = 0;
  goto done;
unreadable:
  h5io_fail(loc, name, "cannot read strings (corrupt file?)");
  goto done;
oom:
  h5io_fail(loc, name, "out of memory for %lld strings", (long long)len);
done:
  h5io_free_strings(s, len);
  free(buf);
  if (mt >= 0) H5Tclose(mt);
  if (ft >= 0) H5Tclose(ft);
  close_ds(ds, name);
  return rc;
}
