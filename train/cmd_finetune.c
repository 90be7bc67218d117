// `hubert finetune CONFIG.yaml [section.key=value ...] [--resume auto|PATH|none]`: CTC fine-tuning.
#include <stdio.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/error.h"
#include "train/config.h"
#include "train/finetune.h"
#include "train/train_util.h"

int cmd_finetune(const hb_command *cmd, int argc, char **argv) {
  const char *resume = "auto";
  int threads = 0;
  hb_opt opts[] = {
      {"resume", 'r', HB_OPT_STR, "auto|PATH|none",
       "auto (default): continue from SAVE_DIR/checkpoint_last if present; PATH: a checkpoint folder; none: start "
       "fresh from model.w2v_path",
       &resume, 0},
      {"threads", 't', HB_OPT_INT, "N", "CPU threads (default: OMP_NUM_THREADS or all cores)", &threads, 0},
      {0}};
  int npos = 0;
  char **pos = NULL;
  int rc = cli_parse(cmd, opts, argc, argv, &npos, &pos);
  if (rc) return rc > 0 ? 0 : -1;
  if (npos < 1) return hb_fail("hubert finetune: give CONFIG.yaml (see hubert finetune --help)");
  if (threads < 0) return hb_fail("hubert finetune: --threads must be >= 0");
  hb_train_config c;
  if (train_config_load(&c, pos[0], npos - 1, pos + 1)) return -1;
  if (train_config_print_resolved(&c, npos, pos)) return -1;
  hb_finetune_args a = {resume, threads};
  return finetune_run(&c, &a);
}
