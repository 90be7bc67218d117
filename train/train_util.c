#include "train/train_util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/rng.h"

uint64_t train_seed3(uint64_t seed, uint64_t tag, uint64_t a, uint64_t b) {
  return rng_derive_seed(rng_derive_seed(rng_derive_seed(seed, tag), a), b);
}

int train_grow_dev(hb_ctx *ctx, float **p, size_t *cap, size_t n, const char *what) {
  if (n <= *cap) return 0;
  if (*p) ctx->be->free(ctx, *p);
  *p = ctx->be->alloc(ctx, n * sizeof(float));
  *cap = *p ? n : 0;
  return *p ? 0 : hb_fail_prefix("%s buffer (%zu floats)", what, n);
}

int train_grow_host(void **p, size_t *cap, size_t bytes) {
  if (bytes <= *cap) return 0;
  void *q = hb_realloc(*p, bytes);
  if (!q) return -1;
  *p = q;
  *cap = bytes;
  return 0;
}

// Arena bytes are about proportional to max_B x max_samples: the estimate scales the current one.
int train_arena_fit(hb_train_arena *a, int *have, const hb_model *m, int B, long L) {
  if (*have && B <= a->max_B && L <= a->max_samples) return 0;
  int nb = B;
  long nl = L;
  if (*have) {
    int mb = B > a->max_B ? B : a->max_B;
    long ml = L > a->max_samples ? L : a->max_samples;
    const double per_slot = (double)a->bytes / ((double)a->max_B * (double)a->max_samples);
    if ((double)mb * ml <= 2.0 * B * L || per_slot * mb * ml <= 1073741824.0) {
      nb = mb;
      nl = ml;
    }
    train_arena_free(a, m);
    *have = 0;
  }
  HB_TRY(train_arena_init(a, m, nb, nl));
  *have = 1;
  return 0;
}

int train_find_shards(const char *dir, const char *prefix, glob_t *g, int required) {
  char pat[4096];
  snprintf(pat, sizeof pat, "%s/%s*.h5", dir, prefix);
  memset(g, 0, sizeof *g);
  int rc = glob(pat, 0, NULL, g);
  if (rc == GLOB_NOMATCH || (rc == 0 && g->gl_pathc == 0)) {
    if (!required) return 0;
    if (!file_is_dir(dir)) return hb_fail("task.data: shard directory '%s' does not exist", dir);
    return hb_fail("task.data: no %s*.h5 shards in '%s' (write them with hubert shard --prefix %s)", prefix, dir,
                   prefix);
  }
  if (rc) return hb_fail("task.data: cannot list %s", pat);
  return 0;
}

double train_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void train_state_init(hb_train_state *st, uint64_t seed) {
  memset(st, 0, sizeof *st);
  st->seed = seed;
  st->best_valid_loss = INFINITY;
  st->last_valid_loss = NAN;
  st->pos.epoch = 1;
}

int train_config_print_resolved(const hb_train_config *c, int npos, char *const *pos) {
  printf("# resolved config (%s", pos[0]);
  for (int i = 1; i < npos; i++) printf(" %s", pos[i]);
  printf(")\n");
  HB_TRY(train_config_write(c, stdout));
  printf("# end of config\n");
  fflush(stdout);
  return 0;
}
