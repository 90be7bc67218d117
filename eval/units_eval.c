// Phone purity, cluster purity and PNMI of a (phone, unit) count table (definitions in units_eval.h).
#include "eval/units_eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

int units_count(int64_t *counts, int P, int K, const int32_t *phone, const int32_t *unit, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    if (phone[i] < 0 || phone[i] >= P) return hb_fail("frame %lld: phone id %d not in [0, %d)", (long long)i, phone[i], P);
    if (unit[i] < 0 || unit[i] >= K) return hb_fail("frame %lld: unit id %d not in [0, %d)", (long long)i, unit[i], K);
    counts[(size_t)phone[i] * (size_t)K + (size_t)unit[i]]++;
  }
  return 0;
}

int units_quality(const int64_t *counts, int P, int K, hb_unit_quality *q) {
  memset(q, 0, sizeof *q);
  if (P <= 0 || K <= 0) return hb_fail("units_quality: empty table (%d phones, %d units)", P, K);
  double *py = hb_calloc((size_t)P, sizeof(double)), *pz = hb_calloc((size_t)K, sizeof(double));
  double *zmax = hb_calloc((size_t)K, sizeof(double));
  if (!py || !pz || !zmax) {
    free(py), free(pz), free(zmax);
    return -1;
  }
  int64_t N = 0;
  for (size_t i = 0; i < (size_t)P * (size_t)K; i++) N += counts[i];
  if (N <= 0) {
    free(py), free(pz), free(zmax);
    return hb_fail("units_quality: no frames");
  }
  const double inv = 1.0 / (double)N;
  double cluster = 0;
  for (int y = 0; y < P; y++) {
    double rmax = 0;
    for (int z = 0; z < K; z++) {
      double p = (double)counts[(size_t)y * K + z] * inv;
      py[y] += p;
      pz[z] += p;
      if (p > rmax) rmax = p;
      if (p > zmax[z]) zmax[z] = p;
    }
    cluster += rmax;   // max_z p(y, z)
  }
  double phone = 0, hy = 0, hz = 0, mi = 0;
  for (int z = 0; z < K; z++) {
    phone += zmax[z];
    if (pz[z] > 0) {
      hz -= pz[z] * log(pz[z]);
      q->n_units++;
    }
  }
  for (int y = 0; y < P; y++) {
    if (py[y] <= 0) continue;
    hy -= py[y] * log(py[y]);
    q->n_phones++;
    for (int z = 0; z < K; z++) {
      double p = (double)counts[(size_t)y * K + z] * inv;
      if (p > 0) mi += p * log(p / (py[y] * pz[z]));
    }
  }
  free(py), free(pz), free(zmax);
  q->frames = N;
  q->phone_purity = phone;
  q->cluster_purity = cluster;
  q->mi = mi;
  q->h_phone = hy;
  q->h_unit = hz;
  if (!(hy > 0)) return hb_fail("units_quality: H(phone) = 0 (only one phone in %lld frames): PNMI undefined", (long long)N);
  q->pnmi = mi / hy;
  return 0;
}
