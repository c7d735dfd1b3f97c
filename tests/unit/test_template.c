/* Unit tests for engine/template.c: the expression language, rendering,
 * checking with its offsets and messages, and the ref callback. */
#ifndef _GNU_SOURCE
#define _POSIX_C_SOURCE 200809L /* setenv, unsetenv */
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/template.h"

static const char scope_json[] =
    "{"
    " \"params\": {\"release\": \"1.4.0\", \"replicas\": 3, \"ratio\": 0.5,"
    "   \"list\": [10, 20, {\"k\": \"v\"}], \"obj\": {\"a\": 1},"
    "   \"empty\": \"\", \"nil\": null, \"name-with-dash\": \"d\","
    "   \"emptylist\": [], \"emptyobj\": {}, \"zero\": 0, \"no\": false},"
    " \"vars\": {\"base_port\": 18000, \"host\": \"localhost\"},"
    " \"secrets\": {\"JWT_SECRET\": \"s3cr3t\"},"
    " \"states\": {\"build\": {\"output\": {\"tag\": \"v1\"}},"
    "              \"db-setup\": {\"output\": {\"from_version\": 7}}},"
    " \"run\": {\"id\": \"r-123\", \"dir\": \"/tmp/run\"},"
    " \"item\": {\"name\": \"api\", \"port\": 8080},"
    " \"self\": {\"name\": \"deploy\"}"
    "}";

static json_t *scope;

static int group_setup(void **state)
{
  (void)state;
  scope = json_loads(scope_json, 0, NULL);
  return scope ? 0 : -1;
}

static int group_teardown(void **state)
{
  (void)state;
  json_decref(scope);
  return 0;
}

/* ---- helpers ----------------------------------------------------------- */

/* Renders tpl against scope and compares with the JSON text want, types
 * included (json_equal tells 1 from 1.0). */
#define RENDERS(tpl, want) renders(scope, (tpl), (want), __LINE__)
static void renders(json_t *sc, const char *tpl, const char *want, int line)
{
  struct cairn_error err = { 0 };
  json_error_t jerr;
  json_t *got = NULL;
  json_t *exp = json_loads(want, JSON_DECODE_ANY, &jerr);
  int rc;

  if (exp == NULL)
    fail_msg("line %d: bad expected JSON %s: %s", line, want, jerr.text);
  rc = engine_template_render_string(tpl, sc, &got, &err);
  if (rc != 0) {
    json_decref(exp);
    fail_msg("line %d: %s: rc %d: %s", line, tpl, rc, err.msg);
  }
  if (!json_equal(got, exp)) {
    char *g = json_dumps(got, JSON_ENCODE_ANY);
    char *w = json_dumps(exp, JSON_ENCODE_ANY);

    print_error("line %d: %s\n  got  %s (type %d)\n  want %s (type %d)\n",
                line, tpl, g, json_typeof(got), w, json_typeof(exp));
    free(g);
    free(w);
    json_decref(got);
    json_decref(exp);
    fail();
  }
  json_decref(got);
  json_decref(exp);
}

/* Rendering tpl fails with CAIRN_E_TEMPLATE and exactly msg. */
/* The hints of two syntax errors, as engine/template.c words them. */
#define AFTER_HINT " (hint: write a literal or a reference after it, or " \
                   "remove it)"
#define UNTERMINATED "unterminated '{{' (hint: end it with '}}')"

#define RENDER_FAILS(tpl, msg) render_fails(scope, (tpl), (msg), __LINE__)
static void render_fails(json_t *sc, const char *tpl, const char *msg,
                         int line)
{
  struct cairn_error err = { 0 };
  json_t *got = (json_t *)0x1;
  int rc = engine_template_render_string(tpl, sc, &got, &err);

  if (rc == 0) {
    char *g = json_dumps(got, JSON_ENCODE_ANY);
    print_error("line %d: %s rendered %s\n", line, tpl, g);
    free(g);
    json_decref(got);
    fail();
  }
  if (rc != CAIRN_E_TEMPLATE || strcmp(err.msg, msg) != 0)
    fail_msg("line %d: %s\n  got  %d '%s'\n  want %d '%s'", line, tpl, rc,
             err.msg, CAIRN_E_TEMPLATE, msg);
  assert_int_equal(err.code, CAIRN_E_TEMPLATE);
  assert_null(got);
}

/* Checking tpl fails at offset with exactly msg. */
#define CHECK_FAILS(tpl, off, msg) check_fails((tpl), (off), (msg), __LINE__)
static void check_fails(const char *tpl, size_t off, const char *msg, int line)
{
  struct cairn_error err = { 0 };
  size_t got = 9999;
  int rc = engine_template_check(tpl, NULL, NULL, &got, &err);

  if (rc != CAIRN_E_TEMPLATE || got != off || strcmp(err.msg, msg) != 0)
    fail_msg("line %d: %s\n  got  %d at %zu '%s'\n  want %d at %zu '%s'",
             line, tpl, rc, got, err.msg, CAIRN_E_TEMPLATE, off, msg);
}

#define EXPR_FAILS(expr, off, msg) expr_fails((expr), (off), (msg), __LINE__)
static void expr_fails(const char *expr, size_t off, const char *msg, int line)
{
  struct cairn_error err = { 0 };
  size_t got = 9999;
  int rc = engine_template_check_expr(expr, NULL, NULL, &got, &err);

  if (rc != CAIRN_E_TEMPLATE || got != off || strcmp(err.msg, msg) != 0)
    fail_msg("line %d: %s\n  got  %d at %zu '%s'\n  want %d at %zu '%s'",
             line, expr, rc, got, err.msg, CAIRN_E_TEMPLATE, off, msg);
}

#define TRUTH(expr, want) truth((expr), (want), __LINE__)
static void truth(const char *expr, int want, int line)
{
  struct cairn_error err = { 0 };
  int got = -1;
  int rc = engine_template_eval_bool(expr, scope, &got, &err);

  if (rc != 0)
    fail_msg("line %d: %s: rc %d: %s", line, expr, rc, err.msg);
  if (got != want)
    fail_msg("line %d: %s is %d, want %d", line, expr, got, want);
}

/* ---- arithmetic -------------------------------------------------------- */

static void test_integer_arithmetic(void **state)
{
  (void)state;
  RENDERS("{{ 1 + 2 }}", "3");
  RENDERS("{{ 7 - 10 }}", "-3");
  RENDERS("{{ 6 * 7 }}", "42");
  RENDERS("{{ 8 / 2 }}", "4");      /* divides exactly: stays an integer */
  RENDERS("{{ 7 / 2 }}", "3.5");    /* does not: a real */
  RENDERS("{{ -7 / 2 }}", "-3.5");
  RENDERS("{{ 7 % 3 }}", "1");
  RENDERS("{{ -7 % 3 }}", "-1");    /* C's sign rule */
  RENDERS("{{ 0 - 5 }}", "-5");
  RENDERS("{{ -5 }}", "-5");
  RENDERS("{{ - -5 }}", "5");
  RENDERS("{{ --5 }}", "5");
  RENDERS("{{ 1+2 }}", "3");        /* no spaces needed */
  RENDERS("{{ params.replicas * 2 }}", "6");
  RENDERS("{{ vars.base_port + 32 }}", "18032");
}

static void test_precedence(void **state)
{
  (void)state;
  RENDERS("{{ 1 + 2 * 3 }}", "7");
  RENDERS("{{ (1 + 2) * 3 }}", "9");
  RENDERS("{{ 2 * 3 - 4 / 2 }}", "4");
  RENDERS("{{ 10 - 4 - 3 }}", "3");       /* left-associative */
  RENDERS("{{ 24 / 4 / 2 }}", "3");
  RENDERS("{{ 2 + 10 % 4 }}", "4");       /* % binds like * */
  RENDERS("{{ -2 * 3 }}", "-6");
  RENDERS("{{ -(2 + 3) * 2 }}", "-10");   /* unary binds tighter than * */
  RENDERS("{{ 1 + 2 == 3 }}", "true");    /* arithmetic before == */
  RENDERS("{{ 2 * 3 > 5 }}", "true");
  RENDERS("{{ not 1 == 2 }}", "true");    /* not (1 == 2) */
  RENDERS("{{ not true and false }}", "false");   /* (not true) and false */
  RENDERS("{{ not false and false }}", "false");
  RENDERS("{{ true or false and false }}", "true"); /* and before or */
  RENDERS("{{ (true or false) and false }}", "false");
  RENDERS("{{ false and true or true }}", "true");
  RENDERS("{{ 1 < 2 and 3 < 4 }}", "true");
  RENDERS("{{ ((((1)))) }}", "1");
  RENDERS("{{ 'a' + 1 + 2 }}", "\"a12\"");  /* left to right */
  RENDERS("{{ 1 + 2 + 'a' }}", "\"3a\"");
  RENDERS("{{ 'a' + (1 + 2) }}", "\"a3\"");
}

static void test_real_arithmetic(void **state)
{
  (void)state;
  RENDERS("{{ 1.5 + 1 }}", "2.5");
  RENDERS("{{ 1 + 1.5 }}", "2.5");
  RENDERS("{{ 2 * 0.5 }}", "1.0");   /* a real even when whole */
  RENDERS("{{ 3.0 - 1 }}", "2.0");
  RENDERS("{{ 1.0 / 4 }}", "0.25");
  RENDERS("{{ 4 / 2.0 }}", "2.0");
  RENDERS("{{ -0.5 }}", "-0.5");
  RENDERS("{{ 1e3 }}", "1000.0");
  RENDERS("{{ 2.5e-1 }}", "0.25");
  RENDERS("{{ params.ratio * params.replicas }}", "1.5");
  RENDERS("{{ 0.1 + 0.2 }}x", "\"0.30000000000000004x\"");
  RENDERS("{{ 0.5 }}x", "\"0.5x\"");
  RENDERS("{{ 2.0 }}x", "\"2.0x\"");
  RENDERS("{{ 1e20 }}x", "\"1e+20x\"");
  RENDERS("{{ 1 / 3 }}x", "\"0.3333333333333333x\"");
}

static void test_overflow(void **state)
{
  (void)state;
  RENDERS("{{ 9223372036854775807 }}", "9223372036854775807");
  RENDER_FAILS("{{ 9223372036854775807 + 1 }}", "integer overflow in '+'");
  RENDER_FAILS("{{ -9223372036854775807 - 2 }}", "integer overflow in '-'");
  RENDER_FAILS("{{ 4611686018427387904 * 2 }}", "integer overflow in '*'");
  RENDER_FAILS("{{ -(-9223372036854775807 - 1) }}", "integer overflow in '-'");
  RENDER_FAILS("{{ (-9223372036854775807 - 1) / -1 }}",
               "integer overflow in '/'");
  RENDERS("{{ (-9223372036854775807 - 1) % -1 }}", "0");
  RENDER_FAILS("{{ 1e308 * 10 }}", "real overflow in '*'");
  RENDER_FAILS("{{ 9223372036854775808 }}",
               "integer '9223372036854775808' is too large");
  CHECK_FAILS("x {{ 99999999999999999999 }}", 5,
              "integer '99999999999999999999' is too large");
  CHECK_FAILS("{{ 1e999 }}", 3, "number '1e999' is out of range");
}

static void test_division_by_zero(void **state)
{
  (void)state;
  RENDER_FAILS("{{ 1 / 0 }}", "division by zero");
  RENDER_FAILS("{{ 1 % 0 }}", "division by zero");
  RENDER_FAILS("{{ 1.5 / 0 }}", "division by zero");
  RENDER_FAILS("{{ 1 / 0.0 }}", "division by zero");
  RENDER_FAILS("{{ params.replicas / (params.replicas - 3) }}",
               "division by zero");
}

static void test_type_errors(void **state)
{
  (void)state;
  RENDER_FAILS("{{ 5.5 % 2 }}", "'%' needs integers, got a real and an integer");
  RENDER_FAILS("{{ true + 1 }}",
               "'+' needs numbers or a string, got a boolean and an integer");
  RENDER_FAILS("{{ 'a' - 1 }}", "'-' needs numbers, got a string and an integer");
  RENDER_FAILS("{{ params.list * 2 }}",
               "'*' needs numbers, got an array and an integer");
  RENDER_FAILS("{{ 1 / null }}", "'/' needs numbers, got an integer and null");
  RENDER_FAILS("{{ -'a' }}", "'-' needs a number, got a string");
  RENDER_FAILS("{{ 'a' < 1 }}",
               "'<' needs two numbers or two strings, got a string and an integer");
  RENDER_FAILS("{{ params.obj >= params.obj }}",
               "'>=' needs two numbers or two strings, got an object and an object");
}

static void test_concatenation(void **state)
{
  (void)state;
  RENDERS("{{ 'a' + 'b' }}", "\"ab\"");
  RENDERS("{{ 'v' + 1 }}", "\"v1\"");
  RENDERS("{{ 1 + 'v' }}", "\"1v\"");
  RENDERS("{{ 'x' + 1.5 }}", "\"x1.5\"");
  RENDERS("{{ 'x' + 2.0 }}", "\"x2.0\"");
  RENDERS("{{ 'x' + true }}", "\"xtrue\"");
  RENDERS("{{ 'x' + null }}", "\"x\"");
  RENDERS("{{ 'x' + params.list }}", "\"x[10,20,{\\\"k\\\":\\\"v\\\"}]\"");
  RENDERS("{{ params.obj + '' }}", "\"{\\\"a\\\":1}\"");
  RENDERS("{{ params.release + '-' + run.id }}", "\"1.4.0-r-123\"");
  RENDERS("{{ \"double\" + 'single' }}", "\"doublesingle\"");
  RENDERS("{{ 'it\\'s' + \" \\\"q\\\"\\n\\t\\\\\" }}",
          "\"it's \\\"q\\\"\\n\\t\\\\\"");
  RENDERS("{{ 'a\"b' }}", "\"a\\\"b\"");
  RENDERS("{{ 'h\xc3\xa9' + 1 }}", "\"h\\u00e91\"");
}

static void test_comparisons(void **state)
{
  (void)state;
  RENDERS("{{ 1 < 2 }}", "true");
  RENDERS("{{ 2 < 1 }}", "false");
  RENDERS("{{ 2 <= 2 }}", "true");
  RENDERS("{{ 3 <= 2 }}", "false");
  RENDERS("{{ 3 > 2 }}", "true");
  RENDERS("{{ 2 > 2 }}", "false");
  RENDERS("{{ 2 >= 3 }}", "false");
  RENDERS("{{ 3 >= 3 }}", "true");
  RENDERS("{{ 1.5 < 2 }}", "true");
  RENDERS("{{ 2 < 1.5 }}", "false");
  RENDERS("{{ 1 == 1.0 }}", "true");  /* numbers compare numerically */
  RENDERS("{{ 1 != 1.0 }}", "false");
  RENDERS("{{ 1 != 2 }}", "true");
  RENDERS("{{ 9223372036854775807 > 9223372036854775806 }}", "true");
  RENDERS("{{ 'a' < 'b' }}", "true");
  RENDERS("{{ 'abc' < 'abd' }}", "true");
  RENDERS("{{ 'ab' < 'abc' }}", "true");
  RENDERS("{{ 'abc' <= 'ab' }}", "false");
  RENDERS("{{ 'B' < 'a' }}", "true");  /* bytes, as strcmp */
  RENDERS("{{ '10' < '9' }}", "true");
  RENDERS("{{ 'b' >= 'b' }}", "true");
  RENDERS("{{ 'a' == 'a' }}", "true");
  RENDERS("{{ 'a' == 'b' }}", "false");
  RENDERS("{{ '1' == 1 }}", "false");
  RENDERS("{{ null == null }}", "true");
  RENDERS("{{ params.nil == null }}", "true");
  RENDERS("{{ params.obj == params.obj }}", "true");
  RENDERS("{{ params.list == params.list }}", "true");
  RENDERS("{{ params.list != params.obj }}", "true");
  RENDERS("{{ true == true }}", "true");
  RENDERS("{{ true != false }}", "true");
  RENDERS("{{ params.release == '1.4.0' }}", "true");
}

static void test_and_or_not(void **state)
{
  (void)state;
  RENDERS("{{ true and true }}", "true");
  RENDERS("{{ true and false }}", "false");
  RENDERS("{{ false or true }}", "true");
  RENDERS("{{ false or false }}", "false");
  RENDERS("{{ 1 and 'x' }}", "true");    /* a boolean, not 'x' */
  RENDERS("{{ 0 or '' }}", "false");
  RENDERS("{{ 'a' or 0 }}", "true");
  RENDERS("{{ not 0 }}", "true");
  RENDERS("{{ not 'a' }}", "false");
  RENDERS("{{ not not 'a' }}", "true");
  RENDERS("{{ not params.emptylist }}", "true");
  /* short-circuit: the right side is not evaluated */
  RENDERS("{{ false and states.nope.output.x }}", "false");
  RENDERS("{{ true or states.nope.output.x }}", "true");
  RENDER_FAILS("{{ true and states.nope.output.x }}",
               "states.nope.output.x is not set");
  RENDER_FAILS("{{ false or states.nope.output.x }}",
               "states.nope.output.x is not set");
}

static void test_truthiness(void **state)
{
  (void)state;
  TRUTH("false", 0);
  TRUTH("null", 0);
  TRUTH("0", 0);
  TRUTH("0.0", 0);
  TRUTH("''", 0);
  TRUTH("params.empty", 0);
  TRUTH("params.emptylist", 0);
  TRUTH("params.emptyobj", 0);
  TRUTH("params.zero", 0);
  TRUTH("params.nil", 0);
  TRUTH("params.no", 0);
  TRUTH("true", 1);
  TRUTH("1", 1);
  TRUTH("-1", 1);
  TRUTH("0.5", 1);
  TRUTH("'x'", 1);
  TRUTH("'0'", 1);      /* a non-empty string, whatever it says */
  TRUTH("'false'", 1);
  TRUTH("' '", 1);
  TRUTH("params.list", 1);
  TRUTH("params.obj", 1);
}

/* ---- rendering --------------------------------------------------------- */

static void test_typed_render(void **state)
{
  struct cairn_error err = { 0 };
  json_t *got = NULL;

  (void)state;
  RENDERS("{{ params.replicas }}", "3");
  RENDERS("{{params.replicas}}", "3");
  RENDERS("{{   params.replicas\t }}", "3");
  RENDERS("{{ params.ratio }}", "0.5");
  RENDERS("{{ params.list }}", "[10, 20, {\"k\": \"v\"}]");
  RENDERS("{{ params.obj }}", "{\"a\": 1}");
  RENDERS("{{ params.nil }}", "null");
  RENDERS("{{ true }}", "true");
  RENDERS("{{ 'x' }}", "\"x\"");
  RENDERS("{{ params.list[1] }}", "20");
  RENDERS("{{ secrets }}", "{\"JWT_SECRET\": \"s3cr3t\"}");
  /* anything outside the braces makes a string */
  RENDERS(" {{ params.replicas }}", "\" 3\"");
  RENDERS("{{ params.replicas }} ", "\"3 \"");
  RENDERS("{{ params.replicas }}{{ params.replicas }}", "\"33\"");

  /* the value is the caller's: changing it leaves the scope alone */
  assert_int_equal(engine_template_render_string("{{ params.list }}", scope,
                                                 &got, &err), 0);
  assert_true(json_is_array(got));
  assert_int_equal(json_array_append_new(got, json_integer(4)), 0);
  assert_int_equal(json_array_size(json_object_get(
                       json_object_get(scope, "params"), "list")), 3);
  json_decref(got);
}

static void test_interpolation(void **state)
{
  (void)state;
  RENDERS("http://127.0.0.1:{{ vars.base_port }}/health",
          "\"http://127.0.0.1:18000/health\"");
  RENDERS("{{ run.dir }}/.env", "\"/tmp/run/.env\"");
  RENDERS("n={{ params.nil }}.", "\"n=.\"");
  RENDERS("{{ params.ratio }}s", "\"0.5s\"");
  RENDERS("{{ true }}!", "\"true!\"");
  RENDERS("{{ false }}!", "\"false!\"");
  RENDERS("{{ params.list }} ", "\"[10,20,{\\\"k\\\":\\\"v\\\"}] \"");
  RENDERS("{{ params.obj }}/", "\"{\\\"a\\\":1}/\"");
  RENDERS("a{{ 1 }}b{{ 'c' }}d{{ 2 + 3 }}e", "\"a1bcd5e\"");
  RENDERS("{{ params.release }}-{{ run.id }}", "\"1.4.0-r-123\"");
  /* no braces: the text as it is */
  RENDERS("plain }} text {", "\"plain }} text {\"");
  RENDERS("", "\"\"");
  RENDERS("{", "\"{\"");
  /* writing braces literally */
  RENDERS("{{ '{{' }} literal", "\"{{ literal\"");
  RENDERS("{{ '}}' }}x", "\"}}x\"");
  RENDERS("{{ '{{' }}", "\"{{\"");
  RENDERS("{{ '' }}{{ '' }}", "\"\"");
  RENDERS("caf\xc3\xa9 {{ 1 }}", "\"caf\\u00e9 1\"");
}

static void test_deep_render(void **state)
{
  struct cairn_error err = { 0 };
  json_t *in = json_loads(
      "{\"url\": \"http://{{ vars.host }}:{{ vars.base_port }}\","
      " \"n\": \"{{ params.replicas }}\","
      " \"list\": [\"{{ run.id }}\", 5, 1.5, true, null,"
      "            {\"{{ k }}\": \"{{ item.name }}\"}, [\"{{ params.list }}\"]],"
      " \"plain\": \"x\"}", 0, NULL);
  json_t *want = json_loads(
      "{\"url\": \"http://localhost:18000\","
      " \"n\": 3,"
      " \"list\": [\"r-123\", 5, 1.5, true, null,"
      "            {\"{{ k }}\": \"api\"}, [[10, 20, {\"k\": \"v\"}]]],"
      " \"plain\": \"x\"}", 0, NULL);
  json_t *before = json_deep_copy(in);
  json_t *got = NULL;

  (void)state;
  assert_non_null(in);
  assert_non_null(want);
  assert_int_equal(engine_template_render(in, scope, &got, &err), 0);
  assert_true(json_equal(got, want));
  assert_true(got != in);
  assert_true(json_equal(in, before)); /* the input is not changed */
  /* a new value: changing it leaves the input alone */
  assert_int_equal(json_object_set_new(
                       json_array_get(json_object_get(got, "list"), 5),
                       "added", json_true()), 0);
  assert_true(json_equal(in, before));
  json_decref(got);

  /* an error anywhere inside is the whole result */
  got = (json_t *)0x1;
  assert_int_equal(json_array_append_new(json_object_get(in, "list"),
                                         json_string("{{ states.x.output.y }}")),
                   0);
  assert_int_equal(engine_template_render(in, scope, &got, &err),
                   CAIRN_E_TEMPLATE);
  assert_string_equal(err.msg, "states.x.output.y is not set");
  assert_null(got);

  /* scalars render to themselves */
  json_decref(in);
  in = json_integer(5);
  assert_int_equal(engine_template_render(in, scope, &got, &err), 0);
  assert_true(json_equal(got, in));
  json_decref(got);

  json_decref(in);
  json_decref(want);
  json_decref(before);
}

/* The shared rendering: what holds no template is the input's own,
 * what does is new, and the result equals the copying rendering's. */
static void test_shared_render(void **state)
{
  struct cairn_error err = { 0 };
  json_t *in = json_loads(
      "{\"argv\": [\"/bin/echo\", \"{{ params.release }}\"],"
      " \"env\": {\"A\": \"x\", \"B\": [1, 2]},"
      " \"n\": 3, \"url\": \"http://{{ vars.host }}\"}", 0, NULL);
  json_t *before = json_deep_copy(in), *got = NULL, *want = NULL;
  json_t *plain = json_loads("{\"argv\": [\"/bin/true\"], \"n\": 1}", 0,
                             NULL);

  (void)state;
  assert_non_null(in);
  assert_int_equal(engine_template_render_shared(in, scope, &got, &err), 0);
  assert_int_equal(engine_template_render(in, scope, &want, &err), 0);
  assert_true(json_equal(got, want));
  assert_true(got != in);
  assert_true(json_equal(in, before));
  /* the parts without a template are the input's own */
  assert_ptr_equal(json_object_get(got, "env"), json_object_get(in, "env"));
  assert_ptr_equal(json_array_get(json_object_get(got, "argv"), 0),
                   json_array_get(json_object_get(in, "argv"), 0));
  assert_true(json_object_get(got, "argv") != json_object_get(in, "argv"));
  json_decref(got);
  json_decref(want);

  /* nothing to render: the value itself */
  assert_int_equal(engine_template_render_shared(plain, scope, &got, &err), 0);
  assert_ptr_equal(got, plain);
  json_decref(got);

  /* an error anywhere inside is the whole result */
  assert_int_equal(json_array_append_new(json_object_get(plain, "argv"),
                                         json_string("{{ states.x.output.y }}")),
                   0);
  got = (json_t *)0x1;
  assert_int_equal(engine_template_render_shared(plain, scope, &got, &err),
                   CAIRN_E_TEMPLATE);
  assert_null(got);
  json_decref(plain);
  json_decref(in);
  json_decref(before);
}

static void test_roots(void **state)
{
  (void)state;
  RENDERS("{{ params.release }}", "\"1.4.0\"");
  RENDERS("{{ vars.host }}", "\"localhost\"");
  RENDERS("{{ secrets.JWT_SECRET }}", "\"s3cr3t\"");
  RENDERS("{{ states.build.output.tag }}", "\"v1\"");
  RENDERS("{{ states.db-setup.output.from_version }}", "7");
  RENDERS("{{ run.id }}", "\"r-123\"");
  RENDERS("{{ run.dir }}", "\"/tmp/run\"");
  RENDERS("{{ item.name }}", "\"api\"");
  RENDERS("{{ item.port + 1 }}", "8081");
  RENDERS("{{ self.name }}", "\"deploy\"");
  RENDERS("{{ params.list[2].k }}", "\"v\"");
  RENDER_FAILS("{{ params['list'] }}", "expected an index after '['");
}

static void test_names_with_dashes(void **state)
{
  (void)state;
  RENDERS("{{ params.name-with-dash }}", "\"d\"");
  RENDERS("{{ params.replicas - 1 }}", "2");
  RENDERS("{{ params.replicas- 1 }}", "2"); /* a name never ends in '-' */
  RENDER_FAILS("{{ params.replicas-1 }}", "params.replicas-1 is not set");
}

static void test_env(void **state)
{
  (void)state;
  assert_int_equal(setenv("CAIRN_TPL_TEST", "hello", 1), 0);
  RENDERS("{{ env.CAIRN_TPL_TEST }}", "\"hello\"");
  RENDERS("[{{ env.CAIRN_TPL_TEST }}]", "\"[hello]\"");
  assert_int_equal(setenv("CAIRN_TPL_TEST", "42", 1), 0);
  RENDERS("{{ env.CAIRN_TPL_TEST }}", "\"42\""); /* always a string */
  assert_int_equal(unsetenv("CAIRN_TPL_TEST"), 0);
  RENDER_FAILS("{{ env.CAIRN_TPL_TEST }}", "env.CAIRN_TPL_TEST is not set");
  RENDER_FAILS("x {{ env.HOME_X_CAIRN }}", "env.HOME_X_CAIRN is not set");
}

static void test_missing_references(void **state)
{
  json_t *empty = json_object();

  (void)state;
  RENDER_FAILS("{{ states.build.output.image }}",
               "states.build.output.image is not set");
  RENDER_FAILS("image: {{ states.build.output.image }}",
               "states.build.output.image is not set");
  RENDER_FAILS("{{ states.nope.output.x }}", "states.nope.output.x is not set");
  RENDER_FAILS("{{ params.missing }}", "params.missing is not set");
  RENDER_FAILS("{{ params.list[5] }}",
               "params.list[5] is not set (params.list has 3 items)");
  RENDER_FAILS("{{ params.list[2].z }}", "params.list[2].z is not set");
  RENDER_FAILS("{{ params.release.major }}",
               "params.release.major is not set (params.release is a string)");
  RENDER_FAILS("{{ params.obj[0] }}",
               "params.obj[0] is not set (params.obj is an object)");
  RENDER_FAILS("{{ params.nil.x }}",
               "params.nil.x is not set (params.nil is null)");
  RENDER_FAILS("{{ params.list.x }}",
               "params.list.x is not set (params.list is an array)");
  /* a scope without the root at all */
  render_fails(empty, "{{ states.build.output.image }}",
               "states.build.output.image is not set", __LINE__);
  render_fails(empty, "{{ item }}", "item is not set", __LINE__);
  render_fails(NULL, "{{ run.id }}", "run.id is not set", __LINE__);
  renders(NULL, "{{ 1 + 1 }}", "2", __LINE__);
  json_decref(empty);
}

/* ---- syntax ------------------------------------------------------------ */

static void test_syntax_errors(void **state)
{
  char deep[1024];
  size_t n = 0;

  (void)state;
  CHECK_FAILS("{{ params.x + }}", 14, "expected a value after \'+\'" AFTER_HINT);
  CHECK_FAILS("{{ params.x * }}", 14, "expected a value after \'*\'" AFTER_HINT);
  CHECK_FAILS("{{ params.x == }}", 15, "expected a value after \'==\'" AFTER_HINT);
  CHECK_FAILS("{{ params.x and }}", 16, "expected a value after \'and\'" AFTER_HINT);
  CHECK_FAILS("{{ - }}", 5, "expected a value after \'-\'" AFTER_HINT);
  CHECK_FAILS("{{ not }}", 7, "expected a value after \'not\'" AFTER_HINT);
  CHECK_FAILS("{{ ( }}", 5, "expected a value after \'(\'" AFTER_HINT);
  CHECK_FAILS("abc {{ params.x", 4, UNTERMINATED);
  CHECK_FAILS("{{ params.x + ", 0, UNTERMINATED);
  CHECK_FAILS("{{ params.", 0, UNTERMINATED);
  CHECK_FAILS("{{ (1", 0, UNTERMINATED);
  CHECK_FAILS("{{", 0, UNTERMINATED);
  CHECK_FAILS("ok {{ 1 }} {{ 2 }", 16, "unexpected '}'");
  CHECK_FAILS("{{ }}", 0, "empty expression");
  CHECK_FAILS("x {{}}", 2, "empty expression");
  CHECK_FAILS("{{ ) }}", 3, "unexpected ')'");
  CHECK_FAILS("{{ params.x) }}", 11, "unexpected ')'");
  CHECK_FAILS("{{ (1 + 2 }}", 10, "expected ')'");
  CHECK_FAILS("{{ foo }}", 3,
              "unknown name 'foo' (hint: use params.foo, vars.foo, env.FOO, "
              "secrets.FOO, states.NAME.output.KEY, run.id or run.dir)");
  CHECK_FAILS("{{ 1 + Release }}", 7,
              "unknown name 'Release' (hint: use params.Release, "
              "vars.Release, env.RELEASE, secrets.RELEASE, "
              "states.NAME.output.KEY, run.id or run.dir)");
  CHECK_FAILS("{{ params. }}", 10, "expected a name after '.'");
  CHECK_FAILS("{{ params.list[x] }}", 15, "expected an index after '['");
  CHECK_FAILS("{{ params.list[-1] }}", 15, "expected an index after '['");
  CHECK_FAILS("{{ params.list[0 }}", 17, "expected ']'");
  CHECK_FAILS("{{ 'abc }}", 3, "unterminated string");
  CHECK_FAILS("{{ 'a\\q' }}", 5, "unknown escape '\\q'");
  CHECK_FAILS("{{ 1 = 1 }}", 5, "unexpected '=' (use '==' to compare)");
  CHECK_FAILS("{{ !true }}", 3, "unexpected '!' (use 'not' or '!=')");
  CHECK_FAILS("{{ 1 && 2 }}", 5, "unexpected '&' (use 'and')");
  CHECK_FAILS("{{ 1 || 2 }}", 5, "unexpected '|' (use 'or')");
  CHECK_FAILS("{{ 1 < 2 < 3 }}", 9, "comparisons cannot be chained");
  CHECK_FAILS("{{ 1 2 }}", 5, "unexpected '2'");
  CHECK_FAILS("{{ 1 'a' }}", 5, "unexpected string");
  CHECK_FAILS("{{ * 2 }}", 3, "unexpected '*'");
  CHECK_FAILS("{{ # }}", 3, "unexpected character '#'");
  CHECK_FAILS("{{ \x01 }}", 3, "unexpected byte 0x01");
  CHECK_FAILS("{{ true.x }}", 7, "unexpected '.'");
  CHECK_FAILS("{{ env }}", 3, "expected env.NAME");
  CHECK_FAILS("{{ env.A.b }}", 3, "expected env.NAME");
  CHECK_FAILS("{{ env[0] }}", 3, "expected env.NAME");
  CHECK_FAILS("{{ 'caf\xc3' }}", 3, "string is not valid UTF-8");
  CHECK_FAILS("{{ 1 }} and {{ 2 + }}", 19, "expected a value after \'+\'" AFTER_HINT);

  /* too deep: an error, not a crashed stack */
  for (int i = 0; i < 300; i++)
    deep[n++] = '(';
  deep[n] = '\0';
  {
    char tpl[1100];

    snprintf(tpl, sizeof tpl, "{{ %s1 }}", deep);
    CHECK_FAILS(tpl, 3 + 256, "expression is too complex");
  }

  /* rendering reports the same errors */
  RENDER_FAILS("{{ 1 + }}", "expected a value after \'+\'" AFTER_HINT);
  RENDER_FAILS("a {{ 1 }} b {{ foo }}",
               "unknown name 'foo' (hint: use params.foo, vars.foo, env.FOO, "
               "secrets.FOO, states.NAME.output.KEY, run.id or run.dir)");
  RENDER_FAILS("{{ 1", UNTERMINATED);

  /* text outside the braces is never parsed */
  {
    struct cairn_error err = { 0 };
    size_t off = 77;

    assert_int_equal(engine_template_check("a }} b ) ( 'c", NULL, NULL, &off,
                                           &err), 0);
    assert_int_equal(off, 77);
    assert_int_equal(engine_template_check("{{ 1 }}", NULL, NULL, NULL, &err),
                     0);
    /* offset may be NULL on error too */
    assert_int_equal(engine_template_check("{{", NULL, NULL, NULL, &err),
                     CAIRN_E_TEMPLATE);
    assert_string_equal(err.msg, UNTERMINATED);
  }
}

static void test_check_expr(void **state)
{
  struct cairn_error err = { 0 };

  (void)state;
  EXPR_FAILS("params.x +", 10, "expected a value after \'+\'" AFTER_HINT);
  EXPR_FAILS("", 0, "empty expression");
  EXPR_FAILS("   ", 0, "empty expression");
  EXPR_FAILS("params.x )", 9, "unexpected ')'");
  EXPR_FAILS("(params.x", 9, "expected ')'");
  EXPR_FAILS("params.x }}", 9, "unexpected '}'");
  EXPR_FAILS("bar == 1", 0,
             "unknown name 'bar' (hint: use params.bar, vars.bar, env.BAR, "
             "secrets.BAR, states.NAME.output.KEY, run.id or run.dir)");
  assert_int_equal(engine_template_check_expr("params.replicas > 1 and "
                                              "not states.a.output.ok",
                                              NULL, NULL, NULL, &err), 0);
}

/* ---- the ref callback -------------------------------------------------- */

struct seen {
  char text[8][128]; /* path joined with '/' */
  size_t off[8];
  size_t n;
  int fail_on; /* 1-based call that fails, 0 never */
};

static int record(void *ud, const char *const *path, size_t n, size_t offset,
                  struct cairn_error *err)
{
  struct seen *s = ud;
  char *t;

  assert_true(s->n < 8);
  t = s->text[s->n];
  t[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    if (i)
      strcat(t, "/");
    strcat(t, path[i]);
  }
  s->off[s->n] = offset;
  s->n++;
  if ((int)s->n == s->fail_on)
    return cairn_error_set(err, CAIRN_E_WORKFLOW, "no state '%s'", path[1]);
  return 0;
}

static void test_ref_callback(void **state)
{
  const char *tpl = "port {{ params.replicas + states.db-setup.output.v }} "
                    "{{ params.list[2].k }} {{ env.HOME }}{{ 'x' + run.id }}";
  struct cairn_error err = { 0 };
  struct seen s = { 0 };
  size_t off = 0;

  (void)state;
  assert_int_equal(engine_template_check(tpl, record, &s, &off, &err), 0);
  assert_int_equal(s.n, 5);
  assert_string_equal(s.text[0], "params/replicas");
  assert_int_equal(s.off[0], (size_t)(strstr(tpl, "params.replicas") - tpl));
  assert_string_equal(s.text[1], "states/db-setup/output/v");
  assert_int_equal(s.off[1], (size_t)(strstr(tpl, "states.") - tpl));
  assert_string_equal(s.text[2], "params/list/2/k");
  assert_int_equal(s.off[2], (size_t)(strstr(tpl, "params.list") - tpl));
  assert_string_equal(s.text[3], "env/HOME");
  assert_int_equal(s.off[3], (size_t)(strstr(tpl, "env.") - tpl));
  assert_string_equal(s.text[4], "run/id");
  assert_int_equal(s.off[4], (size_t)(strstr(tpl, "run.id") - tpl));

  /* bare roots and expressions */
  memset(&s, 0, sizeof s);
  assert_int_equal(engine_template_check_expr("secrets and item[0]", record,
                                              &s, NULL, &err), 0);
  assert_int_equal(s.n, 2);
  assert_string_equal(s.text[0], "secrets");
  assert_int_equal(s.off[0], 0);
  assert_string_equal(s.text[1], "item/0");
  assert_int_equal(s.off[1], 12);

  /* an error from the callback comes back as it is, at the reference */
  memset(&s, 0, sizeof s);
  s.fail_on = 2;
  off = 0;
  assert_int_equal(engine_template_check(tpl, record, &s, &off, &err),
                   CAIRN_E_WORKFLOW);
  assert_string_equal(err.msg, "no state 'db-setup'");
  assert_int_equal(off, (size_t)(strstr(tpl, "states.") - tpl));
  assert_int_equal(s.n, 2); /* stopped there */

  memset(&s, 0, sizeof s);
  s.fail_on = 1;
  assert_int_equal(engine_template_check_expr("1 + states.x.output.y", record,
                                              &s, &off, &err),
                   CAIRN_E_WORKFLOW);
  assert_string_equal(err.msg, "no state 'x'");
  assert_int_equal(off, 4);
}

/* ---- eval_bool --------------------------------------------------------- */

static void test_eval_bool(void **state)
{
  struct cairn_error err = { 0 };
  int out = -1;

  (void)state;
  TRUTH("params.replicas > 2", 1);
  TRUTH("params.replicas > 3", 0);
  TRUTH("params.release == '1.4.0' and not params.empty", 1);
  TRUTH("vars.base_port < 100 or item.name == 'web'", 0);
  TRUTH("states.build.output.tag != 'v2'", 1);
  TRUTH("  (1)  ", 1);

  assert_int_equal(engine_template_eval_bool("states.x.output.y", scope, &out,
                                             &err), CAIRN_E_TEMPLATE);
  assert_string_equal(err.msg, "states.x.output.y is not set");
  assert_int_equal(out, -1);
  assert_int_equal(engine_template_eval_bool("1 +", scope, &out, &err),
                   CAIRN_E_TEMPLATE);
  assert_string_equal(err.msg, "expected a value after \'+\'" AFTER_HINT);
  assert_int_equal(engine_template_eval_bool("{{ true }}", scope, &out, &err),
                   CAIRN_E_TEMPLATE);
  assert_string_equal(err.msg, "unexpected character '{'");
  assert_int_equal(out, -1);
}

static void test_utf8(void **state)
{
  (void)state;
  RENDER_FAILS("caf\xc3", "template is not valid UTF-8");
  RENDER_FAILS("{{ 1 }}\xff", "rendered string is not valid UTF-8");
  RENDERS("\xe2\x82\xac{{ '\xe2\x82\xac' }}", "\"\\u20ac\\u20ac\"");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_integer_arithmetic),
    cmocka_unit_test(test_precedence),
    cmocka_unit_test(test_real_arithmetic),
    cmocka_unit_test(test_overflow),
    cmocka_unit_test(test_division_by_zero),
    cmocka_unit_test(test_type_errors),
    cmocka_unit_test(test_concatenation),
    cmocka_unit_test(test_comparisons),
    cmocka_unit_test(test_and_or_not),
    cmocka_unit_test(test_truthiness),
    cmocka_unit_test(test_typed_render),
    cmocka_unit_test(test_interpolation),
    cmocka_unit_test(test_deep_render),
    cmocka_unit_test(test_shared_render),
    cmocka_unit_test(test_roots),
    cmocka_unit_test(test_names_with_dashes),
    cmocka_unit_test(test_env),
    cmocka_unit_test(test_missing_references),
    cmocka_unit_test(test_syntax_errors),
    cmocka_unit_test(test_check_expr),
    cmocka_unit_test(test_ref_callback),
    cmocka_unit_test(test_eval_bool),
    cmocka_unit_test(test_utf8),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
