// Streaming HDF5 data loader for pretraining (fairseq HubertDataset semantics, see docs/training.md).
//
// Index: at init every shard is opened once with shard_open() (which validates offsets, ids and
// label lengths), and only compact arrays are kept: per kept utterance (shard id, index in shard,
// length) and per shard its audio/label offsets and topic ids. Audio and labels are read from the
// files batch by batch; only the queue's batches are in memory.
//
// Epoch plan (a pure function of seed, epoch, world and the index):
//   1. shuffle the kept utterances (Philox, stream (seed, epoch)),
//   2. in windows of bucket_window utterances (0 = the whole epoch, fairseq's ordered_indices),
//      sort by size descending (ties keep the shuffled order),
//   3. batch greedily: a batch takes the next utterance while B x max(size) <= max_tokens and
//      B <= max_sentences (fairseq batch_by_size); size = min(len, max_sample_size), or len with
//      pad_audio (fairseq HubertDataset.size),
//   4. shuffle the batch list (stream (seed, epoch)),
//   5. until the count is a multiple of world, split the batch with the most utterances in two
//      (halves of a batch still respect max_tokens); only if every batch is a single utterance
//      are batches from the start of the list repeated (batch.is_pad = 1),
//   6. rank r takes batches r, r + world, r + 2 world, ... (fairseq's ShardedIterator).
// So every kept utterance is seen exactly once per epoch across ranks, and every rank gets the
// same number of batches.
//
// Batch (fairseq HubertDataset.collater): T = min(shortest, max_sample_size) (crop mode) or
// min(longest, max_sample_size) (pad_audio); longer utterances are cropped at a random start
// (random_crop; else start 0) drawn from the stream (seed, epoch, global batch number), so a batch
// does not depend on thread timing or on which batches came before it. Labels of set j (rate r)
// are cropped in step: frame start = round(start * r / sample_rate), frames = round(T * r /
// sample_rate), in crop mode also <= every row's remaining frames (round = half to even, as
// Python's round). Padding: audio 0, labels -1, pad_mask 1.
#ifndef HB_LOADER_H
#define HB_LOADER_H

#include <stdint.h>

#define HB_LOADER_MAX_SETS 8

typedef struct {
  int64_t epoch;   // 1-based, as fairseq
  int64_t batch;   // index of the next batch of this rank within the epoch
} hb_loader_pos;

typedef struct {
  const char *const *paths;   // shard files or directories (a directory: its *.h5, sorted)
  int n_paths;
  const char *const *labels;  // label set names to return (each must exist in every shard)
  int n_labels;
  const char *const *topics;  // topic set names to return
  int n_topics;
  int64_t max_tokens;         // samples per batch: B x T_max <= max_tokens (required)
  int64_t max_sentences;      // 0 = no limit (fairseq dataset.batch_size)
  int64_t min_sample_size;    // drop utterances shorter than this (fairseq min_sample_size)
  int64_t max_keep_size;      // drop utterances longer than this; 0 = keep all
  int64_t max_sample_size;    // crop to this many samples; 0 = no limit
  int pad_audio;              // 1: pad to the longest; 0: crop to the shortest (fairseq default)
  int random_crop;            // 1: random crop start (fairseq default); 0: start at 0
  int normalize;              // 1: layer-norm each waveform (fairseq task.normalize)
  int shuffle;                // 0: fixed size-sorted order, no shuffling (validation)
  int64_t bucket_window;      // utterances per length-sorting window; 0 = whole epoch
  uint64_t seed;
  int rank, world;            // world >= 1, 0 <= rank < world
  int num_workers;            // prefetch threads; 0 = build batches in loader_next_batch
  int queue_depth;            // batches prefetched ahead (>= 1; default 4 when 0)
  hb_loader_pos start;        // first batch to return; {0, 0} = {1, 0}
} hb_loader_opts;

typedef struct {
  int64_t epoch, index;       // position of this batch (index within the epoch, this rank)
  int64_t n_batches;          // batches of this rank in this epoch
  int B, T;                   // utterances, samples per row
  float *audio;               // (B, T), int16 / 32768 (or normalised)
  uint8_t *pad_mask;          // (B, T), 1 = padding
  int32_t *lengths;           // (B) valid samples per row
  int64_t *utt;               // (B) kept-utterance ids (loader_utt_info)
  int64_t n_samples;          // sum of lengths
  int is_pad;                 // 1: a repeated batch that only evens out the ranks (see step 5)
  int n_labels;
  int label_T[HB_LOADER_MAX_SETS];          // frames per row of set j
  int32_t *labels[HB_LOADER_MAX_SETS];      // (B, label_T[j]), -1 = padding
  int32_t *label_lengths[HB_LOADER_MAX_SETS]; // (B)
  int n_topics;
  int32_t *topics[HB_LOADER_MAX_SETS];      // (B)
} hb_batch;

typedef struct hb_loader hb_loader;

int loader_init(const hb_loader_opts *o, hb_loader **out);
void loader_free(hb_loader *L);   // stops and joins the workers

// The next batch (epochs follow each other without end). *b stays valid until the next call or
// loader_free. Errors from worker threads come back here with their message.
int loader_next_batch(hb_loader *L, const hb_batch **b);

// Position of the next batch to be returned; loader_seek(L, p) makes the loader return exactly
// the batches it would have returned from p on (restore after a checkpoint).
void loader_position(const hb_loader *L, hb_loader_pos *p);
int loader_seek(hb_loader *L, hb_loader_pos p);

// Index facts.
int64_t loader_num_utts(const hb_loader *L);        // kept utterances (after filters)
int64_t loader_num_skipped(const hb_loader *L);     // dropped by min/max size
int64_t loader_total_samples(const hb_loader *L);   // of the kept utterances
int loader_sample_rate(const hb_loader *L);
int loader_label_k(const hb_loader *L, int j);
double loader_label_rate(const hb_loader *L, int j);
int loader_topic_k(const hb_loader *L, int j);
// Batches of this rank in epoch e (computes the plan; not thread-bound).
int loader_epoch_batches(hb_loader *L, int64_t epoch, int64_t *n);
// Shard path, index in that shard and length of kept utterance u.
int loader_utt_info(const hb_loader *L, int64_t u, const char **shard, int64_t *index, int64_t *len);

#endif
