// Hidden-state extraction (see extractor.h).
#include "eval/extractor.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

static void free_hidden(hb_extractor *e) {
  for (int i = 0; e->hidden && i <= e->model.cfg.num_hidden_layers; i++) {
    if (e->hidden[i]) e->ctx.be->free(&e->ctx, e->hidden[i]);
    e->hidden[i] = NULL;
  }
  e->hidden_cap = 0;
}

void extractor_close(hb_extractor *e) {
  if (e->have_model) {
    free_hidden(e);
    if (e->wave) e->ctx.be->free(&e->ctx, e->wave);
    if (e->have_arena) fwd_arena_free(&e->arena, &e->model);
    model_free(&e->model);
  }
  if (e->have_ctx) ops_ctx_free(&e->ctx);
  free(e->hidden);
  free(e->want);
  free(e->host);
  free(e->stage);
  memset(e, 0, sizeof *e);
}

int extractor_open(hb_extractor *e, const char *model_dir, const char *device, int threads) {
  memset(e, 0, sizeof *e);
  if (threads > 0) omp_set_num_threads(threads);
  if (ops_ctx_init(&e->ctx, device, threads)) return -1;
  e->have_ctx = 1;
  if (model_load(&e->model, model_dir, &e->ctx)) {
    extractor_close(e);
    return -1;
  }
  e->have_model = 1;
  const int NL = e->model.cfg.num_hidden_layers;
  e->want = hb_calloc((size_t)NL + 1, sizeof(int));
  e->hidden = hb_calloc((size_t)NL + 1, sizeof(float *));
  if (!e->want || !e->hidden) {
    extractor_close(e);
    return -1;
  }
  for (int i = 0; i <= NL; i++) e->want[i] = 1;
  return 0;
}

int extractor_num_layers(const hb_extractor *e) { return e->model.cfg.num_hidden_layers; }
int extractor_hidden_size(const hb_extractor *e) { return e->model.cfg.hidden_size; }

int extractor_set_layers(hb_extractor *e, const int *want) {
  const int NL = e->model.cfg.num_hidden_layers;
  int any = 0;
  for (int i = 0; i <= NL; i++) any |= want[i] != 0;
  if (!any) return hb_fail("extract: no hidden state requested");
  free_hidden(e);
  for (int i = 0; i <= NL; i++) e->want[i] = want[i] != 0;
  return 0;
}

// Grows the arena and buffers when a batch is larger than any before (extraction only: training
// sizes its arena once from the batch limits).
static int ensure_capacity(hb_extractor *e, int B, long L) {
  hb_model *m = &e->model;
  hb_ctx *ctx = &e->ctx;
  if (!e->have_arena || B > e->arena.max_B || L > e->arena.max_samples) {
    int nb = e->have_arena && e->arena.max_B > B ? e->arena.max_B : B;
    long nl = e->have_arena && e->arena.max_samples > L ? e->arena.max_samples : L;
    if (e->have_arena) fwd_arena_free(&e->arena, m);
    e->have_arena = 0;
    HB_TRY(fwd_arena_init(&e->arena, m, nb, nl));
    e->have_arena = 1;
  }
  size_t wave_n;
  HB_TRY(hb_mul_size((size_t)B, (size_t)L, &wave_n));
  if (wave_n > e->wave_cap) {
    if (e->wave) ctx->be->free(ctx, e->wave);
    e->wave = ctx->be->alloc(ctx, sizeof(float) * wave_n);
    e->wave_cap = e->wave ? wave_n : 0;
    if (!e->wave) return -1;
  }
  if (wave_n > e->stage_cap) {
    free(e->stage);
    e->stage = hb_malloc(sizeof(float) * wave_n);
    e->stage_cap = e->stage ? wave_n : 0;
    if (!e->stage) return -1;
  }
  const int NL = m->cfg.num_hidden_layers;
  size_t need = (size_t)e->arena.max_B * e->arena.max_T * m->cfg.hidden_size;
  if (need > e->hidden_cap) {
    free_hidden(e);
    for (int i = 0; i <= NL; i++) {
      if (!e->want[i]) continue;
      e->hidden[i] = ctx->be->alloc(ctx, sizeof(float) * need);
      if (!e->hidden[i]) return -1;
    }
    e->hidden_cap = need;
  }
  return 0;
}

int extractor_forward(hb_extractor *e, const float *const *waves, const long *lens, int B, int *frames, int *T) {
  hb_ctx *ctx = &e->ctx;
  const hb_config *c = &e->model.cfg;
  const long rf = config_receptive_field(c);
  long L = 0;
  if (B < 1) return hb_fail("extract: empty batch");
  for (int b = 0; b < B; b++) {
    if (lens[b] < rf)
      return hb_fail("extract: utterance %d has %ld samples, fewer than the receptive field (%ld samples)", b, lens[b], rf);
    L = lens[b] > L ? lens[b] : L;
  }
  HB_TRY(ensure_capacity(e, B, L));
  // Stage the zero-padded (B, L) batch on the host, then upload.
  for (int b = 0; b < B; b++) {
    memcpy(e->stage + (size_t)b * L, waves[b], sizeof(float) * (size_t)lens[b]);
    memset(e->stage + (size_t)b * L + lens[b], 0, sizeof(float) * (size_t)(L - lens[b]));
  }
  HB_TRY(ctx->be->upload(ctx, e->wave, e->stage, sizeof(float) * (size_t)B * L));
  HB_TRY(model_forward(&e->model, &e->arena, e->wave, lens, B, L, frames, T, e->hidden));
  HB_TRY(ctx->be->sync(ctx));
  e->last_B = B;
  e->last_T = *T;
  if (ctx->be == &hb_backend_cpu) return 0;
  // Device backends: download the wanted hidden states (B, T, H) into host memory.
  const int NL = c->num_hidden_layers;
  const size_t per = (size_t)B * *T * c->hidden_size;
  if ((size_t)(NL + 1) * per > e->host_cap) {
    free(e->host);
    e->host = hb_malloc(sizeof(float) * (size_t)(NL + 1) * per);
    e->host_cap = e->host ? (size_t)(NL + 1) * per : 0;
    if (!e->host) return -1;
  }
  for (int i = 0; i <= NL; i++)
    if (e->want[i]) HB_TRY(ctx->be->download(ctx, e->host + (size_t)i * per, e->hidden[i], sizeof(float) * per));
  return 0;
}

const float *extractor_hidden(const hb_extractor *e, int layer) {
  if (layer < 0 || layer > e->model.cfg.num_hidden_layers || !e->want[layer] || !e->hidden[layer]) return NULL;
  if (e->ctx.be == &hb_backend_cpu) return e->hidden[layer];
  return e->host + (size_t)layer * e->last_B * e->last_T * e->model.cfg.hidden_size;
}

void extractor_weighted_sum(const float *const *hs, int n, const float *weights, int raw, int layer_norm,
                            size_t rows, int D, float *out) {
  double w[n > 0 ? n : 1];
  double mx = -INFINITY, z = 0;
  for (int i = 0; i < n; i++) mx = weights[i] > mx ? weights[i] : mx;
  for (int i = 0; i < n; i++) {
    w[i] = raw ? weights[i] : exp((double)weights[i] - mx);
    z += w[i];
  }
  if (!raw)
    for (int i = 0; i < n; i++) w[i] /= z;
#pragma omp parallel for schedule(static)
  for (size_t r = 0; r < rows; r++) {
    double acc[D];
    for (int d = 0; d < D; d++) acc[d] = 0;
    for (int i = 0; i < n; i++) {
      const float *x = hs[i] + r * (size_t)D;
      double mean = 0, rstd = 1;
      if (layer_norm) {
        double s = 0, ss = 0;
        for (int d = 0; d < D; d++) s += x[d];
        mean = s / D;
        for (int d = 0; d < D; d++) ss += (x[d] - mean) * (x[d] - mean);
        rstd = 1.0 / sqrt(ss / D + 1e-5);
      }
      for (int d = 0; d < D; d++) acc[d] += w[i] * ((x[d] - mean) * rstd);
    }
    for (int d = 0; d < D; d++) out[r * (size_t)D + d] = (float)acc[d];
  }
}

int extractor_parse_weights(const char *spec, int n, float *out) {
  const char *p = spec;
  int k = 0;
  while (*p) {
    char *end;
    double v = strtod(p, &end);
    if (end == p || !isfinite(v)) return hb_fail("--weighted-sum: '%s' is not a comma-separated list of numbers", spec);
    if (k == n) return hb_fail("--weighted-sum: more than %d weights in '%s' (one per hidden state 0..%d)", n, spec, n - 1);
    out[k++] = (float)v;
    p = end;
    if (*p == ',') p++;
    else if (*p) return hb_fail("--weighted-sum: unexpected '%s' in '%s'", p, spec);
  }
  if (k != n) return hb_fail("--weighted-sum: %d weights given, the model has %d hidden states (0..%d)", k, n, n - 1);
  return 0;
}
