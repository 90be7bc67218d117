// CUDA backend vs CPU backend: the training forwards (layer/group norm with statistics, attention
// with lse and dropout) and the backward of every trunk op, on fresh random inputs (fp32, rel. L2
// error < TOL_CUDA_F32, attention gradients < TOL_CUDA_ATT_BWD; NaN never passes: overwritten
// outputs start as NaN and rel_err_f32 maps NaN/inf to +inf). Every device output is followed by
// GUARD sentinel floats (an out-of-bounds write fails); parameter gradients start from the same
// random values on both backends (accumulation, +=, is checked); in-place variants where ops.h
// allows aliasing; NULL optional outputs; padded batches for attention and the mask; finally
// ops_check_backward() on the CUDA context. Skips (77) without the CUDA backend or a GPU.
// Seed: fresh each run, HUBERT_TEST_SEED fixes it. HUBERT_CUDA_TEST_QUICK=1 skips the HuBERT-sized
// shapes (for compute-sanitizer).
#include <math.h>
#include <stdio.h>

#include "tests/cuda/cuda_test_util.h"

// ---- linear, conv1d -------------------------------------------------------------------------------
static void test_linear(int N, int Cin, int Cout, int bias, int want_dx) {
  const size_t nx = (size_t)N * Cin, nw = (size_t)Cout * Cin, ny = (size_t)N * Cout;
  float *x = ct_randn(nx, 1), *w = ct_randn(nw, 0.1), *dy = ct_randn(ny, 1), *dw0 = ct_randn(nw, 1), *db0 = ct_randn(Cout, 1);
  float *dx = ct_nan(nx), *dw = ct_copy(dw0, nw), *db = ct_copy(db0, Cout);
  CHECK_OK(ct_cpu.be->linear_backward(&ct_cpu, want_dx ? dx : NULL, dw, bias ? db : NULL, dy, x, w, N, Cin, Cout));
  float *gx = ct_dev(x, nx), *gw = ct_dev(w, nw), *gdy = ct_dev(dy, ny);
  float *gdx = want_dx ? ct_dev(NULL, nx) : NULL, *gdw = ct_dev(dw0, nw), *gdb = ct_dev(db0, Cout);
  CHECK_OK(ct_gpu.be->linear_backward(&ct_gpu, gdx, gdw, bias ? gdb : NULL, gdy, gx, gw, N, Cin, Cout));
  char name[96];
  if (want_dx) {
    snprintf(name, sizeof name, "linear_bw %d x %d->%d dx", N, Cin, Cout);
    ct_check(name, gdx, dx, nx, TOL_CUDA_F32);
  }
  snprintf(name, sizeof name, "linear_bw %d x %d->%d dw +=", N, Cin, Cout);
  ct_check(name, gdw, dw, nw, TOL_CUDA_F32);
  snprintf(name, sizeof name, "linear_bw %d x %d->%d dbias %s", N, Cin, Cout, bias ? "+=" : "(NULL: untouched)");
  ct_check(name, gdb, db, Cout, TOL_CUDA_F32);  // without bias db == db0 on both sides
  ct_free(gx), ct_free(gw), ct_free(gdy);
  free(x), free(w), free(dy), free(dw0), free(db0), free(dx), free(dw), free(db);
}

static void test_conv1d(int B, int Tin, int Cin, int Cout, int K, int S, int pad, int G, int bias) {
  const int Tout = (Tin + 2 * pad - K) / S + 1;
  const size_t nx = (size_t)B * Tin * Cin, nw = (size_t)Cout * (Cin / G) * K, ny = (size_t)B * Tout * Cout;
  float *x = ct_randn(nx, 1), *w = ct_randn(nw, 0.3), *dy = ct_randn(ny, 1), *dw0 = ct_randn(nw, 1), *db0 = ct_randn(Cout, 1);
  float *dx = ct_nan(nx), *dw = ct_copy(dw0, nw), *db = ct_copy(db0, Cout);
  CHECK_OK(ct_cpu.be->conv1d_backward(&ct_cpu, dx, dw, bias ? db : NULL, dy, x, w, B, Tin, Cin, Cout, K, S, pad, G));
  float *gx = ct_dev(x, nx), *gw = ct_dev(w, nw), *gdy = ct_dev(dy, ny), *gdx = ct_dev(NULL, nx), *gdw = ct_dev(dw0, nw),
        *gdb = ct_dev(db0, Cout);
  CHECK_OK(ct_gpu.be->conv1d_backward(&ct_gpu, gdx, gdw, bias ? gdb : NULL, gdy, gx, gw, B, Tin, Cin, Cout, K, S, pad, G));
  char name[96];
  snprintf(name, sizeof name, "conv1d_bw B%d T%d %d->%d k%d s%d p%d g%d dx", B, Tin, Cin, Cout, K, S, pad, G);
  ct_check(name, gdx, dx, nx, TOL_CUDA_F32);
  snprintf(name, sizeof name, "conv1d_bw ... dw +=");
  ct_check(name, gdw, dw, nw, TOL_CUDA_F32);
  snprintf(name, sizeof name, "conv1d_bw ... dbias %s", bias ? "+=" : "(NULL)");
  ct_check(name, gdb, db, Cout, TOL_CUDA_F32);
  // dw only (dx NULL): the same dw increment again
  for (size_t i = 0; i < nw; i++) dw[i] = dw0[i];
  CHECK_OK(ct_cpu.be->conv1d_backward(&ct_cpu, NULL, dw, NULL, dy, x, w, B, Tin, Cin, Cout, K, S, pad, G));
  gdw = ct_dev(dw0, nw);
  CHECK_OK(ct_gpu.be->conv1d_backward(&ct_gpu, NULL, gdw, NULL, gdy, gx, gw, B, Tin, Cin, Cout, K, S, pad, G));
  ct_check("conv1d_bw ... dw only (dx NULL)", gdw, dw, nw, TOL_CUDA_F32);
  ct_free(gx), ct_free(gw), ct_free(gdy);
  free(x), free(w), free(dy), free(dw0), free(db0), free(dx), free(dw), free(db);
}

// ---- norms ----------------------------------------------------------------------------------------
// Layer norm over (N, C) rows; inputs with an offset mean (the two-pass variance). dx out of
// place and in place (dx = dy); gamma NULL when !affine (then no dgamma, dbeta still accumulates).
static void test_layer_norm(int N, int C, int affine) {
  const size_t n = (size_t)N * C;
  float *x = ct_randn(n, 2), *g = ct_randn(C, 1), *bt = ct_randn(C, 1), *dy = ct_randn(n, 1), *dg0 = ct_randn(C, 1), *db0 = ct_randn(C, 1);
  for (size_t i = 0; i < n; i++) x[i] += 3.0f;
  const float *gm = affine ? g : NULL;
  float *y = ct_nan(n), *mr = ct_nan(2 * (size_t)N), *dx = ct_nan(n), *dg = ct_copy(dg0, C), *db = ct_copy(db0, C);
  CHECK_OK(ct_cpu.be->layer_norm_train(&ct_cpu, y, mr, x, gm, affine ? bt : NULL, N, C, 1e-5f));
  CHECK_OK(ct_cpu.be->layer_norm_backward(&ct_cpu, dx, affine ? dg : NULL, db, dy, x, mr, gm, N, C));
  float *gx = ct_dev(x, n), *gg = ct_dev(g, C), *gb = ct_dev(bt, C), *gy = ct_dev(NULL, n), *gmr = ct_dev(NULL, 2 * (size_t)N);
  const float *ggm = affine ? gg : NULL;
  CHECK_OK(ct_gpu.be->layer_norm_train(&ct_gpu, gy, gmr, gx, ggm, affine ? gb : NULL, N, C, 1e-5f));
  char name[96];
  snprintf(name, sizeof name, "layer_norm_train %d x %d%s y", N, C, affine ? "" : " (no affine)");
  ct_check(name, gy, y, n, TOL_CUDA_F32);
  ct_check_keep("layer_norm_train mean_rstd", gmr, mr, 2 * (size_t)N, TOL_CUDA_F32);
  for (int inplace = 0; inplace < 2; inplace++) {
    float *gdy = ct_dev(dy, n), *gdx = inplace ? gdy : ct_dev(NULL, n), *gdg = ct_dev(dg0, C), *gdb = ct_dev(db0, C);
    CHECK_OK(ct_gpu.be->layer_norm_backward(&ct_gpu, gdx, affine ? gdg : NULL, gdb, gdy, gx, gmr, ggm, N, C));
    snprintf(name, sizeof name, "layer_norm_bw %d x %d dx%s", N, C, inplace ? " (in place)" : "");
    ct_check(name, gdx, dx, n, TOL_CUDA_F32);
    ct_check("layer_norm_bw dgamma +=", gdg, dg, C, TOL_CUDA_F32);
    ct_check("layer_norm_bw dbeta +=", gdb, db, C, TOL_CUDA_F32);
    if (!inplace) ct_free(gdy);
  }
  // y in place of x (the backward then needs x elsewhere; only the forward is checked here)
  float *gxi = ct_dev(x, n);
  CHECK_OK(ct_gpu.be->layer_norm_train(&ct_gpu, gxi, gmr, gxi, ggm, affine ? gb : NULL, N, C, 1e-5f));
  ct_check("layer_norm_train in place", gxi, y, n, TOL_CUDA_F32);
  ct_free(gx), ct_free(gg), ct_free(gb), ct_free(gmr);
  free(x), free(g), free(bt), free(dy), free(dg0), free(db0), free(y), free(mr), free(dx), free(dg), free(db);
}

static void test_group_norm(int B, int T, int C, int G) {
  const size_t n = (size_t)B * T * C, ns = 2 * (size_t)B * G;
  float *x = ct_randn(n, 2), *g = ct_randn(C, 1), *bt = ct_randn(C, 1), *dy = ct_randn(n, 1), *dg0 = ct_randn(C, 1), *db0 = ct_randn(C, 1);
  for (size_t i = 0; i < n; i++) x[i] += 3.0f;
  float *y = ct_nan(n), *mr = ct_nan(ns), *dx = ct_nan(n), *dg = ct_copy(dg0, C), *db = ct_copy(db0, C);
  CHECK_OK(ct_cpu.be->group_norm_train(&ct_cpu, y, mr, x, g, bt, B, T, C, G, 1e-5f));
  CHECK_OK(ct_cpu.be->group_norm_backward(&ct_cpu, dx, dg, db, dy, x, mr, g, B, T, C, G));
  float *gx = ct_dev(x, n), *gg = ct_dev(g, C), *gb = ct_dev(bt, C), *gy = ct_dev(NULL, n), *gmr = ct_dev(NULL, ns);
  CHECK_OK(ct_gpu.be->group_norm_train(&ct_gpu, gy, gmr, gx, gg, gb, B, T, C, G, 1e-5f));
  char name[96];
  snprintf(name, sizeof name, "group_norm_train B%d T%d C%d G%d y", B, T, C, G);
  ct_check(name, gy, y, n, TOL_CUDA_F32);
  ct_check_keep("group_norm_train mean_rstd", gmr, mr, ns, TOL_CUDA_F32);
  for (int inplace = 0; inplace < 2; inplace++) {
    float *gdy = ct_dev(dy, n), *gdx = inplace ? gdy : ct_dev(NULL, n), *gdg = ct_dev(dg0, C), *gdb = ct_dev(db0, C);
    CHECK_OK(ct_gpu.be->group_norm_backward(&ct_gpu, gdx, gdg, gdb, gdy, gx, gmr, gg, B, T, C, G));
    snprintf(name, sizeof name, "group_norm_bw G%d dx%s", G, inplace ? " (in place)" : "");
    ct_check(name, gdx, dx, n, TOL_CUDA_F32);
    ct_check("group_norm_bw dgamma +=", gdg, dg, C, TOL_CUDA_F32);
    ct_check("group_norm_bw dbeta +=", gdb, db, C, TOL_CUDA_F32);
    if (!inplace) ct_free(gdy);
  }
  // parameters only (dx NULL)
  float *gdy = ct_dev(dy, n), *gdg = ct_dev(dg0, C), *gdb = ct_dev(db0, C);
  CHECK_OK(ct_gpu.be->group_norm_backward(&ct_gpu, NULL, gdg, gdb, gdy, gx, gmr, gg, B, T, C, G));
  ct_check("group_norm_bw dgamma (dx NULL)", gdg, dg, C, TOL_CUDA_F32);
  ct_check("group_norm_bw dbeta (dx NULL)", gdb, db, C, TOL_CUDA_F32);
  float *gxi = ct_dev(x, n);
  CHECK_OK(ct_gpu.be->group_norm_train(&ct_gpu, gxi, gmr, gxi, gg, gb, B, T, C, G, 1e-5f));
  ct_check("group_norm_train in place", gxi, y, n, TOL_CUDA_F32);
  ct_free(gdy), ct_free(gx), ct_free(gg), ct_free(gb), ct_free(gmr);
  free(x), free(g), free(bt), free(dy), free(dg0), free(db0), free(y), free(mr), free(dx), free(dg), free(db);
}

// ---- elementwise ----------------------------------------------------------------------------------
static void test_elementwise(size_t n, int N, int D) {
  float *x = ct_randn(n, 3), *dy = ct_randn(n, 1), *dx = ct_nan(n);
  CHECK_OK(ct_cpu.be->gelu_backward(&ct_cpu, dx, dy, x, n));
  float *gx = ct_dev(x, n), *gdy = ct_dev(dy, n), *gdx = ct_dev(NULL, n);
  CHECK_OK(ct_gpu.be->gelu_backward(&ct_gpu, gdx, gdy, gx, n));
  ct_check("gelu_backward", gdx, dx, n, TOL_CUDA_F32);
  CHECK_OK(ct_gpu.be->gelu_backward(&ct_gpu, gdy, gdy, gx, n));
  ct_check("gelu_backward in place", gdy, dx, n, TOL_CUDA_F32);
  // axpy (y += a x) and scale (y = a x, also in place)
  float *y0 = ct_randn(n, 1), *y = ct_copy(y0, n);
  CHECK_OK(ct_cpu.be->axpy(&ct_cpu, y, -0.37f, x, n));
  float *gy = ct_dev(y0, n);
  CHECK_OK(ct_gpu.be->axpy(&ct_gpu, gy, -0.37f, gx, n));
  ct_check("axpy", gy, y, n, TOL_CUDA_F32);
  CHECK_OK(ct_cpu.be->scale(&ct_cpu, y, x, 0.1f, n));
  gy = ct_dev(NULL, n);
  CHECK_OK(ct_gpu.be->scale(&ct_gpu, gy, gx, 0.1f, n));
  ct_check("scale", gy, y, n, TOL_CUDA_F32);
  CHECK_OK(ct_gpu.be->scale(&ct_gpu, gx, gx, 0.1f, n));
  ct_check("scale in place", gx, y, n, TOL_CUDA_F32);
  // softmax backward from the softmax output
  const size_t ns = (size_t)N * D;
  float *s = ct_randn(ns, 3), *ds = ct_randn(ns, 1), *dsx = ct_nan(ns);
  CHECK_OK(ct_cpu.be->softmax(&ct_cpu, s, N, D));
  CHECK_OK(ct_cpu.be->softmax_backward(&ct_cpu, dsx, ds, s, N, D));
  float *gs = ct_dev(s, ns), *gds = ct_dev(ds, ns), *gdsx = ct_dev(NULL, ns);
  CHECK_OK(ct_gpu.be->softmax_backward(&ct_gpu, gdsx, gds, gs, N, D));
  char name[64];
  snprintf(name, sizeof name, "softmax_backward %d x %d", N, D);
  ct_check(name, gdsx, dsx, ns, TOL_CUDA_F32);
  CHECK_OK(ct_gpu.be->softmax_backward(&ct_gpu, gds, gds, gs, N, D));
  ct_check("softmax_backward in place", gds, dsx, ns, TOL_CUDA_F32);
  ct_free(gs);
  free(x), free(dy), free(dx), free(y0), free(y), free(s), free(ds), free(dsx);
}

static void test_weight_norm(int O, int In, int K) {
  const size_t n = (size_t)O * In * K;
  float *v = ct_randn(n, 1), *g = ct_randn(K, 1), *dw = ct_randn(n, 1), *dv0 = ct_randn(n, 1), *dg0 = ct_randn(K, 1);
  float *dv = ct_copy(dv0, n), *dg = ct_copy(dg0, K);
  CHECK_OK(ct_cpu.be->weight_norm_backward(&ct_cpu, dv, dg, dw, v, g, O, In, K));
  float *gv = ct_dev(v, n), *gg = ct_dev(g, K), *gdw = ct_dev(dw, n), *gdv = ct_dev(dv0, n), *gdg = ct_dev(dg0, K);
  CHECK_OK(ct_gpu.be->weight_norm_backward(&ct_gpu, gdv, gdg, gdw, gv, gg, O, In, K));
  char name[64];
  snprintf(name, sizeof name, "weight_norm_bw (%d, %d, %d) dv +=", O, In, K);
  ct_check(name, gdv, dv, n, TOL_CUDA_F32);
  ct_check("weight_norm_bw dg +=", gdg, dg, K, TOL_CUDA_F32);
  ct_free(gv), ct_free(gg), ct_free(gdw);
  free(v), free(g), free(dw), free(dv0), free(dg0), free(dv), free(dg);
}

static void test_mask_padding(void) {
  const int B = 4, T = 21, C = 7, len[4] = {21, 5, 1, 20};
  const size_t n = (size_t)B * T * C;
  float *x = ct_randn(n, 1);
  float *gx = ct_dev(x, n);
  CHECK_OK(ct_cpu.be->mask_padding_backward(&ct_cpu, x, len, B, T, C));
  CHECK_OK(ct_gpu.be->mask_padding_backward(&ct_gpu, gx, len, B, T, C));
  ct_check("mask_padding_backward (lengths 21 5 1 20)", gx, x, n, 0.0);
  free(x);
}

// ---- attention ------------------------------------------------------------------------------------
// Attention gradients: tolerance TOL_CUDA_ATT_BWD (tests/tolerances.h, reason there).

// mode 0: dq, dk, dv; 1: dk, dv only (dq NULL); 2: dq only; 3: dv only.
static void test_attention(int B, int T, int H, int Dh, int padded, float p, int mode) {
  const size_t n = (size_t)B * T * H * Dh, nl = (size_t)B * H * T;
  float *q = ct_randn(n, 1), *k = ct_randn(n, 1), *v = ct_randn(n, 1), *dout = ct_randn(n, 1);
  float *out = ct_nan(n), *lse = ct_nan(nl), *dq = ct_nan(n), *dk = ct_nan(n), *dv = ct_nan(n);
  int *len = malloc(sizeof(int) * B);
  // padded: the last utterance of a batch has one frame (B > 1); a single padded utterance keeps
  // two thirds (with one key its true dK is exactly 0 and both sides would hold rounding noise).
  for (int b = 0; b < B; b++)
    len[b] = !padded ? T : B == 1 ? T - T / 3 : b == B - 1 ? 1 : T - (int)((b * 7919) % (T / 2 + 1));
  const int *L = padded ? len : NULL;
  const float scale = 1.0f / sqrtf((float)Dh);
  const uint64_t seed = rng_u64(&ct_rng);
  const int wq = mode == 0 || mode == 2, wk = mode <= 1, wv = mode != 2;
  CHECK_OK(ct_cpu.be->attention_train(&ct_cpu, out, lse, q, k, v, L, B, T, H, Dh, scale, p, seed));
  CHECK_OK(ct_cpu.be->attention_backward(&ct_cpu, wq ? dq : NULL, wk ? dk : NULL, wv ? dv : NULL, dout, q, k, v, lse, L,
                                        B, T, H, Dh, scale, p, seed));
  float *gq = ct_dev(q, n), *gk = ct_dev(k, n), *gv = ct_dev(v, n), *gdo = ct_dev(dout, n), *gout = ct_dev(NULL, n), *glse = ct_dev(NULL, nl);
  CHECK_OK(ct_gpu.be->attention_train(&ct_gpu, gout, glse, gq, gk, gv, L, B, T, H, Dh, scale, p, seed));
  char name[112];
  snprintf(name, sizeof name, "attention_train B%d T%d H%d Dh%d%s p%.2f", B, T, H, Dh, padded ? " padded" : "", p);
  if (mode == 0) {
    ct_check(name, gout, out, n, TOL_CUDA_F32);
    ct_check_keep("attention_train lse", glse, lse, nl, TOL_CUDA_F32);
  } else {
    ct_free(gout);
  }
  float *gdq = wq ? ct_dev(NULL, n) : NULL, *gdk = wk ? ct_dev(NULL, n) : NULL, *gdv = wv ? ct_dev(NULL, n) : NULL;
  CHECK_OK(ct_gpu.be->attention_backward(&ct_gpu, gdq, gdk, gdv, gdo, gq, gk, gv, glse, L, B, T, H, Dh, scale, p, seed));
  static const char *const mode_name[] = {"", " (dq NULL)", " (dq only)", " (dv only)"};
  snprintf(name, sizeof name, "attention_bw B%d T%d H%d Dh%d%s p%.2f%s", B, T, H, Dh, padded ? " padded" : "", p,
           mode_name[mode]);
  printf("  %s\n", name);
  if (wq) ct_check("  dq", gdq, dq, n, TOL_CUDA_ATT_BWD);
  if (wk) ct_check("  dk", gdk, dk, n, TOL_CUDA_ATT_BWD);
  if (wv) ct_check("  dv", gdv, dv, n, TOL_CUDA_ATT_BWD);
  ct_free(gq), ct_free(gk), ct_free(gv), ct_free(gdo), ct_free(glse);
  free(q), free(k), free(v), free(dout), free(out), free(lse), free(dq), free(dk), free(dv), free(len);
}

int main(void) {
  ct_init("test_ops_backward_cuda");
  CHECK_OK(ops_check_backward(&ct_gpu));  // every member after mask_padding is set
  const int full = !getenv("HUBERT_CUDA_TEST_QUICK");

  test_linear(77, 96, 65, 1, 1);
  if (full) test_linear(1000, 768, 256, 1, 1);  // several column-sum chunks
  test_linear(5, 33, 17, 0, 1);
  test_linear(600, 20, 12, 1, 1);  // three column-sum chunks of 256 rows
  test_linear(64, 40, 24, 1, 0);      // dx NULL
  // conv1d: HuBERT's first layer (Cin 1, k10 s5), later layers (k3 s2, k2 s2: tap GEMMs), the
  // positional conv (grouped, padded, even kernel; the Base shape spans two im2col chunks of 341
  // rows, so col2im accumulates across a chunk boundary inside an utterance), odd shapes.
  test_conv1d(2, 803, 1, 32, 10, 5, 0, 1, 1);
  if (full) test_conv1d(2, 4000, 1, 512, 10, 5, 0, 1, 0);
  test_conv1d(2, 101, 24, 40, 3, 2, 0, 1, 0);
  test_conv1d(3, 50, 32, 32, 2, 2, 0, 1, 1);
  test_conv1d(2, 37, 48, 48, 16, 1, 8, 4, 1);
  test_conv1d(1, 20, 6, 9, 5, 1, 2, 3, 1);
  test_conv1d(2, 9, 8, 8, 7, 3, 3, 2, 0);
  test_conv1d(2, 9, 8, 8, 7, 3, 0, 1, 1);  // tap GEMMs, K not a multiple of the stride
  test_conv1d(2, 64, 4, 6, 10, 5, 0, 1, 0);
  test_conv1d(2, 11, 3, 6, 4, 2, 5, 3, 1);  // padding wider than the kernel
  if (full) test_conv1d(2, 200, 768, 768, 128, 1, 64, 16, 1);
  test_conv1d(2, 30, 8, 8, 16, 1, 8, 4, 1);  // (quick mode: a grouped padded conv)
  test_layer_norm(77, 12, 1);
  test_layer_norm(130, 64, 1);  // several parameter-sum chunks (64 rows each)
  if (full) test_layer_norm(300, 768, 1);  // several parameter-sum chunks
  test_layer_norm(5, 1024, 0);
  test_group_norm(2, 37, 12, 12);
  if (full) test_group_norm(2, 300, 512, 512);  // HuBERT's first conv: G == C, chunks over T
  test_group_norm(3, 41, 45, 45);     // G == C with a partial 32-channel tile
  test_group_norm(2, 50, 48, 12);
  test_group_norm(1, 5, 64, 1);
  test_group_norm(2, 150, 40, 40);  // several frame chunks
  test_elementwise(10007, 33, 1000);
  test_elementwise(64, 4, 3);
  test_weight_norm(48, 12, 16);
  test_weight_norm(7, 3, 5);
  test_mask_padding();
  test_attention(3, 77, 4, 64, 1, 0.0f, 0);
  test_attention(3, 77, 4, 64, 1, 0.1f, 0);
  test_attention(2, 100, 2, 32, 0, 0.0f, 0);
  test_attention(2, 40, 3, 16, 1, 0.25f, 0);
  test_attention(1, 70, 2, 128, 1, 0.1f, 0);
  test_attention(1, 33, 1, 80, 0, 0.0f, 0);
  test_attention(2, 45, 2, 64, 1, 0.1f, 1);
  test_attention(2, 45, 2, 64, 1, 0.1f, 2);
  test_attention(2, 45, 2, 64, 1, 0.0f, 3);
  if (full) test_attention(2, 200, 12, 64, 1, 0.1f, 0);  // HuBERT Base heads, several tiles per key/query loop

  ops_ctx_free(&ct_gpu);
  ops_ctx_free(&ct_cpu);
  return test_summary("test_ops_backward_cuda");
}
