// attention_backward, FlashAttention-2 style in fp32: the probabilities are recomputed tile by
// tile from q, k and the saved lse (never a T x T matrix), the dropout mask from its seed. Per
// (b, h), with P = exp(scale q k^T - lse), M the keep factors (keep / (1 - p), or 0), A' = P * M:
//   dA = (dO V^T) * M,   D_t = sum_s P_ts dA_ts (= dO_t . out_t),   dS = P * (dA - D)
//   dV = A'^T dO,   dQ = scale dS K,   dK = scale dS^T Q
// Two kernels, no atomics (deterministic):
//   cb_att_dq_kernel: one block per (32 queries, head, utterance); pass 1 over the key tiles
//     computes D for its rows (stored for the second kernel), pass 2 accumulates dQ.
//   cb_att_dkv_kernel: one block per (32 keys, head, utterance); loops over all query tiles
//     (padded query rows contribute, as in the forward) accumulating dK and dV. Keys >= len[b]
//     get 0.
// Block = 4 warps; a warp owns 8 rows (queries, resp. keys) of the block's tile; in the dot
// products lane j takes the j-th row of the streamed tile, in the accumulations lane j owns the
// output dims d = j + 32 i. Tiles are (32, Dh + 1) in shared memory (odd stride: lanes reading
// different rows at the same d hit different banks).
#include <math.h>

#include "kernels/cuda/cuda_backward.h"

#define ATB_TILE 32
#define ATB_WARPS 4
#define ATB_RPW (ATB_TILE / ATB_WARPS)
#define ATB_DMAX 128
#define ATB_DI (ATB_DMAX / 32)

// Four (32, Dh + 1) tiles, plus 2 x 32 floats (lse, D of the query tile) for the dK/dV kernel.
static size_t atb_smem_bytes(int Dh) { return sizeof(float) * (4 * (size_t)ATB_TILE * (Dh + 1) + 2 * ATB_TILE); }

// dst (32, ld) = mul * rows r0 .. r0+31 of the head slice src + base (row stride C), 0 for rows >= lim.
static __device__ inline void atb_load(float *dst, const float *src, size_t base, size_t C, int r0, int lim, int Dh,
                                       int ld, float mul) {
  for (int i = threadIdx.x; i < ATB_TILE * Dh; i += blockDim.x) {
    const int r = i / Dh, d = i % Dh, t = r0 + r;
    dst[r * ld + d] = t < lim ? src[base + (size_t)t * C + d] * mul : 0.0f;
  }
}

__global__ void __launch_bounds__(ATB_WARPS * 32)
    cb_att_dq_kernel(float *dq, float *Dg, const float *dout, const float *q, const float *k, const float *v,
                     const float *lse, const int *len, int T, int H, int Dh, float scale, int drop, uint64_t seed,
                     uint64_t thr, float keep_scale) {
  extern __shared__ float sm[];
  const int ld = Dh + 1;
  float *Qs = sm, *Os = Qs + ATB_TILE * ld, *Ks = Os + ATB_TILE * ld, *Vs = Ks + ATB_TILE * ld;
  const int t0 = blockIdx.x * ATB_TILE, h = blockIdx.y, b = blockIdx.z;
  const size_t C = (size_t)H * Dh, base = (size_t)b * T * C + (size_t)h * Dh, bh = ((size_t)b * H + h) * T;
  const int S = len ? len[b] : T;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, row0 = warp * ATB_RPW;
  atb_load(Qs, q, base, C, t0, T, Dh, ld, scale);
  atb_load(Os, dout, base, C, t0, T, Dh, ld, 1.0f);
  float lr[ATB_RPW], Dr[ATB_RPW];
#pragma unroll
  for (int r = 0; r < ATB_RPW; r++) {
    const int t = t0 + row0 + r;
    lr[r] = t < T ? lse[bh + t] : 0.0f;
    Dr[r] = 0.0f;
  }

  // pass 1 (pass = 0): D of the block's rows; pass 2 (pass = 1): dQ.
  float acc[ATB_RPW][ATB_DI];
#pragma unroll
  for (int r = 0; r < ATB_RPW; r++)
#pragma unroll
    for (int i = 0; i < ATB_DI; i++) acc[r][i] = 0.0f;
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 1) {
#pragma unroll
      for (int r = 0; r < ATB_RPW; r++)
        for (int o = 16; o > 0; o >>= 1) Dr[r] += __shfl_xor_sync(0xffffffffu, Dr[r], o);
      if (Dg && lane == 0)
#pragma unroll
        for (int r = 0; r < ATB_RPW; r++)
          if (t0 + row0 + r < T) Dg[bh + t0 + row0 + r] = Dr[r];
      if (!dq) return;  // block-uniform
    }
    for (int s0 = 0; s0 < S; s0 += ATB_TILE) {
      __syncthreads();  // the previous tile is consumed (and Qs, Os are written, first time)
      atb_load(Ks, k, base, C, s0, S, Dh, ld, 1.0f);
      atb_load(Vs, v, base, C, s0, S, Dh, ld, 1.0f);
      __syncthreads();
      const int nk = S - s0 < ATB_TILE ? S - s0 : ATB_TILE;
      const bool valid = lane < nk;
      // lane j: sd[r] = (scale q_r) . k_j, dp[r] = dO_r . v_j
      float sd[ATB_RPW], dp[ATB_RPW];
#pragma unroll
      for (int r = 0; r < ATB_RPW; r++) sd[r] = dp[r] = 0.0f;
      if (valid) {
        const float *kr = Ks + lane * ld, *vr = Vs + lane * ld;
        for (int d = 0; d < Dh; d++) {
          const float kd = kr[d], vd = vr[d];
#pragma unroll
          for (int r = 0; r < ATB_RPW; r++) {
            sd[r] = fmaf(Qs[(row0 + r) * ld + d], kd, sd[r]);
            dp[r] = fmaf(Os[(row0 + r) * ld + d], vd, dp[r]);
          }
        }
      }
      float ds[ATB_RPW];
#pragma unroll
      for (int r = 0; r < ATB_RPW; r++) {
        const int t = t0 + row0 + r;
        ds[r] = 0.0f;
        if (valid && t < T) {
          const float p = expf(sd[r] - lr[r]);
          const float da = dp[r] * cb_att_drop(drop, seed, thr, keep_scale, b, h, t, s0 + lane, H, T);
          if (pass == 0) Dr[r] = fmaf(p, da, Dr[r]);
          else ds[r] = p * (da - Dr[r]);
        }
      }
      if (pass == 0) continue;
      // acc[r] += sum_j dS[r, j] k_j
      for (int j = 0; j < nk; j++) {
        float kv[ATB_DI];
#pragma unroll
        for (int i = 0; i < ATB_DI; i++) {
          const int d = lane + 32 * i;
          kv[i] = d < Dh ? Ks[j * ld + d] : 0.0f;
        }
#pragma unroll
        for (int r = 0; r < ATB_RPW; r++) {
          const float dsj = __shfl_sync(0xffffffffu, ds[r], j);
#pragma unroll
          for (int i = 0; i < ATB_DI; i++) acc[r][i] = fmaf(dsj, kv[i], acc[r][i]);
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < ATB_RPW; r++) {
    const int t = t0 + row0 + r;
    if (t >= T) continue;
    float *o = dq + base + (size_t)t * C;
#pragma unroll
    for (int i = 0; i < ATB_DI; i++) {
      const int d = lane + 32 * i;
      if (d < Dh) o[d] = scale * acc[r][i];
    }
  }
}

__global__ void __launch_bounds__(ATB_WARPS * 32)
    cb_att_dkv_kernel(float *dk, float *dv, const float *dout, const float *q, const float *k, const float *v,
                      const float *lse, const float *Dg, const int *len, int T, int H, int Dh, float scale, int drop,
                      uint64_t seed, uint64_t thr, float keep_scale) {
  extern __shared__ float sm[];
  const int ld = Dh + 1;
  float *Ks = sm, *Vs = Ks + ATB_TILE * ld, *Qs = Vs + ATB_TILE * ld, *Os = Qs + ATB_TILE * ld;
  float *ls = Os + ATB_TILE * ld, *Ds = ls + ATB_TILE;
  const int s0 = blockIdx.x * ATB_TILE, h = blockIdx.y, b = blockIdx.z;
  const size_t C = (size_t)H * Dh, base = (size_t)b * T * C + (size_t)h * Dh, bh = ((size_t)b * H + h) * T;
  const int S = len ? len[b] : T;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, row0 = warp * ATB_RPW;
  const bool want_dk = dk != NULL;
  if (s0 >= S) {  // padded keys only: zero gradients (block-uniform exit)
    for (int i = threadIdx.x; i < ATB_TILE * Dh; i += blockDim.x) {
      const int s = s0 + i / Dh, d = i % Dh;
      if (s >= T) continue;
      if (dk) dk[base + (size_t)s * C + d] = 0.0f;
      if (dv) dv[base + (size_t)s * C + d] = 0.0f;
    }
    return;
  }
  atb_load(Ks, k, base, C, s0, S, Dh, ld, 1.0f);
  atb_load(Vs, v, base, C, s0, S, Dh, ld, 1.0f);
  float accK[ATB_RPW][ATB_DI], accV[ATB_RPW][ATB_DI];
#pragma unroll
  for (int r = 0; r < ATB_RPW; r++)
#pragma unroll
    for (int i = 0; i < ATB_DI; i++) accK[r][i] = accV[r][i] = 0.0f;

  for (int t0 = 0; t0 < T; t0 += ATB_TILE) {
    __syncthreads();  // the previous query tile is consumed (and Ks, Vs are written, first time)
    atb_load(Qs, q, base, C, t0, T, Dh, ld, scale);
    atb_load(Os, dout, base, C, t0, T, Dh, ld, 1.0f);
    if (threadIdx.x < ATB_TILE) {
      const int t = t0 + threadIdx.x;
      ls[threadIdx.x] = t < T ? lse[bh + t] : 0.0f;
      Ds[threadIdx.x] = t < T && want_dk ? Dg[bh + t] : 0.0f;
    }
    __syncthreads();
    const int nq = T - t0 < ATB_TILE ? T - t0 : ATB_TILE;
    const bool valid = lane < nq;
    // lane i: sd[r] = (scale q_i) . k_r, dp[r] = dO_i . v_r for the warp's keys r
    float sd[ATB_RPW], dp[ATB_RPW];
#pragma unroll
    for (int r = 0; r < ATB_RPW; r++) sd[r] = dp[r] = 0.0f;
    if (valid) {
      const float *qr = Qs + lane * ld, *orow = Os + lane * ld;
      for (int d = 0; d < Dh; d++) {
        const float qd = qr[d], od = orow[d];
#pragma unroll
        for (int r = 0; r < ATB_RPW; r++) {
          sd[r] = fmaf(qd, Ks[(row0 + r) * ld + d], sd[r]);
          if (want_dk) dp[r] = fmaf(od, Vs[(row0 + r) * ld + d], dp[r]);
        }
      }
    }
    float pd[ATB_RPW], ds[ATB_RPW];
#pragma unroll
    for (int r = 0; r < ATB_RPW; r++) {
      const int s = s0 + row0 + r;
      pd[r] = ds[r] = 0.0f;
      if (valid && s < S) {
        const float p = expf(sd[r] - ls[lane]);
        const float msc = cb_att_drop(drop, seed, thr, keep_scale, b, h, t0 + lane, s, H, T);
        pd[r] = p * msc;
        if (want_dk) ds[r] = p * (dp[r] * msc - Ds[lane]);
      }
    }
    // accV[r] += sum_i A'[i, r] dO_i,  accK[r] += sum_i dS[i, r] (scale q_i)
    for (int i = 0; i < nq; i++) {
      float ov[ATB_DI], qv[ATB_DI];
#pragma unroll
      for (int c = 0; c < ATB_DI; c++) {
        const int d = lane + 32 * c;
        ov[c] = d < Dh ? Os[i * ld + d] : 0.0f;
        qv[c] = d < Dh ? Qs[i * ld + d] : 0.0f;
      }
#pragma unroll
      for (int r = 0; r < ATB_RPW; r++) {
        const float pdi = __shfl_sync(0xffffffffu, pd[r], i), dsi = __shfl_sync(0xffffffffu, ds[r], i);
#pragma unroll
        for (int c = 0; c < ATB_DI; c++) {
          accV[r][c] = fmaf(pdi, ov[c], accV[r][c]);
          accK[r][c] = fmaf(dsi, qv[c], accK[r][c]);
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < ATB_RPW; r++) {
    const int s = s0 + row0 + r;
    if (s >= T) continue;
    const bool ok = s < S;
#pragma unroll
    for (int c = 0; c < ATB_DI; c++) {
      const int d = lane + 32 * c;
      if (d >= Dh) continue;
      if (dk) dk[base + (size_t)s * C + d] = ok ? accK[r][c] : 0.0f;
      if (dv) dv[base + (size_t)s * C + d] = ok ? accV[r][c] : 0.0f;
    }
  }
}

int cuda_attention_backward(hb_ctx *ctx, float *dq, float *dk, float *dv, const float *dout, const float *q,
                            const float *k, const float *v, const float *lse, const int *len, int B, int T, int H,
                            int Dh, float scale, float dropout_p, uint64_t dropout_seed) {
  const int *d_len = NULL;
  HB_TRY(cuda_attention_check(ctx, "attention_backward", len, B, T, H, Dh, dropout_p, &d_len));
  if (B == 0 || (!dq && !dk && !dv)) return 0;
  const size_t smem = atb_smem_bytes(Dh);
  if (smem > 48 * 1024) {
    CHECK_CUDA(cudaFuncSetAttribute(cb_att_dq_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    CHECK_CUDA(cudaFuncSetAttribute(cb_att_dkv_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  }
  const int drop = dropout_p > 0.0f;
  const float keep_scale = dropout_p < 1.0f ? 1.0f / (1.0f - dropout_p) : 0.0f;
  const uint64_t thr = hb_dropout_threshold(dropout_p);
  cudaStream_t s = cuda_st(ctx)->stream;
  const dim3 grid((unsigned)((T + ATB_TILE - 1) / ATB_TILE), (unsigned)H, (unsigned)B);
  float *Dg = NULL;  // (B, H, T): D of every query row, from the dQ kernel's first pass
  if (dq || dk) {
    Dg = (float *)ops_workspace(ctx, sizeof(float) * (size_t)B * H * T);
    if (!Dg) return hb_fail_prefix("attention_backward workspace");
    cb_att_dq_kernel<<<grid, ATB_WARPS * 32, smem, s>>>(dq, Dg, dout, q, k, v, lse, d_len, T, H, Dh, scale, drop,
                                                        dropout_seed, thr, keep_scale);
    CHECK_LAUNCH();
  }
  if (dk || dv) {
    cb_att_dkv_kernel<<<grid, ATB_WARPS * 32, smem, s>>>(dk, dv, dout, q, k, v, lse, Dg, d_len, T, H, Dh, scale, drop,
                                                         dropout_seed, thr, keep_scale);
    CHECK_LAUNCH();
  }
  return 0;
}
