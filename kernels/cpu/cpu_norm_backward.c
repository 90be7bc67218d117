// Layer norm and group norm for training: forwards that save {mean, rstd}, and their backwards.
//
// With xh = (x - mean) * rstd, y = xh * gamma + beta and g = dy * gamma, over the n values that
// share one mean/rstd (a row for layer norm, a (b, group) for group norm):
//   dx = rstd * (g - mean(g) - xh * mean(g * xh)),   dgamma += sum dy * xh,   dbeta += sum dy.
// Sums are accumulated in double; xh is recomputed from x and the saved statistics exactly as the
// forward computed it, so the backward sees the forward's own rounding.
#include <math.h>
#include <omp.h>
#include <string.h>

#include "common/error.h"
#include "kernels/cpu/cpu_internal.h"

int cpu_layer_norm_train(hb_ctx *ctx, float *y, float *mean_rstd, const float *x, const float *gamma,
                         const float *beta, int N, int C, float eps) {
  (void)ctx;
  if (N < 0 || C < 1) return hb_fail("layer_norm_train: bad shape N=%d C=%d", N, C);
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float *xr = x + (size_t)n * C;
    float *yr = y + (size_t)n * C;
    double s = 0;
    for (int c = 0; c < C; c++) s += xr[c];
    const double mean = s / C;
    double v = 0;
    for (int c = 0; c < C; c++) {
      double d = xr[c] - mean;
      v += d * d;
    }
    const float rstd = (float)(1.0 / sqrt(v / C + eps));
    const float m = (float)mean;
    if (mean_rstd) mean_rstd[2 * (size_t)n] = m, mean_rstd[2 * (size_t)n + 1] = rstd;
    for (int c = 0; c < C; c++) {
      float t = (xr[c] - m) * rstd;
      yr[c] = gamma ? t * gamma[c] + (beta ? beta[c] : 0.0f) : t;
    }
  }
  return 0;
}

int cpu_layer_norm_backward(hb_ctx *ctx, float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                            const float *mean_rstd, const float *gamma, int N, int C) {
  if (N < 0 || C < 1) return hb_fail("layer_norm_backward: bad shape N=%d C=%d", N, C);
  const int nthr = cpu_threads(ctx);
  const int want_param = (dgamma && gamma) || dbeta;
  double *part = NULL;  // per-thread partial (dgamma, dbeta): (nthr, 2, C)
  if (want_param) {
    part = ops_workspace(ctx, sizeof(double) * 2 * (size_t)C * nthr);
    if (!part) return -1;
    memset(part, 0, sizeof(double) * 2 * (size_t)C * nthr);
  }
#pragma omp parallel num_threads(nthr)
  {
    double *pg = part ? part + 2 * (size_t)C * omp_get_thread_num() : NULL, *pb = pg ? pg + C : NULL;
#pragma omp for schedule(static)
    for (int n = 0; n < N; n++) {
      const float *xr = x + (size_t)n * C, *dyr = dy + (size_t)n * C;
      const float m = mean_rstd[2 * (size_t)n], rstd = mean_rstd[2 * (size_t)n + 1];
      double sg = 0, sgx = 0;
      for (int c = 0; c < C; c++) {
        const float xh = (xr[c] - m) * rstd;
        const float g = gamma ? dyr[c] * gamma[c] : dyr[c];
        sg += g;
        sgx += (double)g * xh;
        if (pg) pg[c] += (double)dyr[c] * xh, pb[c] += dyr[c];
      }
      if (dx) {
        const float mg = (float)(sg / C), mgx = (float)(sgx / C);
        float *dxr = dx + (size_t)n * C;  // may alias dyr: each element read before it is written
        for (int c = 0; c < C; c++) {
          const float xh = (xr[c] - m) * rstd;
          const float g = gamma ? dyr[c] * gamma[c] : dyr[c];
          dxr[c] = rstd * (g - mg - xh * mgx);
        }
      }
    }
#pragma omp for schedule(static)
    for (int c = 0; c < (want_param ? C : 0); c++) {
      double sg = 0, sb = 0;
      for (int t = 0; t < omp_get_num_threads(); t++) sg += part[2 * (size_t)C * t + c], sb += part[2 * (size_t)C * t + C + c];
      if (dgamma && gamma) dgamma[c] += (float)sg;
      if (dbeta) dbeta[c] += (float)sb;
    }
  }
  return 0;
}

// Per-channel sums over the T frames of xb (T, C), per thread over a slice of frames, then
// reduced: out[c] = sum_t f(xb[t, c]) with f = identity (center == NULL) or (x - center[c/Cg])^2.
// part: (nthr, C) doubles.
static void chan_sums(const float *xb, int T, int C, int Cg, const double *center, double *part, int nthr,
                      double *out) {
#pragma omp parallel num_threads(nthr)
  {
    const int th = omp_get_thread_num(), nt = omp_get_num_threads();
    double *acc = part + (size_t)th * C;
    for (int c = 0; c < C; c++) acc[c] = 0;
    const int t0 = (int)((long)T * th / nt), t1 = (int)((long)T * (th + 1) / nt);
    for (int t = t0; t < t1; t++) {
      const float *xr = xb + (size_t)t * C;
      if (center)
        for (int c = 0; c < C; c++) {
          const double d = xr[c] - center[c / Cg];
          acc[c] += d * d;
        }
      else
        for (int c = 0; c < C; c++) acc[c] += xr[c];
    }
#pragma omp barrier
#pragma omp for schedule(static)
    for (int c = 0; c < C; c++) {
      double s = 0;
      for (int k = 0; k < nt; k++) s += part[(size_t)k * C + c];
      out[c] = s;
    }
  }
}

int cpu_group_norm_train(hb_ctx *ctx, float *y, float *mean_rstd, const float *x, const float *gamma,
                         const float *beta, int B, int T, int C, int G, float eps) {
  if (G < 1 || C % G) return hb_fail("group_norm_train: %d channels not divisible by %d groups", C, G);
  if (B < 0 || T < 1) return hb_fail("group_norm_train: bad shape B=%d T=%d", B, T);
  const int Cg = C / G, nthr = cpu_threads(ctx);
  double *ws = ops_workspace(ctx, sizeof(double) * ((size_t)nthr * C + C + 2 * (size_t)G));
  if (!ws) return -1;
  double *part = ws, *csum = ws + (size_t)nthr * C, *gmean = csum + C, *grstd = gmean + G;
  const double n = (double)T * Cg;
  for (int b = 0; b < B; b++) {
    const float *xb = x + (size_t)b * T * C;
    float *yb = y + (size_t)b * T * C;
    chan_sums(xb, T, C, Cg, NULL, part, nthr, csum);
    for (int g = 0; g < G; g++) {
      double s = 0;
      for (int c = g * Cg; c < (g + 1) * Cg; c++) s += csum[c];
      gmean[g] = s / n;
    }
    chan_sums(xb, T, C, Cg, gmean, part, nthr, csum);
    for (int g = 0; g < G; g++) {
      double s = 0;
      for (int c = g * Cg; c < (g + 1) * Cg; c++) s += csum[c];
      grstd[g] = 1.0 / sqrt(s / n + eps);
      if (mean_rstd) mean_rstd[((size_t)b * G + g) * 2] = (float)gmean[g], mean_rstd[((size_t)b * G + g) * 2 + 1] = (float)grstd[g];
    }
#pragma omp parallel for schedule(static) num_threads(nthr)
    for (int t = 0; t < T; t++) {
      const float *xr = xb + (size_t)t * C;
      float *yr = yb + (size_t)t * C;
      for (int c = 0; c < C; c++) {
        const int g = c / Cg;
        const float sc = (float)grstd[g] * (gamma ? gamma[c] : 1.0f);
        yr[c] = (xr[c] - (float)gmean[g]) * sc + (beta ? beta[c] : 0.0f);
      }
    }
  }
  return 0;
}

// Per (b): pass 1 sums A[c] = sum_t dy and X[c] = sum_t dy * xh per channel (per-thread partials
// over frame slices, reduced); the group sums of g and g*xh are sum_{c in group} gamma_c A[c]
// and gamma_c X[c]. Pass 2 writes dx row by row.
int cpu_group_norm_backward(hb_ctx *ctx, float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                            const float *mean_rstd, const float *gamma, int B, int T, int C, int G) {
  if (G < 1 || C % G) return hb_fail("group_norm_backward: %d channels not divisible by %d groups", C, G);
  if (B < 0 || T < 1) return hb_fail("group_norm_backward: bad shape B=%d T=%d", B, T);
  const int Cg = C / G, nthr = cpu_threads(ctx);
  double *ws = ops_workspace(ctx, sizeof(double) * (2 * (size_t)nthr * C + 2 * (size_t)C + 2 * (size_t)G));
  if (!ws) return -1;
  double *part = ws, *sA = part + 2 * (size_t)nthr * C, *sX = sA + C, *mg = sX + C, *mgx = mg + G;
  const double n = (double)T * Cg;
  for (int b = 0; b < B; b++) {
    const float *xb = x + (size_t)b * T * C, *dyb = dy + (size_t)b * T * C;
    const float *st = mean_rstd + (size_t)b * G * 2;
#pragma omp parallel num_threads(nthr)
    {
      const int th = omp_get_thread_num(), nt = omp_get_num_threads();
      double *pa = part + 2 * (size_t)th * C, *px = pa + C;
      for (int c = 0; c < C; c++) pa[c] = px[c] = 0;
      const int t0 = (int)((long)T * th / nt), t1 = (int)((long)T * (th + 1) / nt);
      for (int t = t0; t < t1; t++) {
        const float *xr = xb + (size_t)t * C, *dyr = dyb + (size_t)t * C;
        for (int c = 0; c < C; c++) {
          const int g = c / Cg;
          const float xh = (xr[c] - st[2 * g]) * st[2 * g + 1];
          pa[c] += dyr[c];
          px[c] += (double)dyr[c] * xh;
        }
      }
#pragma omp barrier
#pragma omp for schedule(static)
      for (int c = 0; c < C; c++) {
        double a = 0, s = 0;
        for (int k = 0; k < nt; k++) a += part[2 * (size_t)k * C + c], s += part[2 * (size_t)k * C + C + c];
        sA[c] = a, sX[c] = s;
      }
    }
    for (int c = 0; c < C; c++) {
      if (dgamma && gamma) dgamma[c] += (float)sX[c];
      if (dbeta) dbeta[c] += (float)sA[c];
    }
    if (!dx) continue;
    for (int g = 0; g < G; g++) {
      double a = 0, s = 0;
      for (int c = g * Cg; c < (g + 1) * Cg; c++) {
        const double gm = gamma ? gamma[c] : 1.0;
        a += gm * sA[c], s += gm * sX[c];
      }
      mg[g] = a / n, mgx[g] = s / n;
    }
    float *dxb = dx + (size_t)b * T * C;  // may alias dyb: each element read before it is written
#pragma omp parallel for schedule(static) num_threads(nthr)
    for (int t = 0; t < T; t++) {
      const float *xr = xb + (size_t)t * C, *dyr = dyb + (size_t)t * C;
      float *dxr = dxb + (size_t)t * C;
      for (int c = 0; c < C; c++) {
        const int g = c / Cg;
        const float rstd = st[2 * g + 1], xh = (xr[c] - st[2 * g]) * rstd;
        const float gg = gamma ? dyr[c] * gamma[c] : dyr[c];
        dxr[c] = rstd * (gg - (float)mg[g] - xh * (float)mgx[g]);
      }
    }
  }
  return 0;
}
