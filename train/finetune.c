// `hubert finetune`: set-up (shards, transcripts, vocabulary, model + CTC head), one batch, one
// update and the scoring of a split. The loop is in finetune_loop.c; semantics in finetune.h.
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/rng.h"
#include "data_prep/shard.h"
#include "models/hubert_mask.h"
#include "train/train_util.h"
#include "train/finetune_internal.h"

enum { TAG_MASK = 0x6d61736b, TAG_DROPOUT = 0x64726f70, TAG_FINAL = 0x66696e6c };
static const char *split_names[FT_SPLITS] = {"train", "valid", "test"};

// ---- transcripts ----

typedef struct {
  char **tok;
  int n;
} utt_tokens;

// Tokens of every kept utterance of loader L (shards opened once each, in loader order).
static int read_tokens(ft_state *t, int split, int kind, utt_tokens **out, int64_t *n_out) {
  hb_loader *L = t->ld[split];
  const int64_t n = loader_num_utts(L);
  utt_tokens *ut = hb_calloc((size_t)(n > 0 ? n : 1), sizeof *ut);
  if (!ut) return -1;
  hb_shard *sh = NULL;
  const char *sh_path = NULL;
  int rc = -1;
  int64_t with_field = 0;
  for (int64_t u = 0; u < n; u++) {
    const char *path;
    int64_t idx, len;
    if (loader_utt_info(L, u, &path, &idx, &len)) goto done;
    if (!sh_path || strcmp(sh_path, path)) {
      if (sh) shard_close(sh);
      sh = NULL;
      if (shard_open(path, &sh)) goto done;
      sh_path = path;
    }
    const char *s = kind == HB_CTC_PHN ? shard_phones(sh, idx) : shard_text(sh, idx);
    if (!s) {
      hb_fail("%s: no /%s dataset: task.labels [%s] needs %s (write the shards with hubert shard --meta meta.tsv)", path,
              kind == HB_CTC_PHN ? "phones" : "text", ctc_kind_name(kind),
              kind == HB_CTC_PHN ? "phone transcripts" : "transcripts");
      goto done;
    }
    with_field++;
    if (ctc_tokenize(kind, s, &ut[u].tok, &ut[u].n)) {
      hb_fail_prefix("%s, utterance %s", path, shard_utt_id(sh, idx));
      goto done;
    }
  }
  rc = 0;
done:
  if (sh) shard_close(sh);
  if (rc) {
    for (int64_t u = 0; u < n; u++) ctc_tokens_free(ut[u].tok, ut[u].n);
    free(ut);
    return -1;
  }
  *out = ut;
  *n_out = n;
  return 0;
}

static void free_tokens(utt_tokens *ut, int64_t n) {
  for (int64_t u = 0; u < n; u++) ctc_tokens_free(ut[u].tok, ut[u].n);
  free(ut);
}

static int encode_targets(const hb_ctc_vocab *v, const utt_tokens *ut, int64_t n, ft_targets *tg) {
  memset(tg, 0, sizeof *tg);
  tg->n = n;
  tg->off = hb_calloc((size_t)n + 1, sizeof(int64_t));
  if (!tg->off) return -1;
  for (int64_t u = 0; u < n; u++) tg->off[u + 1] = tg->off[u] + ut[u].n;
  tg->ids = hb_malloc(sizeof(int) * (size_t)(tg->off[n] > 0 ? tg->off[n] : 1));
  if (!tg->ids) return -1;
  for (int64_t u = 0; u < n; u++) {
    ctc_vocab_encode(v, ut[u].tok, ut[u].n, tg->ids + tg->off[u]);
    if (!ut[u].n) tg->missing++;
  }
  return 0;
}

// ---- set-up ----

static int open_split(ft_state *t, int split, const char *prefix, int required) {
  const hb_train_config *c = &t->cfg;
  if (!prefix[0]) return 0;
  glob_t g;
  HB_TRY(train_find_shards(c->task.data, prefix, &g, required));
  if (!g.gl_pathc) return 0;
  hb_loader_opts o;
  memset(&o, 0, sizeof o);
  o.paths = (const char *const *)g.gl_pathv;
  o.n_paths = (int)g.gl_pathc;
  o.max_tokens = c->dataset.max_tokens;
  o.min_sample_size = c->task.min_sample_size;
  o.max_keep_size = c->task.max_sample_size;  // CTC needs whole utterances: longer ones are skipped
  o.pad_audio = 1;
  o.normalize = c->task.normalize;
  o.shuffle = split == FT_TRAIN;
  o.seed = (uint64_t)c->common.seed;
  o.world = 1;
  o.num_workers = split == FT_TRAIN ? c->dataset.num_workers : 0;
  if (split == FT_TRAIN) o.start = t->st.pos;
  int rc = loader_init(&o, &t->ld[split]);
  globfree(&g);
  if (rc) return hb_fail_prefix("%s loader (%s/%s*.h5)", split_names[split], c->task.data, prefix);
  return 0;
}

// The model: resumed checkpoint, or w2v_path + a new CTC head (pretraining heads dropped).
static int setup_model(ft_state *t, const hb_train_config *c) {
  if (t->resumed) {
    if (model_load(&t->model, t->resume_dir, &t->ctx)) return hb_fail_prefix("--resume %s", t->resume_dir);
    t->have_model = 1;
    hb_ctc_vocab old;
    int found;
    HB_TRY(ctc_vocab_load(&old, t->resume_dir, &found));
    int same = found && ctc_vocab_equal(&old, &t->vocab);
    int on = old.n;
    ctc_vocab_free(&old);
    if (!same)
      return hb_fail("--resume %s: mismatched vocabularies: the checkpoint's CTC vocabulary (%d symbols%s) differs from "
                     "the one built from the train split (%d symbols, task.labels [%s]); use another checkpoint.save_dir "
                     "or --resume none",
                     t->resume_dir, on, found ? "" : ", none saved", t->vocab.n, ctc_kind_name(t->vocab.kind));
    if (t->model.cfg.ctc_vocab != t->vocab.n) return hb_fail("--resume %s: CTC head has %d outputs, vocabulary %d", t->resume_dir, t->model.cfg.ctc_vocab, t->vocab.n);
    return 0;
  }
  const char *src = c->model.w2v_path;
  if (!src[0]) return hb_fail("model.w2v_path: give the pretrained model folder (e.g. model.w2v_path=DIR)");
  if (!file_is_dir(src)) return hb_fail("model.w2v_path: '%s' is not a model folder (no such directory)", src);
  hb_model pre;
  if (model_load(&pre, src, &t->ctx)) return hb_fail_prefix("model.w2v_path %s", src);
  if (pre.cfg.ctc_vocab > 0) {  // already has a CTC head: continue only with the same vocabulary
    hb_ctc_vocab old;
    int found;
    if (ctc_vocab_load(&old, src, &found)) { model_free(&pre); return hb_fail_prefix("model.w2v_path"); }
    int same = found && ctc_vocab_equal(&old, &t->vocab), pv = pre.cfg.ctc_vocab;
    ctc_vocab_free(&old);
    if (!same) {
      model_free(&pre);
      return hb_fail("model.w2v_path %s: mismatched vocabularies: its CTC head (%d outputs%s) does not match the "
                     "vocabulary of task.labels [%s] built from the train split (%d symbols)",
                     src, pv, found ? "" : ", no vocabulary saved", ctc_kind_name(t->vocab.kind), t->vocab.n);
    }
  }
  hb_config mc = pre.cfg;
  mc.ctc_vocab = t->vocab.n;
  mc.final_dim = 0;
  mc.num_label_sets = 0;
  mc.untie_final_proj = 0;
  mc.topic_k = mc.topic_layer = mc.topic_hidden = 0;
  int rc = model_init(&t->model, &mc, &t->ctx);
  if (!rc) {
    t->have_model = 1;
    rc = model_init_random(&t->model, (uint64_t)c->common.seed);
  }
  if (!rc && !c->model.no_pretrained_weights) {
    for (int i = 0; i < t->model.layout.n && !rc; i++) {
      const hb_param_info *d = &t->model.layout.info[i];
      int j = params_find(&pre.layout, d->name);
      if (j < 0) continue;  // the new CTC head (or an absent optional tensor): keeps its init
      const hb_param_info *s = &pre.layout.info[j];
      if (s->numel != d->numel) { rc = hb_fail("model.w2v_path %s: tensor %s has %zu values, expected %zu", src, d->name, s->numel, d->numel); break; }
      rc = t->ctx.be->copy(&t->ctx, t->model.params + d->offset, pre.params + s->offset, sizeof(float) * d->numel);
    }
  }
  model_free(&pre);
  return rc;
}

int ft_setup(ft_state *t, const hb_train_config *cfg, const hb_finetune_args *args) {
  memset(t, 0, sizeof *t);
  t->cfg = *cfg;
  const hb_train_config *c = &t->cfg;
  train_state_init(&t->st, (uint64_t)c->common.seed);
  if (c->common.device) return hb_fail("common.device: fine-tuning runs on the CPU only for now");
  if (c->task.labels.n != 1) return hb_fail("task.labels: fine-tuning takes one label set, ltr or phn (got %d)", c->task.labels.n);
  int kind;
  HB_TRY(ctc_kind_from_name(c->task.labels.s[0], &kind));
  if (c->checkpoint.best_checkpoint_metric == 2 && kind != HB_CTC_LTR)
    return hb_fail("checkpoint.best_checkpoint_metric: cer needs task.labels [ltr] (phones: per or wer)");
  if (c->checkpoint.best_checkpoint_metric == 3 && kind != HB_CTC_PHN)
    return hb_fail("checkpoint.best_checkpoint_metric: per needs task.labels [phn] (characters: cer or wer)");
  HB_TRY(checkpoint_resolve(c->checkpoint.save_dir, args->resume ? args->resume : "auto", t->resume_dir, &t->resumed));
  if (t->resumed) {
    HB_TRY(checkpoint_read_state(t->resume_dir, &t->st));
    if (t->st.seed != (uint64_t)c->common.seed)
      return hb_fail("--resume %s: trained with common.seed %llu, the config says %ld", t->resume_dir,
                     (unsigned long long)t->st.seed, c->common.seed);
  }
  HB_TRY(open_split(t, FT_TRAIN, c->dataset.train_subset, 1));
  HB_TRY(open_split(t, FT_VALID, c->dataset.valid_subset, 0));
  HB_TRY(open_split(t, FT_TEST, c->dataset.test_subset, 0));
  t->sample_rate = loader_sample_rate(t->ld[FT_TRAIN]);
  if (t->sample_rate != c->task.sample_rate)
    return hb_fail("task.sample_rate %d differs from the shards' %d Hz (%s)", c->task.sample_rate, t->sample_rate, c->task.data);

  // Transcripts -> vocabulary (train) -> targets of every split.
  for (int s = 0; s < FT_SPLITS; s++) {
    if (!t->ld[s]) continue;
    utt_tokens *ut;
    int64_t n;
    HB_TRY(read_tokens(t, s, kind, &ut, &n));
    int rc = 0;
    if (s == FT_TRAIN) {
      char ***toks = hb_malloc(sizeof(char **) * (size_t)(n > 0 ? n : 1));
      int *nt = hb_malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
      if (!toks || !nt) rc = -1;
      for (int64_t u = 0; !rc && u < n; u++) {
        toks[u] = ut[u].tok;
        nt[u] = ut[u].n;
      }
      if (!rc) rc = ctc_vocab_build(&t->vocab, kind, (char **const *)toks, nt, (int)n);
      free(toks);
      free(nt);
    }
    if (!rc) rc = encode_targets(&t->vocab, ut, n, &t->tg[s]);
    free_tokens(ut, n);
    HB_TRY(rc);
    if (t->tg[s].missing == t->tg[s].n)
      return hb_fail("%s split (%s/%s*.h5): none of its %lld utterances has a %s transcript (task.labels [%s])", split_names[s],
                     c->task.data, s == FT_TRAIN ? c->dataset.train_subset : s == FT_VALID ? c->dataset.valid_subset : c->dataset.test_subset,
                     (long long)t->tg[s].n, kind == HB_CTC_PHN ? "phone" : "text", ctc_kind_name(kind));
  }
  if (t->vocab.n <= (kind == HB_CTC_LTR ? 3 : 2)) return hb_fail("the train split's transcripts give no symbols");

  HB_TRY(ops_ctx_init(&t->ctx, "cpu", args->threads));
  t->have_ctx = 1;
  HB_TRY(setup_model(t, c));
  hb_config *mc = &t->model.cfg;  // regularisation and masking from the fine-tuning config
  mc->hidden_dropout = c->model.dropout;
  mc->attention_dropout = c->model.attention_dropout;
  mc->activation_dropout = c->model.activation_dropout;
  mc->feat_proj_dropout = c->model.dropout_input;
  mc->layerdrop = c->model.layerdrop;
  mc->mask_time_prob = c->model.apply_mask ? c->model.mask_prob : 0;
  mc->mask_time_length = c->model.mask_length;

  t->grads = t->ctx.be->alloc(&t->ctx, sizeof(float) * t->model.layout.total);
  if (!t->grads) return hb_fail_prefix("gradient buffer");
  params_bind(&t->gview, &t->model.layout, t->grads);
  hb_adamw_hparams hp = train_config_adamw(c);
  HB_TRY(optim_init_layout(&t->opt, &t->model.layout, &hp));
  t->have_opt = 1;
  const char *head[2] = {"ctc_head.weight", "ctc_head.bias"};
  for (int i = 0; i < 2; i++) {
    int j = params_find(&t->model.layout, head[i]);
    if (j < 0) return hb_fail("internal: the model has no %s", head[i]);
    const hb_param_info *p = &t->model.layout.info[j];
    for (int k = 0; k < t->opt.nseg; k++)
      if (t->opt.seg[k].offset == p->offset) t->head_seg[t->n_head_seg++] = t->opt.seg[k];
  }
  if (t->n_head_seg != 2) return hb_fail("internal: CTC head segments not found in the optimizer");
  if (t->resumed) {
    char p[2 * HB_CFG_PATH_LEN];
    snprintf(p, sizeof p, "%s/trainer_state.safetensors", t->resume_dir);
    if (optim_load(&t->opt, p)) return hb_fail_prefix("--resume %s", t->resume_dir);
  }
  train_config_schedule(c, &t->sched);
  heads_ws_init(&t->ws, &t->ctx);
  t->have_ws = 1;
  return 0;
}

void ft_free(ft_state *t) {
  for (int s = 0; s < FT_SPLITS; s++) {
    if (t->ld[s]) loader_free(t->ld[s]);
    free(t->tg[s].off);
    free(t->tg[s].ids);
  }
  ctc_vocab_free(&t->vocab);
  if (t->have_ws) heads_ws_free(&t->ws);
  if (t->have_opt) optim_free(&t->opt);
  if (t->have_arena) train_arena_free(&t->arena, &t->model);
  float *dev[] = {t->grads, t->wave, t->dx, t->hd};
  for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
    if (dev[i]) t->ctx.be->free(&t->ctx, dev[i]);
  if (t->have_model) model_free(&t->model);
  void *host[] = {t->hwave, t->logits, t->lens, t->frames, t->tgt, t->tgt_len, t->rows, t->hyp, t->hyp_len, t->mask, t->cmask};
  for (size_t i = 0; i < sizeof host / sizeof host[0]; i++) free(host[i]);
  if (t->have_ctx) ops_ctx_free(&t->ctx);
  memset(t, 0, sizeof *t);
}

int ft_save_vocab(const char *dir, void *ud) { return ctc_vocab_save(&((ft_state *)ud)->vocab, dir); }

// ---- one batch ----

// Rows of b with a transcript (and, with zero_infinity, alignable: frames >= targets + repeats).
// train: gradients into t->grads (the trunk's too unless frozen); else logits are decoded and scored.
static int run_batch(ft_state *t, hb_model *m, int split, const hb_batch *b, int train, int frozen, uint64_t seed,
                     ft_sums *r) {
  const hb_config *c = &m->cfg;
  const ft_targets *tg = &t->tg[split];
  hb_ctx *ctx = &t->ctx;
  const int rf = config_receptive_field(c), H = c->hidden_size, NL = c->num_hidden_layers, V = c->ctc_vocab;
  HB_TRY(train_grow_host((void **)&t->rows, &t->rows_cap, sizeof(int) * (size_t)b->B));
  int Bk = 0, S = 0;
  long L = 0;
  for (int i = 0; i < b->B; i++) {
    const int64_t u = b->utt[i];
    const int tl = (int)(tg->off[u + 1] - tg->off[u]);
    if (tl == 0 || b->lengths[i] < rf) { r->skipped_rows++; continue; }
    int need = tl;
    for (int k = 1; k < tl; k++) need += tg->ids[tg->off[u] + k] == tg->ids[tg->off[u] + k - 1];
    if (t->cfg.criterion.zero_infinity && config_num_frames(c, b->lengths[i]) < need) { r->skipped_rows++; continue; }
    t->rows[Bk++] = i;
    if (tl > S) S = tl;
    if (b->lengths[i] > L) L = b->lengths[i];
  }
  if (!Bk) return 0;
  HB_TRY(train_grow_host((void **)&t->hwave, &t->hwave_cap, sizeof(float) * (size_t)Bk * L));
  HB_TRY(train_grow_host((void **)&t->lens, &t->lens_cap, sizeof(long) * Bk));
  HB_TRY(train_grow_host((void **)&t->frames, &t->frames_cap, sizeof(int) * Bk));
  HB_TRY(train_grow_host((void **)&t->tgt_len, &t->tgt_len_cap, sizeof(int) * Bk));
  HB_TRY(train_grow_host((void **)&t->tgt, &t->tgt_cap, sizeof(int) * (size_t)Bk * S));
  memset(t->tgt, 0, sizeof(int) * (size_t)Bk * S);
  for (int k = 0; k < Bk; k++) {
    const int i = t->rows[k];
    const int64_t u = b->utt[i];
    memcpy(t->hwave + (size_t)k * L, b->audio + (size_t)i * b->T, sizeof(float) * (size_t)L);  // zero-padded rows
    t->lens[k] = b->lengths[i];
    t->tgt_len[k] = (int)(tg->off[u + 1] - tg->off[u]);
    memcpy(t->tgt + (size_t)k * S, tg->ids + tg->off[u], sizeof(int) * (size_t)t->tgt_len[k]);
    r->ntok += t->tgt_len[k];
  }
  r->nutt += Bk;
  HB_TRY(train_arena_fit(&t->arena, &t->have_arena, &t->model, Bk, L));
  HB_TRY(train_grow_dev(&t->ctx, &t->wave, &t->wave_cap, (size_t)Bk * L, "finetune"));
  HB_TRY(ctx->be->upload(ctx, t->wave, t->hwave, sizeof(float) * (size_t)Bk * L));
  const int T = config_num_frames(c, L);
  const size_t BT = (size_t)Bk * T;
  // Masks (fine-tuning with apply_mask): time spans (min 2 per row, as fairseq) and channel spans.
  uint8_t *mask = NULL;
  hb_rng rng;
  rng_init(&rng, train_seed3(seed, TAG_MASK, 0, 0));
  for (int k = 0; k < Bk; k++) t->frames[k] = config_num_frames(c, t->lens[k]);
  if (train && t->cfg.model.apply_mask && t->cfg.model.mask_prob > 0) {
    HB_TRY(train_grow_host((void **)&t->mask, &t->mask_cap, BT));
    HB_TRY(mask_compute(t->mask, Bk, T, t->frames, t->cfg.model.mask_prob, t->cfg.model.mask_length, 2, &rng));
    mask = t->mask;
  }
  if (train && t->cfg.model.apply_mask && t->cfg.model.mask_channel_prob > 0) {
    HB_TRY(train_grow_host((void **)&t->cmask, &t->cmask_cap, (size_t)Bk * H));
    HB_TRY(mask_compute(t->cmask, Bk, H, NULL, t->cfg.model.mask_channel_prob, t->cfg.model.mask_channel_length, 0, &rng));
    train_arena_set_channel_mask(&t->arena, t->cmask);
  }
  hb_train_opts fo = {train, train_seed3(seed, TAG_DROPOUT, 0, 0)};
  int Tf;
  HB_TRY(model_forward_train(m, &t->arena, t->wave, t->lens, Bk, L, mask, t->frames, &Tf, &fo));
  if (Tf != T) return hb_fail("finetune: forward gave %d frames, expected %d", Tf, T);
  // Final dropout before the head: hd = dropout(hidden[NL]) (its backward: the same mask on dx).
  const float *x = t->arena.hidden[NL];
  const float pf = train ? (float)t->cfg.model.final_dropout : 0.0f;
  const uint64_t fseed = train_seed3(seed, TAG_FINAL, 0, 0);
  if (pf > 0) {
    HB_TRY(train_grow_dev(&t->ctx, &t->hd, &t->hd_cap, BT * H, "finetune"));
    HB_TRY(ctx->be->dropout(ctx, t->hd, x, BT * H, pf, fseed));
    x = t->hd;
  }
  const int trunk = train && !frozen;
  if (trunk) HB_TRY(train_grow_dev(&t->ctx, &t->dx, &t->dx_cap, BT * H, "finetune"));
  hb_ctc_opts co = {0, HB_CTC_BLANK};
  double loss = 0;
  HB_TRY(heads_ctc_loss(&t->ws, c, &m->p, train ? &t->gview : NULL, x, t->frames, t->tgt, t->tgt_len, Bk, T, S, &co,
                        trunk ? t->dx : NULL, &loss, NULL));
  r->loss += loss;
  if (!train) {  // greedy decoding and scoring
    HB_TRY(train_grow_host((void **)&t->logits, &t->logits_cap, sizeof(float) * BT * V));
    HB_TRY(train_grow_host((void **)&t->hyp, &t->hyp_cap, sizeof(int) * BT));
    HB_TRY(train_grow_host((void **)&t->hyp_len, &t->hyp_len_cap, sizeof(int) * Bk));
    HB_TRY(ctx->be->download(ctx, t->logits, t->ws.ctc_logits, sizeof(float) * BT * V));
    heads_ctc_greedy(t->logits, t->frames, Bk, T, V, HB_CTC_BLANK, t->hyp, t->hyp_len);
    for (int k = 0; k < Bk; k++)
      HB_TRY(ctc_score(&t->vocab, t->hyp + (size_t)k * T, t->hyp_len[k], t->tgt + (size_t)k * S, t->tgt_len[k], &r->err));
    return 0;
  }
  if (!trunk) return 0;
  if (pf > 0) HB_TRY(ctx->be->dropout(ctx, t->dx, t->dx, BT * H, pf, fseed));
  float *dh[HB_MAX_LAYERS + 1];
  memset(dh, 0, sizeof dh);
  dh[NL] = t->dx;
  return model_backward(m, &t->arena, dh, NULL, (float)t->cfg.model.feature_grad_mult, t->grads);
}

// ---- one update ----

int ft_update(ft_state *t, ft_sums *acc, double *lr_out, double *gnorm) {
  hb_ctx *ctx = &t->ctx;
  const long u = (long)t->st.update;
  const int frozen = u < t->cfg.model.freeze_finetune_updates;
  HB_TRY(ctx->be->zero(ctx, t->grads, sizeof(float) * t->model.layout.total));
  ft_sums s;
  memset(&s, 0, sizeof s);
  // update_freq batches; then, while none of their rows had a usable transcript (a corpus may mix
  // transcribed and untranscribed audio, and length-sorted batches can hold only the latter), more
  // batches: an update always trains on something. A whole epoch without a usable row is an error.
  int64_t extra = 0, epoch_batches = 1;
  for (int k = 0; k < t->cfg.optimization.update_freq || (s.ntok == 0 && s.loss == 0); k++) {
    const hb_batch *b;
    HB_TRY(loader_next_batch(t->ld[FT_TRAIN], &b));
    if (k >= t->cfg.optimization.update_freq && ++extra > epoch_batches)
      return hb_fail("update %ld: no batch of a whole epoch of the train split (%s) has an utterance with a usable "
                     "transcript (missing, or shorter in frames than its targets)", u + 1, t->cfg.task.data);
    epoch_batches = b->n_batches > 0 ? b->n_batches : 1;
    if (run_batch(t, &t->model, FT_TRAIN, b, 1, frozen, train_seed3(t->st.seed, TAG_DROPOUT, (uint64_t)u, (uint64_t)k), &s))
      return hb_fail_prefix("update %ld, batch (epoch %lld, %lld)", u + 1, (long long)b->epoch, (long long)b->index);
  }
  loader_position(t->ld[FT_TRAIN], &t->st.pos);
  const double lr = sched_lr(&t->sched, u);
  *lr_out = t->st.lr = lr;
  const double sample_size = t->cfg.optimization.sentence_avg ? s.nutt : s.ntok;
  hb_optim_stats os = {NAN, 1, 1};
  const int finite = isfinite(s.loss) && sample_size > 0;
  if (finite) {
    if (frozen) {  // only the CTC head's segments (the trunk's moments and weights stay untouched)
      hb_adamw hv = t->opt;
      hv.seg = t->head_seg;
      hv.nseg = t->n_head_seg;
      HB_TRY(optim_step(&hv, t->model.params, t->grads, 1.0 / sample_size, lr, t->cfg.optimization.clip_norm, &os));
      t->opt.step = hv.step;
      t->opt.skipped = hv.skipped;
    } else {
      HB_TRY(optim_step(&t->opt, t->model.params, t->grads, 1.0 / sample_size, lr, t->cfg.optimization.clip_norm, &os));
    }
  }
  t->st.update++;
  *gnorm = os.grad_norm;
  acc->nutt += s.nutt;
  acc->skipped_rows += s.skipped_rows;
  if (!finite || os.skipped) {
    t->st.nan_run++;
    t->st.nan_total++;
    if (t->st.nan_run >= t->cfg.common.max_nan_updates)
      return hb_fail("fine-tuning stopped at update %lld: %lld non-finite updates in a row (loss %g, gradient norm %g)%s",
                     (long long)t->st.update, (long long)t->st.nan_run, s.loss, os.grad_norm,
                     t->cfg.criterion.zero_infinity ? "; lower optimization.lr or raise optimization.clip_norm"
                                                    : "; utterances too short for their transcripts give an infinite CTC "
                                                      "loss: set criterion.zero_infinity=true");
    return 0;
  }
  t->st.nan_run = 0;
  acc->loss += s.loss;
  acc->ntok += s.ntok;
  return 0;
}

// ---- scoring a split ----

int ft_score(ft_state *t, hb_model *m, int split, ft_sums *s) {
  memset(s, 0, sizeof *s);
  hb_loader *L = t->ld[split];
  if (!L) return 0;
  int64_t n;
  HB_TRY(loader_epoch_batches(L, 1, &n));
  hb_loader_pos p0 = {1, 0};
  HB_TRY(loader_seek(L, p0));
  for (int64_t i = 0; i < n; i++) {
    const hb_batch *b;
    HB_TRY(loader_next_batch(L, &b));
    if (run_batch(t, m, split, b, 0, 1, 0, s)) return hb_fail_prefix("%s batch %lld", split_names[split], (long long)i);
  }
  return 0;
}
