// `hubert export-hf`: a model folder -> a folder transformers.HubertModel.from_pretrained loads.
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/error.h"
#include "eval/export_hf.h"

int cmd_export_hf(const hb_command *cmd, int argc, char **argv) {
  const char *model = NULL, *out = NULL, *dtype = "f32";
  int keep = 0;
  hb_opt opts[] = {
      {"model", 'm', HB_OPT_STR, "DIR", "model folder (a hubert.c checkpoint or any readable HF folder)", &model, 1},
      {"out", 'o', HB_OPT_STR, "DIR", "output folder (config.json, model.safetensors, vocab.json for CTC models)", &out, 1},
      {"dtype", 0, HB_OPT_STR, "f32|bf16", "tensor type of model.safetensors (default f32)", &dtype, 0},
      {"keep-heads", 0, HB_OPT_FLAG, NULL, "keep the pretraining heads (final_proj, label_embs_concat, topic_head) as extra keys", &keep, 0},
      {0}};
  int npos;
  char **pos;
  int rc = cli_parse(cmd, opts, argc, argv, &npos, &pos);
  if (rc) return rc > 0 ? 0 : -1;
  if (npos) return hb_fail("hubert export-hf: unexpected argument '%s' (use --model DIR --out DIR)", pos[0]);
  hb_export_opts o = {0, keep};
  if (!strcmp(dtype, "bf16")) o.bf16 = 1;
  else if (strcmp(dtype, "f32")) return hb_fail("--dtype: expected f32 or bf16, got '%s'", dtype);
  hb_export_stats st;
  HB_TRY(export_hf(model, out, &o, &st));
  printf("export-hf: %s -> %s: %s, %d tensors, %.1f MB (%s)\n", model, out, st.ctc ? "HubertForCTC" : "HubertModel",
         st.n_tensors, st.mbytes, o.bf16 ? "bf16" : "f32");
  if (st.ctc)
    printf("export-hf: vocab.json %s\n", st.vocab_from_model ? "copied from the model folder" : "generated (<pad>, <unk>, <2>, ...): the model folder has none");
  if (!keep) printf("export-hf: pretraining heads dropped (--keep-heads keeps them)\n");
  return 0;
}
