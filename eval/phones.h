// Phone alignments (the demo corpus' meta.tsv `phones` column for flite utterances:
// "pau:0.197 dh:0.245 ..." = phone:end_time_s, ends non-decreasing) turned into frame labels,
// and a phone inventory (name <-> id). Used by `hubert units-eval` and `hubert probe`.
//
// Frame convention (docs/probes.md): frame i of a label/feature sequence at `rate` Hz is centred at
// t_i = (i + 0.5) / rate and gets the phone whose segment [prev_end, end) contains t_i. Length
// checks, with the tolerance used for labels everywhere (HB_PHONE_TOL = 0.1 s, fairseq's):
//   - frames past the last phone end (T / rate > last_end) are labelled with the last phone if
//     T / rate - last_end <= tol, else an error;
//   - phones past the frames are dropped, but the end of the last non-silence phone must satisfy
//     end <= T / rate + tol, else an error (flite's trailing `pau` often runs 0.1-0.14 s past the
//     audio; cutting silence is harmless, cutting speech is a mismatch).
#ifndef HB_EVAL_PHONES_H
#define HB_EVAL_PHONES_H

#include <stdint.h>

#define HB_PHONE_TOL 0.1

typedef struct {
  int n, cap;
  char **name;   // (n) phone names; id = index
} hb_phone_inv;

void phone_inv_free(hb_phone_inv *v);
// Id of `name`; adds it when absent and add != 0, else returns -1 (no error set).
int phone_inv_id(hb_phone_inv *v, const char *name, int add);
// Sorts names alphabetically (ids change): call after adding every phone, before labelling.
void phone_inv_sort(hb_phone_inv *v);

typedef struct {
  int n;
  int32_t *id;   // (n) phone ids
  double *end;   // (n) end times, seconds
} hb_alignment;

void alignment_free(hb_alignment *a);
// Parses an aligned phone string. Returns 1 (nothing allocated) when `s` is empty or not an
// alignment (its first token is not NAME:SECONDS, e.g. espeak's unaligned phonemes); 0 on success;
// -1 with hb_fail when it starts as an alignment but a later token is malformed or ends decrease.
// Phones are added to inv when add != 0; otherwise an unknown phone is an error.
int alignment_parse(const char *s, hb_phone_inv *inv, int add, hb_alignment *a);
// Frame labels out (T) at `rate` Hz by the convention above; -1 with hb_fail on a mismatch
// (message gives both durations). silence: phone id that may be cut at the end (-1: none).
int alignment_to_frames(const hb_alignment *a, double rate, int64_t T, int silence, int32_t *out);

#endif
