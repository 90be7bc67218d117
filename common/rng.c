#include "common/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void rng_philox(uint64_t seed, uint64_t counter, uint64_t stream, uint32_t out[4]) {
  uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32);
  uint32_t c2 = (uint32_t)stream, c3 = (uint32_t)(stream >> 32);
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int round = 0; round < 10; round++) {
    uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
    uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
    uint32_t n1 = (uint32_t)p1;
    uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    uint32_t n3 = (uint32_t)p0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += PHILOX_W0;
    k1 += PHILOX_W1;
  }
  out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

void rng_init(hb_rng *r, uint64_t seed) {
  r->seed = seed;
  r->counter = 0;
  r->avail = 0;
}

uint32_t rng_u32(hb_rng *r) {
  if (r->avail == 0) {
    rng_philox(r->seed, r->counter++, 0, r->buf);
    r->avail = 4;
  }
  return r->buf[--r->avail];
}

uint64_t rng_u64(hb_rng *r) {
  uint64_t hi = rng_u32(r);
  return (hi << 32) | rng_u32(r);
}

float rng_uniform(hb_rng *r) { return (float)(rng_u32(r) >> 8) * (1.0f / 16777216.0f); }

double rng_uniform_double(hb_rng *r) { return (double)(rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

double rng_normal(hb_rng *r) {
  double u1 = rng_uniform_double(r), u2 = rng_uniform_double(r);
  if (u1 < 1e-300) u1 = 1e-300;
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

uint64_t rng_below(hb_rng *r, uint64_t n) {
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do x = rng_u64(r); while (x >= limit);
  return x % n;
}

uint64_t rng_derive_seed(uint64_t seed, uint64_t index) {
  uint32_t out[4];
  rng_philox(seed, index, 0x5eedULL, out);
  return ((uint64_t)out[0] << 32) | out[1];
}
