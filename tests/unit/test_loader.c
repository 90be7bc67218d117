// HDF5 streaming loader (train/loader.h) on synthetic shards whose audio and labels encode the
// sample position: audio[s] = (s + 37 u) % 32000 - 16000 for utterance u, units of set "km"
// (50 Hz) = frame % 100, of set "half" (25 Hz) = frame % 7. Checks: crops keep labels aligned,
// every utterance exactly once per epoch across ranks (world 1, 2, 3), max_tokens, determinism,
// restore-from-position, and errors naming the file.
#include <hdf5.h>
#include <stdint.h>
#include <unistd.h>

#include "common/rng.h"
#include "data_prep/h5io.h"
#include "data_prep/shard.h"
#include "tests/test_util.h"
#include "train/loader.h"

#define SR 16000
static char g_dir[256];
static int64_t g_len[1000];   // by global utterance number
static int g_nutt = 0;

// /audio chunked and deflated: shard_open never reads it, so corrupting the chunks is only seen
// by the loader's workers.
static int write_deflate_audio(hid_t f, const int16_t *audio, int64_t n) {
  hsize_t dims = (hsize_t)n, chunk = 4096;
  hid_t sp = H5Screate_simple(1, &dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(dcpl, 1, &chunk);
  H5Pset_deflate(dcpl, 1);
  hid_t ds = H5Dcreate2(f, "audio", H5T_STD_I16LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  herr_t e = ds < 0 ? -1 : H5Dwrite(ds, H5T_NATIVE_INT16, H5S_ALL, H5S_ALL, H5P_DEFAULT, audio);
  if (ds >= 0) H5Dclose(ds);
  H5Pclose(dcpl);
  H5Sclose(sp);
  return e < 0 ? -1 : 0;
}

static int corrupt_chunks(const char *path) {
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t ds = H5Dopen2(f, "audio", H5P_DEFAULT);
  hsize_t nch = 0;
  hid_t sp = H5Dget_space(ds);
  H5Dget_num_chunks(ds, sp, &nch);
  haddr_t addr[256];
  hsize_t size[256];
  int n = nch < 256 ? (int)nch : 256;
  for (int i = 0; i < n; i++) {
    hsize_t off[1];
    unsigned mask;
    H5Dget_chunk_info(ds, sp, (hsize_t)i, off, &mask, &addr[i], &size[i]);
  }
  H5Sclose(sp);
  H5Dclose(ds);
  H5Fclose(f);
  FILE *fp = fopen(path, "r+b");
  if (!fp || n == 0) { fprintf(stderr, "corrupt_chunks: %d chunks, fp %p\n", n, (void *)fp); return -1; }
  for (int i = 0; i < n; i++) {
    fseek(fp, (long)addr[i], SEEK_SET);
    for (hsize_t b = 0; b < size[i] && b < 64; b++) fputc(0xA5, fp);
  }
  fclose(fp);
  return 0;
}

// Writes shard `name` with utterances [u0, u0 + n) of lengths g_len. bad: 1 = decreasing audio
// offsets, 2 = no "km" label set, 3 = no topics.
static int write_shard(const char *name, int u0, int n, int bad) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", g_dir, name);
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) return -1;
  int64_t total = 0, frames[2] = {0, 0};
  for (int i = 0; i < n; i++) total += g_len[u0 + i];
  int16_t *audio = malloc((size_t)total * 2 + 2);
  int64_t *off = malloc((size_t)(n + 1) * 8), *loff[2] = {malloc((size_t)(n + 1) * 8), malloc((size_t)(n + 1) * 8)};
  int32_t *units[2] = {malloc((size_t)total / 320 * 4 + 4), malloc((size_t)total / 640 * 4 + 4)}, *topic = malloc((size_t)n * 4);
  char **ids = malloc((size_t)n * sizeof *ids);
  off[0] = loff[0][0] = loff[1][0] = 0;
  for (int i = 0; i < n; i++) {
    int u = u0 + i;
    int64_t len = g_len[u];
    for (int64_t s = 0; s < len; s++) audio[off[i] + s] = (int16_t)((s + 37 * u) % 32000 - 16000);
    off[i + 1] = off[i] + len;
    int hop[2] = {320, 640}, kk[2] = {100, 7};
    for (int j = 0; j < 2; j++) {
      int64_t nf = len / hop[j];
      for (int64_t t = 0; t < nf; t++) units[j][frames[j]++] = (int32_t)(t % kk[j]);
      loff[j][i + 1] = frames[j];
    }
    topic[i] = u % 5;
    ids[i] = malloc(32);
    snprintf(ids[i], 32, "utt%04d", u);
  }
  if (bad == 1 && n > 3) off[2] = off[1] - 1;
  int rc = h5io_write_str_attr(f, "format", HB_SHARD_FORMAT) || h5io_write_i64_attr(f, "version", 1) ||
           h5io_write_i64_attr(f, "sample_rate", SR) || h5io_write_i64_attr(f, "num_utts", n) ||
           h5io_write_strings(f, "utt_id", ids, n) ||
           (bad == 4 ? write_deflate_audio(f, audio, total) : h5io_write_1d(f, "audio", H5T_STD_I16LE, H5T_NATIVE_INT16, audio, total, 4096)) ||
           h5io_write_1d(f, "audio_offsets", H5T_STD_I64LE, H5T_NATIVE_INT64, off, n + 1, 1024);
  hid_t g = H5Gcreate2(f, "labels", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  const char *lname[2] = {"km", "half"};
  double rate[2] = {50, 25};
  int kk[2] = {100, 7};
  for (int j = bad == 2 ? 1 : 0; j < 2 && !rc; j++) {
    hid_t gj = H5Gcreate2(g, lname[j], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    rc = h5io_write_f64_attr(gj, "rate", rate[j]) || h5io_write_i64_attr(gj, "k", kk[j]) ||
         h5io_write_1d(gj, "units", H5T_STD_I32LE, H5T_NATIVE_INT32, units[j], frames[j], 1024) ||
         h5io_write_1d(gj, "offsets", H5T_STD_I64LE, H5T_NATIVE_INT64, loff[j], n + 1, 1024);
    H5Gclose(gj);
  }
  H5Gclose(g);
  if (bad != 3 && !rc) {
    g = H5Gcreate2(f, "topics", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    rc = h5io_write_1d(g, "lda", H5T_STD_I32LE, H5T_NATIVE_INT32, topic, n, 1024);
    hid_t ds = H5Dopen2(g, "lda", H5P_DEFAULT);
    if (!rc) rc = h5io_write_i64_attr(ds, "k", 5);
    H5Dclose(ds);
    H5Gclose(g);
  }
  H5Fclose(f);
  if (bad == 4 && !rc) rc = corrupt_chunks(path);
  for (int i = 0; i < n; i++) free(ids[i]);
  free(ids);
  free(audio);
  free(off);
  free(loff[0]);
  free(loff[1]);
  free(units[0]);
  free(units[1]);
  free(topic);
  return rc ? -1 : 0;
}

static const char *k_labels[] = {"km", "half"};
static const char *k_topics[] = {"lda"};

static hb_loader_opts base_opts(const char *const *paths, int np) {
  hb_loader_opts o = {0};
  o.paths = paths;
  o.n_paths = np;
  o.labels = k_labels;
  o.n_labels = 2;
  o.topics = k_topics;
  o.n_topics = 1;
  o.max_tokens = 60000;
  o.min_sample_size = 2000;
  o.max_sample_size = 16000;
  o.random_crop = 1;
  o.shuffle = 1;
  o.bucket_window = 16;
  o.seed = 1234;
  o.world = 1;
  o.num_workers = 2;
  o.queue_depth = 3;
  return o;
}

// Checks one batch against the position encoding; returns the number of failures.
static int check_batch(const hb_loader *L, const hb_batch *b, const hb_loader_opts *o) {
  int bad = 0;
  int64_t maxsize = 0;
  for (int r = 0; r < b->B; r++) {
    const char *sh;
    int64_t idx, len;
    if (loader_utt_info(L, b->utt[r], &sh, &idx, &len)) return 1;
    int64_t size = !o->pad_audio && len > o->max_sample_size ? o->max_sample_size : len;
    if (size > maxsize) maxsize = size;
    int u = -1;   // recover the global number from the first sample's offset: value(s=0) = 37 u - 16000
    const char *base = strrchr(sh, '/');
    int shard_no = atoi(base + 2);   // names "s0.h5", "s1.h5", ...: 40 utterances each
    u = shard_no * 40 + (int)idx;
    if (g_len[u] != len) bad++;
    int n = b->lengths[r];
    int64_t v0 = (int64_t)(b->audio[(size_t)r * b->T] * 32768.0f) + 16000;
    int64_t start = ((v0 - 37 * u) % 32000 + 32000) % 32000;
    if (n != (len < b->T ? len : b->T) || start + n > len) bad++;
    for (int t = 0; t < b->T; t++) {
      float want = t < n ? (float)((start + t + 37 * u) % 32000 - 16000) / 32768.0f : 0.0f;
      if (b->audio[(size_t)r * b->T + t] != want || b->pad_mask[(size_t)r * b->T + t] != (t >= n)) { bad++; break; }
    }
    double rate[2] = {50, 25};
    int kk[2] = {100, 7}, hop[2] = {320, 640};
    for (int j = 0; j < 2; j++) {
      int64_t fs = (int64_t)nearbyint(start * rate[j] / SR), nf = len / hop[j];
      int64_t want_T = (int64_t)nearbyint(b->T * rate[j] / SR);
      int ln = b->label_lengths[j][r];
      if (!o->pad_audio && ln != b->label_T[j]) bad++;
      if (ln > want_T || (fs + ln > nf)) bad++;
      if (!o->pad_audio && ln < want_T && fs + ln != nf && ln != b->label_T[j]) bad++;
      for (int t = 0; t < b->label_T[j]; t++) {
        int32_t got = b->labels[j][(size_t)r * b->label_T[j] + t];
        if (got != (t < ln ? (int32_t)((fs + t) % kk[j]) : -1)) { bad++; break; }
      }
    }
    if (b->topics[0][r] != u % 5) bad++;
  }
  if ((int64_t)b->B * b->T > o->max_tokens || maxsize * b->B > o->max_tokens) bad++;
  if (bad) fprintf(stderr, "batch epoch %lld index %lld (B %d, T %d): %d problems\n", (long long)b->epoch, (long long)b->index, b->B, b->T, bad);
  return bad;
}

static uint64_t hash_batch(const hb_batch *b) {
  uint64_t h = 1469598103934665603ull;
#define MIX(p, n) for (size_t q_ = 0; q_ < (n); q_++) h = (h ^ ((const uint8_t *)(p))[q_]) * 1099511628211ull
  MIX(&b->B, sizeof b->B);
  MIX(&b->T, sizeof b->T);
  MIX(b->utt, (size_t)b->B * 8);
  MIX(b->audio, (size_t)b->B * b->T * 4);
  for (int j = 0; j < b->n_labels; j++) MIX(b->labels[j], (size_t)b->B * b->label_T[j] * 4);
#undef MIX
  return h;
}

static void test_epochs(const char *const *paths, int np, int world, int workers, int64_t max_tokens) {
  hb_loader_opts o = base_opts(paths, np);
  o.world = world;
  o.num_workers = workers;
  o.max_tokens = max_tokens;
  int *seen = calloc(2 * (size_t)g_nutt, sizeof *seen);
  int bad = 0, pads = 0;
  int64_t batches = 0, kept = 0;
  for (int rank = 0; rank < world; rank++) {
    o.rank = rank;
    hb_loader *L = NULL;
    CHECK_OK(loader_init(&o, &L));
    if (!L) return;
    kept = loader_num_utts(L);
    int64_t n1 = 0, n2 = 0;
    CHECK_OK(loader_epoch_batches(L, 1, &n1));
    CHECK_OK(loader_epoch_batches(L, 2, &n2));
    for (int64_t k = 0; k < n1 + n2; k++) {
      const hb_batch *b;
      if (loader_next_batch(L, &b)) { CHECK_OK(-1); break; }
      CHECK(b->epoch == (k < n1 ? 1 : 2) && b->index == (k < n1 ? k : k - n1));
      bad += check_batch(L, b, &o);
      pads += b->is_pad;
      batches++;
      for (int r = 0; r < b->B && !b->is_pad; r++) seen[(size_t)(b->epoch - 1) * g_nutt + b->utt[r]]++;
    }
    loader_free(L);
  }
  int wrong = 0;
  for (int e = 0; e < 2; e++)
    for (int64_t u = 0; u < kept; u++) wrong += seen[(size_t)e * g_nutt + u] != 1;
  printf("world %d, workers %d, max_tokens %lld: %lld batches over 2 epochs, %lld utterances, %d not seen exactly once, %d pad batches, %d bad batches\n",
         world, workers, (long long)max_tokens, (long long)batches, (long long)kept, wrong, pads, bad);
  CHECK(wrong == 0 && bad == 0);
  free(seen);
}

// Hashes of the next n batches.
static void run_hashes(hb_loader *L, int n, uint64_t *h) {
  for (int k = 0; k < n; k++) {
    const hb_batch *b;
    h[k] = 0;
    if (loader_next_batch(L, &b)) { CHECK_OK(-1); return; }
    h[k] = hash_batch(b);
  }
}

int main(void) {
  uint64_t seed = getenv("HUBERT_TEST_SEED") ? strtoull(getenv("HUBERT_TEST_SEED"), NULL, 10) : (uint64_t)getpid();
  printf("seed %llu\n", (unsigned long long)seed);
  snprintf(g_dir, sizeof g_dir, "/tmp/hb_test_loader_%d", (int)getpid());
  char cmd[600];
  snprintf(cmd, sizeof cmd, "mkdir -p %s", g_dir);
  if (system(cmd)) return 1;
  hb_rng r;
  rng_init(&r, seed);
  g_nutt = 120;
  for (int u = 0; u < g_nutt; u++) g_len[u] = 1000 + (int64_t)rng_below(&r, 30000);
  char p0[512], p1[512], p2[512];
  int fails = write_shard("s0.h5", 0, 40, 0) || write_shard("s1.h5", 40, 40, 0) || write_shard("s2.h5", 80, 40, 0);
  CHECK(!fails);
  snprintf(p0, sizeof p0, "%s/s0.h5", g_dir);
  snprintf(p1, sizeof p1, "%s/s1.h5", g_dir);
  snprintf(p2, sizeof p2, "%s/s2.h5", g_dir);
  const char *files[] = {p0, p1, p2};
  const char *dir[] = {g_dir};

  int64_t want_kept = 0;
  for (int u = 0; u < g_nutt; u++) want_kept += g_len[u] >= 2000;
  {
    hb_loader_opts o = base_opts(dir, 1);
    hb_loader *L = NULL;
    CHECK_OK(loader_init(&o, &L));
    if (L) {
      printf("directory: %lld kept, %lld skipped (want %lld kept)\n", (long long)loader_num_utts(L), (long long)loader_num_skipped(L), (long long)want_kept);
      CHECK(loader_num_utts(L) == want_kept && loader_num_skipped(L) == g_nutt - want_kept);
      CHECK(loader_label_k(L, 0) == 100 && loader_label_rate(L, 1) == 25 && loader_topic_k(L, 0) == 5);
    }
    loader_free(L);
  }
  // every utterance once per epoch across ranks; crops aligned; max_tokens
  for (int world = 1; world <= 3; world++) test_epochs(files, 3, world, world == 2 ? 0 : 2, 60000);
  test_epochs(files, 3, 3, 1, 16000);   // many small batches
  test_epochs(files, 3, 2, 2, 16000 * 7 + 1);

  // determinism: threads vs inline, same seed identical; other seed differs
  enum { NB = 40 };
  uint64_t ha[NB], hb[NB], hc[NB], hd[NB];
  {
    hb_loader_opts o = base_opts(files, 3);
    hb_loader *A = NULL, *B = NULL, *C = NULL;
    CHECK_OK(loader_init(&o, &A));
    o.num_workers = 0;
    CHECK_OK(loader_init(&o, &B));
    o.seed = 99;
    o.num_workers = 3;
    CHECK_OK(loader_init(&o, &C));
    if (A && B && C) {
      run_hashes(A, NB, ha);
      run_hashes(B, NB, hb);
      run_hashes(C, NB, hc);
      int same = !memcmp(ha, hb, sizeof ha), differ = memcmp(ha, hc, sizeof ha) != 0;
      printf("determinism over %d batches (2 epochs+): threads == inline %d, seed 1234 != seed 99 %d\n", NB, same, differ);
      CHECK(same && differ);
      // restore: position after 13 batches, then a fresh loader and a seek both continue identically
      hb_loader_opts o2 = base_opts(files, 3);
      hb_loader *D = NULL;
      CHECK_OK(loader_init(&o2, &D));
      if (D) {
        run_hashes(D, 13, hd);
        hb_loader_pos pos;
        loader_position(D, &pos);
        loader_free(D);
        D = NULL;
        o2.start = pos;
        o2.num_workers = 1;
        CHECK_OK(loader_init(&o2, &D));
        if (D) {
          run_hashes(D, NB - 13, hd + 13);
          int eq = !memcmp(ha + 13, hd + 13, (NB - 13) * sizeof *hd);
          printf("restore from epoch %lld batch %lld: next %d batches equal the uninterrupted run: %d\n", (long long)pos.epoch,
                 (long long)pos.batch, NB - 13, eq);
          CHECK(eq);
          CHECK_OK(loader_seek(D, pos));
          run_hashes(D, NB - 13, hd + 13);
          CHECK(!memcmp(ha + 13, hd + 13, (NB - 13) * sizeof *hd));
          hb_loader_pos bad = {1, 100000};
          CHECK_ERR(loader_seek(D, bad), "batches in that epoch");
        }
        loader_free(D);
      }
    }
    loader_free(A);
    loader_free(B);
    loader_free(C);
  }
  // pad_audio: pad to the longest (cropped to max_sample_size), labels padded with -1
  {
    hb_loader_opts o = base_opts(files, 3);
    o.pad_audio = 1;
    o.max_tokens = 40000;
    o.max_keep_size = 30000;
    hb_loader *L = NULL;
    CHECK_OK(loader_init(&o, &L));
    int bad = 0, padded = 0;
    int64_t n = 0;
    if (L && !loader_epoch_batches(L, 1, &n))
      for (int64_t k = 0; k < n; k++) {
        const hb_batch *b;
        if (loader_next_batch(L, &b)) { CHECK_OK(-1); break; }
        bad += check_batch(L, b, &o);
        for (int i = 0; i < b->B; i++) padded += b->lengths[i] < b->T;
      }
    printf("pad_audio: %lld batches, %d padded rows, %d bad batches\n", (long long)n, padded, bad);
    CHECK(bad == 0 && padded > 0);
    loader_free(L);
  }
  // one utterance per batch and N % world != 0: repeated batches flagged is_pad
  {
    hb_loader_opts o = base_opts(files, 3);
    o.max_sentences = 1;
    o.world = 7;
    o.rank = 6;
    hb_loader *L = NULL;
    CHECK_OK(loader_init(&o, &L));
    int64_t n = 0;
    int pads = 0;
    if (L && !loader_epoch_batches(L, 1, &n))
      for (int64_t k = 0; k < n; k++) {
        const hb_batch *b;
        if (loader_next_batch(L, &b)) { CHECK_OK(-1); break; }
        pads += b->is_pad;
        CHECK(b->B == 1);
      }
    int64_t N = L ? loader_num_utts(L) : 0;
    printf("max_sentences 1, world 7: %lld utterances, rank 6 gets %lld batches, %d pad (want %d)\n", (long long)N, (long long)n,
           pads, (int)(N % 7 && N % 7 <= 6 ? 1 : 0));
    CHECK(n == (N + 6) / 7 && pads == (N % 7 && N % 7 <= 6 ? 1 : 0));
    loader_free(L);
  }
  // errors name the file
  {
    CHECK(!write_shard("bad_offsets.h5x", 0, 10, 1) && !write_shard("nokm.h5x", 0, 10, 2) && !write_shard("notopics.h5x", 0, 10, 3));
    char pb[512];
    hb_loader *L = NULL;
    hb_loader_opts o = base_opts(NULL, 1);
    const char *one[1] = {pb};
    o.paths = one;
    snprintf(pb, sizeof pb, "%s/bad_offsets.h5x", g_dir);
    CHECK_ERR(loader_init(&o, &L), "bad_offsets.h5x: /audio_offsets decreases");
    snprintf(pb, sizeof pb, "%s/nokm.h5x", g_dir);
    CHECK_ERR(loader_init(&o, &L), "nokm.h5x: no label set 'km' (has: half)");
    snprintf(pb, sizeof pb, "%s/notopics.h5x", g_dir);
    CHECK_ERR(loader_init(&o, &L), "notopics.h5x: no topic set 'lda'");
    snprintf(pb, sizeof pb, "%s/junk.h5x", g_dir);
    FILE *f = fopen(pb, "w");
    if (f) { fputs("not hdf5", f); fclose(f); }
    CHECK_ERR(loader_init(&o, &L), "junk.h5x: cannot open");
    snprintf(pb, sizeof pb, "%s/s0.h5", g_dir);
    o.max_tokens = 1000;
    CHECK_ERR(loader_init(&o, &L), "more than dataset.max_tokens");
    o.max_tokens = 60000;
    o.min_sample_size = 1 << 30;
    CHECK_ERR(loader_init(&o, &L), "no utterance is kept");
    o.min_sample_size = 0;
    o.rank = 2;
    CHECK_ERR(loader_init(&o, &L), "rank 2 is not in [0, world = 1)");
    // a worker's read error (corrupt compressed audio, unseen by shard_open) reaches loader_next_batch
    o.rank = 0;
    snprintf(pb, sizeof pb, "%s/victim.h5x", g_dir);
    CHECK(!write_shard("victim.h5x", 0, 40, 4));
    o.num_workers = 2;
    CHECK_OK(loader_init(&o, &L));
    if (L) {
      const hb_batch *b;
      CHECK_ERR(loader_next_batch(L, &b), "victim.h5x: utterance");
      CHECK_ERR(loader_next_batch(L, &b), "earlier error");
      loader_free(L);
    }
  }
  snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
  if (system(cmd)) fprintf(stderr, "could not remove %s\n", g_dir);
  printf("%d checks, %d failures\n", g_test_checks, g_test_failures);
  return g_test_failures ? 1 : 0;
}
