// The HuBERT trunk's blocks, written once: conv extractor, feature projection, positional
// embedding and encoder layer (math and order: models/hubert_train.h). Both forwards drive them:
//  - training (models/hubert_train.c) passes per-layer saved-activation slots, statistics slots
//    (the *_train norm / attention ops that save what the backward needs) and dropout sites;
//  - inference (models/hubert_forward.c) passes shared scratch reused by every layer (slots may
//    alias: the ops run in place), NULL statistics ("don't save": the plain ops) and no dropout.
// With dropout off both give the same result bit for bit.
#ifndef HB_HUBERT_BLOCKS_H
#define HB_HUBERT_BLOCKS_H

#include <stdint.h>

#include "models/hubert.h"

// One dropout site: p = 0 means off (seed unused).
typedef struct {
  float p;
  uint64_t seed;
} hb_drop_site;

// Outputs of the conv extractor's block l, each (B, T_l, C_l): conv output, norm output
// (blocks with a norm), GELU output (the next block's input). st[l]: NULL, or the norm statistics
// (B, G, 2) / (B*T_l, 2). Inference points pre = nrm = act at one ping-pong buffer per block.
typedef struct {
  float *pre[HB_MAX_CONV], *nrm[HB_MAX_CONV], *act[HB_MAX_CONV], *st[HB_MAX_CONV];
} hb_conv_slots;

// Outputs of one encoder layer, each (B, T, H) unless noted; NULL where unused. Training keeps
// one per layer; inference aliases them onto a few scratch buffers (see model_forward).
typedef struct {
  float *a;               // pre-LN: LN1(x) (the attention input)
  float *q, *k, *v, *att; // projections and attention output (before out_proj)
  float *lse;             // (B, NH, T) attention logsumexp; NULL: plain attention, no dropout
  float *r1, *h1;         // first residual sum; its normalised form (the FFN input)
  float *ffp, *ffa;       // (B, T, FF): ff1 output (GELU input); GELU output after dropout
  float *r2;              // post-LN: second residual sum (LN2 input)
  float *out;             // the layer output (hidden[l + 1] unless the layer was dropped)
  float *st1, *st2;       // (B*T, 2) layer-norm statistics of LN1 / LN2; NULL: not saved
} hb_layer_acts;

// Dropout sites of one encoder layer: attention output, attention probabilities, FFN activation,
// FFN output.
typedef struct {
  hb_drop_site att, att_prob, act, ffn;
} hb_layer_drop;

// Checks a batch against the arena's limits (max_B utterances of max_samples samples) and each
// length against [receptive field, L]; frames[b] receives each utterance's valid frame count.
// what: the caller, for the error message.
int blocks_check_batch(const hb_config *c, const char *what, const long *lengths, int B, long L, int max_B,
                       long max_samples, int *frames);

// wave (B, L) -> s->act[num_conv - 1] (B, *T, Cc).
int blocks_extractor(hb_model *m, const hb_conv_slots *s, const float *wave, int B, long L, int *T);

// x0 (B, T, H) = zero_padding(drop(linear([LN] features))). features (B, T, Cc); fp_ln receives
// LN(features) (may be features itself), fp_st its statistics or NULL.
int blocks_project(hb_model *m, float *x0, float *fp_ln, float *fp_st, const float *features, const int *frames,
                   int B, int T, hb_drop_site d);

// Positional embedding: pos_w = weight_norm(pos_v, pos_g); pc (B, T+1, H) = conv(x0);
// pcg = GELU(pc) (may be pc); e = x0 + pcg[:T] (may be x0); h0 = drop([encoder LN] e)
// (may be e); enc_st: NULL or the post-LN encoder-LN statistics.
int blocks_pos_embed(hb_model *m, float *h0, float *e, float *enc_st, float *pc, float *pcg, float *pos_w,
                     const float *x0, int B, int T, hb_drop_site d);

// Encoder layer l: x (B, T, H) -> s->out. tmp (B, T, H) scratch. d: NULL for no dropout.
int blocks_layer(hb_model *m, int l, const hb_layer_acts *s, float *tmp, const float *x, const int *frames, int B,
                 int T, const hb_layer_drop *d);

#endif
