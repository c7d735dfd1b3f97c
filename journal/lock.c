/* Run locks: one active run per (workflow, env). Taking one is a single
 * BEGIN IMMEDIATE transaction (read the row, judge its holder, write), so
 * two processes racing for it cannot both win. */
#include "journal/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/proc.h"

#define LOCK_COLUMNS \
  "run_id, pid, host, proc_start, boot_id, acquired_ms, heartbeat_ms"

/* What this process writes into a lock row. */
struct me {
  int pid;
  int64_t proc_start;
  char host[256];
  char boot_id[40];
};

static void hostname(char out[256])
{
  if (gethostname(out, 256) != 0)
    out[0] = '\0';
  out[255] = '\0';
}

static void who_am_i(struct me *me)
{
  me->pid = (int)getpid();
  if (cairn_proc_start_time(me->pid, &me->proc_start) != 0)
    me->proc_start = 0;
  hostname(me->host);
  cairn_proc_boot_id(me->boot_id);
}

/* Same host: the pid runs with the same start time in this boot. Other
 * host: we cannot tell, so alive. */
static int holder_alive(const struct journal_lock_holder *h,
                        const char *boot_id, const struct me *me)
{
  if (strcmp(h->host, me->host) != 0)
    return 1;
  if (boot_id[0] != '\0' && me->boot_id[0] != '\0' &&
      strcmp(boot_id, me->boot_id) != 0)
    return 0; /* it ran before this host rebooted */
  if (h->pid <= 0)
    return 0;
  return cairn_proc_alive(h->pid, h->proc_start);
}

static int is_me(const struct journal_lock_holder *h, const struct me *me)
{
  return h->pid == me->pid && h->proc_start == me->proc_start &&
         strcmp(h->host, me->host) == 0;
}

/* Reads the lock row of (workflow, env): 1 and *h filled (boot_id into
 * boot, 40 bytes), 0 when none, or a negative code. */
static int lock_read(struct journal *j, const char *workflow, const char *env,
                     struct journal_lock_holder *h, char *boot,
                     struct cairn_error *err)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = journal__stmt(j, JOURNAL__ST_LOCK_GET,
                     "SELECT " LOCK_COLUMNS " FROM locks "
                     "WHERE workflow = ?1 AND env = ?2",
                     &st, err);
  if (rc != 0)
    return rc;
  sqlite3_bind_text(st, 1, workflow, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, env, -1, SQLITE_STATIC);
  switch (sqlite3_step(st)) {
  case SQLITE_ROW:
    memset(h, 0, sizeof *h);
    snprintf(h->run_id, sizeof h->run_id, "%s", journal__column_text(st, 0));
    h->pid = sqlite3_column_int(st, 1);
    snprintf(h->host, sizeof h->host, "%s", journal__column_text(st, 2));
    h->proc_start = sqlite3_column_int64(st, 3);
    snprintf(boot, 40, "%s", journal__column_text(st, 4));
    h->acquired_ms = sqlite3_column_int64(st, 5);
    h->heartbeat_ms = sqlite3_column_int64(st, 6);
    rc = 1;
    break;
  case SQLITE_DONE:
    rc = 0;
    break;
  default:
    rc = journal__sqlite_error(j, err, "cannot read a lock in journal");
    break;
  }
  journal__stmt_done(j, JOURNAL__ST_LOCK_GET, st);
  return rc;
}

/* Writes this process in as the holder: a new row (insert) or a takeover
 * of the existing one (update, keeping acquired_ms when the run is the
 * same). */
static int lock_write(struct journal *j, int insert, const char *workflow,
                      const char *env, const char *run_id, int64_t acquired,
                      const struct me *me, struct cairn_error *err)
{
  enum journal__stmt_id id =
      insert ? JOURNAL__ST_LOCK_INSERT : JOURNAL__ST_LOCK_UPDATE;
  const char *sql =
      insert ? "INSERT INTO locks (workflow, env, " LOCK_COLUMNS ") "
               "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
             : "UPDATE locks SET run_id = ?3, pid = ?4, host = ?5, "
               "proc_start = ?6, boot_id = ?7, acquired_ms = ?8, "
               "heartbeat_ms = ?9 WHERE workflow = ?1 AND env = ?2";
  sqlite3_stmt *st = NULL;
  int rc = journal__stmt(j, id, sql, &st, err);

  if (rc != 0)
    return rc;
  sqlite3_bind_text(st, 1, workflow, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, env, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, run_id, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 4, me->pid);
  sqlite3_bind_text(st, 5, me->host, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 6, me->proc_start);
  sqlite3_bind_text(st, 7, me->boot_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 8, acquired);
  sqlite3_bind_int64(st, 9, journal_now_ms());
  if (sqlite3_step(st) != SQLITE_DONE)
    rc = journal__sqlite_error(j, err, "cannot write a lock in journal");
  journal__stmt_done(j, id, st);
  return rc;
}

int journal_lock_error(struct cairn_error *err, const char *workflow,
                       const char *env, const struct journal_lock_holder *h)
{
  return cairn_error_set(err, CAIRN_E_LOCKED,
                         "workflow '%s'%s%s%s is locked by run %s (pid %d on "
                         "%s) (hint: wait for it to end, or stop it with "
                         "Ctrl-C or kill %d; 'cairn status' shows it)",
                         workflow, *env ? " env '" : "", env,
                         *env ? "'" : "", h->run_id, h->pid, h->host,
                         h->pid);
}

int journal_lock_acquire(struct journal *j, const char *workflow,
                         const char *env, const char *run_id,
                         struct journal_lock_holder *holder, int *taken_over,
                         struct cairn_error *err)
{
  struct journal_lock_holder cur;
  struct me me;
  char boot[40];
  int own = 0, rc, found;

  if (taken_over != NULL)
    *taken_over = 0;
  if (holder != NULL)
    memset(holder, 0, sizeof *holder);
  if (workflow == NULL || run_id == NULL || *run_id == '\0' ||
      strlen(run_id) >= JOURNAL_RUN_ID_LEN)
    return cairn_error_set(err, CAIRN_E_INVAL, "cannot lock (bad argument)");
  if (env == NULL)
    env = "";
  who_am_i(&me);

  rc = journal__write_begin(j, &own, err);
  if (rc != 0)
    return rc;
  found = lock_read(j, workflow, env, &cur, boot, err);
  if (found < 0) {
    rc = found;
    goto out;
  }
  if (!found) {
    rc = lock_write(j, 1, workflow, env, run_id, journal_now_ms(), &me, err);
    goto out;
  }
  if (holder != NULL)
    *holder = cur;
  if (!is_me(&cur, &me) && holder_alive(&cur, boot, &me)) {
    rc = journal_lock_error(err, workflow, env, &cur);
    goto out;
  }
  if (strcmp(cur.run_id, run_id) == 0) {
    /* The same run again (this process, or a resume after a crash). */
    rc = lock_write(j, 0, workflow, env, run_id, cur.acquired_ms, &me, err);
    goto out;
  }
  if (is_me(&cur, &me)) {
    /* This process holds it for another run: it is alive. */
    rc = journal_lock_error(err, workflow, env, &cur);
    goto out;
  }
  rc = lock_write(j, 0, workflow, env, run_id, journal_now_ms(), &me, err);
  if (rc == 0 && taken_over != NULL)
    *taken_over = 1;
out:
  return journal__write_end(j, own, rc, err);
}

int journal_lock_release(struct journal *j, const char *workflow,
                         const char *env, const char *run_id,
                         struct cairn_error *err)
{
  sqlite3_stmt *st = NULL;
  int own = 0, rc;

  if (workflow == NULL || run_id == NULL)
    return cairn_error_set(err, CAIRN_E_INVAL, "cannot unlock (bad argument)");
  rc = journal__write_begin(j, &own, err);
  if (rc != 0)
    return rc;
  rc = journal__stmt(j, JOURNAL__ST_LOCK_DELETE,
                     "DELETE FROM locks WHERE workflow = ?1 AND env = ?2 "
                     "AND run_id = ?3",
                     &st, err);
  if (rc != 0)
    goto out;
  sqlite3_bind_text(st, 1, workflow, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, env != NULL ? env : "", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, run_id, -1, SQLITE_STATIC);
  if (sqlite3_step(st) != SQLITE_DONE)
    rc = journal__sqlite_error(j, err, "cannot release a lock in journal");
out:
  journal__stmt_done(j, JOURNAL__ST_LOCK_DELETE, st);
  return journal__write_end(j, own, rc, err);
}

int journal_lock_heartbeat(struct journal *j, const char *workflow,
                           const char *env, const char *run_id,
                           struct cairn_error *err)
{
  sqlite3_stmt *st = NULL;
  int own = 0, rc;

  if (workflow == NULL || run_id == NULL)
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "cannot refresh a lock (bad argument)");
  rc = journal__write_begin(j, &own, err);
  if (rc != 0)
    return rc;
  rc = journal__stmt(j, JOURNAL__ST_LOCK_HEARTBEAT,
                     "UPDATE locks SET heartbeat_ms = ?4 WHERE workflow = ?1 "
                     "AND env = ?2 AND run_id = ?3",
                     &st, err);
  if (rc != 0)
    goto out;
  sqlite3_bind_text(st, 1, workflow, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, env != NULL ? env : "", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, run_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, journal_now_ms());
  if (sqlite3_step(st) != SQLITE_DONE)
    rc = journal__sqlite_error(j, err, "cannot refresh a lock in journal");
  else if (sqlite3_changes(j->db) == 0)
    rc = cairn_error_set(err, CAIRN_E_NOTFOUND,
                         "run %s does not hold the lock of workflow '%s'",
                         run_id, workflow);
out:
  journal__stmt_done(j, JOURNAL__ST_LOCK_HEARTBEAT, st);
  return journal__write_end(j, own, rc, err);
}

int journal_lock_check(struct journal *j, const char *workflow,
                       const char *env, struct cairn_error *err)
{
  struct journal_lock_holder cur;
  struct me me;
  char boot[40];

  if (env == NULL)
    env = "";
  /* a lock that cannot be read refuses nothing here: the acquire that
   * follows reads it again and says why */
  if (lock_read(j, workflow, env, &cur, boot, NULL) <= 0)
    return 0;
  who_am_i(&me);
  if (!is_me(&cur, &me) && holder_alive(&cur, boot, &me))
    return journal_lock_error(err, workflow, env, &cur);
  return 0;
}

int journal_lock_get(struct journal *j, const char *workflow, const char *env,
                     struct journal_lock_holder *holder, int *alive,
                     struct cairn_error *err)
{
  struct journal_lock_holder cur;
  struct me me;
  char boot[40];
  int found;

  if (workflow == NULL)
    return cairn_error_set(err, CAIRN_E_INVAL, "no workflow given");
  if (env == NULL)
    env = "";
  found = lock_read(j, workflow, env, &cur, boot, err);
  if (found < 0)
    return found;
  if (!found)
    return cairn_error_set(err, CAIRN_E_NOTFOUND,
                           "workflow '%s'%s%s%s is not locked", workflow,
                           *env ? " env '" : "", env, *env ? "'" : "");
  if (holder != NULL)
    *holder = cur;
  if (alive != NULL) {
    who_am_i(&me);
    *alive = is_me(&cur, &me) || holder_alive(&cur, boot, &me);
  }
  return 0;
}
