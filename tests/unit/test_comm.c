// train/comm without a launcher: the launcher environment (OpenMPI, Slurm, torchrun variables and
// their precedence), the even partition used by ZeRO-1 and the bucketed ring (ranges cover [0, n)
// in order, aligned, none longer than the first), the single-process backend (every collective is
// the identity), and the errors for impossible set-ups (world > 1 without mpirun on CPU, unknown
// backend, single backend under a world > 1). Multi-rank behaviour: tests/cli/test_train_mpi.sh.
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test_util.h"
#include "train/comm.h"

static const char *vars[] = {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
                             "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "SLURM_PROCID", "SLURM_NTASKS",
                             "SLURM_LOCALID", "RANK", "WORLD_SIZE", "LOCAL_RANK", "HUBERT_COMM_BACKEND",
                             "HUBERT_COMM_TIMEOUT"};

static void clear_env(void) {
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
}

static void test_env(void) {
  printf("launcher environment:\n");
  int r, w, l;
  char who[16];
  clear_env();
  comm_env(&r, &w, &l, who);
  CHECK(r == 0 && w == 1 && l == 0 && !strcmp(who, "single"));
  setenv("RANK", "3", 1), setenv("WORLD_SIZE", "8", 1), setenv("LOCAL_RANK", "1", 1);
  comm_env(&r, &w, &l, who);
  CHECK(r == 3 && w == 8 && l == 1 && !strcmp(who, "env"));
  setenv("SLURM_PROCID", "5", 1), setenv("SLURM_NTASKS", "16", 1), setenv("SLURM_LOCALID", "2", 1);
  comm_env(&r, &w, &l, who);   // Slurm before torchrun variables
  CHECK(r == 5 && w == 16 && l == 2 && !strcmp(who, "slurm"));
  setenv("OMPI_COMM_WORLD_RANK", "1", 1), setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
  comm_env(&r, &w, &l, who);   // mpirun first; no local rank variable: 0
  CHECK(r == 1 && w == 2 && l == 0 && !strcmp(who, "mpirun"));
  clear_env();
  setenv("RANK", "4", 1), setenv("WORLD_SIZE", "4", 1);   // rank >= world: ignored
  comm_env(&r, &w, &l, who);
  CHECK(r == 0 && w == 1);
  setenv("RANK", "x", 1), setenv("WORLD_SIZE", "2", 1);   // not a number: ignored
  comm_env(&r, &w, &l, who);
  CHECK(r == 0 && w == 1);
  clear_env();
}

static void test_partition(void) {
  printf("partition:\n");
  const size_t ns[] = {0, 1, 63, 64, 1000, 105075, 94700000};
  for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
    for (int W = 1; W <= 9; W++) {
      size_t off[10];
      comm_partition(ns[i], W, 64, off);
      int good = off[0] == 0 && off[W] == ns[i];
      for (int k = 0; k < W; k++) {
        good &= off[k] <= off[k + 1] && off[k + 1] - off[k] <= off[1] - off[0];
        good &= off[k] % 64 == 0 || off[k] == ns[i];
      }
      if (!good) printf("  n %zu, world %d: bad ranges\n", ns[i], W);
      CHECK(good);
    }
}

static void test_single(void) {
  printf("single-process backend:\n");
  clear_env();
  hb_comm c;
  hb_comm_opts o = {NULL, 0, 0, 0, NULL};
  CHECK_OK(comm_init(&c, &o));
  CHECK(c.kind == HB_COMM_SINGLE && c.world == 1 && c.rank == 0 && c.timeout_s == 600.0);
  float x[5] = {1, -2, 3.5f, 0, 1e30f}, y[5];
  memcpy(y, x, sizeof x);
  size_t off[2] = {0, 5};
  double d[2] = {0.25, -7};
  CHECK_OK(comm_allreduce_f32(&c, y, 5));
  CHECK_OK(comm_reduce_scatter_f32(&c, y, off));
  CHECK_OK(comm_allgather_f32(&c, y, off));
  CHECK_OK(comm_broadcast(&c, y, sizeof y, 0));
  CHECK_OK(comm_allreduce_f64(&c, d, 2));
  CHECK_OK(comm_barrier(&c));
  CHECK(!memcmp(x, y, sizeof x) && d[0] == 0.25 && d[1] == -7);
  comm_free(&c);
  setenv("HUBERT_COMM_TIMEOUT", "2.5", 1);
  hb_comm_opts o2 = {"single", 0, 30, 1 << 20, NULL};
  CHECK_OK(comm_init(&c, &o2));
  CHECK(c.timeout_s == 2.5 && c.bucket_floats == (1 << 18));
  comm_free(&c);
  clear_env();
}

static void test_errors(void) {
  printf("errors:\n");
  hb_comm c;
  clear_env();
  hb_comm_opts bad = {"carrier-pigeon", 0, 0, 0, NULL};
  CHECK_ERR(comm_init(&c, &bad), "unknown backend");
  comm_free(&c);
  setenv("RANK", "0", 1), setenv("WORLD_SIZE", "2", 1);
  hb_comm_opts o = {NULL, 0, 0, 0, NULL};
  CHECK_ERR(comm_init(&c, &o), comm_have_mpi() ? "mpirun" : "needs MPI");
  comm_free(&c);
  hb_comm_opts s = {"single", 0, 0, 0, NULL};
  CHECK_ERR(comm_init(&c, &s), "world size 2");
  comm_free(&c);
  if (!comm_have_nccl()) {
    hb_comm_opts g = {NULL, 1, 0, 0, NULL};
    CHECK_ERR(comm_init(&c, &g), "NCCL");
    comm_free(&c);
  }
  clear_env();
}

int main(void) {
  test_env();
  test_partition();
  test_single();
  test_errors();
  return test_summary("test_comm");
}
