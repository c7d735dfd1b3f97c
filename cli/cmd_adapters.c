/* cairn adapters [NAME]: the actions a state can take, generated from each
 * adapter's description (the same data `cairn validate` checks against). */
#include <stdio.h>
#include <string.h>

#include "adapters/adapter.h"
#include "cli/cli.h"

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
  if (d->undo_adapter)
    json_object_set_new(v, "undo",
                        json_pack("{s:s,s:s}", "do", d->undo_adapter, "with",
                                  d->undo_with ? d->undo_with : "{}"));
  return v;
}

static void print_desc(const struct adapter_desc *d)
{
  printf("%s: %s\n", d->name, d->summary ? d->summary : "");
  printf("  idempotent: %s\n", d->idempotent ? "yes" : "no");
  if (d->undo_adapter)
    printf("  default undo: %s with %s\n", d->undo_adapter,
           d->undo_with ? d->undo_with : "{}");
  printf("  inputs:\n");
  for (const struct adapter_input *i = d->inputs; i && i->name; i++) {
    printf("    %-14s %-16s %s", i->name, adapter_type_name(i->type),
           i->required ? "required" : "optional");
    if (i->default_json)
      printf(", default %s", i->default_json);
    printf("\n      %s\n", i->doc ? i->doc : "");
  }
  printf("  outputs:\n");
  for (const struct adapter_output *o = d->outputs; o && o->name; o++)
    printf("    %-14s %-16s %s\n", o->name, o->type, o->doc ? o->doc : "");
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
      print_desc(d);
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
