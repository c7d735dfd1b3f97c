/* The workflow loader (engine/load.c) and engine_workflow_params
 * (engine/params.c).
 *
 * Every error test writes its YAML inline and asserts the whole message,
 * position included. The positions were counted by hand from the YAML
 * text (the comments beside each case show the count), not copied from
 * the loader's output. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adapters/adapter.h"
#include "engine/workflow.h"

/* Lines 1-4; states start on line 5. */
#define HEAD "cairn: 1\nname: t\nstart: a\nstates:\n"

static struct engine_workflow *load_ok(const char *yaml)
{
  struct engine_workflow *wf = NULL;
  struct cairn_error err = {0};
  int rc = engine_workflow_load_buffer(&wf, "wf.yaml", yaml, strlen(yaml),
                                       &err);
  if (rc != 0)
    print_error("unexpected error: %s\n", err.msg);
  assert_int_equal(rc, 0);
  assert_non_null(wf);
  return wf;
}

/* Loads yaml, which must fail with CAIRN_E_WORKFLOW and exactly want. */
static void expect_error(const char *yaml, const char *want)
{
  struct engine_workflow *wf = (struct engine_workflow *)1;
  struct cairn_error err = {0};
  int rc = engine_workflow_load_buffer(&wf, "wf.yaml", yaml, strlen(yaml),
                                       &err);
  assert_int_equal(rc, CAIRN_E_WORKFLOW);
  assert_int_equal(err.code, CAIRN_E_WORKFLOW);
  assert_null(wf);
  assert_string_equal(err.msg, want);
}

/* ---- a full, valid workflow -------------------------------------------- */

static const char full[] =
  "cairn: 1\n"                                                       /* 1 */
  "name: quickstart\n"                                               /* 2 */
  "description: a full example\n"                                    /* 3 */
  "params:\n"                                                        /* 4 */
  "  release: { default: \"1.4.0\","
  " pattern: \"^[0-9]+\\\\.[0-9]+\\\\.[0-9]+$\","
  " description: the release }\n"                                    /* 5 */
  "  replicas: { default: 2 }\n"                                     /* 6 */
  "  ratio: { default: 1, type: number }\n"                          /* 7 */
  "  debug: { default: false }\n"                                    /* 8 */
  "  token: { type: string }\n"                                      /* 9 */
  "secrets: [JWT_SECRET, DB_PASSWORD]\n"                             /* 10 */
  "environments:\n"                                                  /* 11 */
  "  dev: { vars: { base_port: 18000 } }\n"                          /* 12 */
  "  prod: { vars: { base_port: 38000 }, after: dev, approvals: 2 }\n" /* 13 */
  "start: build\n"                                                   /* 14 */
  "states:\n"                                                        /* 15 */
  "  build:\n"                                                       /* 16 */
  "    description: compile it\n"                                    /* 17 */
  "    do: exec\n"                                                   /* 18 */
  "    with: { argv: [make, \"{{ params.release }}\"],"
  " env: { JWT: \"{{ secrets.JWT_SECRET }}\" } }\n"                  /* 19 */
  "    retry: { attempts: 3, delay: 1s, backoff: 2, max_delay: 30s }\n" /* 20 */
  "    timeout: 5m\n"                                                /* 21 */
  "    idempotent: true\n"                                           /* 22 */
  "    probe: { do: exec, with: { argv: [test, -f, out] }, timeout: 10s }\n"
  "    undo: { do: exec,"
  " with: { argv: [rm, \"{{ states.build.output.json.f }}\"] },"
  " timeout: 10s, retry: { attempts: 2, delay: 250ms } }\n"          /* 24 */
  "    next: infra\n"                                                /* 25 */
  "  infra:\n"                                                       /* 26 */
  "    parallel:\n"                                                  /* 27 */
  "      web: { do: exec, with: { argv: [\"{{ vars.base_port }}\"] },"
  " idempotent: false }\n"                                           /* 28 */
  "      db: { do: exec, with: { shell: \"echo {{ run.id }}\" },"
  " undo: { do: exec, with: { argv: [dropdb, \"{{ self.x }}\"] } } }\n"
  "    next: check\n"                                                /* 30 */
  "    on_failure: cleanup\n"                                        /* 31 */
  "  check:\n"                                                       /* 32 */
  "    choice:\n"                                                    /* 33 */
  "      - when: \"params.replicas > 1\"\n"                          /* 34 */
  "        next: pause\n"                                            /* 35 */
  "      - when: \"{{ states.infra.output.x == 'y' }}\"\n"           /* 36 */
  "        next: done\n"                                             /* 37 */
  "    default: done\n"                                              /* 38 */
  "  pause:\n"                                                       /* 39 */
  "    wait: 1m30s\n"                                                /* 40 */
  "    next: done\n"                                                 /* 41 */
  "  cleanup: { do: exec, with: { argv: [\"true\"] }, next: broken,"
  " on_failure: fail }\n"                                            /* 42 */
  "  done: { succeed: true }\n"                                      /* 43 */
  "  broken: { fail: true, message: gave up }\n";                    /* 44 */

static void test_full_workflow(void **state)
{
  struct engine_workflow *wf = load_ok(full);
  const struct engine_state *s;
  const struct engine_action *a;
  (void)state;

  assert_string_equal(wf->file, "wf.yaml");
  assert_int_equal(strlen(wf->sha256), 64);
  assert_string_equal(wf->name, "quickstart");
  assert_string_equal(wf->description, "a full example");
  assert_string_equal(wf->start, "build");

  assert_int_equal(wf->nparams, 5);
  assert_string_equal(wf->params[0].name, "release");
  assert_int_equal(wf->params[0].type, ENGINE_PARAM_STRING);
  assert_string_equal(json_string_value(wf->params[0].default_value), "1.4.0");
  assert_string_equal(wf->params[0].pattern, "^[0-9]+\\.[0-9]+\\.[0-9]+$");
  assert_string_equal(wf->params[0].description, "the release");
  assert_int_equal(wf->params[0].pos.line, 5);
  assert_int_equal(wf->params[0].pos.col, 3);
  assert_int_equal(wf->params[1].type, ENGINE_PARAM_INTEGER);
  assert_int_equal(json_integer_value(wf->params[1].default_value), 2);
  assert_int_equal(wf->params[2].type, ENGINE_PARAM_NUMBER);
  assert_true(json_is_number(wf->params[2].default_value));
  assert_int_equal(wf->params[3].type, ENGINE_PARAM_BOOLEAN);
  assert_true(json_is_false(wf->params[3].default_value));
  assert_int_equal(wf->params[4].type, ENGINE_PARAM_STRING);
  assert_null(wf->params[4].default_value);
  assert_null(wf->params[4].pattern);

  assert_int_equal(wf->nsecrets, 2);
  assert_string_equal(wf->secrets[0], "JWT_SECRET");
  assert_string_equal(wf->secrets[1], "DB_PASSWORD");

  assert_int_equal(wf->nenvs, 2);
  assert_string_equal(wf->envs[0].name, "dev");
  assert_null(wf->envs[0].after);
  assert_int_equal(wf->envs[0].approvals, 0);
  assert_int_equal(json_integer_value(json_object_get(wf->envs[0].vars,
                                                      "base_port")), 18000);
  assert_string_equal(wf->envs[1].after, "dev");
  assert_int_equal(wf->envs[1].approvals, 2);
  assert_int_equal(wf->envs[1].pos.line, 13);
  assert_int_equal(wf->envs[1].pos.col, 3);

  /* states in file order */
  assert_int_equal(wf->nstates, 7);
  {
    static const char *const names[] = {"build", "infra", "check", "pause",
                                        "cleanup", "done", "broken"};
    static const enum engine_kind kinds[] = {
      ENGINE_DO, ENGINE_PARALLEL, ENGINE_CHOICE, ENGINE_WAIT, ENGINE_DO,
      ENGINE_SUCCEED, ENGINE_FAIL};
    for (size_t i = 0; i < 7; i++) {
      assert_string_equal(wf->states[i].name, names[i]);
      assert_int_equal(wf->states[i].kind, kinds[i]);
      assert_non_null(wf->states[i].on_failure);
    }
  }

  s = &wf->states[0];
  assert_int_equal(s->pos.line, 16);
  assert_int_equal(s->pos.col, 3);
  assert_string_equal(s->description, "compile it");
  assert_string_equal(s->next, "infra");
  assert_string_equal(s->on_failure, "rollback");
  assert_int_equal(s->on_failure_pos.line, 16); /* default: the state's */
  a = &s->action;
  assert_string_equal(a->adapter, "exec");
  assert_int_equal(a->pos.line, 18);
  assert_int_equal(a->pos.col, 5);
  assert_string_equal(json_string_value(json_array_get(
                        json_object_get(a->with, "argv"), 1)),
                      "{{ params.release }}");
  assert_int_equal(a->retry.attempts, 3);
  assert_int_equal(a->retry.delay_ms, 1000);
  assert_true(a->retry.backoff == 2.0);
  assert_int_equal(a->retry.max_delay_ms, 30000);
  assert_int_equal(a->timeout_ms, 300000);
  assert_int_equal(a->idempotent, 1);
  assert_non_null(a->probe);
  assert_int_equal(a->probe->timeout_ms, 10000);
  assert_int_equal(a->probe->retry.attempts, 1); /* the defaults */
  assert_int_equal(a->probe->retry.delay_ms, 1000);
  assert_true(a->probe->retry.backoff == 2.0);
  assert_int_equal(a->probe->retry.max_delay_ms, 0);
  assert_null(a->probe->probe);
  assert_null(a->probe->undo);
  assert_non_null(a->undo);
  assert_int_equal(a->undo->retry.attempts, 2);
  assert_int_equal(a->undo->retry.delay_ms, 250);
  assert_int_equal(a->undo->timeout_ms, 10000);
  assert_int_equal(a->undo->idempotent, -1);

  s = &wf->states[1];
  assert_int_equal(s->nbranches, 2);
  assert_string_equal(s->branches[0].name, "web"); /* declaration order */
  assert_string_equal(s->branches[1].name, "db");
  assert_int_equal(s->branches[0].pos.line, 28);
  assert_int_equal(s->branches[0].pos.col, 7);
  assert_int_equal(s->branches[0].action.idempotent, 0);
  assert_int_equal(s->branches[1].action.idempotent, -1);
  assert_null(s->branches[0].action.undo);
  assert_non_null(s->branches[1].action.undo);
  assert_string_equal(s->next, "check");
  assert_string_equal(s->on_failure, "cleanup");
  assert_int_equal(s->on_failure_pos.line, 31);
  assert_int_equal(s->on_failure_pos.col, 17); /* "    on_failure: " */

  s = &wf->states[2];
  assert_null(s->next);
  assert_int_equal(s->nwhens, 2);
  assert_string_equal(s->whens[0].expr, "params.replicas > 1");
  assert_string_equal(s->whens[0].next, "pause");
  assert_int_equal(s->whens[0].pos.line, 34);
  assert_int_equal(s->whens[0].pos.col, 9); /* "      - " */
  assert_string_equal(s->whens[1].expr, "states.infra.output.x == 'y'");
  assert_string_equal(s->whens[1].next, "done");
  assert_string_equal(s->default_next, "done");

  assert_int_equal(wf->states[3].wait_ms, 90000);
  assert_string_equal(wf->states[3].next, "done");
  assert_string_equal(wf->states[4].on_failure, "fail");
  assert_int_equal(wf->states[4].action.idempotent, -1);
  assert_null(wf->states[5].next);
  assert_string_equal(wf->states[6].message, "gave up");

  engine_workflow_destroy(wf);
}

static void test_lookups(void **state)
{
  struct engine_workflow *wf = load_ok(full);
  (void)state;

  assert_ptr_equal(engine_workflow_state(wf, "pause"), &wf->states[3]);
  assert_null(engine_workflow_state(wf, "nope"));
  assert_ptr_equal(engine_workflow_env(wf, "prod"), &wf->envs[1]);
  assert_null(engine_workflow_env(wf, "staging"));
  assert_ptr_equal(engine_workflow_param(wf, "ratio"), &wf->params[2]);
  assert_null(engine_workflow_param(wf, "nope"));
  assert_string_equal(engine_kind_name(ENGINE_DO), "do");
  assert_string_equal(engine_kind_name(ENGINE_PARALLEL), "parallel");
  assert_string_equal(engine_kind_name(ENGINE_CHOICE), "choice");
  assert_string_equal(engine_kind_name(ENGINE_WAIT), "wait");
  assert_string_equal(engine_kind_name(ENGINE_SUCCEED), "succeed");
  assert_string_equal(engine_kind_name(ENGINE_FAIL), "fail");
  engine_workflow_destroy(wf);
  engine_workflow_destroy(NULL);
}

static void test_load_file(void **state)
{
  static const char text[] = HEAD "  a: { succeed: true }\n";
  char dir[] = "/tmp/cairn-loader-XXXXXX", path[PATH_MAX], rel[PATH_MAX];
  struct engine_workflow *wf = NULL, *wb = NULL;
  struct cairn_error err = {0};
  char *cwd = getcwd(NULL, 0);
  FILE *f;
  (void)state;

  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/wf.yaml", dir);
  assert_non_null(f = fopen(path, "w"));
  fputs(text, f);
  fclose(f);

  /* a relative name is stored as the absolute path */
  assert_int_equal(chdir(dir), 0);
  snprintf(rel, sizeof rel, "./wf.yaml");
  assert_int_equal(engine_workflow_load(&wf, rel, &err), 0);
  assert_int_equal(chdir(cwd), 0);
  {
    char *real = realpath(path, NULL); /* /tmp may be a link */
    assert_non_null(real);
    assert_string_equal(wf->file, real);
    free(real);
  }
  /* sha256sum of the bytes above, computed outside the test */
  assert_string_equal(wf->sha256, "17f8e1226c9c3636f51e2e23f8a681b9"
                                  "d28d1f88484d79cc944e011cd9d4d5ff");
  assert_int_equal(engine_workflow_load_buffer(&wb, "x", text,
                                               strlen(text), &err), 0);
  assert_string_equal(wb->sha256, wf->sha256);
  engine_workflow_destroy(wf);
  engine_workflow_destroy(wb);

  /* errors name the file as given */
  assert_non_null(f = fopen(path, "w"));
  fputs("cairn: 2\n", f);
  fclose(f);
  assert_int_equal(engine_workflow_load(&wf, path, &err), CAIRN_E_WORKFLOW);
  assert_null(wf);
  {
    char want[PATH_MAX + 128];
    snprintf(want, sizeof want, "%s:1:8: error: unsupported format version "
             "'2' (hint: this cairn reads 'cairn: 1')", path);
    assert_string_equal(err.msg, want);
  }
  unlink(path);
  rmdir(dir);
  free(cwd);
}

static void test_missing_file(void **state)
{
  struct engine_workflow *wf = (struct engine_workflow *)1;
  struct cairn_error err = {0};
  (void)state;

  assert_int_equal(engine_workflow_load(&wf, "/nonexistent/x.yaml", &err),
                   CAIRN_E_IO);
  assert_null(wf);
  assert_string_equal(err.msg, "cannot read '/nonexistent/x.yaml': No such "
                               "file or directory");
  assert_int_equal(engine_workflow_load(&wf, "/", &err), CAIRN_E_IO);
  assert_string_equal(err.msg, "cannot read '/': it is not a file (a "
                               "folder) (hint: a workflow is a .yaml file, "
                               "which resume reads again)");
}

/* ---- YAML ------------------------------------------------------------- */

static void test_yaml12_typing(void **state)
{
  struct engine_workflow *wf = load_ok(
    "cairn: 1\nname: t\n"
    "environments:\n"
    "  dev:\n"
    "    vars: { a: no, b: 010, c: 0x1F, d: 0o17, e: 1.5e1, f: \"true\","
    " g: True, h: ~, i: yes, j: on, k: 1_000, l: .5, m: '7', n: -3,"
    " o: 1., p: null, q: !!str 5, r: FALSE }\n"
    "start: a\nstates:\n  a: { succeed: true }\n");
  json_t *v = wf->envs[0].vars;
  (void)state;

  assert_string_equal(json_string_value(json_object_get(v, "a")), "no");
  assert_int_equal(json_integer_value(json_object_get(v, "b")), 10);
  assert_int_equal(json_integer_value(json_object_get(v, "c")), 31);
  assert_int_equal(json_integer_value(json_object_get(v, "d")), 15);
  assert_true(json_is_real(json_object_get(v, "e")));
  assert_true(json_real_value(json_object_get(v, "e")) == 15.0);
  assert_string_equal(json_string_value(json_object_get(v, "f")), "true");
  assert_true(json_is_true(json_object_get(v, "g")));
  assert_true(json_is_null(json_object_get(v, "h")));
  assert_string_equal(json_string_value(json_object_get(v, "i")), "yes");
  assert_string_equal(json_string_value(json_object_get(v, "j")), "on");
  assert_string_equal(json_string_value(json_object_get(v, "k")), "1_000");
  assert_true(json_real_value(json_object_get(v, "l")) == 0.5);
  assert_string_equal(json_string_value(json_object_get(v, "m")), "7");
  assert_int_equal(json_integer_value(json_object_get(v, "n")), -3);
  assert_true(json_is_real(json_object_get(v, "o")));
  assert_true(json_is_null(json_object_get(v, "p")));
  assert_string_equal(json_string_value(json_object_get(v, "q")), "5");
  assert_true(json_is_false(json_object_get(v, "r")));
  engine_workflow_destroy(wf);
}

static void test_aliases(void **state)
{
  struct engine_workflow *wf = load_ok(
    HEAD
    "  a: { do: exec, with: &w { argv: [make, all] }, next: b }\n"
    "  b: { do: exec, with: *w, retry: &r { attempts: 4 }, next: c }\n"
    "  c: { do: exec, with: *w, retry: *r, next: d }\n"
    "  d: { succeed: true }\n");
  (void)state;

  assert_true(json_equal(wf->states[0].action.with,
                         wf->states[1].action.with));
  assert_true(json_equal(wf->states[0].action.with,
                         wf->states[2].action.with));
  /* copies, not shared */
  assert_ptr_not_equal(wf->states[0].action.with, wf->states[1].action.with);
  assert_int_equal(wf->states[2].action.retry.attempts, 4);
  engine_workflow_destroy(wf);
}

/* A string value written again is the same json_t (scalars are never
 * changed in place); objects and arrays stay the state's own. */
static void test_shared_strings(void **state)
{
  struct engine_workflow *wf = load_ok(
    HEAD
    "  a: { do: exec, with: { argv: [make, all] }, next: b }\n"
    "  b: { do: exec, with: { argv: [make, test] }, next: c }\n"
    "  c: { succeed: true }\n");
  json_t *x, *y;
  (void)state;

  x = json_object_get(wf->states[0].action.with, "argv");
  y = json_object_get(wf->states[1].action.with, "argv");
  assert_ptr_not_equal(x, y);
  assert_ptr_equal(json_array_get(x, 0), json_array_get(y, 0));
  assert_string_equal(json_string_value(json_array_get(y, 0)), "make");
  assert_ptr_not_equal(json_array_get(x, 1), json_array_get(y, 1));
  assert_string_equal(json_string_value(json_array_get(x, 1)), "all");
  assert_string_equal(json_string_value(json_array_get(y, 1)), "test");
  engine_workflow_destroy(wf);
}

static void test_yaml_errors(void **state)
{
  (void)state;
  /* "  start" makes "t start" a multi-line plain scalar; its ':' is the
   * 8th character of line 3 */
  expect_error("cairn: 1\nname: t\n  start: a\n",
               "wf.yaml:3:8: error: malformed YAML: mapping values are not "
               "allowed in this context (hint: check the indentation and "
               "quoting)");
  /* the flow mapping opened on line 2 is still open at the end (3:1) */
  expect_error("cairn: 1\nstates: { a: b\n",
               "wf.yaml:3:1: error: malformed YAML: did not find expected "
               "',' or '}' while parsing a flow mapping started on line 2 "
               "(hint: check the indentation and quoting)");
  /* a tab indenting a key: libyaml says only "cannot start any token" */
  expect_error("cairn: 1\nname: t\nstart: a\nstates:\n\ta: { succeed: true }\n",
               "wf.yaml:5:1: error: malformed YAML: a tab where YAML wants "
               "spaces (hint: indent with spaces; a tab may only stand "
               "inside a quoted string)");
  /* libyaml counts columns in characters: the same after UTF-8 text */
  expect_error("cairn: 1\nname: t\ndescription: \"d\xc3\xa9j\xc3\xa0 \xe2\x80\x94\"\n"
               "start: a\nstates:\n\ta: { succeed: true }\n",
               "wf.yaml:6:1: error: malformed YAML: a tab where YAML wants "
               "spaces (hint: indent with spaces; a tab may only stand "
               "inside a quoted string)");
  expect_error("", "wf.yaml:1:1: error: the file is empty (hint: a workflow "
                   "starts with 'cairn: 1')");
  expect_error("# only a comment\n",
               "wf.yaml:1:1: error: the file is empty (hint: a workflow "
               "starts with 'cairn: 1')");
  expect_error("- cairn\n", "wf.yaml:1:1: error: a workflow must be a "
               "mapping, got a list (hint: a workflow starts with 'cairn: "
               "1')");
  /* second document: the "---" on line 6 */
  expect_error(HEAD "  a: { succeed: true }\n---\ncairn: 1\n",
               "wf.yaml:6:1: error: more than one document in the file "
               "(hint: keep one workflow per file, without a second '---')");
  /* "cairn: " is 7 characters */
  expect_error("cairn: !!int 1\n",
               "wf.yaml:1:8: error: unsupported tag '!!int' (hint: remove "
               "it; only !!str is supported)");
  /* "  a: " is 5 characters */
  expect_error(HEAD "  a: *nope\n",
               "wf.yaml:5:6: error: unknown alias '*nope' (hint: define "
               "'&nope' before using it)");
  expect_error(HEAD "  a: &x { do: exec, with: *x }\n",
               "wf.yaml:5:27: error: alias '*x' is inside its own anchor "
               "(hint: recursive aliases are not supported)");
  expect_error(HEAD "  ? [a]\n  : { succeed: true }\n",
               "wf.yaml:5:5: error: mapping keys must be scalars (hint: use "
               "a plain name as the key)");
  /* "  a: { do: exec, with: { shell: " is 32 characters */
  expect_error(HEAD "  a: { do: exec, with: { shell: {{ params.r }} } }\n",
               "wf.yaml:5:34: error: mapping keys must be scalars (hint: a "
               "value that starts with '{{' is a template: quote it, as in "
               "\"{{ params.name }}\")");
}

static void test_duplicate_keys(void **state)
{
  (void)state;
  expect_error(HEAD
               "  a:\n"              /* 5 */
               "    succeed: true\n" /* 6 */
               "    description: x\n"
               "    succeed: true\n", /* 8 */
               "wf.yaml:8:5: error: duplicate key 'succeed' (hint: first "
               "defined on line 6)");
  expect_error(HEAD "  a: { succeed: true }\n  a: { succeed: true }\n",
               "wf.yaml:6:3: error: duplicate key 'a' (hint: first defined "
               "on line 5)");
  /* the same key, once plain and once quoted, is still the same key */
  expect_error("cairn: 1\nname: t\n\"name\": u\n",
               "wf.yaml:3:1: error: duplicate key 'name' (hint: first "
               "defined on line 2)");
}

/* Many keys (the table grows several times), then a repeat of an early
 * one: line 5 + 40 = 45 repeats the key of line 5 + 3. */
static void test_duplicate_in_big_mapping(void **state)
{
  char yaml[4096], *p = yaml;
  (void)state;

  p += sprintf(p, "cairn: 1\nname: t\nenvironments:\n  dev:\n    vars:\n");
  for (int i = 0; i < 40; i++)
    p += sprintf(p, "      k%d: %d\n", i, i); /* lines 6..45 */
  sprintf(p, "      k3: 0\n");                /* line 46 */
  expect_error(yaml, "wf.yaml:46:7: error: duplicate key 'k3' (hint: first "
               "defined on line 9)");
}

/* A chain written backwards, s0 <- s1 <- ... <- s2999 (start), with
 * s0 (line 5) as given. */
static char *chain(const char *s0)
{
  char *yaml = malloc(3000 * 40 + 256), *p;

  assert_non_null(yaml);
  p = yaml + sprintf(yaml, "cairn: 1\nname: t\nstart: s2999\nstates:\n"
                           "  s0: %s\n", s0);
  for (int i = 1; i < 3000; i++)
    p += sprintf(p, "  s%d: { wait: 1s, next: s%d }\n", i, i - 1);
  return yaml;
}

static void test_long_chain(void **state)
{
  struct engine_workflow *wf;
  char *yaml = chain("{ succeed: true }");
  (void)state;

  wf = load_ok(yaml);
  assert_int_equal(wf->nstates, 3000);
  engine_workflow_destroy(wf);
  free(yaml);

  /* the same chain whose end loops back instead of succeeding */
  yaml = chain("{ wait: 1s, next: s9 }");
  expect_error(yaml, "wf.yaml:5:3: error: state 's0' has no path to a succeed "
               "or fail state (hint: give its loop a way out, e.g. a choice "
               "'default' that leads to a terminal)");
  free(yaml);
}

static void test_merge_key_refused(void **state)
{
  (void)state;
  expect_error("cairn: 1\nname: t\nstart: a\nstates:\n  a:\n"
               "    <<: { succeed: true }\n",
               "wf.yaml:6:5: error: merge keys ('<<') are not supported "
               "(hint: repeat the keys, or alias the whole mapping with "
               "'*name')");
  /* a quoted "<<" is an ordinary key, and so an unknown one here */
  expect_error(HEAD "  a: { succeed: true, \"<<\": 1 }\n",
               "wf.yaml:5:23: error: unknown key '<<' in state 'a' (hint: "
               "allowed keys are description, succeed)");
}

/* ---- the top level ----------------------------------------------------- */

static void test_cairn_version(void **state)
{
  (void)state;
  expect_error("name: t\n", "wf.yaml:1:1: error: missing key 'cairn' in the "
               "workflow (hint: add 'cairn: 1' as the first line)");
  expect_error("cairn: 2\nname: t\n", "wf.yaml:1:8: error: unsupported "
               "format version '2' (hint: this cairn reads 'cairn: 1')");
  expect_error("cairn: \"1\"\n", "wf.yaml:1:8: error: 'cairn' in the "
               "workflow must be an integer, got a string (hint: write "
               "'cairn: 1')");
}

static void test_unknown_keys(void **state)
{
  (void)state;
  expect_error("cairn: 1\nname: t\nstrat: a\n",
               "wf.yaml:3:1: error: unknown key 'strat' in the workflow "
               "(hint: did you mean 'start'?)");
  expect_error(HEAD
               "  a:\n"                       /* 5 */
               "    do: exec\n"               /* 6 */
               "    with: { argv: [make] }\n" /* 7 */
               "    nxt: b\n"                 /* 8 */
               "  b: { succeed: true }\n",
               "wf.yaml:8:5: error: unknown key 'nxt' in state 'a' (hint: "
               "did you mean 'next'?)");
  /* "  a: { succeed: true, " is 22 characters */
  expect_error(HEAD "  a: { succeed: true, colour: red }\n",
               "wf.yaml:5:23: error: unknown key 'colour' in state 'a' "
               "(hint: allowed keys are description, succeed)");
  /* "  a: { wait: 5s, next: b, " is 26 characters */
  expect_error(HEAD "  a: { wait: 5s, next: b, retry: { attempts: 2 } }\n"
               "  b: { succeed: true }\n",
               "wf.yaml:5:27: error: key 'retry' is not allowed in wait "
               "state 'a' (hint: wait states take description, wait, "
               "next)");
  /* "  a: { do: exec, with: { argv: [x] }, retry: { " is 47 */
  expect_error(HEAD "  a: { do: exec, with: { argv: [x] }, retry: { attemps: "
               "3 }, next: b }\n  b: { succeed: true }\n",
               "wf.yaml:5:48: error: unknown key 'attemps' in the retry of "
               "state 'a' (hint: did you mean 'attempts'?)");
  expect_error("cairn: 1\nname: t\nparams:\n  n: { defualt: 1 }\n",
               "wf.yaml:4:8: error: unknown key 'defualt' in param 'n' "
               "(hint: did you mean 'default'?)");
  expect_error("cairn: 1\nname: t\nenvironments:\n  dev: { var: {} }\n",
               "wf.yaml:4:10: error: unknown key 'var' in environment 'dev' "
               "(hint: did you mean 'vars'?)");
}

static void test_undo_placement(void **state)
{
  (void)state;
  /* "  a: { succeed: true, " is 22 characters */
  expect_error(HEAD "  a: { succeed: true, undo: { do: exec } }\n",
               "wf.yaml:5:23: error: key 'undo' is not allowed in succeed "
               "state 'a' (hint: succeed states take description, "
               "succeed)");
  expect_error(HEAD
               "  a:\n"
               "    choice: [ { when: \"true\", next: b } ]\n"
               "    undo: { do: exec }\n" /* 7 */
               "  b: { succeed: true }\n",
               "wf.yaml:7:5: error: key 'undo' is not allowed in choice "
               "state 'a' (hint: choice states take description, choice, "
               "default)");
  /* "    undo: { do: exec, with: { argv: [y] }, " is 43 characters */
  expect_error(HEAD
               "  a:\n"
               "    do: exec\n"
               "    with: { argv: [x] }\n"
               "    undo: { do: exec, with: { argv: [y] }, undo: { do: exec } "
               "}\n" /* 8 */
               "    next: b\n"
               "  b: { succeed: true }\n",
               "wf.yaml:8:44: error: key 'undo' is not allowed in the undo of "
               "state 'a' (hint: an undo takes do, with, timeout, retry, "
               "idempotent and probe)");
  /* "    probe: { do: exec, with: { argv: [y] }, " is 44 characters */
  expect_error(HEAD
               "  a:\n"
               "    do: exec\n"
               "    with: { argv: [x] }\n"
               "    probe: { do: exec, with: { argv: [y] }, idempotent: true "
               "}\n" /* 8 */
               "    next: b\n"
               "  b: { succeed: true }\n",
               "wf.yaml:8:45: error: key 'idempotent' is not allowed in the "
               "probe of state 'a' (hint: a probe takes do, with, timeout and "
               "retry)");
}

static void test_wrong_types(void **state)
{
  (void)state;
  expect_error("cairn: 1\nname: [t]\n", "wf.yaml:2:7: error: 'name' in the "
               "workflow must be a string, got a list");
  /* "  a: { do: exec, with: { argv: [x] }, next: " is 44 characters */
  expect_error(HEAD "  a: { do: exec, with: { argv: [x] }, next: 5 }\n",
               "wf.yaml:5:45: error: 'next' in state 'a' must be a string, "
               "got an integer (hint: quote it to make it a string)");
  /* "  a: { do: exec, with: " is 23 characters */
  expect_error(HEAD "  a: { do: exec, with: [x], next: a }\n",
               "wf.yaml:5:24: error: 'with' in state 'a' must be a mapping, "
               "got a list");
  /* "  a: { do: exec, with: { argv: [x] }, idempotent: " is 50 */
  expect_error(HEAD "  a: { do: exec, with: { argv: [x] }, idempotent: yes, "
               "next: a }\n",
               "wf.yaml:5:51: error: 'idempotent' in state 'a' must be a "
               "boolean, got a string (hint: write true or false, without "
               "quotes)");
  expect_error(HEAD "  a: { succeed: false }\n",
               "wf.yaml:5:17: error: 'succeed' in state 'a' must be true, "
               "got false (hint: write 'succeed: true', or 'fail: true' to "
               "end the run as failed)");
  expect_error(HEAD "  a: [succeed]\n",
               "wf.yaml:5:6: error: state 'a' must be a mapping, got a list "
               "(hint: give it a kind, e.g. 'do: exec')");
  expect_error("cairn: 1\nname: t\nsecrets: JWT\n",
               "wf.yaml:3:10: error: 'secrets' in the workflow must be a list "
               "of names, got a string");
  /* "  prod: { approvals: " is 21 characters */
  expect_error("cairn: 1\nname: t\nenvironments:\n  prod: { approvals: -1 }\n",
               "wf.yaml:4:22: error: 'approvals' in environment 'prod' must "
               "be at least 0, got -1");
  expect_error(HEAD "  a: { do: exec, with: { argv: [x] }, timeout: [1], "
               "next: a }\n",
               "wf.yaml:5:48: error: 'timeout' in state 'a' must be a "
               "duration, got a list (hint: durations look like 250ms, 5s, "
               "1m30s, 2h or 1d)");
  /* an integer too large for JSON, inside `with`: "  a: { do: exec, with:
   * { argv: [x], env: { N: " is 46 characters */
  expect_error(HEAD "  a: { do: exec, with: { argv: [x], env: { N: "
               "99999999999999999999 } }, next: a }\n",
               "wf.yaml:5:47: error: integer '99999999999999999999' is out of "
               "range (hint: quote it to keep it as a string)");
}

static void test_required_keys(void **state)
{
  (void)state;
  expect_error("cairn: 1\nstart: a\nstates:\n  a: { succeed: true }\n",
               "wf.yaml:1:1: error: missing key 'name' in the workflow (hint: "
               "add 'name: my-app')");
  expect_error("cairn: 1\nname: t\nstates:\n  a: { succeed: true }\n",
               "wf.yaml:1:1: error: missing key 'start' in the workflow "
               "(hint: add 'start: a')");
  expect_error("cairn: 1\nname: t\nstart: a\n",
               "wf.yaml:1:1: error: missing key 'states' in the workflow "
               "(hint: add 'states:' with at least one state)");
  expect_error("cairn: 1\nname: t\nstart: a\nstates: {}\n",
               "wf.yaml:4:9: error: 'states' in the workflow is empty (hint: "
               "add at least one state)");
  expect_error(HEAD "  a: { do: exec, with: { argv: [x] } }\n",
               "wf.yaml:5:3: error: missing key 'next' in state 'a' (hint: "
               "name the state that comes after it)");
  /* a branch without `do`: its mapping starts at "      db: " + 1 */
  expect_error(HEAD
               "  a:\n"
               "    parallel:\n"
               "      db: { with: { argv: [x] } }\n" /* 7 */
               "    next: a\n",
               "wf.yaml:7:11: error: missing key 'do' in branch 'db' of state "
               "'a' (hint: name an adapter, e.g. 'do: exec')");
  expect_error(HEAD "  a:\n    parallel: {}\n    next: a\n",
               "wf.yaml:6:15: error: 'parallel' in state 'a' has no branches "
               "(hint: add at least one, e.g. 'db: { do: exec, with: {...} "
               "}')");
  expect_error(HEAD "  a:\n    choice: []\n",
               "wf.yaml:6:13: error: 'choice' in state 'a' is empty (hint: "
               "add '- when: EXPR' with 'next: STATE')");
  expect_error(HEAD "  a:\n    choice:\n      - when: \"true\"\n",
               "wf.yaml:7:9: error: missing key 'next' in choice 1 of state "
               "'a' (hint: add 'next: STATE')");
}

static void test_names(void **state)
{
  (void)state;
  expect_error("cairn: 1\nname: My App\n",
               "wf.yaml:2:7: error: invalid workflow name 'My App' (hint: use "
               "lower-case letters, digits, '_', '.' and '-', starting with a "
               "letter or digit)");
  expect_error("cairn: 1\nname: t\nstart: rollback\nstates:\n"
               "  rollback: { succeed: true }\n",
               "wf.yaml:5:3: error: 'rollback' cannot be a state name (hint: "
               "it is reserved for on_failure; rename the state)");
  expect_error("cairn: 1\nname: t\nstart: a/b\nstates:\n"
               "  a/b: { succeed: true }\n",
               "wf.yaml:5:3: error: invalid state name 'a/b' (hint: use "
               "letters, digits, '_' and '-')");
  expect_error(HEAD "  a:\n    parallel:\n      x/y: { do: exec }\n"
               "    next: a\n",
               "wf.yaml:7:7: error: invalid branch name 'x/y' in state 'a' "
               "(hint: use letters, digits, '_' and '-')");
  expect_error("cairn: 1\nname: t\nsecrets: [jwt]\n",
               "wf.yaml:3:11: error: invalid secret name 'jwt' (hint: use "
               "upper-case letters, digits and '_', e.g. 'JWT_SECRET')");
  /* the earliest repeat, naming the first: "secrets: [B, A, C, " is 19 */
  expect_error("cairn: 1\nname: t\nsecrets: [B, A, C, A, B, A]\n",
               "wf.yaml:3:20: error: duplicate secret 'A' (hint: first listed "
               "on line 3)");
  expect_error("cairn: 1\nname: t\nsecrets: [A, B, A]\n",
               "wf.yaml:3:17: error: duplicate secret 'A' (hint: first listed "
               "on line 3)");
  expect_error("cairn: 1\nname: t\nparams:\n  my-param: {}\n",
               "wf.yaml:4:3: error: invalid param name 'my-param' (hint: use "
               "letters, digits and '_', not starting with a digit)");
}

static void test_kinds(void **state)
{
  (void)state;
  /* "  a: { do: exec, " is 17 characters */
  expect_error(HEAD "  a: { do: exec, wait: 5s }\n",
               "wf.yaml:5:18: error: state 'a' has both 'do' and 'wait' (hint: "
               "a state has exactly one of do, parallel, choice, wait, "
               "succeed, fail, approval, use, map)");
  expect_error(HEAD "  a: { next: a }\n",
               "wf.yaml:5:3: error: state 'a' has no kind (hint: give it one "
               "of do, parallel, choice, wait, succeed, fail, approval, use, "
               "map)");
  expect_error(HEAD "  a: { od: exec }\n",
               "wf.yaml:5:8: error: unknown key 'od' in state 'a' (hint: did "
               "you mean 'do'?)");
  /* "  a: { parallel: { b: { " is 24 characters */
  expect_error(HEAD "  a: { parallel: { b: { use: x.yaml } }, next: d }\n"
               "  d: { succeed: true }\n",
               "wf.yaml:5:25: error: 'use' in branch 'b' of state 'a' is not "
               "supported (hint: make it a use state of its own, before or "
               "after the parallel state)");
}

static void test_transitions(void **state)
{
  (void)state;
  expect_error("cairn: 1\nname: t\nstart: bulid\nstates:\n"
               "  build: { succeed: true }\n",
               "wf.yaml:3:8: error: unknown state 'bulid' in 'start' (hint: "
               "did you mean 'build'?)");
  expect_error(HEAD "  a: { do: exec, with: { argv: [x] }, next: zzz }\n"
               "  b: { succeed: true }\n",
               "wf.yaml:5:45: error: unknown state 'zzz' in 'next' of state "
               "'a' (hint: states are a, b)");
  /* "  a: { do: exec, with: { argv: [x] }, next: done, on_failure: " is 62 */
  expect_error(HEAD "  a: { do: exec, with: { argv: [x] }, next: done, "
               "on_failure: rolback }\n  done: { succeed: true }\n",
               "wf.yaml:5:63: error: unknown state 'rolback' in 'on_failure' "
               "of state 'a' (hint: did you mean 'rollback'?)");
  expect_error(HEAD "  a: { do: exec, with: { argv: [x] }, next: done, "
               "on_failure: zzz }\n  done: { succeed: true }\n",
               "wf.yaml:5:63: error: unknown state 'zzz' in 'on_failure' of "
               "state 'a' (hint: use rollback, fail or a state: a, done)");
  expect_error(HEAD
               "  a:\n"
               "    choice:\n"
               "      - when: \"1 > 0\"\n"
               "        next: nowhere\n" /* 8: "        next: " is 14 */
               "    default: b\n"
               "  b: { succeed: true }\n",
               "wf.yaml:8:15: error: unknown state 'nowhere' in 'next' of "
               "choice 1 of state 'a' (hint: states are a, b)");
  expect_error(HEAD
               "  a:\n"
               "    choice:\n"
               "      - when: \"1 > 0\"\n"
               "        next: b\n"
               "    default: c\n" /* 9: "    default: " is 13 */
               "  b: { succeed: true }\n",
               "wf.yaml:9:14: error: unknown state 'c' in 'default' of state "
               "'a' (hint: states are a, b)");
}

static void test_graph(void **state)
{
  struct engine_workflow *wf;
  (void)state;

  expect_error(HEAD "  a: { do: exec, with: { argv: [x] }, next: b }\n"
               "  b: { succeed: true }\n"
               "  orphan: { succeed: true }\n",
               "wf.yaml:7:3: error: state 'orphan' is unreachable from 'a' "
               "(hint: go to it with next, on_failure or a choice, or remove "
               "it)");
  /* a wait/choice loop without a way out; `a` itself ends through its
   * default on_failure (rollback) */
  expect_error(HEAD
               "  a: { do: exec, with: { argv: [x] }, next: poll }\n"
               "  poll: { wait: 5s, next: check }\n" /* 6 */
               "  check:\n"
               "    choice:\n"
               "      - when: \"1 > 0\"\n"
               "        next: poll\n"
               "    default: poll\n",
               "wf.yaml:6:3: error: state 'poll' has no path to a succeed or "
               "fail state (hint: give its loop a way out, e.g. a choice "
               "'default' that leads to a terminal)");
  /* the same loop with a way out is fine; so is a choice without default
   * (no match fails the run) */
  wf = load_ok(HEAD
               "  a: { do: exec, with: { argv: [x] }, next: poll }\n"
               "  poll: { wait: 5s, next: check }\n"
               "  check:\n"
               "    choice:\n"
               "      - when: \"1 > 0\"\n"
               "        next: poll\n"
               "      - when: \"2 > 1\"\n"
               "        next: done\n"
               "    default: poll\n"
               "  done: { succeed: true }\n");
  engine_workflow_destroy(wf);
  wf = load_ok(HEAD
               "  a: { wait: 1s, next: check }\n"
               "  check: { choice: [ { when: \"true\", next: a } ] }\n");
  engine_workflow_destroy(wf);
}

static void test_durations_and_retry(void **state)
{
  (void)state;
  expect_error(HEAD "  a: { do: exec, with: { argv: [x] }, timeout: 5x, "
               "next: a }\n",
               "wf.yaml:5:48: error: invalid 'timeout' in state 'a': unknown "
               "unit 'x' in '5x' (hint: durations look like 250ms, 5s, 1m30s, "
               "2h or 1d)");
  expect_error(HEAD "  a: { wait: -1s, next: a }\n",
               "wf.yaml:5:14: error: invalid 'wait' in state 'a': negative "
               "duration '-1s' (hint: durations look like 250ms, 5s, 1m30s, "
               "2h or 1d)");
  /* "  a: { do: exec, with: { argv: [x] }, retry: { attempts: " is 57 */
  expect_error(HEAD "  a: { do: exec, with: { argv: [x] }, retry: { attempts: "
               "0 }, next: a }\n",
               "wf.yaml:5:58: error: 'attempts' in the retry of state 'a' must "
               "be at least 1, got 0 (hint: 1 means no retry)");
  /* "  a: { do: exec, with: { argv: [x] }, retry: { backoff: " is 56 */
  expect_error(HEAD "  a: { do: exec, with: { argv: [x] }, retry: { backoff: "
               "0.5 }, next: a }\n",
               "wf.yaml:5:57: error: 'backoff' in the retry of state 'a' must "
               "be at least 1, got 0.5 (hint: 1 keeps the delay constant)");
  /* "  a: { do: exec, with: { argv: [x] }, retry: { delay: " is 54 */
  expect_error(HEAD "  a: { do: exec, with: { argv: [x] }, retry: { delay: "
               "1m1h }, next: a }\n",
               "wf.yaml:5:55: error: invalid 'delay' in the retry of state "
               "'a': units out of order in '1m1h' (hint: durations look like "
               "250ms, 5s, 1m30s, 2h or 1d)");
}

static void test_params_declarations(void **state)
{
  (void)state;
  /* "  n: { type: " is 13 characters */
  expect_error("cairn: 1\nname: t\nparams:\n  n: { type: int }\n",
               "wf.yaml:4:14: error: unknown type 'int' in param 'n' (hint: "
               "did you mean 'integer'?)");
  expect_error("cairn: 1\nname: t\nparams:\n  n: { type: strig }\n",
               "wf.yaml:4:14: error: unknown type 'strig' in param 'n' (hint: "
               "did you mean 'string'?)");
  /* "  n: { type: integer, default: " is 31 characters */
  expect_error("cairn: 1\nname: t\nparams:\n  n: { type: integer, default: "
               "abc }\n",
               "wf.yaml:4:32: error: 'default' in param 'n' must be an "
               "integer, got a string (hint: the param is declared 'type: "
               "integer')");
  /* "  v: { default: " is 16 characters */
  expect_error("cairn: 1\nname: t\nparams:\n  v: { default: \"1.4\", pattern: "
               "\"^[0-9]+\\\\.[0-9]+\\\\.[0-9]+$\" }\n",
               "wf.yaml:4:17: error: 'default' in param 'v' must match "
               "'^[0-9]+\\.[0-9]+\\.[0-9]+$', got '1.4' (hint: change the "
               "default or the pattern)");
  expect_error("cairn: 1\nname: t\nparams:\n  v: { pattern: \"a(\" }\n",
               "wf.yaml:4:17: error: invalid 'pattern' in param 'v': "
               "Unmatched ( or \\( (hint: patterns are POSIX extended regular "
               "expressions)");
  /* patterns that would make regcomp or regexec blow up */
  expect_error("cairn: 1\nname: t\nparams:\n  v: { pattern: \"^[0-9]+++$\" }\n",
               "wf.yaml:4:17: error: invalid 'pattern' in param 'v': "
               "repetition operator '+' right after another (hint: patterns "
               "are POSIX extended regular expressions)");
  expect_error("cairn: 1\nname: t\nparams:\n"
               "  v: { pattern: \"((a{20}){20}){20}\" }\n",
               "wf.yaml:4:17: error: invalid 'pattern' in param 'v': too "
               "complex: its repetitions make more than 10000 copies (hint: "
               "patterns are POSIX extended regular expressions)");
  expect_error("cairn: 1\nname: t\nparams:\n  v: { pattern: '(a)\\1' }\n",
               "wf.yaml:4:17: error: invalid 'pattern' in param 'v': "
               "back-references such as '\\1' are not supported (hint: "
               "patterns are POSIX extended regular expressions)");
  /* "  n: { default: 1, pattern: " is 28 characters */
  expect_error("cairn: 1\nname: t\nparams:\n  n: { default: 1, pattern: x }\n",
               "wf.yaml:4:29: error: 'pattern' in param 'n' only applies to "
               "strings (hint: remove it, or declare 'type: string')");
  expect_error("cairn: 1\nname: t\nparams:\n  n: { default: ~ }\n",
               "wf.yaml:4:17: error: 'default' in param 'n' cannot be null "
               "(hint: remove 'default' to make the param required)");
  expect_error("cairn: 1\nname: t\nparams:\n  n: 5\n",
               "wf.yaml:4:6: error: param 'n' must be a mapping, got an "
               "integer (hint: write 'n: { default: VALUE }', or 'n: {}' for "
               "a required string)");
}

static void test_environments(void **state)
{
  (void)state;
  /* "  prod: { after: " is 17 characters */
  expect_error("cairn: 1\nname: t\nenvironments:\n  dev: {}\n"
               "  prod: { after: dve }\n",
               "wf.yaml:5:18: error: unknown environment 'dve' in 'after' of "
               "environment 'prod' (hint: did you mean 'dev'?)");
  /* "  b: { after: " is 14 characters; reported at the first of the cycle */
  expect_error("cairn: 1\nname: t\nenvironments:\n  x: {}\n  b: { after: c }\n"
               "  c: { after: b }\n",
               "wf.yaml:5:15: error: environment 'b' comes after itself: b -> "
               "c -> b (hint: remove one of these 'after' keys)");
  expect_error("cairn: 1\nname: t\nenvironments:\n  a: { after: a }\n",
               "wf.yaml:4:15: error: environment 'a' comes after itself: a -> "
               "a (hint: remove one of these 'after' keys)");
}

/* Lines 1-7, states from line 8. */
#define HEAD2                                                               \
  "cairn: 1\nname: t\nparams: { release: { default: \"1.0\" } }\n"           \
  "secrets: [TOKEN]\nenvironments: { dev: { vars: { port: 1 } } }\n"         \
  "start: a\nstates:\n"
/* A do state whose argv holds one template; the quote is at column 33 and
 * the text of the template starts at column 34. */
#define ONE(tpl)                                                            \
  HEAD2 "  a: { do: exec, with: { argv: [\"" tpl "\"] }, next: b }\n"        \
        "  b: { succeed: true }\n"

static void test_templates(void **state)
{
  struct engine_workflow *wf;
  (void)state;

  /* "}}" at offset 7 of "{{ 1 + }}": 34 + 7 */
  expect_error(ONE("{{ 1 + }}"), "wf.yaml:8:41: error: expected a value "
               "after '+' in state 'a' (hint: write a literal or a reference "
               "after it, or remove it)");
  /* every reference starts at offset 3: 34 + 3 */
  expect_error(ONE("{{ params.relese }}"), "wf.yaml:8:37: error: unknown "
               "param 'relese' in state 'a' (hint: did you mean 'release'?)");
  expect_error(ONE("{{ vars.prot }}"), "wf.yaml:8:37: error: unknown var "
               "'prot' in state 'a' (hint: declare it in the 'vars' of an "
               "environment)");
  expect_error(ONE("{{ secrets.TOKN }}"), "wf.yaml:8:37: error: unknown "
               "secret 'TOKN' in state 'a' (hint: did you mean 'TOKEN'?)");
  expect_error(ONE("{{ secrets.OTHER }}"), "wf.yaml:8:37: error: unknown "
               "secret 'OTHER' in state 'a' (hint: add it to 'secrets')");
  expect_error(ONE("{{ states.zz.output.x }}"), "wf.yaml:8:37: error: "
               "reference to unknown state 'zz' in state 'a' (hint: states "
               "are a, b)");
  expect_error(ONE("{{ states.b.output.x }}"), "wf.yaml:8:37: error: "
               "reference to the output of succeed state 'b' in state 'a' "
               "(hint: only do, parallel, map and use states have outputs)");
  expect_error(ONE("{{ states.a.output.x }}"), "wf.yaml:8:37: error: "
               "reference to the state's own output in state 'a' (hint: "
               "states.a.output is only available in its undo)");
  expect_error(ONE("{{ run.user }}"), "wf.yaml:8:37: error: unknown "
               "reference 'run.user' in state 'a' (hint: use run.id or "
               "run.dir)");
  expect_error(ONE("{{ self.x }}"), "wf.yaml:8:37: error: use of 'self' "
               "outside undo, probe and ready in state 'a' (hint: use "
               "states.NAME.output)");
  expect_error(ONE("{{ item.x }}"), "wf.yaml:8:37: error: use of 'item' "
               "outside a map state in state 'a' (hint: item is only "
               "available inside map states)");
  /* after some text: "port={{ " puts the reference at offset 8 */
  expect_error(ONE("port={{ vars.nope }}"), "wf.yaml:8:42: error: unknown "
               "var 'nope' in state 'a' (hint: declare it in the 'vars' of "
               "an environment)");
  /* vars with no environments at all; a plain scalar has no quote:
   * "      shell: " is 13, "echo {{ " 8 more */
  expect_error(HEAD "  a:\n    do: exec\n    with:\n"
               "      shell: echo {{ vars.x }}\n" /* 8 */
               "    next: a\n",
               "wf.yaml:8:22: error: use of 'vars' without environments in "
               "state 'a' (hint: declare 'environments' with 'vars')");
  /* deep in `with`: "  a: { do: exec, with: { argv: [x], env: { K: " is
   * 46, the quote at 47, "env" 3 bytes into the string */
  expect_error(HEAD2 "  a: { do: exec, with: { argv: [x], env: { K: "
               "\"{{ env }}\" } }, next: b }\n  b: { succeed: true }\n",
               "wf.yaml:8:51: error: expected env.NAME in state 'a'");

  /* accepted: env.ANY, run.id, run.dir, states of an earlier or later do
   * state, a state's own output in its undo, self in probe and undo */
  wf = load_ok(HEAD2
               "  a:\n"
               "    do: exec\n"
               "    with: { argv: [\"{{ env.HOME }}\","
               " \"{{ run.id }}/{{ run.dir }}\","
               " \"{{ states.b.output.x }}\", \"{{ params.release }}\","
               " \"{{ secrets.TOKEN }}\", \"{{ vars.port + 1 }}\"] }\n"
               "    probe: { do: exec, with: { argv: [\"{{ self.x }}\"] } }\n"
               "    undo: { do: exec,"
               " with: { argv: [\"{{ states.a.output.y }}\","
               " \"{{ self.x }}\"] } }\n"
               "    next: b\n"
               "  b: { do: exec, with: { argv: [\"{{ states.a.output.x }}\"] },"
               " next: c }\n"
               "  c: { succeed: true }\n");
  engine_workflow_destroy(wf);
}

static void test_choice_when(void **state)
{
  (void)state;
  /* with braces: the quote is at column 15 ("      - when: " is 14), the
   * expression starts 3 bytes into the string */
  expect_error(HEAD
               "  a:\n"
               "    choice:\n"
               "      - when: \"{{ params.x > 1 }}\"\n"
               "        next: b\n"
               "  b: { succeed: true }\n",
               "wf.yaml:7:19: error: unknown param 'x' in choice 1 of state "
               "'a' (hint: declare it under 'params')");
  /* without braces, plain: the reference is the first byte */
  expect_error(HEAD
               "  a:\n"
               "    choice:\n"
               "      - when: b\n"
               "        next: b\n"
               "      - when: params.x > 1\n"
               "        next: b\n"
               "  b: { succeed: true }\n",
               "wf.yaml:7:15: error: unknown name 'b' in choice 1 of state "
               "'a' (hint: use params.b, vars.b, env.B, secrets.B, "
               "states.NAME.output.KEY, run.id or run.dir)");
  expect_error(HEAD
               "  a:\n"
               "    choice:\n"
               "      - when: \"true\"\n"
               "        next: b\n"
               "      - when: params.x > 1\n" /* 9 */
               "        next: b\n"
               "  b: { succeed: true }\n",
               "wf.yaml:9:15: error: unknown param 'x' in choice 2 of state "
               "'a' (hint: declare it under 'params')");
  expect_error(HEAD
               "  a:\n"
               "    choice:\n"
               "      - when: \"{{ }}\"\n"
               "        next: b\n"
               "  b: { succeed: true }\n",
               "wf.yaml:7:15: error: 'when' in choice 1 of state 'a' is empty "
               "(hint: write an expression, e.g. 'params.replicas > 1')");
}

static void test_adapters(void **state)
{
  struct engine_workflow *wf = (struct engine_workflow *)1;
  struct cairn_error err = {0};
  static const char yaml[] = HEAD "  a: { do: exce, next: a }\n";
  (void)state;

  /* the list of adapters grows; the start of the message does not */
  assert_int_equal(engine_workflow_load_buffer(&wf, "wf.yaml", yaml,
                                               strlen(yaml), &err),
                   CAIRN_E_WORKFLOW);
  assert_null(wf);
  {
    const char *want = "wf.yaml:5:12: error: unknown adapter 'exce' in state "
                       "'a' (hint: did you mean 'exec'? known adapters are ";
    assert_true(strncmp(err.msg, want, strlen(want)) == 0);
  }
  assert_non_null(strstr(err.msg, "exec"));

  /* the bad input's key: "  a: { do: exec, with: { argv: [x], " is 36 */
  expect_error(HEAD "  a: { do: exec, with: { argv: [x], argz: 1 }, next: a "
               "}\n",
               "wf.yaml:5:37: error: unknown input 'argz' for exec in state "
               "'a' (hint: did you mean 'argv'?)");
  /* no key to blame: at the `with` mapping ("  a: { do: exec, with: ") */
  expect_error(HEAD "  a: { do: exec, with: { cwd: /tmp }, next: a }\n",
               "wf.yaml:5:24: error: either 'argv' or 'shell' is required in "
               "state 'a'");
  /* no `with` at all: at the `do` key */
  expect_error(HEAD "  a: { do: exec, next: a }\n",
               "wf.yaml:5:8: error: either 'argv' or 'shell' is required in "
               "state 'a'");
  /* probe and undo `with` are checked the same way */
  expect_error(HEAD "  a: { do: exec, with: { argv: [x] }, undo: { do: exec, "
               "with: { argz: [y] } }, next: a }\n",
               "wf.yaml:5:65: error: unknown input 'argz' for exec in the undo "
               "of state 'a' (hint: did you mean 'argv'?)");
}

/* ---- engine_workflow_params -------------------------------------------- */

static const char params_yaml[] =
  "cairn: 1\nname: t\n"
  "params:\n"
  "  release: { pattern: \"^[0-9]+$\" }\n"
  "  replicas: { default: 1 }\n"
  "  ratio: { type: number, default: 0.5 }\n"
  "  debug: { default: false }\n"
  "  note: { default: \"\" }\n"
  "start: a\nstates:\n  a: { succeed: true }\n";

static void expect_params_error(const struct engine_workflow *wf,
                                const char *const *sets, size_t n,
                                const char *want)
{
  struct cairn_error err = {0};
  json_t *out = (json_t *)1;

  assert_int_equal(engine_workflow_params(wf, sets, n, &out, &err),
                   CAIRN_E_INVAL);
  assert_null(out);
  assert_string_equal(err.msg, want);
}

static void test_params(void **state)
{
  struct engine_workflow *wf = load_ok(params_yaml);
  struct cairn_error err = {0};
  json_t *out = NULL;
  (void)state;

  {
    const char *sets[] = {"release=12", "replicas=3", "ratio=2",
                          "debug=true", "note=a=b"};
    assert_int_equal(engine_workflow_params(wf, sets, 5, &out, &err), 0);
    assert_string_equal(json_string_value(json_object_get(out, "release")),
                        "12");
    assert_true(json_is_integer(json_object_get(out, "replicas")));
    assert_int_equal(json_integer_value(json_object_get(out, "replicas")), 3);
    assert_true(json_is_number(json_object_get(out, "ratio")));
    assert_true(json_number_value(json_object_get(out, "ratio")) == 2.0);
    assert_true(json_is_true(json_object_get(out, "debug")));
    assert_string_equal(json_string_value(json_object_get(out, "note")),
                        "a=b");
    json_decref(out);
  }
  {
    /* defaults stay where nothing is set; the last set wins */
    const char *sets[] = {"release=1", "release=2", "ratio=-1.25e1"};
    assert_int_equal(engine_workflow_params(wf, sets, 3, &out, &err), 0);
    assert_string_equal(json_string_value(json_object_get(out, "release")),
                        "2");
    assert_int_equal(json_integer_value(json_object_get(out, "replicas")), 1);
    assert_true(json_real_value(json_object_get(out, "ratio")) == -12.5);
    assert_true(json_is_false(json_object_get(out, "debug")));
    assert_string_equal(json_string_value(json_object_get(out, "note")), "");
    assert_int_equal(json_object_size(out), 5);
    json_decref(out);
  }
  expect_params_error(wf, NULL, 0, "param 'release' is required (hint: --set "
                      "release=VALUE)");
  {
    const char *sets[] = {"release=1", "replicas=abc"};
    expect_params_error(wf, sets, 2, "param 'replicas' must be an integer, "
                        "got 'abc'");
  }
  {
    const char *sets[] = {"release=1", "replicas=1.5"};
    expect_params_error(wf, sets, 2, "param 'replicas' must be an integer, "
                        "got '1.5'");
  }
  {
    const char *sets[] = {"release=1", "ratio=0x10"};
    expect_params_error(wf, sets, 2, "param 'ratio' must be a number, got "
                        "'0x10'");
  }
  {
    const char *sets[] = {"release=1", "debug=yes"};
    expect_params_error(wf, sets, 2, "param 'debug' must be a boolean, got "
                        "'yes' (hint: use true or false)");
  }
  {
    const char *sets[] = {"release=1.x"};
    expect_params_error(wf, sets, 1, "param 'release' must match '^[0-9]+$', "
                        "got '1.x'");
  }
  {
    const char *sets[] = {"nope=1"};
    expect_params_error(wf, sets, 1, "unknown param 'nope' (hint: declared "
                        "params are release, replicas, ratio, debug, note)");
  }
  {
    const char *sets[] = {"release"};
    expect_params_error(wf, sets, 1, "invalid param setting 'release' (hint: "
                        "use --set NAME=VALUE)");
  }
  engine_workflow_destroy(wf);

  wf = load_ok(HEAD "  a: { succeed: true }\n");
  assert_int_equal(engine_workflow_params(wf, NULL, 0, &out, &err), 0);
  assert_int_equal(json_object_size(out), 0);
  json_decref(out);
  {
    const char *sets[] = {"x=1"};
    expect_params_error(wf, sets, 1, "unknown param 'x' (hint: this workflow "
                        "declares no params)");
  }
  engine_workflow_destroy(wf);
}

/* ---- use and map ------------------------------------------------------- */

/* A temporary folder for workflows that use others (use: needs files). */
struct tdir {
  char path[PATH_MAX]; /* as made, under /tmp */
  char real[PATH_MAX]; /* realpath: what the loader names used files by */
};

static void tdir_make(struct tdir *d)
{
  char tmpl[] = "/tmp/cairn-use-XXXXXX";
  assert_non_null(mkdtemp(tmpl));
  snprintf(d->path, sizeof d->path, "%s", tmpl);
  assert_non_null(realpath(d->path, d->real));
}

static void tdir_write(const struct tdir *d, const char *name,
                       const char *text)
{
  char p[PATH_MAX + 64];
  FILE *f;
  snprintf(p, sizeof p, "%s/%s", d->path, name);
  assert_non_null(f = fopen(p, "w"));
  fputs(text, f);
  fclose(f);
}

static void tdir_remove(const struct tdir *d, const char *const *names)
{
  char p[PATH_MAX + 64];
  for (; *names; names++) {
    snprintf(p, sizeof p, "%s/%s", d->path, *names);
    unlink(p);
  }
  rmdir(d->path);
}

/* Loads d/name, which must fail with code and exactly want (formatted
 * with d->path for the first %s and d->real for the others, as given). */
static void expect_file_error(const struct tdir *d, const char *name,
                              int code, const char *want)
{
  struct engine_workflow *wf = (struct engine_workflow *)1;
  struct cairn_error err = {0};
  char p[PATH_MAX + 64];

  snprintf(p, sizeof p, "%s/%s", d->path, name);
  assert_int_equal(engine_workflow_load(&wf, p, &err), code);
  assert_null(wf);
  assert_string_equal(err.msg, want);
}

/* The used workflow of the tests below: a required param, a defaulted
 * one, a secret. */
static const char use_sub[] =
  "cairn: 1\n"
  "name: sub\n"
  "params:\n"
  "  port: {}\n"
  "  name: { default: x }\n"
  "secrets: [TOKEN]\n"
  "outputs:\n"
  "  url: \"http://h:{{ params.port }}/{{ params.name }}\"\n"
  "start: s\n"
  "states:\n"
  "  s:\n"
  "    do: exec\n"
  "    with: { argv: [echo, \"{{ params.port }}\", \"{{ secrets.TOKEN }}\"] }\n"
  "    next: done\n"
  "  done: { succeed: true }\n";

/* Lines 1-5 of a workflow that uses sub.yaml; its state u is on line 6 and
 * its `use:` on line 7 ("    use: " is 9 characters). */
#define USE_HEAD "cairn: 1\nname: t\nsecrets: [TOKEN]\nstart: u\nstates:\n"

static const char *const use_files[] = {
  "sub.yaml", "ok.yaml", "unknown.yaml", "missing.yaml", "nosecret.yaml",
  "nofile.yaml", "self.yaml", "c1.yaml", "c2.yaml", "b.yaml", "nested.yaml",
  "std.yaml", "hello.yaml", "notfile.yaml", NULL,
};

static void test_use_inlined(void **state)
{
  struct tdir d;
  struct engine_workflow *wf = NULL, *alone = NULL;
  struct cairn_error err = {0};
  char p[PATH_MAX + 64], want[PATH_MAX + 64];
  const struct engine_state *s;
  (void)state;

  tdir_make(&d);
  tdir_write(&d, "sub.yaml", use_sub);
  tdir_write(&d, "ok.yaml", USE_HEAD
             "  u:\n"
             "    use: sub.yaml\n"
             "    with: { port: \"{{ params.p }}\" }\n"
             "    next: after\n"
             "  after:\n"
             "    do: exec\n"
             "    with: { argv: [echo, \"{{ states.u.output.url }}\"] }\n"
             "    next: done\n"
             "  done: { succeed: true }\n"
             "params:\n"
             "  p: { default: 8000 }\n");
  snprintf(p, sizeof p, "%s/ok.yaml", d.path);
  if (engine_workflow_load(&wf, p, &err) != 0)
    print_error("unexpected error: %s\n", err.msg);
  assert_non_null(wf);

  /* the used states come right after the use state, under its name */
  assert_int_equal(wf->nstates, 5);
  assert_string_equal(wf->states[0].name, "u");
  assert_string_equal(wf->states[1].name, "u/s");
  assert_string_equal(wf->states[2].name, "u/done");
  assert_string_equal(wf->states[3].name, "after");
  assert_string_equal(wf->states[4].name, "done");
  assert_int_equal(wf->states[0].kind, ENGINE_USE);
  assert_string_equal(engine_kind_name(ENGINE_USE), "use");
  assert_string_equal(engine_kind_name(ENGINE_MAP), "map");
  /* transitions inside the frame name full paths; the use state's own
   * next is the using workflow's */
  assert_string_equal(wf->states[1].next, "u/done");
  assert_string_equal(wf->states[0].next, "after");
  assert_non_null(s = engine_workflow_state(wf, "u/s"));
  assert_ptr_equal(s, &wf->states[1]);

  /* one frame, entered by u, holding the used file's params and outputs */
  assert_int_equal(wf->nframes, 1);
  assert_string_equal(wf->frames[0].prefix, "u/");
  assert_string_equal(wf->frames[0].start, "u/s");
  assert_int_equal(wf->frames[0].use_state, 0);
  assert_int_equal(wf->frames[0].parent, -1);
  snprintf(want, sizeof want, "%s/sub.yaml", d.real);
  assert_string_equal(wf->frames[0].file, want);
  assert_int_equal(wf->frames[0].nparams, 2);
  assert_string_equal(wf->frames[0].params[0].name, "port");
  assert_null(wf->frames[0].params[0].default_value);
  assert_non_null(json_object_get(wf->frames[0].outputs, "url"));
  assert_int_equal(wf->states[0].use_frame, 0);
  assert_int_equal(wf->states[0].frame, -1);
  assert_int_equal(wf->states[1].frame, 0);
  assert_int_equal(wf->states[2].frame, 0);
  assert_int_equal(wf->states[3].frame, -1);
  assert_ptr_equal(engine_workflow_frame(wf, &wf->states[1]), &wf->frames[0]);
  assert_null(engine_workflow_frame(wf, &wf->states[0]));
  /* the with keeps its templates, rendered when u is entered */
  assert_string_equal(json_string_value(json_object_get(wf->states[0].use_with,
                                                        "port")),
                      "{{ params.p }}");

  /* the hash covers the used file: it is not the using file's alone */
  snprintf(p, sizeof p, "%s/sub.yaml", d.path);
  assert_int_equal(engine_workflow_load(&alone, p, &err), 0);
  assert_string_not_equal(wf->sha256, alone->sha256);
  assert_int_equal(strlen(wf->sha256), 64);
  {
    char before[65];
    memcpy(before, wf->sha256, sizeof before);
    engine_workflow_destroy(wf);
    wf = NULL;
    tdir_write(&d, "sub.yaml", use_sub); /* the same bytes: the same hash */
    snprintf(p, sizeof p, "%s/ok.yaml", d.path);
    assert_int_equal(engine_workflow_load(&wf, p, &err), 0);
    assert_string_equal(wf->sha256, before);
    engine_workflow_destroy(wf);
    wf = NULL;
    /* a changed used file changes the run's hash */
    {
      char changed[sizeof use_sub + 16];
      snprintf(changed, sizeof changed, "%s# changed\n", use_sub);
      tdir_write(&d, "sub.yaml", changed);
    }
    assert_int_equal(engine_workflow_load(&wf, p, &err), 0);
    assert_string_not_equal(wf->sha256, before);
  }
  engine_workflow_destroy(wf);
  engine_workflow_destroy(alone);
  tdir_remove(&d, use_files);
}

static void test_use_errors(void **state)
{
  struct tdir d;
  char want[3 * PATH_MAX];
  (void)state;

  tdir_make(&d);
  tdir_write(&d, "sub.yaml", use_sub);

  /* an unknown with key: "    with: { port: 1, " is 21 characters */
  tdir_write(&d, "unknown.yaml", USE_HEAD
             "  u:\n"
             "    use: sub.yaml\n"
             "    with: { port: 1, prot: 2 }\n"
             "    next: done\n"
             "  done: { succeed: true }\n");
  snprintf(want, sizeof want, "%s/unknown.yaml:8:22: error: unknown param "
           "'prot' of '%s/sub.yaml' in the 'with' of state 'u' (hint: did "
           "you mean 'port'?)", d.path, d.real);
  expect_file_error(&d, "unknown.yaml", CAIRN_E_WORKFLOW, want);

  /* a required param not given: at the `use` key */
  tdir_write(&d, "missing.yaml", USE_HEAD
             "  u:\n"
             "    use: sub.yaml\n"
             "    with: { name: y }\n"
             "    next: done\n"
             "  done: { succeed: true }\n");
  snprintf(want, sizeof want, "%s/missing.yaml:7:5: error: state 'u' does "
           "not give param 'port' of '%s/sub.yaml', which has no default "
           "(hint: add 'port: VALUE' to its 'with')", d.path, d.real);
  expect_file_error(&d, "missing.yaml", CAIRN_E_WORKFLOW, want);

  /* the used file's secret, not declared here (no secrets line: the use
   * is on line 6) */
  tdir_write(&d, "nosecret.yaml",
             "cairn: 1\nname: t\nstart: u\nstates:\n"
             "  u:\n"
             "    use: sub.yaml\n"
             "    with: { port: 1 }\n"
             "    next: done\n"
             "  done: { succeed: true }\n");
  snprintf(want, sizeof want, "%s/nosecret.yaml:6:5: error: '%s/sub.yaml', "
           "used by state 'u', needs secret 'TOKEN' (hint: add it to this "
           "workflow's 'secrets')", d.path, d.real);
  expect_file_error(&d, "nosecret.yaml", CAIRN_E_WORKFLOW, want);

  /* a workflow that uses itself: at the value of `use` */
  tdir_write(&d, "self.yaml",
             "cairn: 1\nname: self\nstart: u\nstates:\n"
             "  u:\n"
             "    use: self.yaml\n"
             "    next: done\n"
             "  done: { succeed: true }\n");
  snprintf(want, sizeof want, "%s/self.yaml:6:10: error: 'self.yaml' in "
           "state 'u' uses itself through 'use' (hint: a workflow cannot use "
           "a workflow that uses it)", d.path);
  expect_file_error(&d, "self.yaml", CAIRN_E_WORKFLOW, want);

  /* a folder or a device: refused at the `use`, before any read (a
   * device such as /dev/zero would be read until the size limit) */
  {
    static const char *const notfile[][2] = {
      {"/tmp", "a folder"}, {"/dev/zero", "a device, FIFO or socket"}};
    for (size_t i = 0; i < sizeof notfile / sizeof notfile[0]; i++) {
      char text[256];
      snprintf(text, sizeof text, "cairn: 1\nname: t\nstart: u\nstates:\n"
               "  u:\n    use: %s\n    next: done\n"
               "  done: { succeed: true }\n", notfile[i][0]);
      tdir_write(&d, "notfile.yaml", text);
      snprintf(want, sizeof want, "%s/notfile.yaml:6:10: error: '%s' is not "
               "a file (%s) in state 'u' (hint: 'use' names a workflow's "
               ".yaml file)", d.path, notfile[i][0], notfile[i][1]);
      expect_file_error(&d, "notfile.yaml", CAIRN_E_WORKFLOW, want);
    }
  }

  /* through another: the error is in the file whose use closes the
   * cycle, named as the loader reached it */
  tdir_write(&d, "c1.yaml",
             "cairn: 1\nname: c1\nstart: u\nstates:\n"
             "  u:\n"
             "    use: c2.yaml\n"
             "    next: done\n"
             "  done: { succeed: true }\n");
  tdir_write(&d, "c2.yaml",
             "cairn: 1\nname: c2\nstart: u\nstates:\n"
             "  u:\n"
             "    use: c1.yaml\n"
             "    next: done\n"
             "  done: { succeed: true }\n");
  snprintf(want, sizeof want, "%s/c2.yaml:6:10: error: 'c1.yaml' in state "
           "'u' uses itself through 'use' (hint: a workflow cannot use a "
           "workflow that uses it)", d.real);
  expect_file_error(&d, "c1.yaml", CAIRN_E_WORKFLOW, want);

  /* a missing used file is refused, naming it (see
   * test_use_missing_file_position for where it should point) */
  tdir_write(&d, "nofile.yaml",
             "cairn: 1\nname: t\nstart: u\nstates:\n"
             "  u:\n"
             "    use: nothere.yaml\n"
             "    next: done\n"
             "  done: { succeed: true }\n");
  {
    struct engine_workflow *wf = (struct engine_workflow *)1;
    struct cairn_error err = {0};
    char p[PATH_MAX + 64], tail[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/nofile.yaml", d.path);
    assert_int_not_equal(engine_workflow_load(&wf, p, &err), 0);
    assert_null(wf);
    snprintf(tail, sizeof tail, "%s/nothere.yaml': No such file or directory",
             d.real);
    assert_non_null(strstr(err.msg, tail));
  }

  /* cairn:NAME.yaml: looked up in $CAIRN_WORKFLOWS */
  tdir_write(&d, "hello.yaml",
             "cairn: 1\nname: hello\nstart: done\nstates:\n"
             "  done: { succeed: true }\n");
  tdir_write(&d, "std.yaml",
             "cairn: 1\nname: std\nstart: u\nstates:\n"
             "  u:\n"
             "    use: cairn:hello.yaml\n"
             "    next: done\n"
             "  done: { succeed: true }\n");
  {
    struct engine_workflow *wf = NULL;
    struct cairn_error err = {0};
    char p[PATH_MAX + 64];
    char *old = getenv("CAIRN_WORKFLOWS");
    old = old ? strdup(old) : NULL;
    setenv("CAIRN_WORKFLOWS", d.path, 1);
    snprintf(p, sizeof p, "%s/std.yaml", d.path);
    assert_int_equal(engine_workflow_load(&wf, p, &err), 0);
    assert_string_equal(wf->states[1].name, "u/done");
    engine_workflow_destroy(wf);
    /* nowhere: at the value of `use` */
    setenv("CAIRN_WORKFLOWS", "/nonexistent", 1);
    wf = (struct engine_workflow *)1;
    assert_int_equal(engine_workflow_load(&wf, p, &err), CAIRN_E_WORKFLOW);
    assert_null(wf);
    snprintf(want, sizeof want, "%s:6:10: error: no standard workflow "
             "'hello.yaml' in /nonexistent, ", p);
    assert_true(strncmp(err.msg, want, strlen(want)) == 0);
    if (old) {
      setenv("CAIRN_WORKFLOWS", old, 1);
      free(old);
    } else {
      unsetenv("CAIRN_WORKFLOWS");
    }
  }
  tdir_remove(&d, use_files);
}

static void test_use_missing_file_position(void **state)
{
  struct tdir d;
  struct engine_workflow *wf = (struct engine_workflow *)1;
  struct cairn_error err = {0};
  char p[PATH_MAX + 64], want[PATH_MAX + 64];
  (void)state;

  tdir_make(&d);
  tdir_write(&d, "nofile.yaml",
             "cairn: 1\nname: t\nstart: u\nstates:\n"
             "  u:\n"
             "    use: nothere.yaml\n"
             "    next: done\n"
             "  done: { succeed: true }\n");
  snprintf(p, sizeof p, "%s/nofile.yaml", d.path);
  {
    int rc = engine_workflow_load(&wf, p, &err);
    tdir_remove(&d, use_files);
    assert_int_equal(rc, CAIRN_E_WORKFLOW);
  }
  snprintf(want, sizeof want, "%s:6:10: error: ", p);
  assert_true(strncmp(err.msg, want, strlen(want)) == 0);
}

static void test_use_nested_frames(void **state)
{
  struct tdir d;
  struct engine_workflow *wf = NULL;
  struct cairn_error err = {0};
  char p[PATH_MAX + 64];
  (void)state;

  tdir_make(&d);
  tdir_write(&d, "sub.yaml", use_sub);
  tdir_write(&d, "b.yaml",
             "cairn: 1\nname: b\nsecrets: [TOKEN]\nstart: y\nstates:\n"
             "  y:\n"
             "    use: sub.yaml\n"
             "    with: { port: 2 }\n"
             "    next: done\n"
             "  done: { succeed: true }\n");
  tdir_write(&d, "nested.yaml", USE_HEAD
             "  u:\n"
             "    use: b.yaml\n"
             "    next: done\n"
             "  done: { succeed: true }\n");
  snprintf(p, sizeof p, "%s/nested.yaml", d.path);
  assert_int_equal(engine_workflow_load(&wf, p, &err), 0);
  tdir_remove(&d, use_files);
  assert_int_equal(wf->nstates, 6);
  assert_string_equal(wf->states[2].name, "u/y/s");
  assert_int_equal(wf->nframes, 2);
  assert_string_equal(wf->frames[0].prefix, "u/");
  assert_string_equal(wf->frames[0].start, "u/y");
  assert_string_equal(wf->frames[1].prefix, "u/y/");
  assert_int_equal(wf->frames[1].parent, 0);
  assert_int_equal(wf->frames[1].use_state, 1);
  /* every frame's start must be one of the workflow's states */
  for (size_t i = 0; i < wf->nframes; i++)
    assert_non_null(engine_workflow_state(wf, wf->frames[i].start));
  assert_string_equal(wf->frames[1].start, "u/y/s");
  engine_workflow_destroy(wf);
}

/* A parallel state of n branches: the first `exec`s of them exec, the
 * rest http.check. */
static struct engine_workflow *fan_out(size_t n, size_t execs)
{
  size_t cap = 200 + n * 120, len;
  char *y = malloc(cap);
  struct engine_workflow *wf;

  assert_non_null(y);
  len = (size_t)snprintf(y, cap, HEAD "  a:\n    parallel:\n");
  for (size_t i = 0; i < n; i++)
    len += (size_t)snprintf(y + len, cap - len,
                            i < execs
                                ? "      b%zu: { do: exec, with: { argv: "
                                  "[\"true\"] } }\n"
                                : "      b%zu: { do: http.check, with: { url: "
                                  "\"http://127.0.0.1:1/\" } }\n",
                            i);
  snprintf(y + len, cap - len, "    next: z\n  z: { succeed: true }\n");
  wf = load_ok(y);
  free(y);
  return wf;
}

/* What the engine makes room for before a fan-out starts: each branch's
 * adapter's heap_hint, else the default, and nothing for a narrow one. */
static void test_branches_heap(void **state)
{
  const struct adapter_desc *ex = adapter_find("exec");
  struct engine_workflow *wf;

  (void)state;
  assert_true(ex->heap_hint > ENGINE_BRANCH_HEAP);
  assert_int_equal(adapter_find("http.check")->heap_hint, 0);

  wf = fan_out(ENGINE_RESERVE_BRANCHES - 1, 0);
  assert_int_equal(engine_state_branches_heap(engine_workflow_state(wf, "a")),
                   0);
  engine_workflow_destroy(wf);

  wf = fan_out(100, 0);
  assert_int_equal(engine_state_branches_heap(engine_workflow_state(wf, "a")),
                   100 * ENGINE_BRANCH_HEAP);
  assert_int_equal(engine_state_branches_heap(engine_workflow_state(wf, "z")),
                   0);
  engine_workflow_destroy(wf);

  wf = fan_out(ENGINE_RESERVE_BRANCHES, 10);
  assert_int_equal(engine_state_branches_heap(engine_workflow_state(wf, "a")),
                   10 * ex->heap_hint +
                       (ENGINE_RESERVE_BRANCHES - 10) * ENGINE_BRANCH_HEAP);
  engine_workflow_destroy(wf);
  assert_int_equal(engine_state_branches_heap(NULL), 0);
}

static void test_map(void **state)
{
  struct engine_workflow *wf;
  const struct engine_state *s;
  (void)state;

  /* item in with, key, undo and probe; a list or a template for items */
  wf = load_ok(HEAD
               "  a:\n"
               "    map:\n"
               "      items: [x, \"{{ params.p }}\"]\n"
               "      key: \"{{ item }}\"\n"
               "      max_concurrency: 2\n"
               "      do: exec\n"
               "      with: { argv: [echo, \"{{ item }}\"] }\n"
               "      probe: { do: exec, with: { argv: [test, \"{{ item }}\"] } }\n"
               "      undo: { do: exec, with: { argv: [rm, \"{{ item }}\", "
               "\"{{ self.output.exit_code }}\"] } }\n"
               "    next: b\n"
               "  b:\n"
               "    do: exec\n"
               "    with: { argv: [echo, \"{{ states.a.output.x.exit_code }}\"] }\n"
               "    next: c\n"
               "  c: { succeed: true }\n"
               "params:\n"
               "  p: { default: y }\n");
  s = &wf->states[0];
  assert_int_equal(s->kind, ENGINE_MAP);
  assert_int_equal(s->max_concurrency, 2);
  assert_string_equal(s->map_key, "{{ item }}");
  assert_true(json_is_array(s->map_items));
  assert_string_equal(s->action.adapter, "exec");
  assert_non_null(s->action.undo);
  assert_non_null(s->action.probe);
  engine_workflow_destroy(wf);

  /* without max_concurrency: 0, all at once */
  wf = load_ok(HEAD "  a: { map: { items: \"{{ params.l }}\", do: exec, "
               "with: { argv: [echo] } }, next: b }\n"
               "  b: { succeed: true }\n"
               "params:\n  l: { default: [] }\n");
  assert_int_equal(wf->states[0].max_concurrency, 0);
  assert_null(wf->states[0].map_key);
  assert_true(json_is_string(wf->states[0].map_items));
  engine_workflow_destroy(wf);
}

static void test_map_errors(void **state)
{
  (void)state;

  /* use and do in one map: at the action's key */
  expect_error(HEAD
               "  a:\n"
               "    map:\n"
               "      items: [x, y]\n"
               "      use: sub.yaml\n"
               "      do: exec\n"
               "    next: b\n"
               "  b: { succeed: true }\n",
               "wf.yaml:9:7: error: the map of state 'a' has both 'use' and "
               "'do' (hint: a map runs either one action (do, with, retry, "
               "...) or a used workflow (use, with) per item)");
  /* item outside a map: "  a: { do: exec, with: { argv: [echo, \"{{ " is
   * 42 characters */
  expect_error(HEAD "  a: { do: exec, with: { argv: [echo, \"{{ item }}\"] }, "
               "next: b }\n"
               "  b: { succeed: true }\n",
               "wf.yaml:5:43: error: use of 'item' outside a map state in "
               "state 'a' (hint: item is only available inside map states)");
  /* nor in a map's items ("      items: \"{{ " is 17) */
  expect_error(HEAD
               "  a:\n"
               "    map:\n"
               "      items: \"{{ item }}\"\n"
               "      do: exec\n"
               "      with: { argv: [echo] }\n"
               "    next: b\n"
               "  b: { succeed: true }\n",
               "wf.yaml:7:18: error: use of 'item' outside a map state in "
               "state 'a' (hint: item is only available inside map states)");
  /* nor in the next state, after a map */
  expect_error(HEAD
               "  a:\n"
               "    map: { items: [x], do: exec, with: { argv: [echo] } }\n"
               "    next: b\n"
               "  b: { do: exec, with: { argv: [echo, \"{{ item }}\"] }, "
               "next: c }\n"
               "  c: { succeed: true }\n",
               "wf.yaml:8:43: error: use of 'item' outside a map state in "
               "state 'b' (hint: item is only available inside map states)");
  /* no items: at the map's mapping (its first key, "      do") */
  expect_error(HEAD
               "  a:\n"
               "    map:\n"
               "      do: exec\n"
               "      with: { argv: [echo, \"{{ item }}\"] }\n"
               "    next: b\n"
               "  b: { succeed: true }\n",
               "wf.yaml:7:7: error: missing key 'items' in the map of state "
               "'a' (hint: a list, or a template that gives one, e.g. \"{{ "
               "params.services }}\")");
  /* items neither a list nor a string ("    map: { items: " is 18) */
  expect_error(HEAD "  a:\n    map: { items: { x: 1 }, do: exec, with: { "
               "argv: [echo] } }\n    next: b\n  b: { succeed: true }\n",
               "wf.yaml:6:19: error: 'items' in state 'a' must be a list or a "
               "template string, got a mapping");
  /* items naming a param of another type than list: every run would
   * fail there ("    map: { items: " is 18) */
  expect_error("cairn: 1\nname: t\nparams: { s: { default: abc }, n: { "
               "type: list, default: [] } }\nstart: a\nstates:\n"
               "  a:\n    map: { items: \"{{ params.s }}\", do: exec, with: "
               "{ argv: [echo] } }\n    next: b\n  b: { succeed: true }\n",
               "wf.yaml:7:19: error: 'items' in state 'a' reads param 's', "
               "which is a string, not a list (hint: declare it 'type: "
               "list')");
  engine_workflow_destroy(
      load_ok("cairn: 1\nname: t\nparams: { n: { type: list, default: [] "
              "} }\nstart: a\nstates:\n  a:\n    map: { items: \"{{ "
              "params.n }}\", do: exec, with: { argv: [echo] } }\n    "
              "next: b\n  b: { succeed: true }\n"));
  /* max_concurrency 0 ("    map: { items: [x], max_concurrency: " is 40) */
  expect_error(HEAD "  a:\n    map: { items: [x], max_concurrency: 0, do: "
               "exec, with: { argv: [echo] } }\n    next: b\n"
               "  b: { succeed: true }\n",
               "wf.yaml:6:41: error: 'max_concurrency' in state 'a' must be at "
               "least 1, got 0 (hint: 1 runs one instance at a time)");
  /* no action ("    map" at column 5 holds it: at the map's mapping) */
  expect_error(HEAD "  a:\n    map: { items: [x], with: { argv: [echo] } }\n"
               "    next: b\n  b: { succeed: true }\n",
               "wf.yaml:6:10: error: missing key 'do' in state 'a' (hint: name "
               "an adapter, e.g. 'do: exec')");
  /* next is the state's, not the map's ("    map: { items: [x], do: exec, "
   * "with: { argv: [echo] }, " is 57) */
  expect_error(HEAD "  a:\n    map: { items: [x], do: exec, with: { argv: "
               "[echo] }, next: b }\n    next: b\n  b: { succeed: true }\n",
               "wf.yaml:6:58: error: unknown key 'next' in state 'a' (hint: "
               "allowed keys are items, key, max_concurrency, fail_fast, do, with, retry, "
               "timeout, idempotent, probe, undo, ready, use)");
  /* a map state needs next */
  expect_error(HEAD "  a:\n    map: { items: [x], do: exec, with: { argv: "
               "[echo] } }\n",
               "wf.yaml:5:3: error: missing key 'next' in state 'a' (hint: "
               "name the state that comes after it)");
}

/* ---- limits ------------------------------------------------------------ */

static void test_limits(void **state)
{
  struct engine_workflow *wf = (struct engine_workflow *)1;
  struct cairn_error err = {0};
  size_t n = (size_t)16 * 1024 * 1024 + 1;
  char *big = malloc(n), *nest;
  (void)state;

  /* too large */
  assert_non_null(big);
  memset(big, '#', n);
  assert_int_equal(engine_workflow_load_buffer(&wf, "wf.yaml", big, n, &err),
                   CAIRN_E_WORKFLOW);
  assert_null(wf);
  assert_string_equal(err.msg, "wf.yaml: error: the file is larger than 16 "
                               "MiB");
  free(big);

  /* alias expansion is bounded (a "billion laughs"): before line 6 there
   * are 123451 nodes (the map, 5 keys, then 11, 111, ... 111111), key f
   * and its list make 123453, and each *e adds 111111: the 8th one, at
   * column 8 + 7 * 4, passes 1000000 */
  expect_error("a: &a [x, x, x, x, x, x, x, x, x, x]\n"
               "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
               "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
               "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
               "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
               "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n",
               "wf.yaml:6:36: error: the document has more than 1000000 nodes "
               "(hint: split the workflow; an alias counts as a copy of its "
               "anchor)");

  /* so is nesting: 200 '[' */
  nest = calloc(1, 256);
  assert_non_null(nest);
  memset(nest, '[', 200);
  expect_error(nest, "wf.yaml:1:129: error: nesting is deeper than 128 "
               "levels (hint: flatten the data, or keep it in a file the "
               "step reads)");
  free(nest);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_full_workflow),
    cmocka_unit_test(test_lookups),
    cmocka_unit_test(test_load_file),
    cmocka_unit_test(test_missing_file),
    cmocka_unit_test(test_yaml12_typing),
    cmocka_unit_test(test_aliases),
    cmocka_unit_test(test_shared_strings),
    cmocka_unit_test(test_yaml_errors),
    cmocka_unit_test(test_duplicate_keys),
    cmocka_unit_test(test_duplicate_in_big_mapping),
    cmocka_unit_test(test_long_chain),
    cmocka_unit_test(test_merge_key_refused),
    cmocka_unit_test(test_cairn_version),
    cmocka_unit_test(test_unknown_keys),
    cmocka_unit_test(test_undo_placement),
    cmocka_unit_test(test_wrong_types),
    cmocka_unit_test(test_required_keys),
    cmocka_unit_test(test_names),
    cmocka_unit_test(test_kinds),
    cmocka_unit_test(test_transitions),
    cmocka_unit_test(test_graph),
    cmocka_unit_test(test_durations_and_retry),
    cmocka_unit_test(test_params_declarations),
    cmocka_unit_test(test_environments),
    cmocka_unit_test(test_templates),
    cmocka_unit_test(test_choice_when),
    cmocka_unit_test(test_adapters),
    cmocka_unit_test(test_params),
    cmocka_unit_test(test_limits),
    cmocka_unit_test(test_use_inlined),
    cmocka_unit_test(test_use_errors),
    cmocka_unit_test(test_use_missing_file_position),
    cmocka_unit_test(test_use_nested_frames),
    cmocka_unit_test(test_branches_heap),
    cmocka_unit_test(test_map),
    cmocka_unit_test(test_map_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
