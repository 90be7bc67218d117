// safetensors: writer/reader round trip (F32 exact, BF16 round-to-nearest-even), exact F16/BF16
// decoding of every bit pattern, and one specific error per kind of bad file.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/safetensors.h"
#include "tests/test_util.h"

static char g_dir[64];

static const char *tpath(const char *name) {
  static char buf[8][256];
  static int k = 0;
  k = (k + 1) % 8;
  snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
  return buf[k];
}

// Writes <8-byte LE header length><header><data> with a claimed length (or the real one if < 0).
static void write_raw(const char *path, const char *header, long long claim, const void *data, size_t dlen) {
  FILE *f = fopen(path, "wb");
  uint64_t n = claim >= 0 ? (uint64_t)claim : strlen(header);
  unsigned char b[8];
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)(n >> (8 * i));
  fwrite(b, 1, 8, f);
  fwrite(header, 1, strlen(header), f);
  if (dlen) fwrite(data, 1, dlen, f);
  fclose(f);
}

static double half_ref(uint16_t h) {
  int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v;
  if (e == 31) v = m ? NAN : INFINITY;
  else if (e == 0) v = ldexp(m, -24);
  else v = ldexp(1024 + m, e - 25);
  return s ? -v : v;
}

static uint16_t bf16_ref(float f) {   // round to nearest even through double arithmetic
  if (isnan(f)) return 0x7FC0;
  uint32_t u;
  memcpy(&u, &f, 4);
  uint32_t lo = u & 0xFFFF, hi = u >> 16;
  if (lo > 0x8000 || (lo == 0x8000 && (hi & 1))) hi++;
  return (uint16_t)hi;
}

int main(void) {
  strcpy(g_dir, "/tmp/hb_test_st_XXXXXX");
  if (!mkdtemp(g_dir)) {
    perror("mkdtemp");
    return 1;
  }
  // ---- round trip -------------------------------------------------------------------------------
  enum { A = 3 * 5, B = 1000 };
  float a[A], b[B], s0 = 2.5f;
  for (int i = 0; i < A; i++) a[i] = (float)i - 7.25f;
  for (int i = 0; i < B; i++) b[i] = (float)sin(i * 0.37) * powf(10.0f, (float)(i % 60) - 30.0f);
  b[0] = INFINITY;
  b[1] = -0.0f;
  b[2] = 1.0f + 1.0f / 256;          // exactly halfway between two bf16 values: rounds to even (1.0)
  b[3] = 1.0f + 3.0f / 256;          // halfway, rounds up to even
  b[4] = 3.4028235e38f;              // FLT_MAX -> inf in bf16 (RNE overflow)
  b[5] = 1e-40f;                     // subnormal
  hb_st_entry ents[3] = {
      {.name = "enc.w", .data = a, .ndim = 2, .shape = {3, 5}},
      {.name = "enc.b", .data = b, .ndim = 1, .shape = {B}},
      {.name = "scalar", .data = &s0, .ndim = 0},
  };
  const char *mk[] = {"format"}, *mv[] = {"pt"};
  for (int pass = 0; pass < 2; pass++) {
    hb_dtype dt = pass ? HB_DT_BF16 : HB_DT_F32;
    const char *p = tpath(pass ? "bf16.safetensors" : "f32.safetensors");
    CHECK_OK(st_write(p, 3, ents, dt, 1, mk, mv));
    CHECK(access(tpath(pass ? "bf16.safetensors.tmp" : "f32.safetensors.tmp"), F_OK) != 0);
    hb_safetensors st;
    CHECK_OK(st_open(p, &st));
    if (st.path == NULL) continue;
    CHECK(st.n == 3 && st.n_meta == 1 && strcmp(st.meta_keys[0], "format") == 0 && strcmp(st.meta_values[0], "pt") == 0);
    const hb_st_tensor *tw = st_find(&st, "enc.w"), *tb = st_find(&st, "enc.b"), *ts = st_find(&st, "scalar");
    CHECK(tw && tb && ts && !st_find(&st, "nope"));
    if (tw && tb && ts) {
      CHECK(tw->dtype == dt && tw->ndim == 2 && tw->shape[0] == 3 && tw->shape[1] == 5 && ts->ndim == 0 && st_numel(ts) == 1);
      float ra[A], rb[B], rs;
      CHECK_OK(st_read_f32(&st, tw, ra, A));
      CHECK_OK(st_read_f32(&st, tb, rb, B));
      CHECK_OK(st_read_f32(&st, ts, &rs, 1));
      int exact = memcmp(ra, a, sizeof a) == 0 && rs == s0;
      if (!pass) {
        exact = exact && memcmp(rb, b, sizeof b) == 0;
      } else {
        for (int i = 0; i < B; i++) {
          uint16_t want = bf16_ref(b[i]);
          uint32_t u;
          memcpy(&u, &rb[i], 4);
          if ((u >> 16) != want || (u & 0xFFFF)) {
            exact = 0;
            fprintf(stderr, "bf16 mismatch at %d: %g -> %04x, want %04x\n", i, b[i], u >> 16, want);
            break;
          }
        }
        CHECK(rb[2] == 1.0f && rb[3] == 1.0f + 4.0f / 256 && isinf(rb[4]) && rb[5] != 0 && signbit(rb[1]));
      }
      printf("  %s round trip (15 + 1000 + 1 values incl. inf, -0, ties, subnormal): %s\n", st_dtype_name(dt), exact ? "exact" : "MISMATCH");
      CHECK(exact);
      CHECK_ERR(st_read_f32(&st, tw, ra, A - 1), "'enc.w': has 15 elements, caller expects 14");
      // st_load_f32: allocated copy with its shape and count; missing name and wrong rank are errors
      int64_t shp[HB_ST_MAX_DIMS] = {0};
      size_t cnt = 0;
      float *la = st_load_f32(&st, "enc.w", 2, shp, &cnt);
      CHECK(la && cnt == A && shp[0] == 3 && shp[1] == 5 && memcmp(la, ra, sizeof ra) == 0);
      free(la);
      float *ls = st_load_f32(&st, "scalar", -1, NULL, &cnt);
      CHECK(ls && cnt == 1 && *ls == rs);
      free(ls);
      hb_clear_error();
      CHECK(st_load_f32(&st, "nope", -1, NULL, NULL) == NULL && strstr(hb_errmsg(), "tensor 'nope' missing"));
      CHECK(st_load_f32(&st, "enc.b", 2, shp, NULL) == NULL && strstr(hb_errmsg(), "'enc.b' has 1 dimensions, expected 2"));
    }
    // header padded to a multiple of 8 with spaces
    FILE *f = fopen(p, "rb");
    unsigned char lb[8];
    CHECK(fread(lb, 1, 8, f) == 8);
    fclose(f);
    CHECK(lb[0] % 8 == 0);
    st_close(&st);
  }

  // ---- F16 / BF16 decoding of every bit pattern ---------------------------------------------------
  {
    static uint8_t data[65536 * 2];
    for (int i = 0; i < 65536; i++) {
      data[2 * i] = (uint8_t)i;
      data[2 * i + 1] = (uint8_t)(i >> 8);
    }
    write_raw(tpath("half.safetensors"),
              "{\"h\":{\"dtype\":\"F16\",\"shape\":[65536],\"data_offsets\":[0,131072]},"
              "\"b\":{\"dtype\":\"BF16\",\"shape\":[256,256],\"data_offsets\":[0,131072]}}",
              -1, data, sizeof data);
    hb_safetensors st;
    // h and b share bytes: that is an overlap error; read the two separately instead
    CHECK_ERR(st_open(tpath("half.safetensors"), &st), "overlap");
    write_raw(tpath("half.safetensors"), "{\"h\":{\"dtype\":\"F16\",\"shape\":[65536],\"data_offsets\":[0,131072]}}", -1, data, sizeof data);
    write_raw(tpath("bf.safetensors"), "{\"b\":{\"dtype\":\"BF16\",\"shape\":[256,256],\"data_offsets\":[0,131072]}}", -1, data, sizeof data);
    float *out = malloc(sizeof(float) * 65536);
    int bad = 0;
    CHECK_OK(st_open(tpath("half.safetensors"), &st));
    if (st.n == 1) {
      CHECK_OK(st_read_f32(&st, &st.tensors[0], out, 65536));
      for (int i = 0; i < 65536; i++) {
        double r = half_ref((uint16_t)i);
        if (isnan(r) ? !isnan(out[i]) : ((double)out[i] != r || !signbit(out[i]) != !signbit(r))) {
          if (bad++ < 3) fprintf(stderr, "  F16 %04x -> %g, want %g\n", i, out[i], r);
        }
      }
      st_close(&st);
    }
    printf("  F16 -> F32: %d of 65536 bit patterns differ from the exact value\n", bad);
    CHECK(bad == 0);
    bad = 0;
    CHECK_OK(st_open(tpath("bf.safetensors"), &st));
    if (st.n == 1) {
      CHECK_OK(st_read_f32(&st, &st.tensors[0], out, 65536));
      for (int i = 0; i < 65536; i++) {
        uint32_t u;
        memcpy(&u, &out[i], 4);
        bad += u != (uint32_t)i << 16;
      }
      st_close(&st);
    }
    printf("  BF16 -> F32: %d of 65536 bit patterns differ\n", bad);
    CHECK(bad == 0);
    free(out);
  }

  // ---- bad files ----------------------------------------------------------------------------------
  hb_safetensors st;
  uint8_t zeros[64] = {0};
  const char *ok_hdr = "{\"t\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";
  write_raw(tpath("x.st"), ok_hdr, -1, zeros, 16);
  CHECK_OK(st_open(tpath("x.st"), &st));
  st_close(&st);
  write_raw(tpath("x.st"), ok_hdr, -1, zeros, 12);
  CHECK_ERR(st_open(tpath("x.st"), &st), "tensor 't': data_offsets [0, 16] outside the data block (12 bytes)");
  FILE *f = fopen(tpath("x.st"), "wb");
  fwrite("\x10\0\0", 1, 3, f);
  fclose(f);
  CHECK_ERR(st_open(tpath("x.st"), &st), "truncated");
  write_raw(tpath("x.st"), ok_hdr, 100000, zeros, 16);
  CHECK_ERR(st_open(tpath("x.st"), &st), "header length 100000 is beyond the end of the file");
  write_raw(tpath("x.st"), "{\"t\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}", -1, zeros, 16);
  CHECK_ERR(st_open(tpath("x.st"), &st), "invalid JSON header: line 1");
  write_raw(tpath("x.st"), "[1,2]", -1, zeros, 0);
  CHECK_ERR(st_open(tpath("x.st"), &st), "header is not a JSON object");
  write_raw(tpath("x.st"), "{\"t\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", -1, zeros, 2);
  CHECK_ERR(st_open(tpath("x.st"), &st), "tensor 't': unknown dtype 'F8_E4M3'");
  write_raw(tpath("x.st"), "{\"t\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,16]}}", -1, zeros, 16);
  CHECK_ERR(st_open(tpath("x.st"), &st), "tensor 't': shape [2, 3] of F32 needs 24 bytes but data_offsets span 16");
  write_raw(tpath("x.st"), "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", -1, zeros, 16);
  CHECK_ERR(st_open(tpath("x.st"), &st), "tensor 't': data_offsets [8, 0] has begin > end");
  write_raw(tpath("x.st"),
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", -1, zeros, 16);
  CHECK_ERR(st_open(tpath("x.st"), &st), "tensors 'a' [0, 8) and 'b' [4, 12) overlap");
  write_raw(tpath("x.st"), "{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,16]}}", -1, zeros, 16);
  CHECK_ERR(st_open(tpath("x.st"), &st), "tensor 't': shape overflows");
  write_raw(tpath("x.st"), "{\"t\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,16]}}", -1, zeros, 16);
  CHECK_ERR(st_open(tpath("x.st"), &st), "tensor 't': shape[0] is not a non-negative integer");
  write_raw(tpath("x.st"), "{\"t\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,16]}}", -1, zeros, 16);
  CHECK_ERR(st_open(tpath("x.st"), &st), "shape[0] is not a non-negative integer");
  write_raw(tpath("x.st"), "{\"t\":{\"dtype\":\"F32\",\"shape\":[4]}}", -1, zeros, 16);
  CHECK_ERR(st_open(tpath("x.st"), &st), "tensor 't': 'data_offsets' must be");
  write_raw(tpath("x.st"), "{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16],\"x\":1}}", -1, zeros, 16);
  CHECK_ERR(st_open(tpath("x.st"), &st), "tensor 't': unknown field 'x'");
  write_raw(tpath("x.st"), "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", -1, zeros, 8);
  CHECK_ERR(st_open(tpath("x.st"), &st), "tensor 't' appears twice");
  write_raw(tpath("x.st"), "{\"__metadata__\":{\"a\":1}}", -1, zeros, 0);
  CHECK_ERR(st_open(tpath("x.st"), &st), "__metadata__ value 'a' is not a string");
  write_raw(tpath("x.st"), "{\"t\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}", -1, zeros, 4);
  CHECK_OK(st_open(tpath("x.st"), &st));
  if (st.n == 1) {
    float v;
    CHECK_ERR(st_read_f32(&st, &st.tensors[0], &v, 1), "tensor 't': dtype I32 is not a floating-point type");
  }
  st_close(&st);
  CHECK_ERR(st_open(tpath("missing.st"), &st), "missing.st: cannot open");
  CHECK_ERR(st_write(tpath("y.st"), 1, ents, HB_DT_F16, 0, NULL, NULL), "F32 or BF16");
  hb_st_entry dup[2] = {ents[0], ents[0]};
  CHECK_ERR(st_write(tpath("y.st"), 2, dup, HB_DT_F32, 0, NULL, NULL), "'enc.w' given twice");
  CHECK(access(tpath("y.st"), F_OK) != 0);

  const char *rm[] = {"f32.safetensors", "bf16.safetensors", "half.safetensors", "bf.safetensors", "x.st"};
  for (size_t i = 0; i < sizeof rm / sizeof *rm; i++) unlink(tpath(rm[i]));
  rmdir(g_dir);
  return test_summary("test_safetensors");
}
