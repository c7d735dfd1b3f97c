/* cairn status [RUN]: what is in progress, or where one run stands. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/table.h"

struct sctx {
  struct cli_ctx *ctx;
  struct journal *j;
  json_t *rows; /* "workflow\nenv" -> {live run fields, in_progress} */
  json_t *order; /* keys, newest activity first */
};

/* Runs come newest first: the first succeeded one of a (workflow, env)
 * is what is live there (rolled back runs have status rolled_back; a
 * failed run leaves the previous one live); a running one with a live
 * engine is in progress. */
static int status_row(const struct journal_run *r, void *ud)
{
  struct sctx *s = ud;
  char key[600];
  if (journal_run_is_record(r))
    return 0;
  snprintf(key, sizeof key, "%s\n%s", r->workflow, r->env);
  json_t *row = json_object_get(s->rows, key);
  if (row == NULL) {
    row = json_pack("{s:o,s:o,s:n,s:b}", "workflow", cli_text(r->workflow),
                    "env", cli_text(r->env), "live", "in_progress", 0);
    json_object_set_new(s->rows, key, row);
    json_array_append_new(s->order, json_string(key));
  }
  const char *st = cli_run_status(s->j, r);
  if ((strcmp(st, JOURNAL_STATUS_RUNNING) == 0 ||
       strcmp(st, JOURNAL_STATUS_WAITING) == 0) &&
      !json_is_true(json_object_get(row, "in_progress"))) {
    json_object_set_new(row, "in_progress", json_true());
    json_object_set_new(row, "running_run", json_string(r->id));
  }
  /* Left unfinished and newer than what is live: someone has to resume it
   * (killed, interrupted) or fix an undo (rollback_failed). An older one
   * was superseded by the live run. */
  if ((strcmp(st, JOURNAL_STATUS_INTERRUPTED) == 0 ||
       strcmp(st, JOURNAL_STATUS_ROLLBACK_FAILED) == 0) &&
      json_is_null(json_object_get(row, "live")) &&
      json_object_get(row, "unfinished_run") == NULL) {
    json_object_set_new(row, "unfinished_run", json_string(r->id));
    json_object_set_new(row, "unfinished_status", json_string(st));
  }
  if (strcmp(st, JOURNAL_STATUS_SUCCEEDED) == 0 &&
      json_is_null(json_object_get(row, "live")))
    json_object_set_new(row, "live",
                        json_pack("{s:s,s:o,s:o,s:I,s:s}", "run", r->id,
                                  "release", cli_text(r->release), "actor",
                                  cli_text(r->actor),
                                  "finished_ms",
                                  (json_int_t)(r->finished_ms
                                                   ? r->finished_ms
                                                   : r->created_ms),
                                  "parent", r->parent));
  return 0;
}

#define STATUS_COLS 7

/* Prints the rows; returns 0 or the exit code of a table that failed. */
static int print_rows(struct sctx *s)
{
  size_t i;
  json_t *k;
  char t[32], wf[256], env_s[256], rel_s[256], actor[256];
  static const char *const head[STATUS_COLS] = {
    "WORKFLOW", "ENV", "RELEASE", "RUN", "DEPLOYED", "BY", "IN PROGRESS"};
  struct cli_table *table = NULL;
  int code = CLI_EXIT_OK;

  if (!s->ctx->json) {
    table = cli_table_create(STATUS_COLS, 0);
    cli_table_add(table, STATUS_COLS, head);
  }
  json_array_foreach(s->order, i, k) {
    json_t *row = json_object_get(s->rows, json_string_value(k));
    json_t *live = json_object_get(row, "live");
    if (!json_is_object(live))
      live = NULL;
    if (s->ctx->json) {
      cli_print_json(row);
      continue;
    }
    const char *env = json_string_value(json_object_get(row, "env"));
    const char *run = json_string_value(json_object_get(row, "running_run"));
    const char *left =
        json_string_value(json_object_get(row, "unfinished_run"));
    char unfinished[80];
    if (run == NULL && left != NULL) {
      snprintf(unfinished, sizeof unfinished, "%s (%s)", left,
               json_string_value(json_object_get(row, "unfinished_status")));
      run = unfinished;
    }
    const char *rel = json_string_value(json_object_get(live, "release"));
    const char *cells[STATUS_COLS] = {
      cli_safe(json_string_value(json_object_get(row, "workflow")), wf,
               sizeof wf),
      *env ? cli_safe(env, env_s, sizeof env_s) : "-",
      live ? (rel && *rel ? cli_safe(rel, rel_s, sizeof rel_s) : "-")
           : "(none)",
      live ? json_string_value(json_object_get(live, "run")) : "-",
      live ? cli_time(json_integer_value(json_object_get(live,
                                                         "finished_ms")),
                      t, sizeof t)
           : "-",
      live ? cli_safe(json_string_value(json_object_get(live, "actor")),
                      actor, sizeof actor)
           : "-",
      run ? run : "no",
    };
    cli_table_add(table, STATUS_COLS, cells);
  }
  if (!s->ctx->json)
    code = cli_table_print(table);
  cli_table_destroy(table);
  return code;
}

int cli_cmd_status(int argc, char **argv, struct cli_ctx *ctx)
{
  static const struct cli_option opts[] = {{NULL, 0, NULL, NULL, NULL}};
  struct journal *j = NULL;
  struct cairn_error err = {0};
  int npos = 0;
  int code = cli_parse(argc, argv, ctx, opts, "cairn status [RUN] [--json]",
                       "Without RUN: one line per workflow and environment: "
                       "the release live there\n(the last succeeded run not "
                       "rolled back), its run, when, by whom, and the run\n"
                       "in progress if any. With RUN: where that run stands "
                       "and what to do next.", &npos);
  if (code != 0)
    return code == 1 ? CLI_EXIT_OK : code;
  if (npos > 1) {
    cli_error("status takes at most one run id");
    return CLI_EXIT_USAGE;
  }
  code = cli_open_journal(ctx, 0, 1, &j);
  if (code != 0)
    return code;
  if (npos == 0) {
    struct sctx s = {ctx, j, json_object(), json_array()};
    int rc = journal_run_foreach_current(j, status_row, &s, &err);
    if (rc != 0) {
      cli_error("%s", err.msg);
      code = cli_exit_for(rc);
    } else if (json_array_size(s.order) == 0 && !ctx->json) {
      printf("no runs\n");
    } else {
      code = print_rows(&s);
    }
    json_decref(s.rows);
    json_decref(s.order);
    journal_close(j);
    return code;
  }

  struct journal_run run = {0};
  struct journal_replay rp = {0};
  code = cli_get_run(j, argv[1], &run);
  if (code != 0) {
    journal_close(j);
    return code;
  }
  int rc = journal_replay(j, run.id, &rp, &err);
  if (rc != 0) {
    cli_error("%s", err.msg);
    journal_run_release(&run);
    journal_close(j);
    return cli_exit_for(rc);
  }
  const char *st = cli_run_status(j, &run);
  if (ctx->json) {
    json_t *v = cli_run_json(j, &run);
    json_object_set_new(v, "current", json_string(rp.current ? rp.current
                                                             : ""));
    cli_print_json(v);
    json_decref(v);
  } else {
    char wf[256], env[256], cur[256];
    printf("run %s (%s%s%s): %s", run.id,
           cli_safe(run.workflow, wf, sizeof wf), *run.env ? ", " : "",
           cli_safe(run.env, env, sizeof env), st);
    if (rp.current && strcmp(rp.current, JOURNAL_ROLLBACK) == 0)
      printf(", rolling back");
    else if (rp.current && *rp.current)
      printf(", in state '%s'", cli_safe(rp.current, cur, sizeof cur));
    printf("\n");
    char newer[JOURNAL_RUN_ID_LEN] = "";
    if ((strcmp(st, JOURNAL_STATUS_WAITING) == 0 ||
         strcmp(st, JOURNAL_STATUS_INTERRUPTED) == 0 ||
         strcmp(st, JOURNAL_STATUS_ROLLBACK_FAILED) == 0) &&
        engine_superseded(j, run.id, "", 1, newer, &err) != 0)
      newer[0] = '\0'; /* a hint less, not a failure of status */
    if (newer[0] != '\0')
      /* what resume, rollback and reject would refuse */
      printf("run %s, started after it, has succeeded: going on with this "
             "one, or undoing it, would act under that deploy (add "
             "--allow-superseded to resume, rollback or reject if you mean "
             "it); 'cairn abandon %s' ends it where it stands\n", newer,
             run.id);
    else if (strcmp(st, JOURNAL_STATUS_WAITING) == 0)
      printf("continue it with 'cairn resume %s' once it is approved "
             "('cairn approve %s'), or end it with 'cairn reject %s'\n",
             run.id, run.id, run.id);
    else if (strcmp(st, JOURNAL_STATUS_INTERRUPTED) == 0 && !rp.rollback &&
             engine_cut_short(&rp) == NULL)
      /* nothing was cut short: what it did is known, and can be undone */
      printf("continue it with 'cairn resume %s', or undo what it did with "
             "'cairn rollback %s'\n", run.id, run.id);
    else if (strcmp(st, JOURNAL_STATUS_INTERRUPTED) == 0)
      printf("continue it with 'cairn resume %s'\n", run.id);
    else if (strcmp(st, JOURNAL_STATUS_ROLLBACK_FAILED) == 0)
      printf("an undo failed (see 'cairn show %s'); fix the cause, then "
             "'cairn resume %s' retries it and the rest (or, once what is "
             "left is dealt with by hand, 'cairn abandon %s' closes it)\n",
             run.id, run.id, run.id);
  }
  journal_replay_release(&rp);
  journal_run_release(&run);
  journal_close(j);
  return CLI_EXIT_OK;
}
