// `hubert mfcc` and `hubert fbank`: Kaldi features of every INPUT into one HDF5 feature file
// (dataset "feats", kind "mfcc"/"fbank", rate 100).
//
// Utterances are processed in chunks: the chunk's files are read and featurised in parallel
// (OpenMP, dynamic schedule), then appended to the writer in input order, so the file is the
// same whatever the thread count and memory is bounded by one chunk.
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

#define CHUNK_PER_THREAD 16

typedef struct {
  float *feats;      // (frames, dim)
  int64_t frames;
  size_t samples;
  char *err;         // NULL on success
} utt_result;

static char *dup_errmsg(void) {
  const char *m = hb_errmsg();
  char *s = strdup(m[0] ? m : "unknown error");
  return s;
}

static void process_one(const hb_kaldi_feats *k, const hb_audio_opts *ao, const char *path, utt_result *r) {
  memset(r, 0, sizeof *r);
  hb_clear_error();
  hb_audio a;
  if (audio_read(path, ao, &a)) {
    r->err = dup_errmsg();
    return;
  }
  r->samples = a.n;
  r->frames = kaldi_num_frames(k, a.n);
  size_t nf = 0;
  if (hb_mul_size((size_t)r->frames, (size_t)k->dim, &nf) == 0 && (r->feats = hb_malloc((nf ? nf : 1) * sizeof(float))) &&
      kaldi_feats_compute(k, a.samples, a.n, r->feats) == 0) {
    audio_free(&a);
    return;
  }
  hb_fail_prefix("%s", path);
  r->err = dup_errmsg();
  free(r->feats);
  r->feats = NULL;
  audio_free(&a);
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
  int chunk = CHUNK_PER_THREAD * omp_get_max_threads();
  utt_result *res = hb_calloc((size_t)chunk, sizeof *res);
  int64_t written = 0, frames = 0, skipped = 0;
  double seconds = 0.0;
  int status = res ? 0 : -1;
  for (int c0 = 0; c0 < in.n && status == 0; c0 += chunk) {
    int nc = in.n - c0 < chunk ? in.n - c0 : chunk;
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < nc; i++) process_one(&k, &ao, in.path[c0 + i], &res[i]);
    for (int i = 0; i < nc; i++) {
      utt_result *r = &res[i];
      if (status == 0 && r->err) {
        if (skip_bad) {
          fprintf(stderr, "skipping: %s\n", r->err);
          skipped++;
        } else {
          hb_fail("%s (nothing written; --skip-bad skips such files)", r->err);
          status = -1;
        }
      } else if (status == 0) {
        const float *data[] = {r->feats};
        if (featfile_append(w, in.utt_id[c0 + i], r->frames, data)) {
          status = -1;
        } else {
          written++;
          frames += r->frames;
          seconds += (double)r->samples / HB_SAMPLE_RATE;
        }
      }
      free(r->feats);
      free(r->err);
      memset(r, 0, sizeof *r);
    }
  }
  free(res);
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
