/* Running an adapter's blocking work in libuv's thread pool (see
 * adapters/job.h). */
#include "adapters/job.h"
#include "adapters/spawn.h"
#include "common/duration.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void on_work(uv_work_t *req)
{
  struct adapter__job *j = req->data;

  j->work(j);
}

/* The end: on_done, once the timer (if any) is closed. */
static void job_done(struct adapter__job *j)
{
  struct adapter_call *call = j->call;
  struct adapter_result res;
  char took[32];

  memset(&res, 0, sizeof res);
  res.outcome = j->outcome;
  res.exit_code = -1;
  if (j->outcome != ADAPTER_SUCCEEDED && atomic_load(&j->timed_out)) {
    cairn_duration_exact(call->timeout_ms, took, sizeof took);
    res.outcome = ADAPTER_TIMED_OUT;
    if (j->error[0] == '\0' || strcmp(j->error, "cancelled") == 0)
      snprintf(res.error, sizeof res.error, "timed out after %s", took);
    else
      snprintf(res.error, sizeof res.error, "timed out after %s: %s", took,
               j->error);
  } else if (j->outcome != ADAPTER_SUCCEEDED &&
             atomic_load(&j->cancelled)) {
    res.outcome = ADAPTER_CANCELLED;
    snprintf(res.error, sizeof res.error, "%s",
             j->error[0] ? j->error : "cancelled");
  } else {
    snprintf(res.error, sizeof res.error, "%s",
             res.outcome == ADAPTER_SUCCEEDED ? "" : j->error);
  }
  if (res.error[0] && call->redact) { /* as adapter_finish_text does */
    char *e = strdup(res.error);
    if (e == NULL || (e = adapter_redact(e, call->redact)) == NULL)
      snprintf(res.error, sizeof res.error, "failed (out of memory)");
    else
      snprintf(res.error, sizeof res.error, "%s", e);
    free(e);
  }
  res.outputs = j->outputs;
  res.tail = j->tail;
  res.duration_ms = (int64_t)((uv_hrtime() - j->start_ns) / 1000000);
  call->priv = NULL;
  call->on_done(call, &res); /* may free call */
  json_decref(j->outputs);
  free(j);
}

static void on_timer_close(uv_handle_t *h)
{
  job_done(h->data);
}

void adapter__job_end(struct adapter__job *j)
{
  if (j->ending)
    return;
  j->ending = 1;
  if (!j->has_timer) {
    job_done(j);
    return;
  }
  uv_timer_stop(&j->timer);
  uv_close((uv_handle_t *)&j->timer, on_timer_close);
}

static void on_after(uv_work_t *req, int status)
{
  struct adapter__job *j = req->data;

  j->in_pool = 0;
  if (status == UV_ECANCELED) { /* never began */
    j->outcome = ADAPTER_CANCELLED;
    snprintf(j->error, sizeof j->error, "cancelled");
  } else if (j->after) {
    j->after(j);
    return;
  }
  adapter__job_end(j);
}

/* A cancel or the timeout: the work in the pool sees the flags (or never
 * begins); what runs on the loop is stopped by on_stop. */
static void job_stop(struct adapter__job *j)
{
  /* A job that goes on from the loop has each work run and after see the
   * flags: a file step it skipped could leave what it must put back. */
  if (j->in_pool && j->after == NULL)
    uv_cancel((uv_req_t *)&j->req); /* fails harmlessly once it runs */
  else if (!j->in_pool && !j->ending && j->on_stop)
    j->on_stop(j);
}

static void on_timeout(uv_timer_t *t)
{
  struct adapter__job *j = t->data;

  atomic_store(&j->timed_out, 1);
  atomic_store(&j->cancelled, 1);
  job_stop(j);
}

void adapter__job_queue(struct adapter__job *j,
                        void (*work)(struct adapter__job *j))
{
  j->work = work;
  j->in_pool = 1;
  /* cannot fail with a valid loop and callbacks */
  uv_queue_work(j->call->loop, &j->req, on_work, on_after);
}

int adapter__job_start(struct adapter_call *call,
                       void (*work)(struct adapter__job *j),
                       struct cairn_error *err)
{
  struct adapter__job *j = adapter__job_create(call, err);

  if (j == NULL)
    return err ? err->code : CAIRN_E_NOMEM;
  adapter__job_queue(j, work);
  return 0;
}

struct adapter__job *adapter__job_create(struct adapter_call *call,
                                         struct cairn_error *err)
{
  struct adapter__job *j = calloc(1, sizeof *j);

  if (j == NULL || (j->outputs = json_object()) == NULL) {
    free(j);
    cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    return NULL;
  }
  j->call = call;
  j->outcome = ADAPTER_SUCCEEDED;
  atomic_init(&j->cancelled, 0);
  atomic_init(&j->timed_out, 0);
  j->start_ns = uv_hrtime();
  j->req.data = j;
  call->priv = j;
  if (call->timeout_ms > 0) {
    j->deadline_ns = j->start_ns + (uint64_t)call->timeout_ms * 1000000u;
    j->has_timer = 1;
    uv_timer_init(call->loop, &j->timer);
    j->timer.data = j;
    uv_update_time(call->loop);
    uv_timer_start(&j->timer, on_timeout, (uint64_t)call->timeout_ms, 0);
  }
  return j;
}

int adapter__job_wait_ms(struct adapter__job *j, int max_ms)
{
  uint64_t now;

  if (atomic_load(&j->cancelled))
    return 0;
  if (j->deadline_ns == 0)
    return max_ms;
  now = uv_hrtime();
  if (now >= j->deadline_ns)
    return 0;
  if ((j->deadline_ns - now) / 1000000u < (uint64_t)max_ms)
    return (int)((j->deadline_ns - now + 999999u) / 1000000u);
  return max_ms;
}

const char *adapter__job_stopped(struct adapter__job *j)
{
  if (atomic_load(&j->timed_out) ||
      (j->deadline_ns && uv_hrtime() >= j->deadline_ns))
    return "timed out";
  if (atomic_load(&j->cancelled))
    return "cancelled";
  return NULL;
}

void adapter__job_cancel(struct adapter_call *call)
{
  struct adapter__job *j = call ? call->priv : NULL;

  if (j == NULL || j->ending)
    return;
  atomic_store(&j->cancelled, 1);
  job_stop(j);
}

void adapter__job_fail(struct adapter__job *j, const char *fmt, ...)
{
  va_list ap;

  char *msg = NULL;
  int n;

  /* redacted whole, then cut: a cut must not leave half a secret */
  va_start(ap, fmt);
  n = vasprintf(&msg, fmt, ap);
  va_end(ap);
  if (n < 0 || (msg = adapter_redact(msg, j->call->redact)) == NULL)
    snprintf(j->error, sizeof j->error, "out of memory");
  else
    snprintf(j->error, sizeof j->error, "%s", msg);
  free(msg);
  for (char *p = j->error; *p; p++)
    if (*p == '\n' || *p == '\r')
      *p = ' ';
  j->outcome = ADAPTER_FAILED;
}

void adapter__job_note(struct adapter__job *j, const char *fmt, ...)
{
  va_list ap;
  char *line = NULL;
  size_t have = strlen(j->tail);
  int n;

  va_start(ap, fmt);
  n = vasprintf(&line, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  {
    char *raw = line;
    line = adapter_log_line(j->call, "%s", raw); /* redacted */
    free(raw);
  }
  if (line == NULL)
    return;
  if (have + strlen(line) + 2 < sizeof j->tail)
    snprintf(j->tail + have, sizeof j->tail - have, "%s\n", line);
  free(line);
}
