/* Keyed journals: reading a key file, the key id, the HMAC context every
 * keyed hash starts from, and the rules for who may write to a keyed
 * journal (journal.h, "keys"). The key itself never reaches the file. */
#include "journal/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define META_KEY_ID "hmac_key_id"

int journal_key_load(const char *path, unsigned char **key, size_t *len,
                     struct cairn_error *err)
{
  unsigned char *buf = NULL;
  struct stat sb;
  size_t got = 0;
  int fd, rc = 0;

  *key = NULL;
  *len = 0;
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return cairn_error_set(err, CAIRN_E_IO, "cannot open key file '%s': %s",
                           path, strerror(errno));
  if (fstat(fd, &sb) != 0) {
    rc = cairn_error_set(err, CAIRN_E_IO, "cannot stat key file '%s': %s",
                         path, strerror(errno));
    goto out;
  }
  if (!S_ISREG(sb.st_mode)) {
    rc = cairn_error_set(err, CAIRN_E_KEY,
                         "key file '%s' is not a regular file", path);
    goto out;
  }
  /* As ssh does with private keys: a key others can read is no secret. */
  if (sb.st_mode & 077) {
    rc = cairn_error_set(err, CAIRN_E_KEY,
                         "key file '%s' is accessible by group or others "
                         "(mode %04o): chmod 600 it",
                         path, (unsigned)(sb.st_mode & 07777));
    goto out;
  }
  buf = malloc(JOURNAL_KEY_MAX + 1);
  if (buf == NULL) {
    rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    goto out;
  }
  for (;;) {
    ssize_t n = read(fd, buf + got, JOURNAL_KEY_MAX + 1 - got);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      rc = cairn_error_set(err, CAIRN_E_IO, "cannot read key file '%s': %s",
                           path, strerror(errno));
      goto out;
    }
    if (n == 0 || (got += (size_t)n) > JOURNAL_KEY_MAX)
      break;
  }
  if (got < JOURNAL_KEY_MIN || got > JOURNAL_KEY_MAX) {
    rc = cairn_error_set(err, CAIRN_E_KEY,
                         "key file '%s' holds %s%zu bytes, a key is %d to %d "
                         "bytes (make one with: head -c 32 /dev/urandom)",
                         path, got > JOURNAL_KEY_MAX ? "over " : "",
                         got > JOURNAL_KEY_MAX ? (size_t)JOURNAL_KEY_MAX : got,
                         JOURNAL_KEY_MIN, JOURNAL_KEY_MAX);
    goto out;
  }
  *key = buf;
  *len = got;
  buf = NULL;
out:
  if (buf != NULL)
    journal_key_free(buf, JOURNAL_KEY_MAX + 1);
  close(fd);
  return rc;
}

void journal_key_free(unsigned char *key, size_t len)
{
  if (key == NULL)
    return;
  OPENSSL_cleanse(key, len);
  free(key);
}

void journal_key_id(const unsigned char *key, size_t len,
                    char out[JOURNAL_KEY_ID_HEX])
{
  unsigned char md[32];
  char hex[JOURNAL_HASH_HEX];
  unsigned int mdlen = 0;

  if (EVP_Digest(key, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
      mdlen != 32) {
    out[0] = '\0';
    return;
  }
  journal__hex32(md, hex);
  memcpy(out, hex, JOURNAL_KEY_ID_HEX - 1);
  out[JOURNAL_KEY_ID_HEX - 1] = '\0';
}

const char *journal_recorded_key_id(const struct journal *j)
{
  return j->recorded_key_id;
}

int journal__mac_new(const unsigned char *key, size_t len, EVP_MAC_CTX **out,
                     struct cairn_error *err)
{
  EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
    OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
    OSSL_PARAM_construct_end(),
  };
  EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;

  EVP_MAC_free(mac); /* the context keeps its own reference */
  if (ctx == NULL || !EVP_MAC_init(ctx, key, len, params)) {
    char detail[256];

    EVP_MAC_CTX_free(ctx);
    ERR_error_string_n(ERR_get_error(), detail, sizeof detail);
    *out = NULL;
    return cairn_error_set(err, CAIRN_E_JOURNAL,
                           "cannot set up HMAC-SHA-256: %s", detail);
  }
  *out = ctx;
  return 0;
}

int journal__key_load_recorded(struct journal *j, struct cairn_error *err)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = journal__stmt(j, JOURNAL__ST_META_KEY_GET,
                     "SELECT value FROM meta WHERE name = '" META_KEY_ID "'",
                     &st, err);
  if (rc != 0)
    return rc;
  switch (sqlite3_step(st)) {
  case SQLITE_ROW:
    snprintf(j->recorded_key_id, sizeof j->recorded_key_id, "%s",
             journal__column_text(st, 0));
    break;
  case SQLITE_DONE:
    j->recorded_key_id[0] = '\0';
    break;
  default:
    rc = journal__sqlite_error(j, err, "cannot read journal");
    break;
  }
  journal__stmt_done(j, JOURNAL__ST_META_KEY_GET, st);
  return rc;
}

int journal__key_added(struct journal *j, int64_t *seq,
                       struct cairn_error *err)
{
  sqlite3_stmt *st = NULL;
  char computed[JOURNAL_HASH_HEX];
  unsigned char prev[32];
  int rc;

  *seq = 0;
  if (j->recorded_key_id[0] == '\0' || j->elist != NULL)
    return 0;
  /* one event, one digest: cheap enough for every writer of a keyed
   * journal to look */
  rc = journal__stmt(j, JOURNAL__ST_KEY_FIRST_EVENT,
                     "SELECT seq, run_id, kind, state, attempt, time_ms, "
                     "payload, prev_hash, hash FROM events ORDER BY seq "
                     "LIMIT 1",
                     &st, err);
  if (rc != 0)
    return rc;
  switch (sqlite3_step(st)) {
  case SQLITE_ROW:
    if (journal__unhex32(journal__column_text(st, 7), prev) != 0)
      break; /* not a hash either way: verify says what is wrong */
    rc = journal__hash_row(NULL, st, prev, computed, err);
    if (rc == 0 && strcmp(computed, journal__column_text(st, 8)) == 0) {
      *seq = sqlite3_column_int64(st, 0);
      rc = 1;
    }
    break;
  case SQLITE_DONE:
    break;
  default:
    rc = journal__sqlite_error(j, err, "cannot read journal");
    break;
  }
  journal__stmt_done(j, JOURNAL__ST_KEY_FIRST_EVENT, st);
  return rc;
}

int journal__key_added_error(struct journal *j, int64_t seq,
                             struct cairn_error *err)
{
  return cairn_error_set(err, CAIRN_E_CHAIN,
                         "journal '%s' records key id %s, but its event %"
                         PRId64 " is hashed without a key: the key record "
                         "was added to an unkeyed journal (hint: 'cairn "
                         "verify' says what is wrong)",
                         j->path, j->recorded_key_id, seq);
}

void journal__key_release(struct journal *j)
{
  journal_key_free(j->key, j->key_len);
  EVP_MAC_CTX_free(j->mac);
  j->key = NULL;
  j->key_len = 0;
  j->key_id[0] = '\0';
  j->mac = NULL;
}

/* Does the journal hold any event? 1 yes, 0 no, or a negative code. */
static int has_events(struct journal *j, struct cairn_error *err)
{
  sqlite3_stmt *st = NULL;
  int rc;

  if (sqlite3_prepare_v2(j->db, "SELECT EXISTS (SELECT 1 FROM events)", -1,
                         &st, NULL) != SQLITE_OK)
    return journal__sqlite_error(j, err, "cannot read journal");
  if (sqlite3_step(st) == SQLITE_ROW)
    rc = sqlite3_column_int(st, 0) != 0;
  else
    rc = journal__sqlite_error(j, err, "cannot read journal");
  sqlite3_finalize(st);
  return rc;
}

/* The write-side rules of journal_set_key, inside a write transaction;
 * records id when the journal becomes keyed. */
static int check_writable(struct journal *j, const unsigned char *key,
                          const char *id, struct cairn_error *err)
{
  sqlite3_stmt *st = NULL;
  int rc = journal__key_load_recorded(j, err);

  if (rc != 0)
    return rc;
  if (j->recorded_key_id[0] != '\0') {
    int64_t at = 0;
    /* a key record put into a journal of plain hashes: no key is its
     * key, and its history was edited */
    rc = journal__key_added(j, &at, err);
    if (rc < 0)
      return rc;
    if (rc > 0)
      return journal__key_added_error(j, at, err);
    if (key == NULL)
      return cairn_error_set(err, CAIRN_E_KEY,
                             "journal '%s' is keyed (key id %s): pass its "
                             "key with --key-file FILE or CAIRN_KEY_FILE",
                             j->path, j->recorded_key_id);
    if (strcmp(id, j->recorded_key_id) != 0)
      return cairn_error_set(err, CAIRN_E_KEY,
                             "the key (id %s) is not the key of journal '%s' "
                             "(id %s): pass the key it was created with",
                             id, j->path, j->recorded_key_id);
    return 0;
  }
  if (key == NULL)
    return 0;
  rc = has_events(j, err);
  if (rc < 0)
    return rc;
  if (rc > 0)
    return cairn_error_set(err, CAIRN_E_KEY,
                           "journal '%s' already holds events without a key: "
                           "a key cannot be added to it (drop the key, or "
                           "start a new journal for a keyed history)",
                           j->path);
  rc = journal__stmt(j, JOURNAL__ST_META_KEY_SET,
                     "INSERT INTO meta (name, value) VALUES ('" META_KEY_ID
                     "', ?1)",
                     &st, err);
  if (rc != 0)
    return rc;
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  if (sqlite3_step(st) != SQLITE_DONE)
    rc = journal__sqlite_error(j, err, "cannot record the key id in journal");
  else
    memcpy(j->recorded_key_id, id, sizeof j->recorded_key_id);
  journal__stmt_done(j, JOURNAL__ST_META_KEY_SET, st);
  return rc;
}

int journal_set_key(struct journal *j, const unsigned char *key, size_t len,
                    struct cairn_error *err)
{
  EVP_MAC_CTX *mac = NULL;
  unsigned char *copy = NULL;
  char id[JOURNAL_KEY_ID_HEX] = "";
  int own = 0, rc;

  journal__cache_drop(j); /* the key record may change */
  if (key != NULL && (j->flags & JOURNAL_UNCHAINED))
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "journal '%s' keeps no hash chain: it takes no key",
                           j->path);
  if (key != NULL) {
    if (len < JOURNAL_KEY_MIN || len > JOURNAL_KEY_MAX)
      return cairn_error_set(err, CAIRN_E_KEY,
                             "a journal key is %d to %d bytes, not %zu",
                             JOURNAL_KEY_MIN, JOURNAL_KEY_MAX, len);
    journal_key_id(key, len, id);
    rc = journal__mac_new(key, len, &mac, err);
    if (rc != 0)
      return rc;
    copy = malloc(len);
    if (copy == NULL) {
      EVP_MAC_CTX_free(mac);
      return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    }
    memcpy(copy, key, len);
  }
  if (j->flags & JOURNAL_READONLY) {
    rc = journal__key_load_recorded(j, err);
  } else {
    rc = journal__write_begin(j, &own, err);
    if (rc == 0)
      rc = journal__write_end(j, own, check_writable(j, key, id, err), err);
  }
  if (rc != 0) {
    journal_key_free(copy, len);
    EVP_MAC_CTX_free(mac);
    return rc;
  }
  journal__key_release(j);
  j->key = copy;
  j->key_len = copy != NULL ? len : 0;
  j->mac = mac;
  memcpy(j->key_id, id, sizeof id);
  return 0;
}
