// Latent Dirichlet Allocation by variational Bayes (Hoffman, Blei & Bach 2010), following
// scikit-learn's LatentDirichletAllocation: "batch" and "online" learning, the same E-step
// (digamma/exp, mean-change stopping), the same M-step weights rho_t = (offset + t)^-decay and
// the same perplexity bound. Documents are sparse bags of words (CSR). OpenMP over documents.
#ifndef HB_LDA_H
#define HB_LDA_H

#include <stdint.h>

// Sparse document-word counts: row d has words indices[indptr[d] .. indptr[d+1]) with counts data.
typedef struct {
  int64_t n_docs;
  int n_words;        // vocabulary size V
  int64_t *indptr;    // (n_docs + 1)
  int32_t *indices;   // (nnz) word ids in [0, V)
  float *data;        // (nnz) counts > 0
} hb_csr;

void csr_free(hb_csr *m);

typedef enum { HB_LDA_BATCH = 0, HB_LDA_ONLINE = 1 } hb_lda_method;

typedef struct {
  int k;                   // topics
  hb_lda_method method;    // online (sklearn default)
  int max_iter;            // passes (10)
  int batch_size;          // docs per online step (128)
  double learning_decay;   // 0.7
  double learning_offset;  // 10
  double mean_change_tol;  // E-step stopping (1e-3)
  int max_doc_update_iter; // 100
  double doc_topic_prior;  // alpha; <= 0 means 1/k
  double topic_word_prior; // eta; <= 0 means 1/k
  int evaluate_every;      // print training perplexity every N passes when verbose (0 = never)
  uint64_t seed;
  int verbose;
} hb_lda_params;

typedef struct {
  int k, n_words;
  double doc_topic_prior, topic_word_prior;
  double mean_change_tol;
  int max_doc_update_iter;
  double *components;      // (k, V) variational topic-word parameters lambda
} hb_lda_model;

void lda_default_params(hb_lda_params *p);
// Fits a model; *train_perplexity (may be NULL) = sklearn's bound_ on X after fitting.
int lda_fit(const hb_csr *X, const hb_lda_params *p, hb_lda_model *m, double *train_perplexity);
// Unnormalised doc-topic parameters gamma (n_docs, k) from a deterministic E-step (sklearn's
// _unnormalized_transform). Words >= V are an error.
int lda_transform(const hb_lda_model *m, const hb_csr *X, double *gamma);
// exp(-bound / word count) given gamma from lda_transform (sklearn's perplexity()).
int lda_perplexity(const hb_lda_model *m, const hb_csr *X, const double *gamma, double *out);
void lda_model_free(hb_lda_model *m);

// Digamma for x > 0 (recurrence to x >= 6, then the asymptotic series).
double lda_digamma(double x);

#endif
