// Unit-quality metrics of frame labels z against frame phone labels y (HuBERT paper, Hsu et al.
// 2021, "label quality"; fairseq examples/hubert/measure_teacher_quality.py), from the joint
// distribution p(y, z) = count(y, z) / N over N aligned frames:
//   phone purity   = E_z[max_y p(y|z)] = sum_z max_y p(y, z)
//   cluster purity = E_y[max_z p(z|y)] = sum_y max_z p(y, z)
//   PNMI           = I(y; z) / H(y),  I = sum p(y,z) log(p(y,z) / (p(y) p(z))),  H(y) = -sum p(y) log p(y)
// Natural logs (the ratio does not depend on the base); exact (no epsilon inside the logs, unlike
// fairseq's 1e-8, which shifts PNMI by < 1e-6). Sums in double.
#ifndef HB_EVAL_UNITS_EVAL_H
#define HB_EVAL_UNITS_EVAL_H

#include <stdint.h>

typedef struct {
  int64_t frames;        // N
  int n_phones;          // phones seen (p(y) > 0)
  int n_units;           // units seen (p(z) > 0)
  double phone_purity, cluster_purity, pnmi;
  double mi, h_phone, h_unit;   // nats
} hb_unit_quality;

// Counts (P, K) int64, zeroed by the caller, accumulated over frames: counts[y * K + z]++.
// Ids outside [0, P) / [0, K) are an error naming the frame.
int units_count(int64_t *counts, int P, int K, const int32_t *phone, const int32_t *unit, int64_t n);
// Metrics of a (P, K) count table. Error when it is empty or H(y) = 0 (one phone only).
int units_quality(const int64_t *counts, int P, int K, hb_unit_quality *q);

#endif
