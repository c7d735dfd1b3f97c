/* libFuzzer target: engine_workflow_load_buffer over arbitrary bytes.
 *
 * Errors are expected. Findings are crashes, sanitizer reports, leaks, and
 * broken promises: a failed load that leaves a workflow behind or gives no
 * message, a message on more than one line or without its "FILE:LINE:COL:
 * error: " head, and a loaded workflow that breaks the model's invariants
 * (every transition names a state, on_failure is never NULL, lookups find
 * what the arrays hold).
 *
 * Build from the top of the source tree (clang with its fuzzer runtime,
 * e.g. Debian's libclang-rt-14-dev):
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -fno-sanitize-recover=undefined -D_GNU_SOURCE -I. \
 *     $(pkg-config --cflags yaml-0.1 jansson openssl libuv) \
 *     common/error.c common/proc.c engine/load.c engine/yaml_tree.c \
 *     engine/params.c engine/duration.c engine/template.c \
 *     adapters/registry.c adapters/exec.c tests/fuzz/fuzz_loader.c \
 *     $(pkg-config --libs yaml-0.1 jansson openssl libuv) -lm \
 *     -o /tmp/fuzz_loader
 *   mkdir -p /tmp/corpus && cp examples/quickstart/deploy.yaml /tmp/corpus/
 *   /tmp/fuzz_loader -max_len=4096 /tmp/corpus
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/workflow.h"

static void check(int ok)
{
  if (!ok)
    abort();
}

static int is_state(const struct engine_workflow *wf, const char *name)
{
  return name != NULL && engine_workflow_state(wf, name) != NULL;
}

static void check_action(const struct engine_action *a)
{
  check(a->adapter != NULL && json_is_object(a->with));
  check(a->retry.attempts >= 1 && a->retry.backoff >= 1);
  check(a->retry.delay_ms >= 0 && a->retry.max_delay_ms >= 0);
  check(a->timeout_ms >= 0);
  if (a->probe != NULL) {
    check(a->probe->probe == NULL && a->probe->undo == NULL);
    check_action(a->probe);
  }
  if (a->undo != NULL) {
    check(a->undo->probe == NULL && a->undo->undo == NULL);
    check_action(a->undo);
  }
}

static void check_model(const struct engine_workflow *wf)
{
  check(strlen(wf->sha256) == 64 && wf->name != NULL);
  check(wf->nstates > 0 && is_state(wf, wf->start));
  for (size_t i = 0; i < wf->nstates; i++) {
    const struct engine_state *s = &wf->states[i];
    check(engine_workflow_state(wf, s->name) == s);
    check(s->on_failure != NULL);
    check(!strcmp(s->on_failure, "rollback") ||
          !strcmp(s->on_failure, "fail") || is_state(wf, s->on_failure));
    switch (s->kind) {
    case ENGINE_DO:
      check_action(&s->action);
      check(is_state(wf, s->next));
      break;
    case ENGINE_PARALLEL:
      check(s->nbranches > 0 && is_state(wf, s->next));
      for (size_t j = 0; j < s->nbranches; j++)
        check_action(&s->branches[j].action);
      break;
    case ENGINE_CHOICE:
      check(s->nwhens > 0 && s->next == NULL);
      for (size_t j = 0; j < s->nwhens; j++)
        check(s->whens[j].expr[0] != '\0' && is_state(wf, s->whens[j].next));
      check(s->default_next == NULL || is_state(wf, s->default_next));
      break;
    case ENGINE_WAIT:
      check(s->wait_ms >= 0 && is_state(wf, s->next));
      break;
    case ENGINE_SUCCEED:
    case ENGINE_FAIL:
      check(s->next == NULL);
      break;
    default:
      check(0);
    }
  }
  for (size_t i = 0; i < wf->nparams; i++)
    check(engine_workflow_param(wf, wf->params[i].name) == &wf->params[i]);
  for (size_t i = 0; i < wf->nenvs; i++) {
    check(engine_workflow_env(wf, wf->envs[i].name) == &wf->envs[i]);
    check(json_is_object(wf->envs[i].vars));
    check(wf->envs[i].after == NULL ||
          engine_workflow_env(wf, wf->envs[i].after) != NULL);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct engine_workflow *wf = (struct engine_workflow *)&wf;
  struct cairn_error err = {0};
  json_t *params = NULL;
  int rc = engine_workflow_load_buffer(&wf, "fuzz.yaml", (const char *)data,
                                       size, &err);

  if (rc != 0) {
    check(wf == NULL && err.code == rc && err.msg[0] != '\0');
    check(strchr(err.msg, '\n') == NULL);
    if (rc == CAIRN_E_WORKFLOW)
      check(strncmp(err.msg, "fuzz.yaml:", 10) == 0 &&
            strstr(err.msg, ": error: ") != NULL);
    return 0;
  }
  check_model(wf);
  /* every declared default passes its own type and pattern */
  rc = engine_workflow_params(wf, NULL, 0, &params, &err);
  check(rc == 0 ? json_is_object(params) : params == NULL);
  json_decref(params);
  engine_workflow_destroy(wf);
  return 0;
}
