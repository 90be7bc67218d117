// CTC fine-tuning (`hubert finetune`, docs/finetune.md): a pretrained model folder + a CTC head
// over characters (task.labels [ltr], from the shards' /text) or phones ([phn], from /phones),
// fairseq hubert_ctc semantics (frozen extractor with feature_grad_mult 0, freeze_finetune_updates,
// tri-stage schedule, time + channel masking, LayerDrop, final dropout, zero_infinity), greedy
// decoding and WER/CER/PER on the valid and test splits. Checkpoints are model folders with the CTC
// head and the vocabulary (config.json hubert_c.ctc_labels / ctc_vocabulary, and vocab.json as
// Hugging Face's Wav2Vec2CTCTokenizer writes it).
//
// Vocabulary (built from the train split): 0 "<pad>" = CTC blank (HF's pad token), 1 "<unk>",
// for ltr 2 "|" (word separator, fairseq's letter dictionary), then the symbols by descending count
// (ties: byte order). Characters: lower-cased, punctuation dropped, words joined by "|". Phones:
// flite's "ph:end_s" gives ph, espeak's stress marks ' and , are stripped, "pau" is dropped.
#ifndef HB_TRAIN_FINETUNE_H
#define HB_TRAIN_FINETUNE_H

#include "train/config.h"

enum { HB_CTC_LTR = 0, HB_CTC_PHN = 1 };
#define HB_CTC_BLANK 0
#define HB_CTC_UNK 1

typedef struct {
  int kind;      // HB_CTC_LTR | HB_CTC_PHN
  int n;         // symbols, blank included
  char **sym;    // (n) UTF-8 strings
} hb_ctc_vocab;

// "ltr" / "phn" -> kind; -1 with an error naming the value otherwise.
int ctc_kind_from_name(const char *name, int *kind);
const char *ctc_kind_name(int kind);

// Tokens of one transcript (see above); *tok: n malloc'd strings (n may be 0).
int ctc_tokenize(int kind, const char *text, char ***tok, int *n);
void ctc_tokens_free(char **tok, int n);

// Vocabulary from the token lists of n_utts utterances.
int ctc_vocab_build(hb_ctc_vocab *v, int kind, char **const *toks, const int *ntok, int n_utts);
void ctc_vocab_free(hb_ctc_vocab *v);
int ctc_vocab_find(const hb_ctc_vocab *v, const char *sym);      // index or -1
// ids[i] = index of tok[i] (unknown symbols: HB_CTC_UNK).
void ctc_vocab_encode(const hb_ctc_vocab *v, char **tok, int n, int *ids);
int ctc_vocab_equal(const hb_ctc_vocab *a, const hb_ctc_vocab *b);
// Writes DIR/vocab.json and adds ctc_labels / ctc_vocabulary to DIR/config.json's hubert_c object
// (plus HF's top-level vocab_size and pad_token_id). The model's ctc_vocab must equal v->n.
int ctc_vocab_save(const hb_ctc_vocab *v, const char *dir);
// Reads the vocabulary of a model folder (config.json hubert_c.ctc_vocabulary, else vocab.json);
// *found = 0 when the folder has neither.
int ctc_vocab_load(hb_ctc_vocab *v, const char *dir, int *found);

// Levenshtein distance between two id sequences (substitution, insertion, deletion cost 1).
long edit_distance(const int *a, int na, const int *b, int nb);

typedef struct {
  double unit_err, unit_n;   // characters (with "|") or phones
  double word_err, word_n;   // ltr: words (split at "|"); phn: equal to the unit counts
} hb_err_counts;
// Adds the errors of one hypothesis against its reference (blank-free id sequences).
int ctc_score(const hb_ctc_vocab *v, const int *hyp, int nh, const int *ref, int nr, hb_err_counts *c);

typedef struct {
  const char *resume;       // "auto" (default), "none" or a checkpoint folder
  int threads;              // CPU threads (0: OpenMP's default)
} hb_finetune_args;

// Runs fine-tuning to optimization.max_update, then scores checkpoint_best on the valid and test
// splits (SAVE_DIR/finetune_results.json). Progress lines go to stdout.
int finetune_run(const hb_train_config *cfg, const hb_finetune_args *args);

#endif
