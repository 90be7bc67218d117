/* hubert.c C API: a small, stable interface to libhubert for bindings (python/hubert_c uses it
 * through ctypes). Plain C types only; every function that can fail returns a negative value or
 * NULL and leaves a message (naming the file and the problem) for hubert_last_error(), per thread.
 * Audio is float32 mono at 16 kHz in [-1, 1) (int16 / 32768, as fairseq reads it).
 * Hidden states follow Hugging Face's numbering: 0 = transformer input, k = output of layer k. */
#ifndef HUBERT_CAPI_H
#define HUBERT_CAPI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HUBERT_CAPI_VERSION 1

typedef struct hubert_model hubert_model;

int hubert_capi_version(void);
/* Message of the last failed call on this thread ("" if none). */
const char *hubert_last_error(void);

/* Loads a model folder (config.json + model.safetensors, hubert.c or HF HuBERT/wav2vec2 layout).
 * device: "cpu" or "cuda"; threads <= 0: OpenMP's default. */
hubert_model *hubert_open(const char *model_dir, const char *device, int threads);
void hubert_close(hubert_model *m);

int hubert_num_layers(const hubert_model *m);       /* NL: NL + 1 hidden states */
int hubert_hidden_size(const hubert_model *m);      /* H */
int hubert_downsample_rate(const hubert_model *m);  /* samples per frame (320) */
int hubert_receptive_field(const hubert_model *m);  /* shortest input in samples (400) */
/* Frames produced by n samples (0 if n is shorter than the receptive field). */
int64_t hubert_num_frames(const hubert_model *m, int64_t num_samples);

/* One waveform -> every hidden state, copied to out (NL + 1, frames, H), row-major.
 * out_cap: floats available at out. Returns the frame count, or -1. */
int64_t hubert_forward(hubert_model *m, const float *wave, int64_t num_samples, float *out, int64_t out_cap);

/* B zero-padded waveforms (B, L) with lengths[b] <= L valid samples, in one padded batch exactly as
 * torchaudio/fairseq run it (a group-norm extractor then normalises over the padded length).
 * out (NL + 1, B, T, H) with T = hubert_num_frames(m, L); frames[b]: valid frames of b.
 * Returns T, or -1. */
int64_t hubert_forward_batch(hubert_model *m, const float *waves, const int64_t *lengths, int B, int64_t L,
                             float *out, int64_t out_cap, int64_t *frames);

#ifdef __cplusplus
}
#endif

#endif
