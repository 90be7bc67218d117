// fairseq manifests and the INPUT... list: good files, every malformed manifest, duplicates.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data_prep/inputs.h"
#include "tests/test_util.h"

static char g_dir[64];

static const char *tpath(const char *name) {
  static char buf[8][256];
  static int k = 0;
  k = (k + 1) % 8;
  snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
  return buf[k];
}

static void put(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  fputs(text, f);
  fclose(f);
}

int main(void) {
  strcpy(g_dir, "/tmp/hb_test_inputs_XXXXXX");
  if (!mkdtemp(g_dir)) {
    perror("mkdtemp");
    return 1;
  }
  char text[1024];
  mkdir(tpath("spk1"), 0777);
  put(tpath("spk1/a.flac"), "x");
  put(tpath("b.wav"), "x");
  put(tpath("c.wav"), "x");

  // good manifest (CRLF line ends and a trailing newline are fine)
  snprintf(text, sizeof text, "%s\r\nspk1/a.flac\t16000\r\nb.wav\t32000\n", g_dir);
  put(tpath("good.tsv"), text);
  hb_manifest m;
  CHECK_OK(manifest_read(tpath("good.tsv"), &m));
  CHECK(m.n == 2 && strcmp(m.root, g_dir) == 0 && strcmp(m.relpath[0], "spk1/a.flac") == 0 &&
        m.num_samples[0] == 16000 && m.num_samples[1] == 32000);
  // writer round trip
  CHECK_OK(manifest_write(tpath("out.tsv"), &m));
  hb_manifest m2;
  CHECK_OK(manifest_read(tpath("out.tsv"), &m2));
  CHECK(m2.n == 2 && strcmp(m2.relpath[1], "b.wav") == 0 && m2.num_samples[1] == 32000);
  manifest_free(&m2);
  manifest_free(&m);

  // collect: manifest + a direct file, ids and paths
  char *args[] = {(char *)tpath("good.tsv"), (char *)tpath("c.wav")};
  char a0[256], a1[256];
  snprintf(a0, sizeof a0, "%s", args[0]);
  snprintf(a1, sizeof a1, "%s", args[1]);
  args[0] = a0;
  args[1] = a1;
  hb_input_list l;
  CHECK_OK(inputs_collect(2, args, &l));
  CHECK(l.n == 3);
  if (l.n == 3) {
    CHECK(strcmp(l.utt_id[0], "spk1/a") == 0 && strcmp(l.utt_id[1], "b") == 0 && strcmp(l.utt_id[2], "c") == 0);
    CHECK(strcmp(l.path[0], tpath("spk1/a.flac")) == 0 && l.num_samples[0] == 16000 && l.num_samples[2] == -1);
    printf("  collected: %s (%s), %s, %s\n", l.utt_id[0], l.path[0], l.utt_id[1], l.utt_id[2]);
  }
  inputs_free(&l);

  // bad manifests
  snprintf(text, sizeof text, "spk1/a.flac\t16000\nb.wav\t32000\n");
  put(tpath("noroot.tsv"), text);
  CHECK_ERR(manifest_read(tpath("noroot.tsv"), &m), "noroot.tsv: line 1: missing root line");
  snprintf(text, sizeof text, "%s\nspk1/a.flac\t16000\nb.wav 32000\n", g_dir);
  put(tpath("notab.tsv"), text);
  CHECK_ERR(manifest_read(tpath("notab.tsv"), &m), "notab.tsv: line 3: missing TAB");
  snprintf(text, sizeof text, "%s\nspk1/a.flac\t16k\n", g_dir);
  put(tpath("badcount.tsv"), text);
  CHECK_ERR(manifest_read(tpath("badcount.tsv"), &m), "badcount.tsv: line 2: bad sample count '16k'");
  snprintf(text, sizeof text, "%s\nspk1/a.flac\t-5\n", g_dir);
  put(tpath("neg.tsv"), text);
  CHECK_ERR(manifest_read(tpath("neg.tsv"), &m), "line 2: bad sample count '-5'");
  snprintf(text, sizeof text, "%s\nspk1/a.flac\t99999999999999999999999\n", g_dir);
  put(tpath("huge.tsv"), text);
  CHECK_ERR(manifest_read(tpath("huge.tsv"), &m), "line 2: bad sample count");
  snprintf(text, sizeof text, "%s\nspk1/a.flac\t5\t7\n", g_dir);
  put(tpath("three.tsv"), text);
  CHECK_ERR(manifest_read(tpath("three.tsv"), &m), "line 2: expected 2 tab-separated fields");
  snprintf(text, sizeof text, "%s\nspk1/a.flac\t5\n\nb.wav\t7\n", g_dir);
  put(tpath("blank.tsv"), text);
  CHECK_ERR(manifest_read(tpath("blank.tsv"), &m), "line 3: empty line");
  put(tpath("empty.tsv"), "");
  CHECK_ERR(manifest_read(tpath("empty.tsv"), &m), "empty.tsv: empty manifest (no root line)");
  snprintf(text, sizeof text, "%s\n", g_dir);
  put(tpath("rootonly.tsv"), text);
  CHECK_ERR(manifest_read(tpath("rootonly.tsv"), &m), "root line but no utterances");
  CHECK_ERR(manifest_read(tpath("missing.tsv"), &m), "missing.tsv: cannot open");

  // collect: root directory that does not exist, missing audio file, duplicates
  put(tpath("badroot.tsv"), "/nonexistent/dir/xyz\na.wav\t10\n");
  char *bargs[] = {(char *)tpath("badroot.tsv")};
  char b0[256];
  snprintf(b0, sizeof b0, "%s", bargs[0]);
  bargs[0] = b0;
  CHECK_ERR(inputs_collect(1, bargs, &l), "root directory '/nonexistent/dir/xyz' does not exist");
  char nf[256];
  snprintf(nf, sizeof nf, "%s", tpath("nofile.wav"));
  char *nargs[] = {nf};
  CHECK_ERR(inputs_collect(1, nargs, &l), "nofile.wav: no such file");
  char *dargs[] = {a0, a0};
  CHECK_ERR(inputs_collect(2, dargs, &l), "duplicate utterance id 'b'");
  CHECK_ERR(inputs_collect(0, NULL, &l), "no inputs");

  const char *rm[] = {"spk1/a.flac", "b.wav", "c.wav", "good.tsv", "out.tsv", "noroot.tsv", "notab.tsv",
                      "badcount.tsv", "neg.tsv", "huge.tsv", "three.tsv", "blank.tsv", "empty.tsv",
                      "rootonly.tsv", "badroot.tsv"};
  for (size_t i = 0; i < sizeof rm / sizeof *rm; i++) unlink(tpath(rm[i]));
  rmdir(tpath("spk1"));
  rmdir(g_dir);
  return test_summary("test_inputs");
}
