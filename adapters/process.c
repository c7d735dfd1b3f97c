/* The process adapters: process.start runs a long-lived service detached
 * (its own session, a log file, a pid file), process.stop stops it.
 *
 * The pid file is JSON: {"pid", "pgid", "proc_start", "argv", "log",
 * "boot_id", "run_id", "entry"}. proc_start (clock ticks since boot,
 * /proc/PID/stat) tells a live service from a later process that got the
 * same pid: a pid whose start time differs is never signalled. run_id and
 * entry name the run and the visit of the state that started it: a start
 * that finds the service running is its own only when they are its own
 * (an attempt before a retry, or before the engine died and the run was
 * resumed); otherwise it adopted what another run or state started, and
 * its undo leaves that running (output `adopted`).
 *
 * One struct proc_run per call, with one timer:
 *   START_WAIT  process.start: the service runs; the timer ends the
 *               `wait` (or fires at once), then it must still be alive.
 *   STOPPING    SIGTERM went to the group; the timer polls every
 *               PROC_POLL_MS until the group is empty or the grace ends.
 *   KILLED      SIGKILL went; polls until empty, at most PROC_KILL_MS.
 *   FINISHING   the timer is closing; its close callback calls on_done.
 * The service stays a child of cairn: every poll reaps it (waitpid
 * WNOHANG), and /proc counts a zombie as gone. */
#include "adapters/adapter.h"
#include "adapters/input.h"
#include "adapters/job.h"
#include "adapters/spawn.h"
#include "common/file.h"
#include "common/listen.h"
#include "common/proc.h"
#include "common/utf8.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROC_POLL_MS 20
#define PROC_KILL_MS 5000     /* after SIGKILL, how long to wait for it */
#define PROC_PIDFILE_MAX 65536
#define PROC_TAIL_MAX 4096    /* bytes of the service log in the tail */

enum proc_phase { START_WAIT, STOPPING, KILLED, FINISHING };

struct proc_run {
  struct adapter_call *call;
  uv_timer_t timer;
  enum proc_phase phase;
  int is_start;
  int pid, pgid;
  int64_t proc_start;
  int64_t grace_ms;
  uint64_t deadline;       /* uv_now() value */
  const char *signal;      /* the last one sent, "" when none */
  int stopped;             /* process.stop: it was running and we stopped it */
  int adopted;             /* process.start: found running, started by
                              another run, state or visit */
  int cancelled;
  enum adapter_outcome outcome;
  char error[512];
  char *tail;              /* malloc'd, redacted; NULL for "" */
  char note[640];          /* what a success's outputs say anyway: to the
                              step's log only when the step fails */
  char pid_file[4200];
  char log[4200];
  json_t *outputs;
  uint64_t start_ns;
};

/* A line to the step's log (not the service's), best effort. */
#define step_log(r, ...) free(adapter_log_line((r)->call, __VA_ARGS__))

/* A line for the step's log that matters only if the step fails (its
 * outputs say it otherwise): a step that succeeds makes no log file. */
static void step_note(struct proc_run *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void step_note(struct proc_run *r, const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(r->note, sizeof r->note, fmt, ap);
  va_end(ap);
}

/* Reaps pid if it is our child and has exited; never blocks. */
static void reap(int pid)
{
  while (waitpid(pid, NULL, WNOHANG) < 0 && errno == EINTR)
    ;
}

/* ---- finishing ---------------------------------------------------------- */

static void on_timer_close(uv_handle_t *h)
{
  struct proc_run *r = h->data;
  struct adapter_call *call = r->call;
  struct adapter_result res;

  memset(&res, 0, sizeof res);
  res.outcome = r->outcome;
  res.exit_code = -1;
  snprintf(res.error, sizeof res.error, "%s", r->error);
  res.outputs = r->outputs;
  res.tail = r->tail ? r->tail : (char *)"";
  res.duration_ms = (int64_t)((uv_hrtime() - r->start_ns) / 1000000);
  call->priv = NULL;
  call->on_done(call, &res); /* may free call */
  json_decref(r->outputs);
  free(r->tail);
  free(r);
}

static void free_on_close(uv_handle_t *h)
{
  struct proc_run *r = h->data;

  json_decref(r->outputs);
  free(r->tail);
  free(r);
}

static void finish(struct proc_run *r, enum adapter_outcome outcome)
{
  if (r->phase == FINISHING)
    return;
  r->phase = FINISHING;
  r->outcome = outcome;
  if (outcome != ADAPTER_SUCCEEDED && r->note[0])
    step_log(r, "%s", r->note);
  if (outcome == ADAPTER_SUCCEEDED)
    r->error[0] = '\0';
  uv_close((uv_handle_t *)&r->timer, on_timer_close);
}

static struct proc_run *run_create(struct adapter_call *call, int is_start)
{
  struct proc_run *r = calloc(1, sizeof *r);

  if (r == NULL)
    return NULL;
  if ((r->outputs = json_object()) == NULL) {
    free(r);
    return NULL;
  }
  r->call = call;
  r->is_start = is_start;
  r->signal = "";
  r->start_ns = uv_hrtime();
  uv_timer_init(call->loop, &r->timer);
  r->timer.data = r;
  call->priv = r;
  return r;
}

/* ---- the pid file ------------------------------------------------------- */

struct pidinfo {
  int pid, pgid;
  int64_t proc_start;
  json_t *doc; /* the whole file (owned), or NULL */
};

/* 1 when p[0..n) is empty or only NUL bytes. */
static int all_zero(const char *p, size_t n)
{
  while (n > 0 && p[n - 1] == '\0')
    n--;
  return n == 0;
}

/* 1 with *pi filled when path holds a pid file of this boot, 0 when there
 * is none (or it is from another boot: every process of it is gone),
 * -1 with why when it cannot be read or parsed. */
static int pidfile_read(const char *path, struct pidinfo *pi, char *why,
                        size_t n)
{
  char *text = NULL;
  size_t len = 0;
  json_t *doc;
  const char *b;
  char boot[40];
  int rc;

  memset(pi, 0, sizeof *pi);
  if ((rc = adapter__read_file(path, PROC_PIDFILE_MAX, &text, &len)) < 0) {
    if (rc == -ENOENT)
      return 0;
    snprintf(why, n, "cannot read pid file '%s': %s", path, uv_strerror(rc));
    return -1;
  }
  /* Pid files are written without fsync (see start_write_pidfile): a crash
   * of the machine may leave one empty or of zeros, which names nothing. */
  if (all_zero(text, len)) {
    free(text);
    return 0;
  }
  doc = json_loadb(text, len, 0, NULL);
  free(text);
  if (!json_is_object(doc) ||
      !json_is_integer(json_object_get(doc, "pid")) ||
      json_integer_value(json_object_get(doc, "pid")) <= 0) {
    json_decref(doc);
    snprintf(why, n, "pid file '%s' is not one process.start wrote (remove "
             "it if nothing runs)", path);
    return -1;
  }
  cairn_proc_boot_id(boot);
  b = json_string_value(json_object_get(doc, "boot_id"));
  if (b && *boot && strcmp(b, boot) != 0) {
    json_decref(doc);
    return 0;
  }
  pi->pid = (int)json_integer_value(json_object_get(doc, "pid"));
  pi->pgid = (int)json_integer_value(json_object_get(doc, "pgid"));
  if (pi->pgid <= 0)
    pi->pgid = pi->pid;
  pi->proc_start = json_integer_value(json_object_get(doc, "proc_start"));
  pi->doc = doc;
  return 1;
}

/* ---- process.start ------------------------------------------------------ */

static int path_or_default(char *out, size_t n, const char *given,
                           const struct adapter_call *call, const char *ext,
                           const char *input_name, struct cairn_error *err)
{
  int w;

  if (given)
    w = snprintf(out, n, "%s", given);
  else if (call->run_dir && call->name)
    w = snprintf(out, n, "%s/%s%s", call->run_dir, call->name, ext);
  else
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "process.start needs input '%s' here (there is no "
                           "run folder to keep it in)",
                           input_name);
  if (w < 0 || (size_t)w >= n)
    return cairn_error_set(err, CAIRN_E_INVAL, "path too long for input '%s'",
                           input_name);
  return 0;
}

static void start_outputs(struct proc_run *r)
{
  json_object_set_new(r->outputs, "pid", json_integer(r->pid));
  json_object_set_new(r->outputs, "pgid", json_integer(r->pgid));
  json_object_set_new(r->outputs, "proc_start", json_integer(r->proc_start));
  json_object_set_new(r->outputs, "pid_file", json_string(r->pid_file));
  json_object_set_new(r->outputs, "log", json_string(r->log));
  json_object_set_new(r->outputs, "adopted", json_boolean(r->adopted));
}

/* The last lines of the service's log (at most PROC_TAIL_MAX bytes, from
 * a line start), redacted, into r->tail; its last non-empty line into
 * last[n]. */
static void log_tail(struct proc_run *r, char *last, size_t n)
{
  char buf[PROC_TAIL_MAX + 1];
  ssize_t got;
  off_t size;
  int fd = open(r->log, O_RDONLY | O_CLOEXEC);
  const char *line;
  char *p;
  size_t len;

  last[0] = '\0';
  if (fd < 0)
    return;
  size = lseek(fd, 0, SEEK_END);
  if (size > PROC_TAIL_MAX)
    lseek(fd, size - PROC_TAIL_MAX, SEEK_SET);
  else
    lseek(fd, 0, SEEK_SET);
  got = read(fd, buf, PROC_TAIL_MAX);
  close(fd);
  if (got <= 0)
    return;
  buf[got] = '\0';
  cairn_utf8_scrub(buf, (size_t)got); /* the tail goes into JSON */
  p = buf;
  if (size > PROC_TAIL_MAX && (p = strchr(buf, '\n')) != NULL)
    p++;
  else
    p = buf;
  free(r->tail);
  r->tail = adapter_redact(strdup(p), r->call->redact);
  if (r->tail == NULL)
    return;
  line = cairn_last_line(r->tail, strlen(r->tail), &len);
  if (len >= n)
    len = cairn_utf8_cut(line, n - 1);
  snprintf(last, n, "%.*s", (int)len, line);
}

static void start_check(struct proc_run *r)
{
  char last[256];
  int status = 0;
  pid_t w;

  do
    w = waitpid(r->pid, &status, WNOHANG);
  while (w < 0 && errno == EINTR);
  if (w == 0 || (w < 0 && cairn_proc_alive(r->pid, r->proc_start))) {
    start_outputs(r);
    finish(r, ADAPTER_SUCCEEDED);
    return;
  }
  /* It died: its group may not have. */
  if (cairn_proc_group_alive(r->pgid))
    kill(-r->pgid, SIGKILL);
  unlink(r->pid_file);
  log_tail(r, last, sizeof last);
  if (w > 0 && WIFSIGNALED(status)) {
    char sb[16];
    snprintf(r->error, sizeof r->error,
             "service pid %d was killed by %s right after it started%s%s",
             r->pid, adapter__signal_name(WTERMSIG(status), sb, sizeof sb),
             last[0] ? ": " : "", last);
  } else {
    snprintf(r->error, sizeof r->error,
             "service pid %d exited with status %d right after it "
             "started%s%s (log '%s')",
             r->pid, w > 0 ? WEXITSTATUS(status) : -1, last[0] ? ": " : "",
             last, r->log);
  }
  finish(r, ADAPTER_FAILED);
}

static void stop_poll(struct proc_run *r);

static void on_timer(uv_timer_t *t)
{
  struct proc_run *r = t->data;

  if (r->phase == START_WAIT)
    start_check(r);
  else
    stop_poll(r);
}

/* 1 when the pid file names the run and the visit of the state that
 * call is part of. Only those tell a service this visit started (before a
 * retry, or before its engine died) from one another run or state did: a
 * pid file without them (an older cairn's, a test's) is not ours. */
static int started_here(const struct adapter_call *call, json_t *doc)
{
  const char *run = json_string_value(json_object_get(doc, "run_id"));
  json_t *entry = json_object_get(doc, "entry");

  return call->run_id != NULL && run != NULL &&
         strcmp(run, call->run_id) == 0 && call->entry > 0 &&
         json_is_integer(entry) && json_integer_value(entry) == call->entry;
}

/* 1 when the pid file at r->pid_file names this very service, alive, with
 * the same argv: r's pid fields are filled, and r->adopted says whether
 * another run or state started it. -1 with r->error when it names a live
 * process with another argv (or cannot be read). */
static int start_already(struct proc_run *r, json_t *argv)
{
  struct pidinfo pi;
  int rc = pidfile_read(r->pid_file, &pi, r->error, sizeof r->error);
  json_t *log;

  if (rc <= 0)
    return rc;
  if (!cairn_proc_alive(pi.pid, pi.proc_start)) {
    json_decref(pi.doc);
    return 0;
  }
  if (!json_equal(json_object_get(pi.doc, "argv"), argv)) {
    snprintf(r->error, sizeof r->error,
             "pid file '%s' names pid %d, running with another argv; stop it "
             "first (process.stop)",
             r->pid_file, pi.pid);
    json_decref(pi.doc);
    return -1;
  }
  r->pid = pi.pid;
  r->pgid = pi.pgid;
  r->proc_start = pi.proc_start;
  r->adopted = !started_here(r->call, pi.doc);
  if ((log = json_object_get(pi.doc, "log")) && json_is_string(log))
    snprintf(r->log, sizeof r->log, "%s", json_string_value(log));
  json_decref(pi.doc);
  return 1;
}

static int start_write_pidfile(struct proc_run *r, json_t *argv)
{
  struct cairn_error err = {0};
  char boot[40];
  char *text;
  int rc;
  json_t *doc;

  cairn_proc_boot_id(boot);
  doc = json_pack("{s:i, s:i, s:I, s:O, s:s, s:s}", "pid", r->pid, "pgid",
                  r->pgid, "proc_start", (json_int_t)r->proc_start, "argv",
                  argv, "log", r->log, "boot_id", boot);
  /* who started it: a later start that finds it running tells its own
   * (a retry, a resumed run's re-run) from another run's */
  if (doc && r->call->run_id &&
      (json_object_set_new(doc, "run_id", json_string(r->call->run_id)) < 0 ||
       json_object_set_new(doc, "entry",
                           json_integer((json_int_t)r->call->entry)) < 0)) {
    json_decref(doc);
    doc = NULL;
  }
  text = doc ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(doc);
  if (text == NULL) {
    snprintf(r->error, sizeof r->error, "out of memory");
    return CAIRN_E_NOMEM;
  }
  /* Atomic for readers but not fsynced: the file records the boot it
   * belongs to, so after a crash of the machine it names nothing anyway,
   * and two fsyncs were most of the CPU a start cost cairn. */
  rc = cairn_write_replace(r->pid_file, text, strlen(text), 0600, &err);
  free(text);
  if (rc < 0)
    snprintf(r->error, sizeof r->error, "%s", err.msg);
  return rc;
}

static int start_start(struct adapter_call *call, struct cairn_error *err)
{
  json_t *in = call->inputs;
  json_t *argv = adapter__input(in, "argv");
  json_t *env = adapter__input(in, "env");
  json_t *waitv = adapter__input(in, "wait");
  json_t *portv;
  const char *cwd = adapter__input_str(in, "cwd");
  struct proc_run *r;
  const char **args = NULL;
  char **envp = NULL;
  json_t *item;
  size_t i;
  int fd = -1, rc;
  pid_t pid;
  struct cairn_error ferr = {0};

  if (!json_is_array(argv) || json_array_size(argv) == 0)
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "input 'argv' must be a non-empty list of strings");
  json_array_foreach(argv, i, item) {
    if (!json_is_string(item))
      return cairn_error_set(err, CAIRN_E_INVAL,
                             "input 'argv' must be a non-empty list of "
                             "strings");
  }
  if ((rc = adapter__check_port(in, err)) < 0)
    return rc;
  if ((r = run_create(call, 1)) == NULL)
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  if ((rc = path_or_default(r->pid_file, sizeof r->pid_file,
                            adapter__input_str(in, "pid_file"), call, ".pid",
                            "pid_file", err)) < 0 ||
      (rc = path_or_default(r->log, sizeof r->log,
                            adapter__input_str(in, "log"), call,
                            ".service.log", "log", err)) < 0)
    goto fail;

  rc = start_already(r, argv);
  if (rc < 0) {
    finish(r, ADAPTER_FAILED);
    return 0;
  }
  if (rc > 0) {
    step_log(r, "process.start: already running as pid %d (pid file '%s'), "
             "%s", r->pid, r->pid_file,
             r->adopted ? "started by another run or state: adopted, its "
                          "undo leaves it running"
                        : "started by an earlier attempt of this step: its "
                          "undo stops it");
    start_outputs(r);
    finish(r, ADAPTER_SUCCEEDED);
    return 0;
  }

  /* Only for a process about to start, never one adopted above: a
   * service on its port that dies at once ("address already in use")
   * after `wait`, while a ready check gets its answers from the old one,
   * would pass for started. */
  if ((portv = adapter__input(in, "port")) != NULL) {
    int port = (int)json_integer_value(portv), taken = 0;
    if (cairn_tcp_listening(port, &taken, &ferr) < 0) {
      snprintf(r->error, sizeof r->error, "%s", ferr.msg);
      goto failed;
    }
    if (taken) {
      snprintf(r->error, sizeof r->error,
               "port %d is already taken (something listens on it); stop "
               "what holds it or choose another port",
               port);
      goto failed;
    }
  }

  args = calloc(json_array_size(argv) + 1, sizeof *args);
  if ((call->env_extra && call->env_extra[0]) || json_object_size(env) > 0)
    envp = adapter__build_env(call->env_extra, env);
  else
    envp = NULL;
  if (args == NULL ||
      (envp == NULL &&
       ((call->env_extra && call->env_extra[0]) || json_object_size(env)))) {
    rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    goto fail;
  }
  json_array_foreach(argv, i, item) {
    args[i] = json_string_value(item);
  }
  /* their folders, made 0700 when missing (no mkdir step needed) */
  if (cairn_mkdir_parent(r->log, &ferr) < 0 ||
      cairn_mkdir_parent(r->pid_file, &ferr) < 0) {
    snprintf(r->error, sizeof r->error, "%s", ferr.msg);
    goto failed;
  }
  fd = open(r->log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0 && fd <= 2) { /* adapter__spawn wants it above stdio */
    int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    fd = nfd;
  }
  if (fd < 0) {
    snprintf(r->error, sizeof r->error, "cannot open service log '%s': %s",
             r->log, uv_strerror(-errno));
    goto failed;
  }
  adapter__cloexec_fds();
  rc = adapter__spawn(&pid, &r->proc_start, (char *const *)args, envp, cwd,
                      fd, fd);
  close(fd);
  fd = -1;
  if (rc != 0) {
    adapter__spawn_error(r->error, sizeof r->error, -rc, args[0], cwd,
                         r->call->redact);
    goto failed;
  }
  r->pid = r->pgid = (int)pid;
  if (start_write_pidfile(r, argv) < 0) {
    kill(-r->pgid, SIGKILL);
    reap(r->pid);
    goto failed;
  }
  step_note(r, "process.start: started pid %d; log '%s', pid file '%s'",
           r->pid, r->log, r->pid_file);
  free(args);
  free(envp);
  r->phase = START_WAIT;
  uv_update_time(call->loop);
  uv_timer_start(&r->timer, on_timer,
                 waitv ? (uint64_t)json_integer_value(waitv) : 0, 0);
  if (call->on_spawned) /* last: it may cancel */
    call->on_spawned(call, r->pid, r->pgid, r->proc_start);
  return 0;

failed: /* reported through on_done, like any failed attempt */
  free(args);
  free(envp);
  finish(r, ADAPTER_FAILED);
  return 0;

fail:
  free(args);
  free(envp);
  /* no on_done after an error from start: close without it */
  r->phase = FINISHING;
  call->priv = NULL;
  uv_close((uv_handle_t *)&r->timer, free_on_close);
  return rc;
}

/* ---- stopping a group --------------------------------------------------- */

static void stop_done(struct proc_run *r)
{
  json_object_set_new(r->outputs, "stopped", json_boolean(r->stopped));
  json_object_set_new(r->outputs, "kept", json_false());
  json_object_set_new(r->outputs, "signal", json_string(r->signal));
  json_object_set_new(r->outputs, "pid", json_integer(r->pid));
  if (!r->is_start && r->pid_file[0]) {
    /* only when it still names what we stopped */
    struct pidinfo pi;
    char why[64];
    if (pidfile_read(r->pid_file, &pi, why, sizeof why) >= 0 &&
        (pi.doc == NULL || (pi.pid == r->pid &&
                            pi.proc_start == r->proc_start)))
      unlink(r->pid_file);
    json_decref(pi.doc);
  }
  if (r->is_start) {
    /* the undo of a cancelled start is planned (it may have done part of
     * its work): it needs the pid file's path, now gone, to find nothing
     * left to stop */
    unlink(r->pid_file);
    start_outputs(r);
    finish(r, ADAPTER_CANCELLED);
  } else {
    finish(r, r->cancelled ? ADAPTER_CANCELLED : ADAPTER_SUCCEEDED);
  }
}

/* SIGTERM (and SIGCONT: a stopped process acts on it only then) to the
 * group, then poll. */
/* kill(-pgid, sig), never for group 0 or 1 (kill(-1) signals every
 * process we may signal) nor for cairn's own group. */
static void signal_group(const struct proc_run *r, int sig)
{
  if (r->pgid > 1 && r->pgid != (int)getpgrp())
    kill(-r->pgid, sig);
}

/* 0 when r->pgid is r->pid's own group and no group cairn must never
 * signal; else -1 with r->error saying why. A pid file's pgid is not
 * trusted: the pid must be in that group, or be gone and have been its
 * leader. */
static int group_check(struct proc_run *r)
{
  pid_t g;

  if (r->pgid <= 1 || r->pgid == (int)getpgrp()) {
    snprintf(r->error, sizeof r->error,
             "refusing to signal process group %d", r->pgid);
    return -1;
  }
  g = getpgid(r->pid);
  if (g >= 0 && (int)g != r->pgid) {
    snprintf(r->error, sizeof r->error,
             "refusing to signal process group %d: pid %d is in group %d",
             r->pgid, r->pid, (int)g);
    return -1;
  }
  if (g < 0 && r->pgid != r->pid) {
    snprintf(r->error, sizeof r->error,
             "refusing to signal process group %d: pid %d is gone and did "
             "not lead it", r->pgid, r->pid);
    return -1;
  }
  return 0;
}

static void stop_begin(struct proc_run *r)
{
  signal_group(r, SIGTERM);
  signal_group(r, SIGCONT);
  r->signal = "SIGTERM";
  r->stopped = 1;
  r->phase = STOPPING;
  uv_update_time(r->call->loop);
  r->deadline = uv_now(r->call->loop) + (uint64_t)r->grace_ms;
  uv_timer_start(&r->timer, on_timer, PROC_POLL_MS, PROC_POLL_MS);
}

static void stop_poll(struct proc_run *r)
{
  reap(r->pid);
  if (!cairn_proc_group_alive(r->pgid)) {
    step_note(r, "process.stop: pid %d stopped by %s", r->pid, r->signal);
    stop_done(r);
    return;
  }
  if (uv_now(r->call->loop) < r->deadline)
    return;
  if (r->phase == STOPPING) {
    signal_group(r, SIGKILL);
    r->signal = "SIGKILL";
    r->phase = KILLED;
    r->deadline = uv_now(r->call->loop) + PROC_KILL_MS;
    return;
  }
  snprintf(r->error, sizeof r->error,
           "process group %d still has live members %d ms after SIGKILL "
           "(in uninterruptible sleep?)",
           r->pgid, PROC_KILL_MS);
  finish(r, ADAPTER_FAILED);
}

/* ---- process.stop ------------------------------------------------------- */

/* Success with the process left running (r->pid: the one left, 0 when
 * none was looked at). */
static void stop_kept(struct proc_run *r)
{
  json_object_set_new(r->outputs, "stopped", json_false());
  json_object_set_new(r->outputs, "kept", json_true());
  json_object_set_new(r->outputs, "signal", json_string(""));
  json_object_set_new(r->outputs, "pid", json_integer(r->pid));
  finish(r, ADAPTER_SUCCEEDED);
}

static int stop_start(struct adapter_call *call, struct cairn_error *err)
{
  json_t *in = call->inputs;
  const char *pf = adapter__input_str(in, "pid_file");
  json_t *gv = adapter__input(in, "grace");
  json_t *keep = adapter__input(in, "keep_argv");
  json_t *want = adapter__input(in, "proc_start");
  struct proc_run *r;
  int64_t now_start = 0;
  int rc;

  if (pf == NULL && adapter__input(in, "pid") == NULL)
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "process.stop needs 'pid_file' or 'pid'");
  if ((r = run_create(call, 0)) == NULL)
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  r->grace_ms = gv ? (int64_t)json_integer_value(gv) : 10000;
  if (json_is_true(adapter__input(in, "adopted"))) {
    /* The undo of a start that found the service running, started by
     * another run or state: undoing that start stops nothing, and the
     * pid file is not even read (an undo that changes nothing must not
     * fail either). */
    step_note(r, "process.stop: left running: the start this undoes "
              "adopted it (another run or state started it)");
    stop_kept(r);
    return 0;
  }
  if (pf) {
    struct pidinfo pi;
    snprintf(r->pid_file, sizeof r->pid_file, "%s", pf);
    rc = pidfile_read(pf, &pi, r->error, sizeof r->error);
    if (rc < 0) {
      finish(r, ADAPTER_FAILED);
      return 0;
    }
    if (rc == 0) {
      step_log(r, "process.stop: already stopped (no pid file '%s')", pf);
      stop_done(r);
      return 0;
    }
    if (want != NULL && json_integer_value(want) != 0 &&
        json_integer_value(want) != pi.proc_start) {
      /* The file names another process now (a later start reused it):
       * what this stop was for is gone, and the newer one is not ours. */
      step_log(r, "process.stop: already stopped (pid file '%s' now names "
               "pid %d, another process than the one started at %lld)",
               pf, pi.pid, (long long)json_integer_value(want));
      json_decref(pi.doc);
      r->proc_start = json_integer_value(want);
      stop_done(r);
      return 0;
    }
    r->pid = pi.pid;
    r->pgid = pi.pgid;
    r->proc_start = pi.proc_start;
    if (keep != NULL && cairn_proc_alive(pi.pid, pi.proc_start) &&
        json_equal(json_object_get(pi.doc, "argv"), keep)) {
      /* what the caller is about to start runs already: process.start
       * adopts it, no restart */
      json_decref(pi.doc);
      step_note(r, "process.stop: left running: pid %d runs keep_argv",
                r->pid);
      stop_kept(r);
      return 0;
    }
    json_decref(pi.doc);
  } else {
    r->pid = r->pgid = (int)json_integer_value(adapter__input(in, "pid"));
    r->proc_start = json_integer_value(adapter__input(in, "proc_start"));
  }
  if (r->pid <= 1 || r->pid == getpid()) {
    snprintf(r->error, sizeof r->error, "refusing to stop pid %d", r->pid);
    finish(r, ADAPTER_FAILED);
    return 0;
  }

  reap(r->pid);
  rc = cairn_proc_start_time(r->pid, &now_start);
  if (rc == 0 && r->proc_start != 0 && now_start != r->proc_start) {
    /* The pid was reused (the kernel never reuses a live group's id, so
     * the service's group is empty too): not ours to signal. */
    step_log(r, "process.stop: already stopped (pid %d now belongs to "
             "another process)", r->pid);
    stop_done(r);
    return 0;
  }
  if (!cairn_proc_alive(r->pid, r->proc_start) &&
      !cairn_proc_group_alive(r->pgid)) {
    step_log(r, "process.stop: already stopped (pid %d is gone)", r->pid);
    stop_done(r);
    return 0;
  }
  if (r->proc_start == 0) {
    /* without it a reused pid cannot be told from the service */
    snprintf(r->error, sizeof r->error,
             "refusing to signal pid %d: its start time is unknown", r->pid);
    finish(r, ADAPTER_FAILED);
    return 0;
  }
  if (group_check(r) < 0) {
    finish(r, ADAPTER_FAILED);
    return 0;
  }
  stop_begin(r);
  return 0;
}

static void proc_cancel(struct adapter_call *call)
{
  struct proc_run *r = call ? call->priv : NULL;

  if (r == NULL || r->phase == FINISHING)
    return;
  if (r->cancelled) {
    /* cancelled again while stopping (a further Ctrl-C): no more grace */
    if (r->phase == STOPPING)
      r->deadline = 0;
    return;
  }
  r->cancelled = 1;
  snprintf(r->error, sizeof r->error, "cancelled");
  if (r->phase == START_WAIT) {
    /* a service never reported started: stop it like process.stop */
    uv_timer_stop(&r->timer);
    r->grace_ms = call->kill_grace_ms > 0 ? call->kill_grace_ms : 5000;
    stop_begin(r);
  } else if (r->phase == STOPPING) {
    r->deadline = 0; /* SIGKILL at the next poll */
  }
}

static int start_check_with(json_t *with, struct cairn_error *err)
{
  int rc = adapter__check_env_names(adapter__input(with, "env"), err);

  return rc < 0 ? rc : adapter__check_port(with, err);
}

static int stop_check_with(json_t *with, struct cairn_error *err)
{
  if (adapter__input(with, "pid_file") == NULL &&
      adapter__input(with, "pid") == NULL)
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "process.stop needs 'pid_file' or 'pid'");
  if (adapter__input(with, "pid_file") && adapter__input(with, "pid"))
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "'pid_file' and 'pid' cannot be used together");
  if (adapter__input(with, "keep_argv") && adapter__input(with, "pid"))
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "'keep_argv' needs 'pid_file' (the argv is read "
                           "from it), not 'pid'");
  return 0;
}

static const struct adapter_input start_inputs[] = {
  { "argv", ADAPTER_T_ARGV, 1, NULL,
    "program and arguments of the service, run without a shell" },
  { "cwd", ADAPTER_T_STRING, 0, NULL, "directory to run in" },
  { "env", ADAPTER_T_STRMAP, 0, NULL,
    "variables added to the inherited environment" },
  { "log", ADAPTER_T_STRING, 0, NULL,
    "file its stdout and stderr are appended to (default "
    "RUN_DIR/STATE.service.log; its folder made 0700 if missing)" },
  { "pid_file", ADAPTER_T_STRING, 0, NULL,
    "where its pid and start time are kept (default RUN_DIR/STATE.pid; its "
    "folder made 0700 if missing)" },
  { "wait", ADAPTER_T_DURATION, 0, NULL,
    "fail if the service is not alive after this long" },
  { "port", ADAPTER_T_INTEGER, 0, NULL,
    "the TCP port it will listen on: fail, before starting it, when "
    "something listens there already (not when adopting it)" },
  { NULL, 0, 0, NULL, NULL },
};

static const struct adapter_output start_outputs_desc[] = {
  { "pid", "integer", "the service's pid (also its process group and "
    "session)" },
  { "pgid", "integer", "its process group" },
  { "proc_start", "integer", "its start time, clock ticks since boot" },
  { "pid_file", "string", "the pid file" },
  { "log", "string", "the service's log file" },
  { "adopted", "boolean", "true when it was running already, started by "
    "another run or state (its undo leaves it running); false when this "
    "step started it (before a retry or a resume, too)" },
  { NULL, NULL, NULL },
};

const struct adapter_desc adapter_process_start = {
  .name = "process.start",
  .summary = "start a long-running service, detached",
  .inputs = start_inputs,
  .outputs = start_outputs_desc,
  /* a start journaled before `adopted` existed: its undo stopped what it
   * found, as it does now for one this step started */
  .absent = (const struct adapter_absent[]){{"adopted", "false"},
                                            {NULL, NULL}},
  .idempotent = 1,
  .adopts = 1,
  .outputs_when_cancelled = 1, /* stop_done */
  .undo_adapter = "process.stop",
  /* the process this start ran, not whatever the pid file names when
   * the undo runs; nothing when it only adopted one another run or
   * state started */
  .undo_with = "{\"pid_file\": \"{{ self.output.pid_file }}\", "
               "\"proc_start\": \"{{ self.output.proc_start }}\", "
               "\"adopted\": \"{{ self.output.adopted }}\"}",
  .check = start_check_with,
  .start = start_start,
  .cancel = proc_cancel,
};

static const struct adapter_input stop_inputs[] = {
  { "pid_file", ADAPTER_T_STRING, 0, NULL,
    "the pid file process.start wrote (this or pid)" },
  { "pid", ADAPTER_T_INTEGER, 0, NULL,
    "the leader of the process group to stop (this or pid_file)" },
  { "proc_start", ADAPTER_T_INTEGER, 0, NULL,
    "its start time (clock ticks since boot). With pid: another start "
    "time means the pid was reused and nothing is signalled. With "
    "pid_file: only the process started then is stopped; a pid file that "
    "names another one now is left as it is (0: any)" },
  { "grace", ADAPTER_T_DURATION, 0, "\"10s\"",
    "how long after SIGTERM to send SIGKILL" },
  { "keep_argv", ADAPTER_T_ARGV, 0, NULL,
    "with pid_file: leave the process running when it runs this very argv "
    "(a process.start of it that follows adopts it)" },
  { "adopted", ADAPTER_T_BOOLEAN, 0, "false",
    "the adopted output of the process.start this stop undoes: true leaves "
    "the process running, since that start did not start it" },
  { NULL, 0, 0, NULL, NULL },
};

static const struct adapter_output stop_outputs[] = {
  { "stopped", "boolean", "false when it was already gone (or kept)" },
  { "kept", "boolean", "true when left running: it runs keep_argv, or "
    "adopted was true" },
  { "signal", "string", "SIGTERM, SIGKILL, or \"\" when nothing was sent" },
  { "pid", "integer", "the pid it stopped (or found gone, or kept; 0 with "
    "adopted true: nothing is looked at)" },
  { NULL, NULL, NULL },
};

const struct adapter_desc adapter_process_stop = {
  .name = "process.stop",
  .summary = "stop a service's process group (SIGTERM, grace, SIGKILL)",
  .inputs = stop_inputs,
  .outputs = stop_outputs,
  .idempotent = 1,
  .check = stop_check_with,
  .start = stop_start,
  .cancel = proc_cancel,
};
