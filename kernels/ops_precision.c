// ops_set_precision(): the compute precision of a context (kernels/ops.h).
#include <string.h>

#include "common/error.h"
#include "kernels/ops.h"

int ops_set_precision(hb_ctx *ctx, const char *name) {
  if (!ctx->be) return hb_fail("ops_set_precision: context has no backend");
  if (!name || !strcmp(name, "fp32")) {
    ctx->precision = HB_PRECISION_FP32;
    return 0;
  }
  if (strcmp(name, "bf16")) return hb_fail("unknown precision '%s' (expected fp32 or bf16)", name);
  if (strcmp(ctx->be->name, "cuda"))
    return hb_fail("precision bf16 needs the CUDA backend (--device cuda); the '%s' backend computes in fp32 only",
                   ctx->be->name);
  ctx->precision = HB_PRECISION_BF16;
  return 0;
}
