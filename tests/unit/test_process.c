/* process.start and process.stop on a real loop with real processes: a
 * detached start, an idempotent second start, a stop by SIGTERM and by
 * SIGKILL after the grace, a gone process, a reused pid that must not be
 * signalled, and a service that dies at once. */
#include "adapter_harness.h"

#include <signal.h>
#include <sys/wait.h>

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

static void test_reused_pid_not_signalled(void **state)
{
  struct h_fix *f = *state;
  struct h_res r = { 0 };
  char with[128];
  int status;
  pid_t other = fork();

  if (other == 0) {
    setsid();
    pause();
    _exit(0);
  }
  assert_true(other > 0);
  usleep(50000);
  /* a pid file whose start time is not this process's: a reused pid */
  snprintf(with, sizeof with, "{\"pid\": %d, \"proc_start\": 1}", (int)other);
  h_run(f, &adapter_process_stop, "stop", with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_false(json_is_true(json_object_get(r.outputs, "stopped")));
  assert_true(alive((int)other));
  kill(other, SIGKILL);
  waitpid(other, &status, 0);
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
  assert_string_equal(adapter_process_start.undo_adapter, "process.stop");
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
    cmocka_unit_test_setup_teardown(test_dies_at_once, h_setup, h_teardown),
    cmocka_unit_test(test_inputs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
