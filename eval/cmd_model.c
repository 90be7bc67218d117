// `hubert info` (model summary) and `hubert init` (a randomly initialised model folder).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/error.h"
#include "models/hubert.h"

// Resolves --config: a preset name or a config.json path.
int model_config_from_arg(const char *arg, hb_config *c) {
  hb_preset p;
  if (config_preset_by_name(arg, &p) == 0) {
    config_preset(c, p);
    return 0;
  }
  return config_read_json(arg, c);
}

static const char *block_of(const hb_param_info *p) {
  if (p->kind == 1) return "conv feature extractor";
  if (p->kind == 2) return "transformer layers";
  if (!strncmp(p->name, "feature_projection", 18)) return "feature projection";
  if (!strncmp(p->name, "encoder.pos_conv", 16)) return "positional conv";
  if (!strncmp(p->name, "encoder.layer_norm", 18) || !strcmp(p->name, "masked_spec_embed")) return "encoder norm + mask emb";
  if (!strncmp(p->name, "topic_head", 10)) return "topic head";
  if (!strncmp(p->name, "ctc_head", 8)) return "CTC head";
  return "masked-prediction head";
}

int cmd_info(const hb_command *cmd, int argc, char **argv) {
  const char *dir = NULL;
  int list = 0;
  hb_opt opts[] = {{"model", 'm', HB_OPT_STR, "DIR", "model folder", &dir, 1},
                   {"tensors", 0, HB_OPT_FLAG, NULL, "also list every tensor with its shape", &list, 0},
                   {0}};
  int npos;
  char **pos;
  int rc = cli_parse(cmd, opts, argc, argv, &npos, &pos);
  if (rc) return rc > 0 ? 0 : -1;
  if (npos) return hb_fail("hubert info: unexpected argument (use --model DIR)");
  hb_ctx ctx;
  HB_TRY(ops_ctx_init(&ctx, "cpu", 0));
  hb_model m;
  if (model_load(&m, dir, &ctx)) {
    ops_ctx_free(&ctx);
    return -1;
  }
  const hb_config *c = &m.cfg;
  printf("model: %s\n", dir);
  printf("  extractor   : %d conv layers, %s norm, conv bias %s, dims", c->num_conv, c->feat_extract_norm_layer ? "layer" : "group",
         c->conv_bias ? "on" : "off");
  for (int i = 0; i < c->num_conv; i++) printf(" %d/k%d/s%d", c->conv_dim[i], c->conv_kernel[i], c->conv_stride[i]);
  printf("\n  frames      : receptive field %d samples, stride %d (%.0f Hz at 16 kHz)\n", config_receptive_field(c),
         config_total_stride(c), 16000.0 / config_total_stride(c));
  printf("  transformer : %d layers, hidden %d, %d heads, ffn %d, %s, pos conv k%d g%d\n", c->num_hidden_layers,
         c->hidden_size, c->num_attention_heads, c->intermediate_size, c->do_stable_layer_norm ? "pre-LN" : "post-LN",
         c->num_conv_pos_embeddings, c->num_conv_pos_embedding_groups);
  if (c->final_dim) {
    printf("  pretraining : final_dim %d%s, label sets:", c->final_dim, c->untie_final_proj ? " (untied)" : "");
    for (int i = 0; i < c->num_label_sets; i++) printf(" %s(k=%d)", c->label_names[i], c->label_k[i]);
    printf("\n");
  }
  if (c->topic_k) printf("  topic head  : %d topics from layer %d%s\n", c->topic_k, c->topic_layer ? c->topic_layer : c->num_hidden_layers, c->topic_hidden ? " (MLP)" : "");
  if (c->ctc_vocab) printf("  CTC head    : vocabulary %d\n", c->ctc_vocab);
  // Parameter counts by block, in table order.
  const char *blocks[16];
  size_t counts[16];
  int nb = 0;
  for (int i = 0; i < m.layout.n; i++) {
    const char *b = block_of(&m.layout.info[i]);
    int k = 0;
    while (k < nb && strcmp(blocks[k], b)) k++;
    if (k == nb && nb < 16) {
      blocks[nb] = b;
      counts[nb++] = 0;
    }
    if (k < 16) counts[k] += m.layout.info[i].numel;
  }
  printf("  parameters  : %.2fM\n", model_num_params(&m) / 1e6);
  for (int k = 0; k < nb; k++) printf("    %-26s %12zu\n", blocks[k], counts[k]);
  if (list)
    for (int i = 0; i < m.layout.n; i++) {
      const hb_param_info *p = &m.layout.info[i];
      printf("    %-64s (", p->name);
      for (int d = 0; d < p->ndim; d++) printf("%s%lld", d ? ", " : "", (long long)p->shape[d]);
      printf(")\n");
    }
  model_free(&m);
  ops_ctx_free(&ctx);
  return 0;
}

int cmd_init(const hb_command *cmd, int argc, char **argv) {
  const char *config = NULL, *out = NULL, *labels = NULL;
  long seed = 0;
  int bf16 = 0, final_dim = -1, topic_k = -1;
  hb_opt opts[] = {
      {"config", 'c', HB_OPT_STR, "tiny|base|large|xlarge|FILE.json", "architecture preset or config.json", &config, 1},
      {"out", 'o', HB_OPT_STR, "DIR", "model folder to write", &out, 1},
      {"seed", 's', HB_OPT_LONG, "N", "initialisation seed (default 0)", &seed, 0},
      {"labels", 0, HB_OPT_STR, "NAME:K,...", "label sets of the masked-prediction head, e.g. km:100", &labels, 0},
      {"final-dim", 0, HB_OPT_INT, "N", "masked-prediction projection size (0: no head)", &final_dim, 0},
      {"topic-k", 0, HB_OPT_INT, "K", "HuBERTopic head with K topics", &topic_k, 0},
      {"bf16", 0, HB_OPT_FLAG, NULL, "store tensors as bfloat16", &bf16, 0},
      {0}};
  int npos;
  char **pos;
  int rc = cli_parse(cmd, opts, argc, argv, &npos, &pos);
  if (rc) return rc > 0 ? 0 : -1;
  if (npos) return hb_fail("hubert init: unexpected argument");
  hb_config c;
  HB_TRY(model_config_from_arg(config, &c));
  if (final_dim >= 0) c.final_dim = final_dim;
  if (topic_k >= 0) c.topic_k = topic_k;
  if (labels) {
    c.num_label_sets = 0;
    const char *p = labels;
    while (*p) {
      if (c.num_label_sets == HB_MAX_LABEL_SETS) return hb_fail("--labels: at most %d label sets", HB_MAX_LABEL_SETS);
      const char *colon = strchr(p, ':');
      if (!colon || colon == p || colon - p >= HB_NAME_LEN) return hb_fail("--labels: expected NAME:K[,NAME:K...], got '%s'", labels);
      char *end;
      long k = strtol(colon + 1, &end, 10);
      if (end == colon + 1 || k < 1 || (*end && *end != ',')) return hb_fail("--labels: bad K in '%s'", labels);
      int i = c.num_label_sets++;
      snprintf(c.label_names[i], HB_NAME_LEN, "%.*s", (int)(colon - p), p);
      c.label_k[i] = (int)k;
      p = *end ? end + 1 : end;
    }
  }
  hb_ctx ctx;
  HB_TRY(ops_ctx_init(&ctx, "cpu", 0));
  hb_model m;
  rc = model_init(&m, &c, &ctx);
  if (!rc) {
    rc = model_init_random(&m, (uint64_t)seed);
    if (!rc) rc = model_save(&m, out, bf16);
    if (!rc) printf("init: wrote %s (%.2fM parameters, seed %ld)\n", out, model_num_params(&m) / 1e6, seed);
    model_free(&m);
  }
  ops_ctx_free(&ctx);
  return rc;
}
