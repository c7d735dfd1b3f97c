/* process.start and process.stop on a real loop with real processes: a
 * detached start, an idempotent second start, a stop by SIGTERM and by
 * SIGKILL after the grace, a gone process, a reused pid that must not be
 * signalled, a service that dies at once, a port something listens on
 * already (refused, unless the service is adopted), a stop that keeps
 * the argv about to be started, and an adopted service that the undo of
 * its start leaves running. */
#include "adapter_harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "common/listen.h"
#include "common/proc.h"

static int alive(int pid)
{
  return cairn_proc_alive(pid, 0);
}

static void test_start_stop(void **state)
{
  struct h_fix *f = *state;
  struct h_res r = { 0 };
  char with[PATH_MAX + 64];
  int pid;

  h_run(f, &adapter_process_start, "svc",
        "{\"argv\": [\"sleep\", \"300\"], \"wait\": \"100ms\"}", &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  pid = (int)h_int(&r, "pid");
  assert_true(pid > 0 && alive(pid));
  assert_int_equal(getpgid(pid), pid);
  assert_int_equal(getsid(pid), pid);
  assert_int_equal(h_int(&r, "pgid"), pid);
  {
    int64_t st = 0;
    assert_int_equal(cairn_proc_start_time(pid, &st), 0);
    assert_int_equal(h_int(&r, "proc_start"), st);
  }
  assert_true(strstr(h_str(&r, "pid_file"), "/svc.pid") != NULL);
  assert_true(strstr(h_str(&r, "log"), "/svc.service.log") != NULL);

  /* the same start again: the same process */
  h_run(f, &adapter_process_start, "svc", "{\"argv\": [\"sleep\", \"300\"]}",
        &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_int_equal(h_int(&r, "pid"), pid);

  /* another argv over a live pid file is refused */
  h_run(f, &adapter_process_start, "svc", "{\"argv\": [\"sleep\", \"301\"]}",
        &r);
  assert_int_equal(r.outcome, ADAPTER_FAILED);
  assert_non_null(strstr(r.error, "running with another argv"));
  assert_true(alive(pid));

  snprintf(with, sizeof with, "{\"pid_file\": \"%s/svc.pid\"}", f->dir);
  h_run(f, &adapter_process_stop, "stop", with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_true(json_is_true(json_object_get(r.outputs, "stopped")));
  assert_string_equal(h_str(&r, "signal"), "SIGTERM");
  assert_false(alive(pid));
  assert_int_equal(access(strchr(with, '/'), F_OK), -1);

  /* again: already stopped */
  h_run(f, &adapter_process_stop, "stop", with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_false(json_is_true(json_object_get(r.outputs, "stopped")));
  assert_string_equal(h_str(&r, "signal"), "");
  h_release(&r);
}

static void test_stop_sigkill_after_grace(void **state)
{
  struct h_fix *f = *state;
  struct h_res r = { 0 };
  char with[128];
  int pid;

  h_run(f, &adapter_process_start, "stubborn",
        "{\"argv\": [\"sh\", \"-c\", \"trap '' TERM; echo up; "
        "while :; do sleep 0.05; done\"], \"wait\": \"200ms\"}",
        &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  pid = (int)h_int(&r, "pid");
  snprintf(with, sizeof with,
           "{\"pid\": %d, \"proc_start\": %lld, \"grace\": \"300ms\"}", pid,
           (long long)h_int(&r, "proc_start"));
  h_run(f, &adapter_process_stop, "stop", with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_string_equal(h_str(&r, "signal"), "SIGKILL");
  assert_false(alive(pid));
  assert_false(cairn_proc_group_alive(pid));
  h_release(&r);
}

/* A process of its own session (pgid == pid), for the tests to point pid
 * files at. */
static pid_t spawn_sleeper(void)
{
  pid_t pid = fork();

  if (pid == 0) {
    setsid();
    pause();
    _exit(0);
  }
  assert_true(pid > 0);
  usleep(50000);
  return pid;
}

static void reap_sleeper(pid_t pid)
{
  int status;

  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
}

static void test_reused_pid_not_signalled(void **state)
{
  struct h_fix *f = *state;
  struct h_res r = { 0 };
  char with[128];
  pid_t other = spawn_sleeper();

  /* a pid file whose start time is not this process's: a reused pid */
  snprintf(with, sizeof with, "{\"pid\": %d, \"proc_start\": 1}", (int)other);
  h_run(f, &adapter_process_stop, "stop", with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_false(json_is_true(json_object_get(r.outputs, "stopped")));
  assert_true(alive((int)other));
  reap_sleeper(other);
  h_release(&r);
}

/* Without a known start time nothing is signalled: the pid may be reused. */
static void test_stop_needs_start_time(void **state)
{
  struct h_fix *f = *state;
  struct h_res r = { 0 };
  char with[PATH_MAX + 64], pf[PATH_MAX + 16], expect[128];
  pid_t other = spawn_sleeper();
  FILE *fp;

  snprintf(with, sizeof with, "{\"pid\": %d}", (int)other);
  h_run(f, &adapter_process_stop, "stop", with, &r);
  assert_int_equal(r.outcome, ADAPTER_FAILED);
  snprintf(expect, sizeof expect,
           "refusing to signal pid %d: its start time is unknown", (int)other);
  assert_string_equal(r.error, expect);
  assert_true(alive((int)other));

  /* the same from a pid file with proc_start 0 */
  snprintf(pf, sizeof pf, "%s/old.pid", f->dir);
  assert_non_null(fp = fopen(pf, "w"));
  fprintf(fp, "{\"pid\": %d, \"pgid\": %d, \"proc_start\": 0}", (int)other,
          (int)other);
  fclose(fp);
  snprintf(with, sizeof with, "{\"pid_file\": \"%s\"}", pf);
  h_run(f, &adapter_process_stop, "stop", with, &r);
  assert_int_equal(r.outcome, ADAPTER_FAILED);
  assert_string_equal(r.error, expect);
  assert_true(alive((int)other));

  /* a gone process needs no start time: nothing to signal */
  reap_sleeper(other);
  snprintf(with, sizeof with, "{\"pid\": %d}", (int)other);
  h_run(f, &adapter_process_stop, "stop", with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_false(json_is_true(json_object_get(r.outputs, "stopped")));
  h_release(&r);
}

/* A pid file's pgid is signalled only when it is the pid's own group. */
static void test_stop_checks_pgid(void **state)
{
  struct h_fix *f = *state;
  struct h_res r = { 0 };
  char with[PATH_MAX + 64], pf[PATH_MAX + 16], expect[160];
  pid_t pid = spawn_sleeper(), victim = spawn_sleeper();
  int64_t st = 0;
  int bad[3];
  FILE *fp;

  assert_int_equal(cairn_proc_start_time((int)pid, &st), 0);
  bad[0] = (int)victim;   /* another live group */
  bad[1] = (int)getpgrp(); /* cairn's own */
  bad[2] = 1;              /* kill(-1) would signal every process */
  snprintf(pf, sizeof pf, "%s/svc.pid", f->dir);
  snprintf(with, sizeof with, "{\"pid_file\": \"%s\"}", pf);
  for (int i = 0; i < 3; i++) {
    assert_non_null(fp = fopen(pf, "w"));
    fprintf(fp, "{\"pid\": %d, \"pgid\": %d, \"proc_start\": %lld}",
            (int)pid, bad[i], (long long)st);
    fclose(fp);
    h_run(f, &adapter_process_stop, "stop", with, &r);
    assert_int_equal(r.outcome, ADAPTER_FAILED);
    if (i == 0)
      snprintf(expect, sizeof expect,
               "refusing to signal process group %d: pid %d is in group %d",
               bad[i], (int)pid, (int)pid);
    else
      snprintf(expect, sizeof expect, "refusing to signal process group %d",
               bad[i]);
    assert_string_equal(r.error, expect);
    assert_true(alive((int)pid));
    assert_true(alive((int)victim));
  }
  reap_sleeper(pid);
  reap_sleeper(victim);
  h_release(&r);
}

static void test_dies_at_once(void **state)
{
  struct h_fix *f = *state;
  struct h_res r = { 0 };
  char pf[PATH_MAX + 16];

  h_run(f, &adapter_process_start, "bad",
        "{\"argv\": [\"sh\", \"-c\", \"echo starting; echo no config >&2; "
        "exit 4\"], \"wait\": \"300ms\"}",
        &r);
  assert_int_equal(r.outcome, ADAPTER_FAILED);
  assert_non_null(strstr(r.error, "exited with status 4 right after it "
                                  "started: no config"));
  assert_non_null(strstr(r.tail, "starting\nno config"));
  snprintf(pf, sizeof pf, "%s/bad.pid", f->dir);
  assert_int_equal(access(pf, F_OK), -1);

  h_run(f, &adapter_process_start, "missing",
        "{\"argv\": [\"/nonexistent/prog\"]}", &r);
  assert_int_equal(r.outcome, ADAPTER_FAILED);
  assert_string_equal(r.error,
                      "cannot run '/nonexistent/prog': no such file or "
                      "directory");
  h_release(&r);
}

/* A socket listening on a free loopback port of family (AF_INET or
 * AF_INET6), its port into *port; -1 when there is none (no IPv6). */
static int listener(int family, int *port)
{
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

  memset(&ss, 0, sizeof ss);
  if (family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  } else {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_loopback;
  }
  if (fd < 0 || bind(fd, (struct sockaddr *)&ss, family == AF_INET
                         ? sizeof(struct sockaddr_in)
                         : sizeof(struct sockaddr_in6)) != 0 ||
      listen(fd, 1) != 0 || getsockname(fd, (struct sockaddr *)&ss, &len)) {
    if (fd >= 0)
      close(fd);
    return -1;
  }
  *port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                  : ((struct sockaddr_in6 *)&ss)->sin6_port);
  return fd;
}

static void test_port_taken(void **state)
{
  struct h_fix *f = *state;
  struct h_res r = { 0 };
  struct cairn_error err = { 0 };
  char with[256], expect[160], pf[PATH_MAX + 16];
  int port, fd, listening = -1, pid;

  fd = listener(AF_INET, &port);
  assert_true(fd >= 0);
  assert_int_equal(cairn_tcp_listening(port, &listening, &err), 0);
  assert_int_equal(listening, 1);

  /* taken: nothing starts */
  snprintf(with, sizeof with,
           "{\"argv\": [\"sleep\", \"300\"], \"port\": %d}", port);
  h_run(f, &adapter_process_start, "svc", with, &r);
  assert_int_equal(r.outcome, ADAPTER_FAILED);
  snprintf(expect, sizeof expect,
           "port %d is already taken (something listens on it); stop what "
           "holds it or choose another port", port);
  assert_string_equal(r.error, expect);
  snprintf(pf, sizeof pf, "%s/svc.pid", f->dir);
  assert_int_equal(access(pf, F_OK), -1);

  /* free: it starts */
  close(fd);
  assert_int_equal(cairn_tcp_listening(port, &listening, &err), 0);
  assert_int_equal(listening, 0);
  h_run(f, &adapter_process_start, "svc", with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  pid = (int)h_int(&r, "pid");

  /* the service the pid file names is adopted, whatever holds the port
   * (itself, in real life): a resume must find it */
  fd = listener(AF_INET, &port);
  assert_true(fd >= 0);
  snprintf(with, sizeof with,
           "{\"argv\": [\"sleep\", \"300\"], \"port\": %d}", port);
  h_run(f, &adapter_process_start, "svc", with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_int_equal(h_int(&r, "pid"), pid);
  close(fd);

  /* IPv6 counts too, where there is IPv6 */
  if ((fd = listener(AF_INET6, &port)) >= 0) {
    assert_int_equal(cairn_tcp_listening(port, &listening, &err), 0);
    assert_int_equal(listening, 1);
    close(fd);
  }
  assert_int_equal(cairn_tcp_listening(0, &listening, &err), CAIRN_E_INVAL);

  snprintf(with, sizeof with, "{\"pid_file\": \"%s\"}", pf);
  h_run(f, &adapter_process_stop, "stop", with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_false(alive(pid));
  h_release(&r);
}

static void test_stop_keep_argv(void **state)
{
  struct h_fix *f = *state;
  struct h_res r = { 0 };
  char with[PATH_MAX + 96], pf[PATH_MAX + 16];
  int pid;

  h_run(f, &adapter_process_start, "svc", "{\"argv\": [\"sleep\", \"300\"]}",
        &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  pid = (int)h_int(&r, "pid");
  snprintf(pf, sizeof pf, "%s/svc.pid", f->dir);

  /* the argv about to be started: left running, pid file and all */
  snprintf(with, sizeof with,
           "{\"pid_file\": \"%s\", \"keep_argv\": [\"sleep\", \"300\"]}", pf);
  h_run(f, &adapter_process_stop, "stop", with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_true(json_is_true(json_object_get(r.outputs, "kept")));
  assert_false(json_is_true(json_object_get(r.outputs, "stopped")));
  assert_int_equal(h_int(&r, "pid"), pid);
  assert_true(alive(pid));
  assert_int_equal(access(pf, F_OK), 0);

  /* an older release: stopped */
  snprintf(with, sizeof with,
           "{\"pid_file\": \"%s\", \"keep_argv\": [\"sleep\", \"301\"]}", pf);
  h_run(f, &adapter_process_stop, "stop", with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_false(json_is_true(json_object_get(r.outputs, "kept")));
  assert_true(json_is_true(json_object_get(r.outputs, "stopped")));
  assert_false(alive(pid));
  assert_int_equal(access(pf, F_OK), -1);
  h_release(&r);
}

/* A start that finds its service running adopted it unless the pid file
 * names its own run and visit; the undo of an adopted start stops
 * nothing. */
static void test_adopted(void **state)
{
  struct h_fix *f = *state;
  struct h_res r = { 0 };
  char with[PATH_MAX + 96], pf[PATH_MAX + 16], *text;
  json_t *doc;
  int pid;

  h_run_id = "run-a";
  h_entry = 5;
  h_run(f, &adapter_process_start, "svc", "{\"argv\": [\"sleep\", \"300\"]}",
        &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_false(json_is_true(json_object_get(r.outputs, "adopted")));
  pid = (int)h_int(&r, "pid");
  text = h_read(f, "svc.pid");
  doc = json_loads(text, 0, NULL);
  free(text);
  assert_string_equal(json_string_value(json_object_get(doc, "run_id")),
                      "run-a");
  assert_int_equal(json_integer_value(json_object_get(doc, "entry")), 5);
  json_decref(doc);

  /* the same run and visit (a retry, a resumed run's re-run): its own */
  h_run(f, &adapter_process_start, "svc", "{\"argv\": [\"sleep\", \"300\"]}",
        &r);
  assert_int_equal(h_int(&r, "pid"), pid);
  assert_false(json_is_true(json_object_get(r.outputs, "adopted")));

  /* another visit, another run, no run at all: adopted */
  h_entry = 6;
  h_run(f, &adapter_process_start, "svc", "{\"argv\": [\"sleep\", \"300\"]}",
        &r);
  assert_int_equal(h_int(&r, "pid"), pid);
  assert_true(json_is_true(json_object_get(r.outputs, "adopted")));
  h_entry = 5;
  h_run_id = "run-b";
  h_run(f, &adapter_process_start, "svc", "{\"argv\": [\"sleep\", \"300\"]}",
        &r);
  assert_true(json_is_true(json_object_get(r.outputs, "adopted")));
  h_run_id = NULL;
  h_run(f, &adapter_process_start, "svc", "{\"argv\": [\"sleep\", \"300\"]}",
        &r);
  assert_true(json_is_true(json_object_get(r.outputs, "adopted")));

  /* adoption never rewrites the pid file: it still names run-a */
  text = h_read(f, "svc.pid");
  doc = json_loads(text, 0, NULL);
  free(text);
  assert_string_equal(json_string_value(json_object_get(doc, "run_id")),
                      "run-a");
  json_decref(doc);

  /* the undo of an adopted start: left running, pid file and all */
  snprintf(pf, sizeof pf, "%s/svc.pid", f->dir);
  snprintf(with, sizeof with, "{\"pid_file\": \"%s\", \"adopted\": true}",
           pf);
  h_run(f, &adapter_process_stop, "stop", with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_true(json_is_true(json_object_get(r.outputs, "kept")));
  assert_false(json_is_true(json_object_get(r.outputs, "stopped")));
  assert_int_equal(h_int(&r, "pid"), 0);
  assert_true(alive(pid));
  assert_int_equal(access(pf, F_OK), 0);

  /* not adopted: stopped */
  snprintf(with, sizeof with, "{\"pid_file\": \"%s\", \"adopted\": false}",
           pf);
  h_run(f, &adapter_process_stop, "stop", with, &r);
  assert_true(json_is_true(json_object_get(r.outputs, "stopped")));
  assert_false(alive(pid));
  assert_int_equal(access(pf, F_OK), -1);
  h_entry = 0;
  h_release(&r);
}

static void test_inputs(void **state)
{
  struct cairn_error err = { 0 };
  json_t *w = json_loads("{\"grace\": \"1s\"}", 0, NULL);
  const char *bad = NULL;

  (void)state;
  assert_int_equal(adapter_check_with(&adapter_process_stop, w, &bad, &err),
                   CAIRN_E_INVAL);
  assert_string_equal(err.msg, "process.stop needs 'pid_file' or 'pid'");
  json_decref(w);
  w = json_loads("{\"argv\": [\"x\"], \"port\": 70000}", 0, NULL);
  assert_int_equal(adapter_check_with(&adapter_process_start, w, &bad, &err),
                   CAIRN_E_INVAL);
  assert_string_equal(err.msg,
                      "value 70000 is out of range for input 'port' (hint: "
                      "use a TCP port from 1 to 65535)");
  json_decref(w);
  w = json_loads("{\"pid\": 5, \"keep_argv\": [\"x\"]}", 0, NULL);
  assert_int_equal(adapter_check_with(&adapter_process_stop, w, &bad, &err),
                   CAIRN_E_INVAL);
  assert_string_equal(err.msg, "'keep_argv' needs 'pid_file' (the argv is "
                               "read from it), not 'pid'");
  json_decref(w);
  assert_string_equal(adapter_process_start.undo_adapter, "process.stop");
  assert_non_null(strstr(adapter_process_start.undo_with,
                         "\"adopted\": \"{{ self.output.adopted }}\""));
  assert_ptr_equal(adapter_find("process.start"), &adapter_process_start);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_start_stop, h_setup, h_teardown),
    cmocka_unit_test_setup_teardown(test_stop_sigkill_after_grace, h_setup,
                                    h_teardown),
    cmocka_unit_test_setup_teardown(test_reused_pid_not_signalled, h_setup,
                                    h_teardown),
    cmocka_unit_test_setup_teardown(test_stop_needs_start_time, h_setup,
                                    h_teardown),
    cmocka_unit_test_setup_teardown(test_stop_checks_pgid, h_setup,
                                    h_teardown),
    cmocka_unit_test_setup_teardown(test_dies_at_once, h_setup, h_teardown),
    cmocka_unit_test_setup_teardown(test_port_taken, h_setup, h_teardown),
    cmocka_unit_test_setup_teardown(test_stop_keep_argv, h_setup, h_teardown),
    cmocka_unit_test_setup_teardown(test_adopted, h_setup, h_teardown),
    cmocka_unit_test(test_inputs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
