// `hubert manifest DIR --out train.tsv [--valid-out valid.tsv --valid-percent P]`: fairseq's
// examples/wav2vec/wav2vec_manifest.py. Recursive scan of DIR for the given extensions (hidden
// names skipped, as Python's glob does), paths sorted bytewise, root line = absolute DIR, then
// "relpath<TAB>num_samples". Each file in sorted order draws u ~ U[0, 1) from the Philox RNG
// seeded with --seed and goes to valid when u < P (fairseq: train when random() > P), so the
// split is a pure function of (file list, seed, P).
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <sndfile.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/error.h"
#include "common/rng.h"
#include "data_prep/inputs.h"

#define MAX_EXTS 16
#define MAX_DEPTH 64

typedef struct {
  char **rel;
  int n, cap;
  int nexts;
  char *exts[MAX_EXTS];
} scan_state;

static int has_ext(const scan_state *s, const char *name) {
  const char *dot = strrchr(name, '.');
  if (!dot || dot == name) return 0;
  for (int i = 0; i < s->nexts; i++)
    if (strcasecmp(dot + 1, s->exts[i]) == 0) return 1;
  return 0;
}

static int push_rel(scan_state *s, const char *rel) {
  if (s->n == s->cap) {
    int ncap = s->cap ? s->cap * 2 : 256;
    if (ncap < s->cap) return hb_fail("too many files");
    char **p = hb_realloc(s->rel, (size_t)ncap * sizeof *p);
    if (!p) return -1;
    s->rel = p;
    s->cap = ncap;
  }
  if (!(s->rel[s->n] = strdup(rel))) return hb_fail("out of memory");
  s->n++;
  return 0;
}

// Scans root/rel (rel "" for the root). Symlinked files are followed, symlinked directories
// are not (no loops).
static int scan_dir(scan_state *s, const char *root, const char *rel, int depth) {
  char dpath[PATH_MAX];
  if (snprintf(dpath, sizeof dpath, "%s%s%s", root, rel[0] ? "/" : "", rel) >= (int)sizeof dpath)
    return hb_fail("%s/%s: path too long", root, rel);
  if (depth > MAX_DEPTH) return hb_fail("%s: directories nested deeper than %d", dpath, MAX_DEPTH);
  DIR *d = opendir(dpath);
  if (!d) return hb_fail("%s: cannot open directory: %s", dpath, strerror(errno));
  struct dirent *e;
  int rc = 0;
  while (rc == 0 && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char child_rel[PATH_MAX], child[PATH_MAX];
    if (snprintf(child_rel, sizeof child_rel, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name) >= (int)sizeof child_rel ||
        snprintf(child, sizeof child, "%s/%s", root, child_rel) >= (int)sizeof child) {
      rc = hb_fail("%s/%s: path too long", dpath, e->d_name);
      break;
    }
    struct stat lst, st;
    if (lstat(child, &lst) != 0) continue;  // vanished while scanning
    if (S_ISDIR(lst.st_mode)) {
      rc = scan_dir(s, root, child_rel, depth + 1);
    } else if (has_ext(s, e->d_name) && stat(child, &st) == 0 && S_ISREG(st.st_mode)) {
      rc = push_rel(s, child_rel);
    }
  }
  closedir(d);
  return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// Number of frames (samples per channel) from the header, as soundfile.info(f).frames.
static int count_samples(const char *path, int64_t *out, double *seconds) {
  SF_INFO info;
  memset(&info, 0, sizeof info);
  SNDFILE *sf = sf_open(path, SFM_READ, &info);
  if (!sf) return hb_fail("%s: cannot read as audio: %s", path, sf_strerror(NULL));
  sf_close(sf);
  if (info.frames <= 0) return hb_fail("%s: empty (0 samples)", path);
  *out = (int64_t)info.frames;
  *seconds = info.samplerate > 0 ? (double)info.frames / info.samplerate : 0.0;
  return 0;
}

static int parse_exts(scan_state *s, char *buf, const char *spec) {
  snprintf(buf, 256, "%s", spec);
  for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
    while (*tok == '.') tok++;
    if (!*tok) continue;
    if (s->nexts == MAX_EXTS) return hb_fail("--ext: more than %d extensions", MAX_EXTS);
    s->exts[s->nexts++] = tok;
  }
  if (s->nexts == 0) return hb_fail("--ext '%s': no extension given", spec);
  return 0;
}

static int write_manifests(const char *dir, const char *out, const char *valid_out, const char *ext,
                           double valid_percent, long seed, int skip_bad, int quiet);

int cmd_manifest(const hb_command *cmd, int argc, char **argv) {
  const char *out = NULL, *valid_out = NULL, *ext = "wav,flac";
  double valid_percent = -1.0;
  long seed = 42;
  int skip_bad = 0, quiet = 0;
  hb_opt opts[] = {
      {"out", 'o', HB_OPT_STR, "train.tsv", "training manifest", &out, 1},
      {"valid-out", 0, HB_OPT_STR, "valid.tsv", "validation manifest", &valid_out, 0},
      {"valid-percent", 0, HB_OPT_DOUBLE, "P",
       "fraction in [0, 1] of files drawn for validation (fairseq's name and meaning; default 0.01 with --valid-out)",
       &valid_percent, 0},
      {"seed", 0, HB_OPT_LONG, "S", "seed of the train/valid draw (default 42)", &seed, 0},
      {"ext", 0, HB_OPT_STR, "LIST", "comma-separated audio extensions, case-insensitive (default wav,flac)", &ext, 0},
      {"skip-bad", 0, HB_OPT_FLAG, NULL, "leave out unreadable/empty audio files (counted) instead of failing", &skip_bad, 0},
      {"quiet", 'q', HB_OPT_FLAG, NULL, "no summary line", &quiet, 0},
      {0}};
  int npos = 0;
  char **pos = NULL;
  int rc = cli_parse(cmd, opts, argc, argv, &npos, &pos);
  if (rc) return rc > 0 ? 0 : -1;
  rc = npos == 1 ? write_manifests(pos[0], out, valid_out, ext, valid_percent, seed, skip_bad, quiet)
                 : hb_fail("manifest: give exactly one DIR (got %d arguments)", npos);
  return rc;
}

static int write_manifests(const char *dir, const char *out, const char *valid_out, const char *ext,
                           double valid_percent, long seed, int skip_bad, int quiet) {
  if (valid_percent < 0.0) valid_percent = valid_out ? 0.01 : 0.0;
  if (!(valid_percent >= 0.0 && valid_percent <= 1.0))
    return hb_fail("--valid-percent %g: must be a fraction in [0, 1] (0.01 = 1%%)", valid_percent);
  if (valid_percent > 0.0 && !valid_out) return hb_fail("--valid-percent %g needs --valid-out FILE", valid_percent);
  if (valid_out && strcmp(valid_out, out) == 0) return hb_fail("--out and --valid-out are the same file '%s'", out);

  scan_state s;
  memset(&s, 0, sizeof s);
  char extbuf[256];
  if (parse_exts(&s, extbuf, ext)) return -1;
  char root[PATH_MAX];
  if (!realpath(dir, root)) return hb_fail("%s: %s", dir, strerror(errno));
  struct stat st;
  if (stat(root, &st) != 0 || !S_ISDIR(st.st_mode)) return hb_fail("%s: not a directory", dir);

  hb_manifest train = {0}, valid = {0};
  int64_t *counts = NULL;
  int status = scan_dir(&s, root, "", 0);
  if (status == 0 && s.n == 0) status = hb_fail("%s: no audio files with extension %s found", dir, ext);
  if (status == 0) {
    qsort(s.rel, (size_t)s.n, sizeof *s.rel, cmp_str);
    counts = hb_malloc((size_t)s.n * sizeof *counts);
    train.relpath = hb_malloc((size_t)s.n * sizeof(char *));
    train.num_samples = hb_malloc((size_t)s.n * sizeof(int64_t));
    valid.relpath = hb_malloc((size_t)s.n * sizeof(char *));
    valid.num_samples = hb_malloc((size_t)s.n * sizeof(int64_t));
    if (!counts || !train.relpath || !train.num_samples || !valid.relpath || !valid.num_samples) status = -1;
  }
  int64_t skipped = 0;
  double total = 0.0;
  hb_rng rng;
  rng_init(&rng, (uint64_t)seed);
  for (int i = 0; status == 0 && i < s.n; i++) {
    char full[PATH_MAX * 2];
    snprintf(full, sizeof full, "%s/%s", root, s.rel[i]);
    // draw for every listed file, readable or not, so skipping one never reshuffles the rest
    int to_valid = rng_uniform_double(&rng) < valid_percent;
    double sec = 0.0;
    if (count_samples(full, &counts[i], &sec)) {
      if (!skip_bad) {
        status = hb_fail_prefix("manifest (--skip-bad leaves such files out)");
        break;
      }
      fprintf(stderr, "skipping: %s\n", hb_errmsg());
      skipped++;
      continue;
    }
    total += sec;
    hb_manifest *m = to_valid ? &valid : &train;
    m->relpath[m->n] = s.rel[i];
    m->num_samples[m->n] = counts[i];
    m->n++;
  }
  if (status == 0 && train.n + valid.n == 0) status = hb_fail("%s: no readable audio file (%lld skipped)", dir, (long long)skipped);
  train.root = valid.root = root;
  if (status == 0) status = manifest_write(out, &train);
  if (status == 0 && valid_out) status = manifest_write(valid_out, &valid);
  if (status == 0 && !quiet) {
    printf("manifest: %d files, %.1f %s of audio -> %s (%d)", train.n + valid.n,
           total >= 3600.0 ? total / 3600.0 : total / 60.0, total >= 3600.0 ? "h" : "min", out, train.n);
    if (valid_out) printf(", %s (%d)", valid_out, valid.n);
    if (skipped) printf("; skipped %lld bad file%s", (long long)skipped, skipped == 1 ? "" : "s");
    printf("\n");
  }
  // relpath strings belong to s.rel
  free(train.relpath);
  free(train.num_samples);
  free(valid.relpath);
  free(valid.num_samples);
  free(counts);
  for (int i = 0; i < s.n; i++) free(s.rel[i]);
  free(s.rel);
  return status;
}
