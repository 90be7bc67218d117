// HDF5 feature files (layout in featfile.h). Every HDF5 call is checked; HDF5's own error stack
// printing is silenced and replaced by messages that name the file and dataset.
#include "data_prep/featfile.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "data_prep/h5io.h"

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
  h5io_quiet();
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
  int64_t zero = 0;
  if (h5io_write_str_attr(w->file, "format", FEAT_FORMAT) || h5io_write_i64_attr(w->file, "version", FEAT_VERSION) ||
      h5io_write_str_attr(w->file, "kind", info->kind) || h5io_write_f64_attr(w->file, "rate", info->rate) ||
      h5io_write_i64_attr(w->file, "sample_rate", 16000) || h5io_write_i64_attr(w->file, "num_utts", 0))
    goto fail;
  for (int i = 0; i < info->n_attrs; i++) {
    const char *k = info->attr_keys[i];
    static const char *reserved[] = {"format", "version", "kind", "rate", "sample_rate", "num_utts"};
    for (size_t r = 0; r < sizeof reserved / sizeof *reserved; r++)
      if (strcmp(k, reserved[r]) == 0) {
        hb_fail("%s: attribute '%s' is reserved", path, k);
        goto fail;
      }
    if (h5io_write_str_attr(w->file, k, info->attr_values[i] ? info->attr_values[i] : "")) goto fail;
  }
  str_t = h5io_str_type();
  CHECK_H5(str_t, "%s: string type", w->tmp);
  w->utt_ds = create_ext(w->file, "utt_id", str_t, 0, FEAT_IDX_CHUNK);
  CHECK_H5(w->utt_ds, "%s: cannot create dataset /utt_id", w->tmp);
  w->off_ds = create_ext(w->file, "offsets", H5T_STD_I64LE, 0, FEAT_IDX_CHUNK);
  CHECK_H5(w->off_ds, "%s: cannot create dataset /offsets", w->tmp);
  CHECK_H5(append_rows(w->off_ds, H5T_NATIVE_INT64, 0, 1, 0, &zero), "%s: /offsets", w->tmp);
  for (int d = 0; d < ndsets; d++) {
    w->names[d] = strdup(names[d]);
    if (!w->names[d]) { hb_fail("%s: out of memory", path); goto fail; }
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
    str_t = h5io_str_type();
    CHECK_H5(str_t, "%s: string type", w->tmp);
    CHECK_H5(append_rows(w->utt_ds, str_t, 0, (hsize_t)w->num_utts, 0, w->ids), "%s: writing /utt_id", w->tmp);
    CHECK_H5(append_rows(w->off_ds, H5T_NATIVE_INT64, 1, (hsize_t)w->num_utts, 0, w->ends), "%s: writing /offsets", w->tmp);
    H5Tclose(str_t);
    str_t = -1;
  }
  if (h5io_write_i64_attr(w->file, "num_utts", w->num_utts)) goto fail;
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
  if (h5io_read_str_attr(loc, name, &v)) {   // non-string attributes are not listed
    hb_clear_error();
    return 0;
  }
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

static int read_utt_ids(hb_featfile *f) {
  int64_t n;
  if (h5io_read_strings(f->file, "utt_id", &n, &f->utt)) return -1;
  if (n != f->num_utts) {
    h5io_free_strings(f->utt, n);
    f->utt = NULL;
    return hb_fail("%s: /utt_id has %lld entries, attribute num_utts says %lld", f->path, (long long)n, (long long)f->num_utts);
  }
  for (int64_t i = 0; i < n; i++)
    if (!f->utt[i][0]) return hb_fail("%s: /utt_id[%lld] is empty", f->path, (long long)i);
  return 0;
}

static int read_offsets(hb_featfile *f) {
  int64_t n;
  void *p;
  if (h5io_read(f->file, "offsets", H5T_NATIVE_INT64, 1, &n, &p)) return -1;
  f->offsets = p;
  if (n != f->num_utts + 1)
    return hb_fail("%s: /offsets has %lld entries, expected num_utts + 1 = %lld", f->path, (long long)n, (long long)f->num_utts + 1);
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

// Root attributes: format, version, kind, rate, num_utts, and every string attribute.
static int read_header(hb_featfile *f) {
  char *fmt = NULL;
  if (!h5io_attr_exists(f->file, "format")) return hb_fail("%s: no 'format' attribute; not a hubert feature file", f->path);
  if (h5io_read_str_attr(f->file, "format", &fmt)) return -1;
  int bad = strcmp(fmt, FEAT_FORMAT) != 0;
  if (bad) hb_fail("%s: format attribute is '%s', expected '%s'", f->path, fmt, FEAT_FORMAT);
  free(fmt);
  if (bad) return -1;
  int64_t version = 0, n = 0;
  if (h5io_read_i64_attr(f->file, "version", &version)) return -1;
  if (version != FEAT_VERSION)
    return hb_fail("%s: version %lld is not supported (this build reads version %d)", f->path, (long long)version, FEAT_VERSION);
  if (h5io_read_str_attr(f->file, "kind", &f->kind) || h5io_read_f64_attr(f->file, "rate", &f->rate) ||
      h5io_read_i64_attr(f->file, "num_utts", &n))
    return -1;
  if (!(f->rate > 0) || !isfinite(f->rate))
    return hb_fail("%s: attribute rate = %g is not a frame rate (frames per second)", f->path, f->rate);
  if (n < 0 || n > ((int64_t)1 << 40)) return hb_fail("%s: attribute num_utts = %lld out of range", f->path, (long long)n);
  f->num_utts = n;
  if (H5Aiterate2(f->file, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_attr, f) < 0)
    return hb_fail("%s: cannot read root attributes", f->path);
  return 0;
}

int featfile_open(const char *path, hb_featfile **out) {
  *out = NULL;
  h5io_quiet();
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
  if (read_header(f) || read_utt_ids(f) || read_offsets(f) || scan_datasets(f)) {
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
  return h5io_read_rows(f->dids[d], NULL, H5T_NATIVE_FLOAT, row0, nrows, out);
}

const char *featfile_attr(const hb_featfile *f, const char *key) {
  for (int i = 0; i < f->nattr; i++)
    if (strcmp(f->akeys[i], key) == 0) return f->avals[i];
  return NULL;
}
