// `hubert kmeans fit|apply`: k-means units from HDF5 feature files (fairseq learn_kmeans.py /
// dump_km_label.py). The model file KM.h5 holds /centroids (K, D) float32 and attributes
// format = "hubert-kmeans", kind, dataset, dim, rate, k, inertia, n_frames, seed.
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/error.h"
#include "common/fileutil.h"
#include "common/rng.h"
#include "data_prep/featfile.h"
#include "data_prep/h5io.h"
#include "data_prep/kmeans.h"
#include "data_prep/labelfile.h"

#define KM_FORMAT "hubert-kmeans"
#define APPLY_ROWS 65536  // frames per assignment block

typedef struct {
  int k, dim;
  char *kind, *dataset;
  double rate;
  float *centroids;  // (k, dim)
} km_model;

static void km_model_free(km_model *m) {
  free(m->kind); free(m->dataset); free(m->centroids);
  memset(m, 0, sizeof *m);
}

static int km_model_read(const char *path, km_model *m) {
  memset(m, 0, sizeof *m);
  hid_t f;
  if (h5io_open(path, &f)) return -1;
  char *fmt = NULL;
  int64_t k = 0, dim = 0, dims[2];
  void *c = NULL;
  int rc = -1;
  if (h5io_read_str_attr(f, "format", &fmt)) { hb_fail_prefix("not a k-means model"); goto done; }
  if (strcmp(fmt, KM_FORMAT)) { hb_fail("%s: format is '%s', expected '%s'", path, fmt, KM_FORMAT); goto done; }
  if (h5io_read_str_attr(f, "kind", &m->kind) || h5io_read_str_attr(f, "dataset", &m->dataset) ||
      h5io_read_i64_attr(f, "k", &k) || h5io_read_i64_attr(f, "dim", &dim) ||
      h5io_read_f64_attr(f, "rate", &m->rate) || h5io_read(f, "centroids", H5T_NATIVE_FLOAT, 2, dims, &c))
    goto done;
  m->centroids = c;
  if (k <= 0 || dim <= 0 || dims[0] != k || dims[1] != dim) {
    hb_fail("%s: /centroids is (%lld, %lld) but attributes say k=%lld dim=%lld", path, (long long)dims[0],
            (long long)dims[1], (long long)k, (long long)dim);
    goto done;
  }
  for (int64_t i = 0; i < k * dim; i++)
    if (!isfinite(m->centroids[i])) { hb_fail("%s: /centroids holds a non-finite value", path); goto done; }
  m->k = (int)k;
  m->dim = (int)dim;
  rc = 0;
done:
  free(fmt);
  H5Fclose(f);
  if (rc) km_model_free(m);
  return rc;
}

// Opens a feature file and checks it has `dataset` (dim) of the expected kind (NULL = any).
static int open_feats(const char *path, const char *dataset, const char *kind, int dim, hb_featfile **ff, int *dout) {
  if (featfile_open(path, ff)) return -1;
  int d;
  int64_t frames;
  if (featfile_dataset(*ff, dataset, &d, &frames)) goto fail;
  if (kind && strcmp(featfile_kind(*ff), kind)) {
    hb_fail("%s: features are of kind '%s', the k-means model was fit on '%s' features", path, featfile_kind(*ff), kind);
    goto fail;
  }
  if (dim > 0 && d != dim) {
    hb_fail("%s: dataset /%s has dimension %d, the k-means model expects %d", path, dataset, d, dim);
    goto fail;
  }
  *dout = d;
  return 0;
fail:
  featfile_free(*ff);
  *ff = NULL;
  return -1;
}

static int kmeans_fit_cmd(const hb_command *cmd, int argc, char **argv) {
  const char *out = NULL, *layer = "feats";
  double percent = 100.0;
  long seed = 0;
  int quiet = 0, verbose = 0;
  hb_kmeans_params p;
  kmeans_default_params(&p);
  p.k = 0;
  hb_opt opts[] = {
      {"k", 'k', HB_OPT_INT, "K", "number of clusters (100 for MFCC, 500 for HuBERT layers)", &p.k, 1},
      {"out", 'o', HB_OPT_STR, "KM.h5", "output model (centroids + attributes)", &out, 1},
      {"layer", 0, HB_OPT_STR, "NAME", "feature dataset to cluster (default feats; layer_6 for extract output)", &layer, 0},
      {"percent", 0, HB_OPT_DOUBLE, "P", "sample P% of the utterances of each file (fairseq; default 100)", &percent, 0},
      {"batch-size", 0, HB_OPT_INT, "N", "mini-batch size (10000)", &p.batch_size, 0},
      {"max-iter", 0, HB_OPT_INT, "N", "passes over the data (100)", &p.max_iter, 0},
      {"n-init", 0, HB_OPT_INT, "N", "k-means++ restarts (20)", &p.n_init, 0},
      {"max-no-improvement", 0, HB_OPT_INT, "N", "early stopping patience in steps (100; 0 = off)", &p.max_no_improvement, 0},
      {"init-size", 0, HB_OPT_INT, "N", "frames per k-means++ run (default 3 x batch size)", &p.init_size, 0},
      {"lloyd-iters", 0, HB_OPT_INT, "N", "full-batch Lloyd iterations after mini-batch (0)", &p.lloyd_iters, 0},
      {"seed", 0, HB_OPT_LONG, "S", "random seed (0)", &seed, 0},
      {"verbose", 'v', HB_OPT_FLAG, NULL, "progress on stderr", &verbose, 0},
      {"quiet", 'q', HB_OPT_FLAG, NULL, "no summary line", &quiet, 0},
      {0}};
  int npos = 0;
  char **pos = NULL;
  int rc = cli_parse(cmd, opts, argc, argv, &npos, &pos);
  if (rc) return rc > 0 ? 0 : -1;
  if (npos < 1) return hb_fail("hubert kmeans fit: no feature files given (see --help)");
  if (!(percent > 0 && percent <= 100)) return hb_fail("--percent %g: must be in (0, 100]", percent);
  if (p.k <= 0 || p.k > 1000000) return hb_fail("--k %d: must be in 1..1000000", p.k);
  if (p.batch_size <= 0 || p.max_iter < 0 || p.n_init <= 0 || p.lloyd_iters < 0 || p.init_size < 0)
    return hb_fail("--batch-size and --n-init must be > 0; --max-iter, --lloyd-iters, --init-size >= 0");
  p.seed = (uint64_t)seed;
  p.verbose = verbose;

  // Pass 1: check every file and choose the utterances (fairseq samples without replacement).
  hb_rng rng;
  rng_init(&rng, rng_derive_seed((uint64_t)seed, 7));
  hb_featfile **ff = hb_calloc((size_t)npos, sizeof *ff);
  int64_t **sel = hb_calloc((size_t)npos, sizeof *sel), *nsel = hb_calloc((size_t)npos, sizeof *nsel);
  float *x = NULL;
  char *kind = NULL;
  double rate = 0;
  int dim = 0;
  int64_t total = 0;
  rc = -1;
  if (!ff || !sel || !nsel) goto done;
  for (int i = 0; i < npos; i++) {
    int d;
    if (open_feats(pos[i], layer, kind, dim, &ff[i], &d)) goto done;
    if (!kind && !(kind = strdup(featfile_kind(ff[i])))) goto done;
    if (i == 0) { dim = d; rate = featfile_rate(ff[i]); }
    else if (fabs(featfile_rate(ff[i]) - rate) > 1e-9 * rate) {
      hb_fail("%s: frame rate %g differs from %s (%g)", pos[i], featfile_rate(ff[i]), pos[0], rate);
      goto done;
    }
    int64_t U = featfile_num_utts(ff[i]);
    int64_t m = percent >= 100 ? U : (int64_t)((double)U * percent / 100.0);
    if (m < 1 && U > 0) m = 1;
    int64_t *perm = hb_malloc((size_t)(U ? U : 1) * sizeof(int64_t));
    if (!perm) goto done;
    for (int64_t j = 0; j < U; j++) perm[j] = j;
    for (int64_t j = 0; j < m && m < U; j++) {  // partial Fisher-Yates
      int64_t r = j + (int64_t)rng_below(&rng, (uint64_t)(U - j)), t = perm[j];
      perm[j] = perm[r]; perm[r] = t;
    }
    sel[i] = perm;
    nsel[i] = m;
    const int64_t *off = featfile_offsets(ff[i]);
    for (int64_t j = 0; j < m; j++) total += off[perm[j] + 1] - off[perm[j]];
  }
  if (total < p.k) { hb_fail("the sample has %lld frames, fewer than k=%d (raise --percent?)", (long long)total, p.k); goto done; }
  size_t bytes;
  if (hb_mul_size((size_t)total, (size_t)dim * sizeof(float), &bytes) || !(x = hb_malloc(bytes))) {
    hb_fail_prefix("k-means sample of %lld x %d frames", (long long)total, dim);
    goto done;
  }
  // Pass 2: read only the sampled utterances.
  int64_t row = 0;
  for (int i = 0; i < npos; i++) {
    const int64_t *off = featfile_offsets(ff[i]);
    for (int64_t j = 0; j < nsel[i]; j++) {
      int64_t u = sel[i][j], n = off[u + 1] - off[u];
      if (n && featfile_read_rows(ff[i], layer, off[u], n, x + (size_t)row * dim)) goto done;
      row += n;
    }
  }
  for (size_t i = 0; i < (size_t)total * dim; i++)
    if (!isfinite(x[i])) { hb_fail("features hold a non-finite value (row %zu of the sample)", i / dim); goto done; }
  double t0 = omp_get_wtime();
  float *cent = hb_malloc((size_t)p.k * dim * sizeof(float));
  hb_kmeans_stats st;
  if (!cent || kmeans_fit(x, total, dim, &p, cent, &st)) { free(cent); goto done; }
  double secs = omp_get_wtime() - t0;
  // Write the model atomically.
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", out);
  hid_t f;
  int64_t cd[2] = {p.k, dim};
  int wrc = h5io_create(tmp, &f);
  if (!wrc) {
    wrc = h5io_write_str_attr(f, "format", KM_FORMAT) || h5io_write_str_attr(f, "kind", kind) ||
          h5io_write_str_attr(f, "dataset", layer) || h5io_write_i64_attr(f, "k", p.k) ||
          h5io_write_i64_attr(f, "dim", dim) || h5io_write_f64_attr(f, "rate", rate) ||
          h5io_write_f64_attr(f, "inertia", st.inertia) || h5io_write_i64_attr(f, "n_frames", total) ||
          h5io_write_i64_attr(f, "seed", seed) ||
          h5io_write(f, "centroids", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, cd, cent, 0);
    if (wrc) H5Fclose(f);
    else wrc = h5io_close(f);
    if (!wrc) wrc = file_commit_rename(tmp, out);
    if (wrc) remove(tmp);
  }
  free(cent);
  if (wrc) goto done;
  if (!quiet)
    printf("kmeans fit: %s: k=%d on %lld x %d %s /%s frames, %lld steps%s, inertia %.6g (%.6g per frame), %.2f s\n",
           out, p.k, (long long)total, dim, kind, layer, (long long)st.steps,
           p.lloyd_iters ? " + Lloyd" : "", st.inertia, st.inertia / (double)total, secs);
  rc = 0;
done:
  for (int i = 0; ff && i < npos; i++) { if (ff[i]) featfile_free(ff[i]); if (sel) free(sel[i]); }
  free(ff); free(sel); free(nsel); free(x); free(kind);
  return rc;
}

static int kmeans_apply_cmd(const hb_command *cmd, int argc, char **argv) {
  const char *out = NULL, *model = NULL;
  int quiet = 0;
  hb_opt opts[] = {
      {"model", 'm', HB_OPT_STR, "KM.h5", "k-means model from `hubert kmeans fit`", &model, 1},
      {"out", 'o', HB_OPT_STR, "LABELS.h5", "output unit labels (hubert-units file)", &out, 1},
      {"quiet", 'q', HB_OPT_FLAG, NULL, "no summary line", &quiet, 0},
      {0}};
  int npos = 0;
  char **pos = NULL;
  int rc = cli_parse(cmd, opts, argc, argv, &npos, &pos);
  if (rc) return rc > 0 ? 0 : -1;
  if (npos < 1) return hb_fail("hubert kmeans apply: no feature files given (see --help)");
  km_model m;
  if (km_model_read(model, &m)) return -1;
  hb_units u = {0};
  u.k = m.k;
  u.rate = m.rate;
  int64_t cap_u = 1024, cap_f = 1 << 16;
  u.utt_id = hb_calloc((size_t)cap_u, sizeof(char *));
  u.offsets = hb_malloc((size_t)(cap_u + 1) * sizeof(int64_t));
  u.units = hb_malloc((size_t)cap_f * sizeof(int32_t));
  float *buf = hb_malloc((size_t)APPLY_ROWS * m.dim * sizeof(float));
  char src[1024];
  double inertia = 0;
  rc = -1;
  if (!u.utt_id || !u.offsets || !u.units || !buf) goto done;
  u.offsets[0] = 0;
  snprintf(src, sizeof src, "%s /%s (k-means %s)", m.kind, m.dataset, model);
  if (!(u.source = strdup(src))) goto done;
  for (int i = 0; i < npos; i++) {
    hb_featfile *ff;
    int d;
    if (open_feats(pos[i], m.dataset, m.kind, m.dim, &ff, &d)) goto done;
    if (fabs(featfile_rate(ff) - m.rate) > 1e-9 * m.rate) {
      hb_fail("%s: frame rate %g differs from the k-means model's %g", pos[i], featfile_rate(ff), m.rate);
      featfile_free(ff);
      goto done;
    }
    int64_t U = featfile_num_utts(ff);
    const int64_t *off = featfile_offsets(ff);
    int64_t frames = off[U];
    if (u.n_utts + U > cap_u) {
      while (u.n_utts + U > cap_u) cap_u *= 2;
      char **ni = hb_realloc(u.utt_id, (size_t)cap_u * sizeof(char *));
      int64_t *no = ni ? hb_realloc(u.offsets, (size_t)(cap_u + 1) * sizeof(int64_t)) : NULL;
      if (ni) u.utt_id = ni;
      if (no) u.offsets = no;
      if (!ni || !no) { featfile_free(ff); goto done; }
    }
    int64_t base = u.offsets[u.n_utts];
    if (base + frames > cap_f) {
      while (base + frames > cap_f) cap_f *= 2;
      int32_t *nu = hb_realloc(u.units, (size_t)cap_f * sizeof(int32_t));
      if (!nu) { featfile_free(ff); goto done; }
      u.units = nu;
    }
    for (int64_t r0 = 0; r0 < frames; r0 += APPLY_ROWS) {
      int64_t n = frames - r0 < APPLY_ROWS ? frames - r0 : APPLY_ROWS;
      double in;
      if (featfile_read_rows(ff, m.dataset, r0, n, buf)) { featfile_free(ff); goto done; }
      for (int64_t j = 0; j < n * m.dim; j++)
        if (!isfinite(buf[j])) { hb_fail("%s: /%s row %lld holds a non-finite value", pos[i], m.dataset, (long long)(r0 + j / m.dim)); featfile_free(ff); goto done; }
      if (kmeans_assign(buf, n, m.dim, m.centroids, m.k, u.units + base + r0, &in)) { featfile_free(ff); goto done; }
      inertia += in;
    }
    for (int64_t j = 0; j < U; j++) {
      u.utt_id[u.n_utts] = strdup(featfile_utt_id(ff, j));
      if (!u.utt_id[u.n_utts]) { featfile_free(ff); goto done; }
      u.offsets[u.n_utts + 1] = base + off[j + 1];
      u.n_utts++;
    }
    featfile_free(ff);
  }
  if (labelfile_write_units(out, &u)) goto done;
  if (!quiet) {
    int64_t nf = u.offsets[u.n_utts];
    printf("kmeans apply: %s: %lld utterances, %lld frames, k=%d, inertia %.6g (%.6g per frame)\n", out,
           (long long)u.n_utts, (long long)nf, m.k, inertia, nf ? inertia / (double)nf : 0.0);
  }
  rc = 0;
done:
  free(buf);
  labelfile_free_units(&u);
  km_model_free(&m);
  return rc;
}

int cmd_kmeans(const hb_command *cmd, int argc, char **argv) {
  static const hb_command fit = {"kmeans fit", "learn k-means units (mini-batch k-means, fairseq settings) on feature files",
                                 "--k K --out KM.h5 [options] FEATS.h5...", NULL, NULL};
  static const hb_command apply = {"kmeans apply", "label every frame of feature files with its nearest centroid",
                                   "--model KM.h5 --out LABELS.h5 FEATS.h5...", NULL, NULL};
  if (argc >= 2 && !strcmp(argv[1], "fit")) return kmeans_fit_cmd(&fit, argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "apply")) return kmeans_apply_cmd(&apply, argc - 1, argv + 1);
  if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    printf("usage: hubert kmeans fit|apply [options]\n\n  fit    %s\n  apply  %s\n\n(hubert kmeans fit --help for options)\n",
           fit.summary, apply.summary);
    return 0;
  }
  (void)cmd;
  return hb_fail("hubert kmeans: expected 'fit' or 'apply'%s%s%s", argc >= 2 ? ", got '" : "", argc >= 2 ? argv[1] : "",
                 argc >= 2 ? "'" : "");
}
