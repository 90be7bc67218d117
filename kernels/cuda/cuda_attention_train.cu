// attention_train: the fused flash-style attention forward (also the inference op's kernel,
// cuda_attention.cu, with lse = NULL and no dropout): one block per (query tile of ATR_BQ rows,
// head, utterance); keys and values stream through shared memory in tiles of ATR_BK with an
// online softmax, so no T x T matrix exists anywhere. It saves lse = m + log l per query row and
// applies dropout to the probabilities.
// Block = 4 warps; warp w owns query rows w*ATR_RPW .. w*ATR_RPW + ATR_RPW-1 of the tile. For one
// key tile and one query row, lane j scores key s0 + j (ATR_BK == 32 == warp size):
//   s_j = (scale q) . k_j (-inf for keys >= len[b]),  m' = max(m, max_j s_j),  c = exp(m - m')
//   p_j = exp(s_j - m'),  l = c l + sum_j p_j        (undropped: the softmax denominator)
//   acc = c acc + sum_j p_j keep_j / (1 - p) v_j     (dropped probabilities times V)
// out = acc / l, lse = m + log l after the last tile. Lane owns output dims d = lane + 32 i.
// Invariant: key s0 (< len) is valid in every tile visited, so m' is finite after each tile.
#include <math.h>

#include "kernels/cuda/cuda_backward.h"

#define ATR_BQ 32
#define ATR_BK 32
#define ATR_WARPS 4
#define ATR_RPW (ATR_BQ / ATR_WARPS)
#define ATR_DMAX CUDA_ATT_DMAX

// Qs (ATR_BQ, Dh+1), Ks (ATR_BK, Dh+1) (odd stride: lanes reading different keys hit different
// banks), Vs (ATR_BK, Dh).
static size_t atr_smem_bytes(int Dh) {
  return sizeof(float) * ((size_t)(ATR_BQ + ATR_BK) * (Dh + 1) + (size_t)ATR_BK * Dh);
}

__global__ void __launch_bounds__(ATR_WARPS * 32)
    cb_attention_train_kernel(float *out, float *lse, const float *q, const float *k, const float *v, const int *len,
                              int T, int H, int Dh, float scale, int drop, uint64_t seed, uint64_t thr,
                              float keep_scale) {
  extern __shared__ float sm[];
  const int ld = Dh + 1;
  float *Qs = sm, *Ks = Qs + ATR_BQ * ld, *Vs = Ks + ATR_BK * ld;
  const int t0 = blockIdx.x * ATR_BQ, h = blockIdx.y, b = blockIdx.z;
  const size_t C = (size_t)H * Dh;
  const size_t base = (size_t)b * T * C + (size_t)h * Dh;  // (b, t=0, h, d=0)
  const int S = len ? len[b] : T;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

  for (int i = threadIdx.x; i < ATR_BQ * Dh; i += blockDim.x) {
    const int r = i / Dh, d = i % Dh, t = t0 + r;
    Qs[r * ld + d] = t < T ? q[base + (size_t)t * C + d] * scale : 0.0f;
  }

  float m[ATR_RPW], l[ATR_RPW], acc[ATR_RPW][ATR_DMAX / 32];
#pragma unroll
  for (int r = 0; r < ATR_RPW; r++) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
#pragma unroll
    for (int i = 0; i < ATR_DMAX / 32; i++) acc[r][i] = 0.0f;
  }

  for (int s0 = 0; s0 < S; s0 += ATR_BK) {
    __syncthreads();  // the previous tile is consumed (and Qs is written, first time)
    for (int i = threadIdx.x; i < ATR_BK * Dh; i += blockDim.x) {
      const int j = i / Dh, d = i % Dh, s = s0 + j;
      const bool ok = s < S;
      Ks[j * ld + d] = ok ? k[base + (size_t)s * C + d] : 0.0f;
      Vs[j * Dh + d] = ok ? v[base + (size_t)s * C + d] : 0.0f;
    }
    __syncthreads();
    const int nk = S - s0 < ATR_BK ? S - s0 : ATR_BK;
    const bool valid = lane < nk;
#pragma unroll
    for (int r = 0; r < ATR_RPW; r++) {
      const int row = warp * ATR_RPW + r;
      const float *qr = Qs + row * ld;
      float sc = -INFINITY;
      if (valid) {
        const float *kr = Ks + lane * ld;
        float dot = 0.0f;
        for (int d = 0; d < Dh; d++) dot = fmaf(qr[d], kr[d], dot);
        sc = dot;
      }
      float mt = sc;
      for (int o = 16; o > 0; o >>= 1) mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, o));
      const float mnew = fmaxf(m[r], mt);
      const float p = valid ? expf(sc - mnew) : 0.0f;
      const float corr = expf(m[r] - mnew);  // exp(-inf) = 0 on the first tile
      float ps = p;
      for (int o = 16; o > 0; o >>= 1) ps += __shfl_xor_sync(0xffffffffu, ps, o);
      l[r] = l[r] * corr + ps;
      m[r] = mnew;
      const float pd = valid ? p * cb_att_drop(drop, seed, thr, keep_scale, b, h, t0 + row, s0 + lane, H, T) : 0.0f;
#pragma unroll
      for (int i = 0; i < ATR_DMAX / 32; i++) acc[r][i] *= corr;
      for (int j = 0; j < nk; j++) {
        const float pj = __shfl_sync(0xffffffffu, pd, j);
        const float *vj = Vs + j * Dh;
#pragma unroll
        for (int i = 0; i < ATR_DMAX / 32; i++) {
          const int d = lane + 32 * i;
          if (d < Dh) acc[r][i] = fmaf(pj, vj[d], acc[r][i]);
        }
      }
    }
  }

#pragma unroll
  for (int r = 0; r < ATR_RPW; r++) {
    const int t = t0 + warp * ATR_RPW + r;
    if (t >= T) continue;
    const float inv = 1.0f / l[r];
    float *o = out + base + (size_t)t * C;
#pragma unroll
    for (int i = 0; i < ATR_DMAX / 32; i++) {
      const int d = lane + 32 * i;
      if (d < Dh) o[d] = acc[r][i] * inv;
    }
    if (lse && lane == 0) lse[((size_t)b * H + h) * T + t] = m[r] + logf(l[r]);
  }
}

// Shared by attention_train and attention_backward: shape, lengths (uploaded to the device).
int cuda_attention_check(hb_ctx *ctx, const char *op, const int *len, int B, int T, int H, int Dh, float dropout_p,
                         const int **d_len) {
  if (B < 0 || T < 1 || H < 1 || Dh < 1) return hb_fail("%s: bad shape B=%d T=%d H=%d Dh=%d", op, B, T, H, Dh);
  if (Dh > ATR_DMAX) return hb_fail("%s: head dimension %d above %d (CUDA kernel)", op, Dh, ATR_DMAX);
  if (B > 65535 || H > 65535) return hb_fail("%s: %d utterances x %d heads exceed the grid (65535)", op, B, H);
  if (!(dropout_p >= 0.0f && dropout_p <= 1.0f)) return hb_fail("%s: dropout probability %g outside [0, 1]", op, dropout_p);
  *d_len = NULL;
  if (len && B > 0) {
    for (int b = 0; b < B; b++)
      if (len[b] < 1 || len[b] > T) return hb_fail("%s: length %d of item %d outside [1, %d]", op, len[b], b, T);
    HB_TRY(cuda_upload_len(ctx, len, B, d_len));
  }
  return 0;
}

int cuda_attention_launch(hb_ctx *ctx, float *out, float *lse, const float *q, const float *k, const float *v,
                          const int *d_len, int B, int T, int H, int Dh, float scale, float dropout_p,
                          uint64_t dropout_seed) {
  const size_t smem = atr_smem_bytes(Dh);
  if (smem > 48 * 1024)
    CHECK_CUDA(cudaFuncSetAttribute(cb_attention_train_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  const int drop = dropout_p > 0.0f;
  const float keep_scale = dropout_p < 1.0f ? 1.0f / (1.0f - dropout_p) : 0.0f;
  dim3 grid((unsigned)((T + ATR_BQ - 1) / ATR_BQ), (unsigned)H, (unsigned)B);
  cb_attention_train_kernel<<<grid, ATR_WARPS * 32, smem, cuda_st(ctx)->stream>>>(
      out, lse, q, k, v, d_len, T, H, Dh, scale, drop, dropout_seed, hb_dropout_threshold(dropout_p), keep_scale);
  CHECK_LAUNCH();
  return 0;
}

int cuda_attention_train(hb_ctx *ctx, float *out, float *lse, const float *q, const float *k, const float *v,
                         const int *len, int B, int T, int H, int Dh, float scale, float dropout_p,
                         uint64_t dropout_seed) {
  const int *d_len = NULL;
  HB_TRY(cuda_attention_check(ctx, "attention_train", len, B, T, H, Dh, dropout_p, &d_len));
  if (B == 0) return 0;
  return cuda_attention_launch(ctx, out, lse, q, k, v, d_len, B, T, H, Dh, scale, dropout_p, dropout_seed);
}
