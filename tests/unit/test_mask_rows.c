// mask_rows / mask_rows_backward (span-mask application, masked_spec_embed) on the CPU against a
// plain serial reference: forward rows exact, dx exact, demb (+=) vs a double sum at TOL_F32_OP;
// guard memory after every output; demb NULL; all / no rows masked; N = 0; the result does not
// depend on the thread count (bit for bit). Seed: fresh, HUBERT_TEST_SEED fixes it.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/rng.h"
#include "kernels/ops.h"
#include "tests/test_util.h"

#define GUARD 64
#define GUARD_VAL 12345.678f

static hb_rng g_rng;

static float *randn_guarded(size_t n, double sd) {
  float *p = malloc(sizeof(float) * (n + GUARD));
  for (size_t i = 0; i < n + GUARD; i++) p[i] = i < n ? (float)(sd * rng_normal(&g_rng)) : GUARD_VAL;
  return p;
}
static int guard_ok(const float *p, size_t n) {
  for (size_t i = n; i < n + GUARD; i++)
    if (p[i] != GUARD_VAL) return 0;
  return 1;
}

// mode 0: random mask, 1: none masked, 2: all masked.
static void test_case(hb_ctx *ctx, hb_ctx *ctx1, int N, int C, int mode) {
  const size_t n = (size_t)N * C;
  uint8_t *mask = malloc((size_t)N + 1);
  for (int i = 0; i < N; i++) mask[i] = mode == 1 ? 0 : mode == 2 ? 1 : (uint8_t)(rng_uniform(&g_rng) < 0.4);
  float *x = randn_guarded(n, 1), *emb = randn_guarded((size_t)C, 1), *dx = randn_guarded(n, 1);
  float *demb = randn_guarded((size_t)C, 1);
  float *x0 = malloc(sizeof(float) * (n + 1)), *dx0 = malloc(sizeof(float) * (n + 1));
  float *demb0 = malloc(sizeof(float) * ((size_t)C + 1));
  memcpy(x0, x, sizeof(float) * n), memcpy(dx0, dx, sizeof(float) * n), memcpy(demb0, demb, sizeof(float) * C);
  char name[96];
  snprintf(name, sizeof name, "N%d C%d %s", N, C, mode == 0 ? "random mask" : mode == 1 ? "none masked" : "all masked");
  printf("%s\n", name);

  CHECK_OK(ctx->be->mask_rows(ctx, x, mask, emb, N, C));
  int ok = 1;
  for (int r = 0; r < N; r++)
    for (int c = 0; c < C; c++) {
      const size_t i = (size_t)r * C + c;
      ok &= mask[r] ? x[i] == emb[c] : x[i] == x0[i];
    }
  CHECK(ok && guard_ok(x, n));

  CHECK_OK(ctx->be->mask_rows_backward(ctx, dx, demb, mask, N, C));
  ok = 1;
  for (int r = 0; r < N; r++)
    for (int c = 0; c < C; c++) {
      const size_t i = (size_t)r * C + c;
      ok &= mask[r] ? dx[i] == 0.0f : dx[i] == dx0[i];
    }
  CHECK(ok && guard_ok(dx, n) && guard_ok(demb, (size_t)C));
  double *ref = malloc(sizeof(double) * ((size_t)C + 1));
  for (int c = 0; c < C; c++) {
    double s = 0;
    for (int r = 0; r < N; r++)
      if (mask[r]) s += dx0[(size_t)r * C + c];
    ref[c] = demb0[c] + s;
  }
  CHECK_REL("  demb += column sums", rel_err_f32_f64(demb, ref, (size_t)C), TOL_F32_OP);

  // One thread: the same bits; demb NULL: dx still zeroed.
  float *dx1 = malloc(sizeof(float) * (n + 1)), *demb1 = malloc(sizeof(float) * ((size_t)C + 1));
  memcpy(dx1, dx0, sizeof(float) * n), memcpy(demb1, demb0, sizeof(float) * C);
  CHECK_OK(ctx1->be->mask_rows_backward(ctx1, dx1, demb1, mask, N, C));
  CHECK(!memcmp(dx1, dx, sizeof(float) * n) && !memcmp(demb1, demb, sizeof(float) * C));
  memcpy(dx1, dx0, sizeof(float) * n);
  CHECK_OK(ctx->be->mask_rows_backward(ctx, dx1, NULL, mask, N, C));
  CHECK(!memcmp(dx1, dx, sizeof(float) * n));
  free(mask), free(x), free(emb), free(dx), free(demb), free(x0), free(dx0), free(demb0), free(ref), free(dx1),
      free(demb1);
}

int main(void) {
  uint64_t seed = getenv("HUBERT_TEST_SEED") ? strtoull(getenv("HUBERT_TEST_SEED"), NULL, 10) : (uint64_t)time(NULL);
  printf("test_mask_rows: seed %llu (HUBERT_TEST_SEED fixes it)\n", (unsigned long long)seed);
  rng_init(&g_rng, seed);
  hb_ctx ctx, ctx1;
  if (ops_ctx_init(&ctx, "cpu", 0) || ops_ctx_init(&ctx1, "cpu", 1)) {
    fprintf(stderr, "%s\n", hb_errmsg());
    return 1;
  }
  test_case(&ctx, &ctx1, 37, 48, 0);
  test_case(&ctx, &ctx1, 301, 131, 0);  // C not a multiple of the 64-column tasks
  test_case(&ctx, &ctx1, 5, 64, 1);
  test_case(&ctx, &ctx1, 6, 65, 2);
  test_case(&ctx, &ctx1, 1, 1, 2);
  test_case(&ctx, &ctx1, 0, 8, 0);
  ops_ctx_free(&ctx), ops_ctx_free(&ctx1);
  return test_summary("test_mask_rows");
}
