// Communicator for data-parallel training: one interface, three backends.
//   single  one process (every collective is the identity)
//   mpi     CPU buffers, OpenMPI/MPICH (train/comm_mpi.c; built when CMake finds MPI)
//   nccl    GPU buffers (train/comm_nccl.c; built with CUDA when nccl.h is found); the NCCL unique
//           id travels through MPI under mpirun/srun, else through a file (HUBERT_NCCL_ID_FILE on
//           a shared filesystem) or a TCP rendezvous on MASTER_ADDR:MASTER_PORT.
// Rank, world and local rank come from the launcher's environment, first match wins:
//   OpenMPI   OMPI_COMM_WORLD_RANK / OMPI_COMM_WORLD_SIZE / OMPI_COMM_WORLD_LOCAL_RANK
//   PMI/PMIx  PMI_RANK / PMI_SIZE (MPICH hydra), PMIX_RANK
//   Slurm     SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID
//   torchrun  RANK / WORLD_SIZE / LOCAL_RANK (+ MASTER_ADDR / MASTER_PORT for NCCL)
// Invariants the trainer relies on:
//   - every reduction gives bitwise the same result on every rank (all-reduce is a reduce-scatter,
//     where each element is summed by exactly one rank, followed by an all-gather), so decisions
//     taken from reduced values (grad norm, clipping, NaN skips) agree everywhere;
//   - no collective waits forever: a rank that does not arrive within timeout_s makes the others
//     print a message naming it and abort the whole job (comm_abort).
#ifndef HB_TRAIN_COMM_H
#define HB_TRAIN_COMM_H

#include <stddef.h>

typedef enum { HB_COMM_SINGLE = 0, HB_COMM_MPI = 1, HB_COMM_NCCL = 2 } hb_comm_kind;

typedef struct hb_comm hb_comm;
struct hb_ctx;  // kernels/ops.h

// Backend table (one per kind). Buffers live where the backend expects them: host for mpi and
// single, device for nccl (except the double reductions, which take host buffers everywhere).
typedef struct {
  int (*allreduce_f32)(hb_comm *c, float *buf, size_t n);
  int (*allreduce_f64)(hb_comm *c, double *buf, size_t n);
  int (*reduce_scatter_f32)(hb_comm *c, float *buf, const size_t *off);
  int (*allgather_f32)(hb_comm *c, float *buf, const size_t *off);
  int (*broadcast)(hb_comm *c, void *buf, size_t bytes, int root);
  int (*barrier)(hb_comm *c);
  void (*abort)(hb_comm *c, int code);
  void (*free)(hb_comm *c);
  // Overlap (comm_allreduce_async_*): start the all-reduce of one bucket without waiting (mpi: on
  // the communication thread; nccl: on the communicator's stream after an event recorded on
  // producer's ops stream); wait for every started bucket. NULL: buckets run synchronously.
  int (*bucket_start)(hb_comm *c, float *buf, size_t n, struct hb_ctx *producer);
  int (*bucket_wait)(hb_comm *c);
} hb_comm_ops;

struct hb_comm {
  hb_comm_kind kind;
  int rank, world, local_rank;
  double timeout_s;             // deadline of one collective
  size_t bucket_floats;         // all-reduce bucket size
  char launcher[16];            // "single", "mpirun", "slurm", "env"
  const hb_comm_ops *ops;
  void *impl;
  const char *what;             // label of the current collective (error messages)
  int thread_level;             // mpi: the MPI thread level provided (MPI_THREAD_*); -1 elsewhere
};

typedef struct {
  const char *backend;          // "auto" (default): single at world 1, else nccl for device buffers, mpi for host
                                // ones; "single", "mpi", "nccl"; env HUBERT_COMM_BACKEND overrides
  int device_buffers;           // 1: the trainer's buffers are on the GPU
  double timeout_s;             // <= 0: 600; env HUBERT_COMM_TIMEOUT overrides
  size_t bucket_bytes;          // <= 0: 25 MiB
  void *stream;                 // nccl: cudaStream_t the collectives run on (NULL: legacy default)
} hb_comm_opts;

// Launcher environment (no communication): *world = 1 and *rank = 0 when none is set.
void comm_env(int *rank, int *world, int *local_rank, char launcher[16]);

int comm_init(hb_comm *c, const hb_comm_opts *o);
void comm_free(hb_comm *c);

// Sum over ranks, in place; every rank receives the same bits. n floats are reduced in buckets of
// bucket_floats, all in flight at once.
int comm_allreduce_f32(hb_comm *c, float *buf, size_t n);
int comm_allreduce_f64(hb_comm *c, double *buf, size_t n);  // host buffer
// off[0..world]: rank r owns [off[r], off[r+1]) (ascending, off[0] = 0).
// reduce_scatter: on return rank r's own range holds the sum over ranks (the rest is undefined).
int comm_reduce_scatter_f32(hb_comm *c, float *buf, const size_t *off);
// allgather: rank r contributes its range; on return every rank holds every range.
int comm_allgather_f32(hb_comm *c, float *buf, const size_t *off);
int comm_broadcast(hb_comm *c, void *buf, size_t bytes, int root);

// Overlapped all-reduce of a gradient buffer produced in pieces (docs/distributed.md): the same
// buckets (bucket_floats each, from buf[0]) and the same per-bucket algorithm as
// comm_allreduce_f32, hence bitwise the same result; a bucket starts as soon as all of its floats
// were marked ready (any order, each float once), while the caller keeps computing. The order in
// which buckets start must be the same on every rank (it is when every rank marks the same ranges
// in the same order). producer: the ops context writing buf (nccl waits on its stream; NULL on CPU).
// Between begin and wait the caller makes no other comm_* call.
typedef struct {
  hb_comm *c;
  struct hb_ctx *producer;
  float *buf;
  size_t n, nb;                 // floats, buckets
  size_t *left;                 // (nb) floats of each bucket not marked ready yet
  size_t started;               // buckets started
} hb_comm_async;
int comm_allreduce_async_begin(hb_comm *c, hb_comm_async *a, float *buf, size_t n, struct hb_ctx *producer);
int comm_allreduce_async_ready(hb_comm_async *a, size_t off, size_t len);
// Waits for every bucket (all must have been started: every float marked) and releases a.
int comm_allreduce_async_wait(hb_comm_async *a);
// Releases a without waiting (error paths: the job is being aborted).
void comm_allreduce_async_free(hb_comm_async *a);
// 0 when this communicator can overlap (mpi: MPI_THREAD_SERIALIZED or better), else -1 with a
// message naming the fix (distributed_training.overlap_comm: false).
int comm_async_check(const hb_comm *c);
int comm_barrier(hb_comm *c);
// Stops every rank of the job with exit status code (never returns). Prints msg (with the rank)
// to stderr first when msg is not NULL.
void comm_abort(hb_comm *c, int code, const char *msg);

// Even partition of n floats over world ranks, each range a multiple of align floats (the last
// may be shorter or empty): off[0..world].
void comm_partition(size_t n, int world, size_t align, size_t *off);

// Backend constructors (comm.c dispatches). Each returns -1 with hb_fail when the backend was not
// built or cannot start.
int comm_mpi_init(hb_comm *c, const hb_comm_opts *o);
int comm_nccl_init(hb_comm *c, const hb_comm_opts *o);
// 1 when this build has the backend.
int comm_have_mpi(void);
int comm_have_nccl(void);

#endif
