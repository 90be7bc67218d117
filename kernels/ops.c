// Backend selection and the shared workspace.
#include "kernels/ops.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"

#ifdef HUBERT_HAVE_CUDA
int cuda_ctx_init(hb_ctx *ctx);   // kernels/cuda/: fails cleanly when no GPU is present
void cuda_ctx_free(hb_ctx *ctx);
#endif

int ops_ctx_init(hb_ctx *ctx, const char *backend, int num_threads) {
  memset(ctx, 0, sizeof *ctx);
  ctx->num_threads = num_threads;
  if (!backend || !strcmp(backend, "cpu")) {
    ctx->be = &hb_backend_cpu;
    return 0;
  }
  if (!strcmp(backend, "cuda")) {
#ifdef HUBERT_HAVE_CUDA
    return cuda_ctx_init(ctx);
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
