// HuBERTopic documents: each utterance's unit sequence with repeats collapsed ("dedup") becomes
// a bag of words. Words are units, or "pseudo-subwords" from BPE-style merges (the most frequent
// adjacent pair merged greedily, n_merges times), optionally grouped into n-grams. The vocabulary
// (the n-gram tuples seen when learning) and the merges are stored with the topic model.
#ifndef HB_TOPICDOCS_H
#define HB_TOPICDOCS_H

#include <stdint.h>

#include "data_prep/labelfile.h"
#include "data_prep/lda.h"

typedef struct {
  int k_units;       // unit ids [0, k_units); merge i makes token k_units + i
  int ngram;         // words are tuples of ngram consecutive tokens (>= 1)
  int n_merges;
  int32_t *merges;   // (n_merges, 2) token pairs, in the order learnt
  int n_vocab;
  int32_t *vocab;    // (n_vocab, ngram) token tuples
  int64_t hcap;      // hash of vocab tuples (open addressing, -1 = empty)
  int32_t *htab;
  int64_t pcap;      // hash of merge pairs -> merge rank
  int32_t *ptab;
} hb_topicdocs;

// Learns merges (n_merges >= 0) and the n-gram vocabulary from the label files' units.
int topicdocs_learn(hb_topicdocs *td, const hb_units *u, int ngram, int n_merges);
// Rebuilds the lookup tables from stored merges/vocab (takes ownership of both arrays).
int topicdocs_init(hb_topicdocs *td, int k_units, int ngram, int n_merges, int32_t *merges, int n_vocab,
                   int32_t *vocab);
// Bag-of-words matrix of every utterance; words outside the vocabulary are counted in *oov.
int topicdocs_build(const hb_topicdocs *td, const hb_units *u, hb_csr *X, int64_t *oov);
void topicdocs_free(hb_topicdocs *td);

#endif
