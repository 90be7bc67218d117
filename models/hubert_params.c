// Flat parameter layout generated from the X-macro table in hubert_params.h.
#include "models/hubert_params.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

#define HB_ALIGN_FLOATS 64  // 256 bytes

int config_total_label_k(const hb_config *c) {
  int s = 0;
  for (int i = 0; i < c->num_label_sets; i++) s += c->label_k[i];
  return s;
}

static int layout_push(hb_param_layout *L, int *cap, const char *fmt, int block, int kind, int nd, int64_t d0,
                       int64_t d1, int64_t d2, hb_init init, int decay, size_t field) {
  if (L->n == *cap) {
    int nc = *cap ? *cap * 2 : 64;
    hb_param_info *ni = hb_realloc(L->info, sizeof(hb_param_info) * nc);
    if (!ni) return -1;
    L->info = ni;
    *cap = nc;
  }
  hb_param_info *p = &L->info[L->n++];
  memset(p, 0, sizeof *p);
  if (block >= 0) snprintf(p->name, sizeof p->name, fmt, block);
  else snprintf(p->name, sizeof p->name, "%s", fmt);
  int64_t dims[3] = {d0, d1, d2};
  p->ndim = nd;
  size_t numel = 1;
  for (int i = 0; i < nd; i++) {
    if (dims[i] <= 0) return hb_fail("parameter %s: dimension %d is %lld", p->name, i, (long long)dims[i]);
    p->shape[i] = dims[i];
    HB_TRY(hb_mul_size(numel, (size_t)dims[i], &numel));
  }
  p->numel = numel;
  p->offset = L->total;
  size_t padded = (numel + HB_ALIGN_FLOATS - 1) / HB_ALIGN_FLOATS * HB_ALIGN_FLOATS;
  HB_TRY(hb_add_size(L->total, padded, &L->total));
  p->init = init;
  p->decay = decay;
  p->block = block;
  p->kind = kind;
  p->field = field;
  return 0;
}

int params_layout_init(hb_param_layout *L, const hb_config *c) {
  memset(L, 0, sizeof *L);
  int cap = 0;
  HB_TRY(config_validate(c));
  int l = -1;
  (void)l;
#define PUSH_GLOBAL(field, key, nd, d0, d1, d2, init, present, decay)                                        \
  if (present) {                                                                                            \
    if (layout_push(L, &cap, key, -1, 0, nd, d0, d1, d2, init, decay, offsetof(hb_params, field))) goto fail; \
  }
  HB_GLOBAL_PARAMS(PUSH_GLOBAL)
#undef PUSH_GLOBAL
  for (l = 0; l < c->num_conv; l++) {
#define PUSH_CONV(field, key, nd, d0, d1, d2, init, present, decay)                                                 \
  if (present) {                                                                                                   \
    if (layout_push(L, &cap, key, l, 1, nd, d0, d1, d2, init, decay, offsetof(hb_conv_params, field))) goto fail; \
  }
    HB_CONV_PARAMS(PUSH_CONV)
#undef PUSH_CONV
  }
  for (l = 0; l < c->num_hidden_layers; l++) {
#define PUSH_LAYER(field, key, nd, d0, d1, d2, init, present, decay)                                                 \
  if (present) {                                                                                                    \
    if (layout_push(L, &cap, key, l, 2, nd, d0, d1, d2, init, decay, offsetof(hb_layer_params, field))) goto fail; \
  }
    HB_LAYER_PARAMS(PUSH_LAYER)
#undef PUSH_LAYER
  }
  return 0;
fail:
  params_layout_free(L);
  return -1;
}

void params_layout_free(hb_param_layout *L) {
  free(L->info);
  memset(L, 0, sizeof *L);
}

void params_bind(hb_params *view, const hb_param_layout *L, float *base) {
  memset(view, 0, sizeof *view);
  for (int i = 0; i < L->n; i++) {
    const hb_param_info *p = &L->info[i];
    char *owner = (char *)view;
    if (p->kind == 1) owner = (char *)&view->conv[p->block];
    else if (p->kind == 2) owner = (char *)&view->layers[p->block];
    float *ptr = base ? base + p->offset : NULL;
    memcpy(owner + p->field, &ptr, sizeof ptr);
  }
}

int params_find(const hb_param_layout *L, const char *name) {
  for (int i = 0; i < L->n; i++)
    if (!strcmp(L->info[i].name, name)) return i;
  return -1;
}
