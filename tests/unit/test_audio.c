// audio_read / audio_write_wav16: exact int16 scaling, every user error, the resample path.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sndfile.h>

#include "data_prep/audio.h"
#include "tests/test_util.h"

static char g_dir[64];

static const char *tpath(const char *name) {
  static char buf[8][256];
  static int k = 0;
  k = (k + 1) % 8;
  snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
  return buf[k];
}

// Writes interleaved int16 frames with libsndfile.
static int write_pcm16(const char *path, int format, const short *x, long frames, int channels, int rate) {
  SF_INFO info;
  memset(&info, 0, sizeof info);
  info.samplerate = rate;
  info.channels = channels;
  info.format = format;
  SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
  if (!sf) {
    fprintf(stderr, "cannot write %s: %s\n", path, sf_strerror(NULL));
    return -1;
  }
  sf_writef_short(sf, x, frames);
  sf_close(sf);
  return 0;
}

static void truncate_file(const char *src, const char *dst, long keep) {
  FILE *f = fopen(src, "rb"), *g = fopen(dst, "wb");
  for (long i = 0; i < keep; i++) {
    int c = fgetc(f);
    if (c == EOF) break;
    fputc(c, g);
  }
  fclose(f);
  fclose(g);
}

int main(void) {
  strcpy(g_dir, "/tmp/hb_test_audio_XXXXXX");
  if (!mkdtemp(g_dir)) {
    perror("mkdtemp");
    return 1;
  }
  hb_audio_opts o;
  audio_default_opts(&o);
  hb_audio a;

  // mono 16 kHz int16: every value including the extremes maps to v / 32768 exactly
  enum { N = 4000 };
  short *pcm = malloc(sizeof(short) * 2 * N);
  for (int i = 0; i < N; i++) pcm[i] = (short)((i * 7919) % 65536 - 32768);
  pcm[0] = -32768;
  pcm[1] = 32767;
  pcm[2] = 0;
  pcm[3] = 1;
  const int wav16 = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
  write_pcm16(tpath("mono.wav"), wav16, pcm, N, 1, 16000);
  CHECK_OK(audio_read(tpath("mono.wav"), &o, &a));
  CHECK(a.n == N && a.sample_rate == 16000);
  int exact = a.n == N;
  for (int i = 0; exact && i < N; i++) exact = a.samples[i] == (float)pcm[i] / 32768.0f;
  CHECK(exact);
  printf("  mono int16: %zu samples, exact v/32768: %s\n", a.n, exact ? "yes" : "NO");

  // writer round trip is bit exact for int16-representable samples, and atomic (no .tmp left)
  CHECK_OK(audio_write_wav16(tpath("rt.wav"), a.samples, a.n, 16000));
  CHECK(access(tpath("rt.wav.tmp"), F_OK) != 0);
  hb_audio b;
  CHECK_OK(audio_read(tpath("rt.wav"), &o, &b));
  CHECK(b.n == a.n && memcmp(a.samples, b.samples, a.n * sizeof(float)) == 0);
  audio_free(&b);
  audio_free(&a);

  // flac with the same content
  write_pcm16(tpath("mono.flac"), SF_FORMAT_FLAC | SF_FORMAT_PCM_16, pcm, N, 1, 16000);
  CHECK_OK(audio_read(tpath("mono.flac"), &o, &a));
  CHECK(a.n == N && a.samples[0] == -1.0f && a.samples[1] == 32767.0f / 32768.0f);
  audio_free(&a);

  // stereo: error without a channel, channel 1 picks the right samples
  for (int i = 0; i < N; i++) {
    pcm[2 * i] = (short)i;
    pcm[2 * i + 1] = (short)-i;
  }
  write_pcm16(tpath("stereo.wav"), wav16, pcm, N, 2, 16000);
  CHECK_ERR(audio_read(tpath("stereo.wav"), &o, &a), "2 channels; the model needs mono; use --channel");
  o.channel = 1;
  CHECK_OK(audio_read(tpath("stereo.wav"), &o, &a));
  CHECK(a.n == N && a.samples[5] == -5.0f / 32768.0f);
  audio_free(&a);
  o.channel = 2;
  CHECK_ERR(audio_read(tpath("stereo.wav"), &o, &a), "cannot take channel 2");
  o.channel = -1;

  // 8 kHz: error without --resample; with it a 440 Hz sine stays a 440 Hz sine of twice the length
  enum { N8 = 8000 };
  for (int i = 0; i < N8; i++) pcm[i] = (short)lrint(16000.0 * sin(2 * M_PI * 440.0 * i / 8000.0));
  write_pcm16(tpath("8k.wav"), wav16, pcm, N8, 1, 8000);
  CHECK_ERR(audio_read(tpath("8k.wav"), &o, &a), "8000 Hz, the model needs 16000 Hz; use --resample");
  o.resample = 1;
  CHECK_OK(audio_read(tpath("8k.wav"), &o, &a));
  printf("  resampled 8000 -> 16000 Hz: %d -> %zu samples\n", N8, a.n);
  CHECK(a.sample_rate == 16000 && (a.n == 2 * N8 || a.n + 1 == 2 * N8 || a.n == 2 * N8 + 1));
  if (a.n >= 2 * N8 - 1) {
    // compare the middle (away from the filter's edge effects) with the analytic sine
    size_t lo = 2000, hi = 14000, m = hi - lo;
    float *ref = malloc(sizeof(float) * m);
    for (size_t i = 0; i < m; i++) ref[i] = (float)(16000.0 / 32768.0 * sin(2 * M_PI * 440.0 * (double)(lo + i) / 16000.0));
    CHECK_REL("resampled sine vs analytic", rel_err_f32(a.samples + lo, ref, m), 2e-3);
    free(ref);
  }
  audio_free(&a);
  o.resample = 0;

  // empty, too short
  write_pcm16(tpath("empty.wav"), wav16, pcm, 0, 1, 16000);
  CHECK_ERR(audio_read(tpath("empty.wav"), &o, &a), "empty");
  write_pcm16(tpath("short.wav"), wav16, pcm, 100, 1, 16000);
  o.min_samples = HB_MIN_SAMPLES;
  CHECK_ERR(audio_read(tpath("short.wav"), &o, &a), "100 samples, need at least 400");
  o.min_samples = 1;
  CHECK_OK(audio_read(tpath("short.wav"), &o, &a));
  audio_free(&a);

  // garbage bytes, a missing file, a directory
  FILE *g = fopen(tpath("garbage.wav"), "wb");
  for (int i = 0; i < 5000; i++) fputc((i * 131 + 7) & 255, g);
  fclose(g);
  CHECK_ERR(audio_read(tpath("garbage.wav"), &o, &a), "cannot read as audio");
  CHECK_ERR(audio_read(tpath("garbage.wav"), &o, &a), "garbage.wav");
  CHECK_ERR(audio_read(tpath("nope.wav"), &o, &a), "nope.wav: cannot open");
  CHECK_ERR(audio_read(g_dir, &o, &a), "is a directory");

  // truncated wav (data chunk cut) and truncated flac
  write_pcm16(tpath("long.wav"), wav16, pcm, N8, 1, 16000);
  truncate_file(tpath("long.wav"), tpath("cut.wav"), 1000);
  CHECK_ERR(audio_read(tpath("cut.wav"), &o, &a), "truncated");
  truncate_file(tpath("long.wav"), tpath("cut2.wav"), 30);
  CHECK_ERR(audio_read(tpath("cut2.wav"), &o, &a), "cut2.wav: cannot read as audio");
  write_pcm16(tpath("long.flac"), SF_FORMAT_FLAC | SF_FORMAT_PCM_16, pcm, N8, 1, 16000);
  truncate_file(tpath("long.flac"), tpath("cut.flac"), 3000);
  CHECK_ERR(audio_read(tpath("cut.flac"), &o, &a), "cut.flac: ");

  // float wav with a NaN
  {
    SF_INFO info = {.samplerate = 16000, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_FLOAT};
    SNDFILE *sf = sf_open(tpath("nan.wav"), SFM_WRITE, &info);
    float fx[1000];
    for (int i = 0; i < 1000; i++) fx[i] = 0.1f;
    fx[500] = NAN;
    sf_writef_float(sf, fx, 1000);
    sf_close(sf);
    CHECK_ERR(audio_read(tpath("nan.wav"), &o, &a), "non-finite sample (NaN or inf) at index 500");
  }

  // audio_read_into: one caller-owned buffer across files: grows, keeps its memory for shorter
  // files, survives errors (n = 0, buffer kept), and gives audio_read's samples bit for bit
  {
    hb_audio r = {0}, ref;
    size_t cap = 0;
    CHECK_OK(audio_read_into(tpath("short.wav"), &o, &r, &cap));
    CHECK(r.n == 100 && cap >= 100 && r.samples != NULL);
    CHECK_OK(audio_read_into(tpath("long.wav"), &o, &r, &cap));
    CHECK_OK(audio_read(tpath("long.wav"), &o, &ref));
    CHECK(r.n == N8 && cap >= N8 && ref.n == N8 && memcmp(r.samples, ref.samples, N8 * sizeof(float)) == 0);
    audio_free(&ref);
    float *kept = r.samples;
    size_t kept_cap = cap;
    CHECK_OK(audio_read_into(tpath("mono.wav"), &o, &r, &cap));
    CHECK(r.n == N && r.samples == kept && cap == kept_cap && r.samples[1] == 32767.0f / 32768.0f);
    CHECK_ERR(audio_read_into(tpath("garbage.wav"), &o, &r, &cap), "garbage.wav: cannot read as audio");
    CHECK(r.n == 0 && r.samples == kept && cap == kept_cap);
    CHECK_ERR(audio_read_into(tpath("nan.wav"), &o, &r, &cap), "non-finite sample (NaN or inf) at index 500");
    CHECK_ERR(audio_read_into(tpath("cut.wav"), &o, &r, &cap), "truncated");
    CHECK(r.n == 0 && r.samples != NULL);
    o.channel = 1;
    CHECK_OK(audio_read_into(tpath("stereo.wav"), &o, &r, &cap));
    CHECK(r.n == N && r.samples[5] == -5.0f / 32768.0f && r.samples[N - 1] == -(float)(N - 1) / 32768.0f);
    o.channel = -1;
    o.resample = 1;
    CHECK_OK(audio_read_into(tpath("8k.wav"), &o, &r, &cap));
    CHECK_OK(audio_read(tpath("8k.wav"), &o, &ref));
    CHECK(r.sample_rate == 16000 && r.n == ref.n && cap >= r.n && memcmp(r.samples, ref.samples, r.n * sizeof(float)) == 0);
    audio_free(&ref);
    o.resample = 0;
    CHECK_OK(audio_read_into(tpath("long.wav"), &o, &r, &cap));
    CHECK(r.n == N8 && cap >= N8);
    printf("  audio_read_into: 9 reads (4 errors) into one buffer, capacity %zu\n", cap);
    audio_free(&r);
  }

  free(pcm);
  const char *names[] = {"mono.wav", "rt.wav", "mono.flac", "stereo.wav", "8k.wav", "empty.wav", "short.wav",
                         "garbage.wav", "long.wav", "cut.wav", "cut2.wav", "long.flac", "cut.flac", "nan.wav"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) unlink(tpath(names[i]));
  rmdir(g_dir);
  return test_summary("test_audio");
}
