// Loader prefetch: worker threads build batches into a ring of queue_depth slots; the consumer
// takes them in sequence order, so the output never depends on thread timing.
//
// Sequence numbers count this rank's batches from the start position. Invariants (under mu):
//   release_seq <= consume_seq <= claim_seq <= release_seq + depth,
//   slot[s % depth] holds batch s for release_seq <= s < claim_seq,
//   plans[e % 2] is epoch e; epoch latest_epoch + 1 is planned only once every batch of
//   latest_epoch - 1 is released (its buffer is reused).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "train/loader_internal.h"

static void worker_reset(loader_worker *w, hb_loader *L) {
  memset(w, 0, sizeof *w);
  w->L = L;
  for (int i = 0; i < LOADER_CACHE; i++) {
    w->cache[i].shard = -1;
    w->cache[i].file = w->cache[i].audio = -1;
    for (int j = 0; j < HB_LOADER_MAX_SETS; j++) w->cache[i].units[j] = -1;
  }
}

// Finds the plan holding sequence number seq, planning the next epoch when allowed.
// Returns the plan, NULL with *wait = 1 when the caller must wait, NULL with *wait = 0 on error.
static loader_plan *plan_for(hb_loader *L, int64_t seq, int *wait) {
  *wait = 0;
  loader_plan *p = &L->plans[L->latest_epoch % 2];
  if (seq < p->first_seq + p->n) {
    if (seq >= p->first_seq) return p;
    loader_plan *q = &L->plans[(L->latest_epoch + 1) % 2];
    return q->valid && q->epoch == L->latest_epoch - 1 ? q : p;
  }
  if (L->release_seq < p->first_seq) {   // epoch latest - 1 still in use
    *wait = 1;
    return NULL;
  }
  loader_plan *q = &L->plans[(L->latest_epoch + 1) % 2];
  int64_t first = p->first_seq + p->n;
  if (loader_plan_epoch(L, L->latest_epoch + 1, q)) {
    snprintf(L->fatal, sizeof L->fatal, "epoch %lld plan: %s", (long long)(L->latest_epoch + 1), hb_errmsg());
    return NULL;
  }
  q->first_seq = first;
  L->latest_epoch++;
  return q;
}

// Claims the next batch to build; returns 0 with (p, i, slot), 1 to stop. Called with mu held.
static int claim(hb_loader *L, loader_plan **p, int64_t *i, loader_slot **s) {
  for (;;) {
    if (L->stop || L->fatal[0]) return 1;
    int wait = 1;
    loader_plan *q = NULL;
    if (L->claim_seq < L->release_seq + L->depth) q = plan_for(L, L->claim_seq, &wait);
    if (q) {
      int64_t seq = L->claim_seq++;
      *p = q;
      *i = seq - q->first_seq;
      *s = &L->slots[seq % L->depth];
      (*s)->state = SLOT_BUILDING;
      (*s)->seq = seq;
      return 0;
    }
    if (!wait) {
      pthread_cond_broadcast(&L->cv_ready);
      return 1;
    }
    if (L->nw == 0) return 1;   // inline mode never waits (the caller released first)
    pthread_cond_wait(&L->cv_work, &L->mu);
  }
}

static void build_into(hb_loader *L, loader_worker *w, loader_plan *p, int64_t i, loader_slot *s) {
  hb_clear_error();
  int rc = loader_build_batch(L, w, p, i, s);
  if (rc) snprintf(s->err, sizeof s->err, "%s", hb_errmsg());
  pthread_mutex_lock(&L->mu);
  s->state = rc ? SLOT_ERROR : SLOT_READY;
  pthread_cond_broadcast(&L->cv_ready);
  pthread_mutex_unlock(&L->mu);
}

static void *worker_main(void *arg) {
  loader_worker *w = arg;
  hb_loader *L = w->L;
  pthread_mutex_lock(&L->mu);
  for (;;) {
    loader_plan *p;
    int64_t i;
    loader_slot *s;
    if (claim(L, &p, &i, &s)) break;
    pthread_mutex_unlock(&L->mu);
    build_into(L, w, p, i, s);
    pthread_mutex_lock(&L->mu);
  }
  pthread_mutex_unlock(&L->mu);
  loader_worker_close(w);
  return NULL;
}

void loader_queue_stop(hb_loader *L) {
  pthread_mutex_lock(&L->mu);
  L->stop = 1;
  pthread_cond_broadcast(&L->cv_work);
  pthread_mutex_unlock(&L->mu);
  for (int k = 0; k < L->nw; k++)
    if (L->workers[k].started) {
      pthread_join(L->workers[k].thread, NULL);
      L->workers[k].started = 0;
    }
  loader_worker_close(&L->workers[0]);
}

// Plans the position's epoch and starts the workers from it.
int loader_queue_start(hb_loader *L) {
  hb_loader_pos pos = L->pos;
  loader_plan_free(&L->plans[0]);
  loader_plan_free(&L->plans[1]);
  loader_plan *p = &L->plans[pos.epoch % 2];
  HB_TRY(loader_plan_epoch(L, pos.epoch, p));
  if (pos.batch > p->n)
    return hb_fail("loader position: batch %lld of epoch %lld, but this rank has %lld batches in that epoch",
                   (long long)pos.batch, (long long)pos.epoch, (long long)p->n);
  p->first_seq = -pos.batch;   // sequence 0 = the position's batch
  L->latest_epoch = pos.epoch;
  L->claim_seq = L->consume_seq = L->release_seq = 0;
  L->holding = L->stop = L->failed = 0;
  L->fatal[0] = 0;
  for (int k = 0; k < L->depth; k++) L->slots[k].state = SLOT_FREE;
  for (int k = 0; k < L->nw; k++) {
    worker_reset(&L->workers[k], L);
    if (pthread_create(&L->workers[k].thread, NULL, worker_main, &L->workers[k])) {
      loader_queue_stop(L);
      return hb_fail("cannot start loader thread %d of %d", k + 1, L->nw);
    }
    L->workers[k].started = 1;
  }
  if (L->nw == 0) worker_reset(&L->workers[0], L);
  return 0;
}

int loader_init(const hb_loader_opts *o, hb_loader **out) {
  *out = NULL;
  if (o->n_labels < 0 || o->n_labels > HB_LOADER_MAX_SETS || o->n_topics < 0 || o->n_topics > HB_LOADER_MAX_SETS)
    return hb_fail("loader: at most %d label sets and %d topic sets", HB_LOADER_MAX_SETS, HB_LOADER_MAX_SETS);
  if (o->max_tokens < 1) return hb_fail("loader: dataset.max_tokens = %lld must be positive", (long long)o->max_tokens);
  if (o->world < 1 || o->rank < 0 || o->rank >= o->world)
    return hb_fail("loader: rank %d is not in [0, world = %d)", o->rank, o->world);
  if (o->num_workers < 0 || o->num_workers > 256) return hb_fail("loader: num_workers = %d out of [0, 256]", o->num_workers);
  if (o->queue_depth < 0 || o->queue_depth > 4096) return hb_fail("loader: queue depth %d out of [1, 4096]", o->queue_depth);
  if (o->min_sample_size < 0 || o->max_keep_size < 0 || o->max_sample_size < 0 || o->max_sentences < 0 || o->bucket_window < 0)
    return hb_fail("loader: sample sizes, max_sentences and bucket_window must not be negative");
  if (o->start.epoch < 0 || o->start.batch < 0) return hb_fail("loader: negative start position");
  hb_loader *L = hb_calloc(1, sizeof *L);
  if (!L) return -1;
  L->o = *o;
  L->depth = o->queue_depth ? o->queue_depth : 4;
  L->nw = o->num_workers;
  L->pos = o->start;
  if (L->pos.epoch == 0) L->pos = (hb_loader_pos){1, 0};
  pthread_mutex_init(&L->mu, NULL);
  pthread_cond_init(&L->cv_work, NULL);
  pthread_cond_init(&L->cv_ready, NULL);
  int rc = loader_index_build(L);
  if (!rc && (!(L->slots = hb_calloc((size_t)L->depth, sizeof *L->slots)) ||
              !(L->workers = hb_calloc((size_t)(L->nw ? L->nw : 1), sizeof *L->workers))))
    rc = -1;
  for (int k = 0; !rc && k < (L->nw ? L->nw : 1); k++) worker_reset(&L->workers[k], L);
  if (!rc) rc = loader_queue_start(L);
  if (rc) {
    loader_free(L);
    return -1;
  }
  *out = L;
  return 0;
}

void loader_free(hb_loader *L) {
  if (!L) return;
  if (L->workers) loader_queue_stop(L);
  for (int k = 0; L->slots && k < L->depth; k++) {
    hb_batch *b = &L->slots[k].b;
    free(b->audio);
    free(b->pad_mask);
    free(b->lengths);
    free(b->utt);
    for (int j = 0; j < HB_LOADER_MAX_SETS; j++) {
      free(b->labels[j]);
      free(b->label_lengths[j]);
      free(b->topics[j]);
    }
  }
  free(L->slots);
  free(L->workers);
  loader_plan_free(&L->plans[0]);
  loader_plan_free(&L->plans[1]);
  loader_index_free(L);
  pthread_mutex_destroy(&L->mu);
  pthread_cond_destroy(&L->cv_work);
  pthread_cond_destroy(&L->cv_ready);
  free(L);
}

int loader_next_batch(hb_loader *L, const hb_batch **out) {
  *out = NULL;
  pthread_mutex_lock(&L->mu);
  if (L->holding) {   // the caller is done with the previous batch
    L->slots[L->release_seq % L->depth].state = SLOT_FREE;
    L->release_seq++;
    L->holding = 0;
    pthread_cond_broadcast(&L->cv_work);
  }
  if (L->failed) {
    pthread_mutex_unlock(&L->mu);
    return hb_fail("loader: stopped after an earlier error");
  }
  loader_slot *s = &L->slots[L->consume_seq % L->depth];
  if (L->nw == 0 && L->claim_seq == L->consume_seq) {   // build inline
    loader_plan *p;
    int64_t i;
    loader_slot *c;
    if (!claim(L, &p, &i, &c)) {
      pthread_mutex_unlock(&L->mu);
      build_into(L, &L->workers[0], p, i, c);
      pthread_mutex_lock(&L->mu);
    }
  }
  while (!(L->claim_seq > L->consume_seq && s->seq == L->consume_seq && (s->state == SLOT_READY || s->state == SLOT_ERROR)) &&
         !L->fatal[0])
    pthread_cond_wait(&L->cv_ready, &L->mu);
  int rc = 0;
  if (s->state == SLOT_ERROR || (L->fatal[0] && !(s->seq == L->consume_seq && s->state == SLOT_READY && L->claim_seq > L->consume_seq))) {
    L->failed = 1;
    rc = hb_fail("%s", s->state == SLOT_ERROR && s->seq == L->consume_seq ? s->err : L->fatal);
  } else {
    *out = &s->b;
    L->holding = 1;
    L->consume_seq++;
    L->pos = s->b.index + 1 < s->b.n_batches ? (hb_loader_pos){s->b.epoch, s->b.index + 1} : (hb_loader_pos){s->b.epoch + 1, 0};
  }
  pthread_mutex_unlock(&L->mu);
  return rc;
}

void loader_position(const hb_loader *L, hb_loader_pos *p) { *p = L->pos; }

int loader_seek(hb_loader *L, hb_loader_pos p) {
  if (p.epoch < 1 || p.batch < 0) return hb_fail("loader position: epoch %lld batch %lld is not a position", (long long)p.epoch, (long long)p.batch);
  loader_queue_stop(L);
  L->pos = p;
  return loader_queue_start(L);
}

int64_t loader_num_utts(const hb_loader *L) { return L->N; }
int64_t loader_num_skipped(const hb_loader *L) { return L->skipped; }
int64_t loader_total_samples(const hb_loader *L) { return L->total_samples; }
int loader_sample_rate(const hb_loader *L) { return L->sample_rate; }
int loader_label_k(const hb_loader *L, int j) { return L->lab_k[j]; }
double loader_label_rate(const hb_loader *L, int j) { return L->lab_rate[j]; }
int loader_topic_k(const hb_loader *L, int j) { return L->topic_k[j]; }

int loader_epoch_batches(hb_loader *L, int64_t epoch, int64_t *n) {
  loader_plan p = {0};
  HB_TRY(loader_plan_epoch(L, epoch, &p));
  *n = p.n;
  loader_plan_free(&p);
  return 0;
}

int loader_utt_info(const hb_loader *L, int64_t u, const char **shard, int64_t *index, int64_t *len) {
  if (u < 0 || u >= L->N) return hb_fail("loader: utterance %lld out of range [0, %lld)", (long long)u, (long long)L->N);
  if (shard) *shard = L->shards[L->u_shard[u]].path;
  if (index) *index = L->u_index[u];
  if (len) *len = L->u_len[u];
  return 0;
}
