// HDF5 training shards (DESIGN.md "HDF5 shard"), writer and validating reader.
//
// Layout of one shard file (all 1-d datasets chunked, so a reader streams utterance by utterance):
//   attrs  format = "hubert-shard", version = 1, sample_rate = 16000, num_utts = U
//   /utt_id                   strings (U)
//   /audio                    int16 (total samples), concatenated waveforms
//   /audio_offsets            int64 (U+1): utterance i is audio[off[i], off[i+1])
//   /feats, /feat_offsets     float32 (N, D) + int64 (U+1), optional (attrs rate, kind on /feats)
//   /labels/<name>/units      int32 frame labels, /labels/<name>/offsets int64 (U+1);
//                             attrs rate (Hz, double) and k on the group /labels/<name>
//   /topics/<name>            int32 (U), attr k
//   /speaker, /text, /phones  strings (U), optional (from meta.tsv)
// Invariants a reader relies on (checked by shard_open): every offsets array starts at 0, never
// decreases and ends at its data length; units in [0, k); topics in [0, k); label length matches
// the audio length at the label rate within HB_SHARD_LABEL_TOL seconds (fairseq's check).
#ifndef HB_SHARD_H
#define HB_SHARD_H

#include <stdint.h>

#define HB_SHARD_FORMAT "hubert-shard"
#define HB_SHARD_VERSION 1
#define HB_SHARD_LABEL_TOL 0.1   // seconds, fairseq HubertDataset's label_rate tolerance

// |samples / sample_rate - frames / rate| <= HB_SHARD_LABEL_TOL
int shard_label_len_ok(int64_t samples, int sample_rate, int64_t frames, double rate);

// ---- writer ------------------------------------------------------------------------------------
typedef struct {
  const char *name;   // label set / topic set name (a valid HDF5 link name, no '/')
  const char *path;   // label file (data_prep/labelfile.h format) or topic file
} hb_named_path;

typedef struct {
  const char *out_dir;       // created if missing
  const char *prefix;        // shard names: PREFIX-00000.h5, ...
  const char *manifest;      // fairseq manifest: the utterances, in order
  int n_labels;
  const hb_named_path *labels;
  int n_topics;
  const hb_named_path *topics;
  const char *meta;          // meta.tsv (utt_id, speaker, text, phones columns) or NULL
  const char *feats;         // feature file ("feats" dataset) or NULL
  double shard_mb;           // start a new shard once audio+feats+labels exceed this (MB)
} hb_shard_opts;

typedef struct {
  int n_shards;
  int64_t n_utts;
  int64_t n_samples;
} hb_shard_stats;

// Writes every shard to NAME.tmp and renames it into place. Every utterance of the manifest must
// be present in every label/topic/meta/feats input (errors name the input and the utterance).
int shard_write(const hb_shard_opts *o, hb_shard_stats *stats);

// ---- reader ------------------------------------------------------------------------------------
typedef struct hb_shard hb_shard;

// Opens and validates everything listed above; errors name the file and the dataset.
int shard_open(const char *path, hb_shard **out);
void shard_close(hb_shard *s);

const char *shard_path(const hb_shard *s);
int64_t shard_num_utts(const hb_shard *s);
int shard_sample_rate(const hb_shard *s);
const char *shard_utt_id(const hb_shard *s, int64_t i);
const int64_t *shard_audio_offsets(const hb_shard *s);       // (U+1)
// Utterance i's waveform: (audio_offsets[i+1] - audio_offsets[i]) samples.
int shard_read_audio(const hb_shard *s, int64_t i, int16_t *out);
int shard_read_audio_f32(const hb_shard *s, int64_t i, float *out);   // int16 / 32768, as fairseq

int shard_num_label_sets(const hb_shard *s);
const char *shard_label_name(const hb_shard *s, int j);
int shard_label_k(const hb_shard *s, int j);
double shard_label_rate(const hb_shard *s, int j);
const int64_t *shard_label_offsets(const hb_shard *s, int j);   // (U+1)
// Index of the label set NAME, or -1 with "FILE: no label set 'NAME' (has: ...)".
int shard_find_labels(const hb_shard *s, const char *name);
int shard_read_labels(const hb_shard *s, int j, int64_t i, int32_t *out);

int shard_num_topic_sets(const hb_shard *s);
const char *shard_topic_name(const hb_shard *s, int j);
int shard_topic_k(const hb_shard *s, int j);
const int32_t *shard_topics(const hb_shard *s, int j);          // (U)

// Optional per-utterance strings; NULL when the shard has no such dataset.
const char *shard_speaker(const hb_shard *s, int64_t i);
const char *shard_text(const hb_shard *s, int64_t i);
const char *shard_phones(const hb_shard *s, int64_t i);
// Feature rows (0 when absent).
int shard_feat_dim(const hb_shard *s);

#endif
