// Drives the training heads on inputs written by tests/parity/test_heads_torch.py and writes the
// results back as raw little-endian arrays (not a test by itself).
//   heads_dump pred|topic|ctc|mask DIR
// DIR/cfg.txt holds the integers/floats of the mode (see each function); arrays are DIR/<name>.bin.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/rng.h"
#include "kernels/ops.h"
#include "models/hubert_heads.h"
#include "models/hubert_mask.h"

static const char *g_dir;
static void *g_allocs[64];  // everything allocated, freed at exit (clean under LeakSanitizer)
static int g_nallocs;

static void *al(size_t count, size_t size) {
  void *p = calloc(count ? count : 1, size);
  if (!p || g_nallocs == 64) { fprintf(stderr, "heads_dump: out of memory\n"); exit(2); }
  return g_allocs[g_nallocs++] = p;
}

static void *rd(const char *name, size_t bytes) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s.bin", g_dir, name);
  FILE *f = fopen(path, "rb");
  if (!f) { fprintf(stderr, "heads_dump: cannot open %s\n", path); exit(2); }
  void *p = al(1, bytes);
  if (fread(p, 1, bytes, f) != bytes) { fprintf(stderr, "heads_dump: %s is short (want %zu bytes)\n", path, bytes); exit(2); }
  fclose(f);
  return p;
}

static void wr(const char *name, const void *p, size_t bytes) {
  char path[1024];
  snprintf(path, sizeof path, "%s/out_%s.bin", g_dir, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p, 1, bytes, f) != bytes) { fprintf(stderr, "heads_dump: cannot write %s\n", path); exit(2); }
  fclose(f);
}

static FILE *cfg_open(void) {
  char path[1024];
  snprintf(path, sizeof path, "%s/cfg.txt", g_dir);
  FILE *f = fopen(path, "r");
  if (!f) { fprintf(stderr, "heads_dump: cannot open %s\n", path); exit(2); }
  return f;
}

static void die(const char *what) {
  fprintf(stderr, "heads_dump: %s: %s\n", what, hb_errmsg());
  exit(1);
}

// cfg: B T H F S untie masked_weight nomask_weight K_0 .. K_{S-1}
static void run_pred(hb_ctx *ctx) {
  int B, T, H, F, S, untie;
  float mw, uw;
  FILE *f = cfg_open();
  if (fscanf(f, "%d %d %d %d %d %d %f %f", &B, &T, &H, &F, &S, &untie, &mw, &uw) != 8) die("cfg");
  hb_config c;
  memset(&c, 0, sizeof c);
  c.hidden_size = H; c.final_dim = F; c.num_label_sets = S; c.untie_final_proj = untie;
  int sumK = 0;
  for (int s = 0; s < S; s++) {
    if (fscanf(f, "%d", &c.label_k[s]) != 1) die("cfg K");
    snprintf(c.label_names[s], HB_NAME_LEN, "set%d", s);
    sumK += c.label_k[s];
  }
  fclose(f);
  const int Fout = untie ? F * S : F;
  hb_params p, g;
  memset(&p, 0, sizeof p);
  memset(&g, 0, sizeof g);
  float *x = rd("x", sizeof(float) * B * T * H);
  p.final_proj_w = rd("w", sizeof(float) * Fout * H);
  p.final_proj_b = rd("b", sizeof(float) * Fout);
  p.label_embs = rd("emb", sizeof(float) * sumK * F);
  int *lab = rd("labels", sizeof(int) * S * B * T);
  uint8_t *mask = rd("mask", (size_t)B * T);
  int *len = rd("len", sizeof(int) * B);
  g.final_proj_w = al((size_t)Fout * H, 4);
  g.final_proj_b = al(Fout, 4);
  g.label_embs = al((size_t)sumK * F, 4);
  float *dx = al((size_t)B * T * H, 4);
  const int *labels[HB_MAX_LABEL_SETS];
  for (int s = 0; s < S; s++) labels[s] = lab + (size_t)s * B * T;
  hb_heads_ws ws;
  heads_ws_init(&ws, ctx);
  hb_pred_opts o;
  heads_pred_opts_default(&o);
  o.masked_weight = mw;
  o.nomask_weight = uw;
  o.keep_logits = 1;
  hb_pred_stats st;
  if (heads_pred_loss(&ws, &c, &p, &g, x, labels, mask, len, B, T, &o, dx, &st)) die("pred");
  double stats[4 + 4 * HB_MAX_LABEL_SETS];
  stats[0] = st.loss; stats[1] = st.count_m; stats[2] = st.count_u; stats[3] = S;
  for (int s = 0; s < S; s++) {
    stats[4 + 4 * s] = st.loss_m[s]; stats[5 + 4 * s] = st.loss_u[s];
    stats[6 + 4 * s] = st.correct_m[s]; stats[7 + 4 * s] = st.correct_u[s];
  }
  wr("stats", stats, sizeof(double) * (4 + 4 * S));
  wr("dx", dx, sizeof(float) * B * T * H);
  wr("dw", g.final_proj_w, sizeof(float) * Fout * H);
  wr("db", g.final_proj_b, sizeof(float) * Fout);
  wr("demb", g.label_embs, sizeof(float) * sumK * F);
  for (int s = 0; s < S; s++) {
    char name[32];
    snprintf(name, sizeof name, "logits%d", s);
    wr(name, ws.logits[s], sizeof(float) * (size_t)(ws.n_m + ws.n_u) * c.label_k[s]);
  }
  // feature penalty on x itself with coef = 10 * count_m
  double pen;
  float *dfe = al((size_t)B * T * H, 4);
  if (heads_feature_penalty(&ws, &pen, dfe, x, (size_t)B * T * H, 10.0 * st.count_m)) die("penalty");
  wr("pen", &pen, sizeof pen);
  wr("dpen", dfe, sizeof(float) * B * T * H);
  heads_ws_free(&ws);
}

// cfg: B T H K Hh weight mean
static void run_topic(hb_ctx *ctx) {
  int B, T, H, K, Hh, mean;
  float weight;
  FILE *f = cfg_open();
  if (fscanf(f, "%d %d %d %d %d %f %d", &B, &T, &H, &K, &Hh, &weight, &mean) != 7) die("cfg");
  fclose(f);
  hb_config c;
  memset(&c, 0, sizeof c);
  c.hidden_size = H; c.topic_k = K; c.topic_hidden = Hh;
  const int Hin = Hh ? Hh : H;
  hb_params p, g;
  memset(&p, 0, sizeof p);
  memset(&g, 0, sizeof g);
  float *x = rd("x", sizeof(float) * B * T * H);
  int *len = rd("len", sizeof(int) * B), *top = rd("topics", sizeof(int) * B);
  if (Hh) {
    p.topic_hid_w = rd("hw", sizeof(float) * Hh * H);
    p.topic_hid_b = rd("hb", sizeof(float) * Hh);
    g.topic_hid_w = al((size_t)Hh * H, 4);
    g.topic_hid_b = al(Hh, 4);
  }
  p.topic_w = rd("w", sizeof(float) * K * Hin);
  p.topic_b = rd("b", sizeof(float) * K);
  g.topic_w = al((size_t)K * Hin, 4);
  g.topic_b = al(K, 4);
  float *dx = al((size_t)B * T * H, 4);
  hb_heads_ws ws;
  heads_ws_init(&ws, ctx);
  hb_topic_opts o = {weight, mean};
  hb_topic_stats st;
  if (heads_topic_loss(&ws, &c, &p, &g, x, len, top, B, T, &o, dx, &st)) die("topic");
  double stats[3] = {st.loss, (double)st.correct, (double)st.count};
  wr("stats", stats, sizeof stats);
  wr("dx", dx, sizeof(float) * B * T * H);
  wr("dw", g.topic_w, sizeof(float) * K * Hin);
  wr("db", g.topic_b, sizeof(float) * K);
  if (Hh) {
    wr("dhw", g.topic_hid_w, sizeof(float) * Hh * H);
    wr("dhb", g.topic_hid_b, sizeof(float) * Hh);
  }
  heads_ws_free(&ws);
}

// cfg: B T H V S mean
static void run_ctc(hb_ctx *ctx) {
  int B, T, H, V, S, mean;
  FILE *f = cfg_open();
  if (fscanf(f, "%d %d %d %d %d %d", &B, &T, &H, &V, &S, &mean) != 6) die("cfg");
  fclose(f);
  hb_config c;
  memset(&c, 0, sizeof c);
  c.hidden_size = H; c.ctc_vocab = V;
  hb_params p, g;
  memset(&p, 0, sizeof p);
  memset(&g, 0, sizeof g);
  float *x = rd("x", sizeof(float) * B * T * H);
  int *il = rd("in_len", sizeof(int) * B), *tl = rd("tgt_len", sizeof(int) * B), *tg = rd("targets", sizeof(int) * B * S);
  p.ctc_w = rd("w", sizeof(float) * V * H);
  p.ctc_b = rd("b", sizeof(float) * V);
  g.ctc_w = al((size_t)V * H, 4);
  g.ctc_b = al(V, 4);
  float *dx = al((size_t)B * T * H, 4), *lb = al(B, 4);
  hb_heads_ws ws;
  heads_ws_init(&ws, ctx);
  hb_ctc_opts o = {mean, 0};
  double loss;
  if (heads_ctc_loss(&ws, &c, &p, &g, x, il, tg, tl, B, T, S, &o, dx, &loss, lb)) die("ctc");
  wr("loss", &loss, sizeof loss);
  wr("loss_b", lb, sizeof(float) * B);
  wr("dx", dx, sizeof(float) * B * T * H);
  wr("dw", g.ctc_w, sizeof(float) * V * H);
  wr("db", g.ctc_b, sizeof(float) * V);
  wr("logits", ws.ctc_logits, sizeof(float) * B * T * V);
  int *dec = al((size_t)B * T, sizeof(int)), *dl = al(B, sizeof(int));
  heads_ctc_greedy(ws.ctc_logits, il, B, T, V, 0, dec, dl);
  wr("dec", dec, sizeof(int) * B * T);
  wr("dec_len", dl, sizeof(int) * B);
  heads_ws_free(&ws);
}

// cfg: B T prob length min_masks draws seed ; len.bin (B) ; writes per-draw masked fraction of
// valid frames and the first draw's mask.
static void run_mask(void) {
  int B, T, length, min_masks, draws;
  double prob;
  unsigned long long seed;
  FILE *f = cfg_open();
  if (fscanf(f, "%d %d %lf %d %d %d %llu", &B, &T, &prob, &length, &min_masks, &draws, &seed) != 7) die("cfg");
  fclose(f);
  int *len = rd("len", sizeof(int) * B);
  long valid = 0;
  for (int b = 0; b < B; b++) valid += len[b];
  uint8_t *m = al((size_t)B * T, 1), *first = al((size_t)B * T, 1);
  double *frac = al(draws, sizeof(double));
  hb_rng r;
  rng_init(&r, seed);
  for (int d = 0; d < draws; d++) {
    if (mask_compute(m, B, T, len, prob, length, min_masks, &r)) die("mask");
    frac[d] = (double)mask_count(m, B, T) / valid;
    if (!d) memcpy(first, m, (size_t)B * T);
  }
  wr("frac", frac, sizeof(double) * draws);
  wr("mask", first, (size_t)B * T);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: heads_dump pred|topic|ctc|mask DIR\n");
    return 2;
  }
  g_dir = argv[2];
  hb_ctx ctx;
  if (ops_ctx_init(&ctx, "cpu", 0)) die("context");
  if (!strcmp(argv[1], "pred")) run_pred(&ctx);
  else if (!strcmp(argv[1], "topic")) run_topic(&ctx);
  else if (!strcmp(argv[1], "ctc")) run_ctc(&ctx);
  else if (!strcmp(argv[1], "mask")) run_mask();
  else { fprintf(stderr, "heads_dump: unknown mode %s\n", argv[1]); return 2; }
  ops_ctx_free(&ctx);
  for (int i = 0; i < g_nallocs; i++) free(g_allocs[i]);
  return 0;
}
