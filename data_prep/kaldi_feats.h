// Kaldi-compatible filterbank and MFCC features, matching torchaudio 0.13's
// torchaudio.compliance.kaldi.fbank / .mfcc with their defaults (dither 0, frame 25 ms, shift
// 10 ms, snip_edges, remove_dc_offset, preemphasis 0.97, povey window, FFT rounded up to a power
// of two, power spectrum, Kaldi mel banks 20 Hz .. Nyquist, log floored at FLT_EPSILON,
// use_energy=False), and torchaudio.functional.compute_deltas (win_length 5, replicate padding)
// chained as fairseq's examples/hubert/simple_kmeans/dump_mfcc_feature.py does:
// mfcc (T, 13) -> deltas -> delta-deltas -> concat (T, 39).
//
// Pure functions on float arrays, no I/O. Input waveforms are float in [-1, 1) (not scaled by
// 32768). An initialised hb_kaldi_feats is read-only and can be shared by threads.
#ifndef HB_KALDI_FEATS_H
#define HB_KALDI_FEATS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { KALDI_FBANK = 0, KALDI_MFCC = 1 } hb_kaldi_kind;

typedef struct {
  int first, count;   // nonzero FFT bins [first, first + count) of one triangular mel filter
  float *w;           // (count,)
} hb_mel_row;

typedef struct {
  hb_kaldi_kind kind;
  int sample_rate;
  int frame_len;      // window_size: 400 samples at 16 kHz
  int frame_shift;    // 160
  int nfft;           // 512: the padded window, a power of two
  int num_mel_bins;   // 80 (fbank default here) / 23 (mfcc)
  int num_ceps;       // 13 (mfcc), 0 for fbank
  int deltas;         // 1: append deltas and delta-deltas (mfcc: 13 -> 39)
  int dim;            // output columns
  int mean_seg;       // > 0: frame means from sums of segments of this many samples (80)
  float *window;      // (frame_len,) povey window: hann(frame_len, periodic=False)^0.85
  int *bitrev;        // (nfft/2,) bit reversal of the half-size complex FFT
  float *tw_re, *tw_im;  // (nfft/4 + 1,) exp(-2 pi i k / (nfft/2)): twiddles of the complex FFT
  float *sp_re, *sp_im;  // (nfft/2,) exp(-2 pi i k / nfft): the real-FFT split (computed in double)
  hb_mel_row *mel;    // (num_mel_bins,)
  float *dct;         // (num_mel_bins, num_ceps) orthonormal DCT-II, Kaldi C0 column,
                      // cepstral lifter (22) folded into the columns
} hb_kaldi_feats;

// kind KALDI_FBANK: num_mel_bins (<= 0: 80), deltas ignored. KALDI_MFCC: num_mel_bins (<= 0: 23),
// 13 ceps, deltas 0/1. sample_rate > 0 (16000 for HuBERT).
int kaldi_feats_init(hb_kaldi_feats *k, hb_kaldi_kind kind, int sample_rate, int num_mel_bins, int deltas);
void kaldi_feats_free(hb_kaldi_feats *k);

// Frames of an n-sample waveform: 0 if n < frame_len, else 1 + (n - frame_len) / frame_shift.
int64_t kaldi_num_frames(const hb_kaldi_feats *k, size_t n);

// out: (kaldi_num_frames(k, n), k->dim). Returns -1 (hb_fail) only if scratch memory fails.
int kaldi_feats_compute(const hb_kaldi_feats *k, const float *wave, size_t n, float *out);

// torchaudio.functional.compute_deltas(win_length=5, mode="replicate") along time:
// out[t] = sum_{j=-2..2} j * x[clamp(t + j, 0, T-1)] / 10, for each of D columns.
// in (T, D) with row stride in_stride; out (T, D) with row stride out_stride; in != out.
void kaldi_compute_deltas(const float *in, int64_t T, int D, int in_stride, float *out, int out_stride);

#endif
