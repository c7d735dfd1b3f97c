/* cairn promote FILE --to ENV: check the gates the journal must satisfy
 * (a succeeded run in the environment before, approvals), then run; or
 * --through ENV: every environment of the `after` chain in order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

/* One environment: the gates, then the run. Returns an exit code; *rel
 * gets the release promoted (for the next environment of a chain). */
static int promote_one(struct cli_ctx *ctx, struct journal *j,
                       const struct engine_workflow *wf, const char *env,
                       const char *release, const struct cli_list *sets,
                       struct cli_progress *p, char *rel, size_t nrel)
{
  struct cairn_error err = {0};
  struct engine_gate g;
  struct engine_options o;
  struct engine_result res;
  char actor[300], relset[300];
  int rc = engine_promotion_check(j, wf, env, release, &g, &err);
  if (rc != 0) {
    cli_error("%s", err.msg);
    return cli_exit_for(rc);
  }
  snprintf(rel, nrel, "%s", g.release);
  cli_actor(actor, sizeof actor);
  if (g.refused) {
    rc = engine_promotion_refuse(j, wf, env, &g, actor, &err);
    if (rc != 0) {
      cli_error("%s", err.msg);
      return cli_exit_for(rc);
    }
    if (ctx->json) {
      json_t *v = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:i}", "kind",
                            "refused", "workflow", wf->name, "env", env,
                            "release", g.release, "gate", g.gate, "reason",
                            g.reason, "exit_code", CLI_EXIT_GATE);
      cli_print_json(v);
      json_decref(v);
    }
    cli_error("promotion to %s refused: %s", env, g.reason);
    return CLI_EXIT_GATE;
  }
  int code = cli_run_options(&o, NULL, p, ctx);
  if (code != 0)
    return code;
  const char **all = calloc(sets->n + 1, sizeof *all);
  if (all == NULL) {
    cli_error("out of memory");
    return CLI_EXIT_FAILED;
  }
  for (size_t i = 0; i < sets->n; i++)
    all[i] = sets->items[i];
  size_t n = sets->n;
  if (engine_workflow_param(wf, "release")) {
    /* The release the gates passed is the one that runs. */
    snprintf(relset, sizeof relset, "release=%s", g.release);
    all[n++] = relset;
  }
  o.env = env;
  o.sets = all;
  o.nsets = n;
  o.parent = g.parent[0] ? g.parent : NULL;
  if (!ctx->json)
    printf("promoting release %s to %s%s%s\n", g.release, env,
           g.parent[0] ? " from run " : "", g.parent);
  rc = engine_run(j, wf, &o, &res, &err);
  free(all);
  if (rc != 0) {
    cli_error("%s", err.msg);
    return cli_exit_for(rc);
  }
  return cli_progress_result(p, &res, journal_path(j));
}

int cli_cmd_promote(int argc, char **argv, struct cli_ctx *ctx)
{
  const char *to = NULL, *through = NULL, *release = NULL;
  struct cli_list sets = {0};
  const struct cli_option opts[] = {
    {"to", CLI_OPT_STRING, &to, "ENV", "the environment to promote to"},
    {"through", CLI_OPT_STRING, &through, "ENV",
     "promote through the 'after' chain from its root up to ENV"},
    {"release", CLI_OPT_STRING, &release, "RELEASE",
     "the release (default: the one live in the environment before)"},
    {"set", CLI_OPT_LIST, &sets, "NAME=VALUE", "set a param (repeatable)"},
    {NULL, 0, NULL, NULL, NULL},
  };
  struct engine_workflow *wf = NULL;
  struct journal *j = NULL;
  struct cli_progress *p = NULL;
  struct cairn_error err = {0};
  const char *chain[64];
  size_t nchain = 0;
  int npos = 0, code;

  code = cli_parse(argc, argv, ctx, opts,
                   "cairn promote FILE (--to ENV | --through ENV) "
                   "[--release R] [--set NAME=VALUE]... [--json]",
                   "Checks the gates of ENV against the journal (after: the "
                   "same release succeeded\nin the environment before; "
                   "approvals: enough 'cairn approve' from distinct\n"
                   "actors) and runs the workflow there with that run as "
                   "its parent. A refused\ngate is journaled and exits 5 "
                   "without starting a run.", &npos);
  if (code != 0) {
    cli_list_release(&sets);
    return code == 1 ? CLI_EXIT_OK : code;
  }
  if (npos != 1 || (to == NULL) == (through == NULL)) {
    cli_error("promote needs one workflow file and one of --to ENV or "
              "--through ENV");
    code = CLI_EXIT_USAGE;
    goto out;
  }
  if (engine_workflow_load(&wf, argv[1], &err) != 0) {
    cli_workflow_error(&err);
    code = CLI_EXIT_USAGE;
    goto out;
  }
  const char *target = to ? to : through;
  const struct engine_environment *e = engine_workflow_env(wf, target);
  if (e == NULL) {
    engine_workflow_env_check(wf, target, &err);
    cli_error("%s", err.msg);
    code = CLI_EXIT_USAGE;
    goto out;
  }
  /* The chain, root first (the loader refuses cycles). */
  for (; e && nchain < sizeof chain / sizeof chain[0];
       e = to ? NULL : engine_workflow_env(wf, e->after))
    chain[nchain++] = e->name;
  for (size_t i = 0; i < nchain / 2; i++) {
    const char *t = chain[i];
    chain[i] = chain[nchain - 1 - i];
    chain[nchain - 1 - i] = t;
  }
  json_t *params = NULL;
  if (engine_workflow_params(wf, sets.items, sets.n, &params, &err) != 0) {
    cli_error("%s", err.msg);
    code = CLI_EXIT_USAGE;
    goto out;
  }
  json_decref(params);
  p = cli_progress_create(ctx);
  if (p == NULL) {
    cli_error("out of memory");
    code = CLI_EXIT_FAILED;
    goto out;
  }
  code = cli_open_journal(ctx, 1, 0, &j);
  if (code != 0)
    goto out;
  char rel[256] = "";
  for (size_t i = 0; i < nchain && code == 0; i++)
    code = promote_one(ctx, j, wf, chain[i], i == 0 ? release : rel, &sets,
                       p, rel, sizeof rel);
out:
  cli_progress_destroy(p);
  journal_close(j);
  engine_workflow_destroy(wf);
  cli_list_release(&sets);
  return code;
}
