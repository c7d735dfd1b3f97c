/* Shared between the journal's own files, never included outside
 * journal/ (and its unit test). The public contract is journal/journal.h;
 * everything here carries the `journal__` prefix.
 *
 * Memory: struct journal owns its sqlite3 connection, its path and every
 * cached statement; journal_close() frees them all. Statements handed out
 * by journal__stmt() are borrowed until journal__stmt_done(). */
#ifndef CAIRN_JOURNAL_INTERNAL_H
#define CAIRN_JOURNAL_INTERNAL_H

#include <openssl/evp.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "journal/journal.h"

/* PRAGMA application_id of every cairn journal ("crn1" in ASCII): tells
 * our file apart from someone else's SQLite database that happens to have
 * the same user_version. */
#define JOURNAL__APPLICATION_ID 0x63726e31

#define JOURNAL__BUSY_TIMEOUT_MS 5000

/* journal_append keeps its buffers between events up to this size. */
#define JOURNAL__BUF_KEEP (64 * 1024)

/* One slot per statement the journal prepares; each is prepared once per
 * connection (SQLITE_PREPARE_PERSISTENT) and reset after every use. */
enum journal__stmt_id {
  JOURNAL__ST_BEGIN,
  JOURNAL__ST_COMMIT,
  JOURNAL__ST_ROLLBACK,
  JOURNAL__ST_EVENT_LAST,
  JOURNAL__ST_EVENT_INSERT,
  JOURNAL__ST_EVENTS_OF_RUN,
  JOURNAL__ST_EVENTS_ALL,
  JOURNAL__ST_VERIFY,
  JOURNAL__ST_VERIFY_MOVED,
  JOURNAL__ST_RUN_INSERT,
  JOURNAL__ST_RUN_STATUS,
  JOURNAL__ST_RUN_EXACT,
  JOURNAL__ST_RUN_PREFIX,
  JOURNAL__ST_RUN_LIST,
  JOURNAL__ST_RUN_CURRENT,
  JOURNAL__ST_LOCK_GET,
  JOURNAL__ST_LOCK_INSERT,
  JOURNAL__ST_LOCK_UPDATE,
  JOURNAL__ST_LOCK_DELETE,
  JOURNAL__ST_LOCK_HEARTBEAT,
  JOURNAL__ST_META_KEY_GET,
  JOURNAL__ST_META_KEY_SET,
  JOURNAL__ST_KEY_FIRST_EVENT,
  JOURNAL__ST_EVENT_GET,
  JOURNAL__ST_RUN_EXISTS,
  JOURNAL__ST_RUN_CONFIRM,
  JOURNAL__ST_RUN_CONFIRM_STATUS,
  JOURNAL__ST_RUN_ROWS,
  JOURNAL__ST_RUN_CHECK,
  JOURNAL__ST_RUN_CHECK_HIDDEN,
  JOURNAL__ST_TAIL_CHECK,
  JOURNAL__ST_ORPHANS,
  JOURNAL__ST_SCHEMA_OBJECTS,
  JOURNAL__ST_COUNT
};

struct journal__cached_stmt {
  sqlite3_stmt *st; /* NULL until first use */
  int busy;         /* handed out and not yet done */
};

struct journal {
  sqlite3 *db;
  char *path;       /* as given to journal_open */
  unsigned flags;   /* enum journal_open_flags */
  int in_tx;        /* an explicit journal_begin() is open */
  struct journal__cached_stmt stmts[JOURNAL__ST_COUNT];
  /* Keys (journal/key.c): the key given by journal_set_key (owned, wiped
   * on close), its id, an HMAC context initialised with it that each hash
   * duplicates (NULL: unkeyed), and the key id the journal records. */
  unsigned char *key;
  size_t key_len;
  char key_id[JOURNAL_KEY_ID_HEX];
  EVP_MAC_CTX *mac;
  char recorded_key_id[JOURNAL_KEY_ID_HEX];
  /* What journal_append would otherwise read again for every event: the
   * chain's end as this connection last wrote it (tail_*) and whether
   * recorded_key_id is current (key_known). Valid until the write
   * transaction ends, as no other connection can write meanwhile; for an
   * in-memory journal, no other connection can ever see it, so they stay
   * valid until a rollback. journal__cache_drop() forgets them. */
  int memory;
  int tail_known, key_known;
  int64_t tail_seq;
  unsigned char tail_hash[32];
  /* Reused from one append to the next: the payload's canonical text and
   * the bytes hashed. */
  struct cairn_buf text, hashed;
  int text_ok;          /* text is the last successful append's payload */
  /* JOURNAL_UNCHAINED: the events, in a list (journal/event_list.c); the
   * events table stays empty. NULL otherwise. */
  struct journal__elist *elist;
};

/* ---- open.c ---- */

/* Hands out the cached statement of slot id, preparing sql on first use.
 * When that statement is already in use (a foreach callback re-entered
 * the journal), a one-off statement is prepared instead. *out is borrowed
 * until journal__stmt_done(), which resets it (or finalises a one-off).
 * sql must be the same text for a given id at every call. */
int journal__stmt(struct journal *j, enum journal__stmt_id id, const char *sql,
                  sqlite3_stmt **out, struct cairn_error *err);
void journal__stmt_done(struct journal *j, enum journal__stmt_id id,
                        sqlite3_stmt *st);

/* Fills err with CAIRN_E_JOURNAL, "<what> '<path>': <sqlite3_errmsg>",
 * and returns CAIRN_E_JOURNAL. */
int journal__sqlite_error(struct journal *j, struct cairn_error *err,
                          const char *what);

/* Opens a write transaction unless an explicit one is open: *own says
 * whether this call opened it. journal__write_end() commits (when rc is
 * 0) or rolls back a transaction it owns and returns rc or the commit's
 * error; with own == 0 it only returns rc. */
int journal__write_begin(struct journal *j, int *own, struct cairn_error *err);
int journal__write_end(struct journal *j, int own, int rc,
                       struct cairn_error *err);

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK on the connection, below the
 * explicit-transaction bookkeeping. Every successful COMMIT goes through
 * journal__tx_commit and counts for the crash hook. */
int journal__tx_begin(struct journal *j, struct cairn_error *err);
/* Forgets the chain's end and the key record journal_append keeps (see
 * struct journal): at the start of every write transaction of a file
 * journal, at every rollback, and when the key record changes. */
void journal__cache_drop(struct journal *j);
int journal__tx_commit(struct journal *j, struct cairn_error *err);
void journal__tx_rollback(struct journal *j);

#ifdef CAIRN_TEST_HOOKS
/* Commits this process has made so far (the crash hook's counter). */
long journal__test_commits(void);
#endif

/* ---- schema.c ---- */

/* rc, unless db's last error is SQLite unable to open or write the
 * journal or the files WAL mode keeps beside it (-shm, -wal; a reader
 * needs -shm too): then err says so with what to do, CAIRN_E_IO. writing
 * says whether the connection was to write. db is borrowed. */
int journal__if_cannot_share(const char *path, int writing, sqlite3 *db,
                             int rc, struct cairn_error *err);

/* rc, unless db's last error is SQLite finding the pages of path (a file
 * whose header said journal of ours) corrupt or not a database: then err
 * says the journal is damaged, with SQLite's words, and the result is
 * CAIRN_E_NOTJOURNAL. Call it before anything (a rollback) resets db's
 * error code. db is borrowed. */
int journal__if_damaged(const char *path, sqlite3 *db, int rc,
                        struct cairn_error *err);

/* Looks at an existing file without writing anything: its header, and
 * unless that alone shows a journal of ours, a read-only connection that
 * is closed again. CAIRN_E_NOTJOURNAL, CAIRN_E_SCHEMA, or 0 with *version
 * set (0 for an empty database). */
int journal__schema_probe(const char *path, int *version,
                          struct cairn_error *err);
/* Brings the open connection's schema to JOURNAL_SCHEMA_VERSION in one
 * BEGIN IMMEDIATE transaction (nothing to do when it is current). */
int journal__schema_migrate(struct journal *j, struct cairn_error *err);

/* ---- append.c ---- */

/* 64 hex digits of 32 raw bytes, and back. journal__unhex32 accepts ""
 * as all zero and returns -1 for anything but "" or 64 hex digits. */
void journal__hex32(const unsigned char raw[32], char out[JOURNAL_HASH_HEX]);
int journal__unhex32(const char *hex, unsigned char out[32]);

/* The event hash of journal_event_hash over already-serialised fields
 * (verify hashes the stored payload text exactly as stored). mac NULL:
 * SHA-256 with domain byte 0x01; else HMAC (mac is a context initialised
 * with the key, borrowed and duplicated) with domain byte 0x02. */
int journal__hash_fields(EVP_MAC_CTX *mac, int64_t seq, const char *run_id, const char *kind,
                         const char *state, int attempt, int64_t time_ms,
                         const char *payload, size_t payload_len,
                         const unsigned char prev[32],
                         char out[JOURNAL_HASH_HEX], struct cairn_error *err);

/* The text of column col, "" for NULL (borrowed from st until its next
 * step or reset). */
const char *journal__column_text(sqlite3_stmt *st, int col);

/* journal__hash_fields of the event in st's row, whose first columns are
 * seq, run_id, kind, state, attempt, time_ms, payload (the order every
 * reader of a whole event selects them in): what its hash should be,
 * after prev. mac as for journal__hash_fields. */
int journal__hash_row(EVP_MAC_CTX *mac, sqlite3_stmt *st,
                      const unsigned char prev[32],
                      char out[JOURNAL_HASH_HEX], struct cairn_error *err);

/* Whether column col of st's row is stored otherwise than cairn writes
 * it: in another storage class than type (SQLITE_TEXT or SQLITE_INTEGER),
 * or, for text, with a NUL byte in it. What cairn hashes and compares in
 * C is a text up to its first NUL, whatever its class; what SQL compares
 * is the whole value with its class: a kind stored as a blob, or a run_id
 * with bytes after a NUL, reads as the value that was hashed and is
 * another value to every query. 0 when stored as cairn writes it; 1 with
 * how it differs in why ("is stored as a blob, not as text", "holds a NUL
 * byte at byte 13 of 14"). Call it before anything converts the column
 * (sqlite3_column_text of an integer). */
int journal__misstored(sqlite3_stmt *st, int col, int type, char *why,
                       size_t n);

/* ---- runs.c ---- */

/* The columns of a runs row, in the order every read of one lists them. */
#define JOURNAL__RUN_COLUMNS                                                \
  "id, workflow, file, file_sha256, env, release, params, status, actor, " \
  "parent, created_ms, updated_ms, finished_ms"

/* Whether the runs row in st (its JOURNAL__RUN_COLUMNS, from column 0) is
 * stored otherwise than journal_run_insert and journal_run_set_status
 * write it (journal__misstored of each column; an id as long as
 * JOURNAL_RUN_ID_LEN or longer, which no run has): 0, or 1 with why
 * ("its status is stored as a blob, not as text"). */
int journal__run_misstored(sqlite3_stmt *st, char *why, size_t n);

/* ---- event_list.c ---- */

/* The events of an unchained journal, kept in memory in seq order (seq
 * 1..n, no gaps). Created with the journal (0, or -1 out of memory) and
 * freed with it. */
struct journal__elist;
int journal__elist_new(struct journal__elist **out);
void journal__elist_free(struct journal__elist *l);
/* Where a write transaction begins or commits: journal__elist_undo, at a
 * rollback, drops every event appended since. */
void journal__elist_mark(struct journal__elist *l);
void journal__elist_undo(struct journal__elist *l);
/* journal_append, journal_event_foreach and journal_event_get on j's
 * list, after journal_append has checked its arguments and made the
 * payload's text (payload, len bytes; copied). The run must exist in the
 * runs table (CAIRN_E_NORUN). Events read back carry "" hashes. */
int journal__elist_append(struct journal *j, const char *run_id,
                          const char *kind, const char *state, int attempt,
                          int64_t time_ms, const char *payload, size_t len,
                          int64_t *seq, struct cairn_error *err);
int journal__elist_foreach(struct journal *j, const char *run_id,
                           int64_t after_seq,
                           int (*cb)(const struct journal_event *ev, void *ud),
                           void *ud, struct cairn_error *err);
int journal__elist_get(struct journal *j, int64_t seq,
                       struct journal_event *out, struct cairn_error *err);

/* ---- key.c ---- */

/* An HMAC-SHA-256 context initialised with key; *out is owned by the
 * caller (EVP_MAC_CTX_free). */
int journal__mac_new(const unsigned char *key, size_t len, EVP_MAC_CTX **out,
                     struct cairn_error *err);
/* Reads the recorded key id into j->recorded_key_id ("" when none). */
int journal__key_load_recorded(struct journal *j, struct cairn_error *err);
/* On a journal that records a key id: whether its first event is hashed
 * without a key (plain SHA-256, domain byte 0x01), as no keyed journal's
 * is. The key record is written only while events is empty (schema.c,
 * invariant 7), so then it was added to an unkeyed journal afterwards: 1
 * with *seq the first event's seq. 0 when not so (or no event, or no key
 * record); a negative code on a read error. */
int journal__key_added(struct journal *j, int64_t *seq,
                       struct cairn_error *err);
/* CAIRN_E_CHAIN with err saying that the journal records key id
 * j->recorded_key_id but its event seq is hashed without a key, with the
 * hint to run cairn verify. */
int journal__key_added_error(struct journal *j, int64_t seq,
                             struct cairn_error *err);
/* Wipes and frees what journal_set_key kept. */
void journal__key_release(struct journal *j);

#endif
