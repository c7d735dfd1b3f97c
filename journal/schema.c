/* The journal's schema, how a file is recognised as a journal, and the
 * forward migrations keyed on PRAGMA user_version.
 *
 * ---- The file ----
 *
 * A cairn journal is an SQLite database in WAL mode with
 *   PRAGMA application_id = JOURNAL__APPLICATION_ID ("crn1"), and
 *   PRAGMA user_version   = the schema version (1 .. JOURNAL_SCHEMA_VERSION).
 * A file is recognised, before anything writes to it, as follows
 * (journal__schema_probe: from its 100-byte header alone when that shows
 * a journal of ours that this cairn knows with nothing beside it, else
 * through a read-only connection):
 *   - not an SQLite file                          -> CAIRN_E_NOTJOURNAL
 *   - user_version > JOURNAL_SCHEMA_VERSION       -> CAIRN_E_SCHEMA (unless
 *     another application's id is set: then CAIRN_E_NOTJOURNAL)
 *   - user_version 0 and no tables at all (a new or empty file)
 *                                                 -> ours, migrate from 0
 *   - user_version 0 with tables, or 1.. without our application_id
 *                                                 -> CAIRN_E_NOTJOURNAL
 *   - our application_id, but SQLite finds the pages corrupt
 *                                   -> CAIRN_E_NOTJOURNAL, "is damaged"
 * In every refused case the file is left byte-for-byte as it was.
 *
 * ---- The tables (version 1) ----
 *
 * runs: one row per run, written by journal_run_insert and updated only
 * through journal_run_set_status (status, updated_ms, finished_ms).
 *   id           ULID (26 characters of Crockford base32, time-sortable);
 *                the key every other table refers to
 *   workflow     the workflow's `name`
 *   file         absolute path of the workflow file
 *   file_sha256  hex SHA-256 of the workflow file(s) when the run started
 *   env          environment name, '' when the workflow has none
 *   release      release label, '' when none
 *   params       canonical JSON object of the params, secrets redacted
 *   status       running | succeeded | failed | interrupted | waiting ...
 *                (JOURNAL_STATUS_* in events.h); a summary of the events,
 *                which remain the truth
 *   actor        user@host that started the run
 *   parent       id of the run this one was promoted from, or ''
 *   created_ms   unix ms when the run was created
 *   updated_ms   unix ms of the last change of this row
 *   finished_ms  unix ms when the run finished, 0 while unfinished
 *
 * events: the append-only, hash-chained log of everything that happened.
 *   seq          global sequence over all runs: 1, 2, 3 ... with no gap
 *   run_id       the run this event belongs to (must exist in runs)
 *   kind         event kind (the JOURNAL_EV_* list in events.h)
 *   state        state path ("migrate", "infra/redis") or ''
 *   attempt      attempt number within one entry of a state, 0 when the
 *                event is not about an attempt
 *   time_ms      unix ms when the event happened
 *   payload      canonical JSON object (sorted keys, compact, UTF-8)
 *   prev_hash    hash of the event seq - 1, 64 zeros for seq 1
 *   hash         SHA-256 over the event as journal.h describes
 *                (journal_event_hash), 64 lower-case hex digits
 *
 * locks: at most one active run per (workflow, env).
 *   workflow, env  the key ('' for a workflow without environments)
 *   run_id         the run holding it
 *   pid            process holding it
 *   host           gethostname() of that process
 *   proc_start     that process's start time (clock ticks since boot), so a
 *                  reused pid is never taken for the holder
 *   boot_id        /proc/sys/kernel/random/boot_id of the holder's boot ('':
 *                  unknown); a holder from an earlier boot is dead
 *   acquired_ms    when the run first took the lock
 *   heartbeat_ms   when the holder last said it was alive
 *
 * ---- Version 2 ----
 *
 * meta: facts about the journal as a whole, written once, never updated or
 * deleted (the triggers meta_no_update and meta_no_delete).
 *   name         what the row says
 *   value        its value
 * Rows: 'hmac_key_id' = the key id (journal_key_id: first 8 bytes of the
 * key's SHA-256, 16 hex digits) of a keyed journal; absent when unkeyed.
 * The key itself is never stored.
 *
 * ---- Version 3 ----
 *
 * meta_no_insert: a trigger that refuses any insert into meta once events
 * holds an event, so that invariant 7 holds in the file itself: one
 * INSERT of a key record into an unkeyed journal would otherwise make
 * every cairn take it for a keyed one. A journal migrated from version 2
 * gets it then; a record added before that is found by journal_verify,
 * which checks the first event's hash against the record (and so does
 * every writer: journal__key_added).
 *
 * ---- How rows are stored ----
 *
 * Each column is stored in the class its type names (TEXT: text, INTEGER:
 * integer), and no text holds a NUL byte. The hash (journal_event_hash)
 * covers a text up to its first NUL and a number as C reads it, while
 * SQL compares the whole stored value with its class: a kind cast to a
 * blob hashes as the kind and matches no query. journal_verify (events
 * and runs rows) and journal_run_check (a run's events) refuse any other
 * form; journal_run_confirm refuses a row read in one.
 *
 * ---- Invariants between and within tables ----
 *
 *  1. events.seq runs 1..N without gaps; events[seq].prev_hash equals
 *     events[seq - 1].hash; events[1].prev_hash is 64 zeros. journal_verify
 *     checks this and recomputes every hash.
 *  2. Events are never updated or deleted: the triggers events_no_update
 *     and events_no_delete refuse it (RAISE(ABORT)).
 *  3. Every events.run_id names a runs.id (a foreign key, checked when the
 *     event is inserted: insert the run before its first event).
 *  4. The first event of a run is run.started; further rules between one
 *     run's events are listed in events.h, which also says what replay
 *     makes of them.
 *  5. A locks row exists only while its run is active; runs.status is
 *     'running' (or 'waiting'/'interrupted' for a crashed or stopped
 *     holder, which a resume takes over).
 *  6. Every write happens in a BEGIN IMMEDIATE transaction; an
 *     action.finished and the transition it causes share one.
 *  7. With a meta 'hmac_key_id' row, every events.hash is the keyed hash
 *     (HMAC-SHA-256, domain byte 0x02); without one, every hash is the
 *     plain SHA-256 (domain byte 0x01). The row is only ever written while
 *     events is empty (since version 3 the trigger meta_no_insert refuses
 *     it otherwise), so one journal never mixes the two.
 */
#include "journal/internal.h"

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct migration {
  int version; /* user_version after this step */
  const char *sql;
};

static const struct migration migrations[] = {
  {1,
   "CREATE TABLE runs (\n"
   "  id TEXT PRIMARY KEY NOT NULL,   -- ULID, 26 characters\n"
   "  workflow TEXT NOT NULL,         -- workflow name\n"
   "  file TEXT NOT NULL,             -- absolute path of the workflow file\n"
   "  file_sha256 TEXT NOT NULL,      -- hex SHA-256 of the workflow files\n"
   "  env TEXT NOT NULL DEFAULT '',   -- environment, '' when none\n"
   "  release TEXT NOT NULL DEFAULT '', -- release label, '' when none\n"
   "  params TEXT NOT NULL DEFAULT '{}', -- canonical JSON, redacted\n"
   "  status TEXT NOT NULL,           -- JOURNAL_STATUS_*\n"
   "  actor TEXT NOT NULL,            -- user@host\n"
   "  parent TEXT NOT NULL DEFAULT '', -- promoted-from run id or ''\n"
   "  created_ms INTEGER NOT NULL,    -- unix ms\n"
   "  updated_ms INTEGER NOT NULL,    -- unix ms of the last row change\n"
   "  finished_ms INTEGER NOT NULL DEFAULT 0 -- unix ms, 0 while unfinished\n"
   ");\n"
   "CREATE INDEX runs_by_created ON runs(created_ms);\n"
   "CREATE INDEX runs_by_workflow ON runs(workflow, env, created_ms);\n"
   "CREATE TABLE events (\n"
   "  seq INTEGER PRIMARY KEY CHECK (seq >= 1), -- global, 1.. no gaps\n"
   "  run_id TEXT NOT NULL REFERENCES runs(id), -- owning run\n"
   "  kind TEXT NOT NULL,             -- JOURNAL_EV_*\n"
   "  state TEXT NOT NULL DEFAULT '', -- state path or ''\n"
   "  attempt INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),\n"
   "  time_ms INTEGER NOT NULL,       -- unix ms\n"
   "  payload TEXT NOT NULL,          -- canonical JSON object\n"
   "  prev_hash TEXT NOT NULL,        -- hash of seq-1, zeros for seq 1\n"
   "  hash TEXT NOT NULL              -- SHA-256, see journal_event_hash\n"
   ");\n"
   "CREATE INDEX events_by_run ON events(run_id, seq);\n"
   "CREATE TRIGGER events_no_update BEFORE UPDATE ON events\n"
   "BEGIN SELECT RAISE(ABORT, 'journal events are append-only'); END;\n"
   "CREATE TRIGGER events_no_delete BEFORE DELETE ON events\n"
   "BEGIN SELECT RAISE(ABORT, 'journal events are append-only'); END;\n"
   "CREATE TABLE locks (\n"
   "  workflow TEXT NOT NULL,         -- workflow name\n"
   "  env TEXT NOT NULL,              -- environment or ''\n"
   "  run_id TEXT NOT NULL,           -- holding run\n"
   "  pid INTEGER NOT NULL,           -- holding process\n"
   "  host TEXT NOT NULL,             -- its host name\n"
   "  proc_start INTEGER NOT NULL,    -- its start time, ticks since boot\n"
   "  boot_id TEXT NOT NULL DEFAULT '', -- its boot, '' when unknown\n"
   "  acquired_ms INTEGER NOT NULL,   -- unix ms, first taken by the run\n"
   "  heartbeat_ms INTEGER NOT NULL,  -- unix ms, last sign of life\n"
   "  PRIMARY KEY (workflow, env)\n"
   ");\n"
   "PRAGMA application_id = 1668443697;\n"}, /* JOURNAL__APPLICATION_ID */
  {2,
   "CREATE TABLE meta (\n"
   "  name TEXT PRIMARY KEY NOT NULL, -- e.g. 'hmac_key_id'\n"
   "  value TEXT NOT NULL\n"
   ");\n"
   "CREATE TRIGGER meta_no_update BEFORE UPDATE ON meta\n"
   "BEGIN SELECT RAISE(ABORT, 'journal meta is write-once'); END;\n"
   "CREATE TRIGGER meta_no_delete BEFORE DELETE ON meta\n"
   "BEGIN SELECT RAISE(ABORT, 'journal meta is write-once'); END;\n"},
  {3,
   "CREATE TRIGGER meta_no_insert BEFORE INSERT ON meta\n"
   "WHEN EXISTS (SELECT 1 FROM events)\n"
   "BEGIN SELECT RAISE(ABORT, 'journal meta is written only before the "
   "first event'); END;\n"},
};

_Static_assert(JOURNAL__APPLICATION_ID == 1668443697,
               "the migration's application_id must match");
_Static_assert(sizeof migrations / sizeof migrations[0] ==
                   JOURNAL_SCHEMA_VERSION,
               "one migration per schema version");

struct facts {
  int version;     /* user_version */
  int app_id;      /* application_id */
  int objects;     /* tables, indexes, views, triggers (not sqlite_*) */
};

/* Reads the facts in one statement, so from one snapshot: another
 * process creating the journal meanwhile must not show its tables with
 * the version from before (which reads as another program's file).
 * Returns an SQLite result code (errmsg on db). */
static int read_facts(sqlite3 *db, struct facts *f)
{
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(
      db,
      "SELECT (SELECT user_version FROM pragma_user_version), "
      "(SELECT application_id FROM pragma_application_id), "
      "(SELECT count(*) FROM sqlite_master "
      "WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\')",
      -1, &st, NULL);

  if (rc == SQLITE_OK) {
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      f->version = sqlite3_column_int(st, 0);
      f->app_id = sqlite3_column_int(st, 1);
      f->objects = sqlite3_column_int(st, 2);
      rc = SQLITE_OK;
    }
  }
  sqlite3_finalize(st);
  return rc;
}

/* Decides from the facts whether path is a journal we can use. */
static int classify(const char *path, const struct facts *f,
                    struct cairn_error *err)
{
  int ours = f->app_id == JOURNAL__APPLICATION_ID;

  if (f->version < 0 && ours)
    return cairn_error_set(err, CAIRN_E_NOTJOURNAL,
                           "'%s' has journal schema version %d, which no "
                           "cairn writes: the file was altered",
                           path, f->version);
  if (f->version > JOURNAL_SCHEMA_VERSION || f->version < 0) {
    if (!ours && f->app_id != 0)
      return cairn_error_set(err, CAIRN_E_NOTJOURNAL,
                             "'%s' is not a cairn journal (no cairn schema)",
                             path);
    return cairn_error_set(err, CAIRN_E_SCHEMA,
                           "'%s' has journal schema version %d, newer than "
                           "this cairn's %d (hint: use the newer cairn that "
                           "wrote it)",
                           path, f->version, JOURNAL_SCHEMA_VERSION);
  }
  if (f->version == 0 ? f->objects != 0 : !ours)
    return cairn_error_set(err, CAIRN_E_NOTJOURNAL,
                           "'%s' is not a cairn journal (no cairn schema)",
                           path);
  return 0;
}

/* Is there a rollback journal beside path (SQLite's magic at its start)?
 * A cairn killed while SQLite created the file leaves one, with the file
 * perhaps not yet holding its header. */
static int hot_journal(const char *path)
{
  static const unsigned char jmagic[8] = {0xd9, 0xd5, 0x05, 0xf9,
                                          0x20, 0xa1, 0x63, 0xd7};
  unsigned char head[8];
  char jpath[4200];
  int fd, ok;

  snprintf(jpath, sizeof jpath, "%s-journal", path);
  fd = open(jpath, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  ok = read(fd, head, sizeof head) == (ssize_t)sizeof head &&
       memcmp(head, jmagic, sizeof jmagic) == 0;
  close(fd);
  return ok;
}

/* The first bytes of a non-empty SQLite file. Refuses the file when its
 * 100-byte header alone shows it is not for us: another
 * application's id, or a newer schema. Deciding from the header means a
 * refused file never gets SQLite's -wal and -shm side files. The header
 * is what was last committed to the file; when a -wal exists it may be
 * newer, so then only the magic is checked here.
 *
 * *known is set to the header's schema version when the header alone
 * shows a journal of ours (our application id, version 1 to this cairn's)
 * with nothing beside it (no -wal, no interrupted transaction), else to
 * -1. Such a file needs no probe: it is what the last cairn to close it
 * left, and the writer looks at the version again before it writes. With
 * a -wal the probe stays: a newer cairn killed before its checkpoint
 * leaves a newer version there, and only a read-only connection can look
 * without checkpointing it into the file on close. *ours is set when the
 * header carries our application id. */
static int looks_like_sqlite(const char *path, int *known, int *ours,
                             struct cairn_error *err)
{
  static const char magic[16] = "SQLite format 3";
  unsigned char head[100];
  char wal[4200];
  struct facts f = {0, 0, 0};
  ssize_t got;
  int fd = open(path, O_RDONLY | O_CLOEXEC);

  *known = -1;
  *ours = 0;
  if (fd < 0)
    return cairn_error_set(err, CAIRN_E_IO, "cannot open '%s': %s", path,
                           strerror(errno));
  got = read(fd, head, sizeof head);
  close(fd);
  if (got < 0)
    return cairn_error_set(err, CAIRN_E_IO, "cannot read '%s': %s", path,
                           strerror(errno));
  if (got == 0)
    return 0; /* empty: a database with nothing in it yet */
  if (((size_t)got < sizeof head || memcmp(head, magic, sizeof magic) != 0) &&
      hot_journal(path))
    return 0; /* a transaction cut short: SQLite rolls it back (probe) */
  if ((size_t)got < sizeof head || memcmp(head, magic, sizeof magic) != 0)
    return cairn_error_set(err, CAIRN_E_NOTJOURNAL,
                           "'%s' is not a cairn journal (file is not a "
                           "database; hint: give --journal or CAIRN_JOURNAL "
                           "a journal's path, or move the file away)",
                           path);
  /* Big-endian: user_version at offset 60, application_id at 68. */
  f.version = (int)((uint32_t)head[60] << 24 | (uint32_t)head[61] << 16 |
                    (uint32_t)head[62] << 8 | head[63]);
  f.app_id = (int)((uint32_t)head[68] << 24 | (uint32_t)head[69] << 16 |
                   (uint32_t)head[70] << 8 | head[71]);
  *ours = f.app_id == JOURNAL__APPLICATION_ID;
  snprintf(wal, sizeof wal, "%s-wal", path);
  if (access(wal, F_OK) == 0)
    return 0;
  if (f.app_id == JOURNAL__APPLICATION_ID && f.version >= 1 &&
      f.version <= JOURNAL_SCHEMA_VERSION && !hot_journal(path)) {
    *known = f.version;
    return 0;
  }
  if (f.version > JOURNAL_SCHEMA_VERSION || f.version < 0 ||
      (f.app_id != 0 && f.app_id != JOURNAL__APPLICATION_ID)) {
    if (f.app_id != 0 && f.app_id != JOURNAL__APPLICATION_ID)
      return cairn_error_set(err, CAIRN_E_NOTJOURNAL,
                             "'%s' is not a cairn journal (no cairn schema)",
                             path);
    return classify(path, &f, err);
  }
  return 0;
}

static int damaged(const char *path, const char *why,
                   struct cairn_error *err)
{
  return cairn_error_set(err, CAIRN_E_NOTJOURNAL,
                         "journal '%s' is damaged (%s; hint: restore it from "
                         "a backup)",
                         path, why);
}

int journal__if_damaged(const char *path, sqlite3 *db, int rc,
                        struct cairn_error *err)
{
  int primary = sqlite3_extended_errcode(db) & 0xff;

  if (rc != 0 && (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB))
    return damaged(path, sqlite3_errmsg(db), err);
  return rc;
}

int journal__if_cannot_share(const char *path, int writing, sqlite3 *db,
                             int rc, struct cairn_error *err)
{
  int primary = sqlite3_extended_errcode(db) & 0xff;

  if (primary != SQLITE_CANTOPEN && primary != SQLITE_READONLY)
    return rc;
  if (writing)
    return cairn_error_set(
        err, CAIRN_E_IO,
        "cannot write journal '%s' or the files SQLite keeps beside it (%s) "
        "(hint: run cairn as the journal's owner on a writable file system; "
        "status, history, show, export, report and verify only read it)",
        path, sqlite3_errmsg(db));
  return cairn_error_set(
      err, CAIRN_E_IO,
      "cannot read journal '%s': SQLite must write '%s-shm' beside it "
      "even to read it, and cannot (hint: run cairn as the journal's "
      "owner, or copy the journal to a folder you can write and pass "
      "--journal)",
      path, path);
}

int journal__schema_probe(const char *path, int *version,
                          struct cairn_error *err)
{
  sqlite3 *db = NULL;
  struct facts f = {0, 0, 0};
  int rc, src, primary, known, ours;

  *version = 0;
  rc = looks_like_sqlite(path, &known, &ours, err);
  if (rc != 0)
    return rc;
  if (known >= 1) {
    *version = known;
    return 0;
  }
  src = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
  if (src == SQLITE_OK) {
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, JOURNAL__BUSY_TIMEOUT_MS);
    src = read_facts(db, &f);
  }
  if (src == SQLITE_READONLY_ROLLBACK) {
    /* A hot rollback journal: a cairn killed while it created this file
     * (before the switch to WAL). Its header is ours or blank (checked
     * above), so do what any SQLite reader with write access does: roll
     * the interrupted transaction back, then look again. */
    sqlite3_close_v2(db);
    db = NULL;
    src = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    if (src == SQLITE_OK) {
      sqlite3_busy_timeout(db, JOURNAL__BUSY_TIMEOUT_MS);
      src = read_facts(db, &f);
    }
  }
  /* extended codes are on: SQLITE_CORRUPT_INDEX is damage too */
  primary = src & 0xff;
  if (primary == SQLITE_CORRUPT && ours)
    rc = damaged(path, sqlite3_errmsg(db), err);
  else if (primary == SQLITE_NOTADB || primary == SQLITE_CORRUPT)
    rc = cairn_error_set(err, CAIRN_E_NOTJOURNAL,
                         "'%s' is not a cairn journal (%s)", path,
                         sqlite3_errmsg(db));
  else if (src != SQLITE_OK && db == NULL)
    rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  else if (src != SQLITE_OK)
    rc = journal__if_cannot_share(
        path, 0, db,
        cairn_error_set(err, CAIRN_E_JOURNAL, "cannot read journal '%s': %s",
                        path, sqlite3_errmsg(db)),
        err);
  else
    rc = classify(path, &f, err);
  sqlite3_close_v2(db);
  if (rc == 0)
    *version = f.version;
  return rc;
}

int journal__schema_migrate(struct journal *j, struct cairn_error *err)
{
  struct facts f = {0, 0, 0};
  char sql[64];
  int rc;

  if (read_facts(j->db, &f) != SQLITE_OK)
    return journal__sqlite_error(j, err, "cannot read journal");
  rc = classify(j->path, &f, err);
  if (rc != 0 || f.version == JOURNAL_SCHEMA_VERSION)
    return rc;

  rc = journal__tx_begin(j, err);
  if (rc != 0)
    return rc;
  /* Another process may have migrated it meanwhile: look again. */
  if (read_facts(j->db, &f) != SQLITE_OK) {
    rc = journal__sqlite_error(j, err, "cannot read journal");
    goto out;
  }
  rc = classify(j->path, &f, err);
  if (rc != 0)
    goto out;
  for (size_t i = 0; i < sizeof migrations / sizeof migrations[0]; i++) {
    if (migrations[i].version <= f.version)
      continue;
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d",
             migrations[i].version);
    if (sqlite3_exec(j->db, migrations[i].sql, NULL, NULL, NULL) !=
            SQLITE_OK ||
        sqlite3_exec(j->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
      rc = journal__sqlite_error(j, err, "cannot migrate journal");
      /* Not the disk: the tables are not those of the version the file
       * records (a table of a later version already there). */
      if (sqlite3_errcode(j->db) == SQLITE_ERROR)
        rc = cairn_error_set(err, CAIRN_E_NOTJOURNAL,
                             "cannot migrate journal '%s' from schema "
                             "version %d: %s; its tables are not those of "
                             "the version it records, so the file was "
                             "altered (it is left as it was)",
                             j->path, f.version, sqlite3_errmsg(j->db));
      goto out;
    }
  }
out:
  if (rc != 0) {
    /* damage found on the way (a page the migration needs): said now,
     * as the rollback resets the connection's error code */
    rc = journal__if_damaged(j->path, j->db, rc, err);
    journal__tx_rollback(j);
    return rc;
  }
  return journal__tx_commit(j, err);
}
