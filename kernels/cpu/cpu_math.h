// Branch-free float exp and GELU that the compiler can vectorise (glibc's expf/erff are scalar
// calls). Accuracy: hb_expf relative error < 2e-7 on [-87, 88] (Cephes polynomial after
// range reduction by ln 2); hb_erfc uses Numerical Recipes' Chebyshev fit of erfc, fractional
// error < 1.2e-7 everywhere. Both are far inside the 1e-5 op tolerance.
#ifndef HB_CPU_MATH_H
#define HB_CPU_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float hb_expf(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float n = floorf(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = ((int32_t)n + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// erfc(z) for z >= 0.
static inline float hb_erfc_pos(float z) {
  const float t = 1.0f / (1.0f + 0.5f * z);
  const float poly =
      -1.26551223f +
      t * (1.00002368f +
           t * (0.37409196f +
                t * (0.09678418f +
                     t * (-0.18628806f + t * (0.27886807f + t * (-1.13520398f + t * (1.48851587f + t * (-0.82215223f + t * 0.17087277f))))))));
  return t * hb_expf(-z * z + poly);
}

// GELU, erf form: 0.5 x (1 + erf(x / sqrt 2)) = x - 0.5 x erfc(x / sqrt 2) for x >= 0,
// 0.5 x erfc(-x / sqrt 2) for x < 0.
static inline float hb_gelu(float x) {
  const float z = fabsf(x) * 0.70710678118654752f;
  const float e = hb_erfc_pos(z);
  return x >= 0.0f ? x - 0.5f * x * e : 0.5f * x * e;
}

#endif
