/* The exec adapter and the adapter registry: real child processes on a
 * real libuv loop. Every test ends with uv_loop_close() == 0. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <ftw.h>

#include "adapters/adapter.h"
#include "adapters/spawn.h"
#include "common/proc.h"

#define WATCHDOG_MS 20000

struct fixture {
  uv_loop_t loop;
  uv_timer_t watchdog;
  char dir[PATH_MAX];
  char log[PATH_MAX + 32];
};

struct t_call {
  struct adapter_call call;
  int done;
  int spawned;
  int pid;
  int pgid;
  int real_pgid; /* getpgid(pid) as seen in on_spawned */
  int real_sid;
  int64_t pstart;
  int64_t real_pstart; /* /proc/PID/stat's, read in on_spawned */
  enum adapter_outcome outcome;
  int exit_code;
  int term_signal;
  char error[512];
  char *tail;
  json_t *outputs;
  int64_t duration_ms;
  int cancel_after_ms;     /* > 0: cancel from a timer */
  int cancel_in_spawned;   /* cancel from on_spawned */
  uv_timer_t cancel_timer;
  int *free_marker;        /* set: free the call inside on_done */
};

/* ---- helpers ------------------------------------------------------------ */

static void on_watchdog(uv_timer_t *t)
{
  (void)t;
  fail_msg("watchdog: the step did not finish within %d ms", WATCHDOG_MS);
}

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static int setup(void **state)
{
  struct fixture *f = calloc(1, sizeof *f);
  char tmpl[] = "/tmp/cairn-exec-XXXXXX";

  if (f == NULL || uv_loop_init(&f->loop) != 0)
    return -1;
  if (mkdtemp(tmpl) == NULL || realpath(tmpl, f->dir) == NULL)
    return -1;
  snprintf(f->log, sizeof f->log, "%s/step.log", f->dir);
  uv_timer_init(&f->loop, &f->watchdog);
  uv_unref((uv_handle_t *)&f->watchdog); /* must not keep the loop alive */
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fixture *f = *state;

  nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(f);
  return 0;
}

/* Closes the watchdog and checks that nothing is left on the loop. */
static void end_loop(struct fixture *f)
{
  uv_close((uv_handle_t *)&f->watchdog, NULL);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&f->loop), 0);
}

static void t_reset(struct t_call *t)
{
  free(t->tail);
  json_decref(t->outputs);
  memset(t, 0, sizeof *t);
}

static void t_on_done(struct adapter_call *call,
                      const struct adapter_result *res)
{
  struct t_call *t = call->data;

  t->done++;
  t->outcome = res->outcome;
  t->exit_code = res->exit_code;
  t->term_signal = res->term_signal;
  snprintf(t->error, sizeof t->error, "%s", res->error);
  free(t->tail);
  t->tail = strdup(res->tail);
  json_decref(t->outputs);
  t->outputs = json_incref(res->outputs);
  t->duration_ms = res->duration_ms;
  assert_null(call->priv);
}

static void t_on_spawned(struct adapter_call *call, int pid, int pgid,
                         int64_t proc_start)
{
  struct t_call *t = call->data;

  t->spawned++;
  t->pid = pid;
  t->pgid = pgid;
  t->pstart = proc_start;
  t->real_pgid = getpgid(pid);
  t->real_sid = getsid(pid);
  if (cairn_proc_start_time(pid, &t->real_pstart) != 0)
    t->real_pstart = -1;
  if (t->cancel_in_spawned)
    adapter_exec.cancel(call);
}

static void on_cancel_timer(uv_timer_t *timer)
{
  struct t_call *t = timer->data;

  adapter_exec.cancel(&t->call);
  uv_close((uv_handle_t *)timer, NULL);
}

static void t_prepare(struct fixture *f, struct t_call *t, json_t *inputs)
{
  t->call.loop = &f->loop;
  t->call.desc = &adapter_exec;
  t->call.inputs = inputs;
  t->call.log_path = f->log;
  t->call.on_done = t_on_done;
  t->call.on_spawned = t_on_spawned;
  t->call.data = t;
}

/* Checks and renders `with` as the engine would, runs it to the end.
 * Steals with. */
static void run_exec(struct fixture *f, struct t_call *t, json_t *with)
{
  struct cairn_error err = { 0 };
  const char *bad = NULL;
  json_t *inputs = NULL;

  assert_non_null(with);
  if (adapter_check_with(&adapter_exec, with, &bad, &err) != 0)
    fail_msg("check_with: %s", err.msg);
  if (adapter_apply_defaults(&adapter_exec, with, &inputs, &err) != 0)
    fail_msg("apply_defaults: %s", err.msg);
  t_prepare(f, t, inputs);
  if (adapter_exec.start(&t->call, &err) != 0)
    fail_msg("start: %s", err.msg);
  if (t->cancel_after_ms > 0) {
    uv_timer_init(&f->loop, &t->cancel_timer);
    t->cancel_timer.data = t;
    uv_timer_start(&t->cancel_timer, on_cancel_timer,
                   (uint64_t)t->cancel_after_ms, 0);
  }
  uv_timer_start(&f->watchdog, on_watchdog, WATCHDOG_MS, 0);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  uv_timer_stop(&f->watchdog);
  assert_int_equal(t->done, 1);
  json_decref(inputs);
  json_decref(with);
}

/* Starts with what the test set in t->call (timeouts, env_extra, redact). */
static void run_prepared(struct fixture *f, struct t_call *t, json_t *with)
{
  struct adapter_call keep = t->call;
  struct cairn_error err = { 0 };
  json_t *inputs = NULL;

  if (adapter_apply_defaults(&adapter_exec, with, &inputs, &err) != 0)
    fail_msg("apply_defaults: %s", err.msg);
  t_prepare(f, t, inputs);
  t->call.timeout_ms = keep.timeout_ms;
  t->call.kill_grace_ms = keep.kill_grace_ms;
  t->call.env_extra = keep.env_extra;
  t->call.redact = keep.redact;
  if (keep.log_path)
    t->call.log_path = keep.log_path;
  if (adapter_exec.start(&t->call, &err) != 0)
    fail_msg("start: %s", err.msg);
  if (t->cancel_after_ms > 0) {
    uv_timer_init(&f->loop, &t->cancel_timer);
    t->cancel_timer.data = t;
    uv_timer_start(&t->cancel_timer, on_cancel_timer,
                   (uint64_t)t->cancel_after_ms, 0);
  }
  uv_timer_start(&f->watchdog, on_watchdog, WATCHDOG_MS, 0);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  uv_timer_stop(&f->watchdog);
  assert_int_equal(t->done, 1);
  json_decref(inputs);
  json_decref(with);
}

static json_t *shell(const char *script)
{
  return json_pack("{s:s}", "shell", script);
}

static char *slurp(const char *path, size_t *len)
{
  FILE *fp = fopen(path, "rb");
  char *buf;
  long n;

  if (fp == NULL)
    return strdup("");
  fseek(fp, 0, SEEK_END);
  n = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  if (fread(buf, 1, (size_t)n, fp) != (size_t)n)
    fail_msg("short read of %s", path);
  buf[n] = '\0';
  fclose(fp);
  if (len)
    *len = (size_t)n;
  return buf;
}

static void assert_log(struct fixture *f, const char *want)
{
  char *got = slurp(f->log, NULL);
  assert_string_equal(got, want);
  free(got);
}

static int read_pid(const char *path)
{
  char *s = slurp(path, NULL);
  int pid = atoi(s);
  free(s);
  assert_true(pid > 0);
  return pid;
}

/* Gone: no such process, or a zombie nobody reaps (an orphan whose init
 * does not reap, as in some containers). */
static int proc_gone_now(int pid)
{
  char path[64];
  char buf[512];
  FILE *fp;
  size_t n;
  char *p;

  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  if ((fp = fopen(path, "r")) == NULL)
    return 1;
  n = fread(buf, 1, sizeof buf - 1, fp);
  fclose(fp);
  buf[n] = '\0';
  p = strrchr(buf, ')');
  return p != NULL && (p[2] == 'Z' || p[2] == 'X');
}

/* A signalled process takes a moment to die, longer on a loaded machine:
 * gone within 2 s (the processes these tests start would live 100 s). */
static int proc_gone(int pid)
{
  for (int i = 0; i < 200; i++) {
    if (proc_gone_now(pid))
      return 1;
    usleep(10000);
  }
  return 0;
}

static json_int_t out_int(struct t_call *t, const char *key)
{
  json_t *v = json_object_get(t->outputs, key);
  assert_true(json_is_integer(v));
  return json_integer_value(v);
}

static int count_fds(void)
{
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  int n = 0;

  assert_non_null(d);
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n - 1; /* the directory's own */
}

/* ---- running commands --------------------------------------------------- */

static void test_argv_success(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };
  struct stat st;

  run_exec(f, &t, json_pack("{s:[s,s,s]}", "argv", "/bin/echo", "hello",
                            "world"));
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  assert_int_equal(t.exit_code, 0);
  assert_int_equal(t.term_signal, 0);
  assert_string_equal(t.error, "");
  assert_int_equal(out_int(&t, "exit_code"), 0);
  assert_null(json_object_get(t.outputs, "json"));
  assert_string_equal(t.tail, "hello world\n");
  assert_log(f, "hello world\n");
  assert_int_equal(stat(f->log, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);

  assert_int_equal(t.spawned, 1);
  assert_true(t.pid > 0);
  assert_int_equal(t.pgid, t.pid);
  assert_true(t.pstart > 0);
  assert_int_equal(t.pstart, t.real_pstart);

  /* the log is appended to, never truncated */
  t_reset(&t);
  run_exec(f, &t, json_pack("{s:[s,s]}", "argv", "/bin/echo", "again"));
  assert_log(f, "hello world\nagain\n");
  t_reset(&t);
  end_loop(f);
}

/* The start time a spawn reports without reading /proc: from two readings
 * of CLOCK_BOOTTIME around the fork, exact when both are in one tick. */
static void test_start_between_arithmetic(void **state)
{
  long hz = sysconf(_SC_CLK_TCK);
  int64_t per = 1000000000L / hz, ticks = -7;
  struct timespec a, b;

  (void)state;
  assert_true(hz > 0 && 1000000000L % hz == 0);
  /* both in tick 501 (at USER_HZ 100: 5.01 s to 5.02 s) */
  a = (struct timespec){5, (long)per};
  b = (struct timespec){5, (long)(2 * per - 1)};
  assert_int_equal(cairn_proc_start_between(&a, &b, &ticks), 0);
  assert_int_equal(ticks, 5 * hz + 1);
  /* across a tick, or a second: unknown, and *ticks untouched */
  ticks = -7;
  b = (struct timespec){5, (long)(2 * per)};
  assert_int_equal(cairn_proc_start_between(&a, &b, &ticks), -1);
  a = (struct timespec){5, 999999999};
  b = (struct timespec){6, 0};
  assert_int_equal(cairn_proc_start_between(&a, &b, &ticks), -1);
  assert_int_equal(ticks, -7);
}

/* Against what the kernel shows, on real children: each forked between
 * two readings, compared with /proc/PID/stat while still unreaped; then
 * adapter__spawn's own, whichever way it got it. */
static void test_start_time_is_the_kernels(void **state)
{
  int known = 0, null_fd;

  (void)state;
  for (int i = 0; i < 200; i++) {
    struct timespec a, b;
    int64_t guess = 0, real = 0;
    pid_t p;

    clock_gettime(CLOCK_BOOTTIME, &a);
    p = fork();
    if (p == 0)
      _exit(0);
    clock_gettime(CLOCK_BOOTTIME, &b);
    assert_true(p > 0);
    assert_int_equal(cairn_proc_start_time(p, &real), 0); /* a zombie */
    if (cairn_proc_start_between(&a, &b, &guess) == 0) {
      known++;
      assert_int_equal(guess, real);
    }
    assert_int_equal(waitpid(p, NULL, 0), p);
  }
  /* a fork takes well under a tick, so most readings share one */
  assert_true(known > 0);

  int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  null_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3); /* adapter__spawn wants > 2 */
  close(fd);
  assert_true(null_fd > 2);
  for (int i = 0; i < 50; i++) {
    char *argv[] = {(char *)"/bin/true", NULL};
    pid_t p = -1;
    int64_t start = -1, real = 0;

    assert_int_equal(adapter__spawn(&p, &start, argv, NULL, NULL, null_fd,
                                    null_fd), 0);
    assert_int_equal(cairn_proc_start_time(p, &real), 0);
    assert_int_equal(start, real);
    assert_int_equal(waitpid(p, NULL, 0), p);
  }
#ifdef CAIRN_TEST_HOOKS
  long reads;
  /* The window is closed by the child's first reading, before its exec:
   * a child that spends some 40 ms failing execve down a PATH of 20,000
   * missing folders must not widen it past a tick (it did when the
   * parent read the clock after vfork returned: every one read /proc). */
  {
    size_t n = 20000, len = strlen("PATH=") + n * 4 + strlen("/bin") + 1;
    char *path = malloc(len), *w = path;
    char *argv[] = {(char *)"true", NULL};
    char *envp[] = {path, NULL};

    assert_non_null(path);
    w += sprintf(w, "PATH=");
    for (size_t i = 0; i < n; i++)
      w += sprintf(w, "/nx:");
    sprintf(w, "/bin");
    reads = adapter__spawn_proc_reads();
    for (int i = 0; i < 10; i++) {
      pid_t p = -1;
      int64_t start = -1, real = 0;
      int status = -1;

      assert_int_equal(adapter__spawn(&p, &start, argv, envp, NULL, null_fd,
                                      null_fd), 0);
      assert_int_equal(cairn_proc_start_time(p, &real), 0);
      assert_int_equal(start, real);
      assert_int_equal(waitpid(p, &status, 0), p);
      assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    reads = adapter__spawn_proc_reads() - reads;
    print_message("%ld of 10 slow spawns read /proc\n", reads);
    assert_true(reads <= 5);
    free(path);
  }
#endif
  close(null_fd);
}

static void test_own_session_and_group(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };

  run_exec(f, &t, json_pack("{s:[s,s]}", "argv", "/bin/sleep", "0.2"));
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  assert_int_equal(t.real_pgid, t.pid);
  assert_int_equal(t.real_sid, t.pid);
  assert_int_not_equal(t.real_pgid, getpgrp());
  t_reset(&t);
  end_loop(f);
}

static void test_exit_status(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };
  char *log;

  run_exec(f, &t, json_pack("{s:[s,s,s]}", "argv", "/bin/sh", "-c",
                            "echo out; echo err >&2; exit 3"));
  assert_int_equal(t.outcome, ADAPTER_FAILED);
  assert_int_equal(t.exit_code, 3);
  assert_int_equal(out_int(&t, "exit_code"), 3);
  /* what it said last, most often why */
  assert_string_equal(t.error, "exited with status 3: err");
  log = slurp(f->log, NULL);
  assert_non_null(strstr(log, "out\n"));
  assert_non_null(strstr(log, "err\n"));
  assert_int_equal(strlen(log), 8);
  free(log);
  t_reset(&t);
  end_loop(f);
}

static void test_killed_by_signal(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };

  run_exec(f, &t, shell("kill -USR1 $$"));
  assert_int_equal(t.outcome, ADAPTER_FAILED);
  assert_int_equal(t.exit_code, -1);
  assert_int_equal(t.term_signal, SIGUSR1);
  assert_int_equal(out_int(&t, "exit_code"), -1);
  assert_string_equal(t.error, "killed by signal SIGUSR1");
  t_reset(&t);
  end_loop(f);
}

static void test_shell_and_no_shell(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };

  run_exec(f, &t, shell("echo $0; echo a b | tr a-z A-Z"));
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  assert_log(f, "/bin/sh\nA B\n");
  t_reset(&t);

  /* argv: no shell, so nothing is expanded */
  run_exec(f, &t, json_pack("{s:[s,s,s,s]}", "argv", "/bin/echo", "$HOME",
                            "|", "*"));
  assert_log(f, "/bin/sh\nA B\n$HOME | *\n");
  t_reset(&t);

  /* argv[0] is looked up in PATH */
  run_exec(f, &t, json_pack("{s:[s,s]}", "argv", "echo", "via-path"));
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  assert_string_equal(t.tail, "via-path\n");
  t_reset(&t);
  end_loop(f);
}

static void test_stdin_is_dev_null(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };
  int saved = dup(0);
  int p[2];

  /* our stdin is a pipe nobody writes to: a child that inherited it would
   * block in cat */
  assert_true(saved >= 0);
  assert_int_equal(pipe(p), 0);
  assert_int_equal(dup2(p[0], 0), 0);
  run_exec(f, &t, shell("cat; readlink /proc/self/fd/0"));
  assert_int_equal(dup2(saved, 0), 0);
  close(saved);
  close(p[0]);
  close(p[1]);
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  assert_string_equal(t.tail, "/dev/null\n");
  t_reset(&t);
  end_loop(f);
}

static void test_json_output(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };
  json_t *j;

  run_exec(f, &t, shell("printf '{\"a\":1,\"b\":[true,\"x\"]}'"));
  j = json_object_get(t.outputs, "json");
  assert_true(json_is_object(j));
  assert_int_equal(json_integer_value(json_object_get(j, "a")), 1);
  assert_string_equal(
      json_string_value(json_array_get(json_object_get(j, "b"), 1)), "x");
  t_reset(&t);

  /* trimmed: blanks around the object are fine, on a failure too */
  run_exec(f, &t, shell("printf '\\n  {\"ok\": false}\\n\\n'; exit 1"));
  assert_int_equal(t.outcome, ADAPTER_FAILED);
  j = json_object_get(t.outputs, "json");
  assert_true(json_is_object(j));
  assert_true(json_is_false(json_object_get(j, "ok")));
  t_reset(&t);

  /* stderr does not count */
  run_exec(f, &t, shell("echo noise >&2; printf '{\"a\":2}'"));
  j = json_object_get(t.outputs, "json");
  assert_int_equal(json_integer_value(json_object_get(j, "a")), 2);
  t_reset(&t);
  end_loop(f);
}

static void test_json_absent(void **state)
{
  struct fixture *f = *state;
  static const char *const scripts[] = {
    "printf '[1,2]'",
    "printf '{\"a\":1} trailing'",
    "printf 'x {\"a\":1}'",
    "printf '{\"a\":1}{\"b\":2}'",
    "printf '{\"a\":'",
    "printf '42'",
    "echo hello",
    "true",
    "printf '  \\n'",
  };

  for (size_t i = 0; i < sizeof scripts / sizeof scripts[0]; i++) {
    struct t_call t = { 0 };
    run_exec(f, &t, shell(scripts[i]));
    assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
    if (json_object_get(t.outputs, "json") != NULL)
      fail_msg("json output for %s", scripts[i]);
    assert_int_equal(out_int(&t, "exit_code"), 0);
    t_reset(&t);
  }
  end_loop(f);
}

static void test_json_size_cap(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };
  json_t *j;

  /* just under 1 MiB: kept */
  run_exec(f, &t, shell("printf '{\"a\":\"'; head -c 1000000 /dev/zero | "
                        "tr '\\0' a; printf '\"}'"));
  j = json_object_get(t.outputs, "json");
  assert_true(json_is_object(j));
  assert_int_equal(json_string_length(json_object_get(j, "a")), 1000000);
  t_reset(&t);

  /* over: no json */
  run_exec(f, &t, shell("printf '{\"a\":\"'; head -c 1100000 /dev/zero | "
                        "tr '\\0' a; printf '\"}'"));
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  assert_null(json_object_get(t.outputs, "json"));
  assert_int_equal(strlen(t.tail), 4096);
  assert_string_equal(t.tail + 4094, "\"}");
  t_reset(&t);
  end_loop(f);
}

static void test_env_and_cwd(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };
  char want[PATH_MAX + 128];

  setenv("CAIRN_T_INHERIT", "parent", 1);
  setenv("CAIRN_T_OVR", "old", 1);
  run_exec(f, &t,
           json_pack("{s:s, s:{s:s, s:s, s:i}, s:s}", "shell",
                     "echo $FOO; echo $CAIRN_T_INHERIT; echo $CAIRN_T_OVR; "
                     "env | grep -c '^CAIRN_T_OVR='; echo $PORT; pwd",
                     "env", "FOO", "bar baz", "CAIRN_T_OVR", "new", "PORT",
                     8080, "cwd", f->dir));
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  snprintf(want, sizeof want, "bar baz\nparent\nnew\n1\n8080\n%s\n", f->dir);
  assert_log(f, want);
  t_reset(&t);

  /* the raw environment (a shell would hide duplicates): each name once,
   * the input's value last */
  truncate(f->log, 0);
  {
    static const char *const extra[] = { "CAIRN_T_OVR=extra", NULL };
    char *log;
    t.call.env_extra = extra;
    run_prepared(f, &t, json_pack("{s:[s], s:{s:s}}", "argv", "env", "env",
                                  "CAIRN_T_OVR", "new"));
    log = slurp(f->log, NULL);
    assert_non_null(strstr(log, "\nCAIRN_T_OVR=new\n"));
    assert_null(strstr(log, "CAIRN_T_OVR=old"));
    assert_null(strstr(log, "CAIRN_T_OVR=extra"));
    assert_non_null(strstr(log, "\nCAIRN_T_INHERIT=parent\n"));
    {
      int n = 0;
      for (char *q = log; (q = strstr(q, "CAIRN_T_OVR=")) != NULL; q++)
        n++;
      assert_int_equal(n, 1);
    }
    free(log);
  }
  /* the parent's environment is untouched */
  assert_string_equal(getenv("CAIRN_T_OVR"), "old");
  assert_null(getenv("FOO"));
  unsetenv("CAIRN_T_INHERIT");
  unsetenv("CAIRN_T_OVR");
  t_reset(&t);
  end_loop(f);
}

static void test_env_extra(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };
  static const char *const extra[] = { "CAIRN_T_EXTRA=from engine",
                                       "CAIRN_T_BOTH=extra", NULL };

  t.call.env_extra = extra;
  run_prepared(f, &t, json_pack("{s:s, s:{s:s}}", "shell",
                                "echo $CAIRN_T_EXTRA; echo $CAIRN_T_BOTH; "
                                "env | grep -c '^CAIRN_T_BOTH='",
                                "env", "CAIRN_T_BOTH", "input"));
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  assert_log(f, "from engine\ninput\n1\n");
  t_reset(&t);

  /* env_extra alone */
  t.call.env_extra = extra;
  run_prepared(f, &t, shell("echo \"$CAIRN_T_EXTRA/$CAIRN_T_BOTH\""));
  assert_string_equal(t.tail, "from engine/extra\n");
  t_reset(&t);
  end_loop(f);
}

static void test_timeout_kills_group(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };
  char script[3 * PATH_MAX];
  char pidfile[PATH_MAX + 16];
  char termfile[PATH_MAX + 16];
  char *term;
  char *log;
  int grandchild;

  /* The grandchild notes the SIGTERM it gets: the whole group is signalled
   * at the timeout, not only the leader. */
  snprintf(pidfile, sizeof pidfile, "%s/gc.pid", f->dir);
  snprintf(termfile, sizeof termfile, "%s/gc.term", f->dir);
  snprintf(script, sizeof script,
           "sh -c 'trap \"echo term > %s; exit 0\" TERM; "
           "while :; do sleep 0.05; done' & echo $! > '%s'; "
           "echo started; wait",
           termfile, pidfile);
  t.call.timeout_ms = 300;
  t.call.kill_grace_ms = 5000;
  run_prepared(f, &t, shell(script));
  assert_int_equal(t.outcome, ADAPTER_TIMED_OUT);
  assert_string_equal(t.error, "timed out after 300ms");
  assert_int_equal(t.term_signal, SIGTERM);
  assert_int_equal(t.exit_code, -1);
  log = slurp(f->log, NULL); /* the inner sh may add "Terminated" */
  assert_memory_equal(log, "started\n", 8);
  free(log);
  grandchild = read_pid(pidfile);
  assert_true(proc_gone(grandchild));
  assert_true(proc_gone(t.pid));
  term = slurp(termfile, NULL);
  assert_string_equal(term, "term\n");
  free(term);
  assert_true(t.duration_ms >= 300);
  t_reset(&t);
  end_loop(f);
}

/* The engine may block (a journal commit) between loop turns: the
 * timeout counts from start(), not from the loop's cached clock. */
static void test_timeout_counts_from_start(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };

  uv_run(&f->loop, UV_RUN_NOWAIT); /* caches the loop's clock */
  usleep(400 * 1000);
  t.call.timeout_ms = 300;
  run_prepared(f, &t, shell("sleep 100"));
  assert_int_equal(t.outcome, ADAPTER_TIMED_OUT);
  assert_true(t.duration_ms >= 300);
  t_reset(&t);
  end_loop(f);
}

static void test_timeout_smaller_wins(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };

  t.call.timeout_ms = 10000;
  run_prepared(f, &t, json_pack("{s:s, s:s}", "shell", "sleep 100",
                                "timeout", "250ms"));
  assert_int_equal(t.outcome, ADAPTER_TIMED_OUT);
  assert_string_equal(t.error, "timed out after 250ms");
  t_reset(&t);

  t.call.timeout_ms = 200;
  run_prepared(f, &t, json_pack("{s:s, s:s}", "shell", "sleep 100",
                                "timeout", "10s"));
  assert_int_equal(t.outcome, ADAPTER_TIMED_OUT);
  assert_string_equal(t.error, "timed out after 200ms");
  t_reset(&t);

  /* integer seconds; a quick command is not stopped */
  run_prepared(f, &t, json_pack("{s:s, s:i}", "shell", "exit 0", "timeout",
                                1));
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  t_reset(&t);
  end_loop(f);
}

static void test_timeout_grace_then_sigkill(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };
  char script[PATH_MAX + 128];
  char pidfile[PATH_MAX + 16];

  snprintf(pidfile, sizeof pidfile, "%s/gc.pid", f->dir);
  snprintf(script, sizeof script,
           "trap '' TERM; sleep 100 & echo $! > '%s'; wait; wait; wait",
           pidfile);
  t.call.timeout_ms = 200;
  t.call.kill_grace_ms = 300;
  run_prepared(f, &t, shell(script));
  assert_int_equal(t.outcome, ADAPTER_TIMED_OUT);
  assert_string_equal(t.error, "timed out after 200ms");
  assert_int_equal(t.term_signal, SIGKILL);
  assert_true(t.duration_ms >= 500);
  assert_true(proc_gone(read_pid(pidfile)));
  t_reset(&t);
  end_loop(f);
}

/* The leader dies of the SIGTERM, a member of its group ignores it: the
 * step waits for the grace and kills the group, not only the leader. */
static void test_timeout_member_ignores_term(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };
  char script[PATH_MAX + 128];
  char pidfile[PATH_MAX + 16];

  snprintf(pidfile, sizeof pidfile, "%s/gc.pid", f->dir);
  snprintf(script, sizeof script,
           "sh -c \"trap '' TERM; exec sleep 100\" & echo $! > '%s'; wait",
           pidfile);
  t.call.timeout_ms = 200;
  t.call.kill_grace_ms = 400;
  run_prepared(f, &t, shell(script));
  assert_int_equal(t.outcome, ADAPTER_TIMED_OUT);
  assert_int_equal(t.term_signal, SIGTERM); /* the leader's */
  assert_true(proc_gone(read_pid(pidfile)));
  assert_true(t.duration_ms >= 600);
  t_reset(&t);
  end_loop(f);
}

/* Cancels once libuv has reaped the leader, i.e. while the adapter waits
 * for the pipes a daemon keeps open. Stops itself after the step. */
static void cancel_when_leader_reaped(uv_timer_t *timer)
{
  struct t_call *t = timer->data;

  if (t->done) {
    uv_timer_stop(timer);
    return;
  }
  if (t->pid > 0 && kill(t->pid, 0) < 0 && errno == ESRCH) {
    adapter_exec.cancel(&t->call);
    uv_timer_stop(timer);
  }
}

static void test_cancel(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };
  char script[PATH_MAX + 128];
  char pidfile[PATH_MAX + 16];

  snprintf(pidfile, sizeof pidfile, "%s/gc.pid", f->dir);
  snprintf(script, sizeof script, "sleep 100 & echo $! > '%s'; wait",
           pidfile);
  t.cancel_after_ms = 200;
  run_prepared(f, &t, shell(script));
  assert_int_equal(t.outcome, ADAPTER_CANCELLED);
  assert_string_equal(t.error, "cancelled");
  assert_int_equal(t.term_signal, SIGTERM);
  assert_true(proc_gone(read_pid(pidfile)));
  /* after on_done, cancel is a no-op */
  adapter_exec.cancel(&t.call);
  t_reset(&t);

  /* cancelled from on_spawned, before anything ran for long */
  t.cancel_in_spawned = 1;
  run_prepared(f, &t, shell("sleep 100"));
  assert_int_equal(t.outcome, ADAPTER_CANCELLED);
  t_reset(&t);

  /* a cancel after the leader exited by itself (while a daemon it left
   * holds the pipes) ends the wait but keeps the outcome: it did take
   * effect */
  snprintf(script, sizeof script, "sleep 60 & echo $! > '%s'; exit 0",
           pidfile);
  {
    uv_timer_t poll;
    uv_timer_init(&f->loop, &poll);
    poll.data = &t;
    uv_timer_start(&poll, cancel_when_leader_reaped, 1, 1);
    run_prepared(f, &t, shell(script));
    assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
    assert_int_equal(t.exit_code, 0);
    uv_close((uv_handle_t *)&poll, NULL);
  }
  kill(read_pid(pidfile), SIGKILL);
  t_reset(&t);
  end_loop(f);
}

/* ---- redaction ---------------------------------------------------------- */

static void test_redaction_in_log_and_tail(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };
  static const char *const secrets[] = { "secret", "hunter2", NULL };
  json_t *j;

  t.call.redact = secrets;
  run_prepared(f, &t, shell("printf 'a sec'; sleep 0.2; printf 'ret b\\n'; "
                            "printf 'x secret y hunter2\\n'"));
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  assert_log(f, "a *** b\nx *** y ***\n");
  assert_string_equal(t.tail, "a *** b\nx *** y ***\n");
  t_reset(&t);

  /* split on stderr too */
  truncate(f->log, 0);
  t.call.redact = secrets;
  run_prepared(f, &t, shell("printf 'hun' >&2; sleep 0.2; printf 'ter2\\n' >&2"));
  assert_log(f, "***\n");
  assert_string_equal(t.tail, "***\n");
  t_reset(&t);

  /* the start of a secret at the very end is flushed as is */
  truncate(f->log, 0);
  t.call.redact = secrets;
  run_prepared(f, &t, shell("printf 'xx sec'"));
  assert_log(f, "xx sec");
  t_reset(&t);

  /* the json output is redacted, keys too */
  truncate(f->log, 0);
  t.call.redact = secrets;
  run_prepared(f, &t, shell("printf '{\"token\":\"my-secret\",\"secret\":1}'"));
  j = json_object_get(t.outputs, "json");
  assert_true(json_is_object(j));
  assert_string_equal(json_string_value(json_object_get(j, "token")),
                      "my-***");
  assert_int_equal(json_integer_value(json_object_get(j, "***")), 1);
  assert_null(json_object_get(j, "secret"));
  assert_log(f, "{\"token\":\"my-***\",\"***\":1}");
  t_reset(&t);
  end_loop(f);
}

/* A failure quotes the last line said: trimmed, redacted, cut on a
 * character boundary; none when nothing was said or the step was
 * stopped. */
static void test_failure_quotes_last_line(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };
  static const char *const secrets[] = { "hunter2", NULL };
  char want[300];

  t.call.redact = secrets;
  run_prepared(f, &t, shell("echo first; echo '  bad password hunter2 ' >&2; "
                            "printf '\\n\\n'; exit 4"));
  assert_string_equal(t.error, "exited with status 4: bad password ***");
  t_reset(&t);

  run_prepared(f, &t, shell("exit 5"));
  assert_string_equal(t.error, "exited with status 5");
  t_reset(&t);

  /* 199 x then a 2-byte character that would straddle the cut at 200 */
  run_prepared(f, &t, shell("printf '%0199d\\303\\251tail\\n' 0; exit 1"));
  snprintf(want, sizeof want, "exited with status 1: %0199d...", 0);
  assert_string_equal(t.error, want);
  t_reset(&t);

  run_prepared(f, &t, shell("echo dying >&2; kill -9 $$"));
  assert_string_equal(t.error, "killed by signal SIGKILL: dying");
  t_reset(&t);

  t.call.timeout_ms = 300;
  run_prepared(f, &t, shell("echo waiting; sleep 5"));
  assert_int_equal(t.outcome, ADAPTER_TIMED_OUT);
  assert_string_equal(t.error, "timed out after 300ms");
  t_reset(&t);
  end_loop(f);
}

static void collect(void *ud, const char *p, size_t n)
{
  char *buf = ud;
  strncat(buf, p, n);
}

/* adapter_finish_text redacts the whole log before it keeps the last
 * ADAPTER_TAIL_MAX bytes: a secret the cut would split leaves nothing of
 * itself in the tail. */
static void test_finish_text_redacts_before_cut(void **state)
{
  static const char *const redact[] = { "SECRETVALUE123456", NULL };
  struct adapter_call call;
  struct adapter_result res;
  size_t n = 2 + 17 + 4084; /* the cut falls 5 bytes into the secret */
  char *log = malloc(n + 1);

  (void)state;
  assert_non_null(log);
  memcpy(log, "AB", 2);
  memcpy(log + 2, redact[0], 17);
  memset(log + 19, 'x', n - 19);
  log[n] = '\0';
  memset(&call, 0, sizeof call);
  memset(&res, 0, sizeof res);
  call.redact = redact;
  adapter_finish_text(&call, "bad SECRETVALUE123456", log, &res);
  assert_non_null(res.tail);
  assert_null(strstr(res.tail, "LUE123456"));
  assert_true(strncmp(res.tail, "AB***xxx", 8) == 0);
  assert_true(strlen(res.tail) <= ADAPTER_TAIL_MAX);
  assert_string_equal(res.error, "bad ***");
  free(res.tail);

  /* a cut inside a character moves to the next one */
  memset(log, 'x', n);
  memcpy(log + n - ADAPTER_TAIL_MAX - 1, "\xc3\xa9", 2); /* é across */
  adapter_finish_text(&call, NULL, log, &res);
  assert_int_equal(strlen(res.tail), ADAPTER_TAIL_MAX - 1);
  assert_int_equal(res.tail[0], 'x');
  free(res.tail);
  free(log);
}

static void test_redact_api(void **state)
{
  static const char *const one[] = { "secret", NULL };
  static const char *const overlap[] = { "ab", "abcd", NULL };
  static const char *const empty[] = { "", "x", NULL };
  char out[128] = "";
  char *s;

  (void)state;
  s = adapter_redact(strdup("my secret is secret!"), one);
  assert_string_equal(s, "my *** is ***!");
  free(s);

  s = adapter_redact(strdup("xabcdy ab abc"), overlap);
  assert_string_equal(s, "x***y *** ***c");
  free(s);

  s = adapter_redact(strdup("axb"), empty);
  assert_string_equal(s, "a***b");
  free(s);

  s = strdup("nothing here");
  assert_ptr_equal(adapter_redact(s, one), s);
  assert_ptr_equal(adapter_redact(s, NULL), s);
  free(s);
  assert_null(adapter_redact(NULL, one));

  /* streaming: the possible start of a secret is held back */
  assert_int_equal(adapter_redact_feed("hello sec", 9, one, 0, collect, out),
                   6);
  assert_string_equal(out, "hello ");
  assert_int_equal(adapter_redact_feed("secret!", 7, one, 0, collect, out),
                   7);
  assert_string_equal(out, "hello ***!");
  out[0] = '\0';
  assert_int_equal(adapter_redact_feed("hello sex", 9, one, 0, collect, out),
                   9);
  assert_string_equal(out, "hello sex");
  out[0] = '\0';
  assert_int_equal(adapter_redact_feed("tail sec", 8, one, 1, collect, out),
                   8);
  assert_string_equal(out, "tail sec");
  /* a shorter value waits while a longer one may still match */
  out[0] = '\0';
  assert_int_equal(adapter_redact_feed("x ab", 4, overlap, 0, collect, out),
                   2);
  assert_string_equal(out, "x ");
}

/* ---- descriptors, environment, failures --------------------------------- */

static void test_no_inherited_fds(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };
  int fd = open("/dev/null", O_RDONLY); /* no O_CLOEXEC on purpose */

  assert_true(fd >= 0);
  assert_int_equal(dup2(fd, 100), 100);
  assert_int_equal(fcntl(100, F_GETFD) & FD_CLOEXEC, 0);
  run_exec(f, &t, json_pack("{s:[s,s]}", "argv", "/bin/ls", "/proc/self/fd"));
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  /* 0-2 and ls's own directory descriptor */
  assert_log(f, "0\n1\n2\n3\n");
  /* still open here */
  assert_true(fcntl(100, F_GETFD) >= 0);
  assert_true(fcntl(fd, F_GETFD) >= 0);
  close(100);
  close(fd);
  t_reset(&t);
  end_loop(f);
}

static void test_spawn_failure(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };
  char path[PATH_MAX + 32];
  int fd;

  run_exec(f, &t, json_pack("{s:[s,s]}", "argv",
                            "/nonexistent/cairn-no-such-program", "x"));
  assert_int_equal(t.outcome, ADAPTER_FAILED);
  assert_string_equal(t.error, "cannot run '/nonexistent/cairn-no-such-program'"
                               ": no such file or directory");
  assert_int_equal(t.exit_code, -1);
  assert_int_equal(out_int(&t, "exit_code"), -1);
  assert_int_equal(t.spawned, 0);
  assert_string_equal(t.tail, "");
  t_reset(&t);

  run_exec(f, &t, json_pack("{s:[s]}", "argv", "cairn-no-such-program-xyz"));
  assert_int_equal(t.outcome, ADAPTER_FAILED);
  assert_string_equal(t.error, "cannot run 'cairn-no-such-program-xyz': "
                               "no such file or directory");
  t_reset(&t);

  snprintf(path, sizeof path, "%s/not-executable", f->dir);
  fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  assert_true(fd >= 0);
  close(fd);
  run_exec(f, &t, json_pack("{s:[s]}", "argv", path));
  assert_int_equal(t.outcome, ADAPTER_FAILED);
  {
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "cannot run '%s': permission denied", path);
    if (geteuid() != 0)
      assert_string_equal(t.error, want);
    else /* root may execute it: an empty file then runs as nothing */
      assert_true(t.outcome == ADAPTER_FAILED);
  }
  t_reset(&t);

  run_exec(f, &t, json_pack("{s:[s], s:s}", "argv", "/bin/true", "cwd",
                            "/nonexistent-cairn-dir"));
  assert_int_equal(t.outcome, ADAPTER_FAILED);
  assert_string_equal(t.error, "cannot change to directory "
                               "'/nonexistent-cairn-dir': no such file or "
                               "directory");
  t_reset(&t);
  end_loop(f);
}

/* argv[0] is looked up as execvp does, in the PATH of the child's own
 * environment: a file without "#!" runs through /bin/sh, and a directory
 * where it is not executable is passed over for the next one. */
static void test_path_lookup(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };
  char a[PATH_MAX + 32], b[PATH_MAX + 32], prog[PATH_MAX + 64];
  char path[2 * PATH_MAX + 80];
  FILE *fp;

  snprintf(a, sizeof a, "%s/a", f->dir);
  snprintf(b, sizeof b, "%s/b", f->dir);
  assert_int_equal(mkdir(a, 0700), 0);
  assert_int_equal(mkdir(b, 0700), 0);
  /* in a: not executable (root passes over it too: no x bit at all) */
  snprintf(prog, sizeof prog, "%s/cairn-t-prog", a);
  assert_non_null(fp = fopen(prog, "w"));
  fputs("echo wrong one\n", fp);
  fclose(fp);
  assert_int_equal(chmod(prog, 0600), 0);
  /* in b: a script without "#!" that says its arguments */
  snprintf(prog, sizeof prog, "%s/cairn-t-prog", b);
  assert_non_null(fp = fopen(prog, "w"));
  fputs("echo \"script: $1 $2\"\n", fp);
  fclose(fp);
  assert_int_equal(chmod(prog, 0700), 0);
  snprintf(path, sizeof path, "%s::%s", a, b);

  run_exec(f, &t, json_pack("{s:[s,s,s], s:{s:s}}", "argv", "cairn-t-prog",
                            "one", "two", "env", "PATH", path));
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  assert_log(f, "script: one two\n");
  t_reset(&t);

  /* our own PATH does not have it: the child's decides */
  run_exec(f, &t, json_pack("{s:[s]}", "argv", "cairn-t-prog"));
  assert_int_equal(t.outcome, ADAPTER_FAILED);
  assert_string_equal(t.error, "cannot run 'cairn-t-prog': no such file or "
                               "directory");
  t_reset(&t);

  /* only the one that may not run: permission denied, not "not found" */
  snprintf(path, sizeof path, "%s", a);
  run_exec(f, &t, json_pack("{s:[s], s:{s:s}}", "argv", "cairn-t-prog", "env",
                            "PATH", path));
  assert_int_equal(t.outcome, ADAPTER_FAILED);
  assert_string_equal(t.error, "cannot run 'cairn-t-prog': permission denied");
  t_reset(&t);
  end_loop(f);
}

static void test_start_errors(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };
  struct cairn_error err = { 0 };
  json_t *in;

  /* inputs that skipped adapter_apply_defaults */
  in = json_pack("{s:[s], s:s}", "argv", "/bin/true", "timeout", "5s");
  t_prepare(f, &t, in);
  assert_int_equal(adapter_exec.start(&t.call, &err), CAIRN_E_INVAL);
  assert_non_null(strstr(err.msg, "'timeout'"));
  json_decref(in);

  in = json_pack("{s:[s], s:s}", "argv", "/bin/true", "shell", "true");
  t_prepare(f, &t, in);
  assert_int_equal(adapter_exec.start(&t.call, &err), CAIRN_E_INVAL);
  assert_string_equal(err.msg, "'argv' and 'shell' cannot be used together");
  json_decref(in);

  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(t.done, 0);
  assert_int_equal(t.spawned, 0);
  end_loop(f);
}

/* A log that cannot be written fails nothing (a full disk must not fail
 * a deploy): the output still reaches the tail. */
static void test_unwritable_log(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };

  t.call.log_path = "/nonexistent-cairn-dir/step.log";
  run_prepared(f, &t, json_pack("{s:[s,s]}", "argv", "/bin/echo", "said"));
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  assert_string_equal(t.tail, "said\n");
  t_reset(&t);
  t.call.log_path = "/nonexistent-cairn-dir/step.log";
  run_prepared(f, &t, json_pack("{s:[s]}", "argv", "/bin/false"));
  assert_int_equal(t.outcome, ADAPTER_FAILED);
  assert_string_equal(t.error, "exited with status 1");
  t_reset(&t);
  end_loop(f);
}

static void test_daemon_does_not_hang(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };
  char script[PATH_MAX + 128];
  char pidfile[PATH_MAX + 16];
  int daemon_pid;

  snprintf(pidfile, sizeof pidfile, "%s/daemon.pid", f->dir);
  /* the sleep keeps the step's stdout and stderr open */
  snprintf(script, sizeof script,
           "sleep 60 & echo $! > '%s'; echo leader done", pidfile);
  run_exec(f, &t, shell(script));
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  assert_log(f, "leader done\n");
  daemon_pid = read_pid(pidfile);
  /* a leader that exits by itself keeps what it left behind (look again
   * a little later: a process being killed is not a zombie at once) */
  assert_false(proc_gone_now(daemon_pid));
  usleep(200 * 1000);
  assert_false(proc_gone_now(daemon_pid));
  assert_int_equal(getpgid(daemon_pid), t.pid);
  kill(daemon_pid, SIGKILL);
  t_reset(&t);
  end_loop(f);
}

static void test_tail(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };
  size_t len;
  char *log;

  run_exec(f, &t, shell("head -c 100000 /dev/zero | tr '\\0' a; printf END"));
  assert_int_equal(strlen(t.tail), 4096);
  assert_string_equal(t.tail + 4093, "END");
  log = slurp(f->log, &len);
  assert_int_equal(len, 100003);
  free(log);
  t_reset(&t);

  /* cut at a character boundary: "xy" + 3000 "é" + "z" is 6003 bytes, the
   * last 4096 start on a continuation byte */
  truncate(f->log, 0);
  run_exec(f, &t, shell("printf xy; i=0; while [ $i -lt 3000 ]; do "
                        "printf '\\303\\251'; i=$((i+1)); done; printf z"));
  assert_int_equal(strlen(t.tail), 4095);
  assert_int_equal((unsigned char)t.tail[0], 0xC3);
  assert_int_equal((unsigned char)t.tail[1], 0xA9);
  assert_string_equal(t.tail + 4094, "z");
  t_reset(&t);

  /* invalid UTF-8 and NULs become '?' in the tail, not in the log */
  truncate(f->log, 0);
  run_exec(f, &t, shell("printf 'a\\377b\\000c\\303'"));
  assert_string_equal(t.tail, "a?b?c?");
  log = slurp(f->log, &len);
  assert_int_equal(len, 6);
  assert_memory_equal(log, "a\377b\0c\303", 6);
  free(log);
  t_reset(&t);
  end_loop(f);
}

static void heap_on_done(struct adapter_call *call,
                         const struct adapter_result *res)
{
  struct t_call *t = call->data;
  int *marker = t->free_marker;

  *marker = res->outcome == ADAPTER_SUCCEEDED ? 1 : 2;
  json_decref((json_t *)call->inputs);
  free(t); /* the call lives in t */
}

static void test_free_call_in_on_done(void **state)
{
  struct fixture *f = *state;
  int markers[3] = { 0 };
  struct cairn_error err = { 0 };

  for (int i = 0; i < 3; i++) {
    struct t_call *t = calloc(1, sizeof *t);
    assert_non_null(t);
    t_prepare(f, t, i == 2 ? json_pack("{s:[s]}", "argv", "/nonexistent/x")
                           : json_pack("{s:[s]}", "argv", "/bin/true"));
    t->call.on_done = heap_on_done;
    t->free_marker = &markers[i];
    assert_int_equal(adapter_exec.start(&t->call, &err), 0);
  }
  uv_timer_start(&f->watchdog, on_watchdog, WATCHDOG_MS, 0);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  uv_timer_stop(&f->watchdog);
  assert_int_equal(markers[0], 1);
  assert_int_equal(markers[1], 1);
  assert_int_equal(markers[2], 2);
  end_loop(f);
}

static void test_many_spawns_no_leak(void **state)
{
  struct fixture *f = *state;
  int before;
  enum { N = 100, PAR = 40 };
  struct t_call *ts = calloc(PAR, sizeof *ts);
  json_t *in = json_pack("{s:[s]}", "argv", "/bin/true");
  struct cairn_error err = { 0 };

  assert_non_null(ts);
  /* libuv opens its SIGCHLD machinery on the first spawn: warm up */
  {
    struct t_call t = { 0 };
    t_prepare(f, &t, in);
    assert_int_equal(adapter_exec.start(&t.call, &err), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    t_reset(&t);
  }
  before = count_fds();
  for (int i = 0; i < N; i++) {
    struct t_call t = { 0 };
    t_prepare(f, &t, in);
    assert_int_equal(adapter_exec.start(&t.call, &err), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(t.done, 1);
    assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
    t_reset(&t);
  }
  /* in parallel on one loop */
  for (int i = 0; i < PAR; i++) {
    t_prepare(f, &ts[i], in);
    assert_int_equal(adapter_exec.start(&ts[i].call, &err), 0);
  }
  uv_timer_start(&f->watchdog, on_watchdog, WATCHDOG_MS, 0);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  uv_timer_stop(&f->watchdog);
  for (int i = 0; i < PAR; i++) {
    assert_int_equal(ts[i].done, 1);
    assert_int_equal(ts[i].outcome, ADAPTER_SUCCEEDED);
    t_reset(&ts[i]);
  }
  free(ts);
  json_decref(in);
  assert_int_equal(count_fds(), before);
  end_loop(f);
}

/* ---- the registry and input checks -------------------------------------- */

static const struct adapter_input tinputs[] = {
  { "url", ADAPTER_T_STRING, 1, NULL, "where" },
  { "timeout", ADAPTER_T_DURATION, 0, "\"30s\"", "how long" },
  { "retries", ADAPTER_T_INTEGER, 0, "3", "how often" },
  { "verbose", ADAPTER_T_BOOLEAN, 0, "false", "say more" },
  { "ratio", ADAPTER_T_NUMBER, 0, NULL, "a number" },
  { "args", ADAPTER_T_ARGV, 0, NULL, "argv" },
  { "env", ADAPTER_T_STRMAP, 0, NULL, "env" },
  { "delay", ADAPTER_T_DURATION, 0, NULL, "another duration" },
  { "extra", ADAPTER_T_ANY, 0, NULL, "anything" },
  { NULL, 0, 0, NULL, NULL },
};

static const struct adapter_output toutputs[] = { { NULL, NULL, NULL } };

static const struct adapter_desc tdesc = {
  .name = "test",
  .summary = "a test adapter",
  .inputs = tinputs,
  .outputs = toutputs,
};

static void test_registry(void **state)
{
  (void)state;
  assert_ptr_equal(adapter_find("exec"), &adapter_exec);
  assert_null(adapter_find("nope"));
  assert_null(adapter_find(NULL));
  assert_ptr_equal(adapter_registry[0], &adapter_exec);
  assert_int_equal(adapter_exec.idempotent, 0);
  assert_string_equal(adapter_type_name(ADAPTER_T_DURATION), "duration");
  assert_string_equal(adapter_type_name(ADAPTER_T_ARGV), "list of strings");
  assert_string_equal(adapter_outcome_name(ADAPTER_TIMED_OUT), "timed_out");
  assert_string_equal(adapter_outcome_name(ADAPTER_CANCELLED), "cancelled");
  assert_string_equal(adapter_outcome_name(ADAPTER_SUCCEEDED), "succeeded");
  assert_string_equal(adapter_outcome_name(ADAPTER_FAILED), "failed");
}

/* Checks with (stolen) against desc; returns the code, fills msg and
 * *bad (a copy: bad_key is borrowed from with). */
static int check(const struct adapter_desc *d, json_t *with, char *msg,
                 const char **bad)
{
  static char keep[64];
  struct cairn_error err = { 0 };
  const char *b = "(unset)";
  int rc;

  assert_non_null(with);
  rc = adapter_check_with(d, with, &b, &err);
  snprintf(msg, CAIRN_ERRMSG_MAX, "%s", rc ? err.msg : "");
  *bad = NULL;
  if (b != NULL) {
    snprintf(keep, sizeof keep, "%s", b);
    *bad = keep;
  }
  json_decref(with);
  return rc;
}

static void test_check_with(void **state)
{
  char msg[CAIRN_ERRMSG_MAX];
  const char *bad;

  (void)state;
  assert_int_equal(check(&adapter_exec, json_pack("{s:[s]}", "agrv", "x"),
                         msg, &bad), CAIRN_E_INVAL);
  assert_string_equal(bad, "agrv");
  assert_string_equal(msg, "unknown input 'agrv' for exec (did you mean "
                           "'argv'?)");

  assert_int_equal(check(&adapter_exec,
                         json_pack("{s:[s], s:i}", "argv", "x", "zzzzzz", 1),
                         msg, &bad), CAIRN_E_INVAL);
  assert_string_equal(bad, "zzzzzz");
  assert_string_equal(msg, "unknown input 'zzzzzz' for exec");

  assert_int_equal(check(&adapter_exec,
                         json_pack("{s:[s], s:i}", "argv", "x", "cwd", 5),
                         msg, &bad), CAIRN_E_INVAL);
  assert_string_equal(bad, "cwd");
  assert_string_equal(msg, "input 'cwd' must be a string, not an integer");

  assert_int_equal(check(&adapter_exec,
                         json_pack("{s:[s,{s:i}]}", "argv", "x", "a", 1),
                         msg, &bad), CAIRN_E_INVAL);
  assert_string_equal(bad, "argv");
  assert_string_equal(msg, "input 'argv' item 2 must be a string, not a map");

  assert_int_equal(check(&adapter_exec, json_pack("{s:[]}", "argv"), msg,
                         &bad), CAIRN_E_INVAL);
  assert_string_equal(msg, "input 'argv' must be a non-empty list of "
                           "strings, not a list");

  assert_int_equal(check(&adapter_exec,
                         json_pack("{s:[s], s:s}", "argv", "x", "timeout",
                                   "5x"),
                         msg, &bad), CAIRN_E_INVAL);
  assert_string_equal(bad, "timeout");
  assert_string_equal(msg, "invalid input 'timeout': unknown unit 'x' in '5x'"
                           " (hint: durations look like 250ms, 5s, 1m30s, 2h "
                           "or 1d)");

  assert_int_equal(check(&adapter_exec,
                         json_pack("{s:[s], s:{s:[]}}", "argv", "x", "env",
                                   "A"),
                         msg, &bad), CAIRN_E_INVAL);
  assert_string_equal(msg, "input 'env' key 'A' must be a string, not a "
                           "list");

  assert_int_equal(check(&adapter_exec,
                         json_pack("{s:[s], s:{s:s}}", "argv", "x", "env",
                                   "A=B", "1"),
                         msg, &bad), CAIRN_E_INVAL);
  assert_string_equal(msg, "bad environment variable name 'A=B' in input "
                           "'env'");

  /* argv xor shell */
  assert_int_equal(check(&adapter_exec,
                         json_pack("{s:[s], s:s}", "argv", "x", "shell", "y"),
                         msg, &bad), CAIRN_E_INVAL);
  assert_null(bad);
  assert_string_equal(msg, "'argv' and 'shell' cannot be used together");
  assert_int_equal(check(&adapter_exec, json_pack("{s:s}", "cwd", "/"), msg,
                         &bad), CAIRN_E_INVAL);
  assert_string_equal(msg, "either 'argv' or 'shell' is required");

  /* templates pass any type, whole values and items alike */
  assert_int_equal(check(&adapter_exec,
                         json_pack("{s:s, s:s, s:s, s:s}", "argv",
                                   "{{ params.cmd }}", "timeout",
                                   "{{ params.t }}", "cwd", "{{ run.dir }}",
                                   "env", "{{ params.env }}"),
                         msg, &bad), 0);
  assert_int_equal(check(&adapter_exec,
                         json_pack("{s:[s,s], s:{s:s}}", "argv", "echo",
                                   "{{ params.x }}", "env", "A",
                                   "{{ secrets.X }}"),
                         msg, &bad), 0);
  /* null means not given; YAML scalars are fine in argv and env */
  assert_int_equal(check(&adapter_exec,
                         json_pack("{s:[s,i,f,b], s:n, s:{s:i}}", "argv",
                                   "sleep", 5, 0.5, 1, "cwd", "env", "PORT",
                                   80),
                         msg, &bad), 0);

  /* required inputs */
  assert_int_equal(check(&tdesc, json_pack("{s:i}", "retries", 2), msg, &bad),
                   CAIRN_E_INVAL);
  assert_null(bad);
  assert_string_equal(msg, "missing required input 'url' for test");
  assert_int_equal(check(&tdesc, json_pack("{s:n}", "url"), msg, &bad),
                   CAIRN_E_INVAL);
  assert_int_equal(check(&tdesc, json_pack("{s:s}", "url", "{{ vars.u }}"),
                         msg, &bad), 0);
  assert_int_equal(check(&tdesc, json_pack("{s:s, s:s}", "url", "u",
                                           "verbose", "yes"),
                         msg, &bad), CAIRN_E_INVAL);
  assert_string_equal(msg, "input 'verbose' must be a boolean, not a string");
  assert_int_equal(check(&tdesc, json_pack("[]"), msg, &bad), CAIRN_E_INVAL);
  assert_string_equal(msg, "inputs of test must be a map, not a list");
}

static json_t *apply(const struct adapter_desc *d, json_t *with, char *msg)
{
  struct cairn_error err = { 0 };
  json_t *out = (json_t *)1;
  int rc;

  assert_non_null(with);
  rc = adapter_apply_defaults(d, with, &out, &err);
  json_decref(with);
  snprintf(msg, CAIRN_ERRMSG_MAX, "%s", rc ? err.msg : "");
  if (rc) {
    assert_null(out);
    return NULL;
  }
  assert_non_null(out);
  return out;
}

static int64_t duration_ms(json_t *v, char *msg)
{
  json_t *out = apply(&tdesc, json_pack("{s:s, s:O}", "url", "u", "delay", v),
                      msg);
  int64_t ms;

  json_decref(v);
  if (out == NULL)
    return -1;
  ms = json_integer_value(json_object_get(out, "delay"));
  assert_true(json_is_integer(json_object_get(out, "delay")));
  json_decref(out);
  return ms;
}

static void test_apply_defaults(void **state)
{
  char msg[CAIRN_ERRMSG_MAX];
  json_t *out;
  json_t *want;

  (void)state;
  out = apply(&tdesc,
              json_pack("{s:s, s:[s,i,f,b], s:{s:i, s:s}, s:s, s:{s:i}}",
                        "url", "http://x", "args", "sleep", 5, 1.5, 1, "env",
                        "PORT", 8080, "NAME", "n", "delay", "1m30s", "extra",
                        "k", 1),
              msg);
  assert_non_null(out);
  want = json_pack("{s:s, s:i, s:i, s:b, s:[s,s,s,s], s:{s:s, s:s}, s:i, "
                   "s:{s:i}}",
                   "url", "http://x", "timeout", 30000, "retries", 3,
                   "verbose", 0, "args", "sleep", "5", "1.5", "true", "env",
                   "PORT", "8080", "NAME", "n", "delay", 90000, "extra", "k",
                   1);
  if (!json_equal(out, want)) {
    char *s = json_dumps(out, JSON_SORT_KEYS);
    fail_msg("got %s", s);
  }
  json_decref(want);
  json_decref(out);

  /* durations */
  assert_int_equal(duration_ms(json_string("250ms"), msg), 250);
  assert_int_equal(duration_ms(json_string("5s"), msg), 5000);
  assert_int_equal(duration_ms(json_string("1m30s"), msg), 90000);
  assert_int_equal(duration_ms(json_string("1.5s"), msg), 1500);
  /* rounded to the nearest millisecond, as the workflow's own keys are */
  assert_int_equal(duration_ms(json_string("1.0005s"), msg), 1001);
  assert_int_equal(duration_ms(json_string("1.0004s"), msg), 1000);
  assert_int_equal(duration_ms(json_string("2h"), msg), 7200000);
  assert_int_equal(duration_ms(json_string("1d2h3m4s5ms"), msg),
                   86400000 + 7200000 + 180000 + 4000 + 5);
  assert_int_equal(duration_ms(json_string("10"), msg), 10000);
  assert_int_equal(duration_ms(json_integer(5), msg), 5000);
  assert_int_equal(duration_ms(json_integer(0), msg), 0);
  assert_int_equal(duration_ms(json_real(0.5), msg), 500);
  assert_int_equal(duration_ms(json_string("5x"), msg), -1);
  assert_string_equal(msg, "invalid input 'delay': unknown unit 'x' in '5x' "
                           "(hint: durations look like 250ms, 5s, 1m30s, 2h "
                           "or 1d)");
  assert_int_equal(duration_ms(json_string("1s1m"), msg), -1);
  assert_string_equal(msg, "invalid input 'delay': units out of order in "
                           "'1s1m' (hint: durations look like 250ms, 5s, "
                           "1m30s, 2h or 1d)");
  assert_int_equal(duration_ms(json_string("1s1s"), msg), -1);
  assert_int_equal(duration_ms(json_string("1m30"), msg), -1);
  assert_int_equal(duration_ms(json_string(""), msg), -1);
  assert_int_equal(duration_ms(json_string("s"), msg), -1);
  assert_int_equal(duration_ms(json_string("-5s"), msg), -1);
  assert_int_equal(duration_ms(json_string("1.s"), msg), -1);
  assert_int_equal(duration_ms(json_string("99999999999999999999s"), msg),
                   -1);
  assert_string_equal(msg, "invalid input 'delay': duration "
                           "'99999999999999999999s' is too large (hint: "
                           "durations look like 250ms, 5s, 1m30s, 2h or 1d)");
  assert_int_equal(duration_ms(json_string("9999999999999999d"), msg), -1);
  assert_int_equal(duration_ms(json_integer(-1), msg), -1);
  assert_string_equal(msg, "invalid input 'delay': negative duration -1 "
                           "(hint: durations look like 250ms, 5s, 1m30s, 2h "
                           "or 1d)");
  assert_int_equal(duration_ms(json_true(), msg), -1);
  assert_string_equal(msg, "input 'delay' must be a duration, not a boolean");

  /* required, unknown, and rendered values that are now plain strings */
  assert_null(apply(&tdesc, json_pack("{s:i}", "retries", 1), msg));
  assert_string_equal(msg, "missing required input 'url' for test");
  assert_null(apply(&tdesc, json_pack("{s:s, s:i}", "url", "u", "nope", 1),
                    msg));
  assert_string_equal(msg, "unknown input 'nope' for test");
  assert_null(apply(&tdesc, json_pack("{s:s, s:i}", "url", "u", "retires",
                                      1),
                    msg));
  assert_string_equal(msg, "unknown input 'retires' for test (did you mean "
                           "'retries'?)");
  assert_null(apply(&tdesc, json_pack("{s:s, s:s}", "url", "u", "retries",
                                      "{{ params.n }}"),
                    msg));
  assert_string_equal(msg, "input 'retries' must be an integer, not a string");
  assert_null(apply(&tdesc, json_pack("{s:s, s:f}", "url", "u", "retries",
                                      1.5),
                    msg));

  /* null means the default */
  out = apply(&tdesc, json_pack("{s:s, s:n}", "url", "u", "timeout"), msg);
  assert_int_equal(json_integer_value(json_object_get(out, "timeout")),
                   30000);
  json_decref(out);

  /* exec: nothing added that was not given; the xor check applies */
  out = apply(&adapter_exec, json_pack("{s:[s]}", "argv", "/bin/true"), msg);
  assert_int_equal(json_object_size(out), 1);
  json_decref(out);
  out = apply(&adapter_exec, json_pack("{s:s, s:s}", "shell", "true",
                                       "timeout", "2s"),
              msg);
  assert_int_equal(json_integer_value(json_object_get(out, "timeout")), 2000);
  json_decref(out);
  assert_null(apply(&adapter_exec, json_pack("{}"), msg));
  assert_string_equal(msg, "either 'argv' or 'shell' is required");
}

/* The registry's defaults are parsed once (registry.c): each call must
 * still get values of its own, converted as the slow path converts. */
static void test_registry_defaults_are_copies(void **state)
{
  const struct adapter_desc *http = adapter_find("http.check");
  const struct adapter_desc *kubectl = adapter_find("kubectl");
  char msg[CAIRN_ERRMSG_MAX];
  json_t *a, *b;

  (void)state;
  assert_non_null(http);
  assert_non_null(kubectl);
  a = apply(http, json_pack("{s:s}", "url", "http://x"), msg);
  assert_string_equal(json_string_value(json_object_get(a, "method")), "GET");
  assert_int_equal(json_integer_value(json_object_get(a, "within")), 0);
  assert_int_equal(json_integer_value(json_object_get(a, "interval")), 1000);
  assert_int_equal(json_integer_value(json_object_get(a, "timeout")), 10000);
  assert_true(json_is_false(json_object_get(a, "insecure")));
  assert_null(json_object_get(a, "headers")); /* no default, not given */
  /* what one state's inputs do to their values stays theirs */
  json_integer_set(json_object_get(a, "timeout"), 1);
  json_string_set(json_object_get(a, "method"), "POST");
  b = apply(http, json_pack("{s:s, s:n}", "url", "http://y", "timeout"),
            msg);
  assert_string_equal(json_string_value(json_object_get(b, "method")), "GET");
  assert_int_equal(json_integer_value(json_object_get(b, "timeout")), 10000);
  json_decref(a);
  json_decref(b);

  /* a container default, too */
  a = apply(kubectl, json_pack("{s:s}", "file", "k.yaml"), msg);
  assert_true(json_is_array(json_object_get(a, "resources")));
  assert_int_equal(json_array_size(json_object_get(a, "resources")), 0);
  assert_int_equal(json_integer_value(json_object_get(a, "rollout_timeout")),
                   300000);
  json_array_append_new(json_object_get(a, "resources"),
                        json_string("deployment/x"));
  b = apply(kubectl, json_pack("{s:s}", "file", "k.yaml"), msg);
  assert_int_equal(json_array_size(json_object_get(b, "resources")), 0);
  json_decref(a);
  json_decref(b);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_argv_success, setup, teardown),
    cmocka_unit_test(test_start_between_arithmetic),
    cmocka_unit_test(test_start_time_is_the_kernels),
    cmocka_unit_test_setup_teardown(test_own_session_and_group, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_exit_status, setup, teardown),
    cmocka_unit_test_setup_teardown(test_failure_quotes_last_line, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_killed_by_signal, setup, teardown),
    cmocka_unit_test_setup_teardown(test_shell_and_no_shell, setup, teardown),
    cmocka_unit_test_setup_teardown(test_stdin_is_dev_null, setup, teardown),
    cmocka_unit_test_setup_teardown(test_json_output, setup, teardown),
    cmocka_unit_test_setup_teardown(test_json_absent, setup, teardown),
    cmocka_unit_test_setup_teardown(test_json_size_cap, setup, teardown),
    cmocka_unit_test_setup_teardown(test_env_and_cwd, setup, teardown),
    cmocka_unit_test_setup_teardown(test_env_extra, setup, teardown),
    cmocka_unit_test_setup_teardown(test_timeout_kills_group, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_timeout_counts_from_start, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_timeout_smaller_wins, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_timeout_grace_then_sigkill, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_timeout_member_ignores_term, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
    cmocka_unit_test_setup_teardown(test_redaction_in_log_and_tail, setup,
                                    teardown),
    cmocka_unit_test(test_redact_api),
    cmocka_unit_test(test_finish_text_redacts_before_cut),
    cmocka_unit_test_setup_teardown(test_no_inherited_fds, setup, teardown),
    cmocka_unit_test_setup_teardown(test_spawn_failure, setup, teardown),
    cmocka_unit_test_setup_teardown(test_path_lookup, setup, teardown),
    cmocka_unit_test_setup_teardown(test_start_errors, setup, teardown),
    cmocka_unit_test_setup_teardown(test_unwritable_log, setup, teardown),
    cmocka_unit_test_setup_teardown(test_daemon_does_not_hang, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_tail, setup, teardown),
    cmocka_unit_test_setup_teardown(test_free_call_in_on_done, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_many_spawns_no_leak, setup,
                                    teardown),
    cmocka_unit_test(test_registry),
    cmocka_unit_test(test_check_with),
    cmocka_unit_test(test_apply_defaults),
    cmocka_unit_test(test_registry_defaults_are_copies),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
