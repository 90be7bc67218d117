#include "train/optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/safetensors.h"

hb_adamw_hparams optim_default_hparams(void) {
  hb_adamw_hparams hp = {0.9, 0.98, 1e-6, 0.01};
  return hp;
}

static int check_hparams(const hb_adamw_hparams *hp) {
  if (!(hp->beta1 >= 0 && hp->beta1 < 1) || !(hp->beta2 >= 0 && hp->beta2 < 1))
    return hb_fail("adam betas (%g, %g) must lie in [0, 1)", hp->beta1, hp->beta2);
  if (!(hp->eps > 0)) return hb_fail("adam eps must be positive (got %g)", hp->eps);
  if (!(hp->weight_decay >= 0)) return hb_fail("weight decay must be >= 0 (got %g)", hp->weight_decay);
  return 0;
}

int optim_init(hb_adamw *o, size_t total, const hb_optim_segment *seg, int nseg, const hb_adamw_hparams *hp) {
  memset(o, 0, sizeof *o);
  if (check_hparams(hp)) return hb_fail_prefix("optimizer");
  if (nseg < 0) return hb_fail("optimizer: %d segments", nseg);
  size_t end = 0;
  for (int i = 0; i < nseg; i++) {
    // Segments must be sorted and disjoint: the update of one float happens exactly once.
    if (seg[i].offset < end || seg[i].numel > total || seg[i].offset > total - seg[i].numel)
      return hb_fail("optimizer: segment %d [%zu, +%zu) overlaps or leaves the buffer of %zu floats", i,
                     seg[i].offset, seg[i].numel, total);
    end = seg[i].offset + seg[i].numel;
  }
  size_t bytes;
  if (hb_mul_size(total ? total : 1, sizeof(float), &bytes)) return -1;
  o->seg = hb_malloc((size_t)(nseg ? nseg : 1) * sizeof *o->seg);
  o->m = hb_aligned_alloc(bytes);
  o->v = hb_aligned_alloc(bytes);
  if (!o->seg || !o->m || !o->v) {
    optim_free(o);
    return hb_fail_prefix("optimizer state");
  }
  if (nseg) memcpy(o->seg, seg, (size_t)nseg * sizeof *seg);
  memset(o->m, 0, bytes);
  memset(o->v, 0, bytes);
  o->nseg = nseg;
  o->total = total;
  o->hp = *hp;
  return 0;
}

int optim_init_layout(hb_adamw *o, const hb_param_layout *L, const hb_adamw_hparams *hp) {
  hb_optim_segment *seg = hb_malloc((size_t)(L->n ? L->n : 1) * sizeof *seg);
  if (!seg) return -1;
  for (int i = 0; i < L->n; i++) {
    seg[i].offset = L->info[i].offset;
    seg[i].numel = L->info[i].numel;
    seg[i].decay = L->info[i].decay;
  }
  int rc = optim_init(o, L->total, seg, L->n, hp);
  free(seg);
  return rc;
}

// The backend running the element loops: the context's, or the CPU's for host arrays.
static const hb_backend *optim_be(const hb_adamw *o) { return o->ctx ? o->ctx->be : &hb_backend_cpu; }

void optim_free(hb_adamw *o) {
  free(o->seg);
  if (o->ctx) {
    if (o->m) o->ctx->be->free(o->ctx, o->m);
    if (o->v) o->ctx->be->free(o->ctx, o->v);
  } else {
    hb_aligned_free(o->m);
    hb_aligned_free(o->v);
  }
  memset(o, 0, sizeof *o);
}

int optim_use_backend(hb_adamw *o, hb_ctx *ctx) {
  if (o->ctx == ctx) return 0;
  if (o->ctx) return hb_fail("optimizer: the state already lives on backend '%s'", o->ctx->be->name);
  if (!ctx || ctx->be == &hb_backend_cpu) return 0;
  if (!ctx->be->sum_squares || !ctx->be->adamw)
    return hb_fail("optimizer: backend '%s' has no sum_squares/adamw ops (kernels/ops.h)", ctx->be->name);
  const size_t bytes = sizeof(float) * (o->total ? o->total : 1);
  float *m = ctx->be->alloc(ctx, bytes), *v = m ? ctx->be->alloc(ctx, bytes) : NULL;  // zeroed
  if (!v) {
    if (m) ctx->be->free(ctx, m);
    return hb_fail_prefix("optimizer state on backend '%s' (2 x %zu bytes)", ctx->be->name, bytes);
  }
  hb_aligned_free(o->m);
  hb_aligned_free(o->v);
  o->m = m;
  o->v = v;
  o->ctx = ctx;
  return 0;
}

// Sum of squares of grad over the segments; -1 only if the backend call fails.
static int grad_sum_squares(const hb_adamw *o, const float *grad, double *ss) {
  *ss = 0;
  if (optim_be(o)->sum_squares(o->ctx, ss, grad, o->seg, o->nseg)) return hb_fail_prefix("optimizer: gradient norm");
  return 0;
}

double optim_grad_norm(const hb_adamw *o, const float *grad, double scale) {
  double ss;
  if (grad_sum_squares(o, grad, &ss)) return NAN;
  // The squares of the unscaled gradient are summed, so scale enters once: |scale| * sqrt(ss).
  return fabs(scale) * sqrt(ss);
}

int optim_step(hb_adamw *o, float *param, const float *grad, double grad_scale, double lr, double clip,
               hb_optim_stats *stats) {
  hb_optim_stats st = {0};
  double ss;
  HB_TRY(grad_sum_squares(o, grad, &ss));
  st.grad_norm = fabs(grad_scale) * sqrt(ss);
  st.clip_coef = 1.0;
  if (!isfinite(st.grad_norm) || !isfinite(grad_scale) || !isfinite(lr)) {
    st.skipped = 1;
    o->skipped++;
    if (stats) *stats = st;
    return 0;
  }
  if (clip > 0) {
    double coef = clip / (st.grad_norm + 1e-6);
    if (coef < 1) st.clip_coef = coef;
  }
  o->step++;
  const double b1 = o->hp.beta1, b2 = o->hp.beta2;
  const double bc1 = 1.0 - pow(b1, (double)o->step);
  const double bc2 = 1.0 - pow(b2, (double)o->step);
  // Per-element work in float with the scalars folded in double first (as PyTorch's fp32 path):
  //   p = p * (1 - lr wd);  p -= step_size * m / (sqrt(v) * inv_sqrt_bc2 + eps)
  hb_adamw_args a;
  a.grad_scale = (float)(grad_scale * st.clip_coef);
  a.beta1 = (float)b1;
  a.beta2 = (float)b2;
  a.one_m_beta1 = (float)(1.0 - b1);
  a.one_m_beta2 = (float)(1.0 - b2);
  a.step_size = (float)(lr / bc1);
  a.inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
  a.eps = (float)o->hp.eps;
  a.decay = (float)(1.0 - lr * o->hp.weight_decay);
  if (optim_be(o)->adamw(o->ctx, param, o->m, o->v, grad, o->seg, o->nseg, &a)) {
    o->step--;
    return hb_fail_prefix("optimizer: AdamW update");
  }
  if (stats) *stats = st;
  return 0;
}

// Host copies of the moments for optim_save/load when they live on a backend (NULL otherwise).
static int host_moments(const hb_adamw *o, float **hm, float **hv, int download) {
  *hm = *hv = NULL;
  if (!o->ctx) return 0;
  const size_t bytes = sizeof(float) * (o->total ? o->total : 1);
  *hm = hb_malloc(bytes);
  *hv = *hm ? hb_malloc(bytes) : NULL;
  if (!*hv) {
    free(*hm);
    *hm = NULL;
    return -1;
  }
  if (download && (o->ctx->be->download(o->ctx, *hm, o->m, bytes) || o->ctx->be->download(o->ctx, *hv, o->v, bytes))) {
    free(*hm);
    free(*hv);
    *hm = *hv = NULL;
    return hb_fail_prefix("optimizer state download");
  }
  return 0;
}

int optim_save(const hb_adamw *o, const char *path) {
  char step[32], skipped[32], total[32];
  snprintf(step, sizeof step, "%ld", o->step);
  snprintf(skipped, sizeof skipped, "%ld", o->skipped);
  snprintf(total, sizeof total, "%zu", o->total);
  const char *keys[] = {"step", "skipped", "total"};
  const char *vals[] = {step, skipped, total};
  float *hm, *hv;
  HB_TRY(host_moments(o, &hm, &hv, 1));
  hb_st_entry e[2] = {{"optimizer.exp_avg", hm ? hm : o->m, 1, {(int64_t)o->total}},
                      {"optimizer.exp_avg_sq", hv ? hv : o->v, 1, {(int64_t)o->total}}};
  int rc = st_write(path, 2, e, HB_DT_F32, 3, keys, vals);
  free(hm);
  free(hv);
  if (rc) return hb_fail_prefix("optimizer state");
  return 0;
}

static int meta_long(const hb_safetensors *st, const char *key, long *out) {
  for (int i = 0; i < st->n_meta; i++) {
    if (strcmp(st->meta_keys[i], key)) continue;
    char *end;
    long v = strtol(st->meta_values[i], &end, 10);
    if (end == st->meta_values[i] || *end || v < 0) return hb_fail("metadata '%s' = '%s' is not a count", key, st->meta_values[i]);
    *out = v;
    return 0;
  }
  return hb_fail("metadata '%s' is missing", key);
}

int optim_load(hb_adamw *o, const char *path) {
  hb_safetensors st;
  if (st_open(path, &st)) return -1;
  int rc = -1;
  long step = 0, skipped = 0, total = 0;
  float *hm = NULL, *hv = NULL;
  const hb_st_tensor *tm = st_find(&st, "optimizer.exp_avg"), *tv = st_find(&st, "optimizer.exp_avg_sq");
  if (meta_long(&st, "step", &step) || meta_long(&st, "skipped", &skipped) || meta_long(&st, "total", &total)) goto done;
  if ((size_t)total != o->total) {
    hb_fail("optimizer state holds %ld floats, the model's layout has %zu (another model configuration?)", total, o->total);
    goto done;
  }
  if (!tm || !tv) {
    hb_fail("tensor optimizer.exp_avg or optimizer.exp_avg_sq is missing");
    goto done;
  }
  if (host_moments(o, &hm, &hv, 0)) goto done;
  if (st_read_f32(&st, tm, hm ? hm : o->m, o->total) || st_read_f32(&st, tv, hv ? hv : o->v, o->total)) goto done;
  if (hm && (o->ctx->be->upload(o->ctx, o->m, hm, sizeof(float) * o->total) ||
             o->ctx->be->upload(o->ctx, o->v, hv, sizeof(float) * o->total)))
    goto done;
  o->step = step;
  o->skipped = skipped;
  rc = 0;
done:
  free(hm);
  free(hv);
  if (rc) hb_fail_prefix("%s", path);
  st_close(&st);
  return rc;
}

// ---- schedules ----

const char *sched_kind_name(hb_lr_kind k) {
  static const char *names[] = {"polynomial_decay", "tri_stage", "cosine", "fixed"};
  return (unsigned)k < 4 ? names[k] : "?";
}

static double warmup_lr(const hb_lr_schedule *s, long n) { return s->lr * (double)n / (double)s->warmup; }

double sched_lr(const hb_lr_schedule *s, long n) {
  if (n < 0) n = 0;
  switch (s->kind) {
    case HB_LR_POLYNOMIAL:
      if (s->warmup > 0 && n <= s->warmup) return warmup_lr(s, n);
      if (n >= s->total) return s->end_lr;
      {
        double pct = 1.0 - (double)(n - s->warmup) / (double)(s->total - s->warmup);
        return (s->lr - s->end_lr) * pow(pct, s->power) + s->end_lr;
      }
    case HB_LR_TRI_STAGE: {
      long w = (long)(s->total * s->phase_ratio[0]);
      long h = (long)(s->total * s->phase_ratio[1]);
      long d = (long)(s->total * s->phase_ratio[2]);
      double init = s->init_lr_scale * s->lr, fin = s->final_lr_scale * s->lr;
      if (n < w) return init + (s->lr - init) / (double)w * (double)n;
      if (n < w + h) return s->lr;
      if (n <= w + h + d) return d > 0 ? s->lr * exp(log(s->final_lr_scale) / (double)d * (double)(n - w - h)) : s->lr;
      return fin;
    }
    case HB_LR_COSINE: {
      if (s->warmup > 0 && n <= s->warmup) return warmup_lr(s, n);
      double span = (double)(s->total - s->warmup);
      double p = span > 0 ? (double)(n - s->warmup) / span : 1.0;
      if (p > 1) p = 1;
      return s->end_lr + (s->lr - s->end_lr) * 0.5 * (1.0 + cos(3.14159265358979323846 * p));
    }
    case HB_LR_FIXED:
      if (s->warmup > 0 && n <= s->warmup) return warmup_lr(s, n);
      return s->lr;
  }
  return s->lr;
}
