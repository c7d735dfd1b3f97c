/* http.check and notify.webhook on a real loop: many checks sharing one
 * multi handle, a refused port, a listener that never answers (request
 * timeout, cancel, state timeout), and the `expect` checks. Every test
 * ends with uv_loop_close() == 0, which proves the shared multi handle
 * closed all it opened. (Answers from a real server: tests/cli/t0010.) */
#include "net_fixture.h"

static json_t *url_with(int port, const char *more)
{
  char text[512];

  snprintf(text, sizeof text, "{\"url\": \"http://127.0.0.1:%d/h\"%s}", port,
           more ? more : "");
  return json_loads(text, 0, NULL);
}

static json_t *webhook_with(int port, const char *more)
{
  char text[512];

  snprintf(text, sizeof text,
           "{\"url\": \"http://127.0.0.1:%d/\", \"event\": \"failed\"%s}",
           port, more);
  return json_loads(text, 0, NULL);
}

static void refused(void **state)
{
  struct net_fixture *f = *state;
  struct t_call t = { 0 };
  int port = net_free_port(f);
  char want[128];

  t_start(f, &adapter_http_check, &t, url_with(port, NULL), 0);
  t_run(f);
  assert_int_equal(t.outcome, ADAPTER_FAILED);
  snprintf(want, sizeof want, "GET http://127.0.0.1:%d/h: connection refused",
           port);
  assert_string_equal(t.error, want);
  assert_int_equal(json_integer_value(json_object_get(t.outputs, "status")),
                   0);
  t_release(&t);
}

/* 20 checks in flight at once on one loop, then 20 more: the shared multi
 * is created, used, torn down, and created again. */
static void many_share_one_multi(void **state)
{
  struct net_fixture *f = *state;
  struct t_call t[20];
  int port = net_free_port(f);

  for (int round = 0; round < 2; round++) {
    memset(t, 0, sizeof t);
    for (int i = 0; i < 20; i++)
      t_start(f, &adapter_http_check, &t[i],
              url_with(i % 2 ? port : f->port,
                       ", \"timeout\": \"300ms\""),
              0);
    t_run(f);
    for (int i = 0; i < 20; i++) {
      assert_int_equal(t[i].done, 1);
      assert_int_equal(t[i].outcome, ADAPTER_FAILED);
      assert_non_null(strstr(t[i].error, i % 2 ? "connection refused"
                                               : "no response within 300ms"));
      t_release(&t[i]);
    }
  }
}

/* 150 checks of one host that never answers: 64 go in flight, the rest
 * wait for a turn; a waiting check's own timeout runs from when it was
 * started, so all end at about 300 ms, not in rounds of 300 ms. */
static void waiting_requests_keep_their_timeout(void **state)
{
  struct net_fixture *f = *state;
  static struct t_call t[150];
  uint64_t t0 = uv_hrtime();
  int64_t took;

  memset(t, 0, sizeof t);
  for (int i = 0; i < 150; i++)
    t_start(f, &adapter_http_check, &t[i],
            url_with(f->port, ", \"timeout\": \"300ms\""), 0);
  t_run(f);
  took = (int64_t)((uv_hrtime() - t0) / 1000000);
  for (int i = 0; i < 150; i++) {
    assert_int_equal(t[i].done, 1);
    assert_int_equal(t[i].outcome, ADAPTER_FAILED);
    assert_non_null(strstr(t[i].error, "no response within 300ms"));
    t_release(&t[i]);
  }
  assert_true(took >= 250 && took < 800);
}

/* Cancelling checks that wait for a turn, and one in flight. */
static void cancel_waiting(void **state)
{
  struct net_fixture *f = *state;
  static struct t_call t[80];
  struct t_cancel c[3];

  memset(t, 0, sizeof t);
  for (int i = 0; i < 80; i++)
    t_start(f, &adapter_http_check, &t[i],
            url_with(f->port, ", \"timeout\": \"400ms\""), 0);
  t_cancel_after(f, &c[0], &t[0], 100);   /* in flight */
  t_cancel_after(f, &c[1], &t[70], 100);  /* waiting */
  t_cancel_after(f, &c[2], &t[79], 100);  /* waiting, the last */
  t_run(f);
  for (int i = 0; i < 80; i++) {
    assert_int_equal(t[i].done, 1);
    if (i == 0 || i == 70 || i == 79)
      assert_int_equal(t[i].outcome, ADAPTER_CANCELLED);
    else
      assert_non_null(strstr(t[i].error, "no response within 400ms"));
    t_release(&t[i]);
  }
}

static void cancel_in_flight(void **state)
{
  struct net_fixture *f = *state;
  struct t_call t = { 0 }, other = { 0 };
  struct t_cancel c;

  t_start(f, &adapter_http_check, &t, url_with(f->port, NULL), 0);
  t_start(f, &adapter_http_check, &other,
          url_with(f->port, ", \"timeout\": \"400ms\""), 0);
  t_cancel_after(f, &c, &t, 100);
  t_run(f);
  assert_int_equal(t.outcome, ADAPTER_CANCELLED);
  /* the other check on the same multi went on to its own end */
  assert_int_equal(other.outcome, ADAPTER_FAILED);
  assert_non_null(strstr(other.error, "no response within 400ms"));
  t_release(&t);
  t_release(&other);
}

static void state_timeout_while_polling(void **state)
{
  struct net_fixture *f = *state;
  struct t_call t = { 0 };

  t_start(f, &adapter_http_check, &t,
          url_with(net_free_port(f),
                   ", \"within\": \"30s\", \"interval\": \"100ms\""),
          350);
  t_run(f);
  assert_int_equal(t.outcome, ADAPTER_TIMED_OUT);
  assert_non_null(strstr(t.error, ": timed out after 350ms (last: "
                                  "connection refused)"));
  assert_true(json_integer_value(json_object_get(t.outputs, "attempts")) >= 3);
  t_release(&t);
}

static void expect_is_checked(void **state)
{
  static const struct {
    const char *expect;
    const char *msg;
  } bad[] = {
    { "{\"json\": {\"a\": {\"above\": 1}}}",
      "expect json 'a': unknown comparison 'above' (use equals, regex, gt, "
      "ge, lt, le)" },
    { "{\"json\": {\"a\": {\"gt\": \"x\"}}}", "expect json 'a': gt needs a "
                                              "number" },
    { "{\"status\": \"ok\"}",
      "expect status must be an integer or a list of integers" },
    { "{\"body\": 1}",
      "unknown key 'body' in input 'expect' (use status, headers, json)" },
  };
  (void)state;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct cairn_error err = { 0 };
    const char *key = NULL;
    json_t *e = json_loads(bad[i].expect, 0, NULL);
    json_t *w = json_pack("{s:s, s:o}", "url", "http://x/", "expect", e);
    assert_int_equal(adapter_check_with(&adapter_http_check, w, &key, &err),
                     CAIRN_E_INVAL);
    assert_string_equal(err.msg, bad[i].msg);
    json_decref(w);
  }
}

static void webhook_not_required_succeeds(void **state)
{
  struct net_fixture *f = *state;
  struct t_call t = { 0 };

  t_start(f, &adapter_notify_webhook, &t,
          webhook_with(net_free_port(f),
                       ", \"attempts\": 2, \"delay\": \"50ms\""),
          0);
  t_run(f);
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  assert_true(json_is_false(json_object_get(t.outputs, "delivered")));
  assert_int_equal(json_integer_value(json_object_get(t.outputs, "attempts")),
                   2);
  t_release(&t);
}

/* The state timeout falls inside the pause between two tries: the call
 * ends then, as timed out, not when the pause is over; the retry is never
 * made. */
static void webhook_state_timeout_during_delay(void **state)
{
  struct net_fixture *f = *state;
  struct t_call t = { 0 };
  uint64_t t0;
  int64_t took;

  t0 = uv_hrtime();
  t_start(f, &adapter_notify_webhook, &t,
          webhook_with(net_free_port(f),
                       ", \"attempts\": 5, \"delay\": \"2s\""),
          300);
  t_run(f);
  took = (int64_t)((uv_hrtime() - t0) / 1000000);
  assert_int_equal(t.outcome, ADAPTER_TIMED_OUT);
  assert_non_null(strstr(t.error, ": timed out after 300ms"));
  assert_int_equal(json_integer_value(json_object_get(t.outputs, "attempts")),
                   1);
  assert_true(took >= 250 && took < 1500);
  t_release(&t);
}

/* Against a listener that never answers: each try ends by its request
 * timeout, then the pause, then the next try: as many connections as
 * attempts, never a second request for one try (the retry timer and the
 * request timeout never both act on one attempt). */
static void webhook_request_timeouts_and_retries(void **state)
{
  struct net_fixture *f = *state;
  struct t_call t = { 0 };
  const char *more =
      ", \"attempts\": 3, \"delay\": \"50ms\", \"timeout\": \"150ms\"";

  /* a state timeout that ends while the last request is in flight */
  t_start(f, &adapter_notify_webhook, &t, webhook_with(f->port, more), 420);
  t_run(f);
  assert_int_equal(t.outcome, ADAPTER_TIMED_OUT);
  assert_int_equal(json_integer_value(json_object_get(t.outputs, "attempts")),
                   3);
  assert_int_equal(f->npeers, 3);
  t_release(&t);
  t_start(f, &adapter_notify_webhook, &t, webhook_with(f->port, more), 0);
  t_run(f);
  assert_int_equal(f->npeers, 6);
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  assert_true(json_is_false(json_object_get(t.outputs, "delivered")));
  assert_int_equal(json_integer_value(json_object_get(t.outputs, "attempts")),
                   3);
  t_release(&t);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(refused, net_setup, net_teardown),
    cmocka_unit_test_setup_teardown(many_share_one_multi, net_setup,
                                    net_teardown),
    cmocka_unit_test_setup_teardown(waiting_requests_keep_their_timeout,
                                    net_setup, net_teardown),
    cmocka_unit_test_setup_teardown(cancel_waiting, net_setup, net_teardown),
    cmocka_unit_test_setup_teardown(cancel_in_flight, net_setup,
                                    net_teardown),
    cmocka_unit_test_setup_teardown(state_timeout_while_polling, net_setup,
                                    net_teardown),
    cmocka_unit_test(expect_is_checked),
    cmocka_unit_test_setup_teardown(webhook_state_timeout_during_delay,
                                    net_setup, net_teardown),
    cmocka_unit_test_setup_teardown(webhook_request_timeouts_and_retries,
                                    net_setup, net_teardown),
    cmocka_unit_test_setup_teardown(webhook_not_required_succeeds, net_setup,
                                    net_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
