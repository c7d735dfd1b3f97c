/* cairn verify: recompute the journal's hash chain. */
#include <stdio.h>

#include "cli/cli.h"

int cli_cmd_verify(int argc, char **argv, struct cli_ctx *ctx)
{
  static const struct cli_option opts[] = {{NULL, 0, NULL, NULL, NULL}};
  struct journal *j = NULL;
  struct journal_verify_result vr = {0};
  struct cairn_error err = {0};
  int npos = 0;
  int code = cli_parse(argc, argv, ctx, opts, "cairn verify [--json]",
                       "Recomputes the hash of every event of the journal "
                       "and checks the chain;\nnames the first event that "
                       "was edited, deleted or moved. Exit 1 when broken.",
                       &npos);
  if (code != 0)
    return code == 1 ? CLI_EXIT_OK : code;
  if (npos != 0) {
    cli_error("verify takes no arguments");
    return CLI_EXIT_USAGE;
  }
  code = cli_open_journal(ctx, 0, 1, &j);
  if (code != 0)
    return code;
  int rc = journal_verify(j, &vr, &err);
  if (rc != 0 && rc != CAIRN_E_CHAIN) {
    cli_error("%s", err.msg);
    journal_close(j);
    return cli_exit_for(rc);
  }
  if (ctx->json) {
    json_t *v = json_pack("{s:s,s:b,s:I,s:s}", "journal", journal_path(j),
                          "ok", rc == 0, "events", (json_int_t)vr.events,
                          "last_hash", vr.last_hash);
    if (rc != 0) {
      json_object_set_new(v, "first_bad_seq", json_integer(vr.first_bad_seq));
      json_object_set_new(v, "reason", json_string(vr.reason));
    }
    cli_print_json(v);
    json_decref(v);
  } else if (rc == 0) {
    printf("journal %s: chain ok, %lld events, last hash %.16s\n",
           journal_path(j), (long long)vr.events, vr.last_hash);
  } else {
    printf("journal %s: chain broken at event %lld: %s\n", journal_path(j),
           (long long)vr.first_bad_seq, vr.reason);
  }
  journal_close(j);
  return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILED;
}
