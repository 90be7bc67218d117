// Trainer configuration: fairseq-style YAML sections (common, checkpoint, distributed_training,
// task, dataset, criterion, optimization, optimizer, lr_scheduler, model) plus `topic` for the
// HuBERTopic head.
//
// ONE table of keys (train/config.c: section, key, type, default, min, max, help) drives parsing,
// defaults, validation, `hubert config --list`, printing the resolved config and saving it.
//
// Resolution order: table defaults -> model.preset (file or override) fills the architecture
// fields -> the file's values -> command-line overrides `section.key=value` in order.
// Scalars also accept a one-element list (`lr: [0.0005]`, as fairseq writes it); lists also
// accept a scalar and an inline string "(0.9,0.98)" / "[a,b]". A value written as `???`
// (fairseq's mandatory marker) must be given by a later override.
#ifndef HB_TRAIN_CONFIG_H
#define HB_TRAIN_CONFIG_H

#include <stdio.h>

#include "models/hubert_config.h"
#include "train/optim.h"

#define HB_CFG_MAX_LIST 8
#define HB_CFG_PATH_LEN 512

typedef struct { int n; double v[HB_CFG_MAX_LIST]; } hb_cfg_dlist;
typedef struct { int n; char s[HB_CFG_MAX_LIST][HB_NAME_LEN]; } hb_cfg_slist;

typedef struct {
  struct {
    long seed;
    int log_interval;            // updates between logged lines
    int device;                  // 0 cpu, 1 cuda
    int max_nan_updates;         // stop after this many non-finite updates in a row
    char log_file[HB_CFG_PATH_LEN];  // JSONL log ("" = SAVE_DIR/train_log.jsonl)
    int fp16;                    // fairseq compatibility (ignored)
    int bf16;                    // 1: bf16 GEMMs, fp32 master weights (CUDA only; docs/cuda.md)
    char log_format[32];         // fairseq compatibility (ignored)
    char tensorboard_logdir[HB_CFG_PATH_LEN];  // fairseq compatibility (ignored)
  } common;
  struct {
    char save_dir[HB_CFG_PATH_LEN];
    long save_interval_updates;
    int keep_interval_updates;   // -1 keeps all
    int no_epoch_checkpoints;    // fairseq compatibility (ignored)
    int best_checkpoint_metric;  // hubert finetune: 0 loss | 1 wer | 2 cer | 3 per
    int save_interval;           // fairseq compatibility (ignored)
  } checkpoint;
  struct {
    int zero;                    // 1: shard optimizer state across ranks (ZeRO-1)
    double timeout;              // seconds a collective may wait for a late rank before the job stops
    double bucket_cap_mb;        // gradient all-reduce bucket size in MiB (fairseq bucket_cap_mb)
    int overlap_comm;            // 1: all-reduce buckets while the last micro-batch's backward runs
    int distributed_world_size;  // informative: the world size the hyper-parameters assume
    char ddp_backend[32], distributed_backend[32];  // fairseq compatibility (ignored)
    int distributed_port, nprocs_per_node, find_unused_parameters;  // fairseq compatibility
  } distributed_training;
  struct {
    char name[32];               // _name (fairseq compatibility)
    char data[HB_CFG_PATH_LEN];  // shard directory
    char label_dir[HB_CFG_PATH_LEN];  // fairseq compatibility (labels live in the shards)
    hb_cfg_slist labels;         // label-set names inside the shards
    double label_rate;           // Hz; 0 = model.label_rate
    int sample_rate;
    long max_sample_size, min_sample_size;
    int random_crop, pad_audio, normalize;
    int fine_tuning, single_target;  // fairseq compatibility (ignored)
  } task;
  struct {
    long max_tokens;             // samples per batch (per rank)
    int num_workers;             // prefetch threads
    char valid_subset[64];
    long validate_interval_updates;
    long validate_after_updates;     // hubert finetune: no validation before (-1: model.freeze_finetune_updates)
    char train_subset[64], test_subset[64];  // hubert finetune: shard name prefixes
    int skip_invalid_size_inputs_valid_test, validate_interval;  // fairseq compatibility
  } dataset;
  struct {
    char name[32];
    double pred_masked_weight, pred_nomask_weight;
    hb_cfg_dlist loss_weights;   // feature penalty weight(s)
    int zero_infinity;           // hubert finetune: drop utterances CTC cannot align (else the loss is inf)
    char post_process[32];       // fairseq compatibility (ignored)
  } criterion;
  struct {
    long max_update;
    hb_cfg_dlist lr;             // peak learning rate (first entry)
    int update_freq;             // gradient accumulation steps
    double clip_norm;            // 0: no clipping
    int sentence_avg;            // hubert finetune: normalise the CTC loss by utterances (else by target tokens)
  } optimization;
  struct {
    int name;                    // 0 adam (fairseq's: decoupled weight decay) | 1 adamw (same update)
    hb_cfg_dlist adam_betas;
    double adam_eps, weight_decay;
  } optimizer;
  struct {
    int name;                    // hb_lr_kind
    long warmup_updates;
    double end_learning_rate, power;
    long total_num_update;       // 0 = optimization.max_update
    hb_cfg_dlist phase_ratio;
    double init_lr_scale, final_lr_scale;
    long warmup_steps, hold_steps, decay_steps;  // tri_stage: explicit phase lengths (any > 0: replace phase_ratio)
  } lr_scheduler;
  struct {
    char name[32];
    int preset;                  // hb_preset
    int encoder_layers, encoder_embed_dim, encoder_ffn_embed_dim, encoder_attention_heads;
    int conv_dim, conv_pos, conv_pos_groups, layer_norm_first, extractor_mode, conv_bias;
    double label_rate;
    double mask_prob;
    int mask_length;
    int final_dim, untie_final_proj;
    double dropout, attention_dropout, activation_dropout, dropout_input, dropout_features;
    double encoder_layerdrop, feature_grad_mult, logit_temp;
    int skip_masked, skip_nomask;  // fairseq compatibility
    char conv_feature_layers[128];  // fairseq's extractor spec: only its standard layout (checked)
    // hubert finetune (fairseq hubert_ctc names)
    char w2v_path[HB_CFG_PATH_LEN];  // pretrained model folder
    int no_pretrained_weights;   // 1: random init of w2v_path's architecture (the untrained baseline)
    int apply_mask;              // time (mask_prob, mask_length) and channel masking while fine-tuning
    double mask_channel_prob;
    int mask_channel_length;
    long freeze_finetune_updates;  // only the CTC head trains before this update
    double final_dropout;        // dropout before the CTC head
    double layerdrop;            // LayerDrop while fine-tuning
    char mask_selection[16], mask_channel_selection[16];  // fairseq compatibility ("static" only)
    double mask_other, mask_channel_other;                // fairseq compatibility (ignored)
    int no_mask_overlap, no_mask_channel_overlap;         // fairseq compatibility (ignored)
  } model;
  struct {
    double weight;               // lambda; 0 disables the head
    int k;                       // topics (0: from the shards' topic set)
    int layer;                   // 1-based; 0 = last
    int hidden;                  // 0: linear head
    char name[HB_NAME_LEN];      // topic set in the shards ("" : no topic head)
  } topic;
} hb_train_config;

// Table defaults (model fields: HuBERT Base).
void train_config_defaults(hb_train_config *c);
// Loads PATH (NULL: defaults only), then applies overrides "section.key=value". Errors name the
// file, line and key (or the override), and suggest the closest valid name.
int train_config_load(hb_train_config *c, const char *path, int n_overrides, char *const *overrides);
// Same from a YAML string (`name` is used in messages).
int train_config_load_string(hb_train_config *c, const char *yaml, const char *name, int n_overrides,
                             char *const *overrides);
// One override "section.key=value" on an already loaded config (then re-validates).
int train_config_override(hb_train_config *c, const char *assignment);
// Cross-key checks (also run by the loaders).
int train_config_validate(const hb_train_config *c);

// Writes the whole resolved config as YAML (parseable by train_config_load).
int train_config_write(const hb_train_config *c, FILE *f);
int train_config_save(const hb_train_config *c, const char *path);  // atomic (tmp + rename)
// Every key with type, default, range and help (the `hubert config --list` text); markdown: a table.
void train_config_list(FILE *f, int markdown);

// The model architecture implied by the config (label sets/K and topic K are filled by the
// trainer from the shards; num_label_sets = task.labels.n with k = 0).
int train_config_model(const hb_train_config *c, hb_config *out);
// The learning-rate schedule (train/optim.h: sched_lr) and AdamW settings of the config.
void train_config_schedule(const hb_train_config *c, hb_lr_schedule *s);
hb_adamw_hparams train_config_adamw(const hb_train_config *c);

#endif
