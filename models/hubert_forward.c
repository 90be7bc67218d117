// HuBERT forward pass (inference; the training forward/backward builds on the same blocks).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "models/hubert.h"

#define CONV_LN_EPS 1e-5f  // the conv extractor's norms use PyTorch's default eps

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

// Conv feature extractor: wave (B, L) -> (B, T, Cconv) in *out (one of the ping-pong buffers).
static int extract_features(hb_model *m, hb_fwd_arena *a, const float *wave, int B, long L, float **out, int *Tout) {
  const hb_config *c = &m->cfg;
  const hb_backend *be = m->ctx->be;
  const float *x = wave;
  int T = (int)L, Cin = 1;
  float *bufs[2] = {a->conv_a, a->conv_b};
  for (int l = 0; l < c->num_conv; l++) {
    const hb_conv_params *cp = &m->p.conv[l];
    const int Co = c->conv_dim[l], K = c->conv_kernel[l], S = c->conv_stride[l];
    const int To = (T - K) / S + 1;
    float *y = bufs[l & 1];
    HB_TRY(be->conv1d(m->ctx, y, x, cp->w, cp->b, B, T, Cin, Co, K, S, 0, 1));
    if (c->feat_extract_norm_layer) HB_TRY(be->layer_norm(m->ctx, y, y, cp->norm_w, cp->norm_b, B * To, Co, CONV_LN_EPS));
    else if (l == 0) HB_TRY(be->group_norm(m->ctx, y, y, cp->norm_w, cp->norm_b, B, To, Co, Co, CONV_LN_EPS));
    HB_TRY(be->gelu(m->ctx, y, y, (size_t)B * To * Co));
    x = y;
    T = To;
    Cin = Co;
  }
  *out = (float *)x;
  *Tout = T;
  return 0;
}

static int transformer_layer(hb_model *m, hb_fwd_arena *a, const hb_layer_params *lp, const int *frames, int B, int T) {
  const hb_config *c = &m->cfg;
  const hb_backend *be = m->ctx->be;
  hb_ctx *ctx = m->ctx;
  const int H = c->hidden_size, FF = c->intermediate_size, NH = c->num_attention_heads, Dh = H / NH;
  const int N = B * T;
  const float eps = (float)c->layer_norm_eps;
  const size_t n = (size_t)N * H;
  float *x = a->x, *t1 = a->t1, *t2 = a->t2;
  const float *in = x;
  if (c->do_stable_layer_norm) {  // pre-LN: attention sees LN(x)
    HB_TRY(be->layer_norm(ctx, t1, x, lp->ln1_w, lp->ln1_b, N, H, eps));
    in = t1;
  }
  HB_TRY(be->linear(ctx, a->q, in, lp->q_w, lp->q_b, N, H, H));
  HB_TRY(be->linear(ctx, a->k, in, lp->k_w, lp->k_b, N, H, H));
  HB_TRY(be->linear(ctx, a->v, in, lp->v_w, lp->v_b, N, H, H));
  HB_TRY(be->attention(ctx, t2, a->q, a->k, a->v, frames, B, T, NH, Dh, 1.0f / sqrtf((float)Dh)));
  HB_TRY(be->linear(ctx, t1, t2, lp->o_w, lp->o_b, N, H, H));
  HB_TRY(be->add(ctx, x, x, t1, n));
  if (!c->do_stable_layer_norm) {  // post-LN
    HB_TRY(be->layer_norm(ctx, x, x, lp->ln1_w, lp->ln1_b, N, H, eps));
    in = x;
  } else {
    HB_TRY(be->layer_norm(ctx, t1, x, lp->ln2_w, lp->ln2_b, N, H, eps));
    in = t1;
  }
  HB_TRY(be->linear(ctx, a->ff, in, lp->ff1_w, lp->ff1_b, N, H, FF));
  HB_TRY(be->gelu(ctx, a->ff, a->ff, (size_t)N * FF));
  HB_TRY(be->linear(ctx, t2, a->ff, lp->ff2_w, lp->ff2_b, N, FF, H));
  HB_TRY(be->add(ctx, x, x, t2, n));
  if (!c->do_stable_layer_norm) HB_TRY(be->layer_norm(ctx, x, x, lp->ln2_w, lp->ln2_b, N, H, eps));
  return 0;
}

int model_forward(hb_model *m, hb_fwd_arena *a, const float *wave, const long *lengths, int B, long L, int *frames,
                  int *Tp, float **hidden) {
  const hb_config *c = &m->cfg;
  const hb_backend *be = m->ctx->be;
  hb_ctx *ctx = m->ctx;
  if (B < 1 || B > a->max_B || L > a->max_samples)
    return hb_fail("forward: batch %d x %ld samples exceeds the arena (%d x %ld)", B, L, a->max_B, a->max_samples);
  const int rf = config_receptive_field(c);
  for (int b = 0; b < B; b++) {
    if (lengths[b] < rf || lengths[b] > L)
      return hb_fail("forward: utterance %d has %ld samples (need %d..%ld)", b, lengths[b], rf, L);
    frames[b] = config_num_frames(c, lengths[b]);
  }
  float *feat;
  int T;
  HB_TRY(extract_features(m, a, wave, B, L, &feat, &T));
  *Tp = T;
  const int Cc = c->conv_dim[c->num_conv - 1], H = c->hidden_size, N = B * T;
  const float eps = (float)c->layer_norm_eps;

  // Feature projection: LN over conv channels (in place in the extractor buffer), then linear.
  if (c->feat_proj_layer_norm) HB_TRY(be->layer_norm(ctx, feat, feat, m->p.fp_ln_w, m->p.fp_ln_b, N, Cc, eps));
  HB_TRY(be->linear(ctx, a->x, feat, m->p.fp_w, m->p.fp_b, N, Cc, H));
  HB_TRY(be->mask_padding(ctx, a->x, frames, B, T, H));

  // Positional embedding: x += GELU(conv(x)), the conv output trimmed to T frames (even kernels
  // produce T + 1).
  const int K = c->num_conv_pos_embeddings, G = c->num_conv_pos_embedding_groups;
  HB_TRY(be->weight_norm(ctx, a->pos_w, m->p.pos_v, m->p.pos_g, H, H / G, K));
  const int Tpos = T + 2 * (K / 2) - K + 1;
  HB_TRY(be->conv1d(ctx, a->t1, a->x, a->pos_w, m->p.pos_b, B, T, H, H, K, 1, K / 2, G));
  HB_TRY(be->gelu(ctx, a->t1, a->t1, (size_t)B * Tpos * H));
  for (int b = 0; b < B; b++)
    HB_TRY(be->add(ctx, a->x + (size_t)b * T * H, a->x + (size_t)b * T * H, a->t1 + (size_t)b * Tpos * H, (size_t)T * H));
  if (!c->do_stable_layer_norm) HB_TRY(be->layer_norm(ctx, a->x, a->x, m->p.enc_ln_w, m->p.enc_ln_b, N, H, eps));

  const size_t bytes = sizeof(float) * (size_t)N * H;
  const int NL = c->num_hidden_layers;
  if (hidden && hidden[0]) HB_TRY(be->copy(ctx, hidden[0], a->x, bytes));
  for (int l = 0; l < NL; l++) {
    HB_TRY(transformer_layer(m, a, &m->p.layers[l], frames, B, T));
    if (!hidden || !hidden[l + 1]) continue;
    if (l == NL - 1 && c->do_stable_layer_norm)
      HB_TRY(be->layer_norm(ctx, hidden[l + 1], a->x, m->p.enc_ln_w, m->p.enc_ln_b, N, H, eps));
    else
      HB_TRY(be->copy(ctx, hidden[l + 1], a->x, bytes));
  }
  return 0;
}
