// Loader-alone benchmark (scripts/bench_loader.sh builds and runs it): batches/s and
// audio-seconds/s of train/loader.h over shards, no model.
//   bench_loader SHARD_DIR LABELS TOPICS MAX_TOKENS MAX_SAMPLE WORKERS EPOCHS
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "common/error.h"
#include "train/loader.h"

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  if (argc != 8) {
    fprintf(stderr, "usage: bench_loader SHARD_DIR LABELS TOPICS MAX_TOKENS MAX_SAMPLE WORKERS EPOCHS\n");
    return 2;
  }
  const char *paths[1] = {argv[1]}, *labels[1] = {argv[2]}, *topics[1] = {argv[3]};
  hb_loader_opts o = {0};
  o.paths = paths;
  o.n_paths = 1;
  o.labels = labels;
  o.n_labels = argv[2][0] ? 1 : 0;
  o.topics = topics;
  o.n_topics = argv[3][0] ? 1 : 0;
  o.max_tokens = atoll(argv[4]);
  o.max_sample_size = atoll(argv[5]);
  o.min_sample_size = 32000;
  o.random_crop = o.shuffle = 1;
  o.seed = 1;
  o.world = 1;
  o.num_workers = atoi(argv[6]);
  o.queue_depth = 8;
  int epochs = atoi(argv[7]);
  double t0 = now_s();
  hb_loader *L;
  if (loader_init(&o, &L)) {
    fprintf(stderr, "error: %s\n", hb_errmsg());
    return 1;
  }
  double t1 = now_s();
  int64_t nb = 0, samples = 0;
  for (int e = 1; e <= epochs; e++) {
    int64_t n;
    if (loader_epoch_batches(L, e, &n)) return 1;
    for (int64_t k = 0; k < n; k++) {
      const hb_batch *b;
      if (loader_next_batch(L, &b)) {
        fprintf(stderr, "error: %s\n", hb_errmsg());
        return 1;
      }
      samples += b->n_samples;
      nb++;
    }
  }
  double t2 = now_s();
  double sec = t2 - t1, audio = samples / (double)loader_sample_rate(L);
  printf("workers %d: index %.3f s (%lld utterances, %.1f min); %lld batches in %.3f s: %.0f batches/s, %.0f audio-s/s (%.0fx real time)\n",
         o.num_workers, t1 - t0, (long long)loader_num_utts(L), loader_total_samples(L) / 16000.0 / 60, (long long)nb, sec, nb / sec,
         audio / sec, audio / sec);
  loader_free(L);
  return 0;
}
