// Reading configs: YAML files (libyaml document API, for line numbers) and dotted overrides.
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "common/error.h"
#include "common/fileutil.h"
#include "train/config.h"
#include "train/config_keys.h"

typedef struct {
  int key, line;
  int missing;  // fairseq's "?\?\?": must be given later
  cfg_value val;
} cfg_entry;

static int is_null_scalar(const yaml_node_t *n) {
  const char *s = (const char *)n->data.scalar.value;
  return n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && (!*s || !strcmp(s, "~") || !strcmp(s, "null"));
}

static const char *node_text(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }
static int node_line(const yaml_node_t *n) { return (int)n->start_mark.line + 1; }

// Value node -> cfg_value (items point into the document).
static int read_value(yaml_document_t *doc, yaml_node_t *n, int key, cfg_entry *e) {
  const cfg_key *k = &cfg_keys[key];
  e->val.is_list = 0;
  e->val.n = 1;
  if (n->type == YAML_MAPPING_NODE) return hb_fail("expected a value, got a mapping");
  if (n->type == YAML_SCALAR_NODE) {
    if (is_null_scalar(n)) {
      if (k->type == CK_STR) { e->val.items[0] = ""; return 0; }
      if (k->type == CK_SLIST) { e->val.is_list = 1; e->val.n = 0; return 0; }
      return hb_fail("no value given");
    }
    e->val.items[0] = node_text(n);
    if (!strcmp(e->val.items[0], "?\?\?") && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) e->missing = 1;
    return 0;
  }
  e->val.is_list = 1;
  e->val.n = 0;
  for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
    yaml_node_t *item = yaml_document_get_node(doc, *it);
    if (!item || item->type != YAML_SCALAR_NODE) return hb_fail("list entries must be plain values");
    if (e->val.n >= HB_CFG_MAX_LIST) return hb_fail("more than %d list entries", HB_CFG_MAX_LIST);
    e->val.items[e->val.n++] = node_text(item);
  }
  return 0;
}

// Walks the document into entries[] (one per key at most). Returns the count or -1.
static int collect_entries(yaml_document_t *doc, const char *name, cfg_entry *entries) {
  yaml_node_t *root = yaml_document_get_root_node(doc);
  if (!root || (root->type == YAML_SCALAR_NODE && is_null_scalar(root))) return 0;  // empty file
  if (root->type != YAML_MAPPING_NODE)
    return hb_fail("%s:%d: the top level must be a mapping of sections (common:, task:, ...)", name, node_line(root));
  int n = 0;
  for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
    yaml_node_t *sk = yaml_document_get_node(doc, p->key), *sv = yaml_document_get_node(doc, p->value);
    if (sk->type != YAML_SCALAR_NODE) return hb_fail("%s:%d: a section name must be a plain word", name, node_line(sk));
    const char *sec = node_text(sk);
    if (cfg_find_section(sec) < 0)
      return hb_fail("%s:%d: unknown section '%s' (did you mean '%s'?)", name, node_line(sk), sec, cfg_closest(sec, 0));
    if (sv->type == YAML_SCALAR_NODE && is_null_scalar(sv)) continue;  // "topic:" with nothing under it
    if (sv->type != YAML_MAPPING_NODE) return hb_fail("%s:%d: section '%s' must be a mapping of keys", name, node_line(sv), sec);
    for (yaml_node_pair_t *q = sv->data.mapping.pairs.start; q < sv->data.mapping.pairs.top; q++) {
      yaml_node_t *kk = yaml_document_get_node(doc, q->key), *kv = yaml_document_get_node(doc, q->value);
      if (kk->type != YAML_SCALAR_NODE) return hb_fail("%s:%d: section '%s': a key must be a plain word", name, node_line(kk), sec);
      const char *key = node_text(kk);
      int ki = cfg_find_key(sec, key);
      if (ki < 0) {
        char given[160];
        snprintf(given, sizeof given, "%s.%s", sec, key);
        return hb_fail("%s:%d: unknown key '%s' (did you mean '%s'?)", name, node_line(kk), given, cfg_closest(given, 1));
      }
      for (int i = 0; i < n; i++)
        if (entries[i].key == ki)
          return hb_fail("%s:%d: %s.%s given twice (first on line %d)", name, node_line(kk), sec, key, entries[i].line);
      cfg_entry *e = &entries[n];
      memset(e, 0, sizeof *e);
      e->key = ki;
      e->line = node_line(kk);
      if (read_value(doc, kv, ki, e)) return hb_fail_prefix("%s:%d: %s.%s", name, e->line, sec, key);
      n++;
    }
  }
  return n;
}

// "section.key=value" -> key index and value (text points into `assignment` or `buf`).
static int parse_override(const char *assignment, int *key, char *buf, size_t buflen, cfg_value *v) {
  const char *eq = strchr(assignment, '=');
  if (!eq) return hb_fail("override '%s': expected section.key=value", assignment);
  char name[160];
  size_t nl = (size_t)(eq - assignment);
  if (nl >= sizeof name) return hb_fail("override '%s': name too long", assignment);
  memcpy(name, assignment, nl);
  name[nl] = 0;
  char *dot = strchr(name, '.');
  if (!dot) return hb_fail("override '%s': expected section.key=value (did you mean '%s'?)", assignment, cfg_closest(name, 1));
  *dot = 0;
  if (cfg_find_section(name) < 0)
    return hb_fail("override '%s': unknown section '%s' (did you mean '%s'?)", assignment, name, cfg_closest(name, 0));
  *key = cfg_find_key(name, dot + 1);
  *dot = '.';
  if (*key < 0) return hb_fail("override '%s': unknown key '%s' (did you mean '%s'?)", assignment, name, cfg_closest(name, 1));
  const char *val = eq + 1;
  size_t len = strlen(val);
  if (len + 1 > buflen) return hb_fail("override '%s': value too long", assignment);
  memcpy(buf, val, len + 1);
  if (len >= 2 && ((buf[0] == '"' && buf[len - 1] == '"') || (buf[0] == '\'' && buf[len - 1] == '\''))) {
    buf[len - 1] = 0;  // quotes the shell let through
    memmove(buf, buf + 1, len - 1);
  }
  v->is_list = 0;
  v->n = 1;
  v->items[0] = buf;
  return 0;
}

static int apply_override(hb_train_config *c, const char *assignment, int skip_preset) {
  char buf[1024];
  cfg_value v;
  int k = -1;
  if (parse_override(assignment, &k, buf, sizeof buf, &v)) return -1;
  if (skip_preset && (cfg_keys[k].flags & CK_PRESET)) return 0;
  if (cfg_set(c, k, &v)) return hb_fail_prefix("override '%s': %s.%s", assignment, cfg_keys[k].section, cfg_keys[k].key);
  if (!skip_preset && (cfg_keys[k].flags & CK_PRESET)) cfg_apply_preset(c);
  return 0;
}

int train_config_override(hb_train_config *c, const char *assignment) {
  HB_TRY(apply_override(c, assignment, 0));
  return train_config_validate(c);
}

int train_config_load_string(hb_train_config *c, const char *yaml, const char *name, int n_overrides,
                             char *const *overrides) {
  train_config_defaults(c);
  yaml_parser_t parser;
  yaml_document_t doc;
  if (!yaml_parser_initialize(&parser)) return hb_fail("%s: cannot initialise the YAML parser", name);
  yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, strlen(yaml));
  if (!yaml_parser_load(&parser, &doc)) {
    hb_fail("%s:%d: YAML syntax error: %s%s%s", name, (int)parser.problem_mark.line + 1,
            parser.problem ? parser.problem : "unknown", parser.context ? " " : "", parser.context ? parser.context : "");
    yaml_parser_delete(&parser);
    return -1;
  }
  int rc = -1;
  cfg_entry *entries = hb_malloc((size_t)cfg_num_keys * sizeof *entries);
  int n = entries ? collect_entries(&doc, name, entries) : -1;
  if (n < 0) goto done;
  // 1. model.preset (the file's, then the last override's) fills the architecture fields.
  int preset_key = cfg_find_key("model", "preset");
  for (int i = 0; i < n; i++) {
    if (entries[i].key != preset_key) continue;
    if (entries[i].missing) { hb_fail("%s:%d: model.preset cannot be '?\?\?'", name, entries[i].line); goto done; }
    if (cfg_set(c, preset_key, &entries[i].val)) { hb_fail_prefix("%s:%d: model.preset", name, entries[i].line); goto done; }
  }
  for (int i = 0; i < n_overrides; i++) {
    char buf[1024];
    cfg_value v;
    int k = -1;
    if (parse_override(overrides[i], &k, buf, sizeof buf, &v)) goto done;
    if (k == preset_key && cfg_set(c, k, &v)) { hb_fail_prefix("override '%s': model.preset", overrides[i]); goto done; }
  }
  cfg_apply_preset(c);
  // 2. The file's values, 3. the overrides, in order.
  int missing_line[256] = {0};
  if (cfg_num_keys > 256) { hb_fail("internal: too many keys"); goto done; }
  for (int i = 0; i < n; i++) {
    const cfg_key *k = &cfg_keys[entries[i].key];
    if (entries[i].key == preset_key) continue;
    if (entries[i].missing) { missing_line[entries[i].key] = entries[i].line; continue; }
    if (cfg_set(c, entries[i].key, &entries[i].val)) { hb_fail_prefix("%s:%d: %s.%s", name, entries[i].line, k->section, k->key); goto done; }
  }
  for (int i = 0; i < n_overrides; i++) {
    char buf[1024];
    cfg_value v;
    int k = -1;
    if (apply_override(c, overrides[i], 1)) goto done;
    if (parse_override(overrides[i], &k, buf, sizeof buf, &v) == 0) missing_line[k] = 0;
  }
  for (int i = 0; i < cfg_num_keys; i++)
    if (missing_line[i]) {
      hb_fail("%s:%d: %s.%s is '?\?\?' (fairseq's mandatory marker): give it in the file or as an override %s.%s=VALUE",
              name, missing_line[i], cfg_keys[i].section, cfg_keys[i].key, cfg_keys[i].section, cfg_keys[i].key);
      goto done;
    }
  if (train_config_validate(c)) { hb_fail_prefix("%s", name); goto done; }
  rc = 0;
done:
  free(entries);
  yaml_document_delete(&doc);
  yaml_parser_delete(&parser);
  return rc;
}

int train_config_load(hb_train_config *c, const char *path, int n_overrides, char *const *overrides) {
  if (!path) return train_config_load_string(c, "", "(defaults)", n_overrides, overrides);
  char *text = NULL;
  size_t len = 0;
  if (file_read_all(path, &text, &len)) return -1;
  if (strlen(text) != len) {
    free(text);
    return hb_fail("%s: contains a NUL byte (not a YAML text file)", path);
  }
  int rc = train_config_load_string(c, text, path, n_overrides, overrides);
  free(text);
  return rc;
}
