// Trainer checkpoints: SAVE_DIR/checkpoint_<N>/ holds
//   config.json + model.safetensors   a model folder (model_save; `hubert extract --model` reads it)
//   trainer_state.safetensors         AdamW moments (optim_save)
//   trainer_state.json                update, loader position, seed, NaN counters, best valid loss,
//                                     schedule, and the open logging interval's sums
//   config.yaml                       the resolved trainer config
// Crash safety (invariant: checkpoint_last always names a complete checkpoint):
//   1. everything is written into SAVE_DIR/.tmp_checkpoint_<N>/, each file fsynced, the folder fsynced;
//   2. the folder is renamed to checkpoint_<N> and SAVE_DIR fsynced;
//   3. checkpoint_last (and checkpoint_best when the valid loss improved) are replaced atomically:
//      a symlink to a temporary name, then rename() over the old link;
//   4. old checkpoint_<n> beyond the last keep_interval_updates are removed (never last or best).
// Test hook: HUBERT_TEST_CRASH_IN_CHECKPOINT=1 in the environment aborts the process between
// steps 1 and 2 (the tests use it to check that a crash mid-write leaves the previous checkpoint).
#ifndef HB_TRAIN_CHECKPOINT_H
#define HB_TRAIN_CHECKPOINT_H

#include <stdint.h>

#include "models/hubert.h"
#include "train/config.h"
#include "train/loader.h"
#include "train/optim.h"

// Sums over the updates of the open logging interval (a row averages them); saved so that the
// first row after a resume averages the same updates as an uninterrupted run.
typedef struct {
  double loss, loss_m, loss_u, topic_ce, gnorm, audio_s;
  double count_m, count_u, correct_m, correct_u, topic_n, topic_correct;
  double updates, skipped;
} hb_log_sums;

typedef struct {
  int64_t update;            // completed updates (skipped non-finite ones included)
  hb_loader_pos pos;         // the train loader's next batch
  uint64_t seed;             // common.seed of the run
  int64_t nan_run;           // non-finite updates in a row
  int64_t nan_total;
  double best_valid_loss;    // INFINITY if none yet
  double last_valid_loss;    // NAN if none yet
  double lr;                 // rate of the last update
  int64_t world_size;        // ranks of the run (pos.batch counts batches of one rank); 0 read as 1
  hb_log_sums sums;
} hb_train_state;

// Writes checkpoint_<st->update> as above; is_best updates checkpoint_best; keep: checkpoints
// kept (-1 all).
int checkpoint_save(const char *save_dir, const hb_model *m, const hb_adamw *o, const hb_train_config *cfg,
                    const hb_train_state *st, int is_best, int keep);
// The same; extra(dir, ud) (may be NULL) adds or rewrites files in the temporary folder before it
// is synced and renamed (hubert finetune: the CTC vocabulary).
int checkpoint_save_with(const char *save_dir, const hb_model *m, const hb_adamw *o, const hb_train_config *cfg,
                         const hb_train_state *st, int is_best, int keep, int (*extra)(const char *dir, void *ud),
                         void *ud);

// Resolves --resume: "none" -> *found = 0; "auto" -> SAVE_DIR/checkpoint_last if it exists;
// anything else is a checkpoint folder that must exist. dir receives the folder (size HB_CFG_PATH_LEN).
int checkpoint_resolve(const char *save_dir, const char *resume, char *dir, int *found);

// Reads trainer_state.json of a checkpoint folder (the moments: optim_load(o, DIR/trainer_state.safetensors)).
int checkpoint_read_state(const char *dir, hb_train_state *st);

#endif
