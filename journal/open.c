/* Opening and closing a journal: the file and its folder (0600/0700), the
 * connection settings (WAL, synchronous=FULL, busy timeout, foreign keys),
 * the statement cache, transactions, the crash hook, and finding the
 * journal by walking up from a folder. */
#include "journal/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "common/file.h"

#define JOURNAL__DEFAULT_REL ".cairn/journal.db"
/* SQLite unix VFS's 512-byte path, less its "-journal" */
#define JOURNAL__MAX_PATH 504

int64_t journal_now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *journal_path(const struct journal *j)
{
  return j != NULL ? j->path : NULL;
}

int journal__sqlite_error(struct journal *j, struct cairn_error *err,
                          const char *what)
{
  int primary = sqlite3_errcode(j->db) & 0xff;
  int sys = sqlite3_system_errno(j->db);

  /* "disk I/O error" alone does not say a full disk from a bad one */
  if ((primary == SQLITE_IOERR || primary == SQLITE_CANTOPEN) && sys != 0)
    return cairn_error_set(err, CAIRN_E_JOURNAL, "%s '%s': %s (%s)", what,
                           j->path, sqlite3_errmsg(j->db), strerror(sys));
  if (primary == SQLITE_BUSY)
    return cairn_error_set(err, CAIRN_E_JOURNAL,
                           "%s '%s': %s (another process held it for more "
                           "than %d s)",
                           what, j->path, sqlite3_errmsg(j->db),
                           JOURNAL__BUSY_TIMEOUT_MS / 1000);
  return cairn_error_set(err, CAIRN_E_JOURNAL, "%s '%s': %s", what, j->path,
                         sqlite3_errmsg(j->db));
}

/* ---- statement cache ---- */

int journal__stmt(struct journal *j, enum journal__stmt_id id, const char *sql,
                  sqlite3_stmt **out, struct cairn_error *err)
{
  struct journal__cached_stmt *c = &j->stmts[id];

  *out = NULL;
  if (c->st == NULL &&
      sqlite3_prepare_v3(j->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &c->st,
                         NULL) != SQLITE_OK) {
    c->st = NULL;
    return journal__sqlite_error(j, err, "cannot prepare a statement on");
  }
  if (!c->busy) {
    c->busy = 1;
    *out = c->st;
    return 0;
  }
  /* Re-entered from a callback while the cached one is stepping. */
  if (sqlite3_prepare_v2(j->db, sql, -1, out, NULL) != SQLITE_OK) {
    *out = NULL;
    return journal__sqlite_error(j, err, "cannot prepare a statement on");
  }
  return 0;
}

void journal__stmt_done(struct journal *j, enum journal__stmt_id id,
                        sqlite3_stmt *st)
{
  if (st == NULL)
    return;
  if (st == j->stmts[id].st) {
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    j->stmts[id].busy = 0;
  } else {
    sqlite3_finalize(st);
  }
}

/* Runs one cached statement that returns no rows. */
static int exec_cached(struct journal *j, enum journal__stmt_id id,
                       const char *sql, const char *what,
                       struct cairn_error *err)
{
  sqlite3_stmt *st;
  int rc = journal__stmt(j, id, sql, &st, err);

  if (rc != 0)
    return rc;
  if (sqlite3_step(st) != SQLITE_DONE)
    rc = journal__sqlite_error(j, err, what);
  journal__stmt_done(j, id, st);
  return rc;
}

/* ---- transactions and the crash hook ---- */

#ifdef CAIRN_TEST_HOOKS
static long journal__commits;

long journal__test_commits(void)
{
  return journal__commits;
}

/* Counts a commit and dies right after it when the crash tests ask. */
static void after_commit(void)
{
  const char *s = getenv("CAIRN_TEST_KILL_AFTER_COMMIT");
  char *end;
  long n;

  journal__commits++;
  if (s == NULL || *s == '\0')
    return;
  errno = 0;
  n = strtol(s, &end, 10);
  if (errno == 0 && *end == '\0' && n == journal__commits)
    raise(SIGKILL);
}
#else
static void after_commit(void)
{
}
#endif

void journal__cache_drop(struct journal *j)
{
  j->tail_known = 0;
  j->key_known = 0;
}

int journal__tx_begin(struct journal *j, struct cairn_error *err)
{
  if (j->flags & JOURNAL_READONLY)
    return cairn_error_set(err, CAIRN_E_JOURNAL,
                           "journal '%s' is open read-only", j->path);
  /* Another process may have written since our last transaction. */
  if (!j->memory)
    journal__cache_drop(j);
  if (j->elist != NULL)
    journal__elist_mark(j->elist);
  return exec_cached(j, JOURNAL__ST_BEGIN, "BEGIN IMMEDIATE",
                     "cannot start a transaction on", err);
}

int journal__tx_commit(struct journal *j, struct cairn_error *err)
{
  int rc = exec_cached(j, JOURNAL__ST_COMMIT, "COMMIT",
                       "cannot commit to journal", err);

  if (rc != 0) {
    journal__tx_rollback(j);
    return rc;
  }
  if (j->elist != NULL)
    journal__elist_mark(j->elist); /* a rollback now has nothing to undo */
  after_commit();
  return 0;
}

void journal__tx_rollback(struct journal *j)
{
  sqlite3_stmt *st;

  journal__cache_drop(j); /* what we appended is gone */
  if (j->elist != NULL)
    journal__elist_undo(j->elist);
  /* A failed COMMIT or statement may already have ended it. */
  if (sqlite3_get_autocommit(j->db))
    return;
  if (journal__stmt(j, JOURNAL__ST_ROLLBACK, "ROLLBACK", &st, NULL) != 0)
    return;
  sqlite3_step(st);
  journal__stmt_done(j, JOURNAL__ST_ROLLBACK, st);
}

int journal__write_begin(struct journal *j, int *own, struct cairn_error *err)
{
  int rc;

  *own = 0;
  if (j->in_tx)
    return 0;
  rc = journal__tx_begin(j, err);
  if (rc == 0)
    *own = 1;
  return rc;
}

int journal__write_end(struct journal *j, int own, int rc,
                       struct cairn_error *err)
{
  if (!own)
    return rc;
  if (rc != 0) {
    journal__tx_rollback(j);
    return rc;
  }
  return journal__tx_commit(j, err);
}

int journal_begin(struct journal *j, struct cairn_error *err)
{
  int rc;

  if (j->in_tx)
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "a transaction is already open on journal '%s'",
                           j->path);
  rc = journal__tx_begin(j, err);
  if (rc == 0)
    j->in_tx = 1;
  return rc;
}

int journal_commit(struct journal *j, struct cairn_error *err)
{
  if (!j->in_tx)
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "no transaction is open on journal '%s'", j->path);
  j->in_tx = 0;
  return journal__tx_commit(j, err);
}

void journal_rollback(struct journal *j)
{
  if (j == NULL || !j->in_tx)
    return;
  j->in_tx = 0;
  journal__tx_rollback(j);
}

/* ---- the file and its folder ---- */

/* Makes sure path is a regular file we may open: creates it (0600) and
 * its folders with JOURNAL_CREATE, then probes it without writing.
 * *version gets its schema version. */
static int prepare_file(const char *path, unsigned flags, int *version,
                        struct cairn_error *err)
{
  struct stat sb;
  int rc, fd;

  if (stat(path, &sb) != 0) {
    if (errno != ENOENT)
      return cairn_error_set(err, CAIRN_E_IO, "cannot stat '%s': %s", path,
                             strerror(errno));
    if (!(flags & JOURNAL_CREATE))
      return cairn_error_set(err, CAIRN_E_NOTFOUND, "no journal at '%s'",
                             path);
    rc = cairn_mkdir_parent(path, err);
    if (rc != 0)
      return rc;
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
              0600);
    if (fd < 0 && errno != EEXIST) /* EEXIST: another process won */
      return cairn_error_set(err, CAIRN_E_IO, "cannot create '%s': %s", path,
                             strerror(errno));
    if (fd >= 0) {
      rc = fchmod(fd, 0600);
      close(fd);
      if (rc != 0)
        return cairn_error_set(err, CAIRN_E_IO, "cannot chmod '%s': %s",
                               path, strerror(errno));
    }
    if (stat(path, &sb) != 0)
      return cairn_error_set(err, CAIRN_E_IO, "cannot stat '%s': %s", path,
                             strerror(errno));
  }
  if (!S_ISREG(sb.st_mode))
    return cairn_error_set(err, CAIRN_E_NOTJOURNAL,
                           "'%s' is not a cairn journal (not a regular file)",
                           path);
  return journal__schema_probe(path, version, err);
}

/* ---- the connection ---- */

/* Whether path is on a read-only file system with no WAL content beside
 * it: an archived or mounted copy that nothing can be writing. SQLite
 * cannot make the -shm file there that WAL mode needs even to read, so
 * such a journal is opened as immutable (no locks, no -shm), which is
 * exact when every page is in the file itself. */
static int frozen_copy(const char *path)
{
  char wal[PATH_MAX + 8];
  struct statvfs vs;
  struct stat sb;

  if (statvfs(path, &vs) != 0 || !(vs.f_flag & ST_RDONLY))
    return 0;
  snprintf(wal, sizeof wal, "%s-wal", path);
  return stat(wal, &sb) != 0 ? errno == ENOENT : sb.st_size == 0;
}

/* "file:PATH?immutable=1", PATH percent-encoded as RFC 3986 asks; NULL
 * when out of memory. The caller frees it. */
static char *immutable_uri(const char *path)
{
  static const char hex[] = "0123456789ABCDEF";
  size_t n = strlen(path);
  char *uri = malloc(sizeof "file:?immutable=1" + 3 * n);
  char *w = uri;

  if (uri == NULL)
    return NULL;
  w += sprintf(w, "file:");
  for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
        (*p >= '0' && *p <= '9') || strchr("/-._~", *p) != NULL) {
      *w++ = (char)*p;
    } else {
      *w++ = '%';
      *w++ = hex[*p >> 4];
      *w++ = hex[*p & 15];
    }
  }
  strcpy(w, "?immutable=1");
  return uri;
}

/* The first column of the first row of a pragma, as text into buf. */
static int pragma_text(struct journal *j, const char *sql, char *buf,
                       size_t n, struct cairn_error *err)
{
  sqlite3_stmt *st = NULL;
  int rc = 0;

  buf[0] = '\0';
  if (sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) != SQLITE_OK) {
    rc = journal__sqlite_error(j, err, "cannot configure journal");
    goto out;
  }
  switch (sqlite3_step(st)) {
  case SQLITE_ROW:
    snprintf(buf, n, "%s", journal__column_text(st, 0));
    break;
  case SQLITE_DONE:
    break;
  default:
    rc = journal__sqlite_error(j, err, "cannot configure journal");
    break;
  }
out:
  sqlite3_finalize(st);
  return rc;
}

static int configure(struct journal *j, int memory, struct cairn_error *err)
{
  char val[32];
  int rc;

  sqlite3_extended_result_codes(j->db, 1);
  if (sqlite3_busy_timeout(j->db, JOURNAL__BUSY_TIMEOUT_MS) != SQLITE_OK)
    return journal__sqlite_error(j, err, "cannot configure journal");
  if (!(j->flags & JOURNAL_READONLY) || memory) {
    const char *want = memory ? "memory" : "wal";

    /* Switching a new file to WAL needs it alone, and SQLite tries that
     * once, without the busy handler: two first runs on a new journal
     * made one fail at once. So the wait is ours, as long as SQLite's. */
    for (int waited = 0;; waited += 10) {
      rc = pragma_text(j, "PRAGMA journal_mode=WAL", val, sizeof val, err);
      if (rc == 0 || (sqlite3_errcode(j->db) & 0xff) != SQLITE_BUSY ||
          waited >= JOURNAL__BUSY_TIMEOUT_MS)
        break;
      sqlite3_sleep(10);
    }
    if (rc != 0)
      return rc;
    if (strcmp(val, want) != 0)
      return cairn_error_set(err, CAIRN_E_JOURNAL,
                             "cannot use wal mode for journal '%s' "
                             "(journal_mode is '%s')",
                             j->path, val);
  }
  rc = pragma_text(j, "PRAGMA synchronous=FULL", val, sizeof val, err);
  if (rc == 0)
    rc = pragma_text(j, "PRAGMA synchronous", val, sizeof val, err);
  if (rc != 0)
    return rc;
  if (strcmp(val, "2") != 0)
    return cairn_error_set(err, CAIRN_E_JOURNAL,
                           "cannot set synchronous=FULL on journal '%s' "
                           "(it reads back as %s)",
                           j->path, val);
  rc = pragma_text(j, "PRAGMA foreign_keys=ON", val, sizeof val, err);
  if (rc == 0)
    rc = pragma_text(j, "PRAGMA foreign_keys", val, sizeof val, err);
  if (rc != 0)
    return rc;
  if (strcmp(val, "1") != 0)
    return cairn_error_set(err, CAIRN_E_JOURNAL,
                           "cannot enable foreign keys on journal '%s'",
                           j->path);
  return 0;
}

int journal_open(struct journal **out, const char *path, unsigned flags,
                 struct cairn_error *err)
{
  struct journal *j = NULL;
  char *uri = NULL;
  unsigned asked = flags;
  int memory, version = 0, oflags, rc;

  if (out == NULL || path == NULL || *path == '\0')
    return cairn_error_set(err, CAIRN_E_INVAL, "journal path is empty");
  *out = NULL;
  if ((flags & JOURNAL_CREATE) && (flags & JOURNAL_READONLY))
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "journal '%s' cannot be both created and read-only",
                           path);
  memory = strcmp(path, ":memory:") == 0;
  if (memory)
    flags &= ~(unsigned)JOURNAL_READONLY; /* an empty journal to write */
  else if (flags & JOURNAL_UNCHAINED)
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "journal '%s': only an in-memory journal can do "
                           "without a hash chain",
                           path);

  j = calloc(1, sizeof *j);
  if (j == NULL || (j->path = strdup(path)) == NULL) {
    rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    goto out;
  }
  j->flags = flags;
  j->memory = memory;

  /* SQLite's unix files take paths of at most 512 bytes, its own
   * suffixes ("-journal") included: refuse a longer one before making
   * anything, rather than fail to open it later. */
  if (!memory) {
    char cwd[PATH_MAX];
    size_t len = strlen(path);
    if (path[0] != '/' && getcwd(cwd, sizeof cwd) != NULL)
      len += strlen(cwd) + 1;
    if (len > JOURNAL__MAX_PATH) {
      rc = cairn_error_set(err, CAIRN_E_INVAL,
                           "journal path '%.48s…' is %zu bytes long, and "
                           "SQLite takes at most %d (hint: keep the journal "
                           "in a folder with a shorter path)",
                           path, len, JOURNAL__MAX_PATH);
      goto out;
    }
  }
  /* Before anything may write to it: is the file ours? */
  if (!memory) {
    rc = prepare_file(path, flags, &version, err);
    if (rc != 0)
      goto out;
    if ((flags & JOURNAL_READONLY) && version == 0) {
      /* An empty file (a first run killed before its schema commit, or a
       * file made by hand) holds nothing yet: read it as the empty
       * journal it is, and write nothing to it; the next run makes it. */
      memory = 1;
      flags &= ~(unsigned)JOURNAL_READONLY;
      j->flags = flags;
      j->memory = memory;
    } else if (version == 0 && chmod(path, 0600) != 0 && errno != EPERM) {
      /* cairn makes this journal now: private, as one it creates */
      rc = cairn_error_set(err, CAIRN_E_IO, "cannot chmod '%s': %s", path,
                           strerror(errno));
      goto out;
    } else if ((flags & JOURNAL_READONLY) &&
               version < JOURNAL_SCHEMA_VERSION) {
      /* An older schema: the probe accepted it as ours, so finish the
       * job the next run would do rather than refuse to read it. */
      flags &= ~(unsigned)JOURNAL_READONLY;
      j->flags = flags;
    }
  }

  oflags = (flags & JOURNAL_READONLY) ? SQLITE_OPEN_READONLY
                                      : SQLITE_OPEN_READWRITE;
  /* One thread uses a journal (the loop's; worker threads open their own
   * connections): no lock around every call on the connection. */
  oflags |= SQLITE_OPEN_NOMUTEX;
  if (memory)
    oflags |= SQLITE_OPEN_CREATE | SQLITE_OPEN_MEMORY;
  if (!memory && (flags & JOURNAL_READONLY) && frozen_copy(path)) {
    uri = immutable_uri(path);
    if (uri == NULL) {
      rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
      goto out;
    }
    oflags |= SQLITE_OPEN_URI;
  }
  if (sqlite3_open_v2(uri != NULL ? uri : memory ? ":memory:" : path, &j->db,
                      oflags, NULL) != SQLITE_OK) {
    rc = j->db != NULL
             ? journal__sqlite_error(j, err, "cannot open journal")
             : cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    goto out;
  }
  rc = configure(j, memory, err);
  if (rc != 0)
    rc = journal__if_cannot_share(path, !(flags & JOURNAL_READONLY), j->db,
                                  rc, err);
  if (rc == 0)
    rc = journal__schema_migrate(j, err);
  /* Migrated for a reader: from here it is the read-only journal that
   * was asked for (journal_set_key only keeps its key, nothing writes). */
  if (rc == 0 && !memory && (asked & JOURNAL_READONLY))
    j->flags |= JOURNAL_READONLY;
  /* A simulation's events go to a list, not to the events table. */
  if (rc == 0 && (flags & JOURNAL_UNCHAINED) &&
      journal__elist_new(&j->elist) != 0)
    rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  if (rc == 0)
    rc = journal__key_load_recorded(j, err);
  /* Its header said cairn journal (journal__schema_probe), its pages
   * may not: say so, and refuse it as a file that is not a journal. */
  if (rc != 0 && j->db != NULL)
    rc = journal__if_damaged(path, j->db, rc, err);
  if (rc != 0)
    goto out;
  *out = j;
  j = NULL;
out:
  free(uri);
  journal_close(j);
  return rc;
}

void journal_close(struct journal *j)
{
  if (j == NULL)
    return;
  if (j->db != NULL) {
    journal_rollback(j);
    for (int i = 0; i < JOURNAL__ST_COUNT; i++)
      sqlite3_finalize(j->stmts[i].st);
    sqlite3_close_v2(j->db);
  }
  journal__key_release(j);
  journal__elist_free(j->elist);
  cairn_buf_release(&j->text);
  cairn_buf_release(&j->hashed);
  free(j->path);
  free(j);
}

/* ---- finding the journal ---- */

static int is_file(const char *path)
{
  struct stat sb;

  return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Writes dir + "/" + JOURNAL__DEFAULT_REL into out (no doubled slash). */
static int join_default(char *out, size_t n, const char *dir)
{
  size_t len = strlen(dir);
  int w;

  while (len > 1 && dir[len - 1] == '/')
    len--;
  w = snprintf(out, n, "%.*s%s%s", (int)len, dir,
               (len > 0 && dir[len - 1] == '/') ? "" : "/",
               JOURNAL__DEFAULT_REL);
  return (w < 0 || (size_t)w >= n) ? -1 : 0;
}

int journal_find_path(char *out, size_t n, const char *start_dir,
                      struct cairn_error *err)
{
  const char *env = getenv("CAIRN_JOURNAL");
  char start[PATH_MAX];
  char dir[PATH_MAX];
  char *slash;

  if (out == NULL || n == 0)
    return cairn_error_set(err, CAIRN_E_INVAL, "no room for a journal path");
  out[0] = '\0';
  if (env != NULL && *env != '\0') {
    if (strlen(env) >= n)
      return cairn_error_set(err, CAIRN_E_INVAL,
                             "CAIRN_JOURNAL is too long ('%s')", env);
    memcpy(out, env, strlen(env) + 1);
    return 0;
  }
  if (start_dir == NULL) {
    if (getcwd(start, sizeof start) == NULL)
      return cairn_error_set(err, CAIRN_E_IO,
                             "cannot get the working directory: %s",
                             strerror(errno));
  } else if (realpath(start_dir, start) == NULL) {
    /* A folder that does not exist yet: say where a journal would go. */
    if (strlen(start_dir) >= sizeof start)
      return cairn_error_set(err, CAIRN_E_INVAL, "path too long ('%s')",
                             start_dir);
    memcpy(start, start_dir, strlen(start_dir) + 1);
  }

  memcpy(dir, start, sizeof dir);
  for (;;) {
    if (join_default(out, n, dir) != 0)
      return cairn_error_set(err, CAIRN_E_INVAL, "path too long ('%s')",
                             dir);
    if (is_file(out))
      return 0;
    slash = strrchr(dir, '/');
    if (slash == NULL || (slash == dir && dir[1] == '\0'))
      break;
    if (slash == dir)
      slash[1] = '\0'; /* up to / */
    else
      *slash = '\0';
  }
  if (join_default(out, n, start) != 0)
    return cairn_error_set(err, CAIRN_E_INVAL, "path too long ('%s')", start);
  return cairn_error_set(err, CAIRN_E_NOTFOUND,
                         "no journal found in '%s' or any folder above it",
                         start);
}
