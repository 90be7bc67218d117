// Feature files in the concatenated HDF5 layout (DESIGN.md, "Feature output"):
//   /utt_id   variable-length strings (U)
//   /offsets  int64 (U+1), frame offsets of each utterance into every frame-level dataset
//   /<name>   float32 (frames, D), one per dataset: "feats" for MFCC/fbank, "layer_K" for extract
// Root attributes: format = "hubert-features", version = 1, kind ("mfcc", "fbank", "hubert"),
// rate (frames per second, double), sample_rate (16000), num_utts; plus free string attributes
// (e.g. "model" for extract). Datasets are chunked and extendible, so the writer streams: memory
// does not grow with the corpus. The writer writes PATH.tmp and renames on close, so a failed
// run never replaces a good file. The reader checks format, offsets (start at 0, non-decreasing,
// last == frames of every dataset) before use and names the file and dataset in any error.
#ifndef HB_FEATFILE_H
#define HB_FEATFILE_H

#include <stdint.h>

typedef struct hb_featfile_writer hb_featfile_writer;

typedef struct {
  const char *kind;         // "mfcc", "fbank", "hubert", ...
  double rate;              // frames per second
  int n_attrs;              // extra string attributes
  const char *const *attr_keys;
  const char *const *attr_values;
} hb_featfile_info;

int featfile_create(const char *path, const hb_featfile_info *info, int ndsets,
                    const char *const *names, const int *dims, hb_featfile_writer **out);
// data[d] points to (frames, dims[d]) floats for dataset d.
int featfile_append(hb_featfile_writer *w, const char *utt_id, int64_t frames, const float *const *data);
// Finishes the file and renames it into place. Frees w whatever happens.
int featfile_close(hb_featfile_writer *w);
// Drops the temporary file (on error paths). Frees w.
void featfile_abort(hb_featfile_writer *w);

typedef struct hb_featfile hb_featfile;

int featfile_open(const char *path, hb_featfile **out);
void featfile_free(hb_featfile *f);
int64_t featfile_num_utts(const hb_featfile *f);
const char *featfile_utt_id(const hb_featfile *f, int64_t i);
const int64_t *featfile_offsets(const hb_featfile *f);        // (U+1)
const char *featfile_kind(const hb_featfile *f);
double featfile_rate(const hb_featfile *f);
// Dataset lookup: returns 0 and sets dim/frames, or -1 "FILE: no dataset 'NAME' (has: ...)".
int featfile_dataset(const hb_featfile *f, const char *name, int *dim, int64_t *frames);
// Reads rows [row0, row0 + nrows) of a dataset into out (nrows, dim).
int featfile_read_rows(const hb_featfile *f, const char *name, int64_t row0, int64_t nrows, float *out);
// A root string attribute, or NULL.
const char *featfile_attr(const hb_featfile *f, const char *key);

#endif
