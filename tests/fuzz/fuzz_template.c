/* libFuzzer target for engine/template.c: the input, as a C string, goes to
 * engine_template_check, engine_template_check_expr,
 * engine_template_render_string and engine_template_eval_bool against a
 * small fixed scope. Crashes, sanitizer reports and leaks are the findings;
 * errors are expected. See tests/fuzz/README.md. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/template.h"

static const char scope_json[] =
    "{\"params\": {\"release\": \"1.4.0\", \"replicas\": 3, \"ratio\": 0.5,"
    "  \"list\": [1, \"two\", {\"k\": null}], \"obj\": {\"a\": true}},"
    " \"vars\": {\"base_port\": 18000},"
    " \"secrets\": {\"TOKEN\": \"t\"},"
    " \"states\": {\"build\": {\"output\": {\"image\": \"img:1\"}}},"
    " \"run\": {\"id\": \"r1\", \"dir\": \"/tmp/r1\"},"
    " \"item\": [\"a\", 2],"
    " \"self\": {}}";

static int accept_ref(void *ud, const char *const *path, size_t n,
                      size_t offset, struct cairn_error *err)
{
  size_t *count = ud;

  (void)offset;
  /* touch every segment so ASan sees a bad pointer */
  for (size_t i = 0; i < n; i++)
    (void)strlen(path[i]);
  /* refuse one name to exercise the error path */
  if (n > 1 && strcmp(path[1], "refused") == 0)
    return cairn_error_set(err, CAIRN_E_WORKFLOW, "refused");
  (*count)++;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static json_t *scope;
  struct cairn_error err = { 0 };
  char *s = malloc(size + 1);
  size_t off = 0, refs = 0;
  json_t *out = NULL;
  int truth = 0;

  if (s == NULL)
    return 0;
  if (scope == NULL) /* kept for the life of the process */
    scope = json_loads(scope_json, 0, NULL);
  memcpy(s, data, size);
  s[size] = '\0';

  if (engine_template_check(s, accept_ref, &refs, &off, &err) != 0 &&
      err.code == CAIRN_E_TEMPLATE && off > strlen(s))
    abort(); /* an offset must point into the string (or just past it) */
  if (engine_template_check_expr(s, accept_ref, &refs, &off, &err) != 0 &&
      err.code == CAIRN_E_TEMPLATE && off > strlen(s))
    abort();

  cairn_error_clear(&err);
  if (engine_template_render_string(s, scope, &out, &err) == 0) {
    if (out == NULL)
      abort();
    json_decref(out);
  } else if (out != NULL || err.msg[0] == '\0') {
    abort(); /* an error leaves no value and always says why */
  }
  (void)engine_template_eval_bool(s, scope, &truth, &err);

  free(s);
  return 0;
}
