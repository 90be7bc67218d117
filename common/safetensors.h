// safetensors (https://huggingface.co/docs/safetensors): 8-byte little-endian header length N,
// N bytes of JSON header {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
// "__metadata__": {str: str}}, then the data block; offsets are relative to the data block.
//
// The reader trusts nothing: header length vs file size, JSON validity, known dtype, shape
// product * dtype size == end - begin (overflow-checked), offsets inside the data block, no two
// tensors overlapping. Every error names the file and, where it applies, the tensor.
#ifndef HB_SAFETENSORS_H
#define HB_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { HB_DT_F32, HB_DT_F16, HB_DT_BF16, HB_DT_F64, HB_DT_I64, HB_DT_I32, HB_DT_I16, HB_DT_I8, HB_DT_U8, HB_DT_BOOL } hb_dtype;

#define HB_ST_MAX_DIMS 8

typedef struct {
  char *name;
  hb_dtype dtype;
  int ndim;
  int64_t shape[HB_ST_MAX_DIMS];
  size_t begin, end;   // byte range within the data block
} hb_st_tensor;

typedef struct {
  char *path;
  int n;
  hb_st_tensor *tensors;    // in header order
  int n_meta;
  char **meta_keys, **meta_values;
  uint8_t *data;            // the data block (owned)
  size_t data_len;
} hb_safetensors;

const char *st_dtype_name(hb_dtype dt);   // "F32", "BF16", ...
size_t st_dtype_size(hb_dtype dt);

int st_open(const char *path, hb_safetensors *st);
void st_close(hb_safetensors *st);
const hb_st_tensor *st_find(const hb_safetensors *st, const char *name);
size_t st_numel(const hb_st_tensor *t);
// Converts a floating tensor (F32/F16/BF16/F64) to float32 into dst[count]; count must equal the
// tensor's element count. Error (naming file and tensor) for non-float dtypes or count mismatch.
int st_read_f32(const hb_safetensors *st, const hb_st_tensor *t, float *dst, size_t count);
// The tensor `name` read into a new float array (free()); NULL with hb_fail when it is missing, has
// not ndim dimensions (ndim < 0: any), or cannot be read. shape (HB_ST_MAX_DIMS) and count may be
// NULL.
float *st_load_f32(const hb_safetensors *st, const char *name, int ndim, int64_t *shape, size_t *count);

// Writer: tensors are written in the order given, float32 or bfloat16 (round-to-nearest-even).
// The file is written to PATH.tmp, fsynced, then renamed over PATH: a crash never leaves a
// half-written file under the final name.
typedef struct {
  const char *name;
  const float *data;
  int ndim;
  int64_t shape[HB_ST_MAX_DIMS];
} hb_st_entry;

int st_write(const char *path, int n, const hb_st_entry *entries, hb_dtype dtype,
             int n_meta, const char *const *meta_keys, const char *const *meta_values);

#endif
