// NCCL backend of train/comm.h: GPU buffers, collectives on one CUDA stream, polled against a
// deadline (cudaStreamQuery + ncclCommGetAsyncError); on timeout or an asynchronous NCCL error
// the communicator is aborted (ncclCommAbort) and the error returned, so no rank hangs forever.
//
// Unique-id exchange (rank 0 creates it, every rank needs it before ncclCommInitRank):
//   1. MPI, when launched by mpirun or srun --mpi (and this build has MPI): MPI_Bcast;
//   2. a file: HUBERT_NCCL_ID_FILE=/shared/path (rank 0 writes it atomically, the others poll);
//   3. TCP: rank 0 listens on MASTER_ADDR:MASTER_PORT and sends the id to each rank that connects.
// Device: one GPU per rank. Before the CUDA runtime starts, CUDA_VISIBLE_DEVICES is narrowed to
// this rank's GPU — entry local_rank (mod the list) of the variable when the launcher set one,
// else GPU local_rank — so NCCL and the ops backend (which uses device 0 of what it sees) agree.
// HUBERT_KEEP_VISIBLE_DEVICES=1 keeps the variable as it is (then GPU local_rank % count).
#include "train/comm.h"

#ifdef HUBERT_HAVE_NCCL

#include <cuda_runtime.h>
#include <errno.h>
#include <nccl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#ifdef HUBERT_HAVE_MPI
#include <mpi.h>
#endif

#include "common/error.h"
#include "common/fileutil.h"
#include "kernels/ops.h"

void *cuda_ctx_stream(hb_ctx *ctx);   // kernels/cuda/cuda_stream.cu

int comm_have_nccl(void) { return 1; }

typedef struct {
  ncclComm_t comm;
  int have_comm;
  cudaStream_t stream;
  int own_stream;            // 1: created here (o->stream was NULL), destroyed in nccl_free
  cudaEvent_t ready;         // overlap: recorded on the producer's stream, waited on by `stream`
  int have_ready;
  double *dscratch;          // (dcap) device buffer of the double reductions
  size_t dcap;
  int mpi_inited_here;
  int mpi_spans;             // 1: MPI spans the same ranks (the id came through MPI)
} nccl_impl;

#define CHECK_NCCL(call)                                                                            \
  do {                                                                                              \
    ncclResult_t r_ = (call);                                                                       \
    if (r_ != ncclSuccess)                                                                          \
      return hb_fail("NCCL: %s failed in %s (%s:%d): %s", #call, __func__, __FILE__, __LINE__,      \
                     ncclGetErrorString(r_));                                                       \
  } while (0)
#define CHECK_CUDA(call)                                                                            \
  do {                                                                                              \
    cudaError_t e_ = (call);                                                                        \
    if (e_ != cudaSuccess)                                                                          \
      return hb_fail("CUDA: %s failed in %s (%s:%d): %s", #call, __func__, __FILE__, __LINE__,      \
                     cudaGetErrorString(e_));                                                       \
  } while (0)

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void nap(long ns) {
  struct timespec ts = {0, ns};
  nanosleep(&ts, NULL);
}

// After a timeout, with MPI alongside: tell every peer, listen for their notices for min(timeout,
// 3 s); the ranks that stay silent are the lost or hung ones (the healthy ones are all waiting
// too). Writes their list to out ("" when all answered or MPI is not there).
static void silent_ranks(hb_comm *c, char *out, size_t cap) {
  out[0] = 0;
#ifdef HUBERT_HAVE_MPI
  nccl_impl *m = c->impl;
  if (!m->mpi_spans) return;
  enum { TAG_NOTICE = 7102 };
  const int W = c->world;
  long mine = 1, *in = calloc((size_t)W, sizeof *in);
  MPI_Request *q = malloc(sizeof *q * 2 * (size_t)W);
  if (!in || !q) { free(in); free(q); return; }
  for (int p = 0; p < 2 * W; p++) q[p] = MPI_REQUEST_NULL;
  for (int p = 0; p < W; p++) {
    if (p == c->rank) continue;
    MPI_Irecv(&in[p], 1, MPI_LONG, p, TAG_NOTICE, MPI_COMM_WORLD, &q[p]);
    MPI_Isend(&mine, 1, MPI_LONG, p, TAG_NOTICE, MPI_COMM_WORLD, &q[W + p]);
  }
  const double until = now_s() + (c->timeout_s < 3 ? c->timeout_s : 3);
  int all = 0;
  while (!all && now_s() < until) {
    MPI_Testall(W, q, &all, MPI_STATUSES_IGNORE);
    nap(1000000);
  }
  size_t k = 0;
  for (int p = 0; p < W; p++) {
    int f = 1;
    if (p != c->rank && q[p] != MPI_REQUEST_NULL) MPI_Test(&q[p], &f, MPI_STATUS_IGNORE);
    if (!f && k + 16 < cap) k += (size_t)snprintf(out + k, cap - k, "%s%d", k ? ", " : "", p);
  }
  free(in);
  free(q);   // the process aborts next; outstanding requests are not reclaimed
#else
  (void)c; (void)cap;
#endif
}

// Waits for the stream; aborts the communicator on timeout or an asynchronous NCCL error.
static int wait_stream(hb_comm *c) {
  nccl_impl *m = c->impl;
  const double deadline = now_s() + c->timeout_s;
  long polls = 0;
  for (;;) {
    cudaError_t q = cudaStreamQuery(m->stream);
    if (q == cudaSuccess) return 0;
    if (q != cudaErrorNotReady) CHECK_CUDA(q);
    ncclResult_t async = ncclSuccess;
    CHECK_NCCL(ncclCommGetAsyncError(m->comm, &async));
    if (async != ncclSuccess) {
      ncclCommAbort(m->comm);
      m->have_comm = 0;
      return hb_fail("NCCL: %s failed on rank %d: %s (a peer rank was lost or its network failed); stopping the job",
                     c->what, c->rank, ncclGetErrorString(async));
    }
    if (now_s() > deadline) {
      ncclCommAbort(m->comm);
      m->have_comm = 0;
      char late[512];
      silent_ranks(c, late, sizeof late);
      if (late[0])
        return hb_fail("NCCL: %s timed out after %.3g s (distributed_training.timeout) on rank %d of %d: lost or hung "
                       "rank(s) %s (no answer through MPI either); stopping the job", c->what, c->timeout_s, c->rank,
                       c->world, late);
      return hb_fail("NCCL: %s did not complete within %.3g s (distributed_training.timeout) on rank %d of %d: a rank "
                     "is lost or hung (the first rank that reports no error is the late one); stopping the job",
                     c->what, c->timeout_s, c->rank, c->world);
    }
    if (++polls > 100) nap(polls < 1000 ? 20000 : 500000);
  }
}

static int nccl_allreduce_f32(hb_comm *c, float *buf, size_t n) {
  nccl_impl *m = c->impl;
  CHECK_NCCL(ncclGroupStart());
  for (size_t b0 = 0; b0 < n; b0 += c->bucket_floats) {
    size_t bn = n - b0 < c->bucket_floats ? n - b0 : c->bucket_floats;
    CHECK_NCCL(ncclAllReduce(buf + b0, buf + b0, bn, ncclFloat, ncclSum, m->comm, m->stream));
  }
  CHECK_NCCL(ncclGroupEnd());
  return wait_stream(c);
}

static int nccl_allreduce_f64(hb_comm *c, double *buf, size_t n) {
  nccl_impl *m = c->impl;
  if (n > m->dcap) {
    if (m->dscratch) CHECK_CUDA(cudaFree(m->dscratch));
    m->dscratch = NULL;
    m->dcap = 0;
    CHECK_CUDA(cudaMalloc((void **)&m->dscratch, n * sizeof(double)));
    m->dcap = n;
  }
  CHECK_CUDA(cudaMemcpyAsync(m->dscratch, buf, n * sizeof(double), cudaMemcpyHostToDevice, m->stream));
  CHECK_NCCL(ncclAllReduce(m->dscratch, m->dscratch, n, ncclDouble, ncclSum, m->comm, m->stream));
  CHECK_CUDA(cudaMemcpyAsync(buf, m->dscratch, n * sizeof(double), cudaMemcpyDeviceToHost, m->stream));
  return wait_stream(c);
}

// Uneven ranges: one ncclReduce (to the range's owner) / ncclBroadcast (from it) per rank, grouped.
static int nccl_reduce_scatter_f32(hb_comm *c, float *buf, const size_t *off) {
  nccl_impl *m = c->impl;
  CHECK_NCCL(ncclGroupStart());
  for (int r = 0; r < c->world; r++)
    CHECK_NCCL(ncclReduce(buf + off[r], buf + off[r], off[r + 1] - off[r], ncclFloat, ncclSum, r, m->comm, m->stream));
  CHECK_NCCL(ncclGroupEnd());
  return wait_stream(c);
}

static int nccl_allgather_f32(hb_comm *c, float *buf, const size_t *off) {
  nccl_impl *m = c->impl;
  CHECK_NCCL(ncclGroupStart());
  for (int r = 0; r < c->world; r++)
    CHECK_NCCL(ncclBroadcast(buf + off[r], buf + off[r], off[r + 1] - off[r], ncclFloat, r, m->comm, m->stream));
  CHECK_NCCL(ncclGroupEnd());
  return wait_stream(c);
}

static int nccl_broadcast(hb_comm *c, void *buf, size_t bytes, int root) {
  nccl_impl *m = c->impl;
  CHECK_NCCL(ncclBroadcast(buf, buf, bytes, ncclChar, root, m->comm, m->stream));
  return wait_stream(c);
}

// Overlap: the bucket's all-reduce waits (on the device, not the host) for the gradient kernels
// enqueued so far on the ops stream, then runs on the communicator's own stream while the ops
// stream goes on with the backward. The same ncclAllReduce per bucket as nccl_allreduce_f32.
static int nccl_bucket_start(hb_comm *c, float *buf, size_t n, hb_ctx *producer) {
  nccl_impl *m = c->impl;
  cudaStream_t ps = NULL;
  if (producer && producer->be && producer->be->name && !strcmp(producer->be->name, "cuda"))
    ps = (cudaStream_t)cuda_ctx_stream(producer);
  if (!ps) {   // unknown producer: order after everything on the device
    CHECK_CUDA(cudaDeviceSynchronize());
  } else {
    if (!m->have_ready) {
      CHECK_CUDA(cudaEventCreateWithFlags(&m->ready, cudaEventDisableTiming));
      m->have_ready = 1;
    }
    CHECK_CUDA(cudaEventRecord(m->ready, ps));
    CHECK_CUDA(cudaStreamWaitEvent(m->stream, m->ready, 0));
  }
  CHECK_NCCL(ncclAllReduce(buf, buf, n, ncclFloat, ncclSum, m->comm, m->stream));
  return 0;
}

static int nccl_bucket_wait(hb_comm *c) { return wait_stream(c); }

static int nccl_barrier(hb_comm *c) {
  double one = 1;
  return nccl_allreduce_f64(c, &one, 1);
}

static void nccl_abort(hb_comm *c, int code) {
  nccl_impl *m = c->impl;
  if (m && m->have_comm) ncclCommAbort(m->comm);
  if (m) m->have_comm = 0;
#ifdef HUBERT_HAVE_MPI
  int inited = 0, fin = 0;
  MPI_Initialized(&inited);
  MPI_Finalized(&fin);
  if (inited && !fin) MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
#endif
  exit(code ? code : 1);
}

static void nccl_free(hb_comm *c) {
  nccl_impl *m = c->impl;
  if (!m) return;
  if (m->have_comm) ncclCommDestroy(m->comm);
  if (m->dscratch) cudaFree(m->dscratch);
  if (m->have_ready) cudaEventDestroy(m->ready);
  if (m->own_stream) cudaStreamDestroy(m->stream);
#ifdef HUBERT_HAVE_MPI
  int fin = 0;
  MPI_Finalized(&fin);
  if (m->mpi_inited_here && !fin) MPI_Finalize();
#endif
  free(m);
  c->impl = NULL;
}

static const hb_comm_ops nccl_ops = {nccl_allreduce_f32, nccl_allreduce_f64, nccl_reduce_scatter_f32,
                                     nccl_allgather_f32, nccl_broadcast,     nccl_barrier,
                                     nccl_abort,         nccl_free,          nccl_bucket_start,
                                     nccl_bucket_wait};

// ---- unique-id exchange ----

#ifdef HUBERT_HAVE_MPI
// 1 if MPI spans exactly this job's ranks (then *id is broadcast from rank 0), 0 to try another way.
static int id_by_mpi(hb_comm *c, nccl_impl *m, ncclUniqueId *id) {
  if (strcmp(c->launcher, "mpirun") && strcmp(c->launcher, "slurm")) return 0;
  int inited = 0, provided, world = 0, rank = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) return 0;
    m->mpi_inited_here = 1;
  }
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (world != c->world || rank != c->rank) return 0;   // e.g. srun without --mpi: a singleton
  m->mpi_spans = 1;
  if (MPI_Bcast(id, (int)sizeof *id, MPI_BYTE, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
    return hb_fail("NCCL: MPI_Bcast of the unique id failed"), -1;
  return 1;
}
#endif

static int id_by_file(hb_comm *c, const char *path, ncclUniqueId *id) {
  if (c->rank == 0) {
    if (file_write_atomic(path, (const char *)id, sizeof *id)) return hb_fail_prefix("HUBERT_NCCL_ID_FILE");
    return 0;
  }
  const double deadline = now_s() + c->timeout_s;
  for (;;) {
    char *text;
    size_t len;
    if (file_exists(path) && file_read_all(path, &text, &len) == 0) {
      int okay = len == sizeof *id;
      if (okay) memcpy(id, text, sizeof *id);
      free(text);
      if (okay) return 0;
    }
    if (now_s() > deadline)
      return hb_fail("NCCL: rank %d waited %.3g s for rank 0 to write the unique id to %s (HUBERT_NCCL_ID_FILE); is "
                     "rank 0 running, and is the path on a filesystem every node shares?", c->rank, c->timeout_s, path);
    nap(50000000);
  }
}

static int id_by_tcp(hb_comm *c, ncclUniqueId *id) {
  const char *addr = getenv("MASTER_ADDR"), *port = getenv("MASTER_PORT");
  if (!addr || !*addr || !port || !*port)
    return hb_fail("NCCL: world %d without mpirun: set MASTER_ADDR and MASTER_PORT (TCP rendezvous on rank 0) or "
                   "HUBERT_NCCL_ID_FILE (a path on a shared filesystem)", c->world);
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = c->rank == 0 ? AI_PASSIVE : 0;
  int gai = getaddrinfo(c->rank == 0 ? NULL : addr, port, &hints, &res);
  if (gai) return hb_fail("NCCL rendezvous: cannot resolve %s:%s: %s", addr, port, gai_strerror(gai));
  const double deadline = now_s() + c->timeout_s;
  int rc = -1, fd = -1;
  if (c->rank == 0) {
    fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) || bind(fd, res->ai_addr, res->ai_addrlen) ||
        listen(fd, 128)) {
      hb_fail("NCCL rendezvous: rank 0 cannot listen on port %s: %s", port, strerror(errno));
      goto done;
    }
    for (int got = 1; got < c->world; got++) {   // every other rank connects once
      int cfd = accept(fd, NULL, NULL);
      if (cfd < 0) { hb_fail("NCCL rendezvous: accept on port %s: %s", port, strerror(errno)); goto done; }
      ssize_t w = write(cfd, id, sizeof *id);
      close(cfd);
      if (w != (ssize_t)sizeof *id) { hb_fail("NCCL rendezvous: sending the unique id failed"); goto done; }
    }
    rc = 0;
  } else {
    for (;;) {   // rank 0 may not listen yet: retry until the deadline
      fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
      if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) == 0) break;
      if (fd >= 0) close(fd);
      fd = -1;
      if (now_s() > deadline) {
        hb_fail("NCCL rendezvous: rank %d could not reach rank 0 at %s:%s within %.3g s", c->rank, addr, port, c->timeout_s);
        goto done;
      }
      nap(200000000);
    }
    size_t got = 0;
    while (got < sizeof *id) {
      ssize_t r = read(fd, (char *)id + got, sizeof *id - got);
      if (r <= 0) { hb_fail("NCCL rendezvous: reading the unique id from %s:%s failed", addr, port); goto done; }
      got += (size_t)r;
    }
    rc = 0;
  }
done:
  if (fd >= 0) close(fd);
  freeaddrinfo(res);
  return rc;
}

// Must run before the first CUDA runtime call of the process (comm_init comes first in the trainer).
static void pin_device(const hb_comm *c) {
  const char *keep = getenv("HUBERT_KEEP_VISIBLE_DEVICES");
  if (c->world < 2 || (keep && *keep && strcmp(keep, "0"))) return;
  const char *vis = getenv("CUDA_VISIBLE_DEVICES");
  char pick[64];
  if (vis && *vis) {
    int n = 1;
    for (const char *p = vis; *p; p++) n += *p == ',';
    int want = c->local_rank % n;
    const char *p = vis;
    for (int i = 0; i < want; i++) p = strchr(p, ',') + 1;
    size_t len = strcspn(p, ",");
    if (len == 0 || len >= sizeof pick) return;
    memcpy(pick, p, len);
    pick[len] = 0;
  } else {
    snprintf(pick, sizeof pick, "%d", c->local_rank);
  }
  setenv("CUDA_VISIBLE_DEVICES", pick, 1);
}

int comm_nccl_init(hb_comm *c, const hb_comm_opts *o) {
  pin_device(c);
  nccl_impl *m = hb_calloc(1, sizeof *m);
  if (!m) return -1;
  c->impl = m;
  c->ops = &nccl_ops;
  c->kind = HB_COMM_NCCL;
  int ndev = 0;
  CHECK_CUDA(cudaGetDeviceCount(&ndev));
  if (ndev < 1)
    return hb_fail("NCCL: no CUDA device visible on rank %d (local rank %d, CUDA_VISIBLE_DEVICES=%s): start one rank "
                   "per GPU", c->rank, c->local_rank, getenv("CUDA_VISIBLE_DEVICES") ? getenv("CUDA_VISIBLE_DEVICES") : "");
  CHECK_CUDA(cudaSetDevice(c->local_rank % ndev));
  m->stream = (cudaStream_t)o->stream;
  if (!m->stream) {   // our own stream, so that the overlapped buckets run beside the ops stream
    CHECK_CUDA(cudaStreamCreateWithFlags(&m->stream, cudaStreamNonBlocking));
    m->own_stream = 1;
  }
  ncclUniqueId id;
  memset(&id, 0, sizeof id);
  if (c->rank == 0) CHECK_NCCL(ncclGetUniqueId(&id));
  if (c->world > 1) {
    int done = 0;
#ifdef HUBERT_HAVE_MPI
    done = id_by_mpi(c, m, &id);
    if (done < 0) return -1;
#endif
    const char *file = getenv("HUBERT_NCCL_ID_FILE");
    if (!done && file && *file) HB_TRY(id_by_file(c, file, &id));
    else if (!done) HB_TRY(id_by_tcp(c, &id));
  }
  CHECK_NCCL(ncclCommInitRank(&m->comm, c->world, id, c->rank));
  m->have_comm = 1;
  c->what = "start-up barrier";
  return nccl_barrier(c);
}

#else  // no NCCL in this build

#include "common/error.h"

int comm_have_nccl(void) { return 0; }
int comm_nccl_init(hb_comm *c, const hb_comm_opts *o) {
  (void)c; (void)o;
  return hb_fail("comm: this build has no NCCL (build with CUDA; nccl.h and libnccl must be found)");
}

#endif
