// The op API: every numerical operation the model uses, as plain functions on pointers, behind
// one table per backend (CPU reference in kernels/cpu/, CUDA in kernels/cuda/). models/ calls
// only these; it never knows which backend runs.
//
// Layout conventions
// - Activations are channel-last: (B, T, C) row-major, C contiguous. Waveforms are (B, L).
// - Weights keep PyTorch's layout (Linear: (out, in); Conv1d: (out, in/groups, K)), so checkpoint
//   tensors are used as they are.
// - All pointers are backend pointers (host memory for CPU, device memory for CUDA); the caller
//   moves data with ctx->be->upload / download.
// - Ops never allocate in steady state: each takes scratch from the context's workspace, which
//   grows only on the first call with the largest shapes (ops_reserve() sizes it up front).
#ifndef HB_OPS_H
#define HB_OPS_H

#include <stddef.h>
#include <stdint.h>

typedef struct hb_ctx hb_ctx;

// A span of a flat parameter-layout buffer (in floats); decay = 1: weight decay applies.
typedef struct {
  size_t offset, numel;
  int decay;
} hb_span;

// Per-update AdamW scalars (train/optim.c folds them in double, then rounds to float). Element i:
//   g' = g * grad_scale; m = beta1 m + one_m_beta1 g'; v = beta2 v + one_m_beta2 g'^2;
//   p = p * (decay span ? decay : 1) - step_size * m / (sqrt(v) * inv_sqrt_bc2 + eps)
typedef struct {
  float grad_scale, beta1, beta2, one_m_beta1, one_m_beta2, step_size, inv_sqrt_bc2, eps, decay;
} hb_adamw_args;

typedef struct hb_backend {
  const char *name;
  // memory
  void *(*alloc)(hb_ctx *ctx, size_t bytes);      // zeroed; NULL with hb_fail on failure
  void (*free)(hb_ctx *ctx, void *p);
  int (*upload)(hb_ctx *ctx, void *dst, const void *src, size_t bytes);     // host -> backend
  int (*download)(hb_ctx *ctx, void *dst, const void *src, size_t bytes);   // backend -> host
  int (*copy)(hb_ctx *ctx, void *dst, const void *src, size_t bytes);       // backend -> backend
  int (*zero)(hb_ctx *ctx, void *p, size_t bytes);
  int (*sync)(hb_ctx *ctx);

  // y (B, Tout, Cout) = conv1d(x (B, Tin, Cin), w (Cout, Cin/groups, K)) + bias (Cout | NULL)
  // Tout = (Tin + 2*pad - K) / stride + 1; zero padding on both sides.
  int (*conv1d)(hb_ctx *ctx, float *y, const float *x, const float *w, const float *bias,
                int B, int Tin, int Cin, int Cout, int K, int stride, int pad, int groups);

  // y (N, Cout) = x (N, Cin) @ w^T (w: (Cout, Cin)) + bias (Cout | NULL)
  int (*linear)(hb_ctx *ctx, float *y, const float *x, const float *w, const float *bias,
                int N, int Cin, int Cout);

  // y (N, C) = (x - mean) / sqrt(var + eps) * gamma + beta, statistics over the last dim C.
  // y may alias x.
  int (*layer_norm)(hb_ctx *ctx, float *y, const float *x, const float *gamma, const float *beta,
                    int N, int C, float eps);

  // Group norm on channel-last x (B, T, C): statistics per (b, group) over T and the C/G channels
  // of the group; gamma/beta per channel. y may alias x.
  int (*group_norm)(hb_ctx *ctx, float *y, const float *x, const float *gamma, const float *beta,
                    int B, int T, int C, int G, float eps);

  // y = 0.5 x (1 + erf(x / sqrt 2)), n elements; y may alias x.
  int (*gelu)(hb_ctx *ctx, float *y, const float *x, size_t n);

  // y = a + b, n elements; y may alias a or b.
  int (*add)(hb_ctx *ctx, float *y, const float *a, const float *b, size_t n);

  // Row softmax in place on x (N, D).
  int (*softmax)(hb_ctx *ctx, float *x, int N, int D);

  // Multi-head scaled dot-product attention with a key-padding mask.
  // q, k, v, out: (B, T, H*Dh) (heads interleaved as PyTorch's view(B, T, H, Dh)).
  // out[b, t, h] = softmax_s(q[b,t,h] . k[b,s,h] * scale, s < len[b]) @ v[b, :, h].
  // len: (B) host int array, 1 <= len[b] <= T (NULL: all T). Rows t >= len[b] are computed like
  // the others (they are padding; callers ignore them). Memory O(T * block), never O(T^2).
  int (*attention)(hb_ctx *ctx, float *out, const float *q, const float *k, const float *v,
                   const int *len, int B, int T, int H, int Dh, float scale);

  // Weight normalisation over all dims but `dim` 2 (torch.nn.utils.weight_norm(dim=2)):
  // w[o, i, k] = g[k] * v[o, i, k] / ||v[:, :, k]||_2, v: (O, In, K), g: (K).
  int (*weight_norm)(hb_ctx *ctx, float *w, const float *v, const float *g, int O, int In, int K);

  // Zero the frames t >= len[b] of x (B, T, C). len: host int array (B).
  int (*mask_padding)(hb_ctx *ctx, float *x, const int *len, int B, int T, int C);

  // ---- training: forward variants that save what the backward needs, and the backwards ------
  // Gradient rules (docs/ops.md): input gradients (dx, dq, dk, dv of attention) are OVERWRITTEN
  // and may be NULL when not needed; parameter gradients (dw, dbias, dgamma, dbeta, weight-norm
  // dv/dg) are ACCUMULATED (+=): they live in the flat gradient buffer zeroed once per step, and
  // may be NULL when the parameter does not exist. No output aliases an input unless stated.

  // conv1d: dx (B, Tin, Cin) from dy (B, Tout, Cout); dw (Cout, Cin/groups, K) +=; dbias (Cout) +=.
  int (*conv1d_backward)(hb_ctx *ctx, float *dx, float *dw, float *dbias, const float *dy, const float *x,
                         const float *w, int B, int Tin, int Cin, int Cout, int K, int stride, int pad, int groups);

  // linear: dx (N, Cin) = dy (N, Cout) @ w; dw (Cout, Cin) += dy^T x; dbias (Cout) += sum_n dy.
  int (*linear_backward)(hb_ctx *ctx, float *dx, float *dw, float *dbias, const float *dy, const float *x,
                         const float *w, int N, int Cin, int Cout);

  // layer_norm that also saves mean_rstd (N, 2) = {mean, 1/sqrt(var + eps)} per row. y may alias x
  // (then the caller keeps x elsewhere: the backward needs it).
  int (*layer_norm_train)(hb_ctx *ctx, float *y, float *mean_rstd, const float *x, const float *gamma,
                          const float *beta, int N, int C, float eps);
  // dx (N, C) (may alias dy); dgamma, dbeta (C) +=. x, mean_rstd as given to/saved by layer_norm_train.
  int (*layer_norm_backward)(hb_ctx *ctx, float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                             const float *mean_rstd, const float *gamma, int N, int C);

  // group_norm that also saves mean_rstd (B, G, 2). y may alias x.
  int (*group_norm_train)(hb_ctx *ctx, float *y, float *mean_rstd, const float *x, const float *gamma,
                          const float *beta, int B, int T, int C, int G, float eps);
  // dx (B, T, C) (may alias dy); dgamma, dbeta (C) +=.
  int (*group_norm_backward)(hb_ctx *ctx, float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                             const float *mean_rstd, const float *gamma, int B, int T, int C, int G);

  // dx = dy * gelu'(x), gelu'(x) = Phi(x) + x phi(x) (erf form); n elements; dx may alias dy.
  int (*gelu_backward)(hb_ctx *ctx, float *dx, const float *dy, const float *x, size_t n);

  // Row softmax backward from its output y (N, D): dx = y * (dy - sum_d dy y); dx may alias dy.
  int (*softmax_backward)(hb_ctx *ctx, float *dx, const float *dy, const float *y, int N, int D);

  // attention that also saves lse (B, H, T) = log sum_s exp(scale q.k_s) over the valid keys,
  // with dropout on the probabilities (torch: softmax, then dropout, then @ V):
  //   out[b,t,h] = sum_s keep_s / (1 - p) * P[b,h,t,s] v[b,s,h],  P = softmax over s < len[b]
  // (the denominator uses all valid keys, undropped). keep_s is the rule of `dropout` below /
  // kernels/dropout_mask.h on the virtual (B, H, T, T) tensor, flat index
  // i = ((b*H + h)*T + t)*T + s: keep iff Philox4x32(dropout_seed, i / 4)[i % 4] >= p * 2^32.
  // dropout_p = 0: no dropout (dropout_seed unused). lse is that of the undropped softmax.
  int (*attention_train)(hb_ctx *ctx, float *out, float *lse, const float *q, const float *k, const float *v,
                         const int *len, int B, int T, int H, int Dh, float scale, float dropout_p,
                         uint64_t dropout_seed);
  // dq, dk, dv (B, T, H*Dh) from dout (B, T, H*Dh), recomputing the probabilities blockwise from
  // q, k and lse (never a T x T matrix per head), and the mask from (dropout_p, dropout_seed) as
  // given to attention_train. With A = P, A' = A * M / (1 - p), out = A' V:
  //   dV = A'^T dout; dA = (dout V^T) * M / (1 - p); dS = A * (dA - rowsum(dA * A)).
  // All query rows (padded ones too) contribute, as in the forward; dk, dv of padded keys
  // s >= len[b] are 0.
  int (*attention_backward)(hb_ctx *ctx, float *dq, float *dk, float *dv, const float *dout, const float *q,
                            const float *k, const float *v, const float *lse, const int *len, int B, int T, int H,
                            int Dh, float scale, float dropout_p, uint64_t dropout_seed);

  // weight_norm (dim=2): dv (O, In, K) +=, dg (K) += from dw (O, In, K).
  int (*weight_norm_backward)(hb_ctx *ctx, float *dv, float *dg, const float *dw, const float *v, const float *g,
                              int O, int In, int K);

  // Zero the gradient of padded frames t >= len[b] of dx (B, T, C), in place.
  int (*mask_padding_backward)(hb_ctx *ctx, float *dx, const int *len, int B, int T, int C);

  // y += a * x (gradient accumulation), n elements.
  int (*axpy)(hb_ctx *ctx, float *y, float a, const float *x, size_t n);
  // y = a * x (e.g. feature_grad_mult), n elements; y may alias x.
  int (*scale)(hb_ctx *ctx, float *y, const float *x, float a, size_t n);

  // ---- training heads and losses (models/hubert_heads.c; docs/objective.md) ------------------
  // Index arrays (idx, target, correct, lengths) are backend int32 memory like the tensors.
  // y (N, C) = x[idx[n]] rows of x (M, C); 0 <= idx[n] < M.
  int (*gather_rows)(hb_ctx *ctx, float *y, const float *x, const int *idx, int N, int C);
  // dx[idx[n]] = dy[n] for n < N (indices distinct; other rows of dx untouched).
  int (*scatter_rows)(hb_ctx *ctx, float *dx, const float *dy, const int *idx, int N, int C);
  // Cosine-logit cross-entropy (HuBERT masked prediction), row n of p (N, D; row stride ldp):
  //   z[n, k] = cos(p_n, e_k) * inv_temp, e: (K, D); loss[n] = logsumexp_k z[n] - z[n, target[n]];
  //   correct[n] = (argmax_k z[n] == target[n]) (first maximum wins). logits (N, K) | NULL.
  // Gradients of sum_n w[n] loss[n]: dp (N, ldp) overwritten (columns < D), de (K, D) +=; either
  // may be NULL (w then too). Never more than a block of rows x K logits in memory.
  int (*cosine_ce)(hb_ctx *ctx, float *loss, int *correct, float *logits, float *dp, float *de, const float *p,
                   int ldp, const float *e, const int *target, const float *w, int N, int D, int K, float inv_temp);
  // Plain cross-entropy on logits z (N, K): loss[n] = lse(z_n) - z[n, target[n]], correct[n] as
  // above; dz (N, K) = w[n] (softmax(z_n) - onehot) overwritten (NULL: no gradient).
  int (*softmax_ce)(hb_ctx *ctx, float *loss, int *correct, float *dz, const float *z, const int *target,
                    const float *w, int N, int K);
  // y (B, C) = mean of x (B, T, C) over t < len[b] (len[b] >= 1); backward: dx (B, T, C) =
  // dy[b] / len[b] for t < len[b], 0 beyond (overwritten).
  int (*seq_mean_pool)(hb_ctx *ctx, float *y, const float *x, const int *len, int B, int T, int C);
  int (*seq_mean_pool_backward)(hb_ctx *ctx, float *dx, const float *dy, const int *len, int B, int T, int C);
  // CTC (Graves 2006) on logits z (B, T, V) (log-softmax inside), blank index `blank`; targets
  // (B, S) padded, utterance b uses z[b, :in_len[b]] and targets[b, :tgt_len[b]] (no blanks).
  // loss[b] = -log p(targets_b | z_b) (inf when no alignment exists). dz (B, T, V) | NULL:
  // gradient of sum_b w[b] loss[b], overwritten, 0 for t >= in_len[b] and for infinite losses.
  // Log-space alpha/beta; scratch O(T * (2S + 1)) per utterance.
  int (*ctc_loss)(hb_ctx *ctx, float *loss, float *dz, const float *z, const int *targets, const int *in_len,
                  const int *tgt_len, const float *w, int B, int T, int V, int S, int blank);
  // Span-mask application (HuBERT's masked_spec_embed): rows n of x (N, C) with mask[n] != 0
  // become emb (C); other rows untouched. mask: HOST uint8 array (N), as models/hubert_mask.c
  // draws it. Backward, in place on dx (N, C): demb (C) += sum over the masked rows of dx (summed
  // per column in double, in a fixed order: deterministic), then the masked rows of dx are zeroed
  // (no gradient reaches what was overwritten). demb may be NULL.
  int (*mask_rows)(hb_ctx *ctx, float *x, const uint8_t *mask, const float *emb, int N, int C);
  int (*mask_rows_backward)(hb_ctx *ctx, float *dx, float *demb, const uint8_t *mask, int N, int C);

  // ---- dropout (models/hubert_train.c) ---------------------------------------------------------
  // y = x * keep / (1 - p), keep[i] = (Philox4x32(seed, counter i / 4)[i % 4] >= p * 2^32): the
  // mask is a pure function of (seed, i), so it is launch-order and thread-count independent and
  // the op is its own backward (dx = dropout(dy) with the same seed). n elements; y may alias x.
  int (*dropout)(hb_ctx *ctx, float *y, const float *x, size_t n, float p, uint64_t seed);

  // ---- optimizer (train/optim.c; the math is in train/optim.h) ---------------------------------
  // seg: HOST array of nseg disjoint spans of the flat buffers (padding between them untouched).
  // *ss (host) = sum over the spans of sum_i x[i]^2, accumulated in double; NaN/inf propagate, so
  // a non-finite *ss flags a non-finite gradient (the device-side NaN/inf check).
  int (*sum_squares)(hb_ctx *ctx, double *ss, const float *x, const hb_span *seg, int nseg);
  // One AdamW update of p, m, v from g on the spans; the scalars are folded by the caller.
  int (*adamw)(hb_ctx *ctx, float *p, float *m, float *v, const float *g, const hb_span *seg, int nseg,
               const hb_adamw_args *a);
} hb_backend;

struct hb_ctx {
  const hb_backend *be;
  int num_threads;        // CPU: OpenMP threads (0 = library default)
  void *workspace;        // backend scratch, grown by ops_workspace()
  size_t workspace_bytes;
  void *backend_state;    // e.g. CUDA handles
  int precision;          // HB_PRECISION_*: set by ops_set_precision() (0 = fp32 after init)
};

// Compute precision of a context. FP32: every op in fp32. BF16 (CUDA only): the linear layers and
// their backwards run cuBLAS GEMMs with bf16 copies of both inputs (rounded to nearest even on the
// fly, weights included) and fp32 accumulation and outputs; weights, gradients, optimizer state
// and every other op stay fp32 (fp32 master weights). docs/cuda.md "Mixed precision".
#define HB_PRECISION_FP32 0
#define HB_PRECISION_BF16 1
// name: "fp32" or "bf16" (NULL: fp32). The CPU backend refuses bf16 (it computes in fp32 only);
// -1 with hb_fail naming the backend and the value otherwise.
int ops_set_precision(hb_ctx *ctx, const char *name);

// Creates a context for a backend by name ("cpu", "cuda"). Error if the backend is not built in
// or has no device.
int ops_ctx_init(hb_ctx *ctx, const char *backend, int num_threads);
void ops_ctx_free(hb_ctx *ctx);
// Scratch of at least `bytes`, valid until the next op call. Grows (reallocates) only if needed.
void *ops_workspace(hb_ctx *ctx, size_t bytes);

extern const hb_backend hb_backend_cpu;

// 0 if every member of ctx->be after mask_padding (the backward ops) is set; otherwise -1 with
// hb_fail naming the backend and the first missing member by position. ops_ctx_init() checks
// only the memory functions and the forward ops (a forward-only backend is usable for inference).
int ops_check_backward(const hb_ctx *ctx);

#endif
