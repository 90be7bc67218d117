// Backend selection and the shared workspace.
#include "kernels/ops.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"

#ifdef HUBERT_HAVE_CUDA
int cuda_ctx_init(hb_ctx *ctx);   // kernels/cuda/: fails cleanly when no GPU is present
void cuda_ctx_free(hb_ctx *ctx);
#endif

typedef void (*hb_any_fn)(void);

// Walks the backend table's function pointers in [from, to) (byte offsets; all members there are
// function pointers). Returns the index of the first NULL one, or -1.
static int first_null_member(const hb_backend *be, size_t from, size_t to) {
  for (size_t off = from, i = 0; off + sizeof(hb_any_fn) <= to; off += sizeof(hb_any_fn), i++) {
    hb_any_fn f;
    memcpy(&f, (const char *)be + off, sizeof f);
    if (!f) return (int)i;
  }
  return -1;
}

// The memory functions and forward ops, alloc .. mask_padding, in table order.
static const char *const forward_members[] = {"alloc", "free", "upload", "download", "copy", "zero", "sync",
                                              "conv1d", "linear", "layer_norm", "group_norm", "gelu", "add",
                                              "softmax", "attention", "weight_norm", "mask_padding"};
_Static_assert(offsetof(hb_backend, mask_padding) - offsetof(hb_backend, alloc) ==
                   (sizeof forward_members / sizeof forward_members[0] - 1) * sizeof(hb_any_fn),
               "forward_members must list every member from alloc to mask_padding");

static int check_forward(hb_ctx *ctx) {
  int i = first_null_member(ctx->be, offsetof(hb_backend, alloc), offsetof(hb_backend, mask_padding) + sizeof(hb_any_fn));
  if (i < 0) return 0;
  return hb_fail("backend '%s' does not implement '%s' (NULL in its table)", ctx->be->name, forward_members[i]);
}

int ops_check_backward(const hb_ctx *ctx) {
  if (!ctx->be) return hb_fail("ops_check_backward: context has no backend");
  const size_t from = offsetof(hb_backend, mask_padding) + sizeof(hb_any_fn);
  int i = first_null_member(ctx->be, from, sizeof(hb_backend));
  if (i < 0) return 0;
  return hb_fail("backend '%s' has no backward ops: member #%d after mask_padding in hb_backend (kernels/ops.h) is NULL",
                 ctx->be->name, i + 1);
}

// ---- HUBERT_PROFILE=1: wall time per op kind -------------------------------------------------
// ops_ctx_init() swaps the backend table for a copy whose ops time the real ones (the backend's
// sync() before reading the clock, so asynchronous backends are timed too). Totals are
// process-wide (a debugging tool, one context at a time) and printed to stderr by ops_ctx_free(),
// slowest first; conv1d / linear (and their backwards) are split by shape. Every op member after
// sync must get a wrapper here: tests/unit/test_profile.c fails on one that does not.
#define PROF_MAX 96
typedef struct {
  char key[80];
  double sec;
  long calls;
} prof_entry;
static prof_entry prof_tab[PROF_MAX];
static int prof_n;
static const hb_backend *prof_inner;
static hb_backend prof_be;

static double prof_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void prof_record(const char *key, double sec) {
  int i = 0;
  while (i < prof_n && strcmp(prof_tab[i].key, key)) i++;
  if (i == prof_n) {
    if (prof_n == PROF_MAX) return;
    snprintf(prof_tab[prof_n++].key, sizeof prof_tab[0].key, "%s", key);
  }
  prof_tab[i].sec += sec;
  prof_tab[i].calls++;
}

#define PROF_BODY(name, args, keyexpr)      \
  prof_inner->sync(ctx);                    \
  double t0 = prof_now();                   \
  int rc = prof_inner->name args;           \
  prof_inner->sync(ctx);                    \
  double dt = prof_now() - t0;              \
  keyexpr;                                  \
  return rc;
#define PROF_OP(name, params, args) \
  static int prof_##name params { PROF_BODY(name, args, prof_record(#name, dt)) }
#define PROF_OP_SHAPE(name, params, args, fmtargs)                       \
  static int prof_##name params {                                        \
    PROF_BODY(name, args, char key[80]; int len = snprintf(key, sizeof key, "%s ", #name); \
              snprintf(key + len, sizeof key - (size_t)len, PROF_UNPAREN fmtargs); prof_record(key, dt)) \
  }
#define PROF_UNPAREN(...) __VA_ARGS__
PROF_OP(copy, (hb_ctx *ctx, void *dst, const void *src, size_t bytes), (ctx, dst, src, bytes))
PROF_OP(zero, (hb_ctx *ctx, void *p, size_t bytes), (ctx, p, bytes))
PROF_OP_SHAPE(conv1d, (hb_ctx *ctx, float *y, const float *x, const float *w, const float *bias, int B, int Tin, int Cin, int Cout, int K, int stride, int pad, int groups), (ctx, y, x, w, bias, B, Tin, Cin, Cout, K, stride, pad, groups), ("%d->%d K=%d s=%d g=%d", Cin, Cout, K, stride, groups))
PROF_OP_SHAPE(linear, (hb_ctx *ctx, float *y, const float *x, const float *w, const float *bias, int N, int Cin, int Cout), (ctx, y, x, w, bias, N, Cin, Cout), ("%d->%d", Cin, Cout))
PROF_OP(layer_norm, (hb_ctx *ctx, float *y, const float *x, const float *gamma, const float *beta, int N, int C, float eps), (ctx, y, x, gamma, beta, N, C, eps))
PROF_OP(group_norm, (hb_ctx *ctx, float *y, const float *x, const float *gamma, const float *beta, int B, int T, int C, int G, float eps), (ctx, y, x, gamma, beta, B, T, C, G, eps))
PROF_OP(gelu, (hb_ctx *ctx, float *y, const float *x, size_t n), (ctx, y, x, n))
PROF_OP(add, (hb_ctx *ctx, float *y, const float *a, const float *b, size_t n), (ctx, y, a, b, n))
PROF_OP(softmax, (hb_ctx *ctx, float *x, int N, int D), (ctx, x, N, D))
PROF_OP(attention, (hb_ctx *ctx, float *out, const float *q, const float *k, const float *v, const int *len, int B, int T, int H, int Dh, float scale), (ctx, out, q, k, v, len, B, T, H, Dh, scale))
PROF_OP(weight_norm, (hb_ctx *ctx, float *w, const float *v, const float *g, int O, int In, int K), (ctx, w, v, g, O, In, K))
PROF_OP(mask_padding, (hb_ctx *ctx, float *x, const int *len, int B, int T, int C), (ctx, x, len, B, T, C))
PROF_OP_SHAPE(conv1d_backward, (hb_ctx *ctx, float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w, int B, int Tin, int Cin, int Cout, int K, int stride, int pad, int groups), (ctx, dx, dw, dbias, dy, x, w, B, Tin, Cin, Cout, K, stride, pad, groups), ("%d->%d K=%d s=%d g=%d", Cin, Cout, K, stride, groups))
PROF_OP_SHAPE(linear_backward, (hb_ctx *ctx, float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w, int N, int Cin, int Cout), (ctx, dx, dw, dbias, dy, x, w, N, Cin, Cout), ("%d->%d", Cin, Cout))
PROF_OP(layer_norm_train, (hb_ctx *ctx, float *y, float *mean_rstd, const float *x, const float *gamma, const float *beta, int N, int C, float eps), (ctx, y, mean_rstd, x, gamma, beta, N, C, eps))
PROF_OP(layer_norm_backward, (hb_ctx *ctx, float *dx, float *dgamma, float *dbeta, const float *dy, const float *x, const float *mean_rstd, const float *gamma, int N, int C), (ctx, dx, dgamma, dbeta, dy, x, mean_rstd, gamma, N, C))
PROF_OP(group_norm_train, (hb_ctx *ctx, float *y, float *mean_rstd, const float *x, const float *gamma, const float *beta, int B, int T, int C, int G, float eps), (ctx, y, mean_rstd, x, gamma, beta, B, T, C, G, eps))
PROF_OP(group_norm_backward, (hb_ctx *ctx, float *dx, float *dgamma, float *dbeta, const float *dy, const float *x, const float *mean_rstd, const float *gamma, int B, int T, int C, int G), (ctx, dx, dgamma, dbeta, dy, x, mean_rstd, gamma, B, T, C, G))
PROF_OP(gelu_backward, (hb_ctx *ctx, float *dx, const float *dy, const float *x, size_t n), (ctx, dx, dy, x, n))
PROF_OP(softmax_backward, (hb_ctx *ctx, float *dx, const float *dy, const float *y, int N, int D), (ctx, dx, dy, y, N, D))
PROF_OP(attention_train, (hb_ctx *ctx, float *out, float *lse, const float *q, const float *k, const float *v, const int *len, int B, int T, int H, int Dh, float scale, float dropout_p, uint64_t dropout_seed), (ctx, out, lse, q, k, v, len, B, T, H, Dh, scale, dropout_p, dropout_seed))
PROF_OP(attention_backward, (hb_ctx *ctx, float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k, const float *v, const float *lse, const int *len, int B, int T, int H, int Dh, float scale, float dropout_p, uint64_t dropout_seed), (ctx, dq, dk, dv, dout, q, k, v, lse, len, B, T, H, Dh, scale, dropout_p, dropout_seed))
PROF_OP(weight_norm_backward, (hb_ctx *ctx, float *dv, float *dg, const float *dw, const float *v, const float *g, int O, int In, int K), (ctx, dv, dg, dw, v, g, O, In, K))
PROF_OP(mask_padding_backward, (hb_ctx *ctx, float *dx, const int *len, int B, int T, int C), (ctx, dx, len, B, T, C))
PROF_OP(axpy, (hb_ctx *ctx, float *y, float a, const float *x, size_t n), (ctx, y, a, x, n))
PROF_OP(scale, (hb_ctx *ctx, float *y, const float *x, float a, size_t n), (ctx, y, x, a, n))
PROF_OP(gather_rows, (hb_ctx *ctx, float *y, const float *x, const int *idx, int N, int C), (ctx, y, x, idx, N, C))
PROF_OP(scatter_rows, (hb_ctx *ctx, float *dx, const float *dy, const int *idx, int N, int C), (ctx, dx, dy, idx, N, C))
PROF_OP(cosine_ce, (hb_ctx *ctx, float *loss, int *correct, float *logits, float *dp, float *de, const float *p, int ldp, const float *e, const int *target, const float *w, int N, int D, int K, float inv_temp), (ctx, loss, correct, logits, dp, de, p, ldp, e, target, w, N, D, K, inv_temp))
PROF_OP(softmax_ce, (hb_ctx *ctx, float *loss, int *correct, float *dz, const float *z, const int *target, const float *w, int N, int K), (ctx, loss, correct, dz, z, target, w, N, K))
PROF_OP(seq_mean_pool, (hb_ctx *ctx, float *y, const float *x, const int *len, int B, int T, int C), (ctx, y, x, len, B, T, C))
PROF_OP(seq_mean_pool_backward, (hb_ctx *ctx, float *dx, const float *dy, const int *len, int B, int T, int C), (ctx, dx, dy, len, B, T, C))
PROF_OP(ctc_loss, (hb_ctx *ctx, float *loss, float *dz, const float *z, const int *targets, const int *in_len, const int *tgt_len, const float *w, int B, int T, int V, int S, int blank), (ctx, loss, dz, z, targets, in_len, tgt_len, w, B, T, V, S, blank))
PROF_OP(dropout, (hb_ctx *ctx, float *y, const float *x, size_t n, float p, uint64_t seed), (ctx, y, x, n, p, seed))
PROF_OP(mask_rows, (hb_ctx *ctx, float *x, const uint8_t *mask, const float *emb, int N, int C), (ctx, x, mask, emb, N, C))
PROF_OP(mask_rows_backward, (hb_ctx *ctx, float *dx, float *demb, const uint8_t *mask, int N, int C), (ctx, dx, demb, mask, N, C))
PROF_OP(sum_squares, (hb_ctx *ctx, double *ss, const float *x, const hb_span *seg, int nseg), (ctx, ss, x, seg, nseg))
PROF_OP(adamw, (hb_ctx *ctx, float *p, float *m, float *v, const float *g, const hb_span *seg, int nseg, const hb_adamw_args *a), (ctx, p, m, v, g, seg, nseg, a))

static void prof_install(hb_ctx *ctx) {
  prof_inner = ctx->be;
  prof_be = *ctx->be;
  if (prof_be.copy) prof_be.copy = prof_copy;
  if (prof_be.zero) prof_be.zero = prof_zero;
  if (prof_be.conv1d) prof_be.conv1d = prof_conv1d;
  if (prof_be.linear) prof_be.linear = prof_linear;
  if (prof_be.layer_norm) prof_be.layer_norm = prof_layer_norm;
  if (prof_be.group_norm) prof_be.group_norm = prof_group_norm;
  if (prof_be.gelu) prof_be.gelu = prof_gelu;
  if (prof_be.add) prof_be.add = prof_add;
  if (prof_be.softmax) prof_be.softmax = prof_softmax;
  if (prof_be.attention) prof_be.attention = prof_attention;
  if (prof_be.weight_norm) prof_be.weight_norm = prof_weight_norm;
  if (prof_be.mask_padding) prof_be.mask_padding = prof_mask_padding;
  if (prof_be.conv1d_backward) prof_be.conv1d_backward = prof_conv1d_backward;
  if (prof_be.linear_backward) prof_be.linear_backward = prof_linear_backward;
  if (prof_be.layer_norm_train) prof_be.layer_norm_train = prof_layer_norm_train;
  if (prof_be.layer_norm_backward) prof_be.layer_norm_backward = prof_layer_norm_backward;
  if (prof_be.group_norm_train) prof_be.group_norm_train = prof_group_norm_train;
  if (prof_be.group_norm_backward) prof_be.group_norm_backward = prof_group_norm_backward;
  if (prof_be.gelu_backward) prof_be.gelu_backward = prof_gelu_backward;
  if (prof_be.softmax_backward) prof_be.softmax_backward = prof_softmax_backward;
  if (prof_be.attention_train) prof_be.attention_train = prof_attention_train;
  if (prof_be.attention_backward) prof_be.attention_backward = prof_attention_backward;
  if (prof_be.weight_norm_backward) prof_be.weight_norm_backward = prof_weight_norm_backward;
  if (prof_be.mask_padding_backward) prof_be.mask_padding_backward = prof_mask_padding_backward;
  if (prof_be.axpy) prof_be.axpy = prof_axpy;
  if (prof_be.scale) prof_be.scale = prof_scale;
  if (prof_be.gather_rows) prof_be.gather_rows = prof_gather_rows;
  if (prof_be.scatter_rows) prof_be.scatter_rows = prof_scatter_rows;
  if (prof_be.cosine_ce) prof_be.cosine_ce = prof_cosine_ce;
  if (prof_be.softmax_ce) prof_be.softmax_ce = prof_softmax_ce;
  if (prof_be.seq_mean_pool) prof_be.seq_mean_pool = prof_seq_mean_pool;
  if (prof_be.seq_mean_pool_backward) prof_be.seq_mean_pool_backward = prof_seq_mean_pool_backward;
  if (prof_be.ctc_loss) prof_be.ctc_loss = prof_ctc_loss;
  if (prof_be.dropout) prof_be.dropout = prof_dropout;
  if (prof_be.mask_rows) prof_be.mask_rows = prof_mask_rows;
  if (prof_be.mask_rows_backward) prof_be.mask_rows_backward = prof_mask_rows_backward;
  if (prof_be.sum_squares) prof_be.sum_squares = prof_sum_squares;
  if (prof_be.adamw) prof_be.adamw = prof_adamw;
  ctx->be = &prof_be;
}

static int prof_cmp(const void *a, const void *b) {
  double x = ((const prof_entry *)a)->sec, y = ((const prof_entry *)b)->sec;
  return (x < y) - (x > y);
}

static void prof_report(void) {
  double total = 0;
  for (int i = 0; i < prof_n; i++) total += prof_tab[i].sec;
  qsort(prof_tab, (size_t)prof_n, sizeof prof_tab[0], prof_cmp);
  fprintf(stderr, "HUBERT_PROFILE: %.3f s in ops (%s backend)\n", total, prof_inner->name);
  for (int i = 0; i < prof_n; i++)
    fprintf(stderr, "  %9.3f s %5.1f%% %7ld calls  %s\n", prof_tab[i].sec, total > 0 ? 100.0 * prof_tab[i].sec / total : 0.0,
            prof_tab[i].calls, prof_tab[i].key);
  prof_n = 0;
}

static int ctx_init_backend(hb_ctx *ctx, const char *backend, int num_threads) {
  memset(ctx, 0, sizeof *ctx);
  ctx->num_threads = num_threads;
  if (!backend || !strcmp(backend, "cpu")) {
    ctx->be = &hb_backend_cpu;
    if (check_forward(ctx)) {
      memset(ctx, 0, sizeof *ctx);
      return -1;
    }
    return 0;
  }
  if (!strcmp(backend, "cuda")) {
#ifdef HUBERT_HAVE_CUDA
    HB_TRY(cuda_ctx_init(ctx));
    if (check_forward(ctx)) {
      ops_ctx_free(ctx);
      return -1;
    }
    return 0;
#else
    return hb_fail("backend 'cuda' is not built in (configure with -DHUBERT_CUDA=ON on a machine with nvcc)");
#endif
  }
  return hb_fail("unknown backend '%s' (expected cpu or cuda)", backend);
}

int ops_ctx_init(hb_ctx *ctx, const char *backend, int num_threads) {
  HB_TRY(ctx_init_backend(ctx, backend, num_threads));
  const char *prof = getenv("HUBERT_PROFILE");
  if (prof && *prof && strcmp(prof, "0") && !prof_inner) prof_install(ctx);
  return 0;
}

void ops_ctx_free(hb_ctx *ctx) {
  if (!ctx->be) return;
  if (ctx->be == &prof_be) {
    prof_report();
    ctx->be = prof_inner;
    prof_inner = NULL;
  }
  if (ctx->workspace) ctx->be->free(ctx, ctx->workspace);
#ifdef HUBERT_HAVE_CUDA
  if (ctx->be != &hb_backend_cpu) cuda_ctx_free(ctx);
#endif
  memset(ctx, 0, sizeof *ctx);
}

void *ops_workspace(hb_ctx *ctx, size_t bytes) {
  if (bytes <= ctx->workspace_bytes) return ctx->workspace;
  if (ctx->workspace) ctx->be->free(ctx, ctx->workspace);
  ctx->workspace = ctx->be->alloc(ctx, bytes);
  ctx->workspace_bytes = ctx->workspace ? bytes : 0;
  return ctx->workspace;
}
