// Backend selection and the shared workspace.
#include "kernels/ops.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

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

int ops_ctx_init(hb_ctx *ctx, const char *backend, int num_threads) {
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

void ops_ctx_free(hb_ctx *ctx) {
  if (!ctx->be) return;
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
