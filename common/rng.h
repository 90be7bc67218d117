// The project's seeded RNG: Philox4x32-10 (Salmon et al. 2011), counter-based, so a stream is a
// pure function of (seed, counter). The same generator can run on the GPU and give the same
// numbers, and a saved (seed, counter) pair restores a stream exactly.
#ifndef HB_RNG_H
#define HB_RNG_H

#include <stdint.h>

typedef struct {
  uint64_t seed;
  uint64_t counter;  // number of 128-bit blocks consumed
  uint32_t buf[4];
  int avail;         // unread words left in buf (taken from the back)
} hb_rng;

void rng_init(hb_rng *r, uint64_t seed);
// One Philox4x32-10 block: out = philox(key = seed, ctr = (counter, stream)).
void rng_philox(uint64_t seed, uint64_t counter, uint64_t stream, uint32_t out[4]);
uint32_t rng_u32(hb_rng *r);
uint64_t rng_u64(hb_rng *r);
// Uniform in [0, 1) with 24 random bits (float) / 53 bits (double).
float rng_uniform(hb_rng *r);
double rng_uniform_double(hb_rng *r);
// Standard normal (Box-Muller on two uniforms).
double rng_normal(hb_rng *r);
// Uniform integer in [0, n) without modulo bias (n > 0).
uint64_t rng_below(hb_rng *r, uint64_t n);
// Splits off an independent stream from a parent seed and an index (for per-thread/per-rank use).
uint64_t rng_derive_seed(uint64_t seed, uint64_t index);

#endif
