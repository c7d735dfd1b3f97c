/* A small harness for unit tests of adapters: a real loop in a temporary
 * run folder, one call driven to its end (checked and defaulted as the
 * engine does), and the result kept, optionally with a timeout or a
 * cancel. Included by test_process.c, test_file.c and test_tools.c (one
 * executable each). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adapters/adapter.h"

struct h_fix {
  uv_loop_t loop;
  char dir[PATH_MAX];
  char log[PATH_MAX + 32];
};

struct h_res {
  int done;
  enum adapter_outcome outcome;
  char error[512];
  char *tail;
  json_t *outputs;
};

static int h_rm(const char *path, const struct stat *st, int flag,
                struct FTW *ftw)
{
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static int h_setup(void **state)
{
  struct h_fix *f = calloc(1, sizeof *f);
  char tmpl[] = "/tmp/cairn-adapter-XXXXXX";

  if (f == NULL || uv_loop_init(&f->loop) != 0 || mkdtemp(tmpl) == NULL ||
      realpath(tmpl, f->dir) == NULL)
    return -1;
  snprintf(f->log, sizeof f->log, "%s/step.log", f->dir);
  *state = f;
  return 0;
}

static int h_teardown(void **state)
{
  struct h_fix *f = *state;

  adapter_loop_done(&f->loop); /* the resting curl multi, if any */
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  nftw(f->dir, h_rm, 16, FTW_DEPTH | FTW_PHYS);
  free(f);
  return 0;
}

static void h_on_done(struct adapter_call *call,
                      const struct adapter_result *res)
{
  struct h_res *r = call->data;

  r->done++;
  r->outcome = res->outcome;
  snprintf(r->error, sizeof r->error, "%s", res->error);
  free(r->tail);
  r->tail = strdup(res->tail ? res->tail : "");
  json_decref(r->outputs);
  r->outputs = json_incref(res->outputs);
  assert_null(call->priv);
}

static void h_release(struct h_res *r)
{
  free(r->tail);
  json_decref(r->outputs);
  memset(r, 0, sizeof *r);
}

/* The values h_run's calls redact (call->redact; NULL: none). */
static const char *const *h_redact;
/* h_run's call->timeout_ms and kill_grace_ms (0: none, the default), and
 * call->entry (the visit of the state: a note of its first attempt is
 * this visit's). */
static int64_t h_timeout_ms, h_grace_ms, h_entry;
/* h_run's call->run_id (NULL: none, as outside a run). */
static const char *h_run_id;
/* When set, polled every 10 ms while h_run's call runs: the call is
 * cancelled the first time it returns 1. */
static int (*h_cancel_when)(struct h_fix *f);

struct h_canceller {
  uv_timer_t timer;
  struct h_fix *f;
  struct adapter_call *call;
  struct h_res *r;
};

static void h_on_cancel_poll(uv_timer_t *t)
{
  struct h_canceller *c = t->data;

  if (c->r->done || h_cancel_when(c->f)) {
    if (!c->r->done)
      c->call->desc->cancel(c->call);
    uv_close((uv_handle_t *)t, NULL);
  }
}

/* Runs desc with `with` (JSON text) as state `name`; fills r. */
static void h_run(struct h_fix *f, const struct adapter_desc *desc,
                  const char *name, const char *with_text, struct h_res *r)
{
  struct cairn_error err = { 0 };
  struct adapter_call call;
  struct h_canceller canceller;
  json_t *with = json_loads(with_text, 0, NULL);
  json_t *inputs = NULL;
  const char *bad = NULL;

  h_release(r);
  assert_non_null(with);
  if (adapter_check_with(desc, with, &bad, &err) != 0)
    fail_msg("check_with: %s", err.msg);
  if (adapter_apply_defaults(desc, with, &inputs, &err) != 0)
    fail_msg("apply_defaults: %s", err.msg);
  memset(&call, 0, sizeof call);
  call.loop = &f->loop;
  call.desc = desc;
  call.inputs = inputs;
  call.log_path = f->log;
  call.run_dir = f->dir;
  call.name = name;
  call.redact = h_redact;
  call.timeout_ms = h_timeout_ms;
  call.kill_grace_ms = h_grace_ms;
  call.entry = h_entry;
  call.run_id = h_run_id;
  call.on_done = h_on_done;
  call.data = r;
  if (desc->start(&call, &err) != 0)
    fail_msg("start: %s", err.msg);
  if (h_cancel_when) {
    canceller.f = f;
    canceller.call = &call;
    canceller.r = r;
    uv_timer_init(&f->loop, &canceller.timer);
    canceller.timer.data = &canceller;
    uv_timer_start(&canceller.timer, h_on_cancel_poll, 10, 10);
  }
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(r->done, 1);
  json_decref(inputs);
  json_decref(with);
}

/* Writes text to f->dir/name with mode (0700 for a script). */
static inline void h_write(struct h_fix *f, const char *name,
                           const char *text, mode_t mode)
{
  char path[PATH_MAX + 64];
  FILE *fp;

  snprintf(path, sizeof path, "%s/%s", f->dir, name);
  fp = fopen(path, "w");
  assert_non_null(fp);
  fputs(text, fp);
  assert_int_equal(fclose(fp), 0);
  assert_int_equal(chmod(path, mode), 0);
}

/* What f->dir/name holds (at most 4 KiB), malloc'd; "" when missing. */
static inline char *h_read(struct h_fix *f, const char *name)
{
  char path[PATH_MAX + 64], buf[4096];
  FILE *fp;
  size_t n = 0;

  snprintf(path, sizeof path, "%s/%s", f->dir, name);
  if ((fp = fopen(path, "r")) != NULL) {
    n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
  }
  buf[n] = '\0';
  return strdup(buf);
}

static inline const char *h_str(struct h_res *r, const char *key)
{
  return json_string_value(json_object_get(r->outputs, key));
}

static inline json_int_t h_int(struct h_res *r, const char *key)
{
  return json_integer_value(json_object_get(r->outputs, key));
}
