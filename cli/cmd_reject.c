/* cairn reject RUN: say no to a run waiting at an approval state. The
 * rejection is journaled and the run goes on at once down its failure
 * path, so it ends here rather than waiting for ever. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/proc.h"
#include "common/utf8.h"

int cli_cmd_reject(int argc, char **argv, struct cli_ctx *ctx)
{
  const char *comment = NULL, *grace = NULL;
  int allow_changed = 0, allow_superseded = 0;
  struct cli_list sets = {0};
  const struct cli_option opts[] = {
    {"comment", CLI_OPT_STRING, &comment, "TEXT", "why (journaled)"},
    {"allow-changed", CLI_OPT_FLAG, &allow_changed, NULL,
     "accept a workflow file changed since the run started (journaled)"},
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
  struct engine_reject rej = {NULL, NULL};
  char user[300];
  int npos = 0, code, have_run = 0, reported = 0;

  code = cli_parse(argc, argv, ctx, opts,
                   "cairn reject RUN [--comment TEXT] [--allow-changed] "
                   "[--allow-superseded] [--set NAME=VALUE]... "
                   "[--grace DURATION] [--json]",
                   "Rejects a run waiting at an approval state, as you "
                   "(CAIRN_ACTOR, else user@host;\none of the state's "
                   "approvers when it lists some). The rejection is "
                   "journaled and\nthe state fails at once: the run takes "
                   "its failure path, which undoes what it\ndid (exit 0 once "
                   "it has ended for the rejection; 1 when its failure path "
                   "failed\ntoo; 6 when an undo failed: resume it).",
                   &npos);
  if (code != 0) {
    cli_list_release(&sets);
    return code == 1 ? CLI_EXIT_OK : code;
  }
  if (npos != 1) {
    cli_error("reject needs one run id (usage: cairn reject RUN "
              "[--comment TEXT])");
    code = CLI_EXIT_USAGE;
    goto out;
  }
  if (comment && !cairn_utf8_valid(comment)) {
    /* journaled as JSON text, which cannot hold other bytes */
    cli_error("reject: --comment is not UTF-8 text, which the journal "
              "needs");
    code = CLI_EXIT_USAGE;
    goto out;
  }
  code = cli_open_journal(ctx, 0, 0, &j);
  if (code != 0)
    goto out;
  code = cli_get_run(j, argv[1], &run);
  if (code != 0)
    goto out;
  have_run = 1;
  /* before the file: a record has none, and a run that does not wait
   * needs none to be told so */
  if (engine_reject_status(run.id, cli_run_status(j, &run), &err) != 0) {
    cli_error("%s", err.msg);
    code = CLI_EXIT_USAGE;
    goto out;
  }
  if ((code = cli_run_workflow(&run, "be rejected", &wf)) != 0)
    goto out;
  p = cli_progress_create(ctx);
  if (p == NULL) {
    code = CLI_EXIT_FAILED;
    goto out;
  }
  code = cli_run_options(&o, grace, p, ctx);
  if (code != 0)
    goto out;
  /* CAIRN_ACTOR is whatever the caller says: the account that typed the
   * command is journaled beside it when the two differ. */
  cairn_proc_actor(user, sizeof user);
  rej.user = user;
  rej.comment = comment;
  o.reject = &rej;
  o.allow_changed = allow_changed;
  o.allow_superseded = allow_superseded;
  o.sets = sets.items;
  o.nsets = sets.n;
  int rc = engine_resume(j, wf, run.id, &o, &res, &err);
  if (rc != 0) {
    cli_error("%s", err.msg);
    code = cli_exit_for(rc);
    goto out;
  }
  cli_progress_rejecting(p);
  code = cli_progress_result(p, &res, journal_path(j));
  reported = 1;
out:
  if (!reported)
    cli_error_result(ctx, code);
  if (have_run)
    journal_run_release(&run);
  cli_progress_destroy(p);
  engine_workflow_destroy(wf);
  journal_close(j);
  cli_list_release(&sets);
  return code;
}
