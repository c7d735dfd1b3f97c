/* The sql.migrate adapter on real SQLite files in a temporary folder, on a
 * real libuv loop (PostgreSQL runs in tests/cli/t0012-sql.sh). One test
 * puts a fake psql on PATH that records its argv and environment: it says
 * so, and checks only what we hand to psql. Every test ends with
 * uv_loop_close() == 0. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adapters/adapter.h"

#define WATCHDOG_MS 20000

struct fixture {
  uv_loop_t loop;
  uv_timer_t watchdog;
  char dir[PATH_MAX];
  char old_cwd[PATH_MAX];
  char log[PATH_MAX + 32];
};

struct t_call {
  struct adapter_call call;
  int done;
  int spawned;
  enum adapter_outcome outcome;
  char error[512];
  json_t *outputs;
  int cancel_after_ms;
  uv_timer_t cancel_timer;
};

/* ---- helpers ------------------------------------------------------------ */

static void on_watchdog(uv_timer_t *t)
{
  (void)t;
  fail_msg("watchdog: the migration did not finish within %d ms",
           WATCHDOG_MS);
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
  char tmpl[] = "/tmp/cairn-sql-XXXXXX";

  if (f == NULL || uv_loop_init(&f->loop) != 0)
    return -1;
  if (mkdtemp(tmpl) == NULL || realpath(tmpl, f->dir) == NULL)
    return -1;
  /* relative names, so that messages can be compared whole */
  if (getcwd(f->old_cwd, sizeof f->old_cwd) == NULL || chdir(f->dir) != 0 ||
      mkdir("migrations", 0700) != 0)
    return -1;
  snprintf(f->log, sizeof f->log, "%s/step.log", f->dir);
  uv_timer_init(&f->loop, &f->watchdog);
  uv_unref((uv_handle_t *)&f->watchdog);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fixture *f = *state;

  if (chdir(f->old_cwd) != 0)
    return -1;
  nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(f);
  return 0;
}

static void end_loop(struct fixture *f)
{
  uv_close((uv_handle_t *)&f->watchdog, NULL);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&f->loop), 0);
}

static void put(const char *name, const char *text)
{
  char path[PATH_MAX];
  FILE *fp;

  snprintf(path, sizeof path, "migrations/%s", name);
  assert_non_null(fp = fopen(path, "w"));
  fputs(text, fp);
  fclose(fp);
}

/* Three good migrations. */
static void put_three(void)
{
  put("001_init.up.sql", "CREATE TABLE accounts (id INTEGER PRIMARY KEY);\n");
  put("001_init.down.sql", "DROP TABLE accounts;\n");
  put("002_users.up.sql",
      "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n"
      "INSERT INTO users (name) VALUES ('ada');\n");
  put("002_users.down.sql", "DROP TABLE users;\n");
  put("003_orders.up.sql", "CREATE TABLE orders (id INTEGER PRIMARY KEY);\n");
  put("003_orders.down.sql", "DROP TABLE orders;\n");
}

/* A migration that never ends (an infinite recursive query). */
static void put_slow(void)
{
  put("001_init.up.sql", "CREATE TABLE accounts (id INTEGER PRIMARY KEY);\n");
  put("001_init.down.sql", "DROP TABLE accounts;\n");
  put("002_slow.up.sql",
      "CREATE TABLE slow (x);\n"
      "INSERT INTO slow WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT "
      "x + 1 FROM c) SELECT max(x) FROM c;\n");
  put("002_slow.down.sql", "DROP TABLE slow;\n");
}

static void t_on_done(struct adapter_call *call,
                      const struct adapter_result *res)
{
  struct t_call *t = call->data;

  t->done++;
  t->outcome = res->outcome;
  snprintf(t->error, sizeof t->error, "%s", res->error);
  json_decref(t->outputs);
  t->outputs = json_incref(res->outputs);
  assert_null(call->priv);
}

static void t_on_spawned(struct adapter_call *call, int pid, int pgid,
                         int64_t start)
{
  struct t_call *t = call->data;

  (void)start;
  assert_int_equal(pid, pgid);
  t->spawned++;
}

static void on_cancel_timer(uv_timer_t *timer)
{
  struct t_call *t = timer->data;

  adapter_sql_migrate.cancel(&t->call);
  uv_close((uv_handle_t *)timer, NULL);
}

/* Checks and fills `with` as the engine would and runs it to the end.
 * t->call may hold timeout_ms and redact. Steals with. */
static void migrate(struct fixture *f, struct t_call *t, json_t *with)
{
  struct cairn_error err = { 0 };
  const char *bad = NULL;
  json_t *inputs = NULL;
  struct adapter_call keep = t->call;

  assert_non_null(with);
  if (adapter_check_with(&adapter_sql_migrate, with, &bad, &err) != 0)
    fail_msg("check_with: %s", err.msg);
  if (adapter_apply_defaults(&adapter_sql_migrate, with, &inputs, &err) != 0)
    fail_msg("apply_defaults: %s", err.msg);
  json_decref(t->outputs);
  memset(t, 0, sizeof *t);
  t->call.timeout_ms = keep.timeout_ms;
  t->call.redact = keep.redact;
  t->call.run_dir = keep.run_dir; /* a note's place and visit */
  t->call.name = keep.name;
  t->call.entry = keep.entry;
  t->call.loop = &f->loop;
  t->call.desc = &adapter_sql_migrate;
  t->call.inputs = inputs;
  t->call.log_path = f->log;
  t->call.log_header = "--- action attempt 1 ---\n";
  t->call.on_done = t_on_done;
  t->call.on_spawned = t_on_spawned;
  t->call.data = t;
  t->cancel_after_ms = keep.priv ? 200 : 0;
  if (adapter_sql_migrate.start(&t->call, &err) != 0)
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

static json_t *with_db(const char *extra_json)
{
  json_t *w = json_pack("{s:s,s:s}", "dir", "migrations", "db", "app.db");
  if (extra_json) {
    json_t *x = json_loads(extra_json, 0, NULL);
    assert_non_null(x);
    json_object_update(w, x);
    json_decref(x);
  }
  return w;
}

static void assert_versions(struct t_call *t, int64_t from, int64_t to)
{
  assert_int_equal(json_integer_value(json_object_get(t->outputs,
                                                      "from_version")),
                   from);
  assert_int_equal(json_integer_value(json_object_get(t->outputs,
                                                      "to_version")),
                   to);
}

/* The applied list, as "a,b,c". */
static const char *applied(struct t_call *t)
{
  static char out[1024];
  json_t *a = json_object_get(t->outputs, "applied");
  size_t i, len = 0;
  json_t *v;

  out[0] = '\0';
  assert_true(json_is_array(a));
  json_array_foreach(a, i, v) {
    len += (size_t)snprintf(out + len, sizeof out - len, "%s%s",
                            i ? "," : "", json_string_value(v));
  }
  return out;
}

/* One text value from app.db ("" when no row, "ERR" on error). */
static const char *query(const char *sql)
{
  static char out[1024];
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;

  snprintf(out, sizeof out, "ERR");
  if (sqlite3_open("app.db", &db) == SQLITE_OK &&
      sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
      snprintf(out, sizeof out, "%s",
               (const char *)sqlite3_column_text(st, 0));
    else if (rc == SQLITE_DONE)
      out[0] = '\0';
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

static const char *tables(void)
{
  return query("SELECT group_concat(name, ',') FROM (SELECT name FROM "
               "sqlite_master WHERE type = 'table' ORDER BY name)");
}

static const char *history(void)
{
  return query("SELECT group_concat(version || ':' || name, ',') FROM "
               "(SELECT * FROM cairn_migrations ORDER BY version)");
}

/* ---- tests -------------------------------------------------------------- */

static void test_up_from_empty_then_noop(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };

  put_three();
  migrate(f, &t, with_db(NULL));
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  assert_versions(&t, 0, 3);
  assert_string_equal(applied(&t),
                      "001_init.up.sql,002_users.up.sql,003_orders.up.sql");
  assert_string_equal(tables(), "accounts,cairn_migrations,orders,users");
  assert_string_equal(history(), "1:001_init,2:002_users,3:003_orders");
  /* the checksum is SHA-256 of the up file, as sha256sum prints it */
  assert_string_equal(query("SELECT checksum FROM cairn_migrations WHERE "
                            "version = 3"),
                      "9e531187827caebc897099d210909070e16bf5cb83d515e9cafc"
                      "0a811e9ac9c0");
  assert_string_equal(query("SELECT name FROM users"), "ada");

  /* again: nothing to do */
  migrate(f, &t, with_db(NULL));
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  assert_versions(&t, 3, 3);
  assert_string_equal(applied(&t), "");
  assert_string_equal(query("SELECT count(*) FROM users"), "1");
  json_decref(t.outputs);
  end_loop(f);
}

static void test_down_with_to(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };

  put_three();
  migrate(f, &t, json_pack("{s:s,s:s}", "dir", "migrations/", "db",
                           "sqlite:app.db"));
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  migrate(f, &t, with_db("{\"to\": 1}"));
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  assert_versions(&t, 3, 1);
  assert_string_equal(applied(&t), "003_orders.down.sql,002_users.down.sql");
  assert_string_equal(tables(), "accounts,cairn_migrations");
  assert_string_equal(history(), "1:001_init");
  /* to 0 empties it; then up to 2 only */
  migrate(f, &t, with_db("{\"to\": 0}"));
  assert_versions(&t, 1, 0);
  assert_string_equal(tables(), "cairn_migrations");
  migrate(f, &t, with_db("{\"to\": 2}"));
  assert_versions(&t, 0, 2);
  assert_string_equal(history(), "1:001_init,2:002_users");
  json_decref(t.outputs);
  end_loop(f);
}

static void test_changed_checksum_refused(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };

  put_three();
  migrate(f, &t, with_db("{\"to\": 2}"));
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  put("002_users.up.sql", "CREATE TABLE users (id INTEGER PRIMARY KEY);\n");
  migrate(f, &t, with_db(NULL));
  assert_int_equal(t.outcome, ADAPTER_FAILED);
  assert_non_null(strstr(t.error, "migrations/002_users.up.sql changed since "
                                  "it was applied (checksum "));
  assert_non_null(strstr(t.error, "); restore it or write a new migration"));
  /* nothing ran: 003 was not applied */
  assert_versions(&t, 2, 2);
  assert_string_equal(history(), "1:001_init,2:002_users");
  json_decref(t.outputs);
  end_loop(f);
}

/* A failed file rolls back alone; what the call applied before it is
 * migrated back down before it fails: a failed state is not in the
 * rollback plan, so nothing else would. */
static void test_failing_migration_reverts_the_attempt(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };

  put_three();
  /* its first statement works: the rollback must undo it */
  put("003_orders.up.sql", "CREATE TABLE orders (id INTEGER PRIMARY KEY);\n"
                           "INSERT INTO nope VALUES (1);\n");
  migrate(f, &t, with_db(NULL));
  assert_int_equal(t.outcome, ADAPTER_FAILED);
  assert_string_equal(t.error,
                      "migrations/003_orders.up.sql failed: no such table: "
                      "nope; migrated back to version 0");
  assert_versions(&t, 0, 0);
  assert_string_equal(applied(&t), "001_init.up.sql,002_users.up.sql,"
                                   "002_users.down.sql,001_init.down.sql");
  assert_string_equal(tables(), "cairn_migrations");
  assert_string_equal(query("SELECT count(*) FROM cairn_migrations"), "0");

  /* from a version of its own: back to that one, not below */
  migrate(f, &t, with_db("{\"to\": 1}"));
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  migrate(f, &t, with_db(NULL));
  assert_int_equal(t.outcome, ADAPTER_FAILED);
  assert_versions(&t, 1, 1);
  assert_string_equal(applied(&t), "002_users.up.sql,002_users.down.sql");
  assert_string_equal(history(), "1:001_init");

  /* the first file fails: nothing to revert, nothing said of it */
  put("002_users.up.sql", "INSERT INTO nope VALUES (1);\n");
  migrate(f, &t, with_db(NULL));
  assert_string_equal(t.error,
                      "migrations/002_users.up.sql failed: no such table: "
                      "nope");
  assert_versions(&t, 1, 1);
  assert_string_equal(applied(&t), "");
  json_decref(t.outputs);
  end_loop(f);
}

/* A revert that fails too says where it left the database. */
static void test_failing_revert_says_where(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };

  put_three();
  put("001_init.down.sql", "DROP TABLE accounts; DROP TABLE nope;\n");
  put("003_orders.up.sql", "INSERT INTO nope VALUES (1);\n");
  migrate(f, &t, with_db(NULL));
  assert_int_equal(t.outcome, ADAPTER_FAILED);
  assert_string_equal(t.error,
                      "migrations/003_orders.up.sql failed: no such table: "
                      "nope; migrating back to version 0 failed: "
                      "migrations/001_init.down.sql failed: no such table: "
                      "nope (the database is at version 1)");
  assert_versions(&t, 0, 1);
  assert_string_equal(applied(&t), "001_init.up.sql,002_users.up.sql,"
                                   "002_users.down.sql");
  assert_string_equal(history(), "1:001_init");
  json_decref(t.outputs);
  end_loop(f);
}

/* Every attempt of one visit of a state reports the version before the
 * first: a retry, or the re-run of a resumed run, finds what an earlier
 * attempt applied (here one cancelled half-way, as a kill -9 of cairn
 * leaves it), and the default undo goes back to from_version. */
static void test_from_version_is_the_first_attempts(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };
  char note[PATH_MAX + 64];
  struct stat st;

  put_slow();
  t.call.run_dir = f->dir;
  t.call.name = "db.migrate";
  t.call.entry = 7;
  t.call.priv = (void *)1; /* migrate(): cancel after 200 ms, in 002 */
  migrate(f, &t, with_db(NULL));
  assert_int_equal(t.outcome, ADAPTER_CANCELLED);
  assert_versions(&t, 0, 1);
  snprintf(note, sizeof note, "%s/notes/db.migrate.json", f->dir);
  assert_int_equal(stat(note, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);

  /* the next attempt: 002 passes now, 003 fails: back to 0, past what
   * the first attempt applied */
  put("002_slow.up.sql", "CREATE TABLE slow (x);\n");
  put("003_orders.up.sql", "INSERT INTO nope VALUES (1);\n");
  put("003_orders.down.sql", "DROP TABLE orders;\n");
  migrate(f, &t, with_db(NULL));
  assert_int_equal(t.outcome, ADAPTER_FAILED);
  assert_string_equal(t.error,
                      "migrations/003_orders.up.sql failed: no such table: "
                      "nope; migrated back to version 0");
  assert_versions(&t, 0, 0);
  assert_string_equal(applied(&t), "002_slow.up.sql,002_slow.down.sql,"
                                   "001_init.down.sql");
  assert_string_equal(query("SELECT count(*) FROM cairn_migrations"), "0");

  /* stopped in 002 once more, then it passes: still from 0 */
  put_slow();
  t.call.priv = (void *)1;
  migrate(f, &t, with_db(NULL));
  assert_int_equal(t.outcome, ADAPTER_CANCELLED);
  assert_versions(&t, 0, 1);
  t.call.priv = NULL;
  put("002_slow.up.sql", "CREATE TABLE slow (x);\n");
  put("003_orders.up.sql", "CREATE TABLE orders (id INTEGER PRIMARY KEY);\n");
  migrate(f, &t, with_db(NULL));
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  assert_versions(&t, 0, 3);
  assert_string_equal(applied(&t), "002_slow.up.sql,003_orders.up.sql");

  /* a later visit of the state (a loop) has a from_version of its own */
  t.call.entry = 9;
  migrate(f, &t, with_db("{\"to\": 2}"));
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  assert_versions(&t, 3, 2);
  json_decref(t.outputs);
  end_loop(f);
}

static void test_failing_down_keeps_version(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };

  put_three();
  put("002_users.down.sql", "DROP TABLE users; DROP TABLE nope;\n");
  migrate(f, &t, with_db(NULL));
  migrate(f, &t, with_db("{\"to\": 0}"));
  assert_int_equal(t.outcome, ADAPTER_FAILED);
  assert_string_equal(t.error, "migrations/002_users.down.sql failed: no "
                               "such table: nope");
  assert_versions(&t, 3, 2);
  assert_string_equal(tables(), "accounts,cairn_migrations,users");
  assert_string_equal(history(), "1:001_init,2:002_users");
  json_decref(t.outputs);
  end_loop(f);
}

/* Each bad folder fails before touching the database, naming the file. */
static void expect_folder_error(struct fixture *f, const char *want)
{
  struct t_call t = { 0 };

  migrate(f, &t, with_db(NULL));
  assert_int_equal(t.outcome, ADAPTER_FAILED);
  assert_string_equal(t.error, want);
  assert_string_equal(query("SELECT count(*) FROM sqlite_master"), "0");
  json_decref(t.outputs);
}

static void test_bad_folders(void **state)
{
  struct fixture *f = *state;

  put_three();
  put("4-more.up.sql", "SELECT 1;\n");
  expect_folder_error(f, "migrations/4-more.up.sql: malformed migration file "
                         "name (want NNN_name.up.sql or NNN_name.down.sql)");
  unlink("migrations/4-more.up.sql");
  put("004_more.sql", "SELECT 1;\n");
  expect_folder_error(f, "migrations/004_more.sql: malformed migration file "
                         "name (want NNN_name.up.sql or NNN_name.down.sql)");
  unlink("migrations/004_more.sql");
  put("004_more.up.sql", "SELECT 1;\n");
  expect_folder_error(f, "migrations/004_more.up.sql has no down file "
                         "(004_more.down.sql)");
  unlink("migrations/004_more.up.sql");
  put("004_more.down.sql", "SELECT 1;\n");
  expect_folder_error(f, "migrations/004_more.down.sql has no up file "
                         "(004_more.up.sql)");
  unlink("migrations/004_more.down.sql");
  /* versions compare as integers: 2 is 002 */
  put("2_again.up.sql", "SELECT 1;\n");
  expect_folder_error(f, "migrations/002_users.up.sql and "
                         "migrations/2_again.up.sql have the same version 2");
  unlink("migrations/2_again.up.sql");
  /* a README is not a migration */
  put("README.md", "how to write migrations\n");
  end_loop(f);
}

static void test_bad_targets(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };

  put_three();
  migrate(f, &t, with_db("{\"to\": 7}"));
  assert_int_equal(t.outcome, ADAPTER_FAILED);
  assert_string_equal(t.error, "input 'to' is 7 but 'migrations' has no "
                               "migration with that version");
  migrate(f, &t, with_db("{\"dir\": \"nowhere\"}"));
  assert_string_equal(t.error, "cannot read migrations folder 'nowhere': No "
                               "such file or directory");
  /* a file older than the database's version that never ran */
  unlink("migrations/002_users.up.sql");
  unlink("migrations/002_users.down.sql");
  migrate(f, &t, with_db(NULL));
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  put_three();
  migrate(f, &t, with_db(NULL));
  assert_int_equal(t.outcome, ADAPTER_FAILED);
  assert_string_equal(t.error, "migrations/002_users.up.sql is older than the "
                               "database's version 3 and was never applied; "
                               "give it a version above 3");
  /* an applied file that disappeared */
  unlink("migrations/002_users.up.sql");
  unlink("migrations/002_users.down.sql");
  unlink("migrations/003_orders.up.sql");
  unlink("migrations/003_orders.down.sql");
  migrate(f, &t, with_db(NULL));
  assert_string_equal(t.error, "version 3 is recorded as applied in "
                               "'cairn_migrations' but 'migrations' has no "
                               "file for it; restore its files");
  json_decref(t.outputs);
  end_loop(f);
}

static void test_custom_table(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };

  put_three();
  migrate(f, &t, with_db("{\"table\": \"schema_history\", \"to\": 1}"));
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  assert_string_equal(tables(), "accounts,schema_history");
  json_decref(t.outputs);
  end_loop(f);
}

static void test_check_rejects_bad_with(void **state)
{
  struct cairn_error err = { 0 };
  const char *bad = NULL;
  json_t *w;

  (void)state;
  w = json_pack("{s:s,s:s,s:s}", "dir", "m", "db", "app.db", "table",
                "x; DROP TABLE y");
  assert_int_equal(adapter_check_with(&adapter_sql_migrate, w, &bad, &err),
                   CAIRN_E_INVAL);
  assert_string_equal(err.msg, "bad history table name 'x; DROP TABLE y' in "
                               "input 'table' (want lowercase letters, "
                               "digits and '_')");
  json_decref(w);
  w = json_pack("{s:s,s:s}", "dir", "m", "db", "mysql://h/db");
  assert_int_equal(adapter_check_with(&adapter_sql_migrate, w, &bad, &err),
                   CAIRN_E_INVAL);
  assert_string_equal(err.msg, "unsupported database URL 'mysql...' in input "
                               "'db' (use a SQLite file, sqlite:PATH or "
                               "postgres://)");
  json_decref(w);
  w = json_pack("{s:s}", "dir", "m");
  assert_int_equal(adapter_check_with(&adapter_sql_migrate, w, &bad, &err),
                   CAIRN_E_INVAL);
  assert_non_null(strstr(err.msg, "db"));
  json_decref(w);
  /* templates pass, to be checked once rendered */
  w = json_pack("{s:s,s:s,s:s}", "dir", "m", "db", "{{ vars.db }}", "to",
                "{{ self.output.from_version }}");
  assert_int_equal(adapter_check_with(&adapter_sql_migrate, w, &bad, &err), 0);
  json_decref(w);
  assert_string_equal(adapter_sql_migrate.undo_adapter, "sql.migrate");
  assert_non_null(strstr(adapter_sql_migrate.undo_with,
                         "\"to\": \"{{ self.output.from_version }}\""));
}

static void test_timeout_interrupts(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };

  put_slow();
  t.call.timeout_ms = 300;
  migrate(f, &t, with_db(NULL));
  assert_int_equal(t.outcome, ADAPTER_TIMED_OUT);
  assert_string_equal(t.error, "timed out after 300ms (the database is at "
                               "version 1)");
  assert_versions(&t, 0, 1);
  assert_string_equal(tables(), "accounts,cairn_migrations");
  json_decref(t.outputs);
  end_loop(f);
}

static void test_cancel_interrupts(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };

  put_slow();
  t.call.priv = (void *)1; /* migrate(): cancel after 200 ms */
  migrate(f, &t, with_db(NULL));
  assert_int_equal(t.outcome, ADAPTER_CANCELLED);
  assert_versions(&t, 0, 1);
  assert_string_equal(history(), "1:001_init");
  json_decref(t.outputs);
  end_loop(f);
}

/* A FAKE psql (a script on PATH that records its argv and PGPASSWORD): it
 * proves what we hand to psql, which the real one cannot show after the
 * fact. tests/cli/t0012-sql.sh runs the real psql against a real
 * PostgreSQL. */
static void test_psql_argv_has_no_password(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };
  char path[PATH_MAX * 2], *old_path = getenv("PATH"), *saved;
  const char *const redact[] = { "s3cr%t", NULL };
  FILE *fp;
  char buf[8192];
  size_t n;

  saved = strdup(old_path ? old_path : "/usr/bin:/bin");
  assert_int_equal(mkdir("bin", 0700), 0);
  assert_non_null(fp = fopen("bin/psql", "w"));
  fprintf(fp, "#!/bin/sh\n"
              "for a in \"$@\"; do printf '[%%s]' \"$a\"; done >>%s/argv\n"
              "echo >>%s/argv\n"
              "echo \"PGPASSWORD=$PGPASSWORD\" >>%s/env\n"
              "case \"$*\" in *json_build_object*) "
              "echo '{\"rows\": []}';; esac\n"
              "echo \"notice: connected with password $PGPASSWORD\" >&2\n",
              f->dir, f->dir, f->dir);
  fclose(fp);
  chmod("bin/psql", 0700);
  snprintf(path, sizeof path, "%s/bin:%s", f->dir, saved);
  setenv("PATH", path, 1);

  put("001_init.up.sql", "CREATE TABLE a (id int);\n");
  put("001_init.down.sql", "DROP TABLE a;\n");
  t.call.redact = redact;
  migrate(f, &t,
          json_pack("{s:s,s:s}", "dir", "migrations", "db",
                    "postgres://cairn:s3cr%25t@127.0.0.1:5/app?sslmode=disable"));
  setenv("PATH", saved, 1);
  free(saved);
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  assert_versions(&t, 0, 1);
  assert_int_equal(t.spawned, 2);

  assert_non_null(fp = fopen("argv", "r"));
  n = fread(buf, 1, sizeof buf - 1, fp);
  buf[n] = '\0';
  fclose(fp);
  assert_null(strstr(buf, "s3cr"));
  assert_non_null(strstr(buf, "[-d][postgres://cairn@127.0.0.1:5/app?sslmode="
                              "disable]"));
  assert_non_null(strstr(buf, "[--no-psqlrc][-v][ON_ERROR_STOP=1]"
                              "[--single-transaction][-X][-q][-d]"));
  assert_non_null(strstr(buf, "[-f][migrations/001_init.up.sql][-c][INSERT "
                              "INTO cairn_migrations (version, name, "
                              "checksum) VALUES (1, '001_init', '"));
  assert_non_null(fp = fopen("env", "r"));
  n = fread(buf, 1, sizeof buf - 1, fp);
  buf[n] = '\0';
  fclose(fp);
  assert_string_equal(buf, "PGPASSWORD=s3cr%t\nPGPASSWORD=s3cr%t\n");
  /* the log has psql's output, redacted */
  assert_non_null(fp = fopen(f->log, "r"));
  n = fread(buf, 1, sizeof buf - 1, fp);
  buf[n] = '\0';
  fclose(fp);
  assert_null(strstr(buf, "s3cr"));
  assert_non_null(strstr(buf, "connected with password ***"));
  assert_non_null(strstr(buf, "sql.migrate: applying "
                              "migrations/001_init.up.sql\n"));
  json_decref(t.outputs);
  end_loop(f);
}

/* A FAKE psql again, for connect_within: it fails, the way the real one
 * does, while the file "refusals" still holds a count above 0 (exit 2 and
 * psql's message: ERR), then reads an empty history and applies. */
static void fake_psql_refusing(struct fixture *f, const char *err_line,
                               int refusals)
{
  FILE *fp;

  mkdir("bin", 0700);
  assert_non_null(fp = fopen("bin/psql", "w"));
  fprintf(fp, "#!/bin/sh\n"
              "echo x >>%s/tries\n"
              "n=$(cat %s/refusals)\n"
              "if [ \"$n\" -gt 0 ]; then\n"
              "  echo $((n - 1)) >%s/refusals\n"
              "  echo '%s' >&2\n"
              "  exit 2\n"
              "fi\n"
              "case \"$*\" in *json_build_object*) "
              "echo '{\"rows\": []}';; esac\n",
              f->dir, f->dir, f->dir, err_line);
  fclose(fp);
  chmod("bin/psql", 0700);
  assert_non_null(fp = fopen("refusals", "w"));
  fprintf(fp, "%d\n", refusals);
  fclose(fp);
  unlink("tries");
}

/* How many times the fake psql ran. */
static int psql_tries(void)
{
  FILE *fp = fopen("tries", "r");
  int n = 0, c;

  if (fp == NULL)
    return 0;
  while ((c = fgetc(fp)) != EOF)
    n += c == '\n';
  fclose(fp);
  return n;
}

static void test_connect_within(void **state)
{
  struct fixture *f = *state;
  struct t_call t = { 0 };
  char path[PATH_MAX * 2], *old_path = getenv("PATH"), *saved;
  const char *refused = "psql: error: connection to server at "
                        "\"127.0.0.1\", port 5 failed: Connection refused\n"
                        "\tIs the server running on that host and "
                        "accepting TCP/IP connections?";
  const char *starting = "psql: error: connection to server at "
                         "\"127.0.0.1\", port 5 failed: FATAL:  the database "
                         "system is starting up";
  const char *password = "psql: error: connection to server at "
                         "\"127.0.0.1\", port 5 failed: FATAL:  password "
                         "authentication failed for user \"cairn\"";
  const char *url = "postgres://cairn@127.0.0.1:5/app?sslmode=disable";
  uint64_t t0;

  saved = strdup(old_path ? old_path : "/usr/bin:/bin");
  snprintf(path, sizeof path, "%s/bin:%s", f->dir, saved);
  setenv("PATH", path, 1);
  put("001_init.up.sql", "CREATE TABLE a (id int);\n");
  put("001_init.down.sql", "DROP TABLE a;\n");

  /* refused twice, then starting up once: tried again, every 500 ms */
  fake_psql_refusing(f, refused, 2);
  t0 = uv_hrtime();
  migrate(f, &t, json_pack("{s:s,s:s,s:s}", "dir", "migrations", "db", url,
                           "connect_within", "10s"));
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  assert_int_equal(psql_tries(), 4); /* 2 refused, the history, 001 */
  assert_true(uv_hrtime() - t0 >= 1000 * 1000000ULL);
  fake_psql_refusing(f, starting, 1);
  migrate(f, &t, json_pack("{s:s,s:s,s:s}", "dir", "migrations", "db", url,
                           "connect_within", "10s"));
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  assert_int_equal(psql_tries(), 3);

  /* by default, and for what waiting cannot cure, one try */
  fake_psql_refusing(f, refused, 1);
  migrate(f, &t, json_pack("{s:s,s:s}", "dir", "migrations", "db", url));
  assert_int_equal(t.outcome, ADAPTER_FAILED);
  assert_int_equal(psql_tries(), 1);
  fake_psql_refusing(f, password, 1);
  migrate(f, &t, json_pack("{s:s,s:s,s:s}", "dir", "migrations", "db", url,
                           "connect_within", "10s"));
  assert_int_equal(t.outcome, ADAPTER_FAILED);
  assert_int_equal(psql_tries(), 1);
  assert_string_equal(t.error, "cannot read the history table "
                               "'cairn_migrations' in 'postgres://cairn@127."
                               "0.0.1:5/app?sslmode=disable': FATAL:  "
                               "password authentication failed for user "
                               "\"cairn\"");

  /* connect_within runs out: the error says how long it tried */
  fake_psql_refusing(f, refused, 100);
  migrate(f, &t, json_pack("{s:s,s:s,s:s}", "dir", "migrations", "db", url,
                           "connect_within", "2s"));
  assert_int_equal(t.outcome, ADAPTER_FAILED);
  assert_true(psql_tries() >= 2 && psql_tries() <= 5);
  assert_non_null(strstr(t.error, "cannot read the history table "
                                  "'cairn_migrations' in 'postgres://cairn@"
                                  "127.0.0.1:5/app?sslmode=disable': "
                                  "connection to server at \"127.0.0.1\", "
                                  "port 5 failed: Connection refused (tried "));

  /* the state's timeout ends the wait at once */
  fake_psql_refusing(f, refused, 100);
  t.call.timeout_ms = 300;
  t0 = uv_hrtime();
  migrate(f, &t, json_pack("{s:s,s:s,s:s}", "dir", "migrations", "db", url,
                           "connect_within", "10s"));
  assert_int_equal(t.outcome, ADAPTER_TIMED_OUT);
  assert_string_equal(t.error, "timed out after 300ms (before the "
                               "database's version was read)");
  assert_true(uv_hrtime() - t0 < 2000 * 1000000ULL);

  setenv("PATH", saved, 1);
  free(saved);
  json_decref(t.outputs);
  end_loop(f);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_up_from_empty_then_noop, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_down_with_to, setup, teardown),
    cmocka_unit_test_setup_teardown(test_changed_checksum_refused, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(
        test_failing_migration_reverts_the_attempt, setup, teardown),
    cmocka_unit_test_setup_teardown(test_failing_revert_says_where, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_from_version_is_the_first_attempts,
                                    setup, teardown),
    cmocka_unit_test_setup_teardown(test_failing_down_keeps_version, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_bad_folders, setup, teardown),
    cmocka_unit_test_setup_teardown(test_bad_targets, setup, teardown),
    cmocka_unit_test_setup_teardown(test_custom_table, setup, teardown),
    cmocka_unit_test(test_check_rejects_bad_with),
    cmocka_unit_test_setup_teardown(test_timeout_interrupts, setup, teardown),
    cmocka_unit_test_setup_teardown(test_cancel_interrupts, setup, teardown),
    cmocka_unit_test_setup_teardown(test_psql_argv_has_no_password, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_connect_within, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
