/* rehash: what an attacker without the key does after editing a journal:
 * recompute every event's prev_hash and unkeyed hash (journal_event_hash)
 * in seq order and write them back, so the plain SHA-256 chain holds
 * again. Used by tests/cli/t0020-tamper.sh; the append-only triggers must
 * have been dropped first (as the test does with the sqlite3 shell).
 *
 *   rehash JOURNAL.db [FROM]
 *
 * FROM (default 1): the first seq to recompute; the events before it keep
 * their hashes, as a careful attacker would leave them. */
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal/journal.h"

int main(int argc, char **argv)
{
  sqlite3 *db = NULL;
  sqlite3_stmt *sel = NULL, *upd = NULL;
  struct cairn_error err = {0};
  char prev[JOURNAL_HASH_HEX] = "";
  long long from = argc == 3 ? atoll(argv[2]) : 1;
  int rc = 1;

  if (argc < 2 || argc > 3 || from < 1) {
    fprintf(stderr, "usage: rehash JOURNAL.db [FROM]\n");
    return 2;
  }
  if (sqlite3_open(argv[1], &db) != SQLITE_OK ||
      sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(db,
                         "SELECT seq, run_id, kind, state, attempt, time_ms, "
                         "payload, hash FROM events ORDER BY seq",
                         -1, &sel, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(db,
                         "UPDATE events SET prev_hash = ?1, hash = ?2 "
                         "WHERE seq = ?3",
                         -1, &upd, NULL) != SQLITE_OK)
    goto out;
  while (sqlite3_step(sel) == SQLITE_ROW) {
    struct journal_event ev = {0};
    char hash[JOURNAL_HASH_HEX];

    ev.seq = sqlite3_column_int64(sel, 0);
    if (ev.seq < from) {
      snprintf(prev, sizeof prev, "%s", sqlite3_column_text(sel, 7));
      continue;
    }
    snprintf(ev.run_id, sizeof ev.run_id, "%s", sqlite3_column_text(sel, 1));
    ev.kind = (char *)sqlite3_column_text(sel, 2);
    ev.state = (char *)sqlite3_column_text(sel, 3);
    ev.attempt = sqlite3_column_int(sel, 4);
    ev.time_ms = sqlite3_column_int64(sel, 5);
    ev.payload = json_loads((const char *)sqlite3_column_text(sel, 6), 0,
                            NULL);
    snprintf(ev.prev_hash, sizeof ev.prev_hash, "%s", prev);
    if (journal_event_hash(&ev, hash, &err) != 0) {
      json_decref(ev.payload);
      fprintf(stderr, "rehash: %s\n", err.msg);
      goto out;
    }
    json_decref(ev.payload);
    sqlite3_bind_text(upd, 1, prev[0] ? prev : "0000000000000000000000000000"
                      "000000000000000000000000000000000000", -1,
                      SQLITE_TRANSIENT);
    sqlite3_bind_text(upd, 2, hash, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(upd, 3, ev.seq);
    if (sqlite3_step(upd) != SQLITE_DONE)
      goto out;
    sqlite3_reset(upd);
    memcpy(prev, hash, sizeof prev);
  }
  if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
    rc = 0;
out:
  if (rc != 0)
    fprintf(stderr, "rehash: %s\n", db ? sqlite3_errmsg(db) : "no memory");
  sqlite3_finalize(sel);
  sqlite3_finalize(upd);
  sqlite3_close(db);
  return rc;
}
