/* Appending to the hash chain, the hash itself, canonical JSON, and
 * reading events back. */
#include "journal/internal.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVENT_COLUMNS \
  "seq, run_id, kind, state, attempt, time_ms, payload, prev_hash, hash"

static const char hexdigits[] = "0123456789abcdef";

const char *journal__column_text(sqlite3_stmt *st, int col)
{
  const unsigned char *s = sqlite3_column_text(st, col);

  return s != NULL ? (const char *)s : "";
}

int journal__hash_row(EVP_MAC_CTX *mac, sqlite3_stmt *st,
                      const unsigned char prev[32],
                      char out[JOURNAL_HASH_HEX], struct cairn_error *err)
{
  return journal__hash_fields(mac, sqlite3_column_int64(st, 0),
                              journal__column_text(st, 1),
                              journal__column_text(st, 2),
                              journal__column_text(st, 3),
                              sqlite3_column_int(st, 4),
                              sqlite3_column_int64(st, 5),
                              journal__column_text(st, 6),
                              (size_t)sqlite3_column_bytes(st, 6), prev, out,
                              err);
}

int journal__misstored(sqlite3_stmt *st, int col, int type, char *why,
                       size_t n)
{
  /* by storage class: SQLITE_INTEGER (1) to SQLITE_NULL (5) */
  static const char *const classes[] = {"?",    "an integer", "a real",
                                        "text", "a blob",     "null"};
  int got = sqlite3_column_type(st, col);

  if (got != type) {
    snprintf(why, n, "is stored as %s, not as %s",
             classes[got >= 1 && got <= 5 ? got : 0],
             classes[type >= 1 && type <= 5 ? type : 0]);
    return 1;
  }
  if (type == SQLITE_TEXT) {
    const unsigned char *s = sqlite3_column_text(st, col);
    size_t len = (size_t)sqlite3_column_bytes(st, col);
    const unsigned char *nul = s != NULL ? memchr(s, 0, len) : NULL;

    if (nul != NULL) {
      snprintf(why, n, "holds a NUL byte at byte %zu of %zu",
               (size_t)(nul - s) + 1, len);
      return 1;
    }
  }
  return 0;
}

void journal__hex32(const unsigned char raw[32], char out[JOURNAL_HASH_HEX])
{
  for (int i = 0; i < 32; i++) {
    out[2 * i] = hexdigits[raw[i] >> 4];
    out[2 * i + 1] = hexdigits[raw[i] & 15];
  }
  out[64] = '\0';
}

int journal__unhex32(const char *hex, unsigned char out[32])
{
  if (hex == NULL || *hex == '\0') {
    memset(out, 0, 32);
    return 0;
  }
  if (strlen(hex) != 64)
    return -1;
  for (int i = 0; i < 32; i++) {
    int hi = OPENSSL_hexchar2int((unsigned char)hex[2 * i]);
    int lo = OPENSSL_hexchar2int((unsigned char)hex[2 * i + 1]);

    if (hi < 0 || lo < 0)
      return -1;
    out[i] = (unsigned char)(hi << 4 | lo);
  }
  return 0;
}

/* ---- the hash ---- */

/* SHA-256 fetched once: EVP_sha256() in EVP_DigestInit_ex fetches the
 * implementation again at every call, which cost more than the digest. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
  sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static void put_u32(struct cairn_buf *b, size_t n)
{
  char c[4] = {(char)(n >> 24), (char)(n >> 16), (char)(n >> 8), (char)n};

  cairn_buf_add(b, c, sizeof c);
}

static void put_field(struct cairn_buf *b, const char *s, size_t n)
{
  put_u32(b, n);
  cairn_buf_add(b, s, n);
}

/* A decimal field: its length, then its digits. */
static void put_number(struct cairn_buf *b, int64_t v)
{
  size_t at = b->len;

  put_u32(b, 0); /* the length, once known */
  cairn_buf_add_i64(b, v);
  if (!b->failed) {
    size_t n = b->len - at - 4;
    b->p[at + 3] = (char)n; /* at most 20 digits */
  }
}

/* The bytes journal_event_hash describes, in b (emptied first): hashed
 * in one update rather than fourteen. */
static int hash_input(struct cairn_buf *b, int keyed, int64_t seq,
                      const char *run_id, const char *kind, const char *state,
                      int attempt, int64_t time_ms, const char *payload,
                      size_t payload_len, const unsigned char prev[32])
{
  char head[9];
  uint64_t useq = (uint64_t)seq;

  if (payload_len > UINT32_MAX)
    return -1;
  /* Domain: a journal event, unkeyed (1) or keyed (2). */
  head[0] = keyed ? 0x02 : 0x01;
  for (int i = 0; i < 8; i++)
    head[1 + i] = (char)(useq >> (56 - 8 * i));
  cairn_buf_reset(b);
  cairn_buf_add(b, head, sizeof head);
  put_field(b, run_id, strlen(run_id));
  put_field(b, kind, strlen(kind));
  put_field(b, state, strlen(state));
  put_number(b, attempt);
  put_number(b, time_ms);
  put_field(b, payload, payload_len);
  cairn_buf_add(b, (const char *)prev, 32);
  return b->failed ? -1 : 0;
}

/* The digest of b's bytes (HMAC with a copy of mac, or SHA-256) in hex,
 * and raw into raw[32] unless raw is NULL. */
static int digest(EVP_MAC_CTX *mac, const struct cairn_buf *b,
                  unsigned char *raw, char out[JOURNAL_HASH_HEX],
                  struct cairn_error *err)
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  size_t maclen = 0;
  int ok;

  if (mac != NULL) {
    EVP_MAC_CTX *h = EVP_MAC_CTX_dup(mac);

    ok = h != NULL && EVP_MAC_update(h, (const unsigned char *)b->p, b->len) &&
         EVP_MAC_final(h, md, &maclen, sizeof md) && maclen == 32;
    EVP_MAC_CTX_free(h);
  } else {
    ok = pthread_once(&sha256_once, sha256_fetch) == 0 && sha256_md != NULL &&
         EVP_Digest(b->p, b->len, md, &mdlen, sha256_md, NULL) && mdlen == 32;
  }
  if (!ok) {
    char detail[256];

    ERR_error_string_n(ERR_get_error(), detail, sizeof detail);
    return cairn_error_set(err, CAIRN_E_JOURNAL,
                           "cannot compute an event hash: %s", detail);
  }
  journal__hex32(md, out);
  if (raw != NULL)
    memcpy(raw, md, 32);
  return 0;
}

int journal__hash_fields(EVP_MAC_CTX *mac, int64_t seq, const char *run_id,
                         const char *kind, const char *state, int attempt,
                         int64_t time_ms, const char *payload,
                         size_t payload_len, const unsigned char prev[32],
                         char out[JOURNAL_HASH_HEX], struct cairn_error *err)
{
  struct cairn_buf b = {0};
  int rc;

  if (hash_input(&b, mac != NULL, seq, run_id, kind, state, attempt, time_ms,
                 payload, payload_len, prev) != 0)
    rc = cairn_error_set(err, CAIRN_E_NOMEM,
                         "cannot compute an event hash: out of memory");
  else
    rc = digest(mac, &b, NULL, out, err);
  cairn_buf_release(&b);
  return rc;
}

int journal_event_hash(const struct journal_event *ev,
                       char out[JOURNAL_HASH_HEX], struct cairn_error *err)
{
  return journal_event_hash_keyed(ev, NULL, 0, out, err);
}

int journal_event_hash_keyed(const struct journal_event *ev,
                             const unsigned char *key, size_t key_len,
                             char out[JOURNAL_HASH_HEX],
                             struct cairn_error *err)
{
  EVP_MAC_CTX *mac = NULL;
  unsigned char prev[32];
  char *payload;
  int rc;

  if (ev == NULL || ev->kind == NULL)
    return cairn_error_set(err, CAIRN_E_INVAL, "no event to hash");
  if (journal__unhex32(ev->prev_hash, prev) != 0)
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "event %" PRId64 " has a malformed prev_hash",
                           ev->seq);
  payload = ev->payload != NULL ? journal_canonical_json(ev->payload)
                                : strdup("{}");
  if (payload == NULL)
    return cairn_error_set(err, CAIRN_E_NOMEM,
                           "cannot serialise the payload of event %" PRId64,
                           ev->seq);
  if (key != NULL && journal__mac_new(key, key_len, &mac, err) != 0) {
    free(payload);
    return err != NULL ? err->code : CAIRN_E_JOURNAL;
  }
  rc = journal__hash_fields(mac, ev->seq, ev->run_id, ev->kind,
                            ev->state != NULL ? ev->state : "", ev->attempt,
                            ev->time_ms, payload, strlen(payload), prev, out,
                            err);
  EVP_MAC_CTX_free(mac);
  free(payload);
  return rc;
}

/* ---- append ---- */

int journal_append(struct journal *j, const char *run_id, const char *kind,
                   const char *state, int attempt, int64_t time_ms,
                   json_t *payload, int64_t *seq_out, struct cairn_error *err)
{
  sqlite3_stmt *last = NULL, *ins = NULL;
  unsigned char prev[32], raw[32];
  char prev_hex[JOURNAL_HASH_HEX], hash[JOURNAL_HASH_HEX];
  struct cairn_buf *text = &j->text;
  int64_t seq = 1;
  int own = 0, rc;

  if (run_id == NULL || *run_id == '\0' ||
      strlen(run_id) >= JOURNAL_RUN_ID_LEN || kind == NULL || *kind == '\0' ||
      attempt < 0)
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "cannot append event '%s' of run '%s' (bad "
                           "argument)",
                           kind != NULL ? kind : "",
                           run_id != NULL ? run_id : "");
  if (payload != NULL && !json_is_object(payload))
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "payload of event '%s' is not a json object",
                           kind);
  if (state == NULL)
    state = "";
  if (time_ms == 0)
    time_ms = journal_now_ms();
  j->text_ok = 0;
  cairn_buf_reset(text);
  if (payload != NULL ? journal_canonical_add(text, payload) != 0
                      : (cairn_buf_add(text, "{}", 2), text->failed))
    return cairn_error_set(err, CAIRN_E_NOMEM,
                           "cannot serialise the payload of event '%s'", kind);

  rc = journal__write_begin(j, &own, err);
  if (rc != 0)
    goto out;
  if (j->elist != NULL) {
    rc = journal__elist_append(j, run_id, kind, state, attempt, time_ms,
                               text->p, text->len, &seq, err);
    j->text_ok = rc == 0;
    goto out;
  }

  /* The chain's end, read inside the write transaction unless this
   * connection wrote it last in the same one (see struct journal). */
  if (j->tail_known) {
    seq = j->tail_seq + 1;
    memcpy(prev, j->tail_hash, sizeof prev);
  } else {
    rc = journal__stmt(j, JOURNAL__ST_EVENT_LAST,
                       "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1",
                       &last, err);
    if (rc != 0)
      goto out;
    switch (sqlite3_step(last)) {
    case SQLITE_ROW:
      seq = sqlite3_column_int64(last, 0) + 1;
      if (journal__unhex32(journal__column_text(last, 1), prev) != 0) {
        rc = cairn_error_set(err, CAIRN_E_CHAIN,
                             "journal '%s' has a malformed hash at event %"
                             PRId64 ": nothing can be chained after it "
                             "(hint: 'cairn verify' says what is wrong)",
                             j->path, seq - 1);
        goto out;
      }
      break;
    case SQLITE_DONE:
      memset(prev, 0, sizeof prev);
      break;
    default:
      rc = journal__sqlite_error(j, err, "cannot read journal");
      goto out;
    }
    journal__stmt_done(j, JOURNAL__ST_EVENT_LAST, last);
    last = NULL;
  }

  /* Never mix keyed and unkeyed hashes. Without a key, look again inside
   * this transaction: another process may have keyed an empty journal
   * since we opened it (with a key, the record cannot change: meta rows
   * are never updated or deleted). */
  if (j->key == NULL && !j->key_known) {
    rc = journal__key_load_recorded(j, err);
    if (rc != 0)
      goto out;
    j->key_known = 1;
  }
  if (j->recorded_key_id[0] != '\0' &&
      (j->key == NULL || strcmp(j->key_id, j->recorded_key_id) != 0)) {
    rc = cairn_error_set(err, CAIRN_E_KEY,
                         "journal '%s' is keyed (key id %s): write to it "
                         "with its key (--key-file FILE or CAIRN_KEY_FILE)",
                         j->path, j->recorded_key_id);
    goto out;
  }
  if (j->key != NULL && j->recorded_key_id[0] == '\0') {
    rc = cairn_error_set(err, CAIRN_E_KEY,
                         "journal '%s' records no key: it cannot take keyed "
                         "events (use a new journal for a keyed history)",
                         j->path);
    goto out;
  }

  journal__hex32(prev, prev_hex);
  if (hash_input(&j->hashed, j->mac != NULL, seq, run_id, kind, state,
                 attempt, time_ms, text->p, text->len, prev) != 0) {
    rc = cairn_error_set(err, CAIRN_E_NOMEM,
                         "cannot compute an event hash: out of memory");
    goto out;
  }
  rc = digest(j->mac, &j->hashed, raw, hash, err);
  if (rc != 0)
    goto out;

  rc = journal__stmt(j, JOURNAL__ST_EVENT_INSERT,
                     "INSERT INTO events (" EVENT_COLUMNS ") "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                     &ins, err);
  if (rc != 0)
    goto out;
  sqlite3_bind_int64(ins, 1, seq);
  sqlite3_bind_text(ins, 2, run_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(ins, 3, kind, -1, SQLITE_STATIC);
  sqlite3_bind_text(ins, 4, state, -1, SQLITE_STATIC);
  sqlite3_bind_int(ins, 5, attempt);
  sqlite3_bind_int64(ins, 6, time_ms);
  sqlite3_bind_text(ins, 7, text->p, -1, SQLITE_STATIC);
  sqlite3_bind_text(ins, 8, prev_hex, -1, SQLITE_STATIC);
  sqlite3_bind_text(ins, 9, hash, -1, SQLITE_STATIC);
  if (sqlite3_step(ins) != SQLITE_DONE) {
    if (sqlite3_extended_errcode(j->db) == SQLITE_CONSTRAINT_FOREIGNKEY)
      rc = cairn_error_set(err, CAIRN_E_NORUN,
                           "no run '%s' in journal '%s' (insert the run "
                           "before its events)",
                           run_id, j->path);
    else
      rc = journal__sqlite_error(j, err, "cannot append to journal");
    goto out;
  }
  j->tail_seq = seq;
  memcpy(j->tail_hash, raw, sizeof raw);
  j->tail_known = 1;
  j->text_ok = 1;
out:
  if (rc != 0)
    j->tail_known = 0;
  /* Keep a buffer for the next event, not one as large as the largest. */
  if (text->cap > JOURNAL__BUF_KEEP) {
    cairn_buf_release(text);
    j->text_ok = 0;
  }
  if (j->hashed.cap > JOURNAL__BUF_KEEP)
    cairn_buf_release(&j->hashed);
  journal__stmt_done(j, JOURNAL__ST_EVENT_LAST, last);
  journal__stmt_done(j, JOURNAL__ST_EVENT_INSERT, ins);
  rc = journal__write_end(j, own, rc, err);
  if (rc == 0 && seq_out != NULL)
    *seq_out = seq;
  return rc;
}

/* ---- reading ---- */

const char *journal_last_payload(const struct journal *j, size_t *len)
{
  *len = j->text.len;
  return j->text_ok && j->text.p != NULL && !j->text.failed ? j->text.p
                                                             : NULL;
}

void journal_event_release(struct journal_event *ev)
{
  if (ev == NULL)
    return;
  free(ev->kind);
  free(ev->state);
  json_decref(ev->payload);
  ev->kind = NULL;
  ev->state = NULL;
  ev->payload = NULL;
}

/* Column col of st into out[n], cut short to fit (a snprintf without
 * the format parsing, which cost more than the copy on a long read-back). */
static void column_copy(sqlite3_stmt *st, int col, char *out, size_t n)
{
  const char *s = journal__column_text(st, col);
  size_t len = (size_t)sqlite3_column_bytes(st, col);

  if (len >= n)
    len = n - 1;
  memcpy(out, s, len);
  out[len] = '\0';
}

/* Fills ev from a row of EVENT_COLUMNS; ev owns what it gets. */
static int event_from_row(struct journal *j, sqlite3_stmt *st,
                          struct journal_event *ev, struct cairn_error *err)
{
  json_error_t jerr;

  memset(ev, 0, sizeof *ev);
  ev->seq = sqlite3_column_int64(st, 0);
  column_copy(st, 1, ev->run_id, sizeof ev->run_id);
  ev->kind = strdup(journal__column_text(st, 2));
  ev->state = strdup(journal__column_text(st, 3));
  ev->attempt = sqlite3_column_int(st, 4);
  ev->time_ms = sqlite3_column_int64(st, 5);
  column_copy(st, 7, ev->prev_hash, sizeof ev->prev_hash);
  column_copy(st, 8, ev->hash, sizeof ev->hash);
  if (ev->kind == NULL || ev->state == NULL) {
    journal_event_release(ev);
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  }
  {
    const char *text = journal__column_text(st, 6);

    /* a string the engine journaled may hold a NUL ("\u0000"): read
     * back what was written */
    ev->payload = json_loadb(text, (size_t)sqlite3_column_bytes(st, 6),
                             JSON_ALLOW_NUL, &jerr);
  }
  if (ev->payload == NULL || !json_is_object(ev->payload)) {
    int64_t seq = ev->seq;

    journal_event_release(ev);
    return cairn_error_set(err, CAIRN_E_JOURNAL,
                           "event %" PRId64 " of journal '%s' has a payload "
                           "that is not a json object",
                           seq, j->path);
  }
  return 0;
}

int journal_event_foreach(struct journal *j, const char *run_id,
                          int64_t after_seq,
                          int (*cb)(const struct journal_event *ev, void *ud),
                          void *ud, struct cairn_error *err)
{
  enum journal__stmt_id id =
      run_id != NULL ? JOURNAL__ST_EVENTS_OF_RUN : JOURNAL__ST_EVENTS_ALL;
  const char *sql =
      run_id != NULL
          ? "SELECT " EVENT_COLUMNS " FROM events "
            "WHERE run_id = ?1 AND seq > ?2 ORDER BY seq"
          : "SELECT " EVENT_COLUMNS " FROM events WHERE seq > ?2 ORDER BY seq";
  sqlite3_stmt *st = NULL;
  struct journal_event ev;
  int rc, step;

  if (j->elist != NULL)
    return journal__elist_foreach(j, run_id, after_seq, cb, ud, err);
  rc = journal__stmt(j, id, sql, &st, err);
  if (rc != 0)
    return rc;
  if (run_id != NULL)
    sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, after_seq);
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    rc = event_from_row(j, st, &ev, err);
    if (rc != 0)
      goto out;
    rc = cb(&ev, ud);
    journal_event_release(&ev);
    if (rc != 0)
      goto out;
  }
  if (step != SQLITE_DONE)
    rc = journal__sqlite_error(j, err, "cannot read journal");
out:
  journal__stmt_done(j, id, st);
  return rc;
}

int journal_event_get(struct journal *j, int64_t seq, struct journal_event *out,
                      struct cairn_error *err)
{
  sqlite3_stmt *st = NULL;
  int rc;

  memset(out, 0, sizeof *out);
  if (j->elist != NULL)
    return journal__elist_get(j, seq, out, err);
  rc = journal__stmt(j, JOURNAL__ST_EVENT_GET,
                     "SELECT " EVENT_COLUMNS " FROM events WHERE seq = ?1",
                     &st, err);
  if (rc != 0)
    return rc;
  sqlite3_bind_int64(st, 1, seq);
  switch (sqlite3_step(st)) {
  case SQLITE_ROW:
    rc = event_from_row(j, st, out, err);
    break;
  case SQLITE_DONE:
    rc = cairn_error_set(err, CAIRN_E_NOTFOUND,
                         "no event %" PRId64 " in journal '%s'", seq,
                         j->path);
    break;
  default:
    rc = journal__sqlite_error(j, err, "cannot read journal");
    break;
  }
  journal__stmt_done(j, JOURNAL__ST_EVENT_GET, st);
  return rc;
}
