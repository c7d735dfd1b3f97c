/* Run rows: ids (ULIDs), insert, status, lookup by id or prefix, and
 * listing newest first. */
#include "journal/internal.h"
#include "journal/events.h"
#include "common/random.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Crockford's base32: no I, L, O, U. */
static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

int journal_new_run_id(char out[JOURNAL_RUN_ID_LEN], struct cairn_error *err)
{
  unsigned char rnd[10];
  uint64_t t = (uint64_t)journal_now_ms() & UINT64_C(0xFFFFFFFFFFFF);

  int rc = cairn_random_bytes(rnd, sizeof rnd, err);
  if (rc != 0)
    return rc;
  /* 48 bits of time in 10 characters (the top 2 bits are zero). */
  for (int i = 9; i >= 0; i--) {
    out[i] = crockford[t & 31];
    t >>= 5;
  }
  /* 80 random bits in 16 characters, as two 40-bit halves. */
  for (int half = 0; half < 2; half++) {
    uint64_t v = 0;

    for (int b = 0; b < 5; b++)
      v = v << 8 | rnd[half * 5 + b];
    for (int i = 7; i >= 0; i--) {
      out[10 + half * 8 + i] = crockford[v & 31];
      v >>= 5;
    }
  }
  out[26] = '\0';
  return 0;
}

void journal_run_release(struct journal_run *run)
{
  if (run == NULL)
    return;
  free(run->workflow);
  free(run->file);
  free(run->file_sha256);
  free(run->env);
  free(run->release);
  json_decref(run->params);
  free(run->status);
  free(run->actor);
  free(run->parent);
  memset(run, 0, sizeof *run);
}

static const char *or_empty(const char *s)
{
  return s != NULL ? s : "";
}

int journal_run_insert(struct journal *j, const struct journal_run *run,
                       struct cairn_error *err)
{
  sqlite3_stmt *st = NULL;
  char *params = NULL;
  int64_t created, updated;
  size_t idlen;
  int own = 0, rc;

  idlen = run != NULL ? strnlen(run->id, sizeof run->id) : 0;
  if (idlen == 0 || idlen >= sizeof run->id)
    return cairn_error_set(err, CAIRN_E_INVAL, "run id is not set");
  if (run->params != NULL && !json_is_object(run->params))
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "params of run '%s' are not a json object",
                           run->id);
  params = run->params != NULL ? journal_canonical_json(run->params)
                               : strdup("{}");
  if (params == NULL)
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  created = run->created_ms != 0 ? run->created_ms : journal_now_ms();
  updated = run->updated_ms != 0 ? run->updated_ms : created;

  rc = journal__write_begin(j, &own, err);
  if (rc != 0)
    goto out;
  rc = journal__stmt(j, JOURNAL__ST_RUN_INSERT,
                     "INSERT INTO runs (" JOURNAL__RUN_COLUMNS ") VALUES "
                     "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                     &st, err);
  if (rc != 0)
    goto out;
  sqlite3_bind_text(st, 1, run->id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, or_empty(run->workflow), -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, or_empty(run->file), -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, or_empty(run->file_sha256), -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 5, or_empty(run->env), -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 6, or_empty(run->release), -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 7, params, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 8,
                    run->status != NULL ? run->status : JOURNAL_STATUS_RUNNING,
                    -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 9, or_empty(run->actor), -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 10, or_empty(run->parent), -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 11, created);
  sqlite3_bind_int64(st, 12, updated);
  sqlite3_bind_int64(st, 13, run->finished_ms);
  if (sqlite3_step(st) != SQLITE_DONE) {
    if (sqlite3_extended_errcode(j->db) == SQLITE_CONSTRAINT_PRIMARYKEY)
      rc = cairn_error_set(err, CAIRN_E_JOURNAL,
                           "run '%s' already exists in journal '%s'", run->id,
                           j->path);
    else
      rc = journal__sqlite_error(j, err, "cannot insert a run into journal");
  }
out:
  journal__stmt_done(j, JOURNAL__ST_RUN_INSERT, st);
  rc = journal__write_end(j, own, rc, err);
  free(params);
  return rc;
}

int journal_run_is_record(const struct journal_run *run)
{
  return strcmp(run->status, JOURNAL_STATUS_APPROVED) == 0 ||
         strcmp(run->status, JOURNAL_STATUS_REFUSED) == 0;
}

int journal_run_set_status(struct journal *j, const char *run_id,
                           const char *status, int64_t finished_ms,
                           struct cairn_error *err)
{
  sqlite3_stmt *st = NULL;
  int own = 0, rc;

  if (run_id == NULL || status == NULL || *status == '\0')
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "cannot set the status of run '%s' (bad argument)",
                           run_id != NULL ? run_id : "");
  rc = journal__write_begin(j, &own, err);
  if (rc != 0)
    goto out;
  rc = journal__stmt(j, JOURNAL__ST_RUN_STATUS,
                     "UPDATE runs SET status = ?2, updated_ms = ?3, "
                     "finished_ms = CASE WHEN ?4 != 0 THEN ?4 "
                     "ELSE finished_ms END WHERE id = ?1",
                     &st, err);
  if (rc != 0)
    goto out;
  sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, journal_now_ms());
  sqlite3_bind_int64(st, 4, finished_ms);
  if (sqlite3_step(st) != SQLITE_DONE)
    rc = journal__sqlite_error(j, err, "cannot update a run in journal");
  else if (sqlite3_changes(j->db) == 0)
    rc = cairn_error_set(err, CAIRN_E_NORUN, "no run '%s' in journal '%s'",
                         run_id, j->path);
out:
  journal__stmt_done(j, JOURNAL__ST_RUN_STATUS, st);
  return journal__write_end(j, own, rc, err);
}

/* How journal_run_insert stores each of JOURNAL__RUN_COLUMNS. */
static const struct {
  const char *name;
  int type;
} run_columns[] = {
  {"id", SQLITE_TEXT},             {"workflow", SQLITE_TEXT},
  {"file", SQLITE_TEXT},           {"file_sha256", SQLITE_TEXT},
  {"env", SQLITE_TEXT},            {"release", SQLITE_TEXT},
  {"params", SQLITE_TEXT},         {"status", SQLITE_TEXT},
  {"actor", SQLITE_TEXT},          {"parent", SQLITE_TEXT},
  {"created_ms", SQLITE_INTEGER},  {"updated_ms", SQLITE_INTEGER},
  {"finished_ms", SQLITE_INTEGER},
};

int journal__run_misstored(sqlite3_stmt *st, char *why, size_t n)
{
  char how[64];

  for (int i = 0; i < (int)(sizeof run_columns / sizeof run_columns[0]);
       i++) {
    if (journal__misstored(st, i, run_columns[i].type, how, sizeof how)) {
      snprintf(why, n, "its %s %s", run_columns[i].name, how);
      return 1;
    }
  }
  /* longer ids would be cut short to another run's id when read */
  if (sqlite3_column_bytes(st, 0) >= JOURNAL_RUN_ID_LEN) {
    snprintf(why, n, "its id is %d bytes long, longer than any run id",
             sqlite3_column_bytes(st, 0));
    return 1;
  }
  return 0;
}

/* Fills out from a row of JOURNAL__RUN_COLUMNS; out owns what it gets. */
static int run_from_row(struct journal *j, sqlite3_stmt *st,
                        struct journal_run *out, struct cairn_error *err)
{
  char **texts[] = {&out->workflow, &out->file,   &out->file_sha256,
                    &out->env,      &out->release, NULL,
                    &out->status,   &out->actor,  &out->parent};
  json_error_t jerr;

  memset(out, 0, sizeof *out);
  /* first, before any read converts a column */
  journal__run_misstored(st, out->misstored, sizeof out->misstored);
  snprintf(out->id, sizeof out->id, "%s", journal__column_text(st, 0));
  for (int i = 0; i < 9; i++) {
    if (texts[i] == NULL)
      continue;
    *texts[i] = strdup(journal__column_text(st, 1 + i));
    if (*texts[i] == NULL) {
      journal_run_release(out);
      return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    }
  }
  out->created_ms = sqlite3_column_int64(st, 10);
  out->updated_ms = sqlite3_column_int64(st, 11);
  out->finished_ms = sqlite3_column_int64(st, 12);
  out->params = json_loads(journal__column_text(st, 6), 0, &jerr);
  if (out->params == NULL || !json_is_object(out->params)) {
    char id[JOURNAL_RUN_ID_LEN];

    memcpy(id, out->id, sizeof id);
    journal_run_release(out);
    return cairn_error_set(err, CAIRN_E_JOURNAL,
                           "run '%s' in journal '%s' has params that are "
                           "not a json object",
                           id, j->path);
  }
  return 0;
}

/* A LIKE pattern matching every id starting with prefix (case-insensitive,
 * as Crockford base32 is). Caller frees. */
static char *like_prefix(const char *prefix)
{
  char *pat = malloc(2 * strlen(prefix) + 2), *p = pat;

  if (pat == NULL)
    return NULL;
  for (const char *s = prefix; *s; s++) {
    if (*s == '%' || *s == '_' || *s == '\\')
      *p++ = '\\';
    *p++ = *s;
  }
  *p++ = '%';
  *p = '\0';
  return pat;
}

int journal_run_get(struct journal *j, const char *id_or_prefix,
                    struct journal_run *out, struct cairn_error *err)
{
  sqlite3_stmt *st = NULL;
  enum journal__stmt_id id = JOURNAL__ST_RUN_EXACT;
  char *pat = NULL;
  char first[JOURNAL_RUN_ID_LEN];
  int rc, step;

  memset(out, 0, sizeof *out);
  if (id_or_prefix == NULL || *id_or_prefix == '\0')
    return cairn_error_set(err, CAIRN_E_NORUN, "no run id given");
  rc = journal__stmt(j, id,
                     "SELECT " JOURNAL__RUN_COLUMNS " FROM runs WHERE id = ?1",
                     &st, err);
  if (rc != 0)
    return rc;
  sqlite3_bind_text(st, 1, id_or_prefix, -1, SQLITE_STATIC);
  step = sqlite3_step(st);
  if (step == SQLITE_DONE && strlen(id_or_prefix) >= 4) {
    journal__stmt_done(j, id, st);
    st = NULL;
    id = JOURNAL__ST_RUN_PREFIX;
    pat = like_prefix(id_or_prefix);
    if (pat == NULL) {
      rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
      goto out;
    }
    rc = journal__stmt(j, id,
                       "SELECT " JOURNAL__RUN_COLUMNS " FROM runs "
                       "WHERE id LIKE ?1 ESCAPE '\\' ORDER BY id LIMIT 2",
                       &st, err);
    if (rc != 0)
      goto out;
    sqlite3_bind_text(st, 1, pat, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
  }
  if (step == SQLITE_DONE) {
    rc = cairn_error_set(err, CAIRN_E_NORUN,
                         "no run '%s' in journal '%s' (hint: %s)",
                         id_or_prefix, j->path,
                         strlen(id_or_prefix) < 4
                             ? "a prefix of a run id needs 4 characters at "
                               "least"
                             : "'cairn history' lists the runs");
    goto out;
  }
  if (step != SQLITE_ROW) {
    rc = journal__sqlite_error(j, err, "cannot read journal");
    goto out;
  }
  rc = run_from_row(j, st, out, err);
  if (rc != 0 || id == JOURNAL__ST_RUN_EXACT)
    goto out;
  memcpy(first, out->id, sizeof first);
  step = sqlite3_step(st);
  if (step == SQLITE_ROW) {
    rc = cairn_error_set(err, CAIRN_E_AMBIGUOUS,
                         "run prefix '%s' is ambiguous (it matches %s, %s "
                         "and maybe more)",
                         id_or_prefix, first, journal__column_text(st, 0));
    journal_run_release(out);
  } else if (step != SQLITE_DONE) {
    rc = journal__sqlite_error(j, err, "cannot read journal");
    journal_run_release(out);
  }
out:
  journal__stmt_done(j, id, st);
  free(pat);
  return rc;
}

int journal_run_foreach(struct journal *j, const struct journal_run_filter *f,
                        int (*cb)(const struct journal_run *run, void *ud),
                        void *ud, struct cairn_error *err)
{
  static const struct journal_run_filter none = {0};
  sqlite3_stmt *st = NULL;
  struct journal_run run;
  int rc, step;

  if (f == NULL)
    f = &none;
  rc = journal__stmt(j, JOURNAL__ST_RUN_LIST,
                     "SELECT " JOURNAL__RUN_COLUMNS " FROM runs "
                     "WHERE (?1 IS NULL OR workflow = ?1) "
                     "AND (?2 IS NULL OR env = ?2) "
                     "AND (?3 IS NULL OR release = ?3) "
                     "AND (?4 IS NULL OR status = ?4) "
                     "AND created_ms >= ?5 "
                     "ORDER BY created_ms DESC, id DESC LIMIT ?6",
                     &st, err);
  if (rc != 0)
    return rc;
  if (f->workflow != NULL)
    sqlite3_bind_text(st, 1, f->workflow, -1, SQLITE_STATIC);
  if (f->env != NULL)
    sqlite3_bind_text(st, 2, f->env, -1, SQLITE_STATIC);
  if (f->release != NULL)
    sqlite3_bind_text(st, 3, f->release, -1, SQLITE_STATIC);
  if (f->status != NULL)
    sqlite3_bind_text(st, 4, f->status, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 5, f->since_ms);
  sqlite3_bind_int64(st, 6, f->limit > 0 ? f->limit : -1);
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    rc = run_from_row(j, st, &run, err);
    if (rc != 0)
      goto out;
    rc = cb(&run, ud);
    journal_run_release(&run);
    if (rc != 0)
      goto out;
  }
  if (step != SQLITE_DONE)
    rc = journal__sqlite_error(j, err, "cannot read journal");
out:
  journal__stmt_done(j, JOURNAL__ST_RUN_LIST, st);
  return rc;
}

int journal_run_foreach_current(struct journal *j,
                                int (*cb)(const struct journal_run *run,
                                          void *ud),
                                void *ud, struct cairn_error *err)
{
  sqlite3_stmt *st = NULL;
  struct journal_run run;
  int rc, step;

  /* The pairs come from the index alone (DISTINCT over its prefix); each
   * pair's newest succeeded run is one index lookup. */
  rc = journal__stmt(j, JOURNAL__ST_RUN_CURRENT,
                     "SELECT " JOURNAL__RUN_COLUMNS " FROM runs WHERE rowid IN ("
                     "SELECT (SELECT r.rowid FROM runs r "
                     "WHERE r.workflow = p.workflow AND r.env = p.env "
                     "AND r.status = 'succeeded' "
                     "ORDER BY r.created_ms DESC, r.id DESC LIMIT 1) "
                     "FROM (SELECT DISTINCT workflow, env FROM runs) p "
                     "UNION ALL "
                     "SELECT (SELECT r.rowid FROM runs r "
                     "WHERE r.workflow = p.workflow AND r.env = p.env "
                     "AND r.status NOT IN ('approved', 'refused') "
                     "ORDER BY r.created_ms DESC, r.id DESC LIMIT 1) "
                     "FROM (SELECT DISTINCT workflow, env FROM runs) p) "
                     "OR status IN ('running', 'waiting', 'interrupted') "
                     "ORDER BY created_ms DESC, id DESC",
                     &st, err);
  if (rc != 0)
    return rc;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    rc = run_from_row(j, st, &run, err);
    if (rc != 0)
      goto out;
    rc = cb(&run, ud);
    journal_run_release(&run);
    if (rc != 0)
      goto out;
  }
  if (step != SQLITE_DONE)
    rc = journal__sqlite_error(j, err, "cannot read journal");
out:
  journal__stmt_done(j, JOURNAL__ST_RUN_CURRENT, st);
  return rc;
}
