/* tcp.wait on a real loop: an in-process listener, a refused port, a
 * listener that appears later, cancel and the state timeout. Every test
 * ends with uv_loop_close() == 0. */
#include "net_fixture.h"

static json_t *with_port(int port, const char *more)
{
  char text[256];

  snprintf(text, sizeof text, "{\"port\": %d%s}", port, more ? more : "");
  return json_loads(text, 0, NULL);
}

static void accepted_at_once(void **state)
{
  struct net_fixture *f = *state;
  struct t_call t = { 0 };

  t_start(f, &adapter_tcp_wait, &t, with_port(f->port, NULL), 0);
  t_run(f);
  assert_int_equal(t.done, 1);
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  assert_int_equal(json_integer_value(json_object_get(t.outputs, "attempts")),
                   1);
  t_release(&t);
}

static void refused_until_within(void **state)
{
  struct net_fixture *f = *state;
  struct t_call t = { 0 };
  int port = net_free_port(f);
  char want[128];

  t_start(f, &adapter_tcp_wait, &t,
          with_port(port, ", \"within\": \"500ms\", \"interval\": "
                          "\"100ms\""),
          0);
  t_run(f);
  assert_int_equal(t.outcome, ADAPTER_FAILED);
  snprintf(want, sizeof want,
           "127.0.0.1:%d did not accept a connection within 500ms (last: "
           "connection refused)",
           port);
  assert_string_equal(t.error, want);
  assert_true(json_integer_value(json_object_get(t.outputs, "attempts")) >= 3);
  t_release(&t);
}

/* A listener bound to the port only after 300 ms. */
struct late {
  uv_timer_t timer;
  uv_tcp_t tcp;
  int port;
  struct net_fixture *f;
};

static void on_late(uv_timer_t *timer)
{
  struct late *l = timer->data;
  struct sockaddr_in a;

  uv_tcp_init(timer->loop, &l->tcp);
  uv_ip4_addr("127.0.0.1", l->port, &a);
  assert_int_equal(uv_tcp_bind(&l->tcp, (struct sockaddr *)&a, 0), 0);
  l->tcp.data = l->f;
  assert_int_equal(uv_listen((uv_stream_t *)&l->tcp, 8, on_conn), 0);
  uv_unref((uv_handle_t *)&l->tcp);
  uv_close((uv_handle_t *)timer, NULL);
}

static void listener_appears_later(void **state)
{
  struct net_fixture *f = *state;
  struct t_call t = { 0 };
  struct late l = { .f = f };

  l.port = net_free_port(f);
  uv_timer_init(&f->loop, &l.timer);
  l.timer.data = &l;
  uv_timer_start(&l.timer, on_late, 300, 0);
  t_start(f, &adapter_tcp_wait, &t,
          with_port(l.port, ", \"within\": \"5s\", \"interval\": \"50ms\""),
          0);
  t_run(f);
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  assert_true(json_integer_value(json_object_get(t.outputs, "attempts")) >= 3);
  assert_true(json_integer_value(json_object_get(t.outputs, "elapsed_ms")) >=
              250);
  uv_close((uv_handle_t *)&l.tcp, NULL);
  t_release(&t);
}

static void cancelled(void **state)
{
  struct net_fixture *f = *state;
  struct t_call t = { 0 };
  struct t_cancel c;

  t_start(f, &adapter_tcp_wait, &t,
          with_port(net_free_port(f), ", \"within\": \"30s\""), 0);
  t_cancel_after(f, &c, &t, 100);
  t_run(f);
  assert_int_equal(t.done, 1);
  assert_int_equal(t.outcome, ADAPTER_CANCELLED);
  t_release(&t);
}

static void state_timeout(void **state)
{
  struct net_fixture *f = *state;
  struct t_call t = { 0 };

  t_start(f, &adapter_tcp_wait, &t,
          with_port(net_free_port(f), ", \"within\": \"30s\""), 300);
  t_run(f);
  assert_int_equal(t.outcome, ADAPTER_TIMED_OUT);
  assert_non_null(strstr(t.error, "timed out after 300ms (last: connection "
                                  "refused)"));
  t_release(&t);
}

static void bad_port_is_refused_by_check(void **state)
{
  struct cairn_error err = { 0 };
  const char *bad = NULL;
  json_t *w = json_loads("{\"port\": 0}", 0, NULL);

  (void)state;
  assert_int_equal(adapter_check_with(&adapter_tcp_wait, w, &bad, &err),
                   CAIRN_E_INVAL);
  assert_string_equal(err.msg,
                      "value 0 is out of range for input 'port' (hint: use a "
                      "TCP port from 1 to 65535)");
  json_decref(w);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(accepted_at_once, net_setup, net_teardown),
    cmocka_unit_test_setup_teardown(refused_until_within, net_setup,
                                    net_teardown),
    cmocka_unit_test_setup_teardown(listener_appears_later, net_setup,
                                    net_teardown),
    cmocka_unit_test_setup_teardown(cancelled, net_setup, net_teardown),
    cmocka_unit_test_setup_teardown(state_timeout, net_setup, net_teardown),
    cmocka_unit_test(bad_port_is_refused_by_check),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
