// Frame-label ("units") and utterance-topic files, HDF5:
//   units:  /utt_id vlen strings (U), /offsets int64 (U+1), /units int32 (frames);
//           attrs format = "hubert-units", k, rate (Hz), source (e.g. "mfcc feats of demo.h5").
//   topics: /utt_id (U), /topics int32 (U), /mixture float32 (U, K);
//           attrs format = "hubert-topics", k, source.
// Writers write PATH.tmp and rename it into place. Readers validate everything (format, offsets
// start at 0, never decrease and end at the number of frames, unit ids in [0, k), topic ids in
// [0, K), mixture rows finite and >= 0) and name the file and dataset in every error.
#ifndef HB_LABELFILE_H
#define HB_LABELFILE_H

#include <stdint.h>

typedef struct {
  int64_t n_utts;
  char **utt_id;      // (U)
  int64_t *offsets;   // (U+1) frame offsets into units
  int32_t *units;     // (offsets[U])
  int k;              // number of unit ids
  double rate;        // frames per second
  char *source;       // free text ("" if none)
} hb_units;

typedef struct {
  int64_t n_utts;
  char **utt_id;      // (U)
  int32_t *topics;    // (U) argmax of each mixture row
  float *mixture;     // (U, k) topic proportions
  int k;              // number of topics
  char *source;
} hb_topics;

int labelfile_write_units(const char *path, const hb_units *u);
int labelfile_read_units(const char *path, hb_units *u);
void labelfile_free_units(hb_units *u);

int labelfile_write_topics(const char *path, const hb_topics *t);
int labelfile_read_topics(const char *path, hb_topics *t);
void labelfile_free_topics(hb_topics *t);

#endif
