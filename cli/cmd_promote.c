/* cairn promote FILE --to ENV: check the gates the journal must satisfy
 * (a succeeded run in the environment before, approvals), then run; or
 * --through ENV: every environment of the `after` chain in order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/proc.h"

/* The --set list a promotion runs with: the user's, then release=R when
 * the workflow has a release param (the release the gates passed is the
 * one that runs), checked as a run checks it: a release its param refuses
 * (a pattern) is an input error, said before anything is journaled. On 0,
 * *all (borrowing the user's strings and *relset) and *relset are the
 * caller's to free; otherwise an exit code, the error printed. */
static int promotion_sets(const struct engine_workflow *wf,
                          const struct cli_list *sets, const char *release,
                          const char ***all, size_t *n, char **relset)
{
  struct cairn_error err = {0};
  json_t *params = NULL;

  *relset = NULL;
  *n = sets->n;
  if ((*all = calloc(sets->n + 1, sizeof **all)) == NULL)
    goto nomem;
  for (size_t i = 0; i < sets->n; i++)
    (*all)[i] = sets->items[i];
  if (engine_workflow_param(wf, "release")) {
    size_t len = strlen("release=") + strlen(release) + 1;
    if ((*relset = malloc(len)) == NULL)
      goto nomem;
    snprintf(*relset, len, "release=%s", release);
    (*all)[(*n)++] = *relset;
  }
  int rc = engine_workflow_params(wf, *all, *n, &params, &err);
  json_decref(params);
  if (rc == 0)
    return 0;
  cli_error("%s", err.msg);
  free(*all);
  free(*relset);
  *all = NULL;
  *relset = NULL;
  return cli_exit_for(rc);
nomem:
  free(*all);
  *all = NULL;
  cli_error("out of memory");
  return CLI_EXIT_FAILED;
}

/* The gates of env for release (NULL: the one live before), into *g, and
 * the sets to run with (promotion_sets). Journals nothing. Returns 0 or an
 * exit code, the error printed. */
static int promotion_gates(struct journal *j, const struct engine_workflow *wf,
                           const char *env, const char *release,
                           const struct cli_list *sets, struct engine_gate *g,
                           const char ***all, size_t *n, char **relset)
{
  struct cairn_error err = {0};
  int rc = engine_promotion_check(j, wf, env, release, g, &err);
  if (rc != 0) {
    cli_error("%s", err.msg);
    return cli_exit_for(rc);
  }
  return promotion_sets(wf, sets, g->release, all, n, relset);
}

/* One environment: the gates, then the run. Returns an exit code, and
 * sets *reported once it printed its --json result line; *rel
 * gets the release promoted (for the next environment of a chain; the
 * caller frees it). *j is a stand-in (an empty journal in memory) while
 * *standin: the journal is created only once there is something to
 * journal, a refusal or a run, so an input error leaves none behind. */
static int promote_one(struct cli_ctx *ctx, struct journal **j, int *standin,
                       const struct engine_workflow *wf, const char *env,
                       const char *release, const struct cli_list *sets,
                       struct cli_progress *p, char **rel, int *reported)
{
  struct cairn_error err = {0};
  struct engine_gate g = {0};
  struct engine_options o;
  struct engine_result res;
  const char **all = NULL;
  char *relset = NULL, actor[300];
  size_t n = 0;
  int rc, code = promotion_gates(*j, wf, env, release, sets, &g, &all, &n,
                                 &relset);
  if (code == 0 && *standin) {
    /* Something will be journaled: create the journal and check again
     * there, so the gates decide on the journal that is written to. */
    journal_close(*j);
    *j = NULL;
    *standin = 0;
    free(all);
    free(relset);
    engine_gate_release(&g);
    all = NULL;
    relset = NULL;
    code = cli_open_journal(ctx, CLI_JOURNAL_CREATE, 0, j);
    if (code == 0)
      code = promotion_gates(*j, wf, env, release, sets, &g, &all, &n,
                             &relset);
  }
  if (code != 0)
    goto out;
  free(*rel);
  if ((*rel = strdup(g.release)) == NULL) {
    cli_error("out of memory");
    code = CLI_EXIT_FAILED;
    goto out;
  }
  cairn_actor(NULL, actor, sizeof actor);
  if (g.refused) {
    char record[JOURNAL_RUN_ID_LEN];
    rc = engine_promotion_refuse(*j, wf, env, &g, actor, record, &err);
    if (rc != 0) {
      cli_error("%s", err.msg);
      code = cli_exit_for(rc);
      goto out;
    }
    {
      char b1[8192]; /* the reason names releases and actors */
      cli_error("promotion to %s refused: %s", env,
                cli_safe(g.reason, b1, sizeof b1));
    }
    if (ctx->json) {
      /* the result line every --json command ends with */
      json_t *v = json_pack("{s:s,s:s,s:i,s:s,s:s,s:o,s:o,s:s,s:o}", "kind",
                            "result", "status", "refused", "exit_code",
                            CLI_EXIT_GATE, "record", record, "workflow",
                            wf->name, "env", cli_text(env), "release",
                            cli_text(g.release), "gate", g.gate, "reason",
                            cli_text(g.reason));
      cli_print_json(v);
      json_decref(v);
      *reported = 1;
    }
    code = CLI_EXIT_GATE;
    goto out;
  }
  /* Said before "promoting": the run would stop at the lock anyway
   * (engine_run takes it; a holder that appears in between is said
   * there, after the line). */
  if ((rc = journal_lock_check(*j, wf->name, env, &err)) != 0) {
    cli_error("%s", err.msg);
    code = cli_exit_for(rc);
    goto out;
  }
  /* Every event of the run will chain from the newest one: a damaged
   * end fails here, before anything says it is promoting. */
  rc = journal_tail_check(*j, &err);
  if (rc != 0) {
    cli_error("%s", err.msg);
    code = cli_exit_for(rc);
    goto out;
  }
  code = cli_run_options(&o, NULL, p, ctx);
  if (code != 0)
    goto out;
  if (g.note && ctx->json) {
    json_t *v = json_pack("{s:s,s:s,s:s}", "kind", "note", "env", env,
                          "message", g.note);
    cli_print_json(v);
    json_decref(v);
  } else if (g.note) {
    char b1[4096];
    printf("note: %s\n", cli_safe(g.note, b1, sizeof b1));
  }
  o.env = env;
  o.sets = all;
  o.nsets = n;
  o.parent = g.parent[0] ? g.parent : NULL;
  if (!ctx->json) {
    char b1[1024];
    printf("promoting release %s to %s%s%s\n",
           cli_safe(engine_release_shown(g.release), b1, sizeof b1), env,
           g.parent[0] ? " from run " : "", g.parent);
  }
  rc = engine_run(*j, wf, &o, &res, &err);
  if (rc != 0) {
    cli_error("%s", err.msg);
    code = cli_exit_for(rc);
    goto out;
  }
  code = cli_progress_result(p, &res, journal_path(*j));
  *reported = 1;
out:
  free(all);
  free(relset);
  engine_gate_release(&g);
  return code;
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
  const char **chain = NULL;
  char *rel = NULL;
  size_t nchain = 0;
  int npos = 0, code, rc, reported = 0;

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
  for (size_t i = 0; i < sets.n; i++)
    if (strncmp(sets.items[i], "release=", 8) == 0) {
      /* The release that runs is the one the gates checked. */
      cli_error("cannot --set release in promote: the release is the one "
                "the gates check (hint: use --release %s)",
                sets.items[i] + 8);
      code = CLI_EXIT_USAGE;
      goto out;
    }
  if (engine_workflow_load(&wf, argv[1], &err) != 0) {
    cli_workflow_error(&err, NULL);
    code = CLI_EXIT_USAGE;
    goto out;
  }
  const char *target = to ? to : through;
  const struct engine_environment *e = engine_workflow_env(wf, target);
  if (e == NULL) {
    if (wf->nenvs == 0)
      /* the check's hint (leave out --env) is for run, not promote */
      cli_error("workflow '%s' declares no environments, so there is "
                "nothing to promote to (hint: cairn run %s)", wf->name,
                argv[1]);
    else {
      engine_workflow_env_check(wf, target, &err);
      cli_error("%s", err.msg);
    }
    code = CLI_EXIT_USAGE;
    goto out;
  }
  /* A workflow without a release param runs release "" whatever
   * --release says: gating R and running "" would journal another
   * release than the one the gates passed. */
  if (release && *release && engine_workflow_param(wf, "release") == NULL) {
    char b1[1024];
    cli_error("workflow '%s' has no 'release' param, so each of its runs is "
              "release \"\": --release %s would check the gates of one "
              "release and run another (hint: leave out --release, or "
              "declare a 'release' param)", wf->name,
              cli_safe(release, b1, sizeof b1));
    code = CLI_EXIT_USAGE;
    goto out;
  }
  /* The chain, root first (the loader refuses cycles, so it ends). */
  if ((chain = calloc(wf->nenvs, sizeof *chain)) == NULL) {
    cli_error("out of memory");
    code = CLI_EXIT_FAILED;
    goto out;
  }
  for (; e && nchain < wf->nenvs;
       e = to ? NULL : engine_workflow_env(wf, e->after))
    chain[nchain++] = e->name;
  for (size_t i = 0; i < nchain / 2; i++) {
    const char *t = chain[i];
    chain[i] = chain[nchain - 1 - i];
    chain[nchain - 1 - i] = t;
  }
  json_t *params = NULL;
  if (engine_workflow_params(wf, sets.items, sets.n, &params, &err) != 0 ||
      engine_secrets_check(wf, params, &err) != 0) {
    json_decref(params);
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
  /* Without a journal the gates are checked on an empty one in memory:
   * promote_one creates the real one only to write to it. */
  code = cli_open_journal(ctx, CLI_JOURNAL_IF_ANY, 0, &j);
  if (code != 0)
    goto out;
  int standin = j == NULL;
  if (standin && (rc = journal_open(&j, ":memory:", JOURNAL_CREATE |
                                    JOURNAL_UNCHAINED, &err)) != 0) {
    cli_error("%s", err.msg);
    code = cli_exit_for(rc);
    goto out;
  }
  for (size_t i = 0; i < nchain && code == 0; i++) {
    reported = 0;
    code = promote_one(ctx, &j, &standin, wf, chain[i],
                       i == 0 ? release : rel, &sets, p, &rel, &reported);
  }
out:
  if (!reported)
    cli_error_result(ctx, code);
  free(chain);
  free(rel);
  cli_progress_destroy(p);
  journal_close(j);
  engine_workflow_destroy(wf);
  cli_list_release(&sets);
  return code;
}
