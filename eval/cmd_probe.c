// `hubert probe`: SUPERB's protocol in miniature on frozen features (docs/probes.md). For every
// feature set (NAME=FILE[,FILE...]) and each of its layers, plus a softmax-weighted sum of the
// layers: frame phone classification (accuracy), a linear CTC phone head (PER), and utterance
// classification by mean pooling (speaker / language / keyword ID), trained on the train split,
// selected on valid, reported on test; a markdown table and JSON.
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/error.h"
#include "common/fileutil.h"
#include "common/json.h"
#include "eval/probe.h"
#include "eval/probe_data.h"

enum { T_PHONE, T_CTC, T_SPEAKER, T_LANGUAGE, T_KEYWORD, NTASK };
static const char *task_name[NTASK] = {"phone", "phone_ctc", "speaker", "language", "keyword"};
static const char *task_head[NTASK] = {"phone acc %", "PER %", "speaker acc %", "language acc %", "keyword acc %"};

typedef struct {
  int on;
  int C;               // classes (utterance tasks), phones (frame task), vocabulary (CTC)
  char **cls;          // (C) class names (utterance tasks)
  int64_t n[3];        // samples (frames / utterances) per split
} task_info;

typedef struct {
  int set, layer;      // layer -1: weighted sum
  hb_probe_result res[NTASK];
  int done[NTASK];
} row_result;

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// Classes of an utterance task: the sorted distinct non-empty train values of column col.
static int task_classes(task_info *ti, const hb_evalmeta *m, const hb_probe_set *ps, int col) {
  ti->cls = hb_calloc((size_t)ps->nutt[HB_TRAIN] + 1, sizeof(char *));
  if (!ti->cls) return -1;
  int n = 0;
  for (int64_t i = 0; i < ps->nutt[HB_TRAIN]; i++) {
    const char *v = evalmeta_cell(m, ps->row[HB_TRAIN][i], col);
    if (*v) ti->cls[n++] = (char *)v;
  }
  qsort(ti->cls, (size_t)n, sizeof(char *), cmp_str);
  int k = 0;
  for (int i = 0; i < n; i++)
    if (k == 0 || strcmp(ti->cls[k - 1], ti->cls[i])) ti->cls[k++] = ti->cls[i];
  ti->C = k;
  return 0;
}

static int class_of(const task_info *ti, const char *v) {
  int lo = 0, hi = ti->C - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2, c = strcmp(v, ti->cls[mid]);
    if (!c) return mid;
    if (c < 0) hi = mid - 1;
    else lo = mid + 1;
  }
  return -1;
}

// Utterance task samples of one row: the pooled rows with a non-empty label (copied).
static int run_utt_task(const hb_probe_set *ps, int layer, const task_info *ti, const hb_evalmeta *m, int col,
                        const hb_probe_opts *o, hb_probe_result *r) {
  const int L = layer < 0 ? ps->L : 1, D = ps->D;
  float **xs[3] = {0};
  const float *const *xv[3];
  int32_t *y[3] = {0};
  hb_probe_data d = {L, D, ti->C, {0}, {0}, {0}};
  int rc = -1;
  for (int s = 0; s < 3; s++) {
    xs[s] = hb_calloc((size_t)L, sizeof(float *));
    y[s] = hb_calloc((size_t)ps->nutt[s] + 1, sizeof(int32_t));
    if (!xs[s] || !y[s]) goto done;
    for (int l = 0; l < L; l++)
      if (!(xs[s][l] = hb_malloc(sizeof(float) * ((size_t)ps->nutt[s] * D + 1)))) goto done;
    int64_t n = 0;
    for (int64_t i = 0; i < ps->nutt[s]; i++) {
      const char *v = evalmeta_cell(m, ps->row[s][i], col);
      if (!*v) continue;
      y[s][n] = class_of(ti, v);
      for (int l = 0; l < L; l++)
        memcpy(xs[s][l] + (size_t)n * D, ps->pooled[s][layer < 0 ? l : layer] + (size_t)i * D, sizeof(float) * D);
      n++;
    }
    d.n[s] = n;
    xv[s] = (const float *const *)xs[s];
    d.x[s] = xv[s];
    d.y[s] = y[s];
  }
  rc = probe_train_linear(&d, o, r);
done:
  for (int s = 0; s < 3; s++) {
    if (xs[s])
      for (int l = 0; l < L; l++) free(xs[s][l]);
    free(xs[s]), free(y[s]);
  }
  return rc;
}

static int run_phone_task(const hb_probe_set *ps, int layer, int P, const hb_probe_opts *o, hb_probe_result *r) {
  const float *const *x[3];
  for (int s = 0; s < 3; s++) x[s] = (const float *const *)(layer < 0 ? ps->frames[s] : ps->frames[s] + layer);
  hb_probe_data d = {layer < 0 ? ps->L : 1, ps->D, P, {0}, {x[0], x[1], x[2]}, {ps->fphone[0], ps->fphone[1], ps->fphone[2]}};
  for (int s = 0; s < 3; s++) d.n[s] = ps->nal[s] ? ps->foff[s][ps->nal[s]] : 0;
  return probe_train_linear(&d, o, r);
}

static int run_ctc_task(const hb_probe_set *ps, int layer, const hb_evalmeta *m, const hb_probe_opts *o, hb_probe_result *r) {
  int64_t *toff[3] = {0};
  int32_t *tgt[3] = {0};
  int rc = -1;
  hb_ctc_probe_data d = {layer < 0 ? ps->L : 1, ps->D, m->phones.n + 1, {0}, {0}, {0}, {0}, {0}};
  for (int s = 0; s < 3; s++) {
    d.nutt[s] = ps->nal[s];
    d.off[s] = ps->foff[s];
    d.x[s] = (const float *const *)(layer < 0 ? ps->frames[s] : ps->frames[s] + layer);
    toff[s] = hb_calloc((size_t)ps->nal[s] + 1, sizeof(int64_t));
    if (!toff[s]) goto done;
    int64_t cap = 1024, n = 0;
    tgt[s] = hb_malloc(sizeof(int32_t) * (size_t)cap);
    if (!tgt[s]) goto done;
    for (int64_t u = 0; u < ps->nal[s]; u++) {
      int k = 0;
      for (;;) {
        int q = evalmeta_phone_seq(m, ps->al_row[s][u], tgt[s] + n, (int)(cap - n), &k);
        if (q < 0 && cap - n < 65536) {
          hb_clear_error();
          cap *= 2;
          int32_t *p = hb_realloc(tgt[s], sizeof(int32_t) * (size_t)cap);
          if (!p) goto done;
          tgt[s] = p;
          continue;
        }
        if (q) goto done;
        break;
      }
      for (int j = 0; j < k; j++) tgt[s][n + j] += 1;   // 0 is the blank
      n += k;
      toff[s][u + 1] = n;
    }
    d.toff[s] = toff[s];
    d.tgt[s] = tgt[s];
  }
  rc = probe_train_ctc(&d, o, r);
done:
  for (int s = 0; s < 3; s++) free(toff[s]), free(tgt[s]);
  return rc;
}

static void row_label(const hb_probe_set *sets, const row_result *rr, char *buf, size_t n) {
  const hb_probe_set *ps = &sets[rr->set];
  if (rr->layer < 0) snprintf(buf, n, "%s weighted sum", ps->name);
  else if (ps->L == 1 && !strcmp(ps->dsets[0], "feats")) snprintf(buf, n, "%s", ps->name);
  else snprintf(buf, n, "%s %s", ps->name, ps->dsets[rr->layer]);
}

static int write_outputs(const char *json, const char *md, const hb_probe_set *sets, int nsets, const row_result *rows,
                         int nrows, const task_info *ti, const char *meta) {
  // Markdown table: test split, each cell the metric (percent) of the row's best-valid epoch.
  size_t cap = 4096 + (size_t)nrows * 512, len = 0;
  char *t = hb_malloc(cap), label[256];
  if (!t) return -1;
  len += (size_t)snprintf(t + len, cap - len, "| features | dim |");
  for (int k = 0; k < NTASK; k++)
    if (ti[k].on) len += (size_t)snprintf(t + len, cap - len, " %s |", task_head[k]);
  len += (size_t)snprintf(t + len, cap - len, "\n|---|---:|");
  for (int k = 0; k < NTASK; k++)
    if (ti[k].on) len += (size_t)snprintf(t + len, cap - len, "---:|");
  len += (size_t)snprintf(t + len, cap - len, "\n");
  for (int i = 0; i < nrows; i++) {
    row_label(sets, &rows[i], label, sizeof label);
    len += (size_t)snprintf(t + len, cap - len, "| %s | %d |", label, sets[rows[i].set].D);
    for (int k = 0; k < NTASK; k++)
      if (ti[k].on) len += (size_t)snprintf(t + len, cap - len, " %.1f |", 100.0 * rows[i].res[k].score[HB_TEST]);
    len += (size_t)snprintf(t + len, cap - len, "\n");
  }
  fputs(t, stdout);
  int rc = md ? file_write_atomic(md, t, len) : 0;
  free(t);
  if (rc || !json) return rc;
  json_writer w;
  jw_init(&w, 1);
  jw_begin_object(&w);
  jw_key(&w, "meta"), jw_string(&w, meta);
  jw_key(&w, "tasks"), jw_begin_object(&w);
  for (int k = 0; k < NTASK; k++) {
    if (!ti[k].on) continue;
    jw_key(&w, task_name[k]), jw_begin_object(&w);
    jw_key(&w, "metric"), jw_string(&w, k == T_CTC ? "per" : "accuracy");
    jw_key(&w, "classes"), jw_int(&w, ti[k].C);
    jw_key(&w, k <= T_CTC ? (k == T_PHONE ? "frames" : "utterances") : "utterances"), jw_begin_array(&w);
    for (int s = 0; s < 3; s++) jw_int(&w, ti[k].n[s]);
    jw_end_array(&w);
    jw_end_object(&w);
  }
  jw_end_object(&w);
  jw_key(&w, "sets"), jw_begin_array(&w);
  for (int i = 0; i < nsets; i++) {
    jw_begin_object(&w);
    jw_key(&w, "name"), jw_string(&w, sets[i].name);
    jw_key(&w, "rate"), jw_double(&w, sets[i].rate);
    jw_key(&w, "files"), jw_begin_array(&w);
    for (int f = 0; f < sets[i].n_files; f++) jw_string(&w, sets[i].files[f]);
    jw_end_array(&w);
    jw_end_object(&w);
  }
  jw_end_array(&w);
  jw_key(&w, "rows"), jw_begin_array(&w);
  for (int i = 0; i < nrows; i++) {
    const hb_probe_set *ps = &sets[rows[i].set];
    row_label(sets, &rows[i], label, sizeof label);
    jw_begin_object(&w);
    jw_key(&w, "row"), jw_string(&w, label);
    jw_key(&w, "set"), jw_string(&w, ps->name);
    jw_key(&w, "layer"), rows[i].layer < 0 ? jw_string(&w, "weighted_sum") : jw_string(&w, ps->dsets[rows[i].layer]);
    jw_key(&w, "dim"), jw_int(&w, ps->D);
    for (int k = 0; k < NTASK; k++) {
      if (!ti[k].on) continue;
      const hb_probe_result *r = &rows[i].res[k];
      jw_key(&w, task_name[k]), jw_begin_object(&w);
      jw_key(&w, "train"), jw_double(&w, r->score[0]);
      jw_key(&w, "valid"), jw_double(&w, r->score[1]);
      jw_key(&w, "test"), jw_double(&w, r->score[2]);
      jw_key(&w, "best_epoch"), jw_int(&w, r->best_epoch);
      jw_key(&w, "epochs"), jw_int(&w, r->epochs);
      if (r->layer_w) {
        jw_key(&w, "layer_weights"), jw_begin_array(&w);
        for (int l = 0; l < ps->L; l++) jw_double(&w, r->layer_w[l]);
        jw_end_array(&w);
      }
      jw_end_object(&w);
    }
    jw_end_object(&w);
  }
  jw_end_array(&w);
  jw_end_object(&w);
  size_t jlen;
  char *text = jw_finish(&w, &jlen);
  if (!text) return -1;
  rc = file_write_atomic(json, text, jlen);
  free(text);
  return rc;
}

int cmd_probe(const hb_command *cmd, int argc, char **argv) {
  const char *meta = NULL, *tasks = NULL, *layers = "all", *json = NULL, *md = NULL;
  int threads = 0, no_wsum = 0, epochs = 0;
  long seed = 1;
  double lr = 1e-2, ctc_lr = 3e-2;
  hb_opt opts[] = {
      {"meta", 'm', HB_OPT_STR, "meta.tsv", "utterance table: utt_id, split, speaker, language, keyword, phones", &meta, 1},
      {"tasks", 0, HB_OPT_STR, "LIST", "comma list of phone,phone_ctc,speaker,language,keyword (default: those meta.tsv has)", &tasks, 0},
      {"layers", 'l', HB_OPT_STR, "all|0,2", "layers of /layer_K feature files (default all)", &layers, 0},
      {"no-wsum", 0, HB_OPT_FLAG, NULL, "no softmax-weighted-sum row for multi-layer sets", &no_wsum, 0},
      {"json", 0, HB_OPT_STR, "OUT.json", "write every split's metrics, epochs and layer weights", &json, 0},
      {"md", 0, HB_OPT_STR, "OUT.md", "write the markdown table", &md, 0},
      {"seed", 0, HB_OPT_LONG, "N", "probe initialisation and minibatch order (default 1)", &seed, 0},
      {"epochs", 0, HB_OPT_INT, "N", "maximum epochs per probe (default: 100 frame, 200 utterance, 300 CTC)", &epochs, 0},
      {"lr", 0, HB_OPT_DOUBLE, "LR", "AdamW learning rate of the softmax probes (default 1e-2)", &lr, 0},
      {"ctc-lr", 0, HB_OPT_DOUBLE, "LR", "AdamW learning rate of the CTC probe (default 3e-2)", &ctc_lr, 0},
      {"threads", 't', HB_OPT_INT, "N", "CPU threads (default: OMP_NUM_THREADS or all cores)", &threads, 0},
      {0}};
  int npos = 0;
  char **pos = NULL;
  int rc = cli_parse(cmd, opts, argc, argv, &npos, &pos);
  if (rc) return rc > 0 ? 0 : -1;
  if (npos == 0) return hb_fail("hubert probe: no feature set given (NAME=FILE.h5[,FILE.h5...])");
  if (epochs < 0 || !(lr > 0) || !(ctc_lr > 0)) return hb_fail("--epochs must be >= 0 and --lr/--ctc-lr > 0");
  if (threads > 0) omp_set_num_threads(threads);
  hb_evalmeta m;
  HB_TRY(evalmeta_load(meta, &m));
  hb_probe_set *sets = hb_calloc((size_t)npos, sizeof(hb_probe_set));
  row_result *rows = NULL;
  task_info ti[NTASK];
  memset(ti, 0, sizeof ti);
  int nsets = 0, nrows = 0;
  rc = -1;
  if (!sets) goto done;
  // Tasks: explicit (each must have its labels) or every task meta.tsv can label.
  int col[NTASK] = {-1, -1, -1, -1, -1};
  for (int k = 0; k < NTASK; k++) {
    int want = !tasks;
    if (tasks) {
      const char *p = tasks;
      size_t n = strlen(task_name[k]);
      while ((p = strstr(p, task_name[k]))) {
        if ((p == tasks || p[-1] == ',') && (p[n] == ',' || !p[n])) want = 1;
        p += n;
      }
    }
    if (!want) continue;
    if (k <= T_CTC) {
      if (m.n_aligned == 0) {
        if (!tasks) continue;
        hb_fail("%s: task %s needs aligned phones (column 'phones' as PHONE:END_S ...), and no utterance has them", meta, task_name[k]);
        goto done;
      }
    } else {
      col[k] = evalmeta_column(&m, task_name[k]);
      if (col[k] < 0) {
        if (!tasks) continue;
        hb_fail("%s: task %s needs a '%s' column, and the header has none", meta, task_name[k], task_name[k]);
        goto done;
      }
    }
    ti[k].on = 1;
  }
  if (tasks) {  // unknown names
    for (const char *p = tasks; *p;) {
      size_t n = strcspn(p, ",");
      int ok = 0;
      for (int k = 0; k < NTASK; k++) ok |= strlen(task_name[k]) == n && !strncmp(p, task_name[k], n);
      if (!ok) {
        hb_fail("--tasks: unknown task '%.*s' (phone, phone_ctc, speaker, language, keyword)", (int)n, p);
        goto done;
      }
      p += n + (p[n] == ',');
    }
  }
  if (m.c_split < 0) {
    hb_fail("%s: no 'split' column (train/valid/test)", meta);
    goto done;
  }
  for (int i = 0; i < npos; i++) {
    if (probe_set_load(&sets[i], pos[i], layers, &m)) goto done;
    nsets++;
    if (i > 0 && probe_set_same_utts(&sets[0], &sets[i], &m)) goto done;
    fprintf(stderr, "set %s: %d layer(s) x %d dims at %g Hz; utterances train/valid/test %lld/%lld/%lld (aligned %lld/%lld/%lld)\n",
            sets[i].name, sets[i].L, sets[i].D, sets[i].rate, (long long)sets[i].nutt[0], (long long)sets[i].nutt[1],
            (long long)sets[i].nutt[2], (long long)sets[i].nal[0], (long long)sets[i].nal[1], (long long)sets[i].nal[2]);
  }
  for (int k = 0; k < NTASK; k++) {
    if (!ti[k].on) continue;
    if (k <= T_CTC) {
      ti[k].C = m.phones.n + (k == T_CTC);
      for (int s = 0; s < 3; s++) ti[k].n[s] = k == T_CTC ? sets[0].nal[s] : (sets[0].nal[s] ? sets[0].foff[s][sets[0].nal[s]] : 0);
    } else {
      if (task_classes(&ti[k], &m, &sets[0], col[k])) goto done;
      for (int s = 0; s < 3; s++)
        for (int64_t i = 0; i < sets[0].nutt[s]; i++) ti[k].n[s] += *evalmeta_cell(&m, sets[0].row[s][i], col[k]) != 0;
    }
    if (ti[k].n[HB_TRAIN] == 0 || ti[k].n[HB_VALID] == 0 || ti[k].n[HB_TEST] == 0) {
      if (!tasks) {
        fprintf(stderr, "task %s skipped: %lld/%lld/%lld train/valid/test samples\n", task_name[k], (long long)ti[k].n[0],
                (long long)ti[k].n[1], (long long)ti[k].n[2]);
        ti[k].on = 0;
        continue;
      }
      hb_fail("%s: task %s has %lld/%lld/%lld train/valid/test samples in the given features (each split needs some)", meta,
              task_name[k], (long long)ti[k].n[0], (long long)ti[k].n[1], (long long)ti[k].n[2]);
      goto done;
    }
    fprintf(stderr, "task %s: %d classes, %lld/%lld/%lld train/valid/test %s\n", task_name[k], ti[k].C, (long long)ti[k].n[0],
            (long long)ti[k].n[1], (long long)ti[k].n[2], k == T_PHONE ? "frames" : "utterances");
  }
  int maxrows = 0;
  for (int i = 0; i < nsets; i++) maxrows += sets[i].L + (sets[i].L > 1 && !no_wsum);
  rows = hb_calloc((size_t)maxrows, sizeof(row_result));
  if (!rows) goto done;
  for (int i = 0; i < nsets; i++)
    for (int l = 0; l < sets[i].L + (sets[i].L > 1 && !no_wsum); l++) {
      rows[nrows].set = i;
      rows[nrows].layer = l < sets[i].L ? l : -1;
      nrows++;
    }
  // One job per (row, task), run in parallel; each probe is single-threaded (BLAS called inside an
  // OpenMP region runs on one thread), so results do not depend on the thread count.
  int njobs = 0, *jrow = hb_calloc((size_t)nrows * NTASK + 1, sizeof(int)), *jtask = hb_calloc((size_t)nrows * NTASK + 1, sizeof(int));
  int *jrc = hb_calloc((size_t)nrows * NTASK + 1, sizeof(int));
  char (*jerr)[512] = hb_calloc((size_t)nrows * NTASK + 1, 512);
  if (!jrow || !jtask || !jrc || !jerr) {
    free(jrow), free(jtask), free(jrc), free(jerr);
    goto done;
  }
  for (int i = 0; i < nrows; i++)
    for (int k = 0; k < NTASK; k++)
      if (ti[k].on) jrow[njobs] = i, jtask[njobs++] = k;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
#pragma omp parallel for schedule(dynamic, 1)
  for (int j = 0; j < njobs; j++) {
    row_result *rr = &rows[jrow[j]];
    const hb_probe_set *ps = &sets[rr->set];
    const int k = jtask[j];
    hb_probe_opts o = {lr, 1e-4, 64, epochs ? epochs : 200, 20, (uint64_t)seed};
    int trc;
    if (k == T_PHONE) {
      o.batch = 256, o.max_epochs = epochs ? epochs : 100, o.patience = 8;
      trc = run_phone_task(ps, rr->layer, ti[k].C, &o, &rr->res[k]);
    } else if (k == T_CTC) {
      o.lr = ctc_lr, o.batch = 4, o.max_epochs = epochs ? epochs : 300, o.patience = 40;
      trc = run_ctc_task(ps, rr->layer, &m, &o, &rr->res[k]);
    } else {
      trc = run_utt_task(ps, rr->layer, &ti[k], &m, col[k], &o, &rr->res[k]);
    }
    jrc[j] = trc;
    if (trc) snprintf(jerr[j], sizeof jerr[j], "%s", hb_errmsg());
    rr->done[k] = !trc;
  }
  for (int j = 0; j < njobs; j++) {
    char label[256];
    row_label(sets, &rows[jrow[j]], label, sizeof label);
    const hb_probe_result *r = &rows[jrow[j]].res[jtask[j]];
    if (jrc[j]) {
      hb_fail("probe %s, task %s: %s", label, task_name[jtask[j]], jerr[j]);
      break;
    }
    fprintf(stderr, "  %-28s %-9s train %.3f valid %.3f test %.3f (best epoch %d of %d)\n", label, task_name[jtask[j]],
            r->score[0], r->score[1], r->score[2], r->best_epoch, r->epochs);
  }
  int failed = 0;
  for (int j = 0; j < njobs; j++) failed |= jrc[j];
  free(jrow), free(jtask), free(jrc), free(jerr);
  if (failed) goto done;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  fprintf(stderr, "%d rows x %d tasks in %.1f s\n", nrows, njobs / (nrows ? nrows : 1), (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
  if (write_outputs(json, md, sets, nsets, rows, nrows, ti, meta)) goto done;
  rc = 0;
done:
  for (int i = 0; i < nrows; i++)
    for (int k = 0; k < NTASK; k++) free(rows[i].res[k].layer_w);
  free(rows);
  for (int i = 0; i < nsets; i++) probe_set_free(&sets[i]);
  free(sets);
  for (int k = 0; k < NTASK; k++) free(ti[k].cls);
  evalmeta_free(&m);
  return rc;
}
