// The parameter table: every tensor of the model, written once as X-macros. From it come the
// view structs below (typed pointers into the flat buffer), the flat layout (256-byte aligned
// offsets shared by parameters, gradients and optimizer moments), checkpoint names (HF
// HubertModel keys), shapes, initialisation and weight-decay flags.
//
// X(field, hf_key, ndim, d0, d1, d2, init, present, decay)
//   hf_key  : printf format with one %d (the block index) for per-block tensors
//   d0..d2  : shape expressions; they may use `c` (const hb_config *) and `l` (block index)
//   present : expression, 0 if the tensor does not exist in this configuration
//   decay   : 1 if AdamW weight decay applies (weights of linears/convs), 0 (biases, norms, embs)
#ifndef HB_HUBERT_PARAMS_H
#define HB_HUBERT_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "models/hubert_config.h"

typedef enum {
  INIT_ZERO,
  INIT_ONE,
  INIT_KAIMING_NORMAL,  // conv extractor: N(0, 2 / fan_in)
  INIT_POS_CONV_V,      // positional conv: N(0, 4 / (hidden * kernel)) (torchaudio/fairseq)
  INIT_POS_CONV_G,      // weight-norm magnitude: ||v[:, :, k]|| so that w == v at init
  INIT_XAVIER_QKV,      // xavier_uniform, gain 1/sqrt(2)
  INIT_XAVIER,          // xavier_uniform, gain 1
  INIT_NORMAL_002,      // N(0, 0.02^2): the other linears (BERT init)
  INIT_UNIFORM01,       // U[0, 1): masked_spec_embed, label embeddings (fairseq)
} hb_init;

// Shape helpers for the conv blocks.
#define HB_CONV_OUT (c->conv_dim[l])
#define HB_CONV_IN (l ? c->conv_dim[l - 1] : 1)
#define HB_CONV_K (c->conv_kernel[l])
#define HB_CONV_HAS_NORM (c->feat_extract_norm_layer || l == 0)
#define HB_CONV_LAST (c->conv_dim[c->num_conv - 1])
#define HB_H (c->hidden_size)
#define HB_FINAL_OUT (c->final_dim * (c->untie_final_proj ? c->num_label_sets : 1))
#define HB_TOPIC_IN (c->topic_hidden ? c->topic_hidden : c->hidden_size)

#define HB_GLOBAL_PARAMS(X)                                                                                      \
  X(fp_ln_w, "feature_projection.layer_norm.weight", 1, HB_CONV_LAST, 1, 1, INIT_ONE, c->feat_proj_layer_norm, 0) \
  X(fp_ln_b, "feature_projection.layer_norm.bias", 1, HB_CONV_LAST, 1, 1, INIT_ZERO, c->feat_proj_layer_norm, 0)  \
  X(fp_w, "feature_projection.projection.weight", 2, HB_H, HB_CONV_LAST, 1, INIT_NORMAL_002, 1, 1)                 \
  X(fp_b, "feature_projection.projection.bias", 1, HB_H, 1, 1, INIT_ZERO, 1, 0)                                   \
  X(mask_emb, "masked_spec_embed", 1, HB_H, 1, 1, INIT_UNIFORM01, 1, 0)                                           \
  X(pos_g, "encoder.pos_conv_embed.conv.weight_g", 3, 1, 1, c->num_conv_pos_embeddings, INIT_POS_CONV_G, 1, 0)    \
  X(pos_v, "encoder.pos_conv_embed.conv.weight_v", 3, HB_H, HB_H / c->num_conv_pos_embedding_groups,              \
    c->num_conv_pos_embeddings, INIT_POS_CONV_V, 1, 1)                                                           \
  X(pos_b, "encoder.pos_conv_embed.conv.bias", 1, HB_H, 1, 1, INIT_ZERO, 1, 0)                                    \
  X(enc_ln_w, "encoder.layer_norm.weight", 1, HB_H, 1, 1, INIT_ONE, 1, 0)                                        \
  X(enc_ln_b, "encoder.layer_norm.bias", 1, HB_H, 1, 1, INIT_ZERO, 1, 0)                                         \
  X(final_proj_w, "final_proj.weight", 2, HB_FINAL_OUT, HB_H, 1, INIT_NORMAL_002, c->final_dim > 0, 1)           \
  X(final_proj_b, "final_proj.bias", 1, HB_FINAL_OUT, 1, 1, INIT_ZERO, c->final_dim > 0, 0)                      \
  X(label_embs, "label_embs_concat", 2, config_total_label_k(c), c->final_dim, 1, INIT_UNIFORM01,                  \
    c->final_dim > 0 && c->num_label_sets > 0, 0)                                                                \
  X(topic_hid_w, "topic_head.hidden.weight", 2, c->topic_hidden, HB_H, 1, INIT_NORMAL_002,                       \
    c->topic_k > 0 && c->topic_hidden > 0, 1)                                                                    \
  X(topic_hid_b, "topic_head.hidden.bias", 1, c->topic_hidden, 1, 1, INIT_ZERO, c->topic_k > 0 && c->topic_hidden > 0, 0) \
  X(topic_w, "topic_head.out.weight", 2, c->topic_k, HB_TOPIC_IN, 1, INIT_NORMAL_002, c->topic_k > 0, 1)        \
  X(topic_b, "topic_head.out.bias", 1, c->topic_k, 1, 1, INIT_ZERO, c->topic_k > 0, 0)                          \
  X(ctc_w, "ctc_head.weight", 2, c->ctc_vocab, HB_H, 1, INIT_NORMAL_002, c->ctc_vocab > 0, 1)                    \
  X(ctc_b, "ctc_head.bias", 1, c->ctc_vocab, 1, 1, INIT_ZERO, c->ctc_vocab > 0, 0)

#define HB_CONV_PARAMS(X)                                                                                        \
  X(w, "feature_extractor.conv_layers.%d.conv.weight", 3, HB_CONV_OUT, HB_CONV_IN, HB_CONV_K, INIT_KAIMING_NORMAL, 1, 1) \
  X(b, "feature_extractor.conv_layers.%d.conv.bias", 1, HB_CONV_OUT, 1, 1, INIT_ZERO, c->conv_bias, 0)           \
  X(norm_w, "feature_extractor.conv_layers.%d.layer_norm.weight", 1, HB_CONV_OUT, 1, 1, INIT_ONE, HB_CONV_HAS_NORM, 0) \
  X(norm_b, "feature_extractor.conv_layers.%d.layer_norm.bias", 1, HB_CONV_OUT, 1, 1, INIT_ZERO, HB_CONV_HAS_NORM, 0)

#define HB_LAYER_PARAMS(X)                                                                                       \
  X(q_w, "encoder.layers.%d.attention.q_proj.weight", 2, HB_H, HB_H, 1, INIT_XAVIER_QKV, 1, 1)                   \
  X(q_b, "encoder.layers.%d.attention.q_proj.bias", 1, HB_H, 1, 1, INIT_ZERO, 1, 0)                             \
  X(k_w, "encoder.layers.%d.attention.k_proj.weight", 2, HB_H, HB_H, 1, INIT_XAVIER_QKV, 1, 1)                   \
  X(k_b, "encoder.layers.%d.attention.k_proj.bias", 1, HB_H, 1, 1, INIT_ZERO, 1, 0)                             \
  X(v_w, "encoder.layers.%d.attention.v_proj.weight", 2, HB_H, HB_H, 1, INIT_XAVIER_QKV, 1, 1)                   \
  X(v_b, "encoder.layers.%d.attention.v_proj.bias", 1, HB_H, 1, 1, INIT_ZERO, 1, 0)                             \
  X(o_w, "encoder.layers.%d.attention.out_proj.weight", 2, HB_H, HB_H, 1, INIT_XAVIER, 1, 1)                     \
  X(o_b, "encoder.layers.%d.attention.out_proj.bias", 1, HB_H, 1, 1, INIT_ZERO, 1, 0)                           \
  X(ln1_w, "encoder.layers.%d.layer_norm.weight", 1, HB_H, 1, 1, INIT_ONE, 1, 0)                                \
  X(ln1_b, "encoder.layers.%d.layer_norm.bias", 1, HB_H, 1, 1, INIT_ZERO, 1, 0)                                 \
  X(ff1_w, "encoder.layers.%d.feed_forward.intermediate_dense.weight", 2, c->intermediate_size, HB_H, 1,        \
    INIT_NORMAL_002, 1, 1)                                                                                       \
  X(ff1_b, "encoder.layers.%d.feed_forward.intermediate_dense.bias", 1, c->intermediate_size, 1, 1, INIT_ZERO, 1, 0) \
  X(ff2_w, "encoder.layers.%d.feed_forward.output_dense.weight", 2, HB_H, c->intermediate_size, 1,              \
    INIT_NORMAL_002, 1, 1)                                                                                       \
  X(ff2_b, "encoder.layers.%d.feed_forward.output_dense.bias", 1, HB_H, 1, 1, INIT_ZERO, 1, 0)                  \
  X(ln2_w, "encoder.layers.%d.final_layer_norm.weight", 1, HB_H, 1, 1, INIT_ONE, 1, 0)                          \
  X(ln2_b, "encoder.layers.%d.final_layer_norm.bias", 1, HB_H, 1, 1, INIT_ZERO, 1, 0)

// ---- generated view structs: typed pointers into a flat buffer (NULL where absent) ----
#define HB_X_FIELD(field, key, nd, d0, d1, d2, init, present, decay) float *field;
typedef struct { HB_CONV_PARAMS(HB_X_FIELD) } hb_conv_params;
typedef struct { HB_LAYER_PARAMS(HB_X_FIELD) } hb_layer_params;
typedef struct {
  HB_GLOBAL_PARAMS(HB_X_FIELD)
  hb_conv_params conv[HB_MAX_CONV];
  hb_layer_params layers[HB_MAX_LAYERS];
} hb_params;
#undef HB_X_FIELD

// One tensor of the flat layout.
typedef struct {
  char name[128];        // HF key
  int ndim;
  int64_t shape[3];
  size_t numel;
  size_t offset;         // in floats from the start of the flat buffer (multiple of 64: 256 B)
  hb_init init;
  int decay;
  int block;             // -1 global, else conv or layer index
  int kind;              // 0 global, 1 conv block, 2 encoder layer
  size_t field;          // offsetof the pointer within its struct
} hb_param_info;

typedef struct {
  int n;
  hb_param_info *info;
  size_t total;          // floats in the flat buffer (including alignment padding)
} hb_param_layout;

int config_total_label_k(const hb_config *c);

// Builds the layout for a configuration (order: globals, conv blocks, encoder layers).
int params_layout_init(hb_param_layout *L, const hb_config *c);
void params_layout_free(hb_param_layout *L);
// Points every field of *view at base + offset (base: a flat buffer of L->total floats).
void params_bind(hb_params *view, const hb_param_layout *L, float *base);
// Index of a tensor by HF key, -1 if absent.
int params_find(const hb_param_layout *L, const char *name);

#endif
