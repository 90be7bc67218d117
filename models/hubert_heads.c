// Training heads and losses (see hubert_heads.h and docs/objective.md).
#include "models/hubert_heads.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

// Scratch slots.
enum {
  D_IDX, D_XS, D_PROJ, D_DPROJ, D_TMP, D_TGT, D_W, D_LOSS, D_CORR, D_DXS,
  D_POOL, D_HID, D_ACT, D_Z, D_DZ, D_DACT, D_DPOOL, D_DXT, D_LOGITS,  // D_LOGITS.. one per set
  D_COUNT = D_LOGITS + 1
};
enum { H_IDX, H_TGT, H_W, H_LOSS, H_CORR, H_COUNT };
_Static_assert(D_COUNT <= HB_HEADS_BUFS && H_COUNT <= HB_HEADS_BUFS, "heads scratch slots");

void heads_ws_init(hb_heads_ws *w, hb_ctx *ctx) {
  memset(w, 0, sizeof *w);
  w->ctx = ctx;
}

void heads_ws_free(hb_heads_ws *w) {
  for (int i = 0; i < HB_HEADS_BUFS; i++) {
    if (w->dev[i]) w->ctx->be->free(w->ctx, w->dev[i]);
    free(w->host[i]);
  }
  for (int s = 0; s < HB_MAX_LABEL_SETS; s++)
    if (w->logits[s] && s > 0) w->ctx->be->free(w->ctx, w->logits[s]);
  memset(w, 0, sizeof *w);
}

// Backend buffer of at least `bytes` in slot i (contents not kept when it grows).
static void *dev_get(hb_heads_ws *w, int i, size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (w->dev_bytes[i] >= bytes) return w->dev[i];
  if (w->dev[i]) w->ctx->be->free(w->ctx, w->dev[i]);
  w->dev[i] = w->ctx->be->alloc(w->ctx, bytes);
  w->dev_bytes[i] = w->dev[i] ? bytes : 0;
  if (!w->dev[i]) hb_fail_prefix("heads scratch (%zu bytes)", bytes);
  return w->dev[i];
}

static void *host_get(hb_heads_ws *w, int i, size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (w->host_bytes[i] >= bytes) return w->host[i];
  void *q = hb_realloc(w->host[i], bytes);
  if (!q) return NULL;
  w->host[i] = q;
  w->host_bytes[i] = bytes;
  return q;
}

// The heads' ops are late members of the table; a backend may not have them yet.
#define NEED_OP(be, op) \
  do { if (!(be)->op) return hb_fail("backend '%s' does not implement '%s' (kernels/ops.h)", (be)->name, #op); } while (0)

void heads_pred_opts_default(hb_pred_opts *o) {
  o->masked_weight = 1.0f;
  o->nomask_weight = 0.0f;
  o->logit_temp = 0.1f;
  o->keep_logits = 0;
}

// Logits of set s >= 1 live in their own buffers (slot D_LOGITS holds set 0).
static float *logits_get(hb_heads_ws *w, int s, size_t bytes) {
  if (s == 0) return (float *)dev_get(w, D_LOGITS, bytes);
  if (w->logits[s]) w->ctx->be->free(w->ctx, w->logits[s]);
  w->logits[s] = w->ctx->be->alloc(w->ctx, bytes ? bytes : 1);
  if (!w->logits[s]) hb_fail_prefix("pred head logits of label set %d", s);
  return w->logits[s];
}

int heads_pred_loss(hb_heads_ws *w, const hb_config *c, const hb_params *p, hb_params *g, const float *x,
                    const int *const *labels, const uint8_t *mask, const int *lengths, int B, int T,
                    const hb_pred_opts *o, float *dx, hb_pred_stats *st) {
  hb_ctx *ctx = w->ctx;
  const hb_backend *be = ctx->be;
  const int H = c->hidden_size, F = c->final_dim, S = c->num_label_sets;
  memset(st, 0, sizeof *st);
  NEED_OP(be, gather_rows);
  NEED_OP(be, scatter_rows);
  NEED_OP(be, cosine_ce);
  if (F <= 0 || S <= 0 || !p->final_proj_w || !p->label_embs)
    return hb_fail("masked-prediction head: the model has no final_proj / label embeddings (final_dim %d, %d label sets)", F, S);
  const int Fout = c->untie_final_proj ? F * S : F;
  const int with_u = o->nomask_weight != 0.0f;
  // Rows: masked valid frames, then (if weighted) unmasked valid frames, each in (b, t) order.
  int *hidx = host_get(w, H_IDX, sizeof(int) * (size_t)B * T);
  if (!hidx) return hb_fail_prefix("masked-prediction head");
  int nm = 0, nu = 0;
  for (int b = 0; b < B; b++) {
    const int len = lengths ? lengths[b] : T;
    if (len < 0 || len > T) return hb_fail("masked-prediction head: length %d of utterance %d outside [0, %d]", len, b, T);
    for (int t = 0; t < len; t++)
      if (mask[(size_t)b * T + t]) hidx[nm++] = b * T + t;
  }
  if (with_u)
    for (int b = 0; b < B; b++) {
      const int len = lengths ? lengths[b] : T;
      for (int t = 0; t < len; t++)
        if (!mask[(size_t)b * T + t]) hidx[nm + nu++] = b * T + t;
    }
  const int N = nm + nu;
  st->count_m = nm;
  st->count_u = nu;
  w->n_m = nm;
  w->n_u = nu;
  if (dx) HB_TRY(be->zero(ctx, dx, sizeof(float) * (size_t)B * T * H));
  if (N == 0) return 0;
  float *hw = host_get(w, H_W, sizeof(float) * N);
  int *htgt = host_get(w, H_TGT, sizeof(int) * N);
  float *hloss = host_get(w, H_LOSS, sizeof(float) * N);
  int *hcorr = host_get(w, H_CORR, sizeof(int) * N);
  int *didx = dev_get(w, D_IDX, sizeof(int) * N);
  float *xs = dev_get(w, D_XS, sizeof(float) * (size_t)N * H);      // (N, H)
  float *proj = dev_get(w, D_PROJ, sizeof(float) * (size_t)N * Fout);  // (N, Fout)
  int *dtgt = dev_get(w, D_TGT, sizeof(int) * N);
  float *dw = dev_get(w, D_W, sizeof(float) * N);
  float *dloss = dev_get(w, D_LOSS, sizeof(float) * N);
  int *dcorr = dev_get(w, D_CORR, sizeof(int) * N);
  if (!hw || !htgt || !hloss || !hcorr || !didx || !xs || !proj || !dtgt || !dw || !dloss || !dcorr)
    return hb_fail_prefix("masked-prediction head");
  const int grad = dx || g;
  float *dproj = NULL, *tmp = NULL, *dxs = NULL;
  if (grad) {
    dproj = dev_get(w, D_DPROJ, sizeof(float) * (size_t)N * Fout);
    tmp = (!c->untie_final_proj && S > 1) ? dev_get(w, D_TMP, sizeof(float) * (size_t)N * F) : NULL;
    dxs = dev_get(w, D_DXS, sizeof(float) * (size_t)N * H);
    if (!dproj || !dxs || (!c->untie_final_proj && S > 1 && !tmp)) return hb_fail_prefix("masked-prediction head");
  }
  for (int n = 0; n < N; n++) hw[n] = n < nm ? o->masked_weight : o->nomask_weight;
  HB_TRY(be->upload(ctx, didx, hidx, sizeof(int) * N));
  HB_TRY(be->upload(ctx, dw, hw, sizeof(float) * N));
  HB_TRY(be->gather_rows(ctx, xs, x, didx, N, H));
  HB_TRY(be->linear(ctx, proj, xs, p->final_proj_w, p->final_proj_b, N, H, Fout));  // (N, Fout)
  int koff = 0;
  for (int s = 0; s < S; s++) {
    const int K = c->label_k[s];
    for (int n = 0; n < N; n++) {
      const int lab = labels[s][hidx[n]];
      if (lab < 0 || lab >= K)
        return hb_fail("masked-prediction head: label set '%s': label %d at utterance %d frame %d outside [0, %d)",
                       c->label_names[s], lab, hidx[n] / T, hidx[n] % T, K);
      htgt[n] = lab;
    }
    HB_TRY(be->upload(ctx, dtgt, htgt, sizeof(int) * N));
    const int col = c->untie_final_proj ? s * F : 0;
    const float *ps = proj + col;
    const float *es = p->label_embs + (size_t)koff * F;
    float *des = g && g->label_embs ? g->label_embs + (size_t)koff * F : NULL;
    const int into_tmp = grad && tmp && s > 0;  // tied projection, later set: sum into dproj
    float *dps = !grad ? NULL : into_tmp ? tmp : dproj + col;
    float *lg = NULL;
    if (o->keep_logits) {
      lg = logits_get(w, s, sizeof(float) * (size_t)N * K);
      if (!lg) return -1;
      if (s == 0) w->logits[0] = lg;
    }
    // dps rows have stride Fout (tmp: F == Fout when tied)
    HB_TRY(be->cosine_ce(ctx, dloss, dcorr, lg, dps, des, ps, Fout, es, dtgt, dw, N, F, K, 1.0f / o->logit_temp));
    if (into_tmp) HB_TRY(be->axpy(ctx, dproj, 1.0f, tmp, (size_t)N * F));
    HB_TRY(be->download(ctx, hloss, dloss, sizeof(float) * N));
    HB_TRY(be->download(ctx, hcorr, dcorr, sizeof(int) * N));
    for (int n = 0; n < N; n++) {
      if (n < nm) {
        st->loss_m[s] += hloss[n];
        st->correct_m[s] += hcorr[n];
      } else {
        st->loss_u[s] += hloss[n];
        st->correct_u[s] += hcorr[n];
      }
    }
    st->loss += o->masked_weight * st->loss_m[s] + (with_u ? o->nomask_weight * st->loss_u[s] : 0.0);
    koff += K;
  }
  if (!grad) return 0;
  HB_TRY(be->linear_backward(ctx, dx ? dxs : NULL, g ? g->final_proj_w : NULL, g ? g->final_proj_b : NULL, dproj, xs,
                             p->final_proj_w, N, H, Fout));
  if (dx) HB_TRY(be->scatter_rows(ctx, dx, dxs, didx, N, H));
  return 0;
}

int heads_feature_penalty(hb_heads_ws *w, double *pen, float *df, const float *f, size_t n, double coef) {
  if (n == 0) return hb_fail("feature penalty: no features");
  hb_ctx *ctx = w->ctx;
  NEED_OP(ctx->be, sum_squares);
  // sum of squares on the backend (double accumulation; on CUDA one double comes back, not f)
  const hb_span all = {0, n, 0};
  double s = 0;
  if (ctx->be->sum_squares(ctx, &s, f, &all, 1)) return hb_fail_prefix("feature penalty");
  *pen = s / (double)n;
  if (df && coef != 0.0) HB_TRY(ctx->be->axpy(ctx, df, (float)(2.0 * coef / (double)n), f, n));
  return 0;
}

int heads_topic_loss(hb_heads_ws *w, const hb_config *c, const hb_params *p, hb_params *g, const float *x,
                     const int *lengths, const int *topics, int B, int T, const hb_topic_opts *o, float *dx,
                     hb_topic_stats *st) {
  memset(st, 0, sizeof *st);
  if (o->weight == 0.0f) return 0;
  hb_ctx *ctx = w->ctx;
  const hb_backend *be = ctx->be;
  const int H = c->hidden_size, K = c->topic_k, Hh = c->topic_hidden;
  NEED_OP(be, softmax_ce);
  NEED_OP(be, seq_mean_pool);
  NEED_OP(be, seq_mean_pool_backward);
  if (K <= 0 || !p->topic_w) return hb_fail("topic head: the model has no topic head (topic_k %d)", K);
  const int Hin = Hh > 0 ? Hh : H;
  int *hlen = host_get(w, H_IDX, sizeof(int) * B);
  float *hw = host_get(w, H_W, sizeof(float) * B);
  float *hloss = host_get(w, H_LOSS, sizeof(float) * B);
  int *hcorr = host_get(w, H_CORR, sizeof(int) * B);
  int *dlen = dev_get(w, D_IDX, sizeof(int) * B);
  int *dtgt = dev_get(w, D_TGT, sizeof(int) * B);
  float *dwt = dev_get(w, D_W, sizeof(float) * B);
  float *dloss = dev_get(w, D_LOSS, sizeof(float) * B);
  int *dcorr = dev_get(w, D_CORR, sizeof(int) * B);
  float *pool = dev_get(w, D_POOL, sizeof(float) * (size_t)B * H);                 // (B, H)
  float *hid = Hh ? dev_get(w, D_HID, sizeof(float) * (size_t)B * Hh) : NULL;     // (B, Hh)
  float *act = Hh ? dev_get(w, D_ACT, sizeof(float) * (size_t)B * Hh) : NULL;     // (B, Hh)
  float *z = dev_get(w, D_Z, sizeof(float) * (size_t)B * K);                        // (B, K)
  if (!hlen || !hw || !hloss || !hcorr || !dlen || !dtgt || !dwt || !dloss || !dcorr || !pool || !z || (Hh && (!hid || !act)))
    return hb_fail_prefix("topic head");
  for (int b = 0; b < B; b++) {
    hlen[b] = lengths ? lengths[b] : T;
    if (hlen[b] < 1 || hlen[b] > T) return hb_fail("topic head: length %d of utterance %d outside [1, %d]", hlen[b], b, T);
    if (topics[b] < 0 || topics[b] >= K) return hb_fail("topic head: topic %d of utterance %d outside [0, %d)", topics[b], b, K);
    hw[b] = o->mean ? o->weight / (float)B : o->weight;
  }
  HB_TRY(be->upload(ctx, dlen, hlen, sizeof(int) * B));
  HB_TRY(be->upload(ctx, dtgt, topics, sizeof(int) * B));
  HB_TRY(be->upload(ctx, dwt, hw, sizeof(float) * B));
  HB_TRY(be->seq_mean_pool(ctx, pool, x, dlen, B, T, H));
  if (Hh) {
    HB_TRY(be->linear(ctx, hid, pool, p->topic_hid_w, p->topic_hid_b, B, H, Hh));
    HB_TRY(be->gelu(ctx, act, hid, (size_t)B * Hh));
  }
  const float *zin = Hh ? act : pool;  // (B, Hin)
  HB_TRY(be->linear(ctx, z, zin, p->topic_w, p->topic_b, B, Hin, K));
  const int grad = dx || g;
  float *dz = grad ? dev_get(w, D_DZ, sizeof(float) * (size_t)B * K) : NULL;
  if (grad && !dz) return hb_fail_prefix("topic head");
  HB_TRY(be->softmax_ce(ctx, dloss, dcorr, dz, z, dtgt, dwt, B, K));
  HB_TRY(be->download(ctx, hloss, dloss, sizeof(float) * B));
  HB_TRY(be->download(ctx, hcorr, dcorr, sizeof(int) * B));
  for (int b = 0; b < B; b++) {
    st->ce_sum += hloss[b];
    st->correct += hcorr[b];
  }
  st->count = B;
  st->loss = o->weight * (o->mean ? st->ce_sum / B : st->ce_sum);
  if (!grad) return 0;
  float *dzin = dev_get(w, D_DACT, sizeof(float) * (size_t)B * Hin);  // (B, Hin)
  float *dpool = Hh ? dev_get(w, D_DPOOL, sizeof(float) * (size_t)B * H) : dzin;
  if (!dzin || !dpool) return hb_fail_prefix("topic head");
  HB_TRY(be->linear_backward(ctx, dzin, g ? g->topic_w : NULL, g ? g->topic_b : NULL, dz, zin, p->topic_w, B, Hin, K));
  if (Hh) {
    HB_TRY(be->gelu_backward(ctx, dzin, dzin, hid, (size_t)B * Hh));
    HB_TRY(be->linear_backward(ctx, dpool, g ? g->topic_hid_w : NULL, g ? g->topic_hid_b : NULL, dzin, pool,
                               p->topic_hid_w, B, H, Hh));
  }
  if (!dx) return 0;
  float *dxt = dev_get(w, D_DXT, sizeof(float) * (size_t)B * T * H);  // (B, T, H)
  if (!dxt) return hb_fail_prefix("topic head");
  HB_TRY(be->seq_mean_pool_backward(ctx, dxt, dpool, dlen, B, T, H));
  return be->axpy(ctx, dx, 1.0f, dxt, (size_t)B * T * H);
}

int heads_ctc_loss(hb_heads_ws *w, const hb_config *c, const hb_params *p, hb_params *g, const float *x,
                   const int *in_len, const int *targets, const int *tgt_len, int B, int T, int S,
                   const hb_ctc_opts *o, float *dx, double *loss, float *loss_b) {
  hb_ctx *ctx = w->ctx;
  const hb_backend *be = ctx->be;
  const int H = c->hidden_size, V = c->ctc_vocab;
  NEED_OP(be, ctc_loss);
  if (V <= 0 || !p->ctc_w) return hb_fail("CTC head: the model has no CTC head (vocabulary size %d)", V);
  const size_t BT = (size_t)B * T;
  const int Sp = S > 0 ? S : 1;
  float *hw = host_get(w, H_W, sizeof(float) * B);
  float *hloss = host_get(w, H_LOSS, sizeof(float) * B);
  int *dtg = dev_get(w, D_TGT, sizeof(int) * (size_t)B * Sp);
  int *dil = dev_get(w, D_IDX, sizeof(int) * B);
  int *dtl = dev_get(w, D_CORR, sizeof(int) * B);
  float *dwt = dev_get(w, D_W, sizeof(float) * B);
  float *dloss = dev_get(w, D_LOSS, sizeof(float) * B);
  float *z = dev_get(w, D_Z, sizeof(float) * BT * V);  // (B, T, V)
  if (!hw || !hloss || !dtg || !dil || !dtl || !dwt || !dloss || !z) return hb_fail_prefix("CTC head");
  w->ctc_logits = z;
  for (int b = 0; b < B; b++) hw[b] = o->mean ? 1.0f / ((float)B * (float)(tgt_len[b] > 1 ? tgt_len[b] : 1)) : 1.0f;
  if (S > 0) HB_TRY(be->upload(ctx, dtg, targets, sizeof(int) * (size_t)B * S));
  HB_TRY(be->upload(ctx, dil, in_len, sizeof(int) * B));
  HB_TRY(be->upload(ctx, dtl, tgt_len, sizeof(int) * B));
  HB_TRY(be->upload(ctx, dwt, hw, sizeof(float) * B));
  HB_TRY(be->linear(ctx, z, x, p->ctc_w, p->ctc_b, (int)BT, H, V));
  const int grad = dx || g;
  float *dz = grad ? dev_get(w, D_DZ, sizeof(float) * BT * V) : NULL;
  if (grad && !dz) return hb_fail_prefix("CTC head");
  if (be->ctc_loss(ctx, dloss, dz, z, dtg, dil, dtl, dwt, B, T, V, Sp, o->blank)) return hb_fail_prefix("CTC head");
  HB_TRY(be->download(ctx, hloss, dloss, sizeof(float) * B));
  double s = 0;
  for (int b = 0; b < B; b++) {
    s += hw[b] * (double)hloss[b];
    if (loss_b) loss_b[b] = hloss[b];
  }
  *loss = s;
  if (!grad) return 0;
  return be->linear_backward(ctx, dx, g ? g->ctc_w : NULL, g ? g->ctc_b : NULL, dz, x, p->ctc_w, (int)BT, H, V);
}

void heads_ctc_greedy(const float *logits, const int *in_len, int B, int T, int V, int blank, int *out, int *out_len) {
  for (int b = 0; b < B; b++) {
    int n = 0, prev = -1;
    for (int t = 0; t < in_len[b] && t < T; t++) {
      const float *r = logits + ((size_t)b * T + t) * V;
      int a = 0;
      for (int v = 1; v < V; v++)
        if (r[v] > r[a]) a = v;
      if (a != prev && a != blank) out[(size_t)b * T + n++] = a;
      prev = a;
    }
    out_len[b] = n;
  }
}
