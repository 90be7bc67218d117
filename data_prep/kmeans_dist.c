// Fused k-means distance kernels: R rows x 16 (or 8) centers per register block.
#include "data_prep/kmeans_dist.h"

#include <float.h>
#include <string.h>

#include "common/error.h"

#if defined(__FMA__) && defined(__AVX__)
#include <immintrin.h>
#endif

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

#define KM_INLINE static inline __attribute__((always_inline))

KM_INLINE v8f ld8(const float *p) { return *(const v8f *)p; }  // p 32-byte aligned

// a * b + c; fused where the target has FMA (-std=c11 turns off contraction of a * b + c).
KM_INLINE v8f fma8(v8f a, v8f b, v8f c) {
#if defined(__FMA__) && defined(__AVX__)
  return (v8f)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
  return a * b + c;
#endif
}

KM_INLINE v8f sel8(v8i m, v8f a, v8f b) { return (v8f)(((v8i)a & m) | ((v8i)b & ~m)); }

int km_pack_init(km_packed *p, const float *c, int k, int d) {
  memset(p, 0, sizeof *p);
  if (k <= 0 || d <= 0 || k > (1 << 30)) return hb_fail("kmeans: bad center shape k=%d d=%d", k, d);
  int kp = (k + 7) & ~7;
  size_t n;
  if (hb_mul_size((size_t)d, (size_t)kp * sizeof(float), &n)) return hb_fail_prefix("kmeans: packed centers");
  p->ct = hb_aligned_alloc(n);
  p->csq = hb_aligned_alloc((size_t)kp * sizeof(float));
  if (!p->ct || !p->csq) { km_pack_free(p); return hb_fail_prefix("kmeans: packed centers"); }
  p->k = k; p->kp = kp; p->d = d; p->c = c;
  for (int j = 0; j < d; j++) {
    float *row = p->ct + (size_t)j * kp;
    for (int i = 0; i < k; i++) row[i] = c[(size_t)i * d + j];
    for (int i = k; i < kp; i++) row[i] = 0;
  }
  for (int i = 0; i < kp; i++) {
    float s = 0;
    if (i < k)
      for (int j = 0; j < d; j++) s += c[(size_t)i * d + j] * c[(size_t)i * d + j];
    p->csq[i] = i < k ? s : FLT_MAX;
  }
  return 0;
}

void km_pack_free(km_packed *p) {
  hb_aligned_free(p->ct); hb_aligned_free(p->csq);
  memset(p, 0, sizeof *p);
}

// Argmin over centers of ||c||^2 - 2 x.c for R rows (R a compile-time constant after
// inlining): per lane the running minimum and its index, merged across lanes at the end.
KM_INLINE void argmin_r(const float *x, int d, const km_packed *p, const int R, float *bestv,
                        int32_t *besti) {
  const int kp = p->kp;
  const v8i iota = {0, 1, 2, 3, 4, 5, 6, 7};
  v8f bv[4];
  v8i bi[4];
  for (int r = 0; r < R; r++) { bv[r] = (v8f){0} + FLT_MAX; bi[r] = (v8i){0}; }
  int c0 = 0;
  for (; c0 + 16 <= kp; c0 += 16) {
    v8f a0[4], a1[4];
    for (int r = 0; r < R; r++) a0[r] = a1[r] = (v8f){0};
    const float *ct = p->ct + c0;
    for (int j = 0; j < d; j++, ct += kp) {
      const v8f c_0 = ld8(ct), c_1 = ld8(ct + 8);
      for (int r = 0; r < R; r++) {
        const v8f xr = (v8f){0} + x[(size_t)r * d + j];
        a0[r] = fma8(c_0, xr, a0[r]);
        a1[r] = fma8(c_1, xr, a1[r]);
      }
    }
    const v8f s0 = ld8(p->csq + c0), s1 = ld8(p->csq + c0 + 8);
    const v8i i0 = iota + c0, i1 = iota + (c0 + 8);
    for (int r = 0; r < R; r++) {
      v8f e = s0 - 2.0f * a0[r];
      v8i m = e < bv[r];
      bv[r] = sel8(m, e, bv[r]);
      bi[r] = (i0 & m) | (bi[r] & ~m);
      e = s1 - 2.0f * a1[r];
      m = e < bv[r];
      bv[r] = sel8(m, e, bv[r]);
      bi[r] = (i1 & m) | (bi[r] & ~m);
    }
  }
  if (c0 < kp) {  // last 8 centers
    v8f a0[4];
    for (int r = 0; r < R; r++) a0[r] = (v8f){0};
    const float *ct = p->ct + c0;
    for (int j = 0; j < d; j++, ct += kp) {
      const v8f c_0 = ld8(ct);
      for (int r = 0; r < R; r++) a0[r] = fma8(c_0, (v8f){0} + x[(size_t)r * d + j], a0[r]);
    }
    const v8f s0 = ld8(p->csq + c0);
    const v8i i0 = iota + c0;
    for (int r = 0; r < R; r++) {
      const v8f e = s0 - 2.0f * a0[r];
      const v8i m = e < bv[r];
      bv[r] = sel8(m, e, bv[r]);
      bi[r] = (i0 & m) | (bi[r] & ~m);
    }
  }
  for (int r = 0; r < R; r++) {
    float b = bv[r][0];
    int32_t ib = bi[r][0];
    for (int l = 1; l < 8; l++)
      if (bv[r][l] < b || (bv[r][l] == b && bi[r][l] < ib)) { b = bv[r][l]; ib = bi[r][l]; }
    bestv[r] = b;
    besti[r] = ib;
  }
}

double km_argmin_rows(const float *x, int64_t n, int d, const km_packed *p,
                      int32_t *labels, float *mind) {
  double total = 0;
  float bv[4];
  int32_t bi[4];
  for (int64_t i = 0; i < n;) {
    int r = n - i >= 4 ? 4 : 1;
    if (r == 4) argmin_r(x + (size_t)i * d, d, p, 4, bv, bi);
    else argmin_r(x + (size_t)i * d, d, p, 1, bv, bi);
    for (int q = 0; q < r; q++) {
      const float *xr = x + (size_t)(i + q) * d, *cr = p->c + (size_t)bi[q] * d;
      float v = 0;
      for (int j = 0; j < d; j++) { float t = xr[j] - cr[j]; v += t * t; }
      if (labels) labels[i + q] = bi[q];
      if (mind) mind[i + q] = v;
      total += v;
    }
    i += r;
  }
  return total;
}

// Distances of R rows to 8 candidates at c0; pot lanes += min(dist, closest).
KM_INLINE void cand_r(const float *x, int d, const float *xsq, const km_packed *p, int c0,
                      const float *closest, const int R, float *dist, v8f *pot) {
  const int kp = p->kp;
  v8f a[8];
  for (int r = 0; r < R; r++) a[r] = (v8f){0};
  const float *ct = p->ct + c0;
  for (int j = 0; j < d; j++, ct += kp) {
    const v8f c_0 = ld8(ct);
    for (int r = 0; r < R; r++) a[r] = fma8(c_0, (v8f){0} + x[(size_t)r * d + j], a[r]);
  }
  const v8f s = ld8(p->csq + c0), zero = {0};
  for (int r = 0; r < R; r++) {
    v8f e = (s + xsq[r]) - 2.0f * a[r];
    e = sel8(e > zero, e, zero);
    memcpy(dist + (size_t)r * kp + c0, &e, sizeof e);
    const v8f cl = zero + closest[r];
    *pot += sel8(e < cl, e, cl);
  }
}

void km_cand_rows(const float *x, int64_t n, int d, const float *xsq, const km_packed *p,
                  const float *closest, float *dist, double *pot) {
  const int kp = p->kp;
  for (int c0 = 0; c0 < kp; c0 += 8) {
    // Float partial sums per 256 rows, flushed to double.
    for (int64_t b0 = 0; b0 < n; b0 += 256) {
      int64_t b1 = b0 + 256 < n ? b0 + 256 : n;
      v8f acc = {0};
      int64_t i = b0;
      for (; i + 8 <= b1; i += 8)
        cand_r(x + (size_t)i * d, d, xsq + i, p, c0, closest + i, 8, dist + (size_t)i * kp, &acc);
      for (; i < b1; i++)
        cand_r(x + (size_t)i * d, d, xsq + i, p, c0, closest + i, 1, dist + (size_t)i * kp, &acc);
      for (int l = 0; l < 8; l++) pot[c0 + l] += acc[l];
    }
  }
}
