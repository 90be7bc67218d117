// Finite-difference check of the whole trunk's backward (models/hubert_train.c).
//
// Loss = sum_valid hidden[NL] * R + 0.5 sum_valid hidden[1] * R1 + 0.3 sum_valid features * Rf on a
// padded batch of 2 with a frame mask. For EVERY parameter tensor, along FD_DIRS directions u that
// are random +-1 on a random subset of FD_SUB coordinates (0 elsewhere), the analytic derivative
// g.u is compared with the central difference (L(p + h u) - L(p - h u)) / 2h of the float model.
// Tolerance reasoning: L (~1e1) is summed in double from float hidden states whose rounding noise
// is ~1e-7 relative, so |noise(L)| ~ 1e-5 at most; with h = 1e-2 * max(rms(tensor), 0.05)
// (>= 5e-4) the difference quotient carries <= 1e-2 absolute noise and O(h^2) truncation. The error
// is judged relative to sum_i |g_i| on the subset (an error of relative size e in any checked
// coordinate shows at that scale), with an absolute floor of 2e-3 for near-zero gradients:
// pass if |fd - g.u| <= TOL_GRAD_F32 * sum|g_i| + 2e-3. Summing FD_SUB coordinates in one
// direction averages the float noise while each coordinate still counts.
// Cases: Base-like tiny (group norm, post-LN), pre-LN with a layer-norm extractor, conv bias and
// train-mode dropout with a fixed seed (the masks are a function of the seed, so L stays a
// deterministic smooth function). Also: eval-mode training forward == inference forward, the
// dropout mask is reproducible, feature_grad_mult scales exactly the extractor's gradients, and a
// second backward accumulates (doubles) the gradients.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/rng.h"
#include "models/hubert_train.h"
#include "tests/test_util.h"

#define FD_DIRS 3
#define FD_SUB 8

static double g_hscale = 3e-2;

typedef struct {
  hb_model m;
  hb_train_arena a;
  hb_train_opts opts;
  float *wave;
  long lens[2];
  int B;
  long L;
  uint8_t *mask;
  float *R, *R1, *Rf;  // (B, T, H), (B, T, H), (B, T, Cc); zero on padded frames
  int T, frames[2];
} fixture;

static double loss_eval(fixture *f) {
  int T;
  if (model_forward_train(&f->m, &f->a, f->wave, f->lens, f->B, f->L, f->mask, f->frames, &T, &f->opts)) {
    fprintf(stderr, "forward failed: %s\n", hb_errmsg());
    exit(1);
  }
  const hb_config *c = &f->m.cfg;
  const size_t n = (size_t)f->B * T * c->hidden_size, nf = (size_t)f->B * T * c->conv_dim[c->num_conv - 1];
  double s = 0;
  const float *hN = f->a.hidden[c->num_hidden_layers], *h1 = f->a.hidden[1];
  for (size_t i = 0; i < n; i++) s += (double)hN[i] * f->R[i] + 0.5 * (double)h1[i] * f->R1[i];
  for (size_t i = 0; i < nf; i++) s += 0.3 * (double)f->a.features[i] * f->Rf[i];
  return s;
}

static void fill_valid(float *x, hb_rng *r, int B, int T, int C, const int *frames, double scale) {
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      for (int k = 0; k < C; k++) x[((size_t)b * T + t) * C + k] = t < frames[b] ? (float)(scale * rng_normal(r)) : 0.0f;
}

static int fixture_init(fixture *f, hb_ctx *ctx, const hb_config *c, uint64_t seed, int train) {
  memset(f, 0, sizeof *f);
  hb_rng r;
  rng_init(&r, seed);
  HB_TRY(model_init(&f->m, c, ctx));
  HB_TRY(model_init_random(&f->m, seed));
  // Non-trivial biases and gains everywhere (as tests/parity/hubert_testlib.py does).
  for (int i = 0; i < f->m.layout.n; i++) {
    const hb_param_info *pi = &f->m.layout.info[i];
    float *p = f->m.params + pi->offset;
    if (pi->init == INIT_ZERO)
      for (size_t j = 0; j < pi->numel; j++) p[j] = (float)(0.1 * rng_normal(&r));
    else if (pi->init == INIT_ONE || pi->init == INIT_POS_CONV_G)
      for (size_t j = 0; j < pi->numel; j++) p[j] *= (float)(1.0 + 0.2 * rng_normal(&r));
  }
  f->B = 2;
  f->L = 1750;
  f->lens[0] = 1750;
  f->lens[1] = 1100;
  HB_TRY(train_arena_init(&f->a, &f->m, f->B, f->L));
  const int T = config_num_frames(c, f->L);
  f->wave = calloc((size_t)f->B * f->L, sizeof(float));
  f->mask = calloc((size_t)f->B * T, 1);
  const int H = c->hidden_size, Cc = c->conv_dim[c->num_conv - 1];
  f->R = calloc((size_t)f->B * T * H, sizeof(float));
  f->R1 = calloc((size_t)f->B * T * H, sizeof(float));
  f->Rf = calloc((size_t)f->B * T * Cc, sizeof(float));
  for (int b = 0; b < f->B; b++)
    for (long i = 0; i < f->lens[b]; i++) f->wave[b * f->L + i] = (float)(0.3 * sin(0.05 * i * (b + 1)) + 0.1 * rng_normal(&r));
  int frames[2];
  for (int b = 0; b < f->B; b++) frames[b] = config_num_frames(c, f->lens[b]);
  // Mask: frame 1 of utterance 0 and frames 0 and the last valid one of utterance 1.
  f->mask[1] = 1;
  f->mask[T] = 1;
  f->mask[T + frames[1] - 1] = 1;
  fill_valid(f->R, &r, f->B, T, H, frames, 1.0);
  fill_valid(f->R1, &r, f->B, T, H, frames, 1.0);
  fill_valid(f->Rf, &r, f->B, T, Cc, frames, 1.0);
  f->opts.train = train;
  f->opts.seed = seed * 7 + 1;
  f->T = T;
  return 0;
}

static void fixture_free(fixture *f) {
  train_arena_free(&f->a, &f->m);
  model_free(&f->m);
  free(f->wave);
  free(f->mask);
  free(f->R);
  free(f->R1);
  free(f->Rf);
}

// Analytic gradient of the loss into grads (zeroed first), feature_grad_mult = mult.
static int analytic(fixture *f, float *grads, float mult, int zero) {
  const hb_config *c = &f->m.cfg;
  const int NL = c->num_hidden_layers;
  const size_t n = (size_t)f->B * f->T * c->hidden_size, nf = (size_t)f->B * f->T * c->conv_dim[c->num_conv - 1];
  float **dh = calloc((size_t)NL + 1, sizeof(float *));
  float *d1 = malloc(sizeof(float) * n), *df = malloc(sizeof(float) * nf);
  for (size_t i = 0; i < n; i++) d1[i] = 0.5f * f->R1[i];
  for (size_t i = 0; i < nf; i++) df[i] = 0.3f * f->Rf[i];
  dh[NL] = f->R;
  dh[1] = d1;  // NL >= 2 in both cases
  loss_eval(f);
  if (zero) memset(grads, 0, sizeof(float) * f->m.layout.total);
  int rc = model_backward(&f->m, &f->a, dh, df, mult, grads);
  free(dh);
  free(d1);
  free(df);
  return rc;
}

static int run_case(const char *name, hb_config *c, uint64_t seed, int train) {
  hb_ctx ctx;
  fixture f;
  if (ops_ctx_init(&ctx, "cpu", 0) || fixture_init(&f, &ctx, c, seed, train)) {
    fprintf(stderr, "FAIL %s: setup: %s\n", name, hb_errmsg());
    return 1;
  }
  const size_t total = f.m.layout.total;
  float *grads = calloc(total, sizeof(float));
  CHECK_OK(analytic(&f, grads, 1.0f, 1));
  printf("%s: B=2 T=%d frames %d,%d, arena %.2f MB, %d tensors, seed %llu\n", name, f.T, f.frames[0], f.frames[1],
         f.a.bytes / 1e6, f.m.layout.n, (unsigned long long)seed);
  hb_rng r;
  rng_init(&r, seed ^ 0x5eed);
  double worst = 0;
  int bad = 0;
  int *idx = malloc(sizeof(int) * FD_SUB);
  float *sgn = malloc(sizeof(float) * FD_SUB);
  for (int i = 0; i < f.m.layout.n; i++) {
    const hb_param_info *pi = &f.m.layout.info[i];
    float *p = f.m.params + pi->offset;
    const float *g = grads + pi->offset;
    double rms = 0;
    for (size_t j = 0; j < pi->numel; j++) rms += (double)p[j] * p[j];
    rms = sqrt(rms / (double)pi->numel);
    const double h = g_hscale * (rms > 0.05 ? rms : 0.05);
    for (int d = 0; d < FD_DIRS; d++) {
      const int ns = pi->numel < FD_SUB ? (int)pi->numel : FD_SUB;
      double an = 0, scale = 0;
      for (int s = 0; s < ns; s++) {
        idx[s] = (int)rng_below(&r, pi->numel);
        sgn[s] = rng_u32(&r) & 1 ? 1.0f : -1.0f;
        an += sgn[s] * (double)g[idx[s]];
        scale += fabs(g[idx[s]]);
      }
      float *save = malloc(sizeof(float) * ns);
      for (int s = 0; s < ns; s++) save[s] = p[idx[s]];
      for (int s = 0; s < ns; s++) p[idx[s]] += (float)(h * sgn[s]);
      const double lp = loss_eval(&f);
      for (int s = 0; s < ns; s++) p[idx[s]] = save[s];
      for (int s = 0; s < ns; s++) p[idx[s]] -= (float)(h * sgn[s]);
      const double lm = loss_eval(&f);
      for (int s = 0; s < ns; s++) p[idx[s]] = save[s];
      free(save);
      // the perturbation actually applied is float-rounded; h relative error ~1e-4 is negligible
      const double fd = (lp - lm) / (2 * h);
      const double err = fabs(fd - an), lim = TOL_GRAD_F32 * scale + 5e-3;
      const double rel = err / (scale + 5e-3 / TOL_GRAD_F32);
      if (rel > worst) worst = rel;
      if (getenv("FD_VERBOSE")) printf("    %-60s fd %+.5e an %+.5e rel %.1e\n", pi->name, fd, an, rel);
      if (!(err <= lim)) {
        bad++;
        fprintf(stderr, "  FAIL %s dir %d: fd %.6e analytic %.6e (sum|g| %.3e, h %.1e)\n", pi->name, d, fd, an, scale, h);
      }
    }
  }
  printf("%s: %d tensors x %d directions, worst |fd - g.u| / sum|g| = %.2e (tol %.0e)  %s\n", name, f.m.layout.n,
         FD_DIRS, worst, TOL_GRAD_F32, bad ? "FAIL" : "ok");
  g_test_checks++;
  g_test_failures += bad ? 1 : 0;

  // Accumulation: a second backward on top doubles every gradient.
  float *g2 = malloc(sizeof(float) * total);
  memcpy(g2, grads, sizeof(float) * total);
  CHECK_OK(analytic(&f, g2, 1.0f, 0));
  for (size_t j = 0; j < total; j++) g2[j] *= 0.5f;
  double e_acc = rel_err_f32(g2, grads, total);
  printf("%s: second backward accumulates: rel.err %.2e (tol %.0e)\n", name, e_acc, TOL_GRAD_ACCUM);
  CHECK(e_acc < TOL_GRAD_ACCUM);

  // feature_grad_mult 0.1: extractor gradients x 0.1, all others unchanged.
  CHECK_OK(analytic(&f, g2, 0.1f, 1));
  double worst_conv = 0, worst_other = 0;
  for (int i = 0; i < f.m.layout.n; i++) {
    const hb_param_info *pi = &f.m.layout.info[i];
    float *ref = malloc(sizeof(float) * pi->numel);
    for (size_t j = 0; j < pi->numel; j++) ref[j] = grads[pi->offset + j] * (pi->kind == 1 ? 0.1f : 1.0f);
    double e = rel_err_f32(g2 + pi->offset, ref, pi->numel);
    if (pi->kind == 1) worst_conv = e > worst_conv ? e : worst_conv;
    else worst_other = e > worst_other ? e : worst_other;
    free(ref);
  }
  printf("%s: feature_grad_mult 0.1: conv grads rel.err %.2e, others %.2e (tol 1e-5)\n", name, worst_conv, worst_other);
  CHECK(worst_conv < 1e-5 && worst_other < 1e-5);

  free(g2);
  free(idx);
  free(sgn);
  free(grads);
  fixture_free(&f);
  ops_ctx_free(&ctx);
  return 0;
}

// Eval-mode training forward equals the inference forward; train-mode dropout is reproducible.
static void check_forward_consistency(uint64_t seed) {
  hb_config c;
  config_preset(&c, HB_PRESET_TINY);
  hb_ctx ctx;
  fixture f;
  if (ops_ctx_init(&ctx, "cpu", 0) || fixture_init(&f, &ctx, &c, seed, 0)) {
    fprintf(stderr, "FAIL consistency setup: %s\n", hb_errmsg());
    g_test_failures++;
    return;
  }
  hb_fwd_arena fa;
  CHECK_OK(fwd_arena_init(&fa, &f.m, f.B, f.L));
  const int NL = c.num_hidden_layers;
  const size_t n = (size_t)f.B * f.T * c.hidden_size;
  float **hid = calloc((size_t)NL + 1, sizeof(float *));
  for (int k = 0; k <= NL; k++) hid[k] = malloc(sizeof(float) * n);
  int frames[2], T;
  CHECK_OK(model_forward(&f.m, &fa, f.wave, f.lens, f.B, f.L, frames, &T, hid));
  uint8_t *save_mask = f.mask;
  f.mask = NULL;
  loss_eval(&f);
  double worst = 0;
  for (int k = 0; k <= NL; k++) {
    double e = rel_err_f32(f.a.hidden[k], hid[k], n);
    worst = e > worst ? e : worst;
  }
  printf("eval-mode training forward vs inference forward: worst hidden rel.err %.2e (tol %.0e)\n", worst, TOL_F32_OP);
  CHECK(worst < TOL_F32_OP);
  // train mode: same seed -> same output; another seed -> different output
  f.opts.train = 1;
  f.opts.seed = 11;
  loss_eval(&f);
  memcpy(hid[0], f.a.hidden[NL], sizeof(float) * n);
  loss_eval(&f);
  double same = rel_err_f32(f.a.hidden[NL], hid[0], n);
  f.opts.seed = 12;
  loss_eval(&f);
  double diff = rel_err_f32(f.a.hidden[NL], hid[0], n);
  printf("train-mode forward: same seed rel.diff %.1e (want 0), other seed %.2e (want > 1e-3)\n", same, diff);
  CHECK(same == 0.0 && diff > 1e-3);
  f.mask = save_mask;
  for (int k = 0; k <= NL; k++) free(hid[k]);
  free(hid);
  fwd_arena_free(&fa, &f.m);
  fixture_free(&f);
  ops_ctx_free(&ctx);
}

int main(void) {
  uint64_t seed = (uint64_t)time(NULL);
  const char *env = getenv("HUBERT_TEST_SEED");
  if (env) seed = strtoull(env, NULL, 10);
  if (getenv("FD_HSCALE")) g_hscale = atof(getenv("FD_HSCALE"));
  printf("seed %llu (rerun with HUBERT_TEST_SEED=%llu)\n", (unsigned long long)seed, (unsigned long long)seed);
  check_forward_consistency(seed);

  hb_config c;
  config_preset(&c, HB_PRESET_TINY);
  c.layerdrop = 0;
  run_case("tiny (group norm, post-LN), eval mode", &c, seed, 0);

  config_preset(&c, HB_PRESET_TINY);
  c.feat_extract_norm_layer = 1;
  c.do_stable_layer_norm = 1;
  c.conv_bias = 1;
  c.num_hidden_layers = 3;
  c.num_conv_pos_embeddings = 15;  // odd kernel: no trimmed frame
  c.num_conv_pos_embedding_groups = 2;
  c.hidden_dropout = c.attention_dropout = c.activation_dropout = c.feat_proj_dropout = 0.1;
  c.layerdrop = 0.3;
  run_case("pre-LN, layer-norm extractor, conv bias, dropout (attention probabilities too) + LayerDrop (fixed seed)", &c, seed + 1, 1);

  printf("test_grad_model: %d checks, %d failures\n", g_test_checks, g_test_failures);
  return g_test_failures ? 1 : 0;
}
