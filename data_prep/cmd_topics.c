// `hubert topics fit|apply`: HuBERTopic utterance topics. Documents are the dedup'd unit sequences
// of a label file (optionally BPE-merged and n-grammed, see topicdocs.h); the model is LDA
// (lda.h). The model file holds /components float64 (K, V), /vocab int32 (V, ngram), /merges
// int32 (M, 2) and attributes format = "hubert-topic-model", k, k_units, ngram, n_merges,
// doc_topic_prior, topic_word_prior, mean_change_tol, max_doc_update_iter, perplexity, source.
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/error.h"
#include "common/fileutil.h"
#include "data_prep/h5io.h"
#include "data_prep/labelfile.h"
#include "data_prep/lda.h"
#include "data_prep/topicdocs.h"
#include "data_prep/tsv.h"
#include "data_prep/uttindex.h"

#define TM_FORMAT "hubert-topic-model"

// Reads and concatenates label files (same k and rate).
static int read_all_units(int n, char **paths, hb_units *all) {
  memset(all, 0, sizeof *all);
  for (int i = 0; i < n; i++) {
    hb_units u;
    if (labelfile_read_units(paths[i], &u)) goto fail;
    if (i == 0) {
      *all = u;
      continue;
    }
    if (u.k != all->k) {
      hb_fail("%s: k=%d units, but %s has k=%d", paths[i], u.k, paths[0], all->k);
      labelfile_free_units(&u);
      goto fail;
    }
    int64_t U = all->n_utts + u.n_utts, F = all->offsets[all->n_utts] + u.offsets[u.n_utts];
    char **ni = hb_realloc(all->utt_id, (size_t)(U ? U : 1) * sizeof(char *));
    if (ni) all->utt_id = ni;
    int64_t *no = ni ? hb_realloc(all->offsets, (size_t)(U + 1) * sizeof(int64_t)) : NULL;
    if (no) all->offsets = no;
    int32_t *nu = no ? hb_realloc(all->units, (size_t)(F ? F : 1) * sizeof(int32_t)) : NULL;
    if (nu) all->units = nu;
    if (!nu) { labelfile_free_units(&u); goto fail; }
    int64_t base = all->offsets[all->n_utts];
    memcpy(all->units + base, u.units, (size_t)u.offsets[u.n_utts] * sizeof(int32_t));
    for (int64_t j = 0; j < u.n_utts; j++) {
      all->utt_id[all->n_utts + j] = u.utt_id[j];
      all->offsets[all->n_utts + j + 1] = base + u.offsets[j + 1];
    }
    all->n_utts = U;
    free(u.utt_id);
    u.utt_id = NULL;
    u.n_utts = 0;
    labelfile_free_units(&u);
  }
  return 0;
fail:
  labelfile_free_units(all);
  return -1;
}

static int write_model(const char *out, const hb_lda_model *m, const hb_topicdocs *td, double perp, const char *src) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", out);
  hid_t f;
  if (h5io_create(tmp, &f)) return -1;
  int64_t cd[2] = {m->k, m->n_words}, vd[2] = {td->n_vocab, td->ngram}, md[2] = {td->n_merges, 2};
  int rc = h5io_write_str_attr(f, "format", TM_FORMAT) || h5io_write_i64_attr(f, "k", m->k) ||
           h5io_write_i64_attr(f, "k_units", td->k_units) || h5io_write_i64_attr(f, "ngram", td->ngram) ||
           h5io_write_i64_attr(f, "n_merges", td->n_merges) ||
           h5io_write_f64_attr(f, "doc_topic_prior", m->doc_topic_prior) ||
           h5io_write_f64_attr(f, "topic_word_prior", m->topic_word_prior) ||
           h5io_write_f64_attr(f, "mean_change_tol", m->mean_change_tol) ||
           h5io_write_i64_attr(f, "max_doc_update_iter", m->max_doc_update_iter) ||
           h5io_write_f64_attr(f, "perplexity", perp) ||
           h5io_write_str_attr(f, "source", src) ||
           h5io_write(f, "components", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, cd, m->components, 0) ||
           h5io_write(f, "vocab", H5T_STD_I32LE, H5T_NATIVE_INT32, 2, vd, td->vocab, 0) ||
           (td->n_merges && h5io_write(f, "merges", H5T_STD_I32LE, H5T_NATIVE_INT32, 2, md, td->merges, 0));
  if (rc) H5Fclose(f);
  else rc = h5io_close(f);
  if (!rc) rc = file_commit_rename(tmp, out);
  if (rc) remove(tmp);
  return rc ? -1 : 0;
}

static int read_model(const char *path, hb_lda_model *m, hb_topicdocs *td) {
  memset(m, 0, sizeof *m);
  memset(td, 0, sizeof *td);
  hid_t f;
  if (h5io_open(path, &f)) return -1;
  char *fmt = NULL;
  int64_t k, ku, ng, nm, mi, cd[2], vd[2], md[2] = {0, 2};
  void *comp = NULL, *vocab = NULL, *merges = NULL;
  int rc = -1;
  if (h5io_read_str_attr(f, "format", &fmt)) { hb_fail_prefix("not a topic model"); goto done; }
  if (strcmp(fmt, TM_FORMAT)) { hb_fail("%s: format is '%s', expected '%s'", path, fmt, TM_FORMAT); goto done; }
  if (h5io_read_i64_attr(f, "k", &k) || h5io_read_i64_attr(f, "k_units", &ku) ||
      h5io_read_i64_attr(f, "ngram", &ng) || h5io_read_i64_attr(f, "n_merges", &nm) ||
      h5io_read_i64_attr(f, "max_doc_update_iter", &mi) ||
      h5io_read_f64_attr(f, "doc_topic_prior", &m->doc_topic_prior) ||
      h5io_read_f64_attr(f, "topic_word_prior", &m->topic_word_prior) ||
      h5io_read_f64_attr(f, "mean_change_tol", &m->mean_change_tol))
    goto done;
  if (k <= 0 || k > 100000 || ku <= 0 || ku > (1 << 30) || ng < 1 || ng > 8 || nm < 0 || nm > 1000000 || mi < 0 ||
      !(m->doc_topic_prior > 0) || !(m->topic_word_prior > 0)) {
    hb_fail("%s: attributes out of range (k=%lld k_units=%lld ngram=%lld n_merges=%lld)", path, (long long)k, (long long)ku,
            (long long)ng, (long long)nm);
    goto done;
  }
  if (h5io_read(f, "components", H5T_NATIVE_DOUBLE, 2, cd, &comp) || h5io_read(f, "vocab", H5T_NATIVE_INT32, 2, vd, &vocab))
    goto done;
  if (nm && h5io_read(f, "merges", H5T_NATIVE_INT32, 2, md, &merges)) goto done;
  if (cd[0] != k || vd[1] != ng || cd[1] != vd[0] || md[0] != nm || md[1] != 2 || vd[0] <= 0 || vd[0] > INT32_MAX) {
    hb_fail("%s: /components (%lld, %lld), /vocab (%lld, %lld), /merges (%lld, %lld) do not match k=%lld ngram=%lld n_merges=%lld",
            path, (long long)cd[0], (long long)cd[1], (long long)vd[0], (long long)vd[1], (long long)md[0], (long long)md[1],
            (long long)k, (long long)ng, (long long)nm);
    goto done;
  }
  for (int64_t i = 0; i < cd[0] * cd[1]; i++)
    if (!(((double *)comp)[i] > 0) || isinf(((double *)comp)[i])) { hb_fail("%s: /components holds a value that is not finite and > 0", path); goto done; }
  if (topicdocs_init(td, (int)ku, (int)ng, (int)nm, merges, (int)vd[0], vocab)) { merges = vocab = NULL; hb_fail_prefix("%s", path); goto done; }
  merges = vocab = NULL;
  m->k = (int)k;
  m->n_words = (int)cd[1];
  m->max_doc_update_iter = (int)mi;
  m->components = comp;
  comp = NULL;
  rc = 0;
done:
  free(fmt); free(comp); free(vocab); free(merges);
  H5Fclose(f);
  return rc;
}

// ---- NMI of topics against metadata columns --------------------------------------------------

static int str_index(char ***names, int *n, const char *s) {
  for (int i = 0; i < *n; i++)
    if (!strcmp((*names)[i], s)) return i;
  char **nn = hb_realloc(*names, (size_t)(*n + 1) * sizeof(char *));
  if (!nn) return -1;
  *names = nn;
  if (!(nn[*n] = strdup(s))) return -1;
  return (*n)++;
}

// NMI with arithmetic-mean normalisation (sklearn's default): I(a;b) / ((H(a) + H(b)) / 2).
static double nmi(const int *a, const int *b, int64_t n, int na, int nb) {
  double *joint = calloc((size_t)na * nb, sizeof(double)), *pa = calloc((size_t)na, sizeof(double)), *pb = calloc((size_t)nb, sizeof(double));
  double mi = 0, ha = 0, hb = 0;
  if (joint && pa && pb && n > 0) {
    for (int64_t i = 0; i < n; i++) { joint[(size_t)a[i] * nb + b[i]] += 1.0 / n; pa[a[i]] += 1.0 / n; pb[b[i]] += 1.0 / n; }
    for (int i = 0; i < na; i++) if (pa[i] > 0) ha -= pa[i] * log(pa[i]);
    for (int j = 0; j < nb; j++) if (pb[j] > 0) hb -= pb[j] * log(pb[j]);
    for (int i = 0; i < na; i++)
      for (int j = 0; j < nb; j++) {
        double p = joint[(size_t)i * nb + j];
        if (p > 0) mi += p * log(p / (pa[i] * pb[j]));
      }
  }
  free(joint); free(pa); free(pb);
  return ha + hb > 0 ? mi / ((ha + hb) / 2) : 1.0;
}

// meta: TSV with a header line "utt_id<TAB>col1<TAB>col2..." (data_prep/tsv.h); prints
// NMI(topic, col) for every column but utt_id.
static int report_nmi(const char *meta, const hb_topics *t) {
  hb_tsv tsv;
  if (tsv_read(meta, &tsv)) return -1;
  const int cu = tsv_column(&tsv, "utt_id");
  if (cu < 0 || tsv.ncol < 2) {
    tsv_free(&tsv);
    return hb_fail("%s: header needs an utt_id column and at least one other column", meta);
  }
  const int ncol = tsv.ncol;
  int rc = -1;
  int64_t U = t->n_utts, matched = 0;
  int *lab = hb_malloc((size_t)(U ? U : 1) * ncol * sizeof(int)), *nv = hb_calloc((size_t)ncol, sizeof(int));
  int *topic = hb_malloc((size_t)(U ? U : 1) * sizeof(int));
  char ***vals = hb_calloc((size_t)ncol, sizeof(char **));
  hb_index idx = {0};
  int have_idx = 0;
  if (!lab || !nv || !topic || !vals) goto done;
  if (index_build(&idx, t->utt_id, U)) goto done;
  have_idx = 1;
  for (int64_t r = 0; r < tsv.nrows; r++) {
    int64_t u = index_find(&idx, tsv_cell(&tsv, r, cu));
    if (u < 0) continue;
    for (int c = 0; c < ncol; c++) {
      if (c == cu) continue;
      int v = str_index(&vals[c], &nv[c], tsv_cell(&tsv, r, c));
      if (v < 0) goto done;
      lab[(size_t)matched * ncol + c] = v;
    }
    topic[matched++] = t->topics[u];
  }
  if (!matched) { hb_fail("%s: no utt_id matches the labelled utterances", meta); goto done; }
  int *col = hb_malloc((size_t)matched * sizeof(int));
  if (!col) goto done;
  for (int c = 0; c < ncol; c++) {
    if (c == cu || nv[c] < 2) continue;  // a constant column carries no information
    for (int64_t i = 0; i < matched; i++) col[i] = lab[(size_t)i * ncol + c];
    printf("  NMI(topic, %s) = %.4f  (%lld utterances, %d values)\n", tsv.header[c], nmi(topic, col, matched, t->k, nv[c]),
           (long long)matched, nv[c]);
  }
  free(col);
  rc = 0;
done:
  for (int c = 0; vals && c < ncol; c++) { for (int i = 0; i < nv[c]; i++) free(vals[c][i]); free(vals[c]); }
  if (have_idx) index_free(&idx);
  free(vals); free(lab); free(nv); free(topic);
  tsv_free(&tsv);
  return rc;
}

// ---- commands -----------------------------------------------------------------------------------

static int topics_fit_cmd(const hb_command *cmd, int argc, char **argv) {
  const char *out = NULL, *method = "online";
  int ngram = 1, merges = 0, quiet = 0, verbose = 0;
  long seed = 0;
  hb_lda_params p;
  lda_default_params(&p);
  p.k = 50;
  hb_opt opts[] = {
      {"k", 'k', HB_OPT_INT, "K", "number of topics (50)", &p.k, 0},
      {"out", 'o', HB_OPT_STR, "MODEL.h5", "output topic model", &out, 1},
      {"ngram", 0, HB_OPT_INT, "N", "words are N-grams of dedup'd units/subwords (1)", &ngram, 0},
      {"bpe-merges", 0, HB_OPT_INT, "M", "BPE-style merges of frequent unit pairs into pseudo-subwords (0)", &merges, 0},
      {"method", 0, HB_OPT_STR, "online|batch", "variational Bayes flavour (online)", &method, 0},
      {"max-iter", 0, HB_OPT_INT, "N", "passes over the documents (10)", &p.max_iter, 0},
      {"batch-size", 0, HB_OPT_INT, "N", "documents per online update (128)", &p.batch_size, 0},
      {"learning-decay", 0, HB_OPT_DOUBLE, "KAPPA", "online learning-rate decay (0.7)", &p.learning_decay, 0},
      {"learning-offset", 0, HB_OPT_DOUBLE, "TAU", "online learning-rate offset (10)", &p.learning_offset, 0},
      {"seed", 0, HB_OPT_LONG, "S", "random seed (0)", &seed, 0},
      {"verbose", 'v', HB_OPT_FLAG, NULL, "progress on stderr", &verbose, 0},
      {"quiet", 'q', HB_OPT_FLAG, NULL, "no summary line", &quiet, 0},
      {0}};
  int npos = 0;
  char **pos = NULL;
  int rc = cli_parse(cmd, opts, argc, argv, &npos, &pos);
  if (rc) return rc > 0 ? 0 : -1;
  if (npos < 1) return hb_fail("hubert topics fit: no label files given (see --help)");
  if (!strcmp(method, "online")) p.method = HB_LDA_ONLINE;
  else if (!strcmp(method, "batch")) p.method = HB_LDA_BATCH;
  else return hb_fail("--method '%s': expected online or batch", method);
  if (p.k <= 0 || p.k > 100000) return hb_fail("--k %d: must be in 1..100000", p.k);
  p.seed = (uint64_t)seed;
  p.verbose = verbose;
  hb_units u;
  if (read_all_units(npos, pos, &u)) return -1;
  hb_topicdocs td;
  hb_csr X = {0};
  hb_lda_model m = {0};
  rc = -1;
  double t0 = omp_get_wtime(), perp = 0;
  if (topicdocs_learn(&td, &u, ngram, merges)) goto done_u;
  if (topicdocs_build(&td, &u, &X, NULL)) goto done_td;
  if (lda_fit(&X, &p, &m, &perp)) goto done_td;
  char src[1024];
  snprintf(src, sizeof src, "LDA (%s) of %lld utterances from %s%s", method, (long long)u.n_utts, pos[0], npos > 1 ? " ..." : "");
  if (write_model(out, &m, &td, perp, src)) goto done_m;
  if (!quiet)
    printf("topics fit: %s: k=%d topics, %lld documents, vocabulary %d (%d merges, %d-grams), perplexity %.4f, %.2f s\n", out,
           p.k, (long long)X.n_docs, td.n_vocab, td.n_merges, td.ngram, perp, omp_get_wtime() - t0);
  rc = 0;
done_m:
  lda_model_free(&m);
done_td:
  csr_free(&X);
  topicdocs_free(&td);
done_u:
  labelfile_free_units(&u);
  return rc;
}

static int topics_apply_cmd(const hb_command *cmd, int argc, char **argv) {
  const char *out = NULL, *model = NULL, *meta = NULL;
  int quiet = 0;
  hb_opt opts[] = {
      {"model", 'm', HB_OPT_STR, "MODEL.h5", "topic model from `hubert topics fit`", &model, 1},
      {"out", 'o', HB_OPT_STR, "TOPICS.h5", "output topic labels (argmax) and mixtures", &out, 1},
      {"meta", 0, HB_OPT_STR, "FILE.tsv", "utt_id + columns (speaker, language...): report NMI of topics vs each", &meta, 0},
      {"quiet", 'q', HB_OPT_FLAG, NULL, "no summary line", &quiet, 0},
      {0}};
  int npos = 0;
  char **pos = NULL;
  int rc = cli_parse(cmd, opts, argc, argv, &npos, &pos);
  if (rc) return rc > 0 ? 0 : -1;
  if (npos < 1) return hb_fail("hubert topics apply: no label files given (see --help)");
  hb_lda_model m;
  hb_topicdocs td;
  if (read_model(model, &m, &td)) return -1;
  hb_units u = {0};
  hb_csr X = {0};
  hb_topics t = {0};
  double *gamma = NULL, perp = 0;
  int64_t oov = 0;
  rc = -1;
  if (read_all_units(npos, pos, &u)) goto done;
  if (topicdocs_build(&td, &u, &X, &oov)) { hb_fail_prefix("%s", pos[0]); goto done; }
  gamma = hb_malloc((size_t)(u.n_utts ? u.n_utts : 1) * m.k * sizeof(double));
  t.k = m.k;
  t.topics = hb_malloc((size_t)(u.n_utts ? u.n_utts : 1) * sizeof(int32_t));
  t.mixture = hb_malloc((size_t)(u.n_utts ? u.n_utts : 1) * m.k * sizeof(float));
  if (!gamma || !t.topics || !t.mixture) goto done;
  if (lda_transform(&m, &X, gamma)) goto done;
  if (X.indptr[X.n_docs] > 0 && lda_perplexity(&m, &X, gamma, &perp)) goto done;
  for (int64_t d = 0; d < u.n_utts; d++) {
    const double *g = gamma + (size_t)d * m.k;
    double s = 0;
    int a = 0;
    for (int j = 0; j < m.k; j++) { s += g[j]; if (g[j] > g[a]) a = j; }
    for (int j = 0; j < m.k; j++) t.mixture[(size_t)d * m.k + j] = (float)(g[j] / s);
    t.topics[d] = a;
  }
  t.n_utts = u.n_utts;
  t.utt_id = u.utt_id;
  char src[1024];
  snprintf(src, sizeof src, "topic model %s on %s%s", model, pos[0], npos > 1 ? " ..." : "");
  t.source = src;
  rc = labelfile_write_topics(out, &t);
  t.utt_id = NULL;
  t.source = NULL;
  t.n_utts = 0;
  if (rc) goto done;
  if (!quiet) {
    int64_t used = 0;
    int *cnt = hb_calloc((size_t)m.k, sizeof(int));
    for (int64_t d = 0; cnt && d < u.n_utts; d++) cnt[t.topics[d]]++;
    for (int j = 0; cnt && j < m.k; j++) used += cnt[j] > 0;
    free(cnt);
    printf("topics apply: %s: %lld utterances, %lld of %d topics used, perplexity %.4f, %lld out-of-vocabulary words\n", out,
           (long long)u.n_utts, (long long)used, m.k, perp, (long long)oov);
  }
  t.n_utts = u.n_utts;
  t.utt_id = u.utt_id;
  if (meta && report_nmi(meta, &t)) rc = -1;
  t.utt_id = NULL;
  t.n_utts = 0;
done:
  free(gamma);
  labelfile_free_topics(&t);
  csr_free(&X);
  labelfile_free_units(&u);
  lda_model_free(&m);
  topicdocs_free(&td);
  return rc;
}

int cmd_topics(const hb_command *cmd, int argc, char **argv) {
  static const hb_command fit = {"topics fit", "fit an LDA topic model on the unit sequences of label files",
                                 "--out MODEL.h5 [options] LABELS.h5...", NULL, NULL};
  static const hb_command apply = {"topics apply", "topic mixture and label (argmax) of every utterance",
                                   "--model MODEL.h5 --out TOPICS.h5 [--meta FILE.tsv] LABELS.h5...", NULL, NULL};
  if (argc >= 2 && !strcmp(argv[1], "fit")) return topics_fit_cmd(&fit, argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "apply")) return topics_apply_cmd(&apply, argc - 1, argv + 1);
  if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    printf("usage: hubert topics fit|apply [options]\n\n  fit    %s\n  apply  %s\n\n(hubert topics fit --help for options)\n",
           fit.summary, apply.summary);
    return 0;
  }
  (void)cmd;
  return hb_fail("hubert topics: expected 'fit' or 'apply'%s%s%s", argc >= 2 ? ", got '" : "", argc >= 2 ? argv[1] : "",
                 argc >= 2 ? "'" : "");
}
