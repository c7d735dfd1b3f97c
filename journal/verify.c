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
 * The runs table is outside the chain but is what status, history and
 * the promotion gates read: each row is then confirmed against its
 * events, so an edited row is found like an edited event. */
#include "journal/internal.h"
#include "journal/events.h"

#include <inttypes.h>
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

int journal_run_confirm(struct journal *j, const char *run_id,
                        const char *status, const char *workflow,
                        const char *env, const char *release, int64_t *seq,
                        struct cairn_error *err)
{
  sqlite3_stmt *st = NULL;
  int64_t at = 0;
  int rc = journal__stmt(
      j, JOURNAL__ST_RUN_CONFIRM,
      /* one row always: the first event, then the last that sets a
       * status (NULLs when there is none): the kinds that
       * journal_event_status maps, a record's approval.granted only */
      "SELECT f.seq, f.payload, s.seq, s.kind, s.payload FROM "
      "(SELECT 1) LEFT JOIN "
      "(SELECT seq, payload FROM events WHERE run_id = ?1 "
      " ORDER BY seq LIMIT 1) f LEFT JOIN "
      "(SELECT seq, kind, payload FROM events WHERE run_id = ?1 AND "
      " (kind IN ('" JOURNAL_EV_RUN_STARTED "', '" JOURNAL_EV_RUN_RESUMED
      "', '" JOURNAL_EV_ROLLBACK_REQUESTED "', '" JOURNAL_EV_RUN_FINISHED
      "', '" JOURNAL_EV_RUN_INTERRUPTED "', '" JOURNAL_EV_APPROVAL_WAITING
      "', '" JOURNAL_EV_PROMOTION_REFUSED "') OR (kind = '"
      JOURNAL_EV_APPROVAL_GRANTED "' AND state = '')) "
      " ORDER BY seq DESC LIMIT 1) s",
      &st, err);
  if (rc != 0)
    return rc;
  sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
  int step = sqlite3_step(st);
  if (step == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_NULL) {
    rc = cairn_error_set(err, CAIRN_E_CHAIN,
                         "run %s has a row but no events (its events were "
                         "removed)", run_id);
  } else if (step == SQLITE_ROW && sqlite3_column_type(st, 2) == SQLITE_NULL) {
    at = sqlite3_column_int64(st, 0);
    rc = cairn_error_set(err, CAIRN_E_CHAIN,
                         "run %s has no event that gives it a status (its "
                         "first is event %" PRId64 "; events were removed or "
                         "replaced)", run_id, at);
  } else if (step == SQLITE_ROW) {
    json_t *first = json_loads(journal__column_text(st, 1), 0, NULL);
    json_t *last = json_loads(journal__column_text(st, 4), 0, NULL);
    /* the query's approval.granted are a record's (state '') */
    const char *had = journal_event_status(journal__column_text(st, 3), last,
                                           1);
    const char *names[] = {"workflow", "env", "release"};
    const char *row[] = {workflow, env, release};
    at = sqlite3_column_int64(st, 2);
    if (strcmp(had, status) != 0)
      rc = cairn_error_set(err, CAIRN_E_CHAIN,
                           "run %s's row says status '%s' but its event %"
                           PRId64 " says '%s' (the runs table was edited, "
                           "or events were removed)",
                           run_id, status, at, had);
    for (size_t i = 0; rc == 0 && i < 3; i++) {
      const char *v = json_string_value(json_object_get(first, names[i]));
      if (strcmp(v ? v : "", row[i]) != 0) {
        at = sqlite3_column_int64(st, 0);
        rc = cairn_error_set(err, CAIRN_E_CHAIN,
                             "run %s's row says %s '%.40s' but its event %"
                             PRId64 " says '%.40s' (the runs table was "
                             "edited)", run_id, names[i], row[i], at,
                             v ? v : "");
      }
    }
    json_decref(first);
    json_decref(last);
  } else {
    rc = journal__sqlite_error(j, err, "cannot read journal");
  }
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
                               "SELECT id, status, workflow, env, release "
                               "FROM runs ORDER BY created_ms, id",
                               &st, err);
  if (rc != 0)
    return rc;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t at = 0;
    rc = journal_run_confirm(j, journal__column_text(st, 0),
                             journal__column_text(st, 1),
                             journal__column_text(st, 2),
                             journal__column_text(st, 3),
                             journal__column_text(st, 4), &at, &why);
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
  return rc;
}

int journal_verify(struct journal *j, struct journal_verify_result *res,
                   struct cairn_error *err)
{
  static const char zeros[JOURNAL_HASH_HEX] =
      "0000000000000000000000000000000000000000000000000000000000000000";
  sqlite3_stmt *st = NULL;
  char last[JOURNAL_HASH_HEX], computed[JOURNAL_HASH_HEX];
  unsigned char prev[32];
  int64_t expected = 1;
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
  if (j->recorded_key_id[0] != '\0' && j->key == NULL)
    return cairn_error_set(err, CAIRN_E_KEY,
                           "journal '%s' is keyed (key id %s): verify it with "
                           "its key (--key-file FILE or CAIRN_KEY_FILE)",
                           j->path, j->recorded_key_id);
  rc = journal__stmt(j, JOURNAL__ST_VERIFY,
                     "SELECT seq, run_id, kind, state, attempt, time_ms, "
                     "payload, prev_hash, hash FROM events ORDER BY seq",
                     &st, err);
  if (rc != 0)
    return rc;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t seq = sqlite3_column_int64(st, 0);
    const char *payload = journal__column_text(st, 6);
    const char *prev_hash = journal__column_text(st, 7);
    const char *hash = journal__column_text(st, 8);

    res->events++;
    if (seq != expected) {
      if (expected + 1 == seq)
        mark(res, expected, "event %" PRId64 " is missing", expected);
      else
        mark(res, expected,
             "events %" PRId64 " to %" PRId64 " are missing", expected,
             seq - 1);
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
      rc = journal__hash_fields(j->mac, seq, journal__column_text(st, 1),
                                journal__column_text(st, 2),
                                journal__column_text(st, 3),
                                sqlite3_column_int(st, 4),
                                sqlite3_column_int64(st, 5), payload,
                                (size_t)sqlite3_column_bytes(st, 6), prev,
                                computed, err);
      if (rc != 0)
        goto out;
      if (strcmp(computed, hash) != 0 && j->key != NULL &&
          j->recorded_key_id[0] == '\0')
        mark(res, seq,
             "hash is not keyed with the given key, and the journal records "
             "no key (created without one, or its key record was removed)");
      else if (strcmp(computed, hash) != 0 && j->key != NULL &&
               strcmp(j->key_id, j->recorded_key_id) != 0)
        mark(res, seq,
             "hash does not match: the key given (id %s) is not the "
             "journal's (id %s)",
             j->key_id, j->recorded_key_id);
      else if (strcmp(computed, hash) != 0)
        mark(res, seq,
             "hash does not match the event's contents (the event was "
             "edited)");
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
  if (res->first_bad_seq != 0)
    rc = cairn_error_set(err, CAIRN_E_CHAIN,
                         "journal '%s' is broken at event %" PRId64 ": %s",
                         j->path, res->first_bad_seq, res->reason);
out:
  if (st != NULL)
    journal__stmt_done(j, JOURNAL__ST_VERIFY, st);
  return rc;
}
