// NCCL backend of train/comm.h (GPU buffers). Placeholder until the full backend lands.
#include "train/comm.h"

#include "common/error.h"

int comm_have_nccl(void) { return 0; }
int comm_nccl_init(hb_comm *c, const hb_comm_opts *o) {
  (void)c; (void)o;
  return hb_fail("comm: this build has no NCCL (build with CUDA and nccl.h)");
}
