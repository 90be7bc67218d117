// Small checked HDF5 helpers for whole-array files (label files, k-means and topic models).
// Every function returns 0 / -1 and its error names the file and the dataset or attribute.
// HDF5's own error printing is silenced on first use.
#ifndef HB_H5LITE_H
#define HB_H5LITE_H

#include <hdf5.h>
#include <stdint.h>

// Create (truncate) / open read-only; *f < 0 on failure.
int h5l_create(const char *path, hid_t *f);
int h5l_open(const char *path, hid_t *f);
void h5l_close(hid_t f);

// Writes a rank-1 or rank-2 dataset (dims[rank]) of native type mem (H5T_NATIVE_INT32, ...)
// stored as file type ftype; contiguous, or chunked + deflate when large.
int h5l_write(hid_t f, const char *path, const char *name, hid_t mem, hid_t ftype, int rank,
              const int64_t *dims, const void *data);
// Reads a whole numeric dataset converted to mem; checks rank and that the stored class is
// numeric (integer or float as mem). dims (rank) out; *data malloc'd (free()).
int h5l_read(hid_t f, const char *path, const char *name, hid_t mem, int rank, int64_t *dims, void **data);
// 1 if the dataset exists, else 0.
int h5l_exists(hid_t f, const char *name);

// Variable-length UTF-8 strings (n); the reader also accepts fixed-length strings.
int h5l_write_strings(hid_t f, const char *path, const char *name, int64_t n, char *const *s);
int h5l_read_strings(hid_t f, const char *path, const char *name, int64_t *n, char ***s);
void h5l_free_strings(int64_t n, char **s);

// Root attributes.
int h5l_attr_write_str(hid_t f, const char *path, const char *key, const char *value);
int h5l_attr_write_num(hid_t f, const char *path, const char *key, hid_t mem, const void *value);
// *out malloc'd; missing attribute is an error naming it.
int h5l_attr_read_str(hid_t f, const char *path, const char *key, char **out);
int h5l_attr_read_double(hid_t f, const char *path, const char *key, double *out);
int h5l_attr_read_int64(hid_t f, const char *path, const char *key, int64_t *out);
int h5l_attr_exists(hid_t f, const char *key);

#endif
