// Span masking and label alignment (see hubert_mask.h for the exact rules).
#include "models/hubert_mask.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

// First k entries of a uniform random permutation of idx[0..n) (partial Fisher-Yates).
static void partial_shuffle(int *idx, int n, int k, hb_rng *rng) {
  for (int i = 0; i < k && i < n - 1; i++) {
    int j = i + (int)rng_below(rng, (uint64_t)(n - i));
    int t = idx[i];
    idx[i] = idx[j];
    idx[j] = t;
  }
}

int mask_compute(uint8_t *mask, int B, int T, const int *lengths, double prob, int length, int min_masks,
                 hb_rng *rng) {
  if (B < 1 || T < 1) return hb_fail("mask_compute: empty batch (B %d, T %d)", B, T);
  if (!(prob >= 0 && prob <= 1)) return hb_fail("mask_compute: mask_prob %g outside [0, 1]", prob);
  if (length < 1) return hb_fail("mask_compute: mask_length %d < 1", length);
  if (min_masks < 0) return hb_fail("mask_compute: min_masks %d < 0", min_masks);
  for (int b = 0; lengths && b < B; b++)
    if (lengths[b] < 0 || lengths[b] > T) return hb_fail("mask_compute: length %d of row %d outside [0, %d]", lengths[b], b, T);
  int *idx = hb_malloc(sizeof(int) * ((size_t)T + (size_t)min_masks + 2));
  int *count = hb_malloc(sizeof(int) * (size_t)B);
  if (!idx || !count) {
    free(idx);
    free(count);
    return hb_fail_prefix("mask_compute");
  }
  memset(mask, 0, (size_t)B * T);
  int min_count = T + 1;
  for (int b = 0; b < B; b++) {
    const int sz = lengths ? lengths[b] : T;
    int num = (int)floor(prob * sz / (double)length + rng_uniform_double(rng));
    if (num < min_masks) num = min_masks;
    int min_len = length;
    if (sz - min_len <= num) min_len = sz - num - 1;
    const int n = sz - min_len;  // > num >= 0 in the clipped case, else > num too
    for (int i = 0; i < n; i++) idx[i] = i;
    const int k = num < n ? num : n;
    partial_shuffle(idx, n, k, rng);
    uint8_t *row = mask + (size_t)b * T;
    for (int j = 0; j < k; j++)
      for (int o = 0; o < length && idx[j] + o < sz; o++) row[idx[j] + o] = 1;
    int c = 0;
    for (int t = 0; t < T; t++) c += row[t];
    count[b] = c;
    if (c < min_count) min_count = c;
  }
  for (int b = 0; b < B; b++) {
    if (count[b] <= min_count) continue;
    uint8_t *row = mask + (size_t)b * T;
    int c = 0;
    for (int t = 0; t < T; t++)
      if (row[t]) idx[c++] = t;
    partial_shuffle(idx, c, min_count, rng);
    memset(row, 0, (size_t)T);
    for (int j = 0; j < min_count; j++) row[idx[j]] = 1;
  }
  free(idx);
  free(count);
  return 0;
}

int mask_set_explicit(uint8_t *mask, const uint8_t *src, int B, int T, const int *lengths) {
  for (int b = 0; b < B; b++) {
    const int sz = lengths ? lengths[b] : T;
    if (sz < 0 || sz > T) return hb_fail("explicit mask: length %d of row %d outside [0, %d]", sz, b, T);
    for (int t = 0; t < T; t++) {
      const uint8_t v = src[(size_t)b * T + t] != 0;
      if (v && t >= sz) return hb_fail("explicit mask: row %d masks padded frame %d (valid frames: %d)", b, t, sz);
      mask[(size_t)b * T + t] = v;
    }
  }
  return 0;
}

long mask_count(const uint8_t *mask, int B, int T) {
  long c = 0;
  for (size_t i = 0; i < (size_t)B * T; i++) c += mask[i] != 0;
  return c;
}

int labels_align(int *out, int *out_T, const int *labels, int n_labels, int feat_T, double label_rate, int stride,
                 int sample_rate, double tol_s, int utt) {
  if (!(label_rate > 0) || stride < 1 || sample_rate < 1)
    return hb_fail("labels_align: utterance %d: bad rates (label rate %g, stride %d, sample rate %d)", utt, label_rate,
                   stride, sample_rate);
  const double ratio = label_rate * stride / sample_rate;
  const double dl = n_labels / label_rate, df = (double)feat_T * stride / sample_rate;
  if (fabs(dl - df) > tol_s)
    return hb_fail("utterance %d: %d labels at %g Hz (%.3f s) but %d feature frames (%.3f s): durations differ by "
                   "more than %g s",
                   utt, n_labels, label_rate, dl, feat_T, df, tol_s);
  int T = feat_T;
  if (ratio * T > n_labels) T = (int)(n_labels / ratio);
  if (T < 1) return hb_fail("utterance %d: no frame left after aligning %d labels to %d frames", utt, n_labels, feat_T);
  const float r = (float)ratio;
  for (int t = 0; t < T; t++) {
    long i = (long)((float)t * r);
    if (i >= n_labels) return hb_fail("utterance %d: label index %ld of frame %d past %d labels", utt, i, t, n_labels);
    out[t] = labels[i];
  }
  *out_T = T;
  return 0;
}
