// `hubert mfcc` and `hubert fbank`: Kaldi features of every INPUT into one HDF5 feature file
// (dataset "feats", kind "mfcc"/"fbank", rate 100).
//
// Files are read and featurised in parallel (OpenMP, dynamic schedule, one file at a time per
// thread) and appended to the writer in an ordered region, so the file is the same whatever the
// thread count, writing overlaps the other threads' work, and memory is one utterance per
// thread. Each thread reuses its audio and feature buffers across files (no per-file page
// faults).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/error.h"
#include "data_prep/audio.h"
#include "data_prep/featfile.h"
#include "data_prep/inputs.h"
#include "data_prep/kaldi_feats.h"

typedef struct {
  hb_audio audio;    // reused: samples has audio_cap floats
  size_t audio_cap;
  float *feats;      // (frames, dim), reused: feats_cap floats
  size_t feats_cap;
  int64_t frames;
  char *err;         // NULL on success
} utt_work;

static char *dup_errmsg(void) {
  const char *m = hb_errmsg();
  char *s = strdup(m[0] ? m : "unknown error");
  return s;
}

static void process_one(const hb_kaldi_feats *k, const hb_audio_opts *ao, const char *path, utt_work *r) {
  r->frames = 0;
  r->err = NULL;
  hb_clear_error();
  if (audio_read_into(path, ao, &r->audio, &r->audio_cap)) {
    r->err = dup_errmsg();
    return;
  }
  r->frames = kaldi_num_frames(k, r->audio.n);
  size_t nf = 0;
  if (hb_mul_size((size_t)r->frames, (size_t)k->dim, &nf) == 0) {
    if (nf <= r->feats_cap && r->feats) {
      if (kaldi_feats_compute(k, r->audio.samples, r->audio.n, r->feats) == 0) return;
    } else {
      free(r->feats);
      r->feats_cap = 0;
      if ((r->feats = hb_malloc((nf ? nf : 1) * sizeof(float)))) {
        r->feats_cap = nf ? nf : 1;
        if (kaldi_feats_compute(k, r->audio.samples, r->audio.n, r->feats) == 0) return;
      }
    }
  }
  hb_fail_prefix("%s", path);
  r->err = dup_errmsg();
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
  int64_t written = 0, frames = 0, skipped = 0;
  double seconds = 0.0;
  int status = 0;
  char *fail_msg = NULL;  // hb_fail messages are thread-local: the failing thread's copy
#pragma omp parallel
  {
    utt_work r;
    memset(&r, 0, sizeof r);
#pragma omp for ordered schedule(dynamic, 1)
    for (int i = 0; i < in.n; i++) {
      int stop;
#pragma omp atomic read
      stop = status;
      if (!stop) process_one(&k, &ao, in.path[i], &r);
#pragma omp ordered
      {
        if (status == 0 && r.err) {
          if (skip_bad) {
            fprintf(stderr, "skipping: %s\n", r.err);
            skipped++;
          } else {
            hb_fail("%s (nothing written; --skip-bad skips such files)", r.err);
            fail_msg = dup_errmsg();
#pragma omp atomic write
            status = -1;
          }
        } else if (status == 0) {
          const float *data[] = {r.feats};
          if (featfile_append(w, in.utt_id[i], r.frames, data)) {
            fail_msg = dup_errmsg();
#pragma omp atomic write
            status = -1;
          } else {
            written++;
            frames += r.frames;
            seconds += (double)r.audio.n / HB_SAMPLE_RATE;
          }
        }
        free(r.err);
        r.err = NULL;
      }
    }
    audio_free(&r.audio);
    free(r.feats);
  }
  if (status != 0) {
    hb_fail("%s", fail_msg ? fail_msg : "out of memory");
    free(fail_msg);
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
