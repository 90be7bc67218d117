// Fused multi-head attention with a key-padding mask (fp32, flash-style): one block per
// (query tile of ATT_BQ rows, head, utterance); keys and values stream through shared memory in
// tiles of ATT_BK with an online softmax, so no T x T matrix exists anywhere.
//
// Block = 4 warps; warp w owns query rows w*ATT_RPW .. w*ATT_RPW + ATT_RPW-1 of the tile.
// For one key tile and one query row: lane j scores key s0 + j (ATT_BK == 32 == warp size):
//   s_j = (scale q) . k_j          (masked: -inf for keys >= len[b])
//   m'  = max(m, max_j s_j),  p_j = exp(s_j - m'),  c = exp(m - m')
//   l   = c l + sum_j p_j,   acc = c acc + sum_j p_j v_j
// and out = acc / l after the last tile. Lane owns output dims d = lane + 32 i (i < ATT_DMAX/32).
// Invariant: key s0 (< len) is valid in every tile visited, so m' is finite after each tile.
#include <math.h>

#include "kernels/cuda/cuda_check.h"

#define ATT_BQ 32
#define ATT_BK 32
#define ATT_WARPS 4
#define ATT_RPW (ATT_BQ / ATT_WARPS)
#define ATT_DMAX 128

// Shared memory: Qs (ATT_BQ, Dh+1), Ks (ATT_BK, Dh+1) (odd row stride: lanes reading different
// keys at the same d hit different banks), Vs (ATT_BK, Dh).
static size_t att_smem_bytes(int Dh) { return sizeof(float) * ((size_t)(ATT_BQ + ATT_BK) * (Dh + 1) + (size_t)ATT_BK * Dh); }

__global__ void __launch_bounds__(ATT_WARPS * 32) attention_kernel(float *out, const float *q, const float *k,
                                                                   const float *v, const int *len, int T, int H,
                                                                   int Dh, float scale) {
  extern __shared__ float sm[];
  const int ld = Dh + 1;
  float *Qs = sm, *Ks = Qs + ATT_BQ * ld, *Vs = Ks + ATT_BK * ld;
  const int t0 = blockIdx.x * ATT_BQ, h = blockIdx.y, b = blockIdx.z;
  const size_t C = (size_t)H * Dh;
  const size_t base = (size_t)b * T * C + (size_t)h * Dh;  // (b, t=0, h, d=0)
  const int S = len ? len[b] : T;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

  for (int i = threadIdx.x; i < ATT_BQ * Dh; i += blockDim.x) {
    const int r = i / Dh, d = i % Dh, t = t0 + r;
    Qs[r * ld + d] = t < T ? q[base + (size_t)t * C + d] * scale : 0.0f;
  }

  float m[ATT_RPW], l[ATT_RPW], acc[ATT_RPW][ATT_DMAX / 32];
#pragma unroll
  for (int r = 0; r < ATT_RPW; r++) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
#pragma unroll
    for (int i = 0; i < ATT_DMAX / 32; i++) acc[r][i] = 0.0f;
  }

  for (int s0 = 0; s0 < S; s0 += ATT_BK) {
    __syncthreads();  // the previous tile is consumed (and Qs is written, first time)
    for (int i = threadIdx.x; i < ATT_BK * Dh; i += blockDim.x) {
      const int j = i / Dh, d = i % Dh, s = s0 + j;
      const bool ok = s < S;
      Ks[j * ld + d] = ok ? k[base + (size_t)s * C + d] : 0.0f;
      Vs[j * Dh + d] = ok ? v[base + (size_t)s * C + d] : 0.0f;
    }
    __syncthreads();
    const int nk = S - s0 < ATT_BK ? S - s0 : ATT_BK;
    const bool valid = lane < nk;
#pragma unroll
    for (int r = 0; r < ATT_RPW; r++) {
      const float *qr = Qs + (warp * ATT_RPW + r) * ld;
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
#pragma unroll
      for (int i = 0; i < ATT_DMAX / 32; i++) acc[r][i] *= corr;
      for (int j = 0; j < nk; j++) {
        const float pj = __shfl_sync(0xffffffffu, p, j);
        const float *vj = Vs + j * Dh;
#pragma unroll
        for (int i = 0; i < ATT_DMAX / 32; i++) {
          const int d = lane + 32 * i;
          if (d < Dh) acc[r][i] = fmaf(pj, vj[d], acc[r][i]);
        }
      }
    }
  }

#pragma unroll
  for (int r = 0; r < ATT_RPW; r++) {
    const int t = t0 + warp * ATT_RPW + r;
    if (t >= T) continue;
    const float inv = 1.0f / l[r];
    float *o = out + base + (size_t)t * C;
#pragma unroll
    for (int i = 0; i < ATT_DMAX / 32; i++) {
      const int d = lane + 32 * i;
      if (d < Dh) o[d] = acc[r][i] * inv;
    }
  }
}

int cuda_attention(hb_ctx *ctx, float *out, const float *q, const float *k, const float *v, const int *len, int B,
                   int T, int H, int Dh, float scale) {
  if (Dh < 1 || Dh > ATT_DMAX) return hb_fail("attention: head dimension %d outside 1..%d (CUDA kernel)", Dh, ATT_DMAX);
  if (B <= 0 || T <= 0 || H <= 0) return 0;
  if (B > 65535 || H > 65535) return hb_fail("attention: %d utterances x %d heads exceed the grid (65535)", B, H);
  const int *d_len = NULL;
  if (len) {
    for (int b = 0; b < B; b++)
      if (len[b] < 1 || len[b] > T) return hb_fail("attention: length %d of item %d outside [1, %d]", len[b], b, T);
    HB_TRY(cuda_upload_len(ctx, len, B, &d_len));
  }
  const size_t smem = att_smem_bytes(Dh);
  if (smem > 48 * 1024)
    CHECK_CUDA(cudaFuncSetAttribute(attention_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  dim3 grid((unsigned)((T + ATT_BQ - 1) / ATT_BQ), (unsigned)H, (unsigned)B);
  attention_kernel<<<grid, ATT_WARPS * 32, smem, cuda_st(ctx)->stream>>>(out, q, k, v, d_len, T, H, Dh, scale);
  CHECK_LAUNCH();
  return 0;
}
