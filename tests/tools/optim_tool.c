// Test driver for tests/parity/test_optim_torch.py: runs our AdamW + clipping + LR schedule for
// S steps on given parameters and gradients, with the optimizer and schedule settings of a
// trainer config (so the config path is exercised too).
//
//   optim_tool CONFIG.yaml IN.safetensors OUT.safetensors [--resume-at K] [section.key=value ...]
// IN : param (N,), grad (S, N), segments (nseg, 3) = offset, numel, decay; grad_scale (S,)
// OUT: param (S, N) after each step, lr (S,), norm (S,), clip_coef (S,), skipped (S,), updates (S,)
// The update number n (for the schedule) advances only on applied steps, as fairseq's.
// --resume-at K: after step K the state is saved, the optimizer freed, a new one loaded.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/safetensors.h"
#include "train/config.h"
#include "train/optim.h"

// A float tensor of IN with its element count and first dimension (1 for a scalar).
static float *read_tensor(const hb_safetensors *st, const char *name, size_t *count, int64_t *d0) {
  int64_t shape[HB_ST_MAX_DIMS] = {1};
  float *x = st_load_f32(st, name, -1, shape, count);
  *d0 = shape[0];
  return x;
}

static int run(int argc, char **argv) {
  if (argc < 4) return hb_fail("usage: optim_tool CONFIG.yaml IN.safetensors OUT.safetensors [--resume-at K] [overrides]");
  int resume_at = -1, first_ov = 4;
  if (argc > 5 && !strcmp(argv[4], "--resume-at")) { resume_at = atoi(argv[5]); first_ov = 6; }
  hb_train_config cfg;
  HB_TRY(train_config_load(&cfg, argv[1], argc - first_ov, argv + first_ov));
  hb_lr_schedule sched;
  train_config_schedule(&cfg, &sched);
  hb_adamw_hparams hp = train_config_adamw(&cfg);

  hb_safetensors st;
  HB_TRY(st_open(argv[2], &st));
  size_t np, ng, ns, nsc;
  int64_t d0, S, nseg, d3;
  float *p = read_tensor(&st, "param", &np, &d0);
  float *g = read_tensor(&st, "grad", &ng, &S);
  float *segf = read_tensor(&st, "segments", &ns, &nseg);
  float *scale = read_tensor(&st, "grad_scale", &nsc, &d3);
  st_close(&st);
  if (!p || !g || !segf || !scale) return -1;
  if (ng != (size_t)S * np || ns != (size_t)nseg * 3 || nsc != (size_t)S) return hb_fail("inconsistent shapes");
  hb_optim_segment *seg = hb_malloc((size_t)nseg * sizeof *seg);
  float *traj = hb_malloc((size_t)S * np * sizeof(float));
  float *stats = hb_malloc((size_t)S * 5 * sizeof(float));
  if (!seg || !traj || !stats) return -1;
  for (int i = 0; i < nseg; i++) {
    seg[i].offset = (size_t)segf[3 * i];
    seg[i].numel = (size_t)segf[3 * i + 1];
    seg[i].decay = segf[3 * i + 2] != 0;
  }
  hb_adamw o;
  HB_TRY(optim_init(&o, np, seg, (int)nseg, &hp));
  long n = 0;  // completed updates
  for (int64_t s = 0; s < S; s++) {
    double lr = sched_lr(&sched, n);
    hb_optim_stats os;
    HB_TRY(optim_step(&o, p, g + (size_t)s * np, scale[s], lr, cfg.optimization.clip_norm, &os));
    if (!os.skipped) n++;
    memcpy(traj + (size_t)s * np, p, np * sizeof(float));
    stats[0 * S + s] = (float)lr;
    stats[1 * S + s] = (float)os.grad_norm;
    stats[2 * S + s] = (float)os.clip_coef;
    stats[3 * S + s] = (float)os.skipped;
    stats[4 * S + s] = (float)o.step;
    if (s + 1 == resume_at) {
      char path[4096];
      snprintf(path, sizeof path, "%s.state", argv[3]);
      HB_TRY(optim_save(&o, path));
      optim_free(&o);
      HB_TRY(optim_init(&o, np, seg, (int)nseg, &hp));
      HB_TRY(optim_load(&o, path));
    }
  }
  hb_st_entry e[6] = {{"param", traj, 2, {S, (int64_t)np}},   {"lr", stats, 1, {S}},
                      {"norm", stats + S, 1, {S}},            {"clip_coef", stats + 2 * S, 1, {S}},
                      {"skipped", stats + 3 * S, 1, {S}},     {"updates", stats + 4 * S, 1, {S}}};
  int rc = st_write(argv[3], 6, e, HB_DT_F32, 0, NULL, NULL);
  optim_free(&o);
  free(p), free(g), free(segf), free(scale), free(seg), free(traj), free(stats);
  return rc;
}

int main(int argc, char **argv) {
  if (run(argc, argv)) {
    fprintf(stderr, "optim_tool: %s\n", hb_errmsg());
    return 1;
  }
  return 0;
}
