// HuBERT training forward and backward of the trunk (conv extractor + projection + transformer),
// written once against the op API. The heads and losses (models/hubert_heads.*) consume the
// hidden states and features exposed here and return their gradients to model_backward().
//
// Training forward, torchaudio/fairseq order (hubert_pretrain_model):
//   wave (B, L) -> conv blocks [conv -> (group|layer norm) -> GELU] -> features (B, T, Cc)
//   -> [LN] -> projection -> dropout(feat_proj_dropout) -> zero padded frames
//   -> masked frames := masked_spec_embed -> x0
//   -> e = x0 + GELU(pos_conv(x0))[:T] -> [encoder LN if post-LN] -> dropout(hidden) = hidden[0]
//   -> layers (LayerDrop: a dropped layer passes its input through) -> [final LN if pre-LN]
// Encoder layer (torchaudio EncoderLayer), post-LN:
//   r1 = x + drop(attn(x)); h1 = LN1(r1); r2 = h1 + drop(FFN(h1)); out = LN2(r2)
// pre-LN:
//   r1 = x + drop(attn(LN1(x))); h1 = LN2(r1); out = r1 + drop(FFN(h1))
// FFN(h) = ff2(drop_act(GELU(ff1(h)))). attn() drops its softmax probabilities with
// attention_dropout (torch: softmax -> dropout -> @ V) inside attention_train/attention_backward;
// the mask seed is a sub-stream of the layer's attention-output dropout seed.
#ifndef HB_HUBERT_TRAIN_H
#define HB_HUBERT_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "models/hubert.h"
#include "models/hubert_blocks.h"  // hb_layer_acts: one layer's saved activations

typedef struct {
  int train;      // 1: dropout and LayerDrop as configured; 0: deterministic (eval-mode) forward
  uint64_t seed;  // Philox seed of this step's dropout masks and LayerDrop draws
} hb_train_opts;

typedef struct {
  int max_B;
  long max_samples;
  int max_T;
  size_t bytes;           // the one backend allocation (activations + gradient scratch)
  float *base;
  // conv extractor, per block l (B, T_l, C_l): conv output, norm output (NULL without norm),
  // GELU output (the next block's input); stats (B, G, 2) or (B*T_l, 2)
  float *conv_pre[HB_MAX_CONV], *conv_nrm[HB_MAX_CONV], *conv_act[HB_MAX_CONV], *conv_st[HB_MAX_CONV];
  float *fp_ln, *fp_st;   // (B, T, Cc) LN(features), stats
  float *x0;              // (B, T, H) positional conv input (after dropout, padding, mask)
  float *pc;              // (B, T + 1, H) positional conv output (GELU input)
  float *e, *enc_st;      // (B, T, H) x0 + GELU(pc); encoder-LN statistics (post-LN)
  float *h0;              // (B, T, H) hidden[0]
  float *hN, *fin_st;     // pre-LN: (B, T, H) final LN output = hidden[NL]; its statistics
  float *pos_w;           // (H, H/G, K) weight-normed positional conv
  hb_layer_acts layer[HB_MAX_LAYERS];
  // gradient scratch
  float *gconv[2];        // ping-pong (B, T0, Cmax), (B, T1, Cmax)
  float *g, *gt, *gu, *gq, *gk, *gv;  // (B, T, H)
  float *gff;             // (B, T, FF)
  float *gpc;             // (B, T + 1, H)
  float *gpos_w;          // (H, H/G, K)
  // state of the last forward (host)
  int B, T;
  long L;
  const float *wave;      // (B, L) as given to the forward (kept for the first conv's backward)
  int *frames;            // (max_B) valid frames per utterance
  uint8_t *mask;          // (max_B * max_T) the frame mask used, (B, T) row-major
  int has_mask;
  const uint8_t *chan_next;  // train_arena_set_channel_mask: used (and cleared) by the next forward
  uint8_t *chan_mask;     // (max_B * H) the channel mask of the last forward
  int has_chan_mask;
  float *chan_host;       // (max_B * max_T * H) host staging for the channel mask, allocated on first use
  int *dropped;           // (num_hidden_layers) 1 if LayerDrop skipped the layer
  int train;
  uint64_t seed;
  // outputs of the last forward (views into the arena)
  float *features;        // (B, T, Cc) conv features before the projection's layer norm
  float *hidden[HB_MAX_LAYERS + 1];  // (B, T, H) each
  // Gradient-ready hook (NULL: none; train_arena_init clears it): model_backward calls
  // grad_ready(grad_ready_user, off, len) for ranges [off, off + len) of the flat gradient buffer
  // that it will not write again, as soon as they are final. Order: each encoder layer's range
  // after its backward (NL - 1 .. 0, LayerDrop-skipped layers too), then the global tensors
  // (positional conv, encoder LN, projection, masked_spec_embed, and the heads, whose gradients the
  // caller accumulated before model_backward), then each conv block (last .. first). The ranges
  // are contiguous segments of the layout (alignment padding included) and cover
  // [0, layout.total) exactly once per model_backward. On a GPU backend the range's kernels are
  // enqueued, not finished, when the hook runs. A nonzero return aborts the backward (-1).
  int (*grad_ready)(void *user, size_t off, size_t len);
  void *grad_ready_user;
} hb_train_arena;

int train_arena_init(hb_train_arena *a, const hb_model *m, int max_B, long max_samples);
void train_arena_free(hb_train_arena *a, const hb_model *m);
// Channel masking (wav2vec2/fairseq mask_channel_prob) for the NEXT model_forward_train only:
// mask (B, H) host bytes, 1 = channel h of every frame of utterance b is zeroed in x0 after the
// time mask (fairseq HuBERT apply_mask); the bytes must stay valid until that forward; NULL: none.
void train_arena_set_channel_mask(hb_train_arena *a, const uint8_t *mask);

// Training forward. wave: (B, L) backend memory (must stay unchanged until model_backward),
// lengths[b] <= L valid samples; mask: (B, T) host uint8 (1 = replace the frame by
// masked_spec_embed) with T = config_num_frames(cfg, L), or NULL. frames[b]
// receives the valid frame count, *T the padded one. Results: a->hidden[0..NL], a->features.
int model_forward_train(hb_model *m, hb_train_arena *a, const float *wave, const long *lengths, int B, long L,
                        const uint8_t *mask, int *frames, int *T, const hb_train_opts *opts);

// Backward of the last model_forward_train. d_hidden: NULL or NL + 1 pointers, each NULL or a
// (B, T, H) gradient with respect to hidden[k]; d_features: NULL or (B, T, Cc) gradient with
// respect to features. The total gradient reaching the features is multiplied by
// feature_grad_mult before it enters the extractor (fairseq's GradMultiply; 1 = plain).
// Parameter gradients are ACCUMULATED into grads (flat buffer, the model's layout).
int model_backward(hb_model *m, hb_train_arena *a, float *const *d_hidden, const float *d_features,
                   float feature_grad_mult, float *grads);
// Calls grad_ready for every range of the gradient-ready hook in model_backward's order without
// computing anything (a data-parallel rank whose micro-batch is only padding must still start the
// same buckets in the same order as its peers).
int model_grad_ready_all(const hb_model *m, int (*grad_ready)(void *user, size_t off, size_t len), void *user);

#endif
