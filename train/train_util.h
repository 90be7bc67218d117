// Small helpers shared by the pretraining trainer (train/trainer*.c) and CTC fine-tuning
// (train/finetune*.c): seeds, buffers that grow with the batch shape, the training arena's
// growth policy, shard discovery, a monotonic clock.
#ifndef HB_TRAIN_UTIL_H
#define HB_TRAIN_UTIL_H

#include <glob.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/ops.h"
#include "models/hubert.h"
#include "models/hubert_train.h"
#include "train/checkpoint.h"
#include "train/config.h"

// Philox sub-stream (seed, tag, a, b): every random draw of a loop is a pure function of it.
uint64_t train_seed3(uint64_t seed, uint64_t tag, uint64_t a, uint64_t b);

// Backend buffer of at least n floats (reallocated, contents lost, only when it grows).
// `what` names the buffer in the error.
int train_grow_dev(hb_ctx *ctx, float **p, size_t *cap, size_t n, const char *what);
// Host buffer of at least `bytes` (realloc: contents kept).
int train_grow_host(void **p, size_t *cap, size_t bytes);

// Makes the arena cover (B, L). A present arena that is too small is rebuilt for
// max(B, old B) x max(L, old L) (alternating shapes, many short or few long utterances, stop
// reallocating) when that stays within 1 GiB or twice the batch's samples, otherwise for
// exactly (B, L) (memory stays bounded by the largest batch). *have: whether a holds an arena.
int train_arena_fit(hb_train_arena *a, int *have, const hb_model *m, int B, long L);

// Files DIR/PREFIX*.h5, sorted (glob sorts). required = 0: no match leaves g empty, no error.
int train_find_shards(const char *dir, const char *prefix, glob_t *g, int required);

double train_now_s(void);

// A fresh run's state: update 0, epoch 1, no validation yet (best INFINITY, last NAN).
void train_state_init(hb_train_state *st, uint64_t seed);

// Prints "# resolved config (CONFIG.yaml overrides...)", the config as YAML and "# end of config"
// to stdout (the header every training command prints at start).
int train_config_print_resolved(const hb_train_config *c, int npos, char *const *pos);

#endif
