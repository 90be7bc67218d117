// HDF5 feature files (layout in featfile.h). Every HDF5 call is checked; HDF5's own error stack
// printing is silenced and replaced by messages that name the file and dataset.
#include "data_prep/featfile.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "common/error.h"
#include "common/fileutil.h"

#define FEAT_FORMAT "hubert-features"
#define FEAT_VERSION 1
#define FEAT_CHUNK_BYTES (512 * 1024)   // fits HDF5's default 1 MiB chunk cache
#define FEAT_MAX_ROWS_PER_CHUNK 1024
#define FEAT_IDX_CHUNK 1024
#define FEAT_MAX_DIM (1 << 20)

// Evaluates an HDF5 call; a negative result fails with the statement and a context message.
#define CHECK_H5(call, ...)                                                   \
  do {                                                                        \
    if ((call) < 0) {                                                         \
      char ctx_[512];                                                         \
      snprintf(ctx_, sizeof ctx_, __VA_ARGS__);                               \
      hb_fail("%s: HDF5 call failed: %s", ctx_, #call);                       \
      goto fail;                                                              \
    }                                                                         \
  } while (0)

static void h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

// ---- writer -------------------------------------------------------------------------------------

struct hb_featfile_writer {
  char *path, *tmp;
  hid_t file;
  int ndsets;
  char **names;
  int *dims;
  hid_t *dsets;      // (ndsets,)
  hid_t utt_ds, off_ds;
  int64_t num_utts, frames;
  // /utt_id and /offsets are small (one entry per utterance): kept in memory and written once at
  // close. Writing a variable-length string per append made HDF5 allocate and zero two 1 MiB
  // conversion buffers per utterance.
  char **ids;
  int64_t *ends;
  int64_t cap;
};

static int write_str_attr(hid_t loc, const char *key, const char *value) {
  hid_t t = -1, s = -1, a = -1;
  int rc = -1;
  if ((t = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0)
    goto done;
  if ((s = H5Screate(H5S_SCALAR)) < 0) goto done;
  if (H5Aexists(loc, key) > 0 && H5Adelete(loc, key) < 0) goto done;
  if ((a = H5Acreate2(loc, key, t, s, H5P_DEFAULT, H5P_DEFAULT)) < 0) goto done;
  if (H5Awrite(a, t, &value) < 0) goto done;
  rc = 0;
done:
  if (a >= 0) H5Aclose(a);
  if (s >= 0) H5Sclose(s);
  if (t >= 0) H5Tclose(t);
  if (rc) hb_fail("cannot write attribute '%s'", key);
  return rc;
}

static int write_num_attr(hid_t loc, const char *key, hid_t type, const void *value) {
  hid_t s = -1, a = -1;
  int rc = -1;
  if ((s = H5Screate(H5S_SCALAR)) < 0) goto done;
  if (H5Aexists(loc, key) > 0 && H5Adelete(loc, key) < 0) goto done;
  if ((a = H5Acreate2(loc, key, type, s, H5P_DEFAULT, H5P_DEFAULT)) < 0) goto done;
  if (H5Awrite(a, type, value) < 0) goto done;
  rc = 0;
done:
  if (a >= 0) H5Aclose(a);
  if (s >= 0) H5Sclose(s);
  if (rc) hb_fail("cannot write attribute '%s'", key);
  return rc;
}

// An extendible chunked dataset of `rank` 1 (cols == 0) or 2, starting with 0 rows.
static hid_t create_ext(hid_t file, const char *name, hid_t type, hsize_t cols, hsize_t chunk_rows) {
  int rank = cols ? 2 : 1;
  hsize_t dims[2] = {0, cols}, maxd[2] = {H5S_UNLIMITED, cols}, chunk[2] = {chunk_rows, cols};
  hid_t sp = H5Screate_simple(rank, dims, maxd);
  if (sp < 0) return -1;
  hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
  hid_t ds = -1;
  if (pl >= 0 && H5Pset_chunk(pl, rank, chunk) >= 0)
    ds = H5Dcreate2(file, name, type, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
  if (pl >= 0) H5Pclose(pl);
  H5Sclose(sp);
  return ds;
}

// Appends rows [row0, row0 + nrows) of width cols (0: 1-D) from buf.
static int append_rows(hid_t ds, hid_t memtype, hsize_t row0, hsize_t nrows, hsize_t cols, const void *buf) {
  int rank = cols ? 2 : 1;
  hsize_t newd[2] = {row0 + nrows, cols}, start[2] = {row0, 0}, count[2] = {nrows, cols};
  if (H5Dset_extent(ds, newd) < 0) return -1;
  hid_t fs = H5Dget_space(ds);
  if (fs < 0) return -1;
  hid_t ms = H5Screate_simple(rank, count, NULL);
  int rc = -1;
  if (ms >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
      H5Dwrite(ds, memtype, ms, fs, H5P_DEFAULT, buf) >= 0)
    rc = 0;
  if (ms >= 0) H5Sclose(ms);
  H5Sclose(fs);
  return rc;
}

static void writer_release(hb_featfile_writer *w) {
  if (!w) return;
  for (int d = 0; d < w->ndsets; d++) {
    if (w->dsets && w->dsets[d] >= 0) H5Dclose(w->dsets[d]);
    if (w->names) free(w->names[d]);
  }
  if (w->utt_ds >= 0) H5Dclose(w->utt_ds);
  if (w->off_ds >= 0) H5Dclose(w->off_ds);
  if (w->file >= 0) H5Fclose(w->file);
  for (int64_t i = 0; w->ids && i < w->num_utts; i++) free(w->ids[i]);
  free(w->ids);
  free(w->ends);
  free(w->names);
  free(w->dims);
  free(w->dsets);
  free(w->path);
  free(w->tmp);
  free(w);
}

void featfile_abort(hb_featfile_writer *w) {
  if (!w) return;
  char *tmp = w->tmp;
  w->tmp = NULL;
  writer_release(w);
  if (tmp) unlink(tmp);
  free(tmp);
}

static int valid_dset_name(const char *n) {
  if (!n || !n[0] || strchr(n, '/') || strchr(n, '.') == n) return 0;
  return strcmp(n, "utt_id") != 0 && strcmp(n, "offsets") != 0;
}

int featfile_create(const char *path, const hb_featfile_info *info, int ndsets,
                    const char *const *names, const int *dims, hb_featfile_writer **out) {
  *out = NULL;
  h5_quiet();
  if (ndsets < 1) return hb_fail("%s: a feature file needs at least one dataset", path);
  if (!info || !info->kind || !(info->rate > 0) || !isfinite(info->rate))
    return hb_fail("%s: feature file info needs a kind and a positive rate", path);
  for (int d = 0; d < ndsets; d++) {
    if (!valid_dset_name(names[d])) return hb_fail("%s: invalid dataset name '%s'", path, names[d] ? names[d] : "(null)");
    if (dims[d] < 1 || dims[d] > FEAT_MAX_DIM) return hb_fail("%s: dataset '%s': invalid dim %d", path, names[d], dims[d]);
    for (int e = 0; e < d; e++)
      if (strcmp(names[d], names[e]) == 0) return hb_fail("%s: dataset '%s' given twice", path, names[d]);
  }
  hb_featfile_writer *w = hb_calloc(1, sizeof *w);
  if (!w) return -1;
  w->file = w->utt_ds = w->off_ds = -1;
  w->path = strdup(path);
  size_t tl = strlen(path) + 8;
  w->tmp = hb_malloc(tl);
  w->names = hb_calloc((size_t)ndsets, sizeof *w->names);
  w->dims = hb_calloc((size_t)ndsets, sizeof *w->dims);
  w->dsets = hb_calloc((size_t)ndsets, sizeof *w->dsets);
  if (!w->path || !w->tmp || !w->names || !w->dims || !w->dsets) {
    writer_release(w);
    return hb_fail("%s: out of memory", path);
  }
  w->ndsets = ndsets;
  for (int d = 0; d < ndsets; d++) w->dsets[d] = -1;
  snprintf(w->tmp, tl, "%s.tmp", path);
  hid_t str_t = -1;
  // 1.8+ file format: object headers and B-trees carry checksums, so corruption is detected
  // by HDF5 instead of being followed (h5py and HDF5 >= 1.8 read it).
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  CHECK_H5(fapl, "%s: file access properties", w->tmp);
  if (H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST) < 0) {
    H5Pclose(fapl);
    CHECK_H5(-1, "%s: file format version", w->tmp);
  }
  w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  CHECK_H5(w->file, "%s: cannot create", w->tmp);
  CHECK_H5(write_str_attr(w->file, "format", FEAT_FORMAT), "%s", w->tmp);
  int version = FEAT_VERSION, sr = 16000;
  int64_t zero = 0;
  CHECK_H5(write_num_attr(w->file, "version", H5T_NATIVE_INT, &version), "%s", w->tmp);
  CHECK_H5(write_str_attr(w->file, "kind", info->kind), "%s", w->tmp);
  CHECK_H5(write_num_attr(w->file, "rate", H5T_NATIVE_DOUBLE, &info->rate), "%s", w->tmp);
  CHECK_H5(write_num_attr(w->file, "sample_rate", H5T_NATIVE_INT, &sr), "%s", w->tmp);
  CHECK_H5(write_num_attr(w->file, "num_utts", H5T_NATIVE_INT64, &zero), "%s", w->tmp);
  for (int i = 0; i < info->n_attrs; i++) {
    const char *k = info->attr_keys[i];
    static const char *reserved[] = {"format", "version", "kind", "rate", "sample_rate", "num_utts"};
    for (size_t r = 0; r < sizeof reserved / sizeof *reserved; r++)
      if (strcmp(k, reserved[r]) == 0) {
        hb_fail("%s: attribute '%s' is reserved", path, k);
        goto fail_quiet;
      }
    CHECK_H5(write_str_attr(w->file, k, info->attr_values[i] ? info->attr_values[i] : ""), "%s", w->tmp);
  }
  str_t = H5Tcopy(H5T_C_S1);
  CHECK_H5(str_t, "%s: string type", w->tmp);
  CHECK_H5(H5Tset_size(str_t, H5T_VARIABLE), "%s: string type", w->tmp);
  CHECK_H5(H5Tset_cset(str_t, H5T_CSET_UTF8), "%s: string type", w->tmp);
  w->utt_ds = create_ext(w->file, "utt_id", str_t, 0, FEAT_IDX_CHUNK);
  CHECK_H5(w->utt_ds, "%s: cannot create dataset /utt_id", w->tmp);
  w->off_ds = create_ext(w->file, "offsets", H5T_STD_I64LE, 0, FEAT_IDX_CHUNK);
  CHECK_H5(w->off_ds, "%s: cannot create dataset /offsets", w->tmp);
  CHECK_H5(append_rows(w->off_ds, H5T_NATIVE_INT64, 0, 1, 0, &zero), "%s: /offsets", w->tmp);
  for (int d = 0; d < ndsets; d++) {
    w->names[d] = strdup(names[d]);
    if (!w->names[d]) { hb_fail("%s: out of memory", path); goto fail_quiet; }
    w->dims[d] = dims[d];
    hsize_t rows = (hsize_t)(FEAT_CHUNK_BYTES / (4 * dims[d]));
    if (rows < 1) rows = 1;
    if (rows > FEAT_MAX_ROWS_PER_CHUNK) rows = FEAT_MAX_ROWS_PER_CHUNK;
    w->dsets[d] = create_ext(w->file, names[d], H5T_IEEE_F32LE, (hsize_t)dims[d], rows);
    CHECK_H5(w->dsets[d], "%s: cannot create dataset /%s", w->tmp, names[d]);
  }
  H5Tclose(str_t);
  *out = w;
  return 0;
fail:
fail_quiet:
  if (str_t >= 0) H5Tclose(str_t);
  featfile_abort(w);
  return -1;
}

int featfile_append(hb_featfile_writer *w, const char *utt_id, int64_t frames, const float *const *data) {
  if (!utt_id || !utt_id[0]) return hb_fail("%s: utterance %lld: empty utterance id", w->path, (long long)w->num_utts);
  if (frames < 0 || frames > ((int64_t)1 << 40)) return hb_fail("%s: utterance '%s': invalid frame count %lld", w->path, utt_id, (long long)frames);
  for (int d = 0; d < w->ndsets && frames > 0; d++) {
    if (!data || !data[d]) return hb_fail("%s: utterance '%s': no data for dataset '%s'", w->path, utt_id, w->names[d]);
    size_t n = (size_t)frames * (size_t)w->dims[d];
    for (size_t i = 0; i < n; i++)
      if (!isfinite(data[d][i]))
        return hb_fail("%s: utterance '%s': dataset '%s' has a non-finite value (NaN/inf) at frame %zu",
                       w->path, utt_id, w->names[d], i / (size_t)w->dims[d]);
  }
  for (int d = 0; d < w->ndsets && frames > 0; d++)
    CHECK_H5(append_rows(w->dsets[d], H5T_NATIVE_FLOAT, (hsize_t)w->frames, (hsize_t)frames, (hsize_t)w->dims[d], data[d]),
             "%s: utterance '%s': writing dataset /%s", w->tmp, utt_id, w->names[d]);
  int64_t end = w->frames + frames;
  if (w->num_utts == w->cap) {
    int64_t nc = w->cap ? 2 * w->cap : 256;
    char **ni = hb_realloc(w->ids, sizeof(char *) * (size_t)nc);
    if (!ni) return hb_fail_prefix("%s", w->path);
    w->ids = ni;
    int64_t *ne = hb_realloc(w->ends, sizeof(int64_t) * (size_t)nc);
    if (!ne) return hb_fail_prefix("%s", w->path);
    w->ends = ne;
    w->cap = nc;
  }
  if (!(w->ids[w->num_utts] = strdup(utt_id))) return hb_fail("%s: out of memory", w->path);
  w->ends[w->num_utts] = end;
  w->frames = end;
  w->num_utts++;
  return 0;
fail:
  return -1;
}

int featfile_close(hb_featfile_writer *w) {
  if (!w) return hb_fail("featfile_close: no writer");
  hid_t str_t = -1;
  if (w->num_utts > 0) {
    str_t = H5Tcopy(H5T_C_S1);
    CHECK_H5(str_t, "%s: string type", w->tmp);
    CHECK_H5(H5Tset_size(str_t, H5T_VARIABLE), "%s: string type", w->tmp);
    CHECK_H5(H5Tset_cset(str_t, H5T_CSET_UTF8), "%s: string type", w->tmp);
    CHECK_H5(append_rows(w->utt_ds, str_t, 0, (hsize_t)w->num_utts, 0, w->ids), "%s: writing /utt_id", w->tmp);
    CHECK_H5(append_rows(w->off_ds, H5T_NATIVE_INT64, 1, (hsize_t)w->num_utts, 0, w->ends), "%s: writing /offsets", w->tmp);
    H5Tclose(str_t);
    str_t = -1;
  }
  CHECK_H5(write_num_attr(w->file, "num_utts", H5T_NATIVE_INT64, &w->num_utts), "%s", w->tmp);
  for (int d = 0; d < w->ndsets; d++) {
    CHECK_H5(H5Dclose(w->dsets[d]), "%s: closing /%s", w->tmp, w->names[d]);
    w->dsets[d] = -1;
  }
  CHECK_H5(H5Dclose(w->utt_ds), "%s: closing /utt_id", w->tmp);
  w->utt_ds = -1;
  CHECK_H5(H5Dclose(w->off_ds), "%s: closing /offsets", w->tmp);
  w->off_ds = -1;
  CHECK_H5(H5Fclose(w->file), "%s: closing (disk full?)", w->tmp);
  w->file = -1;
  if (file_commit_rename(w->tmp, w->path)) goto fail;
  free(w->tmp);
  w->tmp = NULL;
  writer_release(w);
  return 0;
fail:
  if (str_t >= 0) H5Tclose(str_t);
  featfile_abort(w);
  return -1;
}

// ---- reader -------------------------------------------------------------------------------------

struct hb_featfile {
  char *path;
  hid_t file;
  int64_t num_utts;
  char **utt;          // (U,)
  int64_t *offsets;    // (U+1,)
  char *kind;
  double rate;
  int nd;
  char **dnames;
  int *ddims;
  int64_t *dframes;
  hid_t *dids;
  int nattr;
  char **akeys, **avals;   // root string attributes
};

// Reads a scalar string attribute (variable or fixed length). 1: absent; -1: not a string.
static int read_str_attr(hid_t loc, const char *key, char **out) {
  *out = NULL;
  htri_t ex = H5Aexists(loc, key);
  if (ex < 0) return -1;
  if (ex == 0) return 1;
  hid_t a = H5Aopen(loc, key, H5P_DEFAULT);
  if (a < 0) return -1;
  hid_t ft = H5Aget_type(a), sp = H5Aget_space(a), mt = -1;
  int rc = -1;
  if (ft < 0 || sp < 0 || H5Tget_class(ft) != H5T_STRING || H5Sget_simple_extent_npoints(sp) != 1) goto done;
  htri_t isvar = H5Tis_variable_str(ft);
  if (isvar < 0) goto done;
  if ((mt = H5Tcopy(H5T_C_S1)) < 0) goto done;
  if (isvar) {
    char *s = NULL;
    if (H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Tset_cset(mt, H5Tget_cset(ft)) < 0 || H5Aread(a, mt, &s) < 0) goto done;
    *out = strdup(s ? s : "");
    H5free_memory(s);
  } else {
    size_t n = H5Tget_size(ft);
    if (n == 0 || n > (1u << 24)) goto done;
    char *s = calloc(1, n + 1);
    if (!s) goto done;
    if (H5Tset_size(mt, n + 1) < 0 || H5Tset_strpad(mt, H5T_STR_NULLTERM) < 0 || H5Aread(a, mt, s) < 0) {
      free(s);
      goto done;
    }
    *out = s;
  }
  rc = *out ? 0 : -1;
done:
  if (mt >= 0) H5Tclose(mt);
  if (sp >= 0) H5Sclose(sp);
  if (ft >= 0) H5Tclose(ft);
  H5Aclose(a);
  return rc;
}

// Reads a scalar numeric attribute converted to `memtype`. 1: absent; -1: wrong class/shape.
static int read_num_attr(hid_t loc, const char *key, hid_t memtype, void *out) {
  htri_t ex = H5Aexists(loc, key);
  if (ex < 0) return -1;
  if (ex == 0) return 1;
  hid_t a = H5Aopen(loc, key, H5P_DEFAULT);
  if (a < 0) return -1;
  hid_t ft = H5Aget_type(a), sp = H5Aget_space(a);
  int rc = -1;
  if (ft >= 0 && sp >= 0 && H5Sget_simple_extent_npoints(sp) == 1) {
    H5T_class_t c = H5Tget_class(ft);
    if ((c == H5T_INTEGER || c == H5T_FLOAT) && H5Aread(a, memtype, out) >= 0) rc = 0;
  }
  if (sp >= 0) H5Sclose(sp);
  if (ft >= 0) H5Tclose(ft);
  H5Aclose(a);
  return rc;
}

void featfile_free(hb_featfile *f) {
  if (!f) return;
  if (f->utt)
    for (int64_t i = 0; i < f->num_utts; i++) free(f->utt[i]);
  for (int d = 0; d < f->nd; d++) {
    if (f->dids[d] >= 0) H5Dclose(f->dids[d]);
    free(f->dnames[d]);
  }
  for (int i = 0; i < f->nattr; i++) {
    free(f->akeys[i]);
    free(f->avals[i]);
  }
  if (f->file >= 0) H5Fclose(f->file);
  free(f->utt);
  free(f->offsets);
  free(f->kind);
  free(f->dnames);
  free(f->ddims);
  free(f->dframes);
  free(f->dids);
  free(f->akeys);
  free(f->avals);
  free(f->path);
  free(f);
}

static herr_t collect_attr(hid_t loc, const char *name, const H5A_info_t *info, void *op) {
  (void)info;
  hb_featfile *f = op;
  char *v = NULL;
  if (read_str_attr(loc, name, &v) != 0) return 0;   // non-string attributes are not listed
  char **k2 = realloc(f->akeys, (size_t)(f->nattr + 1) * sizeof *k2);
  if (k2) f->akeys = k2;
  char **v2 = k2 ? realloc(f->avals, (size_t)(f->nattr + 1) * sizeof *v2) : NULL;
  if (v2) f->avals = v2;
  char *k = v2 ? strdup(name) : NULL;
  if (!k) {
    free(v);
    return -1;
  }
  f->akeys[f->nattr] = k;
  f->avals[f->nattr] = v;
  f->nattr++;
  return 0;
}

// Opens a 1-D dataset and returns its length; errors name file and dataset.
static int open_1d(hb_featfile *f, const char *name, H5T_class_t want, hid_t *ds, int64_t *n) {
  *ds = -1;
  htri_t ex = H5Lexists(f->file, name, H5P_DEFAULT);
  if (ex <= 0) return hb_fail("%s: missing dataset /%s", f->path, name);
  hid_t d = H5Dopen2(f->file, name, H5P_DEFAULT);
  if (d < 0) return hb_fail("%s: /%s is not a readable dataset", f->path, name);
  hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
  hsize_t dims[1];
  int ok = t >= 0 && sp >= 0 && H5Sget_simple_extent_ndims(sp) == 1 && H5Sget_simple_extent_dims(sp, dims, NULL) == 1;
  H5T_class_t c = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
  if (t >= 0) H5Tclose(t);
  if (sp >= 0) H5Sclose(sp);
  if (!ok) {
    H5Dclose(d);
    return hb_fail("%s: dataset /%s must be 1-D", f->path, name);
  }
  if (c != want) {
    H5Dclose(d);
    return hb_fail("%s: dataset /%s has the wrong type (expected %s)", f->path, name,
                   want == H5T_STRING ? "strings" : "integers");
  }
  if (dims[0] > (hsize_t)1 << 40) {
    H5Dclose(d);
    return hb_fail("%s: dataset /%s: implausible length %llu", f->path, name, (unsigned long long)dims[0]);
  }
  *ds = d;
  *n = (int64_t)dims[0];
  return 0;
}

static int read_utt_ids(hb_featfile *f) {
  hid_t ds;
  int64_t n;
  if (open_1d(f, "utt_id", H5T_STRING, &ds, &n)) return -1;
  if (n != f->num_utts) {
    H5Dclose(ds);
    return hb_fail("%s: /utt_id has %lld entries, attribute num_utts says %lld", f->path, (long long)n, (long long)f->num_utts);
  }
  int rc = -1;
  hid_t ft = H5Dget_type(ds), mt = H5Tcopy(H5T_C_S1);
  f->utt = hb_calloc((size_t)(n ? n : 1), sizeof *f->utt);
  if (!f->utt || ft < 0 || mt < 0) goto done;
  if (n == 0) { rc = 0; goto done; }
  htri_t isvar = H5Tis_variable_str(ft);
  if (isvar > 0) {
    char **tmp = hb_calloc((size_t)n, sizeof *tmp);
    if (!tmp) goto done;
    if (H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Tset_cset(mt, H5Tget_cset(ft)) < 0 ||
        H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, tmp) < 0) {
      free(tmp);
      hb_fail("%s: cannot read /utt_id (corrupt file?)", f->path);
      goto done;
    }
    rc = 0;
    for (int64_t i = 0; i < n; i++) {
      if (!tmp[i] || !tmp[i][0]) {
        if (rc == 0) rc = hb_fail("%s: /utt_id[%lld] is empty", f->path, (long long)i);
      } else if (rc == 0 && !(f->utt[i] = strdup(tmp[i]))) {
        rc = hb_fail("out of memory");
      }
      H5free_memory(tmp[i]);
    }
    free(tmp);
  } else if (isvar == 0) {
    size_t w = H5Tget_size(ft), bytes;
    if (w == 0 || w > 65536 || hb_mul_size((size_t)n, w + 1, &bytes)) {
      hb_fail("%s: /utt_id: implausible string size %zu", f->path, w);
      goto done;
    }
    char *buf = hb_calloc(bytes, 1);
    if (!buf) goto done;
    if (H5Tset_size(mt, w + 1) < 0 || H5Tset_strpad(mt, H5T_STR_NULLTERM) < 0 ||
        H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
      free(buf);
      hb_fail("%s: cannot read /utt_id (corrupt file?)", f->path);
      goto done;
    }
    rc = 0;
    for (int64_t i = 0; i < n && rc == 0; i++) {
      const char *s = buf + (size_t)i * (w + 1);
      if (!s[0]) rc = hb_fail("%s: /utt_id[%lld] is empty", f->path, (long long)i);
      else if (!(f->utt[i] = strdup(s))) rc = hb_fail("out of memory");
    }
    free(buf);
  } else {
    hb_fail("%s: /utt_id: cannot inspect string type", f->path);
  }
done:
  if (mt >= 0) H5Tclose(mt);
  if (ft >= 0) H5Tclose(ft);
  H5Dclose(ds);
  if (rc && !hb_errmsg()[0]) hb_fail("%s: cannot read /utt_id", f->path);
  return rc;
}

static int read_offsets(hb_featfile *f) {
  hid_t ds;
  int64_t n;
  if (open_1d(f, "offsets", H5T_INTEGER, &ds, &n)) return -1;
  if (n != f->num_utts + 1) {
    H5Dclose(ds);
    return hb_fail("%s: /offsets has %lld entries, expected num_utts + 1 = %lld", f->path, (long long)n, (long long)f->num_utts + 1);
  }
  f->offsets = hb_malloc((size_t)n * sizeof *f->offsets);
  if (!f->offsets || H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, f->offsets) < 0) {
    H5Dclose(ds);
    return f->offsets ? hb_fail("%s: cannot read /offsets (corrupt file?)", f->path) : -1;
  }
  H5Dclose(ds);
  if (f->offsets[0] != 0) return hb_fail("%s: /offsets[0] is %lld, must be 0", f->path, (long long)f->offsets[0]);
  for (int64_t i = 1; i < n; i++)
    if (f->offsets[i] < f->offsets[i - 1])
      return hb_fail("%s: /offsets decreases at index %lld (%lld after %lld)", f->path, (long long)i,
                     (long long)f->offsets[i], (long long)f->offsets[i - 1]);
  return 0;
}

// Registers every 2-D root dataset as a frame-level float dataset; other objects are skipped.
static int scan_datasets(hb_featfile *f) {
  H5G_info_t gi;
  if (H5Gget_info(f->file, &gi) < 0) return hb_fail("%s: cannot list the root group", f->path);
  if (gi.nlinks > 100000) return hb_fail("%s: implausible number of root objects (%llu)", f->path, (unsigned long long)gi.nlinks);
  int64_t total = f->offsets[f->num_utts];
  for (hsize_t i = 0; i < gi.nlinks; i++) {
    char name[256];
    ssize_t nl = H5Lget_name_by_idx(f->file, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT);
    if (nl < 0) return hb_fail("%s: cannot read the name of root object %llu", f->path, (unsigned long long)i);
    if (nl >= (ssize_t)sizeof name) continue;
    if (strcmp(name, "utt_id") == 0 || strcmp(name, "offsets") == 0) continue;
    if (H5Lexists(f->file, name, H5P_DEFAULT) <= 0) continue;
    hid_t o = H5Oopen(f->file, name, H5P_DEFAULT);
    if (o < 0) return hb_fail("%s: cannot open /%s", f->path, name);
    if (H5Iget_type(o) != H5I_DATASET) {
      H5Oclose(o);
      continue;
    }
    hid_t sp = H5Dget_space(o), t = H5Dget_type(o);
    hsize_t dims[2] = {0, 0};
    int rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (rank == 2) H5Sget_simple_extent_dims(sp, dims, NULL);
    H5T_class_t c = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    if (rank != 2) {
      H5Oclose(o);
      continue;
    }
    const char *err = NULL;
    if (c != H5T_FLOAT) err = "is 2-D but not floating point";
    else if (dims[1] < 1 || dims[1] > FEAT_MAX_DIM) err = "has an invalid feature dimension";
    if (err) {
      H5Oclose(o);
      return hb_fail("%s: dataset /%s %s (dims %llu x %llu)", f->path, name, err,
                     (unsigned long long)dims[0], (unsigned long long)dims[1]);
    }
    if ((int64_t)dims[0] != total || dims[0] > (hsize_t)INT64_MAX) {
      H5Oclose(o);
      return hb_fail("%s: dataset /%s has %llu rows, but /offsets ends at %lld", f->path, name,
                     (unsigned long long)dims[0], (long long)total);
    }
    int k = f->nd;
    char **nn = realloc(f->dnames, (size_t)(k + 1) * sizeof *nn);
    if (nn) f->dnames = nn;
    int *dd = nn ? realloc(f->ddims, (size_t)(k + 1) * sizeof *dd) : NULL;
    if (dd) f->ddims = dd;
    int64_t *ff = dd ? realloc(f->dframes, (size_t)(k + 1) * sizeof *ff) : NULL;
    if (ff) f->dframes = ff;
    hid_t *ii = ff ? realloc(f->dids, (size_t)(k + 1) * sizeof *ii) : NULL;
    if (ii) f->dids = ii;
    char *nm = ii ? strdup(name) : NULL;
    if (!nm) {
      H5Oclose(o);
      return hb_fail("out of memory");
    }
    f->dnames[k] = nm;
    f->ddims[k] = (int)dims[1];
    f->dframes[k] = (int64_t)dims[0];
    f->dids[k] = o;
    f->nd++;
  }
  if (f->nd == 0) return hb_fail("%s: no 2-D feature datasets", f->path);
  return 0;
}

int featfile_open(const char *path, hb_featfile **out) {
  *out = NULL;
  h5_quiet();
  if (!file_exists(path)) return hb_fail("%s: no such file", path);
  htri_t is = H5Fis_hdf5(path);
  if (is <= 0) return hb_fail("%s: not an HDF5 file (or unreadable)", path);
  hb_featfile *f = hb_calloc(1, sizeof *f);
  if (!f) return -1;
  f->file = -1;
  if (!(f->path = strdup(path))) {
    featfile_free(f);
    return hb_fail("out of memory");
  }
  // 8 MiB chunk cache per dataset: sequential per-utterance reads touch each chunk once
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl >= 0 && H5Pset_cache(fapl, 0, 521, 8u << 20, 1.0) >= 0)
    f->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  if (fapl >= 0) H5Pclose(fapl);
  if (f->file < 0) {
    featfile_free(f);
    return hb_fail("%s: cannot open HDF5 file (truncated or corrupt?)", path);
  }
  char *fmt = NULL;
  int r = read_str_attr(f->file, "format", &fmt);
  if (r != 0) {
    featfile_free(f);
    return hb_fail("%s: %s", path, r > 0 ? "no 'format' attribute; not a hubert feature file" : "unreadable 'format' attribute");
  }
  if (strcmp(fmt, FEAT_FORMAT) != 0) {
    hb_fail("%s: format attribute is '%s', expected '%s'", path, fmt, FEAT_FORMAT);
    free(fmt);
    featfile_free(f);
    return -1;
  }
  free(fmt);
  int64_t version = 0;
  if ((r = read_num_attr(f->file, "version", H5T_NATIVE_INT64, &version)) != 0 || version != FEAT_VERSION) {
    featfile_free(f);
    if (r) return hb_fail("%s: missing or unreadable 'version' attribute", path);
    return hb_fail("%s: version %lld is not supported (this build reads version %d)", path, (long long)version, FEAT_VERSION);
  }
  if ((r = read_str_attr(f->file, "kind", &f->kind)) != 0) {
    featfile_free(f);
    return hb_fail("%s: missing or unreadable 'kind' attribute", path);
  }
  if (read_num_attr(f->file, "rate", H5T_NATIVE_DOUBLE, &f->rate) != 0 || !(f->rate > 0) || !isfinite(f->rate)) {
    featfile_free(f);
    return hb_fail("%s: missing or invalid 'rate' attribute (frames per second)", path);
  }
  if (read_num_attr(f->file, "num_utts", H5T_NATIVE_INT64, &f->num_utts) != 0 || f->num_utts < 0 ||
      f->num_utts > ((int64_t)1 << 40)) {
    f->num_utts = 0;
    featfile_free(f);
    return hb_fail("%s: missing or invalid 'num_utts' attribute", path);
  }
  if (H5Aiterate2(f->file, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_attr, f) < 0) {
    featfile_free(f);
    return hb_fail("%s: cannot read root attributes", path);
  }
  if (read_utt_ids(f) || read_offsets(f) || scan_datasets(f)) {
    featfile_free(f);
    return -1;
  }
  *out = f;
  return 0;
}

int64_t featfile_num_utts(const hb_featfile *f) { return f->num_utts; }
const char *featfile_utt_id(const hb_featfile *f, int64_t i) {
  return i >= 0 && i < f->num_utts ? f->utt[i] : NULL;
}
const int64_t *featfile_offsets(const hb_featfile *f) { return f->offsets; }
const char *featfile_kind(const hb_featfile *f) { return f->kind; }
double featfile_rate(const hb_featfile *f) { return f->rate; }

static int find_dset(const hb_featfile *f, const char *name) {
  for (int d = 0; d < f->nd; d++)
    if (strcmp(f->dnames[d], name) == 0) return d;
  char has[512];
  size_t o = 0;
  has[0] = 0;
  for (int d = 0; d < f->nd && o < sizeof has - 1; d++)
    o += (size_t)snprintf(has + o, sizeof has - o, "%s%s", d ? ", " : "", f->dnames[d]);
  return hb_fail("%s: no dataset '%s' (has: %s)", f->path, name, has);
}

int featfile_dataset(const hb_featfile *f, const char *name, int *dim, int64_t *frames) {
  int d = find_dset(f, name);
  if (d < 0) return -1;
  if (dim) *dim = f->ddims[d];
  if (frames) *frames = f->dframes[d];
  return 0;
}

int featfile_read_rows(const hb_featfile *f, const char *name, int64_t row0, int64_t nrows, float *out) {
  int d = find_dset(f, name);
  if (d < 0) return -1;
  if (row0 < 0 || nrows < 0 || row0 > f->dframes[d] || nrows > f->dframes[d] - row0)
    return hb_fail("%s: dataset /%s: rows [%lld, %lld) outside [0, %lld)", f->path, name, (long long)row0,
                   (long long)(row0 + nrows), (long long)f->dframes[d]);
  if (nrows == 0) return 0;
  hsize_t start[2] = {(hsize_t)row0, 0}, count[2] = {(hsize_t)nrows, (hsize_t)f->ddims[d]};
  hid_t fs = H5Dget_space(f->dids[d]);
  hid_t ms = H5Screate_simple(2, count, NULL);
  int rc = -1;
  if (fs >= 0 && ms >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
      H5Dread(f->dids[d], H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, out) >= 0)
    rc = 0;
  if (ms >= 0) H5Sclose(ms);
  if (fs >= 0) H5Sclose(fs);
  if (rc) hb_fail("%s: dataset /%s: cannot read rows [%lld, %lld) (corrupt file?)", f->path, name,
                  (long long)row0, (long long)(row0 + nrows));
  return rc;
}

const char *featfile_attr(const hb_featfile *f, const char *key) {
  for (int i = 0; i < f->nattr; i++)
    if (strcmp(f->akeys[i], key) == 0) return f->avals[i];
  return NULL;
}
