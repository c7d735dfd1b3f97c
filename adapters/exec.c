/* The exec adapter: runs a command from an argv array (or a /bin/sh -c
 * script where a state says `shell:`) as the leader of its own session and
 * process group, appends its output, redacted, to the step's log, and
 * reports how it ended.
 *
 * Life of one call (struct exec_run, hung on call->priv):
 *
 *   RUNNING    spawned; stdout and stderr are read as they come; the timer
 *              holds the timeout, if any.
 *   STOPPING   timed out or cancelled: SIGTERM (and SIGCONT) went to the
 *              whole group; the timer holds the grace.
 *   KILLED     the grace ran out, or a second cancel came: SIGKILL went to
 *              the group.
 *   REAPING    the leader exited while stopping but its group still has
 *              live members: poll until it is empty, SIGKILL it at the end
 *              of the grace.
 *   DRAINING   the leader is gone; wait for EOF on both pipes, but at most
 *              EXEC_DRAIN_MS: a daemon the command left behind may hold
 *              them open for ever. A leader that exits by itself never has
 *              its group killed (it may leave a daemon behind on purpose).
 *   FINISHING  every handle is closing; the last close callback calls
 *              on_done, then frees the run.
 *
 * A failed spawn goes straight to FINISHING and is reported through
 * on_done as a failed attempt, like any command that fails.
 *
 * The child comes from vfork and execve (adapter__spawn: no copy of our
 * page tables, unlike libuv's fork), its output through two pipes read on
 * the loop; the leader's exit through its pidfd, polled on the loop, then
 * waitpid (or, on a kernel without pidfds, waitpid every
 * EXEC_WAIT_POLL_MS). There is no SIGCHLD handler. */
#include "adapters/adapter.h"
#include "common/duration.h"
#include "adapters/input.h"
#include "adapters/exec.h"
#include "adapters/spawn.h"
#include "common/buf.h"
#include "common/proc.h"
#include "common/utf8.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXEC_STDOUT_MAX (1024 * 1024) /* stdout kept for the json output */
#define EXEC_DRAIN_MS 100
#define EXEC_REAP_POLL_MS 20
#define EXEC_WHY_MAX 200 /* bytes of output quoted in a failure */
#define EXEC_GRACE_MS 5000            /* when call->kill_grace_ms is 0 */
#define EXEC_WAIT_POLL_MS 10          /* waitpid polling, without pidfds */

enum exec_phase {
  EXEC_RUNNING,
  EXEC_STOPPING,
  EXEC_KILLED,
  EXEC_REAPING,
  EXEC_DRAINING,
  EXEC_FINISHING,
};


struct exec_stream {
  uv_pipe_t pipe;
  int is_stdout;
  int closed;       /* uv_close called */
  char *carry;      /* held back: maybe the start of a split secret */
  size_t carry_len; /* < the longest redact value */
};

struct exec_run {
  struct adapter_call *call;
  union { /* learns of the leader's exit */
    uv_handle_t handle;
    uv_poll_t poll;   /* on pidfd */
    uv_timer_t timer; /* polls waitpid, when there is no pidfd */
  } exitw;
  int exitw_init;   /* exitw is a live handle */
  int exitw_closed; /* uv_close called on it */
  int pidfd;        /* -1 when none; closed after exitw */
  uv_timer_t timer;
  struct exec_stream out;
  struct exec_stream err;
  int nopen; /* handles not closed yet */
  enum exec_phase phase;

  int spawned;
  int pid; /* also the pgid */
  int exited;
  int64_t exit_status;
  int term_signal;
  int stopped; /* timed out or cancelled */
  enum adapter_outcome stop_outcome;

  uint64_t start_ns;
  uint64_t end_ns;
  int64_t timeout_ms; /* effective: the smaller of call's and input's */
  int64_t grace_ms;
  uint64_t grace_deadline; /* uv_now() value */

  struct adapter__exec_hooks hooks; /* zero for a state's own exec */
  int log_fd;
  int log_failed;
  const char *const *redact; /* NULL when there is nothing to redact */
  size_t redact_max;         /* longest value */
  struct cairn_buf work;      /* carry + chunk */
  struct cairn_buf obuf;      /* one chunk, redacted */
  struct cairn_buf sout;      /* raw stdout, from its first '{' */
  int sout_state;            /* 0: only blanks yet, 1: keeping, 2: no json */

  int is_child; /* a command of another adapter (adapter__child_start) */
  size_t tail_len;
  json_t *outputs;
  char error[512];
  /* Last, and not zeroed when the run is made (28 KiB a step): */
  char tail[2 * ADAPTER_TAIL_MAX];     /* tail_len bytes used */
  char tail_out[ADAPTER_TAIL_MAX + 1]; /* written whole at the end */
  char rbuf[16384]; /* read buffer shared by both pipes */
};


/* ---- output ------------------------------------------------------------- */

/* Opens the step's log when there is a first thing to write to it, with
 * the caller's header line: a step that succeeds without a word has no
 * log file (creating one a step was a large share of a short step's cost;
 * the journal says all there is). Best effort: a log that cannot be
 * opened fails nothing. */
static int log_ready(struct exec_run *r)
{
  const struct adapter_call *call = r->call;

  if (r->log_fd >= 0)
    return 1;
  if (call->log_path == NULL || r->log_failed)
    return 0;
  if ((r->log_fd = adapter_log_open(call)) < 0)
    r->log_failed = 1; /* said in *call->log_errno */
  return !r->log_failed;
}

/* Redacted output goes here: the log, the tail and a parent's hook. */
static void sink(struct exec_run *r, struct exec_stream *s, const char *p,
                 size_t n)
{
  if (n == 0)
    return;
  if (log_ready(r) && adapter__write_all(r->log_fd, p, n) < 0) {
    r->log_failed = 1; /* a full disk must not fail the deploy */
    adapter_log_failed(r->call->log_errno, errno);
  }
  adapter__tail_add(r->tail, &r->tail_len, p, n);
  if (r->hooks.on_output)
    r->hooks.on_output(r->hooks.ud, s->is_stdout, p, n);
}

static int is_blank(char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void keep_stdout(struct exec_run *r, const char *p, size_t n)
{
  if (r->sout_state == 2)
    return;
  if (r->sout_state == 0) {
    size_t i = 0;
    while (i < n && is_blank(p[i]))
      i++;
    if (i == n)
      return;
    if (p[i] != '{') {
      r->sout_state = 2;
      return;
    }
    r->sout_state = 1;
    p += i;
    n -= i;
  }
  if (r->sout.len + n > EXEC_STDOUT_MAX) {
    r->sout_state = 2;
    cairn_buf_release(&r->sout);
    return;
  }
  cairn_buf_emit(&r->sout, p, n);
  if (r->sout.failed) {
    r->sout_state = 2;
    cairn_buf_release(&r->sout);
  }
}

static void output(struct exec_run *r, struct exec_stream *s, const char *p,
                   size_t n)
{
  const char *in = p;
  size_t len = n;
  size_t used;

  if (s->is_stdout) {
    keep_stdout(r, p, n);
    if (r->hooks.on_stdout_raw)
      r->hooks.on_stdout_raw(r->hooks.ud, p, n);
  }
  if (r->redact == NULL) {
    sink(r, s, p, n);
    return;
  }
  if (s->carry_len > 0) {
    r->work.len = 0;
    cairn_buf_emit(&r->work, s->carry, s->carry_len);
    cairn_buf_emit(&r->work, p, n);
    if (r->work.failed) { /* drop the output rather than leak a secret */
      cairn_buf_release(&r->work);
      s->carry_len = 0;
      return;
    }
    in = r->work.p;
    len = r->work.len;
  }
  r->obuf.len = 0;
  r->obuf.failed = 0;
  used = adapter_redact_feed(in, len, r->redact, 0, cairn_buf_emit, &r->obuf);
  s->carry_len = len - used; /* < redact_max, by the feed's contract */
  memmove(s->carry, in + used, s->carry_len);
  sink(r, s, r->obuf.p, r->obuf.len);
}

static void flush_carry(struct exec_run *r, struct exec_stream *s)
{
  if (s->carry_len == 0)
    return;
  r->obuf.len = 0;
  r->obuf.failed = 0;
  adapter_redact_feed(s->carry, s->carry_len, r->redact, 1, cairn_buf_emit,
                      &r->obuf);
  s->carry_len = 0;
  sink(r, s, r->obuf.p, r->obuf.len);
}

/* ---- json output -------------------------------------------------------- */

static void add_json_output(struct exec_run *r)
{
  json_t *j;

  if (r->sout_state != 1 || r->sout.len == 0)
    return;
  j = json_loadb(r->sout.p, r->sout.len, 0, NULL);
  if (j == NULL || !json_is_object(j)) {
    json_decref(j);
    return;
  }
  if (r->redact) {
    json_t *red = adapter_redact_json(j, r->redact);
    json_decref(j);
    j = red;
  }
  if (j)
    json_object_set_new(r->outputs, "json", j);
}

/* ---- the run ------------------------------------------------------------ */

static void run_free(struct exec_run *r)
{
  json_decref(r->outputs);
  free(r->out.carry);
  free(r->err.carry);
  cairn_buf_release(&r->work);
  cairn_buf_release(&r->obuf);
  cairn_buf_release(&r->sout);
  if (r->log_fd >= 0)
    close(r->log_fd);
  free(r);
}

/* Appends ": LINE" to msg[n], LINE the last non-empty line of the
 * (redacted, valid UTF-8) tail cut to EXEC_WHY_MAX bytes on a character
 * boundary: what a failed command said last is most often why. */
static void add_last_line(char *msg, size_t n, const char *tail)
{
  size_t full, len, used = strlen(msg);
  const char *line = cairn_last_line(tail, strlen(tail), &full);

  if (full == 0 || used + 3 >= n)
    return;
  len = full > EXEC_WHY_MAX ? cairn_utf8_cut(line, EXEC_WHY_MAX) : full;
  snprintf(msg + used, n - used, ": %.*s%s", (int)len, line,
           len < full ? "..." : "");
}

static void complete(struct exec_run *r)
{
  struct adapter_call *call = r->call;
  struct adapter_result res;
  char sigbuf[16];

  memset(&res, 0, sizeof res);
  res.exit_code = -1;
  res.duration_ms = (int64_t)((r->end_ns - r->start_ns) / 1000000);
  if (!r->spawned) {
    res.outcome = ADAPTER_FAILED;
    snprintf(res.error, sizeof res.error, "%s", r->error);
  } else {
    res.term_signal = r->term_signal;
    if (r->term_signal == 0)
      res.exit_code = (int)r->exit_status;
    if (r->stopped) {
      res.outcome = r->stop_outcome;
      snprintf(res.error, sizeof res.error, "%s", r->error);
    } else if (r->term_signal != 0) {
      res.outcome = ADAPTER_FAILED;
      snprintf(res.error, sizeof res.error, "killed by signal %s",
               adapter__signal_name(r->term_signal, sigbuf, sizeof sigbuf));
    } else if (r->exit_status != 0) {
      res.outcome = ADAPTER_FAILED;
      snprintf(res.error, sizeof res.error, "exited with status %d",
               (int)r->exit_status);
    } else {
      res.outcome = ADAPTER_SUCCEEDED;
    }
  }
  if (res.outcome != ADAPTER_SUCCEEDED && r->log_fd < 0 && log_ready(r)) {
    /* the failure message names the log: it says why there is nothing */
    char line[600];
    snprintf(line, sizeof line, "(no output; %s)\n",
             res.error[0] ? res.error : "failed");
    if (adapter__write_all(r->log_fd, line, strlen(line)) < 0)
      adapter_log_failed(r->call->log_errno, errno);
  }
  if (r->log_fd >= 0) {
    close(r->log_fd);
    r->log_fd = -1;
  }
  json_object_set_new(r->outputs, "exit_code", json_integer(res.exit_code));
  add_json_output(r);
  res.outputs = r->outputs;
  res.tail = (char *)adapter__tail_text(r->tail, r->tail_len, r->tail_out);
  if (res.outcome == ADAPTER_FAILED && r->spawned && !r->stopped &&
      !r->is_child) /* a parent adapter words its own failures */
    add_last_line(res.error, sizeof res.error, res.tail);

  call->priv = NULL;
  call->on_done(call, &res); /* may free call */
  run_free(r);
}

static void on_close(uv_handle_t *h)
{
  struct exec_run *r = h->data;

  if (--r->nopen == 0)
    complete(r);
}

/* uv_poll does not own the pidfd: close it once the handle is closed. */
static void on_exitw_close(uv_handle_t *h)
{
  struct exec_run *r = h->data;

  if (r->pidfd >= 0) {
    close(r->pidfd);
    r->pidfd = -1;
  }
  on_close(h);
}

static void exitw_close(struct exec_run *r)
{
  if (!r->exitw_init || r->exitw_closed)
    return;
  r->exitw_closed = 1;
  uv_close(&r->exitw.handle, on_exitw_close);
}

static void stream_close(struct exec_run *r, struct exec_stream *s)
{
  if (s->closed)
    return;
  s->closed = 1;
  flush_carry(r, s);
  uv_close((uv_handle_t *)&s->pipe, on_close);
}

static void finish(struct exec_run *r)
{
  if (r->phase == EXEC_FINISHING)
    return;
  r->phase = EXEC_FINISHING;
  r->end_ns = uv_hrtime();
  uv_close((uv_handle_t *)&r->timer, on_close);
  exitw_close(r);
  stream_close(r, &r->out);
  stream_close(r, &r->err);
}

static void on_timer(uv_timer_t *t);

/* The leader is gone (and, after a stop, its group too). */
static void after_exit(struct exec_run *r)
{
  uv_timer_stop(&r->timer);
  if (r->out.closed && r->err.closed) {
    finish(r);
    return;
  }
  r->phase = EXEC_DRAINING;
  uv_timer_start(&r->timer, on_timer, EXEC_DRAIN_MS, 0);
}

static void terminate(struct exec_run *r, enum adapter_outcome why)
{
  char d[32];

  r->stopped = 1;
  r->stop_outcome = why;
  if (why == ADAPTER_TIMED_OUT) {
    cairn_duration_exact(r->timeout_ms, d, sizeof d);
    snprintf(r->error, sizeof r->error, "timed out after %s", d);
  } else {
    snprintf(r->error, sizeof r->error, "cancelled");
  }
  kill(-r->pid, SIGTERM);
  kill(-r->pid, SIGCONT); /* a stopped process acts on SIGTERM only then */
  r->phase = EXEC_STOPPING;
  uv_update_time(r->call->loop); /* cancel may come from outside a callback */
  r->grace_deadline = uv_now(r->call->loop) + (uint64_t)r->grace_ms;
  uv_timer_start(&r->timer, on_timer, (uint64_t)r->grace_ms, 0);
}

static void on_timer(uv_timer_t *t)
{
  struct exec_run *r = t->data;

  switch (r->phase) {
  case EXEC_RUNNING:
    terminate(r, ADAPTER_TIMED_OUT);
    break;
  case EXEC_STOPPING:
    kill(-r->pid, SIGKILL);
    r->phase = EXEC_KILLED;
    break;
  case EXEC_REAPING:
    if (!cairn_proc_group_alive(r->pid)) {
      after_exit(r);
    } else if (uv_now(r->call->loop) >= r->grace_deadline) {
      kill(-r->pid, SIGKILL);
      after_exit(r);
    }
    break;
  case EXEC_DRAINING:
    finish(r);
    break;
  case EXEC_KILLED:
  case EXEC_FINISHING:
    break;
  }
}

static void on_proc_exit(struct exec_run *r, int64_t exit_status,
                         int term_signal)
{
  r->exited = 1;
  r->exit_status = exit_status;
  r->term_signal = term_signal;
  if (r->phase == EXEC_STOPPING && cairn_proc_group_alive(r->pid)) {
    /* keep the grace deadline; poll for the group to empty */
    r->phase = EXEC_REAPING;
    uv_timer_start(&r->timer, on_timer, EXEC_REAP_POLL_MS,
                   EXEC_REAP_POLL_MS);
    return;
  }
  after_exit(r);
}

/* Reaps the leader if it exited. Decodes its status as libuv did. */
static void reap(struct exec_run *r)
{
  int status = 0;
  pid_t w;

  if (r->exited)
    return;
  do
    w = waitpid(r->pid, &status, WNOHANG);
  while (w < 0 && errno == EINTR);
  if (w == 0)
    return; /* still running */
  exitw_close(r);
  if (w < 0) { /* ECHILD: reaped by someone else; its status is lost */
    on_proc_exit(r, -1, 0);
    return;
  }
  on_proc_exit(r, WIFEXITED(status) ? WEXITSTATUS(status) : 0,
               WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static void on_pidfd(uv_poll_t *p, int status, int events)
{
  (void)status;
  (void)events;
  reap(p->data);
}

static void on_wait_poll(uv_timer_t *t)
{
  reap(t->data);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
  struct exec_run *r = h->data;

  (void)suggested;
  /* libuv reads and calls back before it allocates again, so one buffer
   * serves both pipes */
  buf->base = r->rbuf;
  buf->len = sizeof r->rbuf;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
  struct exec_run *r = st->data;
  struct exec_stream *s =
      st == (uv_stream_t *)&r->out.pipe ? &r->out : &r->err;

  if (nread > 0) {
    output(r, s, buf->base, (size_t)nread);
    return;
  }
  if (nread == 0)
    return;
  stream_close(r, s); /* EOF or a read error */
  if (r->phase == EXEC_DRAINING && r->out.closed && r->err.closed)
    finish(r);
}

/* ---- inputs ------------------------------------------------------------- */

static int exec_check(json_t *with, struct cairn_error *err)
{
  json_t *argv = adapter__input(with, "argv");
  json_t *shell = adapter__input(with, "shell");
  json_t *env = adapter__input(with, "env");

  if (argv && shell)
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "'argv' and 'shell' cannot be used together");
  if (!argv && !shell)
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "either 'argv' or 'shell' is required");
  return adapter__check_env_names(env, err);
}


static int check_inputs(json_t *in, struct cairn_error *err)
{
  json_t *v;
  size_t i;
  const char *key;
  json_t *item;
  int rc;

  if (!json_is_object(in))
    return cairn_error_set(err, CAIRN_E_INVAL, "inputs of exec must be a map");
  if ((rc = exec_check(in, err)) < 0)
    return rc;
  if ((v = adapter__input(in, "argv")) != NULL) {
    if (!json_is_array(v) || json_array_size(v) == 0)
      goto bad_argv;
    json_array_foreach(v, i, item) {
      if (!json_is_string(item))
        goto bad_argv;
    }
  }
  if ((v = adapter__input(in, "shell")) != NULL && !json_is_string(v))
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "input 'shell' must be a string");
  if ((v = adapter__input(in, "cwd")) != NULL && !json_is_string(v))
    return cairn_error_set(err, CAIRN_E_INVAL, "input 'cwd' must be a string");
  if ((v = adapter__input(in, "env")) != NULL) {
    if (!json_is_object(v))
      goto bad_env;
    json_object_foreach(v, key, item) {
      if (!json_is_string(item))
        goto bad_env;
    }
  }
  if ((v = adapter__input(in, "timeout")) != NULL &&
      (!json_is_integer(v) || json_integer_value(v) < 0))
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "input 'timeout' must be integer milliseconds "
                           "(apply the adapter's defaults first)");
  return 0;

bad_argv:
  return cairn_error_set(err, CAIRN_E_INVAL,
                         "input 'argv' must be a non-empty list of strings");
bad_env:
  return cairn_error_set(err, CAIRN_E_INVAL,
                         "input 'env' must be a map of strings");
}

/* Learns of the leader's exit: a pidfd polled on the loop, or, where the
 * kernel has none, waitpid every EXEC_WAIT_POLL_MS. No SIGCHLD handler. */
static void watch_exit(struct exec_run *r)
{
  uv_loop_t *loop = r->call->loop;
  int fd = -1;

#ifdef SYS_pidfd_open
  fd = (int)syscall(SYS_pidfd_open, r->pid, 0); /* close-on-exec */
#endif
  if (fd >= 0 && uv_poll_init(loop, &r->exitw.poll, fd) == 0) {
    r->pidfd = fd;
    r->exitw.poll.data = r;
    r->exitw_init = 1;
    uv_poll_start(&r->exitw.poll, UV_READABLE, on_pidfd);
    return;
  }
  if (fd >= 0)
    close(fd);
  uv_timer_init(loop, &r->exitw.timer);
  r->exitw.timer.data = r;
  r->exitw_init = 1;
  uv_timer_start(&r->exitw.timer, on_wait_poll, EXEC_WAIT_POLL_MS,
                 EXEC_WAIT_POLL_MS);
}

/* The read end of a pipe becomes the stream's; its EOF closes it. */
static void read_pipe(struct exec_run *r, struct exec_stream *s, int fd)
{
  /* uv_pipe_open makes fd non-blocking itself (only our end: the child's
   * end of the pipe stays blocking) */
  if (uv_pipe_open(&s->pipe, fd) < 0) {
    close(fd);
    stream_close(r, s);
    return;
  }
  if (uv_read_start((uv_stream_t *)&s->pipe, on_alloc, on_read) < 0)
    stream_close(r, s);
}

int adapter__exec_start(struct adapter_call *call,
                        const struct adapter__exec_hooks *hooks,
                        struct cairn_error *err)
{
  json_t *in = call->inputs;
  json_t *argv, *shell, *cwdv, *env, *tov;
  const char *cwd;
  const char *sh_args[4] = { "/bin/sh", "-c", NULL, NULL };
  const char **args = NULL;
  char **envp = NULL;
  struct exec_run *r = NULL;
  char **spawn_args;
  int out_p[2] = { -1, -1 }, err_p[2] = { -1, -1 };
  pid_t pid = -1;
  int64_t pstart = 0;
  int64_t t;
  int rc;

  if ((rc = check_inputs(in, err)) < 0)
    return rc;
  argv = adapter__input(in, "argv");
  shell = adapter__input(in, "shell");
  cwdv = adapter__input(in, "cwd");
  env = adapter__input(in, "env");
  tov = adapter__input(in, "timeout");
  cwd = cwdv ? json_string_value(cwdv) : NULL;

  if ((r = malloc(sizeof *r)) == NULL)
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  memset(r, 0, offsetof(struct exec_run, tail));
  r->call = call;
  r->log_fd = -1;
  if (hooks)
    r->hooks = *hooks;
  if ((r->outputs = json_object()) == NULL) {
    rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    goto fail;
  }

  if (argv) {
    size_t i, n = json_array_size(argv);
    json_t *item;
    if ((args = calloc(n + 1, sizeof *args)) == NULL) {
      rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
      goto fail;
    }
    json_array_foreach(argv, i, item) {
      args[i] = json_string_value(item);
    }
  } else {
    sh_args[2] = json_string_value(shell);
  }
  if ((call->env_extra && call->env_extra[0]) || json_object_size(env) > 0) {
    if ((envp = adapter__build_env(call->env_extra, env)) == NULL) {
      rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
      goto fail;
    }
  }

  for (const char *const *s = call->redact; s && *s; s++) {
    size_t len = strlen(*s);
    if (len > r->redact_max)
      r->redact_max = len;
  }
  if (r->redact_max > 0) {
    r->redact = call->redact;
    r->out.carry = malloc(r->redact_max);
    r->err.carry = malloc(r->redact_max);
    if (r->out.carry == NULL || r->err.carry == NULL) {
      rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
      goto fail;
    }
  }

  r->timeout_ms = call->timeout_ms > 0 ? call->timeout_ms : 0;
  t = tov ? (int64_t)json_integer_value(tov) : 0;
  if (t > 0 && (r->timeout_ms == 0 || t < r->timeout_ms))
    r->timeout_ms = t;
  r->grace_ms = call->kill_grace_ms > 0 ? call->kill_grace_ms : EXEC_GRACE_MS;

  /* From here on nothing fails: a failed spawn is a failed attempt,
   * reported through on_done. uv_*_init cannot fail on Unix. */
  r->start_ns = uv_hrtime();
  r->phase = EXEC_RUNNING;
  r->out.is_stdout = 1;
  uv_timer_init(call->loop, &r->timer);
  uv_pipe_init(call->loop, &r->out.pipe, 0);
  uv_pipe_init(call->loop, &r->err.pipe, 0);
  r->timer.data = r;
  r->out.pipe.data = r;
  r->err.pipe.data = r;
  r->pidfd = -1;
  call->priv = r;

  spawn_args = (char **)(args ? args : sh_args);
  adapter__cloexec_fds();
  if ((rc = adapter__pipe(out_p)) == 0 && (rc = adapter__pipe(err_p)) == 0)
    rc = adapter__spawn(&pid, &pstart, spawn_args, envp, cwd, out_p[1],
                        err_p[1]);
  if (out_p[1] >= 0)
    close(out_p[1]);
  if (err_p[1] >= 0)
    close(err_p[1]);
  if (rc != 0) {
    if (out_p[0] >= 0)
      close(out_p[0]);
    if (err_p[0] >= 0)
      close(err_p[0]);
    r->nopen = 3;
    adapter__spawn_error(r->error, sizeof r->error, -rc, spawn_args[0], cwd,
                         r->redact);
    free(args);
    free(envp);
    finish(r);
    return 0;
  }
  free(args);
  free(envp);
  r->spawned = 1;
  r->pid = (int)pid;
  r->nopen = 4;
  watch_exit(r);

  read_pipe(r, &r->out, out_p[0]);
  read_pipe(r, &r->err, err_p[0]);
  if (r->timeout_ms > 0) {
    /* the loop's clock may be stale (the engine may have blocked on a
     * commit since): a stale base would shorten the timeout */
    uv_update_time(call->loop);
    uv_timer_start(&r->timer, on_timer, (uint64_t)r->timeout_ms, 0);
  }

  if (call->on_spawned) /* last: it may cancel */
    call->on_spawned(call, r->pid, r->pid, pstart);
  return 0;

fail:
  free(args);
  free(envp);
  run_free(r);
  call->priv = NULL;
  return rc;
}

static int exec_start(struct adapter_call *call, struct cairn_error *err)
{
  return adapter__exec_start(call, NULL, err);
}

static void exec_cancel(struct adapter_call *call)
{
  struct exec_run *r = call ? call->priv : NULL;

  if (r == NULL)
    return;
  switch (r->phase) {
  case EXEC_RUNNING:
    uv_timer_stop(&r->timer);
    terminate(r, ADAPTER_CANCELLED);
    break;
  case EXEC_DRAINING:
    finish(r); /* it already exited: its own outcome stands */
    break;
  case EXEC_STOPPING:
    /* Cancelled again while in its grace (a further Ctrl-C): no more
     * waiting, as on_timer would at the end of the grace. */
    uv_timer_stop(&r->timer);
    kill(-r->pid, SIGKILL);
    r->phase = EXEC_KILLED;
    break;
  case EXEC_REAPING:
    r->grace_deadline = 0; /* the next poll kills what is left */
    break;
  default:
    break; /* killed, or done */
  }
}

/* ---- a child of another adapter ---------------------------------------- */

static void child_on_spawned(struct adapter_call *call, int pid, int pgid,
                             int64_t proc_start)
{
  struct adapter__child *c = (struct adapter__child *)call;

  c->spawned = 1;
  /* the engine journals the group, so a resume after a crash stops it */
  if (c->parent->on_spawned)
    c->parent->on_spawned(c->parent, pid, pgid, proc_start);
}

static void child_on_done(struct adapter_call *call,
                          const struct adapter_result *res)
{
  struct adapter__child *c = (struct adapter__child *)call;

  c->running = 0;
  c->on_done(c, res);
}

int adapter__child_start(struct adapter__child *c,
                         const struct adapter__child_spec *spec,
                         struct cairn_error *err)
{
  struct adapter_call *p = c->parent, *call = &c->call;
  json_t *args = json_array();
  int rc;

  json_decref(c->inputs);
  c->inputs = json_pack("{s:o}", "argv", args);
  for (size_t i = 0; args && spec->argv[i]; i++)
    if (json_array_append_new(args, json_string(spec->argv[i])) < 0)
      args = NULL;
  if (c->inputs == NULL || args == NULL ||
      (spec->env && json_object_set(c->inputs, "env", spec->env) < 0)) {
    json_decref(c->inputs);
    c->inputs = NULL;
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  }
  memset(call, 0, sizeof *call);
  call->loop = p->loop;
  call->desc = &adapter_exec;
  call->inputs = c->inputs;
  call->log_path = spec->log_path;
  /* A parent's log names every command it runs, output or not (a state's
   * own exec writes its header only with a first output). */
  adapter_log_append(spec->log_path, spec->log_header, p->log_errno);
  call->log_errno = p->log_errno;
  call->log_header = NULL;
  call->run_dir = p->run_dir;
  call->name = p->name;
  call->run_id = p->run_id;
  call->timeout_ms = spec->timeout_ms;
  call->kill_grace_ms = p->kill_grace_ms;
  call->env_extra = p->env_extra;
  call->redact = spec->redact ? spec->redact : p->redact;
  call->on_spawned = child_on_spawned;
  call->on_done = child_on_done;
  c->spawned = 0;
  c->running = 1;
  if ((rc = adapter__exec_start(call, spec->hooks, err)) < 0)
    c->running = 0;
  else if (call->priv != NULL) /* it ends in a later callback */
    ((struct exec_run *)call->priv)->is_child = 1;
  return rc;
}

void adapter__child_cancel(struct adapter__child *c)
{
  if (c->running)
    exec_cancel(&c->call);
}

void adapter__child_release(struct adapter__child *c)
{
  json_decref(c->inputs);
  c->inputs = NULL;
}

static const struct adapter_input exec_inputs[] = {
  { "argv", ADAPTER_T_ARGV, 0, NULL,
    "program and arguments, run without a shell (this or shell)" },
  { "shell", ADAPTER_T_STRING, 0, NULL,
    "a script run by /bin/sh -c (this or argv)" },
  { "cwd", ADAPTER_T_STRING, 0, NULL, "directory to run in" },
  { "env", ADAPTER_T_STRMAP, 0, NULL,
    "variables added to the inherited environment" },
  { "timeout", ADAPTER_T_DURATION, 0, NULL,
    "stop the command after this long (with the state's timeout, the "
    "smaller wins)" },
  { NULL, 0, 0, NULL, NULL },
};

static const struct adapter_output exec_outputs[] = {
  { "exit_code", "integer",
    "the exit status; -1 when it did not exit normally" },
  { "json", "object",
    "what the command printed, when its whole stdout is one JSON object" },
  { NULL, NULL, NULL },
};

const struct adapter_desc adapter_exec = {
  .name = "exec",
  .summary = "run a command",
  .inputs = exec_inputs,
  .outputs = exec_outputs,
  .idempotent = 0,
  .heap_hint = 36 << 10, /* its output tails, pipes and log: 1,000 /bin/true
                          * branches grew the heap by 31 MiB */
  .check = exec_check,
  .start = exec_start,
  .cancel = exec_cancel,
};
