// HuBERT's training heads and losses, written against the op API: the masked-prediction head
// (final_proj + cosine logits against label embeddings, one or more label sets), the feature
// penalty, the HuBERTopic topic head and the CTC head. Each takes the trunk's output x (B, T, H)
// (backend memory), returns its loss and statistics, writes the gradient wrt x and accumulates
// (+=) parameter gradients into the views g (bound with params_bind() on the flat gradient
// buffer; NULL: no parameter gradients). docs/objective.md states the semantics.
#ifndef HB_HUBERT_HEADS_H
#define HB_HUBERT_HEADS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/ops.h"
#include "models/hubert_config.h"
#include "models/hubert_params.h"

// Growable scratch of the heads (backend and host buffers): sized by the first call with the
// largest shapes, reused afterwards.
#define HB_HEADS_BUFS 24
typedef struct {
  hb_ctx *ctx;
  void *dev[HB_HEADS_BUFS];
  size_t dev_bytes[HB_HEADS_BUFS];
  void *host[HB_HEADS_BUFS];
  size_t host_bytes[HB_HEADS_BUFS];
  // Outputs kept for inspection after a call (backend memory, valid until the next call):
  float *logits[HB_MAX_LABEL_SETS];  // pred head with keep_logits: (N_m + N_u, K_s), masked rows first
  int n_m, n_u;                      // rows of masked / unmasked frames in `logits` (b-major order)
  float *ctc_logits;                 // (B, T, V) from heads_ctc_loss
} hb_heads_ws;

void heads_ws_init(hb_heads_ws *w, hb_ctx *ctx);
void heads_ws_free(hb_heads_ws *w);

// ---- masked prediction -------------------------------------------------------------------------
typedef struct {
  float masked_weight;   // pred_masked_weight (fairseq default 1)
  float nomask_weight;   // pred_nomask_weight (default 0: unmasked frames are not computed at all)
  float logit_temp;      // 0.1
  int keep_logits;       // keep the logits in ws->logits
} hb_pred_opts;
void heads_pred_opts_default(hb_pred_opts *o);

typedef struct {
  double loss;                          // sum_s (masked_weight loss_m[s] + nomask_weight loss_u[s])
  double loss_m[HB_MAX_LABEL_SETS];     // cross-entropy summed over masked valid frames
  double loss_u[HB_MAX_LABEL_SETS];     // ... over unmasked valid frames (0 if not computed)
  long correct_m[HB_MAX_LABEL_SETS], correct_u[HB_MAX_LABEL_SETS];  // argmax == target
  long count_m, count_u;                // frames per set (count_u 0 if not computed)
} hb_pred_stats;

// x (B, T, H) backend; labels[s] (B, T) host int (already at the feature rate: labels_align);
// mask (B, T) host bytes; lengths (B) host (NULL: all T). Frames t >= lengths[b] are ignored.
// dx (B, T, H) backend, OVERWRITTEN (0 on frames that carry no loss), may be NULL.
int heads_pred_loss(hb_heads_ws *w, const hb_config *c, const hb_params *p, hb_params *g, const float *x,
                    const int *const *labels, const uint8_t *mask, const int *lengths, int B, int T,
                    const hb_pred_opts *o, float *dx, hb_pred_stats *st);

// Feature penalty (torchaudio/fairseq): pen = mean(f^2) over n elements of f (backend). The loss
// term is weight * count_m * pen (hubert_loss multiplies by the masked-frame count, fairseq by
// sample_size); pass coef = weight * count_m: df += coef * 2 f / n (df NULL: no gradient).
int heads_feature_penalty(hb_heads_ws *w, double *pen, float *df, const float *f, size_t n, double coef);

// ---- HuBERTopic ---------------------------------------------------------------------------------
typedef struct {
  float weight;     // lambda (topic.weight); 0 disables the head: nothing is computed or touched
  int mean;         // 1: loss = weight * mean_b CE (F.cross_entropy's default); 0: weight * sum_b CE
} hb_topic_opts;

typedef struct {
  double loss;      // weighted as above
  double ce_sum;    // unweighted CE summed over the batch
  long correct, count;
} hb_topic_stats;

// x (B, T, H) backend (the chosen layer's output), lengths (B) host (>= 1 each; NULL: all T),
// topics (B) host in [0, topic_k). Pools over valid frames, then [linear -> GELU] -> linear.
// dx (B, T, H) backend is ACCUMULATED (+=): the topic gradient joins the trunk's at that layer.
int heads_topic_loss(hb_heads_ws *w, const hb_config *c, const hb_params *p, hb_params *g, const float *x,
                     const int *lengths, const int *topics, int B, int T, const hb_topic_opts *o, float *dx,
                     hb_topic_stats *st);

// ---- CTC ----------------------------------------------------------------------------------------
typedef struct {
  int mean;         // 0 "sum": sum_b loss_b; 1 "mean": mean_b (loss_b / max(tgt_len_b, 1)) (PyTorch)
  int blank;        // blank index (0)
} hb_ctc_opts;

// logits = ctc_head(x) (B, T, V) kept in ws->ctc_logits; targets (B, S) host padded, in_len,
// tgt_len (B) host. *loss as reduced; loss_b (B) host | NULL per utterance. dx overwritten | NULL.
int heads_ctc_loss(hb_heads_ws *w, const hb_config *c, const hb_params *p, hb_params *g, const float *x,
                   const int *in_len, const int *targets, const int *tgt_len, int B, int T, int S,
                   const hb_ctc_opts *o, float *dx, double *loss, float *loss_b);

// Greedy decoding of host logits (B, T, V): argmax per frame over t < in_len[b], collapse
// repeats, drop blanks. out (B, T) host, out_len (B).
void heads_ctc_greedy(const float *logits, const int *in_len, int B, int T, int V, int blank, int *out, int *out_len);

#endif
