// The key table and everything derived from it: defaults, the value setter, validation, the
// printer (YAML), the lister, and the model / schedule / optimizer settings.
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "train/config.h"
#include "train/config_keys.h"

#define F(sec, field) offsetof(hb_train_config, sec.field), sizeof(((hb_train_config *)0)->sec.field)
#define BIG 1e18
#define NONE 0, 0, NULL

const char *const cfg_sections[] = {"common",    "checkpoint", "distributed_training", "task",
                                    "dataset",   "criterion",  "optimization",         "optimizer",
                                    "lr_scheduler", "model",   "topic"};
const int cfg_num_sections = (int)(sizeof cfg_sections / sizeof cfg_sections[0]);

// section, key, type, field, default, min, max, choices, flags, help
const cfg_key cfg_keys[] = {
    {"common", "seed", CK_LONG, F(common, seed), "1337", 0, BIG, NULL, 0, "seed of every random stream (init, masking, dropout, data order)"},
    {"common", "log_interval", CK_INT, F(common, log_interval), "200", 1, 1e9, NULL, 0, "updates between progress lines and JSONL log records"},
    {"common", "device", CK_ENUM, F(common, device), "cpu", 0, 0, "cpu|cuda", 0, "where the model trains"},
    {"common", "max_nan_updates", CK_INT, F(common, max_nan_updates), "10", 1, 1e9, NULL, 0, "stop after this many non-finite updates in a row (each is skipped)"},
    {"common", "log_file", CK_STR, F(common, log_file), "", NONE, 0, "JSONL log of every logged update (\"\": SAVE_DIR/train_log.jsonl)"},
    {"common", "bf16", CK_BOOL, F(common, bf16), "false", NONE, 0, "mixed precision: the linear layers' GEMMs in bf16 with fp32 accumulation, fp32 master weights (common.device: cuda only)"},
    {"common", "fp16", CK_BOOL, F(common, fp16), "false", NONE, CK_COMPAT, "fairseq: mixed precision"},
    {"common", "log_format", CK_STR, F(common, log_format), "json", NONE, CK_COMPAT, "fairseq: log format"},
    {"common", "tensorboard_logdir", CK_STR, F(common, tensorboard_logdir), "", NONE, CK_COMPAT, "fairseq: tensorboard folder"},

    {"checkpoint", "save_dir", CK_STR, F(checkpoint, save_dir), "checkpoints", NONE, 0, "folder of the checkpoints (model folders + trainer state)"},
    {"checkpoint", "save_interval_updates", CK_LONG, F(checkpoint, save_interval_updates), "25000", 0, BIG, NULL, 0, "updates between checkpoints (0: only at the end)"},
    {"checkpoint", "keep_interval_updates", CK_INT, F(checkpoint, keep_interval_updates), "1", -1, 1e9, NULL, 0, "interval checkpoints kept besides last/best (-1: all)"},
    {"checkpoint", "no_epoch_checkpoints", CK_BOOL, F(checkpoint, no_epoch_checkpoints), "true", NONE, CK_COMPAT, "fairseq: no per-epoch checkpoints"},
    {"checkpoint", "best_checkpoint_metric", CK_ENUM, F(checkpoint, best_checkpoint_metric), "loss", 0, 0, "loss|wer|cer|per", 0, "hubert finetune: valid metric of checkpoint_best (wer: word error for ltr labels, phone error for phn, as fairseq's wer; hubert train: always the loss)"},
    {"checkpoint", "save_interval", CK_INT, F(checkpoint, save_interval), "1", 0, 1e9, NULL, CK_COMPAT, "fairseq: epochs between checkpoints"},

    {"distributed_training", "zero", CK_INT, F(distributed_training, zero), "0", 0, 1, NULL, 0, "1: shard the optimizer state across ranks (ZeRO stage 1)"},
    {"distributed_training", "timeout", CK_DOUBLE, F(distributed_training, timeout), "600", 0.1, 1e7, NULL, 0, "seconds a collective waits for a late or lost rank before the job stops with an error naming it"},
    {"distributed_training", "bucket_cap_mb", CK_DOUBLE, F(distributed_training, bucket_cap_mb), "25", 0.001, 1e6, NULL, 0, "gradient all-reduce bucket size in MiB (fractions allowed: small models, tests)"},
    {"distributed_training", "overlap_comm", CK_BOOL, F(distributed_training, overlap_comm), "true", NONE, 0, "all-reduce gradient buckets while the backward pass of the update's last micro-batch still runs (bitwise the same result as after it)"},
    {"distributed_training", "distributed_world_size", CK_INT, F(distributed_training, distributed_world_size), "1", 1, 1e6, NULL, 0, "ranks the hyper-parameters were tuned for (informative; max_tokens is per rank)"},
    {"distributed_training", "ddp_backend", CK_STR, F(distributed_training, ddp_backend), "no_c10d", NONE, CK_COMPAT, "fairseq: DDP implementation"},
    {"distributed_training", "distributed_backend", CK_STR, F(distributed_training, distributed_backend), "nccl", NONE, CK_COMPAT, "fairseq: torch.distributed backend"},
    {"distributed_training", "distributed_port", CK_INT, F(distributed_training, distributed_port), "-1", -1, 65535, NULL, CK_COMPAT, "fairseq: rendezvous port"},
    {"distributed_training", "nprocs_per_node", CK_INT, F(distributed_training, nprocs_per_node), "1", 1, 1e6, NULL, CK_COMPAT, "fairseq: processes per node"},
    {"distributed_training", "find_unused_parameters", CK_BOOL, F(distributed_training, find_unused_parameters), "true", NONE, CK_COMPAT, "fairseq: DDP option"},

    {"task", "_name", CK_STR, F(task, name), "hubert_pretraining", NONE, CK_COMPAT, "fairseq: task name"},
    {"task", "data", CK_STR, F(task, data), "", NONE, 0, "folder of HDF5 shards (hubert shard --out)"},
    {"task", "label_dir", CK_STR, F(task, label_dir), "", NONE, CK_COMPAT, "fairseq: label folder (labels live in the shards here)"},
    {"task", "labels", CK_SLIST, F(task, labels), "[km]", NONE, 0, "label sets (shard /labels/<name>) predicted by the masked-prediction head"},
    {"task", "label_rate", CK_DOUBLE, F(task, label_rate), "0", 0, 1e5, NULL, 0, "label frames per second (0 or ${model.label_rate}: model.label_rate)"},
    {"task", "sample_rate", CK_INT, F(task, sample_rate), "16000", 1000, 192000, NULL, 0, "audio sample rate of the shards (Hz)"},
    {"task", "max_sample_size", CK_LONG, F(task, max_sample_size), "250000", 1, 1e12, NULL, 0, "longer utterances are cropped to this many samples"},
    {"task", "min_sample_size", CK_LONG, F(task, min_sample_size), "32000", 0, 1e12, NULL, 0, "shorter utterances are skipped"},
    {"task", "random_crop", CK_BOOL, F(task, random_crop), "true", NONE, 0, "crop at a random offset (false: from the start)"},
    {"task", "pad_audio", CK_BOOL, F(task, pad_audio), "false", NONE, 0, "pad a batch to its longest utterance (false: crop to the shortest)"},
    {"task", "normalize", CK_BOOL, F(task, normalize), "false", NONE, 0, "normalise each waveform to zero mean, unit variance (Large models)"},
    {"task", "fine_tuning", CK_BOOL, F(task, fine_tuning), "false", NONE, CK_COMPAT, "fairseq: fine-tuning task (hubert finetune reads task.labels ltr|phn)"},
    {"task", "single_target", CK_BOOL, F(task, single_target), "false", NONE, CK_COMPAT, "fairseq: one label set"},

    {"dataset", "max_tokens", CK_LONG, F(dataset, max_tokens), "1400000", 1, 1e12, NULL, 0, "audio samples per batch and rank"},
    {"dataset", "num_workers", CK_INT, F(dataset, num_workers), "2", 0, 64, NULL, 0, "loader prefetch threads (0: load in the training thread)"},
    {"dataset", "valid_subset", CK_STR, F(dataset, valid_subset), "valid", NONE, 0, "held-out split: shards whose name starts with this"},
    {"dataset", "validate_interval_updates", CK_LONG, F(dataset, validate_interval_updates), "10000", 0, BIG, NULL, 0, "updates between validations (0: only at the end)"},
    {"dataset", "validate_after_updates", CK_LONG, F(dataset, validate_after_updates), "0", -1, BIG, NULL, 0, "hubert finetune: no validation before this update (-1 or ${model.freeze_finetune_updates}: that value)"},
    {"dataset", "train_subset", CK_STR, F(dataset, train_subset), "train", NONE, 0, "hubert finetune: training split, shards whose name starts with this"},
    {"dataset", "test_subset", CK_STR, F(dataset, test_subset), "test", NONE, 0, "hubert finetune: split scored with checkpoint_best at the end (\"\": none)"},
    {"dataset", "skip_invalid_size_inputs_valid_test", CK_BOOL, F(dataset, skip_invalid_size_inputs_valid_test), "true", NONE, CK_COMPAT, "fairseq option"},
    {"dataset", "validate_interval", CK_INT, F(dataset, validate_interval), "5", 0, 1e9, NULL, CK_COMPAT, "fairseq: epochs between validations"},

    {"criterion", "_name", CK_STR, F(criterion, name), "hubert", NONE, CK_COMPAT, "fairseq: criterion name"},
    {"criterion", "pred_masked_weight", CK_DOUBLE, F(criterion, pred_masked_weight), "1.0", 0, 1e6, NULL, 0, "weight of the loss on masked frames"},
    {"criterion", "pred_nomask_weight", CK_DOUBLE, F(criterion, pred_nomask_weight), "0.0", 0, 1e6, NULL, 0, "weight of the loss on unmasked frames"},
    {"criterion", "loss_weights", CK_DLIST, F(criterion, loss_weights), "[10.0]", 0, 1e6, NULL, 0, "weight of the feature penalty (mean square of the extractor output)"},
    {"criterion", "zero_infinity", CK_BOOL, F(criterion, zero_infinity), "false", NONE, 0, "hubert finetune: utterances too short for their transcript carry no CTC loss (false: the update is non-finite and skipped)"},
    {"criterion", "post_process", CK_STR, F(criterion, post_process), "letter", NONE, CK_COMPAT, "fairseq: decoding post-processing"},

    {"optimization", "max_update", CK_LONG, F(optimization, max_update), "400000", 1, 1e15, NULL, 0, "updates to train for"},
    {"optimization", "lr", CK_DLIST, F(optimization, lr), "[0.0005]", 0, 10, NULL, 0, "peak learning rate (fairseq writes a list; the first entry is used)"},
    {"optimization", "update_freq", CK_INT, F(optimization, update_freq), "1", 1, 1e6, NULL, 0, "batches accumulated per update"},
    {"optimization", "clip_norm", CK_DOUBLE, F(optimization, clip_norm), "10.0", 0, 1e12, NULL, 0, "clip the global gradient norm to this (0: no clipping)"},
    {"optimization", "sentence_avg", CK_BOOL, F(optimization, sentence_avg), "false", NONE, 0, "hubert finetune: gradient of the CTC loss per utterance (false: per target token)"},

    {"optimizer", "_name", CK_ENUM, F(optimizer, name), "adam", 0, 0, "adam|adamw", 0, "adam is fairseq's (decoupled weight decay, i.e. AdamW); both run the same update"},
    {"optimizer", "adam_betas", CK_DLIST, F(optimizer, adam_betas), "(0.9,0.98)", 0, 0.999999999, NULL, 0, "Adam beta1, beta2"},
    {"optimizer", "adam_eps", CK_DOUBLE, F(optimizer, adam_eps), "1e-06", 1e-30, 1, NULL, 0, "Adam epsilon"},
    {"optimizer", "weight_decay", CK_DOUBLE, F(optimizer, weight_decay), "0.01", 0, 10, NULL, 0, "decoupled weight decay (not on biases, norms, embeddings)"},

    {"lr_scheduler", "_name", CK_ENUM, F(lr_scheduler, name), "polynomial_decay", 0, 0, "polynomial_decay|tri_stage|cosine|fixed", 0, "learning-rate schedule"},
    {"lr_scheduler", "warmup_updates", CK_LONG, F(lr_scheduler, warmup_updates), "32000", 0, 1e15, NULL, 0, "linear warmup from 0 (polynomial_decay, cosine, fixed)"},
    {"lr_scheduler", "end_learning_rate", CK_DOUBLE, F(lr_scheduler, end_learning_rate), "0.0", 0, 10, NULL, 0, "final rate (polynomial_decay, cosine)"},
    {"lr_scheduler", "power", CK_DOUBLE, F(lr_scheduler, power), "1.0", 0, 100, NULL, 0, "decay exponent (polynomial_decay)"},
    {"lr_scheduler", "total_num_update", CK_LONG, F(lr_scheduler, total_num_update), "0", 0, 1e15, NULL, 0, "update where the decay ends (0: optimization.max_update)"},
    {"lr_scheduler", "phase_ratio", CK_DLIST, F(lr_scheduler, phase_ratio), "[0.1,0.4,0.5]", 0, 1, NULL, 0, "tri_stage: warmup, hold, decay fractions (sum 1)"},
    {"lr_scheduler", "init_lr_scale", CK_DOUBLE, F(lr_scheduler, init_lr_scale), "0.01", 0, 1, NULL, 0, "tri_stage: initial rate / peak"},
    {"lr_scheduler", "final_lr_scale", CK_DOUBLE, F(lr_scheduler, final_lr_scale), "0.01", 1e-12, 1, NULL, 0, "tri_stage: final rate / peak"},
    {"lr_scheduler", "warmup_steps", CK_LONG, F(lr_scheduler, warmup_steps), "0", 0, 1e15, NULL, 0, "tri_stage: warmup updates (any of warmup/hold/decay_steps > 0 replaces phase_ratio)"},
    {"lr_scheduler", "hold_steps", CK_LONG, F(lr_scheduler, hold_steps), "0", 0, 1e15, NULL, 0, "tri_stage: updates at the peak rate"},
    {"lr_scheduler", "decay_steps", CK_LONG, F(lr_scheduler, decay_steps), "0", 0, 1e15, NULL, 0, "tri_stage: exponential decay updates"},

    {"model", "_name", CK_STR, F(model, name), "hubert", NONE, CK_COMPAT, "fairseq: model name"},
    {"model", "preset", CK_ENUM, F(model, preset), "base", 0, 0, "tiny|base|large|xlarge", CK_PRESET, "architecture preset; applied before the file's model fields"},
    {"model", "encoder_layers", CK_INT, F(model, encoder_layers), "12", 1, HB_MAX_LAYERS, NULL, CK_ARCH, "transformer layers"},
    {"model", "encoder_embed_dim", CK_INT, F(model, encoder_embed_dim), "768", 1, 65536, NULL, CK_ARCH, "transformer width"},
    {"model", "encoder_ffn_embed_dim", CK_INT, F(model, encoder_ffn_embed_dim), "3072", 1, 1 << 20, NULL, CK_ARCH, "feed-forward width"},
    {"model", "encoder_attention_heads", CK_INT, F(model, encoder_attention_heads), "12", 1, 1024, NULL, CK_ARCH, "attention heads"},
    {"model", "conv_dim", CK_INT, F(model, conv_dim), "512", 1, 65536, NULL, CK_ARCH, "channels of every feature-extractor conv layer (kernels/strides: fairseq's)"},
    {"model", "conv_pos", CK_INT, F(model, conv_pos), "128", 1, 4096, NULL, CK_ARCH, "positional convolution kernel"},
    {"model", "conv_pos_groups", CK_INT, F(model, conv_pos_groups), "16", 1, 4096, NULL, CK_ARCH, "positional convolution groups"},
    {"model", "layer_norm_first", CK_BOOL, F(model, layer_norm_first), "false", NONE, CK_ARCH, "pre-LN transformer (Large, X-Large)"},
    {"model", "extractor_mode", CK_ENUM, F(model, extractor_mode), "default", 0, 0, "default|layer_norm", CK_ARCH, "conv extractor norm: group norm on layer 0 / layer norm on every layer"},
    {"model", "conv_bias", CK_BOOL, F(model, conv_bias), "false", NONE, CK_ARCH, "bias in the extractor convolutions"},
    {"model", "final_dim", CK_INT, F(model, final_dim), "256", 1, 65536, NULL, CK_ARCH, "projection size of the masked-prediction head"},
    {"model", "untie_final_proj", CK_BOOL, F(model, untie_final_proj), "false", NONE, 0, "one final projection per label set"},
    {"model", "label_rate", CK_DOUBLE, F(model, label_rate), "50", 1, 1e5, NULL, 0, "label frames per second (100: MFCC units, 50: HuBERT-layer units)"},
    {"model", "mask_prob", CK_DOUBLE, F(model, mask_prob), "0.8", 0, 1, NULL, 0, "fraction of frames that start a mask span (x mask_length / total)"},
    {"model", "mask_length", CK_INT, F(model, mask_length), "10", 1, 1e6, NULL, 0, "mask span length (frames)"},
    {"model", "dropout", CK_DOUBLE, F(model, dropout), "0.1", 0, 0.99, NULL, 0, "transformer dropout"},
    {"model", "attention_dropout", CK_DOUBLE, F(model, attention_dropout), "0.1", 0, 0.99, NULL, 0, "dropout on attention probabilities"},
    {"model", "activation_dropout", CK_DOUBLE, F(model, activation_dropout), "0.0", 0, 0.99, NULL, 0, "dropout after the feed-forward activation"},
    {"model", "dropout_input", CK_DOUBLE, F(model, dropout_input), "0.1", 0, 0.99, NULL, 0, "dropout on the projected features (encoder input)"},
    {"model", "dropout_features", CK_DOUBLE, F(model, dropout_features), "0.1", 0, 0.99, NULL, 0, "dropout on the unmasked features"},
    {"model", "encoder_layerdrop", CK_DOUBLE, F(model, encoder_layerdrop), "0.05", 0, 0.99, NULL, 0, "probability of skipping a whole transformer layer"},
    {"model", "feature_grad_mult", CK_DOUBLE, F(model, feature_grad_mult), "0.1", 0, 1e3, NULL, 0, "gradient scale into the conv extractor"},
    {"model", "logit_temp", CK_DOUBLE, F(model, logit_temp), "0.1", 1e-6, 1e3, NULL, 0, "cosine-similarity logit temperature"},
    {"model", "conv_feature_layers", CK_STR, F(model, conv_feature_layers), "", NONE, 0, "fairseq's extractor spec; only its standard layout '[(D,10,5)] + [(D,3,2)] * 4 + [(D,2,2)] * 2' with D = model.conv_dim (\"\": that layout)"},
    {"model", "skip_masked", CK_BOOL, F(model, skip_masked), "false", NONE, CK_COMPAT, "fairseq option"},
    {"model", "skip_nomask", CK_BOOL, F(model, skip_nomask), "false", NONE, CK_COMPAT, "fairseq option"},
    {"model", "w2v_path", CK_STR, F(model, w2v_path), "", NONE, 0, "hubert finetune: pretrained model folder (ours or Hugging Face HuBERT/wav2vec2)"},
    {"model", "no_pretrained_weights", CK_BOOL, F(model, no_pretrained_weights), "false", NONE, 0, "hubert finetune: random init of w2v_path's architecture (the untrained baseline)"},
    {"model", "apply_mask", CK_BOOL, F(model, apply_mask), "false", NONE, 0, "hubert finetune: time (mask_prob, mask_length) and channel masking"},
    {"model", "mask_channel_prob", CK_DOUBLE, F(model, mask_channel_prob), "0.0", 0, 1, NULL, 0, "hubert finetune: fraction of feature channels that start a masked (zeroed) channel span"},
    {"model", "mask_channel_length", CK_INT, F(model, mask_channel_length), "10", 1, 1e6, NULL, 0, "hubert finetune: channel mask span length"},
    {"model", "freeze_finetune_updates", CK_LONG, F(model, freeze_finetune_updates), "0", 0, BIG, NULL, 0, "hubert finetune: only the CTC head trains before this update"},
    {"model", "final_dropout", CK_DOUBLE, F(model, final_dropout), "0.0", 0, 0.99, NULL, 0, "hubert finetune: dropout before the CTC head"},
    {"model", "layerdrop", CK_DOUBLE, F(model, layerdrop), "0.0", 0, 0.99, NULL, 0, "hubert finetune: LayerDrop (hubert train: encoder_layerdrop)"},
    {"model", "mask_selection", CK_STR, F(model, mask_selection), "static", NONE, 0, "fairseq mask span lengths: static only"},
    {"model", "mask_channel_selection", CK_STR, F(model, mask_channel_selection), "static", NONE, 0, "fairseq channel span lengths: static only"},
    {"model", "mask_other", CK_DOUBLE, F(model, mask_other), "0.0", 0, 1e6, NULL, CK_COMPAT, "fairseq: span length parameter of non-static selections"},
    {"model", "mask_channel_other", CK_DOUBLE, F(model, mask_channel_other), "0.0", 0, 1e6, NULL, CK_COMPAT, "fairseq: as mask_other for channels"},
    {"model", "no_mask_overlap", CK_BOOL, F(model, no_mask_overlap), "false", NONE, CK_COMPAT, "fairseq option"},
    {"model", "no_mask_channel_overlap", CK_BOOL, F(model, no_mask_channel_overlap), "false", NONE, CK_COMPAT, "fairseq option"},

    {"topic", "weight", CK_DOUBLE, F(topic, weight), "1.0", 0, 1e6, NULL, 0, "lambda of the topic loss (0 disables the head)"},
    {"topic", "k", CK_INT, F(topic, k), "0", 0, 1e6, NULL, 0, "topics (0: the k attribute of the shards' topic set)"},
    {"topic", "layer", CK_INT, F(topic, layer), "0", 0, HB_MAX_LAYERS, NULL, 0, "layer whose output is pooled (1-based; 0: last)"},
    {"topic", "hidden", CK_INT, F(topic, hidden), "0", 0, 65536, NULL, 0, "hidden size of the topic MLP (0: a linear head)"},
    {"topic", "name", CK_STR, F(topic, name), "", NONE, 0, "topic set in the shards (/topics/<name>; \"\": no topic head)"},
};
const int cfg_num_keys = (int)(sizeof cfg_keys / sizeof cfg_keys[0]);

int cfg_find_section(const char *section) {
  for (int i = 0; i < cfg_num_sections; i++)
    if (!strcmp(cfg_sections[i], section)) return i;
  return -1;
}

int cfg_find_key(const char *section, const char *key) {
  for (int i = 0; i < cfg_num_keys; i++)
    if (!strcmp(cfg_keys[i].section, section) && !strcmp(cfg_keys[i].key, key)) return i;
  return -1;
}

static int edit_distance(const char *a, const char *b) {
  int la = (int)strlen(a), lb = (int)strlen(b);
  if (la > 63) la = 63;
  if (lb > 63) lb = 63;
  int d[64][64];
  for (int i = 0; i <= la; i++) d[i][0] = i;
  for (int j = 0; j <= lb; j++) d[0][j] = j;
  for (int i = 1; i <= la; i++)
    for (int j = 1; j <= lb; j++) {
      int sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
      int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
      d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
    }
  return d[la][lb];
}

const char *cfg_closest(const char *given, int keys) {
  static _Thread_local char best[128];
  int bd = 1 << 30;
  best[0] = 0;
  if (!keys) {
    for (int i = 0; i < cfg_num_sections; i++) {
      int d = edit_distance(given, cfg_sections[i]);
      if (d < bd) { bd = d; snprintf(best, sizeof best, "%s", cfg_sections[i]); }
    }
    return best;
  }
  // Compare with the full dotted name and with the bare key (a key put in the wrong section).
  const char *dot = strchr(given, '.');
  const char *bare = dot ? dot + 1 : given;
  for (int i = 0; i < cfg_num_keys; i++) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", cfg_keys[i].section, cfg_keys[i].key);
    int d1 = edit_distance(given, full);
    int d2 = edit_distance(bare, cfg_keys[i].key) + (dot && strncmp(given, cfg_keys[i].section, (size_t)(dot - given)) ? 1 : 0);
    int d = d1 < d2 ? d1 : d2;
    if (d < bd) { bd = d; snprintf(best, sizeof best, "%s", full); }
  }
  return best;
}

static int parse_double(const char *s, double *out) {
  char *end;
  *out = 0;
  errno = 0;
  while (*s == ' ') s++;
  double v = strtod(s, &end);
  while (*end == ' ') end++;
  if (end == s || *end || errno == ERANGE || !isfinite(v)) return hb_fail("expected a number, got '%s'", s);
  *out = v;
  return 0;
}

static int parse_integer(const char *s, double lo, double hi, long *out) {
  double v = 0;
  if (parse_double(s, &v)) return hb_fail("expected an integer, got '%s'", s);
  if (v != floor(v) || fabs(v) > 9e15) return hb_fail("expected an integer, got '%s'", s);
  if (v < lo || v > hi) return hb_fail("%s is out of range [%.15g, %.15g]", s, lo, hi);
  *out = (long)v;
  return 0;
}

static int parse_bool(const char *s, int *out) {
  static const char *yes[] = {"true", "True", "TRUE", "yes", "Yes", "on", "1"};
  static const char *no[] = {"false", "False", "FALSE", "no", "No", "off", "0"};
  for (int i = 0; i < 7; i++) {
    if (!strcmp(s, yes[i])) { *out = 1; return 0; }
    if (!strcmp(s, no[i])) { *out = 0; return 0; }
  }
  return hb_fail("expected true or false, got '%s'", s);
}

static int parse_choice(const char *s, const char *choices, int *out) {
  int idx = 0;
  for (const char *p = choices; *p; idx++) {
    const char *bar = strchr(p, '|');
    size_t len = bar ? (size_t)(bar - p) : strlen(p);
    if (strlen(s) == len && !strncmp(s, p, len)) { *out = idx; return 0; }
    p += len + (bar ? 1 : 0);
  }
  return hb_fail("'%s' is not one of %s", s, choices);
}

static const char *choice_name(const char *choices, int idx, char *buf, size_t len) {
  const char *p = choices;
  for (int i = 0; i < idx && p; i++) {
    p = strchr(p, '|');
    if (p) p++;
  }
  if (!p) return "?";
  const char *bar = strchr(p, '|');
  size_t n = bar ? (size_t)(bar - p) : strlen(p);
  snprintf(buf, len, "%.*s", (int)n, p);
  return buf;
}

static int check_range(const cfg_key *k, double v, const char *text) {
  if (v < k->min || v > k->max) return hb_fail("%s is out of range [%.15g, %.15g]", text, k->min, k->max);
  return 0;
}

int cfg_split_inline(const char *text, char *buf, size_t buflen, cfg_value *v) {
  size_t n = strlen(text);
  if (n + 1 > buflen) return hb_fail("value too long (%zu characters)", n);
  memcpy(buf, text, n + 1);
  v->is_list = 1;
  v->n = 0;
  v->items[0] = "";
  char *s = buf + 1;
  buf[n - 1] = 0;  // drop the closing bracket (caller checked the opening/closing pair)
  while (*s == ' ') s++;
  if (!*s) return 0;  // "[]"
  for (;;) {
    char *comma = strchr(s, ',');
    if (comma) *comma = 0;
    char *e = s + strlen(s);
    while (*s == ' ') s++;
    while (e > s && e[-1] == ' ') *--e = 0;
    if (e - s >= 2 && ((*s == '"' && e[-1] == '"') || (*s == '\'' && e[-1] == '\''))) {
      e[-1] = 0;
      s++;
    }
    if (!comma && !*s && v->n > 0) break;  // trailing comma: "[10,]" as fairseq writes
    if (v->n >= HB_CFG_MAX_LIST) return hb_fail("more than %d list entries", HB_CFG_MAX_LIST);
    v->items[v->n++] = s;
    if (!comma) break;
    s = comma + 1;
  }
  return 0;
}

static int is_inline_list(const char *s) {
  size_t n = strlen(s);
  return n >= 2 && ((s[0] == '[' && s[n - 1] == ']') || (s[0] == '(' && s[n - 1] == ')'));
}

int cfg_set(hb_train_config *c, int ki, const cfg_value *in) {
  const cfg_key *k = &cfg_keys[ki];
  char *field = (char *)c + k->offset;
  cfg_value v = *in;
  char buf[1024];
  if (!v.is_list && is_inline_list(v.items[0]) && k->type != CK_STR && cfg_split_inline(v.items[0], buf, sizeof buf, &v))
    return -1;
  int list_type = k->type == CK_DLIST || k->type == CK_SLIST;
  if (!list_type && v.is_list) {
    if (v.n != 1) return hb_fail("expected a single value, got a list of %d", v.n);
  }
  const char *s = v.items[0];
  switch (k->type) {
    case CK_INT:
    case CK_LONG: {
      long x = 0;
      if (!strcmp(k->key, "validate_after_updates") && !strcmp(s, "${model.freeze_finetune_updates}")) x = -1;  // fairseq interpolation
      else if (parse_integer(s, k->min, k->max, &x)) return -1;
      if (k->type == CK_INT) *(int *)field = (int)x;
      else *(long *)field = x;
      return 0;
    }
    case CK_DOUBLE: {
      double x = 0;
      if (!strcmp(k->key, "label_rate") && !strcmp(s, "${model.label_rate}")) x = 0;  // fairseq interpolation
      else if (parse_double(s, &x) || check_range(k, x, s)) return -1;
      *(double *)field = x;
      return 0;
    }
    case CK_BOOL: return parse_bool(s, (int *)field);
    case CK_ENUM: return parse_choice(s, k->choices, (int *)field);
    case CK_STR:
      if (v.is_list) return hb_fail("expected a string, got a list");
      if (strlen(s) >= k->size) return hb_fail("longer than %zu characters", k->size - 1);
      memset(field, 0, k->size);
      memcpy(field, s, strlen(s));
      return 0;
    case CK_DLIST: {
      hb_cfg_dlist l = {0};
      for (int i = 0; i < v.n; i++) {
        if (parse_double(v.items[i], &l.v[i]) || check_range(k, l.v[i], v.items[i])) return hb_fail_prefix("entry %d", i);
        l.n++;
      }
      memcpy(field, &l, sizeof l);
      return 0;
    }
    case CK_SLIST: {
      hb_cfg_slist l;
      memset(&l, 0, sizeof l);
      for (int i = 0; i < v.n; i++) {
        if (!v.items[i][0]) return hb_fail("entry %d is empty", i);
        if (strlen(v.items[i]) >= HB_NAME_LEN) return hb_fail("entry %d longer than %d characters", i, HB_NAME_LEN - 1);
        memcpy(l.s[i], v.items[i], strlen(v.items[i]));
        l.n++;
      }
      memcpy(field, &l, sizeof l);
      return 0;
    }
  }
  return hb_fail("internal: key type %d", (int)k->type);
}

static int set_text(hb_train_config *c, int k, const char *text) {
  cfg_value v = {0, 1, {text}};
  return cfg_set(c, k, &v);
}

void cfg_apply_preset(hb_train_config *c) {
  hb_config p;
  config_preset(&p, (hb_preset)c->model.preset);
  c->model.encoder_layers = p.num_hidden_layers;
  c->model.encoder_embed_dim = p.hidden_size;
  c->model.encoder_ffn_embed_dim = p.intermediate_size;
  c->model.encoder_attention_heads = p.num_attention_heads;
  c->model.conv_dim = p.conv_dim[0];
  c->model.conv_pos = p.num_conv_pos_embeddings;
  c->model.conv_pos_groups = p.num_conv_pos_embedding_groups;
  c->model.layer_norm_first = p.do_stable_layer_norm;
  c->model.extractor_mode = p.feat_extract_norm_layer;
  c->model.conv_bias = p.conv_bias;
  c->model.final_dim = p.final_dim;
}

void train_config_defaults(hb_train_config *c) {
  memset(c, 0, sizeof *c);
  for (int i = 0; i < cfg_num_keys; i++)
    if (set_text(c, i, cfg_keys[i].def)) abort();  // a bad default is a bug in the table (test_config catches it)
}

int train_config_validate(const hb_train_config *c) {
  if (c->optimization.lr.n < 1) return hb_fail("optimization.lr: empty list");
  for (int i = 0; i < c->optimization.lr.n; i++)
    if (!(c->optimization.lr.v[i] > 0)) return hb_fail("optimization.lr: %g must be positive", c->optimization.lr.v[i]);
  if (c->optimizer.adam_betas.n != 2) return hb_fail("optimizer.adam_betas: expected 2 values (beta1, beta2), got %d", c->optimizer.adam_betas.n);
  if (c->lr_scheduler.phase_ratio.n != 3) return hb_fail("lr_scheduler.phase_ratio: expected 3 values, got %d", c->lr_scheduler.phase_ratio.n);
  if (c->lr_scheduler.name == HB_LR_TRI_STAGE) {
    double s = c->lr_scheduler.phase_ratio.v[0] + c->lr_scheduler.phase_ratio.v[1] + c->lr_scheduler.phase_ratio.v[2];
    if (fabs(s - 1) > 1e-6) return hb_fail("lr_scheduler.phase_ratio: the three phases must sum to 1 (sum %g)", s);
  }
  if (c->criterion.loss_weights.n > 1) return hb_fail("criterion.loss_weights: one weight (the feature penalty), got %d", c->criterion.loss_weights.n);
  if (c->task.min_sample_size > c->task.max_sample_size)
    return hb_fail("task.min_sample_size (%ld) exceeds task.max_sample_size (%ld)", c->task.min_sample_size, c->task.max_sample_size);
  if (c->task.labels.n < 1) return hb_fail("task.labels: at least one label set");
  for (int i = 0; i < c->task.labels.n; i++)
    for (int j = 0; j < i; j++)
      if (!strcmp(c->task.labels.s[i], c->task.labels.s[j])) return hb_fail("task.labels: '%s' listed twice", c->task.labels.s[i]);
  if (c->task.label_rate > 0 && c->task.label_rate != c->model.label_rate)
    return hb_fail("task.label_rate (%g) differs from model.label_rate (%g)", c->task.label_rate, c->model.label_rate);
  if (c->model.encoder_embed_dim % c->model.encoder_attention_heads)
    return hb_fail("model.encoder_attention_heads (%d) must divide model.encoder_embed_dim (%d)", c->model.encoder_attention_heads, c->model.encoder_embed_dim);
  if (c->model.encoder_embed_dim % c->model.conv_pos_groups)
    return hb_fail("model.conv_pos_groups (%d) must divide model.encoder_embed_dim (%d)", c->model.conv_pos_groups, c->model.encoder_embed_dim);
  if (c->topic.layer > c->model.encoder_layers)
    return hb_fail("topic.layer (%d) exceeds model.encoder_layers (%d)", c->topic.layer, c->model.encoder_layers);
  if (c->model.conv_feature_layers[0]) {  // compare without spaces and quotes
    char got[128], want[128];
    size_t o = 0;
    for (const char *p = c->model.conv_feature_layers; *p && o + 1 < sizeof got; p++)
      if (*p != ' ' && *p != '\'' && *p != '"') got[o++] = *p;
    got[o] = 0;
    int d = c->model.conv_dim;
    snprintf(want, sizeof want, "[(%d,10,5)]+[(%d,3,2)]*4+[(%d,2,2)]*2", d, d, d);
    if (strcmp(got, want))
      return hb_fail("model.conv_feature_layers: only fairseq's standard layout '[(D,10,5)] + [(D,3,2)] * 4 + [(D,2,2)] * 2' "
                     "with D = model.conv_dim (%d) is supported, got '%s'", d, c->model.conv_feature_layers);
  }
  if (strcmp(c->model.mask_selection, "static") || strcmp(c->model.mask_channel_selection, "static"))
    return hb_fail("model.mask_selection / model.mask_channel_selection: only 'static' spans are supported");
  if (c->dataset.max_tokens < c->task.min_sample_size)
    return hb_fail("dataset.max_tokens (%ld) is below task.min_sample_size (%ld): no utterance fits a batch", c->dataset.max_tokens, c->task.min_sample_size);
  return 0;
}

// ---- printing ----

static void format_double(double x, char *buf, size_t len) {
  for (int prec = 6; prec <= 17; prec++) {  // shortest text that reads back exactly
    snprintf(buf, len, "%.*g", prec, x);
    if (strtod(buf, NULL) == x) break;
  }
  if (!strpbrk(buf, ".en") && strlen(buf) + 3 < len) strcat(buf, ".0");  // 1 -> 1.0: stays a float
  char *e = strchr(buf, 'e');
  if (e && !strchr(buf, '.') && strlen(buf) + 3 < len) {  // "1e-06" -> "1.0e-06": a float to YAML 1.1 readers too
    memmove(e + 2, e, strlen(e) + 1);
    e[0] = '.';
    e[1] = '0';
  }
}

static void format_string(const char *s, char *buf, size_t len) {
  size_t o = 0;
  if (len < 8) { buf[0] = 0; return; }
  buf[o++] = '"';
  for (; *s && o + 6 < len; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') { buf[o++] = '\\'; buf[o++] = (char)ch; }
    else if (ch < 0x20) o += (size_t)snprintf(buf + o, len - o, "\\x%02x", ch);
    else buf[o++] = (char)ch;
  }
  buf[o++] = '"';
  buf[o] = 0;
}

static void format_value(const hb_train_config *c, int ki, char *buf, size_t len) {
  const cfg_key *k = &cfg_keys[ki];
  const char *field = (const char *)c + k->offset;
  char tmp[HB_CFG_PATH_LEN * 2 + 8];
  size_t o = 0;
  switch (k->type) {
    case CK_INT: snprintf(buf, len, "%d", *(const int *)field); return;
    case CK_LONG: snprintf(buf, len, "%ld", *(const long *)field); return;
    case CK_DOUBLE: format_double(*(const double *)field, buf, len); return;
    case CK_BOOL: snprintf(buf, len, "%s", *(const int *)field ? "true" : "false"); return;
    case CK_ENUM: choice_name(k->choices, *(const int *)field, buf, len); return;
    case CK_STR: format_string(field, buf, len); return;
    case CK_DLIST: {
      const hb_cfg_dlist *l = (const hb_cfg_dlist *)field;
      o += (size_t)snprintf(buf + o, len - o, "[");
      for (int i = 0; i < l->n && o < len; i++) {
        format_double(l->v[i], tmp, sizeof tmp);
        o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? ", " : "", tmp);
      }
      if (o < len) snprintf(buf + o, len - o, "]");
      return;
    }
    case CK_SLIST: {
      const hb_cfg_slist *l = (const hb_cfg_slist *)field;
      o += (size_t)snprintf(buf + o, len - o, "[");
      for (int i = 0; i < l->n && o < len; i++) {
        format_string(l->s[i], tmp, sizeof tmp);
        o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? ", " : "", tmp);
      }
      if (o < len) snprintf(buf + o, len - o, "]");
      return;
    }
  }
}

int train_config_write(const hb_train_config *c, FILE *f) {
  hb_train_config def;
  train_config_defaults(&def);
  char val[HB_CFG_PATH_LEN * 2 + 64], dval[sizeof val];
  fprintf(f, "# hubert.c trainer config (resolved: every key; `hubert config --list` explains them)\n");
  for (int s = 0; s < cfg_num_sections; s++) {
    fprintf(f, "\n%s:\n", cfg_sections[s]);
    for (int i = 0; i < cfg_num_keys; i++) {
      if (strcmp(cfg_keys[i].section, cfg_sections[s])) continue;
      format_value(c, i, val, sizeof val);
      if (cfg_keys[i].flags & CK_COMPAT) {  // no effect: written only when set
        format_value(&def, i, dval, sizeof dval);
        if (!strcmp(val, dval)) continue;
      }
      fprintf(f, "  %s: %s\n", cfg_keys[i].key, val);
    }
  }
  return ferror(f) ? hb_fail("writing the config failed") : 0;
}

int train_config_save(const hb_train_config *c, const char *path) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (!f) return hb_fail("%s: cannot open a memory stream", path);
  int rc = train_config_write(c, f);
  fclose(f);
  if (!rc) rc = file_write_atomic(path, text, len);
  free(text);
  return rc;
}

void train_config_list(FILE *f, int markdown) {
  if (markdown) fprintf(f, "| key | type | default | range | meaning |\n|---|---|---|---|---|\n");
  static const char *type_names[] = {"int", "int", "float", "bool", "string", "choice", "float list", "string list"};
  for (int s = 0; s < cfg_num_sections; s++) {
    if (!markdown) fprintf(f, "%s:\n", cfg_sections[s]);
    for (int i = 0; i < cfg_num_keys; i++) {
      const cfg_key *k = &cfg_keys[i];
      if (strcmp(k->section, cfg_sections[s])) continue;
      char range[96] = "";
      if (k->type == CK_ENUM) {
        snprintf(range, sizeof range, "%s", k->choices);
        for (char *q = range; markdown && *q; q++)
          if (*q == '|') *q = '/';  // a bare '|' would split the markdown cell
      }
      else if (k->type == CK_INT || k->type == CK_LONG || k->type == CK_DOUBLE || k->type == CK_DLIST)
        snprintf(range, sizeof range, "[%g, %g]", k->min, k->max);
      const char *def = k->def[0] ? k->def : "\"\"";
      const char *note = k->flags & CK_COMPAT ? " (accepted for fairseq configs; no effect)" : k->flags & CK_ARCH ? " (default: from model.preset)" : "";
      if (markdown)
        fprintf(f, "| `%s.%s` | %s | `%s` | %s | %s%s |\n", k->section, k->key, type_names[k->type], def, range, k->help, note);
      else
        fprintf(f, "  %-26s %-11s %-18s %-16s %s%s\n", k->key, type_names[k->type], def, range, k->help, note);
    }
  }
}

// ---- derived settings ----

int train_config_model(const hb_train_config *c, hb_config *out) {
  config_preset(out, (hb_preset)c->model.preset);
  out->num_hidden_layers = c->model.encoder_layers;
  out->hidden_size = c->model.encoder_embed_dim;
  out->intermediate_size = c->model.encoder_ffn_embed_dim;
  out->num_attention_heads = c->model.encoder_attention_heads;
  for (int i = 0; i < out->num_conv; i++) out->conv_dim[i] = c->model.conv_dim;
  out->num_conv_pos_embeddings = c->model.conv_pos;
  out->num_conv_pos_embedding_groups = c->model.conv_pos_groups;
  out->do_stable_layer_norm = c->model.layer_norm_first;
  out->feat_extract_norm_layer = c->model.extractor_mode;
  out->conv_bias = c->model.conv_bias;
  out->hidden_dropout = c->model.dropout;
  out->attention_dropout = c->model.attention_dropout;
  out->activation_dropout = c->model.activation_dropout;
  out->feat_proj_dropout = c->model.dropout_input;
  out->layerdrop = c->model.encoder_layerdrop;
  out->mask_time_prob = c->model.mask_prob;
  out->mask_time_length = c->model.mask_length;
  out->final_dim = c->model.final_dim;
  out->untie_final_proj = c->model.untie_final_proj;
  out->num_label_sets = c->task.labels.n;
  for (int i = 0; i < c->task.labels.n; i++) {
    snprintf(out->label_names[i], HB_NAME_LEN, "%s", c->task.labels.s[i]);
    out->label_k[i] = 0;  // from the shards
  }
  int topic_on = c->topic.name[0] && c->topic.weight > 0;
  out->topic_k = topic_on ? c->topic.k : 0;
  out->topic_layer = topic_on ? c->topic.layer : 0;
  out->topic_hidden = topic_on ? c->topic.hidden : 0;
  return 0;
}

void train_config_schedule(const hb_train_config *c, hb_lr_schedule *s) {
  memset(s, 0, sizeof *s);
  s->kind = (hb_lr_kind)c->lr_scheduler.name;
  s->lr = c->optimization.lr.v[0];
  s->warmup = c->lr_scheduler.warmup_updates;
  s->total = c->lr_scheduler.total_num_update > 0 ? c->lr_scheduler.total_num_update : c->optimization.max_update;
  s->end_lr = c->lr_scheduler.end_learning_rate;
  s->power = c->lr_scheduler.power;
  for (int i = 0; i < 3; i++) s->phase_ratio[i] = c->lr_scheduler.phase_ratio.v[i];
  const long st[3] = {c->lr_scheduler.warmup_steps, c->lr_scheduler.hold_steps, c->lr_scheduler.decay_steps};
  if (s->kind == HB_LR_TRI_STAGE && st[0] + st[1] + st[2] > 0) {  // fairseq's explicit steps: total = their sum
    s->total = st[0] + st[1] + st[2];
    for (int i = 0; i < 3; i++) s->phase_ratio[i] = ((double)st[i] + 0.5) / (double)s->total;  // (long)(total * r) == st[i]
  }
  s->init_lr_scale = c->lr_scheduler.init_lr_scale;
  s->final_lr_scale = c->lr_scheduler.final_lr_scale;
}

hb_adamw_hparams train_config_adamw(const hb_train_config *c) {
  hb_adamw_hparams hp = {c->optimizer.adam_betas.v[0], c->optimizer.adam_betas.v[1], c->optimizer.adam_eps,
                         c->optimizer.weight_decay};
  return hp;
}
