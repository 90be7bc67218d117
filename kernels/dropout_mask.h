// The dropout keep rule shared by every backend and every op that drops (the `dropout` op and
// the attention probabilities of attention_train/attention_backward), usable from C and from
// CUDA device code. Element i of a virtual tensor is kept iff
//   Philox4x32-10(key = seed, counter = (i / 4, stream 0))[i % 4] >= p * 2^32
// (the same words as rng_philox(seed, i / 4, 0, .) of common/rng.h), and kept elements are
// scaled by 1 / (1 - p). The mask is a pure function of (seed, i): thread count, block order
// and launch layout never change it, and a backward regenerates it from the seed.
#ifndef HB_DROPOUT_MASK_H
#define HB_DROPOUT_MASK_H

#include <stdint.h>

#ifdef __CUDACC__
#define HB_HOST_DEVICE __host__ __device__
#else
#define HB_HOST_DEVICE
#endif

// Keep threshold p * 2^32 as a 64-bit integer (2^32 for p >= 1: nothing kept; 0 for p <= 0).
static inline HB_HOST_DEVICE uint64_t hb_dropout_threshold(float p) {
  if (!(p > 0.0f)) return 0;
  const double t = (double)p * 4294967296.0;  // exact: a power-of-two multiple of a float
  return t >= 4294967296.0 ? 4294967296ull : (uint64_t)t;
}

// One Philox4x32-10 block, counter (ctr, 0): bit-identical to rng_philox(seed, ctr, 0, out).
static inline HB_HOST_DEVICE void hb_dropout_philox(uint64_t seed, uint64_t ctr, uint32_t out[4]) {
  uint32_t c0 = (uint32_t)ctr, c1 = (uint32_t)(ctr >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int round = 0; round < 10; round++) {
    const uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
    const uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    c1 = (uint32_t)p1;
    c3 = (uint32_t)p0;
    c0 = n0;
    c2 = n2;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

// 1 if flat element i is kept under threshold thr = hb_dropout_threshold(p).
static inline HB_HOST_DEVICE int hb_dropout_keep(uint64_t seed, uint64_t i, uint64_t thr) {
  uint32_t r[4];
  hb_dropout_philox(seed, i / 4, r);
  return (uint64_t)r[i % 4] >= thr;
}

// Flat index of attention probability (b, h, t, s) in the virtual (B, H, T, T) tensor whose
// mask attention_train/attention_backward apply (s < len[b]; padded keys are never used).
static inline HB_HOST_DEVICE uint64_t hb_attention_dropout_index(int b, int h, int t, int s, int H, int T) {
  return (((uint64_t)b * (uint64_t)H + (uint64_t)h) * (uint64_t)T + (uint64_t)t) * (uint64_t)T + (uint64_t)s;
}

#endif
