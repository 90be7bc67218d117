// Trainer configs: every error kind (message checked), overrides, presets, fairseq spellings,
// print -> parse round trips, and every shipped configs/*.yaml.
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test_util.h"
#include "train/config.h"

static hb_train_config g_cfg;

static int load(const char *yaml) { return train_config_load_string(&g_cfg, yaml, "t.yaml", 0, NULL); }
static int load_ov(const char *yaml, int n, const char *a, const char *b) {
  char *ov[2] = {(char *)a, (char *)b};
  return train_config_load_string(&g_cfg, yaml, "t.yaml", n, ov);
}

static int round_trip(const hb_train_config *a, const char *what);

static void test_errors(void) {
  printf("error messages:\n");
  CHECK_ERR(load("optimisation:\n  lr: 1\n"), "t.yaml:1: unknown section 'optimisation' (did you mean 'optimization'?)");
  CHECK_ERR(load("common:\n  seed: 1\noptimization:\n  lrr: 0.1\n"), "t.yaml:4: unknown key 'optimization.lrr' (did you mean 'optimization.lr'?)");
  CHECK_ERR(load("optimizer:\n  lr: 0.1\n"), "unknown key 'optimizer.lr' (did you mean 'optimization.lr'?)");
  CHECK_ERR(load("model:\n  encoder_layer: 3\n"), "did you mean 'model.encoder_layers'?");
  CHECK_ERR(load("optimization:\n  max_update: ten\n"), "t.yaml:2: optimization.max_update: expected an integer, got 'ten'");
  CHECK_ERR(load("optimization:\n  max_update: 1.5\n"), "expected an integer, got '1.5'");
  CHECK_ERR(load("task:\n  random_crop: maybe\n"), "t.yaml:2: task.random_crop: expected true or false, got 'maybe'");
  CHECK_ERR(load("optimization:\n  clip_norm: -1\n"), "t.yaml:2: optimization.clip_norm: -1 is out of range [0,");
  CHECK_ERR(load("model:\n  mask_prob: 1.5\n"), "model.mask_prob: 1.5 is out of range [0, 1]");
  CHECK_ERR(load("optimization:\n  lr: [0.1, x]\n"), "optimization.lr: entry 1: expected a number, got 'x'");
  CHECK_ERR(load("optimization:\n  update_freq: [1, 2]\n"), "optimization.update_freq: expected a single value, got a list of 2");
  CHECK_ERR(load("optimization:\n  lr:\n    a: 1\n"), "t.yaml:2: optimization.lr: expected a value, got a mapping");
  CHECK_ERR(load("optimization:\n  lr: 0.1\n  lr: 0.2\n"), "t.yaml:3: optimization.lr given twice (first on line 2)");
  CHECK_ERR(load("lr_scheduler:\n  _name: linear\n"), "lr_scheduler._name: 'linear' is not one of polynomial_decay|tri_stage|cosine|fixed");
  CHECK_ERR(load("optimization: 5\n"), "t.yaml:1: section 'optimization' must be a mapping of keys");
  CHECK_ERR(load("- a\n- b\n"), "t.yaml:1: the top level must be a mapping");
  CHECK_ERR(load("optimization:\n  lr: [0.1\n"), "YAML syntax error");
  CHECK_ERR(load("task:\n  data: ???\n"), "t.yaml:2: task.data is '?\?\?' (fairseq's mandatory marker)");
  CHECK_ERR(load("task:\n  labels: [km, km]\n"), "task.labels: 'km' listed twice");
  CHECK_ERR(load("task:\n  labels: [a, b, c, d, e, f, g, h, i]\n"), "more than 8 list entries");
  CHECK_ERR(load("checkpoint:\n  save_dir: " "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"),
            "checkpoint.save_dir: longer than 511 characters");
  // Cross-key checks name both keys.
  CHECK_ERR(load("lr_scheduler:\n  _name: tri_stage\n  phase_ratio: [0.1, 0.4, 0.4]\n"), "lr_scheduler.phase_ratio: the three phases must sum to 1");
  CHECK_ERR(load("optimizer:\n  adam_betas: (0.9,)\n"), "optimizer.adam_betas: expected 2 values");
  CHECK_ERR(load("model:\n  encoder_attention_heads: 5\n"), "model.encoder_attention_heads (5) must divide model.encoder_embed_dim (768)");
  CHECK_ERR(load("task:\n  min_sample_size: 300000\n"), "task.min_sample_size (300000) exceeds task.max_sample_size (250000)");
  CHECK_ERR(load("task:\n  label_rate: 100\nmodel:\n  label_rate: 50\n"), "task.label_rate (100) differs from model.label_rate (50)");
  CHECK_ERR(load("topic:\n  layer: 13\n"), "topic.layer (13) exceeds model.encoder_layers (12)");
  // Overrides.
  CHECK_ERR(load_ov("", 1, "optimization.lr=-1e-4", NULL), "override 'optimization.lr=-1e-4': optimization.lr: entry 0: -1e-4 is out of range");
  CHECK_ERR(load_ov("", 1, "optimizer.lr=1e-4", NULL), "override 'optimizer.lr=1e-4': unknown key 'optimizer.lr' (did you mean 'optimization.lr'?)");
  CHECK_ERR(load_ov("", 1, "optimisation.lr=1e-4", NULL), "unknown section 'optimisation' (did you mean 'optimization'?)");
  CHECK_ERR(load_ov("", 1, "lr=1e-4", NULL), "override 'lr=1e-4': expected section.key=value (did you mean 'optimization.lr'?)");
  CHECK_ERR(load_ov("", 1, "optimization.lr", NULL), "override 'optimization.lr': expected section.key=value");
  CHECK_ERR(load_ov("", 1, "common.device=gpu", NULL), "common.device: 'gpu' is not one of cpu|cuda");
  CHECK_ERR(train_config_load(&g_cfg, "/nonexistent/x.yaml", 0, NULL), "/nonexistent/x.yaml");
}

static void test_values(void) {
  printf("values, fairseq spellings, overrides, presets:\n");
  CHECK_OK(load(""));
  CHECK(g_cfg.optimization.lr.n == 1 && g_cfg.optimization.lr.v[0] == 0.0005);
  CHECK(g_cfg.optimizer.adam_betas.n == 2 && g_cfg.optimizer.adam_betas.v[1] == 0.98);
  CHECK(g_cfg.model.encoder_layers == 12 && g_cfg.model.final_dim == 256);
  // fairseq's own spellings: lr list, betas as a string, loss_weights with a trailing comma,
  // ${model.label_rate}, labels as a quoted list.
  CHECK_OK(load("optimization:\n  lr: [0.0005]\n  update_freq: [2]\noptimizer:\n  adam_betas: (0.9,0.98)\n"
                "criterion:\n  loss_weights: [10,]\ntask:\n  label_rate: ${model.label_rate}\n  labels: [\"km\"]\n"
                "model:\n  label_rate: 100\n"));
  CHECK(g_cfg.optimization.update_freq == 2 && g_cfg.criterion.loss_weights.n == 1 && g_cfg.criterion.loss_weights.v[0] == 10);
  CHECK(g_cfg.task.label_rate == 0 && g_cfg.model.label_rate == 100 && !strcmp(g_cfg.task.labels.s[0], "km"));
  // A scalar lr, a list override, a quoted list override, overrides win over the file.
  CHECK_OK(load_ov("optimization:\n  lr: 0.001\n", 2, "optimization.lr=[0.0001]", "task.labels='[\"km100\", \"km500\"]'"));
  CHECK(g_cfg.optimization.lr.v[0] == 0.0001 && g_cfg.task.labels.n == 2 && !strcmp(g_cfg.task.labels.s[1], "km500"));
  CHECK_OK(load_ov("", 2, "optimizer.adam_betas=(0.9,0.999)", "optimization.lr=2e-4"));
  CHECK(g_cfg.optimizer.adam_betas.v[1] == 0.999 && g_cfg.optimization.lr.v[0] == 2e-4);
  // Presets apply before the file's fields, wherever the preset line is.
  CHECK_OK(load("model:\n  encoder_layers: 3\n  preset: tiny\n"));
  CHECK(g_cfg.model.encoder_layers == 3 && g_cfg.model.encoder_embed_dim == 64 && g_cfg.model.conv_dim == 32);
  CHECK_OK(load_ov("model:\n  preset: tiny\n  encoder_layers: 3\n", 1, "model.preset=large", NULL));
  CHECK(g_cfg.model.encoder_layers == 3 && g_cfg.model.encoder_embed_dim == 1024 && g_cfg.model.layer_norm_first == 1);
  // ??? satisfied by an override.
  CHECK_OK(load_ov("task:\n  data: ???\n", 1, "task.data=/shards", NULL));
  CHECK(!strcmp(g_cfg.task.data, "/shards"));
  // Null / empty sections and values.
  CHECK_OK(load("topic:\ncommon:\n  log_file:\n"));
  // The single-override API re-validates.
  CHECK_OK(load(""));
  CHECK_OK(train_config_override(&g_cfg, "dataset.max_tokens=800000"));
  CHECK(g_cfg.dataset.max_tokens == 800000);
  CHECK_ERR(train_config_override(&g_cfg, "dataset.max_tokens=1000"), "dataset.max_tokens (1000) is below task.min_sample_size");
  // Model, schedule and optimizer settings derived from the config.
  CHECK_OK(load("model:\n  preset: tiny\n  dropout: 0.2\ntopic:\n  name: lda20\n  k: 20\n  layer: 1\ntask:\n  labels: [km100]\n"));
  hb_config mc;
  CHECK_OK(train_config_model(&g_cfg, &mc));
  CHECK(mc.hidden_size == 64 && mc.num_hidden_layers == 2 && mc.conv_dim[6] == 32 && mc.hidden_dropout == 0.2);
  CHECK(mc.num_label_sets == 1 && !strcmp(mc.label_names[0], "km100") && mc.topic_k == 20 && mc.topic_layer == 1);
  CHECK_OK(load_ov("topic:\n  name: lda20\n  k: 20\n", 1, "topic.weight=0", NULL));
  CHECK_OK(train_config_model(&g_cfg, &mc));
  CHECK(mc.topic_k == 0);
  hb_lr_schedule s;
  CHECK_OK(load_ov("", 2, "optimization.max_update=1000", "lr_scheduler.warmup_updates=100"));
  train_config_schedule(&g_cfg, &s);
  CHECK(s.kind == HB_LR_POLYNOMIAL && s.total == 1000 && s.warmup == 100 && s.lr == 0.0005);
  hb_adamw_hparams hp = train_config_adamw(&g_cfg);
  CHECK(hp.beta1 == 0.9 && hp.beta2 == 0.98 && hp.eps == 1e-6 && hp.weight_decay == 0.01);
}

// print -> parse gives the same struct (all fields, byte for byte).
static int round_trip(const hb_train_config *a, const char *what) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (!f) return -1;
  int rc = train_config_write(a, f);
  fclose(f);
  hb_train_config b;
  if (!rc) rc = train_config_load_string(&b, text, "printed", 0, NULL);
  if (rc) fprintf(stderr, "round trip %s: %s\n%s", what, hb_errmsg(), text);
  else if (memcmp(a, &b, sizeof b)) {
    fprintf(stderr, "round trip %s: the re-parsed config differs\n%s", what, text);
    rc = -1;
  } else {
    printf("  ok: round trip %s (%zu bytes of YAML)\n", what, len);
  }
  free(text);
  return rc;
}

// fairseq's examples/hubert/config/pretrain/hubert_base_librispeech.yaml (without its hydra:
// section) loads as it is, with its two mandatory values given on the command line.
static const char *kFairseqBase =
    "# @package _group_\n\ncommon:\n  fp16: true\n  log_format: json\n  log_interval: 200\n  seed: 1337\n"
    "  tensorboard_logdir: tblog\n\ncheckpoint:\n  save_interval_updates: 25000\n  keep_interval_updates: 1\n"
    "  no_epoch_checkpoints: true\n\ndistributed_training:\n  ddp_backend: no_c10d\n  distributed_backend: 'nccl'\n"
    "  distributed_world_size: 32\n  distributed_port: 29671\n  nprocs_per_node: 8\n  find_unused_parameters: true\n\n"
    "task:\n  _name: hubert_pretraining\n  data: ???\n  label_dir: ???\n  labels: ???\n  label_rate: ${model.label_rate}\n"
    "  sample_rate: 16000\n  max_sample_size: 250000\n  min_sample_size: 32000\n  pad_audio: false\n  random_crop: true\n"
    "  normalize: false # must be consistent with extractor\n\ndataset:\n  num_workers: 6\n  max_tokens: 1400000\n"
    "  skip_invalid_size_inputs_valid_test: true\n  validate_interval: 5\n  validate_interval_updates: 10000\n\n"
    "criterion:\n  _name: hubert\n  pred_masked_weight: 1.0\n  pred_nomask_weight: 0.0\n  loss_weights: [10,]\n\n"
    "optimization:\n  max_update: 400000\n  lr: [0.0005]\n  clip_norm: 10.0\n\noptimizer:\n  _name: adam\n"
    "  adam_betas: (0.9,0.98)\n  adam_eps: 1e-06\n  weight_decay: 0.01\n\nlr_scheduler:\n  _name: polynomial_decay\n"
    "  warmup_updates: 32000\n\nmodel:\n  _name: hubert\n  label_rate: ???\n  skip_masked: false\n  skip_nomask: false\n"
    "  mask_prob: 0.80\n  extractor_mode: default\n  conv_feature_layers: '[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2'\n"
    "  final_dim: 256\n  encoder_layerdrop: 0.05\n  dropout_input: 0.1\n  dropout_features: 0.1\n  dropout: 0.1\n"
    "  attention_dropout: 0.1\n  feature_grad_mult: 0.1\n  untie_final_proj: true\n  activation_dropout: 0.0\n";

static void test_fairseq(void) {
  printf("fairseq's own config:\n");
  char *ov[] = {"task.data=/x", "task.label_dir=/x", "task.labels=[\"km\"]", "model.label_rate=100"};
  CHECK_ERR(train_config_load_string(&g_cfg, kFairseqBase, "fs.yaml", 0, NULL), "fs.yaml:25: task.data is '?\?\?'");
  CHECK_OK(train_config_load_string(&g_cfg, kFairseqBase, "fs.yaml", 4, ov));
  CHECK(g_cfg.model.label_rate == 100 && g_cfg.optimization.lr.v[0] == 0.0005 && g_cfg.model.untie_final_proj == 1);
  CHECK_OK(round_trip(&g_cfg, "fairseq base"));
  CHECK_ERR(load("model:\n  conv_feature_layers: '[(512,10,5)] * 2'\n"), "model.conv_feature_layers: only fairseq's standard layout");
}

static void test_round_trip(void) {
  printf("round trips:\n");
  CHECK_OK(load(""));
  CHECK_OK(round_trip(&g_cfg, "defaults"));
  CHECK_OK(load("common:\n  fp16: true\n  log_file: 'we\"ird \\\\ path: #1'\n  seed: 12345678901\n"
                "optimization:\n  lr: [0.1, 3.3e-7, 7.25]\noptimizer:\n  adam_eps: 1e-8\nlr_scheduler:\n  _name: tri_stage\n"
                "  phase_ratio: [0.05, 0.15, 0.8]\nmodel:\n  preset: large\n  encoder_layers: 7\n  dropout: 0.123456789012345\n"
                "task:\n  labels: [km, 'a b', \"c,d\"]\ntopic:\n  name: lda20\n"));
  CHECK(!strcmp(g_cfg.common.log_file, "we\"ird \\\\ path: #1") && g_cfg.common.seed == 12345678901L);
  CHECK(g_cfg.task.labels.n == 3 && !strcmp(g_cfg.task.labels.s[2], "c,d"));
  CHECK_OK(round_trip(&g_cfg, "odd values"));
}

static void test_shipped(void) {
  printf("shipped configs:\n");
  const char *src = getenv("HUBERT_SRC");
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/configs", src ? src : ".");
  DIR *d = opendir(dir);
  CHECK(d != NULL);
  if (!d) return;
  int n = 0;
  struct dirent *e;
  // Shipped configs keep fairseq's mandatory marker where a user must say something (the shards;
  // the pretrained model of a fine-tuning config): the overrides stand in for the user.
  char *ov[] = {"task.data=/tmp/shards", "model.w2v_path=/tmp/model"};
  while ((e = readdir(d))) {
    size_t l = strlen(e->d_name);
    if (l < 6 || strcmp(e->d_name + l - 5, ".yaml")) continue;
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    hb_train_config c;
    hb_clear_error();
    CHECK_OK(train_config_load(&c, path, 2, ov));
    if (!hb_errmsg()[0]) printf("  ok: %s (preset %d, %d layers, lr %g, max_update %ld)\n", e->d_name, c.model.preset,
                                c.model.encoder_layers, c.optimization.lr.v[0], c.optimization.max_update);
    CHECK_OK(round_trip(&c, e->d_name));
    hb_clear_error();
    n++;
  }
  closedir(d);
  CHECK(n >= 5);
  hb_train_config demo;
  snprintf(dir + strlen(dir), sizeof dir - strlen(dir), "/demo.yaml");
  CHECK_OK(train_config_load(&demo, dir, 0, NULL));
  CHECK(demo.model.preset == HB_PRESET_TINY && !strcmp(demo.topic.name, "lda20") && !strcmp(demo.task.labels.s[0], "km100"));
}

int main(void) {
  test_errors();
  test_values();
  test_round_trip();
  test_fairseq();
  test_shipped();
  return test_summary("test_config");
}
