// Probe inputs: one "feature set" = NAME=FILE[,FILE...] (feature files in the concatenated layout,
// data_prep/featfile.h: /feats from `hubert mfcc|fbank`, or /layer_K from `hubert extract`),
// matched utterance by utterance against meta.tsv (split column: train/valid/test).
// Loaded per split: each utterance's mean-pooled features (utterance tasks) and, for utterances
// with aligned phones, every frame with its phone label (frame task, CTC task). Each layer is
// standardised with the mean and standard deviation of its train rows (pooled and frame data
// separately), so one learning rate fits MFCC, fbank and every layer.
#ifndef HB_EVAL_PROBE_DATA_H
#define HB_EVAL_PROBE_DATA_H

#include <stdint.h>

#include "eval/evalmeta.h"

typedef struct {
  char *name;
  int n_files;
  char **files;
  int L;              // datasets used ("feats", or the chosen "layer_K")
  char **dsets;       // (L)
  int D;
  double rate;
  int64_t nutt[3];
  int64_t *row[3];    // (nutt) meta row of each utterance
  float **pooled[3];  // [l] (nutt, D)
  int64_t nal[3];     // utterances with aligned phones
  int64_t *al_row[3]; // (nal) their meta rows
  int64_t *foff[3];   // (nal + 1) frame offsets
  float **frames[3];  // [l] (foff[nal], D)
  int32_t *fphone[3]; // (foff[nal]) phone ids
  int64_t n_nosplit;  // utterances whose meta split is not train/valid/test (ignored)
} hb_probe_set;

// spec: NAME=FILE[,FILE...]; layers: "all" or a comma list of K (only for layer_K files).
int probe_set_load(hb_probe_set *ps, const char *spec, const char *layers, const hb_evalmeta *m);
void probe_set_free(hb_probe_set *ps);
// Error naming both sets when b does not hold exactly a's utterances in each split.
int probe_set_same_utts(const hb_probe_set *a, const hb_probe_set *b, const hb_evalmeta *m);

#endif
