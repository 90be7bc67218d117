// Kaldi fbank / MFCC (torchaudio.compliance.kaldi semantics), see kaldi_feats.h.
//
// Frames are processed KB = 8 at a time in structure-of-arrays form (element i of all 8 frames
// is contiguous), so every inner loop is over the 8 lanes and vectorises. The real FFT of size
// N = nfft is one complex FFT of size M = N/2 on z[m] = x[2m] + i x[2m+1] followed by the split
//   X[k] = Fe[k] + W_N^k Fo[k],  Fe = (Z[k] + conj Z[M-k]) / 2,  Fo = (Z[k] - conj Z[M-k]) / 2i.
#include "data_prep/kaldi_feats.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "common/error.h"

// The spectrum is computed in float, 8 frames per vector (one AVX register). Float rounding
// noise in the deep valleys of tonal spectra is of the size of torchaudio's own float32 noise
// (relative L2 ~1e-5 .. 5e-5 each, see tests/parity/test_kaldi_feats.py); double costs ~2x.
typedef float kreal;
#define KB 8
typedef kreal vlane __attribute__((vector_size(KB * sizeof(kreal))));  // element m of KB frames
typedef int32_t vlane_i __attribute__((vector_size(KB * sizeof(int32_t))));
#define KALDI_NUM_CEPS 13
#define KALDI_MAX_MEAN_SEGS 64
#define KALDI_LIFTER 22.0
#define KALDI_PREEMPH 0.97f
#define KALDI_LOW_FREQ 20.0f

// An AVX2 + FMA clone only where the build's own target lacks them (a -march=native build on such
// a CPU needs none; GCC 13.3 with -march=native on an AVX-512 host crashed expanding the clone).
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__) && \
    !(defined(__AVX2__) && defined(__FMA__))
#define HB_HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define HB_HOT
#endif
// Helpers of the hot functions are inlined into each clone (an out-of-line helper would be
// compiled for the baseline target only).
#define HB_INLINE inline __attribute__((always_inline))

static float mel_scale(float f) { return 1127.0f * logf(1.0f + f / 700.0f); }

// Kaldi / torchaudio get_mel_banks with vtln_warp = 1, in float32 as torchaudio computes it.
// Filter j is a triangle over mel [left_j, right_j] peaking at center_j; FFT bin k sits at
// mel(k * sr / nfft) for k < nfft/2 (the Nyquist bin gets weight 0).
static int build_mel(hb_kaldi_feats *k) {
  int nbins = k->num_mel_bins, nfft_bins = k->nfft / 2;
  float nyquist = 0.5f * (float)k->sample_rate;
  float bin_width = (float)k->sample_rate / (float)k->nfft;
  float mel_lo = (float)(1127.0 * log(1.0 + KALDI_LOW_FREQ / 700.0));
  float mel_hi = (float)(1127.0 * log(1.0 + nyquist / 700.0));
  float delta = (mel_hi - mel_lo) / (float)(nbins + 1);
  k->mel = hb_calloc((size_t)nbins, sizeof *k->mel);
  float *w = hb_malloc((size_t)nfft_bins * sizeof *w);
  if (!k->mel || !w) { free(w); return -1; }
  for (int j = 0; j < nbins; j++) {
    float left = mel_lo + (float)j * delta, center = mel_lo + (float)(j + 1) * delta;
    float right = mel_lo + (float)(j + 2) * delta;
    int first = -1, last = -1;
    for (int b = 0; b < nfft_bins; b++) {
      float mel = mel_scale(bin_width * (float)b);
      float up = (mel - left) / (center - left), down = (right - mel) / (right - center);
      float v = up < down ? up : down;
      w[b] = v > 0.0f ? v : 0.0f;
      if (w[b] > 0.0f) { if (first < 0) first = b; last = b; }
    }
    hb_mel_row *r = &k->mel[j];
    r->first = first < 0 ? 0 : first;
    r->count = first < 0 ? 0 : last - first + 1;
    r->w = hb_malloc((size_t)(r->count > 0 ? r->count : 1) * sizeof(float));
    if (!r->w) { free(w); return -1; }
    memcpy(r->w, w + r->first, (size_t)r->count * sizeof(float));
  }
  free(w);
  return 0;
}

int kaldi_feats_init(hb_kaldi_feats *k, hb_kaldi_kind kind, int sample_rate, int num_mel_bins, int deltas) {
  memset(k, 0, sizeof *k);
  if (sample_rate < 800 || sample_rate > 384000) return hb_fail("kaldi features: sample rate %d Hz out of range", sample_rate);
  if (kind != KALDI_FBANK && kind != KALDI_MFCC) return hb_fail("kaldi features: unknown kind %d", (int)kind);
  k->kind = kind;
  k->sample_rate = sample_rate;
  // int(sample_frequency * ms * 0.001) as torchaudio truncates it
  k->frame_len = (int)((double)sample_rate * 25.0 * 0.001);
  k->frame_shift = (int)((double)sample_rate * 10.0 * 0.001);
  k->nfft = 1;
  while (k->nfft < k->frame_len) k->nfft <<= 1;
  if (k->nfft < 8) return hb_fail("kaldi features: sample rate %d Hz gives a %d-point FFT", sample_rate, k->nfft);
  k->num_mel_bins = num_mel_bins > 0 ? num_mel_bins : (kind == KALDI_FBANK ? 80 : 23);
  if (k->num_mel_bins < 4 || k->num_mel_bins > k->nfft / 2)
    return hb_fail("kaldi features: %d mel bins (need 4 .. %d)", k->num_mel_bins, k->nfft / 2);
  k->num_ceps = kind == KALDI_MFCC ? KALDI_NUM_CEPS : 0;
  if (kind == KALDI_MFCC && k->num_ceps > k->num_mel_bins)
    return hb_fail("kaldi features: %d ceps > %d mel bins", k->num_ceps, k->num_mel_bins);
  k->deltas = kind == KALDI_MFCC && deltas;
  k->dim = kind == KALDI_FBANK ? k->num_mel_bins : k->num_ceps * (k->deltas ? 3 : 1);

  // frame means from shared segment sums when the segments are whole vectors and few enough
  int g = k->frame_len, r = k->frame_shift;
  while (r) {
    int t = g % r;
    g = r;
    r = t;
  }
  if (g % KB == 0 && (KB - 1) * (k->frame_shift / g) + k->frame_len / g <= KALDI_MAX_MEAN_SEGS) k->mean_seg = g;

  int M = k->nfft / 2, bits = 0;
  while ((1 << bits) < M) bits++;
  k->window = hb_malloc((size_t)k->frame_len * sizeof(float));
  k->bitrev = hb_malloc((size_t)M * sizeof(int));
  k->tw_re = hb_malloc((size_t)(M / 2 + 1) * sizeof(float));
  k->tw_im = hb_malloc((size_t)(M / 2 + 1) * sizeof(float));
  k->sp_re = hb_malloc((size_t)M * sizeof(float));
  k->sp_im = hb_malloc((size_t)M * sizeof(float));
  if (!k->window || !k->bitrev || !k->tw_re || !k->tw_im || !k->sp_re || !k->sp_im) goto fail;
  // povey: hann(N, periodic=False)^0.85 = (0.5 - 0.5 cos(2 pi n / (N - 1)))^0.85
  for (int n = 0; n < k->frame_len; n++)
    k->window[n] = (float)pow(0.5 - 0.5 * cos(2.0 * M_PI * n / (double)(k->frame_len - 1)), 0.85);
  for (int m = 0; m < M; m++) {
    int r = 0;
    for (int b = 0; b < bits; b++) r |= ((m >> b) & 1) << (bits - 1 - b);
    k->bitrev[m] = r;
  }
  for (int j = 0; j <= M / 2; j++) {
    k->tw_re[j] = (float)cos(-2.0 * M_PI * j / (double)M);
    k->tw_im[j] = (float)sin(-2.0 * M_PI * j / (double)M);
  }
  for (int j = 0; j < M; j++) {
    k->sp_re[j] = (float)cos(-2.0 * M_PI * j / (double)k->nfft);
    k->sp_im[j] = (float)sin(-2.0 * M_PI * j / (double)k->nfft);
  }
  if (build_mel(k)) goto fail;
  if (kind == KALDI_MFCC) {
    // torchaudio _get_dct_matrix: create_dct(n_mels, n_mels, "ortho") with column 0 replaced by
    // sqrt(1/n_mels), first num_ceps columns; times lifter 1 + L/2 sin(pi i / L).
    int nm = k->num_mel_bins, nc = k->num_ceps;
    k->dct = hb_malloc((size_t)nm * (size_t)nc * sizeof(float));
    if (!k->dct) goto fail;
    for (int n = 0; n < nm; n++)
      for (int c = 0; c < nc; c++) {
        double v = c == 0 ? sqrt(1.0 / nm) : cos(M_PI / nm * (n + 0.5) * c) * sqrt(2.0 / nm);
        double lift = 1.0 + 0.5 * KALDI_LIFTER * sin(M_PI * c / KALDI_LIFTER);
        k->dct[n * nc + c] = (float)(v * lift);
      }
  }
  return 0;
fail:
  kaldi_feats_free(k);
  return hb_fail_prefix("kaldi features init");
}

void kaldi_feats_free(hb_kaldi_feats *k) {
  if (!k) return;
  if (k->mel)
    for (int j = 0; j < k->num_mel_bins; j++) free(k->mel[j].w);
  free(k->mel);
  free(k->window);
  free(k->bitrev);
  free(k->tw_re);
  free(k->tw_im);
  free(k->sp_re);
  free(k->sp_im);
  free(k->dct);
  memset(k, 0, sizeof *k);
}

int64_t kaldi_num_frames(const hb_kaldi_feats *k, size_t n) {
  if (n < (size_t)k->frame_len) return 0;
  return 1 + (int64_t)((n - (size_t)k->frame_len) / (size_t)k->frame_shift);
}

// Natural log of 8 positive normal floats (Cephes logf: x = m 2^e with m in [sqrt(1/2), sqrt 2),
// log x = e ln 2 + log1p(m - 1) by a degree-9 polynomial; error ~1 ulp of the result).
HB_INLINE static void log_lanes(vlane *xp) {  // in place (no vector by value: psABI)
  vlane x = *xp;
  vlane_i bits = (vlane_i)x;
  vlane_i e = (bits >> 23) - 127;
  vlane m = (vlane)((bits & 0x007fffff) | 0x3f800000);  // [1, 2)
  vlane_i big = m > (kreal)1.41421356237f;
  m = (vlane)(((vlane_i)(m * (kreal)0.5f) & big) | ((vlane_i)m & ~big));
  e -= big;  // big lanes are -1: e + 1
  vlane ef = __builtin_convertvector(e, vlane);
  vlane f = m - (kreal)1.0f, z = f * f;
  vlane y = f * 7.0376836292e-2f - 1.1514610310e-1f;
  y = y * f + 1.1676998740e-1f;
  y = y * f - 1.2420140846e-1f;
  y = y * f + 1.4249322787e-1f;
  y = y * f - 1.6668057665e-1f;
  y = y * f + 2.0000714765e-1f;
  y = y * f - 2.4999993993e-1f;
  y = y * f + 3.3333331174e-1f;
  y = y * f * z;
  y += ef * -2.12194440e-4f;
  y -= 0.5f * z;
  *xp = f + y + ef * 0.693359375f;
}

// Scratch kreals for one block: zr, zi (M, KB), power (M+1, KB), mel (num_mel_bins, KB).
static size_t block_scratch_len(const hb_kaldi_feats *k) {
  size_t M = (size_t)k->nfft / 2;
  return (2 * M + M + 1 + (size_t)k->num_mel_bins) * KB;
}

typedef double v4d __attribute__((vector_size(4 * sizeof(double))));
typedef float v4f __attribute__((vector_size(4 * sizeof(float))));

// Mean of x (L,) summed in double (4 + 4 lanes).
HB_INLINE static double frame_mean(const float *x, int L) {
  v4d s0 = {0}, s1 = {0};
  int j = 0;
  for (; j + 8 <= L; j += 8) {
    v4f a, b;
    memcpy(&a, x + j, sizeof a);
    memcpy(&b, x + j + 4, sizeof b);
    s0 += __builtin_convertvector(a, v4d);
    s1 += __builtin_convertvector(b, v4d);
  }
  v4d s = s0 + s1;
  double t = (s[0] + s[1]) + (s[2] + s[3]);
  for (; j < L; j++) t += x[j];
  return t / L;
}

// In-place DIT complex FFT of size M on KB interleaved lanes; input in bit-reversed order.
// One vlane holds element m of all KB frames, so every butterfly is a handful of vector ops
// (GCC/Clang vector extension; lowered to AVX2 or SSE2 by the clone being compiled).
// Radix-2 stages are fused in pairs: stages of half-size h and 2h on a0..a3 = z[i+j+{0,h,2h,3h}]
//   b0,1 = a0 +- w1 a1,  b2,3 = a2 +- w1 a3      (w1 = W_2h^j)
//   c0,2 = b0 +- w2 b2,  c1,3 = b1 -+ i w2 b3    (w2 = W_4h^j; W_4h^(j+h) = -i W_4h^j)
// (3 complex multiplies per 4 points, one memory pass per 2 stages); an odd stage count starts
// with one twiddle-free radix-2 stage.
HB_HOT static void fft_lanes(const hb_kaldi_feats *k, vlane *restrict zr, vlane *restrict zi) {
  int M = k->nfft / 2, h = 1;
  int stages = 0;
  while ((1 << stages) < M) stages++;
  if (stages & 1) {
    for (int i = 0; i < M; i += 2) {
      vlane ar = zr[i], ai = zi[i], br = zr[i + 1], bi = zi[i + 1];
      zr[i] = ar + br;
      zi[i] = ai + bi;
      zr[i + 1] = ar - br;
      zi[i + 1] = ai - bi;
    }
    h = 2;
  } else if (M >= 4) {
    // first fused pair, h = 1: all twiddles are 1
    for (int i = 0; i < M; i += 4) {
      vlane b0r = zr[i] + zr[i + 1], b0i = zi[i] + zi[i + 1], b1r = zr[i] - zr[i + 1], b1i = zi[i] - zi[i + 1];
      vlane b2r = zr[i + 2] + zr[i + 3], b2i = zi[i + 2] + zi[i + 3];
      vlane b3r = zr[i + 2] - zr[i + 3], b3i = zi[i + 2] - zi[i + 3];
      zr[i] = b0r + b2r;
      zi[i] = b0i + b2i;
      zr[i + 2] = b0r - b2r;
      zi[i + 2] = b0i - b2i;
      zr[i + 1] = b1r + b3i;
      zi[i + 1] = b1i - b3r;
      zr[i + 3] = b1r - b3i;
      zi[i + 3] = b1i + b3r;
    }
    h = 4;
  }
  for (; 4 * h <= M; h *= 4) {
    int s1 = M / (2 * h), s2 = M / (4 * h);
    for (int i = 0; i < M; i += 4 * h)
      for (int j = 0; j < h; j++) {
        kreal w1r = (kreal)k->tw_re[j * s1], w1i = (kreal)k->tw_im[j * s1];
        kreal w2r = (kreal)k->tw_re[j * s2], w2i = (kreal)k->tw_im[j * s2];
        int p0 = i + j, p1 = p0 + h, p2 = p1 + h, p3 = p2 + h;
        vlane a1r = zr[p1], a1i = zi[p1], a3r = zr[p3], a3i = zi[p3];
        vlane t1r = a1r * w1r - a1i * w1i, t1i = a1r * w1i + a1i * w1r;
        vlane t3r = a3r * w1r - a3i * w1i, t3i = a3r * w1i + a3i * w1r;
        vlane b0r = zr[p0] + t1r, b0i = zi[p0] + t1i, b1r = zr[p0] - t1r, b1i = zi[p0] - t1i;
        vlane b2r = zr[p2] + t3r, b2i = zi[p2] + t3i, b3r = zr[p2] - t3r, b3i = zi[p2] - t3i;
        vlane t2r = b2r * w2r - b2i * w2i, t2i = b2r * w2i + b2i * w2r;
        vlane t4r = b3r * w2r - b3i * w2i, t4i = b3r * w2i + b3i * w2r;  // -i t4 = (t4i, -t4r)
        zr[p0] = b0r + t2r;
        zi[p0] = b0i + t2i;
        zr[p2] = b0r - t2r;
        zi[p2] = b0i - t2i;
        zr[p1] = b1r + t4i;
        zi[p1] = b1i - t4r;
        zr[p3] = b1r - t4i;
        zi[p3] = b1i + t4r;
      }
  }
}

#if defined(__clang__)
#define SHUF8(a, b, i0, i1, i2, i3, i4, i5, i6, i7) __builtin_shufflevector(a, b, i0, i1, i2, i3, i4, i5, i6, i7)
#else
#define SHUF8(a, b, i0, i1, i2, i3, i4, i5, i6, i7) __builtin_shuffle(a, b, (vlane_i){i0, i1, i2, i3, i4, i5, i6, i7})
#endif

// In-register 8 x 8 transpose: r[i][b] -> r[b][i] (unpack, 2-wide shuffle, 128-bit halves).
HB_INLINE static void transpose_lanes(vlane r[KB]) {
  vlane t[KB], u[KB];
  for (int i = 0; i < 4; i++) {
    t[2 * i] = SHUF8(r[2 * i], r[2 * i + 1], 0, 8, 1, 9, 4, 12, 5, 13);       // a0 b0 a1 b1 | a4 b4 a5 b5
    t[2 * i + 1] = SHUF8(r[2 * i], r[2 * i + 1], 2, 10, 3, 11, 6, 14, 7, 15);  // a2 b2 a3 b3 | a6 b6 a7 b7
  }
  for (int i = 0; i < 2; i++) {
    u[4 * i] = SHUF8(t[4 * i], t[4 * i + 2], 0, 1, 8, 9, 4, 5, 12, 13);        // a0 b0 c0 d0 | a4 b4 c4 d4
    u[4 * i + 1] = SHUF8(t[4 * i], t[4 * i + 2], 2, 3, 10, 11, 6, 7, 14, 15);  // a1 .. d1 | a5 .. d5
    u[4 * i + 2] = SHUF8(t[4 * i + 1], t[4 * i + 3], 0, 1, 8, 9, 4, 5, 12, 13);
    u[4 * i + 3] = SHUF8(t[4 * i + 1], t[4 * i + 3], 2, 3, 10, 11, 6, 7, 14, 15);
  }
  for (int i = 0; i < 4; i++) {
    r[i] = SHUF8(u[i], u[4 + i], 0, 1, 2, 3, 8, 9, 10, 11);      // a_i .. h_i
    r[i + 4] = SHUF8(u[i], u[4 + i], 4, 5, 6, 7, 12, 13, 14, 15);
  }
}

// Frames f0 .. f0 + nv - 1 (nv <= KB) -> out rows (nv, dim) (for mfcc only the first num_ceps
// columns; deltas are added afterwards over the whole utterance).
HB_HOT static void compute_block(const hb_kaldi_feats *k, const float *wave, int64_t f0, int nv,
                                 float *out, kreal *scratch) {
  int M = k->nfft / 2, L = k->frame_len, nm = k->num_mel_bins;
  kreal *zr = scratch, *zi = zr + (size_t)M * KB, *pw = zi + (size_t)M * KB;
  kreal *melv = pw + (size_t)(M + 1) * KB;
  // zero-padded tail of the window: z[m] = 0 for m >= ceil(L / 2) (the other slots of live
  // lanes are written below; dead lanes of a partial block keep finite values of earlier blocks)
  for (int m = (L + 1) / 2; m < M; m++) {
    vlane zero = {0};
    ((vlane *)zr)[k->bitrev[m]] = zero;
    ((vlane *)zi)[k->bitrev[m]] = zero;
  }
  // Lane b reads frame f0 + b; dead lanes of a partial block re-read frame f0 (results dropped).
  const float *rows[KB];
  vlane mean;
  for (int b = 0; b < KB; b++) rows[b] = wave + (size_t)(f0 + (b < nv ? b : 0)) * (size_t)k->frame_shift;
  if (k->mean_seg > 0) {
    // frames overlap: sum each g-sample segment of the block once (g = gcd(frame_len,
    // frame_shift); 8 float lanes of g/8 samples each, lanes added in double), frame b is the
    // L/g segments from b * shift/g on
    int g = k->mean_seg, per = L / g, step = k->frame_shift / g, nseg = (nv - 1) * step + per;
    double seg[KALDI_MAX_MEAN_SEGS];
    for (int t = 0; t < nseg; t++) {
      const float *x = rows[0] + (size_t)t * (size_t)g;
      vlane acc = {0};
      for (int i = 0; i < g; i += KB) {
        vlane v;
        memcpy(&v, x + i, sizeof v);
        acc += v;
      }
      seg[t] = (((double)acc[0] + acc[1]) + ((double)acc[2] + acc[3])) + (((double)acc[4] + acc[5]) + ((double)acc[6] + acc[7]));
    }
    for (int b = 0; b < KB; b++) {
      double sum = 0.0;
      for (int t = 0; t < per; t++) sum += seg[(b < nv ? b : 0) * step + t];
      mean[b] = (kreal)(sum / L);
    }
  } else {
    for (int b = 0; b < KB; b++) mean[b] = (kreal)frame_mean(rows[b], L);
  }
  // y[j] = (s[j] - 0.97 s[max(j-1, 0)]) * window[j], s = x - mean, on vectors X[j] = x[j] of the
  // KB frames (8 x 8 tiles of the waveform transposed); z[m] = y[2m] + i y[2m+1] is stored at
  // the bit-reversed position.
  vlane prev = {0};
  int j = 0;
  for (; j + KB <= L; j += KB) {
    vlane X[KB];
    for (int b = 0; b < KB; b++) memcpy(&X[b], rows[b] + j, sizeof X[b]);
    transpose_lanes(X);
    if (j == 0) prev = X[0];
    for (int r = 0; r < KB; r++) {
      vlane y = ((X[r] - mean) - (kreal)KALDI_PREEMPH * (prev - mean)) * k->window[j + r];
      prev = X[r];
      vlane *dst = (j + r) & 1 ? (vlane *)zi : (vlane *)zr;
      dst[k->bitrev[(j + r) >> 1]] = y;
    }
  }
  for (; j < L; j++) {
    vlane x;
    for (int b = 0; b < KB; b++) x[b] = rows[b][j];
    if (j == 0) prev = x;
    vlane y = ((x - mean) - (kreal)KALDI_PREEMPH * (prev - mean)) * k->window[j];
    prev = x;
    vlane *dst = j & 1 ? (vlane *)zi : (vlane *)zr;
    dst[k->bitrev[j >> 1]] = y;
  }
  if (L & 1) {
    vlane zero = {0};
    ((vlane *)zi)[k->bitrev[L / 2]] = zero;
  }
  fft_lanes(k, (vlane *)zr, (vlane *)zi);
  // split into the real spectrum, power |X[k]|^2 for k = 0..M
  const vlane *vr = (const vlane *)zr, *vi = (const vlane *)zi;
  vlane *vp = (vlane *)pw;
  // X[q] and X[M-q] share Fe[q] = er + i ei and A + iB = W_N^q Fo[q]:
  //   X[q] = (er + A) + i (ei + B),  X[M-q] = (er - A) + i (B - ei)  (W_N^(M-q) = -conj W_N^q)
  for (int q = 0; q <= M / 2; q++) {
    int qm = (M - q) & (M - 1);
    kreal c = (kreal)k->sp_re[q], s = (kreal)k->sp_im[q];
    vlane er = (kreal)0.5 * (vr[q] + vr[qm]), ei = (kreal)0.5 * (vi[q] - vi[qm]);
    vlane orr = (kreal)0.5 * (vi[q] + vi[qm]), oi = (kreal)-0.5 * (vr[q] - vr[qm]);
    vlane A = c * orr - s * oi, B = c * oi + s * orr;
    vlane xr = er + A, xi = ei + B;
    vp[q] = xr * xr + xi * xi;
    if (q != 0 && q != M / 2) {
      xr = er - A;
      xi = B - ei;
      vp[qm] = xr * xr + xi * xi;
    }
  }
  for (int b = 0; b < KB; b++) {
    kreal d = zr[b] - zi[b];
    pw[(size_t)M * KB + b] = d * d;
  }
  for (int j = 0; j < nm; j++) {
    const hb_mel_row *r = &k->mel[j];
    vlane acc = {0};
    for (int i = 0; i < r->count; i++) acc += (kreal)r->w[i] * vp[r->first + i];
    vlane_i keep = acc > (kreal)FLT_EPSILON;  // log(max(acc, FLT_EPSILON))
    acc = (vlane)(((vlane_i)acc & keep) | ((vlane_i)(acc - acc + (kreal)FLT_EPSILON) & ~keep));
    log_lanes(&acc);
    ((vlane *)melv)[j] = acc;
  }
  if (k->kind == KALDI_FBANK) {
    // (nm, KB) -> out (nv, dim): 8 x 8 tiles transposed in registers, the rest element-wise
    int j = 0;
    for (; j + KB <= nm; j += KB) {
      vlane X[KB];
      memcpy(X, melv + (size_t)j * KB, sizeof X);
      transpose_lanes(X);
      for (int b = 0; b < nv; b++) memcpy(out + (size_t)b * (size_t)k->dim + (size_t)j, &X[b], sizeof X[b]);
    }
    for (; j < nm; j++)
      for (int b = 0; b < nv; b++) out[(size_t)b * (size_t)k->dim + (size_t)j] = (float)melv[(size_t)j * KB + b];
    return;
  }
  int nc = k->num_ceps;
  for (int c = 0; c < nc; c++) {
    vlane acc = {0};
    for (int j = 0; j < nm; j++) acc += k->dct[j * nc + c] * ((const vlane *)melv)[j];
    for (int b = 0; b < nv; b++) out[(size_t)b * (size_t)k->dim + (size_t)c] = (float)acc[b];
  }
}

void kaldi_compute_deltas(const float *in, int64_t T, int D, int in_stride, float *out, int out_stride) {
  for (int64_t t = 0; t < T; t++) {
    int64_t tm2 = t >= 2 ? t - 2 : 0, tm1 = t >= 1 ? t - 1 : 0;
    int64_t tp1 = t + 1 < T ? t + 1 : T - 1, tp2 = t + 2 < T ? t + 2 : T - 1;
    const float *a = in + tm2 * in_stride, *b = in + tm1 * in_stride;
    const float *c = in + tp1 * in_stride, *d = in + tp2 * in_stride;
    float *o = out + t * out_stride;
    for (int i = 0; i < D; i++) o[i] = (-2.0f * a[i] - b[i] + c[i] + 2.0f * d[i]) / 10.0f;
  }
}

int kaldi_feats_compute(const hb_kaldi_feats *k, const float *wave, size_t n, float *out) {
  int64_t T = kaldi_num_frames(k, n);
  if (T == 0) return 0;
  int64_t nblocks = (T + KB - 1) / KB;
  size_t nscratch = block_scratch_len(k);
  int failed = 0;
  // Parallel over frame blocks only when called outside a parallel region (one long utterance);
  // inside `hubert mfcc`'s per-utterance loop this runs on the calling thread.
#pragma omp parallel if (!omp_in_parallel() && nblocks >= 64) reduction(| : failed)
  {
    kreal *scratch = hb_aligned_alloc(nscratch * sizeof(kreal));
    if (scratch) memset(scratch, 0, nscratch * sizeof(kreal));  // dead lanes must be finite
#pragma omp for schedule(static)
    for (int64_t bl = 0; bl < nblocks; bl++) {
      int64_t f0 = bl * KB;
      int nv = T - f0 < KB ? (int)(T - f0) : KB;
      if (scratch) compute_block(k, wave, f0, nv, out + (size_t)f0 * (size_t)k->dim, scratch);
      else failed = 1;
    }
    if (scratch) hb_aligned_free(scratch);
  }
  if (failed) return hb_fail("kaldi features: out of memory for FFT scratch");
  if (k->deltas) {
    int nc = k->num_ceps;
    kaldi_compute_deltas(out, T, nc, k->dim, out + nc, k->dim);
    kaldi_compute_deltas(out + nc, T, nc, k->dim, out + 2 * nc, k->dim);
  }
  return 0;
}
