// Model lifetime: parameter buffer, HuBERT initialisation, model-folder load/save.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/rng.h"
#include "common/safetensors.h"
#include "models/hubert.h"

int model_init(hb_model *m, const hb_config *c, hb_ctx *ctx) {
  memset(m, 0, sizeof *m);
  m->cfg = *c;
  m->ctx = ctx;
  HB_TRY(params_layout_init(&m->layout, c));
  size_t bytes;
  if (hb_mul_size(m->layout.total, sizeof(float), &bytes)) goto fail;
  m->params = ctx->be->alloc(ctx, bytes);
  if (!m->params) {
    hb_fail_prefix("model parameters (%.1f MB)", bytes / 1e6);
    goto fail;
  }
  params_bind(&m->p, &m->layout, m->params);
  return 0;
fail:
  params_layout_free(&m->layout);
  return -1;
}

void model_free(hb_model *m) {
  if (m->params) m->ctx->be->free(m->ctx, m->params);
  params_layout_free(&m->layout);
  memset(m, 0, sizeof *m);
}

size_t model_num_params(const hb_model *m) {
  size_t n = 0;
  for (int i = 0; i < m->layout.n; i++) n += m->layout.info[i].numel;
  return n;
}

// Fan-in / fan-out as torch.nn.init computes them: dim 1 * receptive field / dim 0 * receptive field.
static void fans(const hb_param_info *p, double *fan_in, double *fan_out) {
  double rf = p->ndim == 3 ? (double)p->shape[2] : 1.0;
  *fan_in = (p->ndim >= 2 ? (double)p->shape[1] : 1.0) * rf;
  *fan_out = (double)p->shape[0] * rf;
}

static void init_tensor(const hb_param_info *p, const hb_config *c, float *w, hb_rng *r) {
  double fi, fo;
  fans(p, &fi, &fo);
  switch (p->init) {
    case INIT_ZERO: memset(w, 0, sizeof(float) * p->numel); break;
    case INIT_ONE: for (size_t i = 0; i < p->numel; i++) w[i] = 1.0f; break;
    case INIT_KAIMING_NORMAL: {
      double sd = sqrt(2.0) / sqrt(fi);
      for (size_t i = 0; i < p->numel; i++) w[i] = (float)(sd * rng_normal(r));
      break;
    }
    case INIT_POS_CONV_V: {
      double sd = sqrt(4.0 / ((double)c->hidden_size * c->num_conv_pos_embeddings));
      for (size_t i = 0; i < p->numel; i++) w[i] = (float)(sd * rng_normal(r));
      break;
    }
    case INIT_POS_CONV_G: break;  // filled from v by the caller
    case INIT_XAVIER_QKV:
    case INIT_XAVIER: {
      double gain = p->init == INIT_XAVIER_QKV ? 1.0 / sqrt(2.0) : 1.0;
      double bound = gain * sqrt(6.0 / (fi + fo));
      for (size_t i = 0; i < p->numel; i++) w[i] = (float)((2.0 * rng_uniform_double(r) - 1.0) * bound);
      break;
    }
    case INIT_NORMAL_002:
      for (size_t i = 0; i < p->numel; i++) w[i] = (float)(0.02 * rng_normal(r));
      break;
    case INIT_UNIFORM01:
      for (size_t i = 0; i < p->numel; i++) w[i] = rng_uniform(r);
      break;
  }
}

// g[k] = ||v[:, :, k]|| so that the weight-normed weight equals v (torch's weight_norm init).
static void init_pos_g(const hb_model *m, float *host) {
  const hb_param_info *g = &m->layout.info[params_find(&m->layout, "encoder.pos_conv_embed.conv.weight_g")];
  const hb_param_info *v = &m->layout.info[params_find(&m->layout, "encoder.pos_conv_embed.conv.weight_v")];
  const int K = (int)v->shape[2];
  const size_t OI = (size_t)(v->shape[0] * v->shape[1]);
  for (int k = 0; k < K; k++) {
    double s = 0;
    for (size_t oi = 0; oi < OI; oi++) {
      double t = host[v->offset + oi * K + k];
      s += t * t;
    }
    host[g->offset + k] = (float)sqrt(s);
  }
}

int model_init_random(hb_model *m, uint64_t seed) {
  float *host = hb_calloc(m->layout.total, sizeof(float));
  if (!host) return -1;
  for (int i = 0; i < m->layout.n; i++) {
    hb_rng r;
    rng_init(&r, rng_derive_seed(seed, (uint64_t)i));  // per-tensor stream: order-independent
    init_tensor(&m->layout.info[i], &m->cfg, host + m->layout.info[i].offset, &r);
  }
  init_pos_g(m, host);
  int rc = m->ctx->be->upload(m->ctx, m->params, host, sizeof(float) * m->layout.total);
  free(host);
  return rc;
}

// ---- model folders -------------------------------------------------------------------------

static const char *kPrefixes[] = {"", "hubert.", "wav2vec2."};
// Heads of HF task models that a HubertModel ignores.
static const char *kIgnoredHeads[] = {"lm_head.", "projector.", "classifier.", "quantizer.", "project_q.", "project_hid.",
                                      "masked_spec_embed"};

static const hb_st_tensor *find_tensor(const hb_safetensors *st, const char *name, char *found, size_t found_len) {
  char alt[256];
  const char *cands[2] = {name, NULL};
  // weight_g/weight_v are stored by newer PyTorch as parametrizations.weight.original0/1.
  const char *tail = strstr(name, ".weight_g");
  if (!tail) tail = strstr(name, ".weight_v");
  if (tail && !tail[9]) {
    snprintf(alt, sizeof alt, "%.*s.parametrizations.weight.original%c", (int)(tail - name), name, tail[8] == 'g' ? '0' : '1');
    cands[1] = alt;
  }
  for (int ci = 0; ci < 2 && cands[ci]; ci++)
    for (size_t pi = 0; pi < sizeof kPrefixes / sizeof kPrefixes[0]; pi++) {
      char full[300];
      snprintf(full, sizeof full, "%s%s", kPrefixes[pi], cands[ci]);
      const hb_st_tensor *t = st_find(st, full);
      if (t) {
        snprintf(found, found_len, "%s", full);
        return t;
      }
    }
  return NULL;
}

static int shape_matches(const hb_st_tensor *t, const hb_param_info *p) {
  if (t->ndim != p->ndim) return 0;
  for (int i = 0; i < p->ndim; i++)
    if (t->shape[i] != p->shape[i]) return 0;
  return 1;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
  size_t o = (size_t)snprintf(buf, n, "(");
  for (int i = 0; i < ndim && o < n; i++) o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
  if (o < n) snprintf(buf + o, n - o, ")");
}

int model_load(hb_model *m, const char *dir, hb_ctx *ctx) {
  char path[4096];
  hb_config c;
  snprintf(path, sizeof path, "%s/config.json", dir);
  if (!file_is_dir(dir)) return hb_fail("%s: not a model folder (no such directory)", dir);
  HB_TRY(config_read_json(path, &c));
  HB_TRY(model_init(m, &c, ctx));
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  hb_safetensors st;
  if (st_open(path, &st)) {
    model_free(m);
    return -1;
  }
  // Host-memory backends are filled in place; others stage through a host copy.
  const int in_place = ctx->be == &hb_backend_cpu;
  float *host = in_place ? m->params : hb_calloc(m->layout.total, sizeof(float));
  char *used = hb_calloc((size_t)st.n + 1, 1);
  int rc = -1;
  if (!host || !used) goto done;
  for (int i = 0; i < m->layout.n; i++) {
    const hb_param_info *p = &m->layout.info[i];
    char found[300];
    const hb_st_tensor *t = find_tensor(&st, p->name, found, sizeof found);
    if (!t) {
      if (!strcmp(p->name, "masked_spec_embed")) {  // inference-only checkpoints may drop it
        hb_rng r;
        rng_init(&r, 0x6d61736bULL);
        init_tensor(p, &m->cfg, host + p->offset, &r);
        continue;
      }
      hb_fail("%s: missing tensor '%s' (expected shape for this config.json)", path, p->name);
      goto done;
    }
    used[t - st.tensors] = 1;
    if (!shape_matches(t, p)) {
      char want[96], got[96];
      shape_str(want, sizeof want, p->ndim, p->shape);
      shape_str(got, sizeof got, t->ndim, t->shape);
      hb_fail("%s: tensor '%s' has shape %s, config.json implies %s", path, found, got, want);
      goto done;
    }
    if (st_read_f32(&st, t, host + p->offset, p->numel)) goto done;
  }
  for (int i = 0; i < st.n; i++) {
    if (used[i]) continue;
    const char *name = st.tensors[i].name;
    int ignored = 0;
    for (size_t pi = 0; pi < sizeof kPrefixes / sizeof kPrefixes[0] && !ignored; pi++) {
      size_t pl = strlen(kPrefixes[pi]);
      if (strncmp(name, kPrefixes[pi], pl)) continue;
      for (size_t h = 0; h < sizeof kIgnoredHeads / sizeof kIgnoredHeads[0]; h++)
        if (!strncmp(name + pl, kIgnoredHeads[h], strlen(kIgnoredHeads[h]))) ignored = 1;
    }
    if (!ignored) {
      hb_fail("%s: unexpected tensor '%s' (not part of the model config.json describes)", path, name);
      goto done;
    }
  }
  rc = in_place ? 0 : ctx->be->upload(ctx, m->params, host, sizeof(float) * m->layout.total);
done:
  if (!in_place) free(host);
  free(used);
  st_close(&st);
  if (rc) model_free(m);
  return rc;
}

int model_save(const hb_model *m, const char *dir, int bf16) {
  HB_TRY(file_mkdirs(dir));
  char path[4096];
  snprintf(path, sizeof path, "%s/config.json", dir);
  HB_TRY(config_write_json(path, &m->cfg));
  float *host = hb_malloc(sizeof(float) * m->layout.total);
  hb_st_entry *e = hb_calloc((size_t)m->layout.n, sizeof *e);
  int rc = -1;
  if (!host || !e) goto done;
  if (m->ctx->be->download(m->ctx, host, m->params, sizeof(float) * m->layout.total)) goto done;
  for (int i = 0; i < m->layout.n; i++) {
    const hb_param_info *p = &m->layout.info[i];
    e[i].name = p->name;
    e[i].data = host + p->offset;
    e[i].ndim = p->ndim;
    for (int d = 0; d < p->ndim; d++) e[i].shape[d] = p->shape[d];
  }
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  const char *mk[] = {"format", "producer"};
  const char *mv[] = {"pt", "hubert.c " HUBERT_VERSION};
  rc = st_write(path, m->layout.n, e, bf16 ? HB_DT_BF16 : HB_DT_F32, 2, mk, mv);
done:
  free(host);
  free(e);
  return rc;
}
