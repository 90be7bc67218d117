// The training loop: updates, progress lines, the JSONL log, validation and checkpoints.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/json.h"
#include "train/train_util.h"
#include "train/trainer_internal.h"

static double ratio(double a, double b) { return b > 0 ? a / b : 0.0; }

// On resume the log keeps only the rows up to the checkpoint's update (later rows belong to the
// interrupted run and will be written again, identically); a torn last line is dropped.
static int log_truncate(const char *path, int64_t update) {
  if (!file_exists(path)) return 0;
  char *text;
  size_t len;
  HB_TRY(file_read_all(path, &text, &len));
  char *out = hb_malloc(len + 1);
  if (!out) { free(text); return -1; }
  size_t n = 0;
  for (char *line = text; *line;) {
    char *end = strchr(line, '\n');
    if (!end) break;  // torn
    json_value *v;
    int64_t u = -1;
    if (json_parse(line, (size_t)(end - line), &v) == 0) {
      if (json_get_int(v, "update", &u) != 0) u = -1;
      json_free(v);
    }
    if (u >= 0 && u <= update) {
      memcpy(out + n, line, (size_t)(end - line) + 1);
      n += (size_t)(end - line) + 1;
    }
    line = end + 1;
  }
  int rc = file_write_atomic(path, out, n);
  free(out);
  free(text);
  return rc;
}

static int log_row(FILE *f, const char *path, json_writer *w) {
  jw_end_object(w);
  size_t len;
  char *s = jw_finish(w, &len);
  if (!s) return hb_fail_prefix("log %s", path);
  int ok = fwrite(s, 1, len, f) == len && fputc('\n', f) != EOF && fflush(f) == 0;
  free(s);
  return ok ? 0 : hb_fail("cannot write the training log %s", path);
}

static void kv(json_writer *w, const char *k, double v) { jw_key(w, k); jw_double(w, v); }

static int log_train(trainer *t, FILE *f, const char *path, const hb_log_sums *a, double lr, double wall,
                     double eta) {
  const int ok_updates = (int)(a->updates - a->skipped);
  json_writer w;
  jw_init(&w, 0);
  jw_begin_object(&w);
  jw_key(&w, "split"); jw_string(&w, "train");
  jw_key(&w, "update"); jw_int(&w, t->st.update);
  jw_key(&w, "epoch"); jw_int(&w, t->st.pos.epoch);
  kv(&w, "loss", ratio(a->loss, a->count_m));
  kv(&w, "loss_m", ratio(a->loss_m, a->count_m));
  kv(&w, "loss_u", ratio(a->loss_u, a->count_u));
  kv(&w, "loss_topic", ratio(a->topic_ce, a->topic_n));
  kv(&w, "acc_m", ratio(a->correct_m, a->count_m));
  kv(&w, "acc_u", ratio(a->correct_u, a->count_u));
  kv(&w, "acc_topic", ratio(a->topic_correct, a->topic_n));
  kv(&w, "sample_size", a->count_m);
  kv(&w, "lr", lr);
  kv(&w, "gnorm", ratio(a->gnorm, ok_updates));
  jw_key(&w, "nan_skipped"); jw_int(&w, (int64_t)a->skipped);
  kv(&w, "audio_s", a->audio_s);
  kv(&w, "audio_s_per_s", ratio(a->audio_s, wall));
  kv(&w, "wall_s", wall);
  HB_TRY(log_row(f, path, &w));
  printf("[train] update %6lld/%ld  loss %.4f  loss_m %.4f  loss_u %.4f  topic %.4f  acc_m %.4f  lr %.3e  "
         "gnorm %.3f  %.1f audio-s/s  ETA %.0f s%s\n",
         (long long)t->st.update, t->cfg.optimization.max_update, ratio(a->loss, a->count_m),
         ratio(a->loss_m, a->count_m), ratio(a->loss_u, a->count_u), ratio(a->topic_ce, a->topic_n),
         ratio(a->correct_m, a->count_m), lr, ratio(a->gnorm, ok_updates), ratio(a->audio_s, wall), eta,
         a->skipped ? "  (non-finite updates skipped)" : "");
  fflush(stdout);
  return 0;
}

static int log_valid(trainer *t, FILE *f, const char *path, const hb_valid_result *v, int best) {
  json_writer w;
  jw_init(&w, 0);
  jw_begin_object(&w);
  jw_key(&w, "split"); jw_string(&w, "valid");
  jw_key(&w, "update"); jw_int(&w, t->st.update);
  kv(&w, "loss", v->loss);
  kv(&w, "loss_m", ratio(v->loss_m, v->count_m));
  kv(&w, "loss_topic", ratio(v->topic_ce, v->topic_n));
  kv(&w, "acc_m", ratio(v->correct_m, v->count_m));
  kv(&w, "acc_topic", ratio(v->topic_correct, v->topic_n));
  kv(&w, "sample_size", v->count_m);
  jw_key(&w, "utterances"); jw_int(&w, v->utts);
  jw_key(&w, "best"); jw_bool(&w, best);
  HB_TRY(log_row(f, path, &w));
  printf("[valid] update %6lld  loss %.4f  loss_m %.4f  acc_m %.4f  topic loss %.4f  acc_topic %.4f  (%ld utts)%s\n",
         (long long)t->st.update, v->loss, ratio(v->loss_m, v->count_m), ratio(v->correct_m, v->count_m),
         ratio(v->topic_ce, v->topic_n), ratio(v->topic_correct, v->topic_n), v->utts, best ? "  best" : "");
  fflush(stdout);
  return 0;
}

static int run_loop(trainer *t, FILE *logf, const char *log_path) {
  const hb_train_config *c = &t->cfg;
  const long max_update = c->optimization.max_update;
  hb_log_sums acc = t->st.sums;
  const double t0 = train_now_s();
  double t_int = t0;
  const int64_t u0 = t->st.update;
  double lr = t->st.lr;
  const int lead = t->comm.rank == 0;   // rank 0 logs and writes checkpoints
  while (t->st.update < max_update) {
    HB_TRY(trainer_update(t, &acc, &lr));
    const int64_t u = t->st.update;
    const int last = u == max_update;
    if (u % c->common.log_interval == 0 || last) {
      double now = train_now_s();
      double per = (now - t0) / (double)(u - u0);
      if (lead) HB_TRY(log_train(t, logf, log_path, &acc, lr, now - t_int, per * (double)(max_update - u)));
      memset(&acc, 0, sizeof acc);
      t_int = now;
    }
    const int save = (c->checkpoint.save_interval_updates > 0 && u % c->checkpoint.save_interval_updates == 0) || last;
    const int val = (c->dataset.validate_interval_updates > 0 && u % c->dataset.validate_interval_updates == 0) || save;
    int best = 0;
    if (val && t->valid) {
      hb_valid_result v;
      HB_TRY(trainer_validate(t, &v));
      t->st.last_valid_loss = v.loss;
      best = isfinite(v.loss) && v.loss < t->st.best_valid_loss;
      if (best) t->st.best_valid_loss = v.loss;
      if (lead) HB_TRY(log_valid(t, logf, log_path, &v, best));
    }
    if (save) {
      t->st.sums = acc;
      if (!t->valid) best = 1;  // without a valid split the best checkpoint is the last
      hb_adamw full;   // ZeRO: the moments of every rank, so a checkpoint does not depend on the world size
      int owned, rc = trainer_full_optim(t, &full, &owned);
      if (!rc && lead)
        rc = checkpoint_save(c->checkpoint.save_dir, &t->model, &full, c, &t->st, best,
                             c->checkpoint.keep_interval_updates);
      if (owned) optim_free(&full);
      if (rc) return hb_fail_prefix("update %lld", (long long)u);
      if (lead) {
        printf("[checkpoint] %s/checkpoint_%lld%s\n", c->checkpoint.save_dir, (long long)u, best ? " (best)" : "");
        fflush(stdout);
      }
    }
  }
  return 0;
}

int trainer_run(const hb_train_config *cfg, const hb_train_args *args) {
  trainer *t = hb_calloc(1, sizeof *t);
  if (!t) return -1;
  int rc = -1;
  FILE *logf = NULL;
  char log_path[2 * HB_CFG_PATH_LEN];
  if (trainer_setup(t, cfg, args)) goto done;
  const hb_train_config *c = &t->cfg;
  const int lead = t->comm.rank == 0;
  if (!lead) {   // the other ranks train silently; errors still reach their stderr
    if (run_loop(t, NULL, NULL)) goto done;
    rc = 0;
    goto done;
  }
  if (c->common.log_file[0]) snprintf(log_path, sizeof log_path, "%s", c->common.log_file);
  else snprintf(log_path, sizeof log_path, "%s/train_log.jsonl", c->checkpoint.save_dir);
  if (file_mkdirs(c->checkpoint.save_dir)) goto done;
  if (t->resumed) {
    if (log_truncate(log_path, t->st.update)) goto done;
  }
  logf = fopen(log_path, t->resumed ? "a" : "w");
  if (!logf) { hb_fail("cannot open the training log %s", log_path); goto done; }
  printf("model: %.3fM parameters (%d layers, hidden %d), label sets:", model_num_params(&t->model) / 1e6,
         t->model.cfg.num_hidden_layers, t->model.cfg.hidden_size);
  for (int j = 0; j < t->model.cfg.num_label_sets; j++)
    printf(" %s (k %d, %g Hz)", t->model.cfg.label_names[j], t->model.cfg.label_k[j], t->label_rate[j]);
  if (t->topic_on) printf(", topic head '%s' (k %d, weight %g)", c->topic.name, t->model.cfg.topic_k, c->topic.weight);
  printf("\ndata: %lld train utterances (%.1f s of audio)", (long long)loader_num_utts(t->train),
         (double)loader_total_samples(t->train) / t->sample_rate);
  if (t->valid) printf(", %lld valid", (long long)loader_num_utts(t->valid));
  else printf(", no '%s' split: no validation", c->dataset.valid_subset);
  printf("\n");
  if (t->resumed)
    printf("resuming from %s at update %lld (loader epoch %lld, batch %lld)\n", t->resume_dir,
           (long long)t->st.update, (long long)t->st.pos.epoch, (long long)t->st.pos.batch);
  if (t->comm.world > 1)
    printf("distributed: %d ranks (%s launcher, %s backend)%s; global batch = %d ranks x update_freq %d\n",
           t->comm.world, t->comm.launcher, t->comm.kind == HB_COMM_NCCL ? "nccl" : "mpi",
           t->zero ? ", ZeRO-1 optimizer shards" : t->overlap ? ", all-reduce overlapped with the backward" : "",
           t->comm.world, c->optimization.update_freq);
  printf("log: %s\n", log_path);
  fflush(stdout);
  if (run_loop(t, logf, log_path)) goto done;
  printf("done: %lld updates (%lld non-finite skipped), last checkpoint %s/checkpoint_last", (long long)t->st.update,
         (long long)t->st.nan_total, c->checkpoint.save_dir);
  if (isfinite(t->st.best_valid_loss)) printf(", best valid loss %.4f", t->st.best_valid_loss);
  printf("\n");
  if (t->comm.world > 1) printf("distributed: %.3f s of rank 0 in gradient/statistics collectives%s\n", t->t_comm,
                                 t->overlap ? " (waiting after the backward; overlapped time not counted)" : "");
  rc = 0;
done:
  if (logf && fclose(logf) && rc == 0) rc = hb_fail("cannot close the training log %s", log_path);
  // One rank failing stops them all at once (the others may be waiting in a collective).
  if (rc && t->have_comm && t->comm.world > 1) comm_abort(&t->comm, 1, hb_errmsg());
  trainer_free(t);
  free(t);
  return rc;
}
