// Span masking (torchaudio _compute_mask_indices semantics) and label alignment: statistics over
// many draws vs the exact expectation, min_masks, padding, equal row counts, explicit masks.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "common/rng.h"
#include "models/hubert_mask.h"
#include "tests/test_util.h"

static uint64_t test_seed(void) {
  const char *e = getenv("HUBERT_TEST_SEED");
  uint64_t s = e ? strtoull(e, NULL, 10) : (uint64_t)time(NULL);
  printf("seed %llu (rerun with HUBERT_TEST_SEED=%llu)\n", (unsigned long long)s, (unsigned long long)s);
  return s;
}

// log C(n, k)
static double lchoose(int n, int k) { return lgamma(n + 1.0) - lgamma(k + 1.0) - lgamma(n - k + 1.0); }

// Exact expected masked fraction of one unpadded row of T frames with `num` distinct starts drawn
// from [0, n), n = T - L: frame t is masked unless none of the m_t starts in [t - L + 1, t] is drawn.
static double expected_fraction(int T, int L, int num) {
  const int n = T - L;
  double s = 0;
  for (int t = 0; t < T; t++) {
    int lo = t - L + 1 < 0 ? 0 : t - L + 1, hi = t < n - 1 ? t : n - 1;
    int m = hi >= lo ? hi - lo + 1 : 0;
    s += n - m >= num ? 1.0 - exp(lchoose(n - m, num) - lchoose(n, num)) : 1.0;
  }
  return s / T;
}

int main(void) {
  const uint64_t seed = test_seed();
  hb_rng r;
  rng_init(&r, seed);

  // 1. Base settings (mask_prob 0.8, length 10), one 10 s row (T = 500): num = 40 exactly.
  {
    const int T = 500, draws = 2000;
    uint8_t *m = malloc(T);
    double s = 0, s2 = 0;
    for (int d = 0; d < draws; d++) {
      CHECK_OK(mask_compute(m, 1, T, NULL, 0.8, 10, 2, &r));
      double f = (double)mask_count(m, 1, T) / T;
      s += f;
      s2 += f * f;
    }
    const double mean = s / draws, sd = sqrt(s2 / draws - mean * mean), ex = expected_fraction(T, 10, 40);
    const double z = fabs(mean - ex) / (sd / sqrt(draws));
    printf("  Base masking, T %d: mean fraction %.5f (sd %.4f, %d draws), exact expectation %.5f, |z| %.2f "
           "(1 - e^-0.8 = %.4f ignores span clipping)\n", T, mean, sd, draws, ex, z, 1 - exp(-0.8));
    CHECK(z < 4.5);
    free(m);
  }

  // 2. Padding never masked, every row the batch-minimum count, min_masks on short rows.
  {
    const int B = 5, T = 300, lens[5] = {300, 250, 123, 40, 15};
    uint8_t *m = malloc((size_t)B * T);
    int bad_pad = 0, unequal = 0, below_min = 0;
    for (int d = 0; d < 500; d++) {
      CHECK_OK(mask_compute(m, B, T, lens, 0.8, 10, 2, &r));
      int c0 = -1;
      for (int b = 0; b < B; b++) {
        int c = 0;
        for (int t = 0; t < T; t++) {
          c += m[b * T + t];
          if (m[b * T + t] && t >= lens[b]) bad_pad++;
        }
        if (c0 < 0) c0 = c;
        if (c != c0) unequal++;
      }
      if (c0 < 11) below_min++;  // row of 15: 2 distinct starts in [0, 5), spans of 10 -> >= 11 frames
    }
    printf("  padding: %d masked padded frames, %d rows off the batch count, %d batches under 11 frames\n", bad_pad,
           unequal, below_min);
    CHECK(bad_pad == 0);
    CHECK(unequal == 0);
    CHECK(below_min == 0);
    // min_masks alone: tiny mask_prob still gives 2 spans
    const int one[1] = {200};
    CHECK_OK(mask_compute(m, 1, 200, one, 0.001, 10, 2, &r));
    long c = mask_count(m, 1, 200);
    printf("  min_masks 2 at mask_prob 0.001: %ld frames masked (expect 11..20)\n", c);
    CHECK(c >= 11 && c <= 20);
    CHECK_OK(mask_compute(m, 1, 200, one, 0.001, 10, 0, &r));
    CHECK(mask_count(m, 1, 200) <= 10);
    free(m);
  }

  // 3. Determinism in (seed, counter); bad arguments.
  {
    uint8_t a[2 * 100], b[2 * 100];
    hb_rng r1, r2;
    rng_init(&r1, seed ^ 7);
    rng_init(&r2, seed ^ 7);
    CHECK_OK(mask_compute(a, 2, 100, NULL, 0.65, 10, 2, &r1));
    CHECK_OK(mask_compute(b, 2, 100, NULL, 0.65, 10, 2, &r2));
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK_ERR(mask_compute(a, 2, 100, NULL, 1.5, 10, 2, &r1), "mask_prob");
    CHECK_ERR(mask_compute(a, 2, 100, NULL, 0.5, 0, 2, &r1), "mask_length");
    const int badlen[2] = {100, 101};
    CHECK_ERR(mask_compute(a, 2, 100, badlen, 0.5, 10, 2, &r1), "length 101 of row 1");
  }

  // 4. Explicit masks.
  {
    const int lens[2] = {6, 4};
    uint8_t src[12] = {0, 3, 1, 0, 0, 1, 1, 0, 0, 1, 0, 0}, dst[12];
    CHECK_OK(mask_set_explicit(dst, src, 2, 6, lens));
    CHECK(dst[1] == 1 && dst[0] == 0 && mask_count(dst, 2, 6) == 5);
    src[10] = 1;
    CHECK_ERR(mask_set_explicit(dst, src, 2, 6, lens), "row 1 masks padded frame 4");
  }

  // 5. Label alignment (fairseq forward_targets).
  {
    int lab[400], out[200], n;
    for (int i = 0; i < 400; i++) lab[i] = i;
    CHECK_OK(labels_align(out, &n, lab, 200, 200, 50, 320, 16000, 0.1, 0));  // same rate
    CHECK(n == 200 && out[0] == 0 && out[199] == 199);
    CHECK_OK(labels_align(out, &n, lab, 400, 200, 100, 320, 16000, 0.1, 0));  // 100 Hz labels
    CHECK(n == 200 && out[7] == 14 && out[199] == 398);
    CHECK_OK(labels_align(out, &n, lab, 100, 200, 25, 320, 16000, 0.1, 0));  // 25 Hz labels
    CHECK(n == 200 && out[7] == 3 && out[199] == 99);
    CHECK_OK(labels_align(out, &n, lab, 198, 200, 50, 320, 16000, 0.1, 0));  // 2 labels short: trim
    CHECK(n == 198 && out[197] == 197);
    CHECK_ERR(labels_align(out, &n, lab, 150, 200, 50, 320, 16000, 0.1, 3), "utterance 3: 150 labels");
  }
  return test_summary("test_mask");
}
