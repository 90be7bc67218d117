// pretrain_step (models/hubert_pretrain.c) on a tiny random model: loss = sum of its terms,
// determinism, gradient accumulation (two steps = 2 x one step), the topic head's layer and the
// topic_per_masked factor, and every input error. Parity with torchaudio:
// tests/parity/test_pretrain_torchaudio.py.
#include <stdint.h>

#include "common/rng.h"
#include "models/hubert_mask.h"
#include "models/hubert_pretrain.h"
#include "tests/test_util.h"

enum { B = 2 };
static const long L = 4000;

int main(void) {
  hb_ctx ctx;
  CHECK_OK(ops_ctx_init(&ctx, "cpu", 1));
  hb_config c;
  config_preset(&c, HB_PRESET_TINY);
  c.num_label_sets = 2;
  c.label_k[0] = 7;
  c.label_k[1] = 5;
  snprintf(c.label_names[0], HB_NAME_LEN, "a");
  snprintf(c.label_names[1], HB_NAME_LEN, "b");
  c.topic_k = 3;
  c.topic_layer = 1;
  hb_model m;
  CHECK_OK(model_init(&m, &c, &ctx));
  CHECK_OK(model_init_random(&m, 3));
  hb_pretrain_ws w;
  CHECK_OK(pretrain_ws_init(&w, &m, B, L));
  const int T = config_num_frames(&c, L);
  float *wave = hb_malloc(sizeof(float) * B * L);
  float *g1 = hb_calloc(m.layout.total, sizeof(float)), *g2 = hb_calloc(m.layout.total, sizeof(float));
  int *lab = hb_malloc(sizeof(int) * 2 * B * T);
  uint8_t *mask = hb_calloc((size_t)B * T, 1);
  long lens[B] = {L, 3000};
  int topics[B] = {2, 0}, bad_topics[B] = {3, 0};
  hb_rng r;
  rng_init(&r, 11);
  for (long i = 0; i < B * L; i++) wave[i] = (float)(0.1 * rng_normal(&r));
  for (long i = 3000; i < L; i++) wave[L + i] = 0.0f;
  for (int i = 0; i < 2 * B * T; i++) lab[i] = (int)(rng_uniform_double(&r) * (i < B * T ? 7 : 5));
  const int *labels[2] = {lab, lab + B * T};
  const int valid1 = config_num_frames(&c, 3000);
  for (int t = 2; t < 8; t++) mask[t] = mask[T + t] = 1;

  hb_pretrain_opts o;
  pretrain_opts_default(&o);
  o.topic.weight = 0.5f;
  hb_pretrain_stats s1, s2;
  CHECK_OK(pretrain_step(&m, &w, wave, lens, B, L, labels, NULL, mask, topics, &o, g1, &s1));
  printf("  loss %.6f = pred %.6f + feature %.6f + topic %.6f; n_m %ld, T %d\n", s1.loss, s1.pred_loss,
         s1.feature_loss, s1.topic_loss, s1.pred.count_m, s1.T);
  CHECK(s1.T == T && s1.pred.count_m == 12 && s1.pred.count_u == 0);
  CHECK(fabs(s1.loss - (s1.pred_loss + s1.feature_loss + s1.topic_loss)) <= 1e-9 * fabs(s1.loss));
  CHECK(fabs(s1.feature_loss - 10.0 * 12 * s1.feature_pen) <= 1e-9 * s1.feature_loss);
  CHECK(fabs(s1.topic_loss - 0.5 * s1.topic.ce_sum / B) <= 1e-6 * s1.topic_loss);
  CHECK(s1.topic.count == B);
  // Same inputs again, accumulating: g2 = 2 g1, identical loss (eval mode: deterministic).
  memcpy(g2, g1, sizeof(float) * m.layout.total);
  CHECK_OK(pretrain_step(&m, &w, wave, lens, B, L, labels, NULL, mask, topics, &o, g2, &s2));
  CHECK(s2.loss == s1.loss);
  for (size_t i = 0; i < m.layout.total; i++) g1[i] *= 2.0f;
  CHECK_REL("accumulated gradient = 2 x one step", rel_err_f32(g2, g1, m.layout.total), 1e-6);
  // topic_per_masked multiplies the topic term by n_m.
  o.topic_per_masked = 1;
  CHECK_OK(pretrain_step(&m, &w, wave, lens, B, L, labels, NULL, mask, topics, &o, g2, &s2));
  CHECK(fabs(s2.topic_loss - 12.0 * s1.topic_loss) <= 1e-5 * s2.topic_loss);
  o.topic_per_masked = 0;
  // Topic on the last layer pools another hidden state: another loss.
  o.topic_layer = 2;
  CHECK_OK(pretrain_step(&m, &w, wave, lens, B, L, labels, NULL, mask, topics, &o, g2, &s2));
  CHECK(s2.topic.ce_sum != s1.topic.ce_sum && s2.pred_loss == s1.pred_loss);
  // Unmasked frames: counted and weighted.
  o.topic_layer = 0;
  o.pred.nomask_weight = 0.5f;
  CHECK_OK(pretrain_step(&m, &w, wave, lens, B, L, labels, NULL, mask, topics, &o, g2, &s2));
  CHECK(s2.pred.count_u == T + valid1 - 12);
  CHECK(fabs(s2.pred_loss - (s2.pred.loss_m[0] + s2.pred.loss_m[1] + 0.5 * (s2.pred.loss_u[0] + s2.pred.loss_u[1]))) <=
        1e-6 * s2.pred_loss);
  o.pred.nomask_weight = 0.0f;
  // Dropout on: a different, finite loss; the same seed reproduces it.
  o.train.train = 1;
  o.train.seed = 5;
  CHECK_OK(pretrain_step(&m, &w, wave, lens, B, L, labels, NULL, mask, topics, &o, g2, &s2));
  hb_pretrain_stats s3;
  CHECK_OK(pretrain_step(&m, &w, wave, lens, B, L, labels, NULL, mask, topics, &o, g2, &s3));
  CHECK(isfinite(s2.loss) && s2.loss != s1.loss && s3.loss == s2.loss);
  o.train.train = 0;

  // Validation mode (grads NULL): the same loss, no gradient written.
  hb_pretrain_stats s4;
  CHECK_OK(pretrain_step(&m, &w, wave, lens, B, L, labels, NULL, mask, topics, &o, NULL, &s4));
  CHECK(s4.loss == s1.loss && s4.topic_loss == s1.topic_loss && s4.feature_loss == s1.feature_loss);
  // Labels trimmed shorter than the features (labels_align): frames beyond carry no loss.
  const int lf[B] = {T, 8}, lf_bad[B] = {T, valid1 + 1}, lf_short[B] = {T, 6};
  o.pred.nomask_weight = 0.5f;
  CHECK_OK(pretrain_step(&m, &w, wave, lens, B, L, labels, lf, mask, topics, &o, NULL, &s4));
  CHECK(s4.pred.count_m == 12 && s4.pred.count_u == T + 8 - 12);
  CHECK(s4.topic_loss == s1.topic_loss);  // the topic head still pools every valid frame
  o.pred.nomask_weight = 0.0f;
  CHECK_ERR(pretrain_step(&m, &w, wave, lens, B, L, labels, lf_bad, mask, topics, &o, g2, &s2), "labelled frames outside");
  CHECK_ERR(pretrain_step(&m, &w, wave, lens, B, L, labels, lf_short, mask, topics, &o, g2, &s2), "carries no label");

  // Errors.
  CHECK_ERR(pretrain_step(&m, &w, wave, lens, B + 1, L, labels, NULL, mask, topics, &o, g2, &s2), "exceeds the workspace");
  CHECK_ERR(pretrain_step(&m, &w, wave, lens, B, L, labels, NULL, mask, NULL, &o, g2, &s2), "no topics");
  CHECK_ERR(pretrain_step(&m, &w, wave, lens, B, L, labels, NULL, mask, bad_topics, &o, g2, &s2), "topic 3 of utterance 0");
  CHECK_ERR(pretrain_step(&m, &w, wave, lens, B, L, labels, NULL, NULL, topics, &o, g2, &s2), "labels and mask");
  o.topic_layer = 3;
  CHECK_ERR(pretrain_step(&m, &w, wave, lens, B, L, labels, NULL, mask, topics, &o, g2, &s2), "topic layer 3");
  o.topic_layer = 0;
  mask[T + valid1] = 1;
  CHECK_ERR(pretrain_step(&m, &w, wave, lens, B, L, labels, NULL, mask, topics, &o, g2, &s2), "is masked but padded");
  mask[T + valid1] = 0;
  lab[3] = 7;
  CHECK_ERR(pretrain_step(&m, &w, wave, lens, B, L, labels, NULL, mask, topics, &o, g2, &s2), "outside [0, 7)");
  lab[3] = 0;
  hb_config c2 = c;
  c2.final_dim = 0;
  c2.topic_k = 0;
  hb_model m2;
  hb_pretrain_ws w2;
  CHECK_OK(model_init(&m2, &c2, &ctx));
  CHECK_ERR(pretrain_ws_init(&w2, &m2, B, L), "no masked-prediction head");
  model_free(&m2);

  free(wave);
  free(g1);
  free(g2);
  free(lab);
  free(mask);
  pretrain_ws_free(&w, &m);
  model_free(&m);
  ops_ctx_free(&ctx);
  return test_summary("test_pretrain");
}
