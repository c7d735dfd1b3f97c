/* cairn history: every run, newest first, one line each. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/since.h"
#include "cli/table.h"

const char *cli_run_status(struct journal *j, const struct journal_run *run)
{
  struct journal_lock_holder h;
  int alive = 0;
  if (strcmp(run->status, JOURNAL_STATUS_RUNNING) != 0)
    return run->status;
  if (journal_lock_get(j, run->workflow, run->env, &h, &alive, NULL) == 0 &&
      alive && strcmp(h.run_id, run->id) == 0)
    return run->status;
  return JOURNAL_STATUS_INTERRUPTED; /* its engine is gone */
}

json_t *cli_run_json(struct journal *j, const struct journal_run *r)
{
  /* the row's text as cli_text gives it: an edited row may hold bytes
   * that are not UTF-8, and its run must not vanish from the output */
  return json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:O,s:I,s:I}",
                   "id", cli_text(r->id), "workflow", cli_text(r->workflow),
                   "env", cli_text(r->env), "release", cli_text(r->release),
                   "status", cli_text(cli_run_status(j, r)), "actor",
                   cli_text(r->actor), "parent", cli_text(r->parent), "file",
                   cli_text(r->file), "file_sha256",
                   cli_text(r->file_sha256), "params",
                   r->params ? r->params : json_null(),
                   "created_ms", (json_int_t)r->created_ms, "finished_ms",
                   (json_int_t)r->finished_ms);
}

/* What --status may name: the statuses of journal/events.h a run can be
 * shown with, then the promotion records history lists with the runs. */
static const char *const statuses[] = {
  JOURNAL_STATUS_SUCCEEDED,   JOURNAL_STATUS_FAILED,
  JOURNAL_STATUS_INTERRUPTED, JOURNAL_STATUS_RUNNING,
  JOURNAL_STATUS_WAITING,     JOURNAL_STATUS_ROLLED_BACK,
  JOURNAL_STATUS_ROLLBACK_FAILED, JOURNAL_STATUS_ABANDONED,
  JOURNAL_STATUS_REFUSED,     JOURNAL_STATUS_APPROVED,
};
#define NSTATUSES (sizeof statuses / sizeof statuses[0])

/* 1 when s is one of statuses[], else 0 after printing the error. */
static int status_known(const char *s)
{
  char list[256] = "";
  for (size_t i = 0; i < NSTATUSES; i++) {
    if (strcmp(s, statuses[i]) == 0)
      return 1;
    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
             i ? ", " : "", statuses[i]);
  }
  cli_error("--status: unknown status '%s' (hint: one of %s)", s, list);
  return 0;
}

struct hctx {
  struct cli_ctx *ctx;
  struct journal *j;
  const char *status; /* as shown: a dead engine's run is interrupted */
  long limit;
  int n;
  struct cli_table *table; /* without --json: the rows, printed at the end */
};

#define HISTORY_COLS 8
#define HISTORY_RIGHT (1u << 6) /* TOOK */

static int print_run(const struct journal_run *r, void *ud)
{
  struct hctx *h = ud;
  char t[32], d[32], wf[256], env[256], rel[256], actor[256], st[256];
  if (h->status && strcmp(cli_run_status(h->j, r), h->status) != 0)
    return 0;
  if (h->limit > 0 && h->n >= h->limit)
    return 1;
  if (h->ctx->json) {
    json_t *v = cli_run_json(h->j, r);
    cli_print_json(v);
    json_decref(v);
  } else {
    const char *row[HISTORY_COLS] = {
      r->id,
      cli_safe(r->workflow, wf, sizeof wf),
      *r->env ? cli_safe(r->env, env, sizeof env) : "-",
      *r->release ? cli_safe(r->release, rel, sizeof rel) : "-",
      cli_safe(cli_run_status(h->j, r), st, sizeof st),
      cli_time(r->created_ms, t, sizeof t),
      r->finished_ms ? cli_duration(r->finished_ms - r->created_ms, d,
                                    sizeof d)
                     : "-",
      cli_safe(r->actor, actor, sizeof actor),
    };
    cli_table_add(h->table, HISTORY_COLS, row);
  }
  h->n++;
  return 0;
}

int cli_cmd_history(int argc, char **argv, struct cli_ctx *ctx)
{
  const char *workflow = NULL, *env = NULL, *status = NULL, *release = NULL;
  const char *since = NULL;
  int64_t since_ms = 0;
  long limit = 0;
  const struct cli_option opts[] = {
    {"workflow", CLI_OPT_STRING, &workflow, "NAME", "only this workflow"},
    {"env", CLI_OPT_STRING, &env, "NAME", "only this environment"},
    {"release", CLI_OPT_STRING, &release, "RELEASE", "only this release"},
    {"status", CLI_OPT_STRING, &status, "STATUS",
     "only runs with this status (succeeded, failed, interrupted, running, "
     "waiting, rolled_back, rollback_failed, abandoned; refused and "
     "approved list "
     "promotion records)"},
    {"since", CLI_OPT_STRING, &since, "DATE|DURATION",
     "only runs started at or after DATE (YYYY-MM-DD[ HH:MM[:SS]], local "
     "time) or DURATION ago (7d, 12h)"},
    {"limit", CLI_OPT_INT, &limit, "N", "at most N runs (0, the default: all)"},
    {NULL, 0, NULL, NULL, NULL},
  };
  struct journal *j = NULL;
  struct cairn_error err = {0};
  int npos = 0;
  int code = cli_parse(argc, argv, ctx, opts,
                       "cairn history [--workflow W] [--env E] [--release R] "
                       "[--status S] [--since DATE|DURATION] [--limit N] "
                       "[--json]",
                       "Lists runs, newest first.", &npos);
  if (code != 0)
    return code == 1 ? CLI_EXIT_OK : code;
  if (npos != 0) {
    cli_error("history takes no arguments (hint: 'cairn show RUN' shows one "
              "run)");
    return CLI_EXIT_USAGE;
  }
  if (status && !status_known(status))
    return CLI_EXIT_USAGE;
  if (since && cli_since_parse(since, CLI_SINCE_LOCAL, &since_ms) != 0)
    return CLI_EXIT_USAGE;
  code = cli_open_journal(ctx, 0, 1, &j);
  if (code != 0)
    return code;
  /* Status and limit are applied to what is shown, since a run recorded
   * as running whose engine is gone is shown (and found) as
   * interrupted. */
  struct journal_run_filter f = {workflow, env, release, NULL, since_ms, 0};
  struct hctx h = {ctx, j, status, limit, 0, NULL};
  if (!ctx->json) {
    static const char *const head[HISTORY_COLS] = {
      "RUN", "WORKFLOW", "ENV", "RELEASE", "STATUS", "STARTED", "TOOK",
      "ACTOR"};
    h.table = cli_table_create(HISTORY_COLS, HISTORY_RIGHT);
    cli_table_add(h.table, HISTORY_COLS, head);
  }
  int rc = journal_run_foreach(j, &f, print_run, &h, &err);
  if (rc == 1)
    rc = 0;
  if (rc != 0) {
    cli_error("%s", err.msg);
    code = cli_exit_for(rc);
  } else if (h.n == 0 && !ctx->json) {
    printf("no runs\n");
  } else if (!ctx->json) {
    code = cli_table_print(h.table);
  }
  cli_table_destroy(h.table);
  journal_close(j);
  return code;
}
