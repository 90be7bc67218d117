// Test driver for tests/parity/test_pretrain_torchaudio*.py: one pretraining step (pretrain_step:
// trunk + masked prediction + feature penalty + topic head) of a model folder on given inputs.
//
//   pretrain_dump MODEL_DIR INPUTS.safetensors OUT.safetensors MULT FEAT_W MASKED_W NOMASK_W
//                 TOPIC_W TOPIC_LAYER TOPIC_MEAN [REPEAT]
//
// INPUTS (F32): wave (B, L), lengths (B) (sample counts), mask (B, T) 0/1, labels (S, B, T) class
// ids, topics (B). OUT: the HF-named gradient of every parameter, "output.hidden" (hidden[NL]),
// "output.features", "output.logits<s>" ((n_m + n_u, K_s): masked rows first, b-major). The loss
// terms go to stdout as one line "STATS key=value ..." (%.17g). REPEAT > 1 re-runs the step (timing).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/safetensors.h"
#include "models/hubert_pretrain.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
  float *wave, *lf, *mf, *labf, *topf, *grads;
  long *lens;
  uint8_t *mask;
  int *lab, *topics;
  hb_st_entry *e;
} bufs;

static void bufs_free(bufs *b) {
  free(b->wave); free(b->lf); free(b->mf); free(b->labf); free(b->topf); free(b->grads);
  free(b->lens); free(b->mask); free(b->lab); free(b->topics); free(b->e);
}

static int run(int argc, char **argv, hb_model *m, hb_pretrain_ws *w, bufs *bf, hb_safetensors *st) {
  if (argc != 11 && argc != 12)
    return hb_fail("usage: pretrain_dump MODEL_DIR INPUTS OUT MULT FEAT_W MASKED_W NOMASK_W TOPIC_W TOPIC_LAYER TOPIC_MEAN [REPEAT]");
  hb_pretrain_opts o;
  pretrain_opts_default(&o);
  o.feature_grad_mult = strtof(argv[4], NULL);
  o.feature_weight = strtof(argv[5], NULL);
  o.pred.masked_weight = strtof(argv[6], NULL);
  o.pred.nomask_weight = strtof(argv[7], NULL);
  o.pred.keep_logits = 1;
  o.topic.weight = strtof(argv[8], NULL);
  o.topic_layer = atoi(argv[9]);
  o.topic.mean = atoi(argv[10]);
  const int repeat = argc == 12 ? atoi(argv[11]) : 1;
  const hb_config *c = &m->cfg;
  HB_TRY(st_open(argv[2], st));
  int64_t sw[2], sl[1], sm[2], sb[3], stp[1];
  bf->wave = st_load_f32(st, "wave", 2, sw, NULL);
  bf->lf = st_load_f32(st, "lengths", 1, sl, NULL);
  bf->mf = st_load_f32(st, "mask", 2, sm, NULL);
  bf->labf = st_load_f32(st, "labels", 3, sb, NULL);
  bf->topf = st_load_f32(st, "topics", 1, stp, NULL);
  if (!bf->wave || !bf->lf || !bf->mf || !bf->labf || !bf->topf) return -1;
  const int B = (int)sw[0], S = c->num_label_sets;
  const long L = (long)sw[1];
  const int T = config_num_frames(c, L);
  if (sl[0] != B || sm[0] != B || sm[1] != T || sb[0] != S || sb[1] != B || sb[2] != T || stp[0] != B)
    return hb_fail("%s: shapes disagree (B %d, T %d, %d label sets)", argv[2], B, T, S);
  bf->lens = hb_malloc(sizeof(long) * B);
  bf->mask = hb_malloc((size_t)B * T);
  bf->lab = hb_malloc(sizeof(int) * (size_t)S * B * T);
  bf->topics = hb_malloc(sizeof(int) * B);
  bf->grads = hb_calloc(m->layout.total, sizeof(float));
  if (!bf->lens || !bf->mask || !bf->lab || !bf->topics || !bf->grads) return -1;
  for (int b = 0; b < B; b++) bf->lens[b] = (long)bf->lf[b], bf->topics[b] = (int)bf->topf[b];
  for (int i = 0; i < B * T; i++) bf->mask[i] = bf->mf[i] != 0.0f;
  for (size_t i = 0; i < (size_t)S * B * T; i++) bf->lab[i] = (int)bf->labf[i];
  const int *labels[HB_MAX_LABEL_SETS];
  for (int s = 0; s < S; s++) labels[s] = bf->lab + (size_t)s * B * T;
  HB_TRY(pretrain_ws_init(w, m, B, L));
  hb_pretrain_stats r;
  double best = 1e30;
  for (int i = 0; i < repeat; i++) {
    memset(bf->grads, 0, sizeof(float) * m->layout.total);
    const double t0 = now_s();
    HB_TRY(pretrain_step(m, w, bf->wave, bf->lens, B, L, labels, NULL, bf->mask, bf->topics, &o, bf->grads, &r));
    const double dt = now_s() - t0;
    if (dt < best) best = dt;
  }
  printf("STATS loss=%.17g pred_loss=%.17g feature_pen=%.17g feature_loss=%.17g topic_loss=%.17g topic_ce=%.17g "
         "topic_correct=%ld count_m=%ld count_u=%ld T=%d step_s=%.4f",
         r.loss, r.pred_loss, r.feature_pen, r.feature_loss, r.topic_loss, r.topic.ce_sum, r.topic.correct,
         r.pred.count_m, r.pred.count_u, r.T, best);
  for (int s = 0; s < S; s++)
    printf(" loss_m%d=%.17g loss_u%d=%.17g correct_m%d=%ld correct_u%d=%ld", s, r.pred.loss_m[s], s, r.pred.loss_u[s],
           s, r.pred.correct_m[s], s, r.pred.correct_u[s]);
  printf("\n");
  const int n = m->layout.n, NL = c->num_hidden_layers, H = c->hidden_size, Cc = c->conv_dim[c->num_conv - 1];
  bf->e = hb_calloc((size_t)n + 2 + S, sizeof(hb_st_entry));
  if (!bf->e) return -1;
  for (int i = 0; i < n; i++) {
    const hb_param_info *pi = &m->layout.info[i];
    bf->e[i].name = pi->name;
    bf->e[i].data = bf->grads + pi->offset;
    bf->e[i].ndim = pi->ndim;
    for (int d = 0; d < pi->ndim; d++) bf->e[i].shape[d] = pi->shape[d];
  }
  bf->e[n] = (hb_st_entry){"output.hidden", w->arena.hidden[NL], 3, {B, T, H}};
  bf->e[n + 1] = (hb_st_entry){"output.features", w->arena.features, 3, {B, T, Cc}};
  static char names[HB_MAX_LABEL_SETS][32];
  for (int s = 0; s < S; s++) {
    snprintf(names[s], sizeof names[s], "output.logits%d", s);
    bf->e[n + 2 + s] = (hb_st_entry){names[s], w->heads.logits[s], 2, {w->heads.n_m + w->heads.n_u, c->label_k[s]}};
  }
  HB_TRY(st_write(argv[3], n + 2 + S, bf->e, HB_DT_F32, 0, NULL, NULL));
  fprintf(stderr, "pretrain_dump: B=%d L=%ld T=%d, %d gradient tensors, step %.3f s -> %s\n", B, L, T, n, best, argv[3]);
  return 0;
}

int main(int argc, char **argv) {
  hb_ctx ctx;
  hb_model m;
  hb_pretrain_ws w;
  hb_safetensors st;
  bufs bf;
  memset(&w, 0, sizeof w);
  memset(&st, 0, sizeof st);
  memset(&bf, 0, sizeof bf);
  int rc = 1, have_model = 0;
  if (argc < 2 || ops_ctx_init(&ctx, "cpu", 0)) {
    fprintf(stderr, "pretrain_dump: %s\n", argc < 2 ? "usage: pretrain_dump MODEL_DIR INPUTS OUT ..." : hb_errmsg());
    return 1;
  }
  if (model_load(&m, argv[1], &ctx) == 0) {
    have_model = 1;
    rc = run(argc, argv, &m, &w, &bf, &st) ? 1 : 0;
  }
  if (rc) fprintf(stderr, "pretrain_dump: %s\n", hb_errmsg());
  bufs_free(&bf);
  if (have_model) {
    pretrain_ws_free(&w, &m);
    model_free(&m);
  }
  if (st.path) st_close(&st);
  ops_ctx_free(&ctx);
  return rc;
}
