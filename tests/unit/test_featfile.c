// HDF5 feature files: round trip (several datasets, varying lengths incl. 0 frames), atomic
// writer, and the reader's checks on corrupted offsets, missing data and truncated files.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hdf5.h>

#include "common/rng.h"
#include "data_prep/featfile.h"
#include "tests/test_util.h"

static char g_dir[64];

static const char *tpath(const char *name) {
  static char buf[8][256];
  static int k = 0;
  k = (k + 1) % 8;
  snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
  return buf[k];
}

static void copy_prefix(const char *src, const char *dst, long keep) {
  FILE *f = fopen(src, "rb"), *g = fopen(dst, "wb");
  int c;
  for (long i = 0; (keep < 0 || i < keep) && (c = fgetc(f)) != EOF; i++) fputc(c, g);
  fclose(f);
  fclose(g);
}

// Overwrites /offsets[idx] in an existing file through the HDF5 API.
static void poke_offset(const char *path, hsize_t idx, int64_t value) {
  hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, "offsets", H5P_DEFAULT);
  hid_t fs = H5Dget_space(d);
  hsize_t one = 1;
  hid_t ms = H5Screate_simple(1, &one, NULL);
  H5Sselect_hyperslab(fs, H5S_SELECT_SET, &idx, NULL, &one, NULL);
  H5Dwrite(d, H5T_NATIVE_INT64, ms, fs, H5P_DEFAULT, &value);
  H5Sclose(ms);
  H5Sclose(fs);
  H5Dclose(d);
  H5Fclose(f);
}

static void set_str_attr(const char *path, const char *key, const char *value) {
  hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  hid_t s = H5Screate(H5S_SCALAR);
  if (H5Aexists(f, key) > 0) H5Adelete(f, key);
  hid_t a = H5Acreate2(f, key, t, s, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, t, &value);
  H5Aclose(a);
  H5Sclose(s);
  H5Tclose(t);
  H5Fclose(f);
}

int main(void) {
  strcpy(g_dir, "/tmp/hb_test_feat_XXXXXX");
  if (!mkdtemp(g_dir)) {
    perror("mkdtemp");
    return 1;
  }
  const char *env = getenv("HUBERT_TEST_SEED");
  uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
  printf("  seed %llu\n", (unsigned long long)seed);
  hb_rng rng;
  rng_init(&rng, seed);

  enum { U = 7, ND = 2 };
  const char *names[ND] = {"layer_0", "layer_3"};
  const int dims[ND] = {5, 300};   // 300: several rows per chunk, chunk boundaries crossed
  int64_t lens[U];
  for (int u = 0; u < U; u++) lens[u] = (u == 2 || u == 6) ? 0 : 1 + (int64_t)rng_below(&rng, 900);
  char ids[U][32];
  for (int u = 0; u < U; u++) snprintf(ids[u], sizeof ids[u], "spk%d/utt-é%d", u % 3, u);

  const char *keys[] = {"model"}, *vals[] = {"demo/model-dir"};
  hb_featfile_info info = {.kind = "hubert", .rate = 50.0, .n_attrs = 1, .attr_keys = keys, .attr_values = vals};
  hb_featfile_writer *w = NULL;
  char path[256];
  snprintf(path, sizeof path, "%s", tpath("f.h5"));
  CHECK_OK(featfile_create(path, &info, ND, names, dims, &w));
  int64_t total = 0;
  for (int u = 0; u < U && w; u++) {
    float *buf[ND];
    for (int d = 0; d < ND; d++) {
      buf[d] = malloc(sizeof(float) * (size_t)(lens[u] ? lens[u] : 1) * (size_t)dims[d]);
      for (int64_t i = 0; i < lens[u] * dims[d]; i++) buf[d][i] = (float)(d * 1e6 + (total * dims[d] + i)) * 0.5f;
    }
    CHECK_OK(featfile_append(w, ids[u], lens[u], (const float *const *)buf));
    total += lens[u];
    for (int d = 0; d < ND; d++) free(buf[d]);
  }
  CHECK(access(path, F_OK) != 0);   // nothing under the final name before close
  CHECK_OK(featfile_close(w));
  CHECK(access(path, F_OK) == 0 && access(tpath("f.h5.tmp"), F_OK) != 0);

  hb_featfile *f = NULL;
  CHECK_OK(featfile_open(path, &f));
  if (f) {
    CHECK(featfile_num_utts(f) == U);
    CHECK(strcmp(featfile_kind(f), "hubert") == 0 && featfile_rate(f) == 50.0);
    CHECK(featfile_attr(f, "model") && strcmp(featfile_attr(f, "model"), "demo/model-dir") == 0);
    CHECK(featfile_attr(f, "nope") == NULL);
    const int64_t *off = featfile_offsets(f);
    int64_t acc = 0;
    int ok_ids = 1, ok_off = off[0] == 0;
    for (int u = 0; u < U; u++) {
      ok_ids &= strcmp(featfile_utt_id(f, u), ids[u]) == 0;
      acc += lens[u];
      ok_off &= off[u + 1] == acc;
    }
    CHECK(ok_ids && ok_off);
    for (int d = 0; d < ND; d++) {
      int dim;
      int64_t frames;
      CHECK_OK(featfile_dataset(f, names[d], &dim, &frames));
      CHECK(dim == dims[d] && frames == total);
      float *all = malloc(sizeof(float) * (size_t)total * (size_t)dim);
      CHECK_OK(featfile_read_rows(f, names[d], 0, total, all));
      int exact = 1;
      for (int64_t i = 0; i < total * dim; i++) exact &= all[i] == (float)(d * 1e6 + i) * 0.5f;
      CHECK(exact);
      printf("  %s: %lld frames x %d, exact round trip: %s\n", names[d], (long long)total, dim, exact ? "yes" : "NO");
      // a middle slice
      if (total > 10) {
        CHECK_OK(featfile_read_rows(f, names[d], 3, 5, all));
        CHECK(all[0] == (float)(d * 1e6 + 3 * dim) * 0.5f);
      }
      CHECK_ERR(featfile_read_rows(f, names[d], total - 1, 2, all), "outside");
      free(all);
    }
    CHECK_ERR(featfile_dataset(f, "layer_9", NULL, NULL), "no dataset 'layer_9' (has: layer_0, layer_3)");
    featfile_free(f);
  }

  // writer input checks and abort
  const char *dup[2] = {"a", "a"};
  int dd[2] = {3, 3};
  CHECK_ERR(featfile_create(tpath("x.h5"), &info, 2, dup, dd, &w), "given twice");
  const char *bad[1] = {"offsets"};
  CHECK_ERR(featfile_create(tpath("x.h5"), &info, 1, bad, dd, &w), "invalid dataset name");
  const char *one[1] = {"feats"};
  CHECK_OK(featfile_create(tpath("x.h5"), &info, 1, one, dd, &w));
  if (w) {
    float v[6] = {1, 2, 3, 4, NAN, 6};
    const float *pv[1] = {v};
    CHECK_ERR(featfile_append(w, "u1", 2, pv), "non-finite value (NaN/inf) at frame 1");
    featfile_abort(w);
  }
  CHECK(access(tpath("x.h5"), F_OK) != 0 && access(tpath("x.h5.tmp"), F_OK) != 0);

  // corrupted offsets (decreasing, not starting at 0, wrong end), wrong format, version
  copy_prefix(path, tpath("c1.h5"), -1);
  poke_offset(tpath("c1.h5"), 2, 0 - 1);
  CHECK_ERR(featfile_open(tpath("c1.h5"), &f), "/offsets decreases at index 2");
  copy_prefix(path, tpath("c2.h5"), -1);
  poke_offset(tpath("c2.h5"), 0, 4);
  CHECK_ERR(featfile_open(tpath("c2.h5"), &f), "/offsets[0] is 4, must be 0");
  copy_prefix(path, tpath("c3.h5"), -1);
  poke_offset(tpath("c3.h5"), U, total + 100);
  CHECK_ERR(featfile_open(tpath("c3.h5"), &f), "dataset /layer_0 has");
  copy_prefix(path, tpath("c4.h5"), -1);
  set_str_attr(tpath("c4.h5"), "format", "hubert-shard");
  CHECK_ERR(featfile_open(tpath("c4.h5"), &f), "format attribute is 'hubert-shard', expected 'hubert-features'");

  // truncated file at several points, garbage, missing
  FILE *fp = fopen(path, "rb");
  fseek(fp, 0, SEEK_END);
  long size = ftell(fp);
  fclose(fp);
  long cuts[] = {0, 100, 2000, size / 2, size - 64};
  for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
    copy_prefix(path, tpath("t.h5"), cuts[i]);
    hb_clear_error();
    int rc = featfile_open(tpath("t.h5"), &f);
    g_test_checks++;
    if (rc == 0) {
      g_test_failures++;
      fprintf(stderr, "FAIL: file truncated to %ld of %ld bytes opened without error\n", cuts[i], size);
      featfile_free(f);
    } else {
      printf("  truncated to %ld/%ld bytes -> %s\n", cuts[i], size, hb_errmsg());
      CHECK(strstr(hb_errmsg(), "t.h5") != NULL);
    }
  }
  CHECK_ERR(featfile_open(tpath("missing.h5"), &f), "missing.h5: no such file");
  fp = fopen(tpath("g.h5"), "wb");
  fputs("this is not hdf5\n", fp);
  fclose(fp);
  CHECK_ERR(featfile_open(tpath("g.h5"), &f), "g.h5: not an HDF5 file");

  const char *rm[] = {"f.h5", "c1.h5", "c2.h5", "c3.h5", "c4.h5", "t.h5", "g.h5"};
  for (size_t i = 0; i < sizeof rm / sizeof *rm; i++) unlink(tpath(rm[i]));
  rmdir(g_dir);
  return test_summary("test_featfile");
}
