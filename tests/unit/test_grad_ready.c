// The gradient-ready hook of model_backward (models/hubert_train.h): the reported ranges cover the
// flat buffer [0, total) exactly once (heads and masked_spec_embed included), come in the
// documented order (layers NL-1..0, globals, conv blocks last..first), and each range's gradient
// at the moment it is reported is bit for bit its final value (the snapshot taken inside the hook
// equals the buffer after model_backward). Cases: post-LN with heads, pre-LN with LayerDrop
// (skipped layers are reported too), feature_grad_mult = 0 (frozen extractor). A failing hook
// aborts the backward with its error. model_grad_ready_all gives the same sequence.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "models/hubert_train.h"
#include "tests/test_util.h"

typedef struct {
  const float *grads;
  float *snap;          // (total) copy of each range when reported
  uint8_t *count;       // (total) times each float was reported
  size_t off[64], len[64];
  int n, fail_at;
} recorder;

static int on_ready(void *user, size_t off, size_t len) {
  recorder *r = user;
  if (r->n == r->fail_at) return hb_fail("test hook refuses range %d", r->n);
  if (r->n < 64) {
    r->off[r->n] = off;
    r->len[r->n] = len;
  }
  r->n++;
  memcpy(r->snap + off, r->grads + off, sizeof(float) * len);
  for (size_t i = 0; i < len; i++) r->count[off + i]++;
  return 0;
}

static void run_case(const char *name, hb_config *c, float mult, uint64_t seed) {
  hb_ctx ctx;
  hb_model m;
  hb_train_arena a;
  c->final_dim = 16;
  c->num_label_sets = 1;
  c->label_k[0] = 7;
  c->topic_k = 3;
  if (ops_ctx_init(&ctx, "cpu", 1) || model_init(&m, c, &ctx) || model_init_random(&m, seed) ||
      train_arena_init(&a, &m, 2, 1600)) {
    fprintf(stderr, "FAIL %s: setup: %s\n", name, hb_errmsg());
    g_test_failures++;
    return;
  }
  const size_t total = m.layout.total;
  const int NL = c->num_hidden_layers, NC = c->num_conv, H = c->hidden_size;
  hb_rng r;
  rng_init(&r, seed);
  float *wave = malloc(sizeof(float) * 2 * 1600);
  for (int i = 0; i < 2 * 1600; i++) wave[i] = (float)rng_normal(&r);
  long lens[2] = {1600, 1200};
  int frames[2], T;
  const int T0 = config_num_frames(c, 1600);
  uint8_t *mask = calloc((size_t)2 * T0, 1);
  mask[1] = mask[T0 + 2] = 1;
  hb_train_opts o = {1, seed};
  CHECK_OK(model_forward_train(&m, &a, wave, lens, 2, 1600, mask, frames, &T, &o));
  float *dtop = malloc(sizeof(float) * 2 * T * H);
  for (int i = 0; i < 2 * T * H; i++) dtop[i] = (float)rng_normal(&r);
  float **dh = calloc((size_t)NL + 1, sizeof(float *));
  dh[NL] = dtop;
  float *grads = malloc(sizeof(float) * total);
  // Head gradients arrive before model_backward (as the trainer's heads write them).
  for (size_t i = 0; i < total; i++) grads[i] = 0.0f;
  const int ih = params_find(&m.layout, "final_proj.weight");
  CHECK(ih >= 0);
  if (ih >= 0) grads[m.layout.info[ih].offset] = 0.5f;
  recorder rec = {grads, calloc(total, sizeof(float)), calloc(total, 1), {0}, {0}, 0, -1};
  a.grad_ready = on_ready;
  a.grad_ready_user = &rec;
  CHECK_OK(model_backward(&m, &a, dh, NULL, mult, grads));
  size_t bad = 0;
  for (size_t i = 0; i < total; i++) bad += rec.count[i] != 1;
  CHECK(bad == 0);
  CHECK(memcmp(rec.snap, grads, sizeof(float) * total) == 0);
  CHECK(rec.n == NL + 1 + NC);
  int order_ok = rec.n == NL + 1 + NC;
  if (order_ok) {  // layers descend from total; conv blocks continue below layer 0; globals are [0, conv 0)
    size_t end = total;
    for (int k = 0; k < NL; k++) {
      if (rec.off[k] + rec.len[k] != end) order_ok = 0;
      end = rec.off[k];
    }
    for (int k = NL + 1; k < rec.n; k++) {
      if (rec.off[k] + rec.len[k] != end) order_ok = 0;
      end = rec.off[k];
    }
    if (rec.off[NL] != 0 || rec.len[NL] != end) order_ok = 0;
  }
  CHECK(order_ok);
  int heads_ok = ih >= 0 && rec.snap[m.layout.info[ih].offset] != 0.0f;
  CHECK(heads_ok);
  printf("%s: %d ranges over %zu floats, %zu floats not covered exactly once, snapshots %s final gradients\n", name,
         rec.n, total, bad, memcmp(rec.snap, grads, sizeof(float) * total) ? "differ from" : "equal the");
  // model_grad_ready_all (a rank with only a padding batch) reports the same ranges in the same order.
  recorder all = {grads, calloc(total, sizeof(float)), calloc(total, 1), {0}, {0}, 0, -1};
  CHECK_OK(model_grad_ready_all(&m, on_ready, &all));
  CHECK(all.n == rec.n && !memcmp(all.off, rec.off, sizeof all.off) && !memcmp(all.len, rec.len, sizeof all.len));
  free(all.snap);
  free(all.count);
  // A failing hook stops the backward with its message.
  rec.n = 0;
  rec.fail_at = 1;
  memset(rec.count, 0, total);
  CHECK_OK(model_forward_train(&m, &a, wave, lens, 2, 1600, mask, frames, &T, &o));
  CHECK_ERR(model_backward(&m, &a, dh, NULL, mult, grads), "test hook refuses range 1");
  free(rec.snap);
  free(rec.count);
  free(grads);
  free(dh);
  free(dtop);
  free(mask);
  free(wave);
  train_arena_free(&a, &m);
  model_free(&m);
  ops_ctx_free(&ctx);
}

int main(void) {
  hb_config c;
  config_preset(&c, HB_PRESET_TINY);
  c.layerdrop = 0;
  run_case("post-LN, heads", &c, 1.0f, 11);
  config_preset(&c, HB_PRESET_TINY);
  c.do_stable_layer_norm = 1;
  c.feat_extract_norm_layer = 1;
  c.num_hidden_layers = 4;
  c.layerdrop = 0.5;
  run_case("pre-LN, LayerDrop 0.5", &c, 0.1f, 12);
  config_preset(&c, HB_PRESET_TINY);
  run_case("frozen extractor (feature_grad_mult 0)", &c, 0.0f, 13);
  return test_summary("test_grad_ready");
}
