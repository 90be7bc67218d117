// JSON: round trips, escapes, unicode, number forms, every kind of malformed input, depth limit.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "tests/test_util.h"

static int parse_str(const char *s, json_value **v) { return json_parse(s, strlen(s), v); }

static int expect_error(const char *text, const char *needle) {
  json_value *v = NULL;
  hb_clear_error();
  g_test_checks++;
  if (parse_str(text, &v) == 0) {
    g_test_failures++;
    fprintf(stderr, "FAIL: '%s' parsed, expected error '%s'\n", text, needle);
    json_free(v);
    return 1;
  }
  if (!strstr(hb_errmsg(), needle) || !strstr(hb_errmsg(), "line ")) {
    g_test_failures++;
    fprintf(stderr, "FAIL: '%s': error '%s' does not mention '%s' and a line\n", text, hb_errmsg(), needle);
    return 1;
  }
  printf("  ok: %-24s -> %s\n", text, hb_errmsg());
  return 0;
}

int main(void) {
  json_value *v = NULL;
  const char *doc =
      "{\"a\": 1, \"b\": [true, false, null, -0, 1e-5, 1E+3, 2.5e2, -12.75],\n"
      " \"s\": \"q\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u20ac\\ud83d\\ude00 raw é\", \"o\": {}, \"e\": [],\n"
      " \"a\": 2, \"big\": 9007199254740992, \"neg\": -42}";
  CHECK_OK(parse_str(doc, &v));
  if (v) {
    int64_t i;
    CHECK(json_get_int(v, "a", &i) == 0 && i == 2);   // last occurrence wins
    CHECK(json_get_int(v, "big", &i) == 0 && i == 9007199254740992LL);
    CHECK(json_get_int(v, "neg", &i) == 0 && i == -42);
    CHECK(json_get_int(v, "missing", &i) == 1);
    const json_value *b = json_get(v, "b");
    CHECK(b && b->type == JSON_ARRAY && b->len == 8);
    if (b && b->len == 8) {
      CHECK(b->items[0].type == JSON_BOOL && b->items[0].boolean == 1 && b->items[2].type == JSON_NULL);
      CHECK(b->items[3].number == 0 && signbit(b->items[3].number));
      CHECK(b->items[4].number == 1e-5 && b->items[5].number == 1000 && b->items[6].number == 250 &&
            b->items[7].number == -12.75);
    }
    const char *s;
    CHECK(json_get_string(v, "s", &s) == 0);
    const char *want = "q\"\\/\b\f\n\r\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 raw \xc3\xa9";
    CHECK(s && strcmp(s, want) == 0);
    CHECK_ERR(json_get_int(v, "s", &i), "'s' must be an integer");
    double d;
    CHECK_ERR(json_get_double(v, "b", &d), "'b' must be a number");
    int bo;
    CHECK_ERR(json_get_bool(v, "a", &bo), "'a' must be true or false");
    CHECK_ERR(json_get_string(v, "a", &s), "'a' must be a string");
    CHECK(json_get(v, "o")->type == JSON_OBJECT && json_get(v, "o")->len == 0);

    // writer round trip: write the parsed doc back (compact and pretty), reparse, compare
    for (int pretty = 0; pretty < 2; pretty++) {
      json_writer w;
      jw_init(&w, pretty);
      jw_begin_object(&w);
      jw_key(&w, "s");
      jw_string(&w, want);
      jw_key(&w, "nums");
      jw_begin_array(&w);
      double nums[] = {0.1, 1e-5, -0.0, 3.0, 1e300, 123456789.123, 5e-324, 1.0 / 3.0};
      for (int k = 0; k < 8; k++) jw_double(&w, nums[k]);
      jw_int(&w, INT64_MIN);
      jw_double(&w, NAN);
      jw_end_array(&w);
      jw_key(&w, "empty");
      jw_begin_object(&w);
      jw_end_object(&w);
      jw_key(&w, "t");
      jw_bool(&w, 1);
      jw_key(&w, "n");
      jw_null(&w);
      jw_key(&w, "ctl");
      jw_string(&w, "\x01\x1f");
      jw_end_object(&w);
      size_t len;
      char *txt = jw_finish(&w, &len);
      CHECK(txt != NULL);
      if (!txt) continue;
      if (pretty) printf("%s", txt);
      json_value *r = NULL;
      CHECK_OK(json_parse(txt, len, &r));
      if (r) {
        CHECK(strcmp(json_get(r, "s")->string, want) == 0);
        const json_value *a = json_get(r, "nums");
        int same = a && a->len == 10;
        for (int k = 0; same && k < 8; k++) same = a->items[k].number == nums[k] && !signbit(a->items[k].number) == !signbit(nums[k]);
        CHECK(same);
        CHECK(a && a->len == 10 && a->items[8].number == -9223372036854775808.0 && a->items[9].type == JSON_NULL);
        CHECK(strcmp(json_get(r, "ctl")->string, "\x01\x1f") == 0);
        CHECK(json_get(r, "t")->boolean == 1 && json_get(r, "n")->type == JSON_NULL);
        json_free(r);
      }
      CHECK(pretty || strstr(txt, "\"nums\":[0.1,1e-05,-0.0,3.0,1e+300,") != NULL);
      free(txt);
    }
    json_free(v);
  }
  json_writer w;
  jw_init(&w, 0);
  jw_begin_array(&w);
  CHECK(jw_finish(&w, NULL) == NULL && strstr(hb_errmsg(), "unclosed"));

  // scalars at top level, whitespace, BOM
  CHECK_OK(parse_str(" \t\r\n 42 \n", &v));
  CHECK(v && v->type == JSON_NUMBER && v->number == 42);
  json_free(v);
  CHECK_OK(parse_str("\xEF\xBB\xBF\"x\"", &v));
  json_free(v);

  // malformed input, each with a specific message and a position
  expect_error("", "unexpected end of input");
  expect_error("   ", "unexpected end of input");
  expect_error("{", "unterminated object");
  expect_error("[1, 2", "unterminated array");
  expect_error("[1, 2,]", "trailing comma in array");
  expect_error("{\"a\": 1,}", "trailing comma in object");
  expect_error("{a: 1}", "expected a string key");
  expect_error("{\"a\" 1}", "expected ':'");
  expect_error("[1 2]", "expected ',' or ']'");
  expect_error("{\"a\": 1 \"b\": 2}", "expected ',' or '}'");
  expect_error("01", "leading zero");
  expect_error("1.", "digit expected after '.'");
  expect_error(".5", "unexpected token '.5'");
  expect_error("1e", "digit expected in exponent");
  expect_error("+1", "unexpected token '+1'");
  expect_error("-", "invalid number");
  expect_error("1e999", "number out of range");
  expect_error("NaN", "unexpected token 'NaN'");
  expect_error("Infinity", "unexpected token");
  expect_error("tru", "unexpected token 'tru'");
  expect_error("nul", "unexpected token");
  expect_error("\"abc", "unterminated string");
  expect_error("\"a\tb\"", "control character in string");
  expect_error("\"\\x\"", "invalid escape");
  expect_error("\"\\u12G4\"", "invalid \\u escape");
  expect_error("\"\\ud83d\"", "unpaired UTF-16 surrogate");
  expect_error("\"\\ude00\"", "unpaired UTF-16 surrogate");
  expect_error("\"\\u0000\"", "NUL");
  expect_error("\"\xff\"", "invalid UTF-8");
  expect_error("\"\xc0\xaf\"", "invalid UTF-8");      // overlong '/'
  expect_error("\"\xed\xa0\x80\"", "invalid UTF-8");  // encoded surrogate
  expect_error("'single'", "unexpected token");
  expect_error("[1] [2]", "unexpected content after the JSON value");
  expect_error("{\"a\":1}}", "unexpected content");
  expect_error("[1,\n 2,\n x]", "line 3, column 2");
  expect_error("/* c */ 1", "unexpected token");

  // nesting: 256 levels parse, 257 and a hostile 100000 fail cleanly
  size_t deep = 100000;
  char *t = malloc(2 * deep + 1);
  for (int levels = 255; levels <= 257; levels++) {
    for (int k = 0; k < levels; k++) t[k] = '[';
    for (int k = 0; k < levels; k++) t[levels + k] = ']';
    hb_clear_error();
    int rc = json_parse(t, 2 * (size_t)levels, &v);
    printf("  %d nested arrays -> %s\n", levels, rc ? hb_errmsg() : "ok");
    CHECK((rc == 0) == (levels <= 256));
    if (rc == 0) json_free(v);
  }
  memset(t, '[', deep);
  memset(t + deep, ']', deep);
  CHECK(json_parse(t, 2 * deep, &v) != 0 && strstr(hb_errmsg(), "nesting deeper than 256"));
  memset(t, '[', deep);
  CHECK(json_parse(t, deep, &v) != 0);
  free(t);
  return test_summary("test_json");
}
