/* cairn adapters [NAME]: the actions a state can take, generated from each
 * adapter's description (the same data `cairn validate` checks against). */
#include <stdio.h>
#include <string.h>

#include "adapters/adapter.h"
#include "cli/cli.h"
#include "cli/table.h"

static json_t *desc_json(const struct adapter_desc *d)
{
  json_t *in = json_array(), *out = json_array();
  for (const struct adapter_input *i = d->inputs; i && i->name; i++) {
    json_t *v = json_pack("{s:s,s:s,s:b,s:s}", "name", i->name, "type",
                          adapter_type_name(i->type), "required",
                          i->required, "doc", i->doc ? i->doc : "");
    if (i->default_json) {
      json_error_t je;
      json_t *dv = json_loads(i->default_json, JSON_DECODE_ANY, &je);
      json_object_set_new(v, "default", dv ? dv
                                           : json_string(i->default_json));
    }
    json_array_append_new(in, v);
  }
  for (const struct adapter_output *o = d->outputs; o && o->name; o++)
    json_array_append_new(out, json_pack("{s:s,s:s,s:s}", "name", o->name,
                                         "type", o->type, "doc",
                                         o->doc ? o->doc : ""));
  json_t *v = json_pack("{s:s,s:s,s:b,s:o,s:o}", "name", d->name, "summary",
                        d->summary ? d->summary : "", "idempotent",
                        d->idempotent, "inputs", in, "outputs", out);
  if (d->undo_adapter) {
    /* an object, as a workflow's undo writes it (the registry keeps it
     * as JSON text) */
    json_t *with = d->undo_with ? json_loads(d->undo_with, 0, NULL) : NULL;
    json_object_set_new(v, "undo",
                        json_pack("{s:s,s:o}", "do", d->undo_adapter, "with",
                                  with ? with : json_object()));
  }
  return v;
}

/* Prints d; returns 0 or the exit code of a table that failed. Its inputs
 * and outputs are one table, so that their columns line up. */
static int print_desc(const struct adapter_desc *d)
{
  char name[128], doc[1024], need[1024];
  struct cli_table *t = cli_table_create(3, 0);

  printf("%s: %s\n", d->name, d->summary ? d->summary : "");
  printf("  idempotent: %s\n", d->idempotent ? "yes" : "no");
  if (d->undo_adapter)
    printf("  default undo: %s with %s\n", d->undo_adapter,
           d->undo_with ? d->undo_with : "{}");
  cli_table_add(t, 1, (const char *[]){"  inputs:"});
  for (const struct adapter_input *i = d->inputs; i && i->name; i++) {
    snprintf(name, sizeof name, "    %s", i->name);
    snprintf(need, sizeof need, "%s%s%s",
             i->required ? "required" : "optional",
             i->default_json ? ", default " : "",
             i->default_json ? i->default_json : "");
    cli_table_add(t, 3, (const char *[]){name, adapter_type_name(i->type),
                                         need});
    snprintf(doc, sizeof doc, "      %s", i->doc ? i->doc : "");
    cli_table_add(t, 1, (const char *[]){doc});
  }
  cli_table_add(t, 1, (const char *[]){"  outputs:"});
  for (const struct adapter_output *o = d->outputs; o && o->name; o++) {
    snprintf(name, sizeof name, "    %s", o->name);
    cli_table_add(t, 3, (const char *[]){name, o->type,
                                         o->doc ? o->doc : ""});
  }
  int code = cli_table_print(t);
  cli_table_destroy(t);
  return code;
}

int cli_cmd_adapters(int argc, char **argv, struct cli_ctx *ctx)
{
  static const struct cli_option opts[] = {{NULL, 0, NULL, NULL, NULL}};
  int npos = 0, found = 0;
  int rc = cli_parse(argc, argv, ctx, opts, "cairn adapters [NAME] [--json]",
                     "Lists the actions a state can take (`do:`), with their "
                     "inputs, outputs,\nidempotency and default undo; with "
                     "NAME, only that one. Also: cairn help adapters.",
                     &npos);
  if (rc != 0)
    return rc == 1 ? CLI_EXIT_OK : rc;
  if (npos > 1) {
    cli_error("adapters takes at most one adapter name");
    return CLI_EXIT_USAGE;
  }
  for (size_t i = 0; adapter_registry[i]; i++) {
    const struct adapter_desc *d = adapter_registry[i];
    if (npos == 1 && strcmp(d->name, argv[1]) != 0)
      continue;
    found++;
    if (ctx->json) {
      json_t *v = desc_json(d);
      cli_print_json(v);
      json_decref(v);
    } else {
      if (found > 1)
        printf("\n");
      if ((rc = print_desc(d)) != CLI_EXIT_OK)
        return rc;
    }
  }
  if (npos == 1 && found == 0) {
    char list[1024] = "";
    for (size_t i = 0; adapter_registry[i]; i++)
      snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
               i ? ", " : "", adapter_registry[i]->name);
    cli_error("no adapter '%s' (hint: adapters are %s)", argv[1], list);
    return CLI_EXIT_USAGE;
  }
  return CLI_EXIT_OK;
}
