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

// Training: forward variants and backwards (kernels/cpu/cpu_*_backward.c).
int cpu_conv1d_backward(hb_ctx *ctx, float *dx, float *dw, float *dbias, const float *dy, const float *x,
                        const float *w, int B, int Tin, int Cin, int Cout, int K, int stride, int pad, int groups);
int cpu_linear_backward(hb_ctx *ctx, float *dx, float *dw, float *dbias, const float *dy, const float *x,
                        const float *w, int N, int Cin, int Cout);
int cpu_layer_norm_train(hb_ctx *ctx, float *y, float *mean_rstd, const float *x, const float *gamma,
                         const float *beta, int N, int C, float eps);
int cpu_layer_norm_backward(hb_ctx *ctx, float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                            const float *mean_rstd, const float *gamma, int N, int C);
int cpu_group_norm_train(hb_ctx *ctx, float *y, float *mean_rstd, const float *x, const float *gamma,
                         const float *beta, int B, int T, int C, int G, float eps);
int cpu_group_norm_backward(hb_ctx *ctx, float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                            const float *mean_rstd, const float *gamma, int B, int T, int C, int G);
int cpu_gelu_backward(hb_ctx *ctx, float *dx, const float *dy, const float *x, size_t n);
int cpu_softmax_backward(hb_ctx *ctx, float *dx, const float *dy, const float *y, int N, int D);
int cpu_attention_train(hb_ctx *ctx, float *out, float *lse, const float *q, const float *k, const float *v,
                        const int *len, int B, int T, int H, int Dh, float scale, float dropout_p,
                        uint64_t dropout_seed);
int cpu_attention_backward(hb_ctx *ctx, float *dq, float *dk, float *dv, const float *dout, const float *q,
                           const float *k, const float *v, const float *lse, const int *len, int B, int T, int H,
                           int Dh, float scale, float dropout_p, uint64_t dropout_seed);
int cpu_weight_norm_backward(hb_ctx *ctx, float *dv, float *dg, const float *dw, const float *v, const float *g,
                             int O, int In, int K);
int cpu_axpy(hb_ctx *ctx, float *y, float a, const float *x, size_t n);
int cpu_scale(hb_ctx *ctx, float *y, const float *x, float a, size_t n);
// Training heads and losses (kernels/cpu/cpu_heads.c).
int cpu_gather_rows(hb_ctx *ctx, float *y, const float *x, const int *idx, int N, int C);
int cpu_scatter_rows(hb_ctx *ctx, float *dx, const float *dy, const int *idx, int N, int C);
int cpu_cosine_ce(hb_ctx *ctx, float *loss, int *correct, float *logits, float *dp, float *de, const float *p, int ldp,
                  const float *e, const int *target, const float *w, int N, int D, int K, float inv_temp);
int cpu_softmax_ce(hb_ctx *ctx, float *loss, int *correct, float *dz, const float *z, const int *target,
                   const float *w, int N, int K);
int cpu_seq_mean_pool(hb_ctx *ctx, float *y, const float *x, const int *len, int B, int T, int C);
int cpu_seq_mean_pool_backward(hb_ctx *ctx, float *dx, const float *dy, const int *len, int B, int T, int C);
int cpu_ctc_loss(hb_ctx *ctx, float *loss, float *dz, const float *z, const int *targets, const int *in_len,
                 const int *tgt_len, const float *w, int B, int T, int V, int S, int blank);
// Span-mask application and its backward (kernels/cpu/cpu_mask_rows.c).
int cpu_mask_rows(hb_ctx *ctx, float *x, const uint8_t *mask, const float *emb, int N, int C);
int cpu_mask_rows_backward(hb_ctx *ctx, float *dx, float *demb, const uint8_t *mask, int N, int C);

// Dropout with a Philox counter mask (kernels/cpu/cpu_dropout.c).
int cpu_dropout(hb_ctx *ctx, float *y, const float *x, size_t n, float p, uint64_t seed);
// Optimizer loops (kernels/cpu/cpu_optim.c).
int cpu_sum_squares(hb_ctx *ctx, double *ss, const float *x, const hb_span *seg, int nseg);
int cpu_adamw(hb_ctx *ctx, float *p, float *m, float *v, const float *g, const hb_span *seg, int nseg,
              const hb_adamw_args *a);
// Serial dropout of a span: y[j] = keep(offset + j) ? x[j] * keep_scale : 0 for j < n, keep(i)
// the rule of kernels/dropout_mask.h with thr = hb_dropout_threshold(p). y may alias x.
void cpu_dropout_span(float *y, const float *x, size_t n, uint64_t offset, uint64_t seed, uint64_t thr,
                      float keep_scale);

// Number of OpenMP threads ops may use (ctx->num_threads, or the OpenMP default).
int cpu_threads(const hb_ctx *ctx);

#endif
