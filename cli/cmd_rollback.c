/* cairn rollback RUN [--dry-run]: undo a succeeded run (or a failed one
 * that undid nothing) on request, or print the plan its journal implies. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

/* Prints the plan: one numbered line per undo, with its inputs. */
static void print_plan(struct cli_ctx *ctx, const struct journal_run *run,
                       const char *status, json_t *steps, int journaled)
{
  size_t i;
  json_t *st;

  if (ctx->json) {
    json_t *v = json_pack("{s:s,s:s,s:b,s:O}", "run", run->id, "status",
                          status, "journaled", journaled, "steps",
                          steps);
    cli_print_json(v);
    json_decref(v);
    return;
  }
  printf("run %s (%s, %s): %s\n", run->id, run->workflow, status,
         journaled ? "the journaled rollback plan"
                   : "a rollback would undo, in this order");
  if (json_array_size(steps) == 0)
    printf("  nothing to undo: no finished state has an undo\n");
  json_array_foreach(steps, i, st) {
    json_t *undo = json_object_get(st, "undo_inputs");
    char *in = undo ? json_dumps(undo, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    const char *e = json_string_value(json_object_get(st, "undo_error"));
    const char *progress = json_string_value(json_object_get(st, "progress"));
    printf("  %zu. %s: %s%s%s%s%s\n", i + 1,
           json_string_value(json_object_get(st, "path")),
           json_string_value(json_object_get(st, "adapter")),
           json_is_true(json_object_get(st, "cancelled"))
               ? " (its step was cancelled; undone to be safe)"
               : "",
           progress ? " [" : "", progress ? progress : "",
           progress ? "]" : "");
    if (in)
      printf("     with %s\n", in);
    else if (e)
      printf("     (its inputs do not resolve now: %s)\n", e);
    free(in);
  }
  printf("nothing was changed (dry run)\n");
}

int cli_cmd_rollback(int argc, char **argv, struct cli_ctx *ctx)
{
  const char *grace = NULL;
  int dry_run = 0, allow_changed = 0, allow_superseded = 0;
  struct cli_list sets = {0};
  const struct cli_option opts[] = {
    {"dry-run", CLI_OPT_FLAG, &dry_run, NULL,
     "print the plan the journal implies; change nothing"},
    {"allow-changed", CLI_OPT_FLAG, &allow_changed, NULL,
     "accept a workflow file changed since the run started"},
    CLI_OPTION_ALLOW_SUPERSEDED(allow_superseded),
    CLI_OPTION_SECRET_SETS(sets),
    {"grace", CLI_OPT_STRING, &grace, "DURATION",
     "after Ctrl-C, how long running undo steps may finish (default 10s)"},
    {NULL, 0, NULL, NULL, NULL},
  };
  struct journal *j = NULL;
  struct journal_run run = {0};
  struct engine_workflow *wf = NULL;
  struct cli_progress *p = NULL;
  struct cairn_error err = {0};
  struct engine_options o;
  struct engine_result res;
  json_t *steps = NULL;
  int npos = 0, code, have_run = 0, journaled = 0, reported = 0;

  code = cli_parse(argc, argv, ctx, opts,
                   "cairn rollback RUN [--dry-run] [--allow-changed] "
                   "[--allow-superseded] [--set NAME=VALUE]... "
                   "[--grace DURATION] [--json]",
                   "Undoes a succeeded run, a failed one that undid nothing "
                   "(on_failure: fail, a\nfail state), or an interrupted one "
                   "that no step was cut short in: the undo of\nevery "
                   "finished state, in reverse order of completion (parallel "
                   "branches in\nreverse order of declaration), planned from "
                   "the journal alone and journaled\nbefore the first undo "
                   "runs. With --dry-run, prints that plan and changes "
                   "nothing,\nand exits as the rollback would (refused: 2 or "
                   "4).", &npos);
  if (code != 0) {
    cli_list_release(&sets);
    return code == 1 ? CLI_EXIT_OK : code;
  }
  if (npos != 1) {
    cli_error("rollback needs one run id (usage: cairn rollback RUN "
              "[--dry-run])");
    code = CLI_EXIT_USAGE;
    goto out;
  }
  code = cli_open_journal(ctx, 0, dry_run, &j);
  if (code != 0)
    goto out;
  code = cli_get_run(j, argv[1], &run);
  if (code != 0)
    goto out;
  have_run = 1;
  if (journal_run_is_record(&run)) { /* it has no file to load */
    engine_resume_status(run.id, run.status, 1, &err);
    cli_error("%s", err.msg);
    code = CLI_EXIT_USAGE;
    goto out;
  }
  if ((code = cli_run_workflow(&run, "be rolled back", &wf)) != 0)
    goto out;
  if (dry_run) {
    struct cairn_error why = {0};
    int refused = 0;
    int rc = engine_rollback_plan(j, wf, run.id, allow_superseded, &steps,
                                  &journaled,
                                  &refused, &why, &err);
    if (rc != 0) {
      cli_error("%s", err.msg);
      code = cli_exit_for(rc);
      goto out;
    }
    /* the real rollback refuses a changed file without --allow-changed */
    if (refused == 0 && !allow_changed &&
        engine_changed(wf, run.id, run.file_sha256, ENGINE_ROLLBACK_CHANGED,
                       "roll back", &why) != 0)
      refused = CAIRN_E_CHANGED;
    if (strcmp(wf->sha256, run.file_sha256) != 0 && !ctx->json)
      printf("note: workflow file '%s' changed since the run started; the "
             "plan uses the undo steps it has now\n", wf->file);
    /* as status shows it: a killed engine's run is interrupted */
    print_plan(ctx, &run, cli_run_status(j, &run), steps, journaled);
    code = CLI_EXIT_OK;
    if (refused != 0) {
      /* what the real rollback would say now, and its exit code */
      cli_error("%s", why.msg);
      code = cli_exit_for(refused);
    }
    goto out;
  }
  p = cli_progress_create(ctx);
  if (p == NULL) {
    code = CLI_EXIT_FAILED;
    goto out;
  }
  code = cli_run_options(&o, grace, p, ctx);
  if (code != 0)
    goto out;
  o.allow_changed = allow_changed;
  o.allow_superseded = allow_superseded;
  o.sets = sets.items;
  o.nsets = sets.n;
  int rc = engine_rollback(j, wf, run.id, &o, &res, &err);
  if (rc != 0) {
    cli_error("%s", err.msg);
    code = cli_exit_for(rc);
    goto out;
  }
  code = cli_progress_result(p, &res, journal_path(j));
  reported = 1;
out:
  if (!reported)
    cli_error_result(ctx, code);
  json_decref(steps);
  if (have_run)
    journal_run_release(&run);
  cli_progress_destroy(p);
  engine_workflow_destroy(wf);
  journal_close(j);
  cli_list_release(&sets);
  return code;
}
