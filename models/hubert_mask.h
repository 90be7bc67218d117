// Span masking for masked prediction (torchaudio's _compute_mask_indices / fairseq's
// compute_mask_indices with static spans and overlap allowed) and fairseq's label-rate alignment.
#ifndef HB_HUBERT_MASK_H
#define HB_HUBERT_MASK_H

#include <stdint.h>

#include "common/rng.h"

// mask (B, T) host bytes, 1 = masked. lengths (B): valid frames per row (NULL: all T); frames
// t >= lengths[b] are never masked. Per row with sz valid frames:
//   num = max(min_masks, floor(prob * sz / length + u)), u ~ U[0, 1) (probabilistic rounding);
//   starts = num distinct draws from [0, sz - min_len) (min_len = length, or sz - num - 1 when
//   sz - length <= num), spans [start, start + length) clipped to sz, overlaps merged;
// then every row is cut to the batch's smallest masked count by keeping a random subset.
// Draws come from rng (Philox), so (seed, counter) reproduce a mask exactly.
int mask_compute(uint8_t *mask, int B, int T, const int *lengths, double prob, int length, int min_masks,
                 hb_rng *rng);

// The explicit-mask entry point: copies src (B, T) (any non-zero = masked) into mask as 0/1 and
// fails if a padded frame (t >= lengths[b]) is masked.
int mask_set_explicit(uint8_t *mask, const uint8_t *src, int B, int T, const int *lengths);

// Number of masked frames, overall.
long mask_count(const uint8_t *mask, int B, int T);

// Labels at another rate than the features (fairseq HubertModel.forward_targets):
//   ratio = label_rate * stride / sample_rate (stride 320 at 16 kHz: 50 Hz features);
//   if ratio * feat_T > n_labels, feat_T = (int)(n_labels / ratio) (features are trimmed);
//   out[t] = labels[(long)((float)t * (float)ratio)] for t < *out_T (float32, as torch's
//   arange(T).float() * ratio).
// Fails (naming the utterance index `utt`) if the label and feature durations differ by more than
// tol_s seconds (fairseq only warns; a mismatch that large means wrong labels) or nothing is left.
// out: at least feat_T ints.
int labels_align(int *out, int *out_T, const int *labels, int n_labels, int feat_T, double label_rate, int stride,
                 int sample_rate, double tol_s, int utt);

#endif
