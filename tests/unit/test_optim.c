// LR schedules against closed-form values; AdamW invariants (first step = -lr * sign(g) for
// decay-free tensors, padding untouched, NaN skip leaves everything as it was, clipping), state
// save/load, and segments from the parameter table.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "models/hubert_params.h"
#include "tests/test_util.h"
#include "train/optim.h"

#define CLOSE(a, b) (fabs((a) - (b)) <= 1e-12 * fmax(1.0, fabs(b)))

static void test_schedules(void) {
  printf("schedules:\n");
  hb_lr_schedule s = {HB_LR_POLYNOMIAL, 1e-3, 100, 1100, 0.0, 1.0, {0.1, 0.4, 0.5}, 0.01, 0.01};
  CHECK(sched_lr(&s, 0) == 0);                    // fairseq: the first update runs at lr 0
  CHECK(CLOSE(sched_lr(&s, 50), 5e-4));
  CHECK(CLOSE(sched_lr(&s, 100), 1e-3));
  CHECK(CLOSE(sched_lr(&s, 600), 5e-4));          // halfway through the linear decay
  CHECK(sched_lr(&s, 1100) == 0 && sched_lr(&s, 5000) == 0);
  s.power = 2, s.end_lr = 1e-5;
  CHECK(CLOSE(sched_lr(&s, 600), 1e-5 + (1e-3 - 1e-5) * 0.25));
  s.warmup = 0;
  CHECK(CLOSE(sched_lr(&s, 0), 1e-3));

  hb_lr_schedule t = {HB_LR_TRI_STAGE, 1e-3, 0, 1000, 0, 1, {0.1, 0.4, 0.5}, 0.01, 0.05};
  CHECK(CLOSE(sched_lr(&t, 0), 1e-5));
  CHECK(CLOSE(sched_lr(&t, 50), 1e-5 + (1e-3 - 1e-5) * 0.5));
  CHECK(CLOSE(sched_lr(&t, 100), 1e-3) && CLOSE(sched_lr(&t, 499), 1e-3));
  CHECK(CLOSE(sched_lr(&t, 750), 1e-3 * sqrt(0.05)));  // halfway through the exponential decay
  CHECK(CLOSE(sched_lr(&t, 1000), 5e-5) && CLOSE(sched_lr(&t, 2000), 5e-5));

  hb_lr_schedule c = {HB_LR_COSINE, 1e-3, 10, 110, 1e-4, 1, {0}, 0, 0};
  CHECK(CLOSE(sched_lr(&c, 5), 5e-4));
  CHECK(CLOSE(sched_lr(&c, 60), 1e-4 + 0.9e-3 * 0.5));
  CHECK(CLOSE(sched_lr(&c, 110), 1e-4) && CLOSE(sched_lr(&c, 500), 1e-4));

  hb_lr_schedule f = {HB_LR_FIXED, 2e-4, 4, 0, 0, 1, {0}, 0, 0};
  CHECK(CLOSE(sched_lr(&f, 1), 5e-5) && CLOSE(sched_lr(&f, 4), 2e-4) && CLOSE(sched_lr(&f, 1000000), 2e-4));
  printf("  poly %.3g %.3g %.3g, tri-stage %.3g %.3g %.3g, cosine %.3g, fixed %.3g\n", sched_lr(&s, 0), sched_lr(&s, 600),
         sched_lr(&s, 1100), sched_lr(&t, 0), sched_lr(&t, 750), sched_lr(&t, 1500), sched_lr(&c, 60), sched_lr(&f, 2));
}

static void test_adamw(void) {
  printf("adamw:\n");
  // Two tensors with padding between them: [0, 10) decay, [64, 74) no decay; total 128.
  hb_optim_segment seg[2] = {{0, 10, 1}, {64, 10, 0}};
  hb_adamw_hparams hp = optim_default_hparams();
  hb_adamw o;
  CHECK_OK(optim_init(&o, 128, seg, 2, &hp));
  float p[128], g[128], p0[128];
  for (int i = 0; i < 128; i++) {
    p[i] = (i % 7) - 3.0f;
    g[i] = (i % 2 ? 1.0f : -2.0f) * (1 + i % 3);
  }
  memcpy(p0, p, sizeof p);
  hb_optim_stats st;
  double lr = 1e-2;
  CHECK_OK(optim_step(&o, p, g, 1.0, lr, 0.0, &st));
  // Step 1: m_hat = g, v_hat = g^2, so the Adam part is -lr * g / (|g| + eps) ~ -lr * sign(g).
  double worst = 0;
  for (int i = 64; i < 74; i++) {
    double want = p0[i] - lr * g[i] / (fabs(g[i]) + 1e-6);
    worst = fmax(worst, fabs(p[i] - want));
  }
  for (int i = 0; i < 10; i++) {
    double want = p0[i] * (1 - lr * 0.01) - lr * g[i] / (fabs(g[i]) + 1e-6);
    worst = fmax(worst, fabs(p[i] - want));
  }
  printf("  first step vs closed form: max abs err %.2e\n", worst);
  CHECK(worst < 1e-6);
  int pad_ok = 1;
  for (int i = 10; i < 64; i++) pad_ok &= p[i] == p0[i] && o.m[i] == 0 && o.v[i] == 0;
  for (int i = 74; i < 128; i++) pad_ok &= p[i] == p0[i];
  CHECK(pad_ok);
  CHECK(o.step == 1 && st.skipped == 0 && st.clip_coef == 1.0);

  // Clipping: coef = clip / (norm + 1e-6); grad_scale enters the norm.
  double norm = optim_grad_norm(&o, g, 0.5);
  CHECK_OK(optim_step(&o, p, g, 0.5, lr, 1.0, &st));
  printf("  norm %.6f (scale 0.5), clip coef %.6f\n", st.grad_norm, st.clip_coef);
  CHECK(CLOSE(st.grad_norm, norm) && fabs(st.clip_coef - 1.0 / (norm + 1e-6)) < 1e-12);

  // A NaN or inf gradient: skipped, nothing changes.
  float p1[128], m1[128], v1[128];
  memcpy(p1, p, sizeof p);
  memcpy(m1, o.m, sizeof m1);
  memcpy(v1, o.v, sizeof v1);
  g[67] = NAN;
  CHECK_OK(optim_step(&o, p, g, 1.0, lr, 10.0, &st));
  CHECK(st.skipped == 1 && o.step == 2 && o.skipped == 1 && isnan(st.grad_norm));
  CHECK(!memcmp(p, p1, sizeof p) && !memcmp(o.m, m1, sizeof m1) && !memcmp(o.v, v1, sizeof v1));
  g[67] = INFINITY;
  CHECK_OK(optim_step(&o, p, g, 1.0, lr, 10.0, &st));
  CHECK(st.skipped == 1 && o.skipped == 2 && !memcmp(p, p1, sizeof p));
  g[67] = 1.0f;

  // Save, load into a fresh optimizer, continue: identical to continuing directly.
  char path[] = "/tmp/hb_test_optim_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd >= 0) close(fd);
  CHECK_OK(optim_save(&o, path));
  hb_adamw o2;
  CHECK_OK(optim_init(&o2, 128, seg, 2, &hp));
  CHECK_OK(optim_load(&o2, path));
  CHECK(o2.step == 2 && o2.skipped == 2);
  float q[128];
  memcpy(q, p, sizeof q);
  CHECK_OK(optim_step(&o, p, g, 1.0, lr, 10.0, &st));
  CHECK_OK(optim_step(&o2, q, g, 1.0, lr, 10.0, &st));
  CHECK(!memcmp(p, q, sizeof p) && !memcmp(o.m, o2.m, 128 * sizeof(float)));
  hb_adamw o3;
  hb_optim_segment seg3[1] = {{0, 10, 1}};
  CHECK_OK(optim_init(&o3, 64, seg3, 1, &hp));
  CHECK_ERR(optim_load(&o3, path), "optimizer state holds 128 floats, the model's layout has 64");
  remove(path);
  optim_free(&o);
  optim_free(&o2);
  optim_free(&o3);

  // Bad segments and hyper-parameters.
  hb_optim_segment bad[2] = {{0, 10, 1}, {5, 10, 0}};
  CHECK_ERR(optim_init(&o, 128, bad, 2, &hp), "segment 1");
  hb_adamw_hparams hb = hp;
  hb.beta2 = 1.0;
  CHECK_ERR(optim_init(&o, 128, seg, 2, &hb), "adam betas");
}

static void test_layout(void) {
  printf("segments from the parameter table:\n");
  hb_config c;
  config_preset(&c, HB_PRESET_TINY);
  hb_param_layout L;
  CHECK_OK(params_layout_init(&L, &c));
  hb_adamw o;
  hb_adamw_hparams hp = optim_default_hparams();
  CHECK_OK(optim_init_layout(&o, &L, &hp));
  int nd = 0;
  size_t floats = 0;
  for (int i = 0; i < o.nseg; i++) {
    nd += o.seg[i].decay;
    floats += o.seg[i].numel;
    CHECK(o.seg[i].decay == L.info[i].decay && o.seg[i].offset == L.info[i].offset);
  }
  printf("  tiny: %d tensors (%d with weight decay), %zu parameters in %zu floats\n", o.nseg, nd, floats, o.total);
  CHECK(nd > 0 && nd < o.nseg && o.total == L.total);
  optim_free(&o);
  params_layout_free(&L);
}

int main(void) {
  test_schedules();
  test_adamw();
  test_layout();
  return test_summary("test_optim");
}
