// The optimizer's element loops on the CPU (train/optim.c calls them through the backend table):
// sum of squares over spans and the fused AdamW update. The reduction order (per span, OpenMP
// reduction in double, spans added in order) is the reference the tests pin bit for bit.
#include <math.h>

#include "kernels/cpu/cpu_internal.h"

int cpu_sum_squares(hb_ctx *ctx, double *ss_out, const float *x, const hb_span *seg, int nseg) {
  (void)ctx;
  double ss = 0;
  for (int s = 0; s < nseg; s++) {
    const float *g = x + seg[s].offset;
    long n = (long)seg[s].numel;
    double part = 0;
#pragma omp parallel for reduction(+ : part) schedule(static) if (n > 65536)
    for (long i = 0; i < n; i++) part += (double)g[i] * (double)g[i];
    ss += part;
  }
  *ss_out = ss;
  return 0;
}

int cpu_adamw(hb_ctx *ctx, float *param, float *mom1, float *mom2, const float *grad, const hb_span *seg, int nseg,
              const hb_adamw_args *a) {
  (void)ctx;
  const float gs = a->grad_scale, fb1 = a->beta1, fb2 = a->beta2, f1b1 = a->one_m_beta1, f1b2 = a->one_m_beta2;
  const float step_size = a->step_size, inv_sqrt_bc2 = a->inv_sqrt_bc2, eps = a->eps;
  for (int s = 0; s < nseg; s++) {
    const size_t off = seg[s].offset;
    const long n = (long)seg[s].numel;
    float *p = param + off, *m = mom1 + off, *v = mom2 + off;
    const float *g = grad + off;
    const float decay = seg[s].decay ? a->decay : 1.0f;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (long i = 0; i < n; i++) {
      float gi = g[i] * gs;
      float mi = fb1 * m[i] + f1b1 * gi;
      float vi = fb2 * v[i] + f1b2 * gi * gi;
      m[i] = mi;
      v[i] = vi;
      p[i] = p[i] * decay - step_size * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
    }
  }
  return 0;
}
