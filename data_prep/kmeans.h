// k-means on dense (N, D) float32 arrays: k-means++ seeding, mini-batch k-means with the semantics
// of scikit-learn's MiniBatchKMeans (as used by fairseq's learn_kmeans.py), optional full-batch
// Lloyd refinement, and nearest-centroid assignment. ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2
// (clamped at 0): for D <= 128 from a fused register-blocked kernel (kmeans_dist.c), above from one
// sgemm per block of rows, with Elkan-style bounds carried across mini-batch steps. OpenMP over
// row blocks.
#ifndef HB_KMEANS_H
#define HB_KMEANS_H

#include <stdint.h>

#include "common/rng.h"

typedef struct {
  int k;
  int max_iter;            // passes over the data: steps = max_iter * N / batch_size (100)
  int batch_size;          // 10000 (clipped to N)
  int n_init;              // k-means++ restarts, best on a validation sample is kept (20)
  int max_no_improvement;  // EWA-inertia early stopping; <= 0 disables (100)
  int init_size;           // rows sampled for each k-means++ run; 0 = 3 * batch_size (>= 3k)
  double tol;              // center-change stopping, scaled by mean feature variance; 0 = off
  int lloyd_iters;         // full-batch Lloyd iterations after mini-batch (0)
  uint64_t seed;
  int verbose;             // progress on stderr
  int no_bounds;           // 1: full nearest-center search for every batch row (for tests); 0:
                           // for D > 128 rows skip it when carried triangle-inequality bounds
                           // prove the label unchanged (same labels, ~k floats per row of memory)
} hb_kmeans_params;

typedef struct {
  int64_t steps;           // mini-batch steps run
  int lloyd_iters;         // Lloyd iterations run
  double init_inertia;     // best k-means++ inertia on the validation sample
  double inertia;          // full-data inertia of the returned centers
  int64_t bound_skips;     // batch rows whose nearest-center search the bounds made unnecessary
} hb_kmeans_stats;

// fairseq's learn_kmeans.py settings (reassignment_ratio = 0, tol = 0, init_size = None).
void kmeans_default_params(hb_kmeans_params *p);

// Greedy k-means++ (sklearn: 2 + floor(ln k) candidates per center, keep the one that lowers the
// potential most). x (n, d), xsq (n) squared row norms; centers (k, d) out.
int kmeans_plusplus(const float *x, int64_t n, int d, const float *xsq, int k, int n_local_trials,
                    hb_rng *rng, float *centers);

// Mini-batch k-means from k-means++ seeds; centers (p->k, d) out. Requires n >= k.
int kmeans_fit(const float *x, int64_t n, int d, const hb_kmeans_params *p, float *centers,
               hb_kmeans_stats *stats);

// Full-batch Lloyd iterations on centers (k, d) in place; stops early when no label changes.
// Empty clusters keep their center. *inertia (may be NULL) = inertia of the final centers.
int kmeans_lloyd(const float *x, int64_t n, int d, int k, float *centers, int iters,
                 int *iters_run, double *inertia);

// Nearest centroid of every row: labels (n) (may be NULL), *inertia (may be NULL) = sum of
// squared distances to the nearest centroid.
int kmeans_assign(const float *x, int64_t n, int d, const float *centers, int k, int32_t *labels,
                  double *inertia);

#endif
