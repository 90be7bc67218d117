// Document building for HuBERTopic (dedup, BPE-style merges, n-grams).
#include "data_prep/topicdocs.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"

void topicdocs_free(hb_topicdocs *td) {
  free(td->merges); free(td->vocab); free(td->htab); free(td->ptab);
  memset(td, 0, sizeof *td);
}

static uint64_t hash_tuple(const int32_t *t, int n) {
  uint64_t h = 1469598103934665603ull;
  for (int i = 0; i < n; i++) { h ^= (uint32_t)t[i]; h *= 1099511628211ull; h ^= h >> 29; }
  return h;
}

static int64_t pow2_at_least(int64_t n) {
  int64_t c = 64;
  while (c < 2 * n) c *= 2;
  return c;
}

// Slot of tuple t in a table whose entries index rows of keys (n wide); -1 entry = empty.
static int64_t find_slot(const int32_t *tab, int64_t cap, const int32_t *keys, int n, const int32_t *t) {
  int64_t s = (int64_t)(hash_tuple(t, n) & (uint64_t)(cap - 1));
  while (tab[s] >= 0 && memcmp(keys + (size_t)tab[s] * n, t, (size_t)n * sizeof(int32_t)) != 0) s = (s + 1) & (cap - 1);
  return s;
}

static int build_tables(hb_topicdocs *td) {
  td->hcap = pow2_at_least(td->n_vocab);
  td->pcap = pow2_at_least(td->n_merges);
  td->htab = hb_malloc((size_t)td->hcap * sizeof(int32_t));
  td->ptab = hb_malloc((size_t)td->pcap * sizeof(int32_t));
  if (!td->htab || !td->ptab) return -1;
  memset(td->htab, 0xff, (size_t)td->hcap * sizeof(int32_t));
  memset(td->ptab, 0xff, (size_t)td->pcap * sizeof(int32_t));
  for (int i = 0; i < td->n_vocab; i++) {
    int64_t s = find_slot(td->htab, td->hcap, td->vocab, td->ngram, td->vocab + (size_t)i * td->ngram);
    if (td->htab[s] >= 0) return hb_fail("topic vocabulary: word %d repeats word %d", i, td->htab[s]);
    td->htab[s] = i;
  }
  for (int i = 0; i < td->n_merges; i++) {
    int64_t s = find_slot(td->ptab, td->pcap, td->merges, 2, td->merges + 2 * i);
    if (td->ptab[s] < 0) td->ptab[s] = i;  // first (lowest-rank) merge of a pair wins
  }
  return 0;
}

int topicdocs_init(hb_topicdocs *td, int k_units, int ngram, int n_merges, int32_t *merges, int n_vocab,
                   int32_t *vocab) {
  memset(td, 0, sizeof *td);
  td->k_units = k_units; td->ngram = ngram; td->n_merges = n_merges; td->merges = merges;
  td->n_vocab = n_vocab; td->vocab = vocab;
  int ntok = k_units + n_merges;
  for (int i = 0; i < n_merges; i++)
    for (int j = 0; j < 2; j++)
      if (merges[2 * i + j] < 0 || merges[2 * i + j] >= k_units + i)
        return hb_fail("topic model: merge %d uses token %d, not made before it", i, merges[2 * i + j]);
  for (int64_t i = 0; i < (int64_t)n_vocab * ngram; i++)
    if (vocab[i] < 0 || vocab[i] >= ntok) return hb_fail("topic model: vocabulary token %d outside [0, %d)", vocab[i], ntok);
  if (build_tables(td)) { topicdocs_free(td); return -1; }
  return 0;
}

// Dedup'd token sequence of utterance i into seq; returns its length.
static int64_t dedup(const hb_units *u, int64_t i, int32_t *seq) {
  int64_t n = 0;
  for (int64_t f = u->offsets[i]; f < u->offsets[i + 1]; f++)
    if (n == 0 || seq[n - 1] != u->units[f]) seq[n++] = u->units[f];
  return n;
}

// Replaces every left-to-right occurrence of (a, b) by tok; returns the new length.
static int64_t merge_pair(int32_t *seq, int64_t n, int32_t a, int32_t b, int32_t tok) {
  int64_t o = 0;
  for (int64_t i = 0; i < n; i++) {
    if (i + 1 < n && seq[i] == a && seq[i + 1] == b) { seq[o++] = tok; i++; }
    else seq[o++] = seq[i];
  }
  return o;
}

// BPE encoding: repeatedly merge the adjacent pair with the lowest merge rank.
static int64_t apply_merges(const hb_topicdocs *td, int32_t *seq, int64_t n) {
  if (!td->n_merges) return n;
  for (;;) {
    int best = -1;
    for (int64_t i = 0; i + 1 < n; i++) {
      int64_t s = find_slot(td->ptab, td->pcap, td->merges, 2, seq + i);
      int r = td->ptab[s];
      if (r >= 0 && (best < 0 || r < best)) best = r;
    }
    if (best < 0) return n;
    n = merge_pair(seq, n, td->merges[2 * best], td->merges[2 * best + 1], td->k_units + best);
  }
}

static int64_t max_len(const hb_units *u) {
  int64_t m = 1;
  for (int64_t i = 0; i < u->n_utts; i++)
    if (u->offsets[i + 1] - u->offsets[i] > m) m = u->offsets[i + 1] - u->offsets[i];
  return m;
}

// Learns merges: count all adjacent pairs, merge the most frequent (ties: smallest pair), repeat.
static int learn_merges(hb_topicdocs *td, const hb_units *u, int n_merges, int32_t **seqs, int64_t *lens) {
  td->merges = hb_malloc((size_t)(n_merges ? n_merges : 1) * 2 * sizeof(int32_t));
  int64_t total = 0;
  for (int64_t i = 0; i < u->n_utts; i++) total += lens[i];
  int64_t cap = pow2_at_least(total + 1);
  int32_t *tab = hb_malloc((size_t)cap * sizeof(int32_t));
  int32_t *keys = hb_malloc((size_t)(total + 1) * 2 * sizeof(int32_t));
  int64_t *cnt = hb_malloc((size_t)(total + 1) * sizeof(int64_t));
  int rc = -1;
  if (!td->merges || !tab || !keys || !cnt) goto done;
  for (int m = 0; m < n_merges; m++) {
    memset(tab, 0xff, (size_t)cap * sizeof(int32_t));
    int32_t nk = 0;
    for (int64_t i = 0; i < u->n_utts; i++)
      for (int64_t j = 0; j + 1 < lens[i]; j++) {
        int64_t s = find_slot(tab, cap, keys, 2, seqs[i] + j);
        if (tab[s] < 0) { tab[s] = nk; memcpy(keys + 2 * (size_t)nk, seqs[i] + j, 2 * sizeof(int32_t)); cnt[nk++] = 0; }
        cnt[tab[s]]++;
      }
    int32_t best = -1;
    for (int32_t p = 0; p < nk; p++) {
      if (best < 0 || cnt[p] > cnt[best] ||
          (cnt[p] == cnt[best] && (keys[2 * p] < keys[2 * best] || (keys[2 * p] == keys[2 * best] && keys[2 * p + 1] < keys[2 * best + 1]))))
        best = p;
    }
    if (best < 0 || cnt[best] < 2) break;  // nothing left worth merging
    int32_t a = keys[2 * best], b = keys[2 * best + 1], tok = td->k_units + m;
    td->merges[2 * m] = a;
    td->merges[2 * m + 1] = b;
    td->n_merges = m + 1;
    for (int64_t i = 0; i < u->n_utts; i++) lens[i] = merge_pair(seqs[i], lens[i], a, b, tok);
  }
  rc = 0;
done:
  free(tab); free(keys); free(cnt);
  return rc;
}

int topicdocs_learn(hb_topicdocs *td, const hb_units *u, int ngram, int n_merges) {
  memset(td, 0, sizeof *td);
  if (ngram < 1 || ngram > 8) return hb_fail("--ngram %d: must be in 1..8", ngram);
  if (n_merges < 0 || n_merges > 1000000) return hb_fail("--bpe-merges %d: must be in 0..1000000", n_merges);
  td->k_units = u->k;
  td->ngram = ngram;
  int32_t **seqs = hb_calloc((size_t)(u->n_utts ? u->n_utts : 1), sizeof(int32_t *));
  int64_t *lens = hb_calloc((size_t)(u->n_utts ? u->n_utts : 1), sizeof(int64_t));
  int rc = -1;
  if (!seqs || !lens) goto done;
  int64_t total = 0;
  for (int64_t i = 0; i < u->n_utts; i++) {
    seqs[i] = hb_malloc((size_t)(u->offsets[i + 1] - u->offsets[i] + 1) * sizeof(int32_t));
    if (!seqs[i]) goto done;
    lens[i] = dedup(u, i, seqs[i]);
    total += lens[i];
  }
  if (learn_merges(td, u, n_merges, seqs, lens)) goto done;
  // vocabulary: every n-gram of the merged sequences, in order of first appearance
  int64_t cap = pow2_at_least(total + 1);
  td->hcap = cap;
  td->htab = hb_malloc((size_t)cap * sizeof(int32_t));
  td->vocab = hb_malloc((size_t)(total + 1) * ngram * sizeof(int32_t));
  if (!td->htab || !td->vocab) goto done;
  memset(td->htab, 0xff, (size_t)cap * sizeof(int32_t));
  for (int64_t i = 0; i < u->n_utts; i++)
    for (int64_t j = 0; j + ngram <= lens[i]; j++) {
      int64_t s = find_slot(td->htab, cap, td->vocab, ngram, seqs[i] + j);
      if (td->htab[s] < 0) {
        td->htab[s] = td->n_vocab;
        memcpy(td->vocab + (size_t)td->n_vocab * ngram, seqs[i] + j, (size_t)ngram * sizeof(int32_t));
        td->n_vocab++;
      }
    }
  if (td->n_vocab == 0) { hb_fail("topic documents: no words (utterances shorter than --ngram %d?)", ngram); goto done; }
  free(td->htab);
  td->htab = NULL;
  if (build_tables(td)) goto done;
  rc = 0;
done:
  if (seqs)
    for (int64_t i = 0; i < u->n_utts; i++) free(seqs[i]);
  free(seqs); free(lens);
  if (rc) topicdocs_free(td);
  return rc;
}

static int cmp_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return x < y ? -1 : x > y;
}

int topicdocs_build(const hb_topicdocs *td, const hb_units *u, hb_csr *X, int64_t *oov) {
  memset(X, 0, sizeof *X);
  if (u->k != td->k_units) return hb_fail("labels have k=%d units but the topic model was built on k=%d", u->k, td->k_units);
  int64_t U = u->n_utts, nnz = 0, cap = 1024, lost = 0;
  X->n_docs = U;
  X->n_words = td->n_vocab;
  X->indptr = hb_malloc((size_t)(U + 1) * sizeof(int64_t));
  X->indices = hb_malloc((size_t)cap * sizeof(int32_t));
  X->data = hb_malloc((size_t)cap * sizeof(float));
  int32_t *seq = hb_malloc((size_t)(max_len(u) + 1) * sizeof(int32_t));
  int32_t *ids = hb_malloc((size_t)(max_len(u) + 1) * sizeof(int32_t));
  if (!X->indptr || !X->indices || !X->data || !seq || !ids) goto fail;
  X->indptr[0] = 0;
  for (int64_t i = 0; i < U; i++) {
    int64_t n = apply_merges(td, seq, dedup(u, i, seq)), m = 0;
    for (int64_t j = 0; j + td->ngram <= n; j++) {
      int32_t w = td->htab[find_slot(td->htab, td->hcap, td->vocab, td->ngram, seq + j)];
      if (w < 0) lost++;
      else ids[m++] = w;
    }
    qsort(ids, (size_t)m, sizeof(int32_t), cmp_i32);
    for (int64_t j = 0; j < m;) {
      int64_t e = j;
      while (e < m && ids[e] == ids[j]) e++;
      if (nnz == cap) {
        cap *= 2;
        int32_t *ni = hb_realloc(X->indices, (size_t)cap * sizeof(int32_t));
        if (!ni) goto fail;
        X->indices = ni;
        float *nd = hb_realloc(X->data, (size_t)cap * sizeof(float));
        if (!nd) goto fail;
        X->data = nd;
      }
      X->indices[nnz] = ids[j];
      X->data[nnz++] = (float)(e - j);
      j = e;
    }
    X->indptr[i + 1] = nnz;
  }
  free(seq); free(ids);
  if (oov) *oov = lost;
  return 0;
fail:
  free(seq); free(ids);
  csr_free(X);
  return -1;
}
