// Dropout on the attention probabilities (attention_train / attention_backward): the mask is the
// `dropout` op's rule on the virtual (B, H, T, T) tensor.
// - hb_dropout_keep (kernels/dropout_mask.h, shared with CUDA) equals rng_philox's words.
// - The mask read out of attention_train: with q = 0 every valid key has probability 1/S, and
//   with v[s] = e_s (Dh = T) out[b, t, h, s] = keep(i) / ((1 - p) S), so S * out must equal the
//   dropout op applied to ones at i = ((b*H + h)*T + t)*T + s (odd T: rows start at unaligned
//   Philox words), and 0 at padded keys s >= len[b].
// - The empirical keep rate over the whole mask is 1 - p (6 standard deviations).
// - The backward regenerates the same mask: with q = 0, dout = e_c, dv[s] = P'[.., s] summed
//   over the query rows of column c.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/rng.h"
#include "kernels/dropout_mask.h"
#include "kernels/ops.h"
#include "tests/test_util.h"

static void test_keep_rule(uint64_t seed) {
  const uint64_t thr = hb_dropout_threshold(0.3f);
  int same = 1;
  hb_rng r;
  rng_init(&r, seed);
  for (int k = 0; k < 10000; k++) {
    const uint64_t s = rng_u64(&r), i = k < 5000 ? (uint64_t)k : rng_u64(&r) >> 8;
    uint32_t w[4];
    rng_philox(s, i / 4, 0, w);
    same &= hb_dropout_keep(s, i, thr) == ((uint64_t)w[i % 4] >= thr);
  }
  printf("  hb_dropout_keep vs rng_philox words (10000 indices): %s\n", same ? "same" : "DIFFERENT");
  CHECK(same);
  CHECK(hb_dropout_threshold(0.0f) == 0 && hb_dropout_threshold(1.0f) == 4294967296ull);
  CHECK(hb_dropout_threshold(0.5f) == 2147483648ull);
}

static void test_mask(hb_ctx *ctx, int B, int T, int H, float p, uint64_t seed) {
  const int Dh = T, C = H * Dh;
  const size_t n = (size_t)B * T * C, nm = (size_t)B * H * T * T;
  float *q = calloc(n, sizeof(float)), *k = malloc(sizeof(float) * n), *v = calloc(n, sizeof(float));
  float *out = malloc(sizeof(float) * n), *lse = malloc(sizeof(float) * (size_t)B * H * T);
  float *ones = malloc(sizeof(float) * nm), *ref = malloc(sizeof(float) * nm);
  float *dout = calloc(n, sizeof(float)), *dv = malloc(sizeof(float) * n);
  int *len = malloc(sizeof(int) * B);
  for (size_t i = 0; i < n; i++) k[i] = (float)(i % 7) - 3.0f;  // irrelevant: q = 0
  for (int b = 0; b < B; b++) {
    len[b] = b == 0 ? T : 1 + (int)((b * 7919u) % (unsigned)T);
    for (int s = 0; s < T; s++)
      for (int h = 0; h < H; h++) v[((size_t)b * T + s) * C + h * Dh + s] = 1.0f;  // v[b, s, h] = e_s
  }
  for (size_t i = 0; i < nm; i++) ones[i] = 1.0f;
  CHECK_OK(ctx->be->dropout(ctx, ref, ones, nm, p, seed));
  CHECK_OK(ctx->be->attention_train(ctx, out, lse, q, k, v, len, B, T, H, Dh, 1.0f, p, seed));
  double err = 0;
  size_t kept = 0, total = 0, pad_nonzero = 0;
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++)
      for (int t = 0; t < T; t++)
        for (int s = 0; s < T; s++) {
          const float o = out[((size_t)b * T + t) * C + h * Dh + s];
          if (s >= len[b]) {
            pad_nonzero += o != 0.0f;
            continue;
          }
          const float want = ref[hb_attention_dropout_index(b, h, t, s, H, T)];
          err = fmax(err, fabs((double)o * len[b] - want) / (1.0 / (1.0 - p)));
          kept += o != 0.0f, total++;
        }
  const double rate = (double)kept / (double)total, sd = sqrt(p * (1.0 - p) / (double)total);
  printf("B%d T%d H%d p %.2f seed %llu: max |S out - dropout(1)| * (1-p) = %.2e (tol 1e-6), keep rate %.5f "
         "(want %.2f +- %.5f), padded keys nonzero %zu\n",
         B, T, H, p, (unsigned long long)seed, err, rate, 1.0 - p, 6 * sd, pad_nonzero);
  CHECK(err <= 1e-6);
  CHECK(fabs(rate - (1.0 - p)) <= 6 * sd);
  CHECK(pad_nonzero == 0);
  // Backward, dout = e_c on every row of head h: dv[b, s, h, c] = sum_t P'[b, h, t, s]; the
  // column c is irrelevant since V only enters through dP.
  const int c = T / 2;
  for (size_t r = 0; r < (size_t)B * T; r++)
    for (int h = 0; h < H; h++) dout[r * C + h * Dh + c] = 1.0f;
  CHECK_OK(ctx->be->attention_backward(ctx, NULL, NULL, dv, dout, q, k, v, lse, len, B, T, H, Dh, 1.0f, p, seed));
  double berr = 0;
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++)
      for (int s = 0; s < len[b]; s++) {
        double want = 0;
        for (int t = 0; t < T; t++) want += ref[hb_attention_dropout_index(b, h, t, s, H, T)] / (double)len[b];
        const double got = dv[((size_t)b * T + s) * C + h * Dh + c];
        berr = fmax(berr, fabs(got - want) / (1.0 + fabs(want)));
      }
  printf("  backward dv = column sums of the same mask: max rel.err %.2e (tol 1e-5)\n", berr);
  CHECK(berr <= 1e-5);
  free(q), free(k), free(v), free(out), free(lse), free(ones), free(ref), free(dout), free(dv), free(len);
}

int main(void) {
  const uint64_t seed = getenv("HUBERT_TEST_SEED") ? strtoull(getenv("HUBERT_TEST_SEED"), NULL, 10) : (uint64_t)time(NULL);
  printf("test_attention_dropout: seed %llu (HUBERT_TEST_SEED reproduces)\n", (unsigned long long)seed);
  hb_ctx ctx;
  if (ops_ctx_init(&ctx, "cpu", 2)) return 1;
  hb_rng r;
  rng_init(&r, seed);
  test_keep_rule(seed);
  test_mask(&ctx, 2, 37, 3, 0.3f, rng_u64(&r));
  test_mask(&ctx, 3, 130, 2, 0.1f, rng_u64(&r));  // two query blocks, padded items
  test_mask(&ctx, 1, 300, 4, 0.5f, rng_u64(&r));  // 360k mask elements: keep rate to +-0.005
  ops_ctx_free(&ctx);
  return test_summary("test_attention_dropout");
}
