// `hubert export-hf`: a model folder as a plain Hugging Face folder that
// transformers.HubertModel / HubertForCTC.from_pretrained loads (docs/interop.md).
#ifndef HB_EXPORT_HF_H
#define HB_EXPORT_HF_H

typedef struct {
  int bf16;        // model.safetensors in bfloat16 (else float32)
  int keep_heads;  // keep the pretraining heads (final_proj, label_embs_concat, topic_head) as extra keys
} hb_export_opts;

typedef struct {
  int ctc;         // 1: exported as HubertForCTC (hubert. prefix + lm_head, vocab.json)
  int n_tensors;
  double mbytes;   // model.safetensors size
  int vocab_from_model;  // vocab.json copied from the model folder (else generated)
} hb_export_stats;

// Writes out_dir/config.json (a complete HubertConfig: model_type "hubert", architectures,
// torch_dtype, every field transformers reads) and out_dir/model.safetensors with HF names
// (weight-norm as weight_g/weight_v, the spelling of the published HF checkpoints, which every
// transformers version loads). Pretraining heads are dropped unless opts->keep_heads. A model with
// a CTC head becomes HubertForCTC ("hubert." prefix, lm_head.weight/bias, vocab_size, vocab.json).
int export_hf(const char *model_dir, const char *out_dir, const hb_export_opts *opts, hb_export_stats *st);

#endif
