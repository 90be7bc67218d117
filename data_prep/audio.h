// Audio input with libsndfile (wav, flac, ogg/vorbis, ...). Samples come back as float in
// [-1, 1): int16 PCM divided by 32768, exactly as fairseq reads audio with soundfile.
#ifndef HB_AUDIO_H
#define HB_AUDIO_H

#include <stddef.h>
#include <stdint.h>

#define HB_SAMPLE_RATE 16000
#define HB_MIN_SAMPLES 400   // receptive field of HuBERT's conv feature extractor (one frame)

typedef struct {
  float *samples;   // (n,) mono
  size_t n;
  int sample_rate;
} hb_audio;

typedef struct {
  int sample_rate;  // required rate (HB_SAMPLE_RATE when 0)
  int resample;     // 1: convert other rates with libsamplerate (a note goes to stderr); 0: error
  int channel;      // -1: the file must be mono; k >= 0: take channel k of a multi-channel file
  size_t min_samples; // files shorter than this (after resampling) are errors; 0: only empty is an error
} hb_audio_opts;

void audio_default_opts(hb_audio_opts *o);   // 16 kHz, no resampling, mono required, min 1 sample
// Errors name the file and the problem: unreadable/not audio, empty, too short, wrong rate,
// wrong channel count.
int audio_read(const char *path, const hb_audio_opts *opts, hb_audio *out);
// audio_read into a reusable buffer: out->samples (NULL at first) holds *cap floats owned by the
// caller; it is grown (or replaced) as needed and kept on error (free with audio_free). Same
// checks and messages as audio_read; on error out->n = 0.
int audio_read_into(const char *path, const hb_audio_opts *opts, hb_audio *out, size_t *cap);
void audio_free(hb_audio *a);
// Writes 16-bit PCM wav (mono), atomically (tmp + rename).
int audio_write_wav16(const char *path, const float *x, size_t n, int sample_rate);

#endif
