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
 * do so without the key. */
#include "journal/internal.h"

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
  if (res->first_bad_seq != 0)
    rc = cairn_error_set(err, CAIRN_E_CHAIN,
                         "journal '%s' is broken at event %" PRId64 ": %s",
                         j->path, res->first_bad_seq, res->reason);
out:
  journal__stmt_done(j, JOURNAL__ST_VERIFY, st);
  return rc;
}
