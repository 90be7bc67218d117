// Bucket bookkeeping of the overlapped all-reduce (train/comm.c, comm_allreduce_async_*), on the
// single-process backend: buckets are the ones comm_allreduce_f32 uses (bucket_floats from the
// start, the last one shorter); a bucket starts exactly when its last float is marked ready, in
// whatever order ranges arrive (ranges may span buckets); marking more floats of a bucket than it has left (a range marked twice), a range outside
// the buffer (refused before anything changes), or waiting while a bucket is incomplete are errors naming the bucket; the buffer
// is left as the backend's all-reduce leaves it (world 1: unchanged).
#include <stdlib.h>
#include <string.h>

#include "tests/test_util.h"
#include "train/comm.h"

int main(void) {
  unsetenv("HUBERT_COMM_BACKEND");
  hb_comm c;
  hb_comm_opts o = {"single", 0, 30, 400, NULL};   // 100-float buckets
  CHECK_OK(comm_init(&c, &o));
  CHECK(c.bucket_floats == 100);
  const size_t n = 350;   // buckets [0,100) [100,200) [200,300) [300,350)
  float *buf = malloc(sizeof(float) * n);
  for (size_t i = 0; i < n; i++) buf[i] = (float)i;
  hb_comm_async a;
  CHECK_OK(comm_allreduce_async_begin(&c, &a, buf, n, NULL));
  CHECK(a.nb == 4 && a.left[3] == 50 && a.left[0] == 100);
  CHECK_OK(comm_allreduce_async_ready(&a, 320, 30));   // end of the last bucket
  CHECK(a.started == 0);
  CHECK_OK(comm_allreduce_async_ready(&a, 150, 170));  // [150, 320): completes bucket 2 and 3
  CHECK(a.started == 2 && a.left[2] == 0 && a.left[3] == 0 && a.left[1] == 50);
  CHECK_ERR(comm_allreduce_async_ready(&a, 100, 60), "marks 60 floats of bucket 1, which has 50 left");
  CHECK(a.left[1] == 50);   // a refused range changes nothing
  CHECK_ERR(comm_allreduce_async_ready(&a, 340, 20), "outside the 350-float buffer");
  CHECK_OK(comm_allreduce_async_ready(&a, 0, 150));     // buckets 0 and 1
  CHECK(a.started == 4);
  CHECK_OK(comm_allreduce_async_wait(&a));
  CHECK(a.left == NULL);
  size_t bad = 0;
  for (size_t i = 0; i < n; i++) bad += buf[i] != (float)i;
  CHECK(bad == 0);
  printf("4 buckets of a 350-float buffer started in the order 2, 3, 0, 1; values unchanged: %s\n", bad ? "no" : "yes");
  // Waiting with an incomplete bucket names it.
  CHECK_OK(comm_allreduce_async_begin(&c, &a, buf, n, NULL));
  CHECK_OK(comm_allreduce_async_ready(&a, 0, 250));
  CHECK_ERR(comm_allreduce_async_wait(&a), "2 of 4 buckets never became ready (bucket 2 misses 50 floats)");
  // An empty buffer has no bucket and waits at once.
  CHECK_OK(comm_allreduce_async_begin(&c, &a, buf, 0, NULL));
  CHECK(a.nb == 0);
  CHECK_OK(comm_allreduce_async_wait(&a));
  CHECK_OK(comm_async_check(&c));
  comm_free(&c);
  free(buf);
  return test_summary("test_comm_async");
}
