// Minimal JSON: a DOM parser (RFC 8259, UTF-8, \uXXXX escapes incl. surrogate pairs) and a
// streaming writer. Used for config.json, safetensors headers and JSONL logs.
#ifndef HB_JSON_H
#define HB_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;

typedef struct json_value {
  json_type type;
  int boolean;                // JSON_BOOL
  double number;              // JSON_NUMBER
  char *string;               // JSON_STRING (NUL-terminated; may contain no NUL)
  size_t len;                 // JSON_STRING: byte length; JSON_ARRAY/OBJECT: item count
  struct json_value *items;   // JSON_ARRAY / JSON_OBJECT values, in file order
  char **keys;                // JSON_OBJECT keys, parallel to items
} json_value;

// Parses text[0..len). On error returns -1 with "line L, column C: reason" in hb_errmsg().
// Nesting deeper than 256 levels is an error (no stack overflow on hostile input).
int json_parse(const char *text, size_t len, json_value **out);
void json_free(json_value *v);

// Object member lookup (last occurrence wins, as in Python's json); NULL if absent or v not an object.
const json_value *json_get(const json_value *v, const char *key);
// Typed getters: return 0 and set *out if present with the right type (integers must be integral
// and in range); return 1 if absent (out untouched); -1 with an error naming key if wrong type.
int json_get_int(const json_value *obj, const char *key, int64_t *out);
int json_get_double(const json_value *obj, const char *key, double *out);
int json_get_bool(const json_value *obj, const char *key, int *out);
int json_get_string(const json_value *obj, const char *key, const char **out);

// Streaming writer into a growable buffer. Commas and nesting are handled by the writer.
typedef struct {
  char *buf;
  size_t len, cap;
  int depth;
  int first[64];   // 1 while the container at that depth has no item yet
  int after_key;   // a key was just written, the next value needs no comma
  int pretty;      // indent with two spaces per level
  int failed;      // set on allocation failure; json_writer_finish reports it
} json_writer;

void jw_init(json_writer *w, int pretty);
void jw_begin_object(json_writer *w);
void jw_end_object(json_writer *w);
void jw_begin_array(json_writer *w);
void jw_end_array(json_writer *w);
void jw_key(json_writer *w, const char *key);
void jw_string(json_writer *w, const char *s);
void jw_int(json_writer *w, int64_t v);
void jw_double(json_writer *w, double v);   // shortest repr that round-trips ("%.17g" trimmed); NaN/inf -> null
void jw_bool(json_writer *w, int v);
void jw_null(json_writer *w);
// Returns the NUL-terminated text (caller frees) or NULL with hb_errmsg() set.
char *jw_finish(json_writer *w, size_t *len);

#endif
