// Internals shared by train/loader.c (index, epoch plans, batch building) and
// train/loader_queue.c (prefetch threads, ordered queue, positions).
#ifndef HB_LOADER_INTERNAL_H
#define HB_LOADER_INTERNAL_H

#include <hdf5.h>
#include <pthread.h>
#include <stdint.h>

#include "train/loader.h"

typedef struct {
  char *path;
  int64_t U;
  int64_t *audio_off;                      // (U+1)
  int64_t *lab_off[HB_LOADER_MAX_SETS];    // (U+1) per requested label set
  int32_t *topic[HB_LOADER_MAX_SETS];      // (U) per requested topic set
} loader_shard;

// One epoch's batches for this rank: utterances of batch i are utt[start[i] .. start[i+1]).
typedef struct {
  int valid;
  int64_t epoch;
  int64_t first_seq;      // queue sequence number of batch 0
  int64_t n;              // batches of this rank
  int32_t *utt;           // kept-utterance ids (<= N + pads)
  int64_t *start;         // (n+1)
  int64_t *gbatch;        // (n) number of the batch in the global (all-rank) list
  uint8_t *is_pad;        // (n)
} loader_plan;

// A worker's open files (small LRU) and scratch memory.
typedef struct {
  int shard;              // -1 = empty
  hid_t file, audio;
  hid_t units[HB_LOADER_MAX_SETS];
  uint64_t used;
} loader_open_file;

#define LOADER_CACHE 4

typedef struct {
  struct hb_loader *L;
  pthread_t thread;
  int started;
  loader_open_file cache[LOADER_CACHE];
  uint64_t tick;
  int16_t *pcm;
  size_t pcm_cap;
  int32_t *lab;
  size_t lab_cap;
  int64_t *starts;
  size_t starts_cap;
} loader_worker;

enum { SLOT_FREE, SLOT_BUILDING, SLOT_READY, SLOT_ERROR };

typedef struct {
  int state;
  int64_t seq;
  hb_batch b;
  size_t cap_audio, cap_B, cap_lab[HB_LOADER_MAX_SETS];
  char err[1024];
} loader_slot;

struct hb_loader {
  hb_loader_opts o;
  int sample_rate;
  int n_shards;
  loader_shard *shards;
  int64_t N, skipped, total_samples;
  int32_t *u_shard, *u_index, *u_len;   // (N) compact index
  double lab_rate[HB_LOADER_MAX_SETS];
  int lab_k[HB_LOADER_MAX_SETS], topic_k[HB_LOADER_MAX_SETS];
  char *lab_dset[HB_LOADER_MAX_SETS];   // "labels/<name>/units"

  // queue (loader_queue.c); everything below is guarded by mu
  pthread_mutex_t mu;
  pthread_cond_t cv_work, cv_ready;
  int nw;                   // worker threads
  loader_worker *workers;   // (max(nw, 1)); workers[0] builds inline when nw == 0
  int depth;
  loader_slot *slots;       // (depth)
  loader_plan plans[2];     // epoch e lives in plans[e % 2]
  int64_t latest_epoch;     // newest planned epoch
  int64_t claim_seq, consume_seq, release_seq;
  int holding;              // the caller holds slot (consume_seq - 1)
  int stop;
  int failed;               // sticky: a batch failed, every later call fails
  char fatal[1024];         // planning error seen by a worker
  hb_loader_pos pos;
};

// loader.c
int loader_plan_epoch(const struct hb_loader *L, int64_t epoch, loader_plan *p);
void loader_plan_free(loader_plan *p);
int loader_build_batch(struct hb_loader *L, loader_worker *w, const loader_plan *p, int64_t i, loader_slot *s);
void loader_worker_close(loader_worker *w);
void loader_index_free(struct hb_loader *L);
int loader_index_build(struct hb_loader *L);

// loader_queue.c
int loader_queue_start(struct hb_loader *L);
void loader_queue_stop(struct hb_loader *L);

#endif
