/* cairn version: the version and the libraries it was built with. */
#include <sqlite3.h>
#include <stdio.h>
#include <uv.h>
#include <yaml.h>
#include <openssl/opensslv.h>

#include "cli/cli.h"

int cli_cmd_version(int argc, char **argv, struct cli_ctx *ctx)
{
  static const struct cli_option opts[] = {{NULL, 0, NULL, NULL, NULL}};
  int npos = 0;
  int rc = cli_parse(argc, argv, ctx, opts, "cairn version [--json]",
                     "Prints cairn's version and its libraries' versions.",
                     &npos);
  if (rc != 0)
    return rc == 1 ? CLI_EXIT_OK : rc;
  if (npos > 0) {
    cli_error("version takes no arguments");
    return CLI_EXIT_USAGE;
  }
  if (ctx->json) {
    json_t *v = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "version",
                          CAIRN_VERSION, "libuv", uv_version_string(),
                          "sqlite", sqlite3_libversion(), "libyaml",
                          yaml_get_version_string(), "jansson",
                          JANSSON_VERSION, "openssl", OPENSSL_VERSION_TEXT);
    cli_print_json(v);
    json_decref(v);
    return CLI_EXIT_OK;
  }
  printf("cairn %s (libuv %s, sqlite %s, libyaml %s, jansson %s, %s)\n",
         CAIRN_VERSION, uv_version_string(), sqlite3_libversion(),
         yaml_get_version_string(), JANSSON_VERSION, OPENSSL_VERSION_TEXT);
  return CLI_EXIT_OK;
}
