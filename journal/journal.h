/* The journal: one SQLite file holding runs, an append-only hash-chained
 * event log and run locks. It knows nothing of workflows or the engine:
 * event kinds and payloads are listed in journal/events.h, and their
 * meaning belongs to the engine.
 *
 * Memory: every `const char *` or `json_t *` argument is borrowed (the
 * journal copies or serialises what it keeps). Structs filled for the
 * caller (journal_run, journal_event, ...) own their strings and json
 * values and are released with the matching _release function. */
#ifndef CAIRN_JOURNAL_H
#define CAIRN_JOURNAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/error.h"

#define JOURNAL_SCHEMA_VERSION 3
#define JOURNAL_HASH_HEX 65 /* 64 hex digits and a NUL */
#define JOURNAL_RUN_ID_LEN 27 /* 26-character ULID and a NUL */
#define JOURNAL_KEY_MIN 32    /* bytes of random data a key file must hold */
#define JOURNAL_KEY_MAX 4096  /* a larger key file is not a key */
#define JOURNAL_KEY_ID_HEX 17 /* 16 hex digits and a NUL */

struct journal;

enum journal_open_flags {
  JOURNAL_CREATE = 1 << 0,   /* create the file (and its folder, 0700) */
  JOURNAL_READONLY = 1 << 1, /* never write, never migrate */
  /* In memory only: no hash chain (hash and prev_hash read back as ""),
   * and journal_verify refuses it; its events are kept in a plain list
   * rather than in SQLite (runs and locks stay in the in-memory database,
   * and transactions cover both). For a journal of one run thrown away
   * unread, as a simulation's: a chain there proves nothing and costs a
   * digest and 128 bytes an event, and an SQLite insert cost more than
   * everything else the engine does for an event. */
  JOURNAL_UNCHAINED = 1 << 2,
};

/* Opens (and with JOURNAL_CREATE creates) the journal at path; ":memory:"
 * gives an in-memory journal (for simulation and tests). Sets WAL (reads
 * back that it is "wal"), synchronous=FULL (read back), a busy timeout,
 * file mode 0600, and migrates the schema forward from any older
 * user_version. A file that is not SQLite or has no cairn schema gives
 * CAIRN_E_NOTJOURNAL; a newer user_version gives CAIRN_E_SCHEMA; in both
 * cases the file is left untouched. *out is owned by the caller and
 * released with journal_close().
 * Also: a missing file without JOURNAL_CREATE gives CAIRN_E_NOTFOUND;
 * JOURNAL_READONLY on a journal whose schema needs migrating gives
 * CAIRN_E_JOURNAL (read-only never writes); JOURNAL_CREATE together with
 * JOURNAL_READONLY is CAIRN_E_INVAL; ":memory:" ignores JOURNAL_READONLY.
 * Only folders that JOURNAL_CREATE makes get mode 0700, and only a file it
 * makes gets 0600 (both set with chmod, whatever the umask). */
int journal_open(struct journal **out, const char *path, unsigned flags,
                 struct cairn_error *err);
/* Closes; journal_close(NULL) does nothing. */
void journal_close(struct journal *j);
/* The path given to journal_open (borrowed, valid until close). */
const char *journal_path(const struct journal *j);

/* Finds the journal path: $CAIRN_JOURNAL if set, else the first
 * ".cairn/journal.db" found walking up from start_dir (NULL: the working
 * directory). When none exists, fills the path under start_dir (so a first
 * `cairn run` creates it there) and returns CAIRN_E_NOTFOUND. out has size
 * n. */
int journal_find_path(char *out, size_t n, const char *start_dir,
                      struct cairn_error *err);

/* Explicit transactions: BEGIN IMMEDIATE ... COMMIT. Every append outside
 * an explicit transaction runs in one of its own. Nested begin is an
 * error (CAIRN_E_INVAL), as is commit without begin. In builds with
 * -DCAIRN_TEST_HOOKS, journal_commit counts commits and, when
 * $CAIRN_TEST_KILL_AFTER_COMMIT equals that count, raises SIGKILL right
 * after the commit returns (the crash tests use this). The count covers
 * every commit the journal makes in the process, in the order made:
 * explicit commits, the own transaction of an append, run insert/status
 * and lock acquire/release/heartbeat outside an explicit transaction, and
 * the schema creation or migration of journal_open (commit 1 on a new
 * journal). Inside an explicit transaction those writes do not commit on
 * their own. */
int journal_begin(struct journal *j, struct cairn_error *err);
int journal_commit(struct journal *j, struct cairn_error *err);
void journal_rollback(struct journal *j);

/* ---- runs ---- */

struct journal_run {
  char id[JOURNAL_RUN_ID_LEN];
  char *workflow;      /* workflow name */
  char *file;          /* absolute path of the workflow file */
  char *file_sha256;   /* hex */
  char *env;           /* "" when the workflow has no environments */
  char *release;       /* "" when none */
  json_t *params;      /* object, secrets redacted */
  char *status;        /* see JOURNAL_STATUS_* in events.h */
  char *actor;         /* user@host */
  char *parent;        /* parent run id or "" */
  int64_t created_ms;  /* unix ms */
  int64_t updated_ms;
  int64_t finished_ms; /* 0 while unfinished */
  /* As read from the journal: "" when the row is stored as cairn writes
   * it; else which column is not and how ("its status is stored as a
   * blob, not as text"), and journal_run_confirm refuses the row. */
  char misstored[96];
};
void journal_run_release(struct journal_run *run);
/* 1 when run is a record, not a run: a promotion approval (status
 * approved) or refusal (refused), which never starts; 0 otherwise. */
int journal_run_is_record(const struct journal_run *run);

/* Makes a new time-sortable run id (ULID: 48-bit ms time, 80 random bits
 * from RAND_bytes, Crockford base32). */
int journal_new_run_id(char out[JOURNAL_RUN_ID_LEN], struct cairn_error *err);

/* Inserts a run row (run->id must be set; created/updated default to now
 * when 0). Does not append any event. */
int journal_run_insert(struct journal *j, const struct journal_run *run,
                       struct cairn_error *err);
/* Sets status (and finished_ms when finished_ms != 0) and updated_ms. */
int journal_run_set_status(struct journal *j, const char *run_id,
                           const char *status, int64_t finished_ms,
                           struct cairn_error *err);
/* Loads one run by full id or unique prefix (>= 4 characters; a prefix
 * matches case-insensitively, as ULIDs do). CAIRN_E_NORUN when none,
 * CAIRN_E_AMBIGUOUS when the prefix matches several. *out is owned by the
 * caller (journal_run_release) when 0 is returned, zeroed otherwise. */
int journal_run_get(struct journal *j, const char *id_or_prefix,
                    struct journal_run *out, struct cairn_error *err);

struct journal_run_filter {
  const char *workflow; /* NULL: any */
  const char *env;
  const char *release;
  const char *status;
  int64_t since_ms;     /* 0: any */
  int limit;            /* 0: no limit */
};
/* Calls cb for each matching run, newest first; a non-zero return from cb
 * stops and is returned. The run passed to cb is released after cb. */
int journal_run_foreach(struct journal *j, const struct journal_run_filter *f,
                        int (*cb)(const struct journal_run *run, void *ud),
                        void *ud, struct cairn_error *err);

/* For each (workflow, env): its newest run and its newest succeeded run
 * (approval and refusal records aside), and every run not finished
 * (running, waiting, interrupted), all newest first, through cb
 * as journal_run_foreach does. What `cairn status` shows, without reading
 * every run: the newest succeeded one is found through the
 * (workflow, env, created_ms) index. */
int journal_run_foreach_current(struct journal *j,
                                int (*cb)(const struct journal_run *run,
                                          void *ud),
                                void *ud, struct cairn_error *err);

/* ---- events ---- */

struct journal_event {
  int64_t seq;          /* global sequence, 1.. */
  char run_id[JOURNAL_RUN_ID_LEN];
  char *kind;           /* e.g. "state.entered" */
  char *state;          /* state path or "" */
  int attempt;          /* 0 when not about an attempt */
  int64_t time_ms;      /* unix ms */
  json_t *payload;      /* object (never NULL when loaded) */
  char prev_hash[JOURNAL_HASH_HEX];
  char hash[JOURNAL_HASH_HEX];
  const char *payload_text; /* the payload's canonical JSON, payload_len
                               bytes, when its writer has it at hand (a
                               run's observer that asked for it:
                               engine_options.observe_text); else NULL.
                               Borrowed */
  size_t payload_len;
};
void journal_event_release(struct journal_event *ev);

/* Appends one event to the chain: takes the last hash, computes this
 * event's hash (see journal_event_hash) and inserts it. payload may be
 * NULL (stored as {}), else it must be an object (CAIRN_E_INVAL). time_ms
 * 0 means now. *seq_out (may be NULL) gets the sequence number. run_id
 * must name a run already inserted with journal_run_insert (a foreign
 * key; CAIRN_E_NORUN otherwise). */
int journal_append(struct journal *j, const char *run_id, const char *kind,
                   const char *state, int attempt, int64_t time_ms,
                   json_t *payload, int64_t *seq_out, struct cairn_error *err);
/* The canonical JSON of the payload the last successful journal_append
 * on j wrote (*len bytes, not NUL-terminated; j's, valid until its next
 * append), or NULL when it no longer has it. */
const char *journal_last_payload(const struct journal *j, size_t *len);

/* Calls cb for each event of run_id in sequence order (run_id NULL: every
 * event of the journal). The event is released after cb; a non-zero
 * return from cb stops and is returned. */
int journal_event_foreach(struct journal *j, const char *run_id,
                          int64_t after_seq,
                          int (*cb)(const struct journal_event *ev, void *ud),
                          void *ud, struct cairn_error *err);

/* The hash of an event: SHA-256 (OpenSSL EVP) over the byte 0x01 (domain
 * separation), seq as 8 bytes big-endian, then run_id, kind, state,
 * attempt (decimal), time_ms (decimal) and the canonical payload each as
 * a 4-byte big-endian length and the bytes, then the 32 bytes of
 * prev_hash (all zero for the first event; "" is taken as all zero).
 * ev->payload NULL hashes as {}. Writes 64 lower-case hex digits. */
int journal_event_hash(const struct journal_event *ev,
                       char out[JOURNAL_HASH_HEX], struct cairn_error *err);

/* The keyed hash of an event: HMAC-SHA-256 (OpenSSL's EVP_MAC "HMAC" with
 * digest SHA256) keyed with key, over the same bytes as journal_event_hash
 * but with the domain byte 0x02, so a keyed hash never equals an unkeyed
 * one. key NULL gives journal_event_hash. */
int journal_event_hash_keyed(const struct journal_event *ev,
                             const unsigned char *key, size_t key_len,
                             char out[JOURNAL_HASH_HEX],
                             struct cairn_error *err);

/* Canonical JSON: sorted keys (byte order), compact, UTF-8, no trailing
 * newline; json_dumps(JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY), so
 * any value, not only objects. Returns a malloc'd string the caller frees
 * with free(), or NULL on failure (value NULL included). */
char *journal_canonical_json(const json_t *value);

/* The same text appended to b (borrowed; its bytes stay the caller's), so
 * that a buffer can be reused from one event to the next. Returns 0, or -1
 * (value NULL, a string that is not valid UTF-8, out of memory) with b as
 * it was before the call. */
int journal_canonical_add(struct cairn_buf *b, const json_t *value);

/* One JSON string of n bytes of s (UTF-8, may hold NUL), quoted and
 * escaped as the canonical JSON writes it, appended to b. Returns 0, or
 * -1 (not valid UTF-8, out of memory; b may then hold part of it). */
int journal_canonical_string(struct cairn_buf *b, const char *s, size_t n);

/* ---- keys: an HMAC-keyed chain ----
 *
 * A journal is keyed when it was created with a key: the table meta then
 * holds its key id (journal_key_id), never the key, and every event hash
 * is journal_event_hash_keyed. Writing to a keyed journal needs its key;
 * an unkeyed journal that has events never becomes keyed (no mixing). */

/* Reads a whole key file (JOURNAL_KEY_MIN..JOURNAL_KEY_MAX bytes). Refuses,
 * with CAIRN_E_KEY, a file that group or others may read or write, that is
 * not a regular file, or that is too short or too long; CAIRN_E_IO when it
 * cannot be read. *key is malloc'd and owned by the caller, released with
 * journal_key_free (which wipes it). */
int journal_key_load(const char *path, unsigned char **key, size_t *len,
                     struct cairn_error *err);
void journal_key_free(unsigned char *key, size_t len);
/* The id of a key: the first 8 bytes of its SHA-256, as 16 hex digits. */
void journal_key_id(const unsigned char *key, size_t len,
                    char out[JOURNAL_KEY_ID_HEX]);
/* The key id the journal records, "" when it is not keyed (borrowed,
 * valid until the next journal call). */
const char *journal_recorded_key_id(const struct journal *j);

/* Gives the journal the key to hash with (copied; key NULL: none). On a
 * journal open for writing it also decides whether writing may go on:
 *   a key id recorded over a first event hashed without a key (the record
 *   was added afterwards: tampering), with or without a key
 *                                         -> CAIRN_E_CHAIN
 *   keyed journal, no key                 -> CAIRN_E_KEY
 *   keyed journal, another key (id)       -> CAIRN_E_KEY
 *   unkeyed journal with events, a key    -> CAIRN_E_KEY
 *   unkeyed journal without events, a key -> the key id is recorded (one
 *                                            commit): the journal is keyed
 * On a read-only journal it only keeps the key for journal_verify. Appends
 * to a keyed journal whose key was not set this way are refused
 * (CAIRN_E_KEY), as are unkeyed appends after another process keyed it. */
int journal_set_key(struct journal *j, const unsigned char *key, size_t len,
                    struct cairn_error *err);

/* ---- verify ---- */

struct journal_verify_result {
  int64_t events;        /* events checked (all of them, also past a bad one) */
  int64_t first_bad_seq; /* 0 when the chain is intact; for missing events
                            the first missing seq */
  char reason[256];      /* what is wrong with first_bad_seq */
  char last_hash[JOURNAL_HASH_HEX]; /* stored hash of the newest event, ""
                                       when there is none */
  int64_t last_seq;      /* seq of the newest event, 0 when none */
  char key_id[JOURNAL_KEY_ID_HEX]; /* the journal's recorded key id or "" */
  int altered;           /* 1: the chain and rows hold, but a table or an
                            append-only trigger is missing, or SQLite's
                            integrity_check finds the file damaged (reason
                            says which); first_bad_seq stays 0 */
};
/* Recomputes the whole chain, then confirms every row of the runs table
 * against its events (journal_run_confirm), that every event's run has a
 * row, and that the tables and append-only triggers of the schema are
 * there. Returns 0 with first_bad_seq == 0 and altered == 0 when all hold;
 * CAIRN_E_CHAIN with first_bad_seq and reason set when an event was edited
 * (hash mismatch, or a column stored otherwise than journal_append writes
 * it: another storage class, a NUL byte in a text, an attempt past an
 * int, which the hash does not see and SQL does), deleted (gap in seq or
 * prev_hash mismatch), renumbered (a gap after which the chain goes on)
 * or swapped (prev_hash mismatch), a run's row disagrees with its events
 * or is stored otherwise (first_bad_seq: the event it disagrees with, its
 * run's first for a misstored row, or the seq after the last for a row
 * without events), an event's run has no row (that event), or the
 * journal records a key id but its first event is hashed without a key
 * (that event: the key record was added); CAIRN_E_CHAIN with altered and
 * reason set (first_bad_seq 0) when only a table or trigger is missing
 * or the file is damaged (PRAGMA integrity_check);
 * other codes for I/O errors.
 * Keys: the hashes are recomputed with the key given by journal_set_key.
 * A keyed journal without a key gives CAIRN_E_KEY (nothing to check
 * with); a wrong key fails at event 1; a key on a journal that records
 * none fails at event 1 too (its key record may have been removed); a
 * key record over plain hashes fails at the first event, key or not. */
int journal_verify(struct journal *j, struct journal_verify_result *res,
                   struct cairn_error *err);

/* Whether a run's row in the runs table (what status, history, show, report
 * and the promotion gates read) agrees with its events, which the hash
 * chain covers: the status is the one its last run.started, run.resumed,
 * rollback.requested, run.finished, run.interrupted or approval.waiting
 * gives (a record: approved or refused); workflow, env and release are its
 * first event's, and so are actor, file, file_sha256 and params where that
 * event names them (cairn's run.started names them all, params with
 * secrets redacted as the row has them; a record's event names some), and
 * parent (a run.started without one: ""); created_ms is within 2 s of that
 * event's time_ms; and the row was read stored as cairn writes it
 * (row->misstored is "").
 * 0, or CAIRN_E_CHAIN with err saying what differs and *seq (may be NULL)
 * the event it differs from (0 when the run has no events). row is
 * borrowed (row->params NULL: not compared). */
int journal_run_confirm(struct journal *j, const struct journal_run *row,
                        int64_t *seq, struct cairn_error *err);

/* Authenticates the events of one run, which is what resume, rollback
 * and the promotion gates act on: for each event of run_id, in seq order,
 * it must be stored as journal_append writes it (as journal_verify
 * checks), its prev_hash must be the stored hash of the event numbered
 * seq - 1 (64 zeros for seq 1), and its hash, recomputed from its stored
 * fields (with the key of journal_set_key on a keyed journal), its stored
 * hash; and no event may have a run_id that hashes as run_id but is
 * stored as another value (a blob, bytes after a NUL), which the query by
 * run_id, and so replay, would leave out. The cost is the run's events,
 * read through the (run_id, seq) index, one lookup by seq each, and two
 * range searches of that index; never the whole journal. 0 when all hold (a
 * simulation's unchained journal: always); CAIRN_E_CHAIN with err naming
 * the run and the first bad event (*seq, may be NULL) and the hint to run
 * cairn verify, also for a run without events, or for a journal whose key
 * record was added over plain hashes; CAIRN_E_KEY for a keyed journal
 * without its key. What it cannot see: on an unkeyed journal,
 * events forged with hashes recomputed (journal_verify cannot either),
 * and events of other runs. run_id is borrowed. */
int journal_run_check(struct journal *j, const char *run_id, int64_t *seq,
                      struct cairn_error *err);

/* The same check of the newest event of the journal alone (one lookup),
 * the one every new event would chain from: what promote checks before it
 * says it is promoting. 0 also for an empty journal; CAIRN_E_CHAIN naming
 * the event with the hint to run cairn verify; CAIRN_E_KEY. */
int journal_tail_check(struct journal *j, struct cairn_error *err);

/* Loads the event numbered seq: 0 and *out filled (owned by the caller,
 * journal_event_release), or CAIRN_E_NOTFOUND. */
int journal_event_get(struct journal *j, int64_t seq, struct journal_event *out,
                      struct cairn_error *err);

/* ---- locks: one active run per (workflow, env) ---- */

struct journal_lock_holder {
  char run_id[JOURNAL_RUN_ID_LEN];
  int pid;
  char host[256];
  int64_t proc_start;   /* process start time, clock ticks since boot */
  int64_t acquired_ms;
  int64_t heartbeat_ms;
};

/* Takes the lock of (workflow, env) for run_id held by this process.
 * When a lock exists and its holder is alive (same host: pid exists with
 * the same start time; other host: always assumed alive), returns
 * CAIRN_E_LOCKED and fills *holder. When its holder is dead on this host,
 * the lock is taken over: *taken_over is set to 1 and *holder describes
 * the previous holder (the caller journals it). Re-taking a lock already
 * held by the same run_id succeeds (resume after a crash). holder and
 * taken_over may be NULL.
 * Precisely: a holder on this host is dead when its pid is gone, is a
 * zombie, has another start time, or ran in an earlier boot (boot_id).
 * Re-taking for the same run_id succeeds when the holder is this process
 * or dead, and is CAIRN_E_LOCKED when another live process holds it for
 * that run (two resumes of one run); it sets *taken_over to 0 and fills
 * *holder with the previous holder. */
int journal_lock_acquire(struct journal *j, const char *workflow,
                         const char *env, const char *run_id,
                         struct journal_lock_holder *holder, int *taken_over,
                         struct cairn_error *err);
/* Releases the lock if run_id holds it; otherwise does nothing. */
int journal_lock_release(struct journal *j, const char *workflow,
                         const char *env, const char *run_id,
                         struct cairn_error *err);
/* Sets the heartbeat_ms of the lock of (workflow, env) to now if run_id
 * holds it; CAIRN_E_NOTFOUND otherwise. (Added with the journal module;
 * nothing reads heartbeat_ms to decide liveness yet.) */
int journal_lock_heartbeat(struct journal *j, const char *workflow,
                           const char *env, const char *run_id,
                           struct cairn_error *err);
/* Looks up the holder of (workflow, env): 0 and *holder filled, or
 * CAIRN_E_NOTFOUND. *alive (may be NULL) says whether it is alive. */
int journal_lock_get(struct journal *j, const char *workflow, const char *env,
                     struct journal_lock_holder *holder, int *alive,
                     struct cairn_error *err);

/* Whether another live process holds (workflow, env) (env NULL: ""):
 * CAIRN_E_LOCKED with journal_lock_error's message, else 0 (free, held
 * by this process, or by one that is gone: taking it over is the
 * acquirer's business; a lock row that cannot be read is the acquirer's
 * to say too). Said before acting, so a refusal comes before
 * anything is printed or journaled; journal_lock_acquire still decides. */
int journal_lock_check(struct journal *j, const char *workflow,
                       const char *env, struct cairn_error *err);

/* Fills err with CAIRN_E_LOCKED and what to do: "workflow 'W' env 'E' is
 * locked by run R (pid P on H) (hint: ...)" (no env part when env is "").
 * Returns CAIRN_E_LOCKED. Every argument is borrowed. */
int journal_lock_error(struct cairn_error *err, const char *workflow,
                       const char *env,
                       const struct journal_lock_holder *holder);

/* Unix time in milliseconds. */
int64_t journal_now_ms(void);

#endif
