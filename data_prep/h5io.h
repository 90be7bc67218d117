// Checked HDF5 helpers shared by every HDF5 file in the project (shards, label and topic files,
// k-means and topic models, feature files, the loader).
// - Every HDF5 call is checked; functions return 0 / -1 with hb_fail.
// - Every error names the file and the object: "FILE: /group/dataset: problem" or
//   "FILE: attribute 'key': problem" (FILE and the object path are taken from the HDF5 ids, so
//   callers add no prefix of their own; h5io_fail() gives their own checks the same form).
// - HDF5's own error-stack printing is off (h5io_quiet(), called by h5io_create / h5io_open).
// loc is a file, group or dataset id; names are relative to it.
#ifndef HB_H5IO_H
#define HB_H5IO_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

void h5io_quiet(void);
// Create (truncate) / open read-only; *f is -1 on failure.
int h5io_create(const char *path, hid_t *f);
int h5io_open(const char *path, hid_t *f);
// Checked close (the flush can fail, e.g. disk full); f < 0 is a no-op.
int h5io_close(hid_t f);
// "FILE: /loc/name" into buf (name may be NULL: loc itself; "FILE" alone for the root group).
#define H5IO_WHERE_LEN 2400
const char *h5io_where(hid_t loc, const char *name, char *buf, size_t n);
// hb_fail("<h5io_where>: <fmt>"); returns -1.
int h5io_fail(hid_t loc, const char *name, const char *fmt, ...) HB_PRINTF(3, 4);
// 1 if the link / attribute exists, else 0.
int h5io_exists(hid_t loc, const char *name);
int h5io_attr_exists(hid_t loc, const char *key);

// Variable-length UTF-8 string type (H5Tclose it); -1 on failure.
hid_t h5io_str_type(void);

// Scalar attributes; writing replaces an existing one. Reading a missing attribute is an error.
int h5io_write_str_attr(hid_t loc, const char *key, const char *value);
int h5io_write_i64_attr(hid_t loc, const char *key, int64_t v);
int h5io_write_f64_attr(hid_t loc, const char *key, double v);
int h5io_read_str_attr(hid_t loc, const char *key, char **out);   // free() *out
int h5io_read_i64_attr(hid_t loc, const char *key, int64_t *v);
int h5io_read_f64_attr(hid_t loc, const char *key, double *v);

// Writes a rank-1 or rank-2 dataset dims[rank] from data of memory type mtype, stored as ftype.
// chunk_rows > 0: chunked along the first axis (clamped to [1, 1 << 20] rows), uncompressed and
// extendible, for row-wise reads (shards). chunk_rows == 0: contiguous when small, else chunked
// (~64k elements) + deflate, for files read whole.
int h5io_write(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int rank, const int64_t *dims,
               const void *data, int64_t chunk_rows);
int h5io_write_1d(hid_t loc, const char *name, hid_t ftype, hid_t mtype, const void *data, int64_t n,
                  int64_t chunk_rows);
// 1-d variable-length UTF-8 strings (n), chunked by 1024, uncompressed.
int h5io_write_strings(hid_t loc, const char *name, char *const *s, int64_t n);

// Checks that dataset `name` exists with the given rank; dims (rank) out; *cls (if non-NULL)
// gets its type class.
int h5io_dims(hid_t loc, const char *name, int rank, int64_t *dims, H5T_class_t *cls);
// Reads a whole numeric dataset of the given rank converted to mtype (integer targets refuse
// float data). dims (rank) out; *data malloc'd (free()).
int h5io_read(hid_t loc, const char *name, hid_t mtype, int rank, int64_t *dims, void **data);
// Reads rows [row0, row0 + nrows) of a rank-1 or rank-2 dataset (all columns) converted to
// mtype. name NULL: loc is the open dataset.
int h5io_read_rows(hid_t loc, const char *name, hid_t mtype, int64_t row0, int64_t nrows, void *out);
// Reads a 1-d string dataset (variable or fixed length) as *n malloc'd copies.
int h5io_read_strings(hid_t loc, const char *name, int64_t *n, char ***out);
void h5io_free_strings(char **s, int64_t n);

#endif
