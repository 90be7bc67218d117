// Trainer checkpoints: write into a temporary folder, fsync, rename, swap the last/best links.
#include "train/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/json.h"

#define PATH_N 1024

// out := A/B (fails if it does not fit).
static int join(char *out, size_t n, const char *a, const char *b) {
  int k = snprintf(out, n, "%s/%s", a, b);
  if (k < 0 || (size_t)k >= n) return hb_fail("checkpoint: path too long: %s/%s", a, b);
  return 0;
}

static int fsync_path(const char *path) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return hb_fail("checkpoint: cannot open %s to sync it: %s", path, strerror(errno));
  int rc = fsync(fd);
  int e = errno;
  close(fd);
  if (rc) return hb_fail("checkpoint: fsync %s: %s", path, strerror(e));
  return 0;
}

// fsync every regular file of a flat folder, then the folder itself.
static int fsync_folder(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return hb_fail("checkpoint: cannot list %s: %s", dir, strerror(errno));
  struct dirent *e;
  char p[PATH_N];
  int rc = 0;
  while (!rc && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    rc = join(p, sizeof p, dir, e->d_name) || fsync_path(p);
  }
  closedir(d);
  return rc ? -1 : fsync_path(dir);
}

// Removes a flat folder (checkpoints hold files only).
static int remove_folder(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return errno == ENOENT ? 0 : hb_fail("checkpoint: cannot list %s: %s", dir, strerror(errno));
  struct dirent *e;
  char p[PATH_N];
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (join(p, sizeof p, dir, e->d_name)) { closedir(d); return -1; }
    if (unlink(p) && errno != ENOENT) {
      closedir(d);
      return hb_fail("checkpoint: cannot remove %s: %s", p, strerror(errno));
    }
  }
  closedir(d);
  if (rmdir(dir) && errno != ENOENT) return hb_fail("checkpoint: cannot remove %s: %s", dir, strerror(errno));
  return 0;
}

static void put_sums(json_writer *w, const hb_log_sums *s) {
  jw_key(w, "log_sums");
  jw_begin_object(w);
#define PUT(f) jw_key(w, #f); jw_double(w, s->f);
  PUT(loss) PUT(loss_m) PUT(loss_u) PUT(topic_ce) PUT(gnorm) PUT(audio_s) PUT(count_m) PUT(count_u)
  PUT(correct_m) PUT(correct_u) PUT(topic_n) PUT(topic_correct) PUT(updates) PUT(skipped)
#undef PUT
  jw_end_object(w);
}

static int write_state_json(const char *path, const hb_train_state *st, const hb_train_config *cfg) {
  json_writer w;
  jw_init(&w, 1);
  jw_begin_object(&w);
  jw_key(&w, "format"); jw_string(&w, "hubert-trainer-state");
  jw_key(&w, "version"); jw_int(&w, 1);
  jw_key(&w, "update"); jw_int(&w, st->update);
  jw_key(&w, "loader_epoch"); jw_int(&w, st->pos.epoch);
  jw_key(&w, "loader_batch"); jw_int(&w, st->pos.batch);
  jw_key(&w, "world_size"); jw_int(&w, st->world_size > 0 ? st->world_size : 1);
  jw_key(&w, "seed"); jw_int(&w, (int64_t)st->seed);
  jw_key(&w, "nan_run"); jw_int(&w, st->nan_run);
  jw_key(&w, "nan_total"); jw_int(&w, st->nan_total);
  jw_key(&w, "best_valid_loss"); jw_double(&w, st->best_valid_loss);   // inf -> null
  jw_key(&w, "last_valid_loss"); jw_double(&w, st->last_valid_loss);   // nan -> null
  jw_key(&w, "lr"); jw_double(&w, st->lr);
  jw_key(&w, "schedule"); jw_string(&w, sched_kind_name((hb_lr_kind)cfg->lr_scheduler.name));
  jw_key(&w, "max_update"); jw_int(&w, cfg->optimization.max_update);
  put_sums(&w, &st->sums);
  jw_end_object(&w);
  size_t len;
  char *text = jw_finish(&w, &len);
  if (!text) return hb_fail_prefix("checkpoint: %s", path);
  int rc = file_write_atomic(path, text, len);
  free(text);
  return rc;
}

// SAVE_DIR/NAME := symlink to TARGET, atomically (symlink to a temporary name, rename over).
static int link_atomic(const char *save_dir, const char *name, const char *target) {
  char tmp[PATH_N], dst[PATH_N];
  snprintf(tmp, sizeof tmp, "%s/.%s.tmp", save_dir, name);
  snprintf(dst, sizeof dst, "%s/%s", save_dir, name);
  unlink(tmp);
  if (symlink(target, tmp)) return hb_fail("checkpoint: cannot create link %s: %s", tmp, strerror(errno));
  if (rename(tmp, dst)) return hb_fail("checkpoint: cannot rename %s to %s: %s", tmp, dst, strerror(errno));
  return 0;
}

// N of "checkpoint_<N>" (a plain decimal), else -1.
static long ckpt_number(const char *name) {
  if (strncmp(name, "checkpoint_", 11)) return -1;
  const char *s = name + 11;
  if (!*s) return -1;
  long n = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9' || n > 100000000000L) return -1;
    n = n * 10 + (*s - '0');
  }
  return n;
}

// Number of the checkpoint a link points to (-1 if none).
static long link_number(const char *save_dir, const char *name) {
  char p[PATH_N], t[PATH_N];
  snprintf(p, sizeof p, "%s/%s", save_dir, name);
  ssize_t n = readlink(p, t, sizeof t - 1);
  if (n <= 0) return -1;
  t[n] = 0;
  const char *base = strrchr(t, '/');
  return ckpt_number(base ? base + 1 : t);
}

static int cmp_long(const void *a, const void *b) {
  long x = *(const long *)a, y = *(const long *)b;
  return (x > y) - (x < y);
}

// Keeps the `keep` newest checkpoint_<n> plus the targets of checkpoint_last / checkpoint_best.
static int prune(const char *save_dir, int keep) {
  if (keep < 0) return 0;
  DIR *d = opendir(save_dir);
  if (!d) return hb_fail("checkpoint: cannot list %s: %s", save_dir, strerror(errno));
  long *ns = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    long k = ckpt_number(e->d_name);
    if (k < 0) continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 16;
      long *t = hb_realloc(ns, cap * sizeof *ns);
      if (!t) { free(ns); closedir(d); return -1; }
      ns = t;
    }
    ns[n++] = k;
  }
  closedir(d);
  if (n) qsort(ns, n, sizeof *ns, cmp_long);
  const long last = link_number(save_dir, "checkpoint_last"), best = link_number(save_dir, "checkpoint_best");
  int rc = 0;
  for (size_t i = 0; i + (size_t)keep < n && !rc; i++) {
    if (ns[i] == last || ns[i] == best) continue;
    char p[PATH_N];
    snprintf(p, sizeof p, "%s/checkpoint_%ld", save_dir, ns[i]);
    rc = remove_folder(p);
  }
  free(ns);
  return rc;
}

int checkpoint_save(const char *save_dir, const hb_model *m, const hb_adamw *o, const hb_train_config *cfg,
                    const hb_train_state *st, int is_best, int keep) {
  return checkpoint_save_with(save_dir, m, o, cfg, st, is_best, keep, NULL, NULL);
}

int checkpoint_save_with(const char *save_dir, const hb_model *m, const hb_adamw *o, const hb_train_config *cfg,
                         const hb_train_state *st, int is_best, int keep, int (*extra)(const char *dir, void *ud),
                         void *ud) {
  char name[64], tmp[PATH_N], dst[PATH_N], p[PATH_N];
  snprintf(name, sizeof name, "checkpoint_%lld", (long long)st->update);
  snprintf(tmp, sizeof tmp, "%s/.tmp_%s", save_dir, name);
  snprintf(dst, sizeof dst, "%s/%s", save_dir, name);
  HB_TRY(file_mkdirs(save_dir));
  HB_TRY(remove_folder(tmp));  // a leftover of a crashed write
  if (mkdir(tmp, 0755)) return hb_fail("checkpoint: cannot create %s: %s", tmp, strerror(errno));
  if (model_save(m, tmp, 0)) return hb_fail_prefix("checkpoint %s", tmp);
  HB_TRY(join(p, sizeof p, tmp, "trainer_state.safetensors"));
  if (optim_save(o, p)) return hb_fail_prefix("checkpoint %s", tmp);
  HB_TRY(join(p, sizeof p, tmp, "trainer_state.json"));
  HB_TRY(write_state_json(p, st, cfg));
  HB_TRY(join(p, sizeof p, tmp, "config.yaml"));
  if (train_config_save(cfg, p)) return hb_fail_prefix("checkpoint %s", tmp);
  if (extra && extra(tmp, ud)) return hb_fail_prefix("checkpoint %s", tmp);
  HB_TRY(fsync_folder(tmp));
  const char *crash = getenv("HUBERT_TEST_CRASH_IN_CHECKPOINT");
  if (crash && !strcmp(crash, "1")) abort();  // test hook (see the header)
  struct stat sb;
  if (lstat(dst, &sb) == 0) {  // a checkpoint of the same update from an abandoned run: replace it
    char old[PATH_N];
    snprintf(old, sizeof old, "%s/.old_%s", save_dir, name);
    HB_TRY(remove_folder(old));
    if (rename(dst, old)) return hb_fail("checkpoint: cannot move %s aside: %s", dst, strerror(errno));
    if (rename(tmp, dst)) return hb_fail("checkpoint: cannot rename %s to %s: %s", tmp, dst, strerror(errno));
    HB_TRY(remove_folder(old));
  } else if (rename(tmp, dst)) {
    return hb_fail("checkpoint: cannot rename %s to %s: %s", tmp, dst, strerror(errno));
  }
  HB_TRY(fsync_path(save_dir));
  HB_TRY(link_atomic(save_dir, "checkpoint_last", name));
  if (is_best) HB_TRY(link_atomic(save_dir, "checkpoint_best", name));
  HB_TRY(fsync_path(save_dir));
  return prune(save_dir, keep);
}

int checkpoint_resolve(const char *save_dir, const char *resume, char *dir, int *found) {
  *found = 0;
  dir[0] = 0;
  if (!resume || !strcmp(resume, "none")) return 0;
  if (!strcmp(resume, "auto")) {
    char p[PATH_N];
    snprintf(p, sizeof p, "%s/checkpoint_last", save_dir);
    struct stat sb;
    if (lstat(p, &sb)) return 0;
    if (!file_is_dir(p)) return hb_fail("--resume auto: %s does not point to a checkpoint folder", p);
    if (strlen(p) >= HB_CFG_PATH_LEN) return hb_fail("--resume auto: path too long: %s", p);
    memcpy(dir, p, strlen(p) + 1);
  } else {
    if (!file_is_dir(resume)) return hb_fail("--resume %s: no such checkpoint folder", resume);
    if (strlen(resume) >= HB_CFG_PATH_LEN) return hb_fail("--resume: path too long: %s", resume);
    memcpy(dir, resume, strlen(resume) + 1);
  }
  char p[PATH_N];
  snprintf(p, sizeof p, "%s/trainer_state.json", dir);
  if (!file_exists(p)) return hb_fail("--resume: %s is not a trainer checkpoint (no trainer_state.json)", dir);
  *found = 1;
  return 0;
}

// Doubles that may be null (non-finite when written).
static int get_double_or(const json_value *v, const char *key, double dflt, double *out, const char *path) {
  const json_value *x = json_get(v, key);
  if (!x || x->type == JSON_NULL) { *out = dflt; return 0; }
  if (x->type != JSON_NUMBER) return hb_fail("%s: '%s' must be a number", path, key);
  *out = x->number;
  return 0;
}

int checkpoint_read_state(const char *dir, hb_train_state *st) {
  char path[PATH_N];
  snprintf(path, sizeof path, "%s/trainer_state.json", dir);
  char *text;
  size_t len;
  HB_TRY(file_read_all(path, &text, &len));
  json_value *v;
  int rc = json_parse(text, len, &v);
  free(text);
  if (rc) return hb_fail_prefix("%s", path);
  memset(st, 0, sizeof *st);
  int64_t update = -1, ep = -1, b = -1, seed = 0, nr = 0, nt = 0;
  const char *fmt = NULL;
  rc = -1;
  if (v->type != JSON_OBJECT || json_get_string(v, "format", &fmt) || !fmt || strcmp(fmt, "hubert-trainer-state")) {
    hb_fail("%s: not a hubert trainer state (format)", path);
    goto done;
  }
  if (json_get_int(v, "update", &update) || json_get_int(v, "loader_epoch", &ep) || json_get_int(v, "loader_batch", &b) ||
      json_get_int(v, "seed", &seed) || json_get_int(v, "nan_run", &nr) || json_get_int(v, "nan_total", &nt)) {
    hb_fail_prefix("%s", path);
    goto done;
  }
  if (update < 0 || ep < 1 || b < 0 || nr < 0 || nt < 0) {
    hb_fail("%s: missing or negative update / loader_epoch / loader_batch / nan counters", path);
    goto done;
  }
  st->update = update;
  st->pos.epoch = ep;
  st->pos.batch = b;
  st->seed = (uint64_t)seed;
  st->nan_run = nr;
  st->nan_total = nt;
  int64_t ws = 1;
  if (json_get(v, "world_size") && (json_get_int(v, "world_size", &ws) || ws < 1)) {
    hb_fail("%s: world_size must be an integer >= 1", path);
    goto done;
  }
  st->world_size = ws;
  if (get_double_or(v, "best_valid_loss", INFINITY, &st->best_valid_loss, path) ||
      get_double_or(v, "last_valid_loss", NAN, &st->last_valid_loss, path) ||
      get_double_or(v, "lr", 0, &st->lr, path))
    goto done;
  const json_value *s = json_get(v, "log_sums");
  if (s) {
    hb_log_sums *u = &st->sums;
#define GET(f) if (get_double_or(s, #f, 0, &u->f, path)) goto done;
    GET(loss) GET(loss_m) GET(loss_u) GET(topic_ce) GET(gnorm) GET(audio_s) GET(count_m) GET(count_u)
    GET(correct_m) GET(correct_u) GET(topic_n) GET(topic_correct) GET(updates) GET(skipped)
#undef GET
  }
  rc = 0;
done:
  json_free(v);
  return rc;
}
