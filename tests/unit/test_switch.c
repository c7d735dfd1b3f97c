/* switch.blue-green in nginx mode on a real loop, with a FAKE nginx (a
 * shell script in the test's folder that records its arguments and exits
 * 0, or hangs) and a real listener that accepts connections and never
 * answers, so the confirmation hangs: a cancel must end the switch at
 * once (the include restored, nginx reloaded back), not after the
 * request in flight gives up; a cancel while nginx -t hangs stops its
 * group. A second attempt of the same visit of a state (a retry, a
 * resumed run) reports as `from` the colour live before the first, in
 * both modes. tests/cli/t0014-switch.sh runs a real nginx. */
#include "adapter_harness.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include "common/proc.h"

static const char fake_nginx[] =
    "#!/bin/sh\n"
    "# FAKE nginx: records its arguments; hangs when $FAKE_DIR/hang exists\n"
    "echo \"$*\" >>\"$FAKE_DIR/calls\"\n"
    "if [ -e \"$FAKE_DIR/hang\" ]; then echo $$ >\"$FAKE_DIR/nginx.pid\"; "
    "exec sleep 60; fi\n"
    "exit 0\n";

static int silent_fd = -1, silent_port;
static uint64_t started_ns;

static int switch_setup(void **state)
{
  struct h_fix *f;
  struct sockaddr_in a;
  socklen_t len = sizeof a;

  if (h_setup(state) != 0)
    return -1;
  f = *state;
  h_write(f, "nginx", fake_nginx, 0700);
  setenv("FAKE_DIR", f->dir, 1);
  h_write(f, "live.inc", "# cairn switch.blue-green: blue\n"
                         "server 127.0.0.1:1;\n", 0644);
  /* listening, never accepting: the kernel completes the connections and
   * the requests wait for ever */
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if ((silent_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
      bind(silent_fd, (struct sockaddr *)&a, sizeof a) < 0 ||
      listen(silent_fd, 64) < 0 ||
      getsockname(silent_fd, (struct sockaddr *)&a, &len) < 0)
    return -1;
  silent_port = ntohs(a.sin_port);
  return 0;
}

static int switch_teardown(void **state)
{
  struct h_fix *f = *state;
  char *pid = h_read(f, "nginx.pid");

  if (atoi(pid) > 0) /* whatever a failed test left */
    kill(-atoi(pid), SIGKILL);
  free(pid);
  close(silent_fd);
  h_cancel_when = NULL;
  h_grace_ms = 0;
  h_entry = 0;
  return h_teardown(state);
}

static int after_300ms(struct h_fix *f)
{
  (void)f;
  return uv_hrtime() - started_ns >= 300 * 1000000ull;
}

static void switch_with(struct h_fix *f, char *out, size_t n)
{
  snprintf(out, n,
           "{\"to\": \"green\", \"mode\": \"nginx\", \"include\": "
           "\"%s/live.inc\", \"upstreams\": {\"blue\": \"127.0.0.1:1\", "
           "\"green\": \"127.0.0.1:2\"}, \"nginx\": \"%s/nginx\", "
           "\"confirm_url\": \"http://127.0.0.1:%d/\", \"confirm_within\": "
           "\"20s\"}",
           f->dir, f->dir, silent_port);
}

/* The confirmation hangs on a request; the cancel ends it at once. */
static void test_cancel_during_confirm(void **state)
{
  struct h_fix *f = *state;
  struct h_res r = { 0 };
  char with[2 * PATH_MAX + 512];
  char *calls, *inc;
  int64_t took;

  switch_with(f, with, sizeof with);
  h_cancel_when = after_300ms;
  started_ns = uv_hrtime();
  h_run(f, &adapter_switch_blue_green, "switch", with, &r);
  took = (int64_t)((uv_hrtime() - started_ns) / 1000000);
  assert_int_equal(r.outcome, ADAPTER_CANCELLED);
  assert_non_null(strstr(r.error, "cancelled: 'http://127.0.0.1:"));
  assert_non_null(strstr(r.error, "did not answer with 'green' (last: no "
                                  "answer); switched back to blue"));
  /* a request in flight is dropped: not the 2 s it could take */
  assert_true(took < 1500);
  calls = h_read(f, "calls");
  assert_string_equal(calls, "-t\n-s reload\n-s reload\n");
  inc = h_read(f, "live.inc");
  assert_string_equal(inc, "# cairn switch.blue-green: blue\n"
                           "server 127.0.0.1:1;\n");
  assert_string_equal(h_str(&r, "from"), "blue");
  assert_string_equal(h_str(&r, "to"), "green");
  free(calls);
  free(inc);
  h_release(&r);
}

/* nginx -t hangs; the cancel stops its group and restores the include. */
static void test_cancel_during_nginx_test(void **state)
{
  struct h_fix *f = *state;
  struct h_res r = { 0 };
  char with[2 * PATH_MAX + 512];
  char *inc, *pid;
  int64_t took;

  h_write(f, "hang", "", 0600);
  switch_with(f, with, sizeof with);
  h_cancel_when = after_300ms;
  h_grace_ms = 200;
  started_ns = uv_hrtime();
  h_run(f, &adapter_switch_blue_green, "switch", with, &r);
  took = (int64_t)((uv_hrtime() - started_ns) / 1000000);
  assert_int_equal(r.outcome, ADAPTER_CANCELLED);
  assert_string_equal(r.error, "'nginx -t' stopped (restored the previous "
                               "include)");
  assert_true(took < 1500);
  pid = h_read(f, "nginx.pid");
  assert_true(atoi(pid) > 0);
  assert_false(cairn_proc_group_alive(atoi(pid)));
  inc = h_read(f, "live.inc");
  assert_string_equal(inc, "# cairn switch.blue-green: blue\n"
                           "server 127.0.0.1:1;\n");
  free(inc);
  free(pid);
  h_release(&r);
}

static const char blue_inc[] = "# cairn switch.blue-green: blue\n"
                                "server 127.0.0.1:1;\n";
static const char green_inc[] = "# cairn switch.blue-green: green\n"
                                "server 127.0.0.1:2;\n";

/* A switch that ran, then cairn died before it was journaled: the
 * resumed run switches again (a retry too), and finds green live. Its
 * `from` is still blue, what the first attempt found, so the default
 * undo switches back to blue. A later visit of the state (a loop) is
 * told apart by its entry. */
static void test_from_is_the_first_attempts(void **state)
{
  struct h_fix *f = *state;
  struct h_res r = { 0 };
  char with[2 * PATH_MAX + 512], *inc, *calls;

  snprintf(with, sizeof with,
           "{\"to\": \"green\", \"mode\": \"nginx\", \"include\": "
           "\"%s/live.inc\", \"upstreams\": {\"blue\": \"127.0.0.1:1\", "
           "\"green\": \"127.0.0.1:2\"}, \"nginx\": \"%s/nginx\"}",
           f->dir, f->dir);
  h_entry = 41;
  h_run(f, &adapter_switch_blue_green, "switch", with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_string_equal(h_str(&r, "from"), "blue");
  h_run(f, &adapter_switch_blue_green, "switch", with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_string_equal(h_str(&r, "from"), "blue");
  assert_string_equal(h_str(&r, "to"), "green");
  assert_non_null(strstr(r.tail, "the state's first attempt found blue "
                                 "live: from stays blue"));
  inc = h_read(f, "live.inc");
  assert_string_equal(inc, green_inc);
  free(inc);

  /* and when its confirmation fails, it puts blue's include back, not
   * the green one it found */
  switch_with(f, with, sizeof with);
  h_cancel_when = after_300ms;
  started_ns = uv_hrtime();
  h_run(f, &adapter_switch_blue_green, "switch", with, &r);
  assert_int_equal(r.outcome, ADAPTER_CANCELLED);
  assert_non_null(strstr(r.error, "switched back to blue"));
  assert_string_equal(h_str(&r, "from"), "blue");
  inc = h_read(f, "live.inc");
  assert_string_equal(inc, blue_inc);
  free(inc);
  h_cancel_when = NULL;

  /* a later visit: what it finds */
  h_write(f, "live.inc", green_inc, 0644);
  h_entry = 57;
  snprintf(with, sizeof with,
           "{\"to\": \"blue\", \"mode\": \"nginx\", \"include\": "
           "\"%s/live.inc\", \"upstreams\": {\"blue\": \"127.0.0.1:1\", "
           "\"green\": \"127.0.0.1:2\"}, \"nginx\": \"%s/nginx\"}",
           f->dir, f->dir);
  h_run(f, &adapter_switch_blue_green, "switch", with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_string_equal(h_str(&r, "from"), "green");
  calls = h_read(f, "calls");
  assert_string_equal(calls, "-t\n-s reload\n-t\n-s reload\n-t\n-s reload\n"
                             "-s reload\n-t\n-s reload\n");
  free(calls);
  h_release(&r);
}

/* The same in symlink mode. */
static void test_symlink_from_is_the_first_attempts(void **state)
{
  struct h_fix *f = *state;
  struct h_res r = { 0 };
  char with[4 * PATH_MAX], link[PATH_MAX + 16], blue[PATH_MAX + 16],
      green[PATH_MAX + 16], target[PATH_MAX];
  ssize_t n;

  snprintf(link, sizeof link, "%s/live", f->dir);
  snprintf(blue, sizeof blue, "%s/blue", f->dir);
  snprintf(green, sizeof green, "%s/green", f->dir);
  assert_int_equal(mkdir(blue, 0700), 0);
  assert_int_equal(mkdir(green, 0700), 0);
  assert_int_equal(symlink(blue, link), 0);
  snprintf(with, sizeof with,
           "{\"to\": \"green\", \"link\": \"%s\", \"targets\": "
           "{\"blue\": \"%s\", \"green\": \"%s\"}}", link, blue, green);
  h_entry = 3;
  h_run(f, &adapter_switch_blue_green, "switch", with, &r);
  assert_string_equal(h_str(&r, "from"), "blue");
  h_run(f, &adapter_switch_blue_green, "switch", with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_string_equal(h_str(&r, "from"), "blue");
  assert_non_null(strstr(r.tail, "already points at green"));
  n = readlink(link, target, sizeof target - 1);
  assert_true(n > 0);
  target[n] = '\0';
  assert_string_equal(target, green);
  h_entry = 4;
  h_run(f, &adapter_switch_blue_green, "switch", with, &r);
  assert_string_equal(h_str(&r, "from"), "green");
  h_release(&r);
}

/* readlink of f->dir/name into out (n bytes); "" when it is no link. */
static const char *h_link(struct h_fix *f, const char *name, char *out,
                          size_t n)
{
  char path[PATH_MAX + 64];
  ssize_t len;

  snprintf(path, sizeof path, "%s/%s", f->dir, name);
  len = readlink(path, out, n - 1);
  out[len < 0 ? 0 : len] = '\0';
  return out;
}

static const char sl_with[] =
    "{\"to\": \"green\", \"link\": \"combo/live\", \"targets\": "
    "{\"blue\": \"combo/blue\", \"green\": \"combo/green\"}}";

/* A link to no colour's target: the first attempt keeps it (a link with
 * the same text) before it switches, a retry reports the same backup,
 * and the undo (restore_from) makes it live again as it was; a second
 * undo changes nothing. Relative targets are from the working directory
 * and written from the link's folder. */
static void test_symlink_undo_puts_back_what_was_live(void **state)
{
  struct h_fix *f = *state;
  struct h_res r = { 0 };
  char with[2 * PATH_MAX], cwd[PATH_MAX], buf[PATH_MAX], backup[PATH_MAX];

  assert_non_null(getcwd(cwd, sizeof cwd));
  assert_int_equal(chdir(f->dir), 0);
  assert_int_equal(mkdir("combo", 0700), 0);
  assert_int_equal(mkdir("combo/blue", 0700), 0);
  assert_int_equal(mkdir("combo/green", 0700), 0);
  assert_int_equal(symlink("releases/1.3", "combo/live"), 0);
  h_entry = 7;
  h_run(f, &adapter_switch_blue_green, "switch", sl_with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_string_equal(h_str(&r, "from"), "");
  assert_string_equal(h_link(f, "combo/live", buf, sizeof buf), "green");
  snprintf(backup, sizeof backup, "%s/backups/switch.7", f->dir);
  assert_string_equal(h_str(&r, "backup"), backup);
  assert_string_equal(h_link(f, "backups/switch.7", buf, sizeof buf),
                      "releases/1.3");
  /* a retry finds green live: the backup stays the first attempt's */
  h_run(f, &adapter_switch_blue_green, "switch", sl_with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_string_equal(h_str(&r, "backup"), backup);
  assert_string_equal(h_link(f, "backups/switch.7", buf, sizeof buf),
                      "releases/1.3");

  snprintf(with, sizeof with,
           "{\"to\": \"\", \"link\": \"combo/live\", \"targets\": "
           "{\"blue\": \"combo/blue\", \"green\": \"combo/green\"}, "
           "\"restore_from\": \"%s\"}", backup);
  h_entry = 9;
  h_run(f, &adapter_switch_blue_green, "undo:switch", with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_string_equal(h_str(&r, "from"), "green");
  assert_string_equal(h_str(&r, "backup"), "");
  assert_string_equal(h_link(f, "combo/live", buf, sizeof buf),
                      "releases/1.3");
  h_run(f, &adapter_switch_blue_green, "undo:switch", with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_non_null(strstr(r.tail, "already points at 'releases/1.3'"));
  assert_int_equal(chdir(cwd), 0);
  h_release(&r);
}

/* The link's text leads where the target does from the working
 * directory: the way from the link's real folder, or the absolute path
 * when a ".." after a symlink in the target makes that way wrong. */
static void test_symlink_link_text(void **state)
{
  struct h_fix *f = *state;
  struct h_res r = { 0 };
  char with[2 * PATH_MAX], cwd[PATH_MAX], buf[PATH_MAX], want[PATH_MAX * 2];

  assert_non_null(getcwd(cwd, sizeof cwd));
  assert_int_equal(chdir(f->dir), 0);
  assert_int_equal(mkdir("real", 0700), 0);
  assert_int_equal(mkdir("real/sub", 0700), 0);
  assert_int_equal(mkdir("real/green", 0700), 0);
  assert_int_equal(mkdir("green", 0700), 0);
  assert_int_equal(symlink("real/sub", "alias"), 0);
  /* the link's folder through a symlink: the way from its real folder */
  h_run(f, &adapter_switch_blue_green, "switch",
        "{\"to\": \"green\", \"link\": \"alias/live\", \"targets\": "
        "{\"green\": \"./green/\"}}", &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_string_equal(h_link(f, "real/sub/live", buf, sizeof buf),
                      "../../green");
  /* alias/.. is real/, not the working directory: the way a lexical
   * ".." gives would lead to ./green */
  snprintf(with, sizeof with,
           "{\"to\": \"green\", \"link\": \"live\", \"targets\": "
           "{\"green\": \"alias/../green\"}}");
  h_run(f, &adapter_switch_blue_green, "switch", with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  snprintf(want, sizeof want, "%s/alias/../green", f->dir);
  assert_string_equal(h_link(f, "live", buf, sizeof buf), want);
  /* an absolute target as it is; a missing one refused, nothing changed */
  snprintf(with, sizeof with,
           "{\"to\": \"blue\", \"link\": \"live\", \"targets\": "
           "{\"blue\": \"%s/green\"}}", f->dir);
  h_run(f, &adapter_switch_blue_green, "switch", with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  snprintf(want, sizeof want, "%s/green", f->dir);
  assert_string_equal(h_link(f, "live", buf, sizeof buf), want);
  h_run(f, &adapter_switch_blue_green, "switch",
        "{\"to\": \"green\", \"link\": \"live\", \"targets\": "
        "{\"green\": \"/nonexistent/green\"}}", &r);
  assert_int_equal(r.outcome, ADAPTER_FAILED);
  assert_string_equal(r.error, "target '/nonexistent/green' of colour "
                               "'green' (input 'targets') does not exist; "
                               "create it or correct the path");
  assert_string_equal(h_link(f, "live", buf, sizeof buf), want);
  assert_int_equal(chdir(cwd), 0);
  h_release(&r);
}

/* An include cairn never wrote (no marker line): its colour is the one
 * whose upstream all its live servers name; the undo writes it back byte
 * for byte, and without a colour to expect does not confirm. */
static void test_nginx_include_by_hand(void **state)
{
  struct h_fix *f = *state;
  struct h_res r = { 0 };
  char with[3 * PATH_MAX + 512], backup[PATH_MAX];
  static const char hand[] = "# mine\nserver 127.0.0.1:1 weight=2;\n"
                             "server 127.0.0.1:2 backup;\n";
  char *inc, *calls;

  h_write(f, "live.inc", hand, 0644);
  h_entry = 11;
  snprintf(with, sizeof with,
           "{\"to\": \"green\", \"mode\": \"nginx\", \"include\": "
           "\"%s/live.inc\", \"upstreams\": {\"blue\": \"127.0.0.1:1\", "
           "\"green\": \"127.0.0.1:2\"}, \"nginx\": \"%s/nginx\"}",
           f->dir, f->dir);
  h_run(f, &adapter_switch_blue_green, "switch", with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_string_equal(h_str(&r, "from"), "blue");
  snprintf(backup, sizeof backup, "%s/backups/switch.11", f->dir);
  assert_string_equal(h_str(&r, "backup"), backup);
  inc = h_read(f, "live.inc");
  assert_string_equal(inc, green_inc);
  free(inc);
  inc = h_read(f, "backups/switch.11");
  assert_string_equal(inc, hand);
  free(inc);

  /* the default undo: to is from, restore_from the backup */
  snprintf(with, sizeof with,
           "{\"to\": \"blue\", \"mode\": \"nginx\", \"include\": "
           "\"%s/live.inc\", \"upstreams\": {\"blue\": \"127.0.0.1:1\", "
           "\"green\": \"127.0.0.1:2\"}, \"nginx\": \"%s/nginx\", "
           "\"restore_from\": \"%s\"}", f->dir, f->dir, backup);
  h_entry = 12;
  h_run(f, &adapter_switch_blue_green, "undo:switch", with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_string_equal(h_str(&r, "from"), "green");
  assert_string_equal(h_str(&r, "backup"), "");
  inc = h_read(f, "live.inc");
  assert_string_equal(inc, hand);
  free(inc);
  calls = h_read(f, "calls");
  assert_string_equal(calls, "-t\n-s reload\n-t\n-s reload\n");
  free(calls);

  /* servers of two colours, or of none: no colour; the undo to ""
   * restores all the same, and confirms nothing */
  h_write(f, "live.inc", "server 127.0.0.1:1;\nserver 127.0.0.1:2;\n",
          0644);
  h_entry = 13;
  snprintf(with, sizeof with,
           "{\"to\": \"green\", \"mode\": \"nginx\", \"include\": "
           "\"%s/live.inc\", \"upstreams\": {\"blue\": \"127.0.0.1:1\", "
           "\"green\": \"127.0.0.1:2\"}, \"nginx\": \"%s/nginx\"}",
           f->dir, f->dir);
  h_run(f, &adapter_switch_blue_green, "switch", with, &r);
  assert_string_equal(h_str(&r, "from"), "");
  h_write(f, "live.inc", "server 127.0.0.1:3; # no newline", 0644);
  h_entry = 14;
  h_run(f, &adapter_switch_blue_green, "switch", with, &r);
  assert_string_equal(h_str(&r, "from"), "");
  snprintf(backup, sizeof backup, "%s/backups/switch.14", f->dir);
  snprintf(with, sizeof with,
           "{\"to\": \"\", \"mode\": \"nginx\", \"include\": "
           "\"%s/live.inc\", \"upstreams\": {\"blue\": \"127.0.0.1:1\", "
           "\"green\": \"127.0.0.1:2\"}, \"nginx\": \"%s/nginx\", "
           "\"confirm_url\": \"http://127.0.0.1:%d/\", \"restore_from\": "
           "\"%s\"}", f->dir, f->dir, silent_port, backup);
  h_entry = 15;
  h_run(f, &adapter_switch_blue_green, "undo:switch", with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_non_null(strstr(r.tail, "not confirmed: the include of before "
                                 "the switch names no colour"));
  inc = h_read(f, "live.inc");
  assert_string_equal(inc, "server 127.0.0.1:3; # no newline");
  free(inc);
  h_release(&r);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_cancel_during_confirm, switch_setup,
                                    switch_teardown),
    cmocka_unit_test_setup_teardown(test_cancel_during_nginx_test,
                                    switch_setup, switch_teardown),
    cmocka_unit_test_setup_teardown(test_from_is_the_first_attempts,
                                    switch_setup, switch_teardown),
    cmocka_unit_test_setup_teardown(test_symlink_from_is_the_first_attempts,
                                    switch_setup, switch_teardown),
    cmocka_unit_test_setup_teardown(test_symlink_undo_puts_back_what_was_live,
                                    switch_setup, switch_teardown),
    cmocka_unit_test_setup_teardown(test_symlink_link_text, switch_setup,
                                    switch_teardown),
    cmocka_unit_test_setup_teardown(test_nginx_include_by_hand, switch_setup,
                                    switch_teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
