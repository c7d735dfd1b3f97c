/* cairn verify: recompute the journal's hash chain (HMAC with --key-file),
 * and check or write an anchor: a small file kept outside the journal with
 * the last verified seq and hash, so deleting the newest events shows. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/file.h"

/* What an anchor file says. */
struct anchor {
  int64_t seq;
  char hash[JOURNAL_HASH_HEX];
  char key_id[JOURNAL_KEY_ID_HEX];
  char written[40]; /* ISO time it was written, for the messages */
  char journal[4096]; /* the journal it was written for, as it said */
};

/* Does the anchor name another journal than path? Compared as the files
 * they resolve to; as written when the anchor's is gone. */
static int other_journal(const struct anchor *a, const char *path)
{
  char x[PATH_MAX], y[PATH_MAX];

  if (a->journal[0] == '\0')
    return 0;
  if (realpath(a->journal, x) == NULL || realpath(path, y) == NULL)
    return strcmp(a->journal, path) != 0;
  return strcmp(x, y) != 0;
}

/* Reads path into *a; prints the error and returns an exit code on bad
 * input. */
static int anchor_read(const char *path, struct anchor *a)
{
  json_error_t jerr;
  json_t *v = json_load_file(path, 0, &jerr);
  json_t *seq, *hash, *key_id, *written, *journal;
  int code = CLI_EXIT_USAGE;

  memset(a, 0, sizeof *a);
  if (v == NULL) {
    cli_error("cannot read anchor '%s': %s", path, jerr.text);
    return CLI_EXIT_USAGE;
  }
  seq = json_object_get(v, "seq");
  hash = json_object_get(v, "hash");
  key_id = json_object_get(v, "key_id");
  written = json_object_get(v, "written");
  journal = json_object_get(v, "journal");
  if (!json_is_integer(seq) || json_integer_value(seq) < 0 ||
      !json_is_string(hash) ||
      strlen(json_string_value(hash)) != (json_integer_value(seq) ? 64 : 0) ||
      (key_id != NULL && (!json_is_string(key_id) ||
                          strlen(json_string_value(key_id)) >=
                              sizeof a->key_id))) {
    cli_error("'%s' is not a cairn anchor (it needs \"seq\" and \"hash\"; "
              "write one with 'cairn verify --write-anchor FILE')", path);
    goto out;
  }
  if (json_integer_value(seq) == 0) {
    /* an empty journal is a prefix of every journal */
    cli_error("anchor '%s' is of an empty journal and vouches for no event "
              "(hint: write one with 'cairn verify --write-anchor FILE' "
              "once the journal holds a run)",
              path);
    goto out;
  }
  a->seq = json_integer_value(seq);
  snprintf(a->hash, sizeof a->hash, "%s", json_string_value(hash));
  if (key_id != NULL)
    snprintf(a->key_id, sizeof a->key_id, "%s", json_string_value(key_id));
  snprintf(a->written, sizeof a->written, "%s",
           json_is_string(written) ? json_string_value(written) : "?");
  if (json_is_string(journal))
    snprintf(a->journal, sizeof a->journal, "%s", json_string_value(journal));
  code = 0;
out:
  json_decref(v);
  return code;
}

/* Writes the anchor of vr to path (0600, atomically: a reader sees the
 * old anchor or the new one). Returns 0, or prints the error and returns
 * an exit code: 2 for a path that cannot be written (bad input, not a
 * broken chain, which is 1). */
static int anchor_write(const char *path, struct journal *j,
                        const struct journal_verify_result *vr)
{
  struct cairn_error err = {0};
  char when[32];
  time_t now = time(NULL);
  struct tm tm;
  json_t *v;
  char *text = NULL;
  int rc;

  if (vr->last_seq == 0) {
    cli_error("anchor: the journal '%s' is empty, and an anchor of it would "
              "vouch for no event (hint: write one once it holds a run)",
              journal_path(j));
    return CLI_EXIT_USAGE;
  }

  char abs[PATH_MAX];
  /* the file itself, so a check from another folder can compare it */
  const char *jp = realpath(journal_path(j), abs) ? abs : journal_path(j);

  gmtime_r(&now, &tm);
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  v = json_pack("{s:s,s:I,s:s,s:s}", "journal", jp, "seq",
                (json_int_t)vr->last_seq, "hash", vr->last_hash, "written",
                when);
  if (v != NULL && vr->key_id[0] != '\0')
    json_object_set_new(v, "key_id", json_string(vr->key_id));
  text = v != NULL ? json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
  json_decref(v);
  if (text == NULL) {
    cli_error("out of memory");
    return CLI_EXIT_FAILED;
  }
  size_t n = strlen(text);
  char *line = realloc(text, n + 2);
  if (line == NULL) {
    free(text);
    cli_error("out of memory");
    return CLI_EXIT_FAILED;
  }
  line[n] = '\n';
  line[n + 1] = '\0';
  rc = cairn_write_atomic(path, line, n + 1, 0600, &err);
  if (rc != 0)
    cli_error("anchor: %s", err.msg);
  free(line);
  return cli_exit_for(rc);
}

/* Checks the journal against anchor a: the event a->seq still exists with
 * a->hash. Returns 0, or fills reason and *bad_seq and returns 1; an
 * exit code > 1 on a read error (printed). */
static int anchor_check(struct journal *j, const struct anchor *a,
                        const struct journal_verify_result *vr,
                        char *reason, size_t n, int64_t *bad_seq)
{
  struct journal_event ev;
  struct cairn_error err = {0};
  int rc;

  if (strcmp(a->key_id, vr->key_id) != 0) {
    *bad_seq = a->seq > 0 ? a->seq : 1;
    snprintf(reason, n, "the anchor from %s was written for key id '%s' but "
             "the journal records key id '%s'", a->written, a->key_id,
             vr->key_id);
    return 1;
  }
  if (vr->last_seq < a->seq) {
    *bad_seq = vr->last_seq + 1;
    snprintf(reason, n, "the journal ends at seq %" PRId64 " but the anchor "
             "from %s says seq %" PRId64 " had hash %s (events were "
             "deleted)", vr->last_seq, a->written, a->seq, a->hash);
    return 1;
  }
  rc = journal_event_get(j, a->seq, &ev, &err);
  if (rc == CAIRN_E_NOTFOUND) {
    *bad_seq = a->seq;
    snprintf(reason, n, "event %" PRId64 " is missing but the anchor from %s "
             "says it had hash %s", a->seq, a->written, a->hash);
    return 1;
  }
  if (rc != 0) {
    cli_error("%s", err.msg);
    return cli_exit_for(rc);
  }
  rc = strcmp(ev.hash, a->hash) != 0;
  if (rc) {
    *bad_seq = a->seq;
    snprintf(reason, n, "event %" PRId64 " has hash %s but the anchor from "
             "%s says %s", a->seq, ev.hash, a->written, a->hash);
  }
  journal_event_release(&ev);
  return rc;
}

int cli_cmd_verify(int argc, char **argv, struct cli_ctx *ctx)
{
  const char *anchor_in = NULL, *anchor_out = NULL;
  const struct cli_option opts[] = {
    {"anchor", CLI_OPT_STRING, &anchor_in, "FILE",
     "also check that the event an anchor names still has its hash"},
    {"write-anchor", CLI_OPT_STRING, &anchor_out, "FILE",
     "when all is well, write the last seq and hash to FILE (0600)"},
    {NULL, 0, NULL, NULL, NULL},
  };
  struct journal *j = NULL;
  struct journal_verify_result vr = {0};
  struct cairn_error err = {0};
  struct anchor a;
  char reason[1024] = "";
  int64_t bad_seq = 0;
  int npos = 0, ok;
  int code = cli_parse(argc, argv, ctx, opts,
                       "cairn verify [--key-file FILE] [--anchor FILE] "
                       "[--write-anchor FILE] [--json]",
                       "Recomputes the hash of every event of the journal "
                       "and checks the chain;\nnames the first event that "
                       "was edited, deleted or moved. A keyed journal\nis "
                       "checked with its key (--key-file). --anchor also "
                       "catches deleted newest\nevents. Exit 1 when broken.",
                       &npos);
  if (code != 0)
    return code == 1 ? CLI_EXIT_OK : code;
  if (npos != 0) {
    cli_error("verify takes no arguments");
    return CLI_EXIT_USAGE;
  }
  /* From here every error ends, with --json, in a result line a script
   * can parse, as run's do. */
  if (anchor_in != NULL && (code = anchor_read(anchor_in, &a)) != 0)
    goto fail;
  code = cli_open_journal(ctx, 0, 1, &j);
  if (code != 0)
    goto fail;
  int rc = journal_verify(j, &vr, &err);
  if (rc != 0 && rc != CAIRN_E_CHAIN) {
    cli_error("%s", err.msg);
    code = cli_exit_for(rc);
    goto fail;
  }
  if (rc == CAIRN_E_CHAIN) {
    bad_seq = vr.first_bad_seq;
    snprintf(reason, sizeof reason, "%s", vr.reason);
  } else if (anchor_in != NULL) {
    code = anchor_check(j, &a, &vr, reason, sizeof reason, &bad_seq);
    if (code > 1)
      goto fail;
    /* a mismatch may only mean the wrong anchor: say so */
    size_t used = strlen(reason);
    if (code == 1 && other_journal(&a, journal_path(j)) &&
        used < sizeof reason)
      snprintf(reason + used, sizeof reason - used,
               " (the anchor was written for journal '%s', not this one)",
               a.journal);
  }
  ok = bad_seq == 0 && !vr.altered;
  if (ok && anchor_out != NULL &&
      (code = anchor_write(anchor_out, j, &vr)) != 0)
    goto fail;
  if (ctx->json) {
    json_t *v = json_pack("{s:s,s:b,s:I,s:I,s:s,s:b}", "journal",
                          journal_path(j), "ok", ok, "events",
                          (json_int_t)vr.events, "last_seq",
                          (json_int_t)vr.last_seq, "last_hash", vr.last_hash,
                          "keyed", vr.key_id[0] != '\0');
    if (!ok) {
      if (bad_seq != 0)
        json_object_set_new(v, "first_bad_seq", json_integer(bad_seq));
      json_object_set_new(v, "reason", json_string(reason));
    }
    cli_print_json(v);
    json_decref(v);
  } else if (ok) {
    printf("journal %s: chain ok%s, %lld events, last hash %.16s%s\n",
           journal_path(j), vr.key_id[0] ? " (keyed)" : "",
           (long long)vr.events, vr.last_hash,
           anchor_in != NULL ? ", anchor ok" : "");
  } else {
    /* the reason quotes what it found in the file, which anyone who
     * altered it chose: written so no byte of it acts on the terminal */
    char said[4 * sizeof reason];
    if (bad_seq == 0)
      printf("journal %s: chain ok but altered: %s\n", journal_path(j),
             cli_safe(reason, said, sizeof said));
    else
      printf("journal %s: chain broken at event %lld: %s\n",
             journal_path(j), (long long)bad_seq,
             cli_safe(reason, said, sizeof said));
  }
  journal_close(j);
  return ok ? CLI_EXIT_OK : CLI_EXIT_FAILED;
fail:
  cli_error_result(ctx, code);
  journal_close(j);
  return code;
}
