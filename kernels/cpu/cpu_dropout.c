// Dropout with a counter-based mask: element i of a launch is kept iff the Philox4x32 draw
// (seed, counter i / 4, word i % 4) is >= p * 2^32, so the mask is a pure function of (seed, i):
// independent of thread count and launch order, and the backward regenerates it from the seed.
// With AVX2 the Philox rounds run on 8 counters at once (two vectors of 4 64-bit lanes, each
// lane one 32-bit word: _mm256_mul_epu32 gives the full 32x32 -> 64-bit product); the words are
// bit-identical to rng_philox(), which handles the tail and non-AVX2 builds.
#include <math.h>
#include <string.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif

#include "common/rng.h"
#include "kernels/dropout_mask.h"
#include "kernels/cpu/cpu_internal.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u
#define GROUP_BLOCKS 8  // Philox blocks (32 elements) per vector iteration
#define SPAN_CHUNK 8192  // elements per parallel chunk (a multiple of 4 * GROUP_BLOCKS)

// y[j] = keep(offset + j) ? x[j] * keep_scale : 0 for the elements j < n of Philox block blk.
static inline void apply_block(float *y, const float *x, const uint32_t r[4], uint64_t blk, uint64_t offset, size_t n,
                               uint64_t thr, float keep_scale) {
  for (uint64_t w = 0; w < 4; w++) {
    const uint64_t i = blk * 4 + w;
    if (i < offset || i - offset >= n) continue;
    const size_t j = (size_t)(i - offset);
    y[j] = (uint64_t)r[w] >= thr ? x[j] * keep_scale : 0.0f;
  }
}

#ifdef __AVX2__
// out[w][b] = word w of block (blk0 + b), b < 8, counter high word and stream 0 as in rng_philox.
static inline void philox8(uint64_t seed, uint64_t blk0, uint32_t out[4][GROUP_BLOCKS]) {
  const __m256i lo32 = _mm256_set1_epi64x(0xffffffffll);
  const __m256i m0 = _mm256_set1_epi64x(PHILOX_M0), m1 = _mm256_set1_epi64x(PHILOX_M1);
  __m256i c0[2], c1[2], c2[2], c3[2];
  for (int h = 0; h < 2; h++) {
    const uint64_t b = blk0 + 4 * (uint64_t)h;
    c0[h] = _mm256_and_si256(_mm256_set_epi64x((long long)(b + 3), (long long)(b + 2), (long long)(b + 1), (long long)b), lo32);
    c1[h] = _mm256_set_epi64x((long long)((b + 3) >> 32), (long long)((b + 2) >> 32), (long long)((b + 1) >> 32),
                              (long long)(b >> 32));
    c2[h] = c3[h] = _mm256_setzero_si256();
  }
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int round = 0; round < 10; round++) {
    const __m256i vk0 = _mm256_set1_epi64x(k0), vk1 = _mm256_set1_epi64x(k1);
    for (int h = 0; h < 2; h++) {
      const __m256i p0 = _mm256_mul_epu32(c0[h], m0), p1 = _mm256_mul_epu32(c2[h], m1);
      const __m256i n0 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p1, 32), c1[h]), vk0);
      const __m256i n2 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p0, 32), c3[h]), vk1);
      c0[h] = n0;
      c1[h] = _mm256_and_si256(p1, lo32);
      c2[h] = n2;
      c3[h] = _mm256_and_si256(p0, lo32);
    }
    k0 += PHILOX_W0;
    k1 += PHILOX_W1;
  }
  for (int h = 0; h < 2; h++) {
    uint64_t t[4][4];
    _mm256_storeu_si256((__m256i *)t[0], c0[h]);
    _mm256_storeu_si256((__m256i *)t[1], c1[h]);
    _mm256_storeu_si256((__m256i *)t[2], c2[h]);
    _mm256_storeu_si256((__m256i *)t[3], c3[h]);
    for (int w = 0; w < 4; w++)
      for (int l = 0; l < 4; l++) out[w][4 * h + l] = (uint32_t)t[w][l];
  }
}
#endif

void cpu_dropout_span(float *y, const float *x, size_t n, uint64_t offset, uint64_t seed, uint64_t thr,
                      float keep_scale) {
  if (!n) return;
  const uint64_t blk_end = (offset + n + 3) / 4;
  uint64_t blk = offset / 4;
#ifdef __AVX2__
  for (; blk + GROUP_BLOCKS <= blk_end; blk += GROUP_BLOCKS) {
    uint32_t w[4][GROUP_BLOCKS];
    philox8(seed, blk, w);
    for (int b = 0; b < GROUP_BLOCKS; b++) {
      const uint32_t r[4] = {w[0][b], w[1][b], w[2][b], w[3][b]};
      apply_block(y, x, r, blk + (uint64_t)b, offset, n, thr, keep_scale);
    }
  }
#endif
  for (; blk < blk_end; blk++) {
    uint32_t r[4];
    rng_philox(seed, blk, 0, r);
    apply_block(y, x, r, blk, offset, n, thr, keep_scale);
  }
}

int cpu_dropout(hb_ctx *ctx, float *y, const float *x, size_t n, float p, uint64_t seed) {
  (void)ctx;
  if (p <= 0.0f) {
    if (y != x) memmove(y, x, sizeof(float) * n);
    return 0;
  }
  const uint64_t thr = hb_dropout_threshold(p);
  const float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  const size_t nchunks = (n + SPAN_CHUNK - 1) / SPAN_CHUNK;
#pragma omp parallel for schedule(static) if (nchunks > 4)
  for (size_t c = 0; c < nchunks; c++) {
    const size_t j0 = c * SPAN_CHUNK, m = n - j0 < SPAN_CHUNK ? n - j0 : SPAN_CHUNK;
    cpu_dropout_span(y + j0, x + j0, m, j0, seed, thr, keep_scale);
  }
  return 0;
}
