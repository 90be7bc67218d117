// Small checked HDF5 helpers shared by the shard writer/reader and the label import/export.
// Every function returns 0 / -1 (hb_fail naming the dataset or attribute; callers prefix the
// file name). HDF5's own error printing is silenced by h5io_quiet().
#ifndef HB_H5IO_H
#define HB_H5IO_H

#include <hdf5.h>
#include <stdint.h>

void h5io_quiet(void);
int h5io_write_str_attr(hid_t loc, const char *key, const char *value);
int h5io_write_i64_attr(hid_t loc, const char *key, int64_t v);
int h5io_write_f64_attr(hid_t loc, const char *key, double v);
// Missing attributes are errors ("no attribute 'KEY'").
int h5io_read_str_attr(hid_t loc, const char *key, char **out);   // free() *out
int h5io_read_i64_attr(hid_t loc, const char *key, int64_t *v);
int h5io_read_f64_attr(hid_t loc, const char *key, double *v);
// 1-d chunked (extendible) dataset of n elements; chunk is clamped to [1, 1<<20].
int h5io_write_1d(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, const void *data,
                  int64_t n, int64_t chunk);
// 2-d chunked float32 (n, d).
int h5io_write_2d_f32(hid_t loc, const char *name, const float *data, int64_t n, int d, int64_t chunk_rows);
// 1-d variable-length UTF-8 strings.
int h5io_write_strings(hid_t loc, const char *name, char *const *s, int64_t n);
// Length of a 1-d dataset (error if missing or not 1-d); *cls gets its type class if non-NULL.
int h5io_len_1d(hid_t loc, const char *name, int64_t *n, H5T_class_t *cls);
// Reads elements [start, start + n) of a 1-d dataset converted to mem_type.
int h5io_read_1d(hid_t loc, const char *name, hid_t mem_type, int64_t start, int64_t n, void *out);
// Reads all n strings of a 1-d string dataset (fixed or variable length) as malloc'd copies.
int h5io_read_strings(hid_t loc, const char *name, int64_t n, char ***out);
void h5io_free_strings(char **s, int64_t n);

#endif
