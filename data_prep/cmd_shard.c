// `hubert shard` (write / check) and `hubert labels` (fairseq .km import / export).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/error.h"
#include "data_prep/km_import.h"
#include "data_prep/shard.h"

#define MAX_SETS 32

// Collects every "--OPT NAME=PATH" / "--OPT=NAME=PATH" (the option table keeps only the last).
static int collect_named(const char *opt, int argc, char **argv, hb_named_path *out, int *n) {
  size_t ol = strlen(opt);
  *n = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = NULL;
    if (!strcmp(a, "--")) break;
    if (strncmp(a, "--", 2) || strncmp(a + 2, opt, ol)) continue;
    if (a[2 + ol] == '=') v = a + 3 + ol;
    else if (a[2 + ol] == 0 && i + 1 < argc) v = argv[++i];
    else continue;
    char *eq = strchr(v, '=');
    if (!eq || eq == v || !eq[1]) return hb_fail("--%s: expected NAME=FILE.h5, got '%s'", opt, v);
    if (*n == MAX_SETS) return hb_fail("--%s: at most %d sets", opt, MAX_SETS);
    char *name = strndup(v, (size_t)(eq - v));
    if (!name) return hb_fail("out of memory");
    out[*n].name = name;
    out[*n].path = eq + 1;
    (*n)++;
  }
  return 0;
}

static int shard_check(int argc, char **argv) {
  static const hb_command sub = {"shard check", "validate shards", "FILE.h5...",
                                 "Checks format, version, every offsets array, unit/topic ids < k and label "
                                 "lengths against audio lengths; exits non-zero naming the file and dataset.",
                                 NULL};
  hb_opt opts[] = {{0}};
  int npos;
  char **pos;
  int rc = cli_parse(&sub, opts, argc, argv, &npos, &pos);
  if (rc) return rc > 0 ? 0 : -1;
  if (npos == 0) {
    return hb_fail("hubert shard check: give one or more shard files");
  }
  int64_t utts = 0, samples = 0;
  for (int f = 0; f < npos; f++) {
    hb_shard *s;
    if (shard_open(pos[f], &s)) {
      return -1;
    }
    int64_t U = shard_num_utts(s), n = shard_audio_offsets(s)[U];
    printf("%s: ok, %lld utterances, %.3f hours, sample rate %d\n", pos[f], (long long)U,
           (double)n / shard_sample_rate(s) / 3600.0, shard_sample_rate(s));
    for (int j = 0; j < shard_num_label_sets(s); j++)
      printf("  labels/%s: k = %d, rate = %g Hz, %lld frames\n", shard_label_name(s, j), shard_label_k(s, j),
             shard_label_rate(s, j), (long long)shard_label_offsets(s, j)[U]);
    for (int j = 0; j < shard_num_topic_sets(s); j++)
      printf("  topics/%s: k = %d\n", shard_topic_name(s, j), shard_topic_k(s, j));
    if (shard_feat_dim(s)) printf("  feats: dim %d\n", shard_feat_dim(s));
    if (shard_speaker(s, 0) || shard_text(s, 0) || shard_phones(s, 0))
      printf("  meta:%s%s%s\n", shard_speaker(s, 0) ? " speaker" : "", shard_text(s, 0) ? " text" : "",
             shard_phones(s, 0) ? " phones" : "");
    utts += U;
    samples += n;
    shard_close(s);
  }
  if (npos > 1) printf("total: %d shards, %lld utterances, %.3f hours\n", npos, (long long)utts, samples / 16000.0 / 3600.0);
  return 0;
}

int cmd_shard(const hb_command *cmd, int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "check")) return shard_check(argc - 1, argv + 1);
  const char *out = NULL, *manifest = NULL, *meta = NULL, *feats = NULL, *prefix = NULL, *dummy = NULL;
  double mb = 256;
  hb_opt opts[] = {
      {"out", 'o', HB_OPT_STR, "DIR", "output folder for PREFIX-00000.h5, ... (created)", &out, 1},
      {"manifest", 'm', HB_OPT_STR, "FILE.tsv", "fairseq manifest: the utterances, in order", &manifest, 1},
      {"labels", 0, HB_OPT_STR, "NAME=FILE.h5", "frame labels (hubert labels/kmeans output); repeatable", &dummy, 0},
      {"topics", 0, HB_OPT_STR, "NAME=FILE.h5", "utterance topics (hubert topics output); repeatable", &dummy, 0},
      {"meta", 0, HB_OPT_STR, "meta.tsv", "utt_id/speaker/text/phones columns (demo corpus meta.tsv)", &meta, 0},
      {"feats", 0, HB_OPT_STR, "FILE.h5", "feature file whose 'feats' dataset is copied in", &feats, 0},
      {"shard-mb", 0, HB_OPT_DOUBLE, "MB", "start a new shard after this many MB of data (default 256)", &mb, 0},
      {"prefix", 0, HB_OPT_STR, "NAME", "shard file prefix (default: manifest name without .tsv)", &prefix, 0},
      {0}};
  int npos;
  char **pos;
  int rc = cli_parse(cmd, opts, argc, argv, &npos, &pos);
  if (rc) return rc > 0 ? 0 : -1;
  int extra = npos;
  if (extra) hb_fail("hubert shard: unexpected argument '%s' (see hubert shard --help)", pos[0]);
  if (extra) return -1;
  hb_named_path labels[MAX_SETS], topics[MAX_SETS];
  int nl = 0, nt = 0;
  char pre[256];
  rc = -1;
  if (collect_named("labels", argc, argv, labels, &nl) || collect_named("topics", argc, argv, topics, &nt)) goto done;
  if (!prefix) {
    const char *b = strrchr(manifest, '/');
    b = b ? b + 1 : manifest;
    size_t l = strlen(b);
    if (l > 4 && !strcmp(b + l - 4, ".tsv")) l -= 4;
    snprintf(pre, sizeof pre, "%.*s", (int)(l < 200 ? l : 200), b);
    prefix = pre;
  }
  hb_shard_opts o = {out, prefix, manifest, nl, labels, nt, topics, meta, feats, mb};
  hb_shard_stats st;
  if (shard_write(&o, &st)) goto done;
  printf("wrote %d shard%s %s/%s-*.h5: %lld utterances, %.3f hours, %d label set%s, %d topic set%s\n", st.n_shards,
         st.n_shards == 1 ? "" : "s", out, prefix, (long long)st.n_utts, st.n_samples / 16000.0 / 3600.0, nl,
         nl == 1 ? "" : "s", nt, nt == 1 ? "" : "s");
  rc = 0;
done:
  for (int j = 0; j < nl; j++) free((char *)labels[j].name);
  for (int j = 0; j < nt; j++) free((char *)topics[j].name);
  return rc;
}

static int labels_import(int argc, char **argv) {
  static const hb_command sub = {"labels import", "fairseq .km -> label file",
                                 "--manifest train.tsv --km train.km [--dict dict.km.txt] --rate 50 --out LABELS.h5",
                                 "Line i of the .km file holds the units of manifest line i; lengths are checked "
                                 "against the audio at --rate with fairseq's 0.1 s tolerance.", NULL};
  const char *manifest = NULL, *km = NULL, *dict = NULL, *out = NULL;
  double rate = 50;
  int k = 0;
  hb_opt opts[] = {{"manifest", 'm', HB_OPT_STR, "FILE.tsv", "fairseq manifest the .km lines belong to", &manifest, 1},
                   {"km", 0, HB_OPT_STR, "FILE.km", "one line of space-separated unit ids per utterance", &km, 1},
                   {"dict", 0, HB_OPT_STR, "dict.km.txt", "fairseq dictionary; every id must be listed", &dict, 0},
                   {"rate", 0, HB_OPT_DOUBLE, "HZ", "label frames per second (default 50)", &rate, 0},
                   {"k", 0, HB_OPT_INT, "K", "number of units (default: from --dict, else max id + 1)", &k, 0},
                   {"out", 'o', HB_OPT_STR, "LABELS.h5", "output label file", &out, 1},
                   {0}};
  int npos;
  char **pos;
  int rc = cli_parse(&sub, opts, argc, argv, &npos, &pos);
  if (rc) return rc > 0 ? 0 : -1;
  int extra = npos;
  if (extra) hb_fail("hubert labels import: unexpected argument '%s'", pos[0]);
  if (extra) return -1;
  HB_TRY(km_import(manifest, km, dict, rate, k, out));
  printf("wrote %s\n", out);
  return 0;
}

static int labels_export(int argc, char **argv) {
  static const hb_command sub = {"labels export", "label file or shard -> fairseq .km + dict",
                                 "LABELS.h5|SHARD.h5 --km out.km [--dict dict.km.txt] [--name NAME]", NULL, NULL};
  const char *km = NULL, *dict = NULL, *name = NULL;
  hb_opt opts[] = {{"km", 0, HB_OPT_STR, "FILE.km", "output: one line of unit ids per utterance", &km, 1},
                   {"dict", 0, HB_OPT_STR, "dict.km.txt", "output: 'id count' for every id in [0, k)", &dict, 0},
                   {"name", 0, HB_OPT_STR, "NAME", "label set to export from a shard", &name, 0},
                   {0}};
  int npos;
  char **pos;
  int rc = cli_parse(&sub, opts, argc, argv, &npos, &pos);
  if (rc) return rc > 0 ? 0 : -1;
  rc = npos != 1 ? hb_fail("hubert labels export: give exactly one label file or shard (got %d)", npos)
                 : km_export(pos[0], name, km, dict);
  if (rc) return -1;
  printf("wrote %s%s%s\n", km, dict ? " and " : "", dict ? dict : "");
  return 0;
}

int cmd_labels(const hb_command *cmd, int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "import")) return labels_import(argc - 1, argv + 1);
  if (argc > 1 && !strcmp(argv[1], "export")) return labels_export(argc - 1, argv + 1);
  if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
    printf("usage: hubert %s import|export [options]   (hubert labels import --help)\n", cmd->name);
    return 0;
  }
  return hb_fail("hubert labels: expected 'import' or 'export' (see hubert labels --help)");
}
