// HuBERT model configuration: the fields of Hugging Face's HubertConfig that shape the network,
// plus hubert.c's pretraining extras (the `hubert_c` object of config.json).
#ifndef HB_HUBERT_CONFIG_H
#define HB_HUBERT_CONFIG_H

#define HB_MAX_CONV 16
#define HB_MAX_LAYERS 64
#define HB_MAX_LABEL_SETS 8
#define HB_NAME_LEN 64

typedef struct {
  // --- HF HubertConfig: architecture ---
  int feat_extract_norm_layer;   // "feat_extract_norm": 0 = "group" (Base), 1 = "layer" (Large)
  int num_conv;                  // len(conv_dim)
  int conv_dim[HB_MAX_CONV];
  int conv_kernel[HB_MAX_CONV];
  int conv_stride[HB_MAX_CONV];
  int conv_bias;
  int hidden_size;
  int num_hidden_layers;
  int num_attention_heads;
  int intermediate_size;
  int num_conv_pos_embeddings;
  int num_conv_pos_embedding_groups;
  int do_stable_layer_norm;      // 1: pre-LN transformer (Large / X-Large)
  int feat_proj_layer_norm;      // layer norm before the feature projection (HuBERT: true)
  double layer_norm_eps;         // transformer layer norms (the conv extractor uses 1e-5)
  // --- HF HubertConfig: regularisation (training; inference ignores them) ---
  double hidden_dropout, attention_dropout, activation_dropout, feat_proj_dropout, layerdrop;
  double mask_time_prob;
  int mask_time_length;
  // --- hubert_c extras: pretraining heads ---
  int final_dim;                 // masked-prediction projection size (0: no pretraining head)
  int untie_final_proj;          // one projection per label set
  int num_label_sets;
  char label_names[HB_MAX_LABEL_SETS][HB_NAME_LEN];
  int label_k[HB_MAX_LABEL_SETS];
  int topic_k;                   // HuBERTopic head (0: none)
  int topic_layer;               // layer whose output is pooled (1-based; 0 = last)
  int topic_hidden;              // hidden size of the optional MLP (0: a single linear)
  int ctc_vocab;                 // CTC head (0: none)
} hb_config;

typedef enum { HB_PRESET_TINY, HB_PRESET_BASE, HB_PRESET_LARGE, HB_PRESET_XLARGE } hb_preset;

// Fills c with the published HuBERT Base/Large/X-Large architecture (or a tiny test model).
void config_preset(hb_config *c, hb_preset p);
// Looks up a preset by name ("tiny", "base", "large", "xlarge"); -1 if unknown.
int config_preset_by_name(const char *name, hb_preset *p);
// Checks internal consistency (positive sizes, heads divide hidden, groups divide hidden, ...).
int config_validate(const hb_config *c);

// Conv arithmetic of the feature extractor: frames produced by `samples` input samples
// (0 if the input is shorter than the receptive field).
int config_num_frames(const hb_config *c, long samples);
// Receptive field in samples (400 for HuBERT) and total stride (320).
int config_receptive_field(const hb_config *c);
int config_total_stride(const hb_config *c);

// config.json <-> hb_config. Reading accepts HF HubertConfig / Wav2Vec2Config files (unknown HF
// keys are ignored, as transformers does); values of the wrong type or out of range are errors
// naming the key. Writing emits a complete HubertConfig plus the "hubert_c" object.
int config_read_json(const char *path, hb_config *c);
int config_write_json(const char *path, const hb_config *c);

#endif
