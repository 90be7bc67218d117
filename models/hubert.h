// The HuBERT model, written once against the op API (kernels/ops.h).
//
// Forward (channel-last throughout):
//   wave (B, L) -> conv extractor -> features (B, T, Cconv) -> [LN] -> projection (B, T, H)
//   -> zero padded frames -> + GELU(weight-normed grouped pos conv) -> [LN if post-LN]
//   -> N transformer layers (post-LN: Base; pre-LN: Large) -> [final LN if pre-LN]
// Hidden states follow Hugging Face's numbering: hidden[0] is the transformer input (after the
// positional conv and, for post-LN, the encoder layer norm), hidden[k] the output of layer k;
// for pre-LN models hidden[N] has the final layer norm applied.
#ifndef HB_HUBERT_H
#define HB_HUBERT_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/ops.h"
#include "models/hubert_config.h"
#include "models/hubert_params.h"

typedef struct {
  hb_config cfg;
  hb_param_layout layout;
  hb_ctx *ctx;
  float *params;   // flat buffer, layout.total floats, backend memory
  hb_params p;     // views into params
} hb_model;

// Allocates a zeroed parameter buffer for the configuration.
int model_init(hb_model *m, const hb_config *c, hb_ctx *ctx);
void model_free(hb_model *m);
// HuBERT's initialisation (torchaudio/fairseq): kaiming for convs, xavier for attention,
// N(0, 0.02) for the other linears, weight-norm g = ||v||, uniform embeddings. Deterministic in seed.
int model_init_random(hb_model *m, uint64_t seed);
// Parameter count (elements, without alignment padding).
size_t model_num_params(const hb_model *m);

// Model folders: config.json + model.safetensors with HF HubertModel key names.
// Loading accepts weight_g/weight_v and parametrizations.weight.original0/original1, F32/F16/BF16
// tensors, and optional "hubert." / "wav2vec2." prefixes; every expected tensor must be present
// with the right shape (masked_spec_embed and pretraining heads may be missing: they are then
// initialised); unexpected tensors are reported and ignored only if they are known HF heads.
int model_load(hb_model *m, const char *dir, hb_ctx *ctx);
int model_save(const hb_model *m, const char *dir, int bf16);

// Forward-pass scratch, sized once for at most max_B utterances of max_samples samples.
typedef struct {
  int max_B;
  long max_samples;
  int max_T0, max_T;      // frames after the first conv / after the extractor
  size_t bytes;
  float *base;
  float *conv_a, *conv_b; // (B, T0, Cmax) ping-pong for the extractor
  float *x, *t1, *t2;     // (B, T+1, H)
  float *q, *k, *v;       // (B, T, H)
  float *ff;              // (B, T, I)
  float *pos_w;           // (H, H/G, K) weight-normed positional conv
} hb_fwd_arena;

int fwd_arena_init(hb_fwd_arena *a, const hb_model *m, int max_B, long max_samples);
void fwd_arena_free(hb_fwd_arena *a, const hb_model *m);

// wave: (B, L) backend memory, utterance b valid for lengths[b] samples (<= L), zero-padded.
// frames[b] receives each utterance's valid frame count; *T the padded frame count.
// hidden: num_hidden_layers + 1 pointers, each NULL or a (B, T, H) backend buffer to fill.
int model_forward(hb_model *m, hb_fwd_arena *a, const float *wave, const long *lengths, int B, long L,
                  int *frames, int *T, float **hidden);

#endif
