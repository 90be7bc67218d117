// The pretraining loop: set-up from the config and shards, one update (fairseq semantics, see
// trainer.h), validation, logging, checkpoints and exact resume.
#include "train/trainer.h"

#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/rng.h"
#include "models/hubert_heads.h"
#include "models/hubert_mask.h"
#include "models/hubert_train.h"
#include "train/checkpoint.h"
#include "train/comm.h"
#include "train/loader.h"
#include "train/train_util.h"
#include "train/trainer_internal.h"

// Philox stream tags: every random draw of the loop is a pure function of (seed, tag, update, micro).
enum { TAG_MASK = 0x6d61736b, TAG_DROPOUT = 0x64726f70, TAG_VALID = 0x76616c69 };

// ---- one micro-batch: forward, heads, backward ----

typedef struct {
  hb_pred_stats pred;
  hb_topic_stats topic;
  double pen;         // mean(f^2)
  double loss;        // L_i of trainer.h
  long count_m;
} micro_result;

// Gradient-ready hook of model_backward: the range's all-reduce buckets start once complete.
static int on_grad_ready(void *user, size_t off, size_t len) {
  trainer *t = user;
  return comm_allreduce_async_ready(&t->ar, off, len);
}

// train = 1: gradients accumulate into t->grads; train = 0: evaluation only (no dropout).
static int run_micro(trainer *t, const hb_batch *b, int train, uint64_t mask_seed, uint64_t drop_seed,
                     micro_result *r) {
  const hb_config *c = &t->model.cfg;
  hb_ctx *ctx = &t->ctx;
  const int B = b->B, NL = c->num_hidden_layers, H = c->hidden_size, Cc = c->conv_dim[c->num_conv - 1];
  const long L = b->T;
  memset(r, 0, sizeof *r);
  HB_TRY(train_arena_fit(&t->arena, &t->have_arena, &t->model, B, L));
  const int T = config_num_frames(c, L);
  size_t BT = (size_t)B * T;
  HB_TRY(train_grow_dev(&t->ctx, &t->wave, &t->wave_cap, (size_t)B * L, "trainer"));
  HB_TRY(ctx->be->upload(ctx, t->wave, b->audio, sizeof(float) * (size_t)B * L));
  HB_TRY(train_grow_host((void **)&t->lens, &t->lens_cap, sizeof(long) * B));
  HB_TRY(train_grow_host((void **)&t->frames, &t->frames_cap, sizeof(int) * B));
  HB_TRY(train_grow_host((void **)&t->valid_len, &t->valid_cap, sizeof(int) * B));
  HB_TRY(train_grow_host((void **)&t->topics, &t->topics_cap, sizeof(int) * B));
  HB_TRY(train_grow_host((void **)&t->mask, &t->mask_cap, BT));
  // Labels at the feature rate (fairseq forward_targets), per utterance; valid_len[b] = frames
  // that carry labels of every set (features beyond are not masked and carry no loss).
  const int stride = config_total_stride(c);
  for (int s = 0; s < b->n_labels; s++) {
    HB_TRY(train_grow_host((void **)&t->lab[s], &t->lab_cap[s], sizeof(int) * BT));
    memset(t->lab[s], 0, sizeof(int) * BT);
  }
  for (int i = 0; i < B; i++) {
    t->lens[i] = b->lengths[i];
    int fi = config_num_frames(c, b->lengths[i]);
    t->valid_len[i] = fi;
    for (int s = 0; s < b->n_labels; s++) {
      int outT;
      if (labels_align(t->lab[s] + (size_t)i * T, &outT, b->labels[s] + (size_t)i * b->label_T[s],
                       b->label_lengths[s][i], fi, t->label_rate[s], stride, t->sample_rate, 0.1, i)) {
        const char *shard = "?";
        int64_t idx = -1, len = 0;
        loader_utt_info(train ? t->train : t->valid, b->utt[i], &shard, &idx, &len);
        return hb_fail_prefix("%s, utterance %lld, label set '%s'", shard, (long long)idx, c->label_names[s]);
      }
      if (outT < t->valid_len[i]) t->valid_len[i] = outT;
    }
    t->topics[i] = b->n_topics ? b->topics[0][i] : 0;
  }
  hb_rng rng;
  rng_init(&rng, mask_seed);
  HB_TRY(mask_compute(t->mask, B, T, t->valid_len, c->mask_time_prob, c->mask_time_length, 2, &rng));
  hb_train_opts fo = {train, drop_seed};
  int Tf;
  HB_TRY(model_forward_train(&t->model, &t->arena, t->wave, t->lens, B, L, t->mask, t->frames, &Tf, &fo));
  if (Tf != T) return hb_fail("trainer: forward gave %d frames, expected %d", Tf, T);

  // Masked prediction on hidden[NL]: dx overwritten.
  HB_TRY(train_grow_dev(&t->ctx, &t->dx_top, &t->dx_top_cap, BT * H, "trainer"));
  const int *labs[HB_MAX_LABEL_SETS];
  for (int s = 0; s < b->n_labels; s++) labs[s] = t->lab[s];
  hb_params *g = train ? &t->gview : NULL;
  HB_TRY(heads_pred_loss(&t->ws, c, &t->model.p, g, t->arena.hidden[NL], labs, t->mask, t->valid_len, B, T,
                         &t->pred_opts, train ? t->dx_top : NULL, &r->pred));
  r->count_m = r->pred.count_m;
  r->loss = r->pred.loss;
  float *dh[HB_MAX_LAYERS + 1];
  memset(dh, 0, sizeof dh);
  dh[NL] = t->dx_top;

  // Topic head: weight lambda * m_i with the mean over utterances (trainer.h).
  if (t->topic_on) {
    const int tl = c->topic_layer ? c->topic_layer : NL;
    float *dxt = NULL;
    if (train) {
      if (tl == NL) {
        dxt = t->dx_top;
      } else {
        HB_TRY(train_grow_dev(&t->ctx, &t->dx_topic, &t->dx_topic_cap, BT * H, "trainer"));
        HB_TRY(ctx->be->zero(ctx, t->dx_topic, sizeof(float) * BT * H));
        dxt = dh[tl] = t->dx_topic;
      }
    }
    hb_topic_opts to = {(float)(t->cfg.topic.weight * (r->count_m > 0 ? r->count_m : 1)), 1};
    HB_TRY(heads_topic_loss(&t->ws, c, &t->model.p, g, t->arena.hidden[tl], t->frames, t->topics, B, T, &to, dxt,
                            &r->topic));
    r->loss += r->topic.loss;
  }

  // Feature penalty: loss_weights[0] * m_i * mean(f^2) over the (B, T, Cc) features.
  const double pw = t->cfg.criterion.loss_weights.n ? t->cfg.criterion.loss_weights.v[0] : 0.0;
  float *df = NULL;
  if (pw > 0) {
    if (train) {
      HB_TRY(train_grow_dev(&t->ctx, &t->d_feat, &t->d_feat_cap, BT * Cc, "trainer"));
      HB_TRY(ctx->be->zero(ctx, t->d_feat, sizeof(float) * BT * Cc));
      df = t->d_feat;
    }
    HB_TRY(heads_feature_penalty(&t->ws, &r->pen, df, t->arena.features, BT * Cc, pw * r->count_m));
    r->loss += pw * r->count_m * r->pen;
  }
  if (!train) return 0;
  t->arena.grad_ready = t->ar_on ? on_grad_ready : NULL;
  t->arena.grad_ready_user = t;
  return model_backward(&t->model, &t->arena, dh, df, (float)t->cfg.model.feature_grad_mult, t->grads);
}

// ---- one update ----

// ZeRO-1 step: this rank's range of the (reduce-scattered) gradient updates its range of the
// parameters with its shard of the moments; the clip factor comes from the global norm
// (all-reduce of the ranges' partial squares), exactly as optim_step computes it; then every
// rank gathers the parameters.
static int zero_step(trainer *t, double scale, double lr, hb_optim_stats *os) {
  const size_t lo = t->zoff[t->comm.rank];
  float *g = t->grads + lo, *p = t->model.params + lo;
  const double part = optim_grad_norm(&t->opt, g, scale);
  double sq = part * part;
  t->comm.what = "gradient-norm all-reduce";
  HB_TRY(comm_allreduce_f64(&t->comm, &sq, 1));
  os->grad_norm = sqrt(sq);
  os->clip_coef = 1;
  os->skipped = 0;
  if (!isfinite(os->grad_norm)) {   // the same decision on every rank: sq is the same bits everywhere
    os->skipped = 1;
    t->opt.skipped++;
    return 0;
  }
  const double clip = t->cfg.optimization.clip_norm;
  if (clip > 0 && clip / (os->grad_norm + 1e-6) < 1) os->clip_coef = clip / (os->grad_norm + 1e-6);
  hb_optim_stats local;
  HB_TRY(optim_step(&t->opt, p, g, scale * os->clip_coef, lr, 0, &local));
  // NCCL runs on its own stream: the AdamW kernels on the ops stream must have finished.
  if (t->comm.kind == HB_COMM_NCCL && t->ctx.be->sync && t->ctx.be->sync(&t->ctx)) return hb_fail_prefix("ZeRO-1 step");
  t->comm.what = "parameter all-gather";
  return comm_allgather_f32(&t->comm, t->model.params, t->zoff);
}

int trainer_update(trainer *t, hb_log_sums *acc, double *lr_out) {
  hb_ctx *ctx = &t->ctx;
  const long u = (long)t->st.update;  // completed updates; this is update u + 1
  HB_TRY(ctx->be->zero(ctx, t->grads, sizeof(float) * t->model.layout.total));
  double loss = 0, samples = 0;
  long sample_size = 0;
  hb_log_sums s;
  memset(&s, 0, sizeof s);
  const int W = t->comm.world, R = t->comm.rank, F = t->cfg.optimization.update_freq;
  int overlapped = 0;
  for (int k = 0; k < F; k++) {
    const hb_batch *b;
    HB_TRY(loader_next_batch(t->train, &b));
    // Overlap (docs/distributed.md): the last micro-batch's backward reports each layer's range as
    // final and its buckets are all-reduced meanwhile; earlier micro-batches only accumulate. A
    // padding batch has no backward: its rank marks the ranges in the same order at once.
    if (t->overlap && k == F - 1) {
      t->comm.what = "gradient all-reduce (overlapped)";
      HB_TRY(comm_allreduce_async_begin(&t->comm, &t->ar, t->grads, t->model.layout.total, &t->ctx));
      overlapped = 1;
      t->ar_on = !b->is_pad;
      if (b->is_pad && model_grad_ready_all(&t->model, on_grad_ready, t)) {
        comm_allreduce_async_free(&t->ar);
        return hb_fail_prefix("update %ld", u + 1);
      }
    }
    if (b->is_pad) continue;   // a repeat that only evens out the ranks (fairseq's dummy batch): no loss
    micro_result r;
    // Rank R's local batch k of this update is global micro-batch k W + R of one process with
    // update_freq x W (the loader deals global batches round-robin): the same batch, the same seeds.
    const uint64_t gk = (uint64_t)k * (uint64_t)W + (uint64_t)R;
    uint64_t ms = train_seed3(t->st.seed, TAG_MASK, (uint64_t)u, gk);
    uint64_t ds = train_seed3(t->st.seed, TAG_DROPOUT, (uint64_t)u, gk);
    const int rc_micro = run_micro(t, b, 1, ms, ds, &r);
    t->ar_on = 0;
    if (rc_micro) {
      if (overlapped) comm_allreduce_async_free(&t->ar);   // the caller aborts the job
      return hb_fail_prefix("update %ld, batch (epoch %lld, %lld)", u + 1, (long long)b->epoch, (long long)b->index);
    }
    loss += r.loss;
    sample_size += r.count_m;
    samples += (double)b->n_samples;
    for (int j = 0; j < t->model.cfg.num_label_sets; j++) {
      s.loss_m += r.pred.loss_m[j];
      s.loss_u += r.pred.loss_u[j];
      s.correct_m += (double)r.pred.correct_m[j] / t->model.cfg.num_label_sets;
      s.correct_u += (double)r.pred.correct_u[j] / t->model.cfg.num_label_sets;
    }
    s.count_m += (double)r.pred.count_m;
    s.count_u += (double)r.pred.count_u;
    s.topic_ce += r.topic.ce_sum;
    s.topic_n += (double)r.topic.count;
    s.topic_correct += (double)r.topic.correct;
  }
  loader_position(t->train, &t->st.pos);
  if (W > 1) {
    // Gradient sum over ranks (buckets of the flat buffer; ZeRO: each rank only needs its range)
    // and the global statistics: the loss is normalised by the masked frames of ALL ranks.
    const double tc = train_now_s();
    double red[13] = {loss, (double)sample_size, samples, s.loss_m, s.loss_u, s.correct_m, s.correct_u,
                      s.count_m, s.count_u, s.topic_ce, s.topic_n, s.topic_correct, 0};
    // NCCL runs on its own stream: the backward pass must have finished on the ops' stream (the
    // overlapped buckets wait on events instead). t_comm counts the exposed time only.
    if (!overlapped && t->comm.kind == HB_COMM_NCCL && ctx->be->sync && ctx->be->sync(ctx))
      return hb_fail_prefix("update %ld", u + 1);
    if (!overlapped) t->comm.what = "gradient all-reduce";
    int rc = overlapped ? comm_allreduce_async_wait(&t->ar)
             : t->zero  ? comm_reduce_scatter_f32(&t->comm, t->grads, t->zoff)
                        : comm_allreduce_f32(&t->comm, t->grads, t->model.layout.total);
    t->comm.what = "loss statistics all-reduce";
    if (!rc) rc = comm_allreduce_f64(&t->comm, red, 12);
    if (rc) return hb_fail_prefix("update %ld", u + 1);
    loss = red[0]; sample_size = (long)red[1]; samples = red[2];
    s.loss_m = red[3]; s.loss_u = red[4]; s.correct_m = red[5]; s.correct_u = red[6];
    s.count_m = red[7]; s.count_u = red[8]; s.topic_ce = red[9]; s.topic_n = red[10]; s.topic_correct = red[11];
    t->t_comm += train_now_s() - tc;
  }
  // Test hook (docs/training.md): HUBERT_TEST_NAN_FROM_UPDATE=n makes the loss of updates >= n NaN.
  const char *nan_from = getenv("HUBERT_TEST_NAN_FROM_UPDATE");
  if (nan_from && *nan_from && u + 1 >= atol(nan_from)) loss = NAN;
  const double lr = sched_lr(&t->sched, u);
  *lr_out = lr;
  t->st.lr = lr;
  hb_optim_stats os = {NAN, 1, 1};
  const int finite = isfinite(loss) && sample_size > 0;
  if (finite && t->zero) {
    const double tc = train_now_s();
    if (zero_step(t, 1.0 / (double)sample_size, lr, &os)) return hb_fail_prefix("update %ld", u + 1);
    t->t_comm += train_now_s() - tc;
  } else if (finite) {
    HB_TRY(optim_step(&t->opt, t->model.params, t->grads, 1.0 / (double)sample_size, lr,
                      t->cfg.optimization.clip_norm, &os));
  }
  t->st.update++;
  s.audio_s = samples / t->sample_rate;
  s.updates = 1;
  if (!finite || os.skipped) {
    t->st.nan_run++;
    t->st.nan_total++;
    s.skipped = 1;
    acc->skipped += 1;
    acc->updates += 1;
    acc->audio_s += s.audio_s;
    if (t->st.nan_run >= t->cfg.common.max_nan_updates)
      return hb_fail("training stopped at update %lld: %lld non-finite updates in a row (loss %g, grad norm %g; "
                     "common.max_nan_updates = %d). Lower optimization.lr, raise lr_scheduler.warmup_updates or "
                     "set optimization.clip_norm",
                     (long long)t->st.update, (long long)t->st.nan_run, loss, os.grad_norm,
                     t->cfg.common.max_nan_updates);
    return 0;
  }
  t->st.nan_run = 0;
  s.loss = loss;
  s.gnorm = os.grad_norm;
  acc->loss += s.loss; acc->loss_m += s.loss_m; acc->loss_u += s.loss_u; acc->topic_ce += s.topic_ce;
  acc->gnorm += s.gnorm; acc->audio_s += s.audio_s; acc->count_m += s.count_m; acc->count_u += s.count_u;
  acc->correct_m += s.correct_m; acc->correct_u += s.correct_u; acc->topic_n += s.topic_n;
  acc->topic_correct += s.topic_correct; acc->updates += 1;
  return 0;
}

// ---- validation: the whole valid split, eval mode, masks from (seed, TAG_VALID, batch) ----

int trainer_validate(trainer *t, hb_valid_result *v) {
  memset(v, 0, sizeof *v);
  if (!t->valid) return 0;
  int64_t n;
  HB_TRY(loader_epoch_batches(t->valid, 1, &n));
  hb_loader_pos p0 = {1, 0};
  HB_TRY(loader_seek(t->valid, p0));
  double loss = 0;
  const int W = t->comm.world, R = t->comm.rank;
  for (int64_t i = 0; i < n; i++) {
    const hb_batch *b;
    HB_TRY(loader_next_batch(t->valid, &b));
    if (b->is_pad) continue;   // a repeat that only evens out the ranks
    micro_result r;
    // mask stream of the global batch i W + R (the loader deals batches round-robin)
    if (run_micro(t, b, 0, train_seed3(t->st.seed, TAG_VALID, (uint64_t)(i * W + R), 0), 0, &r))
      return hb_fail_prefix("validation batch %lld", (long long)i);
    loss += r.loss;
    for (int j = 0; j < t->model.cfg.num_label_sets; j++) {
      v->loss_m += r.pred.loss_m[j];
      v->correct_m += (double)r.pred.correct_m[j] / t->model.cfg.num_label_sets;
    }
    v->count_m += (double)r.pred.count_m;
    v->topic_ce += r.topic.ce_sum;
    v->topic_n += (double)r.topic.count;
    v->topic_correct += (double)r.topic.correct;
    v->utts += b->B;
  }
  if (W > 1) {
    double red[8] = {loss, v->loss_m, v->correct_m, v->count_m, v->topic_ce, v->topic_n, v->topic_correct,
                     (double)v->utts};
    t->comm.what = "validation all-reduce";
    HB_TRY(comm_allreduce_f64(&t->comm, red, 8));
    loss = red[0]; v->loss_m = red[1]; v->correct_m = red[2]; v->count_m = red[3];
    v->topic_ce = red[4]; v->topic_n = red[5]; v->topic_correct = red[6]; v->utts = (long)red[7];
  }
  v->loss = v->count_m > 0 ? loss / v->count_m : NAN;
  v->ran = 1;
  return 0;
}

// ---- set-up ----

// Files matching DIR/PREFIX*.h5, sorted (glob sorts).

static int open_loader(trainer *t, glob_t *g, int valid, hb_loader **out) {
  const hb_train_config *c = &t->cfg;
  const char *labels[HB_MAX_LABEL_SETS], *topics[1];
  for (int i = 0; i < c->task.labels.n; i++) labels[i] = c->task.labels.s[i];
  topics[0] = c->topic.name;
  hb_loader_opts o;
  memset(&o, 0, sizeof o);
  o.paths = (const char *const *)g->gl_pathv;
  o.n_paths = (int)g->gl_pathc;
  o.labels = labels;
  o.n_labels = c->task.labels.n;
  o.topics = topics;
  o.n_topics = t->topic_on ? 1 : 0;
  o.max_tokens = c->dataset.max_tokens;
  o.min_sample_size = c->task.min_sample_size;
  o.max_sample_size = c->task.max_sample_size;
  o.pad_audio = c->task.pad_audio;
  o.random_crop = valid ? 0 : c->task.random_crop;
  o.normalize = c->task.normalize;
  o.shuffle = !valid;
  o.seed = (uint64_t)c->common.seed;
  o.rank = t->comm.rank;
  o.world = t->comm.world;
  o.num_workers = valid ? 0 : c->dataset.num_workers;
  if (!valid) o.start = t->st.pos;
  if (loader_init(&o, out)) return hb_fail_prefix("%s loader (%s)", valid ? "valid" : "train", c->task.data);
  return 0;
}

// ZeRO-1: keep only this rank's range [lo, hi) of the moments; the segments are clipped to the
// range and shifted to start at 0, so optim_step(opt, params + lo, grads + lo, ...) updates it.
static int zero_shard(trainer *t, const hb_adamw_hparams *hp) {
  const int W = t->comm.world;
  t->zoff = hb_malloc(sizeof(size_t) * (size_t)(W + 1));
  if (!t->zoff) return -1;
  comm_partition(t->model.layout.total, W, 64, t->zoff);
  const size_t lo = t->zoff[t->comm.rank], hi = t->zoff[t->comm.rank + 1];
  hb_adamw full = t->opt;
  hb_optim_segment *seg = hb_malloc(sizeof *seg * (size_t)(full.nseg + 1));
  if (!seg) return -1;
  int n = 0;
  for (int i = 0; i < full.nseg; i++) {
    size_t a = full.seg[i].offset, b = a + full.seg[i].numel;
    if (a < lo) a = lo;
    if (b > hi) b = hi;
    if (a < b) {
      seg[n] = full.seg[i];
      seg[n].offset = a - lo;
      seg[n].numel = b - a;
      n++;
    }
  }
  int rc = optim_init(&t->opt, hi - lo, seg, n, hp);
  free(seg);
  if (rc) {
    t->opt = full;
    return -1;
  }
  // The shard's moments live where the full ones did (GPU: device memory, copied on the device).
  hb_ctx *ctx = &t->ctx;
  if (full.ctx && optim_use_backend(&t->opt, full.ctx)) rc = -1;
  if (!rc && hi > lo)
    rc = ctx->be->copy(ctx, t->opt.m, full.m + lo, sizeof(float) * (hi - lo)) ||
                 ctx->be->copy(ctx, t->opt.v, full.v + lo, sizeof(float) * (hi - lo))
             ? -1 : 0;
  if (rc) {
    optim_free(&t->opt);
    t->opt = full;
    return hb_fail_prefix("ZeRO-1 optimizer shard");
  }
  t->opt.step = full.step;
  t->opt.skipped = full.skipped;
  optim_free(&full);
  return 0;
}

int trainer_full_optim(trainer *t, hb_adamw *full, int *owned) {
  *owned = 0;
  if (!t->zero) {
    *full = t->opt;
    return 0;
  }
  hb_adamw_hparams hp = train_config_adamw(&t->cfg);
  HB_TRY(optim_init_layout(full, &t->model.layout, &hp));
  *owned = 1;
  // Gathered where the shards live (GPU: device buffers for NCCL; optim_save stages to the host).
  hb_ctx *ctx = &t->ctx;
  const size_t lo = t->zoff[t->comm.rank], n = t->zoff[t->comm.rank + 1] - lo;
  int rc = t->opt.ctx ? optim_use_backend(full, t->opt.ctx) : 0;
  if (!rc && n)
    rc = ctx->be->copy(ctx, full->m + lo, t->opt.m, sizeof(float) * n) ||
                 ctx->be->copy(ctx, full->v + lo, t->opt.v, sizeof(float) * n)
             ? -1 : 0;
  if (!rc && t->comm.kind == HB_COMM_NCCL && ctx->be->sync) rc = ctx->be->sync(ctx);
  full->step = t->opt.step;
  full->skipped = t->opt.skipped;
  t->comm.what = "optimizer-state all-gather (checkpoint)";
  if (rc || comm_allgather_f32(&t->comm, full->m, t->zoff) || comm_allgather_f32(&t->comm, full->v, t->zoff)) {
    optim_free(full);
    *owned = 0;
    return -1;
  }
  return 0;
}

int trainer_setup(trainer *t, const hb_train_config *cfg, const hb_train_args *args) {
  memset(t, 0, sizeof *t);
  t->cfg = *cfg;
  const hb_train_config *c = &t->cfg;
  train_state_init(&t->st, (uint64_t)c->common.seed);
  t->topic_on = c->topic.name[0] && c->topic.weight > 0;
  if (c->task.labels.n < 1) return hb_fail("task.labels: at least one label set is needed for masked prediction");
  // Ranks first (launcher environment; a single process without one).
  hb_comm_opts co = {NULL, c->common.device, c->distributed_training.timeout,
                     (size_t)(c->distributed_training.bucket_cap_mb * 1048576.0), NULL};
  HB_TRY(comm_init(&t->comm, &co));
  t->have_comm = 1;
  t->zero = c->distributed_training.zero && t->comm.world > 1;
  t->overlap = c->distributed_training.overlap_comm && t->comm.world > 1 && !t->zero;
  if (t->overlap) HB_TRY(comm_async_check(&t->comm));
  t->st.world_size = t->comm.world;
  // Resume point first: the loader starts at the saved position.
  HB_TRY(checkpoint_resolve(c->checkpoint.save_dir, args->resume ? args->resume : "auto", t->resume_dir, &t->resumed));
  if (t->resumed) {
    HB_TRY(checkpoint_read_state(t->resume_dir, &t->st));
    if (t->st.seed != (uint64_t)c->common.seed)
      return hb_fail("--resume %s: the checkpoint was trained with common.seed %llu, the config says %ld", t->resume_dir,
                     (unsigned long long)t->st.seed, c->common.seed);
    // pos.batch counts the batches of one rank: W_old x batch global batches were consumed.
    const int64_t wold = t->st.world_size > 0 ? t->st.world_size : 1, W = t->comm.world;
    if (wold != W) {
      const int64_t global = t->st.pos.batch * wold;
      if (global % W)
        return hb_fail("--resume %s: the run used %lld ranks and stopped after %lld global batches of epoch %lld, "
                       "which %lld ranks cannot split evenly; resume with %lld ranks (or a divisor of the count)",
                       t->resume_dir, (long long)wold, (long long)global, (long long)t->st.pos.epoch, (long long)W,
                       (long long)wold);
      t->st.pos.batch = global / W;
    }
    t->st.world_size = W;
  }
  glob_t gt, gv;
  HB_TRY(train_find_shards(c->task.data, "train", &gt, 1));
  int rc = open_loader(t, &gt, 0, &t->train);
  globfree(&gt);
  HB_TRY(rc);
  HB_TRY(train_find_shards(c->task.data, c->dataset.valid_subset, &gv, 0));
  rc = gv.gl_pathc ? open_loader(t, &gv, 1, &t->valid) : 0;
  globfree(&gv);
  HB_TRY(rc);
  t->sample_rate = loader_sample_rate(t->train);
  if (t->sample_rate != c->task.sample_rate)
    return hb_fail("task.sample_rate %d differs from the shards' %d Hz (%s)", c->task.sample_rate, t->sample_rate, c->task.data);

  // Model: the config's architecture + label/topic K from the shards.
  hb_config mc;
  HB_TRY(train_config_model(c, &mc));
  const double want_rate = c->task.label_rate > 0 ? c->task.label_rate : c->model.label_rate;
  for (int j = 0; j < c->task.labels.n; j++) {
    mc.label_k[j] = loader_label_k(t->train, j);
    t->label_rate[j] = loader_label_rate(t->train, j);
    if (want_rate > 0 && fabs(want_rate - t->label_rate[j]) > 1e-6)
      return hb_fail("label set '%s' is at %g Hz in the shards but the config says %g Hz (task.label_rate / "
                     "model.label_rate)", c->task.labels.s[j], t->label_rate[j], want_rate);
  }
  if (t->topic_on) {
    int k = loader_topic_k(t->train, 0);
    if (c->topic.k > 0 && c->topic.k != k)
      return hb_fail("topic.k = %d but the shards' topic set '%s' has k = %d", c->topic.k, c->topic.name, k);
    mc.topic_k = k;
  }
  HB_TRY(ops_ctx_init(&t->ctx, c->common.device ? "cuda" : "cpu", args->threads));
  t->have_ctx = 1;
  if (ops_check_backward(&t->ctx)) return hb_fail_prefix("common.device");
  if (ops_set_precision(&t->ctx, c->common.bf16 ? "bf16" : "fp32")) return hb_fail_prefix("common.bf16");
  const char *from = t->resumed ? t->resume_dir : args->init_model;
  if (from) {
    if (model_load(&t->model, from, &t->ctx)) return hb_fail_prefix("model from %s", from);
    t->have_model = 1;
    hb_param_layout want;
    HB_TRY(params_layout_init(&want, &mc));
    size_t tot = want.total;
    params_layout_free(&want);
    if (tot != t->model.layout.total)
      return hb_fail("model %s does not match the config's architecture (%zu vs %zu parameter floats, label/topic K "
                     "included)", from, t->model.layout.total, tot);
    // Regularisation and masking come from the trainer config, not from the folder's config.json.
    hb_config *mcl = &t->model.cfg;
    mcl->hidden_dropout = mc.hidden_dropout;
    mcl->attention_dropout = mc.attention_dropout;
    mcl->activation_dropout = mc.activation_dropout;
    mcl->feat_proj_dropout = mc.feat_proj_dropout;
    mcl->layerdrop = mc.layerdrop;
    mcl->mask_time_prob = mc.mask_time_prob;
    mcl->mask_time_length = mc.mask_time_length;
    mcl->topic_layer = mc.topic_layer;
  } else {
    HB_TRY(model_init(&t->model, &mc, &t->ctx));
    t->have_model = 1;
    HB_TRY(model_init_random(&t->model, (uint64_t)c->common.seed));
  }
  // Every rank starts from rank 0's parameters (fresh init, --init or the checkpoint alike).
  t->comm.what = "parameter broadcast";
  HB_TRY(comm_broadcast(&t->comm, t->model.params, sizeof(float) * t->model.layout.total, 0));
  t->grads = t->ctx.be->alloc(&t->ctx, sizeof(float) * t->model.layout.total);
  if (!t->grads) return hb_fail_prefix("gradient buffer");
  params_bind(&t->gview, &t->model.layout, t->grads);
  hb_adamw_hparams hp = train_config_adamw(c);
  HB_TRY(optim_init_layout(&t->opt, &t->model.layout, &hp));
  t->have_opt = 1;
  HB_TRY(optim_use_backend(&t->opt, &t->ctx));  // moments next to the parameters (CPU: host)
  if (t->resumed) {
    char p[2 * HB_CFG_PATH_LEN];
    snprintf(p, sizeof p, "%s/trainer_state.safetensors", t->resume_dir);
    if (optim_load(&t->opt, p)) return hb_fail_prefix("--resume %s", t->resume_dir);
  }
  if (t->zero) HB_TRY(zero_shard(t, &hp));
  train_config_schedule(c, &t->sched);
  heads_ws_init(&t->ws, &t->ctx);
  t->have_ws = 1;
  heads_pred_opts_default(&t->pred_opts);
  t->pred_opts.masked_weight = (float)c->criterion.pred_masked_weight;
  t->pred_opts.nomask_weight = (float)c->criterion.pred_nomask_weight;
  t->pred_opts.logit_temp = (float)c->model.logit_temp;
  return 0;
}

void trainer_free(trainer *t) {
  if (t->train) loader_free(t->train);
  if (t->valid) loader_free(t->valid);
  if (t->have_ws) heads_ws_free(&t->ws);
  if (t->have_opt) optim_free(&t->opt);
  if (t->have_arena) train_arena_free(&t->arena, &t->model);
  hb_ctx *ctx = &t->ctx;
  float *dev[] = {t->grads, t->wave, t->dx_top, t->dx_topic, t->d_feat};
  for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
    if (dev[i]) ctx->be->free(ctx, dev[i]);
  if (t->have_model) model_free(&t->model);
  free(t->lens);
  free(t->frames);
  free(t->valid_len);
  free(t->topics);
  free(t->mask);
  for (int s = 0; s < HB_MAX_LABEL_SETS; s++) free(t->lab[s]);
  if (t->have_ctx) ops_ctx_free(&t->ctx);
  free(t->zoff);
  if (t->have_comm) comm_free(&t->comm);
  memset(t, 0, sizeof *t);
}
