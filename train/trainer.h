// The pretraining loop (`hubert train`): fairseq HuBERT semantics, see docs/training.md
// ("Training loop"). One update:
//   for each of update_freq micro-batches (loader batch):
//     labels_align per utterance -> mask_compute (Philox stream (seed, update, micro))
//     -> model_forward_train (dropout seed (seed, update, micro))
//     -> heads_pred_loss on hidden[NL] -> topic head on hidden[topic layer] (weight > 0)
//     -> feature penalty -> model_backward(feature_grad_mult)   (gradients accumulate)
//   sample_size = masked frames of all micro-batches; AdamW step with grad_scale 1 / sample_size,
//   clip_norm and the schedule's rate for this update.
// Loss per micro-batch i (m_i masked frames, B_i utterances):
//   L_i = sum_s CE_m[s] + w_u sum_s CE_u[s] + loss_weights[0] * m_i * mean(f^2)
//         + lambda * m_i * (1 / B_i) sum_b CE_topic(b)
// so that sum_i L_i / sum_i m_i = per-masked-frame CE + feature penalty + lambda x (mean topic CE
// per utterance) (exactly, with update_freq 1; an m_i-weighted mean over micro-batches otherwise).
// Non-finite loss or gradient: the update is skipped (counted as an update: batches and the
// schedule move on), and training stops with an error after common.max_nan_updates in a row.
#ifndef HB_TRAIN_TRAINER_H
#define HB_TRAIN_TRAINER_H

#include "train/config.h"

typedef struct {
  const char *resume;       // "auto" (default), "none" or a checkpoint folder
  const char *init_model;   // NULL or a model folder to start from (fresh runs only)
  int threads;              // CPU threads (0: OpenMP's default)
  const char *cmdline;      // for the log's first row (may be NULL)
} hb_train_args;

// Runs training to optimization.max_update. Progress lines go to stdout (the one place besides
// main that prints: the live progress of a long command); errors return -1 with hb_fail.
int trainer_run(const hb_train_config *cfg, const hb_train_args *args);

#endif
