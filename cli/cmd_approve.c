/* cairn approve: approve a run waiting at an approval state, or a
 * promotion of a release to an environment (a journal-level record). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/proc.h"
#include "common/utf8.h"

int cli_cmd_approve(int argc, char **argv, struct cli_ctx *ctx)
{
  const char *workflow = NULL, *release = NULL, *comment = NULL;
  int allow_changed = 0, allow_superseded = 0;
  const struct cli_option opts[] = {
    {"workflow", CLI_OPT_STRING, &workflow, "NAME",
     "a promotion approval: the workflow's name"},
    {"release", CLI_OPT_STRING, &release, "RELEASE",
     "a promotion approval: the release approved"},
    {"comment", CLI_OPT_STRING, &comment, "TEXT", "why (journaled)"},
    {"allow-changed", CLI_OPT_FLAG, &allow_changed, NULL,
     "a run: approve although its workflow file changed since it started "
     "(resume will need it too)"},
    {"allow-superseded", CLI_OPT_FLAG, &allow_superseded, NULL,
     "a run: approve although a newer run of its workflow and environment "
     "has succeeded since (resume will need it too)"},
    {NULL, 0, NULL, NULL, NULL},
  };
  struct journal *j = NULL;
  struct cairn_error err = {0};
  char actor[300], user[300], id[JOURNAL_RUN_ID_LEN];
  int npos = 0, rc;
  int code = cli_parse(argc, argv, ctx, opts,
                       "cairn approve RUN [--comment TEXT] [--allow-changed] "
                       "[--allow-superseded] [--json]\n"
                       "   or: cairn approve ENV --workflow NAME --release R "
                       "[--comment TEXT] [--json]",
                       "Journals an approval by you (CAIRN_ACTOR, else "
                       "user@host): of a run waiting at an\napproval state "
                       "(one of its approvers, when it lists some; once it "
                       "has enough,\n'cairn resume RUN' goes on), or of "
                       "promoting release R of workflow NAME to ENV\n"
                       "(counted by 'cairn promote' and approval states).",
                       &npos);
  if (code != 0)
    return code == 1 ? CLI_EXIT_OK : code;
  if (npos != 1) {
    cli_error("approve needs one run id, or one environment with --workflow "
              "and --release");
    return CLI_EXIT_USAGE;
  }
  if ((workflow == NULL) != (release == NULL)) {
    cli_error("approve ENV needs both --workflow and --release");
    return CLI_EXIT_USAGE;
  }
  if (workflow && (allow_changed || allow_superseded)) {
    cli_error("approve ENV takes no --allow-changed or --allow-superseded: "
              "they are for approving a run");
    return CLI_EXIT_USAGE;
  }
  /* No workflow is named '' (the loader refuses it): such a record would
   * never count. An empty release does: it is the release of a workflow
   * without a release param. */
  if (workflow && *workflow == '\0') {
    cli_error("approve ENV needs a workflow name, not '' (hint: the 'name' "
              "of the workflow file)");
    return CLI_EXIT_USAGE;
  }
  /* journaled as JSON text, which cannot hold other bytes */
  {
    const char *text[][2] = {{"--workflow", workflow}, {"--release", release},
                             {"--comment", comment}, {"RUN or ENV", argv[1]}};
    for (size_t i = 0; i < sizeof text / sizeof text[0]; i++)
      if (text[i][1] != NULL && !cairn_utf8_valid(text[i][1])) {
        cli_error("approve: %s is not UTF-8 text, which the journal needs",
                  text[i][0]);
        return CLI_EXIT_USAGE;
      }
  }
  /* CAIRN_ACTOR is whatever the caller says: the account that typed the
   * command is journaled beside it when the two differ. */
  cairn_actor(NULL, actor, sizeof actor);
  cairn_proc_actor(user, sizeof user);
  code = cli_open_journal(ctx, 0, 0, &j);
  if (code != 0)
    return code;
  if (workflow) {
    rc = engine_approve_release(j, workflow, argv[1], release, actor, user,
                                comment, id, &err);
    if (rc == 0 && ctx->json) {
      json_t *v = json_pack("{s:s,s:s,s:s,s:s,s:s}", "record", id, "workflow",
                            workflow, "env", argv[1], "release", release,
                            "actor", actor);
      cli_print_json(v);
      json_decref(v);
    } else if (rc == 0) {
      /* "" is a release too: that of a workflow without a release param.
       * What the caller typed is shown, not obeyed, by the terminal. */
      char b1[1024], b2[1024], b3[1024], b4[1024];
      printf("approved release %s of %s for %s by %s (%s)\n",
             cli_safe(engine_release_shown(release), b1, sizeof b1),
             cli_safe(workflow, b2, sizeof b2),
             cli_safe(argv[1], b3, sizeof b3), cli_safe(actor, b4, sizeof b4),
             id);
    }
  } else {
    struct journal_run run = {0};
    struct engine_workflow *wf = NULL;
    struct engine_approved got;
    const struct engine_approve a = {actor, user, comment, allow_changed,
                                     allow_superseded};
    code = cli_get_run(j, argv[1], &run);
    /* before the file: a record has none, and a run that does not wait
     * needs none to be told so */
    if (code == 0 &&
        (rc = engine_approve_status(run.id, cli_run_status(j, &run),
                                    &err)) != 0) {
      cli_error("%s", err.msg);
      code = cli_exit_for(rc);
    }
    if (code == 0)
      code = cli_run_workflow(&run, "be approved", &wf);
    if (code != 0) {
      journal_run_release(&run);
      journal_close(j);
      return code;
    }
    rc = engine_approve_run(j, wf, run.id, &a, &got, &err);
    if (rc == 0 && ctx->json) {
      json_t *v = json_pack("{s:s,s:s,s:s,s:i,s:i,s:b}", "run", run.id,
                            "state", got.state, "actor", actor, "have",
                            got.have, "need", got.need, "again", got.again);
      cli_print_json(v);
      json_decref(v);
    } else if (rc == 0) {
      char b1[1024], b2[1024], then[300];
      int left = got.need - got.have;
      if (left <= 0)
        snprintf(then, sizeof then, "go on with 'cairn resume %s%s%s'",
                 run.id, allow_changed ? " --allow-changed" : "",
                 allow_superseded ? " --allow-superseded" : "");
      else
        snprintf(then, sizeof then, "it waits for %d more approval%s", left,
                 left == 1 ? "" : "s");
      printf("approved run %s at state '%s' by %s%s (%d of %d); %s\n",
             run.id, cli_safe(got.state, b1, sizeof b1),
             cli_safe(actor, b2, sizeof b2),
             got.again ? " again: an actor counts once" : "", got.have,
             got.need, then);
    }
    journal_run_release(&run);
    engine_workflow_destroy(wf);
  }
  if (rc != 0) {
    cli_error("%s", err.msg);
    code = cli_exit_for(rc);
  }
  journal_close(j);
  return code;
}
