// `hubert train CONFIG.yaml [section.key=value ...] [--resume auto|PATH|none]`.
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/error.h"
#include "train/comm.h"
#include "train/config.h"
#include "train/train_util.h"
#include "train/trainer.h"

int cmd_train(const hb_command *cmd, int argc, char **argv) {
  const char *resume = "auto", *init = NULL, *device = NULL, *precision = NULL;
  int threads = 0;
  hb_opt opts[] = {
      {"resume", 'r', HB_OPT_STR, "auto|PATH|none",
       "auto (default): continue from SAVE_DIR/checkpoint_last if present; PATH: a checkpoint folder; none: start "
       "fresh",
       &resume, 0},
      {"init", 0, HB_OPT_STR, "MODEL_DIR", "start a fresh run from this model folder instead of a random init", &init, 0},
      {"threads", 't', HB_OPT_INT, "N", "CPU threads (default: OMP_NUM_THREADS or all cores)", &threads, 0},
      {"device", 0, HB_OPT_STR, "cpu|cuda", "where the model trains (overrides common.device; default cpu)", &device, 0},
      {"precision", 0, HB_OPT_STR, "fp32|bf16", "bf16: GEMMs in bf16, fp32 master weights, CUDA only (overrides common.bf16)", &precision, 0},
      {0}};
  int npos = 0;
  char **pos = NULL;
  int rc = cli_parse(cmd, opts, argc, argv, &npos, &pos);
  if (rc) return rc > 0 ? 0 : -1;
  if (npos < 1) return hb_fail("hubert train: give CONFIG.yaml (see hubert train --help)");
  if (threads < 0) return hb_fail("hubert train: --threads must be >= 0");
  hb_train_config c;
  if (train_config_load(&c, pos[0], npos - 1, pos + 1)) return -1;
  if (device) {
    if (strcmp(device, "cpu") && strcmp(device, "cuda")) return hb_fail("hubert train: --device must be cpu or cuda (got '%s')", device);
    c.common.device = !strcmp(device, "cuda");
  }
  if (precision) {
    if (strcmp(precision, "fp32") && strcmp(precision, "bf16")) return hb_fail("hubert train: --precision must be fp32 or bf16 (got '%s')", precision);
    c.common.bf16 = !strcmp(precision, "bf16");
  }
  int rank, world, local;
  char launcher[16];
  comm_env(&rank, &world, &local, launcher);
  if (rank == 0 && train_config_print_resolved(&c, npos, pos)) return -1;  // under mpirun/srun only rank 0 prints
  hb_train_args a = {resume, init, threads, NULL};
  return trainer_run(&c, &a);
}
