/* Shared by test_http.c and test_tcp.c: a real libuv loop with a watchdog,
 * an in-process listener on 127.0.0.1 (port 0) that accepts and never
 * answers, a free port nothing listens on, and a call driver. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"

#define WATCHDOG_MS 20000

struct net_fixture {
  uv_loop_t loop;
  uv_timer_t watchdog;
  uv_tcp_t server;
  int server_on;
  int port;        /* the silent listener's */
  uv_tcp_t peers[64];
  int npeers;
};

struct t_call {
  struct adapter_call call;
  json_t *inputs;
  int done;
  enum adapter_outcome outcome;
  char error[512];
  json_t *outputs;
};

static void on_watchdog(uv_timer_t *t)
{
  (void)t;
  fail_msg("watchdog: the calls did not finish within %d ms", WATCHDOG_MS);
}

static void on_conn(uv_stream_t *s, int status)
{
  struct net_fixture *f = s->data;

  if (status < 0 || f->npeers >= 64)
    return;
  uv_tcp_init(&f->loop, &f->peers[f->npeers]);
  if (uv_accept(s, (uv_stream_t *)&f->peers[f->npeers]) == 0)
    uv_unref((uv_handle_t *)&f->peers[f->npeers++]); /* kept, silent */
}

static int net_setup(void **state)
{
  struct net_fixture *f = calloc(1, sizeof *f);
  struct sockaddr_in a;
  struct sockaddr_storage got;
  int len = sizeof got;

  if (f == NULL || uv_loop_init(&f->loop) != 0)
    return -1;
  uv_timer_init(&f->loop, &f->watchdog);
  uv_unref((uv_handle_t *)&f->watchdog);
  uv_tcp_init(&f->loop, &f->server);
  f->server.data = f;
  uv_ip4_addr("127.0.0.1", 0, &a);
  if (uv_tcp_bind(&f->server, (struct sockaddr *)&a, 0) != 0 ||
      uv_listen((uv_stream_t *)&f->server, 64, on_conn) != 0 ||
      uv_tcp_getsockname(&f->server, (struct sockaddr *)&got, &len) != 0)
    return -1;
  f->port = ntohs(((struct sockaddr_in *)&got)->sin_port);
  f->server_on = 1;
  *state = f;
  return 0;
}

/* A port nothing listens on: bound to port 0, then closed. */
static int net_free_port(struct net_fixture *f)
{
  uv_tcp_t t;
  struct sockaddr_in a;
  struct sockaddr_storage got;
  int len = sizeof got, port;

  uv_tcp_init(&f->loop, &t);
  uv_ip4_addr("127.0.0.1", 0, &a);
  assert_int_equal(uv_tcp_bind(&t, (struct sockaddr *)&a, 0), 0);
  assert_int_equal(uv_tcp_getsockname(&t, (struct sockaddr *)&got, &len), 0);
  port = ntohs(((struct sockaddr_in *)&got)->sin_port);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&f->loop, UV_RUN_NOWAIT);
  return port;
}

/* Closes the listener, its peers and the watchdog; nothing may be left. */
static int net_teardown(void **state)
{
  struct net_fixture *f = *state;

  for (int i = 0; i < f->npeers; i++)
    uv_close((uv_handle_t *)&f->peers[i], NULL);
  uv_close((uv_handle_t *)&f->server, NULL);
  uv_close((uv_handle_t *)&f->watchdog, NULL);
  adapter_loop_done(&f->loop); /* the resting curl multi, if any */
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  free(f);
  return 0;
}

static void t_on_done(struct adapter_call *call,
                      const struct adapter_result *res)
{
  struct t_call *t = call->data;

  t->done++;
  t->outcome = res->outcome;
  snprintf(t->error, sizeof t->error, "%s", res->error);
  json_decref(t->outputs);
  t->outputs = json_incref(res->outputs);
  assert_null(call->priv);
}

/* Checks and renders with (stolen) as the engine would, then starts. */
static void t_start(struct net_fixture *f, const struct adapter_desc *d,
                    struct t_call *t, json_t *with, int64_t timeout_ms)
{
  struct cairn_error err = { 0 };
  const char *bad = NULL;

  assert_non_null(with);
  if (adapter_check_with(d, with, &bad, &err) != 0)
    fail_msg("check_with: %s", err.msg);
  if (adapter_apply_defaults(d, with, &t->inputs, &err) != 0)
    fail_msg("apply_defaults: %s", err.msg);
  json_decref(with);
  t->call.loop = &f->loop;
  t->call.desc = d;
  t->call.inputs = t->inputs;
  t->call.timeout_ms = timeout_ms;
  t->call.on_done = t_on_done;
  t->call.data = t;
  if (d->start(&t->call, &err) != 0)
    fail_msg("start: %s", err.msg);
}

static void t_run(struct net_fixture *f)
{
  uv_timer_start(&f->watchdog, on_watchdog, WATCHDOG_MS, 0);
  /* the listener keeps the loop alive: run until the calls are done */
  uv_unref((uv_handle_t *)&f->server);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  uv_ref((uv_handle_t *)&f->server);
  uv_timer_stop(&f->watchdog);
}

static void t_release(struct t_call *t)
{
  json_decref(t->inputs);
  json_decref(t->outputs);
  memset(t, 0, sizeof *t);
}

/* A call's cancel from a timer, after ms. */
struct t_cancel {
  uv_timer_t timer;
  struct t_call *t;
};

static void on_cancel(uv_timer_t *timer)
{
  struct t_cancel *c = timer->data;

  c->t->call.desc->cancel(&c->t->call);
  uv_close((uv_handle_t *)timer, NULL);
}

static void t_cancel_after(struct net_fixture *f, struct t_cancel *c,
                           struct t_call *t, uint64_t ms)
{
  c->t = t;
  uv_timer_init(&f->loop, &c->timer);
  c->timer.data = c;
  uv_timer_start(&c->timer, on_cancel, ms, 0);
}
