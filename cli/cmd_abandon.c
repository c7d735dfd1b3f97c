/* cairn abandon RUN: close a run nobody will carry on (a waiting one a
 * newer deploy replaced, a killed one cleaned up by hand) where it
 * stands, undoing nothing, so it no longer shows as in progress. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/proc.h"
#include "common/utf8.h"

int cli_cmd_abandon(int argc, char **argv, struct cli_ctx *ctx)
{
  const char *comment = NULL;
  const struct cli_option opts[] = {
    {"comment", CLI_OPT_STRING, &comment, "TEXT", "why (journaled)"},
    {NULL, 0, NULL, NULL, NULL},
  };
  struct journal *j = NULL;
  struct journal_run run = {0};
  struct cairn_error err = {0};
  struct engine_abandoned out;
  char actor[300], user[300];
  int npos = 0, rc;
  int code = cli_parse(argc, argv, ctx, opts,
                       "cairn abandon RUN [--comment TEXT] [--json]",
                       "Ends a run that waits at an approval, was interrupted "
                       "or whose rollback failed,\nwhere it stands: nothing "
                       "is undone and nothing more runs. It is journaled as "
                       "by\nyou (CAIRN_ACTOR, else user@host), and the run "
                       "ends abandoned. To undo what it\ndid instead: 'cairn "
                       "reject' (waiting) or 'cairn rollback' (interrupted).",
                       &npos);
  if (code != 0)
    return code == 1 ? CLI_EXIT_OK : code;
  if (npos != 1) {
    cli_error("abandon needs one run id (usage: cairn abandon RUN "
              "[--comment TEXT]; 'cairn status' lists runs in progress)");
    return CLI_EXIT_USAGE;
  }
  if (comment && !cairn_utf8_valid(comment)) {
    /* journaled as JSON text, which cannot hold other bytes */
    cli_error("abandon: --comment is not UTF-8 text, which the journal "
              "needs");
    return CLI_EXIT_USAGE;
  }
  /* CAIRN_ACTOR is whatever the caller says: the account that typed the
   * command is journaled beside it when the two differ. */
  cairn_actor(NULL, actor, sizeof actor);
  cairn_proc_actor(user, sizeof user);
  code = cli_open_journal(ctx, 0, 0, &j);
  if (code == 0)
    code = cli_get_run(j, argv[1], &run);
  if (code != 0) {
    journal_close(j);
    return code;
  }
  const struct engine_abandon a = {actor, user, comment};
  rc = engine_abandon(j, run.id, &a, &out, &err);
  if (rc != 0) {
    cli_error("%s", err.msg);
    code = cli_exit_for(rc);
  } else if (ctx->json) {
    json_t *v = json_pack("{s:s,s:s,s:s,s:s,s:s}", "run", run.id, "status",
                          JOURNAL_STATUS_ABANDONED, "was", out.was, "actor",
                          actor, "state", out.state);
    if (v && *out.newer)
      json_object_set_new(v, "superseded_by", json_string(out.newer));
    cli_print_json(v);
    json_decref(v);
  } else {
    char b1[1024], b2[512];
    printf("run %s abandoned by %s (it was %s%s%s%s): nothing was undone; "
           "what it did stays as it is ('cairn show %s' lists it)\n",
           run.id, cli_safe(actor, b1, sizeof b1), out.was,
           *out.state ? " at state '" : "",
           cli_safe(out.state, b2, sizeof b2), *out.state ? "'" : "",
           run.id);
  }
  journal_run_release(&run);
  journal_close(j);
  return code;
}
