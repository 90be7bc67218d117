// Every CPU op against a naive double-precision reference on random inputs, with guard memory
// after each output (an out-of-bounds write fails the test) and NaN checks (rel_err_f32 turns
// any NaN/inf into +inf, so it never passes).
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

static float *alloc_out(size_t n) {
  float *p = malloc(sizeof(float) * (n + GUARD));
  for (size_t i = 0; i < n + GUARD; i++) p[i] = i < n ? NAN : GUARD_VAL;  // NaN: unwritten outputs fail
  return p;
}
static int guard_ok(const float *p, size_t n) {
  for (size_t i = n; i < n + GUARD; i++)
    if (p[i] != GUARD_VAL) return 0;
  return 1;
}
static float *randn(size_t n, double sd) {
  float *p = malloc(sizeof(float) * (n ? n : 1));
  for (size_t i = 0; i < n; i++) p[i] = (float)(sd * rng_normal(&g_rng));
  return p;
}

static void test_conv1d(hb_ctx *ctx, int B, int Tin, int Cin, int Cout, int K, int S, int pad, int G, int bias) {
  const int Tout = (Tin + 2 * pad - K) / S + 1, Cg = Cin / G, Cgo = Cout / G;
  float *x = randn((size_t)B * Tin * Cin, 1.0), *w = randn((size_t)Cout * Cg * K, 0.3), *b = bias ? randn(Cout, 0.5) : NULL;
  size_t ny = (size_t)B * Tout * Cout;
  float *y = alloc_out(ny);
  double *ref = calloc(ny, sizeof(double));
  for (int bb = 0; bb < B; bb++)
    for (int t = 0; t < Tout; t++)
      for (int o = 0; o < Cout; o++) {
        double acc = b ? b[o] : 0;
        int g = o / Cgo;
        for (int c = 0; c < Cg; c++)
          for (int k = 0; k < K; k++) {
            int ti = t * S + k - pad;
            if (ti < 0 || ti >= Tin) continue;
            acc += (double)x[((size_t)bb * Tin + ti) * Cin + g * Cg + c] * w[((size_t)o * Cg + c) * K + k];
          }
        ref[((size_t)bb * Tout + t) * Cout + o] = acc;
      }
  CHECK_OK(ctx->be->conv1d(ctx, y, x, w, b, B, Tin, Cin, Cout, K, S, pad, G));
  char name[96];
  snprintf(name, sizeof name, "conv1d B%d T%d %d->%d k%d s%d p%d g%d%s", B, Tin, Cin, Cout, K, S, pad, G, bias ? " +b" : "");
  CHECK_REL(name, rel_err_f32_f64(y, ref, ny), TOL_F32_OP);
  CHECK(guard_ok(y, ny));
  free(x), free(w), free(b), free(y), free(ref);
}

static void test_linear(hb_ctx *ctx, int N, int Cin, int Cout) {
  float *x = randn((size_t)N * Cin, 1), *w = randn((size_t)Cout * Cin, 0.1), *b = randn(Cout, 1);
  size_t ny = (size_t)N * Cout;
  float *y = alloc_out(ny);
  double *ref = malloc(sizeof(double) * ny);
  for (int n = 0; n < N; n++)
    for (int o = 0; o < Cout; o++) {
      double acc = b[o];
      for (int c = 0; c < Cin; c++) acc += (double)x[(size_t)n * Cin + c] * w[(size_t)o * Cin + c];
      ref[(size_t)n * Cout + o] = acc;
    }
  CHECK_OK(ctx->be->linear(ctx, y, x, w, b, N, Cin, Cout));
  CHECK_REL("linear", rel_err_f32_f64(y, ref, ny), TOL_F32_OP);
  CHECK(guard_ok(y, ny));
  free(x), free(w), free(b), free(y), free(ref);
}

static void test_norms(hb_ctx *ctx) {
  const int B = 2, T = 37, C = 12, N = B * T;
  float *x = randn((size_t)N * C, 2.0), *g = randn(C, 1), *bt = randn(C, 1);
  for (size_t i = 0; i < (size_t)N * C; i++) x[i] += 3.0f;  // offset mean: tests the two-pass variance
  size_t n = (size_t)N * C;
  float *y = alloc_out(n);
  double *ref = malloc(sizeof(double) * n);
  for (int r = 0; r < N; r++) {
    double m = 0, v = 0;
    for (int c = 0; c < C; c++) m += x[(size_t)r * C + c];
    m /= C;
    for (int c = 0; c < C; c++) v += pow(x[(size_t)r * C + c] - m, 2);
    v /= C;
    for (int c = 0; c < C; c++) ref[(size_t)r * C + c] = (x[(size_t)r * C + c] - m) / sqrt(v + 1e-5) * g[c] + bt[c];
  }
  CHECK_OK(ctx->be->layer_norm(ctx, y, x, g, bt, N, C, 1e-5f));
  CHECK_REL("layer_norm", rel_err_f32_f64(y, ref, n), TOL_F32_OP);
  CHECK(guard_ok(y, n));
  int groups[] = {C, 3, 1};
  for (int gi = 0; gi < 3; gi++) {
    const int G = groups[gi], Cg = C / G;
    for (int b = 0; b < B; b++)
      for (int gg = 0; gg < G; gg++) {
        double m = 0, v = 0;
        for (int t = 0; t < T; t++)
          for (int c = gg * Cg; c < (gg + 1) * Cg; c++) m += x[((size_t)b * T + t) * C + c];
        m /= (double)T * Cg;
        for (int t = 0; t < T; t++)
          for (int c = gg * Cg; c < (gg + 1) * Cg; c++) v += pow(x[((size_t)b * T + t) * C + c] - m, 2);
        v /= (double)T * Cg;
        for (int t = 0; t < T; t++)
          for (int c = gg * Cg; c < (gg + 1) * Cg; c++) {
            size_t i = ((size_t)b * T + t) * C + c;
            ref[i] = (x[i] - m) / sqrt(v + 1e-5) * g[c] + bt[c];
          }
      }
    for (size_t i = 0; i < n; i++) y[i] = NAN;
    CHECK_OK(ctx->be->group_norm(ctx, y, x, g, bt, B, T, C, G, 1e-5f));
    char name[64];
    snprintf(name, sizeof name, "group_norm G=%d", G);
    CHECK_REL(name, rel_err_f32_f64(y, ref, n), TOL_F32_OP);
    CHECK(guard_ok(y, n));
  }
  free(x), free(g), free(bt), free(y), free(ref);
}

static void test_elementwise(hb_ctx *ctx) {
  const size_t n = 1000;
  float *x = randn(n, 3), *z = randn(n, 1);
  float *y = alloc_out(n);
  double *ref = malloc(sizeof(double) * n);
  for (size_t i = 0; i < n; i++) ref[i] = 0.5 * x[i] * (1 + erf(x[i] / sqrt(2.0)));
  CHECK_OK(ctx->be->gelu(ctx, y, x, n));
  CHECK_REL("gelu (erf)", rel_err_f32_f64(y, ref, n), TOL_F32_OP);
  CHECK(guard_ok(y, n));
  // Tails and special values, elementwise: |gelu - ref| <= 1e-6 (|ref| + 1e-3); NaN stays NaN.
  {
    float sp[19] = {-40, -30, -12, -9.5f, -5, -1, -1e-3f, -1e-8f, -0.0f, 0, 1e-8f, 1e-3f, 1, 5, 9.5f, 12, 30, 40, NAN};
    float out[19];
    CHECK_OK(ctx->be->gelu(ctx, out, sp, 19));
    int ok = 1;
    for (int i = 0; i < 18; i++) {
      double r = 0.5 * sp[i] * (1 + erf(sp[i] / sqrt(2.0)));
      ok &= fabs(out[i] - r) <= 1e-6 * (fabs(r) + 1e-3);
    }
    CHECK(ok);
    CHECK(isnan(out[18]));
  }
  for (size_t i = 0; i < n; i++) ref[i] = (double)x[i] + z[i];
  CHECK_OK(ctx->be->add(ctx, y, x, z, n));
  CHECK_REL("add", rel_err_f32_f64(y, ref, n), TOL_F32_OP);
  CHECK(guard_ok(y, n));
  // softmax rows of 50 (in place on a copy)
  const int N = 20, D = 50;
  memcpy(y, x, sizeof(float) * n);
  for (int r = 0; r < N; r++) {
    double m = -1e300, s = 0;
    for (int d = 0; d < D; d++) m = fmax(m, x[r * D + d]);
    for (int d = 0; d < D; d++) s += exp(x[r * D + d] - m);
    for (int d = 0; d < D; d++) ref[r * D + d] = exp(x[r * D + d] - m) / s;
  }
  CHECK_OK(ctx->be->softmax(ctx, y, N, D));
  CHECK_REL("softmax", rel_err_f32_f64(y, ref, n), TOL_F32_OP);
  CHECK(guard_ok(y, n));
  free(x), free(z), free(y), free(ref);
}

static void test_attention(hb_ctx *ctx, int B, int T, int H, int Dh, int padded) {
  const int C = H * Dh;
  size_t n = (size_t)B * T * C;
  float *q = randn(n, 1), *k = randn(n, 1), *v = randn(n, 1);
  float *y = alloc_out(n);
  double *ref = calloc(n, sizeof(double));
  int *len = malloc(sizeof(int) * B);
  for (int b = 0; b < B; b++) len[b] = padded ? T - (int)((b * 7919) % (T / 2 + 1)) : T;
  const double scale = 1.0 / sqrt((double)Dh);
  double *s = malloc(sizeof(double) * T);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++)
      for (int t = 0; t < T; t++) {
        double m = -1e300, sum = 0;
        for (int j = 0; j < T; j++) {
          double d = 0;
          for (int e = 0; e < Dh; e++) d += (double)q[((size_t)b * T + t) * C + h * Dh + e] * k[((size_t)b * T + j) * C + h * Dh + e];
          s[j] = j < len[b] ? d * scale : -INFINITY;
          m = fmax(m, s[j]);
        }
        for (int j = 0; j < T; j++) sum += s[j] = exp(s[j] - m);
        for (int e = 0; e < Dh; e++) {
          double acc = 0;
          for (int j = 0; j < T; j++) acc += s[j] / sum * v[((size_t)b * T + j) * C + h * Dh + e];
          ref[((size_t)b * T + t) * C + h * Dh + e] = acc;
        }
      }
  CHECK_OK(ctx->be->attention(ctx, y, q, k, v, padded ? len : NULL, B, T, H, Dh, (float)scale));
  char name[96];
  snprintf(name, sizeof name, "attention B%d T%d H%d Dh%d%s", B, T, H, Dh, padded ? " padded" : "");
  CHECK_REL(name, rel_err_f32_f64(y, ref, n), TOL_F32_OP);
  CHECK(guard_ok(y, n));
  free(q), free(k), free(v), free(y), free(ref), free(len), free(s);
}

static void test_weight_norm_and_mask(hb_ctx *ctx) {
  const int O = 6, I = 3, K = 5;
  size_t n = (size_t)O * I * K;
  float *v = randn(n, 1), *g = randn(K, 1);
  float *w = alloc_out(n);
  double *ref = malloc(sizeof(double) * n);
  for (int k = 0; k < K; k++) {
    double s = 0;
    for (int oi = 0; oi < O * I; oi++) s += (double)v[oi * K + k] * v[oi * K + k];
    for (int oi = 0; oi < O * I; oi++) ref[oi * K + k] = g[k] * v[oi * K + k] / sqrt(s);
  }
  CHECK_OK(ctx->be->weight_norm(ctx, w, v, g, O, I, K));
  CHECK_REL("weight_norm (dim=2)", rel_err_f32_f64(w, ref, n), TOL_F32_OP);
  CHECK(guard_ok(w, n));
  // mask_padding: frames >= len zeroed, others untouched.
  const int B = 3, T = 7, C = 4;
  float *x = randn((size_t)B * T * C, 1), *x0 = malloc(sizeof(float) * B * T * C);
  memcpy(x0, x, sizeof(float) * B * T * C);
  int len[3] = {7, 3, 1};
  CHECK_OK(ctx->be->mask_padding(ctx, x, len, B, T, C));
  int ok = 1;
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      for (int c = 0; c < C; c++) {
        size_t i = ((size_t)b * T + t) * C + c;
        ok &= t < len[b] ? x[i] == x0[i] : x[i] == 0.0f;
      }
  CHECK(ok);
  free(v), free(g), free(w), free(ref), free(x), free(x0);
}

int main(void) {
  uint64_t seed = getenv("HUBERT_TEST_SEED") ? strtoull(getenv("HUBERT_TEST_SEED"), NULL, 10) : (uint64_t)time(NULL);
  printf("test_ops_cpu: seed %llu\n", (unsigned long long)seed);
  rng_init(&g_rng, seed);
  hb_ctx ctx;
  if (ops_ctx_init(&ctx, "cpu", 0)) return 1;
  test_conv1d(&ctx, 2, 403, 1, 16, 10, 5, 0, 1, 0);   // HuBERT's first conv
  test_conv1d(&ctx, 2, 79, 8, 12, 3, 2, 0, 1, 0);     // K=3, s=2
  test_conv1d(&ctx, 3, 40, 8, 12, 3, 2, 0, 1, 1);     // even Tin, bias
  test_conv1d(&ctx, 2, 9, 8, 8, 2, 2, 0, 1, 1);       // K=2, s=2
  test_conv1d(&ctx, 1, 20, 5, 7, 4, 1, 0, 1, 1);      // K > s
  test_conv1d(&ctx, 2, 31, 16, 16, 8, 1, 4, 4, 1);    // positional conv: grouped, padded, even K
  test_conv1d(&ctx, 2, 17, 12, 12, 5, 1, 2, 3, 0);    // odd K
  test_conv1d(&ctx, 1, 12, 6, 6, 3, 3, 1, 2, 1);      // grouped with stride
  test_linear(&ctx, 37, 48, 29);
  test_norms(&ctx);
  test_elementwise(&ctx);
  test_attention(&ctx, 2, 19, 3, 8, 0);
  test_attention(&ctx, 3, 150, 2, 16, 1);  // more than one query block, padded keys
  test_weight_norm_and_mask(&ctx);
  ops_ctx_free(&ctx);
  return test_summary("test_ops_cpu");
}
