// Finite-difference checks of every CPU op backward.
//
// For each op: random float inputs and a random upstream gradient R; a naive double-precision
// reference forward y(p) of the op; the scalar L(p) = sum R * y(p). Our float backward (called
// with dy = R) is compared with central differences of L in double, h = 1e-6 (truncation ~h^2,
// rounding ~1e-16 |L| / h: both ~1e-10, far below float rounding), coordinate by coordinate
// (all coordinates of small tensors, a random sample plus chosen ones of large tensors) and along
// random directions of the whole tensor. Also checked: accumulation (a second call doubles the
// parameter gradients, input gradients are overwritten), guard memory after every gradient
// buffer, NaN-filled outputs (an unwritten element never passes), NULL optional gradients.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/rng.h"
#include "kernels/dropout_mask.h"
#include "kernels/ops.h"
#include "tests/test_util.h"

#define GUARD 64
#define GUARD_VAL 12345.678f
#define FD_H 1e-6
#define FD_MAX_COORDS 48  // sampled coordinates per tensor when it is larger
#define FD_DIRS 2         // random directions per tensor

static hb_rng g_rng;

static float *alloc_grad(size_t n, float fill) {
  float *p = malloc(sizeof(float) * (n + GUARD));
  for (size_t i = 0; i < n + GUARD; i++) p[i] = i < n ? fill : GUARD_VAL;
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
static double *to_f64(const float *p, size_t n) {
  double *d = malloc(sizeof(double) * (n ? n : 1));
  for (size_t i = 0; i < n; i++) d[i] = p[i];
  return d;
}
static int rand_int(int lo, int hi) { return lo + (int)rng_below(&g_rng, (uint64_t)(hi - lo + 1)); }

// ---- finite differences ---------------------------------------------------------------------
typedef struct {
  void (*fwd)(const void *op, double *y);  // reference forward in double
  const void *op;
  const double *R;  // upstream gradient = dy
  double *y;
  size_t ny;
} fd_problem;

static double fd_loss(const fd_problem *f) {
  f->fwd(f->op, f->y);
  double L = 0;
  for (size_t i = 0; i < f->ny; i++) L += f->R[i] * f->y[i];
  return L;
}

// Compares grad (float, n) with central differences of L along coordinates of p (all if n is
// small; else FD_MAX_COORDS random ones plus `force`) and along FD_DIRS random directions.
static void fd_check(const fd_problem *f, const char *name, double *p, size_t n, const float *grad, const size_t *force,
                     int nforce) {
  const int all = n <= FD_MAX_COORDS + (size_t)nforce;
  const size_t m = all ? n : (size_t)FD_MAX_COORDS + nforce;
  float *gs = malloc(sizeof(float) * m);
  double *fd = malloc(sizeof(double) * m);
  for (size_t s = 0; s < m; s++) {
    size_t i = all ? s : s < (size_t)nforce ? force[s] : rng_below(&g_rng, n);
    const double p0 = p[i];
    p[i] = p0 + FD_H;
    const double lp = fd_loss(f);
    p[i] = p0 - FD_H;
    const double lm = fd_loss(f);
    p[i] = p0;
    fd[s] = (lp - lm) / (2 * FD_H);
    gs[s] = grad[i];
  }
  char label[128];
  snprintf(label, sizeof label, "%s (%zu of %zu coords)", name, m, n);
  CHECK_REL(label, rel_err_f32_f64(gs, fd, m), TOL_GRAD_OP_F32);
  // Directions: |dL/du (FD) - grad . u| / ||grad||, u ~ N(0, I).
  double gn = 0;
  for (size_t i = 0; i < n; i++) gn += (double)grad[i] * grad[i];
  gn = sqrt(gn);
  double *p0 = malloc(sizeof(double) * n), *u = malloc(sizeof(double) * n);
  memcpy(p0, p, sizeof(double) * n);
  double worst = 0;
  for (int d = 0; d < FD_DIRS; d++) {
    double ana = 0;
    for (size_t i = 0; i < n; i++) u[i] = rng_normal(&g_rng), ana += u[i] * grad[i];
    for (size_t i = 0; i < n; i++) p[i] = p0[i] + FD_H * u[i];
    const double lp = fd_loss(f);
    for (size_t i = 0; i < n; i++) p[i] = p0[i] - FD_H * u[i];
    const double lm = fd_loss(f);
    memcpy(p, p0, sizeof(double) * n);
    double e = fabs((lp - lm) / (2 * FD_H) - ana) / (gn > 1e-300 ? gn : 1e-150);
    if (isnan(e) || isnan(ana)) e = INFINITY;
    worst = e > worst ? e : worst;
  }
  snprintf(label, sizeof label, "%s (%d directions)", name, FD_DIRS);
  CHECK_REL(label, worst, TOL_GRAD_OP_F32);
  free(gs), free(fd), free(u), free(p0);
}

// After a second backward call: parameter gradient g2 must be 2 * g1, input gradient unchanged.
static void check_accum(const char *name, const float *g2, const float *g1, size_t n, int doubled) {
  float *want = malloc(sizeof(float) * n);
  for (size_t i = 0; i < n; i++) want[i] = doubled ? 2 * g1[i] : g1[i];
  char label[128];
  snprintf(label, sizeof label, "%s after 2nd call (%s)", name, doubled ? "= 2x" : "overwritten");
  CHECK_REL(label, rel_err_f32(g2, want, n), TOL_GRAD_ACCUM);
  free(want);
}

static float *snapshot(const float *p, size_t n) {
  float *s = malloc(sizeof(float) * n);
  memcpy(s, p, sizeof(float) * n);
  return s;
}

// ---- conv1d -----------------------------------------------------------------------------------
typedef struct {
  int B, Tin, Cin, Cout, K, S, pad, G, Tout;
  double *x, *w, *b;
} conv_op;

static void conv_ref(const void *vp, double *y) {
  const conv_op *o = vp;
  const int Cg = o->Cin / o->G, Cgo = o->Cout / o->G;
  for (int b = 0; b < o->B; b++)
    for (int t = 0; t < o->Tout; t++)
      for (int oc = 0; oc < o->Cout; oc++) {
        double acc = o->b ? o->b[oc] : 0;
        const int g = oc / Cgo;
        for (int c = 0; c < Cg; c++)
          for (int k = 0; k < o->K; k++) {
            const int ti = t * o->S + k - o->pad;
            if (ti < 0 || ti >= o->Tin) continue;
            acc += o->x[((size_t)b * o->Tin + ti) * o->Cin + g * Cg + c] * o->w[((size_t)oc * Cg + c) * o->K + k];
          }
        y[((size_t)b * o->Tout + t) * o->Cout + oc] = acc;
      }
}

static void test_conv1d(hb_ctx *ctx, int B, int Tin, int Cin, int Cout, int K, int S, int pad, int G, int bias) {
  const int Tout = (Tin + 2 * pad - K) / S + 1, Cg = Cin / G;
  const size_t nx = (size_t)B * Tin * Cin, nw = (size_t)Cout * Cg * K, ny = (size_t)B * Tout * Cout;
  float *x = randn(nx, 1), *w = randn(nw, 0.3), *b = randn(Cout, 0.5), *dy = randn(ny, 1);
  conv_op op = {B, Tin, Cin, Cout, K, S, pad, G, Tout, to_f64(x, nx), to_f64(w, nw), bias ? to_f64(b, Cout) : NULL};
  double *R = to_f64(dy, ny), *y = malloc(sizeof(double) * ny);
  fd_problem f = {conv_ref, &op, R, y, ny};
  float *dx = alloc_grad(nx, NAN), *dw = alloc_grad(nw, 0), *db = alloc_grad(Cout, 0);
  char name[128];
  snprintf(name, sizeof name, "conv1d B%d T%d %d->%d k%d s%d p%d g%d%s", B, Tin, Cin, Cout, K, S, pad, G, bias ? " +b" : "");
  printf("%s\n", name);
  CHECK_OK(ctx->be->conv1d_backward(ctx, dx, dw, bias ? db : NULL, dy, x, w, B, Tin, Cin, Cout, K, S, pad, G));
  const size_t fx[2] = {0, nx - 1};  // first and last input frame (the last may be uncovered: 0)
  fd_check(&f, "  dx", op.x, nx, dx, fx, 2);
  fd_check(&f, "  dw", op.w, nw, dw, NULL, 0);
  if (bias) fd_check(&f, "  dbias", op.b, Cout, db, NULL, 0);
  float *dx1 = snapshot(dx, nx), *dw1 = snapshot(dw, nw), *db1 = snapshot(db, Cout);
  CHECK_OK(ctx->be->conv1d_backward(ctx, dx, dw, bias ? db : NULL, dy, x, w, B, Tin, Cin, Cout, K, S, pad, G));
  check_accum("  dx", dx, dx1, nx, 0);
  check_accum("  dw", dw, dw1, nw, 1);
  if (bias) check_accum("  dbias", db, db1, Cout, 1);
  // Optional gradients: dw alone, then dx alone, must equal the full call's.
  memset(dw, 0, sizeof(float) * nw);
  CHECK_OK(ctx->be->conv1d_backward(ctx, NULL, dw, NULL, dy, x, w, B, Tin, Cin, Cout, K, S, pad, G));
  CHECK_REL("  dw with dx = dbias = NULL", rel_err_f32(dw, dw1, nw), TOL_GRAD_ACCUM);
  for (size_t i = 0; i < nx; i++) dx[i] = NAN;
  CHECK_OK(ctx->be->conv1d_backward(ctx, dx, NULL, NULL, dy, x, w, B, Tin, Cin, Cout, K, S, pad, G));
  CHECK_REL("  dx with dw = dbias = NULL", rel_err_f32(dx, dx1, nx), TOL_GRAD_ACCUM);
  CHECK(guard_ok(dx, nx) && guard_ok(dw, nw) && guard_ok(db, Cout));
  free(x), free(w), free(b), free(dy), free(op.x), free(op.w), free(op.b), free(R), free(y);
  free(dx), free(dw), free(db), free(dx1), free(dw1), free(db1);
}

// ---- linear -----------------------------------------------------------------------------------
typedef struct {
  int N, Cin, Cout;
  double *x, *w, *b;
} linear_op;

static void linear_ref(const void *vp, double *y) {
  const linear_op *o = vp;
  for (int n = 0; n < o->N; n++)
    for (int j = 0; j < o->Cout; j++) {
      double acc = o->b[j];
      for (int c = 0; c < o->Cin; c++) acc += o->x[(size_t)n * o->Cin + c] * o->w[(size_t)j * o->Cin + c];
      y[(size_t)n * o->Cout + j] = acc;
    }
}

static void test_linear(hb_ctx *ctx, int N, int Cin, int Cout) {
  const size_t nx = (size_t)N * Cin, nw = (size_t)Cout * Cin, ny = (size_t)N * Cout;
  float *x = randn(nx, 1), *w = randn(nw, 0.2), *b = randn(Cout, 1), *dy = randn(ny, 1);
  linear_op op = {N, Cin, Cout, to_f64(x, nx), to_f64(w, nw), to_f64(b, Cout)};
  double *R = to_f64(dy, ny), *y = malloc(sizeof(double) * ny);
  fd_problem f = {linear_ref, &op, R, y, ny};
  float *dx = alloc_grad(nx, NAN), *dw = alloc_grad(nw, 0), *db = alloc_grad(Cout, 0);
  printf("linear N%d %d->%d\n", N, Cin, Cout);
  CHECK_OK(ctx->be->linear_backward(ctx, dx, dw, db, dy, x, w, N, Cin, Cout));
  fd_check(&f, "  dx", op.x, nx, dx, NULL, 0);
  fd_check(&f, "  dw", op.w, nw, dw, NULL, 0);
  fd_check(&f, "  dbias", op.b, Cout, db, NULL, 0);
  float *dx1 = snapshot(dx, nx), *dw1 = snapshot(dw, nw), *db1 = snapshot(db, Cout);
  CHECK_OK(ctx->be->linear_backward(ctx, dx, dw, db, dy, x, w, N, Cin, Cout));
  check_accum("  dx", dx, dx1, nx, 0);
  check_accum("  dw", dw, dw1, nw, 1);
  check_accum("  dbias", db, db1, Cout, 1);
  CHECK(guard_ok(dx, nx) && guard_ok(dw, nw) && guard_ok(db, Cout));
  free(x), free(w), free(b), free(dy), free(op.x), free(op.w), free(op.b), free(R), free(y);
  free(dx), free(dw), free(db), free(dx1), free(dw1), free(db1);
}

// ---- layer norm / group norm --------------------------------------------------------------------
// One reference for both: statistics over the values sharing (b, group) (group norm on (B, T, C))
// or a row (layer norm: B = N rows, T = 1, G = 1).
typedef struct {
  int B, T, C, G;
  double eps, *x, *g, *b;
} norm_op;

static void norm_ref(const void *vp, double *y) {
  const norm_op *o = vp;
  const int Cg = o->C / o->G;
  for (int b = 0; b < o->B; b++)
    for (int gg = 0; gg < o->G; gg++) {
      double m = 0, v = 0, n = (double)o->T * Cg;
      for (int t = 0; t < o->T; t++)
        for (int c = gg * Cg; c < (gg + 1) * Cg; c++) m += o->x[((size_t)b * o->T + t) * o->C + c];
      m /= n;
      for (int t = 0; t < o->T; t++)
        for (int c = gg * Cg; c < (gg + 1) * Cg; c++) v += pow(o->x[((size_t)b * o->T + t) * o->C + c] - m, 2);
      const double rstd = 1 / sqrt(v / n + o->eps);
      for (int t = 0; t < o->T; t++)
        for (int c = gg * Cg; c < (gg + 1) * Cg; c++) {
          const size_t i = ((size_t)b * o->T + t) * o->C + c;
          y[i] = (o->x[i] - m) * rstd * o->g[c] + o->b[c];
        }
    }
}

// layer: N = B rows of C (T = G = 1 in the reference's terms).
static void test_norm(hb_ctx *ctx, int layer, int B, int T, int C, int G) {
  const float eps = 1e-5f;
  const size_t n = (size_t)B * T * C, nst = layer ? (size_t)B * T * 2 : (size_t)B * G * 2;
  float *x = randn(n, 2), *g = randn(C, 1), *bt = randn(C, 1), *dy = randn(n, 1);
  for (size_t i = 0; i < n; i++) x[i] += 3.0f;  // offset mean
  norm_op op = {layer ? B * T : B, layer ? 1 : T, C, layer ? 1 : G, eps, to_f64(x, n), to_f64(g, C), to_f64(bt, C)};
  double *R = to_f64(dy, n), *yref = malloc(sizeof(double) * n);
  fd_problem f = {norm_ref, &op, R, yref, n};
  char name[96];
  if (layer) snprintf(name, sizeof name, "layer_norm N%d C%d", B * T, C);
  else snprintf(name, sizeof name, "group_norm B%d T%d C%d G%d", B, T, C, G);
  printf("%s\n", name);
  // Train forward: same output as the plain forward, plus statistics.
  float *y = alloc_grad(n, NAN), *y0 = alloc_grad(n, NAN), *st = alloc_grad(nst, NAN);
  if (layer) {
    CHECK_OK(ctx->be->layer_norm(ctx, y0, x, g, bt, B * T, C, eps));
    CHECK_OK(ctx->be->layer_norm_train(ctx, y, st, x, g, bt, B * T, C, eps));
  } else {
    CHECK_OK(ctx->be->group_norm(ctx, y0, x, g, bt, B, T, C, G, eps));
    CHECK_OK(ctx->be->group_norm_train(ctx, y, st, x, g, bt, B, T, C, G, eps));
  }
  norm_ref(&op, yref);
  CHECK_REL("  train forward vs forward", rel_err_f32(y, y0, n), TOL_GRAD_ACCUM);
  CHECK_REL("  train forward vs double", rel_err_f32_f64(y, yref, n), TOL_F32_OP);
  CHECK(guard_ok(y, n) && guard_ok(st, nst));
  int st_ok = 1;
  for (size_t i = 0; i < nst / 2; i++) st_ok &= isfinite(st[2 * i]) && st[2 * i + 1] > 0 && isfinite(st[2 * i + 1]);
  CHECK(st_ok);
  float *dx = alloc_grad(n, NAN), *dg = alloc_grad(C, 0), *db = alloc_grad(C, 0);
#define NORM_BWD(DX, DG, DB, DY)                                                                    \
  (layer ? ctx->be->layer_norm_backward(ctx, DX, DG, DB, DY, x, st, g, B * T, C)                   \
         : ctx->be->group_norm_backward(ctx, DX, DG, DB, DY, x, st, g, B, T, C, G))
  CHECK_OK(NORM_BWD(dx, dg, db, dy));
  fd_check(&f, "  dx", op.x, n, dx, NULL, 0);
  fd_check(&f, "  dgamma", op.g, C, dg, NULL, 0);
  fd_check(&f, "  dbeta", op.b, C, db, NULL, 0);
  float *dx1 = snapshot(dx, n), *dg1 = snapshot(dg, C), *db1 = snapshot(db, C);
  CHECK_OK(NORM_BWD(dx, dg, db, dy));
  check_accum("  dx", dx, dx1, n, 0);
  check_accum("  dgamma", dg, dg1, C, 1);
  check_accum("  dbeta", db, db1, C, 1);
  // dx may alias dy; parameter gradients optional.
  memcpy(dx, dy, sizeof(float) * n);
  CHECK_OK(NORM_BWD(dx, NULL, NULL, dx));
  CHECK_REL("  dx in place (dx == dy)", rel_err_f32(dx, dx1, n), TOL_GRAD_ACCUM);
#undef NORM_BWD
  CHECK(guard_ok(dx, n) && guard_ok(dg, C) && guard_ok(db, C));
  free(x), free(g), free(bt), free(dy), free(op.x), free(op.g), free(op.b), free(R), free(yref);
  free(y), free(y0), free(st), free(dx), free(dg), free(db), free(dx1), free(dg1), free(db1);
}

// ---- GELU, softmax --------------------------------------------------------------------------
typedef struct {
  int N, D;
  double *x;
} rows_op;

static void gelu_ref(const void *vp, double *y) {
  const rows_op *o = vp;
  for (size_t i = 0; i < (size_t)o->N * o->D; i++) y[i] = 0.5 * o->x[i] * (1 + erf(o->x[i] / sqrt(2.0)));
}
static void softmax_ref(const void *vp, double *y) {
  const rows_op *o = vp;
  for (int n = 0; n < o->N; n++) {
    const double *r = o->x + (size_t)n * o->D;
    double m = -1e300, s = 0;
    for (int d = 0; d < o->D; d++) m = fmax(m, r[d]);
    for (int d = 0; d < o->D; d++) s += exp(r[d] - m);
    for (int d = 0; d < o->D; d++) y[(size_t)n * o->D + d] = exp(r[d] - m) / s;
  }
}

static void test_gelu_softmax(hb_ctx *ctx) {
  const int N = 9, D = 31;
  const size_t n = (size_t)N * D;
  float *x = randn(n, 3), *dy = randn(n, 1);
  x[0] = 0.0f, x[1] = -9.0f, x[2] = 9.0f, x[3] = 1e-4f;  // gelu'(0) = 0.5, saturated tails
  rows_op op = {N, D, to_f64(x, n)};
  double *R = to_f64(dy, n), *yref = malloc(sizeof(double) * n);
  float *dx = alloc_grad(n, NAN), *y = alloc_grad(n, NAN);
  printf("gelu n%zu\n", n);
  fd_problem f = {gelu_ref, &op, R, yref, n};
  CHECK_OK(ctx->be->gelu_backward(ctx, dx, dy, x, n));
  const size_t force[4] = {0, 1, 2, 3};
  fd_check(&f, "  dx", op.x, n, dx, force, 4);
  float *dx1 = snapshot(dx, n);
  memcpy(dx, dy, sizeof(float) * n);
  CHECK_OK(ctx->be->gelu_backward(ctx, dx, dx, x, n));
  CHECK_REL("  dx in place (dx == dy)", rel_err_f32(dx, dx1, n), TOL_GRAD_ACCUM);
  CHECK(guard_ok(dx, n));
  printf("softmax N%d D%d\n", N, D);
  f.fwd = softmax_ref;
  memcpy(y, x, sizeof(float) * n);
  CHECK_OK(ctx->be->softmax(ctx, y, N, D));
  for (size_t i = 0; i < n; i++) dx[i] = NAN;
  CHECK_OK(ctx->be->softmax_backward(ctx, dx, dy, y, N, D));
  fd_check(&f, "  dx", op.x, n, dx, NULL, 0);
  CHECK(guard_ok(dx, n) && guard_ok(y, n));
  free(x), free(dy), free(op.x), free(R), free(yref), free(dx), free(y), free(dx1);
}

// ---- attention --------------------------------------------------------------------------------
typedef struct {
  int B, T, H, Dh;
  const int *len;
  double scale, *q, *k, *v, *s;  // s: (T) scratch
  float p;                       // dropout on the probabilities (the keep rule of dropout_mask.h)
  uint64_t seed;
} att_op;

static void att_ref(const void *vp, double *y) {
  const att_op *o = vp;
  const int C = o->H * o->Dh;
  for (int b = 0; b < o->B; b++)
    for (int h = 0; h < o->H; h++)
      for (int t = 0; t < o->T; t++) {
        const int S = o->len ? o->len[b] : o->T;
        const double *qr = o->q + ((size_t)b * o->T + t) * C + h * o->Dh;
        double m = -1e300, sum = 0;
        for (int j = 0; j < S; j++) {
          const double *kr = o->k + ((size_t)b * o->T + j) * C + h * o->Dh;
          double d = 0;
          for (int e = 0; e < o->Dh; e++) d += qr[e] * kr[e];
          o->s[j] = d * o->scale;
          m = fmax(m, o->s[j]);
        }
        for (int j = 0; j < S; j++) sum += o->s[j] = exp(o->s[j] - m);
        double *yr = y + ((size_t)b * o->T + t) * C + h * o->Dh;
        for (int e = 0; e < o->Dh; e++) yr[e] = 0;
        const uint64_t thr = hb_dropout_threshold(o->p);
        for (int j = 0; j < S; j++) {
          const double *vr = o->v + ((size_t)b * o->T + j) * C + h * o->Dh;
          double pj = o->s[j] / sum;
          if (o->p > 0)
            pj = hb_dropout_keep(o->seed, hb_attention_dropout_index(b, h, t, j, o->H, o->T), thr) ? pj / (1.0 - o->p) : 0;
          for (int e = 0; e < o->Dh; e++) yr[e] += pj * vr[e];
        }
      }
}

static void test_attention(hb_ctx *ctx, int B, int T, int H, int Dh, int padded, float p) {
  const int C = H * Dh;
  const size_t n = (size_t)B * T * C, nl = (size_t)B * H * T;
  float *q = randn(n, 1), *k = randn(n, 1), *v = randn(n, 1), *dy = randn(n, 1);
  int *len = malloc(sizeof(int) * B);
  for (int b = 0; b < B; b++) len[b] = padded ? (b == 0 ? T : rand_int(1 + T / 3, T - 1)) : T;
  att_op op = {B, T, H, Dh, padded ? len : NULL, 1.0 / sqrt((double)Dh), to_f64(q, n), to_f64(k, n), to_f64(v, n),
               malloc(sizeof(double) * T), p, rng_u64(&g_rng)};
  const uint64_t dseed = op.seed;
  double *R = to_f64(dy, n), *yref = malloc(sizeof(double) * n);
  fd_problem f = {att_ref, &op, R, yref, n};
  char name[96];
  snprintf(name, sizeof name, "attention B%d T%d H%d Dh%d%s dropout %.2f", B, T, H, Dh, padded ? " padded" : "", p);
  printf("%s (len[B-1] = %d)\n", name, len[B - 1]);
  const float scale = (float)op.scale;
  float *y = alloc_grad(n, NAN), *y0 = alloc_grad(n, NAN), *lse = alloc_grad(nl, NAN);
  CHECK_OK(ctx->be->attention(ctx, y0, q, k, v, op.len, B, T, H, Dh, scale));
  CHECK_OK(ctx->be->attention_train(ctx, y, lse, q, k, v, op.len, B, T, H, Dh, scale, p, dseed));
  att_ref(&op, yref);
  if (p == 0.0f) CHECK_REL("  train forward vs forward", rel_err_f32(y, y0, n), TOL_GRAD_ACCUM);
  CHECK_REL("  train forward vs double", rel_err_f32_f64(y, yref, n), TOL_F32_OP);
  // lse against double for item B-1 (padded), head H-1, all rows.
  {
    const int b = B - 1, h = H - 1, S = len[b];
    float *got = malloc(sizeof(float) * T);
    double *want = malloc(sizeof(double) * T);
    for (int t = 0; t < T; t++) {
      double m = -1e300, s = 0;
      for (int j = 0; j < S; j++) {
        double d = 0;
        for (int e = 0; e < Dh; e++) d += op.q[((size_t)b * T + t) * C + h * Dh + e] * op.k[((size_t)b * T + j) * C + h * Dh + e];
        op.s[j] = d * op.scale, m = fmax(m, op.s[j]);
      }
      for (int j = 0; j < S; j++) s += exp(op.s[j] - m);
      want[t] = m + log(s), got[t] = lse[((size_t)b * H + h) * T + t];
    }
    CHECK_REL("  logsumexp vs double", rel_err_f32_f64(got, want, T), TOL_F32_OP);
    free(got), free(want);
  }
  float *dq = alloc_grad(n, NAN), *dk = alloc_grad(n, NAN), *dv = alloc_grad(n, NAN);
  CHECK_OK(ctx->be->attention_backward(ctx, dq, dk, dv, dy, q, k, v, lse, op.len, B, T, H, Dh, scale, p, dseed));
  // Chosen coordinates: a query row in the last block, a padded key/value (gradient 0), a padded
  // query row, the first element.
  const int b = B - 1, tl = len[b] < T ? len[b] : T - 1;
  const size_t force[3] = {0, ((size_t)b * T + T - 1) * C + C - 1, ((size_t)b * T + tl) * C};
  fd_check(&f, "  dq", op.q, n, dq, force, 3);
  fd_check(&f, "  dk", op.k, n, dk, force, 3);
  fd_check(&f, "  dv", op.v, n, dv, force, 3);
  if (padded) {
    int zero = 1;
    for (int bb = 0; bb < B; bb++)
      for (size_t i = (size_t)len[bb] * C; i < (size_t)T * C; i++) zero &= dk[(size_t)bb * T * C + i] == 0 && dv[(size_t)bb * T * C + i] == 0;
    CHECK(zero);
  }
  float *dq1 = snapshot(dq, n), *dk1 = snapshot(dk, n), *dv1 = snapshot(dv, n);
  CHECK_OK(ctx->be->attention_backward(ctx, dq, dk, dv, dy, q, k, v, lse, op.len, B, T, H, Dh, scale, p, dseed));
  check_accum("  dq", dq, dq1, n, 0);
  check_accum("  dk", dk, dk1, n, 0);
  check_accum("  dv", dv, dv1, n, 0);
  for (size_t i = 0; i < n; i++) dk[i] = NAN;
  CHECK_OK(ctx->be->attention_backward(ctx, NULL, dk, NULL, dy, q, k, v, lse, op.len, B, T, H, Dh, scale, p, dseed));
  CHECK_REL("  dk with dq = dv = NULL", rel_err_f32(dk, dk1, n), TOL_GRAD_ACCUM);
  for (size_t i = 0; i < n; i++) dv[i] = NAN;
  CHECK_OK(ctx->be->attention_backward(ctx, NULL, NULL, dv, dy, q, k, v, lse, op.len, B, T, H, Dh, scale, p, dseed));
  CHECK_REL("  dv with dq = dk = NULL", rel_err_f32(dv, dv1, n), TOL_GRAD_ACCUM);
  CHECK(guard_ok(dq, n) && guard_ok(dk, n) && guard_ok(dv, n) && guard_ok(y, n) && guard_ok(lse, nl));
  free(q), free(k), free(v), free(dy), free(len), free(op.q), free(op.k), free(op.v), free(op.s), free(R), free(yref);
  free(y), free(y0), free(lse), free(dq), free(dk), free(dv), free(dq1), free(dk1), free(dv1);
}

// ---- weight norm, padding mask, axpy/scale ----------------------------------------------------
typedef struct {
  int O, In, K;
  double *v, *g;
} wn_op;

static void wn_ref(const void *vp, double *w) {
  const wn_op *o = vp;
  const size_t OI = (size_t)o->O * o->In;
  for (int k = 0; k < o->K; k++) {
    double s = 0;
    for (size_t oi = 0; oi < OI; oi++) s += o->v[oi * o->K + k] * o->v[oi * o->K + k];
    for (size_t oi = 0; oi < OI; oi++) w[oi * o->K + k] = o->g[k] * o->v[oi * o->K + k] / sqrt(s);
  }
}

static void test_weight_norm(hb_ctx *ctx, int O, int In, int K) {
  const size_t n = (size_t)O * In * K;
  float *v = randn(n, 1), *g = randn(K, 1), *dw = randn(n, 1);
  wn_op op = {O, In, K, to_f64(v, n), to_f64(g, K)};
  double *R = to_f64(dw, n), *w = malloc(sizeof(double) * n);
  fd_problem f = {wn_ref, &op, R, w, n};
  float *dv = alloc_grad(n, 0), *dg = alloc_grad(K, 0);
  printf("weight_norm (%d, %d, %d)\n", O, In, K);
  CHECK_OK(ctx->be->weight_norm_backward(ctx, dv, dg, dw, v, g, O, In, K));
  fd_check(&f, "  dv", op.v, n, dv, NULL, 0);
  fd_check(&f, "  dg", op.g, K, dg, NULL, 0);
  float *dv1 = snapshot(dv, n), *dg1 = snapshot(dg, K);
  CHECK_OK(ctx->be->weight_norm_backward(ctx, dv, dg, dw, v, g, O, In, K));
  check_accum("  dv", dv, dv1, n, 1);
  check_accum("  dg", dg, dg1, K, 1);
  CHECK(guard_ok(dv, n) && guard_ok(dg, K));
  free(v), free(g), free(dw), free(op.v), free(op.g), free(R), free(w), free(dv), free(dg), free(dv1), free(dg1);
}

static void test_mask_axpy_scale(hb_ctx *ctx) {
  const int B = 3, T = 9, C = 5;
  const size_t n = (size_t)B * T * C;
  float *dx = alloc_grad(n, 0), *x0 = randn(n, 1), *y = alloc_grad(n, 0);
  memcpy(dx, x0, sizeof(float) * n);
  int len[3] = {9, 4, 1};
  CHECK_OK(ctx->be->mask_padding_backward(ctx, dx, len, B, T, C));
  int ok = 1;
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      for (int c = 0; c < C; c++) {
        const size_t i = ((size_t)b * T + t) * C + c;
        ok &= t < len[b] ? dx[i] == x0[i] : dx[i] == 0.0f;
      }
  CHECK(ok);
  CHECK_OK(ctx->be->scale(ctx, y, x0, -0.5f, n));
  CHECK_OK(ctx->be->axpy(ctx, y, 2.0f, x0, n));  // y = -0.5 x + 2 x = 1.5 x
  ok = 1;
  for (size_t i = 0; i < n; i++) ok &= fabsf(y[i] - 1.5f * x0[i]) <= 1e-6f * fabsf(x0[i]);
  CHECK(ok);
  CHECK(guard_ok(dx, n) && guard_ok(y, n));
  printf("mask_padding_backward, scale, axpy: %s\n", ok ? "ok" : "FAIL");
  free(dx), free(x0), free(y);
}

// The checker itself: a NaN or a wrong element in a gradient must fail.
static void test_checker_fails(void) {
  double ref[4] = {1, 2, 3, 4};
  float got[4] = {1, 2, 3, 4};
  got[2] = NAN;
  CHECK(!(rel_err_f32_f64(got, ref, 4) <= TOL_GRAD_OP_F32));
  got[2] = 3.1f;
  CHECK(!(rel_err_f32_f64(got, ref, 4) <= TOL_GRAD_OP_F32));
  got[2] = 3;
  CHECK(rel_err_f32_f64(got, ref, 4) <= TOL_GRAD_OP_F32);
}

int main(void) {
  uint64_t seed = getenv("HUBERT_TEST_SEED") ? strtoull(getenv("HUBERT_TEST_SEED"), NULL, 10) : (uint64_t)time(NULL);
  printf("test_grad_ops: seed %llu (HUBERT_TEST_SEED=%llu reproduces)\n", (unsigned long long)seed, (unsigned long long)seed);
  rng_init(&g_rng, seed);
  hb_ctx ctx;
  if (ops_ctx_init(&ctx, "cpu", 0)) {
    fprintf(stderr, "%s\n", hb_errmsg());
    return 1;
  }
  test_checker_fails();
  test_conv1d(&ctx, 2, 63, 1, 8, 10, 5, 0, 1, 1);   // HuBERT's first conv (K=10, s=5, Cin=1)
  test_conv1d(&ctx, 2, 23, 6, 5, 3, 2, 0, 1, 0);    // K=3, s=2
  test_conv1d(&ctx, 2, 12, 4, 6, 3, 2, 0, 1, 1);    // K=3, s=2, even Tin (last frame unused)
  test_conv1d(&ctx, 2, 11, 4, 6, 2, 2, 0, 1, 1);    // K=2, s=2, odd Tin
  test_conv1d(&ctx, 2, 15, 8, 8, 4, 1, 2, 4, 1);    // positional conv: grouped, padded, even K
  test_conv1d(&ctx, 1, 13, 6, 6, 5, 1, 2, 3, 0);    // odd K, grouped
  test_conv1d(&ctx, 1, 12, 6, 4, 3, 3, 1, 2, 1);    // grouped with stride
  test_conv1d(&ctx, 1, 10, 3, 4, 2, 3, 0, 1, 1);    // stride > K
  for (int r = 0; r < 3; r++) {                     // random shapes
    const int G = rand_int(1, 3), Cin = G * rand_int(1, 3), Cout = G * rand_int(1, 3), K = rand_int(1, 6);
    const int S = rand_int(1, 4), pad = rand_int(0, 2) * (r > 0), Tin = K + rand_int(0, 12);
    test_conv1d(&ctx, rand_int(1, 2), Tin, Cin, Cout, K, S, pad, G, r != 1);
  }
  test_linear(&ctx, 7, 5, 4);
  test_linear(&ctx, rand_int(1, 40), rand_int(1, 20), rand_int(1, 20));
  test_norm(&ctx, 1, 2, 3, 16, 1);                  // layer norm, 6 rows of 16
  // C >= 3: with C = 2 every normalised row is (-1, 1) whatever x is, dx is O(eps / var) and
  // all that float can give is cancellation noise (relative error ~1e-3, absolute ~1e-8).
  test_norm(&ctx, 1, 1, rand_int(1, 9), rand_int(3, 40), 1);
  test_norm(&ctx, 0, 2, 7, 6, 6);                   // group norm, G = C (HuBERT's first conv layer)
  test_norm(&ctx, 0, 2, 5, 6, 3);
  test_norm(&ctx, 0, 1, 9, 4, 1);
  test_gelu_softmax(&ctx);
  test_attention(&ctx, 2, 11, 3, 4, 0, 0.0f);
  test_attention(&ctx, 2, 300, 2, 4, 1, 0.0f);      // several query blocks (128), padded keys
  test_attention(&ctx, 2, 11, 3, 4, 0, 0.3f);       // dropout on the probabilities
  test_attention(&ctx, 2, 300, 2, 4, 1, 0.3f);
  test_weight_norm(&ctx, 4, 3, 5);
  test_weight_norm(&ctx, 6, 2, 8);                  // positional-conv layout (O, In/groups, K)
  test_mask_axpy_scale(&ctx);
  ops_ctx_free(&ctx);
  return test_summary("test_grad_ops");
}
