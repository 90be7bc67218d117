// The CUDA stream of an ops context, for library code outside kernels/cuda that orders its own
// streams after the ops (train/comm_nccl.c: the overlapped all-reduce waits on events recorded here).
#include "kernels/cuda/cuda_check.h"

extern "C" void *cuda_ctx_stream(hb_ctx *ctx) {
  return ctx && ctx->backend_state ? (void *)cuda_st(ctx)->stream : NULL;
}
