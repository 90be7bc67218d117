// Command-line parsing driven by one table per subcommand: the same table parses the arguments
// and prints the usage text, so the two can never disagree.
//
//   static const char *out = NULL; static int batch = 1;
//   hb_opt opts[] = {
//     {"out", 'o', HB_OPT_STR, "FILE.h5", "output file (required)", &out, 1},
//     {"batch-size", 0, HB_OPT_INT, "N", "utterances per forward pass", &batch, 0},
//     {0}};
//   int npos; char **pos;
//   int rc = cli_parse(&cmd, opts, argc, argv, &npos, &pos);   // rc: 0 ok, 1 --help shown, -1 error
#ifndef HB_CLI_H
#define HB_CLI_H

typedef enum { HB_OPT_FLAG, HB_OPT_STR, HB_OPT_INT, HB_OPT_LONG, HB_OPT_FLOAT, HB_OPT_DOUBLE } hb_opt_type;

typedef struct {
  const char *name;   // long name, used as --name / --name=value
  char short_name;    // 0 if none
  hb_opt_type type;
  const char *meta;   // value placeholder in usage (NULL for flags)
  const char *help;
  void *dest;         // int* (FLAG, INT), long* (LONG), const char** (STR), float*, double*
  int required;
} hb_opt;

typedef struct hb_command {
  const char *name;
  const char *summary;   // one line, shown by `hubert --help`
  const char *usage;     // positional part, e.g. "[options] INPUT..."
  const char *details;   // free text after the options (may be NULL)
  int (*run)(const struct hb_command *cmd, int argc, char **argv);
} hb_command;

// Parses argv[1..] (argv[0] is the subcommand name). Positional arguments are returned in
// order through *npos/*pos: *pos points into argv (compacted in place), nothing to free. Returns 0 on success, 1 if --help was given
// (usage already printed to stdout), -1 on a usage error (message in hb_errmsg()).
int cli_parse(const hb_command *cmd, const hb_opt *opts, int argc, char **argv, int *npos, char ***pos);
void cli_print_usage(const hb_command *cmd, const hb_opt *opts, void *stream);

// The subcommand table (cli/commands.c).
extern const hb_command hb_commands[];
extern const int hb_num_commands;

#endif
