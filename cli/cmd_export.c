/* cairn export: every run and every event of the journal, for shipping to
 * another system, as JSON lines or CSV (RFC 4180). Read-only; secrets are
 * already redacted in the journal and export adds nothing to it. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/since.h"
#include "common/file.h"

/* The CSV columns: the event's first, then the run's. A run row fills
 * "run" with its id and the run columns; an event row the event columns. */
static const char *const csv_columns[] = {
  "type", "seq", "run", "kind", "state", "attempt", "time_ms", "payload",
  "prev_hash", "hash", "workflow", "file", "file_sha256", "env", "release",
  "params", "status", "actor", "parent", "created_ms", "updated_ms",
  "finished_ms",
};
#define NCOLS (sizeof csv_columns / sizeof csv_columns[0])

struct export {
  FILE *out;
  int csv;
  int64_t since_ms;
  json_t *runs; /* array, newest first as the journal lists them */
  int64_t nruns, nevents;
};

/* One CSV field, quoted when it holds a comma, a quote or a line break. */
static void csv_field(FILE *f, const char *s, int last)
{
  if (strpbrk(s, ",\"\r\n") != NULL) {
    fputc('"', f);
    for (; *s; s++) {
      if (*s == '"')
        fputc('"', f);
      fputc(*s, f);
    }
    fputc('"', f);
  } else {
    fputs(s, f);
  }
  fputs(last ? "\r\n" : ",", f);
}

/* Writes v (an object whose keys are csv_columns) as one CSV record. */
static void csv_record(FILE *f, json_t *v)
{
  for (size_t i = 0; i < NCOLS; i++) {
    json_t *x = json_object_get(v, csv_columns[i]);
    char *text = NULL;
    char num[32];
    const char *s = "";

    if (x == NULL && strcmp(csv_columns[i], "run") == 0)
      x = json_object_get(v, "id"); /* a run row: its own id */
    if (json_is_string(x)) {
      s = json_string_value(x);
    } else if (json_is_integer(x)) {
      snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(x));
      s = num;
    } else if (x != NULL) {
      text = journal_canonical_json(x);
      s = text != NULL ? text : "";
    }
    csv_field(f, s, i + 1 == NCOLS);
    free(text);
  }
}

static void emit(struct export *e, json_t *v)
{
  if (e->csv) {
    csv_record(e->out, v);
  } else {
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

    if (s != NULL) {
      fputs(s, e->out);
      fputc('\n', e->out);
    }
    free(s);
  }
}

static int collect_run(const struct journal_run *r, void *ud)
{
  struct export *e = ud;
  /* cli_text: an edited row's bytes that are not UTF-8 as '?', so a
   * journal that fails verify can still be exported whole */
  json_t *v = json_pack(
      "{s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:O,s:o,s:o,s:o,s:I,s:I,s:I}", "type",
      "run", "id", cli_text(r->id), "workflow", cli_text(r->workflow),
      "file", cli_text(r->file), "file_sha256", cli_text(r->file_sha256),
      "env", cli_text(r->env), "release", cli_text(r->release),
      "params", r->params != NULL ? r->params : json_null(), "status",
      cli_text(r->status), "actor", cli_text(r->actor), "parent",
      cli_text(r->parent), "created_ms",
      (json_int_t)r->created_ms, "updated_ms", (json_int_t)r->updated_ms,
      "finished_ms", (json_int_t)r->finished_ms);

  if (v == NULL || json_array_append_new(e->runs, v) != 0)
    return CAIRN_E_NOMEM;
  return 0;
}

static int emit_event(const struct journal_event *ev, void *ud)
{
  struct export *e = ud;
  json_t *v;

  if (ev->time_ms < e->since_ms)
    return 0;
  v = json_pack("{s:s,s:I,s:o,s:o,s:o,s:i,s:I,s:O,s:o,s:o}", "type", "event",
                "seq", (json_int_t)ev->seq, "run", cli_text(ev->run_id),
                "kind", cli_text(ev->kind), "state", cli_text(ev->state),
                "attempt", ev->attempt, "time_ms", (json_int_t)ev->time_ms,
                "payload", ev->payload ? ev->payload : json_null(),
                "prev_hash", cli_text(ev->prev_hash), "hash",
                cli_text(ev->hash));
  if (v == NULL)
    return CAIRN_E_NOMEM;
  emit(e, v);
  json_decref(v);
  e->nevents++;
  return ferror(e->out) ? CAIRN_E_IO : 0;
}

int cli_cmd_export(int argc, char **argv, struct cli_ctx *ctx)
{
  const char *since = NULL, *format = "jsonl", *output = NULL;
  const struct cli_option opts[] = {
    {"since", CLI_OPT_STRING, &since, "DATE|DURATION",
     "only runs created and events since then (2026-11-22, "
     "2026-11-22T10:00[:05][Z] in UTC, or 7d ago)"},
    {"format", CLI_OPT_STRING, &format, "jsonl|csv",
     "JSON lines (default) or CSV with a header line"},
    {"o", CLI_OPT_STRING, &output, "FILE",
     "write to FILE (mode 0600) instead of standard output"},
    {NULL, 0, NULL, NULL, NULL},
  };
  struct export e = {0};
  struct journal *j = NULL;
  struct journal_run_filter f = {0};
  struct cairn_error err = {0};
  struct cairn_out out = {0};
  int npos = 0, rc = 0;
  int code = cli_parse(argc, argv, ctx, opts,
                       "cairn export [--since DATE|DURATION] "
                       "[--format jsonl|csv] [-o FILE]",
                       "Writes every run (oldest first), then every event in "
                       "sequence order, for\nshipping to another system. "
                       "Reads the journal only.", &npos);
  if (code != 0)
    return code == 1 ? CLI_EXIT_OK : code;
  if (npos != 0) {
    cli_error("export takes no arguments (usage: cairn export [--since "
              "DATE|DURATION] [--format jsonl|csv] [-o FILE])");
    return CLI_EXIT_USAGE;
  }
  if (ctx->json) {
    cli_error("export has no --json (hint: --format jsonl is JSON lines)");
    return CLI_EXIT_USAGE;
  }
  if (strcmp(format, "jsonl") != 0 && strcmp(format, "csv") != 0) {
    cli_error("unknown export format '%s' (use jsonl or csv)", format);
    return CLI_EXIT_USAGE;
  }
  e.csv = strcmp(format, "csv") == 0;
  if (since != NULL &&
      cli_since_parse(since, CLI_SINCE_UTC, &e.since_ms) != 0)
    return CLI_EXIT_USAGE;
  code = cli_open_journal(ctx, 0, 1, &j);
  if (code != 0)
    return code;
  e.out = stdout;
  /* -o: written beside FILE and renamed over it once whole, so an export
   * that fails half way leaves FILE as it was, not cut short */
  if (output != NULL) {
    if (cairn_out_begin(&out, output, &err) != 0) {
      cli_error("%s", err.msg);
      journal_close(j);
      return CLI_EXIT_USAGE;
    }
    e.out = out.f;
  }
  e.runs = json_array();
  f.since_ms = e.since_ms;
  rc = e.runs != NULL ? journal_run_foreach(j, &f, collect_run, &e, &err)
                      : CAIRN_E_NOMEM;
  if (rc == 0 && e.csv) {
    for (size_t i = 0; i < NCOLS; i++)
      csv_field(e.out, csv_columns[i], i + 1 == NCOLS);
  }
  /* The journal lists runs newest first; oldest first reads as history. */
  for (size_t i = rc == 0 ? json_array_size(e.runs) : 0; i > 0; i--)
    emit(&e, json_array_get(e.runs, i - 1));
  if (rc == 0)
    rc = journal_event_foreach(j, NULL, 0, emit_event, &e, &err);
  if (rc == CAIRN_E_NOMEM || rc == CAIRN_E_IO)
    cli_error("cannot export journal '%s': %s", journal_path(j),
              rc == CAIRN_E_IO ? strerror(errno) : "out of memory");
  else if (rc != 0)
    cli_error("%s", err.msg);
  if (output == NULL && fflush(e.out) != 0 && rc == 0) {
    cli_error("cannot write 'standard output': %s", strerror(errno));
    rc = CAIRN_E_IO;
  }
  if (output != NULL && rc != 0) {
    cairn_out_abort(&out);
  } else if (output != NULL &&
             (rc = cairn_out_commit(&out, 0600, &err)) != 0) {
    cli_error("%s", err.msg);
  }
  json_decref(e.runs);
  journal_close(j);
  return rc == 0 ? CLI_EXIT_OK : cli_exit_for(rc);
}
