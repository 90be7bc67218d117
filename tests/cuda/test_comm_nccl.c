// The NCCL communicator at world size 1 (HUBERT_COMM_BACKEND=nccl): init (no id exchange),
// all-reduce of a device buffer in several buckets, double all-reduce, reduce-scatter /
// all-gather over uneven ranges, broadcast and barrier are the identity; the unique-id exchange
// and multi-rank sums need several GPUs (docs/distributed.md). The overlapped all-reduce: ranges
// written by kernels on the ops stream and marked ready in reverse order (buckets start on the
// NCCL stream after an event on the ops stream) give the values the kernels wrote.
// Skips (77) without NCCL or a GPU.
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ops.h"
#include "tests/test_util.h"
#include "train/comm.h"

int main(void) {
  if (!comm_have_nccl()) { printf("skip: this build has no NCCL\n"); return 77; }
  hb_ctx ctx;
  if (ops_ctx_init(&ctx, "cuda", 0)) { printf("skip: no CUDA device (%s)\n", hb_errmsg()); return 77; }
  setenv("HUBERT_COMM_BACKEND", "nccl", 1);
  hb_comm c;
  hb_comm_opts o = {NULL, 1, 30, 4096, NULL};   // 1024-float buckets
  CHECK_OK(comm_init(&c, &o));
  CHECK(c.kind == HB_COMM_NCCL && c.world == 1 && c.rank == 0);
  const size_t n = 5000;
  float *h = malloc(sizeof(float) * n), *back = malloc(sizeof(float) * n);
  for (size_t i = 0; i < n; i++) h[i] = (float)i * 0.5f - 7.0f;
  float *d = ctx.be->alloc(&ctx, sizeof(float) * n);
  CHECK(d != NULL);
  CHECK_OK(ctx.be->upload(&ctx, d, h, sizeof(float) * n));
  CHECK_OK(ctx.be->sync ? ctx.be->sync(&ctx) : 0);
  c.what = "test all-reduce";
  CHECK_OK(comm_allreduce_f32(&c, d, n));
  size_t off[2];
  comm_partition(n, 1, 64, off);
  CHECK(off[0] == 0 && off[1] == n);
  CHECK_OK(comm_reduce_scatter_f32(&c, d, off));
  CHECK_OK(comm_allgather_f32(&c, d, off));
  CHECK_OK(comm_broadcast(&c, d, sizeof(float) * n, 0));
  CHECK_OK(comm_barrier(&c));
  CHECK_OK(ctx.be->download(&ctx, back, d, sizeof(float) * n));
  CHECK_REL("nccl world-1 collectives (identity)", rel_err_f32(back, h, n), 0.0);
  // Overlap: scale each 1000-float range on the ops stream (x 2), mark it, last range first.
  hb_comm_async as;
  c.what = "test overlapped all-reduce";
  CHECK_OK(comm_allreduce_async_begin(&c, &as, d, n, &ctx));
  for (size_t hi = n; hi > 0; hi = hi > 1000 ? hi - 1000 : 0) {
    const size_t lo = hi > 1000 ? hi - 1000 : 0;
    CHECK_OK(ctx.be->scale(&ctx, d + lo, d + lo, 2.0f, hi - lo));
    CHECK_OK(comm_allreduce_async_ready(&as, lo, hi - lo));
  }
  CHECK(as.started == as.nb && as.nb == 5);
  CHECK_OK(comm_allreduce_async_wait(&as));
  CHECK_OK(ctx.be->download(&ctx, back, d, sizeof(float) * n));
  for (size_t i = 0; i < n; i++) h[i] *= 2.0f;
  CHECK_REL("nccl world-1 overlapped all-reduce after kernels on the ops stream", rel_err_f32(back, h, n), 0.0);
  double s[3] = {1.5, -2.0, 1e300};
  CHECK_OK(comm_allreduce_f64(&c, s, 3));
  CHECK(s[0] == 1.5 && s[1] == -2.0 && s[2] == 1e300);
  comm_free(&c);
  ctx.be->free(&ctx, d);
  ops_ctx_free(&ctx);
  free(h);
  free(back);
  return test_summary("test_comm_nccl");
}
