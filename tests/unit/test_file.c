/* file.write and file.remove on a real loop with real files: atomic
 * write with its mode, the backup and the undo restoring byte for byte or
 * removing a new file, owner, group and mode (0000 too) kept and restored
 * (as far as the writer may), idempotency, file.remove of a missing file;
 * and
 * cairn_mkdirs, which the journal, secrets and process.start rely on. */
#include "adapter_harness.h"
#include "common/file.h"

#include <grp.h>
#include <sys/wait.h>

static void put_file(const char *path, const char *data, size_t n,
                     mode_t mode)
{
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(data, 1, n, fp), n);
  fclose(fp);
  chmod(path, mode);
}

static size_t get_file(const char *path, char *buf, size_t max)
{
  FILE *fp = fopen(path, "rb");
  size_t n;
  assert_non_null(fp);
  n = fread(buf, 1, max, fp);
  fclose(fp);
  return n;
}

static void test_write_and_undo(void **state)
{
  struct h_fix *f = *state;
  struct h_res r = { 0 };
  static const char old[] = "old\0binary\xff\nno newline";
  char path[PATH_MAX + 16], with[PATH_MAX * 2 + 64], buf[128];
  struct stat st;
  char *backup;

  snprintf(path, sizeof path, "%s/app.conf", f->dir);
  put_file(path, old, sizeof old - 1, 0640);
  snprintf(with, sizeof with,
           "{\"path\": \"%s\", \"content\": \"port=1\\n\", \"mode\": "
           "\"0600\"}",
           path);
  h_run(f, &adapter_file_write, "cfg", with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_int_equal(get_file(path, buf, sizeof buf), 7);
  assert_memory_equal(buf, "port=1\n", 7);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
  assert_true(json_is_true(json_object_get(r.outputs, "previous")));
  /* sha256 of "port=1\n" */
  assert_int_equal(strlen(h_str(&r, "sha256")), 64);
  backup = strdup(h_str(&r, "backup"));

  /* a retry keeps the first backup (the file now holds our content) */
  h_run(f, &adapter_file_write, "cfg", with, &r);
  assert_string_equal(h_str(&r, "backup"), backup);
  assert_int_equal(get_file(backup, buf, sizeof buf), sizeof old - 1);
  assert_memory_equal(buf, old, sizeof old - 1);

  /* the default undo's inputs */
  snprintf(with, sizeof with, "{\"path\": \"%s\", \"restore_from\": \"%s\"}",
           path, backup);
  h_run(f, &adapter_file_write, "undo", with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_int_equal(get_file(path, buf, sizeof buf), sizeof old - 1);
  assert_memory_equal(buf, old, sizeof old - 1);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0640);
  free(backup);
  h_release(&r);
}

/* A file replaced stays whose it was, and its undo gives it back with
 * its owner, group and mode, 0000 included. Giving files away takes
 * root. */
static void test_owner_and_mode_kept(void **state)
{
  struct h_fix *f = *state;
  struct h_res r = { 0 };
  char path[PATH_MAX + 16], with[PATH_MAX * 2 + 64], buf[64];
  struct stat st;
  char *backup;

  if (geteuid() != 0)
    skip();
  snprintf(path, sizeof path, "%s/own.conf", f->dir);
  put_file(path, "old\n", 4, 0);
  assert_int_equal(chown(path, 1234, 2345), 0);
  assert_int_equal(chmod(path, 0), 0);
  snprintf(with, sizeof with,
           "{\"path\": \"%s\", \"content\": \"new\\n\", \"mode\": \"6750\"}",
           path);
  h_run(f, &adapter_file_write, "own", with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_uid, 1234);
  assert_int_equal(st.st_gid, 2345);
  /* set before the owner, the set-id bits would be gone */
  assert_int_equal(st.st_mode & 07777, 06750);
  backup = strdup(h_str(&r, "backup"));

  /* the undo, over a file of another owner and mode by now */
  assert_int_equal(chown(path, 0, 0), 0);
  assert_int_equal(chmod(path, 0644), 0);
  snprintf(with, sizeof with, "{\"path\": \"%s\", \"restore_from\": \"%s\"}",
           path, backup);
  h_run(f, &adapter_file_write, "undo", with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_int_equal(get_file(path, buf, sizeof buf), 4);
  assert_memory_equal(buf, "old\n", 4);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_uid, 1234);
  assert_int_equal(st.st_gid, 2345);
  assert_int_equal(st.st_mode & 07777, 0);
  free(backup);
  h_release(&r);
}

/* Without privilege a file cannot be given away: the write still happens,
 * the file is the writer's, the group is kept when the writer may set it,
 * and *owned says so. Run in a child that is nobody when the test is
 * root. */
static void test_owner_unprivileged(void **state)
{
  struct h_fix *f = *state;
  char path[PATH_MAX + 16];
  pid_t pid;
  int status;

  if (geteuid() != 0)
    skip();
  snprintf(path, sizeof path, "%s/theirs.conf", f->dir);
  put_file(path, "old\n", 4, 0644);
  assert_int_equal(chmod(f->dir, 0777), 0);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    struct cairn_error err = { 0 };
    struct stat st;
    int owned = 1;

    if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
      _exit(2);
    /* root's file: neither owner nor group may be kept */
    if (cairn_write_atomic_owned(path, "new\n", 4, 0640, 0, 0, &owned,
                                 &err) != 0)
      _exit(3);
    if (owned != 0 || stat(path, &st) != 0 || st.st_uid != 65534 ||
        st.st_gid != 65534 || (st.st_mode & 07777) != 0640)
      _exit(4);
    /* its own group: kept, the owner is still the writer */
    owned = 1;
    if (cairn_write_atomic_owned(path, "new\n", 4, 0640, 0, 65534, &owned,
                                 &err) != 0 || owned != 0 ||
        stat(path, &st) != 0 || st.st_gid != 65534)
      _exit(5);
    /* all its own: as asked */
    if (cairn_write_atomic_owned(path, "new\n", 4, 0640, 65534, 65534,
                                 &owned, &err) != 0 || owned != 1)
      _exit(6);
    _exit(0);
  }
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  assert_int_equal(chmod(f->dir, 0700), 0);
}

static void test_new_file_undo_removes(void **state)
{
  struct h_fix *f = *state;
  struct h_res r = { 0 };
  char path[PATH_MAX + 16], with[PATH_MAX + 96];

  snprintf(path, sizeof path, "%s/new.txt", f->dir);
  snprintf(with, sizeof with, "{\"path\": \"%s\", \"content\": \"x\"}", path);
  h_run(f, &adapter_file_write, "new", with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_false(json_is_true(json_object_get(r.outputs, "previous")));
  assert_string_equal(h_str(&r, "backup"), "");
  assert_string_equal(h_str(&r, "sha256"),
                      "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881");
  snprintf(with, sizeof with, "{\"path\": \"%s\", \"restore_from\": \"\"}",
           path);
  h_run(f, &adapter_file_write, "undo", with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_int_equal(access(path, F_OK), -1);

  snprintf(with, sizeof with, "{\"path\": \"%s\"}", path);
  h_run(f, &adapter_file_remove, "rm", with, &r);
  assert_int_equal(r.outcome, ADAPTER_SUCCEEDED);
  assert_false(json_is_true(json_object_get(r.outputs, "removed")));
  h_release(&r);
}

static void test_errors(void **state)
{
  struct h_fix *f = *state;
  struct h_res r = { 0 };
  struct cairn_error err = { 0 };
  char with[PATH_MAX + 96];
  json_t *w = json_loads("{\"path\": \"x\", \"content\": \"y\", \"mode\": "
                         "\"999\"}", 0, NULL);
  const char *bad = NULL;

  assert_int_equal(adapter_check_with(&adapter_file_write, w, &bad, &err),
                   CAIRN_E_INVAL);
  assert_string_equal(err.msg, "bad mode '999' for input 'mode': an octal "
                               "string such as \"0644\" is expected");
  json_decref(w);

  snprintf(with, sizeof with, "{\"path\": \"%s\"}", f->dir);
  h_run(f, &adapter_file_remove, "rm", with, &r);
  assert_int_equal(r.outcome, ADAPTER_FAILED);
  assert_non_null(strstr(r.error, "is a directory"));

  snprintf(with, sizeof with, "{\"path\": \"%s/no/such/dir/f\", \"content\": "
           "\"y\"}", f->dir);
  h_run(f, &adapter_file_write, "w", with, &r);
  assert_int_equal(r.outcome, ADAPTER_FAILED);
  assert_non_null(strstr(r.error, "cannot write '"));
  h_release(&r);
}

/* A job's error is redacted like its log: a secret in a path never
 * reaches res.error (journaled). */
static void test_error_redacted(void **state)
{
  static const char *const redact[] = { "s3cr3t-token", NULL };
  struct h_fix *f = *state;
  struct h_res r = { 0 };
  char with[PATH_MAX + 96];

  snprintf(with, sizeof with, "{\"path\": \"%s/s3cr3t-token/f\", "
           "\"content\": \"y\"}", f->dir);
  h_redact = redact;
  h_run(f, &adapter_file_write, "w", with, &r);
  h_redact = NULL;
  assert_int_equal(r.outcome, ADAPTER_FAILED);
  assert_non_null(strstr(r.error, "/***/f"));
  assert_null(strstr(r.error, "s3cr3t"));
  h_release(&r);
}

/* mkdir -p: every missing folder 0700 whatever the umask, existing ones
 * left alone, a trailing slash, and a file in the way named in the error. */
static mode_t saved_umask;

/* test_mkdirs changes the umask: put it back even when an assert fails */
static int mkdirs_setup(void **state)
{
  saved_umask = umask(0222); /* would make 0500 without the chmod */
  return h_setup(state);
}

static int mkdirs_teardown(void **state)
{
  umask(saved_umask);
  return h_teardown(state);
}

static void test_mkdirs(void **state)
{
  struct h_fix *f = *state;
  struct cairn_error err = { 0 };
  char p[PATH_MAX + 64], q[PATH_MAX + 64];
  struct stat st;

  snprintf(p, sizeof p, "%s/keep", f->dir);
  assert_int_equal(mkdir(p, 0755), 0);
  assert_int_equal(chmod(p, 0755), 0);
  snprintf(p, sizeof p, "%s/keep/a/b/c", f->dir);
  assert_int_equal(cairn_mkdirs(p, &err), 0);
  assert_int_equal(stat(p, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0700);
  snprintf(p, sizeof p, "%s/keep/a", f->dir);
  assert_int_equal(stat(p, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0700);
  snprintf(p, sizeof p, "%s/keep", f->dir);
  assert_int_equal(stat(p, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0755);

  snprintf(p, sizeof p, "%s/keep/a/b/c", f->dir);
  assert_int_equal(cairn_mkdirs(p, &err), 0);
  snprintf(p, sizeof p, "%s/keep/a/d/", f->dir);
  assert_int_equal(cairn_mkdirs(p, &err), 0);
  snprintf(p, sizeof p, "%s/keep/a/d", f->dir);
  assert_int_equal(stat(p, &st), 0);
  assert_true(S_ISDIR(st.st_mode));

  snprintf(p, sizeof p, "%s/plain", f->dir);
  put_file(p, "x", 1, 0600);
  snprintf(p, sizeof p, "%s/plain/e/f", f->dir);
  assert_int_equal(cairn_mkdirs(p, &err), CAIRN_E_IO);
  snprintf(p, sizeof p, "cannot create folder '%s/plain/e/f': Not a directory",
           f->dir);
  assert_string_equal(err.msg, p);

  /* the folder itself a file: refused, not taken for a folder */
  snprintf(p, sizeof p, "%s/plain", f->dir);
  assert_int_equal(cairn_mkdirs(p, &err), CAIRN_E_IO);
  snprintf(q, sizeof q, "cannot create folder '%s': a file of that name is "
           "in the way", p);
  assert_string_equal(err.msg, q);
  /* a link to a folder is a folder, as for mkdir -p; a dangling one not */
  snprintf(p, sizeof p, "%s/keep/a", f->dir);
  snprintf(q, sizeof q, "%s/to-a", f->dir);
  assert_int_equal(symlink(p, q), 0);
  assert_int_equal(cairn_mkdirs(q, &err), 0);
  snprintf(p, sizeof p, "%s/nowhere", f->dir);
  snprintf(q, sizeof q, "%s/dangling", f->dir);
  assert_int_equal(symlink(p, q), 0);
  assert_int_equal(cairn_mkdirs(q, &err), CAIRN_E_IO);

  snprintf(p, sizeof p, "%s/keep/a/b/c/run.pid", f->dir);
  assert_int_equal(cairn_mkdir_parent(p, &err), 0);
}

/* A umask without the owner's read bit (0477) makes mkdir's folder 0300,
 * which cannot be opened to read: cairn_mkdirs must still leave 0700 at
 * every level it makes. Root reads anything, so the work runs in a child
 * that is unprivileged (nobody, when the test runs as root). */
static void test_mkdirs_unreadable_umask(void **state)
{
  struct h_fix *f = *state;
  char base[PATH_MAX + 64];
  pid_t pid;
  int status;

  snprintf(base, sizeof base, "%s/u", f->dir);
  assert_int_equal(mkdir(base, 0700), 0);
  if (geteuid() == 0) {
    assert_int_equal(chmod(f->dir, 0711), 0); /* nobody passes through */
    assert_int_equal(chown(base, 65534, 65534), 0);
  }
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    struct cairn_error err = { 0 };
    char p[PATH_MAX + 64];
    struct stat st;
    int bad = 0;

    if (geteuid() == 0 &&
        (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0))
      _exit(2);
    umask(0477);
    snprintf(p, sizeof p, "%s/a/b", base);
    if (cairn_mkdirs(p, &err) != 0) {
      fprintf(stderr, "cairn_mkdirs: %s\n", err.msg);
      bad = 3;
    } else if (stat(p, &st) != 0 || (st.st_mode & 07777) != 0700) {
      bad = 4;
    } else {
      snprintf(p, sizeof p, "%s/a", base);
      if (stat(p, &st) != 0 || (st.st_mode & 07777) != 0700)
        bad = 5;
    }
    /* what a failure left at 0300 must not stop the teardown */
    snprintf(p, sizeof p, "%s/a", base);
    chmod(p, 0700);
    _exit(bad);
  }
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_write_and_undo, h_setup, h_teardown),
    cmocka_unit_test_setup_teardown(test_owner_and_mode_kept, h_setup,
                                    h_teardown),
    cmocka_unit_test_setup_teardown(test_owner_unprivileged, h_setup,
                                    h_teardown),
    cmocka_unit_test_setup_teardown(test_new_file_undo_removes, h_setup,
                                    h_teardown),
    cmocka_unit_test_setup_teardown(test_errors, h_setup, h_teardown),
    cmocka_unit_test_setup_teardown(test_error_redacted, h_setup, h_teardown),
    cmocka_unit_test_setup_teardown(test_mkdirs, mkdirs_setup,
                                    mkdirs_teardown),
    cmocka_unit_test_setup_teardown(test_mkdirs_unreadable_umask, h_setup,
                                    h_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
