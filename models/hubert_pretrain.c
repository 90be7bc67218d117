// One pretraining step: trunk forward -> heads -> trunk backward (see hubert_pretrain.h).
#include "models/hubert_pretrain.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"

void pretrain_opts_default(hb_pretrain_opts *o) {
  memset(o, 0, sizeof *o);
  heads_pred_opts_default(&o->pred);
  o->feature_weight = 10.0f;
  o->feature_grad_mult = 0.1f;
  o->topic.weight = 0.0f;
  o->topic.mean = 1;
}

void pretrain_ws_free(hb_pretrain_ws *w, hb_model *m) {
  hb_ctx *ctx = m->ctx;
  if (w->d_last) ctx->be->free(ctx, w->d_last);
  if (w->d_topic) ctx->be->free(ctx, w->d_topic);
  if (w->d_feat) ctx->be->free(ctx, w->d_feat);
  free(w->frames);
  free(w->loss_frames);
  if (w->arena.base) train_arena_free(&w->arena, m);
  heads_ws_free(&w->heads);
  memset(w, 0, sizeof *w);
}

int pretrain_ws_init(hb_pretrain_ws *w, hb_model *m, int max_B, long max_samples) {
  memset(w, 0, sizeof *w);
  const hb_config *c = &m->cfg;
  hb_ctx *ctx = m->ctx;
  if (c->final_dim <= 0 || c->num_label_sets <= 0)
    return hb_fail("pretrain: the model has no masked-prediction head (final_dim %d, %d label sets)", c->final_dim,
                   c->num_label_sets);
  HB_TRY(train_arena_init(&w->arena, m, max_B, max_samples));
  heads_ws_init(&w->heads, ctx);
  w->max_B = max_B;
  w->max_T = w->arena.max_T;
  size_t nh, nf;
  const int Cc = c->conv_dim[c->num_conv - 1];
  if (hb_mul_size((size_t)max_B * (size_t)w->max_T, (size_t)c->hidden_size, &nh) ||
      hb_mul_size((size_t)max_B * (size_t)w->max_T, (size_t)Cc, &nf) || hb_mul_size(nh, sizeof(float), &nh) ||
      hb_mul_size(nf, sizeof(float), &nf))
    goto fail;
  w->d_last = ctx->be->alloc(ctx, nh);
  w->d_topic = ctx->be->alloc(ctx, nh);
  w->d_feat = ctx->be->alloc(ctx, nf);
  w->frames = hb_malloc(sizeof(int) * (size_t)max_B);
  w->loss_frames = hb_malloc(sizeof(int) * (size_t)max_B);
  if (!w->d_last || !w->d_topic || !w->d_feat || !w->frames || !w->loss_frames) goto fail;
  return 0;
fail:
  hb_fail_prefix("pretrain workspace (batch %d, %ld samples)", max_B, max_samples);
  pretrain_ws_free(w, m);
  return -1;
}

// Topic layer as a hidden index in 1..NL.
static int topic_hidden_index(const hb_config *c, const hb_pretrain_opts *o) {
  const int k = o->topic_layer > 0 ? o->topic_layer : c->topic_layer;
  return k > 0 ? k : c->num_hidden_layers;
}

int pretrain_step(hb_model *m, hb_pretrain_ws *w, const float *wave, const long *lengths, int B, long L,
                  const int *const *labels, const int *label_frames, const uint8_t *mask, const int *topics,
                  const hb_pretrain_opts *o, float *grads, hb_pretrain_stats *st) {
  memset(st, 0, sizeof *st);
  const hb_config *c = &m->cfg;
  hb_ctx *ctx = m->ctx;
  const hb_backend *be = ctx->be;
  const int NL = c->num_hidden_layers, H = c->hidden_size, Cc = c->conv_dim[c->num_conv - 1];
  const int topic_on = o->topic.weight != 0.0f;
  const int tk = topic_hidden_index(c, o);
  if (B < 1 || B > w->max_B || L > w->arena.max_samples)
    return hb_fail("pretrain: batch %d x %ld samples exceeds the workspace (%d x %ld)", B, L, w->max_B,
                   w->arena.max_samples);
  if (!labels || !mask) return hb_fail("pretrain: labels and mask are required");
  if (topic_on) {
    if (c->topic_k <= 0) return hb_fail("pretrain: topic weight %g but the model has no topic head", o->topic.weight);
    if (!topics) return hb_fail("pretrain: the topic head is on but no topics were given");
    if (tk > NL) return hb_fail("pretrain: topic layer %d outside 1..%d", tk, NL);
    for (int b = 0; b < B; b++)
      if (topics[b] < 0 || topics[b] >= c->topic_k)
        return hb_fail("pretrain: topic %d of utterance %d outside [0, %d)", topics[b], b, c->topic_k);
  }

  // Trunk forward.
  hb_train_arena *a = &w->arena;
  int T;
  HB_TRY(model_forward_train(m, a, wave, lengths, B, L, mask, w->frames, &T, &o->train));
  st->T = T;
  for (int b = 0; b < B; b++) {
    const int n = label_frames ? label_frames[b] : w->frames[b];
    if (n < 0 || n > w->frames[b])
      return hb_fail("pretrain: utterance %d: %d labelled frames outside [0, %d valid]", b, n, w->frames[b]);
    w->loss_frames[b] = n;
    for (int t = n; t < T; t++)
      if (mask[(size_t)b * T + t])
        return hb_fail("pretrain: utterance %d: frame %d is masked but %s (%d labelled, %d valid)", b, t,
                       t < w->frames[b] ? "carries no label" : "padded", n, w->frames[b]);
  }

  hb_params g;
  if (grads) params_bind(&g, &m->layout, grads);
  hb_params *gp = grads ? &g : NULL;
  const size_t nh = (size_t)B * T * H, nf = (size_t)B * T * Cc;

  // Masked prediction on hidden[NL]; d_last (B, T, H) is overwritten (0 on frames without loss).
  HB_TRY(heads_pred_loss(&w->heads, c, &m->p, gp, a->hidden[NL], labels, mask, w->loss_frames, B, T, &o->pred,
                         grads ? w->d_last : NULL, &st->pred));
  st->pred_loss = st->pred.loss;
  const double n_m = (double)st->pred.count_m;

  // Topic head: its gradient joins the trunk's at hidden[tk] (accumulated into d_last when tk = NL).
  float *d_topic = NULL;
  if (topic_on) {
    hb_topic_opts to = o->topic;
    if (o->topic_per_masked) to.weight = (float)(o->topic.weight * (n_m > 0 ? n_m : 1.0));
    if (grads) {
      d_topic = tk == NL ? w->d_last : w->d_topic;
      if (tk != NL) HB_TRY(be->zero(ctx, d_topic, sizeof(float) * nh));
    }
    HB_TRY(heads_topic_loss(&w->heads, c, &m->p, gp, a->hidden[tk], w->frames, topics, B, T, &to, d_topic, &st->topic));
    st->topic_loss = st->topic.loss;
  }

  // Feature penalty over all B * T * Cc extractor outputs (torchaudio: x.float().pow(2).mean()).
  const float *d_feat = NULL;
  if (o->feature_weight != 0.0f) {
    if (grads) HB_TRY(be->zero(ctx, w->d_feat, sizeof(float) * nf));
    float *df = grads ? w->d_feat : NULL;
    HB_TRY(heads_feature_penalty(&w->heads, &st->feature_pen, df, a->features, nf, o->feature_weight * n_m));
    d_feat = df;
    st->feature_loss = o->feature_weight * n_m * st->feature_pen;
  }
  st->loss = st->pred_loss + st->feature_loss + st->topic_loss;
  if (!grads) return 0;

  // Trunk backward: d hidden[NL] (+ d hidden[tk]) and d f; model_backward applies feature_grad_mult
  // to the whole gradient entering the extractor.
  float *dh[HB_MAX_LAYERS + 1];
  memset(dh, 0, sizeof dh);
  dh[NL] = w->d_last;
  if (d_topic && tk != NL) dh[tk] = d_topic;
  return model_backward(m, a, dh, d_feat, o->feature_grad_mult, grads);
}
