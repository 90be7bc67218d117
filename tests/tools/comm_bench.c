// All-reduce timing for scripts/bench_allreduce.sh: run under mpirun -np W.
// usage: comm_bench N_FLOATS REPS [BUCKET_MB]   prints one line from rank 0:
//   allreduce n=<N> bytes=<B> world=<W> ms=<median> min_ms=<fastest> GB/s(bus)=<2(W-1)/W B / fastest>
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "train/comm.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}
static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: comm_bench N_FLOATS REPS [BUCKET_MB]\n"); return 2; }
  size_t n = (size_t)atoll(argv[1]);
  int reps = atoi(argv[2]);
  size_t bucket = argc > 3 ? (size_t)atoll(argv[3]) << 20 : 0;
  hb_comm c;
  hb_comm_opts o = {NULL, 0, 600, bucket, NULL};
  if (comm_init(&c, &o)) { fprintf(stderr, "comm_bench: %s\n", hb_errmsg()); return 1; }
  float *x = malloc(sizeof(float) * (n ? n : 1));
  double *t = malloc(sizeof(double) * (reps > 0 ? reps : 1));
  if (!x || !t || reps < 1) return 1;
  for (size_t i = 0; i < n; i++) x[i] = (float)((i % 7) + c.rank);
  c.what = "bench all-reduce";
  if (comm_allreduce_f32(&c, x, n)) { fprintf(stderr, "comm_bench: %s\n", hb_errmsg()); return 1; }  // warm-up
  for (int r = 0; r < reps; r++) {
    if (comm_barrier(&c)) return 1;
    double t0 = now_s();
    if (comm_allreduce_f32(&c, x, n)) { fprintf(stderr, "comm_bench: %s\n", hb_errmsg()); return 1; }
    t[r] = now_s() - t0;
  }
  qsort(t, (size_t)reps, sizeof *t, cmp_d);
  double med = t[reps / 2], bytes = 4.0 * (double)n;
  if (c.rank == 0)
    printf("allreduce n=%zu bytes=%.0f world=%d ms=%.3f min_ms=%.3f GB/s(bus)=%.2f\n", n, bytes, c.world, 1e3 * med,
           1e3 * t[0], bytes * 2.0 * (c.world - 1) / c.world / t[0] / 1e9);
  free(x);
  free(t);
  comm_free(&c);
  return 0;
}
