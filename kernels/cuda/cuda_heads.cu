// Training heads on CUDA: row gather/scatter, the fused cosine-logit cross-entropy of HuBERT's
// masked prediction, plain cross-entropy, masked mean pooling. Same contracts (and the same
// reduction precisions: norms and softmax sums in double) as kernels/cpu/cpu_heads.c.
#include <math.h>

#include "kernels/cuda/cuda_heads.h"

#define HT 256              // threads of the row kernels (a multiple of 32)
#define CE_MIN_BLOCK 256    // rows of logits held at once by cosine_ce: at least ...
#define CE_MAX_BLOCK 8192   // ... and at most this many, and at most CE_BLOCK_BYTES of logits
#define CE_BLOCK_BYTES ((size_t)96 << 20)

int cuda_flag_read(hb_ctx *ctx, const int *flag, int *code) {
  cudaStream_t s = cuda_st(ctx)->stream;
  CHECK_CUDA(cudaMemcpyAsync(code, flag, sizeof(int), cudaMemcpyDeviceToHost, s));
  CHECK_CUDA(cudaStreamSynchronize(s));
  CHECK_CUDA(cudaGetLastError());
  return 0;
}

// After a kernel that flags row n with a target outside [0, K): read the flag, name the target.
static int target_check(hb_ctx *ctx, const int *flag, const int *target, int K, const char *op) {
  int code = 0;
  HB_TRY(cuda_flag_read(ctx, flag, &code));
  if (!code) return 0;
  const int n = code & 0x0fffffff;
  int t = 0;
  CHECK_CUDA(cudaMemcpy(&t, target + n, sizeof(int), cudaMemcpyDeviceToHost));
  return hb_fail("%s: target %d of row %d outside [0, %d)", op, t, n, K);
}

// ---- gather / scatter -----------------------------------------------------------------------------
__global__ void gather_rows_kernel(float *y, const float *x, const int *idx, size_t n, int C) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    y[i] = x[(size_t)idx[i / C] * C + i % C];
}

__global__ void scatter_rows_kernel(float *dx, const float *dy, const int *idx, size_t n, int C) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    dx[(size_t)idx[i / C] * C + i % C] = dy[i];
}

int cuda_gather_rows(hb_ctx *ctx, float *y, const float *x, const int *idx, int N, int C) {
  if (N <= 0 || C <= 0) return 0;
  const size_t n = (size_t)N * C;
  gather_rows_kernel<<<cuda_grid(n, HT), HT, 0, cuda_st(ctx)->stream>>>(y, x, idx, n, C);
  CHECK_LAUNCH();
  return 0;
}

int cuda_scatter_rows(hb_ctx *ctx, float *dx, const float *dy, const int *idx, int N, int C) {
  if (N <= 0 || C <= 0) return 0;
  const size_t n = (size_t)N * C;
  scatter_rows_kernel<<<cuda_grid(n, HT), HT, 0, cuda_st(ctx)->stream>>>(dx, dy, idx, n, C);
  CHECK_LAUNCH();
  return 0;
}

// ---- block reductions (blockDim.x == HT) ----------------------------------------------------------
static __device__ double block_sum_d(double v, double *sh) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
  __syncthreads();  // sh may still be read by a previous call
  if (lane == 0) sh[wid] = v;
  __syncthreads();
  if (wid == 0) {
    v = lane < HT / 32 ? sh[lane] : 0.0;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    if (lane == 0) sh[0] = v;
  }
  __syncthreads();
  return sh[0];
}

// Online softmax statistics: running maximum m of x_k = z_k * scale (float, as the CPU's scan),
// its first index a, and s = sum_k exp((double)z_k * scale - m) rescaled whenever m grows.
typedef struct {
  float m;
  int a;     // K: no element seen yet
  double s;
} row_stats;

static __device__ inline void stats_push(row_stats &r, float x, double xd, int k) {
  if (x > r.m || (r.a < 0 && x == x)) {  // a new maximum (NaN never is one)
    // -inf terms add 0 (exp(-inf - -inf) would be NaN); s is 0 while m is -inf
    r.s = x == -INFINITY ? 0.0 : (r.a < 0 || r.m == -INFINITY ? 0.0 : r.s * exp((double)r.m - x)) + exp(xd - x);
    r.m = x;
    r.a = k;
  } else if (x != -INFINITY) {
    r.s += exp(xd - r.m);  // NaN propagates into s (and the loss), as on the CPU
  }
}

// Merge of two partial statistics: the larger maximum (the smaller index on ties), sums rescaled.
static __device__ inline void stats_merge(row_stats &r, float m2, int a2, double s2) {
  if (a2 < 0) return;
  if (r.a < 0) { r.m = m2; r.a = a2; r.s = s2; return; }
  if (m2 > r.m || (m2 == r.m && a2 < r.a)) {
    r.s = r.s * exp((double)r.m - m2) + s2;
    r.m = m2;
    r.a = a2;
  } else {
    r.s += s2 * exp((double)m2 - r.m);
  }
}

// One pass over the row z (K) in block-strided chunks (online logsumexp): first argmax of
// z * scale and lse = m + log(sum_k exp((double)z_k * scale - m)). Every thread gets the result.
// A row without any non-NaN value keeps index 0 (the CPU's serial scan) and a NaN lse.
static __device__ double block_row_lse(const float *z, int K, float scale, int *amax, double *shd, float *shv,
                                       int *sha) {
  row_stats r = {-INFINITY, -1, 0.0};
  for (int k = threadIdx.x; k < K; k += HT) stats_push(r, z[k] * scale, (double)z[k] * scale, k);
  for (int o = 16; o > 0; o >>= 1) {
    const float m2 = __shfl_down_sync(0xffffffffu, r.m, o);
    const int a2 = __shfl_down_sync(0xffffffffu, r.a, o);
    const double s2 = __shfl_down_sync(0xffffffffu, r.s, o);
    stats_merge(r, m2, a2, s2);
  }
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
  __syncthreads();  // the shared arrays may still be read by a previous call
  if (lane == 0) { shv[wid] = r.m; sha[wid] = r.a; shd[wid] = r.s; }
  __syncthreads();
  if (wid == 0) {
    r.m = -INFINITY, r.a = -1, r.s = 0.0;
    if (lane < HT / 32) r.m = shv[lane], r.a = sha[lane], r.s = shd[lane];
    for (int o = 16; o > 0; o >>= 1) {
      const float m2 = __shfl_down_sync(0xffffffffu, r.m, o);
      const int a2 = __shfl_down_sync(0xffffffffu, r.a, o);
      const double s2 = __shfl_down_sync(0xffffffffu, r.s, o);
      stats_merge(r, m2, a2, s2);
    }
    if (lane == 0) { shv[0] = r.m; sha[0] = r.a; shd[0] = r.s; }
  }
  __syncthreads();
  if (sha[0] < 0) {
    *amax = 0;
    return NAN;
  }
  *amax = sha[0];
  return (double)shv[0] + log(shd[0]);
}

// ---- cosine_ce ------------------------------------------------------------------------------------
// out (rows, D) = in / max(|in|, 1e-8) per row (row stride ld_in), inv (rows) = that factor
// (torch.cosine_similarity's clamp). One warp per row, sums in double.
__global__ void normalize_rows_kernel(float *out, float *inv, const float *in, int ld_in, int rows, int D) {
  const int r = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
  if (r >= rows) return;
  const float *x = in + (size_t)r * ld_in;
  double s = 0;
  for (int d = lane; d < D; d += 32) s += (double)x[d] * x[d];
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  const double nrm = sqrt(s);
  const float f = (float)(1.0 / (nrm > 1e-8 ? nrm : 1e-8));
  for (int d = lane; d < D; d += 32) out[(size_t)r * D + d] = x[d] * f;
  if (lane == 0) inv[r] = f;
}

// One block per row i of the row block (global row n0 + i). c (nb, K) cosines. Writes loss,
// correct, logits; with gradients g (nb, K) = w (softmax - onehot) * inv_temp, rg[i] = sum_k g c,
// and (for de) gc (nb, K) = g * c.
__global__ void cosine_ce_row_kernel(float *loss, int *correct, float *logits, float *g, float *gc, float *rg,
                                     const float *cz, const int *target, const float *w, int n0, int K,
                                     float inv_temp, int want_grad, int *flag) {
  __shared__ double shd[32];
  __shared__ float shv[32];
  __shared__ int sha[32];
  const int i = blockIdx.x, n = n0 + i;
  const float *c = cz + (size_t)i * K;
  const int t = target[n];
  if (t < 0 || t >= K) {  // uniform over the block
    if (threadIdx.x == 0) cuda_flag_set(flag, 1, n);
    return;
  }
  int a;
  const double lse = block_row_lse(c, K, inv_temp, &a, shd, shv, sha);
  if (threadIdx.x == 0) {
    loss[n] = (float)(lse - (double)c[t] * inv_temp);
    if (correct) correct[n] = a == t;
  }
  if (logits)
    for (int k = threadIdx.x; k < K; k += HT) logits[(size_t)n * K + k] = c[k] * inv_temp;
  if (!want_grad) return;
  const double wn = w ? w[n] : 1.0;
  double r = 0;
  for (int k = threadIdx.x; k < K; k += HT) {
    const double pk = exp((double)c[k] * inv_temp - lse);
    const float gk = (float)(wn * (pk - (k == t)) * inv_temp);
    g[(size_t)i * K + k] = gk;
    if (gc) gc[(size_t)i * K + k] = gk * c[k];
    r += (double)gk * c[k];
  }
  r = block_sum_d(r, shd);
  if (threadIdx.x == 0) rg[i] = (float)r;
}

// dp[i, d] = inv_pn[i] * (dp[i, d] - rg[i] * ph[i, d]) for the nb rows of the block (stride ldp).
__global__ void cosine_dp_fix_kernel(float *dp, int ldp, const float *ph, const float *inv_pn, const float *rg, int nb,
                                     int D) {
  const size_t n = (size_t)nb * D;
  for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < n; j += (size_t)gridDim.x * blockDim.x) {
    const size_t i = j / D, d = j % D;
    float *q = dp + i * ldp + d;
    *q = inv_pn[i] * (*q - rg[i] * ph[j]);
  }
}

// sk[k] += sum_i gc[i, k] (deterministic: one thread per column, rows in order, double).
__global__ void colsum_d_kernel(double *sk, const float *gc, int nb, int K) {
  const int k = blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= K) return;
  double s = 0;
  for (int i = 0; i < nb; i++) s += gc[(size_t)i * K + k];
  sk[k] += s;
}

// de[k, d] += inv_en[k] * (acc[k, d] - sk[k] * eh[k, d]).
__global__ void cosine_de_kernel(float *de, const float *acc, const double *sk, const float *eh, const float *inv_en,
                                 int K, int D) {
  const size_t n = (size_t)K * D;
  for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < n; j += (size_t)gridDim.x * blockDim.x) {
    const size_t k = j / D;
    de[j] += inv_en[k] * (acc[j] - (float)sk[k] * eh[j]);
  }
}

// Bump allocator over the workspace, 256-byte aligned pieces.
typedef struct {
  char *base;
  size_t off;
} ws_carver;
static size_t align256(size_t b) { return (b + 255) & ~(size_t)255; }
static void *carve(ws_carver *c, size_t bytes) {
  void *p = c->base ? c->base + c->off : NULL;
  c->off += align256(bytes ? bytes : 1);
  return p;
}

// Math as cpu_cosine_ce (c_k = p^ . e^_k, g_k = w (softmax_k - [k == t]) / temp):
//   dL/dp = (G E^ - rg P^) / |p| ;  dL/de_k = (sum_n g_nk p^_n - sk_k e^_k) / |e_k|
// per block of nb rows: C = P^ E^T (cuBLAS), the fused row kernel (argmax, logsumexp, loss,
// correct, G, rg, G*C), dP = G E^ (cuBLAS), A += G^T P^ (cuBLAS), sk += colsum(G*C). Memory: the
// (K, D) normalised embeddings and accumulator plus O(nb * K) for the block; never (N, K).
int cuda_cosine_ce(hb_ctx *ctx, float *loss, int *correct, float *logits, float *dp, float *de, const float *p,
                   int ldp, const float *e, const int *target, const float *w, int N, int D, int K, float inv_temp) {
  if (N <= 0) return 0;
  if (K <= 0 || D <= 0 || ldp < D) return hb_fail("cosine_ce: bad shape (N %d, D %d, K %d, ldp %d)", N, D, K, ldp);
  cuda_state *st = cuda_st(ctx);
  const int want_grad = dp != NULL || de != NULL;
  size_t nb = CE_BLOCK_BYTES / ((size_t)K * sizeof(float) * 3);
  if (nb < CE_MIN_BLOCK) nb = CE_MIN_BLOCK;
  if (nb > CE_MAX_BLOCK) nb = CE_MAX_BLOCK;
  if (nb > (size_t)N) nb = (size_t)N;
  const size_t KD = (size_t)K * D;
  // Two passes of the carver: sizes first (base NULL), then the pointers.
  int *flag = NULL;
  float *eh = NULL, *inv_en = NULL, *acc = NULL, *ph = NULL, *inv_pn = NULL, *cz = NULL, *gz = NULL, *gc = NULL,
        *rg = NULL;
  double *sk = NULL;
  ws_carver cv = {NULL, 0};
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 1) {
      cv.base = (char *)ops_workspace(ctx, cv.off);
      if (!cv.base) return hb_fail_prefix("cosine_ce workspace (%zu bytes)", cv.off);
      cv.off = 0;
    }
    flag = (int *)carve(&cv, sizeof(int));
    eh = (float *)carve(&cv, sizeof(float) * KD);
    inv_en = (float *)carve(&cv, sizeof(float) * K);
    acc = de ? (float *)carve(&cv, sizeof(float) * KD) : NULL;
    sk = de ? (double *)carve(&cv, sizeof(double) * K) : NULL;
    ph = (float *)carve(&cv, sizeof(float) * nb * D);
    inv_pn = (float *)carve(&cv, sizeof(float) * nb);
    cz = (float *)carve(&cv, sizeof(float) * nb * K);
    gz = want_grad ? (float *)carve(&cv, sizeof(float) * nb * K) : NULL;
    gc = de ? (float *)carve(&cv, sizeof(float) * nb * K) : NULL;
    rg = want_grad ? (float *)carve(&cv, sizeof(float) * nb) : NULL;
  }
  cudaStream_t s = st->stream;
  CHECK_CUDA(cudaMemsetAsync(flag, 0, sizeof(int), s));
  if (de) {
    CHECK_CUDA(cudaMemsetAsync(acc, 0, sizeof(float) * KD, s));
    CHECK_CUDA(cudaMemsetAsync(sk, 0, sizeof(double) * K, s));
  }
  normalize_rows_kernel<<<(K + 7) / 8, 256, 0, s>>>(eh, inv_en, e, D, K, D);
  CHECK_LAUNCH();
  const float one = 1.0f, zero = 0.0f;
  for (int n0 = 0; n0 < N; n0 += (int)nb) {
    const int b = N - n0 < (int)nb ? N - n0 : (int)nb;
    normalize_rows_kernel<<<(b + 7) / 8, 256, 0, s>>>(ph, inv_pn, p + (size_t)n0 * ldp, ldp, b, D);
    CHECK_LAUNCH();
    // cz (b, K) = ph (b, D) @ eh^T (row-major; see cuda_linear for the transposition)
    CHECK_CUBLAS(cublasSgemm(st->blas, CUBLAS_OP_T, CUBLAS_OP_N, K, b, D, &one, eh, D, ph, D, &zero, cz, K));
    cosine_ce_row_kernel<<<b, HT, 0, s>>>(loss, correct, logits, gz, gc, rg, cz, target, w, n0, K, inv_temp, want_grad,
                                          flag);
    CHECK_LAUNCH();
    if (dp) {
      float *dpb = dp + (size_t)n0 * ldp;
      // dpb (b, D; ld ldp) = gz (b, K) @ eh (K, D)
      CHECK_CUBLAS(cublasSgemm(st->blas, CUBLAS_OP_N, CUBLAS_OP_N, D, b, K, &one, eh, D, gz, K, &zero, dpb, ldp));
      cosine_dp_fix_kernel<<<cuda_grid((size_t)b * D, HT), HT, 0, s>>>(dpb, ldp, ph, inv_pn, rg, b, D);
      CHECK_LAUNCH();
    }
    if (de) {
      // acc (K, D) += gz^T (K, b) @ ph (b, D)
      CHECK_CUBLAS(cublasSgemm(st->blas, CUBLAS_OP_N, CUBLAS_OP_T, D, K, b, &one, ph, D, gz, K, &one, acc, D));
      colsum_d_kernel<<<(K + HT - 1) / HT, HT, 0, s>>>(sk, gc, b, K);
      CHECK_LAUNCH();
    }
  }
  if (de) {
    cosine_de_kernel<<<cuda_grid(KD, HT), HT, 0, s>>>(de, acc, sk, eh, inv_en, K, D);
    CHECK_LAUNCH();
  }
  return target_check(ctx, flag, target, K, "cosine_ce");
}

// ---- softmax_ce -----------------------------------------------------------------------------------
__global__ void softmax_ce_kernel(float *loss, int *correct, float *dz, const float *z, const int *target,
                                  const float *w, int K, int *flag) {
  __shared__ double shd[32];
  __shared__ float shv[32];
  __shared__ int sha[32];
  const int n = blockIdx.x;
  const float *zr = z + (size_t)n * K;
  const int t = target[n];
  if (t < 0 || t >= K) {
    if (threadIdx.x == 0) cuda_flag_set(flag, 1, n);
    return;
  }
  int a;
  const double lse = block_row_lse(zr, K, 1.0f, &a, shd, shv, sha);
  if (threadIdx.x == 0) {
    loss[n] = (float)(lse - zr[t]);
    if (correct) correct[n] = a == t;
  }
  if (!dz) return;
  const double wn = w ? w[n] : 1.0;
  for (int k = threadIdx.x; k < K; k += HT) dz[(size_t)n * K + k] = (float)(wn * (exp(zr[k] - lse) - (k == t)));
}

int cuda_softmax_ce(hb_ctx *ctx, float *loss, int *correct, float *dz, const float *z, const int *target,
                    const float *w, int N, int K) {
  if (N <= 0) return 0;
  if (K <= 0) return hb_fail("softmax_ce: K = %d", K);
  int *flag = (int *)ops_workspace(ctx, 256);
  if (!flag) return hb_fail_prefix("softmax_ce workspace");
  cudaStream_t s = cuda_st(ctx)->stream;
  CHECK_CUDA(cudaMemsetAsync(flag, 0, sizeof(int), s));
  softmax_ce_kernel<<<N, HT, 0, s>>>(loss, correct, dz, z, target, w, K, flag);
  CHECK_LAUNCH();
  return target_check(ctx, flag, target, K, "softmax_ce");
}

// ---- seq_mean_pool --------------------------------------------------------------------------------
// grid (ceil(C / HT), B): one thread per (b, c), frames in order, sum in double.
__global__ void seq_mean_pool_kernel(float *y, const float *x, const int *len, int T, int C, int *flag) {
  const int b = blockIdx.y, c = blockIdx.x * HT + threadIdx.x;
  const int n = len[b];
  if (n < 1 || n > T) {
    if (c == 0) cuda_flag_set(flag, 1, b);
    return;
  }
  if (c >= C) return;
  double s = 0;
  for (int t = 0; t < n; t++) s += x[((size_t)b * T + t) * C + c];
  y[(size_t)b * C + c] = (float)(s / n);
}

__global__ void seq_mean_pool_backward_kernel(float *dx, const float *dy, const int *len, int B, int T, int C,
                                              int *flag) {
  const size_t total = (size_t)B * T * C;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
    const size_t b = i / ((size_t)T * C);
    const int t = (int)((i / C) % T), c = (int)(i % C), n = len[b];
    if (n < 1 || n > T) {
      if (t == 0 && c == 0) cuda_flag_set(flag, 1, (long)b);
      continue;
    }
    dx[i] = t < n ? dy[b * C + c] / (float)n : 0.0f;
  }
}

static int pool_check(hb_ctx *ctx, const int *flag, const int *len, int T, const char *op) {
  int code = 0;
  HB_TRY(cuda_flag_read(ctx, flag, &code));
  if (!code) return 0;
  const int b = code & 0x0fffffff;
  int n = 0;
  CHECK_CUDA(cudaMemcpy(&n, len + b, sizeof(int), cudaMemcpyDeviceToHost));
  return hb_fail("%s: length %d of utterance %d outside [1, %d]", op, n, b, T);
}

int cuda_seq_mean_pool(hb_ctx *ctx, float *y, const float *x, const int *len, int B, int T, int C) {
  if (B <= 0 || C <= 0) return 0;
  int *flag = (int *)ops_workspace(ctx, 256);
  if (!flag) return hb_fail_prefix("seq_mean_pool workspace");
  cudaStream_t s = cuda_st(ctx)->stream;
  CHECK_CUDA(cudaMemsetAsync(flag, 0, sizeof(int), s));
  dim3 grid((unsigned)((C + HT - 1) / HT), (unsigned)B);
  seq_mean_pool_kernel<<<grid, HT, 0, s>>>(y, x, len, T, C, flag);
  CHECK_LAUNCH();
  return pool_check(ctx, flag, len, T, "seq_mean_pool");
}

int cuda_seq_mean_pool_backward(hb_ctx *ctx, float *dx, const float *dy, const int *len, int B, int T, int C) {
  if (B <= 0 || C <= 0 || T <= 0) return 0;
  int *flag = (int *)ops_workspace(ctx, 256);
  if (!flag) return hb_fail_prefix("seq_mean_pool_backward workspace");
  cudaStream_t s = cuda_st(ctx)->stream;
  CHECK_CUDA(cudaMemsetAsync(flag, 0, sizeof(int), s));
  const size_t n = (size_t)B * T * C;
  seq_mean_pool_backward_kernel<<<cuda_grid(n, HT), HT, 0, s>>>(dx, dy, len, B, T, C, flag);
  CHECK_LAUNCH();
  return pool_check(ctx, flag, len, T, "seq_mean_pool_backward");
}
