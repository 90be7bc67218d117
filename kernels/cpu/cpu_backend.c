// The CPU backend table: host memory and the reference ops (OpenMP + OpenBLAS).
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "kernels/cpu/cpu_internal.h"

int cpu_threads(const hb_ctx *ctx) { return ctx->num_threads > 0 ? ctx->num_threads : omp_get_max_threads(); }

static void *cpu_alloc(hb_ctx *ctx, size_t bytes) {
  (void)ctx;
  void *p = hb_aligned_alloc(bytes);
  if (p) memset(p, 0, bytes);
  return p;
}
static void cpu_free(hb_ctx *ctx, void *p) { (void)ctx; hb_aligned_free(p); }
static int cpu_copy(hb_ctx *ctx, void *dst, const void *src, size_t bytes) {
  (void)ctx;
  if (bytes) memmove(dst, src, bytes);
  return 0;
}
static int cpu_zero(hb_ctx *ctx, void *p, size_t bytes) {
  (void)ctx;
  if (bytes) memset(p, 0, bytes);
  return 0;
}
static int cpu_sync(hb_ctx *ctx) { (void)ctx; return 0; }

const hb_backend hb_backend_cpu = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .copy = cpu_copy,
    .zero = cpu_zero,
    .sync = cpu_sync,
    .conv1d = cpu_conv1d,
    .linear = cpu_linear,
    .layer_norm = cpu_layer_norm,
    .group_norm = cpu_group_norm,
    .gelu = cpu_gelu,
    .add = cpu_add,
    .softmax = cpu_softmax,
    .attention = cpu_attention,
    .weight_norm = cpu_weight_norm,
    .mask_padding = cpu_mask_padding,
    .conv1d_backward = cpu_conv1d_backward,
    .linear_backward = cpu_linear_backward,
    .layer_norm_train = cpu_layer_norm_train,
    .layer_norm_backward = cpu_layer_norm_backward,
    .group_norm_train = cpu_group_norm_train,
    .group_norm_backward = cpu_group_norm_backward,
    .gelu_backward = cpu_gelu_backward,
    .softmax_backward = cpu_softmax_backward,
    .attention_train = cpu_attention_train,
    .attention_backward = cpu_attention_backward,
    .weight_norm_backward = cpu_weight_norm_backward,
    .mask_padding_backward = cpu_mask_padding,  // zeroing padded frames is its own backward
    .axpy = cpu_axpy,
    .scale = cpu_scale,
    .gather_rows = cpu_gather_rows,
    .scatter_rows = cpu_scatter_rows,
    .cosine_ce = cpu_cosine_ce,
    .softmax_ce = cpu_softmax_ce,
    .seq_mean_pool = cpu_seq_mean_pool,
    .seq_mean_pool_backward = cpu_seq_mean_pool_backward,
    .ctc_loss = cpu_ctc_loss,
    .mask_rows = cpu_mask_rows,
    .mask_rows_backward = cpu_mask_rows_backward,
    .dropout = cpu_dropout,  // its own backward (same seed)
    .sum_squares = cpu_sum_squares,
    .adamw = cpu_adamw,
};
