// Internal to train/config*.c: the key table and the value setter shared by the YAML reader,
// the override parser, the printer and the lister.
#ifndef HB_TRAIN_CONFIG_KEYS_H
#define HB_TRAIN_CONFIG_KEYS_H

#include <stddef.h>

#include "train/config.h"

typedef enum { CK_INT, CK_LONG, CK_DOUBLE, CK_BOOL, CK_STR, CK_ENUM, CK_DLIST, CK_SLIST } cfg_key_type;

enum {
  CK_COMPAT = 1,  // accepted for fairseq compatibility; no effect
  CK_ARCH = 2,    // filled by model.preset before the file's values apply
  CK_PRESET = 4,  // model.preset itself
};

typedef struct {
  const char *section, *key;
  cfg_key_type type;
  size_t offset, size;   // field within hb_train_config, its size in bytes
  const char *def;       // default, as text (parsed by the same setter as the file's values)
  double min, max;       // numeric range (each element of a list)
  const char *choices;   // CK_ENUM: "a|b|c" (stored as the index)
  int flags;
  const char *help;
} cfg_key;

// A value as read: a scalar or a list of scalars (strings; items point into the caller's text).
typedef struct {
  int is_list, n;
  const char *items[HB_CFG_MAX_LIST + 1];
} cfg_value;

extern const cfg_key cfg_keys[];
extern const int cfg_num_keys;
extern const char *const cfg_sections[];
extern const int cfg_num_sections;

int cfg_find_key(const char *section, const char *key);   // index or -1
int cfg_find_section(const char *section);                // index or -1
// The closest valid "section.key" (or section name when keys == 0) to `given`, by edit distance.
const char *cfg_closest(const char *given, int keys);
// Parses `v` into the field of key k (hb_fail without location on error; caller prefixes).
int cfg_set(hb_train_config *c, int k, const cfg_value *v);
// Splits an inline list "[a, b]" / "(a,b)" (quotes stripped) into v, using buf as storage.
int cfg_split_inline(const char *text, char *buf, size_t buflen, cfg_value *v);
// Fills the CK_ARCH fields from the preset stored in c->model.preset.
void cfg_apply_preset(hb_train_config *c);

#endif
