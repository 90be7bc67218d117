// Fused k-means distance kernels: R rows x 16 (or 8) centers per register block.
#include "data_prep/kmeans_dist.h"

#include <float.h>
#include <string.h>

#include "common/error.h"

#if (defined(__FMA__) && defined(__AVX__)) || KM_HAVE_F16C
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

// ---- k-means++ candidates for large d: dot products along d --------------------------------
// 2 rows x 4 candidates per register block: 8 accumulators over 8-element chunks of d (6 loads
// per 8 FMAs, all from contiguous rows), reduced across lanes once per (row, candidate). The two
// rows stay in L1 across the candidate groups, so each row is read from memory once per call;
// rows 4 ahead are prefetched (the hardware prefetcher alone leaves the loop waiting on memory).
// The rows are float32, or IEEE half (F16C builds): half the bytes of this memory-bound pass.
typedef float v8fu __attribute__((vector_size(32), aligned(4)));  // unaligned access

KM_INLINE v8f ldu8(const float *p) { return *(const v8fu *)p; }
KM_INLINE float ld1(const float *p) { return *p; }
#if KM_HAVE_F16C
KM_INLINE v8f ldh8(const uint16_t *p) { return (v8f)_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
KM_INLINE float ldh1(const uint16_t *p) { return _cvtsh_ss(*p); }
#endif

KM_INLINE float hsum8(v8f v) {
  const float a = (v[0] + v[4]) + (v[1] + v[5]), b = (v[2] + v[6]) + (v[3] + v[7]);
  return a + b;
}

#define KM_PF_ROWS 4  // prefetch distance in rows

// dot[r][t] = x_r . c_t for rows x0, x1 (x1 may equal x0 for a single row) and 4 candidates;
// pf0/pf1: rows to prefetch (may be x0/x1 themselves), one line per 64 bytes of row. Written
// with one named accumulator per (row, candidate): GCC keeps them all in registers that way.
#define KM_CAND_DOT(NAME, XT, LOAD8, LOAD1)                                                              \
  static void NAME##_r4(const XT *x0, const XT *x1, int d, const float *const c[4], const XT *pf0,      \
                        const XT *pf1, float dot[2][4]) {                                               \
    const float *c0 = c[0], *c1 = c[1], *c2 = c[2], *c3 = c[3];                                         \
    v8f a00 = {0}, a01 = {0}, a02 = {0}, a03 = {0}, a10 = {0}, a11 = {0}, a12 = {0}, a13 = {0};         \
    const int line = 64 / (int)sizeof(XT);                                                              \
    int j = 0;                                                                                          \
    for (; j + 8 <= d; j += 8) {                                                                        \
      if (j % line == 0) {                                                                              \
        __builtin_prefetch(pf0 + j, 0, 3);                                                              \
        __builtin_prefetch(pf1 + j, 0, 3);                                                              \
      }                                                                                                 \
      const v8f xa = LOAD8(x0 + j), xb = LOAD8(x1 + j);                                                 \
      v8f w = ldu8(c0 + j);                                                                             \
      a00 = fma8(xa, w, a00); a10 = fma8(xb, w, a10);                                                   \
      w = ldu8(c1 + j);                                                                                 \
      a01 = fma8(xa, w, a01); a11 = fma8(xb, w, a11);                                                   \
      w = ldu8(c2 + j);                                                                                 \
      a02 = fma8(xa, w, a02); a12 = fma8(xb, w, a12);                                                   \
      w = ldu8(c3 + j);                                                                                 \
      a03 = fma8(xa, w, a03); a13 = fma8(xb, w, a13);                                                   \
    }                                                                                                   \
    float s[2][4] = {{hsum8(a00), hsum8(a01), hsum8(a02), hsum8(a03)},                                  \
                     {hsum8(a10), hsum8(a11), hsum8(a12), hsum8(a13)}};                                 \
    for (; j < d; j++)                                                                                  \
      for (int t = 0; t < 4; t++) {                                                                     \
        s[0][t] += LOAD1(x0 + j) * c[t][j];                                                             \
        s[1][t] += LOAD1(x1 + j) * c[t][j];                                                             \
      }                                                                                                 \
    memcpy(dot, s, sizeof s);                                                                           \
  }                                                                                                     \
  void NAME(const XT *x, int64_t n, int d, const float *xsq, const float *cand, const float *csq, int T, \
            int ld, const float *closest, float *dist, double *pot) {                                   \
    const int ng = (T + 3) / 4;                                                                         \
    for (int64_t b0 = 0; b0 < n; b0 += 256) { /* float partials per 256 rows, flushed in order */       \
      const int64_t b1 = b0 + 256 < n ? b0 + 256 : n;                                                   \
      float acc[64] = {0};                                                                              \
      for (int64_t i = b0; i < b1;) {                                                                   \
        const int R = b1 - i >= 2 ? 2 : 1;                                                              \
        const XT *x0 = x + (size_t)i * d, *x1 = R == 2 ? x0 + d : x0;                                   \
        for (int g = 0; g < ng; g++) {                                                                  \
          const int t0 = 4 * g, nt = T - t0 < 4 ? T - t0 : 4;                                           \
          const float *c[4];                                                                            \
          for (int t = 0; t < 4; t++) c[t] = cand + (size_t)(t < nt ? t0 + t : t0) * d;                 \
          const int pf = g == 0 && i + KM_PF_ROWS + 2 <= n;                                             \
          float dot[2][4];                                                                              \
          NAME##_r4(x0, x1, d, c, pf ? x0 + (size_t)KM_PF_ROWS * d : x0,                                \
                    pf ? x0 + (size_t)(KM_PF_ROWS + 1) * d : x1, dot);                                  \
          for (int r = 0; r < R; r++)                                                                   \
            for (int t = 0; t < nt; t++) {                                                              \
              float e = (csq[t0 + t] + xsq[i + r]) - 2.0f * dot[r][t];                                  \
              e = e > 0 ? e : 0;                                                                        \
              dist[(size_t)(i + r) * ld + t0 + t] = e;                                                  \
              acc[t0 + t] += e < closest[i + r] ? e : closest[i + r];                                   \
            }                                                                                           \
        }                                                                                               \
        i += R;                                                                                         \
      }                                                                                                 \
      for (int t = 0; t < T; t++) pot[t] += acc[t];                                                     \
    }                                                                                                   \
  }

KM_CAND_DOT(km_cand_rows_dot, float, ldu8, ld1)
#if KM_HAVE_F16C
KM_CAND_DOT(km_cand_rows_dot_h, uint16_t, ldh8, ldh1)

void km_to_half(const float *x, size_t n, uint16_t *out) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128((__m128i *)(out + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; i++) out[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}

void km_from_half(const uint16_t *h, size_t n, float *out) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
  for (; i < n; i++) out[i] = _cvtsh_ss(h[i]);
}
#endif
