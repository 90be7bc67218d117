// hubert: git-style front end. Library code returns errors; only this file prints them and exits.
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/error.h"

static void print_main_usage(FILE *f) {
  fprintf(f, "hubert.c %s: self-supervised speech representation learning (HuBERT, HuBERTopic)\n\n", HUBERT_VERSION);
  fprintf(f, "usage: hubert COMMAND [options]   (hubert COMMAND --help for its options)\n\ncommands:\n");
  for (int i = 0; i < hb_num_commands; i++) fprintf(f, "  %-12s %s\n", hb_commands[i].name, hb_commands[i].summary);
}

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
    print_main_usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "--version")) { printf("hubert.c %s\n", HUBERT_VERSION); return 0; }
  for (int i = 0; i < hb_num_commands; i++) {
    if (strcmp(argv[1], hb_commands[i].name)) continue;
    hb_clear_error();
    int rc = hb_commands[i].run(&hb_commands[i], argc - 1, argv + 1);
    if (rc < 0) {
      fprintf(stderr, "error: %s\n", hb_errmsg());
      return 1;
    }
    return rc;  // 0, or 1 for --help handled (returned as 0 by commands)
  }
  fprintf(stderr, "hubert: unknown command '%s'\n\n", argv[1]);
  print_main_usage(stderr);
  return 2;
}
