/* The sql.migrate adapter: versioned migration files applied to (or
 * rolled back from) a SQLite file or a PostgreSQL database, one
 * transaction each, recorded with their SHA-256 in a history table.
 *
 * Life of one call (struct sql_run, hung on call->priv):
 *
 *   SCANNING   a worker thread (uv_queue_work) reads the folder, hashes
 *              every up file and reads the state's note (below); for
 *              SQLite it then does all the work itself: history, checksum
 *              checks, plan, the note, one transaction per file, and the
 *              revert after a failed file.
 *   PG_HISTORY PostgreSQL: a psql child creates the history table if
 *              needed and prints it as one JSON object (through the exec
 *              adapter, which owns process groups, logs and redaction).
 *              While the server refuses connections or starts up, it is
 *              tried again every SQL_CONNECT_PAUSE_MS for connect_within.
 *   PG_NOTE    the note, in the thread pool (it fsyncs).
 *   PG_STEP    one psql child per migration: the file and its history
 *              row in one --single-transaction.
 *   PG_RECHECK after a stop that killed psql: the server may still commit
 *              what psql sent (a slow COMMIT outlives its client), so a
 *              last psql waits for the history table's lock (any
 *              transaction still writing it ends first) and reads it
 *              again: the versions reported are the database's.
 *   FINISHING  the timeout timer and the pause timer are closing; the
 *              last close callback calls on_done, then frees the run.
 *
 * from_version is the version before the state's first attempt, not
 * this one's: a retried attempt, or the re-run after a resume, finds what
 * the attempts before it applied. So the first attempt that has files to
 * run keeps the version it found in a note (adapters/note.h) before the
 * first file runs, and every later attempt of the same visit reports
 * that. And a failed state is not in the rollback plan, so nothing would
 * undo what it applied: after a migration file fails going up, the down
 * files run back to from_version (the history is read again and planned
 * down, as a `to` would be: PG_HISTORY and PG_STEP again, `reverting`)
 * before the failure is reported, with where the revert left the
 * database. A timeout or cancel reverts nothing: it stops at once, and
 * says the version it left.
 *
 * Timeout and cancel: SQLite work is interrupted with sqlite3_interrupt
 * (the transaction in flight rolls back) and no further file starts; a
 * psql child is cancelled through the exec adapter (SIGTERM to its group,
 * then SIGKILL), and the server rolls back its transaction.
 *
 * The password never reaches an argv: it is taken out of the URL and
 * passed as PGPASSWORD in the child's environment only, and is redacted
 * from everything logged. */
#include "adapters/adapter.h"
#include "common/duration.h"
#include "adapters/input.h"
#include "adapters/exec.h"
#include "adapters/job.h"
#include "adapters/note.h"
#include "adapters/spawn.h"
#include "common/buf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <curl/curl.h>
#include <sqlite3.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SQL_FILE_MAX (64 * 1024 * 1024) /* one migration file, bytes */
#define SQL_BUSY_MS 10000               /* SQLite busy timeout */
#define SQL_TABLE_MAX 63                /* PostgreSQL's identifier limit */
#define SQL_RECHECK_MS 30000            /* the history read after a stop */
#define SQL_CONNECT_PAUSE_MS 500        /* between tries to connect */

enum sql_kind { SQL_SQLITE, SQL_POSTGRES };

enum sql_phase {
  SQL_SCANNING,
  SQL_PG_HISTORY,
  SQL_PG_NOTE,
  SQL_PG_STEP,
  SQL_PG_RECHECK,
  SQL_FINISHING,
};

struct sql_mig {
  int64_t version;
  char *up;      /* file names in dir, owned */
  char *down;
  char sum[65];  /* SHA-256 of the up file, hex */
};

struct sql_hist {
  int64_t version;
  char sum[65];
};

struct sql_run {
  struct adapter_call *call;
  enum sql_kind kind;
  enum sql_phase phase;
  char *dir;      /* as given, without trailing '/' */
  char *target;   /* SQLite path, or the URL without its password */
  char *password; /* NULL when none */
  char *table;
  int has_to;
  int64_t to;
  char **redact;  /* call->redact plus the password; NULL-terminated */
  char *url_pw;   /* the URL's password as written, for redaction */

  struct sql_mig *migs; /* sorted by version */
  size_t nmigs;
  struct sql_hist *hist; /* sorted by version */
  size_t nhist;
  size_t *steps; /* indexes into migs, in the order to run */
  size_t nsteps;
  size_t next;   /* steps[next] runs next */
  int down;

  int64_t from_version; /* reported: the version before the state's first
                           attempt (its note), else before this one */
  int64_t start_version; /* the version this attempt found */
  int has_note;          /* an earlier attempt's note gave from_version */
  int64_t note_version;  /* its from_version */
  int64_t version; /* the database's version now */
  int version_known; /* the history was read: version is the database's */
  json_t *outputs;   /* made at the start, filled at the end */
  char unknown_why[256]; /* when not: why ("" before anything ran) */
  json_t *applied;
  enum sql_phase stopped_in; /* the phase a stop killed psql in */
  int from_known;            /* from_version was read before the stop */

  uv_work_t work;
  uv_mutex_t mu;  /* guards db and stop between the threads */
  sqlite3 *db;
  int stop;       /* 0, or ADAPTER_TIMED_OUT / ADAPTER_CANCELLED */

  struct adapter__child child; /* psql */
  char child_header[PATH_MAX + 64];

  uv_timer_t timer;
  uv_timer_t pause;  /* between tries to connect (connect_within) */
  int pausing;       /* the pause runs: no psql does */
  int closing;       /* handles still to close before on_done */
  int64_t connect_ms;
  int tries;         /* to connect */
  int64_t timeout_ms;
  uint64_t start_ns;
  int log_fd;
  int failed;
  char error[512];
  /* After a failed up step: the files this visit of the state applied
   * are reverted, down to from_version, before the failure is reported
   * (a failed state is not in the rollback plan: nothing else would). */
  int step_failed; /* the failure was a migration file's */
  int reverting;
  int revert_failed;
  char revert_error[512];
};

/* ---- small helpers ------------------------------------------------------ */

static int starts_with(const char *s, const char *prefix)
{
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int is_postgres_url(const char *s)
{
  return starts_with(s, "postgres://") || starts_with(s, "postgresql://");
}

/* SQL identifiers are put into statements as they are: only plain ones. */
static int table_ok(const char *t)
{
  size_t n = strlen(t);

  if (n == 0 || n > SQL_TABLE_MAX || (t[0] >= '0' && t[0] <= '9'))
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= '0' && t[i] <= '9') ||
          t[i] == '_'))
      return 0;
  return 1;
}

/* One line of our own to the log, redacted (best effort: a full disk must
 * not fail the deploy). */
static void log_line(struct sql_run *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void log_line(struct sql_run *r, const char *fmt, ...)
{
  va_list ap;
  char *s;
  int n;

  if (r->log_fd < 0)
    return;
  va_start(ap, fmt);
  n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || (s = malloc((size_t)n + 2)) == NULL)
    return;
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  s[n] = '\n';
  s[n + 1] = '\0';
  s = adapter_redact(s, (const char *const *)r->redact);
  if (s != NULL && adapter__write_all(r->log_fd, s, strlen(s)) < 0)
    adapter_log_failed(r->call->log_errno, errno);
  free(s);
}

static void set_error(struct sql_run *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_error(struct sql_run *r, const char *fmt, ...)
{
  /* a failure of the revert is told apart from the one that caused it */
  int *failed = r->reverting ? &r->revert_failed : &r->failed;
  char *buf = r->reverting ? r->revert_error : r->error;
  va_list ap;

  if (*failed)
    return; /* the first error is the one that matters */
  *failed = 1;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof r->error, fmt, ap);
  va_end(ap);
  for (char *p = buf; *p; p++)
    if (*p == '\n' || *p == '\r')
      *p = ' ';
}

/* The error of the phase running: the forward one's, or the revert's. */
static const char *cur_error(struct sql_run *r)
{
  return r->reverting ? r->revert_error : r->error;
}

/* ---- inputs ------------------------------------------------------------- */

static int check_db(const char *db, struct cairn_error *err)
{
  const char *colon = strchr(db, ':');

  if (db[0] == '\0')
    return cairn_error_set(err, CAIRN_E_INVAL, "input 'db' is empty");
  if (is_postgres_url(db))
    return 0;
  if (starts_with(db, "sqlite:")) {
    if (db[7] == '\0')
      return cairn_error_set(err, CAIRN_E_INVAL,
                             "input 'db' names no file after 'sqlite:'");
    return 0;
  }
  if (colon != NULL && colon[1] == '/' && colon[2] == '/')
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "unsupported database URL '%.*s...' in input 'db' "
                           "(use a SQLite file, sqlite:PATH or postgres://)",
                           (int)(colon - db), db);
  return 0;
}

static int sql_check(json_t *with, struct cairn_error *err)
{
  json_t *db = adapter__input(with, "db");
  json_t *table = adapter__input(with, "table");
  json_t *to = adapter__input(with, "to");
  int rc;

  if (json_is_string(db) && !adapter_is_template(db) &&
      (rc = check_db(json_string_value(db), err)) < 0)
    return rc;
  if (json_is_string(table) && !adapter_is_template(table) &&
      !table_ok(json_string_value(table)))
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "bad history table name '%s' in input 'table' "
                           "(want lowercase letters, digits and '_')",
                           json_string_value(table));
  if (json_is_integer(to) && json_integer_value(to) < 0)
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "input 'to' must not be negative");
  return 0;
}

/* Splits a postgres URL into the URL without a password (*url) and the
 * password (*pw, NULL when the URL has none). Both new strings. */
static int split_url(const char *in, char **url, char **pw,
                     struct cairn_error *err)
{
  const char *auth = strstr(in, "://") + 3;
  size_t alen = strcspn(auth, "/?#");
  const char *at = NULL, *colon;
  char *dec;

  *url = NULL;
  *pw = NULL;
  if (strstr(auth + alen, "password=") != NULL)
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "the database URL in input 'db' has a password "
                           "parameter; give it in input 'password' instead");
  for (size_t i = 0; i < alen; i++)
    if (auth[i] == '@')
      at = auth + i;
  if (at == NULL || (colon = memchr(auth, ':', (size_t)(at - auth))) == NULL) {
    if ((*url = strdup(in)) == NULL)
      return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    return 0;
  }
  /* percent-decoded by curl; copied so that the caller frees it with free */
  dec = curl_easy_unescape(NULL, colon + 1, (int)(at - colon - 1), NULL);
  *pw = dec ? strdup(dec) : NULL;
  curl_free(dec);
  *url = malloc(strlen(in) + 1);
  if (*pw == NULL || *url == NULL) {
    free(*pw);
    free(*url);
    *pw = *url = NULL;
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  }
  /* scheme://user + @rest */
  memcpy(*url, in, (size_t)(colon - in));
  strcpy(*url + (colon - in), at);
  return 0;
}

/* ---- the run ------------------------------------------------------------ */

static void run_free(struct sql_run *r)
{
  for (size_t i = 0; i < r->nmigs; i++) {
    free(r->migs[i].up);
    free(r->migs[i].down);
  }
  free(r->migs);
  free(r->hist);
  free(r->steps);
  free(r->dir);
  free(r->target);
  if (r->password) {
    OPENSSL_cleanse(r->password, strlen(r->password));
    free(r->password);
  }
  free(r->table);
  free(r->redact);
  free(r->url_pw);
  json_decref(r->applied);
  json_decref(r->outputs);
  adapter__child_release(&r->child);
  if (r->log_fd >= 0)
    close(r->log_fd);
  uv_mutex_destroy(&r->mu);
  free(r);
}

/* "HEAD; TAIL" into out, HEAD cut (with "...") so that TAIL, which says
 * where the database was left, always fits. */
static void join_error(char *out, size_t n, const char *head,
                       const char *tail)
{
  size_t tl = strlen(tail), hl = strlen(head);

  if (tl > n / 2)
    tl = n / 2; /* a long revert error must leave room for the cause */
  if (hl + 2 + tl + 1 > n)
    snprintf(out, n, "%.*s...; %.*s", (int)(n - tl - 6), head, (int)tl,
             tail);
  else
    snprintf(out, n, "%s; %.*s", head, (int)tl, tail);
}

static void on_timer_close(uv_handle_t *h)
{
  struct sql_run *r = h->data;
  struct adapter_call *call = r->call;
  struct adapter_result res;
  char where[400], d[32], tail_msg[900];
  char *tail;

  if (--r->closing > 0)
    return; /* the other timer's close callback comes */
  memset(&res, 0, sizeof res);
  res.exit_code = r->failed || r->stop ? -1 : 0;
  res.duration_ms = (int64_t)((uv_hrtime() - r->start_ns) / 1000000);
  if (r->version_known)
    snprintf(where, sizeof where, "the database is at version %" PRId64,
             r->version);
  else if (r->unknown_why[0])
    snprintf(where, sizeof where, "the database's version is unknown: %s",
             r->unknown_why);
  else
    snprintf(where, sizeof where, "before the database's version was read");
  if (r->stop) {
    res.outcome = (enum adapter_outcome)r->stop;
    cairn_duration_exact(r->timeout_ms, d, sizeof d);
    if (r->reverting) { /* the cause first: it is why the revert ran */
      snprintf(tail_msg, sizeof tail_msg, "migrating back to version %"
               PRId64 " %s (%s)", r->from_version,
               r->stop == ADAPTER_TIMED_OUT ? "timed out" : "was cancelled",
               where);
      join_error(res.error, sizeof res.error, r->error, tail_msg);
    } else if (r->stop == ADAPTER_TIMED_OUT) {
      snprintf(res.error, sizeof res.error, "timed out after %s (%s)", d,
               where);
    } else {
      snprintf(res.error, sizeof res.error, "cancelled (%s)", where);
    }
  } else if (r->failed) {
    res.outcome = ADAPTER_FAILED;
    if (!r->reverting) {
      snprintf(res.error, sizeof res.error, "%s", r->error);
    } else {
      if (r->revert_failed)
        snprintf(tail_msg, sizeof tail_msg, "migrating back to version %"
                 PRId64 " failed: %s (%s)", r->from_version, r->revert_error,
                 where);
      else
        snprintf(tail_msg, sizeof tail_msg, "migrated back to version %"
                 PRId64, r->version);
      join_error(res.error, sizeof res.error, r->error, tail_msg);
    }
  } else {
    res.outcome = ADAPTER_SUCCEEDED;
  }
  /* outputs that say less than the database holds would be a lie: out of
   * memory fails the call (r->outputs exists since the start) */
  if (json_object_set_new(r->outputs, "from_version",
                          json_integer(r->from_version)) < 0 ||
      json_object_set_new(r->outputs, "to_version",
                          json_integer(r->version)) < 0 ||
      json_object_set(r->outputs, "applied", r->applied) < 0) {
    res.outcome = ADAPTER_FAILED;
    snprintf(res.error, sizeof res.error, "out of memory (%s)", where);
  }
  tail = adapter_redact(strdup(res.error), (const char *const *)r->redact);
  res.tail = tail ? tail : (char *)"";
  res.outputs = r->outputs;
  call->priv = NULL;
  call->on_done(call, &res); /* may free call */
  free(tail);
  run_free(r);
}

static void finish(struct sql_run *r)
{
  if (r->phase == SQL_FINISHING)
    return;
  r->phase = SQL_FINISHING;
  r->pausing = 0;
  r->closing = 2;
  uv_close((uv_handle_t *)&r->pause, on_timer_close);
  uv_close((uv_handle_t *)&r->timer, on_timer_close);
}

static int stopped(struct sql_run *r)
{
  int s;

  uv_mutex_lock(&r->mu);
  s = r->stop;
  uv_mutex_unlock(&r->mu);
  return s;
}

/* ---- scanning the folder ------------------------------------------------ */

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_mig(const void *a, const void *b)
{
  const struct sql_mig *x = a, *y = b;
  return (x->version > y->version) - (x->version < y->version);
}

/* "NNN_name.up.sql" -> version, is_up; 0, or -1 when malformed. */
static int parse_name(const char *f, int64_t *version, int *is_up)
{
  size_t n = strlen(f), i = 0, stem;
  int64_t v = 0;

  if (n > 7 && strcmp(f + n - 7, ".up.sql") == 0) {
    *is_up = 1;
    stem = n - 7;
  } else if (n > 9 && strcmp(f + n - 9, ".down.sql") == 0) {
    *is_up = 0;
    stem = n - 9;
  } else {
    return -1;
  }
  while (i < stem && f[i] >= '0' && f[i] <= '9') {
    if (v > (INT64_MAX - (f[i] - '0')) / 10)
      return -1;
    v = v * 10 + (f[i] - '0');
    i++;
  }
  if (i == 0 || i + 1 >= stem || f[i] != '_')
    return -1;
  for (i++; i < stem; i++)
    if (!((f[i] >= 'a' && f[i] <= 'z') || (f[i] >= 'A' && f[i] <= 'Z') ||
          (f[i] >= '0' && f[i] <= '9') || f[i] == '_' || f[i] == '-'))
      return -1;
  *version = v;
  return 0;
}

/* "001_a.up.sql" and "001_a.down.sql" are one migration; "1_a" is not
 * "001_a". */
static int same_stem(const char *a, const char *b)
{
  size_t n = strcspn(a, ".");
  return n == strcspn(b, ".") && strncmp(a, b, n) == 0;
}

static struct sql_mig *mig_find(struct sql_run *r, int64_t version)
{
  for (size_t i = 0; i < r->nmigs; i++)
    if (r->migs[i].version == version)
      return &r->migs[i];
  return NULL;
}

/* Fills r->migs from the folder (runs on the worker thread). */
static int scan(struct sql_run *r)
{
  DIR *d = opendir(r->dir);
  struct dirent *e;
  char **names = NULL;
  size_t nnames = 0, cap = 0;
  int rc = -1;

  if (d == NULL) {
    set_error(r, "cannot read migrations folder '%s': %s", r->dir,
              strerror(errno));
    return -1;
  }
  while ((e = readdir(d)) != NULL) {
    size_t n = strlen(e->d_name);
    if (e->d_name[0] == '.' || n < 4 || strcmp(e->d_name + n - 4, ".sql"))
      continue; /* a README or an editor's file is not a migration */
    if (nnames == cap) {
      char **nn = realloc(names, (cap = cap ? cap * 2 : 16) * sizeof *nn);
      if (nn == NULL)
        goto nomem;
      names = nn;
    }
    if ((names[nnames] = strdup(e->d_name)) == NULL)
      goto nomem;
    nnames++;
  }
  if (nnames > 1) /* names is NULL for an empty folder: qsort wants none */
    qsort(names, nnames, sizeof *names, cmp_str); /* stable messages */
  if ((r->migs = calloc(nnames ? nnames : 1, sizeof *r->migs)) == NULL)
    goto nomem;

  for (size_t i = 0; i < nnames; i++) {
    int64_t v;
    int up;
    struct sql_mig *m;
    char **slot;
    const char *other;

    if (parse_name(names[i], &v, &up) < 0) {
      set_error(r, "%s/%s: malformed migration file name (want "
                "NNN_name.up.sql or NNN_name.down.sql)", r->dir, names[i]);
      goto out;
    }
    if ((m = mig_find(r, v)) == NULL) {
      m = &r->migs[r->nmigs++];
      m->version = v;
    }
    slot = up ? &m->up : &m->down;
    other = up ? m->down : m->up;
    if (*slot != NULL || (other != NULL && !same_stem(other, names[i]))) {
      set_error(r, "%s/%s and %s/%s have the same version %" PRId64, r->dir,
                *slot ? *slot : other, r->dir, names[i], v);
      goto out;
    }
    *slot = names[i];
    names[i] = NULL;
  }
  qsort(r->migs, r->nmigs, sizeof *r->migs, cmp_mig);
  for (size_t i = 0; i < r->nmigs; i++) {
    struct sql_mig *m = &r->migs[i];
    char path[PATH_MAX];
    char *text;
    size_t len;
    int e2;

    if (m->up == NULL) {
      set_error(r, "%s/%s has no up file (%.*s.up.sql)", r->dir, m->down,
                (int)(strlen(m->down) - 9), m->down);
      goto out;
    }
    if (m->down == NULL) {
      set_error(r, "%s/%s has no down file (%.*s.down.sql)", r->dir, m->up,
                (int)(strlen(m->up) - 7), m->up);
      goto out;
    }
    snprintf(path, sizeof path, "%s/%s", r->dir, m->up);
    if ((e2 = adapter__read_file(path, SQL_FILE_MAX, &text, &len)) < 0) {
      set_error(r, "cannot read '%s': %s", path, strerror(-e2));
      goto out;
    }
    e2 = adapter__sha256_hex(text, len, m->sum);
    free(text);
    if (e2 < 0) {
      set_error(r, "cannot compute the SHA-256 of '%s'", path);
      goto out;
    }
  }
  rc = 0;
  goto out;
nomem:
  set_error(r, "out of memory");
out:
  for (size_t i = 0; i < nnames; i++)
    free(names[i]);
  free(names);
  closedir(d);
  return rc;
}

/* ---- the plan ----------------------------------------------------------- */

static int hist_has(struct sql_run *r, int64_t version)
{
  for (size_t i = 0; i < r->nhist; i++)
    if (r->hist[i].version == version)
      return 1;
  return 0;
}

/* Checks the history against the files and decides which files run, in
 * which order (pure: no I/O, either thread). */
static int plan(struct sql_run *r)
{
  int64_t current = 0, target = 0;

  for (size_t i = 0; i < r->nhist; i++)
    if (r->hist[i].version > current)
      current = r->hist[i].version;
  r->version = current; /* outputs, even on failure */
  r->version_known = 1;
  if (!r->reverting) {
    r->start_version = current;
    if (!r->has_note)
      r->from_version = current;
  }
  for (size_t i = 0; i < r->nhist; i++) {
    struct sql_hist *h = &r->hist[i];
    struct sql_mig *m = mig_find(r, h->version);
    if (m == NULL) {
      set_error(r, "version %" PRId64 " is recorded as applied in '%s' but "
                "'%s' has no file for it; restore its files", h->version,
                r->table, r->dir);
      return -1;
    }
    if (strcmp(m->sum, h->sum) != 0) {
      set_error(r, "%s/%s changed since it was applied (checksum %.12s, "
                "recorded %.12s); restore it or write a new migration",
                r->dir, m->up, m->sum, h->sum);
      return -1;
    }
  }
  for (size_t i = 0; i < r->nmigs; i++) {
    struct sql_mig *m = &r->migs[i];
    if (m->version < current && !hist_has(r, m->version)) {
      set_error(r, "%s/%s is older than the database's version %" PRId64
                " and was never applied; give it a version above %" PRId64,
                r->dir, m->up, current, current);
      return -1;
    }
    if (m->version > target)
      target = m->version;
  }
  if (r->has_to) {
    if (r->to != 0 && mig_find(r, r->to) == NULL) {
      set_error(r, "input 'to' is %" PRId64 " but '%s' has no migration "
                "with that version", r->to, r->dir);
      return -1;
    }
    target = r->to;
  }
  if ((r->steps = calloc(r->nmigs ? r->nmigs : 1, sizeof *r->steps)) ==
      NULL) {
    set_error(r, "out of memory");
    return -1;
  }
  r->down = target < current;
  if (!r->down) {
    for (size_t i = 0; i < r->nmigs; i++)
      if (r->migs[i].version > current && r->migs[i].version <= target)
        r->steps[r->nsteps++] = i;
  } else {
    for (size_t i = r->nmigs; i-- > 0;)
      if (r->migs[i].version > target && hist_has(r, r->migs[i].version))
        r->steps[r->nsteps++] = i;
  }
  return 0;
}

/* After steps[next] succeeded: the version the database is at. */
static void step_done(struct sql_run *r)
{
  struct sql_mig *m = &r->migs[r->steps[r->next]];

  json_array_append_new(r->applied, json_string(r->down ? m->down : m->up));
  if (!r->down) {
    r->version = m->version;
  } else {
    int64_t below = 0;
    for (size_t i = 0; i < r->nhist; i++)
      if (r->hist[i].version < m->version && r->hist[i].version > below)
        below = r->hist[i].version;
    r->version = below;
  }
  r->next++;
}

/* ---- the note of the state's first attempt (adapters/note.h) ------------ */

/* What the note is about: the database and its history table. */
static void note_key(struct sql_run *r, char *out, size_t n)
{
  snprintf(out, n, "sql.migrate\n%s\n%s", r->target, r->table);
}

/* (worker) An earlier attempt of this visit of the state (a retry, or
 * the run before a resume) noted the version it found before it applied
 * anything: that is from_version, whatever this attempt finds. */
static int note_load(struct sql_run *r)
{
  struct cairn_error err = { 0 };
  char key[PATH_MAX + 128];
  json_t *data = NULL, *v;

  note_key(r, key, sizeof key);
  if (adapter__note_read(r->call, key, &data, &err) < 0) {
    set_error(r, "%s", err.msg);
    return -1;
  }
  if (data == NULL)
    return 0;
  v = json_object_get(data, "from_version");
  if (!json_is_integer(v) || json_integer_value(v) < 0) {
    json_decref(data);
    set_error(r, "the note of an earlier attempt in '%s/notes' has no "
              "from_version", r->call->run_dir);
    return -1;
  }
  r->has_note = 1;
  r->note_version = r->from_version = json_integer_value(v);
  json_decref(data);
  log_line(r, "sql.migrate: the state's first attempt found the database "
           "at version %" PRId64 ": from_version stays %" PRId64,
           r->note_version, r->note_version);
  return 0;
}

/* (worker) Before the first file runs: from_version, kept for every later
 * attempt of this visit. An attempt with nothing to do changes nothing
 * and keeps no note. */
static int note_keep(struct sql_run *r)
{
  struct cairn_error err = { 0 };
  char key[PATH_MAX + 128];
  json_t *data;
  int rc;

  if (r->has_note || r->nsteps == 0)
    return 0;
  note_key(r, key, sizeof key);
  if ((data = json_pack("{s:I}", "from_version",
                        (json_int_t)r->from_version)) == NULL) {
    set_error(r, "out of memory");
    return -1;
  }
  rc = adapter__note_write(r->call, key, data, &err);
  json_decref(data);
  if (rc < 0) {
    set_error(r, "cannot keep the version before the migration for a "
              "retry: %s", err.msg);
    return -1;
  }
  r->has_note = 1;
  r->note_version = r->from_version;
  return 0;
}

/* After a failure: whether the files this visit of the state applied are
 * to be reverted. Only after a migration file failed going up (a down
 * that fails stays where it is: its retry goes on down), not after a stop
 * (a timeout or cancel stops at once). */
static int revert_wanted(struct sql_run *r)
{
  return r->failed && r->step_failed && !r->down && !r->reverting &&
         !stopped(r) && r->version_known && r->version > r->from_version;
}

/* The revert plans anew from the history, read again: the down files of
 * what is applied above from_version. */
static void revert_begin(struct sql_run *r)
{
  r->reverting = 1;
  free(r->hist);
  r->hist = NULL;
  r->nhist = 0;
  free(r->steps);
  r->steps = NULL;
  r->nsteps = r->next = 0;
  r->has_to = 1;
  r->to = r->from_version;
  log_line(r, "sql.migrate: migrating back to version %" PRId64 ", where "
           "%s found the database", r->from_version,
           r->from_version != r->start_version ? "the state's first attempt"
                                               : "this attempt");
}

/* ---- SQLite (on the worker thread) -------------------------------------- */

static int sqlite_fail(struct sql_run *r, const char *what)
{
  set_error(r, "%s: %s", what, sqlite3_errmsg(r->db));
  return -1;
}

static int sqlite_history(struct sql_run *r)
{
  char sql[256];
  sqlite3_stmt *st = NULL;
  size_t cap = 0;
  int rc;

  snprintf(sql, sizeof sql,
           "CREATE TABLE IF NOT EXISTS %s (version INTEGER PRIMARY KEY, "
           "name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TEXT "
           "NOT NULL)",
           r->table);
  if (sqlite3_exec(r->db, sql, NULL, NULL, NULL) != SQLITE_OK)
    return sqlite_fail(r, "cannot create the history table");
  snprintf(sql, sizeof sql,
           "SELECT version, checksum FROM %s ORDER BY version", r->table);
  if (sqlite3_prepare_v2(r->db, sql, -1, &st, NULL) != SQLITE_OK)
    return sqlite_fail(r, "cannot read the history table");
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const unsigned char *sum = sqlite3_column_text(st, 1);
    if (r->nhist == cap) {
      struct sql_hist *h =
          realloc(r->hist, (cap = cap ? cap * 2 : 16) * sizeof *h);
      if (h == NULL) {
        sqlite3_finalize(st);
        set_error(r, "out of memory");
        return -1;
      }
      r->hist = h;
    }
    r->hist[r->nhist].version = sqlite3_column_int64(st, 0);
    snprintf(r->hist[r->nhist].sum, sizeof r->hist[r->nhist].sum, "%s",
             sum ? (const char *)sum : "");
    r->nhist++;
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE)
    return sqlite_fail(r, "cannot read the history table");
  return 0;
}

/* One migration file and its history row in one transaction. */
static int sqlite_step(struct sql_run *r, struct sql_mig *m)
{
  const char *file = r->down ? m->down : m->up;
  char path[PATH_MAX], sql[256];
  char *text = NULL, *errmsg = NULL;
  sqlite3_stmt *st = NULL;
  size_t len;
  int rc;

  snprintf(path, sizeof path, "%s/%s", r->dir, file);
  if ((rc = adapter__read_file(path, SQL_FILE_MAX, &text, &len)) < 0) {
    set_error(r, "cannot read '%s': %s", path, strerror(-rc));
    r->step_failed = 1;
    return -1;
  }
  log_line(r, "sql.migrate: %s %s", r->down ? "reverting" : "applying",
           path);
  if (sqlite3_exec(r->db, "BEGIN IMMEDIATE", NULL, NULL, &errmsg) !=
      SQLITE_OK)
    goto failed;
  if (sqlite3_exec(r->db, text, NULL, NULL, &errmsg) != SQLITE_OK)
    goto failed;
  if (r->down)
    snprintf(sql, sizeof sql, "DELETE FROM %s WHERE version = ?1", r->table);
  else
    snprintf(sql, sizeof sql,
             "INSERT INTO %s (version, name, checksum, applied_at) VALUES "
             "(?1, ?2, ?3, strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', 'now'))",
             r->table);
  if (sqlite3_prepare_v2(r->db, sql, -1, &st, NULL) != SQLITE_OK)
    goto failed;
  sqlite3_bind_int64(st, 1, m->version);
  if (!r->down) {
    sqlite3_bind_text(st, 2, m->up, (int)strcspn(m->up, "."),
                      SQLITE_STATIC);
    sqlite3_bind_text(st, 3, m->sum, -1, SQLITE_STATIC);
  }
  if (sqlite3_step(st) != SQLITE_DONE)
    goto failed;
  sqlite3_finalize(st);
  st = NULL;
  if (sqlite3_exec(r->db, "COMMIT", NULL, NULL, &errmsg) != SQLITE_OK)
    goto failed;
  free(text);
  return 0;

failed:
  set_error(r, "%s failed: %s", path,
            errmsg ? errmsg : sqlite3_errmsg(r->db));
  r->step_failed = 1;
  log_line(r, "sql.migrate: %s", cur_error(r));
  sqlite3_free(errmsg);
  sqlite3_finalize(st);
  /* an interrupted or failed statement may have ended the transaction */
  if (!sqlite3_get_autocommit(r->db))
    sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
  free(text);
  return -1;
}

static void sqlite_migrate(struct sql_run *r)
{
  sqlite3 *db = NULL;

  if (sqlite3_open_v2(r->target, &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
      SQLITE_OK) {
    set_error(r, "cannot open SQLite database '%s': %s", r->target,
              db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_close(db);
    return;
  }
  sqlite3_busy_timeout(db, SQL_BUSY_MS);
  uv_mutex_lock(&r->mu);
  r->db = db;
  if (r->stop)
    sqlite3_interrupt(db);
  uv_mutex_unlock(&r->mu);

  if (sqlite_history(r) == 0 && plan(r) == 0 && note_keep(r) == 0) {
    if (r->nsteps == 0)
      log_line(r, "sql.migrate: '%s' is at version %" PRId64 ": nothing to "
               "do", r->target, r->version);
    while (r->next < r->nsteps && !stopped(r) &&
           sqlite_step(r, &r->migs[r->steps[r->next]]) == 0)
      step_done(r);
    if (revert_wanted(r)) {
      revert_begin(r);
      if (sqlite_history(r) == 0 && plan(r) == 0)
        while (r->next < r->nsteps && !stopped(r) &&
               sqlite_step(r, &r->migs[r->steps[r->next]]) == 0)
          step_done(r);
    }
  }
  uv_mutex_lock(&r->mu);
  r->db = NULL;
  uv_mutex_unlock(&r->mu);
  sqlite3_close(db);
}

static void on_work(uv_work_t *w)
{
  struct sql_run *r = w->data;

  if (scan(r) < 0 || stopped(r) || note_load(r) < 0)
    return;
  if (r->kind == SQL_SQLITE)
    sqlite_migrate(r);
}

/* ---- PostgreSQL (psql children through the exec adapter) ---------------- */

static void pg_next(struct sql_run *r);
static void pg_note(struct sql_run *r);

/* The line of psql's output that says what went wrong. */
static void pg_message(const char *tail, char *out, size_t n)
{
  static const char psql_error[] = "psql: error: ";
  const char *best = NULL, *last = NULL, *own = NULL, *p = tail;
  size_t best_len = 0, last_len = 0, own_len = 0;

  while (*p) {
    size_t len = strcspn(p, "\n");
    const char *e = NULL;
    for (const char *k = p; k < p + len && e == NULL; k++)
      if (starts_with(k, "ERROR:") || starts_with(k, "FATAL:"))
        e = k;
    if (e && best == NULL) {
      best = e;
      best_len = len - (size_t)(e - p);
    }
    /* psql's own ("connection to server ... failed: Connection
     * refused"), before the hint line that follows it */
    if (own == NULL && starts_with(p, psql_error)) {
      own = p + strlen(psql_error);
      own_len = len - strlen(psql_error);
    }
    if (len > 0) {
      last = p;
      last_len = len;
    }
    p += len + (p[len] == '\n');
  }
  if (best == NULL) {
    best = own ? own : last;
    best_len = own ? own_len : last_len;
  }
  if (best == NULL)
    snprintf(out, n, "psql printed nothing");
  else
    snprintf(out, n, "%.*s", (int)best_len, best);
}

static int pg_history(struct sql_run *r, json_t *outputs)
{
  json_t *rows = json_object_get(json_object_get(outputs, "json"), "rows");
  size_t i;
  json_t *row;

  free(r->hist);
  r->hist = NULL;
  r->nhist = 0;
  if (!json_is_array(rows)) {
    set_error(r, "cannot read the history table '%s' in '%s': psql printed "
              "no rows", r->table, r->target);
    return -1;
  }
  if ((r->hist = calloc(json_array_size(rows) + 1, sizeof *r->hist)) ==
      NULL) {
    set_error(r, "out of memory");
    return -1;
  }
  json_array_foreach(rows, i, row) {
    json_t *v = json_array_get(row, 0), *s = json_array_get(row, 1);
    if (!json_is_integer(v) || !json_is_string(s)) {
      set_error(r, "cannot read the history table '%s' in '%s': bad row %zu",
                r->table, r->target, i + 1);
      return -1;
    }
    r->hist[r->nhist].version = json_integer_value(v);
    snprintf(r->hist[r->nhist].sum, sizeof r->hist[r->nhist].sum, "%s",
             json_string_value(s));
    r->nhist++;
  }
  return 0;
}

static void pg_spawn(struct sql_run *r, const char *const *argv,
                     int64_t timeout_ms);

/* The history table's SQL: created when missing, read as one JSON object
 * {"rows": [[version, checksum], ...]}. */
static void pg_history_sql(struct sql_run *r, char *create, size_t cn,
                           char *select, size_t sn)
{
  snprintf(create, cn,
           "CREATE TABLE IF NOT EXISTS %s (version bigint PRIMARY KEY, "
           "name text NOT NULL, checksum text NOT NULL, applied_at "
           "timestamptz NOT NULL DEFAULT now())",
           r->table);
  snprintf(select, sn,
           "SELECT json_build_object('rows', coalesce(json_agg("
           "json_build_array(version, checksum) ORDER BY version), "
           "'[]'::json)) FROM %s",
           r->table);
}

/* After a stop that ended a psql: the history again, once every
 * transaction still writing it has ended (SHARE mode waits for them: a
 * killed psql's COMMIT may still be under way on the server). Runs in
 * spite of the stop, bounded by SQL_RECHECK_MS. */
static void pg_recheck(struct sql_run *r)
{
  char create[256], select[384], lock[128];
  const char *argv[] = {
    "psql", "--no-psqlrc", "-X", "-q", "-v", "ON_ERROR_STOP=1",
    "--single-transaction", "-At", "-d", r->target,
    "-c", "SET client_min_messages = warning", "-c", create,
    "-c", lock, "-c", select, NULL,
  };

  r->stopped_in = r->phase;
  r->phase = SQL_PG_RECHECK;
  r->from_known = r->version_known;
  r->version_known = 0; /* until it is read again */
  snprintf(r->unknown_why, sizeof r->unknown_why,
           "the history table was not read again after the stop");
  pg_history_sql(r, create, sizeof create, select, sizeof select);
  snprintf(lock, sizeof lock, "LOCK TABLE %s IN SHARE MODE", r->table);
  snprintf(r->child_header, sizeof r->child_header,
           "sql.migrate: after the stop, reading the history table '%s' "
           "again\n", r->table);
  pg_spawn(r, argv, SQL_RECHECK_MS);
}

/* The recheck ended: the versions are the database's, and the step that
 * was stopped counts as run when its row says so. */
static void pg_rechecked(struct sql_run *r, const struct adapter_result *res)
{
  int64_t v = 0;
  char msg[400];

  if (res->outcome != ADAPTER_SUCCEEDED) {
    pg_message(res->tail, msg, sizeof msg);
    if (res->exit_code < 0 && res->error[0])
      snprintf(msg, sizeof msg, "psql: %s", res->error);
    r->version_known = 0;
    snprintf(r->unknown_why, sizeof r->unknown_why,
             "cannot read the history table '%s' after the stop: %s",
             r->table, msg);
    log_line(r, "sql.migrate: %s", r->unknown_why);
    return;
  }
  if (pg_history(r, res->outputs) < 0) {
    r->version_known = 0;
    snprintf(r->unknown_why, sizeof r->unknown_why, "%s", r->error);
    return;
  }
  for (size_t i = 0; i < r->nhist; i++)
    if (r->hist[i].version > v)
      v = r->hist[i].version;
  if (r->stopped_in == SQL_PG_STEP && r->next < r->nsteps) {
    struct sql_mig *m = &r->migs[r->steps[r->next]];
    if (hist_has(r, m->version) != r->down) { /* it committed */
      json_array_append_new(r->applied,
                            json_string(r->down ? m->down : m->up));
      r->next++;
    }
  }
  if (!r->from_known) { /* stopped while the history was first read */
    r->start_version = v;
    if (!r->has_note)
      r->from_version = v;
  }
  r->version = v;
  r->version_known = 1;
  log_line(r, "sql.migrate: after the stop, the history table says version "
           "%" PRId64, v);
}

/* Whether psql's output says the server is not there yet, or not
 * accepting connections yet: what waiting may cure. A refused password,
 * a missing database or a TLS mismatch are not (psql exits 2 for all of
 * them: the message decides). */
static int pg_not_ready(const struct adapter_result *res)
{
  static const char *const transient[] = {
    "Connection refused",
    "No such file or directory", /* the server's socket is not there */
    "the database system is starting up",
    "the database system is not yet accepting connections",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "too many clients already",
    "server closed the connection unexpectedly",
    "timeout expired",
    "Connection timed out",
    "No route to host",
    "Network is unreachable",
    NULL,
  };

  if (res->exit_code != 2 || res->tail == NULL)
    return 0;
  for (size_t i = 0; transient[i]; i++)
    if (strstr(res->tail, transient[i]) != NULL)
      return 1;
  return 0;
}

static void on_pause(uv_timer_t *t)
{
  struct sql_run *r = t->data;

  r->pausing = 0;
  pg_next(r); /* the history, again */
}

/* The first psql could not connect for a reason waiting may cure: tries
 * again after a pause while connect_within lasts. 1 when it will. */
static int pg_connect_again(struct sql_run *r,
                            const struct adapter_result *res,
                            const char *msg)
{
  uint64_t spent_ms = (uv_hrtime() - r->start_ns) / 1000000;
  uint64_t wait_ms = SQL_CONNECT_PAUSE_MS;
  char pause[32], within[32];

  if (r->phase != SQL_PG_HISTORY || r->reverting || !pg_not_ready(res) ||
      spent_ms >= (uint64_t)r->connect_ms)
    return 0;
  /* the last try comes when the window ends, not a pause before it */
  if (spent_ms + wait_ms > (uint64_t)r->connect_ms)
    wait_ms = (uint64_t)r->connect_ms - spent_ms;
  cairn_duration_exact(SQL_CONNECT_PAUSE_MS, pause, sizeof pause);
  cairn_duration_exact(r->connect_ms, within, sizeof within);
  if (r->tries++ == 0)
    log_line(r, "sql.migrate: the server does not accept connections yet "
             "(%s); trying again every %s for up to %s", msg, pause,
             within);
  r->pausing = 1;
  uv_timer_start(&r->pause, on_pause, wait_ms, 0);
  return 1;
}

static void pg_on_done(struct adapter__child *child,
                       const struct adapter_result *res)
{
  struct sql_run *r = child->data;
  char msg[400];

  if (r->phase == SQL_PG_RECHECK) {
    pg_rechecked(r, res);
    finish(r);
    return;
  }
  if (r->stop) {
    if (r->phase == SQL_PG_STEP && res->outcome == ADAPTER_SUCCEEDED) {
      step_done(r); /* psql exited 0 by itself: committed */
      finish(r);
    } else if (child->spawned) {
      pg_recheck(r); /* what it sent may still commit */
    } else {
      finish(r);
    }
    return;
  }
  if (res->outcome != ADAPTER_SUCCEEDED) {
    pg_message(res->tail, msg, sizeof msg);
    if (res->exit_code < 0 && res->error[0])
      snprintf(msg, sizeof msg, "psql: %s", res->error);
    if (pg_connect_again(r, res, msg))
      return;
    if (r->phase == SQL_PG_HISTORY) {
      char tried[64] = "", spent[32];
      if (r->tries > 0) {
        /* to the 100 ms: the window given was spent, not a second less */
        cairn_duration_exact(
            (int64_t)((uv_hrtime() - r->start_ns) / 100000000) * 100, spent,
            sizeof spent);
        snprintf(tried, sizeof tried, " (tried %d times in %s)",
                 r->tries + 1, spent);
      }
      set_error(r, "cannot read the history table '%s' in '%s': %s%s",
                r->table, r->target, msg, tried);
    } else {
      struct sql_mig *m = &r->migs[r->steps[r->next]];
      set_error(r, "%s/%s failed: %s", r->dir, r->down ? m->down : m->up,
                msg);
      r->step_failed = 1;
    }
    if (revert_wanted(r)) {
      revert_begin(r);
      r->phase = SQL_PG_HISTORY;
      pg_next(r);
      return;
    }
    finish(r);
    return;
  }
  if (r->phase == SQL_PG_HISTORY) {
    if (pg_history(r, res->outputs) < 0 || plan(r) < 0) {
      finish(r);
      return;
    }
    if (r->nsteps == 0)
      log_line(r, "sql.migrate: the database is at version %" PRId64
               ": nothing to do", r->version);
    if (!r->has_note && !r->reverting && r->nsteps > 0) {
      pg_note(r); /* then the steps */
      return;
    }
    r->phase = SQL_PG_STEP;
  } else {
    step_done(r);
  }
  pg_next(r);
}

static void on_note_work(uv_work_t *w)
{
  (void)note_keep(w->data);
}

static void on_note_done(uv_work_t *w, int status)
{
  struct sql_run *r = w->data;

  (void)status; /* never cancelled */
  if (r->failed || r->stop) { /* nothing was applied */
    finish(r);
    return;
  }
  r->phase = SQL_PG_STEP;
  pg_next(r);
}

/* The note goes to the thread pool (it fsyncs); the steps follow. */
static void pg_note(struct sql_run *r)
{
  int rc;

  r->phase = SQL_PG_NOTE;
  if ((rc = uv_queue_work(r->call->loop, &r->work, on_note_work,
                          on_note_done)) < 0) {
    set_error(r, "cannot queue the note of the version before: %s",
              uv_strerror(rc));
    finish(r);
  }
}

/* Runs psql with argv (NULL-terminated) as a child of the exec adapter;
 * timeout_ms 0: none but the run's own. */
static void pg_spawn(struct sql_run *r, const char *const *argv,
                     int64_t timeout_ms)
{
  struct adapter__child_spec spec = { 0 };
  struct cairn_error err = { 0 };
  json_t *env = json_object();

  /* TLS verified by default: libpq's own default (prefer) checks no
   * certificate and falls back to plaintext. A URL that says sslmode
   * (sslmode=disable for a local server without TLS) decides itself. */
  if (env == NULL ||
      (r->password &&
       json_object_set_new(env, "PGPASSWORD", json_string(r->password))) ||
      (strstr(r->target, "sslmode=") == NULL &&
       json_object_set_new(env, "PGSSLMODE", json_string("verify-full")))) {
    json_decref(env);
    set_error(r, "out of memory");
    finish(r);
    return;
  }
  spec.argv = argv;
  spec.env = env;
  spec.log_path = r->call->log_path;
  spec.log_header = r->child_header;
  spec.redact = (const char *const *)r->redact;
  spec.timeout_ms = timeout_ms;
  if (adapter__child_start(&r->child, &spec, &err) < 0) {
    set_error(r, "cannot run psql: %s", err.msg);
    finish(r);
  }
  json_decref(env);
}

static void pg_next(struct sql_run *r)
{
  char sql[512], ver[32], file[PATH_MAX];
  struct sql_mig *m;

  if (r->phase == SQL_PG_HISTORY) {
    char create[256], select[384];
    const char *argv[] = {
      "psql", "--no-psqlrc", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At",
      "-d", r->target, "-c", "SET client_min_messages = warning",
      "-c", create, "-c", select, NULL,
    };
    pg_history_sql(r, create, sizeof create, select, sizeof select);
    snprintf(r->child_header, sizeof r->child_header,
             "sql.migrate: reading the history table '%s'\n", r->table);
    pg_spawn(r, argv, 0);
    return;
  }
  if (r->next >= r->nsteps) {
    finish(r);
    return;
  }
  m = &r->migs[r->steps[r->next]];
  snprintf(file, sizeof file, "%s/%s", r->dir, r->down ? m->down : m->up);
  snprintf(ver, sizeof ver, "%" PRId64, m->version);
  if (r->down)
    snprintf(sql, sizeof sql, "DELETE FROM %s WHERE version = %s", r->table,
             ver);
  else /* the name is letters, digits, '_' and '-' (parse_name) */
    snprintf(sql, sizeof sql,
             "INSERT INTO %s (version, name, checksum) VALUES (%s, '%.*s', "
             "'%s')",
             r->table, ver, (int)strcspn(m->up, "."), m->up, m->sum);
  snprintf(r->child_header, sizeof r->child_header, "sql.migrate: %s %s\n",
           r->down ? "reverting" : "applying", file);
  {
    const char *argv[] = {
      "psql", "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "--single-transaction",
      "-X", "-q", "-d", r->target, "-f", file, "-c", sql, NULL,
    };
    pg_spawn(r, argv, 0);
  }
}

static void on_work_done(uv_work_t *w, int status)
{
  struct sql_run *r = w->data;

  (void)status; /* UV_ECANCELED cannot happen: we never uv_cancel it */
  if (r->failed || r->stop || r->kind == SQL_SQLITE) {
    finish(r);
    return;
  }
  r->phase = SQL_PG_HISTORY;
  pg_next(r);
}

/* ---- start and cancel --------------------------------------------------- */

static void stop(struct sql_run *r, enum adapter_outcome why)
{
  if (r == NULL || r->phase == SQL_FINISHING)
    return;
  uv_mutex_lock(&r->mu);
  if (r->stop == 0)
    r->stop = (int)why;
  if (r->db)
    sqlite3_interrupt(r->db); /* thread-safe, by SQLite's contract */
  uv_mutex_unlock(&r->mu);
  if (r->pausing) { /* no psql runs: nothing to wait for */
    uv_timer_stop(&r->pause);
    finish(r);
    return;
  }
  if (r->phase != SQL_PG_RECHECK) /* that one bounds itself */
    adapter__child_cancel(&r->child);
}

static void on_timeout(uv_timer_t *t)
{
  stop(t->data, ADAPTER_TIMED_OUT);
}

static void sql_cancel(struct adapter_call *call)
{
  stop(call ? call->priv : NULL, ADAPTER_CANCELLED);
}

/* call->redact, then the password (plain and as it may sit in a URL). */
static int build_redact(struct sql_run *r, const char *raw_pw)
{
  size_t n = 0, k = 0;

  while (r->call->redact && r->call->redact[n])
    n++;
  if ((r->redact = calloc(n + 3, sizeof *r->redact)) == NULL)
    return -1;
  for (size_t i = 0; i < n; i++)
    r->redact[k++] = (char *)r->call->redact[i];
  if (r->password && r->password[0])
    r->redact[k++] = r->password;
  if (raw_pw && raw_pw[0])
    r->redact[k++] = (char *)raw_pw;
  return 0;
}

static int sql_start(struct adapter_call *call, struct cairn_error *err)
{
  json_t *in = call->inputs;
  json_t *dir = adapter__input(in, "dir"), *db = adapter__input(in, "db");
  json_t *to = adapter__input(in, "to"), *table = adapter__input(in, "table");
  json_t *pw = adapter__input(in, "password");
  struct sql_run *r;
  const char *dbs;
  char *url_pw = NULL;
  int rc;

  if (!json_is_string(dir) || json_string_length(dir) == 0)
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "input 'dir' must be a folder name");
  if (!json_is_string(db))
    return cairn_error_set(err, CAIRN_E_INVAL, "input 'db' must be a string");
  if (to != NULL && !json_is_integer(to))
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "input 'to' must be an integer");
  if (table != NULL && !json_is_string(table))
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "input 'table' must be a string");
  if (pw != NULL && !json_is_string(pw))
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "input 'password' must be a string");
  if ((rc = sql_check(in, err)) < 0)
    return rc;
  dbs = json_string_value(db);
  if ((rc = check_db(dbs, err)) < 0)
    return rc;

  if ((r = calloc(1, sizeof *r)) == NULL)
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  r->call = call;
  r->child.parent = call;
  r->child.on_done = pg_on_done;
  r->child.data = r;
  r->log_fd = -1;
  uv_mutex_init(&r->mu);
  r->kind = is_postgres_url(dbs) ? SQL_POSTGRES : SQL_SQLITE;
  r->dir = strdup(json_string_value(dir));
  r->table = strdup(table ? json_string_value(table) : "cairn_migrations");
  r->applied = json_array();
  r->outputs = json_object();
  r->has_to = to != NULL;
  r->to = to ? (int64_t)json_integer_value(to) : 0;
  r->connect_ms = json_integer_value(adapter__input(in, "connect_within"));
  if (r->dir == NULL || r->table == NULL || r->applied == NULL ||
      r->outputs == NULL) {
    rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    goto fail;
  }
  for (size_t n = strlen(r->dir); n > 1 && r->dir[n - 1] == '/'; n--)
    r->dir[n - 1] = '\0';
  if (r->kind == SQL_POSTGRES) {
    if ((rc = split_url(dbs, &r->target, &url_pw, err)) < 0)
      goto fail;
    /* the input wins over a password in the URL */
    if (pw && json_string_length(pw) > 0) {
      r->password = strdup(json_string_value(pw));
    } else if (url_pw) {
      r->password = url_pw;
      url_pw = NULL;
    }
  } else {
    r->target = strdup(starts_with(dbs, "sqlite:") ? dbs + 7 : dbs);
  }
  if (r->target == NULL ||
      (pw && json_string_length(pw) > 0 && r->password == NULL)) {
    rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    goto fail;
  }
  /* the URL's password as written (maybe percent-encoded), for redaction */
  if (r->kind == SQL_POSTGRES) {
    const char *auth = strstr(dbs, "://") + 3;
    const char *at = memchr(auth, '@', strcspn(auth, "/?#"));
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    free(url_pw);
    url_pw = colon ? strndup(colon + 1, (size_t)(at - colon - 1)) : NULL;
  }
  if (build_redact(r, url_pw) < 0) {
    rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    goto fail;
  }
  r->url_pw = url_pw; /* in the redact list: freed with the run */
  url_pw = NULL;
  /* best effort, as every step's log: a full disk fails no migration */
  r->log_fd = adapter_log_open(call);

  r->timeout_ms = call->timeout_ms > 0 ? call->timeout_ms : 0;
  r->start_ns = uv_hrtime();
  r->phase = SQL_SCANNING;
  r->work.data = r;
  if ((rc = uv_queue_work(call->loop, &r->work, on_work, on_work_done)) < 0) {
    rc = cairn_error_set(err, CAIRN_E_IO, "cannot queue the migration: %s",
                         uv_strerror(rc));
    goto fail;
  }
  /* from here nothing fails (uv_timer_init cannot on Unix) */
  uv_timer_init(call->loop, &r->timer);
  r->timer.data = r;
  uv_timer_init(call->loop, &r->pause);
  r->pause.data = r;
  if (r->timeout_ms > 0) {
    uv_update_time(call->loop);
    uv_timer_start(&r->timer, on_timeout, (uint64_t)r->timeout_ms, 0);
  }
  call->priv = r;
  return 0;

fail:
  free(url_pw);
  run_free(r);
  return rc;
}

static const struct adapter_input sql_inputs[] = {
  { "dir", ADAPTER_T_STRING, 1, NULL,
    "folder of NNN_name.up.sql and NNN_name.down.sql files" },
  { "db", ADAPTER_T_STRING, 1, NULL,
    "a SQLite file (or sqlite:PATH), or a postgres:// URL" },
  { "to", ADAPTER_T_INTEGER, 0, NULL,
    "the version to migrate to, up or down (default: the highest in dir)" },
  { "table", ADAPTER_T_STRING, 0, "\"cairn_migrations\"",
    "the history table in the target database" },
  { "password", ADAPTER_T_STRING, 0, "\"\"",
    "PostgreSQL password, passed as PGPASSWORD (never on a command line)" },
  { "connect_within", ADAPTER_T_DURATION, 0, "\"0s\"",
    "PostgreSQL: how long to keep trying while the server refuses "
    "connections or is starting up (a SQL error fails at once)" },
  { NULL, 0, 0, NULL, NULL },
};

static const struct adapter_output sql_outputs[] = {
  { "from_version", "integer", "the database's version before (0: none)" },
  { "to_version", "integer", "the database's version after" },
  { "applied", "list", "the files run, in order" },
  { NULL, NULL, NULL },
};

const struct adapter_desc adapter_sql_migrate = {
  .name = "sql.migrate",
  .summary = "apply or revert versioned SQL migrations (SQLite, PostgreSQL)",
  .inputs = sql_inputs,
  .outputs = sql_outputs,
  .idempotent = 1,
  .undo_adapter = "sql.migrate",
  .undo_with = "{\"dir\": \"{{ self.input.dir }}\", "
               "\"db\": \"{{ self.input.db }}\", "
               "\"table\": \"{{ self.input.table }}\", "
               "\"password\": \"{{ self.input.password }}\", "
               "\"to\": \"{{ self.output.from_version }}\"}",
  .check = sql_check,
  .start = sql_start,
  .cancel = sql_cancel,
};
