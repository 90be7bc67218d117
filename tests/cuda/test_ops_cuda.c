// CUDA backend vs CPU backend: every forward op on fresh random inputs (fp32, rel. L2 error <
// TOL_CUDA_F32; NaN never passes: outputs start as NaN and rel_err_f32 maps NaN/inf to +inf),
// guard floats after every CUDA output (an out-of-bounds write fails), in-place variants where
// ops.h allows aliasing, and whole HuBERT forwards (tiny, tiny pre-LN with layer-norm extractor,
// Base on 2 s) layer by layer. Skips (77) when the CUDA backend is not built or no GPU exists.
// Seed: fresh each run, HUBERT_TEST_SEED fixes it. HUBERT_CUDA_TEST_QUICK=1 skips the Base model.
#include <math.h>
#include <stddef.h>
#include <stdio.h>

#include "models/hubert.h"
#include "tests/cuda/cuda_test_util.h"

static void test_conv1d(int B, int Tin, int Cin, int Cout, int K, int S, int pad, int G, int bias) {
  const int Tout = (Tin + 2 * pad - K) / S + 1;
  const size_t nx = (size_t)B * Tin * Cin, nw = (size_t)Cout * (Cin / G) * K, ny = (size_t)B * Tout * Cout;
  float *x = ct_randn(nx, 1.0), *w = ct_randn(nw, 0.3), *b = bias ? ct_randn(Cout, 0.5) : NULL, *y = ct_nan(ny);
  float *dx = ct_dev(x, nx), *dw = ct_dev(w, nw), *db = bias ? ct_dev(b, Cout) : NULL, *dy = ct_dev(NULL, ny);
  CHECK_OK(ct_cpu.be->conv1d(&ct_cpu, y, x, w, b, B, Tin, Cin, Cout, K, S, pad, G));
  CHECK_OK(ct_gpu.be->conv1d(&ct_gpu, dy, dx, dw, db, B, Tin, Cin, Cout, K, S, pad, G));
  char name[96];
  snprintf(name, sizeof name, "conv1d B%d T%d %d->%d k%d s%d p%d g%d%s", B, Tin, Cin, Cout, K, S, pad, G, bias ? " +b" : "");
  ct_check(name, dy, y, ny, TOL_CUDA_F32);
  ct_gpu.be->free(&ct_gpu, dx), ct_gpu.be->free(&ct_gpu, dw), ct_gpu.be->free(&ct_gpu, db);
  free(x), free(w), free(b), free(y);
}

static void test_linear(int N, int Cin, int Cout, int bias) {
  float *x = ct_randn((size_t)N * Cin, 1), *w = ct_randn((size_t)Cout * Cin, 0.1), *b = bias ? ct_randn(Cout, 1) : NULL;
  const size_t ny = (size_t)N * Cout;
  float *y = ct_nan(ny);
  float *dx = ct_dev(x, (size_t)N * Cin), *dw = ct_dev(w, (size_t)Cout * Cin), *db = bias ? ct_dev(b, Cout) : NULL, *dy = ct_dev(NULL, ny);
  CHECK_OK(ct_cpu.be->linear(&ct_cpu, y, x, w, b, N, Cin, Cout));
  CHECK_OK(ct_gpu.be->linear(&ct_gpu, dy, dx, dw, db, N, Cin, Cout));
  char name[64];
  snprintf(name, sizeof name, "linear %d x %d->%d%s", N, Cin, Cout, bias ? " +b" : "");
  ct_check(name, dy, y, ny, TOL_CUDA_F32);
  ct_gpu.be->free(&ct_gpu, dx), ct_gpu.be->free(&ct_gpu, dw), ct_gpu.be->free(&ct_gpu, db);
  free(x), free(w), free(b), free(y);
}

// Layer norm (out of place and in place) and group norm (G = C as in HuBERT's first conv, and
// fewer groups), on inputs with an offset mean (tests the two-pass variance).
static void test_norms(int B, int T, int C) {
  const size_t n = (size_t)B * T * C;
  float *x = ct_randn(n, 2.0), *g = ct_randn(C, 1), *bt = ct_randn(C, 1), *y = ct_nan(n);
  for (size_t i = 0; i < n; i++) x[i] += 3.0f;
  float *dx = ct_dev(x, n), *dg = ct_dev(g, C), *dbt = ct_dev(bt, C);
  char name[64];
  CHECK_OK(ct_cpu.be->layer_norm(&ct_cpu, y, x, g, bt, B * T, C, 1e-5f));
  float *dy = ct_dev(NULL, n);
  CHECK_OK(ct_gpu.be->layer_norm(&ct_gpu, dy, dx, dg, dbt, B * T, C, 1e-5f));
  snprintf(name, sizeof name, "layer_norm %d x %d", B * T, C);
  ct_check(name, dy, y, n, TOL_CUDA_F32);
  dy = ct_dev(x, n);
  CHECK_OK(ct_gpu.be->layer_norm(&ct_gpu, dy, dy, dg, dbt, B * T, C, 1e-5f));
  snprintf(name, sizeof name, "layer_norm %d x %d in place", B * T, C);
  ct_check(name, dy, y, n, TOL_CUDA_F32);
  const int groups[] = {C, C / 4 > 0 ? C / 4 : 1, 1};
  for (int gi = 0; gi < 3; gi++) {
    const int G = groups[gi];
    if (C % G) continue;
    for (size_t i = 0; i < n; i++) y[i] = NAN;
    CHECK_OK(ct_cpu.be->group_norm(&ct_cpu, y, x, g, bt, B, T, C, G, 1e-5f));
    dy = ct_dev(NULL, n);
    CHECK_OK(ct_gpu.be->group_norm(&ct_gpu, dy, dx, dg, dbt, B, T, C, G, 1e-5f));
    snprintf(name, sizeof name, "group_norm B%d T%d C%d G%d", B, T, C, G);
    ct_check(name, dy, y, n, TOL_CUDA_F32);
    dy = ct_dev(x, n);
    CHECK_OK(ct_gpu.be->group_norm(&ct_gpu, dy, dy, dg, dbt, B, T, C, G, 1e-5f));
    snprintf(name, sizeof name, "group_norm G%d in place", G);
    ct_check(name, dy, y, n, TOL_CUDA_F32);
  }
  ct_gpu.be->free(&ct_gpu, dx), ct_gpu.be->free(&ct_gpu, dg), ct_gpu.be->free(&ct_gpu, dbt);
  free(x), free(g), free(bt), free(y);
}

static void test_elementwise(size_t n, int N, int D) {
  float *x = ct_randn(n, 3), *z = ct_randn(n, 1), *y = ct_nan(n);
  float *dx = ct_dev(x, n), *dz = ct_dev(z, n), *dy;
  CHECK_OK(ct_cpu.be->gelu(&ct_cpu, y, x, n));
  dy = ct_dev(NULL, n);
  CHECK_OK(ct_gpu.be->gelu(&ct_gpu, dy, dx, n));
  ct_check("gelu", dy, y, n, TOL_CUDA_F32);
  dy = ct_dev(x, n);
  CHECK_OK(ct_gpu.be->gelu(&ct_gpu, dy, dy, n));
  ct_check("gelu in place", dy, y, n, TOL_CUDA_F32);
  CHECK_OK(ct_cpu.be->add(&ct_cpu, y, x, z, n));
  dy = ct_dev(NULL, n);
  CHECK_OK(ct_gpu.be->add(&ct_gpu, dy, dx, dz, n));
  ct_check("add", dy, y, n, TOL_CUDA_F32);
  dy = ct_dev(x, n);
  CHECK_OK(ct_gpu.be->add(&ct_gpu, dy, dy, dz, n));
  ct_check("add in place", dy, y, n, TOL_CUDA_F32);
  const size_t ns = (size_t)N * D;
  float *s = ct_randn(ns, 4);
  float *ds = ct_dev(s, ns);
  CHECK_OK(ct_cpu.be->softmax(&ct_cpu, s, N, D));
  CHECK_OK(ct_gpu.be->softmax(&ct_gpu, ds, N, D));
  char name[64];
  snprintf(name, sizeof name, "softmax %d x %d", N, D);
  ct_check(name, ds, s, ns, TOL_CUDA_F32);
  ct_gpu.be->free(&ct_gpu, dx), ct_gpu.be->free(&ct_gpu, dz);
  free(x), free(z), free(y), free(s);
}

static void test_attention(int B, int T, int H, int Dh, int padded) {
  const size_t n = (size_t)B * T * H * Dh;
  float *q = ct_randn(n, 1), *k = ct_randn(n, 1), *v = ct_randn(n, 1), *y = ct_nan(n);
  int *len = malloc(sizeof(int) * B);
  for (int b = 0; b < B; b++) len[b] = padded ? (b == B - 1 ? 1 : T - (int)((b * 7919) % (T / 2 + 1))) : T;
  float *dq = ct_dev(q, n), *dk = ct_dev(k, n), *dv = ct_dev(v, n), *dy = ct_dev(NULL, n);
  const float scale = 1.0f / sqrtf((float)Dh);
  CHECK_OK(ct_cpu.be->attention(&ct_cpu, y, q, k, v, padded ? len : NULL, B, T, H, Dh, scale));
  CHECK_OK(ct_gpu.be->attention(&ct_gpu, dy, dq, dk, dv, padded ? len : NULL, B, T, H, Dh, scale));
  char name[80];
  snprintf(name, sizeof name, "attention B%d T%d H%d Dh%d%s", B, T, H, Dh, padded ? " padded" : "");
  ct_check(name, dy, y, n, TOL_CUDA_F32);
  ct_gpu.be->free(&ct_gpu, dq), ct_gpu.be->free(&ct_gpu, dk), ct_gpu.be->free(&ct_gpu, dv);
  free(q), free(k), free(v), free(y), free(len);
}

static void test_weight_norm_mask(int O, int In, int K) {
  const size_t n = (size_t)O * In * K;
  float *v = ct_randn(n, 1), *g = ct_randn(K, 1), *w = ct_nan(n);
  float *dv = ct_dev(v, n), *dg = ct_dev(g, K), *dw = ct_dev(NULL, n);
  CHECK_OK(ct_cpu.be->weight_norm(&ct_cpu, w, v, g, O, In, K));
  CHECK_OK(ct_gpu.be->weight_norm(&ct_gpu, dw, dv, dg, O, In, K));
  ct_check("weight_norm (dim=2)", dw, w, n, TOL_CUDA_F32);
  // mask_padding on (B, T, C) = (3, 20, 7) with lengths 20, 5, 1.
  const int B = 3, T = 20, C = 7, len[3] = {20, 5, 1};
  const size_t nm = (size_t)B * T * C;
  float *x = ct_randn(nm, 1);
  float *dx = ct_dev(x, nm);
  CHECK_OK(ct_cpu.be->mask_padding(&ct_cpu, x, len, B, T, C));
  CHECK_OK(ct_gpu.be->mask_padding(&ct_gpu, dx, len, B, T, C));
  ct_check("mask_padding", dx, x, nm, 0.0);
  ct_gpu.be->free(&ct_gpu, dv), ct_gpu.be->free(&ct_gpu, dg);
  free(v), free(g), free(w), free(x);
}

// Whole forward on both backends from the same seeded parameters; every hidden state compared
// over the valid frames. B = 2 with the second utterance ~70% long (padding path).
static void test_model(const char *label, const hb_config *c, double seconds, uint64_t seed) {
  const int B = 2;
  const long L = (long)(seconds * 16000);
  const long lens[2] = {L, (long)(L * 0.7)};
  hb_model mc, mg;
  hb_fwd_arena ac, ag;
  g_test_checks++;
  if (model_init(&mc, c, &ct_cpu) || model_init_random(&mc, seed) || fwd_arena_init(&ac, &mc, B, L) ||
      model_init(&mg, c, &ct_gpu) || model_init_random(&mg, seed) || fwd_arena_init(&ag, &mg, B, L)) {
    g_test_failures++;
    fprintf(stderr, "FAIL %s: model setup: %s\n", label, hb_errmsg());
    exit(1);
  }
  const int NL = c->num_hidden_layers, H = c->hidden_size;
  float *wave = ct_randn((size_t)B * L, 0.1);
  for (long i = lens[1]; i < L; i++) wave[L + i] = 0.0f;
  float *dwave = ct_dev(wave, (size_t)B * L);
  const size_t nh = (size_t)B * ag.max_T * H;
  float **hc = calloc(NL + 1, sizeof(float *)), **hg = calloc(NL + 1, sizeof(float *));
  for (int i = 0; i <= NL; i++) {
    hc[i] = ct_nan(nh);
    hg[i] = ct_dev(NULL, nh);
  }
  int fc[2], fg[2], Tc = 0, Tg = 0;
  const double t0 = (double)clock() / CLOCKS_PER_SEC;
  CHECK_OK(model_forward(&mc, &ac, wave, lens, B, L, fc, &Tc, hc));
  const double t1 = (double)clock() / CLOCKS_PER_SEC;
  CHECK_OK(model_forward(&mg, &ag, dwave, lens, B, L, fg, &Tg, hg));
  CHECK_OK(ct_gpu.be->sync(&ct_gpu));
  CHECK(Tc == Tg && fc[0] == fg[0] && fc[1] == fg[1]);
  printf("  %s: %d x %.2f s, T = %d frames, %d layers (CPU forward %.2f s CPU time)\n", label, B, seconds, Tc, NL, t1 - t0);
  float *h = malloc(sizeof(float) * nh);
  for (int i = 0; i <= NL; i++) {
    if (ct_gpu.be->download(&ct_gpu, h, hg[i], sizeof(float) * nh)) {
      g_test_failures++;
      fprintf(stderr, "FAIL %s: download: %s\n", label, hb_errmsg());
      break;
    }
    // Valid frames only (padded rows are unspecified): compare utterance by utterance.
    double worst = 0;
    for (int b = 0; b < B; b++) {
      const size_t off = (size_t)b * Tc * H, cnt = (size_t)fc[b] * H;
      const double e = rel_err_f32(h + off, hc[i] + off, cnt);
      worst = e > worst ? e : worst;
    }
    char name[96];
    snprintf(name, sizeof name, "%s hidden[%d]", label, i);
    // Whole-model tolerance: 2..12 layers of fp32 sums in different orders (tolerances.h).
    CHECK_REL(name, worst, TOL_F32_MODEL);
  }
  free(h);
  for (int i = 0; i <= NL; i++) {
    free(hc[i]);
    ct_gpu.be->free(&ct_gpu, hg[i]);
  }
  free(hc), free(hg), free(wave);
  ct_gpu.be->free(&ct_gpu, dwave);
  fwd_arena_free(&ac, &mc), fwd_arena_free(&ag, &mg);
  model_free(&mc), model_free(&mg);
}

// ops_check_backward on a fake table: a NULL member after mask_padding must be reported.
static void test_check_backward(void) {
  hb_backend fake = hb_backend_cpu;
  fake.name = "fake";
  hb_ctx ctx;
  memset(&ctx, 0, sizeof ctx);
  ctx.be = &fake;
  const size_t tail = offsetof(hb_backend, mask_padding) + sizeof(void (*)(void));
  if (sizeof(hb_backend) > tail) {
    memset((char *)&fake + sizeof(hb_backend) - sizeof(void (*)(void)), 0, sizeof(void (*)(void)));
    CHECK_ERR(ops_check_backward(&ctx), "fake");
  } else {
    CHECK_OK(ops_check_backward(&ctx));  // no backward members in the table yet
  }
}

int main(void) {
  const uint64_t seed = ct_seed("test_ops_cuda");
  test_check_backward();
  ct_contexts("test_ops_cuda");
  // conv1d: HuBERT's first layer (Cin 1, k10 s5), later layers (k3 s2, k2 s2), the positional
  // conv (grouped, padded, even kernel), odd shapes.
  test_conv1d(2, 803, 1, 32, 10, 5, 0, 1, 0);
  test_conv1d(2, 803, 1, 32, 10, 5, 0, 1, 1);
  test_conv1d(2, 101, 24, 40, 3, 2, 0, 1, 0);
  test_conv1d(3, 50, 32, 32, 2, 2, 0, 1, 1);
  test_conv1d(2, 37, 48, 48, 16, 1, 8, 4, 1);
  test_conv1d(1, 20, 6, 9, 5, 1, 2, 3, 1);
  test_conv1d(2, 9, 8, 8, 7, 3, 3, 2, 0);
  test_conv1d(2, 9, 8, 8, 7, 3, 0, 1, 1);    // tap GEMMs, K not a multiple of the stride
  test_conv1d(2, 64, 4, 6, 10, 5, 0, 1, 0);
  test_linear(77, 96, 65, 1);
  test_linear(130, 768, 768, 1);
  test_linear(5, 33, 17, 0);
  test_norms(2, 37, 12);
  test_norms(2, 300, 512);
  test_norms(3, 41, 45);  // G == C with a partial 32-channel tile
  test_norms(1, 5, 1024);
  test_elementwise(10007, 33, 1000);
  test_elementwise(64, 4, 3);
  test_attention(3, 77, 4, 64, 1);
  test_attention(2, 100, 2, 32, 0);
  test_attention(2, 40, 3, 16, 1);
  test_attention(1, 70, 2, 128, 1);
  test_attention(1, 33, 1, 80, 0);
  test_weight_norm_mask(48, 12, 16);
  test_weight_norm_mask(7, 3, 5);

  hb_config c;
  config_preset(&c, HB_PRESET_TINY);
  test_model("tiny", &c, 0.5, seed);
  c.feat_extract_norm_layer = 1;
  c.do_stable_layer_norm = 1;
  test_model("tiny pre-LN, layer-norm extractor", &c, 0.5, seed + 1);
  if (getenv("HUBERT_CUDA_TEST_QUICK")) {  // e.g. under compute-sanitizer, ~100x slower
    printf("  HUBERT_CUDA_TEST_QUICK set: Base model comparison skipped\n");
  } else {
    config_preset(&c, HB_PRESET_BASE);
    test_model("base", &c, 2.0, seed + 2);
  }

  ops_ctx_free(&ct_gpu);
  ops_ctx_free(&ct_cpu);
  return test_summary("test_ops_cuda");
}
