// mask_rows_backward vs central differences (h = 1e-6, double) of L = sum R * y(x, emb), y the
// double reference of mask_rows (masked rows := emb): dx (masked rows zeroed, in place on R) and
// demb (+=, from a zero start and again doubled by a second call) at TOL_GRAD_OP_F32. Every
// coordinate is checked (small tensors). Seed: fresh, HUBERT_TEST_SEED fixes it.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/rng.h"
#include "kernels/ops.h"
#include "tests/test_util.h"

#define FD_H 1e-6

static hb_rng g_rng;

typedef struct {
  int N, C;
  const uint8_t *mask;
  double *x, *emb;
  const double *R;
} mr_op;

static double mr_loss(const mr_op *o) {
  double L = 0;
  for (int r = 0; r < o->N; r++)
    for (int c = 0; c < o->C; c++) {
      const size_t i = (size_t)r * o->C + c;
      L += o->R[i] * (o->mask[r] ? o->emb[c] : o->x[i]);
    }
  return L;
}

static void fd_all(const mr_op *o, const char *name, double *p, size_t n, const float *grad) {
  double *fd = malloc(sizeof(double) * (n + 1));
  for (size_t i = 0; i < n; i++) {
    const double p0 = p[i];
    p[i] = p0 + FD_H;
    const double lp = mr_loss(o);
    p[i] = p0 - FD_H;
    const double lm = mr_loss(o);
    p[i] = p0;
    fd[i] = (lp - lm) / (2 * FD_H);
  }
  CHECK_REL(name, rel_err_f32_f64(grad, fd, n), TOL_GRAD_OP_F32);
  free(fd);
}

static void test_case(hb_ctx *ctx, int N, int C) {
  const size_t n = (size_t)N * C;
  uint8_t *mask = malloc((size_t)N);
  float *dx = malloc(sizeof(float) * n), *demb = calloc((size_t)C, sizeof(float));
  double *x = malloc(sizeof(double) * n), *emb = malloc(sizeof(double) * C), *R = malloc(sizeof(double) * n);
  for (int r = 0; r < N; r++) mask[r] = (uint8_t)(rng_uniform(&g_rng) < 0.5);
  mask[0] = 1;
  for (size_t i = 0; i < n; i++) dx[i] = (float)rng_normal(&g_rng), R[i] = dx[i], x[i] = rng_normal(&g_rng);
  for (int c = 0; c < C; c++) emb[c] = rng_normal(&g_rng);
  printf("mask_rows_backward N%d C%d\n", N, C);
  float *dy = malloc(sizeof(float) * n);
  memcpy(dy, dx, sizeof(float) * n);
  CHECK_OK(ctx->be->mask_rows_backward(ctx, dx, demb, mask, N, C));
  mr_op o = {N, C, mask, x, emb, R};
  fd_all(&o, "  dx", x, n, dx);
  fd_all(&o, "  demb", emb, (size_t)C, demb);
  float *demb1 = malloc(sizeof(float) * C), *want = malloc(sizeof(float) * C);
  memcpy(demb1, demb, sizeof(float) * C);
  CHECK_OK(ctx->be->mask_rows_backward(ctx, dy, demb, mask, N, C));
  for (int c = 0; c < C; c++) want[c] = 2 * demb1[c];
  CHECK_REL("  demb after 2nd call (= 2x)", rel_err_f32(demb, want, (size_t)C), TOL_GRAD_ACCUM);
  free(mask), free(dx), free(demb), free(x), free(emb), free(R), free(dy), free(demb1), free(want);
}

int main(void) {
  uint64_t seed = getenv("HUBERT_TEST_SEED") ? strtoull(getenv("HUBERT_TEST_SEED"), NULL, 10) : (uint64_t)time(NULL);
  printf("test_grad_mask_rows: seed %llu (HUBERT_TEST_SEED fixes it)\n", (unsigned long long)seed);
  rng_init(&g_rng, seed);
  hb_ctx ctx;
  if (ops_ctx_init(&ctx, "cpu", 0)) {
    fprintf(stderr, "%s\n", hb_errmsg());
    return 1;
  }
  test_case(&ctx, 9, 7);
  test_case(&ctx, 40, 70);
  ops_ctx_free(&ctx);
  return test_summary("test_grad_mask_rows");
}
