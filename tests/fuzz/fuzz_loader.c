/* libFuzzer target: engine_workflow_load_buffer over arbitrary bytes.
 *
 * Errors are expected. Findings are crashes, sanitizer reports, leaks, and
 * broken promises: a failed load that leaves a workflow behind or gives no
 * message, a message on more than one line or without its "FILE: error: "
 * head (FILE:LINE:COL: where there is a position; FILE is a used file
 * when the error is in it), and a loaded workflow that breaks the model's
 * invariants (every transition names a state, on_failure is never NULL,
 * lookups find what the arrays hold, a used workflow's states carry its
 * frame's prefix).
 *
 * Build and run: ./dev fuzz loader (tests/fuzz/README.md).
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
    case ENGINE_APPROVAL:
      check(s->approvals >= 0 && is_state(wf, s->next));
      break;
    case ENGINE_USE:
      check(s->use_frame >= 0 && json_is_object(s->use_with));
      check(is_state(wf, s->next));
      break;
    case ENGINE_MAP:
      check(json_is_array(s->map_items) || json_is_string(s->map_items));
      check(s->max_concurrency >= 0 && is_state(wf, s->next));
      if (s->use_frame < 0)
        check_action(&s->action);
      break;
    default:
      check(0);
    }
    /* a used workflow's frame: its use state is this one, its first
     * state is one of its own */
    if (s->use_frame >= 0) {
      check((size_t)s->use_frame < wf->nframes);
      const struct engine_frame *f = &wf->frames[s->use_frame];
      check(f->use_state == i && is_state(wf, f->start));
      check(engine_workflow_state(wf, f->start)->frame == s->use_frame);
    }
    /* a state of a frame carries its prefix */
    check(s->frame >= -1 && s->frame < (int)wf->nframes);
    if (s->frame >= 0) {
      const char *prefix = wf->frames[s->frame].prefix;
      check(strncmp(s->name, prefix, strlen(prefix)) == 0);
    }
  }
  for (size_t i = 0; i < wf->nframes; i++) {
    const struct engine_frame *f = &wf->frames[i];
    check(f->parent >= -1 && f->parent < (int)wf->nframes);
    check(f->use_state < wf->nstates && json_is_object(f->outputs));
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
    /* the head names a file: this one, or a used one (its own errors
     * name it) */
    if (rc == CAIRN_E_WORKFLOW)
      check(err.msg[0] != ':' && strstr(err.msg, ": error: ") != NULL);
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
