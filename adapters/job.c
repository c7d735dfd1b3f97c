/* Running an adapter's blocking work in libuv's thread pool (see
 * adapters/job.h). */
#include "adapters/job.h"
#include "adapters/spawn.h"

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

static void on_after(uv_work_t *req, int status)
{
  struct adapter__job *j = req->data;
  struct adapter_call *call = j->call;
  struct adapter_result res;

  memset(&res, 0, sizeof res);
  res.outcome = j->outcome;
  res.exit_code = -1;
  if (status == UV_ECANCELED) {
    res.outcome = ADAPTER_CANCELLED;
    snprintf(j->error, sizeof j->error, "cancelled");
  } else if (atomic_load(&j->cancelled) && j->outcome != ADAPTER_SUCCEEDED) {
    res.outcome = ADAPTER_CANCELLED;
  }
  snprintf(res.error, sizeof res.error, "%s",
           res.outcome == ADAPTER_SUCCEEDED ? "" : j->error);
  res.outputs = j->outputs;
  res.tail = j->tail;
  res.duration_ms = (int64_t)((uv_hrtime() - j->start_ns) / 1000000);
  call->priv = NULL;
  call->on_done(call, &res); /* may free call */
  json_decref(j->outputs);
  free(j);
}

int adapter__job_start(struct adapter_call *call,
                       void (*work)(struct adapter__job *j),
                       struct cairn_error *err)
{
  struct adapter__job *j = calloc(1, sizeof *j);

  if (j == NULL || (j->outputs = json_object()) == NULL) {
    free(j);
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  }
  j->call = call;
  j->work = work;
  j->outcome = ADAPTER_SUCCEEDED;
  atomic_init(&j->cancelled, 0);
  j->start_ns = uv_hrtime();
  j->req.data = j;
  call->priv = j;
  /* cannot fail with a valid loop and callbacks */
  uv_queue_work(call->loop, &j->req, on_work, on_after);
  return 0;
}

void adapter__job_cancel(struct adapter_call *call)
{
  struct adapter__job *j = call ? call->priv : NULL;

  if (j == NULL)
    return;
  atomic_store(&j->cancelled, 1);
  uv_cancel((uv_req_t *)&j->req); /* fails harmlessly once it runs */
}

void adapter__job_fail(struct adapter__job *j, const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(j->error, sizeof j->error, fmt, ap);
  va_end(ap);
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
  line = adapter_redact(line, j->call->redact);
  if (j->call->log_path) {
    int fd = open(j->call->log_path,
                  O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) { /* best effort, like every log write */
      adapter__write_all(fd, line, strlen(line));
      adapter__write_all(fd, "\n", 1);
      close(fd);
    }
  }
  if (have + strlen(line) + 2 < sizeof j->tail)
    snprintf(j->tail + have, sizeof j->tail - have, "%s\n", line);
  free(line);
}
