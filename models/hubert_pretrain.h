// One whole HuBERT pretraining step's loss and gradients: the trunk (models/hubert_train.h) plus
// the heads (models/hubert_heads.h), with the semantics of torchaudio's hubert_pretrain_model +
// hubert_loss (and the HuBERTopic head on top). docs/objective.md ("The whole step") has the formula:
//
//   f = extractor(wave)                                  (B, T, Cc), all T frames (padding included)
//   h = transformer(mask_embed(project(f), mask))        hidden[0..NL] (B, T, H)
//   L = sum_s [ w_m CE_m[s] + w_u CE_u[s] ]              CE summed over masked / unmasked VALID frames
//     + w_f * n_m * mean(f^2)                            n_m masked valid frames; mean over B*T*Cc
//     + lambda * [n_m] * (mean_b | sum_b) CE_topic(b)    topic head on hidden[topic layer]
//
// The gradient reaching f (from the transformer AND from the penalty, as torchaudio applies
// GradMultiply before computing the penalty) is multiplied by feature_grad_mult.
#ifndef HB_HUBERT_PRETRAIN_H
#define HB_HUBERT_PRETRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "models/hubert.h"
#include "models/hubert_heads.h"
#include "models/hubert_train.h"

typedef struct {
  hb_pred_opts pred;        // masked / unmasked weights (1, 0), logit temperature, keep_logits
  float feature_weight;     // w_f: feature penalty weight (torchaudio hubert_loss 10; 0: not computed)
  float feature_grad_mult;  // 0.1 for Base; 1: plain gradient
  hb_topic_opts topic;      // lambda (0: head off), mean over the batch or sum
  int topic_per_masked;     // 1: multiply the topic term by max(n_m, 1) (train/trainer.h's normalisation)
  int topic_layer;          // hidden index 1..NL pooled by the topic head; 0: the model's cfg.topic_layer (0 = NL)
  hb_train_opts train;      // dropout / LayerDrop on (train = 1) or off, and their Philox seed
} hb_pretrain_opts;

// Defaults: hubert_loss's weights (1, 0, 10), feature_grad_mult 0.1, topic off, eval-mode trunk.
void pretrain_opts_default(hb_pretrain_opts *o);

typedef struct {
  double loss;              // L above
  double pred_loss;         // sum_s [w_m CE_m[s] + w_u CE_u[s]]
  double feature_pen;       // mean(f^2) (unweighted)
  double feature_loss;      // w_f * n_m * mean(f^2)
  double topic_loss;        // the topic term as added to L
  hb_pred_stats pred;       // per-set CE sums, correct counts, n_m (count_m), n_u
  hb_topic_stats topic;     // unweighted CE sum, topic accuracy
  int T;                    // padded frame count of the batch
} hb_pretrain_stats;

typedef struct {
  hb_train_arena arena;     // trunk activations (a.hidden, a.features valid after a step)
  hb_heads_ws heads;        // heads scratch (heads.logits with opts.pred.keep_logits)
  float *d_last;            // (B, T, H) backend: gradient wrt hidden[NL]
  float *d_topic;           // (B, T, H) backend: gradient wrt hidden[topic layer] (< NL)
  float *d_feat;            // (B, T, Cc) backend: penalty gradient wrt f
  int *frames;              // (max_B) valid frames of the last step
  int *loss_frames;         // (max_B) frames carrying labels of the last step
  int max_B, max_T;
} hb_pretrain_ws;

int pretrain_ws_init(hb_pretrain_ws *w, hb_model *m, int max_B, long max_samples);
void pretrain_ws_free(hb_pretrain_ws *w, hb_model *m);

// One step. wave (B, L) backend memory, lengths (B) valid samples; labels[s] (B, T) host ints at
// the feature rate (labels_align) with T = config_num_frames(cfg, L); label_frames (B) host or NULL:
// frames of each utterance that carry labels (<= its valid frames, e.g. labels_align's trimmed
// count; NULL: all valid frames); frames beyond carry no masked-prediction loss. mask (B, T) host
// bytes (frames beyond label_frames / padding must not be masked); topics (B) host or NULL (needed
// when the topic head is on; it pools all valid frames). Parameter gradients are ACCUMULATED into
// grads (flat, backend); grads NULL: loss and statistics only (validation; no backward). Fails,
// naming the problem, on bad shapes, labels or masks; the model's heads must exist.
int pretrain_step(hb_model *m, hb_pretrain_ws *w, const float *wave, const long *lengths, int B, long L,
                  const int *const *labels, const int *label_frames, const uint8_t *mask, const int *topics,
                  const hb_pretrain_opts *o, float *grads, hb_pretrain_stats *st);

#endif
