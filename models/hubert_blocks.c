// The trunk's blocks, shared by the inference and the training forward (models/hubert_blocks.h).
#include "models/hubert_blocks.h"

#include <math.h>

#include "common/error.h"

#define CONV_LN_EPS 1e-5f  // the conv extractor's norms use PyTorch's default eps

// y = LN(x) over rows of C; saves the statistics when st is given (layer_norm_train).
static int norm_rows(hb_ctx *ctx, float *y, float *st, const float *x, const float *w, const float *b, int N, int C,
                     float eps) {
  if (st) return ctx->be->layer_norm_train(ctx, y, st, x, w, b, N, C, eps);
  return ctx->be->layer_norm(ctx, y, x, w, b, N, C, eps);
}

static int drop(hb_ctx *ctx, float *x, size_t n, hb_drop_site d) {
  return d.p > 0.0f ? ctx->be->dropout(ctx, x, x, n, d.p, d.seed) : 0;
}

int blocks_check_batch(const hb_config *c, const char *what, const long *lengths, int B, long L, int max_B,
                       long max_samples, int *frames) {
  if (B < 1 || B > max_B || L > max_samples)
    return hb_fail("%s: batch %d x %ld samples exceeds the arena (%d x %ld)", what, B, L, max_B, max_samples);
  const int rf = config_receptive_field(c);
  for (int b = 0; b < B; b++) {
    if (lengths[b] < rf || lengths[b] > L)
      return hb_fail("%s: utterance %d has %ld samples (need %d..%ld)", what, b, lengths[b], rf, L);
    frames[b] = config_num_frames(c, lengths[b]);
  }
  return 0;
}

int blocks_extractor(hb_model *m, const hb_conv_slots *s, const float *wave, int B, long L, int *Tout) {
  const hb_config *c = &m->cfg;
  const hb_backend *be = m->ctx->be;
  hb_ctx *ctx = m->ctx;
  const float *x = wave;
  int T = (int)L, Cin = 1;
  for (int l = 0; l < c->num_conv; l++) {
    const hb_conv_params *cp = &m->p.conv[l];
    const int Co = c->conv_dim[l], K = c->conv_kernel[l], S = c->conv_stride[l];
    const int To = (T - K) / S + 1;
    HB_TRY(be->conv1d(ctx, s->pre[l], x, cp->w, cp->b, B, T, Cin, Co, K, S, 0, 1));
    const float *gin = s->pre[l];
    if (c->feat_extract_norm_layer) {  // layer norm over channels in every block
      HB_TRY(norm_rows(ctx, s->nrm[l], s->st[l], s->pre[l], cp->norm_w, cp->norm_b, B * To, Co, CONV_LN_EPS));
      gin = s->nrm[l];
    } else if (l == 0) {  // group norm (one group per channel, over time) in the first block only
      if (s->st[l])
        HB_TRY(be->group_norm_train(ctx, s->nrm[l], s->st[l], s->pre[l], cp->norm_w, cp->norm_b, B, To, Co, Co,
                                    CONV_LN_EPS));
      else
        HB_TRY(be->group_norm(ctx, s->nrm[l], s->pre[l], cp->norm_w, cp->norm_b, B, To, Co, Co, CONV_LN_EPS));
      gin = s->nrm[l];
    }
    HB_TRY(be->gelu(ctx, s->act[l], gin, (size_t)B * To * Co));
    x = s->act[l];
    T = To;
    Cin = Co;
  }
  *Tout = T;
  return 0;
}

int blocks_project(hb_model *m, float *x0, float *fp_ln, float *fp_st, const float *features, const int *frames,
                   int B, int T, hb_drop_site d) {
  const hb_config *c = &m->cfg;
  hb_ctx *ctx = m->ctx;
  const int Cc = c->conv_dim[c->num_conv - 1], H = c->hidden_size, N = B * T;
  const float *fin = features;
  if (c->feat_proj_layer_norm) {
    HB_TRY(norm_rows(ctx, fp_ln, fp_st, features, m->p.fp_ln_w, m->p.fp_ln_b, N, Cc, (float)c->layer_norm_eps));
    fin = fp_ln;
  }
  HB_TRY(ctx->be->linear(ctx, x0, fin, m->p.fp_w, m->p.fp_b, N, Cc, H));
  HB_TRY(drop(ctx, x0, (size_t)N * H, d));
  return ctx->be->mask_padding(ctx, x0, frames, B, T, H);
}

int blocks_pos_embed(hb_model *m, float *h0, float *e, float *enc_st, float *pc, float *pcg, float *pos_w,
                     const float *x0, int B, int T, hb_drop_site d) {
  const hb_config *c = &m->cfg;
  const hb_backend *be = m->ctx->be;
  hb_ctx *ctx = m->ctx;
  const int H = c->hidden_size, K = c->num_conv_pos_embeddings, G = c->num_conv_pos_embedding_groups;
  const int Tpos = T + 2 * (K / 2) - K + 1;  // even kernels give T + 1 frames; the extra one is cut
  const size_t n = (size_t)B * T * H;
  HB_TRY(be->weight_norm(ctx, pos_w, m->p.pos_v, m->p.pos_g, H, H / G, K));
  HB_TRY(be->conv1d(ctx, pc, x0, pos_w, m->p.pos_b, B, T, H, H, K, 1, K / 2, G));
  HB_TRY(be->gelu(ctx, pcg, pc, (size_t)B * Tpos * H));
  for (int b = 0; b < B; b++)
    HB_TRY(be->add(ctx, e + (size_t)b * T * H, x0 + (size_t)b * T * H, pcg + (size_t)b * Tpos * H, (size_t)T * H));
  if (!c->do_stable_layer_norm)
    HB_TRY(norm_rows(ctx, h0, enc_st, e, m->p.enc_ln_w, m->p.enc_ln_b, B * T, H, (float)c->layer_norm_eps));
  else if (h0 != e)
    HB_TRY(be->copy(ctx, h0, e, sizeof(float) * n));
  return drop(ctx, h0, n, d);
}

int blocks_layer(hb_model *m, int l, const hb_layer_acts *s, float *tmp, const float *x, const int *frames, int B,
                 int T, const hb_layer_drop *d) {
  const hb_config *c = &m->cfg;
  const hb_backend *be = m->ctx->be;
  hb_ctx *ctx = m->ctx;
  const hb_layer_params *lp = &m->p.layers[l];
  const int H = c->hidden_size, FF = c->intermediate_size, NH = c->num_attention_heads, Dh = H / NH, N = B * T;
  const float eps = (float)c->layer_norm_eps, scale = 1.0f / sqrtf((float)Dh);
  const size_t n = (size_t)N * H;
  const int pre = c->do_stable_layer_norm;
  static const hb_layer_drop off;  // all sites off
  if (!d) d = &off;
  const float *in = x;
  if (pre) {  // pre-LN: attention sees LN1(x)
    HB_TRY(norm_rows(ctx, s->a, s->st1, x, lp->ln1_w, lp->ln1_b, N, H, eps));
    in = s->a;
  }
  HB_TRY(be->linear(ctx, s->q, in, lp->q_w, lp->q_b, N, H, H));
  HB_TRY(be->linear(ctx, s->k, in, lp->k_w, lp->k_b, N, H, H));
  HB_TRY(be->linear(ctx, s->v, in, lp->v_w, lp->v_b, N, H, H));
  if (s->lse)
    HB_TRY(be->attention_train(ctx, s->att, s->lse, s->q, s->k, s->v, frames, B, T, NH, Dh, scale, d->att_prob.p,
                               d->att_prob.seed));
  else if (d->att_prob.p > 0.0f)
    return hb_fail("encoder layer %d: attention dropout needs an lse slot", l);
  else
    HB_TRY(be->attention(ctx, s->att, s->q, s->k, s->v, frames, B, T, NH, Dh, scale));
  HB_TRY(be->linear(ctx, tmp, s->att, lp->o_w, lp->o_b, N, H, H));
  HB_TRY(drop(ctx, tmp, n, d->att));
  HB_TRY(be->add(ctx, s->r1, x, tmp, n));
  if (pre) HB_TRY(norm_rows(ctx, s->h1, s->st2, s->r1, lp->ln2_w, lp->ln2_b, N, H, eps));
  else HB_TRY(norm_rows(ctx, s->h1, s->st1, s->r1, lp->ln1_w, lp->ln1_b, N, H, eps));
  HB_TRY(be->linear(ctx, s->ffp, s->h1, lp->ff1_w, lp->ff1_b, N, H, FF));
  HB_TRY(be->gelu(ctx, s->ffa, s->ffp, (size_t)N * FF));
  HB_TRY(drop(ctx, s->ffa, (size_t)N * FF, d->act));
  HB_TRY(be->linear(ctx, tmp, s->ffa, lp->ff2_w, lp->ff2_b, N, FF, H));
  HB_TRY(drop(ctx, tmp, n, d->ffn));
  if (pre) return be->add(ctx, s->out, s->r1, tmp, n);
  HB_TRY(be->add(ctx, s->r2, s->h1, tmp, n));
  return norm_rows(ctx, s->out, s->st2, s->r2, lp->ln2_w, lp->ln2_b, N, H, eps);
}
