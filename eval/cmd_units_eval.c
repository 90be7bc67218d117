// `hubert units-eval`: phone purity, cluster purity and PNMI (eval/units_eval.h) of frame label
// sets (units files from `hubert kmeans apply`, or a label set of shards) against the frame phone
// labels of meta.tsv's aligned `phones` column (eval/phones.h for the frame convention).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/error.h"
#include "common/fileutil.h"
#include "common/json.h"
#include "data_prep/labelfile.h"
#include "data_prep/shard.h"
#include "eval/evalmeta.h"
#include "eval/units_eval.h"

typedef struct {
  int64_t *counts;   // (P, K)
  int P, K;
  int64_t utts, skipped;
  double rate;
} ue_acc;

// Adds one utterance's units (T at `rate`) to the table; skipped when meta has no alignment.
static int ue_add(ue_acc *a, const hb_evalmeta *m, const char *file, const char *utt, const int32_t *units,
                  int64_t T, double rate, int K, int32_t **buf, int64_t *cap) {
  int64_t r = evalmeta_row(m, utt, file);
  if (r < 0) return -1;
  if (a->rate == 0) a->rate = rate;
  if (rate != a->rate) return hb_fail("%s: label rate %g Hz differs from the first input's %g Hz", file, rate, a->rate);
  if (K > a->K) return hb_fail("%s: k = %d, more than the first input's %d", file, K, a->K);
  if (T > *cap) {
    int32_t *p = hb_realloc(*buf, sizeof(int32_t) * (size_t)T);
    if (!p) return -1;
    *buf = p;
    *cap = T;
  }
  int rc = evalmeta_frame_phones(m, r, rate, T, *buf);
  if (rc < 0) return hb_fail_prefix("%s", file);
  if (rc == 1) {
    a->skipped++;
    return 0;
  }
  a->utts++;
  if (units_count(a->counts, a->P, a->K, *buf, units, T)) return hb_fail_prefix("%s: utterance '%s'", file, utt);
  return 0;
}

static int ue_file(ue_acc *a, const hb_evalmeta *m, const char *path, const char *name, int32_t **buf, int64_t *cap) {
  if (!name) {
    hb_units u;
    HB_TRY(labelfile_read_units(path, &u));
    if (!a->counts) a->K = u.k;
    int rc = 0;
    if (!a->counts) {
      a->counts = hb_calloc((size_t)a->P * (size_t)a->K, sizeof(int64_t));
      if (!a->counts) rc = -1;
    }
    for (int64_t i = 0; !rc && i < u.n_utts; i++)
      rc = ue_add(a, m, path, u.utt_id[i], u.units + u.offsets[i], u.offsets[i + 1] - u.offsets[i], u.rate, u.k, buf, cap);
    labelfile_free_units(&u);
    return rc;
  }
  hb_shard *s;
  HB_TRY(shard_open(path, &s));
  int j = shard_find_labels(s, name), rc = j < 0 ? -1 : 0;
  int32_t *units = NULL;
  if (!rc && !a->counts) {
    a->K = shard_label_k(s, j);
    a->counts = hb_calloc((size_t)a->P * (size_t)a->K, sizeof(int64_t));
    if (!a->counts) rc = -1;
  }
  for (int64_t i = 0; !rc && i < shard_num_utts(s); i++) {
    const int64_t *off = shard_label_offsets(s, j);
    int64_t T = off[i + 1] - off[i];
    free(units);
    units = hb_malloc(sizeof(int32_t) * (size_t)(T > 0 ? T : 1));
    rc = !units || shard_read_labels(s, j, i, units) ? -1 : 0;
    if (!rc) rc = ue_add(a, m, path, shard_utt_id(s, i), units, T, shard_label_rate(s, j), shard_label_k(s, j), buf, cap);
  }
  free(units);
  shard_close(s);
  return rc;
}

int cmd_units_eval(const hb_command *cmd, int argc, char **argv) {
  const char *meta = NULL, *name = NULL, *json = NULL, *tag = NULL;
  hb_opt opts[] = {
      {"meta", 'm', HB_OPT_STR, "meta.tsv", "utterance table with the aligned `phones` column (demo corpus)", &meta, 1},
      {"name", 'n', HB_OPT_STR, "LABELSET", "inputs are shards: evaluate their label set LABELSET", &name, 0},
      {"json", 0, HB_OPT_STR, "OUT.json", "also write the metrics as JSON", &json, 0},
      {"tag", 0, HB_OPT_STR, "TEXT", "name of this label set in the output (default: the first input)", &tag, 0},
      {0}};
  int npos = 0;
  char **pos = NULL;
  int rc = cli_parse(cmd, opts, argc, argv, &npos, &pos);
  if (rc) return rc > 0 ? 0 : -1;
  if (npos == 0) return hb_fail("hubert units-eval: no LABELS.h5 given");
  hb_evalmeta m;
  HB_TRY(evalmeta_load(meta, &m));
  ue_acc a = {0};
  int32_t *buf = NULL;
  int64_t cap = 0;
  rc = -1;
  if (m.n_aligned == 0 || m.phones.n == 0) {
    hb_fail("%s: no utterance has aligned phones (column 'phones' as PHONE:END_S ...)", meta);
    goto done;
  }
  a.P = m.phones.n;
  for (int i = 0; i < npos; i++)
    if (ue_file(&a, &m, pos[i], name, &buf, &cap)) goto done;
  if (a.utts == 0) {
    hb_fail("%s: none of the %lld utterances has aligned phones in %s", pos[0], (long long)a.skipped, meta);
    goto done;
  }
  hb_unit_quality q;
  if (units_quality(a.counts, a.P, a.K, &q)) goto done;
  if (!tag) tag = pos[0];
  printf("%s: %lld frames at %g Hz of %lld utterances with aligned phones (%lld without skipped); "
         "%d phones, %d of %d units used\n",
         tag, (long long)q.frames, a.rate, (long long)a.utts, (long long)a.skipped, q.n_phones, q.n_units, a.K);
  printf("  phone purity %.4f  cluster purity %.4f  PNMI %.4f  (I %.4f nats, H(phone) %.4f, H(unit) %.4f)\n",
         q.phone_purity, q.cluster_purity, q.pnmi, q.mi, q.h_phone, q.h_unit);
  if (json) {
    json_writer w;
    jw_init(&w, 1);
    jw_begin_object(&w);
    jw_key(&w, "tag"), jw_string(&w, tag);
    jw_key(&w, "inputs"), jw_begin_array(&w);
    for (int i = 0; i < npos; i++) jw_string(&w, pos[i]);
    jw_end_array(&w);
    jw_key(&w, "meta"), jw_string(&w, meta);
    jw_key(&w, "rate"), jw_double(&w, a.rate);
    jw_key(&w, "k"), jw_int(&w, a.K);
    jw_key(&w, "utterances"), jw_int(&w, a.utts);
    jw_key(&w, "skipped_unaligned"), jw_int(&w, a.skipped);
    jw_key(&w, "frames"), jw_int(&w, q.frames);
    jw_key(&w, "phones"), jw_int(&w, q.n_phones);
    jw_key(&w, "units_used"), jw_int(&w, q.n_units);
    jw_key(&w, "phone_purity"), jw_double(&w, q.phone_purity);
    jw_key(&w, "cluster_purity"), jw_double(&w, q.cluster_purity);
    jw_key(&w, "pnmi"), jw_double(&w, q.pnmi);
    jw_key(&w, "mi_nats"), jw_double(&w, q.mi);
    jw_key(&w, "h_phone_nats"), jw_double(&w, q.h_phone);
    jw_key(&w, "h_unit_nats"), jw_double(&w, q.h_unit);
    jw_end_object(&w);
    size_t len;
    char *text = jw_finish(&w, &len);
    if (!text || file_write_atomic(json, text, len)) {
      free(text);
      goto done;
    }
    free(text);
  }
  rc = 0;
done:
  free(buf);
  free(a.counts);
  evalmeta_free(&m);
  return rc;
}
