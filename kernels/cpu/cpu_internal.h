// Shared declarations of the CPU backend's op implementations (kernels/cpu/*.c).
#ifndef HB_CPU_INTERNAL_H
#define HB_CPU_INTERNAL_H

#include "kernels/ops.h"

int cpu_conv1d(hb_ctx *ctx, float *y, const float *x, const float *w, const float *bias,
               int B, int Tin, int Cin, int Cout, int K, int stride, int pad, int groups);
int cpu_linear(hb_ctx *ctx, float *y, const float *x, const float *w, const float *bias, int N, int Cin, int Cout);
int cpu_layer_norm(hb_ctx *ctx, float *y, const float *x, const float *gamma, const float *beta, int N, int C, float eps);
int cpu_group_norm(hb_ctx *ctx, float *y, const float *x, const float *gamma, const float *beta,
                   int B, int T, int C, int G, float eps);
int cpu_gelu(hb_ctx *ctx, float *y, const float *x, size_t n);
int cpu_add(hb_ctx *ctx, float *y, const float *a, const float *b, size_t n);
int cpu_softmax(hb_ctx *ctx, float *x, int N, int D);
int cpu_attention(hb_ctx *ctx, float *out, const float *q, const float *k, const float *v,
                  const int *len, int B, int T, int H, int Dh, float scale);
int cpu_weight_norm(hb_ctx *ctx, float *w, const float *v, const float *g, int O, int In, int K);
int cpu_mask_padding(hb_ctx *ctx, float *x, const int *len, int B, int T, int C);

// Number of OpenMP threads ops may use (ctx->num_threads, or the OpenMP default).
int cpu_threads(const hb_ctx *ctx);

#endif
