// SUPERB-style probes on frozen features (docs/probes.md): a linear softmax classifier, or a
// linear CTC head, on one layer's features or on a learnable softmax-weighted sum of L layers
// (SUPERB's featurizer: x = sum_l softmax(a)_l h_l). Trained with AdamW (train/optim.h) on the
// CPU, minibatches in a seeded Philox order, early stopping on the valid split (the parameters of
// the best valid epoch are kept); the caller reports the test split. Deterministic for a given
// seed and thread count.
#ifndef HB_EVAL_PROBE_H
#define HB_EVAL_PROBE_H

#include <stdint.h>

enum { HB_TRAIN = 0, HB_VALID = 1, HB_TEST = 2 };

typedef struct {
  double lr;            // AdamW learning rate
  double weight_decay;  // on the linear weights only
  int batch;            // samples (classification) or utterances (CTC) per update
  int max_epochs;
  int patience;         // stop after this many epochs without a better valid score
  uint64_t seed;
} hb_probe_opts;

typedef struct {
  double score[3];      // classification: accuracy per split; CTC: PER (edits / reference phones)
  int best_epoch;       // 1-based epoch whose parameters were kept
  int epochs;           // epochs run
  float *layer_w;       // (L) softmax(a) at the best epoch (L > 1), caller frees; NULL otherwise
} hb_probe_result;

// Classification samples: x[s][l] (n[s], D) features of layer l (standardised by the caller),
// y[s] (n[s]) classes in [0, C) or -1 (a class unseen in train: always counted wrong).
typedef struct {
  int L, D, C;
  int64_t n[3];
  const float *const *x[3];
  const int32_t *y[3];
} hb_probe_data;

int probe_train_linear(const hb_probe_data *d, const hb_probe_opts *o, hb_probe_result *r);

// CTC samples: utterance u of split s has frames [off[s][u], off[s][u+1]) of x[s][l] (frames, D)
// and targets tgt[s][toff[s][u] .. toff[s][u+1]) in [1, V) (0 is the blank).
typedef struct {
  int L, D, V;
  int64_t nutt[3];
  const int64_t *off[3];
  const float *const *x[3];
  const int64_t *toff[3];
  const int32_t *tgt[3];
} hb_ctc_probe_data;

int probe_train_ctc(const hb_ctc_probe_data *d, const hb_probe_opts *o, hb_probe_result *r);

// Levenshtein distance between a (na) and b (nb).
int64_t probe_edit_distance(const int32_t *a, int na, const int32_t *b, int nb);

#endif
