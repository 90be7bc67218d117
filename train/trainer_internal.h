// Trainer state shared by trainer.c (set-up, update, validation) and trainer_loop.c (the loop,
// logging, checkpoints). Not a public API.
#ifndef HB_TRAIN_TRAINER_INTERNAL_H
#define HB_TRAIN_TRAINER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "models/hubert.h"
#include "models/hubert_heads.h"
#include "models/hubert_train.h"
#include "train/checkpoint.h"
#include "train/comm.h"
#include "train/config.h"
#include "train/loader.h"
#include "train/optim.h"
#include "train/trainer.h"

typedef struct {
  hb_train_config cfg;
  hb_ctx ctx;
  hb_model model;
  hb_train_arena arena;
  hb_heads_ws ws;
  hb_adamw opt;
  hb_lr_schedule sched;
  hb_pred_opts pred_opts;
  hb_loader *train, *valid;     // valid: NULL when there is no valid split
  hb_params gview;              // views into grads
  float *grads;                 // (total) backend, the model's flat layout
  // backend buffers grown with the batch shape
  float *wave;                  // (B, L)
  float *dx_top, *dx_topic;     // (B, T, H) gradients wrt hidden[NL] / hidden[topic layer]
  float *d_feat;                // (B, T, Cc) feature-penalty gradient
  size_t wave_cap, dx_top_cap, dx_topic_cap, d_feat_cap;
  // host buffers grown with the batch shape
  long *lens;                   // (B) samples
  int *frames, *valid_len, *topics;  // (B)
  uint8_t *mask;                // (B, T)
  int *lab[HB_MAX_LABEL_SETS];  // (B, T) labels at the feature rate
  size_t lens_cap, frames_cap, valid_cap, topics_cap, mask_cap, lab_cap[HB_MAX_LABEL_SETS];
  double label_rate[HB_MAX_LABEL_SETS];
  int sample_rate;
  int topic_on;
  int have_ctx, have_model, have_arena, have_opt, have_ws;
  int resumed;
  char resume_dir[HB_CFG_PATH_LEN];
  hb_train_state st;
  // data parallelism (docs/distributed.md): rank 0 logs and writes checkpoints
  hb_comm comm;
  int have_comm;
  int zero;                     // 1: ZeRO-1, opt holds the moments of [zoff[rank], zoff[rank + 1]) only
  size_t *zoff;                 // (world + 1) flat ranges of the ranks (zero)
  double t_comm;                // seconds spent in gradient/statistics collectives (this process)
  int overlap;                  // distributed_training.overlap_comm on a world > 1 without ZeRO
  int ar_on;                    // 1 during the backward whose gradient-ready ranges feed ar
  hb_comm_async ar;             // the overlapped gradient all-reduce of the current update
} trainer;

typedef struct {
  int ran;
  double loss;                  // (pred + penalty + topic) per masked frame
  double loss_m, count_m, correct_m, topic_ce, topic_n, topic_correct;
  long utts;
} hb_valid_result;

int trainer_setup(trainer *t, const hb_train_config *cfg, const hb_train_args *args);
void trainer_free(trainer *t);
// One update (update_freq micro-batches + AdamW); adds this update's sums to acc.
int trainer_update(trainer *t, hb_log_sums *acc, double *lr);
// The whole valid split in eval mode (v->ran = 0 without a valid split).
int trainer_validate(trainer *t, hb_valid_result *v);
// Collective: the full optimizer state (ZeRO gathers the moments of every rank) into *full
// (initialised here; free with optim_free). Without ZeRO *full is a shallow copy of t->opt: do not free.
int trainer_full_optim(trainer *t, hb_adamw *full, int *owned);

#endif
