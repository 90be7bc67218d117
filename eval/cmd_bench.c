// `hubert bench extract`: HuBERT forward throughput on random weights and random audio.
// The comparison against torchaudio lives in scripts/bench_extract.sh, which runs both.
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/error.h"
#include "common/rng.h"
#include "models/hubert.h"
#include "models/hubert_mask.h"
#include "models/hubert_pretrain.h"
#include "models/hubert_train.h"
#include "train/optim.h"

int model_config_from_arg(const char *arg, hb_config *c);  // eval/cmd_model.c

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int bench_extract(const char *config, int B, double seconds, int repeat, int threads, const char *device,
                         const char *precision) {
  hb_config c;
  HB_TRY(model_config_from_arg(config, &c));
  hb_ctx ctx;
  HB_TRY(ops_ctx_init(&ctx, device, threads));
  if (ops_set_precision(&ctx, precision)) {
    ops_ctx_free(&ctx);
    return hb_fail_prefix("hubert bench: --precision");
  }
  hb_model m;
  hb_fwd_arena a;
  int rc = -1, have_model = 0, have_arena = 0;
  const long L = (long)(seconds * 16000);
  float *wave = NULL, **hidden = NULL, *dwave = NULL;  // dwave: (B, L) backend copy of wave
  long *lens = NULL;
  int *frames = NULL;
  double *times = NULL;
  if (model_init(&m, &c, &ctx)) goto done;
  have_model = 1;
  if (model_init_random(&m, 1)) goto done;
  if (fwd_arena_init(&a, &m, B, L)) goto done;
  have_arena = 1;
  wave = hb_malloc(sizeof(float) * (size_t)B * L);
  lens = hb_malloc(sizeof(long) * (size_t)B);
  frames = hb_malloc(sizeof(int) * (size_t)B);
  hidden = hb_calloc((size_t)c.num_hidden_layers + 1, sizeof(float *));
  times = hb_calloc((size_t)repeat, sizeof(double));
  if (!wave || !lens || !frames || !hidden || !times) goto done;
  hb_rng r;
  rng_init(&r, 7);
  for (size_t i = 0; i < (size_t)B * L; i++) wave[i] = (float)(0.1 * rng_normal(&r));
  for (int b = 0; b < B; b++) lens[b] = L;
  dwave = ctx.be->alloc(&ctx, sizeof(float) * (size_t)B * L);
  if (!dwave || ctx.be->upload(&ctx, dwave, wave, sizeof(float) * (size_t)B * L)) goto done;
  int T = 0;
  if (model_forward(&m, &a, dwave, lens, B, L, frames, &T, hidden) || ctx.be->sync(&ctx)) goto done;  // warm-up
  for (int i = 0; i < repeat; i++) {
    double t0 = now_s();
    if (model_forward(&m, &a, dwave, lens, B, L, frames, &T, hidden) || ctx.be->sync(&ctx)) goto done;
    times[i] = now_s() - t0;
  }
  qsort(times, (size_t)repeat, sizeof(double), cmp_double);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("bench extract: config %s, batch %d x %.1f s, backend %s %s, %d threads, %.2fM params\n", config, B, seconds,
         ctx.be->name, precision, omp_get_max_threads(), model_num_params(&m) / 1e6);
  printf("bench extract: forward median %.3f s (min %.3f, max %.3f over %d runs), %.1fx real time, peak RSS %.0f MB\n",
         times[repeat / 2], times[0], times[repeat - 1], repeat, B * seconds / times[repeat / 2], ru.ru_maxrss / 1024.0);
  printf("RESULT hubert_forward_s=%.4f peak_rss_mb=%.0f\n", times[repeat / 2], ru.ru_maxrss / 1024.0);
  rc = 0;
done:
  free(wave);
  free(lens);
  free(frames);
  free(hidden);
  free(times);
  if (dwave) ctx.be->free(&ctx, dwave);
  if (have_arena) fwd_arena_free(&a, &m);
  if (have_model) model_free(&m);
  ops_ctx_free(&ctx);
  return rc;
}

// `hubert bench train`: one training step on random weights and audio. --loss pretrain (default):
// the real objective via pretrain_step (span mask from the config's mask_time_prob/length, random
// labels for each label set (one set of K = 100 added when the config has none, as torchaudio's
// hubert_pretrain_base), hubert_loss weights, feature_grad_mult 0.1, dropout/LayerDrop on);
// --loss synthetic: trunk forward + backward of sum(hidden[NL] * R). --adamw adds the optimizer
// update (train/optim.c, moments on the device with --device cuda, clip 10) to every step.
static int bench_train(const char *config, int B, double seconds, int repeat, int threads, const char *loss,
                       const char *device, int adamw, const char *precision) {
  const int pretrain = !strcmp(loss, "pretrain");
  if (!pretrain && strcmp(loss, "synthetic")) return hb_fail("hubert bench train: --loss must be pretrain or synthetic (got '%s')", loss);
  hb_config c;
  HB_TRY(model_config_from_arg(config, &c));
  if (pretrain && c.final_dim <= 0) return hb_fail("hubert bench train: config %s has no pretraining head (final_dim 0)", config);
  if (pretrain && c.num_label_sets == 0) {
    c.num_label_sets = 1;
    c.label_k[0] = 100;
    snprintf(c.label_names[0], HB_NAME_LEN, "km");
  }
  hb_ctx ctx;
  HB_TRY(ops_ctx_init(&ctx, device, threads));
  if (ops_set_precision(&ctx, precision)) {
    ops_ctx_free(&ctx);
    return hb_fail_prefix("hubert bench: --precision");
  }
  hb_model m;
  hb_train_arena a;
  hb_pretrain_ws pw;
  hb_adamw opt;
  int rc = -1, have_model = 0, have_arena = 0, have_pw = 0, have_opt = 0;
  float *hbuf = NULL;  // host staging of the random wave and R
  const long L = (long)(seconds * 16000);
  float *wave = NULL, *grads = NULL, *R = NULL, **dh = NULL;
  long *lens = NULL;
  int *frames = NULL, *labels = NULL;
  uint8_t *mask = NULL;
  double *times = hb_calloc((size_t)repeat, sizeof(double));
  double loss_sum = 0.0, masked_frac = 0.0;
  if (!times || model_init(&m, &c, &ctx)) goto done;
  have_model = 1;
  if (model_init_random(&m, 1)) goto done;
  if (pretrain) {
    if (pretrain_ws_init(&pw, &m, B, L)) goto done;
    have_pw = 1;
  } else {
    if (train_arena_init(&a, &m, B, L)) goto done;
    have_arena = 1;
  }
  const int T = config_num_frames(&c, L), S = c.num_label_sets;
  const size_t n = (size_t)B * T * c.hidden_size;
  wave = ctx.be->alloc(&ctx, sizeof(float) * (size_t)B * L);
  R = ctx.be->alloc(&ctx, sizeof(float) * n);
  grads = ctx.be->alloc(&ctx, sizeof(float) * m.layout.total);
  lens = hb_malloc(sizeof(long) * (size_t)B);
  frames = hb_malloc(sizeof(int) * (size_t)B);
  dh = hb_calloc((size_t)c.num_hidden_layers + 1, sizeof(float *));
  labels = hb_malloc(sizeof(int) * (size_t)(S ? S : 1) * B * T);
  mask = hb_malloc((size_t)B * T);
  hbuf = hb_malloc(sizeof(float) * ((size_t)B * L > n ? (size_t)B * L : n));
  if (!wave || !R || !grads || !lens || !frames || !dh || !labels || !mask || !hbuf) goto done;
  if (adamw) {
    hb_adamw_hparams hp = optim_default_hparams();
    if (optim_init_layout(&opt, &m.layout, &hp)) goto done;
    have_opt = 1;
    if (optim_use_backend(&opt, &ctx)) goto done;
  }
  hb_rng r;
  rng_init(&r, 7);
  for (size_t i = 0; i < (size_t)B * L; i++) hbuf[i] = (float)(0.1 * rng_normal(&r));
  if (ctx.be->upload(&ctx, wave, hbuf, sizeof(float) * (size_t)B * L)) goto done;
  for (size_t i = 0; i < n; i++) hbuf[i] = (float)rng_normal(&r);
  if (ctx.be->upload(&ctx, R, hbuf, sizeof(float) * n)) goto done;
  for (size_t i = 0; i < (size_t)S * B * T; i++) labels[i] = (int)(rng_uniform_double(&r) * c.label_k[i / ((size_t)B * T)]);
  for (int b = 0; b < B; b++) lens[b] = L;
  dh[c.num_hidden_layers] = R;
  const int *lab[HB_MAX_LABEL_SETS];
  for (int s = 0; s < S; s++) lab[s] = labels + (size_t)s * B * T;
  hb_pretrain_opts po;
  pretrain_opts_default(&po);
  po.train.train = 1;
  for (int i = -1; i < repeat; i++) {  // i = -1: warm-up
    double t0 = now_s();
    hb_train_opts opts = {1, (uint64_t)(i + 2)};
    int Tf;
    if (ctx.be->zero(&ctx, grads, sizeof(float) * m.layout.total)) goto done;
    if (pretrain) {
      hb_pretrain_stats ps;
      rng_init(&r, (uint64_t)(100 + i));
      po.train.seed = (uint64_t)(i + 2);
      if (mask_compute(mask, B, T, NULL, c.mask_time_prob, c.mask_time_length, 2, &r) ||
          pretrain_step(&m, &pw, wave, lens, B, L, lab, NULL, mask, NULL, &po, grads, &ps) || ctx.be->sync(&ctx))
        goto done;
      if (i >= 0) loss_sum += ps.loss / (double)ps.pred.count_m, masked_frac += (double)ps.pred.count_m / (B * T);
    } else if (model_forward_train(&m, &a, wave, lens, B, L, NULL, frames, &Tf, &opts) ||
               model_backward(&m, &a, dh, NULL, 0.1f, grads) || ctx.be->sync(&ctx)) {
      goto done;
    }
    hb_optim_stats os;
    if (adamw && (optim_step(&opt, m.params, grads, 1.0 / (B * T), 1e-5, 10.0, &os) || ctx.be->sync(&ctx))) goto done;
    if (i >= 0) times[i] = now_s() - t0;
  }
  qsort(times, (size_t)repeat, sizeof(double), cmp_double);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("bench train: config %s, batch %d x %.1f s, %s %s, %d threads, %.2fM params, arena %.0f MB, loss %s%s\n",
         config, B, seconds, device, precision, omp_get_max_threads(), model_num_params(&m) / 1e6,
         (pretrain ? pw.arena.bytes : a.bytes) / 1e6, loss, adamw ? " + AdamW" : "");
  if (pretrain)
    printf("bench train: objective per masked frame %.4f (CE + feature penalty), masked fraction %.3f\n",
           loss_sum / repeat, masked_frac / repeat);
  printf("bench train: forward+backward median %.3f s (min %.3f, max %.3f over %d runs), peak RSS %.0f MB\n",
         times[repeat / 2], times[0], times[repeat - 1], repeat, ru.ru_maxrss / 1024.0);
  printf("RESULT hubert_train_step_s=%.4f peak_rss_mb=%.0f\n", times[repeat / 2], ru.ru_maxrss / 1024.0);
  rc = 0;
done:
  if (wave) ctx.be->free(&ctx, wave);
  if (R) ctx.be->free(&ctx, R);
  if (grads) ctx.be->free(&ctx, grads);
  free(lens);
  free(frames);
  free(dh);
  free(times);
  free(labels);
  free(mask);
  free(hbuf);
  if (have_opt) optim_free(&opt);
  if (have_arena) train_arena_free(&a, &m);
  if (have_pw) pretrain_ws_free(&pw, &m);
  if (have_model) model_free(&m);
  ops_ctx_free(&ctx);
  return rc;
}

int cmd_bench(const hb_command *cmd, int argc, char **argv) {
  const char *config = "base";
  const char *device = "cpu";
  const char *loss = "pretrain";
  const char *precision = "fp32";
  int batch = 4, repeat = 3, threads = 0, adamw = 0;
  double seconds = 10.0;
  hb_opt opts[] = {{"config", 'c', HB_OPT_STR, "NAME|FILE.json", "model preset or config.json (default base)", &config, 0},
                   {"batch-size", 'b', HB_OPT_INT, "N", "utterances per batch (default 4)", &batch, 0},
                   {"seconds", 's', HB_OPT_DOUBLE, "X", "seconds of audio per utterance (default 10)", &seconds, 0},
                   {"repeat", 'r', HB_OPT_INT, "N", "timed runs after one warm-up (default 3)", &repeat, 0},
                   {"threads", 't', HB_OPT_INT, "N", "CPU threads", &threads, 0},
                   {"device", 0, HB_OPT_STR, "cpu|cuda", "backend (default cpu)", &device, 0},
                   {"precision", 0, HB_OPT_STR, "fp32|bf16", "bf16: GEMMs in bf16, fp32 weights (cuda only; default fp32)", &precision, 0},
                   {"loss", 0, HB_OPT_STR, "pretrain|synthetic", "train: real objective (default) or sum(hidden * R)", &loss, 0},
                   {"adamw", 0, HB_OPT_FLAG, NULL, "train: include the AdamW update in each step", &adamw, 0},
                   {0}};
  int npos;
  char **pos;
  int rc = cli_parse(cmd, opts, argc, argv, &npos, &pos);
  if (rc) return rc > 0 ? 0 : -1;
  const char *what = npos ? pos[0] : NULL;
  if (!what || (strcmp(what, "extract") && strcmp(what, "train")))
    return hb_fail("hubert bench: expected 'extract' or 'train' (got '%s')", what ? what : "");
  if (batch < 1 || repeat < 1 || seconds < 0.03) return hb_fail("hubert bench: --batch-size, --repeat must be >= 1, --seconds >= 0.03");
  if (threads > 0) omp_set_num_threads(threads);
  if (!strcmp(what, "train")) return bench_train(config, batch, seconds, repeat, threads, loss, device, adamw, precision);
  return bench_extract(config, batch, seconds, repeat, threads, device, precision);
}
