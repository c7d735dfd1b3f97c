/* kubectl, helm and compose on a real loop with real processes. No
 * cluster runs here: the tool is a FAKE kubectl (a shell script written
 * into the test's folder, first on PATH) whose apply leaves a grandchild
 * in its process group that ignores SIGTERM, then waits. A timeout and a
 * cancel must stop the whole group (SIGTERM, the grace, SIGKILL) before
 * the call ends: no process of it may be left. */
#include "adapter_harness.h"

#include <errno.h>
#include <signal.h>
#include <time.h>

#include "common/proc.h"

#define GRACE_MS 300

static const char fake_kubectl[] =
    "#!/bin/sh\n"
    "# FAKE kubectl: apply starts a grandchild that ignores SIGTERM\n"
    "echo $$ >\"$FAKE_DIR/tool.pid\"\n"
    "sh -c 'trap \"\" TERM; echo $$ >\"$1.tmp\"; mv \"$1.tmp\" \"$1\"; "
    "exec sleep 60' sh \"$FAKE_DIR/grandchild.pid\" &\n"
    "sleep 60\n";

static int read_pid(struct h_fix *f, const char *name)
{
  char *text = h_read(f, name);
  int pid = atoi(text);

  free(text);
  return pid;
}

static int tools_setup(void **state)
{
  struct h_fix *f;
  char path[PATH_MAX + 64], *newpath;

  if (h_setup(state) != 0)
    return -1;
  f = *state;
  snprintf(path, sizeof path, "%s/bin", f->dir);
  if (mkdir(path, 0700) != 0)
    return -1;
  h_write(f, "bin/kubectl", fake_kubectl, 0700);
  if (asprintf(&newpath, "%s/bin:%s", f->dir, getenv("PATH")) < 0)
    return -1;
  setenv("PATH", newpath, 1);
  free(newpath);
  setenv("FAKE_DIR", f->dir, 1);
  h_grace_ms = GRACE_MS;
  return 0;
}

static int tools_teardown(void **state)
{
  struct h_fix *f = *state;
  int gc = read_pid(f, "grandchild.pid");
  char *path = strdup(getenv("PATH")), *colon = strchr(path, ':');

  /* whatever a failed test left */
  if (gc > 0)
    kill(gc, SIGKILL);
  setenv("PATH", colon ? colon + 1 : path, 1);
  free(path);
  h_timeout_ms = 0;
  h_grace_ms = 0;
  h_cancel_when = NULL;
  return h_teardown(state);
}

/* The fake tool's group has no live member, waiting up to a second for
 * SIGKILLed members to die (SIGKILL is sent, not waited for). */
static int group_gone(int pgid)
{
  struct timespec nap = { 0, 10 * 1000000L };

  for (int i = 0; i < 100; i++) {
    if (!cairn_proc_group_alive(pgid))
      return 1;
    nanosleep(&nap, NULL);
  }
  return 0;
}

static void check_group_stopped(struct h_fix *f)
{
  int tool = read_pid(f, "tool.pid"), gc = read_pid(f, "grandchild.pid");

  assert_true(tool > 0);
  assert_true(gc > 0);
  assert_int_equal(getpgid(gc) < 0 ? tool : getpgid(gc), tool);
  assert_true(group_gone(tool));
}

static int grandchild_started(struct h_fix *f)
{
  return read_pid(f, "grandchild.pid") > 0;
}

static void test_timeout_stops_the_group(void **state)
{
  struct h_fix *f = *state;
  struct h_res r = { 0 };

  h_timeout_ms = 700;
  h_run(f, &adapter_kubectl, "apply", "{\"file\": \"m.yaml\"}", &r);
  assert_int_equal(r.outcome, ADAPTER_TIMED_OUT);
  assert_string_equal(r.error, "'kubectl apply' timed out after 700 ms");
  check_group_stopped(f);
  h_release(&r);
}

static void test_cancel_stops_the_group(void **state)
{
  struct h_fix *f = *state;
  struct h_res r = { 0 };

  h_cancel_when = grandchild_started;
  h_run(f, &adapter_kubectl, "apply", "{\"file\": \"m.yaml\"}", &r);
  assert_int_equal(r.outcome, ADAPTER_CANCELLED);
  assert_string_equal(r.error, "cancelled during 'kubectl apply'");
  check_group_stopped(f);
  h_release(&r);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_timeout_stops_the_group,
                                    tools_setup, tools_teardown),
    cmocka_unit_test_setup_teardown(test_cancel_stops_the_group, tools_setup,
                                    tools_teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
