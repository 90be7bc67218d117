// Communicator front end: launcher environment, backend choice, the single-process backend.
#include "train/comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

static int env_int(const char *name, int *v) {
  const char *s = getenv(name);
  if (!s || !*s) return 0;
  char *end;
  long x = strtol(s, &end, 10);
  if (*end || x < 0 || x > 1000000000L) return 0;
  *v = (int)x;
  return 1;
}

void comm_env(int *rank, int *world, int *local_rank, char launcher[16]) {
  static const struct { const char *r, *w, *l, *name; } src[] = {
      {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "mpirun"},
      {"PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "mpirun"},
      {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "slurm"},
      {"RANK", "WORLD_SIZE", "LOCAL_RANK", "env"},
  };
  *rank = 0;
  *world = 1;
  *local_rank = 0;
  snprintf(launcher, 16, "single");
  for (size_t i = 0; i < sizeof src / sizeof src[0]; i++) {
    int r, w;
    if (env_int(src[i].r, &r) && env_int(src[i].w, &w) && w >= 1 && r < w) {
      *rank = r;
      *world = w;
      if (!env_int(src[i].l, local_rank)) *local_rank = 0;
      snprintf(launcher, 16, "%s", src[i].name);
      return;
    }
  }
}

void comm_partition(size_t n, int world, size_t align, size_t *off) {
  if (align < 1) align = 1;
  size_t per = (n + (size_t)world - 1) / (size_t)world;
  per = (per + align - 1) / align * align;
  for (int r = 0; r <= world; r++) {
    size_t o = per * (size_t)r;
    off[r] = o < n ? o : n;
  }
}

// ---- single process: every collective is the identity ----

static int single_f32(hb_comm *c, float *buf, size_t n) { (void)c; (void)buf; (void)n; return 0; }
static int single_f64(hb_comm *c, double *buf, size_t n) { (void)c; (void)buf; (void)n; return 0; }
static int single_off(hb_comm *c, float *buf, const size_t *off) { (void)c; (void)buf; (void)off; return 0; }
static int single_bcast(hb_comm *c, void *buf, size_t bytes, int root) {
  (void)c; (void)buf; (void)bytes; (void)root;
  return 0;
}
static int single_barrier(hb_comm *c) { (void)c; return 0; }
static void single_abort(hb_comm *c, int code) { (void)c; exit(code); }
static void single_free(hb_comm *c) { (void)c; }

static const hb_comm_ops single_ops = {single_f32, single_f64,   single_off,   single_off, single_bcast,
                                       single_barrier, single_abort, single_free, NULL,       NULL};

int comm_init(hb_comm *c, const hb_comm_opts *o) {
  memset(c, 0, sizeof *c);
  hb_comm_opts d;
  memset(&d, 0, sizeof d);
  if (!o) o = &d;
  comm_env(&c->rank, &c->world, &c->local_rank, c->launcher);
  c->thread_level = -1;
  c->timeout_s = o->timeout_s > 0 ? o->timeout_s : 600.0;
  const char *te = getenv("HUBERT_COMM_TIMEOUT");
  if (te && *te && atof(te) > 0) c->timeout_s = atof(te);
  size_t bb = o->bucket_bytes > 0 ? o->bucket_bytes : (size_t)25 << 20;
  c->bucket_floats = bb / sizeof(float) ? bb / sizeof(float) : 1;
  if (c->bucket_floats > ((size_t)1 << 28)) c->bucket_floats = (size_t)1 << 28;   // ranges stay below INT_MAX
  c->what = "";
  const char *be = o->backend && *o->backend ? o->backend : "auto";
  const char *env_be = getenv("HUBERT_COMM_BACKEND");
  if (env_be && *env_be) be = env_be;
  if (!strcmp(be, "auto")) be = c->world == 1 ? "single" : o->device_buffers ? "nccl" : "mpi";
  if (!strcmp(be, "single")) {
    if (c->world > 1)
      return hb_fail("comm: the launcher variables (%s) say world size %d, but the single-process backend was asked for",
                     c->launcher, c->world);
    c->kind = HB_COMM_SINGLE;
    c->ops = &single_ops;
    return 0;
  }
  if (!strcmp(be, "mpi")) {
    if (!comm_have_mpi())
      return hb_fail("comm: world size %d (%s) on CPU needs MPI, and this build has none (install libopenmpi-dev "
                     "and re-run cmake with -DHUBERT_MPI=ON)", c->world, c->launcher);
    if (!strcmp(c->launcher, "env"))
      return hb_fail("comm: RANK/WORLD_SIZE (world %d) without mpirun or srun: CPU ranks talk through MPI; start "
                     "them with mpirun -np N or srun --mpi=pmix", c->world);
    return comm_mpi_init(c, o);
  }
  if (!strcmp(be, "nccl")) {
    if (!comm_have_nccl())
      return hb_fail("comm: device buffers need NCCL, and this build has none (CUDA and nccl.h are required)");
    return comm_nccl_init(c, o);
  }
  return hb_fail("comm: unknown backend '%s' (auto, single, mpi or nccl)", be);
}

void comm_free(hb_comm *c) {
  if (c->ops) c->ops->free(c);
  memset(c, 0, sizeof *c);
}

int comm_allreduce_f32(hb_comm *c, float *buf, size_t n) {
  return c->ops->allreduce_f32(c, buf, n);
}
int comm_allreduce_f64(hb_comm *c, double *buf, size_t n) {
  return c->ops->allreduce_f64(c, buf, n);
}
int comm_reduce_scatter_f32(hb_comm *c, float *buf, const size_t *off) {
  return c->ops->reduce_scatter_f32(c, buf, off);
}
int comm_allgather_f32(hb_comm *c, float *buf, const size_t *off) {
  return c->ops->allgather_f32(c, buf, off);
}
int comm_broadcast(hb_comm *c, void *buf, size_t bytes, int root) {
  return c->ops->broadcast(c, buf, bytes, root);
}
int comm_barrier(hb_comm *c) { return c->ops->barrier(c); }

// ---- overlapped all-reduce: bucket bookkeeping (the backends only start and wait) ----

int comm_allreduce_async_begin(hb_comm *c, hb_comm_async *a, float *buf, size_t n, struct hb_ctx *producer) {
  memset(a, 0, sizeof *a);
  a->c = c;
  a->producer = producer;
  a->buf = buf;
  a->n = n;
  a->nb = (n + c->bucket_floats - 1) / c->bucket_floats;
  a->left = hb_malloc(sizeof(size_t) * (a->nb ? a->nb : 1));
  if (!a->left) return hb_fail_prefix("overlapped all-reduce (%zu buckets)", a->nb);
  for (size_t b = 0; b < a->nb; b++) a->left[b] = (b + 1) * c->bucket_floats <= n ? c->bucket_floats : n - b * c->bucket_floats;
  return 0;
}

static int start_bucket(hb_comm_async *a, size_t b) {
  hb_comm *c = a->c;
  const size_t b0 = b * c->bucket_floats, bn = a->n - b0 < c->bucket_floats ? a->n - b0 : c->bucket_floats;
  a->started++;
  if (c->ops->bucket_start) return c->ops->bucket_start(c, a->buf + b0, bn, a->producer);
  return c->ops->allreduce_f32(c, a->buf + b0, bn);   // one bucket: the same call comm_allreduce_f32 makes
}

int comm_allreduce_async_ready(hb_comm_async *a, size_t off, size_t len) {
  if (off > a->n || len > a->n - off)
    return hb_fail("overlapped all-reduce: range [%zu, %zu) outside the %zu-float buffer", off, off + len, a->n);
  const size_t bf = a->c->bucket_floats;
  // Counts only: a float marked twice shows as a bucket receiving more floats than it has left
  // (checked for every bucket of the range before anything changes).
  for (size_t o = off, l = len; l;) {
    const size_t b = o / bf, take = (b + 1) * bf - o < l ? (b + 1) * bf - o : l;
    if (take > a->left[b])
      return hb_fail("overlapped all-reduce: range [%zu, %zu) marks %zu floats of bucket %zu, which has %zu left "
                     "(a range marked ready twice)", off, off + len, take, b, a->left[b]);
    o += take;
    l -= take;
  }
  while (len) {
    const size_t b = off / bf, take = (b + 1) * bf - off < len ? (b + 1) * bf - off : len;
    a->left[b] -= take;
    if (!a->left[b]) HB_TRY(start_bucket(a, b));
    off += take;
    len -= take;
  }
  return 0;
}

int comm_allreduce_async_wait(hb_comm_async *a) {
  int rc = 0;
  if (a->started != a->nb) {
    size_t b = 0;
    while (b < a->nb && !a->left[b]) b++;
    rc = hb_fail("overlapped all-reduce: %zu of %zu buckets never became ready (bucket %zu misses %zu floats)",
                 a->nb - a->started, a->nb, b, b < a->nb ? a->left[b] : 0);
  }
  if (a->c->ops->bucket_wait && a->c->ops->bucket_wait(a->c)) rc = -1;
  comm_allreduce_async_free(a);
  return rc;
}

void comm_allreduce_async_free(hb_comm_async *a) {
  free(a->left);
  a->left = NULL;
}

int comm_async_check(const hb_comm *c) {
  if (c->kind != HB_COMM_MPI || c->thread_level >= 2) return 0;   // MPI_THREAD_SERIALIZED is 2 in MPICH and OpenMPI
  return hb_fail("distributed_training.overlap_comm: the MPI library provides thread level %d, the overlap needs "
                 "MPI_THREAD_SERIALIZED (a communication thread calls MPI while the backward runs); use an MPI built "
                 "with thread support or set distributed_training.overlap_comm: false", c->thread_level);
}

void comm_abort(hb_comm *c, int code, const char *msg) {
  if (msg) {
    fprintf(stderr, "error (rank %d of %d): %s\n", c->rank, c->world, msg);
    fflush(stderr);
  }
  fflush(stdout);
  if (c->ops) c->ops->abort(c, code);
  exit(code);
}
