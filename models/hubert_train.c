// HuBERT training forward (saving what the backward needs) and backward of the trunk.
// Math and order: models/hubert_train.h. Only op-API calls; host memory only for small
// per-step bookkeeping (frame counts, mask, LayerDrop flags) allocated at init.
#include "models/hubert_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/rng.h"
#include "models/hubert_blocks.h"

// Dropout sites: the mask seed is rng_derive_seed(step seed, site), so every site and layer has
// its own stream and the backward regenerates it.
enum { SITE_PROJ, SITE_ENC, SITE_ATT, SITE_ACT, SITE_FFN, SITE_PER_LAYER };
static uint64_t site_seed(uint64_t seed, int layer, int site) {
  return rng_derive_seed(seed, (uint64_t)(layer + 1) * SITE_PER_LAYER + (uint64_t)site);
}
// Attention-probability dropout of a layer: a sub-stream of its SITE_ATT seed (the site list,
// and so every other mask, stays as it was).
static uint64_t att_prob_seed(uint64_t seed, int layer) { return rng_derive_seed(site_seed(seed, layer, SITE_ATT), 1); }

// ---- arena ---------------------------------------------------------------------------------------

typedef struct {
  float *base;   // NULL: only count
  size_t total;  // floats so far
} carver;

static float *carve(carver *cv, size_t n) {
  if (!n) return NULL;
  n = (n + 63) / 64 * 64;  // 256-byte aligned slots
  float *p = cv->base ? cv->base + cv->total : NULL;
  cv->total += n;
  return p;
}

// Lays out every buffer for (max_B, max_samples); with cv->base NULL it only counts.
// Sizes are small enough products of config values (validated) and batch limits that the
// caller's overflow check on the total covers them.
static void arena_layout(hb_train_arena *a, const hb_config *c, carver *cv) {
  const size_t B = (size_t)a->max_B, T = (size_t)a->max_T, H = (size_t)c->hidden_size;
  const size_t FF = (size_t)c->intermediate_size, NH = (size_t)c->num_attention_heads;
  const size_t BT = B * T, BT1 = B * (T + 1);
  const int pre = c->do_stable_layer_norm;
  long Tl = a->max_samples;
  size_t cmax = 0, tl_size[HB_MAX_CONV];
  for (int l = 0; l < c->num_conv; l++) {
    Tl = (Tl - c->conv_kernel[l]) / c->conv_stride[l] + 1;
    tl_size[l] = B * (size_t)Tl * (size_t)c->conv_dim[l];
    if ((size_t)c->conv_dim[l] > cmax) cmax = (size_t)c->conv_dim[l];
    const int has_norm = c->feat_extract_norm_layer || l == 0;
    a->conv_pre[l] = carve(cv, tl_size[l]);
    a->conv_nrm[l] = has_norm ? carve(cv, tl_size[l]) : NULL;
    a->conv_act[l] = carve(cv, tl_size[l]);
    a->conv_st[l] = has_norm ? carve(cv, c->feat_extract_norm_layer ? B * (size_t)Tl * 2 : B * c->conv_dim[l] * 2)
                             : NULL;
  }
  const size_t Cc = (size_t)c->conv_dim[c->num_conv - 1];
  if (c->feat_proj_layer_norm) {
    a->fp_ln = carve(cv, BT * Cc);
    a->fp_st = carve(cv, BT * 2);
  }
  a->x0 = carve(cv, BT * H);
  a->pc = carve(cv, BT1 * H);
  a->e = carve(cv, BT * H);
  a->enc_st = pre ? NULL : carve(cv, BT * 2);
  a->h0 = carve(cv, BT * H);
  if (pre) {
    a->hN = carve(cv, BT * H);
    a->fin_st = carve(cv, BT * 2);
  }
  const size_t G = (size_t)c->num_conv_pos_embedding_groups, K = (size_t)c->num_conv_pos_embeddings;
  a->pos_w = carve(cv, H * (H / G) * K);
  for (int l = 0; l < c->num_hidden_layers; l++) {
    hb_layer_acts *s = &a->layer[l];
    s->a = pre ? carve(cv, BT * H) : NULL;
    s->q = carve(cv, BT * H);
    s->k = carve(cv, BT * H);
    s->v = carve(cv, BT * H);
    s->att = carve(cv, BT * H);
    s->lse = carve(cv, B * NH * T);
    s->r1 = carve(cv, BT * H);
    s->h1 = carve(cv, BT * H);
    s->ffp = carve(cv, BT * FF);
    s->ffa = carve(cv, BT * FF);
    s->r2 = pre ? NULL : carve(cv, BT * H);
    s->out = carve(cv, BT * H);
    s->st1 = carve(cv, BT * 2);
    s->st2 = carve(cv, BT * 2);
  }
  // Gradient ping-pong for the extractor: block l's output gradient lives in gconv[l & 1], so
  // gconv[0] holds the longest (block 0) and gconv[1] at most block 1's.
  a->gconv[0] = carve(cv, tl_size[0] > BT * Cc ? tl_size[0] : BT * Cc);
  a->gconv[1] = carve(cv, c->num_conv > 1 ? tl_size[1] : 1);
  a->g = carve(cv, BT * H);
  a->gt = carve(cv, BT * H);
  a->gu = carve(cv, BT * H);
  a->gq = carve(cv, BT * H);
  a->gk = carve(cv, BT * H);
  a->gv = carve(cv, BT * H);
  a->gff = carve(cv, BT * FF);
  a->gpc = carve(cv, BT1 * H);
  a->gpos_w = carve(cv, H * (H / G) * K);
  (void)cmax;
}

int train_arena_init(hb_train_arena *a, const hb_model *m, int max_B, long max_samples) {
  const hb_config *c = &m->cfg;
  memset(a, 0, sizeof *a);
  const int rf = config_receptive_field(c);
  if (max_B < 1) return hb_fail("train arena: max batch %d must be >= 1", max_B);
  if (max_samples < rf) return hb_fail("train arena: max_samples %ld is below the receptive field (%d samples)", max_samples, rf);
  a->max_B = max_B;
  a->max_samples = max_samples;
  a->max_T = config_num_frames(c, max_samples);
  // Overflow guard: the largest single buffer is B * T0 * Cmax or B * T * FF; the total is a
  // bounded multiple of those (< 64 buffers per layer-equivalent), checked in size_t.
  size_t big, tmp;
  HB_TRY(hb_mul_size((size_t)max_B, (size_t)max_samples, &big));
  HB_TRY(hb_mul_size(big, 4096, &tmp));
  HB_TRY(hb_mul_size(tmp, (size_t)(c->num_hidden_layers + c->num_conv + 8) * 64, &tmp));
  carver cv = {NULL, 0};
  arena_layout(a, c, &cv);
  size_t bytes;
  HB_TRY(hb_mul_size(cv.total, sizeof(float), &bytes));
  a->base = m->ctx->be->alloc(m->ctx, bytes);
  if (!a->base) return hb_fail_prefix("training arena (%d x %ld samples, %.1f MB)", max_B, max_samples, bytes / 1e6);
  a->bytes = bytes;
  cv.base = a->base;
  cv.total = 0;
  arena_layout(a, c, &cv);
  a->frames = hb_calloc((size_t)max_B, sizeof(int));
  a->mask = hb_calloc((size_t)max_B * (size_t)a->max_T, 1);
  a->dropped = hb_calloc((size_t)c->num_hidden_layers + 1, sizeof(int));
  a->chan_mask = hb_calloc((size_t)max_B * (size_t)c->hidden_size, 1);
  if (!a->frames || !a->mask || !a->dropped || !a->chan_mask) {
    train_arena_free(a, m);
    return hb_fail_prefix("training arena host state");
  }
  return 0;
}

void train_arena_free(hb_train_arena *a, const hb_model *m) {
  if (a->base) m->ctx->be->free(m->ctx, a->base);
  free(a->frames);
  free(a->mask);
  free(a->dropped);
  free(a->chan_mask);
  free(a->chan_host);
  memset(a, 0, sizeof *a);
}

void train_arena_set_channel_mask(hb_train_arena *a, const uint8_t *mask) { a->chan_next = mask; }

// ---- forward -------------------------------------------------------------------------------------

// x (B, T, H) backend: x[b, t, h] := 0 where chan_mask[b, h] (forward of the channel mask, and its
// backward on the gradient). Staged through host memory: one download and upload of B*T*H floats.
static int apply_channel_mask(hb_ctx *ctx, hb_train_arena *a, float *x, int B, int T, int H) {
  const size_t n = (size_t)B * T * H;
  if (!a->chan_host) {
    a->chan_host = hb_malloc(sizeof(float) * (size_t)a->max_B * (size_t)a->max_T * (size_t)H);
    if (!a->chan_host) return hb_fail_prefix("channel mask staging buffer");
  }
  HB_TRY(ctx->be->download(ctx, a->chan_host, x, sizeof(float) * n));
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++)
      if (a->chan_mask[(size_t)b * H + h])
        for (int t = 0; t < T; t++) a->chan_host[((size_t)b * T + t) * H + h] = 0.0f;
  return ctx->be->upload(ctx, x, a->chan_host, sizeof(float) * n);
}

static float drop_p(const hb_train_arena *a, double p) { return a->train ? (float)p : 0.0f; }

static int dropout_inplace(hb_ctx *ctx, const hb_train_arena *a, float *x, size_t n, double p, int layer, int site) {
  const float pf = drop_p(a, p);
  if (pf <= 0.0f) return 0;
  return ctx->be->dropout(ctx, x, x, n, pf, site_seed(a->seed, layer, site));
}

// dst = dropout(src) (a copy when dropout is off): one pass instead of copy + in-place dropout.
static int dropout_copy(hb_ctx *ctx, const hb_train_arena *a, float *dst, const float *src, size_t n, double p,
                        int layer, int site) {
  const float pf = drop_p(a, p);
  if (pf <= 0.0f) return ctx->be->copy(ctx, dst, src, sizeof(float) * n);
  return ctx->be->dropout(ctx, dst, src, n, pf, site_seed(a->seed, layer, site));
}

static hb_drop_site drop_site(const hb_train_arena *a, double p, int layer, int site) {
  const hb_drop_site d = {drop_p(a, p), site_seed(a->seed, layer, site)};
  return d;
}

// The dropout sites of encoder layer l (all off in eval mode).
static hb_layer_drop layer_drop(const hb_train_arena *a, const hb_config *c, int l) {
  const hb_layer_drop d = {drop_site(a, c->hidden_dropout, l, SITE_ATT),
                           {drop_p(a, c->attention_dropout), att_prob_seed(a->seed, l)},
                           drop_site(a, c->activation_dropout, l, SITE_ACT), drop_site(a, c->hidden_dropout, l, SITE_FFN)};
  return d;
}

// The shared blocks (models/hubert_blocks.h) with every activation saved in its own arena slot.
int model_forward_train(hb_model *m, hb_train_arena *a, const float *wave, const long *lengths, int B, long L,
                        const uint8_t *mask, int *frames, int *Tp, const hb_train_opts *opts) {
  const hb_config *c = &m->cfg;
  const hb_backend *be = m->ctx->be;
  hb_ctx *ctx = m->ctx;
  if (ops_check_backward(ctx)) return hb_fail_prefix("training forward");
  HB_TRY(blocks_check_batch(c, "training forward", lengths, B, L, a->max_B, a->max_samples, frames));
  memcpy(a->frames, frames, sizeof(int) * (size_t)B);
  a->B = B;
  a->L = L;
  a->wave = wave;
  a->train = opts && opts->train;
  a->seed = opts ? opts->seed : 0;
  hb_conv_slots cs;
  memcpy(cs.pre, a->conv_pre, sizeof cs.pre);
  memcpy(cs.nrm, a->conv_nrm, sizeof cs.nrm);
  memcpy(cs.act, a->conv_act, sizeof cs.act);
  memcpy(cs.st, a->conv_st, sizeof cs.st);
  int T;
  HB_TRY(blocks_extractor(m, &cs, wave, B, L, &T));
  *Tp = a->T = T;
  const int H = c->hidden_size, N = B * T, NL = c->num_hidden_layers;
  a->features = a->conv_act[c->num_conv - 1];

  // Projection -> dropout -> zero padding -> mask embedding (x0).
  HB_TRY(blocks_project(m, a->x0, a->fp_ln, a->fp_st, a->features, a->frames, B, T,
                        drop_site(a, c->feat_proj_dropout, -1, SITE_PROJ)));
  a->has_mask = mask != NULL;
  if (mask) {
    memcpy(a->mask, mask, (size_t)N);
    HB_TRY(be->mask_rows(ctx, a->x0, a->mask, m->p.mask_emb, N, H));
  }
  a->has_chan_mask = a->chan_next != NULL;
  if (a->has_chan_mask) {
    memcpy(a->chan_mask, a->chan_next, (size_t)B * H);
    a->chan_next = NULL;
    HB_TRY(apply_channel_mask(ctx, a, a->x0, B, T, H));
  }

  // Positional embedding: e = x0 + GELU(pc)[:T], h0 = drop([encoder LN] e); gpc: forward scratch.
  HB_TRY(blocks_pos_embed(m, a->h0, a->e, a->enc_st, a->pc, a->gpc, a->pos_w, a->x0, B, T,
                          drop_site(a, c->hidden_dropout, -1, SITE_ENC)));

  // LayerDrop draws come from their own stream of the step seed.
  hb_rng r;
  rng_init(&r, rng_derive_seed(a->seed, 0));
  a->hidden[0] = a->h0;
  for (int l = 0; l < NL; l++) {
    a->dropped[l] = a->train && c->layerdrop > 0 && rng_uniform_double(&r) < c->layerdrop;
    if (a->dropped[l]) {
      a->hidden[l + 1] = a->hidden[l];
      continue;
    }
    const hb_layer_drop ld = layer_drop(a, c, l);
    HB_TRY(blocks_layer(m, l, &a->layer[l], a->gt, a->hidden[l], a->frames, B, T, &ld));  // gt: forward scratch
    a->hidden[l + 1] = a->layer[l].out;
  }
  if (c->do_stable_layer_norm) {
    HB_TRY(be->layer_norm_train(ctx, a->hN, a->fin_st, a->hidden[NL], m->p.enc_ln_w, m->p.enc_ln_b, N, H,
                                (float)c->layer_norm_eps));
    a->hidden[NL] = a->hN;
  }
  return 0;
}

// ---- backward ------------------------------------------------------------------------------------

// Encoder layer l backward: on entry a->g = d out, on return a->g = d x (the layer input).
static int backward_layer(hb_model *m, hb_train_arena *a, const hb_layer_params *lg, int l, const float *x) {
  const hb_config *c = &m->cfg;
  const hb_backend *be = m->ctx->be;
  hb_ctx *ctx = m->ctx;
  const hb_layer_params *lp = &m->p.layers[l];
  const hb_layer_acts *s = &a->layer[l];
  const int B = a->B, T = a->T, H = c->hidden_size, FF = c->intermediate_size, NH = c->num_attention_heads;
  const int Dh = H / NH, N = B * T, pre = c->do_stable_layer_norm;
  const size_t n = (size_t)N * H;
  float *g = a->g, *gt = a->gt, *gu = a->gu;
  // FFN branch. g = d out; post-LN first goes through LN2: g = d r2.
  if (!pre) HB_TRY(be->layer_norm_backward(ctx, g, lg->ln2_w, lg->ln2_b, g, s->r2, s->st2, lp->ln2_w, N, H));
  HB_TRY(dropout_copy(ctx, a, gt, g, n, c->hidden_dropout, l, SITE_FFN));
  HB_TRY(be->linear_backward(ctx, a->gff, lg->ff2_w, lg->ff2_b, gt, s->ffa, lp->ff2_w, N, FF, H));
  HB_TRY(dropout_inplace(ctx, a, a->gff, (size_t)N * FF, c->activation_dropout, l, SITE_ACT));
  HB_TRY(be->gelu_backward(ctx, a->gff, a->gff, s->ffp, (size_t)N * FF));
  HB_TRY(be->linear_backward(ctx, gt, lg->ff1_w, lg->ff1_b, a->gff, s->h1, lp->ff1_w, N, H, FF));  // gt = d h1 (FFN part)
  if (pre) {  // h1 = LN2(r1); out = r1 + ffn: d r1 = g + LN2'(gt)
    HB_TRY(be->layer_norm_backward(ctx, gt, lg->ln2_w, lg->ln2_b, gt, s->r1, s->st2, lp->ln2_w, N, H));
    HB_TRY(be->axpy(ctx, g, 1.0f, gt, n));
  } else {  // r2 = h1 + ffn: d h1 = g + gt; h1 = LN1(r1)
    HB_TRY(be->axpy(ctx, g, 1.0f, gt, n));
    HB_TRY(be->layer_norm_backward(ctx, g, lg->ln1_w, lg->ln1_b, g, s->r1, s->st1, lp->ln1_w, N, H));
  }
  // Attention branch: g = d r1, r1 = x + drop(o(att(q, k, v))).
  HB_TRY(dropout_copy(ctx, a, gt, g, n, c->hidden_dropout, l, SITE_ATT));
  HB_TRY(be->linear_backward(ctx, gu, lg->o_w, lg->o_b, gt, s->att, lp->o_w, N, H, H));
  HB_TRY(be->attention_backward(ctx, a->gq, a->gk, a->gv, gu, s->q, s->k, s->v, s->lse, a->frames, B, T, NH, Dh,
                                1.0f / sqrtf((float)Dh), drop_p(a, c->attention_dropout), att_prob_seed(a->seed, l)));
  const float *in = pre ? s->a : x;
  HB_TRY(be->linear_backward(ctx, gt, lg->q_w, lg->q_b, a->gq, in, lp->q_w, N, H, H));
  HB_TRY(be->linear_backward(ctx, gu, lg->k_w, lg->k_b, a->gk, in, lp->k_w, N, H, H));
  HB_TRY(be->add(ctx, gt, gt, gu, n));
  HB_TRY(be->linear_backward(ctx, gu, lg->v_w, lg->v_b, a->gv, in, lp->v_w, N, H, H));
  HB_TRY(be->add(ctx, gt, gt, gu, n));  // gt = d (attention input)
  if (pre) HB_TRY(be->layer_norm_backward(ctx, gt, lg->ln1_w, lg->ln1_b, gt, x, s->st1, lp->ln1_w, N, H));
  return be->axpy(ctx, g, 1.0f, gt, n);
}

static int grad_ready_seg(hb_train_arena *a, const size_t *lo, int s);

// seg: the gradient-ready segments (read only when a->grad_ready is set).
static int backward_extractor(hb_model *m, hb_train_arena *a, const hb_params *gp, const size_t *seg) {
  const hb_config *c = &m->cfg;
  const hb_backend *be = m->ctx->be;
  hb_ctx *ctx = m->ctx;
  const int B = a->B;
  int Tl[HB_MAX_CONV + 1];
  Tl[0] = (int)a->L;
  for (int l = 0; l < c->num_conv; l++) Tl[l + 1] = (Tl[l] - c->conv_kernel[l]) / c->conv_stride[l] + 1;
  for (int l = c->num_conv - 1; l >= 0; l--) {
    const hb_conv_params *cp = &m->p.conv[l];
    const hb_conv_params *cg = &gp->conv[l];
    const int Co = c->conv_dim[l], Ci = l ? c->conv_dim[l - 1] : 1, To = Tl[l + 1];
    const size_t n = (size_t)B * To * Co;
    float *dy = a->gconv[l & 1];  // (B, To, Co) gradient of the block's GELU output
    if (c->feat_extract_norm_layer) {
      HB_TRY(be->gelu_backward(ctx, dy, dy, a->conv_nrm[l], n));
      HB_TRY(be->layer_norm_backward(ctx, dy, cg->norm_w, cg->norm_b, dy, a->conv_pre[l], a->conv_st[l], cp->norm_w,
                                     B * To, Co));
    } else if (l == 0) {
      HB_TRY(be->gelu_backward(ctx, dy, dy, a->conv_nrm[l], n));
      HB_TRY(be->group_norm_backward(ctx, dy, cg->norm_w, cg->norm_b, dy, a->conv_pre[l], a->conv_st[l], cp->norm_w, B,
                                     To, Co, Co));
    } else {
      HB_TRY(be->gelu_backward(ctx, dy, dy, a->conv_pre[l], n));
    }
    const float *x = l ? a->conv_act[l - 1] : a->wave;
    float *dx = l ? a->gconv[(l - 1) & 1] : NULL;
    HB_TRY(be->conv1d_backward(ctx, dx, cg->w, cg->b, dy, x, cp->w, B, Tl[l], Ci, Co, c->conv_kernel[l],
                               c->conv_stride[l], 0, 1));
    HB_TRY(grad_ready_seg(a, seg, 1 + l));
  }
  return 0;
}

// Segments of the flat layout for the gradient-ready hook: seg 0 = the global tensors, 1 + l =
// conv block l, 1 + NC + l = encoder layer l; segment s is [lo[s], lo[s + 1]) with lo[0] = 0 and
// lo[NC + NL + 1] = total. Checks that the layout really is globals, conv blocks, layers in order,
// each contiguous (params_layout_init builds it so; an error names the tensor otherwise).
static int grad_segments(const hb_model *m, size_t *lo) {
  const hb_param_layout *L = &m->layout;
  const int NC = m->cfg.num_conv, NL = m->cfg.num_hidden_layers, ns = 1 + NC + NL;
  for (int s = 0; s <= ns; s++) lo[s] = SIZE_MAX;
  lo[0] = 0;
  lo[ns] = L->total;
  int prev = 0;
  size_t prev_off = 0;
  for (int i = 0; i < L->n; i++) {
    const hb_param_info *p = &L->info[i];
    const int s = p->kind == 0 ? 0 : p->kind == 1 ? 1 + p->block : 1 + NC + p->block;
    if (s < prev || s >= ns || (i && p->offset < prev_off) || p->offset + p->numel > L->total)
      return hb_fail("gradient-ready ranges: tensor %s (offset %zu) breaks the layout order globals, conv blocks, "
                     "layers", p->name, p->offset);
    if (s != prev && lo[s] == SIZE_MAX) lo[s] = p->offset;
    prev = s;
    prev_off = p->offset;
  }
  for (int s = 1; s < ns; s++)
    if (lo[s] == SIZE_MAX || lo[s] < lo[s - 1]) return hb_fail("gradient-ready ranges: segment %d has no tensor", s);
  return 0;
}

static int grad_ready_seg(hb_train_arena *a, const size_t *lo, int s) {
  if (!a->grad_ready || lo[s + 1] == lo[s]) return 0;
  if (a->grad_ready(a->grad_ready_user, lo[s], lo[s + 1] - lo[s]))
    return hb_fail_prefix("gradient-ready hook [%zu, %zu)", lo[s], lo[s + 1]);
  return 0;
}

int model_backward(hb_model *m, hb_train_arena *a, float *const *d_hidden, const float *d_features,
                   float feature_grad_mult, float *grads) {
  const hb_config *c = &m->cfg;
  const hb_backend *be = m->ctx->be;
  hb_ctx *ctx = m->ctx;
  if (a->B < 1) return hb_fail("model_backward: no training forward ran on this arena");
  hb_params gp;
  params_bind(&gp, &m->layout, grads);
  const int B = a->B, T = a->T, H = c->hidden_size, NL = c->num_hidden_layers, N = B * T;
  const int Cc = c->conv_dim[c->num_conv - 1];
  const size_t n = (size_t)N * H, bytes = sizeof(float) * n;
  float *g = a->g;
  const int NC = c->num_conv;
  size_t seg[1 + HB_MAX_CONV + HB_MAX_LAYERS + 1];
  if (a->grad_ready) HB_TRY(grad_segments(m, seg));

  // Top: g = d (output of the last computed layer).
  if (c->do_stable_layer_norm) {
    HB_TRY(be->zero(ctx, g, bytes));
    if (d_hidden && d_hidden[NL]) {
      const float *fin_in = a->h0;  // input of the final LN: the last layer not dropped
      for (int l = NL - 1; l >= 0; l--)
        if (!a->dropped[l]) {
          fin_in = a->layer[l].out;
          break;
        }
      HB_TRY(be->layer_norm_backward(ctx, g, gp.enc_ln_w, gp.enc_ln_b, d_hidden[NL], fin_in, a->fin_st, m->p.enc_ln_w,
                                     N, H));
    }
  } else if (d_hidden && d_hidden[NL]) {
    HB_TRY(be->copy(ctx, g, d_hidden[NL], bytes));
  } else {
    HB_TRY(be->zero(ctx, g, bytes));
  }
  for (int l = NL - 1; l >= 0; l--) {
    if (l + 1 < NL && d_hidden && d_hidden[l + 1]) HB_TRY(be->axpy(ctx, g, 1.0f, d_hidden[l + 1], n));
    if (!a->dropped[l]) HB_TRY(backward_layer(m, a, &gp.layers[l], l, a->hidden[l]));
    HB_TRY(grad_ready_seg(a, seg, 1 + NC + l));
  }
  if (d_hidden && d_hidden[0]) HB_TRY(be->axpy(ctx, g, 1.0f, d_hidden[0], n));

  // hidden[0] = drop(LN_enc(e)) (post-LN) or drop(e): g -> d e.
  HB_TRY(dropout_inplace(ctx, a, g, n, c->hidden_dropout, -1, SITE_ENC));
  if (!c->do_stable_layer_norm)
    HB_TRY(be->layer_norm_backward(ctx, g, gp.enc_ln_w, gp.enc_ln_b, g, a->e, a->enc_st, m->p.enc_ln_w, N, H));
  // e = x0 + GELU(pc)[:T]: d pc is g on the first T frames of each utterance, 0 on the extra one.
  const int K = c->num_conv_pos_embeddings, G = c->num_conv_pos_embedding_groups;
  const int Tpos = T + 2 * (K / 2) - K + 1;
  const size_t npc = (size_t)B * Tpos * H;
  if (Tpos != T) HB_TRY(be->zero(ctx, a->gpc, sizeof(float) * npc));
  for (int b = 0; b < B; b++)
    HB_TRY(be->copy(ctx, a->gpc + (size_t)b * Tpos * H, g + (size_t)b * T * H, sizeof(float) * (size_t)T * H));
  HB_TRY(be->gelu_backward(ctx, a->gpc, a->gpc, a->pc, npc));
  const size_t nw = (size_t)H * (H / G) * K;
  HB_TRY(be->zero(ctx, a->gpos_w, sizeof(float) * nw));
  HB_TRY(be->conv1d_backward(ctx, a->gt, a->gpos_w, gp.pos_b, a->gpc, a->x0, a->pos_w, B, T, H, H, K, 1, K / 2, G));
  HB_TRY(be->weight_norm_backward(ctx, gp.pos_v, gp.pos_g, a->gpos_w, m->p.pos_v, m->p.pos_g, H, H / G, K));
  HB_TRY(be->axpy(ctx, g, 1.0f, a->gt, n));  // g = d x0

  // x0: zeroed channels get no gradient; masked frames are masked_spec_embed (their gradient goes
  // there, not to the projection), padded frames were zeroed, then dropout of the projection.
  if (a->has_chan_mask) HB_TRY(apply_channel_mask(ctx, a, g, B, T, H));
  if (a->has_mask) HB_TRY(be->mask_rows_backward(ctx, g, gp.mask_emb, a->mask, N, H));
  HB_TRY(be->mask_padding_backward(ctx, g, a->frames, B, T, H));
  HB_TRY(dropout_inplace(ctx, a, g, n, c->feat_proj_dropout, -1, SITE_PROJ));
  float *df = a->gconv[(c->num_conv - 1) & 1];  // (B, T, Cc) d features
  const float *fin = c->feat_proj_layer_norm ? a->fp_ln : a->features;
  HB_TRY(be->linear_backward(ctx, df, gp.fp_w, gp.fp_b, g, fin, m->p.fp_w, N, Cc, H));
  if (c->feat_proj_layer_norm)
    HB_TRY(be->layer_norm_backward(ctx, df, gp.fp_ln_w, gp.fp_ln_b, df, a->features, a->fp_st, m->p.fp_ln_w, N, Cc));
  const size_t nf = (size_t)N * Cc;
  if (d_features) HB_TRY(be->axpy(ctx, df, 1.0f, d_features, nf));
  if (feature_grad_mult != 1.0f) HB_TRY(be->scale(ctx, df, df, feature_grad_mult, nf));
  HB_TRY(grad_ready_seg(a, seg, 0));  // globals: heads (before model_backward), pos conv, LN, projection, mask emb
  if (feature_grad_mult != 0.0f) HB_TRY(backward_extractor(m, a, &gp, seg));  // 0: fairseq's frozen extractor
  else
    for (int l = NC - 1; l >= 0; l--) HB_TRY(grad_ready_seg(a, seg, 1 + l));
  return 0;
}

int model_grad_ready_all(const hb_model *m, int (*grad_ready)(void *user, size_t off, size_t len), void *user) {
  const int NC = m->cfg.num_conv, NL = m->cfg.num_hidden_layers;
  size_t seg[1 + HB_MAX_CONV + HB_MAX_LAYERS + 1];
  HB_TRY(grad_segments(m, seg));
  hb_train_arena a;   // only the hook fields are used
  memset(&a, 0, sizeof a);
  a.grad_ready = grad_ready;
  a.grad_ready_user = user;
  for (int l = NL - 1; l >= 0; l--) HB_TRY(grad_ready_seg(&a, seg, 1 + NC + l));
  HB_TRY(grad_ready_seg(&a, seg, 0));
  for (int l = NC - 1; l >= 0; l--) HB_TRY(grad_ready_seg(&a, seg, 1 + l));
  return 0;
}
