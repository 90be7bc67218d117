// CTC pieces of `hubert finetune` against brute force: the CTC loss and its gradient (the CPU op)
// against the sum over ALL V^T frame paths that collapse to the target (tiny T, V), greedy
// decoding against the most probable path found by enumeration, edit distance against a full
// DP table, and the transcript tokeniser / vocabulary / model-folder round trip.
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "common/fileutil.h"
#include "common/rng.h"
#include "kernels/ops.h"
#include "models/hubert_config.h"
#include "models/hubert_heads.h"
#include "tests/test_util.h"
#include "train/finetune.h"

// Collapse a frame path: merge repeats, drop blanks (0). Returns the length.
static int collapse(const int *path, int T, int *out) {
  int n = 0, prev = -1;
  for (int t = 0; t < T; t++) {
    if (path[t] != prev && path[t] != 0) out[n++] = path[t];
    prev = path[t];
  }
  return n;
}

// -log sum_{paths -> target} prod_t softmax(z_t)[path_t], by enumeration (double precision).
static double brute_ctc(const double *z, int T, int V, const int *tg, int S) {
  double lp[16][8];
  for (int t = 0; t < T; t++) {
    double m = z[t * V], s = 0;
    for (int v = 1; v < V; v++) m = z[t * V + v] > m ? z[t * V + v] : m;
    for (int v = 0; v < V; v++) s += exp(z[t * V + v] - m);
    for (int v = 0; v < V; v++) lp[t][v] = z[t * V + v] - m - log(s);
  }
  long total = 1;
  for (int t = 0; t < T; t++) total *= V;
  double p = 0;
  int path[16], out[16];
  for (long k = 0; k < total; k++) {
    long r = k;
    double l = 0;
    for (int t = 0; t < T; t++) {
      path[t] = (int)(r % V);
      r /= V;
      l += lp[t][path[t]];
    }
    int n = collapse(path, T, out);
    if (n == S && (S == 0 || !memcmp(out, tg, sizeof(int) * (size_t)S))) p += exp(l);
  }
  return p > 0 ? -log(p) : INFINITY;
}

static void test_ctc_brute(hb_ctx *ctx, uint64_t seed) {
  hb_rng r;
  rng_init(&r, seed);
  struct { int T, V, S, tg[4]; } cases[] = {
      {5, 3, 2, {1, 2}}, {5, 3, 2, {1, 1}}, {6, 4, 3, {3, 1, 3}}, {4, 3, 0, {0}}, {3, 3, 2, {2, 2}},
      {2, 3, 2, {1, 1}},  // needs 3 frames: no alignment, infinite loss, zero gradient
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    const int T = cases[c].T, V = cases[c].V, S = cases[c].S;
    float z[64], dz[64], loss = 0, w = 1.0f;
    double zd[64];
    for (int i = 0; i < T * V; i++) zd[i] = z[i] = (float)(2.0 * rng_uniform_double(&r) - 1.0);
    int in_len = T, tl = S, tg[4];
    memcpy(tg, cases[c].tg, sizeof tg);
    CHECK_OK(ctx->be->ctc_loss(ctx, &loss, dz, z, tg, &in_len, &tl, &w, 1, T, V, S > 0 ? S : 1, 0));
    const double ref = brute_ctc(zd, T, V, tg, S);
    if (isinf(ref)) {
      CHECK(isinf(loss));
      double g = 0;
      for (int i = 0; i < T * V; i++) g += fabs(dz[i]);
      CHECK(g == 0);
      printf("  case %zu (T %d, S %d): infeasible, op loss %g, |dz| %g\n", c, T, S, loss, g);
      continue;
    }
    // Gradient: central differences of the brute-force loss.
    double num = 0, den = 0;
    for (int i = 0; i < T * V; i++) {
      const double h = 1e-5, keep = zd[i];
      zd[i] = keep + h;
      double lp = brute_ctc(zd, T, V, tg, S);
      zd[i] = keep - h;
      double lm = brute_ctc(zd, T, V, tg, S);
      zd[i] = keep;
      const double g = (lp - lm) / (2 * h);
      num += (g - dz[i]) * (g - dz[i]);
      den += g * g;
    }
    const double le = fabs(loss - ref) / fabs(ref), ge = sqrt(num / (den > 1e-30 ? den : 1e-30));
    printf("  case %zu (T %d, V %d, S %d): loss %.6f vs brute force %.6f (rel %.2e), grad rel %.2e\n", c, T, V, S, loss,
           ref, le, ge);
    CHECK(le < TOL_F32_OP);
    CHECK(ge < TOL_F32_MODEL);  // f32 op gradient vs f64 central differences
  }
}

static void test_greedy_brute(uint64_t seed) {
  hb_rng r;
  rng_init(&r, seed + 1);
  for (int rep = 0; rep < 20; rep++) {
    const int T = 6, V = 3;
    float z[18];
    for (int i = 0; i < T * V; i++) z[i] = (float)rng_uniform_double(&r);
    // Most probable path by enumeration (the per-frame product is maximised frame by frame, which
    // is what greedy decoding claims; enumeration does not rely on that).
    long best = 0;
    double bl = -INFINITY;
    for (long k = 0; k < 729; k++) {
      long q = k;
      double l = 0;
      for (int t = 0; t < T; t++, q /= V) l += z[t * V + q % V];
      if (l > bl) { bl = l; best = k; }
    }
    int path[6], ref[6], out[6], out_len, in_len = T;
    for (int t = 0; t < T; t++, best /= V) path[t] = (int)(best % V);
    const int n = collapse(path, T, ref);
    heads_ctc_greedy(z, &in_len, 1, T, V, 0, out, &out_len);
    CHECK(out_len == n && !memcmp(out, ref, sizeof(int) * (size_t)n));
  }
  printf("  greedy decoding = collapsed most probable path (20 random 6x3 cases)\n");
}

static long full_dp(const int *a, int na, const int *b, int nb) {
  long d[16][16];
  for (int i = 0; i <= na; i++) d[i][0] = i;
  for (int j = 0; j <= nb; j++) d[0][j] = j;
  for (int i = 1; i <= na; i++)
    for (int j = 1; j <= nb; j++) {
      long s = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]), x = d[i - 1][j] + 1, y = d[i][j - 1] + 1;
      d[i][j] = s < x ? (s < y ? s : y) : (x < y ? x : y);
    }
  return d[na][nb];
}

static void test_edit_distance(uint64_t seed) {
  const int kitten[] = {'k', 'i', 't', 't', 'e', 'n'}, sitting[] = {'s', 'i', 't', 't', 'i', 'n', 'g'};
  CHECK(edit_distance(kitten, 6, sitting, 7) == 3);
  CHECK(edit_distance(kitten, 0, sitting, 7) == 7);
  CHECK(edit_distance(kitten, 6, sitting, 0) == 6);
  hb_rng r;
  rng_init(&r, seed + 2);
  int bad = 0;
  for (int rep = 0; rep < 200; rep++) {
    int a[15], b[15], na = (int)(rng_uniform_double(&r) * 15), nb = (int)(rng_uniform_double(&r) * 15);
    for (int i = 0; i < na; i++) a[i] = (int)(rng_uniform_double(&r) * 3);
    for (int i = 0; i < nb; i++) b[i] = (int)(rng_uniform_double(&r) * 3);
    bad += edit_distance(a, na, b, nb) != full_dp(a, na, b, nb);
  }
  CHECK(bad == 0);
  printf("  edit distance: kitten/sitting 3, 200 random pairs equal to the full DP table (%d differ)\n", bad);
}

static int tokens_are(int kind, const char *text, const char *want) {
  char **tok;
  int n;
  if (ctc_tokenize(kind, text, &tok, &n)) return 0;
  char got[512] = "";
  for (int i = 0; i < n; i++) {
    strcat(got, i ? " " : "");
    strcat(got, tok[i]);
  }
  ctc_tokens_free(tok, n);
  if (strcmp(got, want)) fprintf(stderr, "  tokens of '%s': '%s', want '%s'\n", text, got, want);
  return !strcmp(got, want);
}

static void test_tokens_vocab(void) {
  CHECK(tokens_are(HB_CTC_LTR, "Hello, World!  It's", "h e l l o | w o r l d | i t ' s"));
  CHECK(tokens_are(HB_CTC_LTR, "  Call-Forward.", "c a l l | f o r w a r d"));
  CHECK(tokens_are(HB_CTC_LTR, "Не может", "н е | м о ж е т"));
  CHECK(tokens_are(HB_CTC_PHN, "pau:0.197 dh:0.245 ax:0.3 pau:0.4", "dh ax"));
  CHECK(tokens_are(HB_CTC_PHN, "n e m 'o ,i: tS", "n e m o i tS"));
  CHECK(tokens_are(HB_CTC_PHN, "", ""));
  char **t[2];
  int n[2];
  CHECK_OK(ctc_tokenize(HB_CTC_LTR, "ab ba", &t[0], &n[0]));
  CHECK_OK(ctc_tokenize(HB_CTC_LTR, "bc", &t[1], &n[1]));
  hb_ctc_vocab v;
  CHECK_OK(ctc_vocab_build(&v, HB_CTC_LTR, (char **const *)t, n, 2));
  // blank, unk, "|", then by count: b (3), a (2), c (1)
  CHECK(v.n == 6 && !strcmp(v.sym[0], "<pad>") && !strcmp(v.sym[2], "|") && !strcmp(v.sym[3], "b") && !strcmp(v.sym[5], "c"));
  int ids[8];
  char *unk[] = {"a", "z", "|"};
  ctc_vocab_encode(&v, unk, 3, ids);
  CHECK(ids[0] == 4 && ids[1] == HB_CTC_UNK && ids[2] == 2);
  // WER / CER: ref "ab|ba" vs hyp "ab|bc": 1 unit error of 5, 1 word error of 2.
  int ref[] = {4, 3, 2, 3, 4}, hyp[] = {4, 3, 2, 3, 5};
  hb_err_counts e = {0};
  CHECK_OK(ctc_score(&v, hyp, 5, ref, 5, &e));
  CHECK(e.unit_err == 1 && e.unit_n == 5 && e.word_err == 1 && e.word_n == 2);
  printf("  score: CER %.0f/%.0f, WER %.0f/%.0f\n", e.unit_err, e.unit_n, e.word_err, e.word_n);
  // Model folder round trip: config.json keeps loading; vocab.json and hubert_c give v back.
  char dir[] = "/tmp/hb_ftvocab_XXXXXX";
  if (!mkdtemp(dir)) { CHECK(0); return; }
  char p[256];
  snprintf(p, sizeof p, "%s/config.json", dir);
  hb_config c;
  config_preset(&c, HB_PRESET_TINY);
  c.ctc_vocab = v.n;
  CHECK_OK(config_write_json(p, &c));
  CHECK_OK(ctc_vocab_save(&v, dir));
  hb_config back;
  CHECK_OK(config_read_json(p, &back));
  CHECK(back.ctc_vocab == v.n);
  hb_ctc_vocab w;
  int found = 0;
  CHECK_OK(ctc_vocab_load(&w, dir, &found));
  CHECK(found && ctc_vocab_equal(&v, &w));
  ctc_vocab_free(&w);
  remove(p);  // vocab.json alone (a folder fine-tuned elsewhere) still gives the vocabulary
  CHECK_OK(ctc_vocab_load(&w, dir, &found));
  CHECK(found && w.n == v.n && w.kind == HB_CTC_LTR && !strcmp(w.sym[3], "b"));
  ctc_vocab_free(&w);
  snprintf(p, sizeof p, "%s/vocab.json", dir);
  remove(p);
  CHECK_OK(ctc_vocab_load(&w, dir, &found));
  CHECK(!found);
  rmdir(dir);
  CHECK_ERR(ctc_kind_from_name("wrd", &found), "not a fine-tuning label set");
  ctc_vocab_free(&v);
  ctc_tokens_free(t[0], n[0]);
  ctc_tokens_free(t[1], n[1]);
}

int main(void) {
  const char *env = getenv("HUBERT_TEST_SEED");
  uint64_t seed = env && *env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
  printf("seed %llu\n", (unsigned long long)seed);
  hb_ctx ctx;
  if (ops_ctx_init(&ctx, "cpu", 1)) {
    fprintf(stderr, "ctx: %s\n", hb_errmsg());
    return 1;
  }
  test_ctc_brute(&ctx, seed);
  test_greedy_brute(seed);
  test_edit_distance(seed);
  test_tokens_vocab();
  ops_ctx_free(&ctx);
  return test_summary("test_finetune_ctc");
}
