// `hubert extract`: hidden states of chosen layers for audio files / manifests, into the
// concatenated HDF5 feature layout (/utt_id, /offsets, /layer_K).
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/error.h"
#include "data_prep/audio.h"
#include "data_prep/featfile.h"
#include "data_prep/inputs.h"
#include "models/hubert.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Parses "all" or a comma list of layer indices in [0, nl] into want[0..nl].
static int parse_layers(const char *spec, int nl, int *want) {
  memset(want, 0, sizeof(int) * (size_t)(nl + 1));
  if (!strcmp(spec, "all")) {
    for (int i = 0; i <= nl; i++) want[i] = 1;
    return 0;
  }
  const char *p = spec;
  while (*p) {
    char *end;
    long v = strtol(p, &end, 10);
    if (end == p || v < 0 || v > nl) return hb_fail("--layers: '%s' is not a layer in 0..%d (or 'all')", spec, nl);
    want[v] = 1;
    p = end;
    if (*p == ',') p++;
    else if (*p) return hb_fail("--layers: expected 'all' or a comma-separated list like 0,6,12, got '%s'", spec);
  }
  return 0;
}

typedef struct {
  hb_model model;
  hb_fwd_arena arena;
  int have_arena;
  float *wave;        // (B, L) host = backend for CPU
  long wave_cap;
  float **hidden;     // (NL + 1) entries, (B, T, H) or NULL
  size_t hidden_cap;  // floats per hidden buffer
} extract_state;

// Grows the arena / buffers when a batch is larger than any before (extract only: training
// sizes its arena once from the batch limits).
static int ensure_capacity(extract_state *s, int B, long L, const int *want) {
  hb_model *m = &s->model;
  hb_ctx *ctx = m->ctx;
  if (!s->have_arena || B > s->arena.max_B || L > s->arena.max_samples) {
    int nb = s->have_arena && s->arena.max_B > B ? s->arena.max_B : B;
    long nl = s->have_arena && s->arena.max_samples > L ? s->arena.max_samples : L;
    if (s->have_arena) fwd_arena_free(&s->arena, m);
    s->have_arena = 0;
    HB_TRY(fwd_arena_init(&s->arena, m, nb, nl));
    s->have_arena = 1;
  }
  if ((long)B * L > s->wave_cap) {
    if (s->wave) ctx->be->free(ctx, s->wave);
    s->wave_cap = (long)B * L;
    s->wave = ctx->be->alloc(ctx, sizeof(float) * (size_t)s->wave_cap);
    if (!s->wave) return -1;
  }
  const int NL = m->cfg.num_hidden_layers;
  size_t need = (size_t)s->arena.max_B * s->arena.max_T * m->cfg.hidden_size;
  if (need > s->hidden_cap) {
    for (int i = 0; i <= NL; i++) {
      if (s->hidden[i]) ctx->be->free(ctx, s->hidden[i]);
      s->hidden[i] = NULL;
      if (!want[i]) continue;
      s->hidden[i] = ctx->be->alloc(ctx, sizeof(float) * need);
      if (!s->hidden[i]) return -1;
    }
    s->hidden_cap = need;
  }
  return 0;
}

int cmd_extract(const hb_command *cmd, int argc, char **argv) {
  const char *model_dir = NULL, *out = NULL, *layers = "all", *device = "cpu";
  int batch = 1, threads = 0, resample = 0, channel = -1;
  hb_opt opts[] = {
      {"model", 'm', HB_OPT_STR, "DIR", "model folder (config.json + model.safetensors)", &model_dir, 1},
      {"out", 'o', HB_OPT_STR, "FILE.h5", "output feature file", &out, 1},
      {"layers", 'l', HB_OPT_STR, "all|0,6,12", "hidden states to write (0 = transformer input, K = output of layer K)", &layers, 0},
      {"batch-size", 'b', HB_OPT_INT, "N", "utterances per forward pass, zero-padded (default 1)", &batch, 0},
      {"threads", 't', HB_OPT_INT, "N", "CPU threads (default: OMP_NUM_THREADS or all cores)", &threads, 0},
      {"device", 0, HB_OPT_STR, "cpu|cuda", "backend (default cpu)", &device, 0},
      {"resample", 0, HB_OPT_FLAG, NULL, "resample audio that is not 16 kHz (otherwise an error)", &resample, 0},
      {"channel", 0, HB_OPT_INT, "N", "take channel N of multi-channel audio (otherwise an error)", &channel, 0},
      {0}};
  int npos = 0;
  char **pos = NULL;
  int rc = cli_parse(cmd, opts, argc, argv, &npos, &pos);
  if (rc) return rc > 0 ? 0 : -1;
  if (npos == 0) {
    return hb_fail("hubert extract: no INPUT given (audio files or .tsv manifests)");
  }
  if (batch < 1 || batch > 4096) {
    return hb_fail("--batch-size must be in 1..4096 (got %d)", batch);
  }
  if (threads > 0) omp_set_num_threads(threads);

  hb_input_list inputs = {0};
  hb_ctx ctx;
  extract_state s;
  memset(&s, 0, sizeof s);
  hb_featfile_writer *w = NULL;
  int *want = NULL, *frames = NULL;
  long *lens = NULL;
  hb_audio *aud = NULL;
  char **names = NULL;
  int *dims = NULL;
  int have_ctx = 0, have_model = 0;
  rc = -1;
  if (inputs_collect(npos, pos, &inputs)) goto done;
  if (ops_ctx_init(&ctx, device, threads)) goto done;
  have_ctx = 1;
  if (model_load(&s.model, model_dir, &ctx)) goto done;
  have_model = 1;
  const hb_config *c = &s.model.cfg;
  const int NL = c->num_hidden_layers, H = c->hidden_size;
  want = hb_calloc((size_t)NL + 1, sizeof(int));
  s.hidden = hb_calloc((size_t)NL + 1, sizeof(float *));
  names = hb_calloc((size_t)NL + 1, sizeof(char *));
  dims = hb_calloc((size_t)NL + 1, sizeof(int));
  frames = hb_calloc((size_t)batch, sizeof(int));
  lens = hb_calloc((size_t)batch, sizeof(long));
  aud = hb_calloc((size_t)batch, sizeof(hb_audio));
  if (!want || !s.hidden || !names || !dims || !frames || !lens || !aud) goto done;
  if (parse_layers(layers, NL, want)) goto done;
  int nd = 0;
  for (int i = 0; i <= NL; i++)
    if (want[i]) {
      names[nd] = hb_malloc(32);
      if (!names[nd]) goto done;
      snprintf(names[nd], 32, "layer_%d", i);
      dims[nd++] = H;
    }

  const char *keys[] = {"model", "layers", "backend"};
  const char *vals[] = {model_dir, layers, device};
  hb_featfile_info info = {"hubert", (double)HB_SAMPLE_RATE / config_total_stride(c), 3, keys, vals};
  if (featfile_create(out, &info, nd, (const char *const *)names, dims, &w)) goto done;

  hb_audio_opts aopts;
  audio_default_opts(&aopts);
  aopts.resample = resample;
  aopts.channel = channel;
  aopts.min_samples = (size_t)config_receptive_field(c);
  double t_model = 0, audio_s = 0, t0 = now_s();
  long total_frames = 0;
  const int tty = isatty(fileno(stderr));
  float *stage = NULL;  // host copies of the hidden states when the backend is not the CPU
  size_t stage_cap = 0;
  const float **data = (const float **)hb_calloc((size_t)nd + 1, sizeof(float *));
  if (!data) goto done;
  for (int start = 0; start < inputs.n; start += batch) {
    const int B = inputs.n - start < batch ? inputs.n - start : batch;
    long L = 0;
    for (int b = 0; b < B; b++) {
      if (audio_read(inputs.path[start + b], &aopts, &aud[b])) goto batch_fail;
      lens[b] = (long)aud[b].n;
      L = lens[b] > L ? lens[b] : L;
      audio_s += (double)aud[b].n / HB_SAMPLE_RATE;
    }
    if (ensure_capacity(&s, B, L, want)) goto batch_fail;
    // Stage the zero-padded (B, L) batch on the host, then upload.
    {
      float *host = hb_calloc((size_t)B * L, sizeof(float));
      if (!host) goto batch_fail;
      for (int b = 0; b < B; b++) memcpy(host + (size_t)b * L, aud[b].samples, sizeof(float) * aud[b].n);
      int urc = ctx.be->upload(&ctx, s.wave, host, sizeof(float) * (size_t)B * L);
      free(host);
      if (urc) goto batch_fail;
    }
    double tm = now_s();
    int T = 0;
    if (model_forward(&s.model, &s.arena, s.wave, lens, B, L, frames, &T, s.hidden)) goto batch_fail;
    if (ctx.be->sync(&ctx)) goto batch_fail;
    t_model += now_s() - tm;
    // Device backends: download the wanted hidden states (B, T, H) into a host staging buffer.
    const int on_host = ctx.be == &hb_backend_cpu;
    const size_t per = (size_t)B * T * H;
    if (!on_host) {
      if ((size_t)nd * per > stage_cap) {
        free(stage);
        stage_cap = (size_t)nd * per;
        stage = hb_malloc(sizeof(float) * stage_cap);
        if (!stage) goto batch_fail;
      }
      for (int i = 0, k = 0; i <= NL; i++)
        if (want[i] && ctx.be->download(&ctx, stage + (size_t)k++ * per, s.hidden[i], sizeof(float) * per)) goto batch_fail;
    }
    for (int b = 0; b < B; b++) {
      int k = 0;
      for (int i = 0; i <= NL; i++)
        if (want[i]) {
          data[k] = (on_host ? s.hidden[i] : stage + (size_t)k * per) + (size_t)b * T * H;
          k++;
        }
      if (featfile_append(w, inputs.utt_id[start + b], frames[b], data)) goto batch_fail;
      total_frames += frames[b];
      audio_free(&aud[b]);
    }
    if (tty) fprintf(stderr, "\rextract: %d/%d utterances", start + B, inputs.n);
    continue;
  batch_fail:
    for (int b = 0; b < B; b++) audio_free(&aud[b]);
    free(data);
    free(stage);
    if (tty) fprintf(stderr, "\n");
    goto done;
  }
  free(data);
  free(stage);
  if (tty) fprintf(stderr, "\n");
  {
    hb_featfile_writer *tmp = w;
    w = NULL;
    if (featfile_close(tmp)) goto done;
  }
  double wall = now_s() - t0;
  printf("extract: %d utterances, %.1f s of audio, %ld frames x %d layers x %d dims -> %s\n", inputs.n, audio_s,
         total_frames, nd, H, out);
  printf("extract: model %.2f s (%.1fx real time), total %.2f s (%.1fx real time), backend %s, %d threads\n", t_model,
         audio_s / (t_model > 0 ? t_model : 1e-9), wall, audio_s / (wall > 0 ? wall : 1e-9), ctx.be->name,
         omp_get_max_threads());
  rc = 0;
done:
  if (w) featfile_abort(w);
  if (have_model) {
    for (int i = 0; s.hidden && i <= s.model.cfg.num_hidden_layers; i++)
      if (s.hidden[i]) ctx.be->free(&ctx, s.hidden[i]);
    if (s.wave) ctx.be->free(&ctx, s.wave);
    if (s.have_arena) fwd_arena_free(&s.arena, &s.model);
    for (int i = 0; names && i <= s.model.cfg.num_hidden_layers; i++) free(names[i]);
    model_free(&s.model);
  }
  if (have_ctx) ops_ctx_free(&ctx);
  free(s.hidden);
  free(names);
  free(dims);
  free(want);
  free(frames);
  free(lens);
  free(aud);
  inputs_free(&inputs);
  return rc;
}
