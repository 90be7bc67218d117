// MPI backend of train/comm.h: CPU buffers, non-blocking collectives polled against a deadline.
//
// Late-rank detection: every collective first posts a tiny "arrival" message (its sequence
// number) to every peer on a separate communicator and a receive from every peer. The collective
// and the arrivals are polled together. When the deadline passes, a rank sends a "timed out"
// notice to every peer and listens for theirs for a grace period (min(timeout, 3 s)): the healthy
// ranks are all polling, so they answer; the peers that neither arrived nor answered are the lost
// or hung ones (a rank stopped inside the collective arrived but cannot answer), and the error
// names them (the trainer then aborts the job).
// A rank that dies outright is also noticed by mpirun, which stops the job and names it.
#include "train/comm.h"

#ifdef HUBERT_HAVE_MPI

#include <limits.h>
#include <mpi.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"

int comm_have_mpi(void) { return 1; }

enum { TAG_ARRIVE = 7001, TAG_NOTICE = 7002, TAG_RING = 7003 };

typedef struct {
  MPI_Comm coll, p2p;       // duplicates of MPI_COMM_WORLD: collectives / arrival messages
  int inited_here;
  long seq;                 // collectives started on this rank
  long arr_out;             // the sequence number sent to every peer
  long *arr_in;             // (world) received sequence numbers
  MPI_Request *arr_req;     // (2 world) receives [0, world), sends [world, 2 world)
  long note_out, *note_in;  // "timed out" notices: receives posted at start-up, one per peer
  MPI_Request *note_req;    // (2 world) as arr_req
  // Overlap: a communication thread runs queued buckets (bucket_start) while the caller computes.
  // MPI_THREAD_SERIALIZED suffices: between bucket_start and bucket_wait only this thread calls
  // MPI (the caller makes no comm_* call, comm.h), and the queue's mutex orders the hand-overs.
  pthread_t th;
  int th_on, stop, th_err;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  float **qbuf;             // queued buckets [qhead, qtail): start and length
  size_t *qn, qcap, qhead, qtail;
  float *th_tmp;            // ring scratch of the thread
  char th_msg[1024];        // the thread's error (hb_fail messages are thread-local)
  int in_thread;            // 1 while the thread polls: nap between polls instead of spinning
} mpi_impl;

static int mpi_fail(int rc, const char *call, const char *func, int line) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error %d", rc);
  return hb_fail("MPI: %s failed in %s (%s:%d): %s", call, func, __FILE__, line, msg);
}
#define CHECK_MPI(call)                                                  \
  do {                                                                   \
    int rc_ = (call);                                                    \
    if (rc_ != MPI_SUCCESS) return mpi_fail(rc_, #call, __func__, __LINE__); \
  } while (0)

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// Posts this collective's arrival messages.
static int arrive(hb_comm *c) {
  mpi_impl *m = c->impl;
  m->seq++;
  m->arr_out = m->seq;
  for (int p = 0; p < c->world; p++) {
    m->arr_req[p] = m->arr_req[c->world + p] = MPI_REQUEST_NULL;
    if (p == c->rank) continue;
    CHECK_MPI(MPI_Irecv(&m->arr_in[p], 1, MPI_LONG, p, TAG_ARRIVE, m->p2p, &m->arr_req[p]));
    CHECK_MPI(MPI_Isend(&m->arr_out, 1, MPI_LONG, p, TAG_ARRIVE, m->p2p, &m->arr_req[c->world + p]));
  }
  return 0;
}

// After a timeout: tell every peer, listen for their notices, name the silent ones.
static int diagnose(hb_comm *c) {
  mpi_impl *m = c->impl;
  const int W = c->world;
  m->note_out = m->seq;
  for (int p = 0; p < W; p++)
    if (p != c->rank) CHECK_MPI(MPI_Isend(&m->note_out, 1, MPI_LONG, p, TAG_NOTICE, m->p2p, &m->note_req[W + p]));
  const double grace = c->timeout_s < 3 ? c->timeout_s : 3, until = now_s() + grace;
  int all = 0;
  while (!all && now_s() < until) {
    CHECK_MPI(MPI_Testall(W, m->note_req, &all, MPI_STATUSES_IGNORE));
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  char never[512], silent[512];
  size_t kn = 0, ks = 0;
  int nn = 0, ns = 0;
  never[0] = silent[0] = 0;
  for (int p = 0; p < W; p++) {
    if (p == c->rank) continue;
    int arrived = 1, answered = 1;
    CHECK_MPI(MPI_Test(&m->arr_req[p], &arrived, MPI_STATUS_IGNORE));
    CHECK_MPI(MPI_Test(&m->note_req[p], &answered, MPI_STATUS_IGNORE));
    if (answered) continue;
    if (!arrived && kn + 16 < sizeof never) kn += (size_t)snprintf(never + kn, sizeof never - kn, "%s%d", nn++ ? ", " : "", p);
    if (arrived && ks + 16 < sizeof silent) ks += (size_t)snprintf(silent + ks, sizeof silent - ks, "%s%d", ns++ ? ", " : "", p);
  }
  if (nn || ns)
    return hb_fail("distributed: %s (collective #%ld) timed out after %.3g s (distributed_training.timeout): lost or "
                   "hung rank%s %s%s%s%s%s (killed, stopped, or stuck); stopping the job",
                   c->what, m->seq, c->timeout_s, nn + ns > 1 ? "s" : "", never, nn ? " never arrived" : "",
                   nn && ns ? "; " : "", silent, ns ? " arrived but stopped responding" : "");
  return hb_fail("distributed: %s (collective #%ld) did not complete within %.3g s although every rank is alive "
                 "(network or MPI transport problem); stopping the job", c->what, m->seq, c->timeout_s);
}

// Polls reqs[0..n) and the arrivals until all complete or the deadline passes.
static int wait_all(hb_comm *c, MPI_Request *reqs, int n) {
  mpi_impl *m = c->impl;
  const double start = now_s(), deadline = start + c->timeout_s;
  long polls = 0;
  for (;;) {
    int done = 0, arr = 0;
    CHECK_MPI(MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE));
    CHECK_MPI(MPI_Testall(2 * c->world, m->arr_req, &arr, MPI_STATUSES_IGNORE));
    if (done && arr) break;
    if (now_s() > deadline) return diagnose(c);
    if (m->in_thread) {   // the communication thread shares the cores with the backward: do not spin
      if (__atomic_load_n(&m->stop, __ATOMIC_ACQUIRE)) return hb_fail("distributed: %s cancelled (the communicator is shutting down)", c->what);
      struct timespec ts = {0, 50000};
      nanosleep(&ts, NULL);
      continue;
    }
    // MPI progresses a transfer only inside MPI_Test: poll (yielding the core every 16 polls:
    // ranks may share cores) for the first 0.5 s; then 100 us naps (a peer busy elsewhere,
    // e.g. rank 0 writing a checkpoint).
    if (++polls % 64 == 0 && now_s() - start > 0.5) {
      struct timespec ts = {0, 100000};
      nanosleep(&ts, NULL);
    } else if (polls % 16 == 0) {
      sched_yield();
    }
  }
  for (int p = 0; p < c->world; p++)
    if (p != c->rank && m->arr_in[p] != m->seq)
      return hb_fail("distributed: %s: rank %d is at collective #%ld, this rank at #%ld (the ranks run different "
                     "programs or configs)", c->what, p, m->arr_in[p], m->seq);
  return 0;
}

static int to_int(size_t n, const char *what) {
  if (n > (size_t)INT_MAX) return hb_fail("MPI: %s of %zu elements exceeds INT_MAX", what, n), -1;
  return (int)n;
}

// Ring reduce-scatter (as NCCL's): W - 1 steps; at step s rank r sends its partial sum of range
// (r - s - 1) mod W to rank r + 1 and adds the partial of range (r - s - 2) mod W from rank r - 1,
// so after the last step rank r holds the full sum of its own range r. Each range is summed once,
// along a fixed order, which makes the all-reduce the same bits on every rank. Point-to-point
// messages also run 2-4x faster than OpenMPI's generic collectives over shared memory here.
static int ring_reduce_scatter(hb_comm *c, float *buf, const size_t *off, float *tmp) {
  mpi_impl *m = c->impl;
  const int W = c->world, r = c->rank, left = (r + W - 1) % W, right = (r + 1) % W;
  for (int s = 0; s < W - 1; s++) {
    const int cs = ((r - s - 1) % W + W) % W, cr = ((r - s - 2) % W + 2 * W) % W;
    const int ns = to_int(off[cs + 1] - off[cs], "ring chunk"), nr = to_int(off[cr + 1] - off[cr], "ring chunk");
    if (ns < 0 || nr < 0) return -1;
    MPI_Request q[2];
    CHECK_MPI(MPI_Irecv(tmp, nr, MPI_FLOAT, left, TAG_RING, m->coll, &q[0]));
    CHECK_MPI(MPI_Isend(buf + off[cs], ns, MPI_FLOAT, right, TAG_RING, m->coll, &q[1]));
    HB_TRY(wait_all(c, q, 2));
    float *dst = buf + off[cr];
    for (int i = 0; i < nr; i++) dst[i] += tmp[i];
  }
  return 0;
}

// Ring all-gather: at step s rank r forwards range (r - s) mod W to rank r + 1 and receives range
// (r - s - 1) mod W in place.
static int ring_allgather(hb_comm *c, float *buf, const size_t *off) {
  mpi_impl *m = c->impl;
  const int W = c->world, r = c->rank, left = (r + W - 1) % W, right = (r + 1) % W;
  for (int s = 0; s < W - 1; s++) {
    const int cs = ((r - s) % W + W) % W, cr = ((r - s - 1) % W + W) % W;
    const int ns = to_int(off[cs + 1] - off[cs], "ring chunk"), nr = to_int(off[cr + 1] - off[cr], "ring chunk");
    if (ns < 0 || nr < 0) return -1;
    MPI_Request q[2];
    CHECK_MPI(MPI_Irecv(buf + off[cr], nr, MPI_FLOAT, left, TAG_RING, m->coll, &q[0]));
    CHECK_MPI(MPI_Isend(buf + off[cs], ns, MPI_FLOAT, right, TAG_RING, m->coll, &q[1]));
    HB_TRY(wait_all(c, q, 2));
  }
  return 0;
}

static size_t max_range(const size_t *off, int W) {
  size_t mx = 1;
  for (int r = 0; r < W; r++)
    if (off[r + 1] - off[r] > mx) mx = off[r + 1] - off[r];
  return mx;
}

// One bucket: ring reduce-scatter + all-gather over an even partition (off: world + 1 slots; tmp:
// bn / world + 64 floats). The overlapped path runs exactly this per bucket.
static int bucket_allreduce(hb_comm *c, float *buf, size_t bn, size_t *off, float *tmp) {
  comm_partition(bn, c->world, 16, off);
  return arrive(c) || ring_reduce_scatter(c, buf, off, tmp) || ring_allgather(c, buf, off) ? -1 : 0;
}

// Buckets of bucket_floats.
static int mpi_allreduce_f32(hb_comm *c, float *buf, size_t n) {
  const int W = c->world;
  const size_t bf = c->bucket_floats;
  size_t *off = hb_malloc(sizeof(size_t) * (size_t)(W + 1));
  float *tmp = hb_malloc(sizeof(float) * ((bf < n ? bf : n) / (size_t)W + 64));
  int rc = off && tmp ? 0 : -1;
  for (size_t b0 = 0; !rc && b0 < n; b0 += bf) rc = bucket_allreduce(c, buf + b0, n - b0 < bf ? n - b0 : bf, off, tmp);
  free(off);
  free(tmp);
  return rc;
}

// ---- overlap: the communication thread ----

static void *comm_thread(void *arg) {
  hb_comm *c = arg;
  mpi_impl *m = c->impl;
  size_t off[1025];   // world <= 1024 for the thread (checked in bucket_start)
  pthread_mutex_lock(&m->mu);
  for (;;) {
    while (m->qhead == m->qtail && !m->stop) pthread_cond_wait(&m->cv, &m->mu);
    if (m->qhead == m->qtail) break;   // stop and nothing queued
    float *buf = m->qbuf[m->qhead];
    const size_t n = m->qn[m->qhead];
    const int skip = m->th_err || m->stop;
    pthread_mutex_unlock(&m->mu);
    int rc = 0;
    if (!skip) {
      m->in_thread = 1;
      rc = bucket_allreduce(c, buf, n, off, m->th_tmp);
      m->in_thread = 0;
    }
    pthread_mutex_lock(&m->mu);
    if (rc && !m->th_err) {
      m->th_err = 1;
      snprintf(m->th_msg, sizeof m->th_msg, "%s", hb_errmsg());
    }
    m->qhead++;
    pthread_cond_broadcast(&m->cv);
  }
  pthread_mutex_unlock(&m->mu);
  return NULL;
}

static int mpi_bucket_start(hb_comm *c, float *buf, size_t n, struct hb_ctx *producer) {
  (void)producer;   // CPU ops are synchronous: the range is final when it is marked
  mpi_impl *m = c->impl;
  if (c->world > 1024) return hb_fail("distributed: the overlapped all-reduce supports up to 1024 ranks");
  if (!m->th_on) {
    if (c->thread_level < 2) return comm_async_check(c);
    m->th_tmp = hb_malloc(sizeof(float) * (c->bucket_floats / (size_t)c->world + 64));
    if (!m->th_tmp) return hb_fail_prefix("communication thread scratch");
    if (pthread_mutex_init(&m->mu, NULL) || pthread_cond_init(&m->cv, NULL))
      return hb_fail("distributed: cannot create the communication thread's mutex");
    if (pthread_create(&m->th, NULL, comm_thread, c)) return hb_fail("distributed: cannot start the communication thread");
    m->th_on = 1;
  }
  pthread_mutex_lock(&m->mu);
  if (m->qtail == m->qcap) {   // grow (the thread reads entries only under the mutex)
    const size_t cap = m->qcap ? 2 * m->qcap : 64;
    float **qb = hb_realloc(m->qbuf, sizeof *qb * cap);
    if (qb) m->qbuf = qb;
    size_t *qn = qb ? hb_realloc(m->qn, sizeof *qn * cap) : NULL;
    if (qn) m->qn = qn;
    if (!qb || !qn) {
      pthread_mutex_unlock(&m->mu);
      return hb_fail_prefix("communication queue");
    }
    m->qcap = cap;
  }
  m->qbuf[m->qtail] = buf;
  m->qn[m->qtail] = n;
  m->qtail++;
  pthread_cond_broadcast(&m->cv);
  pthread_mutex_unlock(&m->mu);
  return 0;
}

static int mpi_bucket_wait(hb_comm *c) {
  mpi_impl *m = c->impl;
  if (!m->th_on) return 0;
  pthread_mutex_lock(&m->mu);
  while (m->qhead != m->qtail) pthread_cond_wait(&m->cv, &m->mu);
  m->qhead = m->qtail = 0;   // the thread is idle: reuse the queue from the start
  const int err = m->th_err;
  m->th_err = 0;
  pthread_mutex_unlock(&m->mu);
  if (err) return hb_fail("%s", m->th_msg);
  return 0;
}

// Doubles: gather every rank's vector, sum in rank order (the same bits everywhere).
static int mpi_allreduce_f64(hb_comm *c, double *buf, size_t n) {
  mpi_impl *m = c->impl;
  int ni = to_int(n, "all-reduce");
  if (ni < 0) return -1;
  double *all = hb_malloc(sizeof(double) * n * (size_t)c->world + 8);
  if (!all) return -1;
  MPI_Request req;
  int rc = arrive(c);
  if (!rc) {
    int st = MPI_Iallgather(buf, ni, MPI_DOUBLE, all, ni, MPI_DOUBLE, m->coll, &req);
    rc = st != MPI_SUCCESS ? mpi_fail(st, "MPI_Iallgather", __func__, __LINE__) : wait_all(c, &req, 1);
  }
  if (!rc)
    for (size_t i = 0; i < n; i++) {
      double s = 0;
      for (int r = 0; r < c->world; r++) s += all[(size_t)r * n + i];
      buf[i] = s;
    }
  free(all);
  return rc;
}

static int mpi_reduce_scatter_f32(hb_comm *c, float *buf, const size_t *off) {
  float *tmp = hb_malloc(sizeof(float) * max_range(off, c->world));
  int rc = tmp && !arrive(c) ? ring_reduce_scatter(c, buf, off, tmp) : -1;
  free(tmp);
  return rc;
}

static int mpi_allgather_f32(hb_comm *c, float *buf, const size_t *off) {
  HB_TRY(arrive(c));
  return ring_allgather(c, buf, off);
}

static int mpi_broadcast(hb_comm *c, void *buf, size_t bytes, int root) {
  mpi_impl *m = c->impl;
  const size_t chunk = (size_t)1 << 30;
  for (size_t o = 0; o < bytes || (bytes == 0 && o == 0); o += chunk) {
    size_t nb = bytes - o < chunk ? bytes - o : chunk;
    MPI_Request req;
    HB_TRY(arrive(c));
    CHECK_MPI(MPI_Ibcast((char *)buf + o, (int)nb, MPI_BYTE, root, m->coll, &req));
    HB_TRY(wait_all(c, &req, 1));
    if (bytes == 0) break;
  }
  return 0;
}

static int mpi_barrier(hb_comm *c) {
  mpi_impl *m = c->impl;
  MPI_Request req;
  HB_TRY(arrive(c));
  CHECK_MPI(MPI_Ibarrier(m->coll, &req));
  return wait_all(c, &req, 1);
}

static void mpi_abort(hb_comm *c, int code) {
  (void)c;
  MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
  exit(code ? code : 1);
}

static void mpi_free(hb_comm *c) {
  mpi_impl *m = c->impl;
  if (!m) return;
  if (m->th_on) {   // stop the communication thread (a bucket in flight gives up at its next poll)
    pthread_mutex_lock(&m->mu);
    __atomic_store_n(&m->stop, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->th, NULL);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    m->th_on = 0;
  }
  free(m->qbuf);
  free(m->qn);
  free(m->th_tmp);
  int fin = 0;
  MPI_Finalized(&fin);
  if (!fin) {
    for (int p = 0; m->note_req && p < c->world; p++)   // the notice receives still posted
      if (m->note_req[p] != MPI_REQUEST_NULL) {
        MPI_Cancel(&m->note_req[p]);
        MPI_Request_free(&m->note_req[p]);
      }
    if (m->coll != MPI_COMM_NULL) MPI_Comm_free(&m->coll);
    if (m->p2p != MPI_COMM_NULL) MPI_Comm_free(&m->p2p);
    if (m->inited_here) MPI_Finalize();
  }
  free(m->arr_in);
  free(m->arr_req);
  free(m->note_in);
  free(m->note_req);
  free(m);
  c->impl = NULL;
}

static const hb_comm_ops mpi_ops = {mpi_allreduce_f32, mpi_allreduce_f64, mpi_reduce_scatter_f32, mpi_allgather_f32,
                                    mpi_broadcast,     mpi_barrier,       mpi_abort,              mpi_free,
                                    mpi_bucket_start,  mpi_bucket_wait};

int comm_mpi_init(hb_comm *c, const hb_comm_opts *o) {
  (void)o;
  mpi_impl *m = hb_calloc(1, sizeof *m);
  if (!m) return -1;
  m->coll = m->p2p = MPI_COMM_NULL;
  c->impl = m;
  c->ops = &mpi_ops;
  c->kind = HB_COMM_MPI;
  int inited = 0, provided = 0;
  CHECK_MPI(MPI_Initialized(&inited));
  // SERIALIZED: the overlapped all-reduce calls MPI from a communication thread, never at the same
  // time as the main thread (OpenMPI 4.1 provides up to MULTIPLE). A lower level only disables the
  // overlap (comm_async_check says so).
  if (!inited) {
    CHECK_MPI(MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided));
    m->inited_here = 1;
  } else {
    CHECK_MPI(MPI_Query_thread(&provided));
  }
  c->thread_level = provided == MPI_THREAD_MULTIPLE ? 3 : provided == MPI_THREAD_SERIALIZED ? 2
                  : provided == MPI_THREAD_FUNNELED ? 1 : 0;
  CHECK_MPI(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  int rank, world;
  CHECK_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
  CHECK_MPI(MPI_Comm_size(MPI_COMM_WORLD, &world));
  if (world != c->world || rank != c->rank)
    return hb_fail("comm: the %s environment says rank %d of %d but MPI says rank %d of %d (srun needs --mpi=pmix "
                   "or pmi2; mpirun and the library must come from the same MPI)",
                   c->launcher, c->rank, c->world, rank, world);
  CHECK_MPI(MPI_Comm_dup(MPI_COMM_WORLD, &m->coll));
  CHECK_MPI(MPI_Comm_dup(MPI_COMM_WORLD, &m->p2p));
  CHECK_MPI(MPI_Comm_set_errhandler(m->coll, MPI_ERRORS_RETURN));
  CHECK_MPI(MPI_Comm_set_errhandler(m->p2p, MPI_ERRORS_RETURN));
  MPI_Comm node;
  CHECK_MPI(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node));
  CHECK_MPI(MPI_Comm_rank(node, &c->local_rank));
  CHECK_MPI(MPI_Comm_free(&node));
  m->arr_in = hb_calloc((size_t)world, sizeof *m->arr_in);
  m->arr_req = hb_malloc(sizeof(MPI_Request) * 2 * (size_t)world);
  m->note_in = hb_calloc((size_t)world, sizeof *m->note_in);
  m->note_req = hb_malloc(sizeof(MPI_Request) * 2 * (size_t)world);
  if (!m->arr_in || !m->arr_req || !m->note_in || !m->note_req) return -1;
  for (int p = 0; p < 2 * world; p++) m->note_req[p] = MPI_REQUEST_NULL;
  for (int p = 0; p < world; p++)
    if (p != rank) CHECK_MPI(MPI_Irecv(&m->note_in[p], 1, MPI_LONG, p, TAG_NOTICE, m->p2p, &m->note_req[p]));
  c->what = "start-up barrier";
  return mpi_barrier(c);
}

#else  // no MPI in this build

#include "common/error.h"

int comm_have_mpi(void) { return 0; }
int comm_mpi_init(hb_comm *c, const hb_comm_opts *o) {
  (void)c; (void)o;
  return hb_fail("comm: this build has no MPI (install libopenmpi-dev and re-run cmake)");
}

#endif
