// Branch-free float exp and GELU. glibc's expf/erff are scalar calls and GCC will not
// if-convert the selects below without -ffast-math-style flags (which would let it assume no
// NaN), so the hot loops use GCC vector extensions (8 floats; lowered to AVX2 or SSE) with
// explicit masks, and the scalar versions handle tails. NaN inputs propagate to NaN outputs.
//
// Accuracy: exp: Cephes polynomial after range reduction by ln 2, relative error < 2e-7 on
// [-87, 88] (inputs are clamped there). erfc: Numerical Recipes' Chebyshev fit, fractional
// error < 1.2e-7 everywhere. Both far inside the 1e-5 op tolerance.
#ifndef HB_CPU_MATH_H
#define HB_CPU_MATH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef float hb_v8f __attribute__((vector_size(32)));
typedef int32_t hb_v8i __attribute__((vector_size(32)));
typedef uint32_t hb_v8u __attribute__((vector_size(32)));

#define HB_EXP_POLY(p, r)          \
  p = p * r + 1.3981999507e-3f;    \
  p = p * r + 8.3334519073e-3f;    \
  p = p * r + 4.1665795894e-2f;    \
  p = p * r + 1.6666665459e-1f;    \
  p = p * r + 5.0000001201e-1f;    \
  p = p * r * r + r + 1.0f

// NR's erfc(z) = t exp(-z^2 + poly(t)), t = 1 / (1 + z/2), z >= 0.
#define HB_ERFC_POLY(t)                                                                          \
  (-1.26551223f +                                                                                \
   t * (1.00002368f +                                                                            \
        t * (0.37409196f +                                                                       \
             t * (0.09678418f +                                                                  \
                  t * (-0.18628806f +                                                            \
                       t * (0.27886807f + t * (-1.13520398f + t * (1.48851587f + t * (-0.82215223f + t * 0.17087277f)))))))))

static inline float hb_expf(float x) {
  if (x != x) return x;  // NaN: the int conversion below would be undefined
  if (x < -87.0f) x = -87.0f;
  if (x > 88.0f) x = 88.0f;
  const float n = nearbyintf(x * 1.44269504088896341f);
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  HB_EXP_POLY(p, r);
  const uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

static inline hb_v8f hb_select8(hb_v8i mask, hb_v8f a, hb_v8f b) {
  return (hb_v8f)(((hb_v8i)a & mask) | ((hb_v8i)b & ~mask));
}

static inline hb_v8f hb_exp8(hb_v8f x) {
  const hb_v8f lo = x - x - 87.0f, hi = x - x + 88.0f;  // broadcasts (NaN lanes stay NaN)
  x = hb_select8(x < lo, lo, x);
  x = hb_select8(x > hi, hi, x);
  const hb_v8f t = x * 1.44269504088896341f;
  const hb_v8f half = hb_select8(t >= 0.0f, t - t + 0.5f, t - t - 0.5f);
  const hb_v8i ni = __builtin_convertvector(t + half, hb_v8i);  // round to nearest
  const hb_v8f n = __builtin_convertvector(ni, hb_v8f);
  const hb_v8f r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  hb_v8f p = r - r + 1.9875691500e-4f;
  HB_EXP_POLY(p, r);
  const hb_v8u bits = (hb_v8u)(ni + 127) << 23;  // NaN lanes: garbage scale, but p is NaN
  return p * (hb_v8f)bits;
}

// erfc(z) for z >= 0.
static inline float hb_erfc_pos(float z) {
  const float t = 1.0f / (1.0f + 0.5f * z);
  return t * hb_expf(-z * z + HB_ERFC_POLY(t));
}

// GELU, erf form: 0.5 x (1 + erf(x / sqrt 2)) = x - 0.5 x erfc(x / sqrt 2) for x >= 0,
// 0.5 x erfc(-x / sqrt 2) for x < 0.
static inline float hb_gelu(float x) {
  const float e = hb_erfc_pos(fabsf(x) * 0.70710678118654752f);
  return x >= 0.0f ? x - 0.5f * x * e : 0.5f * x * e;
}

static inline hb_v8f hb_gelu8(hb_v8f x) {
  const hb_v8f z = (hb_v8f)((hb_v8i)x & 0x7fffffff) * 0.70710678118654752f;
  const hb_v8f t = 1.0f / (1.0f + 0.5f * z);
  const hb_v8f e = t * hb_exp8(-z * z + HB_ERFC_POLY(t));
  const hb_v8f h = 0.5f * x * e;
  return hb_select8(x >= 0.0f, x - h, h);
}

// y[i] = gelu(x[i]) for n elements (y may alias x).
static inline void hb_gelu_n(float *y, const float *x, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    hb_v8f v;
    memcpy(&v, x + i, sizeof v);
    v = hb_gelu8(v);
    memcpy(y + i, &v, sizeof v);
  }
  for (; i < n; i++) y[i] = hb_gelu(x[i]);
}

// x[i] = exp(x[i] - m) for n elements; returns the sum.
static inline float hb_exp_shift_sum(float *x, size_t n, float m) {
  hb_v8f acc = {0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    hb_v8f v;
    memcpy(&v, x + i, sizeof v);
    v = hb_exp8(v - m);
    acc += v;
    memcpy(x + i, &v, sizeof v);
  }
  float s = 0;
  for (int k = 0; k < 8; k++) s += acc[k];
  for (; i < n; i++) s += x[i] = hb_expf(x[i] - m);
  return s;
}

#endif
