// The optimizer's backend route (train/optim.c -> ops sum_squares / adamw; kernels/cpu/cpu_optim.c):
// optim_use_backend with a CPU context keeps the host arrays, with another backend moves the
// moments there (again: no-op; a third backend: error); the norm reads only the spans (NaN in
// the padding between tensors is ignored, NaN inside a span skips the update); an optimizer whose
// state lives on a counting backend (the CPU ops under another name) calls sum_squares and adamw
// once per step and matches the host optimizer bit for bit (parameters, moments, norms, clip);
// optim_save of the backend-held state loads into a host optimizer.
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <unistd.h>

#include "common/rng.h"
#include "kernels/ops.h"
#include "tests/test_util.h"
#include "train/optim.h"

enum { TOTAL = 4096 };
static const hb_optim_segment SEG[3] = {{0, 1000, 1}, {1024, 1500, 0}, {2560, 1536, 1}};

// A "backend" that is the CPU backend under another name and counts calls: optim_use_backend
// moves the moments into its (host) memory and optim_step must route through its members.
static int g_calls;
static int count_sum_squares(hb_ctx *ctx, double *ss, const float *x, const hb_span *seg, int nseg) {
  g_calls++;
  return hb_backend_cpu.sum_squares(ctx, ss, x, seg, nseg);
}
static int count_adamw(hb_ctx *ctx, float *p, float *m, float *v, const float *g, const hb_span *seg, int nseg,
                       const hb_adamw_args *a) {
  g_calls++;
  return hb_backend_cpu.adamw(ctx, p, m, v, g, seg, nseg, a);
}

int main(void) {
  hb_rng r;
  rng_init(&r, 21);
  static float p1[TOTAL], p2[TOTAL], p3[TOTAL], g[TOTAL];
  for (int i = 0; i < TOTAL; i++) p1[i] = p2[i] = p3[i] = (float)rng_normal(&r);
  hb_adamw_hparams hp = optim_default_hparams();
  hb_adamw a, b, c;
  CHECK_OK(optim_init(&a, TOTAL, SEG, 3, &hp));
  CHECK_OK(optim_init(&b, TOTAL, SEG, 3, &hp));
  CHECK_OK(optim_init(&c, TOTAL, SEG, 3, &hp));
  hb_ctx cpu;
  CHECK_OK(ops_ctx_init(&cpu, "cpu", 1));
  float *m_before = a.m;
  CHECK_OK(optim_use_backend(&a, &cpu));
  CHECK(a.ctx == NULL && a.m == m_before);  // a CPU context changes nothing
  hb_backend fake = hb_backend_cpu;
  fake.name = "counting";
  fake.sum_squares = count_sum_squares;
  fake.adamw = count_adamw;
  hb_ctx fctx = cpu;
  fctx.be = &fake;
  CHECK_OK(optim_use_backend(&c, &fctx));
  CHECK(c.ctx == &fctx && c.m != NULL);
  CHECK_OK(optim_use_backend(&c, &fctx));  // the same context again: nothing to do
  CHECK_ERR(optim_use_backend(&c, &cpu), "already lives on backend 'counting'");
  for (int step = 0; step < 5; step++) {
    for (int i = 0; i < TOTAL; i++) g[i] = (float)rng_normal(&r);
    for (int i = 1000; i < 1024; i++) g[i] = NAN;  // padding: never read
    hb_optim_stats sa, sb, sc;
    CHECK_OK(optim_step(&a, p1, g, 0.5, 1e-2, 3.0, &sa));
    // the same update through the table directly, scalars folded as optim_step does
    const double ss_norm = optim_grad_norm(&b, g, 0.5);
    CHECK(isfinite(ss_norm) && ss_norm == sa.grad_norm);
    CHECK_OK(optim_step(&b, p2, g, 0.5, 1e-2, 3.0, &sb));
    g_calls = 0;
    CHECK_OK(optim_step(&c, p3, g, 0.5, 1e-2, 3.0, &sc));
    CHECK(g_calls == 2 && !sa.skipped && sa.grad_norm == sc.grad_norm && sa.clip_coef == sc.clip_coef);
  }
  CHECK(!memcmp(p1, p2, sizeof p1) && !memcmp(p1, p3, sizeof p1));
  CHECK(!memcmp(a.m, c.m, sizeof(float) * TOTAL) && !memcmp(a.v, c.v, sizeof(float) * TOTAL));
  // NaN inside a span: skipped, nothing changes
  memcpy(p2, p1, sizeof p1);
  g[1500] = NAN;
  hb_optim_stats s;
  CHECK_OK(optim_step(&a, p1, g, 0.5, 1e-2, 3.0, &s));
  CHECK(s.skipped && a.skipped == 1 && a.step == 5 && !memcmp(p1, p2, sizeof p1));
  // save from the backend-held state, load into a host optimizer: same moments
  char path[] = "/tmp/hb_test_optim_backend_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd >= 0) close(fd);
  CHECK_OK(optim_save(&c, path));
  hb_adamw d;
  CHECK_OK(optim_init(&d, TOTAL, SEG, 3, &hp));
  CHECK_OK(optim_load(&d, path));
  CHECK(d.step == c.step && !memcmp(d.v, c.v, sizeof(float) * TOTAL));
  unlink(path);
  optim_free(&a), optim_free(&b), optim_free(&c), optim_free(&d);
  ops_ctx_free(&cpu);
  return test_summary("test_optim_backend");
}
