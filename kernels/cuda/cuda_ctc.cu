// CTC loss (Graves 2006) on CUDA: one block per utterance, log-space alpha/beta in double, the
// same recursions and gradient as kernels/cpu/cpu_heads.c (ctc_one), parallel over the extended
// label positions s within a time step and over frames for the log-softmax and the gradient.
#include <math.h>

#include "kernels/cuda/cuda_heads.h"

#define CTC_THREADS 256

static __device__ inline double lse2(double a, double b) {
  if (a == -INFINITY) return b;
  if (b == -INFINITY) return a;
  return a > b ? a + log1p(exp(b - a)) : b + log1p(exp(a - b));
}

// Flag kinds: 1 input length, 2 target length, 3 target label (position = utterance).
__global__ void ctc_kernel(float *loss, float *dz, const float *z, const int *targets, const int *in_len,
                           const int *tgt_len, const float *w, int T, int V, int S, int blank, double *ws, size_t per,
                           int *flag) {
  __shared__ int bad;
  __shared__ double ll_sh;
  const int b = blockIdx.x, tid = threadIdx.x, nt = blockDim.x;
  const int Tb = in_len[b], Sb = tgt_len[b];
  if (tid == 0) bad = Tb < 1 || Tb > T ? 1 : Sb < 0 || Sb > S ? 2 : 0;
  __syncthreads();
  if (!bad)
    for (int i = tid; i < Sb; i += nt) {
      const int l = targets[(size_t)b * S + i];
      if (l < 0 || l >= V || l == blank) atomicCAS(&bad, 0, 3);
    }
  __syncthreads();
  if (bad) {
    if (tid == 0) cuda_flag_set(flag, bad, b);
    return;
  }
  const int L = 2 * Sb + 1;
  double *lp = ws + per * b, *alpha = lp + (size_t)T * V, *beta = alpha + (size_t)T * (2 * S + 1);
  int *ext = (int *)(beta + (size_t)T * (2 * S + 1));
  const float *zb = z + (size_t)b * T * V;
  for (int s = tid; s < L; s += nt) ext[s] = s % 2 ? targets[(size_t)b * S + s / 2] : blank;
  // log-softmax over V per frame (as the CPU's row_lse: float max, double sum)
  for (int t = tid; t < Tb; t += nt) {
    const float *zr = zb + (size_t)t * V;
    float m = zr[0];
    for (int v = 1; v < V; v++)
      if (zr[v] > m) m = zr[v];
    double s = 0;
    for (int v = 0; v < V; v++) s += exp((double)zr[v] - m);
    const double lse = m + log(s);
    for (int v = 0; v < V; v++) lp[(size_t)t * V + v] = zr[v] - lse;
  }
  __syncthreads();
  // alpha_t(s) = lp[t, ext_s] + lse(alpha_{t-1}(s), alpha_{t-1}(s-1), alpha_{t-1}(s-2) if ext_s is a
  // label differing from ext_{s-2})
  for (int s = tid; s < L; s += nt) alpha[s] = s < 2 ? lp[ext[s]] : -INFINITY;
  for (int t = 1; t < Tb; t++) {
    __syncthreads();
    const double *ap = alpha + (size_t)(t - 1) * L;
    double *ac = alpha + (size_t)t * L;
    for (int s = tid; s < L; s += nt) {
      double v = ap[s];
      if (s >= 1) v = lse2(v, ap[s - 1]);
      if (s >= 2 && (s & 1) && ext[s] != ext[s - 2]) v = lse2(v, ap[s - 2]);
      ac[s] = v == -INFINITY ? -INFINITY : v + lp[(size_t)t * V + ext[s]];
    }
  }
  __syncthreads();
  if (tid == 0) {
    const double *aT = alpha + (size_t)(Tb - 1) * L;
    ll_sh = L > 1 ? lse2(aT[L - 1], aT[L - 2]) : aT[0];
  }
  __syncthreads();
  const double ll = ll_sh;
  const float wb = w ? w[b] : 1.0f;
  float *dzb = dz ? dz + (size_t)b * T * V : NULL;
  if (dzb)
    for (size_t i = (size_t)Tb * V + tid; i < (size_t)T * V; i += nt) dzb[i] = 0.0f;
  if (!dzb || ll == -INFINITY) {
    if (tid == 0) loss[b] = dzb ? INFINITY : (float)(-ll);
    if (dzb)
      for (size_t i = tid; i < (size_t)Tb * V; i += nt) dzb[i] = 0.0f;
    return;
  }
  // beta mirrors alpha from the end (both include lp at t)
  double *bT = beta + (size_t)(Tb - 1) * L;
  for (int s = tid; s < L; s += nt) bT[s] = s >= L - 2 ? lp[(size_t)(Tb - 1) * V + ext[s]] : -INFINITY;
  for (int t = Tb - 2; t >= 0; t--) {
    __syncthreads();
    const double *bn = beta + (size_t)(t + 1) * L;
    double *bc = beta + (size_t)t * L;
    for (int s = tid; s < L; s += nt) {
      double v = bn[s];
      if (s + 1 < L) v = lse2(v, bn[s + 1]);
      if (s + 2 < L && (s & 1) && ext[s] != ext[s + 2]) v = lse2(v, bn[s + 2]);
      bc[s] = v == -INFINITY ? -INFINITY : v + lp[(size_t)t * V + ext[s]];
    }
  }
  __syncthreads();
  // dL/dlp[t, v] = -sum_{s: ext_s = v} exp(alpha_t(s) + beta_t(s) - lp[t, v] - ll); through the
  // log-softmax dz = w (dlp - softmax * sum_v dlp). One thread per frame, dz as the accumulator.
  for (int t = tid; t < Tb; t += nt) {
    float *dr = dzb + (size_t)t * V;
    const double *lr = lp + (size_t)t * V;
    for (int v = 0; v < V; v++) dr[v] = 0.0f;
    for (int s = 0; s < L; s++) {
      const double o = alpha[(size_t)t * L + s] + beta[(size_t)t * L + s] - ll;
      if (o > -INFINITY) dr[ext[s]] += (float)exp(o - lr[ext[s]]);
    }
    double sum = 0;
    for (int v = 0; v < V; v++) sum += dr[v];
    for (int v = 0; v < V; v++) dr[v] = (float)(wb * (-(double)dr[v] + exp(lr[v]) * sum));
  }
  if (tid == 0) loss[b] = (float)(-ll);
}

int cuda_ctc_loss(hb_ctx *ctx, float *loss, float *dz, const float *z, const int *targets, const int *in_len,
                  const int *tgt_len, const float *w, int B, int T, int V, int S, int blank) {
  if (blank < 0 || blank >= V) return hb_fail("ctc_loss: blank %d outside [0, %d)", blank, V);
  if (B <= 0) return 0;
  if (T <= 0 || S < 0) return hb_fail("ctc_loss: bad shape (T %d, S %d)", T, S);
  // Per utterance (doubles): lp (T, V), alpha and beta (T, 2S + 1), ext (2S + 1 ints).
  const size_t L = 2 * (size_t)S + 1;
  const size_t per = (size_t)T * V + 2 * (size_t)T * L + (L + 1) / 2;
  size_t bytes;
  if (hb_mul_size(per, sizeof(double) * (size_t)B, &bytes)) return hb_fail_prefix("ctc_loss workspace");
  char *wsb = (char *)ops_workspace(ctx, bytes + 256);
  if (!wsb) return hb_fail_prefix("ctc_loss workspace (%zu bytes)", bytes + 256);
  int *flag = (int *)wsb;
  cudaStream_t st = cuda_st(ctx)->stream;
  CHECK_CUDA(cudaMemsetAsync(flag, 0, sizeof(int), st));
  ctc_kernel<<<B, CTC_THREADS, 0, st>>>(loss, dz, z, targets, in_len, tgt_len, w, T, V, S, blank,
                                        (double *)(wsb + 256), per, flag);
  CHECK_LAUNCH();
  int code = 0;
  HB_TRY(cuda_flag_read(ctx, flag, &code));
  if (!code) return 0;
  const int kind = code >> 28, b = code & 0x0fffffff;
  int v = 0;
  if (kind == 1) {
    CHECK_CUDA(cudaMemcpy(&v, in_len + b, sizeof(int), cudaMemcpyDeviceToHost));
    return hb_fail("ctc_loss: input length %d of utterance %d outside [1, %d]", v, b, T);
  }
  if (kind == 2) {
    CHECK_CUDA(cudaMemcpy(&v, tgt_len + b, sizeof(int), cudaMemcpyDeviceToHost));
    return hb_fail("ctc_loss: target length %d of utterance %d outside [0, %d]", v, b, S);
  }
  return hb_fail("ctc_loss: a target of utterance %d is the blank or outside [0, %d)", b, V);
}
