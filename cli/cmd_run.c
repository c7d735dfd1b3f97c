/* cairn run FILE: start a new run of a workflow and follow it. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/duration.h"

/* Shared by run and resume: the engine options every run takes. */
int cli_run_options(struct engine_options *o, const char *grace,
                    struct cli_progress *p, struct cli_ctx *ctx)
{
  struct cairn_error err = {0};
  memset(o, 0, sizeof *o);
  o->grace_ms = -1; /* the default; --grace 0 is none */
  if (grace && cairn_duration_parse(grace, &o->grace_ms, &err) != 0) {
    cli_error("--grace: %s", err.msg);
    return CLI_EXIT_USAGE;
  }
  o->observe = cli_progress_observe;
  o->observed = cli_progress_observed;
  o->tick = cli_progress_tick;
  o->tick_ms = ctx->tty && !ctx->json ? 200 : 0;
  o->ud = p;
  return 0;
}

/* An environment with gates (after, approvals) takes releases only
 * through `cairn promote`, which checks them and records the run they
 * came from: a plain run there would skip both, and then count as the
 * gate's evidence for the environment after it. 0, or CLI_EXIT_GATE with
 * the error printed. */
static int gated(const struct engine_workflow *wf, const char *env,
                 const char *file)
{
  const struct engine_environment *e = env ? engine_workflow_env(wf, env)
                                           : NULL;
  char gates[300];
  int n;

  if (e == NULL || (e->after == NULL && e->approvals <= 0))
    return 0;
  n = snprintf(gates, sizeof gates, "%s%s", e->after ? "after " : "",
               e->after ? e->after : "");
  if (e->approvals > 0 && n >= 0 && (size_t)n < sizeof gates)
    snprintf(gates + n, sizeof gates - (size_t)n, "%s%d approval%s",
             n ? ", " : "", e->approvals, e->approvals == 1 ? "" : "s");
  cli_error("environment '%s' is gated (%s): a release goes there only "
            "through promote, which checks the gates (hint: cairn promote "
            "%s --to %s [--release R])", env, gates, file, env);
  return CLI_EXIT_GATE;
}

int cli_cmd_run(int argc, char **argv, struct cli_ctx *ctx)
{
  const char *env = NULL, *grace = NULL;
  struct cli_list sets = {0};
  const struct cli_option opts[] = {
    {"env", CLI_OPT_STRING, &env, "NAME", "the environment to deploy to"},
    {"set", CLI_OPT_LIST, &sets, "NAME=VALUE", "set a param (repeatable)"},
    {"grace", CLI_OPT_STRING, &grace, "DURATION",
     "after Ctrl-C, how long running steps may finish (default 10s)"},
    {NULL, 0, NULL, NULL, NULL},
  };
  struct engine_workflow *wf = NULL;
  struct journal *j = NULL;
  struct cli_progress *p = NULL;
  struct cairn_error err = {0};
  struct engine_options o;
  struct engine_result res;
  json_t *params = NULL;
  int npos = 0, code, reported = 0;

  code = cli_parse(argc, argv, ctx, opts,
                   "cairn run FILE [--env NAME] [--set NAME=VALUE]... "
                   "[--grace DURATION] [--json]",
                   "Runs the workflow in FILE to its end, journaling every "
                   "step before it acts.\nInterrupt it with Ctrl-C and carry "
                   "on with 'cairn resume'.", &npos);
  if (code != 0) {
    cli_list_release(&sets);
    return code == 1 ? CLI_EXIT_OK : code;
  }
  if (npos != 1) {
    cli_error("run needs one workflow file (usage: cairn run FILE "
              "[--env NAME] [--set NAME=VALUE]... [--grace DURATION])");
    code = CLI_EXIT_USAGE;
    goto out;
  }
  /* Everything about the input is checked before the journal is opened,
   * so bad input never touches it. */
  if (engine_workflow_load(&wf, argv[1], &err) != 0) {
    cli_workflow_error(&err, NULL);
    code = CLI_EXIT_USAGE;
    goto out;
  }
  if (engine_workflow_env_check(wf, env, &err) != 0) {
    cli_error("%s", err.msg);
    code = CLI_EXIT_USAGE;
    goto out;
  }
  code = gated(wf, env, argv[1]);
  if (code != 0)
    goto out;
  if (engine_workflow_params(wf, sets.items, sets.n, &params, &err) != 0 ||
      engine_secrets_check(wf, params, &err) != 0) {
    cli_error("%s", err.msg);
    code = CLI_EXIT_USAGE;
    goto out;
  }
  p = cli_progress_create(ctx);
  if (p == NULL) {
    cli_error("out of memory");
    code = CLI_EXIT_FAILED;
    goto out;
  }
  code = cli_run_options(&o, grace, p, ctx);
  if (code != 0)
    goto out;
  o.env = env;
  o.sets = sets.items;
  o.nsets = sets.n;

  code = cli_open_journal(ctx, 1, 0, &j);
  if (code != 0)
    goto out;
  int rc = engine_run(j, wf, &o, &res, &err);
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
  json_decref(params);
  cli_progress_destroy(p);
  journal_close(j);
  engine_workflow_destroy(wf);
  cli_list_release(&sets);
  return code;
}
