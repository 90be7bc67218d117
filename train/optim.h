// AdamW on the flat parameter buffer, global-norm gradient clipping and learning-rate schedules.
//
// Parameters, gradients and the moments m, v share one flat layout (models/hubert_params.h):
// the optimizer walks a list of segments (offset, numel, decay) and never touches the alignment
// padding between tensors. One update, as torch.optim.AdamW (decoupled weight decay, PyTorch's
// bias correction) after fairseq's gradient handling:
//   g     = grad * grad_scale                       (e.g. 1 / sample_size)
//   norm  = ||g||_2 over all segments               (returned, pre-clip)
//   g    *= min(1, clip / (norm + 1e-6))            (clip > 0; torch.nn.utils.clip_grad_norm_)
//   t    += 1
//   p    -= lr * wd * p                             (segments with decay = 1 only)
//   m     = b1 m + (1 - b1) g ;  v = b2 v + (1 - b2) g^2
//   p    -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// A non-finite norm (NaN/inf anywhere in the gradient) skips the update entirely: parameters,
// moments and t are left as they were and the stats say so.
#ifndef HB_TRAIN_OPTIM_H
#define HB_TRAIN_OPTIM_H

#include <stddef.h>

#include "kernels/ops.h"
#include "models/hubert_params.h"

// {offset, numel (floats), decay (1: weight decay applies)}: kernels/ops.h's span.
typedef hb_span hb_optim_segment;

typedef struct {
  double beta1, beta2, eps, weight_decay;
} hb_adamw_hparams;

typedef struct {
  size_t total;            // floats in each flat buffer (the layout's total)
  int nseg;
  hb_optim_segment *seg;
  float *m, *v;            // (total) first and second moments, parameter layout, padding = 0;
                           // host memory, or backend memory after optim_use_backend()
  hb_ctx *ctx;             // NULL: host arrays, the CPU backend's loops; else that backend's
  long step;               // updates applied (t of the bias correction)
  long skipped;            // non-finite updates skipped in total
  hb_adamw_hparams hp;
} hb_adamw;

typedef struct {
  double grad_norm;        // ||grad * grad_scale||, before clipping (NaN/inf if non-finite)
  double clip_coef;        // factor applied to the gradient (1 when not clipped)
  int skipped;             // 1: non-finite gradient, nothing was changed
} hb_optim_stats;

// fairseq's HuBERT settings: betas (0.9, 0.98), eps 1e-6, weight decay 0.01.
hb_adamw_hparams optim_default_hparams(void);
// Segments given explicitly (each inside [0, total), non-overlapping).
int optim_init(hb_adamw *o, size_t total, const hb_optim_segment *seg, int nseg, const hb_adamw_hparams *hp);
// Segments from the parameter table: decay = hb_param_info.decay.
int optim_init_layout(hb_adamw *o, const hb_param_layout *L, const hb_adamw_hparams *hp);
void optim_free(hb_adamw *o);
// Moves the moments to ctx's backend memory (call right after optim_init*; the moments must
// still be zero): param and grad of optim_step / optim_grad_norm are then backend memory, the
// norm and the NaN/inf check run there (one double comes back per step), and optim_save/load
// stage through the host. A CPU context keeps the host arrays (nothing changes).
int optim_use_backend(hb_adamw *o, hb_ctx *ctx);

// ||grad * scale||_2 over the segments, accumulated in double.
double optim_grad_norm(const hb_adamw *o, const float *grad, double scale);
// One update of param (total) from grad (total); grad is not modified. lr: this update's rate.
// clip <= 0 disables clipping. Returns 0 (stats->skipped tells whether it was applied).
int optim_step(hb_adamw *o, float *param, const float *grad, double grad_scale, double lr, double clip,
               hb_optim_stats *stats);

// State I/O: safetensors with tensors "optimizer.exp_avg" and "optimizer.exp_avg_sq" (total,)
// and metadata step / skipped / total. Loading checks the total against o->total.
int optim_save(const hb_adamw *o, const char *path);
int optim_load(hb_adamw *o, const char *path);

// ---- learning-rate schedules: pure functions of the number of completed updates n ----
// The rate returned is the one used by update n + 1 (fairseq calls step_update(n) after each
// update, and step_update(0) before the first, so a warmup starts from lr * 0 / warmup).
typedef enum { HB_LR_POLYNOMIAL, HB_LR_TRI_STAGE, HB_LR_COSINE, HB_LR_FIXED } hb_lr_kind;

typedef struct {
  hb_lr_kind kind;
  double lr;               // peak
  long warmup;             // polynomial, cosine, fixed: linear warmup updates
  long total;              // polynomial / cosine: last update of the decay (fairseq total_num_update)
  double end_lr, power;    // polynomial: end_learning_rate, power; cosine: end_lr is the floor
  double phase_ratio[3];   // tri-stage: warmup, hold, decay fractions of `total`
  double init_lr_scale, final_lr_scale;  // tri-stage
} hb_lr_schedule;

// polynomial_decay (fairseq): n <= warmup: lr * n / warmup; n >= total: end_lr;
//   else end_lr + (lr - end_lr) * (1 - (n - warmup) / (total - warmup))^power.
// tri_stage (fairseq): w, h, d = int(total * ratio); n < w: init + (lr - init) * n / w;
//   n < w + h: lr; n <= w + h + d: lr * exp(log(final_lr_scale) * (n - w - h) / d); else final.
// cosine: warmup as polynomial, then end_lr + (lr - end_lr) * (1 + cos(pi * p)) / 2,
//   p = (n - warmup) / (total - warmup) clamped to [0, 1].
// fixed: warmup as polynomial, then lr.
double sched_lr(const hb_lr_schedule *s, long n);
const char *sched_kind_name(hb_lr_kind k);

#endif
