// HuBERT inference forward: the arena and a thin driver of the shared blocks
// (models/hubert_blocks.c, also driven by the training forward in models/hubert_train.c).
#include <string.h>

#include "common/error.h"
#include "models/hubert.h"
#include "models/hubert_blocks.h"

int fwd_arena_init(hb_fwd_arena *a, const hb_model *m, int max_B, long max_samples) {
  const hb_config *c = &m->cfg;
  memset(a, 0, sizeof *a);
  const int rf = config_receptive_field(c);
  if (max_samples < rf) return hb_fail("arena: max_samples %ld is below the receptive field (%d samples)", max_samples, rf);
  a->max_B = max_B;
  a->max_samples = max_samples;
  a->max_T0 = (int)((max_samples - c->conv_kernel[0]) / c->conv_stride[0] + 1);
  a->max_T = config_num_frames(c, max_samples);
  int cmax = 0;
  for (int i = 0; i < c->num_conv; i++) cmax = c->conv_dim[i] > cmax ? c->conv_dim[i] : cmax;
  const size_t H = (size_t)c->hidden_size, FF = (size_t)c->intermediate_size;
  const size_t BT = (size_t)max_B * a->max_T, BT1 = (size_t)max_B * (a->max_T + 1);
  const size_t G = (size_t)c->num_conv_pos_embedding_groups, K = (size_t)c->num_conv_pos_embeddings;
  // Layer l writes buffer l & 1: conv_a holds the first conv's output (the longest), conv_b at
  // most the second's.
  const size_t T1 = c->num_conv > 1 ? (size_t)((a->max_T0 - c->conv_kernel[1]) / c->conv_stride[1] + 1) : 1;
  size_t sizes[10] = {(size_t)max_B * a->max_T0 * cmax, (size_t)max_B * T1 * cmax, BT1 * H, BT1 * H, BT1 * H,
                      BT * H, BT * H, BT * H, BT * FF, H * (H / G) * K};
  float **slots[10] = {&a->conv_a, &a->conv_b, &a->x, &a->t1, &a->t2, &a->q, &a->k, &a->v, &a->ff, &a->pos_w};
  size_t total = 0;
  for (int i = 0; i < 10; i++) {
    sizes[i] = (sizes[i] + 63) / 64 * 64;
    HB_TRY(hb_add_size(total, sizes[i], &total));
  }
  size_t bytes;
  HB_TRY(hb_mul_size(total, sizeof(float), &bytes));
  a->base = m->ctx->be->alloc(m->ctx, bytes);
  if (!a->base) return hb_fail_prefix("forward arena (%d x %ld samples, %.1f MB)", max_B, max_samples, bytes / 1e6);
  a->bytes = bytes;
  float *p = a->base;
  for (int i = 0; i < 10; i++) {
    *slots[i] = p;
    p += sizes[i];
  }
  return 0;
}

void fwd_arena_free(hb_fwd_arena *a, const hb_model *m) {
  if (a->base) m->ctx->be->free(m->ctx, a->base);
  memset(a, 0, sizeof *a);
}

int model_forward(hb_model *m, hb_fwd_arena *a, const float *wave, const long *lengths, int B, long L, int *frames,
                  int *Tp, float **hidden) {
  const hb_config *c = &m->cfg;
  const hb_backend *be = m->ctx->be;
  hb_ctx *ctx = m->ctx;
  HB_TRY(blocks_check_batch(c, "forward", lengths, B, L, a->max_B, a->max_samples, frames));
  // The shared blocks (models/hubert_blocks.h) on reused scratch, nothing saved, no dropout:
  // extractor block l runs in place in ping-pong buffer l & 1; the projection's LN runs in place
  // in the features, then everything up to the layer outputs lives in x, the positional conv in
  // t1. Encoder layer: a, o-proj and ff2 outputs in t1; attention output (and the pre-LN FFN
  // input) in t2; residuals, post-LN norms and the output in place in x; GELU in place in ff.
  hb_conv_slots cs = {{0}, {0}, {0}, {0}};
  for (int l = 0; l < c->num_conv; l++) cs.pre[l] = cs.nrm[l] = cs.act[l] = l & 1 ? a->conv_b : a->conv_a;
  int T;
  HB_TRY(blocks_extractor(m, &cs, wave, B, L, &T));
  *Tp = T;
  float *feat = cs.act[c->num_conv - 1];
  const hb_drop_site off = {0.0f, 0};
  HB_TRY(blocks_project(m, a->x, feat, NULL, feat, frames, B, T, off));
  HB_TRY(blocks_pos_embed(m, a->x, a->x, NULL, a->t1, a->t1, a->pos_w, a->x, B, T, off));

  const hb_layer_acts s = {.a = a->t1, .q = a->q, .k = a->k, .v = a->v, .att = a->t2, .r1 = a->x,
                           .h1 = c->do_stable_layer_norm ? a->t2 : a->x, .ffp = a->ff, .ffa = a->ff, .r2 = a->x,
                           .out = a->x};
  const int H = c->hidden_size, N = B * T, NL = c->num_hidden_layers;
  const size_t bytes = sizeof(float) * (size_t)N * H;
  if (hidden && hidden[0]) HB_TRY(be->copy(ctx, hidden[0], a->x, bytes));
  for (int l = 0; l < NL; l++) {
    HB_TRY(blocks_layer(m, l, &s, a->t1, a->x, frames, B, T, NULL));
    if (!hidden || !hidden[l + 1]) continue;
    if (l == NL - 1 && c->do_stable_layer_norm)
      HB_TRY(be->layer_norm(ctx, hidden[l + 1], a->x, m->p.enc_ln_w, m->p.enc_ln_b, N, H, (float)c->layer_norm_eps));
    else
      HB_TRY(be->copy(ctx, hidden[l + 1], a->x, bytes));
  }
  return 0;
}
