// CUDA vs CPU for mask_rows / mask_rows_backward (span-mask application): forward rows and the
// zeroed dx bit for bit, demb (+=, summed in double on both) at TOL_CUDA_F32; demb NULL; guard
// floats after every CUDA output; the mask is a host array reused (changed) right after the call.
// Skips (77) without a GPU. Seed: fresh, HUBERT_TEST_SEED fixes it.
#include <stdio.h>

#include "tests/cuda/cuda_test_util.h"

static void test_case(int N, int C, double p) {
  const size_t n = (size_t)N * C;
  uint8_t *mask = malloc((size_t)N + 1);
  for (int i = 0; i < N; i++) mask[i] = (uint8_t)(rng_uniform(&ct_rng) < p);
  float *x = ct_randn(n, 1), *emb = ct_randn((size_t)C, 1), *dx = ct_randn(n, 1), *demb = ct_randn((size_t)C, 1);
  float *dxg = ct_dev(x, n), *demb_g = ct_dev(emb, (size_t)C);
  float *ddx = ct_dev(dx, n), *ddemb = ct_dev(demb, (size_t)C), *ddx2 = ct_dev(dx, n);
  char name[96];
  snprintf(name, sizeof name, "mask_rows N%d C%d p%.2f", N, C, p);
  CHECK_OK(ct_gpu.be->mask_rows(&ct_gpu, dxg, mask, demb_g, N, C));
  CHECK_OK(ct_gpu.be->mask_rows_backward(&ct_gpu, ddx, ddemb, mask, N, C));
  CHECK_OK(ct_gpu.be->mask_rows_backward(&ct_gpu, ddx2, NULL, mask, N, C));
  uint8_t *saved = malloc((size_t)N + 1);
  memcpy(saved, mask, (size_t)N);
  memset(mask, 0xff, (size_t)N);  // before any sync: the ops must have staged the host mask
  CHECK_OK(ct_cpu.be->mask_rows(&ct_cpu, x, saved, emb, N, C));
  CHECK_OK(ct_cpu.be->mask_rows_backward(&ct_cpu, dx, demb, saved, N, C));
  ct_check_bits(name, dxg, x, n);
  snprintf(name, sizeof name, "mask_rows_backward dx N%d C%d", N, C);
  ct_check_bits(name, ddx, dx, n);
  snprintf(name, sizeof name, "  (demb NULL) dx");
  ct_check_bits(name, ddx2, dx, n);
  snprintf(name, sizeof name, "mask_rows_backward demb N%d C%d", N, C);
  ct_check(name, ddemb, demb, (size_t)C, TOL_CUDA_F32);
  ct_free(demb_g);
  free(mask), free(saved), free(x), free(emb), free(dx), free(demb);
}

int main(void) {
  ct_init("test_mask_rows_cuda");
  test_case(37, 48, 0.4);
  test_case(4000, 768, 0.5);  // a Base batch: several row chunks
  test_case(50, 65, 1.0);
  test_case(7, 33, 0.0);
  ops_ctx_free(&ct_gpu), ops_ctx_free(&ct_cpu);
  return test_summary("test_mask_rows_cuda");
}
