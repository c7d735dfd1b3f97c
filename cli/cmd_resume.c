/* cairn resume [RUN]: carry on an interrupted run from its journal. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

struct unfinished {
  char first[JOURNAL_RUN_ID_LEN];
  int n;
  char list[512];
};

static int collect_unfinished(const struct journal_run *run, void *ud)
{
  struct unfinished *u = ud;
  if (strcmp(run->status, JOURNAL_STATUS_SUCCEEDED) == 0 ||
      strcmp(run->status, JOURNAL_STATUS_FAILED) == 0 ||
      strcmp(run->status, JOURNAL_STATUS_ROLLED_BACK) == 0 ||
      strcmp(run->status, JOURNAL_STATUS_APPROVED) == 0 ||
      strcmp(run->status, JOURNAL_STATUS_REFUSED) == 0)
    return 0;
  if (u->n == 0)
    memcpy(u->first, run->id, sizeof u->first);
  if (u->n < 5) {
    size_t len = strlen(u->list);
    snprintf(u->list + len, sizeof u->list - len, "%s%s (%s)",
             u->n ? ", " : "", run->id, run->workflow);
  }
  u->n++;
  return 0;
}

static int is_answer(const char *v)
{
  return strcmp(v, "succeeded") == 0 || strcmp(v, "failed") == 0;
}

/* Splits the --assume answers: one plain ANSWER (for every step resume
 * asks about) at most, and PATH=ANSWER ones, each path once. *plain is
 * borrowed from l; CLI_EXIT_USAGE with the error printed. */
static int check_assume(const struct cli_list *l, const char **plain)
{
  *plain = NULL;
  for (size_t i = 0; i < l->n; i++) {
    const char *a = l->items[i], *eq = strrchr(a, '=');
    if (eq == NULL && is_answer(a)) {
      if (*plain) {
        cli_error("--assume %s and --assume %s: give one plain answer "
                  "(hint: '--assume PATH=ANSWER' decides one step)", *plain,
                  a);
        return CLI_EXIT_USAGE;
      }
      *plain = a;
      continue;
    }
    if (eq == NULL || eq == a || !is_answer(eq + 1)) {
      cli_error("--assume takes 'succeeded', 'failed' or "
                "'PATH=succeeded|failed', not '%s'", a);
      return CLI_EXIT_USAGE;
    }
    for (size_t k = 0; k < i; k++)
      if (strncmp(l->items[k], a, (size_t)(eq - a) + 1) == 0) {
        cli_error("--assume decides step '%.*s' twice ('%s' and '%s')",
                  (int)(eq - a), a, l->items[k], a);
        return CLI_EXIT_USAGE;
      }
  }
  return 0;
}

int cli_cmd_resume(int argc, char **argv, struct cli_ctx *ctx)
{
  const char *assume = NULL, *grace = NULL;
  int allow_changed = 0, allow_superseded = 0;
  struct cli_list sets = {0}, assumes = {0};
  const char **steps = NULL;
  size_t nsteps = 0;
  const struct cli_option opts[] = {
    {"assume", CLI_OPT_LIST, &assumes, "[PATH=]succeeded|failed",
     "decide the interrupted steps that cannot be re-run or probed "
     "(PATH=: that step alone; repeatable)"},
    {"allow-changed", CLI_OPT_FLAG, &allow_changed, NULL,
     "accept a workflow file changed since the run started (journaled)"},
    CLI_OPTION_ALLOW_SUPERSEDED(allow_superseded),
    CLI_OPTION_SECRET_SETS(sets),
    {"grace", CLI_OPT_STRING, &grace, "DURATION",
     "after Ctrl-C, how long running steps may finish (default 10s)"},
    {NULL, 0, NULL, NULL, NULL},
  };
  struct journal *j = NULL;
  struct journal_run run = {0};
  struct engine_workflow *wf = NULL;
  struct cli_progress *p = NULL;
  struct cairn_error err = {0};
  struct engine_options o;
  struct engine_result res;
  int npos = 0, code, have_run = 0, reported = 0;

  code = cli_parse(argc, argv, ctx, opts,
                   "cairn resume [RUN] [--assume [PATH=]succeeded|failed]... "
                   "[--allow-changed] [--allow-superseded] "
                   "[--set NAME=VALUE]... [--grace DURATION] [--json]",
                   "Carries on an interrupted run from where its journal says "
                   "it stopped.\nWithout RUN, the one unfinished run of this "
                   "journal.", &npos);
  if (code != 0) {
    cli_list_release(&sets);
    cli_list_release(&assumes);
    return code == 1 ? CLI_EXIT_OK : code;
  }
  if (npos > 1) {
    cli_error("resume takes at most one run id");
    code = CLI_EXIT_USAGE;
    goto out;
  }
  if ((code = check_assume(&assumes, &assume)) != 0)
    goto out;
  steps = calloc(assumes.n + 1, sizeof *steps);
  if (steps == NULL) {
    cli_error("out of memory");
    code = CLI_EXIT_FAILED;
    goto out;
  }
  for (size_t i = 0; i < assumes.n; i++)
    if (assumes.items[i] != assume)
      steps[nsteps++] = assumes.items[i];
  code = cli_open_journal(ctx, 0, 0, &j);
  if (code != 0)
    goto out;

  if (npos == 1) {
    code = cli_get_run(j, argv[1], &run);
    if (code != 0)
      goto out;
  } else {
    struct unfinished u = {0};
    if (journal_run_foreach(j, NULL, collect_unfinished, &u, &err) != 0) {
      cli_error("%s", err.msg);
      code = CLI_EXIT_FAILED;
      goto out;
    }
    if (u.n == 0) {
      cli_error("no unfinished run in this journal to resume");
      code = CLI_EXIT_USAGE;
      goto out;
    }
    if (u.n > 1) {
      cli_error("%d unfinished runs: %s (hint: name one, 'cairn resume "
                "RUN')", u.n, u.list);
      code = CLI_EXIT_USAGE;
      goto out;
    }
    code = cli_get_run(j, u.first, &run);
    if (code != 0)
      goto out;
  }
  have_run = 1;
  /* before the file: a record has none, a finished run needs none */
  if (engine_resume_status(run.id, run.status, 1, &err) != 0) {
    cli_error("%s", err.msg);
    code = CLI_EXIT_USAGE;
    goto out;
  }
  if ((code = cli_run_workflow(&run, "resume", &wf)) != 0)
    goto out;
  p = cli_progress_create(ctx);
  if (p == NULL) {
    code = CLI_EXIT_FAILED;
    goto out;
  }
  code = cli_run_options(&o, grace, p, ctx);
  if (code != 0)
    goto out;
  o.assume = assume;
  o.assume_steps = steps;
  o.nassume_steps = nsteps;
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
  cli_list_release(&assumes);
  free(steps);
  return code;
}
