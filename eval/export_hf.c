// Hugging Face export (see export_hf.h).
#include "eval/export_hf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "common/json.h"
#include "common/safetensors.h"
#include "models/hubert.h"

static int is_pretrain_head(const char *name) {
  return !strncmp(name, "final_proj.", 11) || !strcmp(name, "label_embs_concat") || !strncmp(name, "topic_head.", 11);
}

static void int_array(json_writer *w, const char *key, const int *a, int n) {
  jw_key(w, key);
  jw_begin_array(w);
  for (int i = 0; i < n; i++) jw_int(w, a[i]);
  jw_end_array(w);
}

static void kv_d(json_writer *w, const char *k, double v) { jw_key(w, k); jw_double(w, v); }
static void kv_i(json_writer *w, const char *k, long v) { jw_key(w, k); jw_int(w, v); }
static void kv_b(json_writer *w, const char *k, int v) { jw_key(w, k); jw_bool(w, v); }
static void kv_s(json_writer *w, const char *k, const char *v) { jw_key(w, k); jw_string(w, v); }

// A complete HubertConfig (transformers' field names and defaults for what we do not model),
// keys sorted as transformers' save_pretrained writes them, plus our hubert_c object.
static int write_config(const char *path, const hb_config *c, const hb_export_opts *o, int ctc) {
  json_writer w;
  jw_init(&w, 1);
  jw_begin_object(&w);
  kv_d(&w, "activation_dropout", c->activation_dropout);
  kv_b(&w, "apply_spec_augment", 1);
  jw_key(&w, "architectures");
  jw_begin_array(&w);
  jw_string(&w, ctc ? "HubertForCTC" : "HubertModel");
  jw_end_array(&w);
  kv_d(&w, "attention_dropout", c->attention_dropout);
  kv_i(&w, "bos_token_id", 1);
  kv_i(&w, "classifier_proj_size", 256);
  kv_b(&w, "conv_bias", c->conv_bias);
  int_array(&w, "conv_dim", c->conv_dim, c->num_conv);
  int_array(&w, "conv_kernel", c->conv_kernel, c->num_conv);
  kv_b(&w, "conv_pos_batch_norm", 0);
  int_array(&w, "conv_stride", c->conv_stride, c->num_conv);
  kv_s(&w, "ctc_loss_reduction", "sum");
  kv_b(&w, "ctc_zero_infinity", 0);
  kv_b(&w, "do_stable_layer_norm", c->do_stable_layer_norm);
  kv_i(&w, "eos_token_id", 2);
  kv_s(&w, "feat_extract_activation", "gelu");
  kv_d(&w, "feat_extract_dropout", 0.0);
  kv_s(&w, "feat_extract_norm", c->feat_extract_norm_layer ? "layer" : "group");
  kv_d(&w, "feat_proj_dropout", c->feat_proj_dropout);
  kv_b(&w, "feat_proj_layer_norm", c->feat_proj_layer_norm);
  kv_d(&w, "final_dropout", 0.1);
  kv_s(&w, "hidden_act", "gelu");
  kv_d(&w, "hidden_dropout", c->hidden_dropout);
  kv_i(&w, "hidden_size", c->hidden_size);
  kv_d(&w, "initializer_range", 0.02);
  kv_i(&w, "intermediate_size", c->intermediate_size);
  kv_d(&w, "layer_norm_eps", c->layer_norm_eps);
  kv_d(&w, "layerdrop", c->layerdrop);
  kv_i(&w, "mask_feature_length", 10);
  kv_i(&w, "mask_feature_min_masks", 0);
  kv_d(&w, "mask_feature_prob", 0.0);
  kv_i(&w, "mask_time_length", c->mask_time_length);
  kv_i(&w, "mask_time_min_masks", 2);
  kv_d(&w, "mask_time_prob", c->mask_time_prob);
  kv_s(&w, "model_type", "hubert");
  kv_i(&w, "num_attention_heads", c->num_attention_heads);
  kv_i(&w, "num_conv_pos_embedding_groups", c->num_conv_pos_embedding_groups);
  kv_i(&w, "num_conv_pos_embeddings", c->num_conv_pos_embeddings);
  kv_i(&w, "num_feat_extract_layers", c->num_conv);
  kv_i(&w, "num_hidden_layers", c->num_hidden_layers);
  kv_i(&w, "pad_token_id", 0);  // CTC blank = HF's pad token (id 0)
  kv_s(&w, "torch_dtype", o->bf16 ? "bfloat16" : "float32");
  kv_b(&w, "use_weighted_layer_sum", 0);
  kv_i(&w, "vocab_size", ctc ? c->ctc_vocab : 32);
  // Our extras: the pretraining heads only when they are exported too; the CTC head lives in
  // lm_head (HF's name), which hubert.c reads as a plain encoder.
  jw_key(&w, "hubert_c");
  jw_begin_object(&w);
  const int heads = o->keep_heads && c->final_dim > 0;
  kv_i(&w, "final_dim", heads ? c->final_dim : 0);
  kv_b(&w, "untie_final_proj", heads && c->untie_final_proj);
  jw_key(&w, "labels");
  jw_begin_array(&w);
  for (int i = 0; heads && i < c->num_label_sets; i++) {
    jw_begin_object(&w);
    kv_s(&w, "name", c->label_names[i]);
    kv_i(&w, "k", c->label_k[i]);
    jw_end_object(&w);
  }
  jw_end_array(&w);
  const int topic = o->keep_heads && c->topic_k > 0;
  kv_i(&w, "topic_k", topic ? c->topic_k : 0);
  kv_i(&w, "topic_layer", topic ? c->topic_layer : 0);
  kv_i(&w, "topic_hidden", topic ? c->topic_hidden : 0);
  kv_i(&w, "ctc_vocab", 0);
  jw_end_object(&w);
  jw_end_object(&w);
  size_t len = 0;
  char *text = jw_finish(&w, &len);
  if (!text) return hb_fail_prefix("%s", path);
  int rc = file_write_atomic(path, text, len);
  free(text);
  return rc;
}

// vocab.json: the model folder's own (written by hubert finetune), else placeholder symbols
// {"<pad>": 0, "<unk>": 1, "<2>": 2, ...} so that a Wav2Vec2CTCTokenizer can be built.
static int write_vocab(const char *model_dir, const char *out_dir, int V, int *copied) {
  char src[4096], dst[4096];
  snprintf(src, sizeof src, "%s/vocab.json", model_dir);
  snprintf(dst, sizeof dst, "%s/vocab.json", out_dir);
  *copied = 0;
  if (file_exists(src)) {
    char *text;
    size_t len;
    HB_TRY(file_read_all(src, &text, &len));
    json_value *root = NULL;
    int rc = json_parse(text, len, &root);
    if (!rc && (root->type != JSON_OBJECT || (long)root->len != V)) {
      rc = hb_fail("%s: expected an object of %d symbols (the CTC head's vocabulary size), found %zu entries", src, V,
                   root->type == JSON_OBJECT ? root->len : (size_t)0);
    } else if (rc) {
      hb_fail_prefix("%s", src);
    }
    json_free(root);
    if (!rc) rc = file_write_atomic(dst, text, len);
    free(text);
    *copied = rc == 0;
    return rc;
  }
  json_writer w;
  jw_init(&w, 1);
  jw_begin_object(&w);
  for (int i = 0; i < V; i++) {
    char sym[32];
    if (i == 0) snprintf(sym, sizeof sym, "<pad>");
    else if (i == 1) snprintf(sym, sizeof sym, "<unk>");
    else snprintf(sym, sizeof sym, "<%d>", i);
    jw_key(&w, sym);
    jw_int(&w, i);
  }
  jw_end_object(&w);
  size_t len;
  char *text = jw_finish(&w, &len);
  if (!text) return hb_fail_prefix("%s", dst);
  int rc = file_write_atomic(dst, text, len);
  free(text);
  return rc;
}

static int same_dir(const char *a, const char *b) {
  struct stat sa, sb;
  return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int export_hf(const char *model_dir, const char *out_dir, const hb_export_opts *o, hb_export_stats *st) {
  memset(st, 0, sizeof *st);
  if (same_dir(model_dir, out_dir))
    return hb_fail("%s: the output folder is the model folder itself (choose another --out)", out_dir);
  hb_ctx ctx;
  HB_TRY(ops_ctx_init(&ctx, "cpu", 0));
  hb_model m;
  if (model_load(&m, model_dir, &ctx)) {
    ops_ctx_free(&ctx);
    return -1;
  }
  const hb_config *c = &m.cfg;
  const int ctc = c->ctc_vocab > 0;
  hb_st_entry *e = hb_calloc((size_t)m.layout.n, sizeof *e);
  char(*names)[160] = hb_calloc((size_t)m.layout.n, sizeof *names);
  int rc = -1, n = 0;
  if (!e || !names) goto done;
  for (int i = 0; i < m.layout.n; i++) {
    const hb_param_info *p = &m.layout.info[i];
    if (is_pretrain_head(p->name) && !o->keep_heads) continue;
    // HubertModel creates masked_spec_embed only when a masking probability is positive.
    if (!strcmp(p->name, "masked_spec_embed") && !(c->mask_time_prob > 0)) continue;
    if (!strncmp(p->name, "ctc_head.", 9)) snprintf(names[n], sizeof names[n], "lm_head.%s", p->name + 9);
    else snprintf(names[n], sizeof names[n], "%s%s", ctc ? "hubert." : "", p->name);
    e[n].name = names[n];
    e[n].data = m.params + p->offset;  // CPU backend: host memory
    e[n].ndim = p->ndim;
    for (int d = 0; d < p->ndim; d++) e[n].shape[d] = p->shape[d];
    st->mbytes += (double)p->numel * (o->bf16 ? 2 : 4) / 1e6;
    n++;
  }
  if (file_mkdirs(out_dir)) goto done;
  char path[4096];
  snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
  const char *mk[] = {"format", "producer"};
  const char *mv[] = {"pt", "hubert.c " HUBERT_VERSION " export-hf"};
  // vocab.json first: a vocabulary that does not match the head fails before any tensor is written.
  if (ctc && write_vocab(model_dir, out_dir, c->ctc_vocab, &st->vocab_from_model)) goto done;
  if (st_write(path, n, e, o->bf16 ? HB_DT_BF16 : HB_DT_F32, 2, mk, mv)) goto done;
  snprintf(path, sizeof path, "%s/config.json", out_dir);  // last: a folder with config.json is complete
  if (write_config(path, c, o, ctc)) goto done;
  st->ctc = ctc;
  st->n_tensors = n;
  rc = 0;
done:
  free(e);
  free(names);
  model_free(&m);
  ops_ctx_free(&ctx);
  return rc;
}
