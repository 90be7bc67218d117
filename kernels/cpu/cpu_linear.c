// Linear layer as one sgemm: y (N, Cout) = x (N, Cin) @ w^T + bias, w in PyTorch's (Cout, Cin).
#include <cblas.h>
#include <string.h>

#include "kernels/cpu/cpu_internal.h"

int cpu_linear(hb_ctx *ctx, float *y, const float *x, const float *w, const float *bias, int N, int Cin, int Cout) {
  (void)ctx;
  float beta = 0.0f;
  if (bias) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) memcpy(y + (size_t)n * Cout, bias, sizeof(float) * Cout);
    beta = 1.0f;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, Cout, Cin, 1.0f, x, Cin, w, Cin, beta, y, Cout);
  return 0;
}
