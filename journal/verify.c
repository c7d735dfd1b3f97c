/* Recomputing the hash chain over every event, in seq order. Each event is
 * checked in three steps, and the first failing step names it:
 *   1. its seq is the one after the previous event's (else an event is
 *      missing: the first missing seq is reported);
 *   2. its prev_hash is the previous event's stored hash, or 64 zeros for
 *      seq 1 (else an event was removed, inserted or the order changed);
 *   3. its hash, recomputed from its stored fields and stored payload
 *      text, is its stored hash (else the event was edited).
 * The walk goes on after the first bad event so that `events` counts them
 * all. Removing the newest events leaves no trace in the chain itself
 * (an anchor, kept outside the journal, catches that).
 * A keyed journal is checked with the key given by journal_set_key: an
 * attacker who edits an event and recomputes every hash after it cannot
 * do so without the key.
 * Before its links and hash, each event's stored form is checked
 * (event_misstored): the hash covers the values as C reads them, SQL
 * compares them as stored, and the two must be the same values.
 * The runs table is outside the chain but is what status, history and
 * the promotion gates read: each row is then confirmed against its
 * events, so an edited row is found like an edited event. */
#include "journal/internal.h"
#include "journal/events.h"

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void mark(struct journal_verify_result *res, int64_t seq,
                 const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void mark(struct journal_verify_result *res, int64_t seq,
                 const char *fmt, ...)
{
  va_list ap;

  if (res->first_bad_seq != 0)
    return;
  res->first_bad_seq = seq;
  va_start(ap, fmt);
  vsnprintf(res->reason, sizeof res->reason, fmt, ap);
  va_end(ap);
}

static const char zeros[JOURNAL_HASH_HEX] =
    "0000000000000000000000000000000000000000000000000000000000000000";

/* Why an event's recomputed hash is not its stored one, as far as the key
 * tells: the wrong key, a key the journal does not record, or an edit. */
static void hash_mismatch(const struct journal *j, char *out, size_t n)
{
  if (j->key != NULL && j->recorded_key_id[0] == '\0')
    snprintf(out, n, "hash is not keyed with the given key, and the journal "
             "records no key (created without one, or its key record was "
             "removed)");
  else if (j->key != NULL && strcmp(j->key_id, j->recorded_key_id) != 0)
    snprintf(out, n, "hash does not match: the key given (id %s) is not the "
             "journal's (id %s)", j->key_id, j->recorded_key_id);
  else
    snprintf(out, n, "hash does not match the event's contents (the event "
             "was edited)");
}

/* How journal_append stores each column of an event, in the order of
 * CHECK_COLUMNS and of journal_verify's query. */
static const struct {
  const char *name;
  int type;
} event_columns[] = {
  {"seq", SQLITE_INTEGER},     {"run_id", SQLITE_TEXT},
  {"kind", SQLITE_TEXT},       {"state", SQLITE_TEXT},
  {"attempt", SQLITE_INTEGER}, {"time_ms", SQLITE_INTEGER},
  {"payload", SQLITE_TEXT},    {"prev_hash", SQLITE_TEXT},
  {"hash", SQLITE_TEXT},
};
#define EVENT_PAYLOAD 6 /* its index there */

/* Is the event in st's row stored otherwise than journal_append writes
 * it? The hash covers run_id, kind and state up to their first NUL byte
 * and each number as sqlite3_column_int64 reads it, whatever the storage
 * class; SQL, which picks a run's events and its status by run_id and
 * kind, compares whole values with their class. So a kind cast to a
 * blob, or a run_id with bytes after a NUL, passes the hash and is
 * another value to every query. Each column must have the class cairn
 * gives it, no text a NUL byte (the payload is hashed whole, and
 * canonical JSON escapes NUL: only its class is checked), and the
 * attempt must be the int it is hashed as. 0, or 1 with why set.
 * Called before anything reads the row's columns. */
static int event_misstored(sqlite3_stmt *st, char *why, size_t n)
{
  char how[64];
  int64_t attempt;

  for (int i = 0; i < (int)(sizeof event_columns / sizeof event_columns[0]);
       i++) {
    /* the payload is hashed whole: its class alone can differ */
    if (i == EVENT_PAYLOAD && sqlite3_column_type(st, i) == SQLITE_TEXT)
      continue;
    if (journal__misstored(st, i, event_columns[i].type, how, sizeof how)) {
      snprintf(why, n, "its %s %s (the event was edited)",
               event_columns[i].name, how);
      return 1;
    }
  }
  attempt = sqlite3_column_int64(st, 4);
  if (attempt < 0 || attempt > INT_MAX) {
    snprintf(why, n, "its attempt %" PRId64 " is out of range (the event "
             "was edited)", attempt);
    return 1;
  }
  return 0;
}

/* Checks the event in st's current row (the columns of RUN_CHECK's
 * query: the event's, then the stored hash of the event before it): sets
 * *bad to its seq and why when it does not hold. 0, or an error from
 * hashing. */
static int check_row(struct journal *j, sqlite3_stmt *st, int64_t *bad,
                     char *why, size_t n, struct cairn_error *err)
{
  char computed[JOURNAL_HASH_HEX];
  unsigned char prev[32];
  int64_t s = sqlite3_column_int64(st, 0);
  int before_type = sqlite3_column_type(st, 9);

  if (event_misstored(st, why, n)) {
    *bad = s;
    return 0;
  }
  if (s > 1 && before_type == SQLITE_NULL) {
    *bad = s;
    snprintf(why, n, "event %" PRId64 " before it is missing", s - 1);
    return 0;
  }

  const char *prev_hash = journal__column_text(st, 7);
  const char *before = s == 1 ? zeros : journal__column_text(st, 9);
  /* the link is to the stored hash as it is, every byte of it */
  if (strcmp(prev_hash, before) != 0 ||
      (s > 1 && (before_type != SQLITE_TEXT ||
                 sqlite3_column_bytes(st, 9) != JOURNAL_HASH_HEX - 1)) ||
      journal__unhex32(prev_hash, prev) != 0) {
    *bad = s;
    snprintf(why, n, "its prev_hash is not the hash of event %" PRId64
             " (an event was removed, inserted or moved)", s - 1);
    return 0;
  }
  int rc = journal__hash_row(j->mac, st, prev, computed, err);
  if (rc == 0 && strcmp(computed, journal__column_text(st, 8)) != 0) {
    *bad = s;
    hash_mismatch(j, why, n);
  }
  return rc;
}

/* A keyed journal cannot be checked without its key; one whose key
 * record was added to plain hashes is no keyed journal (a key would not
 * help): CAIRN_E_CHAIN. */
static int need_key(struct journal *j, struct cairn_error *err)
{
  int64_t at = 0;
  int rc = journal__key_load_recorded(j, err);
  if (rc != 0 || j->recorded_key_id[0] == '\0' || j->key != NULL)
    return rc;
  rc = journal__key_added(j, &at, err);
  if (rc < 0)
    return rc;
  if (rc > 0)
    return journal__key_added_error(j, at, err);
  return cairn_error_set(err, CAIRN_E_KEY,
                         "journal '%s' is keyed (key id %s): pass its key "
                         "with --key-file FILE or CAIRN_KEY_FILE",
                         j->path, j->recorded_key_id);
}

#define CHECK_COLUMNS                                                        \
  "SELECT e.seq, e.run_id, e.kind, e.state, e.attempt, e.time_ms, "         \
  "e.payload, e.prev_hash, e.hash, p.hash "                                 \
  "FROM events e LEFT JOIN events p ON p.seq = e.seq - 1 "

int journal_tail_check(struct journal *j, struct cairn_error *err)
{
  sqlite3_stmt *st = NULL;
  char why[256] = "";
  int64_t bad = 0;
  int rc;

  if (j->flags & JOURNAL_UNCHAINED)
    return 0;
  if ((rc = need_key(j, err)) != 0)
    return rc;
  rc = journal__stmt(j, JOURNAL__ST_TAIL_CHECK,
                     CHECK_COLUMNS "WHERE e.seq = "
                     "(SELECT max(seq) FROM events)", &st, err);
  if (rc != 0)
    return rc;
  int step = sqlite3_step(st);
  if (step == SQLITE_ROW)
    rc = check_row(j, st, &bad, why, sizeof why, err);
  else if (step != SQLITE_DONE)
    rc = journal__sqlite_error(j, err, "cannot read journal");
  journal__stmt_done(j, JOURNAL__ST_TAIL_CHECK, st);
  if (rc == 0 && bad != 0)
    rc = cairn_error_set(err, CAIRN_E_CHAIN,
                         "journal '%s' does not check out at its newest "
                         "event %" PRId64 ": %s (hint: 'cairn verify' says "
                         "what is wrong)", j->path, bad, why);
  return rc;
}

/* The first event whose run_id hashes as run_id but is stored as
 * another value, which `run_id = ?` does not find: a blob of its bytes,
 * or a text with a NUL byte and more after them (event_misstored). Replay
 * reads a run's events by that query, so such an event (a run's failure,
 * its rollback) would be left out unseen. Both forms sort right after
 * run_id in events_by_run (text after its prefix, a blob after every
 * text): two range searches of that index, not a scan. Sets *bad and why
 * when there is one; 0, or an error. */
static int hidden_events(struct journal *j, const char *run_id,
                         int64_t *bad, char *why, size_t n,
                         struct cairn_error *err)
{
  sqlite3_stmt *st = NULL;
  int rc = journal__stmt(
      j, JOURNAL__ST_RUN_CHECK_HIDDEN,
      CHECK_COLUMNS "WHERE (e.run_id > ?1 AND e.run_id < ?1 || char(1)) "
      "OR (e.run_id >= CAST(?1 AS BLOB) AND "
      "e.run_id < CAST(?1 || char(1) AS BLOB)) ORDER BY e.seq LIMIT 1",
      &st, err);

  if (rc != 0)
    return rc;
  sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
  switch (sqlite3_step(st)) {
  case SQLITE_ROW:
    rc = check_row(j, st, bad, why, n, err);
    if (rc == 0 && *bad == 0) { /* not reached: its run_id is misstored */
      *bad = sqlite3_column_int64(st, 0);
      snprintf(why, n, "its run_id is not stored as text (the event was "
               "edited)");
    }
    break;
  case SQLITE_DONE:
    break;
  default:
    rc = journal__sqlite_error(j, err, "cannot read journal");
    break;
  }
  journal__stmt_done(j, JOURNAL__ST_RUN_CHECK_HIDDEN, st);
  return rc;
}

int journal_run_check(struct journal *j, const char *run_id, int64_t *seq,
                      struct cairn_error *err)
{
  sqlite3_stmt *st = NULL;
  char why[256] = "";
  int64_t bad = 0, n = 0;
  int rc, step = SQLITE_DONE;

  if (seq)
    *seq = 0;
  /* A simulation's journal keeps no chain: nothing to check against. */
  if (j->flags & JOURNAL_UNCHAINED)
    return 0;
  if ((rc = need_key(j, err)) != 0)
    return rc;
  /* The run's events through events_by_run, each with the stored hash of
   * the event before it (whatever its run) through the primary key: the
   * cost is the run's events, not the journal's. */
  rc = journal__stmt(j, JOURNAL__ST_RUN_CHECK,
                     CHECK_COLUMNS "WHERE e.run_id = ?1 ORDER BY e.seq",
                     &st, err);
  if (rc != 0)
    return rc;
  sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
  while (bad == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
    n++;
    rc = check_row(j, st, &bad, why, sizeof why, err);
    if (rc != 0)
      break;
  }
  if (rc == 0 && bad == 0 && step != SQLITE_DONE)
    rc = journal__sqlite_error(j, err, "cannot read journal");
  journal__stmt_done(j, JOURNAL__ST_RUN_CHECK, st);
  if (rc == 0 && bad == 0)
    rc = hidden_events(j, run_id, &bad, why, sizeof why, err);
  if (rc != 0)
    return rc;
  if (bad == 0 && n == 0)
    return cairn_error_set(err, CAIRN_E_CHAIN,
                           "run %s has no events in journal '%s' (hint: "
                           "'cairn verify' checks the whole journal)",
                           run_id, j->path);
  if (bad == 0)
    return 0;
  if (seq)
    *seq = bad;
  return cairn_error_set(err, CAIRN_E_CHAIN,
                         "run %s does not check out at event %" PRId64
                         ": %s (hint: 'cairn verify' checks the whole "
                         "journal)", run_id, bad, why);
}

/* How far a row's created_ms may be from its first event's time_ms: both
 * are read from the clock within one transaction, the row just before
 * the event, so a larger gap is an edit (one that reorders runs, which
 * history, status and promote's default release go by). */
#define CREATED_SLACK_MS 2000

/* Does the row's field name (text) agree with the first event's payload?
 * A field the event names is held to it (the chain covers the event, so
 * no name can be taken out of it unseen); one it leaves out is not,
 * except where leaving out has a meaning: must (workflow, env and
 * release, which every first event names) and a run.started's parent
 * (written only when there is one). */
static int field_differs(json_t *first, int must, const char *name,
                         const char *row, const char **had)
{
  json_t *v = json_object_get(first, name);
  if (v == NULL && !must)
    return 0;
  *had = v ? json_string_value(v) : "";
  if (*had == NULL)
    *had = "";
  return strcmp(*had, row ? row : "") != 0;
}

int journal_run_confirm(struct journal *j, const struct journal_run *row,
                        int64_t *seq, struct cairn_error *err)
{
  sqlite3_stmt *st = NULL, *ss = NULL;
  int64_t at = 0;
  const char *run_id = row->id;
  /* Two plain index searches, not one query joining them: SQLite
   * materialized each joined subquery into a temporary table, whose page
   * cache it allocated and freed per run, and verify of 10,000 runs spent
   * most of its time in the page faults of that memory. */
  int rc = journal__stmt(j, JOURNAL__ST_RUN_CONFIRM,
                         "SELECT seq, payload, kind, time_ms FROM events "
                         "WHERE run_id = ?1 ORDER BY seq LIMIT 1",
                         &st, err);
  if (rc != 0)
    return rc;
  /* the last event that sets a status: the kinds that journal_event_status
   * maps, a record's approval.granted only */
  rc = journal__stmt(
      j, JOURNAL__ST_RUN_CONFIRM_STATUS,
      "SELECT seq, kind, payload FROM events WHERE run_id = ?1 AND "
      "(kind IN ('" JOURNAL_EV_RUN_STARTED "', '" JOURNAL_EV_RUN_RESUMED
      "', '" JOURNAL_EV_ROLLBACK_REQUESTED "', '" JOURNAL_EV_RUN_FINISHED
      "', '" JOURNAL_EV_RUN_INTERRUPTED "', '" JOURNAL_EV_APPROVAL_WAITING
      "', '" JOURNAL_EV_PROMOTION_REFUSED "') OR (kind = '"
      JOURNAL_EV_APPROVAL_GRANTED "' AND state = '')) "
      "ORDER BY seq DESC LIMIT 1",
      &ss, err);
  if (rc != 0) {
    journal__stmt_done(j, JOURNAL__ST_RUN_CONFIRM, st);
    return rc;
  }
  sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(ss, 1, run_id, -1, SQLITE_STATIC);
  int step = sqlite3_step(st);
  int sstep = step == SQLITE_ROW ? sqlite3_step(ss) : SQLITE_DONE;
  if (step == SQLITE_ROW && sstep != SQLITE_ROW && sstep != SQLITE_DONE)
    step = sstep; /* a read error */
  if (step == SQLITE_DONE) {
    rc = cairn_error_set(err, CAIRN_E_CHAIN,
                         "run %s has a row but no events (its events were "
                         "removed)", run_id);
  } else if (step == SQLITE_ROW && sstep == SQLITE_DONE) {
    at = sqlite3_column_int64(st, 0);
    rc = cairn_error_set(err, CAIRN_E_CHAIN,
                         "run %s has no event that gives it a status (its "
                         "first is event %" PRId64 "; events were removed or "
                         "replaced)", run_id, at);
  } else if (step == SQLITE_ROW && row->misstored[0] != '\0') {
    /* a value SQL tells apart from what it says (a status with bytes
     * after a NUL, a created_ms stored as text that sorts after every
     * number), whatever it reads as here */
    at = sqlite3_column_int64(st, 0);
    rc = cairn_error_set(err, CAIRN_E_CHAIN,
                         "run %s's row: %s (the runs table was edited)",
                         run_id, row->misstored);
  } else if (step == SQLITE_ROW) {
    json_t *first = json_loads(journal__column_text(st, 1), 0, NULL);
    json_t *last = json_loads(journal__column_text(ss, 2), 0, NULL);
    /* the query's approval.granted are a record's (state '') */
    const char *had = journal_event_status(journal__column_text(ss, 1), last,
                                           1);
    int started = strcmp(journal__column_text(st, 2),
                         JOURNAL_EV_RUN_STARTED) == 0;
    const char *names[] = {"workflow", "env", "release", "actor", "parent",
                           "file", "file_sha256"};
    const char *rows[] = {row->workflow, row->env, row->release, row->actor,
                          row->parent, row->file, row->file_sha256};
    int64_t first_ms = sqlite3_column_int64(st, 3);
    at = sqlite3_column_int64(ss, 0);
    if (strcmp(had, row->status ? row->status : "") != 0)
      rc = cairn_error_set(err, CAIRN_E_CHAIN,
                           "run %s's row says status '%s' but its event %"
                           PRId64 " says '%s' (the runs table was edited, "
                           "or events were removed)",
                           run_id, row->status, at, had);
    for (size_t i = 0; rc == 0 && i < sizeof names / sizeof names[0]; i++) {
      /* workflow, env and release: every first event names them */
      const char *v = "";
      int must = i < 3 || (started && strcmp(names[i], "parent") == 0);
      if (field_differs(first, must, names[i], rows[i], &v)) {
        at = sqlite3_column_int64(st, 0);
        rc = cairn_error_set(err, CAIRN_E_CHAIN,
                             "run %s's row says %s '%.40s' but its event %"
                             PRId64 " says '%.40s' (the runs table was "
                             "edited)", run_id, names[i],
                             rows[i] ? rows[i] : "", at, v);
      }
    }
    /* The params: run.started holds them as the row does (secrets
     * redacted in both); a record has none. */
    json_t *params = json_object_get(first, "params"), *none = json_object();
    int same = json_equal(params ? params : none, row->params);
    json_decref(none);
    if (rc == 0 && started && params && row->params && !same) {
      at = sqlite3_column_int64(st, 0);
      rc = cairn_error_set(err, CAIRN_E_CHAIN,
                           "run %s's row has params other than its event %"
                           PRId64 " (the runs table was edited)", run_id,
                           at);
    }
    if (rc == 0 && (row->created_ms > first_ms + CREATED_SLACK_MS ||
                    row->created_ms < first_ms - CREATED_SLACK_MS)) {
      at = sqlite3_column_int64(st, 0);
      rc = cairn_error_set(err, CAIRN_E_CHAIN,
                           "run %s's row says created_ms %" PRId64
                           " but its event %" PRId64 " has time_ms %" PRId64
                           " (the runs table was edited)", run_id,
                           row->created_ms, at, first_ms);
    }
    json_decref(first);
    json_decref(last);
  } else {
    rc = journal__sqlite_error(j, err, "cannot read journal");
  }
  journal__stmt_done(j, JOURNAL__ST_RUN_CONFIRM_STATUS, ss);
  journal__stmt_done(j, JOURNAL__ST_RUN_CONFIRM, st);
  if (seq)
    *seq = at;
  return rc;
}

/* Every row of the runs table against its events; the first that
 * disagrees marks res. */
static int confirm_rows(struct journal *j, struct journal_verify_result *res,
                        struct cairn_error *err)
{
  sqlite3_stmt *st = NULL;
  struct cairn_error why = {0};
  int step, rc = journal__stmt(j, JOURNAL__ST_RUN_ROWS,
                               "SELECT " JOURNAL__RUN_COLUMNS " FROM runs "
                               "ORDER BY created_ms, id",
                               &st, err);
  if (rc != 0)
    return rc;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    struct journal_run row = {0};
    int64_t at = 0;
    /* first, before the reads below convert a column */
    journal__run_misstored(st, row.misstored, sizeof row.misstored);
    /* the row's strings are borrowed from st for the one call */
    snprintf(row.id, sizeof row.id, "%s", journal__column_text(st, 0));
    row.workflow = (char *)journal__column_text(st, 1);
    row.file = (char *)journal__column_text(st, 2);
    row.file_sha256 = (char *)journal__column_text(st, 3);
    row.env = (char *)journal__column_text(st, 4);
    row.release = (char *)journal__column_text(st, 5);
    row.params = json_loads(journal__column_text(st, 6), 0, NULL);
    row.status = (char *)journal__column_text(st, 7);
    row.actor = (char *)journal__column_text(st, 8);
    row.parent = (char *)journal__column_text(st, 9);
    row.created_ms = sqlite3_column_int64(st, 10);
    row.updated_ms = sqlite3_column_int64(st, 11);
    row.finished_ms = sqlite3_column_int64(st, 12);
    if (row.params == NULL || !json_is_object(row.params)) {
      json_decref(row.params);
      row.params = json_null(); /* equal to no object: always differs */
    }
    rc = journal_run_confirm(j, &row, &at, &why);
    json_decref(row.params);
    if (rc == CAIRN_E_CHAIN) {
      mark(res, at ? at : res->last_seq + 1, "%s", why.msg);
      rc = 0;
      break;
    }
    if (rc != 0) {
      *err = why;
      break;
    }
  }
  if (rc == 0 && step != SQLITE_ROW && step != SQLITE_DONE)
    rc = journal__sqlite_error(j, err, "cannot read journal");
  journal__stmt_done(j, JOURNAL__ST_RUN_ROWS, st);
  if (rc != 0 || res->first_bad_seq != 0)
    return rc;
  /* Events whose run has no row: the row was deleted to hide the run
   * from history, show and the gates. */
  rc = journal__stmt(j, JOURNAL__ST_ORPHANS,
                     "SELECT e.seq, e.run_id FROM events e WHERE NOT EXISTS "
                     "(SELECT 1 FROM runs r WHERE r.id = e.run_id) "
                     "ORDER BY e.seq LIMIT 1", &st, err);
  if (rc != 0)
    return rc;
  step = sqlite3_step(st);
  if (step == SQLITE_ROW)
    mark(res, sqlite3_column_int64(st, 0),
         "event %lld belongs to run %s, which has no row in the runs table "
         "(the row was deleted)", (long long)sqlite3_column_int64(st, 0),
         journal__column_text(st, 1));
  else if (step != SQLITE_DONE)
    rc = journal__sqlite_error(j, err, "cannot read journal");
  journal__stmt_done(j, JOURNAL__ST_ORPHANS, st);
  return rc;
}

/* The tables and the append-only triggers every journal has (schema.c):
 * one that is gone was dropped by hand, the first step of editing events
 * or meta. Marks res (altered) with the first that is missing. */
static int check_schema(struct journal *j, struct journal_verify_result *res,
                        struct cairn_error *err)
{
  static const char *const want[][2] = {
    {"table", "runs"},    {"table", "events"},  {"table", "locks"},
    {"table", "meta"},    {"trigger", "events_no_update"},
    {"trigger", "events_no_delete"}, {"trigger", "meta_no_update"},
    {"trigger", "meta_no_delete"}, {"trigger", "meta_no_insert"},
  };
  sqlite3_stmt *st = NULL;
  int rc = 0;

  for (size_t i = 0; rc == 0 && i < sizeof want / sizeof want[0]; i++) {
    rc = journal__stmt(j, JOURNAL__ST_SCHEMA_OBJECTS,
                       "SELECT count(*) FROM sqlite_master WHERE type = ?1 "
                       "AND name = ?2", &st, err);
    if (rc != 0)
      break;
    sqlite3_bind_text(st, 1, want[i][0], -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, want[i][1], -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW)
      rc = journal__sqlite_error(j, err, "cannot read journal");
    else if (sqlite3_column_int(st, 0) == 0 && !res->altered) {
      res->altered = 1;
      snprintf(res->reason, sizeof res->reason,
               "its %s '%s' is missing (%s)", want[i][0], want[i][1],
               want[i][0][1] == 'r' ? "an append-only trigger was dropped, "
               "as one does to edit what it guards"
                                     : "a table was dropped");
    }
    journal__stmt_done(j, JOURNAL__ST_SCHEMA_OBJECTS, st);
  }
  return rc;
}

/* SQLite's own check of the file (PRAGMA integrity_check): an index that
 * disagrees with its table reads differently by index than by seq, so
 * the chain can hold while show or rollback see another journal. Marks
 * res (altered) with SQLite's first complaint. */
static void check_integrity(struct journal *j,
                            struct journal_verify_result *res)
{
  sqlite3_stmt *st = NULL;
  const char *said = NULL;
  int step = SQLITE_ERROR;

  if (sqlite3_prepare_v2(j->db, "PRAGMA integrity_check(1)", -1, &st,
                         NULL) == SQLITE_OK)
    step = sqlite3_step(st);
  if (step == SQLITE_ROW)
    said = (const char *)sqlite3_column_text(st, 0);
  if (step != SQLITE_ROW || said == NULL || strcmp(said, "ok") != 0) {
    res->altered = 1;
    snprintf(res->reason, sizeof res->reason,
             "its SQLite file is damaged: %s (PRAGMA integrity_check; "
             "hint: restore the journal from a copy)",
             said != NULL ? said : sqlite3_errmsg(j->db));
  }
  sqlite3_finalize(st);
}

/* The seq of an event other than seq that chains on from the event whose
 * hash is prev_hash (prev_hash's successor renumbered), or 0. Read only
 * where the chain has a gap: prev_hash has no index. */
static int64_t moved_successor(struct journal *j, const char *prev_hash,
                               int64_t seq)
{
  sqlite3_stmt *st = NULL;
  struct cairn_error e = {0};
  int64_t found = 0;

  if (journal__stmt(j, JOURNAL__ST_VERIFY_MOVED,
                    "SELECT seq FROM events WHERE prev_hash = ?1 AND "
                    "seq <> ?2 ORDER BY seq LIMIT 1",
                    &st, &e) != 0)
    return 0; /* then it is named as missing: still broken */
  if (sqlite3_bind_text(st, 1, prev_hash, -1, SQLITE_STATIC) ==
          SQLITE_OK &&
      sqlite3_bind_int64(st, 2, seq) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    found = sqlite3_column_int64(st, 0);
  journal__stmt_done(j, JOURNAL__ST_VERIFY_MOVED, st);
  return found;
}

int journal_verify(struct journal *j, struct journal_verify_result *res,
                   struct cairn_error *err)
{
  sqlite3_stmt *st = NULL;
  char last[JOURNAL_HASH_HEX], computed[JOURNAL_HASH_HEX];
  unsigned char prev[32];
  int64_t expected = 1, added = 0;
  EVP_MAC_CTX *mac = j->mac;
  int rc, step;

  memset(res, 0, sizeof *res);
  memcpy(last, zeros, sizeof last);
  if (j->flags & JOURNAL_UNCHAINED)
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "journal '%s' keeps no hash chain (it was opened "
                           "for a simulation): there is nothing to verify",
                           j->path);
  rc = journal__key_load_recorded(j, err);
  if (rc != 0)
    return rc;
  memcpy(res->key_id, j->recorded_key_id, sizeof res->key_id);
  /* A key record over plain hashes was added after the events (it is
   * written only into a journal without any): that is the first thing
   * wrong, with or without a key; the chain is then walked as the plain
   * one it is, to count and check the rest. */
  rc = journal__key_added(j, &added, err);
  if (rc < 0)
    return rc;
  if (rc > 0) {
    mac = NULL;
    mark(res, added, "its hash is plain SHA-256, but the journal records "
         "key id %s: a key record was added to a journal whose events "
         "are not keyed (or its events were rehashed without the key)",
         j->recorded_key_id);
  } else if (j->recorded_key_id[0] != '\0' && j->key == NULL) {
    return cairn_error_set(err, CAIRN_E_KEY,
                           "journal '%s' is keyed (key id %s): verify it with "
                           "its key (--key-file FILE or CAIRN_KEY_FILE)",
                           j->path, j->recorded_key_id);
  }
  rc = journal__stmt(j, JOURNAL__ST_VERIFY,
                     "SELECT seq, run_id, kind, state, attempt, time_ms, "
                     "payload, prev_hash, hash FROM events ORDER BY seq",
                     &st, err);
  if (rc != 0)
    return rc;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t seq = sqlite3_column_int64(st, 0);
    char why[256];
    /* first: the columns must not be converted before it looks */
    int misstored = event_misstored(st, why, sizeof why);
    const char *prev_hash = journal__column_text(st, 7);
    const char *hash = journal__column_text(st, 8);

    res->events++;
    if (seq != expected && strcmp(prev_hash, last) == 0 && expected > 1) {
      /* It chains on from the event before the gap: nothing is missing,
       * its seq was changed (the seq is hashed: its hash says so too). */
      mark(res, seq, "event %" PRId64 " comes right after event %" PRId64
           " in the chain (its prev_hash is that event's hash): its seq was "
           "changed from %" PRId64, seq, expected - 1, expected);
    } else if (seq != expected) {
      int64_t moved = expected > 1 && res->first_bad_seq == 0
                          ? moved_successor(j, last, seq)
                          : 0;
      if (moved != 0)
        /* the same, for an event moved past others: found by its link */
        mark(res, moved, "event %" PRId64 " comes right after event %" PRId64
             " in the chain (its prev_hash is that event's hash): its seq "
             "was changed from %" PRId64, moved, expected - 1, expected);
      else if (expected + 1 == seq)
        mark(res, expected, "event %" PRId64 " is missing", expected);
      else
        mark(res, expected,
             "events %" PRId64 " to %" PRId64 " are missing", expected,
             seq - 1);
    } else if (misstored) {
      mark(res, seq, "%s", why);
    } else if (strcmp(prev_hash, last) != 0 ||
               journal__unhex32(prev_hash, prev) != 0) {
      if (seq == 1)
        mark(res, seq, "prev_hash of the first event is not zero");
      else
        mark(res, seq,
             "prev_hash does not match the hash of event %" PRId64
             " (an event was removed, inserted or moved)",
             seq - 1);
    } else {
      rc = journal__hash_row(mac, st, prev, computed, err);
      if (rc != 0)
        goto out;
      if (strcmp(computed, hash) != 0) {
        hash_mismatch(j, why, sizeof why);
        mark(res, seq, "%s", why);
      }
    }
    snprintf(last, sizeof last, "%s", hash);
    expected = seq + 1;
    res->last_seq = seq;
  }
  if (step != SQLITE_DONE) {
    rc = journal__sqlite_error(j, err, "cannot read journal");
    goto out;
  }
  memcpy(res->last_hash, last, sizeof res->last_hash);
  if (res->events == 0)
    res->last_hash[0] = '\0';
  journal__stmt_done(j, JOURNAL__ST_VERIFY, st);
  st = NULL;
  if (res->first_bad_seq == 0 && (rc = confirm_rows(j, res, err)) != 0)
    goto out;
  if (res->first_bad_seq == 0 && (rc = check_schema(j, res, err)) != 0)
    goto out;
  if (res->first_bad_seq == 0 && !res->altered)
    check_integrity(j, res);
  if (res->first_bad_seq != 0)
    rc = cairn_error_set(err, CAIRN_E_CHAIN,
                         "journal '%s' is broken at event %" PRId64 ": %s",
                         j->path, res->first_bad_seq, res->reason);
  else if (res->altered)
    rc = cairn_error_set(err, CAIRN_E_CHAIN, "journal '%s' was altered: %s",
                         j->path, res->reason);
out:
  if (st != NULL)
    journal__stmt_done(j, JOURNAL__ST_VERIFY, st);
  return rc;
}
