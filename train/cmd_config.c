// `hubert config`: list every trainer key, or print a resolved config (file + overrides).
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/error.h"
#include "train/config.h"

int cmd_config(const hb_command *cmd, int argc, char **argv) {
  int list = 0, markdown = 0, print = 0;
  const char *out = NULL;
  hb_opt opts[] = {
      {"list", 'l', HB_OPT_FLAG, NULL, "list every key with its type, default, range and meaning", &list, 0},
      {"markdown", 0, HB_OPT_FLAG, NULL, "with --list: a markdown table (docs/training.md)", &markdown, 0},
      {"print", 'p', HB_OPT_FLAG, NULL, "print the resolved config (defaults + file + overrides) as YAML", &print, 0},
      {"out", 'o', HB_OPT_STR, "FILE.yaml", "save the resolved config to FILE.yaml", &out, 0},
      {0}};
  int npos = 0;
  char **pos = NULL;
  int rc = cli_parse(cmd, opts, argc, argv, &npos, &pos);
  if (rc) return rc > 0 ? 0 : -1;
  if (list) {
    if (npos) return hb_fail("hubert config: --list takes no CONFIG.yaml");
    train_config_list(stdout, markdown);
    return 0;
  }
  if (npos < 1) return hb_fail("hubert config: give CONFIG.yaml (or --list); see hubert config --help");
  // CONFIG.yaml may be '-' for defaults only: `hubert config - model.preset=tiny --print`.
  const char *path = strcmp(pos[0], "-") ? pos[0] : NULL;
  hb_train_config c;
  if (train_config_load(&c, path, npos - 1, pos + 1)) return -1;
  if (out && train_config_save(&c, out)) return -1;
  if (print || !out) return train_config_write(&c, stdout);
  return 0;
}
