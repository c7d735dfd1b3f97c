/* The tcp.wait adapter: waits until host:port accepts a TCP connection,
 * trying every `interval` until `within` runs out, all on the libuv loop
 * (uv_getaddrinfo for names, uv_tcp_connect for each address).
 *
 * One timer serves two purposes: while connecting it holds the deadline
 * (a connect that never answers is abandoned then), between attempts the
 * interval. An address that fails (refused, or unreachable at once) is
 * followed by the name's next address in the same attempt; only after
 * the last does the attempt wait for the interval. Each address gets a
 * fresh uv_tcp_t: the next one starts only after the previous handle's
 * close callback. */
#include "adapters/adapter.h"
#include "common/duration.h"
#include "adapters/input.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum tcp_phase {
  TCP_IDLE,       /* between attempts */
  TCP_RESOLVING,
  TCP_CONNECTING,
  TCP_FINISHING,  /* handles closing; on_done after the last */
};

struct tcp_run {
  struct adapter_call *call;
  uv_timer_t timer;
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_getaddrinfo_t gai;
  int tcp_live;        /* tcp initialised, its close callback not run */
  int gai_pending;
  int nopen;           /* live handles and requests */
  enum tcp_phase phase;

  char host[256];
  char portstr[8];
  char subject[300];   /* "127.0.0.1:5432", "[::1]:80", "db:5432" */
  struct sockaddr_storage literal;
  int is_literal;
  struct addrinfo *ai;      /* from uv_getaddrinfo, freed per attempt */
  struct addrinfo *ai_next; /* the address to try after this one */

  int64_t within_ms, interval_ms;
  uint64_t start, deadline, hard_deadline; /* uv_now(); 0: none */
  int attempts;
  int connected;
  enum adapter_outcome outcome;
  char last[128];      /* the last attempt's failure */
  json_t *outputs;     /* made at the start, filled at the end */
  char error[512];
};

static void on_timer(uv_timer_t *t);
static void attempt(struct tcp_run *r);

static void complete(struct tcp_run *r)
{
  struct adapter_call *call = r->call;
  struct adapter_result res;
  char log[700];
  int64_t elapsed = (int64_t)(uv_now(call->loop) - r->start);

  memset(&res, 0, sizeof res);
  res.outcome = r->outcome;
  res.exit_code = -1;
  res.duration_ms = elapsed;
  res.outputs = r->outputs; /* made at the start: never NULL */
  if (json_object_set_new(r->outputs, "attempts", json_integer(r->attempts))
          < 0 ||
      json_object_set_new(r->outputs, "elapsed_ms", json_integer(elapsed))
          < 0) {
    res.outcome = ADAPTER_FAILED; /* not a success without its outputs */
    snprintf(r->error, sizeof r->error, "%s: out of memory", r->subject);
  }
  if (res.outcome == ADAPTER_SUCCEEDED)
    snprintf(log, sizeof log,
             "%s accepted a connection after %d attempt%s (%lld ms)\n",
             r->subject, r->attempts, r->attempts == 1 ? "" : "s",
             (long long)elapsed);
  else
    snprintf(log, sizeof log, "%s\n", r->error);
  adapter_finish_text(call, r->error, log, &res);
  if (r->ai)
    uv_freeaddrinfo(r->ai);
  call->priv = NULL;
  call->on_done(call, &res); /* may free call */
  json_decref(r->outputs);
  free(res.tail);
  free(r);
}

static void on_close(uv_handle_t *h)
{
  struct tcp_run *r = h->data;

  if (h == (uv_handle_t *)&r->tcp)
    r->tcp_live = 0;
  if (--r->nopen == 0 && r->phase == TCP_FINISHING) {
    complete(r);
    return;
  }
  /* a failed attempt's handle is gone: wait, then try again */
  if (h == (uv_handle_t *)&r->tcp && r->phase == TCP_IDLE) {
    uint64_t now = uv_now(r->call->loop);
    uint64_t wait = (uint64_t)r->interval_ms;
    if (r->deadline && now + wait > r->deadline)
      wait = r->deadline > now ? r->deadline - now : 0;
    uv_timer_start(&r->timer, on_timer, wait, 0);
  }
}

static void finish(struct tcp_run *r, enum adapter_outcome o)
{
  if (r->phase == TCP_FINISHING)
    return;
  r->phase = TCP_FINISHING;
  r->outcome = o;
  uv_close((uv_handle_t *)&r->timer, on_close);
  if (r->tcp_live && !uv_is_closing((uv_handle_t *)&r->tcp))
    uv_close((uv_handle_t *)&r->tcp, on_close);
  if (r->gai_pending)
    uv_cancel((uv_req_t *)&r->gai); /* its callback still comes */
}

static void fail(struct tcp_run *r, enum adapter_outcome o)
{
  char d[32];

  if (o == ADAPTER_CANCELLED) {
    snprintf(r->error, sizeof r->error, "cancelled");
  } else if (o == ADAPTER_TIMED_OUT) {
    cairn_duration_exact(r->call->timeout_ms, d, sizeof d);
    snprintf(r->error, sizeof r->error, "%s: timed out after %s (last: %s)",
             r->subject, d, r->last[0] ? r->last : "no answer");
  } else if (r->within_ms > 0) {
    cairn_duration_exact(r->within_ms, d, sizeof d);
    snprintf(r->error, sizeof r->error,
             "%s did not accept a connection within %s (last: %s)",
             r->subject, d, r->last[0] ? r->last : "no answer");
  } else {
    snprintf(r->error, sizeof r->error,
             "%s did not accept a connection (%s)", r->subject,
             r->last[0] ? r->last : "no answer");
  }
  finish(r, o);
}

static void set_last(struct tcp_run *r, int status)
{
  snprintf(r->last, sizeof r->last, "%s", uv_strerror(status));
  if (r->last[0] >= 'A' && r->last[0] <= 'Z')
    r->last[0] = (char)(r->last[0] + 32);
}

/* The attempt failed: close the handle, then (on_close) wait and retry,
 * unless the time is up. */
static void attempt_failed(struct tcp_run *r)
{
  uint64_t now = uv_now(r->call->loop);
  uint64_t wend = r->within_ms > 0 ? r->start + (uint64_t)r->within_ms : 0;

  /* out of `within` (or one attempt only): failed; a state timeout that
   * comes first is waited for, to end as timed out */
  if (wend == 0 || (now + (uint64_t)r->interval_ms >= wend &&
                    (r->hard_deadline == 0 || wend <= r->hard_deadline))) {
    fail(r, ADAPTER_FAILED);
    return;
  }
  r->phase = TCP_IDLE;
  if (r->tcp_live) {
    if (!uv_is_closing((uv_handle_t *)&r->tcp))
      uv_close((uv_handle_t *)&r->tcp, on_close);
    return; /* on_close arms the timer */
  }
  uv_timer_start(&r->timer, on_timer, (uint64_t)r->interval_ms, 0);
}

static void connect_next(struct tcp_run *r, const struct sockaddr *sa);
static void on_tcp_switch(uv_handle_t *h);

/* This address failed (r->last says how): the name's next address now,
 * once this handle is closed, or, after the last, the attempt failed. */
static void address_failed(struct tcp_run *r)
{
  if (r->ai_next) {
    r->phase = TCP_RESOLVING; /* "between addresses" */
    uv_close((uv_handle_t *)&r->tcp, on_tcp_switch);
    return;
  }
  attempt_failed(r);
}

static void on_connect(uv_connect_t *req, int status)
{
  struct tcp_run *r = req->data;

  if (r->phase != TCP_CONNECTING)
    return; /* cancelled or timed out: the handle is closing */
  if (status == 0) {
    r->connected = 1;
    finish(r, ADAPTER_SUCCEEDED);
    return;
  }
  set_last(r, status);
  address_failed(r);
}

static void on_tcp_switch(uv_handle_t *h)
{
  struct tcp_run *r = h->data;
  struct addrinfo *a = r->ai_next;

  r->tcp_live = 0;
  r->nopen--;
  if (r->phase == TCP_FINISHING) {
    if (r->nopen == 0)
      complete(r);
    return;
  }
  r->ai_next = a->ai_next;
  connect_next(r, a->ai_addr);
}

static void connect_next(struct tcp_run *r, const struct sockaddr *sa)
{
  int rc;

  uv_tcp_init(r->call->loop, &r->tcp);
  r->tcp.data = r;
  r->tcp_live = 1;
  r->nopen++;
  r->phase = TCP_CONNECTING;
  r->creq.data = r;
  /* an error here (network unreachable, an address family the host
   * lacks) is this address's, as a refusal in on_connect is */
  if ((rc = uv_tcp_connect(&r->creq, &r->tcp, sa, on_connect)) != 0) {
    set_last(r, rc);
    address_failed(r);
  }
}

static void on_gai(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
  struct tcp_run *r = req->data;

  r->gai_pending = 0;
  r->nopen--;
  if (r->phase == TCP_FINISHING) {
    if (res)
      uv_freeaddrinfo(res);
    if (r->nopen == 0)
      complete(r);
    return;
  }
  if (status != 0 || res == NULL) {
    set_last(r, status ? status : UV_EAI_NONAME);
    attempt_failed(r);
    return;
  }
  r->ai = res;
  r->ai_next = res->ai_next;
  connect_next(r, res->ai_addr);
}

static void attempt(struct tcp_run *r)
{
  struct addrinfo hints;
  uint64_t now = uv_now(r->call->loop);
  int rc;

  r->attempts++;
  if (r->ai) {
    uv_freeaddrinfo(r->ai);
    r->ai = r->ai_next = NULL;
  }
  if (r->deadline)
    uv_timer_start(&r->timer, on_timer,
                   r->deadline > now ? r->deadline - now : 0, 0);
  if (r->is_literal) {
    connect_next(r, (const struct sockaddr *)&r->literal);
    return;
  }
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  r->phase = TCP_RESOLVING;
  r->gai.data = r;
  rc = uv_getaddrinfo(r->call->loop, &r->gai, on_gai, r->host, r->portstr,
                      &hints);
  if (rc != 0) {
    set_last(r, rc);
    attempt_failed(r);
    return;
  }
  r->gai_pending = 1;
  r->nopen++;
}

static void on_timer(uv_timer_t *t)
{
  struct tcp_run *r = t->data;
  uint64_t now = uv_now(r->call->loop);

  if (r->hard_deadline && now >= r->hard_deadline) {
    fail(r, ADAPTER_TIMED_OUT);
    return;
  }
  if (r->phase == TCP_IDLE && (r->deadline == 0 || now < r->deadline)) {
    attempt(r);
    return;
  }
  /* the deadline, with a connect or a lookup still pending */
  if (r->phase == TCP_CONNECTING || r->phase == TCP_RESOLVING) {
    if (r->last[0] == '\0' || r->phase == TCP_CONNECTING)
      snprintf(r->last, sizeof r->last, "%s",
               r->phase == TCP_CONNECTING ? "no answer"
                                          : "name lookup did not finish");
  }
  fail(r, ADAPTER_FAILED);
}

static int tcp_check(json_t *with, struct cairn_error *err)
{
  return adapter__check_port(with, err);
}

static int tcp_start(struct adapter_call *call, struct cairn_error *err)
{
  json_t *in = call->inputs;
  const char *host = json_string_value(json_object_get(in, "host"));
  json_t *port = json_object_get(in, "port");
  json_t *within = json_object_get(in, "within");
  json_t *interval = json_object_get(in, "interval");
  struct tcp_run *r;
  int rc;

  if (host == NULL || host[0] == '\0' || !json_is_integer(port) ||
      !json_is_integer(within) || !json_is_integer(interval))
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "tcp.wait needs host, port, within and interval "
                           "(apply the adapter's defaults first)");
  if ((rc = tcp_check(in, err)) < 0)
    return rc;
  if (strlen(host) >= sizeof r->host)
    /* not quoted: a cut secret would pass redaction */
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "host is too long (%zu bytes; at most %zu)",
                           strlen(host), sizeof r->host - 1);
  if ((r = calloc(1, sizeof *r)) == NULL ||
      (r->outputs = json_object()) == NULL) {
    free(r);
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  }
  r->call = call;
  snprintf(r->host, sizeof r->host, "%s", host);
  snprintf(r->portstr, sizeof r->portstr, "%d",
           (int)json_integer_value(port));
  if (uv_ip4_addr(host, (int)json_integer_value(port),
                  (struct sockaddr_in *)&r->literal) == 0) {
    r->is_literal = 1;
  } else if (uv_ip6_addr(host, (int)json_integer_value(port),
                         (struct sockaddr_in6 *)&r->literal) == 0) {
    r->is_literal = 1;
  }
  snprintf(r->subject, sizeof r->subject,
           strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, r->portstr);
  r->within_ms = (int64_t)json_integer_value(within);
  r->interval_ms = (int64_t)json_integer_value(interval);

  uv_update_time(call->loop); /* the engine may have blocked on a commit */
  r->start = uv_now(call->loop);
  if (r->within_ms > 0)
    r->deadline = r->start + (uint64_t)r->within_ms;
  if (call->timeout_ms > 0) {
    r->hard_deadline = r->start + (uint64_t)call->timeout_ms;
    if (r->deadline == 0 || r->hard_deadline < r->deadline)
      r->deadline = r->hard_deadline;
  }
  uv_timer_init(call->loop, &r->timer);
  r->timer.data = r;
  r->nopen = 1;
  call->priv = r;
  attempt(r);
  return 0;
}

static void tcp_cancel(struct adapter_call *call)
{
  struct tcp_run *r = call ? call->priv : NULL;

  if (r == NULL || r->phase == TCP_FINISHING)
    return;
  fail(r, ADAPTER_CANCELLED);
}

static const struct adapter_input tcp_inputs[] = {
  { "host", ADAPTER_T_STRING, 0, "\"127.0.0.1\"",
    "host name or address to connect to" },
  { "port", ADAPTER_T_INTEGER, 1, NULL, "TCP port" },
  { "within", ADAPTER_T_DURATION, 0, "\"30s\"",
    "give up after this long (0: one attempt)" },
  { "interval", ADAPTER_T_DURATION, 0, "\"200ms\"",
    "pause between attempts" },
  { NULL, 0, 0, NULL, NULL },
};

static const struct adapter_output tcp_outputs[] = {
  { "attempts", "integer", "connection attempts made" },
  { "elapsed_ms", "integer", "time until the connection was accepted" },
  { NULL, NULL, NULL },
};

const struct adapter_desc adapter_tcp_wait = {
  .name = "tcp.wait",
  .summary = "wait until a TCP port accepts connections",
  .inputs = tcp_inputs,
  .outputs = tcp_outputs,
  .idempotent = 1,
  .check = tcp_check,
  .start = tcp_start,
  .cancel = tcp_cancel,
};
