/* The notify.webhook adapter: POSTs a JSON body to a URL through the
 * loop's shared libcurl multi handle (adapters/curl_uv.h), retrying, and
 * never fails the deploy unless the state says `required: true`: a
 * notification that could not be delivered is logged and reported as
 * delivered: false. */
#include "adapters/adapter.h"
#include "common/duration.h"
#include "adapters/curl_uv.h"
#include "common/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct notify_run {
  struct adapter_call *call;
  struct adapter__http h; /* the request, the timer, the shared multi */

  const char *url; /* borrowed from call->inputs */
  char *body;      /* the JSON sent (redacted only in logs) */
  int max_attempts;
  int64_t delay_ms, timeout_ms;
  int required;
  uint64_t start, deadline; /* uv_now(); deadline 0: no state timeout */

  int attempts;
  long status;
  int delivered;
  enum adapter_outcome outcome;
  char why[512];
  char error[512];
  struct cairn_buf log;
  json_t *outputs; /* made at the start, filled at the end */
};

/* A response body is not kept. */
static size_t discard(char *p, size_t size, size_t n, void *ud)
{
  (void)p;
  (void)ud;
  return size * n;
}

static void log_add(struct notify_run *r, const char *line)
{
  cairn_buf_add(&r->log, line, strlen(line));
  cairn_buf_add(&r->log, "\n", 1);
}

static void run_free(struct notify_run *r)
{
  adapter__http_release(&r->h);
  free(r->body);
  cairn_buf_release(&r->log);
  json_decref(r->outputs);
  free(r);
}

static void complete(void *ud)
{
  struct notify_run *r = ud;
  struct adapter_call *call = r->call;
  struct adapter_result res;

  memset(&res, 0, sizeof res);
  res.outcome = r->outcome;
  res.exit_code = -1;
  res.duration_ms = (int64_t)(uv_now(call->loop) - r->start);
  res.outputs = r->outputs; /* made at the start: never NULL */
  if (json_object_set_new(r->outputs, "delivered",
                          json_boolean(r->delivered)) ||
      json_object_set_new(r->outputs, "status", json_integer(r->status)) ||
      json_object_set_new(r->outputs, "attempts",
                          json_integer(r->attempts))) {
    res.outcome = ADAPTER_FAILED; /* not a success without its outputs */
    snprintf(r->error, sizeof r->error, "POST %s: out of memory", r->url);
  }
  /* a loss goes to the log, a warning someone should read (a long
   * text is logged by adapter_finish_text itself) */
  if (!r->delivered && res.outcome == ADAPTER_SUCCEEDED &&
      (r->log.p == NULL || strlen(r->log.p) <= ADAPTER_TAIL_MAX))
    adapter_log_write(call, r->log.p);
  adapter_finish_text(call, r->error, r->log.p, &res);
  call->priv = NULL;
  call->on_done(call, &res); /* may free call */
  free(res.tail);
  run_free(r);
}

static void finish(struct notify_run *r, enum adapter_outcome o)
{
  if (r->h.ending)
    return;
  r->outcome = o;
  adapter__http_end(&r->h, complete, r);
}

static void attempt(struct notify_run *r);

/* The one timer: while a request is in flight it holds the state's
 * deadline; between tries, the pause, cut short by that deadline. So for
 * one try either the request ends (on_xfer_done) or the deadline does,
 * never both: the deadline removes the transfer, and a transfer that ends
 * re-arms the timer for the pause. */
static void on_timer(uv_timer_t *t)
{
  struct notify_run *r = t->data;

  if (r->deadline && uv_now(r->call->loop) >= r->deadline) {
    char d[32];
    cairn_duration_exact(r->call->timeout_ms, d, sizeof d);
    snprintf(r->error, sizeof r->error, "POST %s: timed out after %s",
             r->url, d);
    finish(r, ADAPTER_TIMED_OUT);
    return;
  }
  if (!r->h.in_multi)
    attempt(r);
}

/* Out of attempts: a failure only when the notification is required. */
static void give_up(struct notify_run *r)
{
  char line[700];

  snprintf(r->error, sizeof r->error, "POST %s: %s (after %d attempt%s)",
           r->url, r->why, r->attempts, r->attempts == 1 ? "" : "s");
  if (r->required) {
    finish(r, ADAPTER_FAILED);
    return;
  }
  snprintf(line, sizeof line,
           "notification not delivered: %s; not required, so the run goes "
           "on",
           r->error);
  log_add(r, line);
  r->error[0] = '\0';
  finish(r, ADAPTER_SUCCEEDED);
}

static void on_xfer_done(CURL *easy, CURLcode rc, void *ud)
{
  struct notify_run *r = ud;
  char line[700];
  uint64_t now, wait = (uint64_t)r->delay_ms;

  adapter__http_sent(&r->h);
  r->status = 0;
  if (rc != CURLE_OK) {
    adapter__curl_describe(easy, rc, r->h.errbuf, r->timeout_ms, r->why,
                           sizeof r->why);
  } else {
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &r->status);
    if (r->status >= 200 && r->status < 300) {
      snprintf(line, sizeof line, "POST %s: %ld (delivered)", r->url,
               r->status);
      log_add(r, line);
      r->delivered = 1;
      finish(r, ADAPTER_SUCCEEDED);
      return;
    }
    snprintf(r->why, sizeof r->why, "status %ld", r->status);
  }
  snprintf(line, sizeof line, "POST %s: %s", r->url, r->why);
  log_add(r, line);
  if (r->attempts >= r->max_attempts) {
    give_up(r);
    return;
  }
  uv_update_time(r->call->loop);
  now = uv_now(r->call->loop);
  if (r->deadline && now + wait > r->deadline)
    wait = r->deadline > now ? r->deadline - now : 0;
  uv_timer_start(&r->h.timer, on_timer, wait, 0);
}

static void attempt(struct notify_run *r)
{
  struct cairn_error err = { 0 };

  r->attempts++;
  if (adapter__http_send(&r->h, (long)r->timeout_ms, on_xfer_done, r,
                         &err) < 0) {
    snprintf(r->why, sizeof r->why, "%s", err.msg);
    give_up(r);
    return;
  }
  if (r->deadline) {
    uint64_t now = uv_now(r->call->loop);
    uv_timer_start(&r->h.timer, on_timer,
                   r->deadline > now ? r->deadline - now : 0, 0);
  }
}

static int notify_check(json_t *with, struct cairn_error *err)
{
  json_t *body = json_object_get(with, "body");
  json_t *event = json_object_get(with, "event");
  json_t *data = json_object_get(with, "data");
  json_t *n = json_object_get(with, "attempts");

  if (body && !json_is_null(body) &&
      ((event && !json_is_null(event)) || (data && !json_is_null(data))))
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "'body' cannot be used with 'event' or 'data' "
                           "(body is sent as it is)");
  if ((!body || json_is_null(body)) && (!event || json_is_null(event)))
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "either 'body' or 'event' is required");
  if (data && !json_is_null(data) && !json_is_object(data) &&
      !adapter_is_template(data))
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "input 'data' must be a map (sent beside "
                           "'event')");
  if (json_is_integer(n) && json_integer_value(n) < 1)
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "input 'attempts' must be at least 1");
  return 0;
}

/* The JSON sent: body as it is, or {"event": E, ...data}. New string. */
static char *make_body(json_t *in)
{
  json_t *body = json_object_get(in, "body");
  json_t *obj;
  char *s;

  if (body && !json_is_null(body))
    return json_dumps(body, JSON_ENCODE_ANY | JSON_COMPACT | JSON_SORT_KEYS);
  if ((obj = json_object()) == NULL)
    return NULL;
  if (json_is_object(json_object_get(in, "data")))
    json_object_update(obj, json_object_get(in, "data"));
  json_object_set(obj, "event", json_object_get(in, "event"));
  s = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(obj);
  return s;
}

static int notify_start(struct adapter_call *call, struct cairn_error *err)
{
  json_t *in = call->inputs;
  struct adapter__curl_req q;
  struct notify_run *r;
  int rc;

  if ((rc = notify_check(in, err)) < 0)
    return rc;
  if (!json_is_string(json_object_get(in, "url")) ||
      !json_is_integer(json_object_get(in, "attempts")) ||
      !json_is_integer(json_object_get(in, "delay")) ||
      !json_is_integer(json_object_get(in, "timeout")))
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "notify.webhook needs url, attempts, delay and "
                           "timeout (apply the adapter's defaults first)");
  if ((r = calloc(1, sizeof *r)) == NULL)
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  r->call = call;
  r->url = json_string_value(json_object_get(in, "url"));
  r->max_attempts = (int)json_integer_value(json_object_get(in, "attempts"));
  r->delay_ms = json_integer_value(json_object_get(in, "delay"));
  r->timeout_ms = json_integer_value(json_object_get(in, "timeout"));
  r->required = json_is_true(json_object_get(in, "required"));
  if ((r->body = make_body(in)) == NULL ||
      (r->outputs = json_object()) == NULL) {
    rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    goto fail;
  }
  memset(&q, 0, sizeof q);
  q.method = "POST";
  q.url = r->url;
  q.body = r->body;
  q.body_len = strlen(r->body);
  q.timeout_ms = (long)r->timeout_ms;
  q.insecure = json_is_true(json_object_get(in, "insecure"));
  q.ca = json_string_value(json_object_get(in, "ca"));
  q.on_body = discard;
  q.ud = r;
  if ((rc = adapter__http_init(&r->h, call->loop,
                               json_object_get(in, "headers"),
                               "Content-Type: application/json", &q,
                               err)) < 0)
    goto fail;
  uv_update_time(call->loop);
  r->start = uv_now(call->loop);
  if (call->timeout_ms > 0)
    r->deadline = r->start + (uint64_t)call->timeout_ms;
  r->h.timer.data = r;
  call->priv = r;
  attempt(r);
  return 0;

fail:
  run_free(r);
  return rc;
}

static void notify_cancel(struct adapter_call *call)
{
  struct notify_run *r = call ? call->priv : NULL;

  if (r == NULL || r->h.ending)
    return;
  snprintf(r->error, sizeof r->error, "POST %s: cancelled", r->url);
  finish(r, ADAPTER_CANCELLED);
}

static const struct adapter_input notify_inputs[] = {
  { "url", ADAPTER_T_STRING, 1, NULL, "where to POST" },
  { "event", ADAPTER_T_STRING, 0, NULL,
    "what happened (started, succeeded, failed, rolled_back...); sent as "
    "{\"event\": ..., plus data}" },
  { "data", ADAPTER_T_ANY, 0, NULL,
    "a map of the run's values sent beside event ({{ run.id }}, "
    "{{ params.release }}...)" },
  { "body", ADAPTER_T_ANY, 0, NULL,
    "any JSON value, sent as it is (instead of event and data)" },
  { "headers", ADAPTER_T_STRMAP, 0, NULL, "request headers" },
  { "attempts", ADAPTER_T_INTEGER, 0, "3", "tries before giving up" },
  { "delay", ADAPTER_T_DURATION, 0, "\"1s\"", "pause between tries" },
  { "timeout", ADAPTER_T_DURATION, 0, "\"10s\"", "limit of one request" },
  { "required", ADAPTER_T_BOOLEAN, 0, "false",
    "fail the state when the notification cannot be delivered" },
  { "insecure", ADAPTER_T_BOOLEAN, 0, "false",
    "skip TLS certificate verification (never for production)" },
  { "ca", ADAPTER_T_STRING, 0, NULL, "CA bundle file to verify TLS with" },
  { NULL, 0, 0, NULL, NULL },
};

static const struct adapter_output notify_outputs[] = {
  { "delivered", "boolean", "a 2xx answer came back" },
  { "status", "integer", "HTTP status of the last answer (0: none)" },
  { "attempts", "integer", "requests made" },
  { NULL, NULL, NULL },
};

const struct adapter_desc adapter_notify_webhook = {
  .name = "notify.webhook",
  .summary = "POST a JSON notification to a webhook",
  .inputs = notify_inputs,
  .outputs = notify_outputs,
  .idempotent = 0,
  .check = notify_check,
  .start = notify_start,
  .cancel = notify_cancel,
};
