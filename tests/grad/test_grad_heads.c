// Finite-difference checks of the training heads' gradients (masked prediction with two label
// sets tied and untied, plus the unmasked term; feature penalty; topic head with and without the
// MLP; CTC sum and mean): central differences of the float loss on random coordinates of x and of
// every head parameter, relative L2 error per tensor.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/rng.h"
#include "models/hubert_heads.h"
#include "tests/test_util.h"

#define NPROBE 24
#define FD_H 1e-3f

static hb_ctx g_ctx;
static hb_heads_ws g_ws;
static hb_rng g_rng;

static float *randn(size_t n, float sc) {
  float *p = malloc(sizeof(float) * n);
  for (size_t i = 0; i < n; i++) p[i] = (float)rng_normal(&g_rng) * sc;
  return p;
}

typedef double (*loss_fn)(void *st, float *dx, hb_params *g);

// Probes NPROBE coordinates of buf (n floats) whose analytic gradient is ga.
static void probe(const char *name, loss_fn f, void *st, float *buf, const float *ga, size_t n) {
  double num[NPROBE], ana[NPROBE];
  int k = (int)(n < NPROBE ? n : NPROBE);
  for (int j = 0; j < k; j++) {
    size_t i = n <= NPROBE ? (size_t)j : (size_t)rng_below(&g_rng, n);
    const float v = buf[i];
    buf[i] = v + FD_H;
    double lp = f(st, NULL, NULL);
    buf[i] = v - FD_H;
    double lm = f(st, NULL, NULL);
    buf[i] = v;
    num[j] = (lp - lm) / (2.0 * FD_H);
    ana[j] = ga[i];
  }
  double a = 0, b = 0;
  for (int j = 0; j < k; j++) {
    a += (num[j] - ana[j]) * (num[j] - ana[j]);
    b += num[j] * num[j];
  }
  CHECK_REL(name, sqrt(a) / (b > 0 ? sqrt(b) : 1e-30), TOL_GRAD_F32);
}

// ---- masked prediction ----
typedef struct {
  hb_config c;
  hb_params p;
  int B, T;
  float *x;
  int *lab;
  uint8_t *mask;
  int len[3];
  hb_pred_opts o;
} pred_st;

static double pred_loss(void *v, float *dx, hb_params *g) {
  pred_st *s = v;
  const int *labels[2] = {s->lab, s->lab + s->B * s->T};
  hb_pred_stats st;
  if (heads_pred_loss(&g_ws, &s->c, &s->p, g, s->x, labels, s->mask, s->len, s->B, s->T, &s->o, dx, &st)) {
    fprintf(stderr, "pred: %s\n", hb_errmsg());
    exit(1);
  }
  double pen;
  if (heads_feature_penalty(&g_ws, &pen, dx, s->x, (size_t)s->B * s->T * s->c.hidden_size, 10.0 * st.count_m)) exit(1);
  return st.loss + 10.0 * st.count_m * pen;
}

static void check_pred(int untie, float uw) {
  pred_st s;
  memset(&s, 0, sizeof s);
  s.B = 3;
  s.T = 11;
  const int H = 12, F = 6;
  s.c.hidden_size = H;
  s.c.final_dim = F;
  s.c.num_label_sets = 2;
  s.c.label_k[0] = 5;
  s.c.label_k[1] = 4;
  s.c.untie_final_proj = untie;
  const int Fout = untie ? 2 * F : F, K = 9;
  s.len[0] = 11; s.len[1] = 8; s.len[2] = 5;
  s.x = randn((size_t)s.B * s.T * H, 0.3f);
  s.p.final_proj_w = randn((size_t)Fout * H, 0.4f);
  s.p.final_proj_b = randn(Fout, 0.1f);
  s.p.label_embs = randn((size_t)K * F, 1.0f);
  s.lab = malloc(sizeof(int) * 2 * s.B * s.T);
  s.mask = calloc((size_t)s.B * s.T, 1);
  for (int i = 0; i < s.B * s.T; i++) {
    s.lab[i] = (int)rng_below(&g_rng, 5);
    s.lab[s.B * s.T + i] = (int)rng_below(&g_rng, 4);
    s.mask[i] = rng_uniform(&g_rng) < 0.5f && i % s.T < s.len[i / s.T];
  }
  heads_pred_opts_default(&s.o);
  s.o.nomask_weight = uw;
  hb_params g;
  memset(&g, 0, sizeof g);
  g.final_proj_w = calloc((size_t)Fout * H, 4);
  g.final_proj_b = calloc(Fout, 4);
  g.label_embs = calloc((size_t)K * F, 4);
  float *dx = calloc((size_t)s.B * s.T * 12, 4);
  pred_loss(&s, dx, &g);
  printf("masked prediction: %s projection, nomask weight %.1f (+ feature penalty on x)\n", untie ? "untied" : "tied", uw);
  probe("pred dx", pred_loss, &s, s.x, dx, (size_t)s.B * s.T * H);
  probe("pred final_proj.weight", pred_loss, &s, s.p.final_proj_w, g.final_proj_w, (size_t)Fout * H);
  probe("pred final_proj.bias", pred_loss, &s, s.p.final_proj_b, g.final_proj_b, Fout);
  probe("pred label_embs_concat", pred_loss, &s, s.p.label_embs, g.label_embs, (size_t)K * F);
  free(s.x); free(s.p.final_proj_w); free(s.p.final_proj_b); free(s.p.label_embs); free(s.lab); free(s.mask);
  free(g.final_proj_w); free(g.final_proj_b); free(g.label_embs); free(dx);
}

// ---- topic ----
typedef struct {
  hb_config c;
  hb_params p;
  int B, T, len[4], top[4];
  float *x;
  hb_topic_opts o;
} topic_st;

static double topic_loss(void *v, float *dx, hb_params *g) {
  topic_st *s = v;
  hb_topic_stats st;
  if (heads_topic_loss(&g_ws, &s->c, &s->p, g, s->x, s->len, s->top, s->B, s->T, &s->o, dx, &st)) {
    fprintf(stderr, "topic: %s\n", hb_errmsg());
    exit(1);
  }
  return st.loss;
}

static void check_topic(int Hh, int mean) {
  topic_st s;
  memset(&s, 0, sizeof s);
  s.B = 4;
  s.T = 9;
  const int H = 10, K = 6, Hin = Hh ? Hh : H;
  s.c.hidden_size = H;
  s.c.topic_k = K;
  s.c.topic_hidden = Hh;
  int lens[4] = {9, 3, 7, 1};
  memcpy(s.len, lens, sizeof lens);
  for (int b = 0; b < 4; b++) s.top[b] = (int)rng_below(&g_rng, K);
  s.o.weight = 0.7f;
  s.o.mean = mean;
  s.x = randn((size_t)s.B * s.T * H, 1.0f);
  hb_params g;
  memset(&g, 0, sizeof g);
  if (Hh) {
    s.p.topic_hid_w = randn((size_t)Hh * H, 0.5f);
    s.p.topic_hid_b = randn(Hh, 0.1f);
    g.topic_hid_w = calloc((size_t)Hh * H, 4);
    g.topic_hid_b = calloc(Hh, 4);
  }
  s.p.topic_w = randn((size_t)K * Hin, 0.5f);
  s.p.topic_b = randn(K, 0.1f);
  g.topic_w = calloc((size_t)K * Hin, 4);
  g.topic_b = calloc(K, 4);
  float *dx = calloc((size_t)s.B * s.T * H, 4);
  topic_loss(&s, dx, &g);
  printf("topic head: MLP hidden %d, %s\n", Hh, mean ? "mean" : "sum");
  probe("topic dx", topic_loss, &s, s.x, dx, (size_t)s.B * s.T * H);
  probe("topic_head.out.weight", topic_loss, &s, s.p.topic_w, g.topic_w, (size_t)K * Hin);
  probe("topic_head.out.bias", topic_loss, &s, s.p.topic_b, g.topic_b, K);
  if (Hh) {
    probe("topic_head.hidden.weight", topic_loss, &s, s.p.topic_hid_w, g.topic_hid_w, (size_t)Hh * H);
    probe("topic_head.hidden.bias", topic_loss, &s, s.p.topic_hid_b, g.topic_hid_b, Hh);
  }
  // weight 0: nothing computed, dx untouched
  float before = dx[0];
  s.o.weight = 0.0f;
  CHECK(topic_loss(&s, dx, &g) == 0.0 && dx[0] == before);
  free(s.x); free(s.p.topic_hid_w); free(s.p.topic_hid_b); free(s.p.topic_w); free(s.p.topic_b);
  free(g.topic_hid_w); free(g.topic_hid_b); free(g.topic_w); free(g.topic_b); free(dx);
}

// ---- CTC ----
typedef struct {
  hb_config c;
  hb_params p;
  int B, T, S, il[3], tl[3], tg[3 * 4];
  float *x;
  hb_ctc_opts o;
} ctc_st;

static double ctc_loss(void *v, float *dx, hb_params *g) {
  ctc_st *s = v;
  double l;
  if (heads_ctc_loss(&g_ws, &s->c, &s->p, g, s->x, s->il, s->tg, s->tl, s->B, s->T, s->S, &s->o, dx, &l, NULL)) {
    fprintf(stderr, "ctc: %s\n", hb_errmsg());
    exit(1);
  }
  return l;
}

static void check_ctc(int mean) {
  ctc_st s;
  memset(&s, 0, sizeof s);
  s.B = 3;
  s.T = 12;
  s.S = 4;
  const int H = 8, V = 5;
  s.c.hidden_size = H;
  s.c.ctc_vocab = V;
  int il[3] = {12, 9, 6}, tl[3] = {4, 2, 0}, tg[12] = {1, 1, 3, 2, 4, 2, 0, 0, 0, 0, 0, 0};
  memcpy(s.il, il, sizeof il);
  memcpy(s.tl, tl, sizeof tl);
  memcpy(s.tg, tg, sizeof tg);
  s.o.mean = mean;
  s.x = randn((size_t)s.B * s.T * H, 1.0f);
  s.p.ctc_w = randn((size_t)V * H, 0.5f);
  s.p.ctc_b = randn(V, 0.1f);
  hb_params g;
  memset(&g, 0, sizeof g);
  g.ctc_w = calloc((size_t)V * H, 4);
  g.ctc_b = calloc(V, 4);
  float *dx = calloc((size_t)s.B * s.T * H, 4);
  ctc_loss(&s, dx, &g);
  printf("CTC: %s (targets with a repeat, an empty target, padding)\n", mean ? "mean" : "sum");
  probe("ctc dx", ctc_loss, &s, s.x, dx, (size_t)s.B * s.T * H);
  probe("ctc_head.weight", ctc_loss, &s, s.p.ctc_w, g.ctc_w, (size_t)V * H);
  probe("ctc_head.bias", ctc_loss, &s, s.p.ctc_b, g.ctc_b, V);
  // padded frames get no gradient
  double pad = 0;
  for (int t = s.il[2]; t < s.T; t++)
    for (int h = 0; h < H; h++) pad += fabs(dx[((size_t)2 * s.T + t) * H + h]);
  CHECK(pad == 0.0);
  // an impossible alignment (3 labels with a repeat need 4 frames) gives an infinite loss
  s.il[2] = 3;
  s.tl[2] = 3;
  s.tg[8] = 1; s.tg[9] = 1; s.tg[10] = 2;
  CHECK(isinf(ctc_loss(&s, NULL, NULL)));
  s.tg[8] = 5;  // outside the vocabulary
  double l;
  CHECK_ERR(heads_ctc_loss(&g_ws, &s.c, &s.p, NULL, s.x, s.il, s.tg, s.tl, s.B, s.T, s.S, &s.o, NULL, &l, NULL),
            "outside [0, 5)");
  free(s.x); free(s.p.ctc_w); free(s.p.ctc_b); free(g.ctc_w); free(g.ctc_b); free(dx);
}

int main(void) {
  const char *e = getenv("HUBERT_TEST_SEED");
  uint64_t seed = e ? strtoull(e, NULL, 10) : (uint64_t)time(NULL);
  printf("seed %llu (rerun with HUBERT_TEST_SEED=%llu)\n", (unsigned long long)seed, (unsigned long long)seed);
  rng_init(&g_rng, seed);
  if (ops_ctx_init(&g_ctx, "cpu", 1)) return 1;
  heads_ws_init(&g_ws, &g_ctx);
  check_pred(0, 0.0f);
  check_pred(1, 0.5f);
  check_pred(0, 1.0f);
  check_topic(0, 1);
  check_topic(7, 0);
  check_ctc(0);
  check_ctc(1);
  heads_ws_free(&g_ws);
  ops_ctx_free(&g_ctx);
  return test_summary("test_grad_heads");
}
