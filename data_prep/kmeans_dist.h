// Fused squared-distance kernels for k-means (internal to data_prep/kmeans.c): register-blocked
// dot products of a few rows against 8 or 16 centers at a time (GCC vector extensions, AVX2/FMA
// with -march=native), with the argmin or the k-means++ potential folded in, so no (rows, k)
// distance matrix is written. ||x - c||^2 = ||x||^2 + ||c||^2 - 2 x.c, clamped at 0.
#ifndef HB_KMEANS_DIST_H
#define HB_KMEANS_DIST_H

#include <stddef.h>
#include <stdint.h>

// Centers packed for the kernels: ct (d, kp) transposed, kp = k rounded up to 8 (64-byte
// aligned); csq (kp) squared norms, padding lanes = FLT_MAX so they never win.
typedef struct {
  int k, kp, d;
  float *ct, *csq;
  const float *c;  // (k, d) the centers packed (not owned; must outlive the packing)
} km_packed;

int km_pack_init(km_packed *p, const float *c, int k, int d);
void km_pack_free(km_packed *p);

// Nearest center of rows x (n, d): labels (n) and mind (n) may be NULL; returns the sum of mind
// in double. Ties: lowest center index. mind = sum_j (x_j - c_j)^2 for the chosen center,
// recomputed directly (no cancellation). Serial.
double km_argmin_rows(const float *x, int64_t n, int d, const km_packed *p,
                      int32_t *labels, float *mind);

// k-means++ candidates: dist (n, kp) = distances of rows x (n, d) to the packed candidates
// (clamped >= 0), and pot (kp) += sum_i min(dist_i, closest_i). Serial.
void km_cand_rows(const float *x, int64_t n, int d, const float *xsq, const km_packed *p,
                  const float *closest, float *dist, double *pot);

// The same for large d without packing: candidates cand (T, d) row-major with squared norms csq
// (T), T <= 64; dist (n, ld) columns < T; pot (T) +=. Dot products run along d (2 rows x 4
// candidates per register block, rows prefetched ahead). Serial.
void km_cand_rows_dot(const float *x, int64_t n, int d, const float *xsq, const float *cand, const float *csq,
                      int T, int ld, const float *closest, float *dist, double *pot);

// F16C builds: the same on rows stored as IEEE half (half the memory traffic); km_to_half /
// km_from_half convert (round to nearest even).
#if defined(__F16C__) && defined(__AVX2__) && defined(__FMA__)
#define KM_HAVE_F16C 1
void km_cand_rows_dot_h(const uint16_t *x, int64_t n, int d, const float *xsq, const float *cand, const float *csq,
                        int T, int ld, const float *closest, float *dist, double *pot);
void km_to_half(const float *x, size_t n, uint16_t *out);
void km_from_half(const uint16_t *h, size_t n, float *out);
#else
#define KM_HAVE_F16C 0
#endif

#endif
