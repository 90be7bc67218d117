// The fine-tuning loop: updates, progress lines, the JSONL log, validation (greedy decoding,
// WER/CER/PER), checkpoints (model folders with the CTC head and vocabulary), final scoring of
// checkpoint_best on the valid and test splits.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/json.h"
#include "train/train_util.h"
#include "train/finetune_internal.h"

static double ratio(double a, double b) { return b > 0 ? a / b : NAN; }

// The error rates of a split: unit (CER with "|" for ltr, PER for phn) and word (WER; = PER for phn).
static void rates(const ft_sums *s, double *uer, double *wer) {
  *uer = ratio(s->err.unit_err, s->err.unit_n);
  *wer = ratio(s->err.word_err, s->err.word_n);
}

// Value of checkpoint.best_checkpoint_metric (lower is better).
static double metric(const ft_state *t, const ft_sums *s) {
  double uer, wer;
  rates(s, &uer, &wer);
  switch (t->cfg.checkpoint.best_checkpoint_metric) {
    case 1: return wer;
    case 2:
    case 3: return uer;
    default: return ratio(s->loss, s->ntok);
  }
}

static void put_split(json_writer *w, const ft_state *t, const char *name, const ft_sums *s) {
  double uer, wer;
  rates(s, &uer, &wer);
  jw_key(w, name);
  jw_begin_object(w);
  jw_key(w, "loss"); jw_double(w, ratio(s->loss, s->ntok));
  jw_key(w, t->vocab.kind == HB_CTC_LTR ? "cer" : "per"); jw_double(w, uer);
  if (t->vocab.kind == HB_CTC_LTR) { jw_key(w, "wer"); jw_double(w, wer); }
  jw_key(w, "utterances"); jw_double(w, s->nutt);
  jw_key(w, "skipped"); jw_double(w, s->skipped_rows);
  jw_key(w, "ref_units"); jw_double(w, s->err.unit_n);
  jw_end_object(w);
}

static int log_json(FILE *f, json_writer *w) {
  jw_end_object(w);
  size_t len;
  char *s = jw_finish(w, &len);
  if (!s) return -1;
  int ok = fwrite(s, 1, len, f) == len && fputc('\n', f) != EOF && fflush(f) == 0;
  free(s);
  return ok ? 0 : hb_fail("cannot write the fine-tuning log");
}

static void print_split(const ft_state *t, const char *what, const ft_sums *s) {
  double uer, wer;
  rates(s, &uer, &wer);
  if (t->vocab.kind == HB_CTC_LTR)
    printf("%s: loss %.4f  WER %.2f%%  CER %.2f%%  (%.0f utterances, %.0f skipped)\n", what, ratio(s->loss, s->ntok),
           100 * wer, 100 * uer, s->nutt, s->skipped_rows);
  else
    printf("%s: loss %.4f  PER %.2f%%  (%.0f utterances, %.0f skipped)\n", what, ratio(s->loss, s->ntok), 100 * uer, s->nutt,
           s->skipped_rows);
  fflush(stdout);
}

static int finish(ft_state *t, FILE *log) {
  const hb_train_config *c = &t->cfg;
  char best[2 * HB_CFG_PATH_LEN], out[2 * HB_CFG_PATH_LEN];
  snprintf(best, sizeof best, "%s/checkpoint_best", c->checkpoint.save_dir);
  if (!file_is_dir(best)) snprintf(best, sizeof best, "%s/checkpoint_last", c->checkpoint.save_dir);
  hb_model m;
  if (model_load(&m, best, &t->ctx)) return hb_fail_prefix("final scoring");
  ft_sums sv, st;
  int rc = ft_score(t, &m, FT_VALID, &sv);
  if (!rc) rc = ft_score(t, &m, FT_TEST, &st);
  model_free(&m);
  HB_TRY(rc);
  printf("final (%s):\n", best);
  if (t->ld[FT_VALID]) print_split(t, "  valid", &sv);
  if (t->ld[FT_TEST]) print_split(t, "  test ", &st);
  json_writer w;
  jw_init(&w, 1);
  jw_begin_object(&w);
  jw_key(&w, "checkpoint"); jw_string(&w, best);
  jw_key(&w, "labels"); jw_string(&w, ctc_kind_name(t->vocab.kind));
  jw_key(&w, "vocabulary"); jw_int(&w, t->vocab.n);
  jw_key(&w, "updates"); jw_int(&w, t->st.update);
  jw_key(&w, "w2v_path"); jw_string(&w, c->model.w2v_path);
  jw_key(&w, "no_pretrained_weights"); jw_bool(&w, c->model.no_pretrained_weights);
  if (t->ld[FT_VALID]) put_split(&w, t, "valid", &sv);
  if (t->ld[FT_TEST]) put_split(&w, t, "test", &st);
  jw_end_object(&w);
  size_t len;
  char *text = jw_finish(&w, &len);
  if (!text) return -1;
  snprintf(out, sizeof out, "%s/finetune_results.json", c->checkpoint.save_dir);
  rc = file_write_atomic(out, text, len);
  free(text);
  json_writer r;
  jw_init(&r, 0);
  jw_begin_object(&r);
  jw_key(&r, "split"); jw_string(&r, "final");
  jw_key(&r, "update"); jw_int(&r, t->st.update);
  if (t->ld[FT_VALID]) put_split(&r, t, "valid", &sv);
  if (t->ld[FT_TEST]) put_split(&r, t, "test", &st);
  if (!rc) rc = log_json(log, &r);
  return rc;
}

static int loop(ft_state *t, FILE *log) {
  const hb_train_config *c = &t->cfg;
  const long max_u = c->optimization.max_update, vi = c->dataset.validate_interval_updates;
  const long si = c->checkpoint.save_interval_updates;
  const long after = c->dataset.validate_after_updates < 0 ? c->model.freeze_finetune_updates : c->dataset.validate_after_updates;
  ft_sums acc;
  memset(&acc, 0, sizeof acc);
  double t0 = train_now_s(), gsum = 0, n_up = 0;
  while (t->st.update < max_u) {
    double lr, gn;
    HB_TRY(ft_update(t, &acc, &lr, &gn));
    if (isfinite(gn)) { gsum += gn; n_up += 1; }
    const long u = (long)t->st.update;
    if (u % c->common.log_interval == 0 || u == max_u) {
      const double dt = train_now_s() - t0;
      printf("update %6ld  loss %.4f  lr %.3g  gnorm %.3g  %s  %.1f s\n", u, ratio(acc.loss, acc.ntok), lr,
             ratio(gsum, n_up), u <= c->model.freeze_finetune_updates ? "head only" : "all", dt);
      fflush(stdout);
      json_writer w;
      jw_init(&w, 0);
      jw_begin_object(&w);
      jw_key(&w, "split"); jw_string(&w, "train");
      jw_key(&w, "update"); jw_int(&w, u);
      jw_key(&w, "loss"); jw_double(&w, ratio(acc.loss, acc.ntok));
      jw_key(&w, "lr"); jw_double(&w, lr);
      jw_key(&w, "gnorm"); jw_double(&w, ratio(gsum, n_up));
      jw_key(&w, "utterances"); jw_double(&w, acc.nutt);
      jw_key(&w, "skipped"); jw_double(&w, acc.skipped_rows);
      jw_key(&w, "frozen"); jw_bool(&w, u <= c->model.freeze_finetune_updates);
      jw_key(&w, "wall_s"); jw_double(&w, dt);
      HB_TRY(log_json(log, &w));
      memset(&acc, 0, sizeof acc);
      gsum = n_up = 0;
    }
    int is_best = 0, validated = 0;
    if (t->ld[FT_VALID] && u >= after && ((vi > 0 && u % vi == 0) || u == max_u)) {
      ft_sums v;
      HB_TRY(ft_score(t, &t->model, FT_VALID, &v));
      validated = 1;
      const double mv = metric(t, &v);
      t->st.last_valid_loss = mv;
      if (isfinite(mv) && mv < t->st.best_valid_loss) {
        t->st.best_valid_loss = mv;
        is_best = 1;
      }
      char what[64];
      snprintf(what, sizeof what, "valid @ %ld%s", u, is_best ? " (best)" : "");
      print_split(t, what, &v);
      json_writer w;
      jw_init(&w, 0);
      jw_begin_object(&w);
      jw_key(&w, "split"); jw_string(&w, "valid");
      jw_key(&w, "update"); jw_int(&w, u);
      put_split(&w, t, "valid", &v);
      jw_key(&w, "best"); jw_bool(&w, is_best);
      HB_TRY(log_json(log, &w));
    }
    if (!t->ld[FT_VALID]) is_best = 1;  // no valid split: the last checkpoint is the best
    if (validated || (si > 0 && u % si == 0) || u == max_u)
      HB_TRY(checkpoint_save_with(c->checkpoint.save_dir, &t->model, &t->opt, c, &t->st, is_best,
                                  c->checkpoint.keep_interval_updates, ft_save_vocab, t));
  }
  return finish(t, log);
}

int finetune_run(const hb_train_config *cfg, const hb_finetune_args *args) {
  ft_state *t = hb_calloc(1, sizeof *t);
  if (!t) return -1;
  int rc = ft_setup(t, cfg, args);
  FILE *log = NULL;
  if (!rc) {
    printf("fine-tuning %s (%s): CTC over %s, %d symbols; train %lld utterances (%lld without a transcript)",
           t->resumed ? t->resume_dir : cfg->model.w2v_path, cfg->model.no_pretrained_weights ? "random init" : "pretrained",
           t->vocab.kind == HB_CTC_LTR ? "characters" : "phones", t->vocab.n, (long long)t->tg[FT_TRAIN].n,
           (long long)t->tg[FT_TRAIN].missing);
    for (int s = FT_VALID; s < FT_SPLITS; s++)
      if (t->ld[s]) printf(", %s %lld (%lld)", s == FT_VALID ? "valid" : "test", (long long)t->tg[s].n, (long long)t->tg[s].missing);
    printf("%s\n", t->resumed ? "; resumed" : "");
    fflush(stdout);
    char p[2 * HB_CFG_PATH_LEN];
    rc = file_mkdirs(cfg->checkpoint.save_dir);
    snprintf(p, sizeof p, "%s/finetune_log.jsonl", cfg->checkpoint.save_dir);
    if (!rc && !(log = fopen(p, t->resumed ? "a" : "w"))) rc = hb_fail("cannot open the fine-tuning log %s", p);
  }
  if (!rc) rc = loop(t, log);
  if (log) fclose(log);
  ft_free(t);
  free(t);
  return rc;
}
