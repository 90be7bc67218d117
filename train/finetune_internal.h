// State shared by train/finetune.c (set-up, one batch, one update, scoring) and
// train/finetune_loop.c (the loop, logging, checkpoints, final scoring). Not a public API.
#ifndef HB_TRAIN_FINETUNE_INTERNAL_H
#define HB_TRAIN_FINETUNE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "models/hubert.h"
#include "models/hubert_heads.h"
#include "models/hubert_train.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/finetune.h"
#include "train/loader.h"
#include "train/optim.h"

enum { FT_TRAIN, FT_VALID, FT_TEST, FT_SPLITS };

// Targets of one split, indexed by the loader's kept-utterance id u: ids[off[u] .. off[u + 1]);
// an empty range = no transcript (the utterance is skipped).
typedef struct {
  int64_t n;
  int64_t *off;   // (n + 1)
  int *ids;
  int64_t missing;  // utterances without a transcript
} ft_targets;

typedef struct {
  double loss, ntok, nutt, skipped_rows;  // CTC loss summed; target tokens; utterances; rows left out
  hb_err_counts err;
} ft_sums;

typedef struct {
  hb_train_config cfg;
  hb_ctx ctx;
  hb_model model;
  hb_train_arena arena;
  hb_heads_ws ws;
  hb_adamw opt;
  hb_lr_schedule sched;
  hb_loader *ld[FT_SPLITS];     // NULL where the split has no shards
  ft_targets tg[FT_SPLITS];
  hb_ctc_vocab vocab;
  hb_optim_segment head_seg[2]; // the CTC head's segments (freeze_finetune_updates)
  int n_head_seg;
  float *grads;                 // (total) backend
  hb_params gview;
  // backend buffers grown with the batch
  float *wave, *dx, *hd;        // (B, L); (B, T, H) gradient wrt the head input; dropped-out hidden[NL]
  size_t wave_cap, dx_cap, hd_cap;
  // host buffers grown with the batch
  float *hwave, *logits;        // (B, L); (B, T, V)
  long *lens;
  int *frames, *tgt, *tgt_len, *rows, *hyp, *hyp_len;
  uint8_t *mask, *cmask;
  size_t hwave_cap, logits_cap, lens_cap, frames_cap, tgt_cap, tgt_len_cap, rows_cap, hyp_cap, hyp_len_cap, mask_cap,
      cmask_cap;
  int sample_rate;
  int have_ctx, have_model, have_arena, have_opt, have_ws, resumed;
  char resume_dir[HB_CFG_PATH_LEN];
  hb_train_state st;            // st.best_valid_loss holds the best valid metric
} ft_state;

int ft_setup(ft_state *t, const hb_train_config *cfg, const hb_finetune_args *args);
void ft_free(ft_state *t);
// One update (update_freq batches + AdamW, the CTC head only before freeze_finetune_updates).
int ft_update(ft_state *t, ft_sums *acc, double *lr, double *gnorm);
// Eval-mode loss, greedy decoding and error counts of a whole split with model m.
int ft_score(ft_state *t, hb_model *m, int split, ft_sums *s);
// The checkpoint hook: the vocabulary into the model folder DIR.
int ft_save_vocab(const char *dir, void *ud);

#endif
