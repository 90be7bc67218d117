// Inference layer norm and group norm: the training variants (kernels/cpu/cpu_norm_backward.c)
// without saving statistics, so the two paths can never drift apart.
#include "kernels/cpu/cpu_internal.h"

int cpu_layer_norm(hb_ctx *ctx, float *y, const float *x, const float *gamma, const float *beta, int N, int C, float eps) {
  return cpu_layer_norm_train(ctx, y, NULL, x, gamma, beta, N, C, eps);
}

int cpu_group_norm(hb_ctx *ctx, float *y, const float *x, const float *gamma, const float *beta, int B, int T, int C,
                   int G, float eps) {
  return cpu_group_norm_train(ctx, y, NULL, x, gamma, beta, B, T, C, G, eps);
}
