// Mixed precision on CUDA (ctx->precision = bf16; kernels/cuda/cuda_linear_bf16.cu) vs the fp32
// CPU reference: linear (with and without bias) and linear_backward (dx; dw and dbias accumulated
// onto prefilled buffers; NULL outputs) at rel. L2 error < TOL_CUDA_BF16, the bias gradient (fp32
// column sum) at TOL_CUDA_F32, and proof that the bf16 path ran (error above 1e-5, which fp32
// never reaches on these shapes); back in fp32 the same context matches at TOL_CUDA_F32. Then a
// tiny pretraining step in bf16 vs the fp32 CPU step: loss < TOL_CUDA_BF16, flat gradient
// < TOL_CUDA_BF16_GRAD. Guard floats after every CUDA output. Skips (77) without a GPU. Seed:
// fresh, HUBERT_TEST_SEED fixes it.
#include <math.h>
#include <stdio.h>

#include "models/hubert_mask.h"
#include "models/hubert_pretrain.h"
#include "tests/cuda/cuda_test_util.h"

// Relative L2 error of device output d (n floats, guard checked) vs ref; -1 on a failed download.
static double dev_err(const char *name, const float *d, const float *ref, size_t n) {
  float *h = malloc(sizeof(float) * (n ? n : 1));
  double e = -1;
  if (!ct_get(name, h, d, sizeof(float) * n)) e = rel_err_f32(h, ref, n);
  free(h);
  return e;
}

static void check_bf16(const char *name, double e) {
  CHECK_REL(name, e < 0 ? INFINITY : e, TOL_CUDA_BF16);
  g_test_checks++;
  const int ran = e > 1e-5;
  printf("  %-40s %s\n", "  bf16 path taken (err > 1e-5)", ran ? "yes" : "no  <-- FAIL");
  if (!ran) g_test_failures++;
}

static void test_linear(int N, int Cin, int Cout, int bias) {
  const size_t nx = (size_t)N * Cin, nw = (size_t)Cout * Cin, ny = (size_t)N * Cout;
  float *x = ct_randn(nx, 1), *w = ct_randn(nw, 1.0 / sqrt(Cin)), *b = bias ? ct_randn(Cout, 1) : NULL;
  float *y = ct_nan(ny), *dy = ct_randn(ny, 1), *dx = ct_nan(nx), *dw = ct_randn(nw, 1), *db = ct_randn(Cout, 1);
  float *dxg = ct_dev(x, nx), *dwg = ct_dev(w, nw), *dbg = bias ? ct_dev(b, Cout) : NULL, *dyg = ct_dev(NULL, ny);
  float *ddy = ct_dev(dy, ny), *ddx = ct_dev(NULL, nx), *ddw = ct_dev(dw, nw), *ddb = ct_dev(db, Cout);
  float *dw_pre = malloc(sizeof(float) * nw);
  memcpy(dw_pre, dw, sizeof(float) * nw);
  char name[96];
  snprintf(name, sizeof name, "bf16 linear N%d %d->%d%s", N, Cin, Cout, bias ? " +bias" : "");
  CHECK_OK(ops_set_precision(&ct_gpu, "bf16"));
  CHECK_OK(ct_gpu.be->linear(&ct_gpu, dyg, dxg, dwg, dbg, N, Cin, Cout));
  CHECK_OK(ct_gpu.be->linear_backward(&ct_gpu, ddx, ddw, ddb, ddy, dxg, dwg, N, Cin, Cout));
  CHECK_OK(ct_cpu.be->linear(&ct_cpu, y, x, w, b, N, Cin, Cout));
  CHECK_OK(ct_cpu.be->linear_backward(&ct_cpu, dx, dw, db, dy, x, w, N, Cin, Cout));
  check_bf16(name, dev_err(name, dyg, y, ny));
  snprintf(name, sizeof name, "  dx");
  check_bf16(name, dev_err(name, ddx, dx, nx));
  // dw: the increments only (dw minus its prefill), or the prefill would hide the bf16 error
  float *dwh = malloc(sizeof(float) * nw);
  if (!ct_get("dw", dwh, ddw, sizeof(float) * nw)) {
    for (size_t i = 0; i < nw; i++) dwh[i] -= dw_pre[i], dw[i] -= dw_pre[i];
    snprintf(name, sizeof name, "  dw (+= onto a prefill)");
    check_bf16(name, rel_err_f32(dwh, dw, nw));
  }
  snprintf(name, sizeof name, "  dbias (fp32 column sum)");
  ct_check(name, ddb, db, Cout, TOL_CUDA_F32);
  // NULL outputs: dw only, then dx only (no writes elsewhere: guards)
  float *ddw2 = ct_dev(NULL, nw), *ddx2 = ct_dev(NULL, nx);
  CHECK_OK(ct_gpu.be->zero(&ct_gpu, ddw2, sizeof(float) * nw));
  CHECK_OK(ct_gpu.be->linear_backward(&ct_gpu, NULL, ddw2, NULL, ddy, dxg, dwg, N, Cin, Cout));
  CHECK_OK(ct_gpu.be->linear_backward(&ct_gpu, ddx2, NULL, NULL, ddy, dxg, dwg, N, Cin, Cout));
  float *dw_only = calloc(nw, sizeof(float));
  CHECK_OK(ct_cpu.be->linear_backward(&ct_cpu, NULL, dw_only, NULL, dy, x, w, N, Cin, Cout));
  snprintf(name, sizeof name, "  dw alone (dx, dbias NULL)");
  check_bf16(name, dev_err(name, ddw2, dw_only, nw));
  snprintf(name, sizeof name, "  dx alone (dw, dbias NULL)");
  check_bf16(name, dev_err(name, ddx2, dx, nx));
  // back to fp32 on the same context
  CHECK_OK(ops_set_precision(&ct_gpu, "fp32"));
  CHECK_OK(ct_gpu.be->linear(&ct_gpu, dyg, dxg, dwg, dbg, N, Cin, Cout));
  snprintf(name, sizeof name, "fp32 again: linear N%d %d->%d", N, Cin, Cout);
  ct_check(name, dyg, y, ny, TOL_CUDA_F32);
  ct_free(dxg), ct_free(dwg), ct_free(dbg), ct_free(ddy), ct_free(ddx), ct_free(ddw), ct_free(ddw2), ct_free(ddx2);
  free(x), free(w), free(b), free(y), free(dy), free(dx), free(dw), free(db), free(dwh), free(dw_pre), free(dw_only);
}

// One tiny pretraining step (eval mode: no dropout) in bf16 on CUDA vs fp32 on the CPU.
static void test_step(uint64_t seed) {
  hb_config c;
  config_preset(&c, HB_PRESET_TINY);
  c.num_label_sets = 1;
  c.label_k[0] = 50;
  snprintf(c.label_names[0], HB_NAME_LEN, "km");
  const int B = 2;
  const long L = 8000;
  hb_model mc, mg;
  hb_pretrain_ws wc, wg;
  CHECK_OK(ops_set_precision(&ct_gpu, "bf16"));
  if (model_init(&mc, &c, &ct_cpu) || model_init_random(&mc, seed) || pretrain_ws_init(&wc, &mc, B, L) ||
      model_init(&mg, &c, &ct_gpu) || model_init_random(&mg, seed) || pretrain_ws_init(&wg, &mg, B, L)) {
    fprintf(stderr, "FAIL step setup: %s\n", hb_errmsg());
    exit(1);
  }
  const int T = config_num_frames(&c, L);
  long lens[2] = {L, L * 3 / 4};
  int flen[2] = {T, config_num_frames(&c, lens[1])};
  float *wave = ct_randn((size_t)B * L, 0.1);
  for (long i = lens[1]; i < L; i++) wave[L + i] = 0.0f;
  int *lab = malloc(sizeof(int) * (size_t)B * T);
  for (int i = 0; i < B * T; i++) lab[i] = (int)rng_below(&ct_rng, 50);
  const int *labels[HB_MAX_LABEL_SETS] = {lab};
  uint8_t *mask = calloc((size_t)B * T, 1);
  CHECK_OK(mask_compute(mask, B, T, flen, 0.8, 10, 2, &ct_rng));
  hb_pretrain_opts o;
  pretrain_opts_default(&o);
  o.train.train = 0;
  const size_t total = mc.layout.total;
  float *gc = calloc(total, sizeof(float)), *gh = malloc(sizeof(float) * total);
  float *dwave = ct_dev(wave, (size_t)B * L), *dg = ct_dev(NULL, total);
  CHECK_OK(ct_gpu.be->zero(&ct_gpu, dg, sizeof(float) * total));
  hb_pretrain_stats sc, sg;
  CHECK_OK(pretrain_step(&mc, &wc, wave, lens, B, L, labels, NULL, mask, NULL, &o, gc, &sc));
  CHECK_OK(pretrain_step(&mg, &wg, dwave, lens, B, L, labels, NULL, mask, NULL, &o, dg, &sg));
  printf("  tiny step B %d x %.2f s: loss bf16 CUDA %.6f, fp32 CPU %.6f\n", B, L / 16000.0, sg.loss, sc.loss);
  const double e = fabs(sg.loss - sc.loss) / fabs(sc.loss);
  CHECK_REL("tiny step loss (bf16 vs fp32 CPU)", isfinite(sg.loss) ? e : INFINITY, TOL_CUDA_BF16);
  if (!ct_get("gradient", gh, dg, sizeof(float) * total))
    CHECK_REL("tiny step gradient (flat)", rel_err_f32(gh, gc, total), TOL_CUDA_BF16_GRAD);
  CHECK_OK(ops_set_precision(&ct_gpu, "fp32"));
  ct_free(dwave), ct_free(dg);
  free(gc), free(gh), free(wave), free(lab), free(mask);
  pretrain_ws_free(&wc, &mc), pretrain_ws_free(&wg, &mg);
  model_free(&mc), model_free(&mg);
}

int main(void) {
  const uint64_t seed = ct_init("test_bf16_cuda");
  CHECK_ERR(ops_set_precision(&ct_cpu, "bf16"), "needs the CUDA backend");
  test_linear(37, 48, 29, 1);
  test_linear(300, 768, 3072, 0);  // a Base FFN shape
  test_linear(1, 5, 7, 1);         // odd, tiny
  test_step(seed);
  ops_ctx_free(&ct_gpu), ops_ctx_free(&ct_cpu);
  return test_summary("test_bf16_cuda");
}
