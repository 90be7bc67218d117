// CUDA vs CPU for the training heads, losses, dropout and optimizer ops (kernels/cuda/cuda_heads.cu,
// cuda_ctc.cu, cuda_dropout.cu, cuda_optim.cu): gather/scatter_rows, cosine_ce (several shapes,
// ldp > D, several row blocks, weights, optional outputs), softmax_ce, seq_mean_pool and its
// backward, ctc_loss (repeats, empty targets, an impossible alignment), dropout (mask bit for bit,
// in place), and AdamW through train/optim.c (CUDA moments vs host, NaN/inf skip, save/load).
// fp32 outputs: rel. L2 error < TOL_CUDA_F32; NaN never passes; guard floats after every CUDA
// output. Skips (77) without a GPU. Seed: fresh, HUBERT_TEST_SEED fixes it.
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <unistd.h>

#include "tests/cuda/cuda_test_util.h"
#include "train/optim.h"

static void test_gather_scatter(int M, int N, int C) {
  float *x = ct_randn((size_t)M * C, 1), *y = ct_nan((size_t)N * C), *dxc = ct_randn((size_t)M * C, 1);
  int *idx = malloc(sizeof(int) * M);
  for (int i = 0; i < M; i++) idx[i] = i;
  for (int i = M - 1; i > 0; i--) {  // distinct indices: a random permutation's prefix
    int j = (int)rng_below(&ct_rng, (uint64_t)i + 1), t = idx[i];
    idx[i] = idx[j], idx[j] = t;
  }
  float *dx = ct_dev(x, (size_t)M * C), *dy = ct_dev(NULL, (size_t)N * C);
  int *didx = ct_dev_int(idx, N);
  CHECK_OK(ct_cpu.be->gather_rows(&ct_cpu, y, x, idx, N, C));
  CHECK_OK(ct_gpu.be->gather_rows(&ct_gpu, dy, dx, didx, N, C));
  char name[80];
  snprintf(name, sizeof name, "gather_rows %d of %d x %d", N, M, C);
  float *h = malloc(sizeof(float) * (size_t)N * C);
  if (!ct_get(name, h, dy, sizeof(float) * N * C)) CHECK_REL(name, rel_err_f32(h, y, (size_t)N * C), 0.0);
  free(h);
  // scatter into a prefilled dx: untouched rows keep their values
  float *ddx = ct_dev(dxc, (size_t)M * C);
  CHECK_OK(ct_cpu.be->scatter_rows(&ct_cpu, dxc, y, idx, N, C));
  CHECK_OK(ct_gpu.be->scatter_rows(&ct_gpu, ddx, dy, didx, N, C));
  snprintf(name, sizeof name, "scatter_rows %d into %d x %d", N, M, C);
  ct_check(name, ddx, dxc, (size_t)M * C, 0.0);
  ct_free(dx), ct_free(dy), ct_free(didx);
  free(x), free(y), free(dxc), free(idx);
}

// Rows whose two largest logits are closer than 1e-5 may legitimately argmax differently.
static int near_tie(const float *z, int K) {
  float a = -INFINITY, b = -INFINITY;
  for (int k = 0; k < K; k++) {
    if (z[k] > a) b = a, a = z[k];
    else if (z[k] > b) b = z[k];
  }
  return a - b < 1e-5f * (fabsf(a) > 1 ? fabsf(a) : 1);
}

static void check_correct(const char *name, const int *dcorr, const int *corr, const float *logits, int N, int K) {
  int *h = malloc(sizeof(int) * N);
  if (!ct_get(name, h, dcorr, sizeof(int) * N)) {
    int bad = 0, ties = 0;
    for (int n = 0; n < N; n++)
      if (h[n] != corr[n]) {
        if (logits && near_tie(logits + (size_t)n * K, K)) ties++;
        else bad++;
      }
    g_test_checks++;
    printf("  %-40s %d of %d differ (%d more at near-ties)%s\n", name, bad, N, ties, bad ? "  <-- FAIL" : "");
    if (bad) g_test_failures++;
  }
  free(h);
}

// mode 0: everything (weights, logits, dp, de); 1: no weights, dp only; 2: de only; 3: no grad.
static void test_cosine_ce(int N, int D, int K, int ldp, int mode, float scale_p) {
  float *p = ct_randn((size_t)N * ldp, scale_p), *e = ct_randn((size_t)K * D, 1), *w = ct_randn(N, 1);
  int *tg = malloc(sizeof(int) * N);
  for (int n = 0; n < N; n++) tg[n] = (int)rng_below(&ct_rng, (uint64_t)K);
  if (N > 3) memset(p + (size_t)3 * ldp, 0, sizeof(float) * D);  // a zero row (the 1e-8 norm clamp)
  const int want_w = mode == 0, want_dp = mode <= 1, want_de = mode == 0 || mode == 2;
  float *loss = ct_nan(N), *logits = ct_nan((size_t)N * K), *dp = ct_randn((size_t)N * ldp, 1);
  float *de = ct_randn((size_t)K * D, 1);
  int *corr = malloc(sizeof(int) * N);
  float *dp_gpu_init = malloc(sizeof(float) * (size_t)N * ldp);
  memcpy(dp_gpu_init, dp, sizeof(float) * (size_t)N * ldp);
  float *d_p = ct_dev(p, (size_t)N * ldp), *d_e = ct_dev(e, (size_t)K * D), *d_w = ct_dev(w, N);
  int *d_t = ct_dev_int(tg, N), *d_corr = ct_dev_int(NULL, N);
  float *d_loss = ct_dev(NULL, N), *d_logits = ct_dev(NULL, (size_t)N * K);
  float *d_dp = ct_dev(dp, (size_t)N * ldp), *d_de = ct_dev(de, (size_t)K * D);
  const float it = 10.0f;
  CHECK_OK(ct_cpu.be->cosine_ce(&ct_cpu, loss, corr, logits, want_dp ? dp : NULL, want_de ? de : NULL, p, ldp, e, tg,
                                want_w ? w : NULL, N, D, K, it));
  CHECK_OK(ct_gpu.be->cosine_ce(&ct_gpu, d_loss, d_corr, d_logits, want_dp ? d_dp : NULL, want_de ? d_de : NULL, d_p,
                                ldp, d_e, d_t, want_w ? d_w : NULL, N, D, K, it));
  char name[96];
  snprintf(name, sizeof name, "cosine_ce N%d D%d K%d ldp%d m%d loss", N, D, K, ldp, mode);
  ct_check(name, d_loss, loss, N, TOL_CUDA_F32);
  snprintf(name, sizeof name, "cosine_ce N%d K%d logits", N, K);
  ct_check(name, d_logits, logits, (size_t)N * K, TOL_CUDA_F32);
  snprintf(name, sizeof name, "cosine_ce N%d K%d correct", N, K);
  check_correct(name, d_corr, corr, logits, N, K);
  // dp: columns < D compared; columns D..ldp-1 must be untouched (they keep their initial values)
  snprintf(name, sizeof name, "cosine_ce N%d D%d dp%s", N, D, want_dp ? "" : " (not asked: untouched)");
  ct_check(name, d_dp, want_dp ? dp : dp_gpu_init, (size_t)N * ldp, TOL_CUDA_F32);
  snprintf(name, sizeof name, "cosine_ce K%d D%d de +=%s", K, D, want_de ? "" : " (not asked: untouched)");
  ct_check(name, d_de, de, (size_t)K * D, TOL_CUDA_F32);
  if (mode == 0) {  // a target outside [0, K) is an error naming it (device-side check)
    tg[N / 2] = -1;
    CHECK_OK(ct_gpu.be->upload(&ct_gpu, d_t, tg, sizeof(int) * N));
    d_loss = ct_dev(NULL, N);
    CHECK_ERR(ct_gpu.be->cosine_ce(&ct_gpu, d_loss, NULL, NULL, NULL, NULL, d_p, ldp, d_e, d_t, NULL, N, D, K, it),
              "target -1 of row");
    ct_free(d_loss);
  }
  ct_free(d_p), ct_free(d_e), ct_free(d_w), ct_free(d_t), ct_free(d_corr);
  free(p), free(e), free(w), free(tg), free(loss), free(logits), free(dp), free(de), free(corr), free(dp_gpu_init);
}

// sd: logit scale (large: the online logsumexp rescales often); ints: integer logits with exact
// ties, where the first maximum must win on both backends (no near-tie allowance), and the
// target set to the first maximum of every other row.
static void test_softmax_ce(int N, int K, int grad, double sd, int ints) {
  float *z = ct_randn((size_t)N * K, sd), *w = ct_randn(N, 1), *loss = ct_nan(N), *dz = ct_nan((size_t)N * K);
  int *tg = malloc(sizeof(int) * N), *corr = malloc(sizeof(int) * N);
  if (ints)
    for (size_t i = 0; i < (size_t)N * K; i++) z[i] = roundf(z[i]);
  for (int n = 0; n < N; n++) {
    tg[n] = (int)rng_below(&ct_rng, (uint64_t)K);
    if (ints && n % 2) {
      int a = 0;
      for (int k = 1; k < K; k++)
        if (z[(size_t)n * K + k] > z[(size_t)n * K + a]) a = k;
      tg[n] = a;
    }
  }
  float *d_z = ct_dev(z, (size_t)N * K), *d_w = ct_dev(w, N), *d_loss = ct_dev(NULL, N), *d_dz = ct_dev(NULL, (size_t)N * K);
  int *d_t = ct_dev_int(tg, N), *d_corr = ct_dev_int(NULL, N);
  CHECK_OK(ct_cpu.be->softmax_ce(&ct_cpu, loss, corr, grad ? dz : NULL, z, tg, grad ? w : NULL, N, K));
  CHECK_OK(ct_gpu.be->softmax_ce(&ct_gpu, d_loss, d_corr, grad ? d_dz : NULL, d_z, d_t, grad ? d_w : NULL, N, K));
  char name[80];
  snprintf(name, sizeof name, "softmax_ce N%d K%d loss", N, K);
  ct_check(name, d_loss, loss, N, TOL_CUDA_F32);
  snprintf(name, sizeof name, "softmax_ce N%d K%d correct%s", N, K, ints ? " (exact ties)" : "");
  check_correct(name, d_corr, corr, ints ? NULL : z, N, K);
  if (grad) {
    snprintf(name, sizeof name, "softmax_ce N%d K%d dz (weighted)", N, K);
    ct_check(name, d_dz, dz, (size_t)N * K, TOL_CUDA_F32);
  } else {
    ct_free(d_dz);
  }
  // a target outside [0, K) is an error naming it (ct_check freed d_loss)
  tg[N - 1] = K;
  CHECK_OK(ct_gpu.be->upload(&ct_gpu, d_t, tg, sizeof(int) * N));
  d_loss = ct_dev(NULL, N);
  CHECK_ERR(ct_gpu.be->softmax_ce(&ct_gpu, d_loss, d_corr, NULL, d_z, d_t, NULL, N, K), "outside [0,");
  ct_free(d_z), ct_free(d_w), ct_free(d_loss), ct_free(d_t), ct_free(d_corr);
  free(z), free(w), free(loss), free(dz), free(tg), free(corr);
}

static void test_pool(int B, int T, int C) {
  const size_t n = (size_t)B * T * C;
  float *x = ct_randn(n, 1), *y = ct_nan((size_t)B * C), *dy = ct_randn((size_t)B * C, 1), *dx = ct_nan(n);
  int *len = malloc(sizeof(int) * B);
  for (int b = 0; b < B; b++) len[b] = b == 0 ? T : 1 + (int)rng_below(&ct_rng, (uint64_t)T);
  float *d_x = ct_dev(x, n), *d_y = ct_dev(NULL, (size_t)B * C), *d_dy = ct_dev(dy, (size_t)B * C), *d_dx = ct_dev(NULL, n);
  int *d_len = ct_dev_int(len, B);
  CHECK_OK(ct_cpu.be->seq_mean_pool(&ct_cpu, y, x, len, B, T, C));
  CHECK_OK(ct_gpu.be->seq_mean_pool(&ct_gpu, d_y, d_x, d_len, B, T, C));
  CHECK_OK(ct_cpu.be->seq_mean_pool_backward(&ct_cpu, dx, dy, len, B, T, C));
  CHECK_OK(ct_gpu.be->seq_mean_pool_backward(&ct_gpu, d_dx, d_dy, d_len, B, T, C));
  char name[80];
  snprintf(name, sizeof name, "seq_mean_pool B%d T%d C%d", B, T, C);
  ct_check(name, d_y, y, (size_t)B * C, TOL_CUDA_F32);
  snprintf(name, sizeof name, "seq_mean_pool_backward B%d T%d C%d", B, T, C);
  ct_check(name, d_dx, dx, n, TOL_CUDA_F32);
  len[B - 1] = T + 1;
  CHECK_OK(ct_gpu.be->upload(&ct_gpu, d_len, len, sizeof(int) * B));
  d_y = ct_dev(NULL, (size_t)B * C);
  CHECK_ERR(ct_gpu.be->seq_mean_pool(&ct_gpu, d_y, d_x, d_len, B, T, C), "outside [1,");
  ct_free(d_x), ct_free(d_y), ct_free(d_dy), ct_free(d_len);
  free(x), free(y), free(dy), free(dx), free(len);
}

// B utterances: full length; shorter with repeated labels; empty target; impossible (more
// labels than frames allow: infinite loss, zero gradient).
static void test_ctc(int B, int T, int V, int S, int grad) {
  float *z = ct_randn((size_t)B * T * V, 2), *w = ct_randn(B, 0.5), *loss = ct_nan(B), *dz = ct_nan((size_t)B * T * V);
  int *tg = calloc((size_t)B * S, sizeof(int)), *il = malloc(sizeof(int) * B), *tl = malloc(sizeof(int) * B);
  const int blank = 0;
  for (int b = 0; b < B; b++) {
    il[b] = b == 0 ? T : T / 2 + (int)rng_below(&ct_rng, (uint64_t)(T / 2));
    tl[b] = b == 2 ? 0 : 1 + (int)rng_below(&ct_rng, (uint64_t)(S < il[b] / 2 ? S : il[b] / 2));
    if (b == 3) il[b] = 3, tl[b] = S < 5 ? S : 5;  // 5 labels in 3 frames: impossible
    for (int i = 0; i < tl[b]; i++) tg[(size_t)b * S + i] = 1 + (int)rng_below(&ct_rng, (uint64_t)(V - 1));
    if (b == 1 && tl[b] >= 2) tg[(size_t)b * S + 1] = tg[(size_t)b * S];  // a repeat needs a blank between
  }
  float *d_z = ct_dev(z, (size_t)B * T * V), *d_w = ct_dev(w, B), *d_loss = ct_dev(NULL, B);
  float *d_dz = ct_dev(NULL, (size_t)B * T * V);
  int *d_tg = ct_dev_int(tg, (size_t)B * S), *d_il = ct_dev_int(il, B), *d_tl = ct_dev_int(tl, B);
  CHECK_OK(ct_cpu.be->ctc_loss(&ct_cpu, loss, grad ? dz : NULL, z, tg, il, tl, w, B, T, V, S, blank));
  CHECK_OK(ct_gpu.be->ctc_loss(&ct_gpu, d_loss, grad ? d_dz : NULL, d_z, d_tg, d_il, d_tl, d_w, B, T, V, S, blank));
  char name[80];
  float *h = malloc(sizeof(float) * B);
  snprintf(name, sizeof name, "ctc_loss B%d T%d V%d S%d%s", B, T, V, S, grad ? " +grad" : "");
  if (!ct_get(name, h, d_loss, sizeof(float) * B)) {
    // infinite losses must agree exactly; the finite ones at the fp32 tolerance
    int inf_ok = 1;
    double num = 0, den = 0;
    for (int b = 0; b < B; b++) {
      if (isinf(loss[b]) || isinf(h[b])) {
        inf_ok &= isinf(loss[b]) && isinf(h[b]) && loss[b] > 0 && h[b] > 0;
        continue;
      }
      num += ((double)h[b] - loss[b]) * ((double)h[b] - loss[b]);
      den += (double)loss[b] * loss[b];
      if (isnan(h[b])) num = INFINITY;
    }
    CHECK(inf_ok);
    CHECK(B < 4 || isinf(loss[3]));
    CHECK_REL(name, den > 0 ? sqrt(num / den) : sqrt(num), TOL_CUDA_F32);
  }
  free(h);
  ct_free(d_loss);
  if (grad) {
    snprintf(name, sizeof name, "ctc_loss B%d T%d V%d S%d dz", B, T, V, S);
    ct_check(name, d_dz, dz, (size_t)B * T * V, TOL_CUDA_F32);
  } else {
    ct_free(d_dz);
  }
  il[0] = T + 1;
  CHECK_OK(ct_gpu.be->upload(&ct_gpu, d_il, il, sizeof(int) * B));
  d_loss = ct_dev(NULL, B);
  CHECK_ERR(ct_gpu.be->ctc_loss(&ct_gpu, d_loss, NULL, d_z, d_tg, d_il, d_tl, NULL, B, T, V, S, blank), "input length");
  il[0] = T;
  tg[0] = blank;
  CHECK_OK(ct_gpu.be->upload(&ct_gpu, d_il, il, sizeof(int) * B));
  CHECK_OK(ct_gpu.be->upload(&ct_gpu, d_tg, tg, sizeof(int) * B * S));
  CHECK_ERR(ct_gpu.be->ctc_loss(&ct_gpu, d_loss, NULL, d_z, d_tg, d_il, d_tl, NULL, B, T, V, S, blank), "blank");
  ct_free(d_z), ct_free(d_w), ct_free(d_loss), ct_free(d_tg), ct_free(d_il), ct_free(d_tl);
  free(z), free(w), free(loss), free(dz), free(tg), free(il), free(tl);
}

static void test_dropout(size_t n, float p) {
  float *x = ct_randn(n, 1), *y = ct_nan(n);
  const uint64_t seed = rng_u64(&ct_rng);
  float *d_x = ct_dev(x, n), *d_y = ct_dev(NULL, n);
  CHECK_OK(ct_cpu.be->dropout(&ct_cpu, y, x, n, p, seed));
  CHECK_OK(ct_gpu.be->dropout(&ct_gpu, d_y, d_x, n, p, seed));
  char name[80];
  snprintf(name, sizeof name, "dropout n%zu p%.2f", n, p);
  ct_check_bits(name, d_y, y, n);
  ct_free(d_x);
  free(x), free(y);
}

static void test_dropout_inplace(size_t n, float p) {
  float *x = ct_randn(n, 1), *y = ct_nan(n);
  const uint64_t seed = rng_u64(&ct_rng);
  float *d_x = ct_dev(x, n);
  CHECK_OK(ct_cpu.be->dropout(&ct_cpu, y, x, n, p, seed));
  CHECK_OK(ct_gpu.be->dropout(&ct_gpu, d_x, d_x, n, p, seed));
  char name[80];
  snprintf(name, sizeof name, "dropout n%zu p%.2f in place", n, p);
  ct_check_bits(name, d_x, y, n);
  size_t kept = 0;
  for (size_t i = 0; i < n; i++) kept += y[i] != 0.0f;
  printf("  dropout p %.2f kept %.4f (expected %.4f)\n", p, (double)kept / n, 1.0 - p);
  free(x), free(y);
}

// AdamW on a layout with padding between segments: the host optimizer vs one whose moments live
// on the GPU, 6 steps (clipping on), grad norms to 1e-12, parameters and moments at 1e-6 (only
// FMA contraction on the CPU side may differ: ulps); a NaN and an inf gradient are skipped on both
// and leave everything unchanged; the GPU state survives optim_save/optim_load.
static void test_adamw(void) {
  enum { NSEG = 5 };
  hb_optim_segment seg[NSEG] = {{0, 1000, 1}, {1024, 3, 0}, {1088, 70001, 1}, {71168, 1, 0}, {71232, 300000, 1}};
  const size_t total = 371264;
  hb_adamw_hparams hp = optim_default_hparams();
  hb_adamw oc, og;
  CHECK_OK(optim_init(&oc, total, seg, NSEG, &hp));
  CHECK_OK(optim_init(&og, total, seg, NSEG, &hp));
  CHECK_OK(optim_use_backend(&og, &ct_gpu));
  float *p = ct_randn(total, 1), *g = ct_randn(total, 1), *hp_ = malloc(sizeof(float) * total);
  float *d_p = ct_dev(p, total), *d_g = ct_dev(g, total);
  for (int step = 0; step < 8; step++) {
    for (size_t i = 0; i < total; i++) g[i] = (float)(rng_normal(&ct_rng) * (step + 1));
    if (step == 3) g[seg[2].offset + 777] = NAN;
    if (step == 5) g[seg[4].offset + 5] = INFINITY;
    CHECK_OK(ct_gpu.be->upload(&ct_gpu, d_g, g, sizeof(float) * total));
    hb_optim_stats sc, sg;
    const double lr = 1e-3 * (step + 1);
    CHECK_OK(optim_step(&oc, p, g, 0.25, lr, 50.0, &sc));
    CHECK_OK(optim_step(&og, d_p, d_g, 0.25, lr, 50.0, &sg));
    char name[80];
    snprintf(name, sizeof name, "adamw step %d grad norm%s", step, sc.skipped ? " (non-finite: skipped)" : "");
    CHECK(sc.skipped == sg.skipped);
    if (sc.skipped) CHECK(!isfinite(sg.grad_norm));
    else CHECK_REL(name, fabs(sg.grad_norm - sc.grad_norm) / sc.grad_norm, 1e-12);
    CHECK(sc.clip_coef == sg.clip_coef || fabs(sc.clip_coef - sg.clip_coef) <= 1e-12 * sc.clip_coef);
  }
  CHECK(oc.step == og.step && oc.skipped == og.skipped && og.skipped == 2);
  if (!ct_get("adamw params", hp_, d_p, sizeof(float) * total)) CHECK_REL("adamw params after 8 updates", rel_err_f32(hp_, p, total), TOL_CUDA_ADAMW);
  size_t same = 0;
  for (size_t i = 0; i < total; i++) same += !memcmp(hp_ + i, p + i, sizeof(float));
  printf("  adamw: %zu of %zu parameters bit-identical to the CPU\n", same, total);
  // padding untouched (p's padding holds its initial random values on both)
  int pad_ok = 1;
  for (size_t i = seg[0].numel; i < seg[1].offset; i++) pad_ok &= !memcmp(hp_ + i, p + i, sizeof(float));
  CHECK(pad_ok);
  float *hm = malloc(sizeof(float) * total);
  if (!ct_gpu.be->download(&ct_gpu, hm, og.m, sizeof(float) * total)) CHECK_REL("adamw exp_avg", rel_err_f32(hm, oc.m, total), TOL_CUDA_ADAMW);
  if (!ct_gpu.be->download(&ct_gpu, hm, og.v, sizeof(float) * total)) CHECK_REL("adamw exp_avg_sq", rel_err_f32(hm, oc.v, total), TOL_CUDA_ADAMW);
  // save from the GPU, load into a host optimizer and into a GPU one: same moments
  char path[] = "/tmp/hb_test_heads_cuda_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd >= 0) close(fd);
  CHECK_OK(optim_save(&og, path));
  hb_adamw o2, o3;
  CHECK_OK(optim_init(&o2, total, seg, NSEG, &hp));
  CHECK_OK(optim_init(&o3, total, seg, NSEG, &hp));
  CHECK_OK(optim_use_backend(&o3, &ct_gpu));
  CHECK_OK(optim_load(&o2, path));
  CHECK_OK(optim_load(&o3, path));
  float *hm3 = malloc(sizeof(float) * total);
  CHECK_OK(ct_gpu.be->download(&ct_gpu, hm, og.v, sizeof(float) * total));
  CHECK_OK(ct_gpu.be->download(&ct_gpu, hm3, o3.v, sizeof(float) * total));
  CHECK(!memcmp(hm, o2.v, sizeof(float) * total) && !memcmp(hm, hm3, sizeof(float) * total));
  CHECK(o2.step == og.step && o3.step == og.step && o3.skipped == og.skipped);
  unlink(path);
  optim_free(&oc), optim_free(&og), optim_free(&o2), optim_free(&o3);
  ct_free(d_p), ct_free(d_g);
  free(p), free(g), free(hp_), free(hm), free(hm3);
}

int main(void) {
  ct_init("test_heads_cuda");
  test_gather_scatter(500, 321, 48);
  test_gather_scatter(64, 64, 768);
  // cosine_ce: HuBERT Base's masked rows (D 256, K 504), a strided p (ldp > D: untied heads),
  // several row blocks (N > 8192), optional outputs, a large-norm p
  test_cosine_ce(1500, 256, 504, 256, 0, 1.0f);
  test_cosine_ce(300, 32, 50, 40, 0, 3.0f);
  test_cosine_ce(9000, 16, 20, 16, 0, 1.0f);
  test_cosine_ce(257, 64, 100, 128, 1, 1.0f);
  test_cosine_ce(100, 64, 100, 64, 2, 1.0f);
  test_cosine_ce(100, 64, 1000, 64, 3, 100.0f);
  test_cosine_ce(5, 8, 3, 8, 0, 1.0f);
  test_softmax_ce(200, 37, 1, 3.0, 0);
  test_softmax_ce(5, 3000, 1, 3.0, 0);
  test_softmax_ce(64, 10, 0, 3.0, 0);
  test_softmax_ce(100, 700, 1, 300.0, 0);
  test_softmax_ce(300, 50, 1, 2.0, 1);
  test_pool(4, 50, 768);
  test_pool(3, 7, 5);
  test_ctc(6, 60, 12, 10, 1);
  test_ctc(4, 200, 32, 40, 1);
  test_ctc(5, 30, 5, 6, 0);
  test_dropout(10007, 0.1f);
  test_dropout(4096, 0.5f);
  test_dropout(3, 0.9f);
  test_dropout(1000, 0.0f);
  test_dropout(1001, 1.0f);
  test_dropout_inplace(1 << 20, 0.1f);
  test_dropout_inplace(77777, 0.3f);
  test_adamw();
  ops_ctx_free(&ct_gpu);
  ops_ctx_free(&ct_cpu);
  return test_summary("test_heads_cuda");
}
