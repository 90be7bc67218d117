// Runs attention_train + attention_backward (CPU, dropout on the probabilities) on inputs written
// by tests/parity/test_attention_dropout_torch.py and writes the results back as raw
// little-endian float32 arrays (not a test by itself).
//   attn_dump DIR
// DIR/cfg.txt: "B T H Dh scale p seed"; DIR/{q,k,v,dout}.bin float32 (B, T, H*Dh), DIR/len.bin
// int32 (B). Writes DIR/out_{out,lse,dq,dk,dv}.bin.
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/error.h"
#include "kernels/ops.h"

static const char *g_dir;

static void *rd(const char *name, size_t bytes) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s.bin", g_dir, name);
  FILE *f = fopen(path, "rb");
  void *p = malloc(bytes ? bytes : 1);
  if (!f || !p || fread(p, 1, bytes, f) != bytes) {
    fprintf(stderr, "attn_dump: cannot read %zu bytes from %s\n", bytes, path);
    exit(2);
  }
  fclose(f);
  return p;
}

static void wr(const char *name, const void *p, size_t bytes) {
  char path[1024];
  snprintf(path, sizeof path, "%s/out_%s.bin", g_dir, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p, 1, bytes, f) != bytes) {
    fprintf(stderr, "attn_dump: cannot write %s\n", path);
    exit(2);
  }
  fclose(f);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: attn_dump DIR\n");
    return 2;
  }
  g_dir = argv[1];
  char path[1024];
  snprintf(path, sizeof path, "%s/cfg.txt", g_dir);
  FILE *f = fopen(path, "r");
  int B, T, H, Dh;
  float scale, p;
  uint64_t seed;
  if (!f || fscanf(f, "%d %d %d %d %f %f %" SCNu64, &B, &T, &H, &Dh, &scale, &p, &seed) != 7 || B < 1 || T < 1 ||
      H < 1 || Dh < 1 || B > 64 || T > 4096 || H > 64 || Dh > 1024) {
    fprintf(stderr, "attn_dump: bad or missing %s\n", path);
    return 2;
  }
  fclose(f);
  const size_t n = (size_t)B * T * H * Dh, fb = sizeof(float) * n, lb = sizeof(float) * (size_t)B * H * T;
  float *q = rd("q", fb), *k = rd("k", fb), *v = rd("v", fb), *dout = rd("dout", fb);
  int *len = rd("len", sizeof(int) * (size_t)B);
  float *out = malloc(fb), *lse = malloc(lb), *dq = malloc(fb), *dk = malloc(fb), *dv = malloc(fb);
  hb_ctx ctx;
  if (!out || !lse || !dq || !dk || !dv || ops_ctx_init(&ctx, "cpu", 0) ||
      ctx.be->attention_train(&ctx, out, lse, q, k, v, len, B, T, H, Dh, scale, p, seed) ||
      ctx.be->attention_backward(&ctx, dq, dk, dv, dout, q, k, v, lse, len, B, T, H, Dh, scale, p, seed)) {
    fprintf(stderr, "attn_dump: %s\n", hb_errmsg());
    return 1;
  }
  wr("out", out, fb);
  wr("lse", lse, lb);
  wr("dq", dq, fb);
  wr("dk", dk, fb);
  wr("dv", dv, fb);
  ops_ctx_free(&ctx);
  free(q), free(k), free(v), free(dout), free(len), free(out), free(lse), free(dq), free(dk), free(dv);
  return 0;
}
