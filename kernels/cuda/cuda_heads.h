// CUDA training heads, losses, dropout and optimizer ops (kernels/cuda/cuda_heads.cu,
// cuda_ctc.cu, cuda_dropout.cu, cuda_optim.cu); same contracts as kernels/ops.h.
#ifndef HB_CUDA_HEADS_H
#define HB_CUDA_HEADS_H

#include "kernels/cuda/cuda_check.h"

int cuda_gather_rows(hb_ctx *ctx, float *y, const float *x, const int *idx, int N, int C);
int cuda_scatter_rows(hb_ctx *ctx, float *dx, const float *dy, const int *idx, int N, int C);
int cuda_cosine_ce(hb_ctx *ctx, float *loss, int *correct, float *logits, float *dp, float *de, const float *p,
                   int ldp, const float *e, const int *target, const float *w, int N, int D, int K, float inv_temp);
int cuda_softmax_ce(hb_ctx *ctx, float *loss, int *correct, float *dz, const float *z, const int *target,
                    const float *w, int N, int K);
int cuda_seq_mean_pool(hb_ctx *ctx, float *y, const float *x, const int *len, int B, int T, int C);
int cuda_seq_mean_pool_backward(hb_ctx *ctx, float *dx, const float *dy, const int *len, int B, int T, int C);
int cuda_ctc_loss(hb_ctx *ctx, float *loss, float *dz, const float *z, const int *targets, const int *in_len,
                  const int *tgt_len, const float *w, int B, int T, int V, int S, int blank);
int cuda_mask_rows(hb_ctx *ctx, float *x, const uint8_t *mask, const float *emb, int N, int C);  // cuda_mask_rows.cu
int cuda_mask_rows_backward(hb_ctx *ctx, float *dx, float *demb, const uint8_t *mask, int N, int C);
int cuda_dropout(hb_ctx *ctx, float *y, const float *x, size_t n, float p, uint64_t seed);
int cuda_sum_squares(hb_ctx *ctx, double *ss, const float *x, const hb_span *seg, int nseg);
int cuda_adamw(hb_ctx *ctx, float *p, float *m, float *v, const float *g, const hb_span *seg, int nseg,
               const hb_adamw_args *a);

// Device-side argument checks: a kernel that finds a bad index/length writes a code into an int
// flag (first failure wins: atomicCAS from 0); the op downloads it once at its end and turns a
// non-zero code into hb_fail. code = kind << 28 | position (kind 1..15, position < 2^28).
static __device__ inline void cuda_flag_set(int *flag, int kind, long pos) {
  atomicCAS(flag, 0, (kind << 28) | (int)(pos & 0x0fffffff));
}
// Ops take their flag ints from the front of their workspace and zero them first.
// Downloads the flag (one stream sync) into *code.
int cuda_flag_read(hb_ctx *ctx, const int *flag, int *code);

#endif
