#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

static const char *type_meta(const hb_opt *o) {
  if (o->meta) return o->meta;
  switch (o->type) {
    case HB_OPT_INT: case HB_OPT_LONG: return "N";
    case HB_OPT_FLOAT: case HB_OPT_DOUBLE: return "X";
    case HB_OPT_STR: return "VALUE";
    default: return "";
  }
}

void cli_print_usage(const hb_command *cmd, const hb_opt *opts, void *stream) {
  FILE *f = stream;
  fprintf(f, "usage: hubert %s %s\n\n%s\n", cmd->name, cmd->usage ? cmd->usage : "[options]", cmd->summary);
  fprintf(f, "\noptions:\n");
  for (const hb_opt *o = opts; o && o->name; o++) {
    char left[96];
    int n = 0;
    if (o->short_name) n = snprintf(left, sizeof left, "-%c, ", o->short_name);
    else n = snprintf(left, sizeof left, "    ");
    if (o->type == HB_OPT_FLAG) snprintf(left + n, sizeof left - n, "--%s", o->name);
    else snprintf(left + n, sizeof left - n, "--%s %s", o->name, type_meta(o));
    fprintf(f, "  %-30s %s%s\n", left, o->help, o->required ? " (required)" : "");
  }
  fprintf(f, "  %-30s %s\n", "-h, --help", "show this help");
  if (cmd->details) fprintf(f, "\n%s\n", cmd->details);
}

static int set_value(const hb_opt *o, const char *val) {
  char *end = NULL;
  errno = 0;
  switch (o->type) {
    case HB_OPT_STR: *(const char **)o->dest = val; return 0;
    case HB_OPT_INT: {
      long v = strtol(val, &end, 10);
      if (errno || !*val || *end || v < -2147483647L || v > 2147483647L)
        return hb_fail("--%s: expected an integer, got '%s'", o->name, val);
      *(int *)o->dest = (int)v;
      return 0;
    }
    case HB_OPT_LONG: {
      long v = strtol(val, &end, 10);
      if (errno || !*val || *end) return hb_fail("--%s: expected an integer, got '%s'", o->name, val);
      *(long *)o->dest = v;
      return 0;
    }
    case HB_OPT_FLOAT: case HB_OPT_DOUBLE: {
      double v = strtod(val, &end);
      if (errno || !*val || *end) return hb_fail("--%s: expected a number, got '%s'", o->name, val);
      if (o->type == HB_OPT_FLOAT) *(float *)o->dest = (float)v;
      else *(double *)o->dest = v;
      return 0;
    }
    default: return hb_fail("--%s takes no value", o->name);
  }
}

// Levenshtein distance, for "did you mean" suggestions.
static int edit_distance(const char *a, const char *b) {
  int la = (int)strlen(a), lb = (int)strlen(b);
  if (la > 63 || lb > 63) return 99;
  int d[64][64];
  for (int i = 0; i <= la; i++) d[i][0] = i;
  for (int j = 0; j <= lb; j++) d[0][j] = j;
  for (int i = 1; i <= la; i++)
    for (int j = 1; j <= lb; j++) {
      int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
      if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
      d[i][j] = c;
    }
  return d[la][lb];
}

int cli_parse(const hb_command *cmd, const hb_opt *opts, int argc, char **argv, int *npos, char ***pos) {
  // Positional arguments are compacted in place into argv[1..np]: slot 1 + np is never ahead of
  // the argument being read, so nothing unread is overwritten and nothing is allocated.
  char **positional = argv + 1;
  int np = 0;
  int seen[128] = {0};
  int nopts = 0;
  while (opts && opts[nopts].name) nopts++;
  if (nopts > 128) return hb_fail("internal: too many options");

  int only_positional = 0;
  for (int i = 1; i < argc; i++) {
    char *a = argv[i];
    if (only_positional || a[0] != '-' || a[1] == 0) { positional[np++] = a; continue; }
    if (!strcmp(a, "--")) { only_positional = 1; continue; }
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      cli_print_usage(cmd, opts, stdout);
      return 1;
    }
    const hb_opt *o = NULL;
    const char *inline_val = NULL;
    int idx = -1;
    if (a[1] == '-') {
      const char *name = a + 2;
      const char *eq = strchr(name, '=');
      size_t len = eq ? (size_t)(eq - name) : strlen(name);
      for (int k = 0; k < nopts; k++)
        if (strlen(opts[k].name) == len && !strncmp(opts[k].name, name, len)) { o = &opts[k]; idx = k; break; }
      if (eq) inline_val = eq + 1;
      if (!o) {
        const char *best = NULL;
        int bd = 99;
        char given[64];
        snprintf(given, sizeof given, "%.*s", (int)(len < 63 ? len : 63), name);
        for (int k = 0; k < nopts; k++) {
          int d = edit_distance(given, opts[k].name);
          if (d < bd) { bd = d; best = opts[k].name; }
        }
        if (best && bd <= 3) return hb_fail("hubert %s: unknown option '--%s' (did you mean '--%s'?)", cmd->name, given, best);
        return hb_fail("hubert %s: unknown option '--%s' (see hubert %s --help)", cmd->name, given, cmd->name);
      }
    } else {
      for (int k = 0; k < nopts; k++)
        if (opts[k].short_name == a[1]) { o = &opts[k]; idx = k; break; }
      if (!o || a[2]) return hb_fail("hubert %s: unknown option '%s' (see hubert %s --help)", cmd->name, a, cmd->name);
    }
    if (o->type == HB_OPT_FLAG) {
      if (inline_val) return hb_fail("hubert %s: --%s takes no value", cmd->name, o->name);
      *(int *)o->dest = 1;
    } else {
      const char *val = inline_val;
      if (!val) {
        if (i + 1 >= argc) return hb_fail("hubert %s: --%s needs a value (%s)", cmd->name, o->name, type_meta(o));
        val = argv[++i];
      }
      if (set_value(o, val) != 0) return hb_fail_prefix("hubert %s", cmd->name);
    }
    seen[idx] = 1;
  }
  for (int k = 0; k < nopts; k++)
    if (opts[k].required && !seen[k])
      return hb_fail("hubert %s: --%s is required (see hubert %s --help)", cmd->name, opts[k].name, cmd->name);
  *npos = np;
  *pos = positional;  // points into argv: nothing to free
  return 0;
}
