// attention (inference): the fused flash-style forward of cuda_attention_train.cu
// (cb_attention_train_kernel) without lse and dropout, behind the inference op's own checks
// (empty shapes are a no-op here).
#include "kernels/cuda/cuda_backward.h"

int cuda_attention(hb_ctx *ctx, float *out, const float *q, const float *k, const float *v, const int *len, int B,
                   int T, int H, int Dh, float scale) {
  if (Dh < 1 || Dh > CUDA_ATT_DMAX)
    return hb_fail("attention: head dimension %d outside 1..%d (CUDA kernel)", Dh, CUDA_ATT_DMAX);
  if (B <= 0 || T <= 0 || H <= 0) return 0;
  if (B > 65535 || H > 65535) return hb_fail("attention: %d utterances x %d heads exceed the grid (65535)", B, H);
  const int *d_len = NULL;
  if (len) {
    for (int b = 0; b < B; b++)
      if (len[b] < 1 || len[b] > T) return hb_fail("attention: length %d of item %d outside [1, %d]", len[b], b, T);
    HB_TRY(cuda_upload_len(ctx, len, B, &d_len));
  }
  return cuda_attention_launch(ctx, out, NULL, q, k, v, d_len, B, T, H, Dh, scale, 0.0f, 0);
}
