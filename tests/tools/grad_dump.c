// Test driver for tests/parity/test_model_grad_torchaudio.py: one training forward + backward of a
// model folder on given inputs, every parameter gradient written to a safetensors file.
//
//   grad_dump MODEL_DIR INPUTS.safetensors OUT.safetensors FEATURE_GRAD_MULT FEAT_PEN_WEIGHT
//
// INPUTS (F32): wave (B, L), lengths (B) (sample counts as floats), mask (B, T) 0/1,
// r (B, T, H). Loss = sum_valid hidden[NL] * r + FEAT_PEN_WEIGHT * sum_valid features^2, so
// d hidden[NL] = r (zeroed on padded frames), d features = 2 w features on valid frames.
// OUT: the HF-named gradient of every parameter, plus "output.hidden" and "output.features".
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/safetensors.h"
#include "models/hubert_train.h"

static int run(int argc, char **argv) {
  if (argc != 6) return hb_fail("usage: grad_dump MODEL_DIR INPUTS.safetensors OUT.safetensors MULT PEN_WEIGHT");
  const float mult = strtof(argv[4], NULL), pen = strtof(argv[5], NULL);
  hb_ctx ctx;
  HB_TRY(ops_ctx_init(&ctx, "cpu", 0));
  hb_model m;
  HB_TRY(model_load(&m, argv[1], &ctx));
  const hb_config *c = &m.cfg;
  hb_safetensors st;
  HB_TRY(st_open(argv[2], &st));
  int64_t sw[2], sl[1], sm[2], sr[3];
  float *wave = st_load_f32(&st, "wave", 2, sw, NULL), *lf = st_load_f32(&st, "lengths", 1, sl, NULL);
  float *mf = st_load_f32(&st, "mask", 2, sm, NULL), *r = st_load_f32(&st, "r", 3, sr, NULL);
  if (!wave || !lf || !mf || !r) return -1;
  const int B = (int)sw[0];
  const long L = (long)sw[1];
  const int T = config_num_frames(c, L), H = c->hidden_size, Cc = c->conv_dim[c->num_conv - 1], NL = c->num_hidden_layers;
  if (sl[0] != B || sm[0] != B || sm[1] != T || sr[0] != B || sr[1] != T || sr[2] != H)
    return hb_fail("%s: shapes disagree (B %d, T %d, H %d)", argv[2], B, T, H);
  long *lens = hb_malloc(sizeof(long) * B);
  uint8_t *mask = hb_malloc((size_t)B * T);
  int *frames = hb_malloc(sizeof(int) * B);
  for (int b = 0; b < B; b++) lens[b] = (long)lf[b];
  for (int i = 0; i < B * T; i++) mask[i] = mf[i] != 0.0f;
  hb_train_arena a;
  HB_TRY(train_arena_init(&a, &m, B, L));
  hb_train_opts opts = {0, 0};
  int Tf;
  HB_TRY(model_forward_train(&m, &a, wave, lens, B, L, mask, frames, &Tf, &opts));
  const size_t nf = (size_t)B * T * Cc;
  float *df = hb_calloc(nf, sizeof(float));
  float **dh = hb_calloc((size_t)NL + 1, sizeof(float *));
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      const size_t i = (size_t)b * T + t;
      if (t >= frames[b]) {
        memset(r + i * H, 0, sizeof(float) * H);
        continue;
      }
      for (int k = 0; k < Cc; k++) df[i * Cc + k] = 2.0f * pen * a.features[i * Cc + k];
    }
  dh[NL] = r;
  float *grads = hb_calloc(m.layout.total, sizeof(float));
  HB_TRY(model_backward(&m, &a, dh, df, mult, grads));
  hb_st_entry *e = hb_calloc((size_t)m.layout.n + 2, sizeof(hb_st_entry));
  for (int i = 0; i < m.layout.n; i++) {
    const hb_param_info *pi = &m.layout.info[i];
    e[i].name = pi->name;
    e[i].data = grads + pi->offset;
    e[i].ndim = pi->ndim;
    for (int d = 0; d < pi->ndim; d++) e[i].shape[d] = pi->shape[d];
  }
  const int n = m.layout.n;
  e[n] = (hb_st_entry){"output.hidden", a.hidden[NL], 3, {B, T, H}};
  e[n + 1] = (hb_st_entry){"output.features", a.features, 3, {B, T, Cc}};
  HB_TRY(st_write(argv[3], n + 2, e, HB_DT_F32, 0, NULL, NULL));
  printf("grad_dump: B=%d L=%ld T=%d, %d gradient tensors, arena %.1f MB -> %s\n", B, L, T, n, a.bytes / 1e6, argv[3]);
  free(e);
  free(grads);
  free(dh);
  free(df);
  free(lens);
  free(mask);
  free(frames);
  free(wave);
  free(lf);
  free(mf);
  free(r);
  train_arena_free(&a, &m);
  st_close(&st);
  model_free(&m);
  ops_ctx_free(&ctx);
  return 0;
}

int main(int argc, char **argv) {
  if (run(argc, argv)) {
    fprintf(stderr, "grad_dump: %s\n", hb_errmsg());
    return 1;
  }
  return 0;
}
