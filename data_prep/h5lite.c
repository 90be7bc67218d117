// Checked whole-array HDF5 helpers.
#include "data_prep/h5lite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

static void quiet(void) {
  static int done = 0;
  if (!done) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); done = 1; }
}

int h5l_create(const char *path, hid_t *f) {
  quiet();
  *f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (*f < 0) return hb_fail("%s: cannot create HDF5 file", path);
  return 0;
}

int h5l_open(const char *path, hid_t *f) {
  quiet();
  *f = -1;
  FILE *fp = fopen(path, "rb");
  if (!fp) return hb_fail("%s: cannot open (no such file or not readable)", path);
  fclose(fp);
  if (H5Fis_hdf5(path) <= 0) return hb_fail("%s: not an HDF5 file", path);
  *f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (*f < 0) return hb_fail("%s: cannot open as HDF5", path);
  return 0;
}

void h5l_close(hid_t f) {
  if (f >= 0) H5Fclose(f);
}

int h5l_exists(hid_t f, const char *name) {
  quiet();
  return H5Lexists(f, name, H5P_DEFAULT) > 0 ? 1 : 0;
}

int h5l_write(hid_t f, const char *path, const char *name, hid_t mem, hid_t ftype, int rank,
              const int64_t *dims, const void *data) {
  hsize_t hd[2] = {0, 0}, ch[2] = {0, 0};
  size_t total = 1;
  for (int i = 0; i < rank; i++) {
    if (dims[i] < 0) return hb_fail("%s: /%s: negative dimension", path, name);
    hd[i] = (hsize_t)dims[i];
    total *= (size_t)dims[i];
  }
  hid_t sp = H5Screate_simple(rank, hd, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE), ds = -1;
  int rc = -1;
  if (sp < 0 || dcpl < 0) goto done;
  if (total >= (1u << 16)) {
    // chunks of ~64k elements along the first axis
    hsize_t row = rank == 2 && hd[1] ? hd[1] : 1;
    ch[0] = (65536 + row - 1) / row;
    if (ch[0] > hd[0]) ch[0] = hd[0];
    ch[1] = rank == 2 ? hd[1] : 0;
    if (H5Pset_chunk(dcpl, rank, ch) < 0 || H5Pset_deflate(dcpl, 1) < 0) goto done;
  }
  ds = H5Dcreate2(f, name, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (ds < 0) goto done;
  if (total && H5Dwrite(ds, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) goto done;
  rc = 0;
done:
  if (ds >= 0) H5Dclose(ds);
  if (dcpl >= 0) H5Pclose(dcpl);
  if (sp >= 0) H5Sclose(sp);
  return rc ? hb_fail("%s: cannot write dataset /%s", path, name) : 0;
}

// Opens dataset `name` and checks its rank; fills dims.
static hid_t open_ds(hid_t f, const char *path, const char *name, int rank, int64_t *dims) {
  if (!h5l_exists(f, name)) { hb_fail("%s: missing dataset /%s", path, name); return -1; }
  hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
  if (ds < 0) { hb_fail("%s: cannot open dataset /%s", path, name); return -1; }
  hid_t sp = H5Dget_space(ds);
  int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
  hsize_t hd[8] = {0};
  if (r != rank || H5Sget_simple_extent_dims(sp, hd, NULL) < 0) {
    if (sp >= 0) H5Sclose(sp);
    H5Dclose(ds);
    hb_fail("%s: dataset /%s has rank %d, expected %d", path, name, r, rank);
    return -1;
  }
  H5Sclose(sp);
  for (int i = 0; i < rank; i++) dims[i] = (int64_t)hd[i];
  return ds;
}

int h5l_read(hid_t f, const char *path, const char *name, hid_t mem, int rank, int64_t *dims, void **data) {
  *data = NULL;
  hid_t ds = open_ds(f, path, name, rank, dims);
  if (ds < 0) return -1;
  hid_t ft = H5Dget_type(ds);
  H5T_class_t want = H5Tget_class(mem), have = ft >= 0 ? H5Tget_class(ft) : H5T_NO_CLASS;
  if (ft >= 0) H5Tclose(ft);
  int rc = -1;
  if (have != H5T_INTEGER && have != H5T_FLOAT) {
    hb_fail("%s: dataset /%s is not numeric", path, name);
    goto done;
  }
  if (want == H5T_INTEGER && have != H5T_INTEGER) {
    hb_fail("%s: dataset /%s holds floats, expected integers", path, name);
    goto done;
  }
  size_t total = 1, bytes;
  for (int i = 0; i < rank; i++)
    if (hb_mul_size(total, (size_t)dims[i], &total)) { hb_fail_prefix("%s: /%s", path, name); goto done; }
  if (hb_mul_size(total, H5Tget_size(mem), &bytes)) { hb_fail_prefix("%s: /%s", path, name); goto done; }
  *data = hb_malloc(bytes ? bytes : 1);
  if (!*data) { hb_fail_prefix("%s: /%s", path, name); goto done; }
  if (total && H5Dread(ds, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, *data) < 0) {
    hb_fail("%s: cannot read dataset /%s (values out of range for the expected type?)", path, name);
    free(*data);
    *data = NULL;
    goto done;
  }
  rc = 0;
done:
  H5Dclose(ds);
  return rc;
}

static hid_t vlen_str_type(void) {
  hid_t t = H5Tcopy(H5T_C_S1);
  if (t < 0) return -1;
  if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) { H5Tclose(t); return -1; }
  return t;
}

int h5l_write_strings(hid_t f, const char *path, const char *name, int64_t n, char *const *s) {
  hid_t t = vlen_str_type();
  hsize_t d = (hsize_t)n;
  hid_t sp = H5Screate_simple(1, &d, NULL), ds = -1;
  int rc = -1;
  if (t < 0 || sp < 0) goto done;
  ds = H5Dcreate2(f, name, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (ds < 0) goto done;
  if (n && H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, s) < 0) goto done;
  rc = 0;
done:
  if (ds >= 0) H5Dclose(ds);
  if (sp >= 0) H5Sclose(sp);
  if (t >= 0) H5Tclose(t);
  return rc ? hb_fail("%s: cannot write string dataset /%s", path, name) : 0;
}

void h5l_free_strings(int64_t n, char **s) {
  if (!s) return;
  for (int64_t i = 0; i < n; i++) free(s[i]);
  free(s);
}

int h5l_read_strings(hid_t f, const char *path, const char *name, int64_t *n, char ***s) {
  *s = NULL;
  *n = 0;
  int64_t dims[1];
  hid_t ds = open_ds(f, path, name, 1, dims);
  if (ds < 0) return -1;
  hid_t ft = H5Dget_type(ds), mt = -1;
  char **out = NULL, *raw = NULL;
  int rc = -1;
  if (ft < 0 || H5Tget_class(ft) != H5T_STRING) { hb_fail("%s: dataset /%s is not a string dataset", path, name); goto done; }
  out = hb_calloc((size_t)(dims[0] ? dims[0] : 1), sizeof(char *));
  if (!out) goto done;
  if (H5Tis_variable_str(ft) > 0) {
    mt = vlen_str_type();
    char **tmp = hb_calloc((size_t)(dims[0] ? dims[0] : 1), sizeof(char *));
    if (!tmp || mt < 0) { free(tmp); goto done; }
    if (dims[0] && H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, tmp) < 0) {
      free(tmp);
      hb_fail("%s: cannot read /%s", path, name);
      goto done;
    }
    int bad = 0;
    for (int64_t i = 0; i < dims[0]; i++) {
      out[i] = strdup(tmp[i] ? tmp[i] : "");
      if (!out[i]) bad = 1;
    }
    hid_t sp = H5Dget_space(ds);
    H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, tmp);
    H5Sclose(sp);
    free(tmp);
    if (bad) { hb_fail("%s: /%s: out of memory", path, name); goto done; }
  } else {
    size_t sz = H5Tget_size(ft), bytes;
    mt = H5Tcopy(ft);
    if (mt < 0 || hb_mul_size(sz, (size_t)dims[0], &bytes)) goto done;
    raw = hb_malloc(bytes ? bytes : 1);
    if (!raw) goto done;
    if (dims[0] && H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0) { hb_fail("%s: cannot read /%s", path, name); goto done; }
    for (int64_t i = 0; i < dims[0]; i++) {
      out[i] = hb_malloc(sz + 1);
      if (!out[i]) goto done;
      memcpy(out[i], raw + (size_t)i * sz, sz);
      out[i][sz] = 0;
    }
  }
  *s = out;
  *n = dims[0];
  out = NULL;
  rc = 0;
done:
  if (out) h5l_free_strings(dims[0], out);
  free(raw);
  if (mt >= 0) H5Tclose(mt);
  if (ft >= 0) H5Tclose(ft);
  H5Dclose(ds);
  return rc;
}

int h5l_attr_exists(hid_t f, const char *key) { return H5Aexists(f, key) > 0 ? 1 : 0; }

int h5l_attr_write_str(hid_t f, const char *path, const char *key, const char *value) {
  hid_t t = vlen_str_type(), sp = H5Screate(H5S_SCALAR), a = -1;
  int rc = -1;
  if (t < 0 || sp < 0) goto done;
  a = H5Acreate2(f, key, t, sp, H5P_DEFAULT, H5P_DEFAULT);
  if (a < 0 || H5Awrite(a, t, &value) < 0) goto done;
  rc = 0;
done:
  if (a >= 0) H5Aclose(a);
  if (sp >= 0) H5Sclose(sp);
  if (t >= 0) H5Tclose(t);
  return rc ? hb_fail("%s: cannot write attribute '%s'", path, key) : 0;
}

int h5l_attr_write_num(hid_t f, const char *path, const char *key, hid_t mem, const void *value) {
  hid_t sp = H5Screate(H5S_SCALAR), a = -1;
  hid_t ft = H5Tget_class(mem) == H5T_FLOAT ? H5T_IEEE_F64LE : H5T_STD_I64LE;
  int rc = -1;
  if (sp < 0) goto done;
  a = H5Acreate2(f, key, ft, sp, H5P_DEFAULT, H5P_DEFAULT);
  if (a < 0 || H5Awrite(a, mem, value) < 0) goto done;
  rc = 0;
done:
  if (a >= 0) H5Aclose(a);
  if (sp >= 0) H5Sclose(sp);
  return rc ? hb_fail("%s: cannot write attribute '%s'", path, key) : 0;
}

static hid_t open_attr(hid_t f, const char *path, const char *key) {
  if (H5Aexists(f, key) <= 0) { hb_fail("%s: missing attribute '%s'", path, key); return -1; }
  hid_t a = H5Aopen(f, key, H5P_DEFAULT);
  if (a < 0) hb_fail("%s: cannot open attribute '%s'", path, key);
  return a;
}

int h5l_attr_read_str(hid_t f, const char *path, const char *key, char **out) {
  *out = NULL;
  hid_t a = open_attr(f, path, key);
  if (a < 0) return -1;
  hid_t ft = H5Aget_type(a), mt = -1;
  int rc = -1;
  if (ft < 0 || H5Tget_class(ft) != H5T_STRING) { hb_fail("%s: attribute '%s' is not a string", path, key); goto done; }
  if (H5Tis_variable_str(ft) > 0) {
    mt = vlen_str_type();
    char *v = NULL;
    if (mt < 0 || H5Aread(a, mt, &v) < 0) { hb_fail("%s: cannot read attribute '%s'", path, key); goto done; }
    *out = strdup(v ? v : "");
    H5free_memory(v);
  } else {
    size_t sz = H5Tget_size(ft);
    mt = H5Tcopy(ft);
    char *v = hb_malloc(sz + 1);
    if (!v || mt < 0 || H5Aread(a, mt, v) < 0) { free(v); hb_fail("%s: cannot read attribute '%s'", path, key); goto done; }
    v[sz] = 0;
    *out = v;
  }
  if (!*out) { hb_fail("%s: attribute '%s': out of memory", path, key); goto done; }
  rc = 0;
done:
  if (mt >= 0) H5Tclose(mt);
  if (ft >= 0) H5Tclose(ft);
  H5Aclose(a);
  return rc;
}

static int attr_read_num(hid_t f, const char *path, const char *key, hid_t mem, void *out) {
  hid_t a = open_attr(f, path, key);
  if (a < 0) return -1;
  hid_t ft = H5Aget_type(a), sp = H5Aget_space(a);
  H5T_class_t c = ft >= 0 ? H5Tget_class(ft) : H5T_NO_CLASS;
  hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
  int rc = -1;
  if ((c != H5T_INTEGER && c != H5T_FLOAT) || np != 1)
    hb_fail("%s: attribute '%s' is not a single number", path, key);
  else if (H5Aread(a, mem, out) < 0)
    hb_fail("%s: cannot read attribute '%s'", path, key);
  else
    rc = 0;
  if (sp >= 0) H5Sclose(sp);
  if (ft >= 0) H5Tclose(ft);
  H5Aclose(a);
  return rc;
}

int h5l_attr_read_double(hid_t f, const char *path, const char *key, double *out) {
  return attr_read_num(f, path, key, H5T_NATIVE_DOUBLE, out);
}

int h5l_attr_read_int64(hid_t f, const char *path, const char *key, int64_t *out) {
  return attr_read_num(f, path, key, H5T_NATIVE_INT64, out);
}
