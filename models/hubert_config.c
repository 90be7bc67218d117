// Presets, validation, conv arithmetic and config.json I/O for hb_config.
#include "models/hubert_config.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/json.h"

static const int kConvKernel[7] = {10, 3, 3, 3, 3, 2, 2};
static const int kConvStride[7] = {5, 2, 2, 2, 2, 2, 2};

void config_preset(hb_config *c, hb_preset p) {
  memset(c, 0, sizeof *c);
  c->num_conv = 7;
  for (int i = 0; i < 7; i++) {
    c->conv_dim[i] = 512;
    c->conv_kernel[i] = kConvKernel[i];
    c->conv_stride[i] = kConvStride[i];
  }
  c->num_conv_pos_embeddings = 128;
  c->num_conv_pos_embedding_groups = 16;
  c->feat_proj_layer_norm = 1;
  c->layer_norm_eps = 1e-5;
  c->hidden_dropout = 0.1;
  c->attention_dropout = 0.1;
  c->activation_dropout = 0.0;
  c->feat_proj_dropout = 0.1;
  c->layerdrop = 0.05;
  c->mask_time_prob = 0.8;
  c->mask_time_length = 10;
  c->untie_final_proj = 0;
  switch (p) {
    case HB_PRESET_TINY:  // a few MB: unit tests and the CPU demo
      for (int i = 0; i < 7; i++) c->conv_dim[i] = 32;
      c->hidden_size = 64;
      c->num_hidden_layers = 2;
      c->num_attention_heads = 4;
      c->intermediate_size = 128;
      c->num_conv_pos_embeddings = 16;
      c->num_conv_pos_embedding_groups = 4;
      c->final_dim = 32;
      break;
    case HB_PRESET_BASE:  // HuBERT Base (95M): fairseq hubert_base_librispeech
      c->hidden_size = 768;
      c->num_hidden_layers = 12;
      c->num_attention_heads = 12;
      c->intermediate_size = 3072;
      c->final_dim = 256;
      break;
    case HB_PRESET_LARGE:  // HuBERT Large (317M): pre-LN, layer-norm extractor
    case HB_PRESET_XLARGE: // HuBERT X-Large (964M)
      c->feat_extract_norm_layer = 1;
      c->do_stable_layer_norm = 1;
      c->hidden_size = p == HB_PRESET_LARGE ? 1024 : 1280;
      c->num_hidden_layers = p == HB_PRESET_LARGE ? 24 : 48;
      c->num_attention_heads = 16;
      c->intermediate_size = p == HB_PRESET_LARGE ? 4096 : 5120;
      c->final_dim = p == HB_PRESET_LARGE ? 768 : 1024;
      c->layerdrop = 0.0;
      break;
  }
}

int config_preset_by_name(const char *name, hb_preset *p) {
  static const char *names[] = {"tiny", "base", "large", "xlarge"};
  for (int i = 0; i < 4; i++)
    if (!strcmp(name, names[i])) {
      *p = (hb_preset)i;
      return 0;
    }
  return -1;
}

int config_validate(const hb_config *c) {
  if (c->num_conv < 1 || c->num_conv > HB_MAX_CONV) return hb_fail("conv_dim: %d conv layers (need 1..%d)", c->num_conv, HB_MAX_CONV);
  for (int i = 0; i < c->num_conv; i++)
    if (c->conv_dim[i] < 1 || c->conv_kernel[i] < 1 || c->conv_stride[i] < 1)
      return hb_fail("conv layer %d: dim %d, kernel %d, stride %d must all be positive", i, c->conv_dim[i], c->conv_kernel[i], c->conv_stride[i]);
  if (c->hidden_size < 1) return hb_fail("hidden_size must be positive (got %d)", c->hidden_size);
  if (c->num_hidden_layers < 1 || c->num_hidden_layers > HB_MAX_LAYERS)
    return hb_fail("num_hidden_layers must be in 1..%d (got %d)", HB_MAX_LAYERS, c->num_hidden_layers);
  if (c->num_attention_heads < 1 || c->hidden_size % c->num_attention_heads)
    return hb_fail("num_attention_heads (%d) must divide hidden_size (%d)", c->num_attention_heads, c->hidden_size);
  if (c->intermediate_size < 1) return hb_fail("intermediate_size must be positive (got %d)", c->intermediate_size);
  if (c->num_conv_pos_embeddings < 1) return hb_fail("num_conv_pos_embeddings must be positive");
  if (c->num_conv_pos_embedding_groups < 1 || c->hidden_size % c->num_conv_pos_embedding_groups)
    return hb_fail("num_conv_pos_embedding_groups (%d) must divide hidden_size (%d)", c->num_conv_pos_embedding_groups, c->hidden_size);
  if (!(c->layer_norm_eps > 0)) return hb_fail("layer_norm_eps must be positive");
  if (c->final_dim < 0 || c->topic_k < 0 || c->ctc_vocab < 0 || c->topic_hidden < 0) return hb_fail("head sizes must be >= 0");
  if (c->num_label_sets < 0 || c->num_label_sets > HB_MAX_LABEL_SETS) return hb_fail("at most %d label sets", HB_MAX_LABEL_SETS);
  for (int i = 0; i < c->num_label_sets; i++)
    if (c->label_k[i] < 1) return hb_fail("label set '%s': k must be positive", c->label_names[i]);
  if (c->topic_layer < 0 || c->topic_layer > c->num_hidden_layers)
    return hb_fail("topic layer %d outside 0..%d", c->topic_layer, c->num_hidden_layers);
  return 0;
}

int config_num_frames(const hb_config *c, long samples) {
  long n = samples;
  for (int i = 0; i < c->num_conv; i++) {
    if (n < c->conv_kernel[i]) return 0;
    n = (n - c->conv_kernel[i]) / c->conv_stride[i] + 1;
  }
  return (int)n;
}

int config_receptive_field(const hb_config *c) {
  long rf = 1;
  for (int i = c->num_conv - 1; i >= 0; i--) rf = (rf - 1) * c->conv_stride[i] + c->conv_kernel[i];
  return (int)rf;
}

int config_total_stride(const hb_config *c) {
  int s = 1;
  for (int i = 0; i < c->num_conv; i++) s *= c->conv_stride[i];
  return s;
}

// ---- config.json ----------------------------------------------------------------------------

typedef enum { F_INT, F_BOOL, F_DOUBLE } field_type;
typedef struct {
  const char *key;
  field_type type;
  size_t off;
  double lo, hi;  // valid range (inclusive)
} field_spec;

#define F(key, type, member, lo, hi) {key, type, offsetof(hb_config, member), lo, hi}
static const field_spec kHfFields[] = {
    F("conv_bias", F_BOOL, conv_bias, 0, 1),
    F("hidden_size", F_INT, hidden_size, 1, 1 << 16),
    F("num_hidden_layers", F_INT, num_hidden_layers, 1, HB_MAX_LAYERS),
    F("num_attention_heads", F_INT, num_attention_heads, 1, 1024),
    F("intermediate_size", F_INT, intermediate_size, 1, 1 << 18),
    F("num_conv_pos_embeddings", F_INT, num_conv_pos_embeddings, 1, 4096),
    F("num_conv_pos_embedding_groups", F_INT, num_conv_pos_embedding_groups, 1, 4096),
    F("do_stable_layer_norm", F_BOOL, do_stable_layer_norm, 0, 1),
    F("feat_proj_layer_norm", F_BOOL, feat_proj_layer_norm, 0, 1),
    F("layer_norm_eps", F_DOUBLE, layer_norm_eps, 1e-30, 1),
    F("hidden_dropout", F_DOUBLE, hidden_dropout, 0, 1),
    F("attention_dropout", F_DOUBLE, attention_dropout, 0, 1),
    F("activation_dropout", F_DOUBLE, activation_dropout, 0, 1),
    F("feat_proj_dropout", F_DOUBLE, feat_proj_dropout, 0, 1),
    F("layerdrop", F_DOUBLE, layerdrop, 0, 1),
    F("mask_time_prob", F_DOUBLE, mask_time_prob, 0, 1),
    F("mask_time_length", F_INT, mask_time_length, 1, 100000),
};
static const field_spec kExtraFields[] = {
    F("final_dim", F_INT, final_dim, 0, 1 << 16),
    F("untie_final_proj", F_BOOL, untie_final_proj, 0, 1),
    F("topic_k", F_INT, topic_k, 0, 1 << 20),
    F("topic_layer", F_INT, topic_layer, 0, HB_MAX_LAYERS),
    F("topic_hidden", F_INT, topic_hidden, 0, 1 << 16),
    F("ctc_vocab", F_INT, ctc_vocab, 0, 1 << 20),
};
#undef F

static int read_fields(const json_value *obj, const field_spec *spec, int n, hb_config *c) {
  for (int i = 0; i < n; i++) {
    const json_value *v = json_get(obj, spec[i].key);
    if (!v) continue;
    char *dst = (char *)c + spec[i].off;
    double x;
    if (spec[i].type == F_BOOL) {
      if (v->type != JSON_BOOL) return hb_fail("'%s' must be true or false", spec[i].key);
      *(int *)dst = v->boolean;
      continue;
    }
    if (v->type != JSON_NUMBER) return hb_fail("'%s' must be a number", spec[i].key);
    x = v->number;
    if (spec[i].type == F_INT && x != floor(x)) return hb_fail("'%s' must be an integer (got %g)", spec[i].key, x);
    if (!(x >= spec[i].lo && x <= spec[i].hi))
      return hb_fail("'%s' = %g is out of range [%g, %g]", spec[i].key, x, spec[i].lo, spec[i].hi);
    if (spec[i].type == F_INT) *(int *)dst = (int)x;
    else *(double *)dst = x;
  }
  return 0;
}

static int read_int_array(const json_value *obj, const char *key, int *out, int *n) {
  const json_value *v = json_get(obj, key);
  if (!v) return 1;
  if (v->type != JSON_ARRAY) return hb_fail("'%s' must be an array of integers", key);
  if (v->len < 1 || v->len > HB_MAX_CONV) return hb_fail("'%s' must have 1..%d entries (has %zu)", key, HB_MAX_CONV, v->len);
  for (size_t i = 0; i < v->len; i++) {
    const json_value *e = &v->items[i];
    if (e->type != JSON_NUMBER || e->number != floor(e->number) || e->number < 1 || e->number > 65536)
      return hb_fail("'%s'[%zu] must be a positive integer", key, i);
    out[i] = (int)e->number;
  }
  *n = (int)v->len;
  return 0;
}

static int check_string(const json_value *obj, const char *key, const char *const *allowed, int nallowed, int *index) {
  const json_value *v = json_get(obj, key);
  if (!v) return 1;
  if (v->type != JSON_STRING) return hb_fail("'%s' must be a string", key);
  for (int i = 0; i < nallowed; i++)
    if (!strcmp(v->string, allowed[i])) {
      *index = i;
      return 0;
    }
  return hb_fail("'%s' = \"%s\" is not supported (expected \"%s\"%s%s%s)", key, v->string, allowed[0],
                 nallowed > 1 ? " or \"" : "", nallowed > 1 ? allowed[1] : "", nallowed > 1 ? "\"" : "");
}

static int parse_extras(const json_value *x, hb_config *c) {
  // ctc_labels ("ltr"/"phn") and ctc_vocabulary (the CTC symbols) are read by hubert finetune.
  static const char *known[] = {"final_dim",    "untie_final_proj", "labels",     "topic_k",       "topic_layer",
                                "topic_hidden", "ctc_vocab",        "ctc_labels", "ctc_vocabulary"};
  if (x->type != JSON_OBJECT) return hb_fail("'hubert_c' must be an object");
  for (size_t i = 0; i < x->len; i++) {
    int ok = 0;
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) ok |= !strcmp(x->keys[i], known[k]);
    if (!ok) return hb_fail("hubert_c: unknown key '%s'", x->keys[i]);
  }
  HB_TRY(read_fields(x, kExtraFields, (int)(sizeof kExtraFields / sizeof kExtraFields[0]), c));
  const json_value *labels = json_get(x, "labels");
  if (labels) {
    if (labels->type != JSON_ARRAY) return hb_fail("hubert_c.labels must be an array of {name, k}");
    if (labels->len > HB_MAX_LABEL_SETS) return hb_fail("hubert_c.labels: at most %d label sets", HB_MAX_LABEL_SETS);
    c->num_label_sets = (int)labels->len;
    for (size_t i = 0; i < labels->len; i++) {
      const json_value *e = &labels->items[i];
      const char *name = NULL;
      int64_t k = 0;
      if (json_get_string(e, "name", &name) != 0 || json_get_int(e, "k", &k) != 0 || k < 1 || k > (1 << 24))
        return hb_fail("hubert_c.labels[%zu] needs \"name\" (string) and \"k\" (positive integer)", i);
      snprintf(c->label_names[i], HB_NAME_LEN, "%s", name);
      c->label_k[i] = (int)k;
    }
  }
  return 0;
}

int config_read_json(const char *path, hb_config *c) {
  char *text = NULL;
  size_t len = 0;
  HB_TRY(file_read_all(path, &text, &len));
  json_value *root = NULL;
  int rc = json_parse(text, len, &root);
  free(text);
  if (rc) return hb_fail_prefix("%s", path);
  config_preset(c, HB_PRESET_BASE);  // HubertConfig() defaults are the Base architecture
  c->final_dim = 0;                  // HF files carry no pretraining head unless hubert_c says so
  rc = -1;
  if (root->type != JSON_OBJECT) {
    hb_fail("top level must be an object");
    goto done;
  }
  static const char *norms[] = {"group", "layer"};
  static const char *acts[] = {"gelu"};
  int idx = 0, n = 0, nk = 0, ns = 0;
  int r = check_string(root, "feat_extract_norm", norms, 2, &idx);
  if (r < 0) goto done;
  if (r == 0) c->feat_extract_norm_layer = idx;
  if (check_string(root, "feat_extract_activation", acts, 1, &idx) < 0) goto done;
  if (check_string(root, "hidden_act", acts, 1, &idx) < 0) goto done;
  int nd = read_int_array(root, "conv_dim", c->conv_dim, &n);
  int nkr = read_int_array(root, "conv_kernel", c->conv_kernel, &nk);
  int nsr = read_int_array(root, "conv_stride", c->conv_stride, &ns);
  if (nd < 0 || nkr < 0 || nsr < 0) goto done;
  if (nd == 0) c->num_conv = n;
  if (nkr == 0 && nk != c->num_conv) { hb_fail("conv_kernel has %d entries, conv_dim %d", nk, c->num_conv); goto done; }
  if (nsr == 0 && ns != c->num_conv) { hb_fail("conv_stride has %d entries, conv_dim %d", ns, c->num_conv); goto done; }
  const json_value *pbn = json_get(root, "conv_pos_batch_norm");
  if (pbn && pbn->type == JSON_BOOL && pbn->boolean) { hb_fail("conv_pos_batch_norm=true is not supported"); goto done; }
  if (read_fields(root, kHfFields, (int)(sizeof kHfFields / sizeof kHfFields[0]), c)) goto done;
  const json_value *extras = json_get(root, "hubert_c");
  if (extras && parse_extras(extras, c)) goto done;
  if (config_validate(c)) goto done;
  rc = 0;
done:
  json_free(root);
  if (rc) hb_fail_prefix("%s", path);
  return rc;
}

static void write_int_array(json_writer *w, const char *key, const int *a, int n) {
  jw_key(w, key);
  jw_begin_array(w);
  for (int i = 0; i < n; i++) jw_int(w, a[i]);
  jw_end_array(w);
}

int config_write_json(const char *path, const hb_config *c) {
  HB_TRY(config_validate(c));
  json_writer w;
  jw_init(&w, 1);
  jw_begin_object(&w);
  jw_key(&w, "architectures");
  jw_begin_array(&w);
  jw_string(&w, "HubertModel");
  jw_end_array(&w);
  jw_key(&w, "model_type");
  jw_string(&w, "hubert");
  jw_key(&w, "feat_extract_norm");
  jw_string(&w, c->feat_extract_norm_layer ? "layer" : "group");
  jw_key(&w, "feat_extract_activation");
  jw_string(&w, "gelu");
  jw_key(&w, "hidden_act");
  jw_string(&w, "gelu");
  jw_key(&w, "num_feat_extract_layers");
  jw_int(&w, c->num_conv);
  write_int_array(&w, "conv_dim", c->conv_dim, c->num_conv);
  write_int_array(&w, "conv_kernel", c->conv_kernel, c->num_conv);
  write_int_array(&w, "conv_stride", c->conv_stride, c->num_conv);
  for (size_t i = 0; i < sizeof kHfFields / sizeof kHfFields[0]; i++) {
    const char *src = (const char *)c + kHfFields[i].off;
    jw_key(&w, kHfFields[i].key);
    if (kHfFields[i].type == F_BOOL) jw_bool(&w, *(const int *)src);
    else if (kHfFields[i].type == F_INT) jw_int(&w, *(const int *)src);
    else jw_double(&w, *(const double *)src);
  }
  jw_key(&w, "hubert_c");
  jw_begin_object(&w);
  for (size_t i = 0; i < sizeof kExtraFields / sizeof kExtraFields[0]; i++) {
    const char *src = (const char *)c + kExtraFields[i].off;
    jw_key(&w, kExtraFields[i].key);
    if (kExtraFields[i].type == F_BOOL) jw_bool(&w, *(const int *)src);
    else jw_int(&w, *(const int *)src);
  }
  jw_key(&w, "labels");
  jw_begin_array(&w);
  for (int i = 0; i < c->num_label_sets; i++) {
    jw_begin_object(&w);
    jw_key(&w, "name");
    jw_string(&w, c->label_names[i]);
    jw_key(&w, "k");
    jw_int(&w, c->label_k[i]);
    jw_end_object(&w);
  }
  jw_end_array(&w);
  jw_end_object(&w);
  jw_end_object(&w);
  size_t len = 0;
  char *text = jw_finish(&w, &len);
  if (!text) return hb_fail_prefix("%s", path);
  int rc = file_write_atomic(path, text, len);
  free(text);
  return rc;
}
