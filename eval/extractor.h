// Hidden-state extraction shared by `hubert extract` and the C API (eval/hubert_capi.h): a loaded
// model, its forward arena (grown to the largest batch seen) and host-readable hidden states.
#ifndef HB_EXTRACTOR_H
#define HB_EXTRACTOR_H

#include <stddef.h>

#include "models/hubert.h"

typedef struct {
  hb_ctx ctx;            // model.ctx points here: an hb_extractor must not move after open
  hb_model model;
  int have_ctx, have_model, have_arena;
  hb_fwd_arena arena;
  int *want;             // (NL + 1) flags: hidden states computed and returned
  float *wave;           // (B, L) backend buffer
  size_t wave_cap;
  float **hidden;        // (NL + 1) backend buffers (B, T, H), NULL where not wanted
  size_t hidden_cap;     // floats per hidden buffer
  float *host;           // device backends: host copies (NL + 1, B, T, H) of the wanted states
  size_t host_cap;
  float *stage;          // host (B, L) zero-padded batch
  size_t stage_cap;
  int last_B, last_T;
} hb_extractor;

// Loads a model folder on backend `device` ("cpu" | "cuda"); threads <= 0: OpenMP's default.
// Every hidden state is wanted until extractor_set_layers says otherwise.
int extractor_open(hb_extractor *e, const char *model_dir, const char *device, int threads);
void extractor_close(hb_extractor *e);
int extractor_num_layers(const hb_extractor *e);   // NL: there are NL + 1 hidden states
int extractor_hidden_size(const hb_extractor *e);
// want: NL + 1 flags (at least one set).
int extractor_set_layers(hb_extractor *e, const int *want);
// B utterances waves[b] of lens[b] samples (each >= the receptive field), zero-padded into one
// (B, max len) batch as torchaudio/fairseq do. frames[b]: valid frames of b; *T: padded frames.
int extractor_forward(hb_extractor *e, const float *const *waves, const long *lens, int B, int *frames, int *T);
// Host (B, T, H) hidden state `layer` of the last forward; NULL if it was not wanted.
const float *extractor_hidden(const hb_extractor *e, int layer);

// SUPERB weighted sum of n hidden states hs[i] (rows, D):
//   out = sum_i w_i * LN?(hs[i]),  w = softmax(weights) (s3prl's Featurizer) or weights as given
// (raw = 1); LN (layer_norm = 1) is a per-row layer norm without affine, eps 1e-5, as s3prl's
// upstream_feature_normalize. Sums in double.
void extractor_weighted_sum(const float *const *hs, int n, const float *weights, int raw, int layer_norm,
                            size_t rows, int D, float *out);
// Parses "w0,w1,...": exactly n finite numbers.
int extractor_parse_weights(const char *spec, int n, float *out);

#endif
