/* cairn status [RUN]: what is in progress, or where one run stands. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

struct sctx {
  struct cli_ctx *ctx;
  struct journal *j;
  json_t *seen; /* "workflow\nenv" -> true */
  int n;
};

static int status_line(const struct journal_run *r, void *ud)
{
  struct sctx *s = ud;
  char key[600], t[32];
  const char *st = cli_run_status(s->j, r);
  int unfinished = strcmp(st, JOURNAL_STATUS_SUCCEEDED) != 0 &&
                   strcmp(st, JOURNAL_STATUS_FAILED) != 0;

  snprintf(key, sizeof key, "%s\n%s", r->workflow, r->env);
  /* The newest run of each (workflow, env), and every unfinished one. */
  if (json_object_get(s->seen, key) && !unfinished)
    return 0;
  json_object_set_new(s->seen, key, json_true());
  if (s->ctx->json) {
    json_t *v = cli_run_json(s->j, r);
    cli_print_json(v);
    json_decref(v);
  } else {
    printf("%-20s %-8s %-11s %s  %s  %s\n", r->workflow,
           *r->env ? r->env : "-", st, r->id,
           cli_time(r->created_ms, t, sizeof t), r->actor);
  }
  s->n++;
  return 0;
}

int cli_cmd_status(int argc, char **argv, struct cli_ctx *ctx)
{
  static const struct cli_option opts[] = {{NULL, 0, NULL, NULL, NULL}};
  struct journal *j = NULL;
  struct cairn_error err = {0};
  int npos = 0;
  int code = cli_parse(argc, argv, ctx, opts, "cairn status [RUN] [--json]",
                       "Without RUN: the latest run of each workflow and "
                       "environment, and every\nunfinished run. With RUN: "
                       "where that run stands and what to do next.", &npos);
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
    struct sctx s = {ctx, j, json_object(), 0};
    if (journal_run_foreach(j, NULL, status_line, &s, &err) != 0) {
      cli_error("%s", err.msg);
      code = CLI_EXIT_FAILED;
    } else if (s.n == 0 && !ctx->json) {
      printf("no runs\n");
    }
    json_decref(s.seen);
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
  if (journal_replay(j, run.id, &rp, &err) != 0) {
    cli_error("%s", err.msg);
    journal_run_release(&run);
    journal_close(j);
    return CLI_EXIT_FAILED;
  }
  const char *st = cli_run_status(j, &run);
  if (ctx->json) {
    json_t *v = cli_run_json(j, &run);
    json_object_set_new(v, "current", json_string(rp.current ? rp.current
                                                             : ""));
    cli_print_json(v);
    json_decref(v);
  } else {
    printf("run %s (%s%s%s): %s", run.id, run.workflow, *run.env ? ", " : "",
           run.env, st);
    if (rp.current && strcmp(rp.current, JOURNAL_ROLLBACK) == 0)
      printf(", rolling back");
    else if (rp.current && *rp.current)
      printf(", in state '%s'", rp.current);
    printf("\n");
    if (strcmp(st, JOURNAL_STATUS_INTERRUPTED) == 0)
      printf("continue it with 'cairn resume %s'\n", run.id);
    else if (strcmp(st, JOURNAL_STATUS_ROLLBACK_FAILED) == 0)
      printf("an undo failed (see 'cairn show %s'); fix the cause, then "
             "'cairn resume %s' retries it and the rest\n", run.id, run.id);
  }
  journal_replay_release(&rp);
  journal_run_release(&run);
  journal_close(j);
  return CLI_EXIT_OK;
}
