// Unit-quality metrics on a hand-computed table, phone alignments -> frame labels (convention and
// length checks), edit distance, and the probes on synthetic data: a linearly separable frame
// task, the weighted sum finding the informative layer, and a CTC head learning a tiny task.
#include <math.h>

#include "common/rng.h"
#include "eval/phones.h"
#include "eval/probe.h"
#include "eval/units_eval.h"
#include "tests/test_util.h"

static void test_metrics_hand(void) {
  // counts (phones y = rows, units z = cols): [[3, 1], [0, 4]], N = 8
  // phone purity  = (3 + 4) / 8 = 0.875; cluster purity = (3 + 4) / 8 = 0.875
  // p(y) = (.5, .5), p(z) = (3/8, 5/8); I = 3/8 ln(2) + 1/8 ln(.4) + 4/8 ln(1.6); H(y) = ln 2
  const int32_t y[8] = {0, 0, 0, 0, 1, 1, 1, 1}, z[8] = {0, 0, 0, 1, 1, 1, 1, 1};
  int64_t counts[4] = {0};
  CHECK_OK(units_count(counts, 2, 2, y, z, 8));
  hb_unit_quality q;
  CHECK_OK(units_quality(counts, 2, 2, &q));
  const double mi = 0.375 * log(2.0) + 0.125 * log(0.4) + 0.5 * log(1.6);
  printf("hand table: phone purity %.6f (0.875) cluster purity %.6f (0.875) PNMI %.9f (%.9f)\n", q.phone_purity,
         q.cluster_purity, q.pnmi, mi / log(2.0));
  CHECK(fabs(q.phone_purity - 0.875) < 1e-12 && fabs(q.cluster_purity - 0.875) < 1e-12);
  CHECK(fabs(q.pnmi - mi / log(2.0)) < 1e-12 && q.n_phones == 2 && q.n_units == 2 && q.frames == 8);
  // asymmetric: one unit for everything -> phone purity = max p(y), cluster purity = 1, PNMI = 0
  const int32_t z1[8] = {0};
  int64_t c2[4] = {0};
  CHECK_OK(units_count(c2, 2, 2, y, z1, 8));
  CHECK_OK(units_quality(c2, 2, 2, &q));
  CHECK(fabs(q.phone_purity - 0.5) < 1e-12 && fabs(q.cluster_purity - 1.0) < 1e-12 && fabs(q.pnmi) < 1e-12);
  const int32_t bad[1] = {5};
  CHECK_ERR(units_count(c2, 2, 2, bad, z1, 1), "phone id 5");
  int64_t one[2] = {4, 0};
  CHECK_ERR(units_quality(one, 1, 2, &q), "H(phone) = 0");
}

static void test_alignment(void) {
  hb_phone_inv inv = {0};
  hb_alignment a;
  CHECK(alignment_parse("", &inv, 1, &a) == 1);
  CHECK(alignment_parse("h @ l oU", &inv, 1, &a) == 1);    // espeak: unaligned
  CHECK(alignment_parse("a: b:", &inv, 1, &a) == 1);
  CHECK_ERR(alignment_parse("pau:0.1 x:0.05", &inv, 1, &a), "before the previous");
  CHECK_ERR(alignment_parse("pau:0.1 x", &inv, 1, &a), "not PHONE:END_SECONDS");
  CHECK(alignment_parse("pau:0.035 b:0.06 a:0.1", &inv, 1, &a) == 0);
  CHECK(a.n == 3 && inv.n == 3);
  alignment_free(&a);
  phone_inv_sort(&inv);   // a, b, pau
  CHECK(phone_inv_id(&inv, "a", 0) == 0 && phone_inv_id(&inv, "pau", 0) == 2 && phone_inv_id(&inv, "zz", 0) == -1);
  CHECK(alignment_parse("pau:0.035 b:0.06 a:0.1", &inv, 0, &a) == 0);
  // 100 Hz, centres 0.005, 0.015, ...: frames 0-2 pau (t < 0.035), 3-5 b (t < 0.06), 6-9 a
  int32_t f[12];
  CHECK_OK(alignment_to_frames(&a, 100, 10, 2, f));
  const int32_t want[10] = {2, 2, 2, 1, 1, 1, 0, 0, 0, 0};
  CHECK(!memcmp(f, want, sizeof want));
  // 12 frames = 0.12 s: 0.02 s past the last end -> last phone; 50 Hz, 5 frames: centres .01 .03 .05 .07 .09
  CHECK_OK(alignment_to_frames(&a, 100, 12, 2, f));
  CHECK(f[10] == 0 && f[11] == 0);
  CHECK_OK(alignment_to_frames(&a, 50, 5, 2, f));
  const int32_t want50[5] = {2, 2, 1, 0, 0};
  CHECK(!memcmp(f, want50, sizeof want50));
  CHECK_ERR(alignment_to_frames(&a, 100, 25, 2, f), "tolerance");   // 0.25 s of frames, phones end at 0.1
  alignment_free(&a);
  // speech cut by more than 0.1 s is an error; trailing silence cut is not
  CHECK(alignment_parse("a:0.5 pau:0.75", &inv, 0, &a) == 0);
  int32_t g[64];
  CHECK_OK(alignment_to_frames(&a, 100, 45, 2, g));
  CHECK_ERR(alignment_to_frames(&a, 100, 35, 2, g), "past the 35 frames");
  alignment_free(&a);
  phone_inv_free(&inv);
}

static void test_edit_distance(void) {
  const int32_t a[] = {1, 2, 3, 4}, b[] = {1, 3, 4, 5, 6};
  CHECK(probe_edit_distance(a, 4, b, 5) == 3);   // delete 2, insert 5, 6
  CHECK(probe_edit_distance(a, 0, b, 5) == 5 && probe_edit_distance(a, 4, a, 4) == 0);
}

// Frame task: 3 classes, D = 8, class c shifts dimension c by +3 (separable); layer 1 of 2 is noise.
static void test_linear_probe(void) {
  enum { D = 8, C = 3 };
  int64_t n[3] = {600, 150, 150};
  float *x[3][2];
  int32_t *y[3];
  hb_rng rng;
  rng_init(&rng, 7);
  for (int s = 0; s < 3; s++) {
    y[s] = malloc(sizeof(int32_t) * n[s]);
    x[s][0] = malloc(sizeof(float) * n[s] * D);
    x[s][1] = malloc(sizeof(float) * n[s] * D);
    for (int64_t i = 0; i < n[s]; i++) {
      y[s][i] = (int32_t)rng_below(&rng, C);
      for (int d = 0; d < D; d++) {
        x[s][0][i * D + d] = (float)rng_normal(&rng) * 0.5f + (d == y[s][i] ? 3.0f : 0.0f);
        x[s][1][i * D + d] = (float)rng_normal(&rng);
      }
    }
  }
  hb_probe_opts o = {1e-2, 0, 32, 50, 10, 3};
  hb_probe_result r;
  const float *const x0[3][1] = {{x[0][0]}, {x[1][0]}, {x[2][0]}};
  hb_probe_data d = {1, D, C, {n[0], n[1], n[2]}, {x0[0], x0[1], x0[2]}, {y[0], y[1], y[2]}};
  CHECK_OK(probe_train_linear(&d, &o, &r));
  printf("separable probe: acc train %.3f valid %.3f test %.3f (best epoch %d of %d)\n", r.score[0], r.score[1], r.score[2],
         r.best_epoch, r.epochs);
  CHECK(r.score[2] > 0.97 && r.layer_w == NULL);
  hb_probe_result r2;
  CHECK_OK(probe_train_linear(&d, &o, &r2));
  CHECK(r2.score[2] == r.score[2] && r2.best_epoch == r.best_epoch);   // deterministic
  // noise layer alone: chance
  const float *const x1[3][1] = {{x[0][1]}, {x[1][1]}, {x[2][1]}};
  hb_probe_data dn = {1, D, C, {n[0], n[1], n[2]}, {x1[0], x1[1], x1[2]}, {y[0], y[1], y[2]}};
  CHECK_OK(probe_train_linear(&dn, &o, &r2));
  printf("noise-only probe: test %.3f (chance 1/3)\n", r2.score[2]);
  CHECK(r2.score[2] < 0.5);
  // weighted sum of (noise, signal) in that order: the signal layer must get most of the weight
  const float *const xw[3][2] = {{x[0][1], x[0][0]}, {x[1][1], x[1][0]}, {x[2][1], x[2][0]}};
  hb_probe_data dw = {2, D, C, {n[0], n[1], n[2]}, {xw[0], xw[1], xw[2]}, {y[0], y[1], y[2]}};
  o.max_epochs = 100, o.patience = 100;
  CHECK_OK(probe_train_linear(&dw, &o, &r2));
  printf("weighted sum (noise, signal): test %.3f, layer weights %.3f %.3f\n", r2.score[2], r2.layer_w[0], r2.layer_w[1]);
  CHECK(r2.score[2] > 0.95 && r2.layer_w && r2.layer_w[1] > 0.6 && fabsf(r2.layer_w[0] + r2.layer_w[1] - 1) < 1e-5);
  free(r2.layer_w);
  // bad input
  int32_t save = y[0][0];
  y[0][0] = 7;
  CHECK_ERR(probe_train_linear(&d, &o, &r2), "not in [0, 3)");
  y[0][0] = save;
  for (int s = 0; s < 3; s++) free(y[s]), free(x[s][0]), free(x[s][1]);
}

// CTC: utterances of 2-4 "phones" (1..3), each held 6 frames; the frame's one-hot phone x signal +
// noise. A linear CTC head on identical frames stalls in a blank-heavy optimum (torch's ctc_loss with
// Adam does the same: loss 0.70, greedy output all blank, on noise-free features), so the check is
// relative: informative features reach a PER far below the all-blank 1.0 and below pure noise.
static double ctc_case(float signal, float noise) {
  enum { D = 4, V = 4, NU = 40, HOLD = 6 };
  hb_rng rng;
  rng_init(&rng, 11);
  int64_t nutt[3] = {NU, 10, 10}, off[3][NU + 1], toff[3][NU + 1];
  int32_t tgt[3][NU * 4];
  float *x[3];
  for (int s = 0; s < 3; s++) {
    x[s] = malloc(sizeof(float) * NU * 4 * HOLD * D);
    off[s][0] = toff[s][0] = 0;
    for (int64_t u = 0; u < nutt[s]; u++) {
      int n = 2 + (int)rng_below(&rng, 3), prev = 0;
      int64_t f = off[s][u], t = toff[s][u];
      for (int k = 0; k < n; k++) {
        int p;
        do p = 1 + (int)rng_below(&rng, V - 1); while (p == prev);   // no repeats: no blank needed between
        prev = p;
        tgt[s][t++] = p;
        for (int h = 0; h < HOLD; h++, f++)
          for (int d = 0; d < D; d++) x[s][f * D + d] = (d == p ? signal : 0.0f) + noise * (float)rng_normal(&rng);
      }
      off[s][u + 1] = f;
      toff[s][u + 1] = t;
    }
  }
  const float *const xs[3][1] = {{x[0]}, {x[1]}, {x[2]}};
  hb_ctc_probe_data d = {1, D, V, {nutt[0], nutt[1], nutt[2]}, {off[0], off[1], off[2]}, {xs[0], xs[1], xs[2]},
                         {toff[0], toff[1], toff[2]}, {tgt[0], tgt[1], tgt[2]}};
  hb_probe_opts o = {3e-2, 0, 4, 100, 40, 5};
  hb_probe_result r;
  CHECK_OK(probe_train_ctc(&d, &o, &r));
  printf("CTC probe (signal %.1f, noise %.1f): PER train %.3f valid %.3f test %.3f (best epoch %d of %d)\n", signal, noise,
         r.score[0], r.score[1], r.score[2], r.best_epoch, r.epochs);
  for (int s = 0; s < 3; s++) free(x[s]);
  return r.score[2];
}

static void test_ctc_probe(void) {
  double good = ctc_case(2.0f, 0.3f), none = ctc_case(0.0f, 0.3f);
  CHECK(good < 0.5 && good < none - 0.2);
}

int main(void) {
  test_metrics_hand();
  test_alignment();
  test_edit_distance();
  test_linear_probe();
  test_ctc_probe();
  return test_summary("test_probe");
}
