// Layer norm and group norm for training (channel-last): forwards that save {mean, rstd}, and
// their backwards. With xh = (x - mean) * rstd (float, as the forward rounds it), g = dy * gamma,
// over the n values sharing one mean/rstd (a row; a (b, group)):
//   dx = rstd * (g - mean(g) - xh * mean(g * xh)),   dgamma += sum dy * xh,   dbeta += sum dy.
// Every sum is in double and deterministic (fixed chunking, no atomics). The parameter sums run
// before dx is written, since dx may alias dy.
#include <math.h>

#include "kernels/cuda/cuda_backward.h"

#define PS_ROWS 8  // row lanes of a parameter-sum block (32 channels x PS_ROWS)

// ---- layer norm -----------------------------------------------------------------------------------
int cuda_layer_norm_train(hb_ctx *ctx, float *y, float *mean_rstd, const float *x, const float *gamma,
                          const float *beta, int N, int C, float eps) {
  if (N < 0 || C < 1) return hb_fail("layer_norm_train: bad shape N=%d C=%d", N, C);
  if (N == 0) return 0;
  return cuda_layer_norm_rows(ctx, y, mean_rstd, x, gamma, beta, N, C, eps);
}

// Per-channel sums over rows, for slab z = blockIdx.z of `rows` rows (layer norm: one slab, the
// statistics per row; group norm: a slab per utterance, statistics per (z, c / Cg)):
//   part[((z*nch + ch)*2 + 0)*C + c] = sum dy * xh,   [... + 1] = sum dy   over the chunk's rows.
template <bool GROUP>
__global__ void cb_norm_part_kernel(double *part, const float *dy, const float *x, const float *mean_rstd, size_t rows,
                                    int C, size_t rows_per, int Cg, int G) {
  __shared__ double sh[2][PS_ROWS][33];
  const int tx = threadIdx.x, ty = threadIdx.y, c = blockIdx.x * 32 + tx, ch = blockIdx.y, z = blockIdx.z;
  const size_t nch = gridDim.y, r0 = ch * rows_per, r1 = rows - r0 < rows_per ? rows : r0 + rows_per;
  const size_t base = (size_t)z * rows * C;
  double sx = 0, sa = 0;
  if (c < C) {
    float m = 0.0f, rstd = 0.0f;
    if (GROUP) {
      const size_t st = (size_t)z * G + c / Cg;
      m = mean_rstd[2 * st], rstd = mean_rstd[2 * st + 1];
    }
    for (size_t r = r0 + ty; r < r1; r += PS_ROWS) {
      if (!GROUP) m = mean_rstd[2 * r], rstd = mean_rstd[2 * r + 1];
      const float d = dy[base + r * C + c], xh = (x[base + r * C + c] - m) * rstd;
      sx += (double)d * xh;
      sa += d;
    }
  }
  sh[0][ty][tx] = sx;
  sh[1][ty][tx] = sa;
  __syncthreads();
  if (ty == 0 && c < C) {
    double tx_ = 0, ta = 0;
    for (int i = 0; i < PS_ROWS; i++) tx_ += sh[0][i][tx], ta += sh[1][i][tx];
    double *p = part + ((size_t)z * nch + ch) * 2 * C;
    p[c] = tx_;
    p[C + c] = ta;
  }
}

// Chunk count and rows per chunk for cb_norm_part_kernel (at most max_ch chunks of >= 64 rows).
static void norm_chunks(size_t rows, size_t max_ch, size_t *nch, size_t *rows_per) {
  size_t rp = (rows + max_ch - 1) / max_ch;
  if (rp < 64) rp = 64;
  *rows_per = rp;
  *nch = (rows + rp - 1) / rp;
}

// dgamma[c] += sum_ch part[ch][0][c], dbeta[c] += sum_ch part[ch][1][c] (chunk order).
__global__ void cb_ln_param_final_kernel(float *dgamma, float *dbeta, const double *part, int nch, int C) {
  CB_GRID_LOOP(c, (size_t)C) {
    double sx = 0, sa = 0;
    for (int ch = 0; ch < nch; ch++) sx += part[(size_t)ch * 2 * C + c], sa += part[(size_t)ch * 2 * C + C + c];
    if (dgamma) dgamma[c] += (float)sx;
    if (dbeta) dbeta[c] += (float)sa;
  }
}

// One block per row: mean(g), mean(g xh) in double, then dx.
__global__ void cb_ln_dx_kernel(float *dx, const float *dy, const float *x, const float *mean_rstd,
                                const float *gamma, int C) {
  __shared__ double sh[32];
  const size_t n = blockIdx.x;
  const float *xr = x + n * C, *dyr = dy + n * C;
  float *dxr = dx + n * C;
  const float m = mean_rstd[2 * n], rstd = mean_rstd[2 * n + 1];
  double sg = 0, sgx = 0;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    const float xh = (xr[c] - m) * rstd, g = gamma ? dyr[c] * gamma[c] : dyr[c];
    sg += g;
    sgx += (double)g * xh;
  }
  const float mg = (float)(cb_block_sum(sg, sh) / C), mgx = (float)(cb_block_sum(sgx, sh) / C);
  // dx may alias dy: each thread reads its own elements before writing them.
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    const float xh = (xr[c] - m) * rstd, g = gamma ? dyr[c] * gamma[c] : dyr[c];
    dxr[c] = rstd * (g - mg - xh * mgx);
  }
}

int cuda_layer_norm_backward(hb_ctx *ctx, float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                             const float *mean_rstd, const float *gamma, int N, int C) {
  if (N < 0 || C < 1) return hb_fail("layer_norm_backward: bad shape N=%d C=%d", N, C);
  if (N == 0) return 0;
  cudaStream_t s = cuda_st(ctx)->stream;
  if (!gamma) dgamma = NULL;
  if (dgamma || dbeta) {
    size_t nch, rows_per;
    norm_chunks((size_t)N, 1024, &nch, &rows_per);
    double *part = (double *)ops_workspace(ctx, sizeof(double) * 2 * nch * (size_t)C);
    if (!part) return hb_fail_prefix("layer_norm_backward workspace");
    cb_norm_part_kernel<false><<<dim3((unsigned)((C + 31) / 32), (unsigned)nch, 1), dim3(32, PS_ROWS), 0, s>>>(
        part, dy, x, mean_rstd, (size_t)N, C, rows_per, 1, 1);
    CHECK_LAUNCH();
    cb_ln_param_final_kernel<<<cuda_grid((size_t)C, CB_NT), CB_NT, 0, s>>>(dgamma, dbeta, part, (int)nch, C);
    CHECK_LAUNCH();
  }
  if (dx) {
    cb_ln_dx_kernel<<<N, CB_NT, 0, s>>>(dx, dy, x, mean_rstd, gamma, C);
    CHECK_LAUNCH();
  }
  return 0;
}

// ---- group norm -----------------------------------------------------------------------------------
int cuda_group_norm_train(hb_ctx *ctx, float *y, float *mean_rstd, const float *x, const float *gamma,
                          const float *beta, int B, int T, int C, int G, float eps) {
  if (G < 1 || C % G) return hb_fail("group_norm_train: %d channels not divisible by %d groups", C, G);
  if (B < 0 || T < 1) return hb_fail("group_norm_train: bad shape B=%d T=%d", B, T);
  if (B == 0) return 0;
  float *st = mean_rstd;
  if (!st) {
    st = (float *)ops_workspace(ctx, sizeof(float) * 2 * (size_t)B * G);
    if (!st) return hb_fail_prefix("group_norm_train workspace");
  }
  return cuda_group_norm_run(ctx, y, st, x, gamma, beta, B, T, C, G, eps);
}

// sA[b][c] = sum_ch part[b][ch][1][c] (sum_t dy), sX[b][c] = ... [0][c] (sum_t dy xh), chunk order.
__global__ void cb_gn_chan_final_kernel(double *sA, double *sX, const double *part, int B, int nch, int C) {
  CB_GRID_LOOP(i, (size_t)B * C) {
    const size_t b = i / C, c = i % C;
    double a = 0, x = 0;
    for (int ch = 0; ch < nch; ch++) {
      const double *p = part + (b * nch + ch) * 2 * C;
      x += p[c], a += p[C + c];
    }
    sA[i] = a, sX[i] = x;
  }
}

// dgamma[c] += sX[b][c], dbeta[c] += sA[b][c], rounded to float per utterance as the CPU does.
__global__ void cb_gn_param_kernel(float *dgamma, float *dbeta, const double *sA, const double *sX, int B, int C) {
  CB_GRID_LOOP(c, (size_t)C) {
    for (int b = 0; b < B; b++) {
      if (dgamma) dgamma[c] += (float)sX[(size_t)b * C + c];
      if (dbeta) dbeta[c] += (float)sA[(size_t)b * C + c];
    }
  }
}

// mg[b][g] = sum_{c in g} gamma_c sA[b][c] / n, mgx likewise with sX (n = T * Cg).
__global__ void cb_gn_group_kernel(float *mg, float *mgx, const double *sA, const double *sX, const float *gamma,
                                   int B, int C, int G, double n) {
  const int Cg = C / G;
  CB_GRID_LOOP(i, (size_t)B * G) {
    const size_t b = i / G, g = i % G;
    double a = 0, s = 0;
    for (int c = (int)g * Cg; c < ((int)g + 1) * Cg; c++) {
      const double gm = gamma ? gamma[c] : 1.0;
      a += gm * sA[b * C + c], s += gm * sX[b * C + c];
    }
    mg[i] = (float)(a / n), mgx[i] = (float)(s / n);
  }
}

__global__ void cb_gn_dx_kernel(float *dx, const float *dy, const float *x, const float *mean_rstd, const float *gamma,
                                const float *mg, const float *mgx, size_t n, int T, int C, int G) {
  const int Cg = C / G;
  CB_GRID_LOOP(i, n) {
    const int c = (int)(i % C);
    const size_t bg = (i / ((size_t)T * C)) * G + c / Cg;
    const float rstd = mean_rstd[2 * bg + 1], xh = (x[i] - mean_rstd[2 * bg]) * rstd;
    const float gg = gamma ? dy[i] * gamma[c] : dy[i];
    dx[i] = rstd * (gg - mg[bg] - xh * mgx[bg]);
  }
}

int cuda_group_norm_backward(hb_ctx *ctx, float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                             const float *mean_rstd, const float *gamma, int B, int T, int C, int G) {
  if (G < 1 || C % G) return hb_fail("group_norm_backward: %d channels not divisible by %d groups", C, G);
  if (B < 0 || T < 1) return hb_fail("group_norm_backward: bad shape B=%d T=%d", B, T);
  if (B == 0) return 0;
  if (B > 65535) return hb_fail("group_norm_backward: %d utterances exceed the grid (65535)", B);
  if (!gamma) dgamma = NULL;
  if (!dx && !dgamma && !dbeta) return 0;
  size_t nch, rows_per;
  norm_chunks((size_t)T, 64, &nch, &rows_per);
  const size_t BC = (size_t)B * C, BG = (size_t)B * G;
  const size_t nd = 2 * (size_t)B * nch * C + 2 * BC;  // part, sA, sX
  double *part = (double *)ops_workspace(ctx, sizeof(double) * nd + sizeof(float) * 2 * BG);
  if (!part) return hb_fail_prefix("group_norm_backward workspace");
  double *sA = part + 2 * (size_t)B * nch * C, *sX = sA + BC;
  float *mg = (float *)(sX + BC), *mgx = mg + BG;
  cudaStream_t s = cuda_st(ctx)->stream;
  cb_norm_part_kernel<true><<<dim3((unsigned)((C + 31) / 32), (unsigned)nch, (unsigned)B), dim3(32, PS_ROWS), 0, s>>>(
      part, dy, x, mean_rstd, (size_t)T, C, rows_per, C / G, G);
  CHECK_LAUNCH();
  cb_gn_chan_final_kernel<<<cuda_grid(BC, CB_NT), CB_NT, 0, s>>>(sA, sX, part, B, (int)nch, C);
  CHECK_LAUNCH();
  if (dgamma || dbeta) {
    cb_gn_param_kernel<<<cuda_grid((size_t)C, CB_NT), CB_NT, 0, s>>>(dgamma, dbeta, sA, sX, B, C);
    CHECK_LAUNCH();
  }
  if (dx) {
    cb_gn_group_kernel<<<cuda_grid(BG, CB_NT), CB_NT, 0, s>>>(mg, mgx, sA, sX, gamma, B, C, G, (double)T * (C / G));
    CHECK_LAUNCH();
    const size_t n = (size_t)B * T * C;
    cb_gn_dx_kernel<<<cuda_grid(n, CB_NT), CB_NT, 0, s>>>(dx, dy, x, mean_rstd, gamma, mg, mgx, n, T, C, G);
    CHECK_LAUNCH();
  }
  return 0;
}
