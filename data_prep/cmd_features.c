// `hubert mfcc` and `hubert fbank`: Kaldi features of every INPUT into one HDF5 feature file
// (dataset "feats", kind "mfcc"/"fbank", rate 100).
//
// Files are read and featurised in parallel (OpenMP, dynamic schedule, one file at a time per
// thread) into a reorder window of W = 4 x threads result slots; whichever thread finds the
// next-in-order slot ready writes all consecutive ready slots, so the file is the same whatever
// the thread count, writing overlaps the other threads' work, no thread waits on another unless
// the window is full, and memory is bounded by W utterances. Threads reuse their audio buffer
// and slots their feature buffers across files (no per-file page faults).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <omp.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/error.h"
#include "data_prep/audio.h"
#include "data_prep/featfile.h"
#include "data_prep/inputs.h"
#include "data_prep/kaldi_feats.h"

#define WINDOW_PER_THREAD 4

typedef struct {
  float *feats;      // (frames, dim), reused: feats_cap floats
  size_t feats_cap;
  int64_t frames;
  size_t samples;
  char *err;         // NULL on success
  int ready;         // computed, not yet written
} utt_slot;

// The reorder window and the writer's state; fields below `lock` are guarded by it, the
// writer's counters belong to the thread holding the writer role (`writing`).
typedef struct {
  hb_featfile_writer *w;
  const hb_input_list *in;
  int skip_bad, nslots;
  utt_slot *slots;   // (nslots,): input i lives in slots[i % nslots]
  omp_lock_t lock;
  int next_write;    // inputs [0, next_write) are written (or skipped)
  int writing;       // a thread is draining the window
  int status;        // -1 after the first error (read atomically outside the lock)
  char *fail_msg;    // the failing thread's message (hb_fail messages are thread-local)
  int64_t written, frames, skipped;
  double seconds;
} feat_window;

static char *dup_errmsg(void) {
  const char *m = hb_errmsg();
  char *s = strdup(m[0] ? m : "unknown error");
  return s;
}

static void process_one(const hb_kaldi_feats *k, const hb_audio_opts *ao, const char *path, hb_audio *audio,
                        size_t *audio_cap, utt_slot *r) {
  r->frames = 0;
  r->samples = 0;
  r->err = NULL;
  hb_clear_error();
  if (audio_read_into(path, ao, audio, audio_cap)) {
    r->err = dup_errmsg();
    return;
  }
  r->samples = audio->n;
  r->frames = kaldi_num_frames(k, audio->n);
  size_t nf = 0;
  if (hb_mul_size((size_t)r->frames, (size_t)k->dim, &nf) == 0) {
    if (!r->feats || nf > r->feats_cap) {
      free(r->feats);
      r->feats_cap = 0;
      if ((r->feats = hb_malloc((nf ? nf : 1) * sizeof(float)))) r->feats_cap = nf ? nf : 1;
    }
    if (r->feats && kaldi_feats_compute(k, audio->samples, audio->n, r->feats) == 0) return;
  }
  hb_fail_prefix("%s", path);
  r->err = dup_errmsg();
}

// Writes (or reports) the one slot of input i; called by the thread holding the writer role.
static void window_write_slot(feat_window *fw, int i, utt_slot *r) {
  int status;
#pragma omp atomic read
  status = fw->status;
  if (status != 0) {
  } else if (r->err) {
    if (fw->skip_bad) {
      fprintf(stderr, "skipping: %s\n", r->err);
      fw->skipped++;
    } else {
      hb_fail("%s (nothing written; --skip-bad skips such files)", r->err);
      fw->fail_msg = dup_errmsg();
#pragma omp atomic write
      fw->status = -1;
    }
  } else {
    const float *data[] = {r->feats};
    if (featfile_append(fw->w, fw->in->utt_id[i], r->frames, data)) {
      fw->fail_msg = dup_errmsg();
#pragma omp atomic write
      fw->status = -1;
    } else {
      fw->written++;
      fw->frames += r->frames;
      fw->seconds += (double)r->samples / HB_SAMPLE_RATE;
    }
  }
  free(r->err);
  r->err = NULL;
}

// Marks input i's slot ready; unless another thread is draining, writes every consecutive ready
// slot from next_write on (outside the lock, so other threads keep marking theirs).
static void window_mark_ready(feat_window *fw, int i) {
  omp_set_lock(&fw->lock);
  fw->slots[i % fw->nslots].ready = 1;
  if (!fw->writing) {
    fw->writing = 1;
    while (fw->next_write < fw->in->n && fw->slots[fw->next_write % fw->nslots].ready) {
      int j = fw->next_write;
      utt_slot *r = &fw->slots[j % fw->nslots];
      omp_unset_lock(&fw->lock);
      window_write_slot(fw, j, r);
      omp_set_lock(&fw->lock);
      r->ready = 0;
      fw->next_write = j + 1;
    }
    fw->writing = 0;
  }
  omp_unset_lock(&fw->lock);
}

// Blocks until input i's slot is free (input i - nslots written): only when one slow file holds
// back the window.
static void window_wait_slot(feat_window *fw, int i) {
  for (;;) {
    omp_set_lock(&fw->lock);
    int free_slot = i < fw->next_write + fw->nslots;
    omp_unset_lock(&fw->lock);
    if (free_slot) return;
    struct timespec ts = {0, 100000};  // 0.1 ms
    nanosleep(&ts, NULL);
  }
}

static int write_features(hb_kaldi_kind kind, const char *out, int resample, int channel, int skip_bad,
                          int mel_bins, int deltas, int quiet, int npos, char **pos);

static int run_features(const hb_command *cmd, int argc, char **argv, hb_kaldi_kind kind) {
  const char *out = NULL;
  int resample = 0, channel = -1, skip_bad = 0, mel_bins = 0, no_deltas = 0, quiet = 0;
  hb_opt fbank_opts[] = {
      {"out", 'o', HB_OPT_STR, "FILE.h5", "output feature file (written atomically: a failed run leaves an existing file alone)", &out, 1},
      {"resample", 0, HB_OPT_FLAG, NULL, "resample audio that is not 16 kHz (libsamplerate)", &resample, 0},
      {"channel", 0, HB_OPT_INT, "N", "take channel N of multi-channel files (default: require mono)", &channel, 0},
      {"skip-bad", 0, HB_OPT_FLAG, NULL, "skip unreadable/unusable files (counted and reported) instead of failing", &skip_bad, 0},
      {"num-mel-bins", 0, HB_OPT_INT, "N", "mel filters (default 80)", &mel_bins, 0},
      {"quiet", 'q', HB_OPT_FLAG, NULL, "no summary line", &quiet, 0},
      {0}};
  hb_opt mfcc_opts[] = {
      {"out", 'o', HB_OPT_STR, "FILE.h5", "output feature file (written atomically: a failed run leaves an existing file alone)", &out, 1},
      {"resample", 0, HB_OPT_FLAG, NULL, "resample audio that is not 16 kHz (libsamplerate)", &resample, 0},
      {"channel", 0, HB_OPT_INT, "N", "take channel N of multi-channel files (default: require mono)", &channel, 0},
      {"skip-bad", 0, HB_OPT_FLAG, NULL, "skip unreadable/unusable files (counted and reported) instead of failing", &skip_bad, 0},
      {"no-deltas", 0, HB_OPT_FLAG, NULL, "13 MFCCs only (default: + deltas + delta-deltas = 39, fairseq's recipe)", &no_deltas, 0},
      {"quiet", 'q', HB_OPT_FLAG, NULL, "no summary line", &quiet, 0},
      {0}};
  int npos = 0;
  char **pos = NULL;
  int rc = cli_parse(cmd, kind == KALDI_MFCC ? mfcc_opts : fbank_opts, argc, argv, &npos, &pos);
  if (rc) return rc > 0 ? 0 : -1;
  rc = write_features(kind, out, resample, channel, skip_bad, mel_bins, !no_deltas, quiet, npos, pos);
  return rc;
}

static int write_features(hb_kaldi_kind kind, const char *out, int resample, int channel, int skip_bad,
                          int mel_bins, int deltas, int quiet, int npos, char **pos) {
  if (channel < -1) return hb_fail("--channel %d: must be >= 0", channel);
  if (kind == KALDI_FBANK && mel_bins != 0 && (mel_bins < 4 || mel_bins > 256))
    return hb_fail("--num-mel-bins %d: must be in 4..256", mel_bins);

#ifdef __GLIBC__
  // Each featfile_append's H5Dwrite of the variable-length utt_id callocs and frees HDF5's
  // 1 MiB type-conversion and background buffers; above glibc's mmap threshold every one is a
  // fresh mapping whose page faults cost ~1/3 of this command. Keep such blocks in the heap.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
  hb_kaldi_feats k;
  if (kaldi_feats_init(&k, kind, HB_SAMPLE_RATE, mel_bins, deltas)) return -1;
  hb_input_list in;
  if (inputs_collect(npos, pos, &in)) {
    kaldi_feats_free(&k);
    return -1;
  }
  hb_audio_opts ao;
  audio_default_opts(&ao);
  ao.sample_rate = HB_SAMPLE_RATE;
  ao.resample = resample;
  ao.channel = channel;
  ao.min_samples = (size_t)k.frame_len;  // torchaudio asserts one full frame

  const char *kind_name = kind == KALDI_MFCC ? "mfcc" : "fbank";
  char desc[160];
  if (kind == KALDI_MFCC)
    snprintf(desc, sizeof desc, "torchaudio.compliance.kaldi.mfcc(use_energy=False)%s",
             k.deltas ? " + compute_deltas + compute_deltas (fairseq dump_mfcc_feature.py)" : "");
  else
    snprintf(desc, sizeof desc, "torchaudio.compliance.kaldi.fbank(num_mel_bins=%d)", k.num_mel_bins);
  const char *akeys[] = {"features"};
  const char *avals[] = {desc};
  hb_featfile_info info = {kind_name, 100.0, 1, akeys, avals};
  const char *names[] = {"feats"};
  int dims[] = {k.dim};
  hb_featfile_writer *w = NULL;
  double t0 = omp_get_wtime();
  if (featfile_create(out, &info, 1, names, dims, &w)) {
    inputs_free(&in);
    kaldi_feats_free(&k);
    return -1;
  }
  feat_window fw;
  memset(&fw, 0, sizeof fw);
  fw.w = w;
  fw.in = &in;
  fw.skip_bad = skip_bad;
  fw.nslots = WINDOW_PER_THREAD * omp_get_max_threads();
  fw.slots = hb_calloc((size_t)fw.nslots, sizeof *fw.slots);
  if (fw.slots) {
    omp_init_lock(&fw.lock);
#pragma omp parallel
    {
      hb_audio audio = {0};
      size_t audio_cap = 0;
#pragma omp for schedule(dynamic, 1)
      for (int i = 0; i < in.n; i++) {
        window_wait_slot(&fw, i);
        int stop;
#pragma omp atomic read
        stop = fw.status;
        if (!stop) process_one(&k, &ao, in.path[i], &audio, &audio_cap, &fw.slots[i % fw.nslots]);
        window_mark_ready(&fw, i);
      }
      audio_free(&audio);
    }
    omp_destroy_lock(&fw.lock);
    for (int s = 0; s < fw.nslots; s++) free(fw.slots[s].feats);
    free(fw.slots);
  } else {
    fw.status = -1;
    fw.fail_msg = dup_errmsg();
  }
  int status = fw.status;
  int64_t written = fw.written, frames = fw.frames, skipped = fw.skipped;
  double seconds = fw.seconds;
  if (status != 0) {
    hb_fail("%s", fw.fail_msg ? fw.fail_msg : "out of memory");
    free(fw.fail_msg);
  }
  if (status == 0 && written == 0) {
    hb_fail("%s: no utterance could be read (%lld skipped); nothing written", out, (long long)skipped);
    status = -1;
  }
  if (status == 0) {
    status = featfile_close(w);
  } else {
    featfile_abort(w);
  }
  if (status == 0 && !quiet) {
    double dt = omp_get_wtime() - t0;
    printf("%s: %lld utterances, %lld frames x %d, %.1f s of audio -> %s in %.2f s (%.0fx real time, %d threads)",
           kind_name, (long long)written, (long long)frames, k.dim, seconds, out, dt,
           dt > 0 ? seconds / dt : 0.0, omp_get_max_threads());
    if (skipped) printf("; skipped %lld bad file%s", (long long)skipped, skipped == 1 ? "" : "s");
    printf("\n");
  }
  inputs_free(&in);
  kaldi_feats_free(&k);
  return status;
}

int cmd_mfcc(const hb_command *cmd, int argc, char **argv) { return run_features(cmd, argc, argv, KALDI_MFCC); }
int cmd_fbank(const hb_command *cmd, int argc, char **argv) { return run_features(cmd, argc, argv, KALDI_FBANK); }
