// Linear softmax and linear CTC probes with a softmax-weighted layer sum (see probe.h).
//
// Parameters, one flat buffer for AdamW: W (K, D) | b (K) | a (L) (a only when L > 1).
// Forward on a minibatch of n rows: X (n, D) = sum_l w_l H_l[rows], w = softmax(a);
// Z (n, K) = X W^T + b. Backward from dZ: dW = dZ^T X, db = sum_rows dZ, and for L > 1
// dX = dZ W, dw_l = <dX, H_l[rows]>, da = w * (dw - sum_l w_l dw_l).
#include "eval/probe.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/rng.h"
#include "kernels/ops.h"
#include "models/hubert_heads.h"
#include "train/optim.h"

typedef struct {
  int L, D, K;
  size_t total;
  float *p, *g, *best;  // (total)
  float w[256];         // softmax(a) (L)
  hb_adamw opt;
  float *X, *dX, *Z;    // (cap, D), (cap, D), (cap, K) minibatch scratch
  int64_t *rows;        // (cap)
  int64_t cap;
} lin_head;

static void head_free(lin_head *h) {
  free(h->p), free(h->g), free(h->best), free(h->X), free(h->dX), free(h->Z), free(h->rows);
  optim_free(&h->opt);
  memset(h, 0, sizeof *h);
}

static int head_init(lin_head *h, int L, int D, int K, int64_t cap, const hb_probe_opts *o) {
  memset(h, 0, sizeof *h);
  if (L < 1 || L > 256 || D < 1 || K < 1) return hb_fail("probe: bad shape L=%d D=%d K=%d", L, D, K);
  h->L = L, h->D = D, h->K = K, h->cap = cap;
  const size_t nW = (size_t)K * D;
  h->total = nW + (size_t)K + (L > 1 ? (size_t)L : 0);
  h->p = hb_calloc(h->total, sizeof(float));
  h->g = hb_calloc(h->total, sizeof(float));
  h->best = hb_calloc(h->total, sizeof(float));
  h->X = hb_malloc(sizeof(float) * (size_t)cap * D);
  h->dX = hb_malloc(sizeof(float) * (size_t)cap * D);
  h->Z = hb_malloc(sizeof(float) * (size_t)cap * K);
  h->rows = hb_malloc(sizeof(int64_t) * (size_t)cap);
  if (!h->p || !h->g || !h->best || !h->X || !h->dX || !h->Z || !h->rows) goto fail;
  // W ~ U(-1/sqrt(D), 1/sqrt(D)) (torch.nn.Linear), b = 0, a = 0 (equal layer weights).
  hb_rng rng;
  rng_init(&rng, o->seed);
  const float bound = 1.0f / sqrtf((float)D);
  for (size_t i = 0; i < nW; i++) h->p[i] = (2.0f * rng_uniform(&rng) - 1.0f) * bound;
  hb_optim_segment seg[2] = {{0, nW, 1}, {nW, h->total - nW, 0}};
  hb_adamw_hparams hp = {0.9, 0.999, 1e-8, o->weight_decay};
  if (optim_init(&h->opt, h->total, seg, 2, &hp)) goto fail;
  return 0;
fail:
  head_free(h);
  return -1;
}

static void head_weights(lin_head *h) {
  if (h->L == 1) {
    h->w[0] = 1.0f;
    return;
  }
  const float *a = h->p + (size_t)h->K * h->D + h->K;
  float mx = a[0], s = 0;
  for (int l = 1; l < h->L; l++) mx = a[l] > mx ? a[l] : mx;
  for (int l = 0; l < h->L; l++) s += h->w[l] = expf(a[l] - mx);
  for (int l = 0; l < h->L; l++) h->w[l] /= s;
}

// X (n, D) = sum_l w_l x[l][rows]. rows < 0: a zero row (CTC padding).
static void head_mix(lin_head *h, const float *const *x, int64_t n) {
  const int D = h->D;
  for (int64_t i = 0; i < n; i++) {
    float *o = h->X + (size_t)i * D;
    const int64_t r = h->rows[i];
    if (r < 0) {
      memset(o, 0, sizeof(float) * D);
      continue;
    }
    const float *s0 = x[0] + (size_t)r * D;
    for (int d = 0; d < D; d++) o[d] = h->w[0] * s0[d];
    for (int l = 1; l < h->L; l++) {
      const float *s = x[l] + (size_t)r * D, wl = h->w[l];
      for (int d = 0; d < D; d++) o[d] += wl * s[d];
    }
  }
}

// Z (n, K) = X W^T + b
static void head_logits(lin_head *h, int64_t n) {
  const int D = h->D, K = h->K;
  const float *b = h->p + (size_t)K * D;
  for (int64_t i = 0; i < n; i++) memcpy(h->Z + (size_t)i * K, b, sizeof(float) * K);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, K, D, 1.0f, h->X, D, h->p, D, 1.0f, h->Z, K);
}

// Gradients from dZ (in h->Z, (n, K)) into h->g, then one AdamW update.
static int head_backward_step(lin_head *h, const float *const *x, int64_t n, double lr) {
  const int D = h->D, K = h->K, L = h->L;
  float *gW = h->g, *gb = h->g + (size_t)K * D;
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, D, (int)n, 1.0f, h->Z, K, h->X, D, 0.0f, gW, D);
  memset(gb, 0, sizeof(float) * K);
  for (int64_t i = 0; i < n; i++)
    for (int k = 0; k < K; k++) gb[k] += h->Z[(size_t)i * K + k];
  if (L > 1) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, D, K, 1.0f, h->Z, K, h->p, D, 0.0f, h->dX, D);
    double dw[256] = {0}, s = 0;
    for (int64_t i = 0; i < n; i++) {
      if (h->rows[i] < 0) continue;
      const float *dx = h->dX + (size_t)i * D;
      for (int l = 0; l < L; l++) {
        const float *xr = x[l] + (size_t)h->rows[i] * D;
        double acc = 0;
        for (int d = 0; d < D; d++) acc += (double)dx[d] * xr[d];
        dw[l] += acc;
      }
    }
    for (int l = 0; l < L; l++) s += h->w[l] * dw[l];
    float *ga = gb + K;
    for (int l = 0; l < L; l++) ga[l] = (float)(h->w[l] * (dw[l] - s));
  }
  hb_optim_stats st;
  return optim_step(&h->opt, h->p, h->g, 1.0, lr, 0.0, &st);
}

static void shuffle(int64_t *perm, int64_t n, hb_rng *rng) {
  for (int64_t i = 0; i < n; i++) perm[i] = i;
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = (int64_t)rng_below(rng, (uint64_t)i + 1), t = perm[i];
    perm[i] = perm[j], perm[j] = t;
  }
}

// Accuracy of the current head on split s.
static double lin_accuracy(lin_head *h, const hb_probe_data *d, int s) {
  if (d->n[s] == 0) return NAN;
  int64_t correct = 0;
  for (int64_t i0 = 0; i0 < d->n[s]; i0 += h->cap) {
    int64_t n = d->n[s] - i0 < h->cap ? d->n[s] - i0 : h->cap;
    for (int64_t i = 0; i < n; i++) h->rows[i] = i0 + i;
    head_mix(h, d->x[s], n);
    head_logits(h, n);
    for (int64_t i = 0; i < n; i++) {
      const float *z = h->Z + (size_t)i * h->K;
      int am = 0;
      for (int k = 1; k < h->K; k++)
        if (z[k] > z[am]) am = k;
      correct += am == d->y[s][i0 + i];
    }
  }
  return (double)correct / (double)d->n[s];
}

static int keep_layer_weights(lin_head *h, hb_probe_result *r) {
  if (h->L == 1) return 0;
  r->layer_w = hb_malloc(sizeof(float) * (size_t)h->L);
  if (!r->layer_w) return -1;
  memcpy(r->layer_w, h->w, sizeof(float) * (size_t)h->L);
  return 0;
}

int probe_train_linear(const hb_probe_data *d, const hb_probe_opts *o, hb_probe_result *r) {
  memset(r, 0, sizeof *r);
  if (d->n[HB_TRAIN] < 1 || d->n[HB_VALID] < 1) return hb_fail("probe: %lld train / %lld valid samples (need >= 1 each)",
                                                              (long long)d->n[HB_TRAIN], (long long)d->n[HB_VALID]);
  for (int s = 0; s < 3; s++)
    for (int64_t i = 0; i < d->n[s]; i++)
      if (d->y[s][i] >= d->C || (s == HB_TRAIN && d->y[s][i] < 0)) return hb_fail("probe: class %d of sample %lld not in [0, %d)", d->y[s][i], (long long)i, d->C);
  lin_head h;
  const int64_t cap = o->batch > 1024 ? o->batch : 1024;
  HB_TRY(head_init(&h, d->L, d->D, d->C, cap, o));
  int64_t *perm = hb_malloc(sizeof(int64_t) * (size_t)d->n[HB_TRAIN]);
  if (!perm) {
    head_free(&h);
    return -1;
  }
  hb_rng rng;
  rng_init(&rng, rng_derive_seed(o->seed, 1));
  double best = -1;
  int bad = 0, rc = 0;
  for (int ep = 1; ep <= o->max_epochs && !rc; ep++) {
    shuffle(perm, d->n[HB_TRAIN], &rng);
    for (int64_t i0 = 0; i0 < d->n[HB_TRAIN] && !rc; i0 += o->batch) {
      int64_t n = d->n[HB_TRAIN] - i0 < o->batch ? d->n[HB_TRAIN] - i0 : o->batch;
      head_weights(&h);
      for (int64_t i = 0; i < n; i++) h.rows[i] = perm[i0 + i];
      head_mix(&h, d->x[HB_TRAIN], n);
      head_logits(&h, n);
      // dZ = (softmax(Z) - onehot(y)) / n   (mean cross-entropy over the batch)
      for (int64_t i = 0; i < n; i++) {
        float *z = h.Z + (size_t)i * h.K, mx = z[0];
        double s = 0;
        for (int k = 1; k < h.K; k++) mx = z[k] > mx ? z[k] : mx;
        for (int k = 0; k < h.K; k++) s += z[k] = expf(z[k] - mx);
        for (int k = 0; k < h.K; k++) z[k] = (float)(z[k] / s / n);
        z[d->y[HB_TRAIN][h.rows[i]]] -= 1.0f / (float)n;
      }
      rc = head_backward_step(&h, d->x[HB_TRAIN], n, o->lr);
    }
    head_weights(&h);
    r->epochs = ep;
    double acc = lin_accuracy(&h, d, HB_VALID);
    if (acc > best) {
      best = acc, bad = 0, r->best_epoch = ep;
      memcpy(h.best, h.p, sizeof(float) * h.total);
    } else if (++bad >= o->patience) {
      break;
    }
  }
  if (!rc) {
    memcpy(h.p, h.best, sizeof(float) * h.total);
    head_weights(&h);
    for (int s = 0; s < 3; s++) r->score[s] = lin_accuracy(&h, d, s);
    rc = keep_layer_weights(&h, r);
  }
  free(perm);
  head_free(&h);
  return rc;
}

int64_t probe_edit_distance(const int32_t *a, int na, const int32_t *b, int nb) {
  int64_t *row = malloc(sizeof(int64_t) * ((size_t)nb + 1));
  if (!row) return na > nb ? na : nb;
  for (int j = 0; j <= nb; j++) row[j] = j;
  for (int i = 1; i <= na; i++) {
    int64_t diag = row[0];
    row[0] = i;
    for (int j = 1; j <= nb; j++) {
      int64_t up = row[j], v = diag + (a[i - 1] != b[j - 1]);
      if (up + 1 < v) v = up + 1;
      if (row[j - 1] + 1 < v) v = row[j - 1] + 1;
      diag = up;
      row[j] = v;
    }
  }
  int64_t r = row[nb];
  free(row);
  return r;
}

typedef struct {
  hb_ctx ctx;
  int64_t maxT, maxS;
  int *in_len, *tgt_len, *targets, *hyp, *hyp_len;   // (B), (B), (B, S), (B, T), (B)
  float *loss, *wb, *dZ;                             // (B), (B), (B * T, V)
} ctc_ws;

static int64_t utt_len(const hb_ctc_probe_data *d, int s, int64_t u) { return d->off[s][u + 1] - d->off[s][u]; }

// Loads utterances us[0..B) of split s into h->rows (B, T) padded with -1; returns T.
static int64_t ctc_rows(lin_head *h, const hb_ctc_probe_data *d, int s, const int64_t *us, int B, ctc_ws *w) {
  int64_t T = 0;
  for (int b = 0; b < B; b++) T = utt_len(d, s, us[b]) > T ? utt_len(d, s, us[b]) : T;
  for (int b = 0; b < B; b++) {
    const int64_t n = utt_len(d, s, us[b]);
    w->in_len[b] = (int)n;
    for (int64_t t = 0; t < T; t++) h->rows[(size_t)b * T + t] = t < n ? d->off[s][us[b]] + t : -1;
  }
  return T;
}

// PER of the current head on split s: sum of edit distances / sum of reference lengths.
static double ctc_per(lin_head *h, const hb_ctc_probe_data *d, int s, ctc_ws *w) {
  if (d->nutt[s] == 0) return NAN;
  int64_t edits = 0, ref = 0;
  for (int64_t u = 0; u < d->nutt[s]; u++) {
    int64_t T = ctc_rows(h, d, s, &u, 1, w);
    head_mix(h, d->x[s], T);
    head_logits(h, T);
    heads_ctc_greedy(h->Z, w->in_len, 1, (int)T, h->K, 0, w->hyp, w->hyp_len);
    const int32_t *tg = d->tgt[s] + d->toff[s][u];
    const int nt = (int)(d->toff[s][u + 1] - d->toff[s][u]);
    edits += probe_edit_distance(w->hyp, w->hyp_len[0], tg, nt);
    ref += nt;
  }
  return ref ? (double)edits / (double)ref : NAN;
}

int probe_train_ctc(const hb_ctc_probe_data *d, const hb_probe_opts *o, hb_probe_result *r) {
  memset(r, 0, sizeof *r);
  if (d->nutt[HB_TRAIN] < 1 || d->nutt[HB_VALID] < 1) return hb_fail("CTC probe: %lld train / %lld valid utterances (need >= 1 each)",
                                                                    (long long)d->nutt[HB_TRAIN], (long long)d->nutt[HB_VALID]);
  ctc_ws w;
  memset(&w, 0, sizeof w);
  for (int s = 0; s < 3; s++)
    for (int64_t u = 0; u < d->nutt[s]; u++) {
      w.maxT = utt_len(d, s, u) > w.maxT ? utt_len(d, s, u) : w.maxT;
      int64_t S = d->toff[s][u + 1] - d->toff[s][u];
      w.maxS = S > w.maxS ? S : w.maxS;
    }
  const int B = o->batch;
  lin_head h;
  HB_TRY(head_init(&h, d->L, d->D, d->V, (int64_t)B * w.maxT, o));
  int rc = -1;
  int64_t *perm = hb_malloc(sizeof(int64_t) * (size_t)d->nutt[HB_TRAIN]);
  w.in_len = hb_calloc((size_t)B, sizeof(int));
  w.tgt_len = hb_calloc((size_t)B, sizeof(int));
  w.hyp_len = hb_calloc((size_t)B, sizeof(int));
  w.targets = hb_calloc((size_t)B * (size_t)(w.maxS ? w.maxS : 1), sizeof(int));
  w.hyp = hb_calloc((size_t)B * (size_t)w.maxT, sizeof(int));
  w.loss = hb_calloc((size_t)B, sizeof(float));
  w.wb = hb_calloc((size_t)B, sizeof(float));
  int have_ctx = 0;
  if (!perm || !w.in_len || !w.tgt_len || !w.hyp_len || !w.targets || !w.hyp || !w.loss || !w.wb) goto done;
  if (ops_ctx_init(&w.ctx, "cpu", 0)) goto done;
  have_ctx = 1;
  for (int s = 0; s < 3; s++)
    for (int64_t i = d->toff[s][0]; i < d->toff[s][d->nutt[s]]; i++)
      if (d->tgt[s][i] < 1 || d->tgt[s][i] >= d->V) {
        hb_fail("CTC probe: target %d not in [1, %d)", d->tgt[s][i], d->V);
        goto done;
      }
  hb_rng rng;
  rng_init(&rng, rng_derive_seed(o->seed, 2));
  double best = INFINITY;
  int bad = 0;
  for (int ep = 1; ep <= o->max_epochs; ep++) {
    shuffle(perm, d->nutt[HB_TRAIN], &rng);
    for (int64_t i0 = 0; i0 < d->nutt[HB_TRAIN]; i0 += B) {
      const int nb = (int)(d->nutt[HB_TRAIN] - i0 < B ? d->nutt[HB_TRAIN] - i0 : B);
      head_weights(&h);
      const int64_t T = ctc_rows(&h, d, HB_TRAIN, perm + i0, nb, &w);
      int S = 1;
      for (int b = 0; b < nb; b++) {
        const int64_t u = perm[i0 + b];
        w.tgt_len[b] = (int)(d->toff[HB_TRAIN][u + 1] - d->toff[HB_TRAIN][u]);
        S = w.tgt_len[b] > S ? w.tgt_len[b] : S;
      }
      for (int b = 0; b < nb; b++) {
        const int32_t *tg = d->tgt[HB_TRAIN] + d->toff[HB_TRAIN][perm[i0 + b]];
        for (int k = 0; k < S; k++) w.targets[(size_t)b * S + k] = k < w.tgt_len[b] ? tg[k] : 0;
        w.wb[b] = 1.0f / (float)(nb * (w.tgt_len[b] > 0 ? w.tgt_len[b] : 1));   // PyTorch's "mean"
      }
      head_mix(&h, d->x[HB_TRAIN], (int64_t)nb * T);
      head_logits(&h, (int64_t)nb * T);
      // The op writes dZ (B, T, V) in place of the logits it read: copy the logits first.
      float *z = hb_malloc(sizeof(float) * (size_t)nb * T * h.K);
      if (!z) goto done;
      memcpy(z, h.Z, sizeof(float) * (size_t)nb * T * h.K);
      int orc = hb_backend_cpu.ctc_loss(&w.ctx, w.loss, h.Z, z, w.targets, w.in_len, w.tgt_len, w.wb, nb, (int)T, h.K, S, 0);
      free(z);
      if (orc || head_backward_step(&h, d->x[HB_TRAIN], (int64_t)nb * T, o->lr)) goto done;
    }
    head_weights(&h);
    r->epochs = ep;
    double per = ctc_per(&h, d, HB_VALID, &w);
    if (per < best) {
      best = per, bad = 0, r->best_epoch = ep;
      memcpy(h.best, h.p, sizeof(float) * h.total);
    } else if (++bad >= o->patience) {
      break;
    }
  }
  memcpy(h.p, h.best, sizeof(float) * h.total);
  head_weights(&h);
  for (int s = 0; s < 3; s++) r->score[s] = ctc_per(&h, d, s, &w);
  rc = keep_layer_weights(&h, r);
done:
  if (have_ctx) ops_ctx_free(&w.ctx);
  free(perm), free(w.in_len), free(w.tgt_len), free(w.hyp_len), free(w.targets), free(w.hyp), free(w.loss), free(w.wb);
  head_free(&h);
  return rc;
}
