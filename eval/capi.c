// The stable C API (eval/hubert_capi.h) over the extractor (eval/extractor.h).
#include "eval/hubert_capi.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "eval/extractor.h"

struct hubert_model {
  hb_extractor ex;
  const float **waves;   // (max B) row pointers
  long *lens;
  int *frames;
  int cap_B;
};

int hubert_capi_version(void) { return HUBERT_CAPI_VERSION; }

const char *hubert_last_error(void) {
  const char *m = hb_errmsg();
  return m ? m : "";
}

hubert_model *hubert_open(const char *model_dir, const char *device, int threads) {
  if (!model_dir) {
    hb_fail("hubert_open: model_dir is NULL");
    return NULL;
  }
  hubert_model *m = hb_calloc(1, sizeof *m);
  if (!m) return NULL;
  if (extractor_open(&m->ex, model_dir, device ? device : "cpu", threads)) {
    free(m);
    return NULL;
  }
  return m;
}

void hubert_close(hubert_model *m) {
  if (!m) return;
  extractor_close(&m->ex);
  free(m->waves);
  free(m->lens);
  free(m->frames);
  free(m);
}

int hubert_num_layers(const hubert_model *m) { return m ? extractor_num_layers(&m->ex) : -1; }
int hubert_hidden_size(const hubert_model *m) { return m ? extractor_hidden_size(&m->ex) : -1; }
int hubert_downsample_rate(const hubert_model *m) { return m ? config_total_stride(&m->ex.model.cfg) : -1; }
int hubert_receptive_field(const hubert_model *m) { return m ? config_receptive_field(&m->ex.model.cfg) : -1; }

int64_t hubert_num_frames(const hubert_model *m, int64_t n) {
  if (!m || n < 0) return -1;
  return config_num_frames(&m->ex.model.cfg, (long)n);
}

static int ensure_rows(hubert_model *m, int B) {
  if (B <= m->cap_B) return 0;
  free(m->waves);
  free(m->lens);
  free(m->frames);
  m->waves = (const float **)hb_calloc((size_t)B, sizeof(float *));
  m->lens = hb_calloc((size_t)B, sizeof(long));
  m->frames = hb_calloc((size_t)B, sizeof(int));
  m->cap_B = m->waves && m->lens && m->frames ? B : 0;
  return m->cap_B ? 0 : -1;
}

int64_t hubert_forward_batch(hubert_model *m, const float *waves, const int64_t *lengths, int B, int64_t L,
                             float *out, int64_t out_cap, int64_t *frames) {
  if (!m || !waves || !lengths || !out || !frames) return hb_fail("hubert_forward_batch: NULL argument");
  if (B < 1 || L < 1) return hb_fail("hubert_forward_batch: empty batch (B = %d, L = %lld)", B, (long long)L);
  const int NL = extractor_num_layers(&m->ex), H = extractor_hidden_size(&m->ex);
  const int64_t Tw = hubert_num_frames(m, L);
  if (Tw < 1)
    return hb_fail("hubert_forward: %lld samples are fewer than the receptive field (%d)", (long long)L,
                   hubert_receptive_field(m));
  if ((double)(NL + 1) * B * Tw * H > (double)out_cap)
    return hb_fail("hubert_forward: output buffer holds %lld floats, (%d, %d, %lld, %d) needed", (long long)out_cap, NL + 1,
                   B, (long long)Tw, H);
  HB_TRY(ensure_rows(m, B));
  for (int b = 0; b < B; b++) {
    if (lengths[b] < 1 || lengths[b] > L)
      return hb_fail("hubert_forward: lengths[%d] = %lld outside 1..%lld", b, (long long)lengths[b], (long long)L);
    m->waves[b] = waves + (size_t)b * L;
    m->lens[b] = (long)lengths[b];
  }
  int T = 0;
  HB_TRY(extractor_forward(&m->ex, m->waves, m->lens, B, m->frames, &T));
  if (T != Tw) return hb_fail("hubert_forward: internal error: %d frames, expected %lld", T, (long long)Tw);
  const size_t per = (size_t)B * T * H;
  for (int i = 0; i <= NL; i++) memcpy(out + (size_t)i * per, extractor_hidden(&m->ex, i), sizeof(float) * per);
  for (int b = 0; b < B; b++) frames[b] = m->frames[b];
  return T;
}

int64_t hubert_forward(hubert_model *m, const float *wave, int64_t n, float *out, int64_t out_cap) {
  int64_t frames = 0;
  return hubert_forward_batch(m, wave, &n, 1, n, out, out_cap, &frames);
}
