/* cairn validate FILE: load a workflow strictly and report. */
#include <stdio.h>

#include "cli/cli.h"

int cli_cmd_validate(int argc, char **argv, struct cli_ctx *ctx)
{
  static const struct cli_option opts[] = {{NULL, 0, NULL, NULL, NULL}};
  struct engine_workflow *wf = NULL;
  struct cairn_error err = {0};
  int npos = 0;
  int code = cli_parse(argc, argv, ctx, opts, "cairn validate FILE [--json]",
                       "Checks FILE strictly (keys, transitions, "
                       "reachability, durations, templates, action inputs)\n"
                       "and prints 'ok' or the first error with "
                       "file:line:column.", &npos);
  if (code != 0)
    return code == 1 ? CLI_EXIT_OK : code;
  if (npos != 1) {
    cli_error("validate needs one workflow file (usage: cairn validate "
              "FILE)");
    return CLI_EXIT_USAGE;
  }
  int rc = engine_workflow_load(&wf, argv[1], &err);
  if (ctx->json) {
    json_t *v = rc == 0
        ? json_pack("{s:s,s:b,s:s,s:i,s:s}", "file", argv[1], "ok", 1,
                    "name", wf->name, "states", (int)wf->nstates, "sha256",
                    wf->sha256)
        : json_pack("{s:s,s:b,s:s}", "file", argv[1], "ok", 0, "error",
                    err.msg);
    cli_print_json(v);
    json_decref(v);
  } else if (rc == 0) {
    printf("%s: ok (workflow '%s', %zu state%s)\n", argv[1], wf->name,
           wf->nstates, wf->nstates == 1 ? "" : "s");
  } else {
    cli_workflow_error(&err, NULL);
  }
  engine_workflow_destroy(wf);
  return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
}
