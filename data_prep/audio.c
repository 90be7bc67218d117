// Audio input/output with libsndfile; rate conversion with libsamplerate.
#include "data_prep/audio.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <samplerate.h>
#include <sndfile.h>

#include "common/error.h"
#include "common/fileutil.h"

#define AUDIO_BLOCK_FRAMES 65536

void audio_default_opts(hb_audio_opts *o) {
  o->sample_rate = HB_SAMPLE_RATE;
  o->resample = 0;
  o->channel = -1;
  o->min_samples = 1;
}

void audio_free(hb_audio *a) {
  if (!a) return;
  free(a->samples);
  a->samples = NULL;
  a->n = 0;
}

typedef int16_t v8s16 __attribute__((vector_size(8 * sizeof(int16_t))));
typedef float v8f32 __attribute__((vector_size(8 * sizeof(float))));

// x holds n int16 samples in its first 2n bytes; rewrites it as the n floats sample / 32768.
// Runs from the end down in blocks of 8: block i reads int16 [i, i+8) (bytes [2i, 2i+16)) before
// writing floats [i, i+8) (bytes [4i, 4i+32)), which only hold int16 >= 2i >= i, already
// converted; so nothing is overwritten before it is read.
static void pcm16_to_float_inplace(float *x, size_t n) {
  const int16_t *s = (const int16_t *)(void *)x;
  size_t i = n;
  while (i % 8) {
    i--;
    x[i] = (float)s[i] * (1.0f / 32768.0f);
  }
  while (i > 0) {
    i -= 8;
    v8s16 v;
    memcpy(&v, s + i, sizeof v);
    v8f32 f = __builtin_convertvector(v, v8f32) * (1.0f / 32768.0f);
    memcpy(x + i, &f, sizeof f);
  }
}

// Reads every frame of channel `ch` from an open file into *xp (capacity *capp floats, grown
// with realloc; kept on error for the caller to free). libsndfile's frame count is a header
// claim (wrong for truncated files), so the samples actually read decide the length. Mono files
// are read straight into the buffer; others through a de-interleaving block. pcm16 (mono 16-bit
// files): samples are read as int16 and scaled here (bit-identical to libsndfile's float
// normalisation, and vectorised).
static int read_channel(SNDFILE *sf, const char *path, int channels, int ch, int pcm16, sf_count_t hint,
                        float **xp, size_t *capp, size_t *n_out) {
  size_t want = hint > 0 && (uint64_t)hint < (uint64_t)SIZE_MAX / sizeof(float) - 1 ? (size_t)hint + 1 : AUDIO_BLOCK_FRAMES;
  if (want > ((size_t)1 << 24)) want = (size_t)1 << 24;   // don't trust a huge header claim up front
  float *block = NULL;
  if (channels > 1) {
    size_t block_len;
    if (hb_mul_size(AUDIO_BLOCK_FRAMES, (size_t)channels, &block_len)) return hb_fail_prefix("%s", path);
    if (!(block = hb_malloc(block_len * sizeof(float)))) return hb_fail_prefix("%s", path);
  }
  size_t n = 0;
  for (;;) {
    // room for the next read: the header's length + 1 first (so a correct header needs one
    // buffer and the final read returns 0), then doubling
    size_t need = n + (channels > 1 ? AUDIO_BLOCK_FRAMES : 1);
    if (need < want) need = want;
    if (*capp < need) {
      size_t ncap = *capp * 2 > need ? *capp * 2 : need;
      size_t bytes;
      float *nx = NULL;
      if (hb_mul_size(ncap, sizeof(float), &bytes) || !(nx = hb_realloc(*xp, bytes))) {
        free(block);
        return hb_fail_prefix("%s", path);
      }
      *xp = nx;
      *capp = ncap;
    }
    float *x = *xp;
    sf_count_t got;
    if (channels == 1 && pcm16) {
      got = sf_readf_short(sf, (short *)(x + n), (sf_count_t)(*capp - n));
      if (got > 0) pcm16_to_float_inplace(x + n, (size_t)got);
    } else if (channels == 1) {
      got = sf_readf_float(sf, x + n, (sf_count_t)(*capp - n));
    } else {
      got = sf_readf_float(sf, block, AUDIO_BLOCK_FRAMES);
      for (sf_count_t i = 0; i < got; i++) x[n + (size_t)i] = block[(size_t)i * (size_t)channels + (size_t)ch];
    }
    if (got < 0) {
      free(block);
      return hb_fail("%s: read error: %s", path, sf_strerror(sf));
    }
    if (got == 0) break;
    n += (size_t)got;
  }
  free(block);
  *n_out = n;
  return 0;
}

// libsndfile silently shortens a WAV whose data chunk runs past the end of the file; its log
// records "data : CLAIMED (should be PRESENT)". Streaming placeholders (0, 0xFFFFFFFF) are fine.
static int wav_truncated(SNDFILE *sf, long long *claimed, long long *present) {
  char log[8192];
  log[0] = 0;
  sf_command(sf, SFC_GET_LOG_INFO, log, sizeof log);
  log[sizeof log - 1] = 0;
  const char *p = strstr(log, "\ndata : ");
  if (!p) return 0;
  if (sscanf(p, "\ndata : %lld (should be %lld)", claimed, present) != 2) return 0;
  return *claimed > 0 && *claimed < 0xFFFFFFF0LL && *present < *claimed;
}

// x (n,) at rate `from` -> (*m,) at rate `to` with SRC_SINC_BEST_QUALITY.
static int resample(const char *path, const float *x, size_t n, int from, int to, float **y, size_t *m) {
  double ratio = (double)to / (double)from;
  if (!src_is_valid_ratio(ratio))
    return hb_fail("%s: cannot resample %d Hz -> %d Hz (ratio outside 1/256..256)", path, from, to);
  if (n > (size_t)1 << 40) return hb_fail("%s: %zu samples is too long to resample", path, n);
  size_t cap = (size_t)ceil((double)n * ratio) + 16;
  float *out = hb_malloc(cap * sizeof(float));
  if (!out) return hb_fail_prefix("%s", path);
  SRC_DATA d;
  memset(&d, 0, sizeof d);
  d.data_in = x;
  d.input_frames = (long)n;
  d.data_out = out;
  d.output_frames = (long)cap;
  d.src_ratio = ratio;
  d.end_of_input = 1;
  int err = src_simple(&d, SRC_SINC_BEST_QUALITY, 1);
  if (err) {
    free(out);
    return hb_fail("%s: resampling %d Hz -> %d Hz failed: %s", path, from, to, src_strerror(err));
  }
  *y = out;
  *m = (size_t)d.output_frames_gen;
  return 0;
}

int audio_read(const char *path, const hb_audio_opts *opts, hb_audio *out) {
  size_t cap = 0;
  out->samples = NULL;
  if (audio_read_into(path, opts, out, &cap) == 0) return 0;
  audio_free(out);
  return -1;
}

// The first non-finite sample of x (n,), or n. The sum x * 0 is NaN iff some sample is NaN or
// inf; it vectorises (8 lanes), the index search runs only on failure.
static size_t first_nonfinite(const float *x, size_t n) {
  v8f32 z = {0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    v8f32 v;
    memcpy(&v, x + i, sizeof v);
    z += v * 0.0f;
  }
  float t = 0.0f;
  for (int j = 0; j < 8; j++) t += z[j];
  for (; i < n; i++) t += x[i] * 0.0f;
  if (t == 0.0f) return n;
  for (i = 0; i < n && isfinite(x[i]); i++) {}
  return i;
}

int audio_read_into(const char *path, const hb_audio_opts *opts, hb_audio *out, size_t *cap) {
  hb_audio_opts def;
  if (!opts) {
    audio_default_opts(&def);
    opts = &def;
  }
  out->n = 0;
  out->sample_rate = 0;
  if (!out->samples) *cap = 0;
  int want_rate = opts->sample_rate > 0 ? opts->sample_rate : HB_SAMPLE_RATE;
  struct stat st;
  if (stat(path, &st) != 0) return hb_fail("%s: cannot open: %s", path, strerror(errno));
  if (S_ISDIR(st.st_mode)) return hb_fail("%s: is a directory, not an audio file", path);

  SF_INFO info;
  memset(&info, 0, sizeof info);
  SNDFILE *sf = sf_open(path, SFM_READ, &info);
  if (!sf) return hb_fail("%s: cannot read as audio (wav/flac/ogg): %s", path, sf_strerror(NULL));
  if (info.channels < 1 || info.samplerate < 1) {
    sf_close(sf);
    return hb_fail("%s: invalid header (%d channels, %d Hz)", path, info.channels, info.samplerate);
  }
  if (info.channels > 1 && opts->channel < 0) {
    sf_close(sf);
    return hb_fail("%s: %d channels; the model needs mono; use --channel N (0..%d)", path,
                   info.channels, info.channels - 1);
  }
  int ch = opts->channel < 0 ? 0 : opts->channel;
  if (ch >= info.channels) {
    sf_close(sf);
    return hb_fail("%s: has %d channel%s, cannot take channel %d", path, info.channels,
                   info.channels == 1 ? "" : "s", ch);
  }
  if (info.samplerate != want_rate && !opts->resample) {
    sf_close(sf);
    return hb_fail("%s: %d Hz, the model needs %d Hz; use --resample", path, info.samplerate, want_rate);
  }
  // int16 PCM -> sample / 32768 (libsndfile's normalisation for integer formats)
  sf_command(sf, SFC_SET_NORM_FLOAT, NULL, SF_TRUE);
  size_t n = 0;
  int pcm16 = info.channels == 1 && (info.format & SF_FORMAT_SUBMASK) == SF_FORMAT_PCM_16;
  int rc = read_channel(sf, path, info.channels, ch, pcm16, info.frames, &out->samples, cap, &n);
  float *x = out->samples;
  long long claimed = 0, present = 0;
  int wav_cut = (info.format & SF_FORMAT_TYPEMASK) == SF_FORMAT_WAV && wav_truncated(sf, &claimed, &present);
  sf_close(sf);
  if (rc) return -1;
  if (wav_cut || (info.frames > 0 && (uint64_t)info.frames > (uint64_t)n)) {
    if (wav_cut)
      return hb_fail("%s: truncated: the data chunk claims %lld bytes but the file holds %lld", path, claimed, present);
    return hb_fail("%s: truncated or corrupt: the header says %lld samples, only %zu could be read", path,
                   (long long)info.frames, n);
  }
  if (n == 0) return hb_fail("%s: empty (0 samples)", path);
  size_t bad = pcm16 ? n : first_nonfinite(x, n);  // int16 samples are always finite
  if (bad < n) return hb_fail("%s: non-finite sample (NaN or inf) at index %zu", path, bad);
  int rate = info.samplerate;
  if (rate != want_rate) {
    fprintf(stderr, "note: %s: resampling %d Hz -> %d Hz (libsamplerate, best sinc)\n", path, rate, want_rate);
    float *y = NULL;
    size_t m = 0;
    rc = resample(path, x, n, rate, want_rate, &y, &m);
    if (rc) return -1;
    free(x);  // the caller's buffer becomes the resampled one (m <= its allocated length)
    out->samples = x = y;
    *cap = m;
    n = m;
    rate = want_rate;
    if (n == 0) return hb_fail("%s: empty after resampling", path);
  }
  if (opts->min_samples > 0 && n < opts->min_samples)
    return hb_fail("%s: too short: %zu samples, need at least %zu (%.1f ms at %d Hz)", path, n,
                   opts->min_samples, 1000.0 * (double)opts->min_samples / rate, rate);
  out->n = n;
  out->sample_rate = rate;
  return 0;
}

int audio_write_wav16(const char *path, const float *x, size_t n, int sample_rate) {
  if (sample_rate <= 0) return hb_fail("%s: invalid sample rate %d", path, sample_rate);
  size_t plen = strlen(path) + 8;
  char *tmp = hb_malloc(plen);
  if (!tmp) return -1;
  snprintf(tmp, plen, "%s.tmp", path);
  SF_INFO info;
  memset(&info, 0, sizeof info);
  info.samplerate = sample_rate;
  info.channels = 1;
  info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
  SNDFILE *sf = sf_open(tmp, SFM_WRITE, &info);
  if (!sf) {
    hb_fail("%s: cannot create: %s", tmp, sf_strerror(NULL));
    free(tmp);
    return -1;
  }
  // float -> int16 as round(x * 32768) clipped, the exact inverse of the reader's /32768
  short buf[4096];
  size_t done = 0;
  int rc = 0;
  while (done < n) {
    size_t k = n - done < 4096 ? n - done : 4096;
    for (size_t i = 0; i < k; i++) {
      float v = x[done + i];
      double s = isfinite(v) ? nearbyint((double)v * 32768.0) : 0.0;
      if (s > 32767.0) s = 32767.0;
      if (s < -32768.0) s = -32768.0;
      buf[i] = (short)s;
    }
    if (sf_write_short(sf, buf, (sf_count_t)k) != (sf_count_t)k) {
      rc = hb_fail("%s: write failed: %s", tmp, sf_strerror(sf));
      break;
    }
    done += k;
  }
  if (sf_close(sf) != 0 && rc == 0) rc = hb_fail("%s: close failed", tmp);
  if (rc == 0) rc = file_commit_rename(tmp, path);
  if (rc) unlink(tmp);
  free(tmp);
  return rc;
}
