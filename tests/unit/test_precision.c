// ops_set_precision: a fresh context computes in fp32; "fp32" / NULL keep it; the CPU backend
// refuses "bf16" with a message naming the backend and the way out (--device cuda); an unknown
// name is refused. The CPU path never changes with the flag (it cannot be set there).
#include "kernels/ops.h"
#include "tests/test_util.h"

int main(void) {
  hb_ctx ctx;
  if (ops_ctx_init(&ctx, "cpu", 1)) {
    fprintf(stderr, "%s\n", hb_errmsg());
    return 1;
  }
  CHECK(ctx.precision == HB_PRECISION_FP32);
  CHECK_OK(ops_set_precision(&ctx, "fp32"));
  CHECK_OK(ops_set_precision(&ctx, NULL));
  CHECK(ctx.precision == HB_PRECISION_FP32);
  CHECK_ERR(ops_set_precision(&ctx, "bf16"), "needs the CUDA backend (--device cuda)");
  CHECK(ctx.precision == HB_PRECISION_FP32);
  CHECK_ERR(ops_set_precision(&ctx, "fp16"), "unknown precision 'fp16'");
  ops_ctx_free(&ctx);
  hb_ctx none = {0};
  CHECK_ERR(ops_set_precision(&none, "fp32"), "no backend");
  return test_summary("test_precision");
}
