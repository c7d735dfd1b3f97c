/* Unit tests of the journal (journal/) and of common/proc.c, on real
 * SQLite files in a mkdtemp folder that each test removes again.
 * Tampering goes through a raw sqlite3 connection, as an attacker would. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

#include "canonical_cases.h"
#include "common/proc.h"
#include "journal/events.h"
#include "journal/internal.h"
#include "journal/journal.h"

#define RUN_A "01HZXTESTRUN00000000000001"
#define RUN_B "01HZXTESTRUN00000000000002"
#define RUN_C "01HZXTESTRUN00000000000003"
#define ZEROS "0000000000000000000000000000000000000000000000000000000000000000"

struct fx {
  char dir[256];
  char path[512]; /* dir/.cairn/journal.db, not created */
};

/* ---- helpers ---- */

static int setup_dir(void **state)
{
  struct fx *fx = calloc(1, sizeof *fx);

  assert_non_null(fx);
  snprintf(fx->dir, sizeof fx->dir, "/tmp/cairn-test-journal-XXXXXX");
  assert_non_null(mkdtemp(fx->dir));
  snprintf(fx->path, sizeof fx->path, "%s/.cairn/journal.db", fx->dir);
  *state = fx;
  return 0;
}

static int rm_one(const char *p, const struct stat *sb, int flag,
                  struct FTW *ftw)
{
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(p);
}

/* Children that wait for their end block on reading the lifeline, whose
 * write end only this process holds: if a failed assertion skips their
 * kill, they still exit with the test program. Teardown kills and reaps
 * the tracked children that are still ours and running. */
static int lifeline[2] = {-1, -1};
static pid_t kids_alive[32];
static int nkids;

static pid_t track(pid_t pid)
{
  if (pid > 0 && nkids < 32)
    kids_alive[nkids++] = pid;
  return pid;
}

/* In a child: wait until killed or the test program has gone. */
static void child_wait(void)
{
  char c;

  close(lifeline[1]);
  while (read(lifeline[0], &c, 1) < 0 && errno == EINTR)
    ;
  _exit(0);
}

static void reap_kids(void)
{
  for (int i = 0; i < nkids; i++) {
    int status;

    /* 0: our child, still running (never a reused pid). */
    if (waitpid(kids_alive[i], &status, WNOHANG) == 0) {
      kill(kids_alive[i], SIGKILL);
      waitpid(kids_alive[i], &status, 0);
    }
  }
  nkids = 0;
}

static int teardown_dir(void **state)
{
  struct fx *fx = *state;

  reap_kids();

  nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  free(fx);
  return 0;
}

static void write_file(const char *path, const void *data, size_t n)
{
  FILE *fp = fopen(path, "wb");

  assert_non_null(fp);
  assert_int_equal(fwrite(data, 1, n, fp), n);
  assert_int_equal(fclose(fp), 0);
}

/* The whole file, malloc'd; *n gets its size. */
static char *slurp(const char *path, size_t *n)
{
  FILE *fp = fopen(path, "rb");
  char *buf;
  long len;

  assert_non_null(fp);
  assert_int_equal(fseek(fp, 0, SEEK_END), 0);
  len = ftell(fp);
  assert_true(len >= 0);
  rewind(fp);
  buf = malloc((size_t)len + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
  fclose(fp);
  *n = (size_t)len;
  return buf;
}

static int exists(const char *path)
{
  struct stat sb;

  return stat(path, &sb) == 0;
}

static int raw_exec(const char *path, const char *sql)
{
  sqlite3 *db = NULL;
  int rc;

  assert_int_equal(sqlite3_open_v2(path, &db,
                                   SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                   NULL),
                   SQLITE_OK);
  rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
  sqlite3_close(db);
  return rc;
}

static int64_t raw_int(sqlite3 *db, const char *sql)
{
  sqlite3_stmt *st = NULL;
  int64_t v;

  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

static void raw_text(sqlite3 *db, const char *sql, char *out, size_t n)
{
  sqlite3_stmt *st = NULL;

  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
}

static struct journal *open_new(const char *path)
{
  struct cairn_error err = {0, ""};
  struct journal *j = NULL;
  int rc = journal_open(&j, path, JOURNAL_CREATE, &err);

  if (rc != 0)
    fail_msg("journal_open: %s", err.msg);
  return j;
}

static void insert_run(struct journal *j, const char *id, const char *wf,
                       const char *env, const char *status, int64_t created)
{
  struct cairn_error err = {0, ""};
  struct journal_run run;

  memset(&run, 0, sizeof run);
  snprintf(run.id, sizeof run.id, "%s", id);
  run.workflow = (char *)wf;
  run.file = "/srv/deploy.yaml";
  run.file_sha256 = "aaa";
  run.env = (char *)env;
  run.status = (char *)status;
  run.actor = "tester@host";
  run.created_ms = created;
  if (journal_run_insert(j, &run, &err) != 0)
    fail_msg("journal_run_insert: %s", err.msg);
}

/* Appends one event with a payload given as JSON text; returns its seq. */
static int64_t app(struct journal *j, const char *run, const char *kind,
                   const char *state, int attempt, const char *payload)
{
  struct cairn_error err = {0, ""};
  json_t *p = NULL;
  int64_t seq = 0;
  int rc;

  if (payload != NULL) {
    p = json_loads(payload, 0, NULL);
    assert_non_null(p);
  }
  rc = journal_append(j, run, kind, state, attempt, 0, p, &seq, &err);
  json_decref(p);
  if (rc != 0)
    fail_msg("journal_append %s: %s", kind, err.msg);
  return seq;
}

struct evlist {
  int n;
  struct {
    int64_t seq;
    char kind[32];
    char state[32];
    int attempt;
    char prev[JOURNAL_HASH_HEX];
    char hash[JOURNAL_HASH_HEX];
    char payload[256];
    char rehash[JOURNAL_HASH_HEX];
  } ev[64];
};

static int collect(const struct journal_event *ev, void *ud)
{
  struct evlist *l = ud;
  char *p = journal_canonical_json(ev->payload);

  assert_true(l->n < 64);
  l->ev[l->n].seq = ev->seq;
  snprintf(l->ev[l->n].kind, 32, "%s", ev->kind);
  snprintf(l->ev[l->n].state, 32, "%s", ev->state);
  l->ev[l->n].attempt = ev->attempt;
  memcpy(l->ev[l->n].prev, ev->prev_hash, JOURNAL_HASH_HEX);
  memcpy(l->ev[l->n].hash, ev->hash, JOURNAL_HASH_HEX);
  snprintf(l->ev[l->n].payload, 256, "%s", p);
  assert_int_equal(journal_event_hash(ev, l->ev[l->n].rehash, NULL), 0);
  free(p);
  l->n++;
  return 0;
}

/* The event hash computed here from journal.h's description, with EVP,
 * independently of journal_event_hash. */
static void put_len(EVP_MD_CTX *c, const char *s)
{
  size_t n = strlen(s);
  unsigned char b[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                        (unsigned char)(n >> 8), (unsigned char)n};

  assert_int_equal(EVP_DigestUpdate(c, b, 4), 1);
  assert_int_equal(EVP_DigestUpdate(c, s, n), 1);
}

static void expected_hash(uint64_t seq, const char *run, const char *kind,
                          const char *state, const char *attempt,
                          const char *time_ms, const char *payload,
                          const char *prev_hex, char out[65])
{
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  unsigned char one = 0x01, be[8], prev[32], md[32];
  unsigned int len = 0;

  for (int i = 0; i < 8; i++)
    be[i] = (unsigned char)(seq >> (56 - 8 * i));
  for (int i = 0; i < 32; i++) {
    unsigned v;

    assert_int_equal(sscanf(prev_hex + 2 * i, "%2x", &v), 1);
    prev[i] = (unsigned char)v;
  }
  assert_non_null(c);
  assert_int_equal(EVP_DigestInit_ex(c, EVP_sha256(), NULL), 1);
  assert_int_equal(EVP_DigestUpdate(c, &one, 1), 1);
  assert_int_equal(EVP_DigestUpdate(c, be, 8), 1);
  put_len(c, run);
  put_len(c, kind);
  put_len(c, state);
  put_len(c, attempt);
  put_len(c, time_ms);
  put_len(c, payload);
  assert_int_equal(EVP_DigestUpdate(c, prev, 32), 1);
  assert_int_equal(EVP_DigestFinal_ex(c, md, &len), 1);
  assert_int_equal(len, 32);
  EVP_MD_CTX_free(c);
  for (int i = 0; i < 32; i++)
    sprintf(out + 2 * i, "%02x", md[i]);
}

static int64_t event_count(struct journal *j)
{
  return raw_int(j->db, "SELECT count(*) FROM events");
}

/* ---- open, create, refuse ---- */

static void test_create_modes_and_pragmas(void **state)
{
  struct fx *fx = *state;
  struct journal *j, *j2;
  struct stat sb;
  char dir[1024], wal[1024], mode[16];
  mode_t old = umask(0); /* defaults would give 0644 / 0755 */

  j = open_new(fx->path);
  umask(old);
  assert_string_equal(journal_path(j), fx->path);
  assert_int_equal(stat(fx->path, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  snprintf(dir, sizeof dir, "%s/.cairn", fx->dir);
  assert_int_equal(stat(dir, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0700);

  raw_text(j->db, "PRAGMA journal_mode", mode, sizeof mode);
  assert_string_equal(mode, "wal");
  assert_int_equal(raw_int(j->db, "PRAGMA synchronous"), 2);
  assert_int_equal(raw_int(j->db, "PRAGMA busy_timeout"), 5000);
  assert_int_equal(raw_int(j->db, "PRAGMA foreign_keys"), 1);
  assert_int_equal(raw_int(j->db, "PRAGMA user_version"),
                   JOURNAL_SCHEMA_VERSION);

  /* A second connection is set up the same way. */
  assert_int_equal(journal_open(&j2, fx->path, 0, NULL), 0);
  assert_int_equal(raw_int(j2->db, "PRAGMA synchronous"), 2);
  raw_text(j2->db, "PRAGMA journal_mode", mode, sizeof mode);
  assert_string_equal(mode, "wal");
  journal_close(j2);

  /* SQLite's -wal file takes the journal's mode. */
  insert_run(j, RUN_A, "w", "", JOURNAL_STATUS_RUNNING, 0);
  snprintf(wal, sizeof wal, "%s-wal", fx->path);
  assert_int_equal(stat(wal, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  journal_close(j);
  journal_close(NULL);
}

static void test_memory_journal(void **state)
{
  struct journal *j = NULL;
  char mode[16];

  (void)state;
  assert_int_equal(journal_open(&j, ":memory:", 0, NULL), 0);
  raw_text(j->db, "PRAGMA journal_mode", mode, sizeof mode);
  assert_string_equal(mode, "memory");
  assert_int_equal(raw_int(j->db, "PRAGMA synchronous"), 2);
  insert_run(j, RUN_A, "w", "", NULL, 0);
  assert_int_equal(app(j, RUN_A, "run.started", "", 0, NULL), 1);
  journal_close(j);
}

static void test_open_missing(void **state)
{
  struct fx *fx = *state;
  struct cairn_error err = {0, ""};
  struct journal *j = (struct journal *)1;
  char msg[1024];

  assert_int_equal(journal_open(&j, fx->path, 0, &err), CAIRN_E_NOTFOUND);
  assert_null(j);
  snprintf(msg, sizeof msg, "no journal at '%s'", fx->path);
  assert_string_equal(err.msg, msg);
  assert_false(exists(fx->path));
  assert_int_equal(journal_open(&j, fx->path, JOURNAL_CREATE |
                                JOURNAL_READONLY, &err),
                   CAIRN_E_INVAL);
  assert_false(exists(fx->path));
}

static void assert_untouched(const char *path, const char *before, size_t n)
{
  size_t n2;
  char *after = slurp(path, &n2);
  char side[4200];

  assert_int_equal(n2, n);
  assert_memory_equal(after, before, n);
  free(after);
  snprintf(side, sizeof side, "%s-journal", path);
  assert_false(exists(side));
}

static void test_text_file_refused(void **state)
{
  struct fx *fx = *state;
  struct cairn_error err = {0, ""};
  struct journal *j = NULL;
  char path[1024], msg[2048], wal[2048];
  const char text[] = "not a database\nbut some notes\n";
  char *before;
  size_t n;

  snprintf(path, sizeof path, "%s/x.db", fx->dir);
  write_file(path, text, sizeof text - 1);
  before = slurp(path, &n);
  snprintf(msg, sizeof msg,
           "'%s' is not a cairn journal (file is not a database; hint: "
           "give --journal or CAIRN_JOURNAL a journal's path, or move the "
           "file away)", path);

  assert_int_equal(journal_open(&j, path, 0, &err), CAIRN_E_NOTJOURNAL);
  assert_string_equal(err.msg, msg);
  assert_null(j);
  assert_int_equal(journal_open(&j, path, JOURNAL_CREATE, &err),
                   CAIRN_E_NOTJOURNAL);
  assert_int_equal(journal_open(&j, path, JOURNAL_READONLY, &err),
                   CAIRN_E_NOTJOURNAL);
  assert_untouched(path, before, n);
  snprintf(wal, sizeof wal, "%s-wal", path);
  assert_false(exists(wal));
  free(before);

  /* Shorter than the SQLite magic, and a folder. */
  write_file(path, "SQLite", 6);
  assert_int_equal(journal_open(&j, path, 0, &err), CAIRN_E_NOTJOURNAL);
  assert_int_equal(journal_open(&j, fx->dir, 0, &err), CAIRN_E_NOTJOURNAL);
}

static void test_newer_schema_refused(void **state)
{
  struct fx *fx = *state;
  struct cairn_error err = {0, ""};
  struct journal *j = NULL;
  char path[1024], msg[2048], sql[64];
  char *before;
  size_t n;

  snprintf(path, sizeof path, "%s/new.db", fx->dir);
  assert_int_equal(raw_exec(path, "CREATE TABLE events (x);"
                                  "PRAGMA user_version = 99;"),
                   SQLITE_OK);
  before = slurp(path, &n);
  assert_int_equal(journal_open(&j, path, 0, &err), CAIRN_E_SCHEMA);
  snprintf(msg, sizeof msg,
           "'%s' has journal schema version 99, newer than this cairn's %d "
           "(hint: use the newer cairn that wrote it)",
           path, JOURNAL_SCHEMA_VERSION);
  assert_string_equal(err.msg, msg);
  assert_int_equal(journal_open(&j, path, JOURNAL_CREATE, &err),
                   CAIRN_E_SCHEMA);
  assert_int_equal(journal_open(&j, path, JOURNAL_READONLY, &err),
                   CAIRN_E_SCHEMA);
  assert_null(j);
  assert_untouched(path, before, n);
  free(before);

  /* A newer journal of ours (in WAL mode, with our application id). */
  j = open_new(fx->path);
  journal_close(j);
  snprintf(sql, sizeof sql, "PRAGMA user_version = %d;",
           JOURNAL_SCHEMA_VERSION + 1);
  assert_int_equal(raw_exec(fx->path, sql), SQLITE_OK);
  before = slurp(fx->path, &n);
  assert_int_equal(journal_open(&j, fx->path, 0, &err), CAIRN_E_SCHEMA);
  assert_untouched(fx->path, before, n);
  free(before);

  /* Newer only in the -wal: a newer cairn killed before any checkpoint.
   * The header says ours and current; refused all the same, and the file
   * left as it is (not checkpointed by a connection's close). */
  {
    char wal[1100];
    pid_t pid;
    int status;
    sqlite3 *db = NULL;

    snprintf(sql, sizeof sql, "PRAGMA user_version = %d;",
             JOURNAL_SCHEMA_VERSION);
    assert_int_equal(raw_exec(fx->path, sql), SQLITE_OK);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      if (sqlite3_open_v2(fx->path, &db, SQLITE_OPEN_READWRITE, NULL) !=
              SQLITE_OK ||
          sqlite3_exec(db, "PRAGMA wal_autocheckpoint = 0;", NULL, NULL,
                       NULL) != SQLITE_OK ||
          (snprintf(sql, sizeof sql, "PRAGMA user_version = %d;",
                    JOURNAL_SCHEMA_VERSION + 1),
           sqlite3_exec(db, sql, NULL, NULL, NULL)) != SQLITE_OK)
        _exit(1);
      _exit(0); /* no close: no checkpoint */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    snprintf(wal, sizeof wal, "%s-wal", fx->path);
    assert_int_equal(access(wal, F_OK), 0);
    before = slurp(fx->path, &n);
    assert_int_equal((unsigned char)before[63],
                     JOURNAL_SCHEMA_VERSION); /* the header's version */
    assert_int_equal(journal_open(&j, fx->path, 0, &err), CAIRN_E_SCHEMA);
    assert_int_equal(journal_open(&j, fx->path, JOURNAL_READONLY, &err),
                     CAIRN_E_SCHEMA);
    assert_null(j);
    assert_untouched(fx->path, before, n);
    free(before);
    assert_int_equal(sqlite3_open_v2(fx->path, &db, SQLITE_OPEN_READONLY,
                                     NULL), SQLITE_OK);
    assert_int_equal(raw_int(db, "PRAGMA user_version"),
                     JOURNAL_SCHEMA_VERSION + 1);
    sqlite3_close(db);
  }
}

static void test_foreign_sqlite_refused(void **state)
{
  struct fx *fx = *state;
  struct cairn_error err = {0, ""};
  struct journal *j = NULL;
  char path[1024], msg[2048];
  char *before;
  size_t n;

  snprintf(path, sizeof path, "%s/app.db", fx->dir);
  assert_int_equal(raw_exec(path, "CREATE TABLE users (name TEXT);"
                                  "INSERT INTO users VALUES ('ann');"),
                   SQLITE_OK);
  before = slurp(path, &n);
  assert_int_equal(journal_open(&j, path, 0, &err), CAIRN_E_NOTJOURNAL);
  snprintf(msg, sizeof msg, "'%s' is not a cairn journal (no cairn schema)",
           path);
  assert_string_equal(err.msg, msg);
  assert_int_equal(journal_open(&j, path, JOURNAL_CREATE, &err),
                   CAIRN_E_NOTJOURNAL);
  assert_untouched(path, before, n);
  free(before);

  /* user_version 1 but not our application id. */
  assert_int_equal(raw_exec(path, "PRAGMA user_version = 1;"), SQLITE_OK);
  before = slurp(path, &n);
  assert_int_equal(journal_open(&j, path, 0, &err), CAIRN_E_NOTJOURNAL);
  assert_untouched(path, before, n);
  free(before);
}

static void check_schema_v1(const char *path)
{
  sqlite3 *db = NULL;

  assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
                   SQLITE_OK);
  assert_int_equal(raw_int(db, "PRAGMA user_version"),
                   JOURNAL_SCHEMA_VERSION);
  assert_int_equal(raw_int(db, "PRAGMA application_id"),
                   JOURNAL__APPLICATION_ID);
  assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE "
                               "type = 'table' AND name IN "
                               "('runs', 'events', 'locks')"),
                   3);
  assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE "
                               "type = 'trigger' AND tbl_name = 'events'"),
                   2);
  assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE "
                               "name = 'events_by_run'"),
                   1);
  sqlite3_close(db);
}

static void test_v0_empty_migrates(void **state)
{
  struct fx *fx = *state;
  struct journal *j = NULL;
  struct cairn_error err = {0, ""};
  char path[1024], empty[1024];
  char *bytes;
  size_t n;

  /* An SQLite file at user_version 0 with no tables. */
  snprintf(path, sizeof path, "%s/v0.db", fx->dir);
  assert_int_equal(raw_exec(path, "CREATE TABLE t (a); DROP TABLE t;"),
                   SQLITE_OK);
  bytes = slurp(path, &n);
  assert_true(n > 0);
  /* What a first run killed before its schema commit leaves: a read-only
   * open reads it as the empty journal it is, and writes nothing. */
  assert_int_equal(journal_open(&j, path, JOURNAL_READONLY, &err), 0);
  assert_int_equal(event_count(j), 0);
  journal_close(j);
  assert_untouched(path, bytes, n);
  free(bytes);
  /* The next writer finishes creating the schema instead of refusing it. */
  assert_int_equal(journal_open(&j, path, 0, &err), 0);
  journal_close(j);
  check_schema_v1(path);
  assert_int_equal(journal_open(&j, path, 0, &err), 0);
  insert_run(j, RUN_A, "w", "", NULL, 0);
  app(j, RUN_A, "run.started", "", 0, "{}");
  journal_close(j);
  check_schema_v1(path);

  /* A zero-byte file, without JOURNAL_CREATE. */
  snprintf(empty, sizeof empty, "%s/zero.db", fx->dir);
  write_file(empty, "", 0);
  assert_int_equal(journal_open(&j, empty, 0, &err), 0);
  journal_close(j);
  check_schema_v1(empty);

  /* Opening a current journal again changes nothing in its schema. */
  assert_int_equal(journal_open(&j, path, JOURNAL_READONLY, &err), 0);
  assert_int_equal(event_count(j), 1);
  assert_int_equal(journal_append(j, RUN_A, "x", "", 0, 0, NULL, NULL, &err),
                   CAIRN_E_JOURNAL);
  assert_int_equal(event_count(j), 1);
  journal_close(j);
}

/* A journal of ours at schema 1 whose damage shows only when the
 * migration to 2 needs a page: its free-list pointer names a page past
 * the end. Refused as damaged (exit 2), as a damaged page found by the
 * probe is, and left byte for byte as it was. */
static void test_damaged_found_by_migration(void **state)
{
  struct fx *fx = *state;
  struct journal *j = open_new(fx->path);
  struct cairn_error err = {0, ""};
  char msg[2048];
  char *bytes;
  size_t n;
  FILE *fp;

  journal_close(j);
  j = NULL;
  /* back to schema 1 (meta came with 2), its pages now on the free list */
  assert_int_equal(raw_exec(fx->path, "DROP TABLE meta;"
                                      "PRAGMA user_version = 1;"),
                   SQLITE_OK);
  bytes = slurp(fx->path, &n);
  assert_true(n >= 100);
  assert_true(bytes[36] != 0 || bytes[37] != 0 || bytes[38] != 0 ||
              bytes[39] != 0); /* free-list pages */
  free(bytes);
  /* the first free-list trunk page (header offset 32): far past the end */
  fp = fopen(fx->path, "r+b");
  assert_non_null(fp);
  assert_int_equal(fseek(fp, 32, SEEK_SET), 0);
  assert_int_equal(fwrite("\x00\xff\xff\xff", 1, 4, fp), 4);
  assert_int_equal(fclose(fp), 0);

  bytes = slurp(fx->path, &n);
  assert_int_equal(journal_open(&j, fx->path, 0, &err), CAIRN_E_NOTJOURNAL);
  assert_null(j);
  snprintf(msg, sizeof msg, "journal '%s' is damaged (database disk image "
           "is malformed; hint: restore it from a backup)", fx->path);
  assert_string_equal(err.msg, msg);
  assert_untouched(fx->path, bytes, n);
  free(bytes);
}

/* A first run killed while SQLite was writing the new file in its
 * default rollback mode, before the switch to WAL, leaves a hot journal
 * beside it. A read-only open (cairn verify, history) must not fail with
 * "attempt to write a readonly database": it rolls the hot journal back
 * and finds an empty journal. */
static void test_hot_rollback_journal(void **state)
{
  struct fx *fx = *state;
  struct journal *j = NULL;
  struct cairn_error err = {0, ""};
  char path[1024], hot[1100];
  pid_t pid;
  int status;

  snprintf(path, sizeof path, "%s/hot.db", fx->dir);
  snprintf(hot, sizeof hot, "%s-journal", path);
  write_file(path, "", 0);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* A one-page cache spills the transaction into the file while its
     * journal exists; _exit leaves both behind as a crash would. */
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK ||
        sqlite3_exec(db, "PRAGMA cache_size=1; BEGIN; CREATE TABLE t(x);"
                         "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
                         "SELECT i + 1 FROM n WHERE i < 400) INSERT INTO t "
                         "SELECT randomblob(600) FROM n;",
                     NULL, NULL, NULL) != SQLITE_OK)
      _exit(1);
    _exit(0);
  }
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  assert_int_equal(access(hot, F_OK), 0); /* the journal is hot */

  /* A writer's open (a read-only one leaves a schema-less file alone) */
  int rc = journal_open(&j, path, 0, &err);
  if (rc != 0)
    print_error("%s\n", err.msg);
  assert_int_equal(rc, 0);
  assert_int_equal(event_count(j), 0);
  struct journal_verify_result vr;
  assert_int_equal(journal_verify(j, &vr, &err), 0);
  journal_close(j);
  assert_int_not_equal(access(hot, F_OK), 0);
  check_schema_v1(path);
}

static void test_find_path(void **state)
{
  struct fx *fx = *state;
  struct cairn_error err = {0, ""};
  char real[PATH_MAX], sub[1024], want[PATH_MAX + 64];
  char out[PATH_MAX], other[2048];
  char *old = getenv("CAIRN_JOURNAL") ? strdup(getenv("CAIRN_JOURNAL"))
                                      : NULL;
  struct journal *j;

  unsetenv("CAIRN_JOURNAL");
  assert_non_null(realpath(fx->dir, real));
  j = open_new(fx->path);
  journal_close(j);
  snprintf(sub, sizeof sub, "%s/a", fx->dir);
  assert_int_equal(mkdir(sub, 0755), 0);
  snprintf(sub, sizeof sub, "%s/a/b", fx->dir);
  assert_int_equal(mkdir(sub, 0755), 0);
  snprintf(want, sizeof want, "%s/.cairn/journal.db", real);

  assert_int_equal(journal_find_path(out, sizeof out, sub, &err), 0);
  assert_string_equal(out, want);

  /* From the working directory. */
  {
    char cwd[PATH_MAX];

    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(sub), 0);
    assert_int_equal(journal_find_path(out, sizeof out, NULL, &err), 0);
    assert_int_equal(chdir(cwd), 0);
    assert_string_equal(out, want);
  }

  /* $CAIRN_JOURNAL wins. */
  setenv("CAIRN_JOURNAL", "/elsewhere/j.db", 1);
  assert_int_equal(journal_find_path(out, sizeof out, sub, &err), 0);
  assert_string_equal(out, "/elsewhere/j.db");
  unsetenv("CAIRN_JOURNAL");

  /* None found: the path under start_dir, and NOTFOUND. A .cairn folder
   * without journal.db does not count. */
  snprintf(other, sizeof other, "%s/.cairn", sub);
  assert_int_equal(mkdir(other, 0700), 0);
  assert_int_equal(remove(fx->path), 0);
  snprintf(want, sizeof want, "%s/a/b/.cairn/journal.db", real);
  if (!exists("/.cairn/journal.db") && !exists("/tmp/.cairn/journal.db")) {
    assert_int_equal(journal_find_path(out, sizeof out, sub, &err),
                     CAIRN_E_NOTFOUND);
    assert_string_equal(out, want);
  }
  /* Too small a buffer. */
  assert_int_equal(journal_find_path(out, 8, sub, &err), CAIRN_E_INVAL);

  if (old != NULL) {
    setenv("CAIRN_JOURNAL", old, 1);
    free(old);
  }
}

/* ---- append, hash, canonical JSON ---- */

static void test_canonical_json(void **state)
{
  json_t *v;
  char *s;

  (void)state;
  v = json_loads("{\"z\": 1, \"a\": {\"y\": [true, null, 1.5], "
                 "\"b\": \"\xc3\xa9\\\"x\"}, \"m\": \"na\\u00efve\", "
                 "\"B\": []}",
                 0, NULL);
  assert_non_null(v);
  s = journal_canonical_json(v);
  assert_string_equal(s, "{\"B\":[],\"a\":{\"b\":\"\xc3\xa9\\\"x\","
                         "\"y\":[true,null,1.5]},\"m\":\"na\xc3\xafve\","
                         "\"z\":1}");
  free(s);
  json_decref(v);

  v = json_integer(5);
  s = journal_canonical_json(v);
  assert_string_equal(s, "5");
  free(s);
  json_decref(v);
  assert_null(journal_canonical_json(NULL));
}

static void test_append_chain(void **state)
{
  struct fx *fx = *state;
  struct cairn_error err = {0, ""};
  struct journal *j = open_new(fx->path);
  struct evlist l;
  json_t *p = json_pack("{s:s, s:i}", "kind", "do", "n", 1);
  int64_t seq = 0;

  insert_run(j, RUN_A, "w", "", NULL, 0);
  assert_int_equal(app(j, RUN_A, "run.started", NULL, 0, NULL), 1);
  assert_int_equal(journal_append(j, RUN_A, "state.entered", "migrate", 0, 0,
                                  p, &seq, &err),
                   0);
  assert_int_equal(seq, 2);
  /* the payload's text as written, for an observer */
  size_t len = 0;
  const char *text = journal_last_payload(j, &len);
  assert_non_null(text);
  assert_int_equal(len, strlen("{\"kind\":\"do\",\"n\":1}"));
  assert_memory_equal(text, "{\"kind\":\"do\",\"n\":1}", len);
  assert_int_equal(journal_append(j, RUN_A, "action.started", "migrate", 1,
                                  42, NULL, NULL, &err),
                   0);
  text = journal_last_payload(j, &len);
  assert_non_null(text);
  assert_int_equal(len, 2);
  assert_memory_equal(text, "{}", 2);
  /* a failed append leaves none */
  assert_int_not_equal(journal_append(j, "NO-SUCH-RUN", "x", "", 0, 0, p,
                                      NULL, &err),
                       0);
  assert_null(journal_last_payload(j, &len));
  json_decref(p);

  memset(&l, 0, sizeof l);
  assert_int_equal(journal_event_foreach(j, RUN_A, 0, collect, &l, &err), 0);
  assert_int_equal(l.n, 3);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(l.ev[i].seq, i + 1);
    assert_int_equal(strlen(l.ev[i].hash), 64);
    assert_string_equal(l.ev[i].prev, i == 0 ? ZEROS : l.ev[i - 1].hash);
    assert_string_equal(l.ev[i].rehash, l.ev[i].hash);
  }
  assert_string_equal(l.ev[0].payload, "{}");
  assert_string_equal(l.ev[0].state, "");
  assert_string_equal(l.ev[1].payload, "{\"kind\":\"do\",\"n\":1}");
  assert_string_equal(l.ev[2].kind, "action.started");
  assert_int_equal(l.ev[2].attempt, 1);

  /* after_seq, and NULL run_id for every event. */
  memset(&l, 0, sizeof l);
  assert_int_equal(journal_event_foreach(j, NULL, 1, collect, &l, &err), 0);
  assert_int_equal(l.n, 2);
  assert_int_equal(l.ev[0].seq, 2);
  journal_close(j);
}

/* A payload string holding a NUL is read back whole and its chain
 * verifies (it used to be refused as "not a json object"). */
static void test_append_nul_in_string(void **state)
{
  struct fx *fx = *state;
  struct cairn_error err = {0, ""};
  struct journal *j = open_new(fx->path);
  struct evlist l;
  json_t *p = json_pack("{s:o}", "out", json_stringn("a\0b", 3));
  struct journal_verify_result vr;

  insert_run(j, RUN_A, "w", "", NULL, 0);
  app(j, RUN_A, "run.started", "", 0, "{\"workflow\":\"w\"}");
  assert_int_equal(journal_append(j, RUN_A, "action.finished", "s", 1, 0, p,
                                  NULL, &err), 0);
  json_decref(p);
  memset(&l, 0, sizeof l);
  assert_int_equal(journal_event_foreach(j, RUN_A, 0, collect, &l, &err), 0);
  assert_int_equal(l.n, 2);
  assert_string_equal(l.ev[1].payload, "{\"out\":\"a\\u0000b\"}");
  assert_string_equal(l.ev[1].rehash, l.ev[1].hash);
  assert_int_equal(journal_verify(j, &vr, &err), 0);
  assert_int_equal(vr.first_bad_seq, 0);
  journal_close(j);
}

static int check_time(const struct journal_event *ev, void *ud)
{
  int64_t *t = ud;

  if (ev->seq == 2)
    assert_int_equal(ev->time_ms, 42);
  else
    *t = ev->time_ms;
  return 0;
}

static void test_append_time_and_errors(void **state)
{
  struct cairn_error err = {0, ""};
  struct journal *j = NULL;
  json_t *arr = json_array();
  int64_t before = journal_now_ms(), t = 0;

  (void)state;
  assert_int_equal(journal_open(&j, ":memory:", 0, NULL), 0);
  /* The run must exist first. */
  assert_int_equal(journal_append(j, RUN_A, "run.started", "", 0, 0, NULL,
                                  NULL, &err),
                   CAIRN_E_NORUN);
  assert_string_equal(err.msg, "no run '" RUN_A "' in journal ':memory:' "
                               "(insert the run before its events)");
  assert_int_equal(event_count(j), 0);
  insert_run(j, RUN_A, "w", "", NULL, 0);
  assert_int_equal(journal_append(j, RUN_A, "x", "", 0, 0, arr, NULL, &err),
                   CAIRN_E_INVAL);
  assert_int_equal(journal_append(j, RUN_A "X", "x", "", 0, 0, NULL, NULL,
                                  &err),
                   CAIRN_E_INVAL);
  assert_int_equal(journal_append(j, RUN_A, "", "", 0, 0, NULL, NULL, &err),
                   CAIRN_E_INVAL);
  assert_int_equal(journal_append(j, RUN_A, "x", "", -1, 0, NULL, NULL, &err),
                   CAIRN_E_INVAL);
  json_decref(arr);
  app(j, RUN_A, "run.started", "", 0, NULL);
  assert_int_equal(journal_append(j, RUN_A, "a", "", 0, 42, NULL, NULL, &err),
                   0);
  assert_int_equal(journal_event_foreach(j, RUN_A, 0, check_time, &t, &err),
                   0);
  assert_true(t >= before && t <= journal_now_ms());
  journal_close(j);
}

static void test_hash_known_event(void **state)
{
  struct fx *fx = *state;
  struct cairn_error err = {0, ""};
  struct journal *j = open_new(fx->path);
  struct journal_event ev;
  struct evlist l;
  char want1[65], want2[65], got[65];
  const char *canon = "{\"b\":[1,2],\"exit_code\":0,\"note\":\"d\xc3\xa9j\xc3\xa0\","
                      "\"outcome\":\"succeeded\"}";
  json_t *p = json_loads("{\"outcome\": \"succeeded\", \"exit_code\": 0, "
                         "\"note\": \"d\xc3\xa9j\xc3\xa0\", \"b\": [1, 2]}",
                         0, NULL);

  expected_hash(1, RUN_A, "action.finished", "migrate", "2", "1700000000123",
                canon, ZEROS, want1);
  /* The same digest, computed once with Python's hashlib. */
  assert_string_equal(
      want1,
      "7e88697a6b032b8fe44c8bc05e218c1aa1fda048ac5250f563e35498307553e1");

  insert_run(j, RUN_A, "w", "", NULL, 0);
  assert_int_equal(journal_append(j, RUN_A, "action.finished", "migrate", 2,
                                  1700000000123, p, NULL, &err),
                   0);
  assert_int_equal(journal_append(j, RUN_A, "transition", "", 0,
                                  1700000000124, NULL, NULL, &err),
                   0);
  expected_hash(2, RUN_A, "transition", "", "0", "1700000000124", "{}", want1,
                want2);
  assert_string_equal(
      want2,
      "e45ac7c2c1001a7977c850053bb91750a641bb233bbac9bb3aa39ff8d0a8990f");

  memset(&l, 0, sizeof l);
  assert_int_equal(journal_event_foreach(j, RUN_A, 0, collect, &l, &err), 0);
  assert_int_equal(l.n, 2);
  assert_string_equal(l.ev[0].payload, canon);
  assert_string_equal(l.ev[0].hash, want1);
  assert_string_equal(l.ev[1].prev, want1);
  assert_string_equal(l.ev[1].hash, want2);

  /* journal_event_hash on a hand-built event. */
  memset(&ev, 0, sizeof ev);
  ev.seq = 1;
  snprintf(ev.run_id, sizeof ev.run_id, "%s", RUN_A);
  ev.kind = "action.finished";
  ev.state = "migrate";
  ev.attempt = 2;
  ev.time_ms = 1700000000123;
  ev.payload = p;
  snprintf(ev.prev_hash, sizeof ev.prev_hash, "%s", ZEROS);
  assert_int_equal(journal_event_hash(&ev, got, &err), 0);
  assert_string_equal(got, want1);
  ev.prev_hash[0] = '\0'; /* "" is all zero too */
  assert_int_equal(journal_event_hash(&ev, got, &err), 0);
  assert_string_equal(got, want1);
  ev.attempt = 3; /* every field counts */
  assert_int_equal(journal_event_hash(&ev, got, &err), 0);
  assert_string_not_equal(got, want1);
  snprintf(ev.prev_hash, sizeof ev.prev_hash, "xyz");
  assert_int_equal(journal_event_hash(&ev, got, &err), CAIRN_E_INVAL);
  json_decref(p);
  journal_close(j);
}

/* jansson's own text, the reference the canonical JSON must equal. */
static char *jansson_text(const json_t *v)
{
  return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

static void assert_same_as_jansson(const json_t *v)
{
  char *want = jansson_text(v), *got = journal_canonical_json(v);

  assert_non_null(want);
  assert_non_null(got);
  assert_string_equal(got, want);
  free(got);
  free(want);
}

/* The hashes of canonical_cases.h as main's journal wrote them before the
 * canonical JSON and the hash input were written without json_dumps. */
static const char *const canonical_case_hashes[] = {
  "c153cc30e71eb739d860416e42dad4596cb11d0788d098f6949439718a028a4f",
  "5a0c3ac397c0b9845708a210dc47ce4a39b4ce9d383a132024ed0299db020bd8",
  "717ceedcb8f13e66d3fb48a706490104f7f9cdc5b9f5da5ec6181d58c88616fb",
  "cfa5c9fb1fc46494a508d09552c5e6238ff357cf2c2520472247057d4411cbf8",
  "4bec771c92ddff7a9c7622e1ceebbafe564d2e2491f0d25560505d49a30ff105",
  "5e7c3c91ce4f7796d54eec000a654fc4fe54ca877d03c192ede1ea0716e7a9e9",
  "69257cc9040d340c8ddd0ac5d20e35976dc2e2a15bb46984968a6df420568834",
  "0a8805e6db176682140c6f1f31ffbe66c9dd643428fec92c6342940af4128ab6",
  "fe96a46f2df8d285813a489680c77e0195b8d2971e979add53720918659fe780",
  "002a766e63ed67edfa7af5f8424d769ee196e4df314280f68898022eb90f4837",
  "1a603026af862f0b236ca2186b87c9251eb12992e7f270faaf9382bae87021e8",
  "e30638c661911945d86b008eb19837ddb5a22dd821fdd50f280d492df131e463",
};

struct hashes {
  size_t n;
  char hash[CANONICAL_NCASES][JOURNAL_HASH_HEX];
};

static int collect_hash(const struct journal_event *ev, void *ud)
{
  struct hashes *h = ud;

  assert_true(h->n < CANONICAL_NCASES);
  memcpy(h->hash[h->n++], ev->hash, JOURNAL_HASH_HEX);
  return 0;
}

static void test_canonical_cases(void **state)
{
  struct cairn_error err = {0, ""};
  struct journal *j = NULL;
  struct hashes h = {0, {{0}}};

  (void)state;
  assert_int_equal(CANONICAL_NCASES, sizeof canonical_case_hashes /
                                         sizeof canonical_case_hashes[0]);
  assert_int_equal(journal_open(&j, ":memory:", 0, NULL), 0);
  insert_run(j, RUN_A, "w", "", NULL, 0);
  for (size_t i = 0; i < CANONICAL_NCASES; i++) {
    json_error_t jerr;
    json_t *p = json_loads(canonical_cases[i], 0, &jerr);

    if (p == NULL)
      fail_msg("case %zu: %s", i, jerr.text);
    assert_same_as_jansson(p);
    assert_int_equal(journal_append(j, RUN_A, "k", "s/\xc3\xa9", (int)i,
                                    1700000000000 + (int64_t)i, p, NULL,
                                    &err),
                     0);
    json_decref(p);
  }
  assert_int_equal(journal_event_foreach(j, RUN_A, 0, collect_hash, &h, &err),
                   0);
  assert_int_equal(h.n, CANONICAL_NCASES);
  for (size_t i = 0; i < CANONICAL_NCASES; i++)
    assert_string_equal(h.hash[i], canonical_case_hashes[i]);
  journal_close(j);
}

static void test_canonical_edges(void **state)
{
  struct cairn_buf b = {0};
  json_t *v, *inner, *bad;

  (void)state;
  /* NUL inside a string and (jansson 2.14 on) a key, which json_loads
   * cannot make. */
  v = json_object();
  json_object_set_new(v, "s", json_stringn("a\0b", 3));
#if JANSSON_VERSION_HEX >= 0x020e00
  json_object_setn_new(v, "k\0z", 3, json_integer(1));
  json_object_setn_new(v, "k", 1, json_integer(2));
#endif
  assert_same_as_jansson(v);
  json_decref(v);

  /* Any value, not only objects; reals are jansson's to write. */
  v = json_pack("[s,i,f,b,n,[],{}]", "x", -42, 0.1, 1);
  assert_same_as_jansson(v);
  json_decref(v);
  v = json_string("\xe2\x82\xac\"");
  assert_same_as_jansson(v);
  json_decref(v);
  v = json_real(-2.5e-300);
  assert_same_as_jansson(v);
  json_decref(v);

  /* Deeper than the walk goes itself: jansson writes the rest. */
  v = json_string("leaf");
  for (int i = 0; i < 700; i++) {
    json_t *o = json_object();
    json_object_set_new(o, i % 2 ? "a" : "b", v);
    v = i % 3 ? o : json_pack("[o]", o);
  }
  assert_same_as_jansson(v);
  json_decref(v);

  /* Not UTF-8: no text at all, as from json_dumps; the buffer is kept. */
  bad = json_stringn_nocheck("\xc3(", 2);
  v = json_pack("{s:o}", "x", bad);
  assert_null(jansson_text(v));
  assert_null(journal_canonical_json(v));
  cairn_buf_add(&b, "kept", 4);
  assert_int_equal(journal_canonical_add(&b, v), -1);
  assert_int_equal(b.len, 4);
  assert_string_equal(b.p, "kept");
  assert_int_equal(b.failed, 0);
  json_decref(v);
  const char *invalid[] = {"\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                           "\xe0\x80\xaf", "\x80", "\xf8\x88\x80\x80\x80",
                           "\xe2\x82"};
  for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
    v = json_stringn_nocheck(invalid[i], strlen(invalid[i]));
    assert_null(jansson_text(v));
    assert_null(journal_canonical_json(v));
    json_decref(v);
  }

  /* A value that holds itself: refused, as by jansson. */
  v = json_object();
  inner = json_array();
  json_object_set_new(v, "a", inner);
  json_array_append(inner, v);
  assert_null(jansson_text(v));
  assert_null(journal_canonical_json(v));
  json_array_clear(inner);
  json_decref(v);

  assert_null(journal_canonical_json(NULL));
  assert_int_equal(journal_canonical_add(&b, NULL), -1);
  cairn_buf_release(&b);
}

/* j's chain verifies, with n events. */
static void assert_chain_intact(struct journal *j, int64_t n)
{
  struct cairn_error err = {0, ""};
  struct journal_verify_result vr;

  assert_int_equal(journal_verify(j, &vr, &err), 0);
  assert_int_equal(vr.events, n);
  assert_int_equal(vr.first_bad_seq, 0);
}

/* journal_append remembers the chain's end within a transaction (and for
 * an in-memory journal beyond it): another connection appending between
 * two transactions, or a rollback, must not break the chain. */
static void test_append_tail_cache(void **state)
{
  struct fx *fx = *state;
  struct cairn_error err = {0, ""};
  struct journal *a = open_new(fx->path), *b = open_new(fx->path), *m = NULL;

  insert_run(a, RUN_A, "w", "", NULL, 0);
  assert_int_equal(app(a, RUN_A, "run.started", "", 0, "{\"workflow\":\"w\"}"),
                   1);
  assert_int_equal(app(b, RUN_A, "two", "", 0, NULL), 2);
  assert_int_equal(app(a, RUN_A, "three", "", 0, NULL), 3);
  assert_int_equal(journal_begin(a, &err), 0);
  assert_int_equal(app(a, RUN_A, "four", "", 0, NULL), 4);
  assert_int_equal(app(a, RUN_A, "five", "", 0, NULL), 5);
  journal_rollback(a);
  assert_int_equal(app(b, RUN_A, "four", "", 0, "{\"by\": \"b\"}"), 4);
  assert_int_equal(app(a, RUN_A, "five", "", 0, NULL), 5);
  assert_chain_intact(b, 5);
  journal_close(a);
  journal_close(b);

  assert_int_equal(journal_open(&m, ":memory:", 0, NULL), 0);
  insert_run(m, RUN_A, "w", "", NULL, 0);
  assert_int_equal(app(m, RUN_A, "run.started", "", 0, "{\"workflow\":\"w\"}"),
                   1);
  assert_int_equal(journal_begin(m, &err), 0);
  assert_int_equal(app(m, RUN_A, "two", "", 0, NULL), 2);
  journal_rollback(m);
  assert_int_equal(app(m, RUN_A, "two", "", 0, "{\"again\": true}"), 2);
  assert_int_equal(app(m, RUN_A, "three", "", 0, NULL), 3);
  assert_chain_intact(m, 3);
  journal_close(m);
}

/* A simulation's journal: events without a chain, refused by verify,
 * only in memory. */
static void test_unchained(void **state)
{
  struct fx *fx = *state;
  struct cairn_error err = {0, ""};
  struct journal *j = NULL;
  struct journal_verify_result vr;
  struct evlist l;
  struct journal_event ev;
  int64_t seq = 0;
  json_t *p;
  unsigned char key[32] = {1};

  assert_int_equal(journal_open(&j, fx->path,
                                JOURNAL_CREATE | JOURNAL_UNCHAINED, &err),
                   CAIRN_E_INVAL);
  assert_null(j);
  assert_int_equal(access(fx->path, F_OK), -1);
  assert_int_equal(
      journal_open(&j, ":memory:", JOURNAL_CREATE | JOURNAL_UNCHAINED, &err),
      0);
  assert_int_equal(journal_set_key(j, key, sizeof key, &err), CAIRN_E_INVAL);
  insert_run(j, RUN_A, "w", "", NULL, 0);
  assert_int_equal(app(j, RUN_A, "run.started", "", 0, NULL), 1);
  insert_run(j, RUN_B, "w", "", NULL, 0);
  assert_int_equal(app(j, RUN_B, "run.started", "", 0, NULL), 2);
  assert_int_equal(app(j, RUN_A, "state.entered", "s", 0, "{\"b\": 1, "
                                                          "\"a\": [2]}"),
                   3);
  /* Without the index of events by run: the same events, in order. */
  memset(&l, 0, sizeof l);
  assert_int_equal(journal_event_foreach(j, RUN_A, 0, collect, &l, &err), 0);
  assert_int_equal(l.n, 2);
  assert_int_equal(l.ev[0].seq, 1);
  assert_int_equal(l.ev[1].seq, 3);
  assert_string_equal(l.ev[1].payload, "{\"a\":[2],\"b\":1}");
  assert_string_equal(l.ev[0].hash, "");
  assert_string_equal(l.ev[1].prev, "");
  assert_int_equal(journal_verify(j, &vr, &err), CAIRN_E_INVAL);

  /* The events are a list beside the database: a rollback undoes both
   * (the run inserted in it and the events appended), a commit keeps
   * both, and the foreign key on runs holds for the list too. */
  assert_int_equal(journal_begin(j, &err), 0);
  insert_run(j, RUN_C, "w", "", NULL, 0);
  assert_int_equal(app(j, RUN_C, "run.started", "", 0, NULL), 4);
  assert_int_equal(app(j, RUN_A, "state.entered", "t", 1, NULL), 5);
  journal_rollback(j);
  assert_int_equal(journal_event_get(j, 4, &ev, &err), CAIRN_E_NOTFOUND);
  assert_int_equal(journal_append(j, RUN_C, "run.started", "", 0, 0, NULL,
                                  &seq, &err),
                   CAIRN_E_NORUN);
  assert_int_equal(journal_begin(j, &err), 0);
  p = json_pack("{s:s#}", "s", "a\0b", (size_t)3); /* a NUL read back */
  assert_int_equal(journal_append(j, RUN_A, "state.entered", "t", 1, 0, p,
                                  &seq, &err),
                   0);
  json_decref(p);
  assert_int_equal(seq, 4);
  assert_int_equal(journal_commit(j, &err), 0);
  journal_rollback(j); /* none open: nothing to undo */
  assert_int_equal(journal_event_get(j, 4, &ev, &err), 0);
  assert_int_equal(ev.seq, 4);
  assert_string_equal(ev.run_id, RUN_A);
  assert_string_equal(ev.kind, "state.entered");
  assert_string_equal(ev.state, "t");
  assert_int_equal(ev.attempt, 1);
  assert_int_equal(json_string_length(json_object_get(ev.payload, "s")), 3);
  journal_event_release(&ev);
  memset(&l, 0, sizeof l);
  assert_int_equal(journal_event_foreach(j, NULL, 1, collect, &l, &err), 0);
  assert_int_equal(l.n, 3);
  assert_int_equal(l.ev[0].seq, 2);
  assert_int_equal(l.ev[2].seq, 4);
  journal_close(j);
}

static void test_transactions(void **state)
{
  struct cairn_error err = {0, ""};
  struct journal *j = NULL;
  sqlite3_stmt *cached;

  (void)state;
  assert_int_equal(journal_open(&j, ":memory:", 0, NULL), 0);
  insert_run(j, RUN_A, "w", "", NULL, 0);
  assert_int_equal(journal_commit(j, &err), CAIRN_E_INVAL);

  assert_int_equal(journal_begin(j, &err), 0);
  assert_int_equal(journal_begin(j, &err), CAIRN_E_INVAL);
  app(j, RUN_A, "run.started", "", 0, NULL);
  app(j, RUN_A, "state.entered", "s", 0, NULL);
  journal_rollback(j);
  assert_int_equal(event_count(j), 0);

  assert_int_equal(journal_begin(j, &err), 0);
  assert_int_equal(app(j, RUN_A, "run.started", "", 0, NULL), 1);
  cached = j->stmts[JOURNAL__ST_EVENT_INSERT].st;
  assert_non_null(cached);
  assert_int_equal(app(j, RUN_A, "state.entered", "s", 0, NULL), 2);
  /* Prepared once per connection, not per append. */
  assert_ptr_equal(j->stmts[JOURNAL__ST_EVENT_INSERT].st, cached);
  assert_int_equal(journal_commit(j, &err), 0);
  assert_int_equal(event_count(j), 2);
  journal_rollback(j); /* nothing open: nothing happens */
  assert_int_equal(event_count(j), 2);
  journal_close(j);
}

static void test_events_append_only(void **state)
{
  struct fx *fx = *state;
  struct journal *j = open_new(fx->path);

  insert_run(j, RUN_A, "w", "", NULL, 0);
  app(j, RUN_A, "run.started", "", 0, NULL);
  journal_close(j);
  assert_int_not_equal(raw_exec(fx->path, "UPDATE events SET kind = 'x'"),
                       SQLITE_OK);
  assert_int_not_equal(raw_exec(fx->path, "DELETE FROM events"), SQLITE_OK);
  assert_int_equal(journal_open(&j, fx->path, 0, NULL), 0);
  assert_int_equal(event_count(j), 1);
  journal_close(j);
}

/* Callbacks may use the journal again, even the statement that is
 * stepping their own loop. */
struct nest {
  struct journal *j;
  int outer, inner;
};

static int count_inner(const struct journal_event *ev, void *ud)
{
  struct nest *n = ud;

  (void)ev;
  n->inner++;
  return 0;
}

static int count_outer(const struct journal_event *ev, void *ud)
{
  struct nest *n = ud;
  struct journal_run run;

  (void)ev;
  n->outer++;
  assert_int_equal(journal_event_foreach(n->j, RUN_A, 0, count_inner, n,
                                         NULL),
                   0);
  assert_int_equal(journal_run_get(n->j, RUN_A, &run, NULL), 0);
  journal_run_release(&run);
  return 0;
}

static void test_reentrant_callbacks(void **state)
{
  struct journal *j = NULL;
  struct nest n = {NULL, 0, 0};

  (void)state;
  assert_int_equal(journal_open(&j, ":memory:", 0, NULL), 0);
  insert_run(j, RUN_A, "w", "", NULL, 0);
  app(j, RUN_A, "run.started", "", 0, NULL);
  app(j, RUN_A, "state.entered", "a", 0, NULL);
  app(j, RUN_A, "state.entered", "b", 0, NULL);
  n.j = j;
  assert_int_equal(journal_event_foreach(j, RUN_A, 0, count_outer, &n, NULL),
                   0);
  assert_int_equal(n.outer, 3);
  assert_int_equal(n.inner, 9);
  /* And the cached statement is usable afterwards. */
  n.inner = 0;
  assert_int_equal(journal_event_foreach(j, RUN_A, 1, count_inner, &n, NULL),
                   0);
  assert_int_equal(n.inner, 2);
  journal_close(j);
}

/* ---- verify ---- */

/* A journal of 6 events over two runs; hashes[i] is event i+1's. */
static void build_six(const char *path, char hashes[6][JOURNAL_HASH_HEX])
{
  struct journal *j = open_new(path);
  struct evlist l;

  insert_run(j, RUN_A, "w", "", NULL, 0);
  insert_run(j, "01HZXTESTRUN00000000000002", "w", "dev", NULL, 0);
  app(j, RUN_A, "run.started", "", 0, "{\"workflow\":\"w\"}");
  app(j, "01HZXTESTRUN00000000000002", "run.started", "", 0,
      "{\"workflow\":\"w\",\"env\":\"dev\"}");
  app(j, RUN_A, "state.entered", "a", 0, "{\"kind\":\"do\"}");
  app(j, RUN_A, "action.started", "a", 1, "{\"attempt\":1}");
  app(j, RUN_A, "action.finished", "a", 1, "{\"outcome\":\"succeeded\"}");
  app(j, RUN_A, "transition", "a", 0, "{\"from\":\"a\",\"to\":\"\"}");
  memset(&l, 0, sizeof l);
  assert_int_equal(journal_event_foreach(j, NULL, 0, collect, &l, NULL), 0);
  assert_int_equal(l.n, 6);
  for (int i = 0; i < 6; i++)
    memcpy(hashes[i], l.ev[i].hash, JOURNAL_HASH_HEX);
  journal_close(j);
}

static void verify_expect(const char *path, int64_t events, int64_t bad,
                          const char *reason)
{
  struct cairn_error err = {0, ""};
  struct journal_verify_result res;
  struct journal *j = NULL;
  char msg[4600];

  assert_int_equal(journal_open(&j, path, 0, &err), 0);
  assert_int_equal(journal_verify(j, &res, &err), CAIRN_E_CHAIN);
  assert_int_equal(res.events, events);
  assert_int_equal(res.first_bad_seq, bad);
  assert_string_equal(res.reason, reason);
  snprintf(msg, sizeof msg, "journal '%s' is broken at event %" PRId64 ": %s",
           path, bad, reason);
  assert_string_equal(err.msg, msg);
  journal_close(j);
}

static void test_verify_intact(void **state)
{
  struct fx *fx = *state;
  struct journal_verify_result res;
  char hashes[6][JOURNAL_HASH_HEX];
  struct journal *j = NULL;

  assert_int_equal(journal_open(&j, ":memory:", 0, NULL), 0);
  assert_int_equal(journal_verify(j, &res, NULL), 0);
  assert_int_equal(res.events, 0);
  journal_close(j);

  build_six(fx->path, hashes);
  assert_int_equal(journal_open(&j, fx->path, JOURNAL_READONLY, NULL), 0);
  assert_int_equal(journal_verify(j, &res, NULL), 0);
  assert_int_equal(res.events, 6);
  assert_int_equal(res.first_bad_seq, 0);
  assert_string_equal(res.last_hash, hashes[5]);
  journal_close(j);
}

/* A run's row is checked against its events: no status event, or no
 * events at all, is reported at a seq the result names. */
static void test_verify_rows(void **state)
{
  struct fx *fx = *state;
  struct cairn_error err = {0, ""};
  struct journal_verify_result res;
  struct journal *j = open_new(fx->path);

  insert_run(j, RUN_A, "w", "", NULL, 0);
  app(j, RUN_A, "state.entered", "a", 0, "{\"kind\":\"do\"}");
  assert_int_equal(journal_verify(j, &res, &err), CAIRN_E_CHAIN);
  assert_int_equal(res.first_bad_seq, 1);
  assert_non_null(strstr(res.reason, "has no event that gives it a status "
                                     "(its first is event 1;"));
  journal_close(j);

  assert_int_equal(journal_open(&j, ":memory:", 0, &err), 0);
  insert_run(j, RUN_A, "w", "", NULL, 0);
  assert_int_equal(journal_verify(j, &res, &err), CAIRN_E_CHAIN);
  assert_int_equal(res.first_bad_seq, 1); /* the seq after the last */
  assert_non_null(strstr(res.reason, "has a row but no events"));
  journal_close(j);
}

static void test_verify_edited(void **state)
{
  struct fx *fx = *state;
  char hashes[6][JOURNAL_HASH_HEX];

  build_six(fx->path, hashes);
  assert_int_equal(raw_exec(fx->path,
                            "DROP TRIGGER events_no_update;"
                            "UPDATE events SET payload = '{\"kind\":\"rm\"}' "
                            "WHERE seq = 3;"),
                   SQLITE_OK);
  verify_expect(fx->path, 6, 3,
                "hash does not match the event's contents (the event was "
                "edited)");
}

static void test_verify_edited_attempt(void **state)
{
  struct fx *fx = *state;
  char hashes[6][JOURNAL_HASH_HEX];

  build_six(fx->path, hashes);
  assert_int_equal(raw_exec(fx->path, "DROP TRIGGER events_no_update;"
                                      "UPDATE events SET attempt = 2 "
                                      "WHERE seq = 5;"),
                   SQLITE_OK);
  verify_expect(fx->path, 6, 5,
                "hash does not match the event's contents (the event was "
                "edited)");
}

static void test_verify_edited_rehashed(void **state)
{
  struct fx *fx = *state;
  char hashes[6][JOURNAL_HASH_HEX], forged[65], sql[512];

  /* The attacker also rewrites event 3's hash: event 4 no longer links. */
  build_six(fx->path, hashes);
  expected_hash(3, RUN_A, "state.entered", "a", "0", "1", "{}", hashes[1],
                forged);
  snprintf(sql, sizeof sql,
           "DROP TRIGGER events_no_update;"
           "UPDATE events SET payload = '{}', time_ms = 1, hash = '%s' "
           "WHERE seq = 3;",
           forged);
  assert_int_equal(raw_exec(fx->path, sql), SQLITE_OK);
  verify_expect(fx->path, 6, 4,
                "prev_hash does not match the hash of event 3 (an event was "
                "removed, inserted or moved)");
}

static void test_verify_deleted(void **state)
{
  struct fx *fx = *state;
  char hashes[6][JOURNAL_HASH_HEX];

  build_six(fx->path, hashes);
  assert_int_equal(raw_exec(fx->path, "DROP TRIGGER events_no_delete;"
                                      "DELETE FROM events WHERE seq = 4;"),
                   SQLITE_OK);
  verify_expect(fx->path, 5, 4, "event 4 is missing");
}

static void test_verify_deleted_first(void **state)
{
  struct fx *fx = *state;
  char hashes[6][JOURNAL_HASH_HEX];

  build_six(fx->path, hashes);
  assert_int_equal(raw_exec(fx->path, "DROP TRIGGER events_no_delete;"
                                      "DELETE FROM events WHERE seq <= 2;"),
                   SQLITE_OK);
  verify_expect(fx->path, 4, 1, "events 1 to 2 are missing");
}

static void test_verify_swapped(void **state)
{
  struct fx *fx = *state;
  char hashes[6][JOURNAL_HASH_HEX];

  build_six(fx->path, hashes);
  assert_int_equal(raw_exec(fx->path, "DROP TRIGGER events_no_update;"
                                      "UPDATE events SET seq = 100 "
                                      "WHERE seq = 3;"
                                      "UPDATE events SET seq = 3 "
                                      "WHERE seq = 4;"
                                      "UPDATE events SET seq = 4 "
                                      "WHERE seq = 100;"),
                   SQLITE_OK);
  verify_expect(fx->path, 6, 3,
                "prev_hash does not match the hash of event 2 (an event was "
                "removed, inserted or moved)");
}

/* ---- replay ---- */

static struct journal_replay replay_ok(struct journal *j, const char *run)
{
  struct cairn_error err = {0, ""};
  struct journal_replay r;

  if (journal_replay(j, run, &r, &err) != 0)
    fail_msg("journal_replay: %s", err.msg);
  return r;
}

static struct journal_step *step(struct journal_replay *r, const char *path)
{
  struct journal_step *s = journal_replay_step(r, path);

  if (s == NULL)
    fail_msg("no step '%s'", path);
  return s;
}

static void assert_order(struct journal_replay *r, const char *const *paths,
                         size_t n)
{
  assert_int_equal(r->nsteps, n);
  for (size_t i = 0; i < n; i++)
    assert_string_equal(r->steps[i].path, paths[i]);
}

static void test_replay_run(void **state)
{
  struct journal *j = NULL;
  struct journal_replay r;
  struct journal_step *s;
  int64_t seq;
  static const char *const order1[] = {"env", "migrate", "infra",
                                       "infra/redis", "infra/pg"};
  static const char *const order2[] = {"env",         "migrate",
                                       "infra",       "infra/redis",
                                       "infra/pg",    "check"};

  (void)state;
  assert_int_equal(journal_open(&j, ":memory:", 0, NULL), 0);
  insert_run(j, RUN_A, "w", "", NULL, 0);
  app(j, RUN_A, "run.started", "", 0,
      "{\"workflow\":\"w\",\"file_sha256\":\"aaa\"}");
  /* Before anything is entered. */
  r = replay_ok(j, RUN_A);
  assert_null(r.current);
  assert_string_equal(r.status, "running");
  assert_int_equal(r.nsteps, 0);
  journal_replay_release(&r);

  app(j, RUN_A, "state.entered", "env", 0,
      "{\"kind\":\"do\",\"inputs\":{\"file\":\".env\"}}");
  r = replay_ok(j, RUN_A);
  assert_string_equal(r.current, "env"); /* first entered, no transition */
  assert_int_equal(step(&r, "env")->phase, JOURNAL_PHASE_ENTERED);
  assert_int_equal(step(&r, "env")->attempt, 0);
  journal_replay_release(&r);

  app(j, RUN_A, "action.started", "env", 1,
      "{\"adapter\":\"secrets.generate\",\"attempt\":1}");
  app(j, RUN_A, "action.spawned", "env", 1,
      "{\"pid\":100,\"pgid\":100,\"proc_start\":5,\"boot_id\":\"b\"}");
  app(j, RUN_A, "action.finished", "env", 1,
      "{\"outcome\":\"succeeded\",\"outputs\":{\"k\":1},\"duration_ms\":3}");
  app(j, RUN_A, "transition", "env", 0,
      "{\"from\":\"env\",\"to\":\"migrate\",\"reason\":\"next\"}");
  app(j, RUN_A, "state.entered", "migrate", 0, "{\"kind\":\"do\"}");
  app(j, RUN_A, "action.started", "migrate", 1, "{\"attempt\":1}");
  app(j, RUN_A, "action.finished", "migrate", 1, "{\"outcome\":\"failed\"}");
  r = replay_ok(j, RUN_A);
  assert_int_equal(step(&r, "migrate")->phase, JOURNAL_PHASE_FAILED);
  assert_int_equal(step(&r, "migrate")->finished_seq, 9);
  journal_replay_release(&r);
  app(j, RUN_A, "action.retrying", "migrate", 1,
      "{\"delay_ms\":1000,\"next_attempt\":2}");
  r = replay_ok(j, RUN_A);
  assert_int_equal(step(&r, "migrate")->phase, JOURNAL_PHASE_RETRY_WAIT);
  assert_int_equal(step(&r, "migrate")->finished_seq, 0);
  assert_string_equal(r.current, "migrate");
  journal_replay_release(&r);
  app(j, RUN_A, "action.started", "migrate", 2, "{\"attempt\":2}");
  app(j, RUN_A, "action.finished", "migrate", 2,
      "{\"outcome\":\"succeeded\",\"outputs\":{\"from_version\":3}}");
  app(j, RUN_A, "transition", "migrate", 0,
      "{\"from\":\"migrate\",\"to\":\"infra\",\"reason\":\"next\"}");
  app(j, RUN_A, "state.entered", "infra", 0, "{\"kind\":\"parallel\"}");
  app(j, RUN_A, "state.entered", "infra/redis", 0, "{\"kind\":\"do\"}");
  app(j, RUN_A, "state.entered", "infra/pg", 0, "{\"kind\":\"use\"}");
  app(j, RUN_A, "action.started", "infra/redis", 1, NULL);
  app(j, RUN_A, "action.started", "infra/pg", 1, NULL);
  app(j, RUN_A, "action.spawned", "infra/pg", 1, "{\"pid\":200}");
  app(j, RUN_A, "action.finished", "infra/redis", 1,
      "{\"outcome\":\"succeeded\",\"outputs\":{\"port\":6379}}");
  seq = app(j, RUN_A, "run.interrupted", "", 0, "{\"signal\":\"SIGINT\"}");
  assert_int_equal(seq, 21);

  /* Interrupted in the middle of the parallel state. */
  r = replay_ok(j, RUN_A);
  assert_string_equal(r.run_id, RUN_A);
  assert_string_equal(r.status, "interrupted");
  assert_string_equal(r.current, "infra");
  assert_string_equal(r.file_sha256, "aaa");
  assert_string_equal(json_string_value(json_object_get(r.started,
                                                        "workflow")),
                      "w");
  assert_int_equal(r.events, 21);
  assert_int_equal(r.last_seq, 21);
  assert_order(&r, order1, 5);
  s = step(&r, "env");
  assert_string_equal(s->kind, "do");
  assert_int_equal(s->phase, JOURNAL_PHASE_SUCCEEDED);
  assert_int_equal(s->attempt, 1);
  assert_int_equal(s->entered_seq, 2);
  assert_int_equal(s->finished_seq, 5);
  assert_true(s->finished_ms >= s->entered_ms && s->entered_ms > 0);
  assert_int_equal(json_integer_value(json_object_get(s->outputs, "k")), 1);
  assert_int_equal(json_integer_value(json_object_get(s->spawn, "pid")), 100);
  assert_string_equal(json_string_value(json_object_get(s->inputs, "file")),
                      ".env");
  s = step(&r, "migrate");
  assert_int_equal(s->phase, JOURNAL_PHASE_SUCCEEDED);
  assert_int_equal(s->attempt, 2);
  assert_int_equal(s->finished_seq, 12);
  assert_int_equal(
      json_integer_value(json_object_get(s->outputs, "from_version")), 3);
  assert_null(s->spawn);
  s = step(&r, "infra");
  assert_int_equal(s->phase, JOURNAL_PHASE_ENTERED);
  assert_string_equal(s->kind, "parallel");
  assert_int_equal(step(&r, "infra/redis")->phase, JOURNAL_PHASE_SUCCEEDED);
  assert_int_equal(step(&r, "infra/redis")->finished_seq, 20);
  s = step(&r, "infra/pg");
  assert_int_equal(s->phase, JOURNAL_PHASE_STARTED);
  assert_int_equal(s->attempt, 1);
  assert_int_equal(json_integer_value(json_object_get(s->spawn, "pid")), 200);
  assert_null(s->finished);
  assert_null(s->outputs);
  assert_int_equal(s->finished_seq, 0);
  assert_null(journal_replay_step(&r, "nope"));
  journal_replay_release(&r);

  /* Resumed with a changed file; the probe says pg did not happen. */
  app(j, RUN_A, "run.resumed", "", 0,
      "{\"actor\":\"a\",\"allow_changed\":true,\"file_sha256\":\"bbb\"}");
  app(j, RUN_A, "workflow.changed", "", 0,
      "{\"old_sha256\":\"aaa\",\"new_sha256\":\"bbb\",\"actor\":\"a\"}");
  app(j, RUN_A, "lock.taken_over", "", 0, "{\"run_id\":\"x\",\"pid\":1}");
  app(j, RUN_A, "probe.finished", "infra/pg", 1, "{\"outcome\":\"failed\"}");
  r = replay_ok(j, RUN_A);
  assert_string_equal(r.status, "running");
  assert_string_equal(r.file_sha256, "bbb");
  s = step(&r, "infra/pg");
  assert_int_equal(s->phase, JOURNAL_PHASE_ENTERED);
  assert_int_equal(s->attempt, 1); /* the next attempt is 2 */
  assert_int_equal(s->finished_seq, 0);
  journal_replay_release(&r);

  app(j, RUN_A, "action.started", "infra/pg", 2, NULL);
  app(j, RUN_A, "action.finished", "infra/pg", 2,
      "{\"outcome\":\"interrupted\"}");
  r = replay_ok(j, RUN_A);
  s = step(&r, "infra/pg");
  assert_int_equal(s->phase, JOURNAL_PHASE_INTERRUPTED);
  assert_int_equal(s->attempt, 2);
  assert_int_equal(s->finished_seq, 0);
  assert_non_null(s->finished);
  assert_null(s->spawn);
  journal_replay_release(&r);

  app(j, RUN_A, "action.started", "infra/pg", 0, "{\"attempt\":3}");
  app(j, RUN_A, "action.finished", "infra/pg", 3,
      "{\"outcome\":\"succeeded\"}");
  app(j, RUN_A, "transition", "infra", 0,
      "{\"from\":\"infra\",\"to\":\"check\",\"reason\":\"next\"}");
  app(j, RUN_A, "state.entered", "check", 0, "{\"kind\":\"choice\"}");
  app(j, RUN_A, "transition", "check", 0,
      "{\"from\":\"check\",\"to\":\"migrate\",\"reason\":\"when:x\"}");
  seq = app(j, RUN_A, "state.entered", "migrate", 0,
            "{\"kind\":\"do\",\"inputs\":{\"v\":2}}");
  /* A second entry starts migrate afresh, in its first place. */
  r = replay_ok(j, RUN_A);
  assert_int_equal(step(&r, "infra/pg")->attempt, 3);
  assert_int_equal(step(&r, "infra/pg")->phase, JOURNAL_PHASE_SUCCEEDED);
  assert_string_equal(r.current, "migrate");
  assert_order(&r, order2, 6);
  s = step(&r, "migrate");
  assert_int_equal(s->phase, JOURNAL_PHASE_ENTERED);
  assert_int_equal(s->attempt, 0);
  assert_int_equal(s->entered_seq, seq);
  assert_int_equal(s->finished_seq, 0);
  assert_null(s->outputs);
  assert_null(s->finished);
  assert_int_equal(json_integer_value(json_object_get(s->inputs, "v")), 2);
  journal_replay_release(&r);

  /* Crashed after spawning; the operator assumes it succeeded. */
  app(j, RUN_A, "action.started", "migrate", 1, NULL);
  app(j, RUN_A, "action.spawned", "migrate", 1, "{\"pid\":300}");
  seq = app(j, RUN_A, "decision.assumed", "migrate", 1,
            "{\"outcome\":\"succeeded\",\"actor\":\"a\"}");
  app(j, RUN_A, "transition", "migrate", 0,
      "{\"from\":\"migrate\",\"to\":\"\",\"reason\":\"succeed\"}");
  r = replay_ok(j, RUN_A);
  assert_null(r.current); /* `to` "" ends the run */
  assert_int_equal(step(&r, "migrate")->phase, JOURNAL_PHASE_SUCCEEDED);
  assert_int_equal(step(&r, "migrate")->finished_seq, seq);
  journal_replay_release(&r);
  app(j, RUN_A, "run.finished", "", 0, "{\"status\":\"succeeded\"}");
  r = replay_ok(j, RUN_A);
  assert_string_equal(r.status, "succeeded");
  assert_null(r.current);
  assert_int_equal(r.events, 38);
  journal_replay_release(&r);
  journal_replay_release(&r); /* released twice: harmless */
  journal_close(j);
}

static void test_replay_reentry_and_decisions(void **state)
{
  struct journal *j = NULL;
  struct journal_replay r;
  static const char *const before[] = {"infra", "infra/a", "infrax",
                                       "infra/b", "x"};
  static const char *const after[] = {"infra", "infrax", "x", "infra/b"};

  (void)state;
  assert_int_equal(journal_open(&j, ":memory:", 0, NULL), 0);
  insert_run(j, RUN_A, "w", "", NULL, 0);
  app(j, RUN_A, "run.started", "", 0, NULL);
  app(j, RUN_A, "state.entered", "infra", 0, "{\"kind\":\"parallel\"}");
  app(j, RUN_A, "state.entered", "infra/a", 0, NULL);
  app(j, RUN_A, "state.entered", "infrax", 0, NULL);
  app(j, RUN_A, "state.entered", "infra/b", 0, NULL);
  app(j, RUN_A, "action.started", "infra/a", 1, NULL);
  app(j, RUN_A, "action.finished", "infra/a", 1,
      "{\"outcome\":\"timed_out\"}");
  app(j, RUN_A, "action.started", "infra/b", 1, NULL);
  app(j, RUN_A, "action.finished", "infra/b", 1,
      "{\"outcome\":\"cancelled\"}");
  app(j, RUN_A, "transition", "infra", 0, "{\"from\":\"infra\",\"to\":\"x\"}");
  app(j, RUN_A, "state.entered", "x", 0, NULL);
  app(j, RUN_A, "action.started", "x", 1, NULL);
  app(j, RUN_A, "decision.assumed", "x", 1, "{\"outcome\":\"failed\"}");
  r = replay_ok(j, RUN_A);
  assert_order(&r, before, 5);
  assert_int_equal(step(&r, "infra/a")->phase, JOURNAL_PHASE_FAILED);
  assert_int_equal(step(&r, "infra/b")->phase, JOURNAL_PHASE_CANCELLED);
  assert_int_equal(step(&r, "infra/b")->finished_seq, 9);
  assert_int_equal(step(&r, "x")->phase, JOURNAL_PHASE_FAILED);
  assert_int_equal(step(&r, "x")->finished_seq, 13);
  assert_null(step(&r, "x")->kind); /* state.entered without a kind */
  journal_replay_release(&r);

  /* Entering infra again drops its branches (not "infrax"); a branch
   * entered again comes back at the end. */
  app(j, RUN_A, "transition", "x", 0, "{\"from\":\"x\",\"to\":\"infra\"}");
  app(j, RUN_A, "state.entered", "infra", 0, "{\"kind\":\"parallel\"}");
  app(j, RUN_A, "state.entered", "infra/b", 0, NULL);
  app(j, RUN_A, "notify.sent", "", 0, "{\"plan\":[]}"); /* unknown */
  r = replay_ok(j, RUN_A);
  assert_order(&r, after, 4);
  assert_null(r.rollback);
  assert_int_equal(step(&r, "infra/b")->phase, JOURNAL_PHASE_ENTERED);
  assert_int_equal(step(&r, "infra/b")->attempt, 0);
  assert_int_equal(step(&r, "infra")->entered_seq, 15);
  assert_null(journal_replay_step(&r, "infra/a"));
  assert_string_equal(r.current, "infra");
  journal_replay_release(&r);

  app(j, RUN_A, "probe.finished", "infra/b", 0, "{\"outcome\":\"succeeded\"}");
  r = replay_ok(j, RUN_A);
  assert_int_equal(step(&r, "infra/b")->phase, JOURNAL_PHASE_SUCCEEDED);
  journal_replay_release(&r);

  /* A rollback: the transition's "rollback" is the current place, the
   * plan is kept whole, and an undo path is a step like any other. */
  app(j, RUN_A, "transition", "infra", 0,
      "{\"from\":\"infra\",\"to\":\"rollback\"}");
  app(j, RUN_A, "rollback.planned", "infra", 0,
      "{\"reason\":\"failure\",\"steps\":[{\"path\":\"infra/b\","
      "\"undo_path\":\"undo:infra/b\"}]}");
  app(j, RUN_A, "state.entered", "undo:infra/b", 0, "{\"kind\":\"undo\"}");
  r = replay_ok(j, RUN_A);
  assert_string_equal(r.current, "rollback");
  assert_int_equal(json_array_size(json_object_get(r.rollback, "steps")), 1);
  assert_int_equal(step(&r, "undo:infra/b")->phase, JOURNAL_PHASE_ENTERED);
  assert_int_equal(step(&r, "infra/b")->phase, JOURNAL_PHASE_SUCCEEDED);
  journal_replay_release(&r);
  journal_close(j);
}

static void test_replay_errors(void **state)
{
  struct cairn_error err = {0, ""};
  struct journal *j = NULL;
  struct journal_replay r;

  (void)state;
  assert_int_equal(journal_open(&j, ":memory:", 0, NULL), 0);
  assert_int_equal(journal_replay(j, RUN_A, &r, &err), CAIRN_E_NORUN);
  assert_string_equal(err.msg,
                      "no events of run '" RUN_A "' in journal ':memory:'");
  assert_null(r.status);
  insert_run(j, RUN_A, "w", "", NULL, 0);
  app(j, RUN_A, "run.started", "", 0, NULL);
  app(j, RUN_A, "action.started", "ghost", 1, NULL);
  assert_int_equal(journal_replay(j, RUN_A, &r, &err), CAIRN_E_JOURNAL);
  assert_string_equal(err.msg,
                      "event 2 of run '" RUN_A "' in journal ':memory:': "
                      "action.started of 'ghost' before its state.entered");
  assert_int_equal(r.nsteps, 0);
  assert_null(r.steps);

  insert_run(j, "01HZXTESTRUN00000000000002", "w", "", NULL, 0);
  app(j, "01HZXTESTRUN00000000000002", "state.entered", "s", 0, NULL);
  app(j, "01HZXTESTRUN00000000000002", "action.started", "s", 1, NULL);
  app(j, "01HZXTESTRUN00000000000002", "action.finished", "s", 2,
      "{\"outcome\":\"succeeded\"}");
  assert_int_equal(journal_replay(j, "01HZXTESTRUN00000000000002", &r, &err),
                   CAIRN_E_JOURNAL);
  assert_string_equal(err.msg,
                      "event 5 of run '01HZXTESTRUN00000000000002' in "
                      "journal ':memory:': action.finished of 's' is for "
                      "attempt 2 but attempt 1 was started");

  insert_run(j, "01HZXTESTRUN00000000000003", "w", "", NULL, 0);
  app(j, "01HZXTESTRUN00000000000003", "state.entered", "s", 0, NULL);
  app(j, "01HZXTESTRUN00000000000003", "action.started", "s", 1, NULL);
  app(j, "01HZXTESTRUN00000000000003", "action.finished", "s", 1,
      "{\"outcome\":\"exploded\"}");
  assert_int_equal(journal_replay(j, "01HZXTESTRUN00000000000003", &r, &err),
                   CAIRN_E_JOURNAL);
  assert_string_equal(err.msg,
                      "event 8 of run '01HZXTESTRUN00000000000003' in "
                      "journal ':memory:': action.finished with unknown "
                      "outcome 'exploded'");

  insert_run(j, "01HZXTESTRUN00000000000004", "w", "", NULL, 0);
  app(j, "01HZXTESTRUN00000000000004", "rollback.planned", "", 0,
      "{\"steps\":{}}");
  assert_int_equal(journal_replay(j, "01HZXTESTRUN00000000000004", &r, &err),
                   CAIRN_E_JOURNAL);
  assert_string_equal(err.msg,
                      "event 9 of run '01HZXTESTRUN00000000000004' in "
                      "journal ':memory:': rollback.planned without steps");
  journal_close(j);
}

/* ---- runs ---- */

struct idlist {
  int n;
  char ids[8][JOURNAL_RUN_ID_LEN];
  int stop_after;
};

static int collect_id(const struct journal_run *run, void *ud)
{
  struct idlist *l = ud;

  assert_true(l->n < 8);
  memcpy(l->ids[l->n++], run->id, JOURNAL_RUN_ID_LEN);
  return l->stop_after != 0 && l->n == l->stop_after ? 7 : 0;
}

#define RA "01AAAAAAAAAAAAAAAAAAAAAAA1"
#define RB "01AAAAAAAAAAAAAAAAAAAAAAA2"
#define RC "01BBBBBBBBBBBBBBBBBBBBBBB3"

static void list_expect(struct journal *j, struct journal_run_filter f,
                        const char *a, const char *b, const char *c)
{
  const char *want[3] = {a, b, c};
  struct idlist l;
  int n = 0;

  memset(&l, 0, sizeof l);
  assert_int_equal(journal_run_foreach(j, &f, collect_id, &l, NULL), 0);
  for (int i = 0; i < 3; i++)
    if (want[i] != NULL)
      assert_string_equal(l.ids[n++], want[i]);
  assert_int_equal(l.n, n);
}

static void test_runs(void **state)
{
  struct fx *fx = *state;
  struct cairn_error err = {0, ""};
  struct journal *j = open_new(fx->path);
  struct journal_run run, got;
  struct journal_run_filter f;
  struct idlist l;
  int64_t before;

  memset(&run, 0, sizeof run);
  snprintf(run.id, sizeof run.id, RA);
  run.workflow = "w1";
  run.file = "/srv/w1.yaml";
  run.file_sha256 = "abc123";
  run.env = "dev";
  run.release = "";
  run.params = json_pack("{s:s, s:i}", "region", "eu", "replicas", 2);
  run.status = JOURNAL_STATUS_RUNNING;
  run.actor = "ann@box";
  run.created_ms = 1000;
  assert_int_equal(journal_run_insert(j, &run, &err), 0);
  assert_int_equal(journal_run_insert(j, &run, &err), CAIRN_E_JOURNAL);
  json_decref(run.params);
  {
    char msg[1024];

    snprintf(msg, sizeof msg, "run '" RA "' already exists in journal '%s'",
             fx->path);
    assert_string_equal(err.msg, msg);
  }

  memset(&run, 0, sizeof run);
  snprintf(run.id, sizeof run.id, RB);
  run.workflow = "w1";
  run.env = "prod";
  run.release = "1.0";
  run.status = JOURNAL_STATUS_SUCCEEDED;
  run.created_ms = 2000;
  assert_int_equal(journal_run_insert(j, &run, &err), 0);
  snprintf(run.id, sizeof run.id, RC);
  run.workflow = "w2";
  run.env = "dev";
  run.release = NULL;
  run.status = JOURNAL_STATUS_FAILED;
  run.parent = RA;
  run.created_ms = 3000;
  assert_int_equal(journal_run_insert(j, &run, &err), 0);

  /* Full id. */
  assert_int_equal(journal_run_get(j, RA, &got, &err), 0);
  assert_string_equal(got.id, RA);
  assert_string_equal(got.workflow, "w1");
  assert_string_equal(got.file, "/srv/w1.yaml");
  assert_string_equal(got.file_sha256, "abc123");
  assert_string_equal(got.env, "dev");
  assert_string_equal(got.release, "");
  assert_string_equal(got.status, "running");
  assert_string_equal(got.actor, "ann@box");
  assert_string_equal(got.parent, "");
  assert_int_equal(got.created_ms, 1000);
  assert_int_equal(got.updated_ms, 1000);
  assert_int_equal(got.finished_ms, 0);
  assert_string_equal(json_string_value(json_object_get(got.params, "region")),
                      "eu");
  assert_int_equal(
      json_integer_value(json_object_get(got.params, "replicas")), 2);
  journal_run_release(&got);
  journal_run_release(NULL);

  /* Prefixes: unique (any case), ambiguous, none, too short. */
  assert_int_equal(journal_run_get(j, "01bbb", &got, &err), 0);
  assert_string_equal(got.id, RC);
  assert_string_equal(got.parent, RA);
  assert_string_equal(got.release, "");
  assert_int_equal(json_object_size(got.params), 0);
  journal_run_release(&got);
  assert_int_equal(journal_run_get(j, "01AA", &got, &err), CAIRN_E_AMBIGUOUS);
  assert_string_equal(err.msg, "run prefix '01AA' is ambiguous (it matches "
                               RA ", " RB " and maybe more)");
  assert_null(got.workflow);
  assert_int_equal(journal_run_get(j, "01ZZ", &got, &err), CAIRN_E_NORUN);
  assert_int_equal(journal_run_get(j, "01B", &got, &err), CAIRN_E_NORUN);
  assert_int_equal(journal_run_get(j, "01__", &got, &err), CAIRN_E_NORUN);
  assert_int_equal(journal_run_get(j, "", &got, &err), CAIRN_E_NORUN);

  /* Listing, newest first, with filters. */
  memset(&f, 0, sizeof f);
  list_expect(j, f, RC, RB, RA);
  f.workflow = "w1";
  list_expect(j, f, RB, RA, NULL);
  memset(&f, 0, sizeof f);
  f.env = "dev";
  list_expect(j, f, RC, RA, NULL);
  memset(&f, 0, sizeof f);
  f.status = "failed";
  list_expect(j, f, RC, NULL, NULL);
  memset(&f, 0, sizeof f);
  f.release = "1.0";
  list_expect(j, f, RB, NULL, NULL);
  memset(&f, 0, sizeof f);
  f.since_ms = 2000;
  list_expect(j, f, RC, RB, NULL);
  memset(&f, 0, sizeof f);
  f.limit = 2;
  list_expect(j, f, RC, RB, NULL);
  memset(&f, 0, sizeof f);
  f.workflow = "w1";
  f.env = "prod";
  list_expect(j, f, RB, NULL, NULL);
  f.env = "staging";
  list_expect(j, f, NULL, NULL, NULL);
  memset(&l, 0, sizeof l);
  l.stop_after = 1;
  assert_int_equal(journal_run_foreach(j, NULL, collect_id, &l, NULL), 7);
  assert_int_equal(l.n, 1);

  /* Status. */
  before = journal_now_ms();
  assert_int_equal(journal_run_set_status(j, RA, "failed", 5000, &err), 0);
  assert_int_equal(journal_run_get(j, RA, &got, &err), 0);
  assert_string_equal(got.status, "failed");
  assert_int_equal(got.finished_ms, 5000);
  assert_true(got.updated_ms >= before);
  journal_run_release(&got);
  assert_int_equal(journal_run_set_status(j, RA, "interrupted", 0, &err), 0);
  assert_int_equal(journal_run_get(j, RA, &got, &err), 0);
  assert_string_equal(got.status, "interrupted");
  assert_int_equal(got.finished_ms, 5000);
  journal_run_release(&got);
  assert_int_equal(journal_run_set_status(j, "01NOPE", "failed", 0, &err),
                   CAIRN_E_NORUN);
  journal_close(j);
}

static int64_t ulid_time(const char *id)
{
  static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  int64_t t = 0;

  for (int i = 0; i < 10; i++) {
    const char *p = strchr(alphabet, id[i]);

    assert_non_null(p);
    t = t * 32 + (p - alphabet);
  }
  return t;
}

static void test_run_ids(void **state)
{
  char a[JOURNAL_RUN_ID_LEN], b[JOURNAL_RUN_ID_LEN];
  struct timespec nap = {0, 3 * 1000000L};
  int64_t t0 = journal_now_ms(), t1;

  (void)state;
  assert_int_equal(journal_new_run_id(a, NULL), 0);
  t1 = journal_now_ms();
  assert_int_equal(strlen(a), 26);
  assert_int_equal(strspn(a, "0123456789ABCDEFGHJKMNPQRSTVWXYZ"), 26);
  assert_true(ulid_time(a) >= t0 && ulid_time(a) <= t1);
  nanosleep(&nap, NULL);
  assert_int_equal(journal_new_run_id(b, NULL), 0);
  assert_true(strcmp(a, b) < 0); /* time-sortable */
  assert_string_not_equal(a + 10, b + 10); /* random part */
}

/* ---- locks ---- */

static void put_lock(struct journal *j, const char *run, int pid,
                     const char *host, int64_t start, const char *boot)
{
  char *sql = sqlite3_mprintf(
      "INSERT OR REPLACE INTO locks (workflow, env, run_id, pid, host, "
      "proc_start, boot_id, acquired_ms, heartbeat_ms) "
      "VALUES ('deploy', 'prod', %Q, %d, %Q, %lld, %Q, 1, 1)",
      run, pid, host, (long long)start, boot);

  assert_int_equal(sqlite3_exec(j->db, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_free(sql);
}

static int dead_pid(void)
{
  pid_t pid = fork();
  int status;

  assert_true(pid >= 0);
  if (pid == 0)
    _exit(0);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  return (int)pid;
}

/* A child that waits until killed; returns its pid. */
static pid_t sleeper(int own_group)
{
  int fds[2];
  char c;
  pid_t pid;

  assert_int_equal(pipe(fds), 0);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    if (own_group)
      setpgid(0, 0);
    if (write(fds[1], "r", 1) != 1)
      _exit(1);
    child_wait();
  }
  track(pid);
  close(fds[1]);
  assert_int_equal(read(fds[0], &c, 1), 1);
  close(fds[0]);
  return pid;
}

static void reap(pid_t pid)
{
  int status;

  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
}

static void test_locks(void **state)
{
  struct fx *fx = *state;
  struct cairn_error err = {0, ""};
  struct journal *j = open_new(fx->path), *j2 = NULL;
  struct journal_lock_holder h;
  char host[256], boot[40];
  int64_t me_start, child_start;
  int taken = -1, alive = -1;
  pid_t child;

  gethostname(host, sizeof host);
  host[255] = '\0';
  cairn_proc_boot_id(boot);
  assert_int_equal(cairn_proc_start_time(getpid(), &me_start), 0);

  assert_int_equal(journal_lock_get(j, "deploy", "prod", &h, &alive, &err),
                   CAIRN_E_NOTFOUND);
  assert_int_equal(journal_lock_acquire(j, "deploy", "prod", RA, &h, &taken,
                                        &err),
                   0);
  assert_int_equal(taken, 0);
  assert_int_equal(journal_lock_get(j, "deploy", "prod", &h, &alive, &err),
                   0);
  assert_string_equal(h.run_id, RA);
  assert_int_equal(h.pid, getpid());
  assert_string_equal(h.host, host);
  assert_int_equal(h.proc_start, me_start);
  assert_true(h.acquired_ms > 0 && h.heartbeat_ms >= h.acquired_ms);
  assert_int_equal(alive, 1);

  /* Another run, even from this live process: refused, holder named. */
  memset(&h, 0, sizeof h);
  assert_int_equal(journal_lock_acquire(j, "deploy", "prod", RB, &h, &taken,
                                        &err),
                   CAIRN_E_LOCKED);
  assert_string_equal(h.run_id, RA);
  assert_int_equal(h.pid, getpid());
  assert_int_equal(taken, 0);
  {
    char msg[512];

    snprintf(msg, sizeof msg,
             "workflow 'deploy' env 'prod' is locked by run " RA
             " (pid %d on %s) (hint: wait for it to end, or stop it with "
             "Ctrl-C or kill %d; 'cairn status' shows it)",
             (int)getpid(), host, (int)getpid());
    assert_string_equal(err.msg, msg);
  }
  /* Other keys are independent; the same run again is fine. */
  assert_int_equal(journal_lock_acquire(j, "deploy", "dev", RB, NULL, NULL,
                                        &err),
                   0);
  assert_int_equal(journal_lock_acquire(j, "deploy", "prod", RA, NULL, &taken,
                                        &err),
                   0);
  assert_int_equal(taken, 0);
  assert_int_equal(journal_lock_heartbeat(j, "deploy", "prod", RA, &err), 0);
  assert_int_equal(journal_lock_heartbeat(j, "deploy", "prod", RB, &err),
                   CAIRN_E_NOTFOUND);

  /* Release by another run does nothing; by the holder frees it. */
  assert_int_equal(journal_lock_release(j, "deploy", "prod", RB, &err), 0);
  assert_int_equal(journal_lock_get(j, "deploy", "prod", &h, NULL, &err), 0);
  assert_int_equal(journal_lock_release(j, "deploy", "prod", RA, &err), 0);
  assert_int_equal(journal_lock_get(j, "deploy", "prod", &h, NULL, &err),
                   CAIRN_E_NOTFOUND);

  /* A dead holder (its pid is gone) is taken over. */
  put_lock(j, RC, dead_pid(), host, 12345, boot);
  assert_int_equal(journal_lock_get(j, "deploy", "prod", &h, &alive, &err),
                   0);
  assert_int_equal(alive, 0);
  assert_int_equal(journal_lock_acquire(j, "deploy", "prod", RB, &h, &taken,
                                        &err),
                   0);
  assert_int_equal(taken, 1);
  assert_string_equal(h.run_id, RC);
  assert_int_equal(h.proc_start, 12345);
  assert_int_equal(journal_lock_get(j, "deploy", "prod", &h, &alive, &err),
                   0);
  assert_string_equal(h.run_id, RB);
  assert_int_equal(h.pid, getpid());
  assert_int_equal(alive, 1);

  /* A live process holding it: refused; the same pid with another start
   * time (a reused pid) or from another boot: taken over. */
  child = sleeper(0);
  assert_int_equal(cairn_proc_start_time(child, &child_start), 0);
  put_lock(j, RC, child, host, child_start, boot);
  assert_int_equal(journal_lock_acquire(j, "deploy", "prod", RB, &h, &taken,
                                        &err),
                   CAIRN_E_LOCKED);
  assert_int_equal(h.pid, child);
  /* Two resumes of one run: the live one keeps it. */
  assert_int_equal(journal_lock_acquire(j, "deploy", "prod", RC, &h, &taken,
                                        &err),
                   CAIRN_E_LOCKED);
  put_lock(j, RC, child, host, child_start + 1, boot);
  assert_int_equal(journal_lock_acquire(j, "deploy", "prod", RB, &h, &taken,
                                        &err),
                   0);
  assert_int_equal(taken, 1);
  assert_int_equal(h.pid, child);
  assert_int_equal(h.proc_start, child_start + 1);
  put_lock(j, RC, child, host, child_start, "another-boot");
  assert_int_equal(journal_lock_acquire(j, "deploy", "prod", RB, &h, &taken,
                                        &err),
                   0);
  assert_int_equal(taken, 1);
  reap(child);

  /* On another host a holder is assumed alive, even with a dead pid. */
  put_lock(j, RC, dead_pid(), "some-other-host.example", 1, "");
  assert_int_equal(journal_lock_acquire(j, "deploy", "prod", RB, &h, &taken,
                                        &err),
                   CAIRN_E_LOCKED);
  assert_string_equal(h.host, "some-other-host.example");

  /* Resume after a crash: the same run, a dead holder, not a takeover. */
  put_lock(j, RC, dead_pid(), host, 99, boot);
  assert_int_equal(journal_lock_acquire(j, "deploy", "prod", RC, &h, &taken,
                                        &err),
                   0);
  assert_int_equal(taken, 0);
  assert_int_equal(h.proc_start, 99);
  assert_int_equal(journal_lock_get(j, "deploy", "prod", &h, &alive, &err),
                   0);
  assert_int_equal(h.pid, getpid());
  assert_int_equal(h.acquired_ms, 1); /* the run has held it since */

  /* A lock refused inside an explicit transaction leaves it usable. */
  assert_int_equal(journal_open(&j2, fx->path, 0, &err), 0);
  assert_int_equal(journal_begin(j2, &err), 0);
  assert_int_equal(journal_lock_acquire(j2, "deploy", "prod", RA, NULL, NULL,
                                        &err),
                   CAIRN_E_LOCKED);
  assert_int_equal(journal_commit(j2, &err), 0);
  journal_close(j2);
  journal_close(j);
}

static void test_lock_race(void **state)
{
  struct fx *fx = *state;
  struct journal *j = open_new(fx->path);
  enum { N = 8 };
  int go[2], res[2], done[2], wins = 0, locked = 0;
  pid_t kids[N];

  journal_close(j);
  assert_int_equal(pipe(go), 0);
  assert_int_equal(pipe(res), 0);
  assert_int_equal(pipe(done), 0);
  for (int i = 0; i < N; i++) {
    kids[i] = fork();
    assert_true(kids[i] >= 0);
    if (kids[i] == 0) {
      struct journal *cj = NULL;
      char run[JOURNAL_RUN_ID_LEN], c = 'E', buf;
      ssize_t n;

      close(go[1]);
      close(res[0]);
      close(done[1]);
      snprintf(run, sizeof run, "01RACE%020d", i);
      if (journal_open(&cj, fx->path, 0, NULL) == 0) {
        while ((n = read(go[0], &buf, 1)) < 0 && errno == EINTR)
          ;
        switch (journal_lock_acquire(cj, "deploy", "", run, NULL, NULL,
                                     NULL)) {
        case 0:
          c = 'W';
          break;
        case CAIRN_E_LOCKED:
          c = 'L';
          break;
        default:
          break;
        }
      }
      if (write(res[1], &c, 1) != 1)
        _exit(2);
      while ((n = read(done[0], &buf, 1)) < 0 && errno == EINTR)
        ; /* stay alive (the holder) until the parent has counted */
      _exit(0);
    }
  }
  close(go[0]);
  close(res[1]);
  close(done[0]);
  close(go[1]); /* all at once */
  for (int i = 0; i < N; i++) {
    char c;

    assert_int_equal(read(res[0], &c, 1), 1);
    wins += c == 'W';
    locked += c == 'L';
  }
  close(done[1]);
  close(res[0]);
  for (int i = 0; i < N; i++) {
    int status;

    assert_int_equal(waitpid(kids[i], &status, 0), kids[i]);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  assert_int_equal(wins, 1);
  assert_int_equal(locked, N - 1);
}

/* ---- the crash hook ---- */

static void test_crash_hook(void **state)
{
#ifdef CAIRN_TEST_HOOKS
  struct fx *fx = *state;
  struct journal *j = open_new(fx->path);
  int status;
  pid_t pid;

  insert_run(j, RUN_A, "w", "", NULL, 0);
  journal_close(j);

  /* Own-transaction appends: dies right after the second commit. */
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    struct journal *cj = NULL;
    char n[32];

    if (journal_open(&cj, fx->path, 0, NULL) != 0)
      _exit(3);
    snprintf(n, sizeof n, "%ld", journal__test_commits() + 2);
    setenv("CAIRN_TEST_KILL_AFTER_COMMIT", n, 1);
    journal_append(cj, RUN_A, "run.started", "", 0, 0,
                   json_pack("{s:s}", "workflow", "w"), NULL, NULL);
    journal_append(cj, RUN_A, "e2", "", 0, 0, NULL, NULL, NULL);
    journal_append(cj, RUN_A, "e3", "", 0, 0, NULL, NULL, NULL);
    _exit(0);
  }
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status));
  assert_int_equal(WTERMSIG(status), SIGKILL);
  assert_int_equal(journal_open(&j, fx->path, 0, NULL), 0);
  assert_int_equal(event_count(j), 2);
  journal_close(j);

  /* An explicit transaction is one commit. */
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    struct journal *cj = NULL;
    char n[32];

    if (journal_open(&cj, fx->path, 0, NULL) != 0)
      _exit(3);
    snprintf(n, sizeof n, "%ld", journal__test_commits() + 1);
    setenv("CAIRN_TEST_KILL_AFTER_COMMIT", n, 1);
    journal_begin(cj, NULL);
    journal_append(cj, RUN_A, "e4", "", 0, 0, NULL, NULL, NULL);
    journal_append(cj, RUN_A, "e5", "", 0, 0, NULL, NULL, NULL);
    journal_commit(cj, NULL);
    journal_append(cj, RUN_A, "e6", "", 0, 0, NULL, NULL, NULL);
    _exit(0);
  }
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  assert_int_equal(journal_open(&j, fx->path, 0, NULL), 0);
  assert_int_equal(event_count(j), 4);
  assert_int_equal(journal_verify(j, &(struct journal_verify_result){0}, NULL),
                   0);
  journal_close(j);
#else
  (void)state;
  skip();
#endif
}

/* ---- common/proc.c ---- */

static char proc_state(pid_t pid)
{
  char path[64], buf[512], *p;
  FILE *fp;

  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  fp = fopen(path, "r");
  if (fp == NULL)
    return 0;
  p = fgets(buf, sizeof buf, fp);
  fclose(fp);
  if (p == NULL || (p = strrchr(buf, ')')) == NULL)
    return 0;
  return p[2];
}

static void test_proc_start_time(void **state)
{
  int64_t st = 0, t1 = 0, t2 = 0;
  int tochild[2], toparent[2];
  char c, comm[64];
  pid_t pid, dead;
  FILE *fp;

  (void)state;
  assert_int_equal(cairn_proc_start_time(getpid(), &st), 0);
  assert_true(st > 0);
  assert_int_equal(cairn_proc_alive(getpid(), st), 1);
  assert_int_equal(cairn_proc_alive(getpid(), 0), 1);
  assert_int_equal(cairn_proc_alive(getpid(), st + 1), 0);
  dead = dead_pid();
  assert_int_equal(cairn_proc_start_time(dead, &st), -ESRCH);
  assert_int_equal(cairn_proc_alive(dead, 0), 0);
  assert_int_equal(cairn_proc_start_time(0, &st), -ESRCH);

  /* A name with spaces and parentheses does not shift the fields. */
  assert_int_equal(pipe(tochild), 0);
  assert_int_equal(pipe(toparent), 0);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (read(tochild[0], &c, 1) != 1)
      _exit(1);
    prctl(PR_SET_NAME, "a) (b c) 7 d", 0, 0, 0);
    if (write(toparent[1], "k", 1) != 1)
      _exit(1);
    child_wait();
  }
  track(pid);
  assert_int_equal(cairn_proc_start_time(pid, &t1), 0);
  assert_int_equal(write(tochild[1], "g", 1), 1);
  assert_int_equal(read(toparent[0], &c, 1), 1);
  snprintf(comm, sizeof comm, "/proc/%d/comm", (int)pid);
  fp = fopen(comm, "r");
  assert_non_null(fp);
  assert_non_null(fgets(comm, sizeof comm, fp));
  fclose(fp);
  assert_string_equal(comm, "a) (b c) 7 d\n");
  assert_int_equal(cairn_proc_start_time(pid, &t2), 0);
  assert_int_equal(t2, t1);
  assert_int_equal(cairn_proc_alive(pid, t1), 1);
  assert_int_equal(cairn_proc_alive(pid, t1 + 1), 0);

  /* An unreaped child (a zombie) is not alive. */
  kill(pid, SIGKILL);
  for (int i = 0; i < 500 && proc_state(pid) != 'Z'; i++)
    usleep(2000);
  assert_int_equal(proc_state(pid), 'Z');
  assert_int_equal(cairn_proc_alive(pid, t1), 0);
  waitpid(pid, NULL, 0);
  close(tochild[0]);
  close(tochild[1]);
  close(toparent[0]);
  close(toparent[1]);
}

static void test_proc_stop_group(void **state)
{
  int64_t st;
  int status, fds[2];
  pid_t pid, leader, member = 0;

  (void)state;
  assert_int_equal(cairn_proc_stop_group(0, 1, 1, 10), -EINVAL);
  assert_int_equal(cairn_proc_stop_group(1, 1, 1, 10), -EINVAL);
  assert_int_equal(cairn_proc_stop_group((int)getpgrp(), getpid(), 1, 10),
                   -EINVAL);
  assert_int_equal(cairn_proc_group_alive(dead_pid()), 0);

  /* Dies on SIGTERM. */
  pid = sleeper(1);
  assert_int_equal(cairn_proc_start_time(pid, &st), 0);
  assert_int_equal(cairn_proc_group_alive(pid), 1);
  assert_int_equal(cairn_proc_stop_group(pid, pid, st, 2000), 0);
  assert_int_equal(cairn_proc_group_alive(pid), 0);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);

  /* Ignores SIGTERM: SIGKILL after the grace period. */
  assert_int_equal(pipe(fds), 0);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    setpgid(0, 0);
    signal(SIGTERM, SIG_IGN);
    if (write(fds[1], "r", 1) != 1)
      _exit(1);
    child_wait();
  }
  track(pid);
  assert_int_equal(read(fds[0], &(char){0}, 1), 1);
  assert_int_equal(cairn_proc_start_time(pid, &st), 0);
  assert_int_equal(cairn_proc_stop_group(pid, pid, st, 100), 0);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

  /* A pid whose start time differs is not ours: never signalled. */
  pid = sleeper(1);
  assert_int_equal(cairn_proc_start_time(pid, &st), 0);
  assert_int_equal(cairn_proc_stop_group(pid, pid, st + 1, 100), 0);
  assert_int_equal(cairn_proc_stop_group(pid, pid, 0, 100), -EINVAL);
  usleep(50000);
  assert_int_equal(waitpid(pid, &status, WNOHANG), 0);
  assert_int_equal(cairn_proc_alive(pid, st), 1);
  reap(pid);

  /* The leader is gone but a member of its group lives on. */
  leader = fork();
  assert_true(leader >= 0);
  if (leader == 0) {
    pid_t m;

    setpgid(0, 0);
    m = fork();
    if (m == 0)
      child_wait();
    if (write(fds[1], &m, sizeof m) != sizeof m)
      _exit(1);
    _exit(0);
  }
  track(leader);
  setpgid(leader, leader); /* either side may win the race */
  assert_int_equal(read(fds[0], &member, sizeof member), sizeof member);
  assert_int_equal(cairn_proc_start_time(leader, &st), 0);
  assert_int_equal(waitpid(leader, &status, 0), leader);
  assert_int_equal(cairn_proc_group_alive(leader), 1);
  assert_int_equal(cairn_proc_stop_group(leader, leader, st, 2000), 0);
  assert_int_equal(cairn_proc_group_alive(leader), 0);
  assert_int_equal(cairn_proc_alive(member, 0), 0);
  close(fds[0]);
  close(fds[1]);
}

static void test_proc_boot_id_and_actor(void **state)
{
  char boot[40], actor[512], host[256], want[300];

  (void)state;
  cairn_proc_boot_id(boot);
  if (exists("/proc/sys/kernel/random/boot_id")) {
    assert_int_equal(strlen(boot), 36);
    assert_int_equal(boot[8], '-');
    assert_int_equal(boot[23], '-');
  }
  cairn_proc_actor(actor, sizeof actor);
  gethostname(host, sizeof host);
  host[255] = '\0';
  snprintf(want, sizeof want, "@%s", host);
  assert_true(strlen(actor) > strlen(want));
  assert_string_equal(actor + strlen(actor) - strlen(want), want);
  cairn_proc_actor(actor, 4);
  assert_int_equal(strlen(actor), 3);
}

/* ---- keyed journals ---- */

static void test_keyed_chain(void **state)
{
  struct fx *fx = *state;
  struct cairn_error err = {0, ""};
  struct journal_verify_result vr;
  struct journal_event ev = {0};
  unsigned char key[32], other[32];
  char plain[JOURNAL_HASH_HEX], keyed[JOURNAL_HASH_HEX], again[JOURNAL_HASH_HEX];
  char id[JOURNAL_KEY_ID_HEX];
  struct journal *j;
  json_t *p;

  memset(key, 7, sizeof key);
  memset(other, 9, sizeof other);
  /* The keyed hash differs from the plain one and depends on the key. */
  ev.seq = 1;
  snprintf(ev.run_id, sizeof ev.run_id, "%s", RUN_A);
  ev.kind = "run.started";
  assert_int_equal(journal_event_hash(&ev, plain, &err), 0);
  assert_int_equal(journal_event_hash_keyed(&ev, key, sizeof key, keyed, &err), 0);
  assert_string_not_equal(plain, keyed);
  assert_int_equal(journal_event_hash_keyed(&ev, other, sizeof other, again, &err), 0);
  assert_string_not_equal(keyed, again);

  /* A new journal becomes keyed; its appends verify with the key only. */
  j = open_new(fx->path);
  assert_int_equal(journal_set_key(j, key, sizeof key, &err), 0);
  journal_key_id(key, sizeof key, id);
  assert_string_equal(journal_recorded_key_id(j), id);
  insert_run(j, RUN_A, "wf", "", "succeeded", 0);
  p = json_pack("{s:s}", "workflow", "wf");
  /* time 0 (now): verify holds the row's created_ms to run.started's */
  assert_int_equal(journal_append(j, RUN_A, "run.started", "", 0, 0, p, NULL, &err), 0);
  json_decref(p);
  p = json_pack("{s:s}", "status", "succeeded");
  assert_int_equal(journal_append(j, RUN_A, "run.finished", "", 0, 2, p, NULL, &err), 0);
  json_decref(p);
  assert_int_equal(journal_verify(j, &vr, &err), 0);
  assert_int_equal(vr.last_seq, 2);
  assert_string_equal(vr.key_id, id);
  journal_close(j);

  /* Without the key, or with another: no writing; verify needs the key. */
  assert_int_equal(journal_open(&j, fx->path, 0, &err), 0);
  assert_int_equal(journal_set_key(j, NULL, 0, &err), CAIRN_E_KEY);
  assert_int_equal(journal_append(j, RUN_A, "x", "", 0, 3, NULL, NULL, &err), CAIRN_E_KEY);
  assert_int_equal(journal_set_key(j, other, sizeof other, &err), CAIRN_E_KEY);
  assert_int_equal(journal_verify(j, &vr, &err), CAIRN_E_KEY);
  journal_close(j);
  assert_int_equal(journal_open(&j, fx->path, JOURNAL_READONLY, &err), 0);
  assert_int_equal(journal_set_key(j, other, sizeof other, &err), 0);
  assert_int_equal(journal_verify(j, &vr, &err), CAIRN_E_CHAIN);
  assert_int_equal(vr.first_bad_seq, 1);
  journal_close(j);
}

static void test_key_onto_unkeyed_refused(void **state)
{
  struct fx *fx = *state;
  struct cairn_error err = {0, ""};
  unsigned char key[32];
  struct journal *j = open_new(fx->path);

  memset(key, 7, sizeof key);
  insert_run(j, RUN_A, "wf", "", "running", 0);
  assert_int_equal(journal_append(j, RUN_A, "run.started", "", 0, 1, NULL, NULL, &err), 0);
  assert_int_equal(journal_set_key(j, key, sizeof key, &err), CAIRN_E_KEY);
  assert_string_equal(journal_recorded_key_id(j), "");
  assert_int_equal(journal_set_key(j, key, 31, &err), CAIRN_E_KEY);
  journal_close(j);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup_dir, teardown_dir)
  const struct CMUnitTest tests[] = {
      T(test_create_modes_and_pragmas),
      T(test_memory_journal),
      T(test_open_missing),
      T(test_text_file_refused),
      T(test_newer_schema_refused),
      T(test_foreign_sqlite_refused),
      T(test_v0_empty_migrates),
      T(test_damaged_found_by_migration),
      T(test_hot_rollback_journal),
      T(test_find_path),
      T(test_canonical_json),
      T(test_append_chain),
      T(test_append_nul_in_string),
      T(test_append_time_and_errors),
      T(test_hash_known_event),
      T(test_canonical_cases),
      T(test_canonical_edges),
      T(test_append_tail_cache),
      T(test_unchained),
      T(test_transactions),
      T(test_events_append_only),
      T(test_reentrant_callbacks),
      T(test_verify_intact),
      T(test_verify_rows),
      T(test_verify_edited),
      T(test_verify_edited_attempt),
      T(test_verify_edited_rehashed),
      T(test_verify_deleted),
      T(test_verify_deleted_first),
      T(test_verify_swapped),
      T(test_keyed_chain),
      T(test_key_onto_unkeyed_refused),
      T(test_replay_run),
      T(test_replay_reentry_and_decisions),
      T(test_replay_errors),
      T(test_runs),
      T(test_run_ids),
      T(test_locks),
      T(test_lock_race),
      T(test_crash_hook),
      T(test_proc_start_time),
      T(test_proc_stop_group),
      T(test_proc_boot_id_and_actor),
  };
#undef T

  if (pipe(lifeline) != 0)
    return 1;
  return cmocka_run_group_tests(tests, NULL, NULL);
}
