/* Simulation: the real runtime on an in-memory journal, with every action
 * replaced by a scripted outcome. Calls complete one per loop turn in the
 * order they started, so parallel branches finish in declaration order
 * and a simulation prints the same trace every time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/runtime.h"

/* A call's priv says whether it was cancelled: no allocation a call. */
static char sim_running, sim_cancelled;

static int sim_push(struct engine__rt *rt, struct adapter_call *call)
{
  if (rt->nsimq == rt->capsimq) {
    size_t cap = rt->capsimq ? rt->capsimq * 2 : 16;
    struct adapter_call **q = realloc(rt->simq, cap * sizeof *q);
    if (q == NULL)
      return CAIRN_E_NOMEM;
    rt->simq = q;
    rt->capsimq = cap;
  }
  rt->simq[rt->nsimq++] = call;
  return 0;
}

static int listed(const char *const *list, size_t n, const char *s)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp(list[i], s) == 0)
      return 1;
  return 0;
}

/* Is path (or, inside an instance "M/KEY" of a map over a used
 * workflow, the same path without KEY: "M/S" names that state in every
 * instance) or path:attempt (attempt > 0) in list? */
static int listed_path(const struct engine_workflow *wf,
                       const char *const *list, size_t n, const char *path,
                       int attempt)
{
  char key[400], gen[320];
  const char *k = NULL;
  const struct engine_state *st;

  if (n == 0)
    return 0; /* the common case: nothing is scripted to fail */
  snprintf(key, sizeof key, "%s:%d", path, attempt);
  if (listed(list, n, path) || (attempt > 0 && listed(list, n, key)))
    return 1;
  if (engine_workflow_instance_len(wf, path) == 0 ||
      (st = engine_workflow_path_state(wf, path, &k)) == NULL)
    return 0;
  snprintf(gen, sizeof gen, "%s%s%s", st->name, k ? "/" : "", k ? k : "");
  snprintf(key, sizeof key, "%s:%d", gen, attempt);
  return listed(list, n, gen) || (attempt > 0 && listed(list, n, key));
}

/* Does the script make this attempt of t fail? */
static int scripted_failure(const struct engine__task *t,
                            const struct engine_sim *sim)
{
  char key[400];

  if (t->probing)
    return 0; /* a probe finds that the action took effect */
  if (t->readying) /* every attempt of the check, so its retries too */
    return listed_path(t->rt->wf, sim->fail_ready, sim->nfail_ready, t->path,
                       0);
  if (strncmp(t->path, JOURNAL_UNDO_PREFIX, strlen(JOURNAL_UNDO_PREFIX)) == 0) {
    /* "undo:P" or "undo:P#N" undoes P */
    const char *p = t->path + strlen(JOURNAL_UNDO_PREFIX);
    snprintf(key, sizeof key, "%.*s", (int)strcspn(p, "#"), p);
    return listed_path(t->rt->wf, sim->fail_undo, sim->nfail_undo, key, 0);
  }
  return listed_path(t->rt->wf, sim->fail_at, sim->nfail_at, t->path,
                     t->attempt);
}

/* An output of each declared name with the empty value of its type, so
 * that templates reading them resolve. A new reference to the one object
 * kept per adapter for the run (NULL when out of memory). */
static json_t *placeholder_outputs(struct engine__rt *rt,
                                   const struct adapter_desc *desc)
{
  json_t *o = json_object_get(rt->sim_outputs, desc->name);
  if (o != NULL)
    return json_incref(o);
  if (rt->sim_outputs == NULL && (rt->sim_outputs = json_object()) == NULL)
    return NULL;
  o = json_object();
  for (const struct adapter_output *out = desc->outputs; out && out->name;
       out++) {
    json_t *v;
    if (strcmp(out->type, "integer") == 0)
      v = json_integer(0);
    else if (strcmp(out->type, "number") == 0)
      v = json_real(0);
    else if (strcmp(out->type, "boolean") == 0)
      v = json_false();
    else if (strcmp(out->type, "object") == 0)
      v = json_object();
    else if (strcmp(out->type, "array") == 0)
      v = json_array();
    else
      v = json_string("");
    json_object_set_new(o, out->name, v);
  }
  json_object_set(rt->sim_outputs, desc->name, o);
  return o;
}

static void sim_idle_cb(uv_idle_t *h)
{
  struct engine__rt *rt = h->data;
  struct adapter_call *call;
  struct engine__task *t;
  int cancelled;
  struct adapter_result res = {0};

  if (rt->nsimq == 0) {
    uv_idle_stop(h);
    return;
  }
  call = rt->simq[0];
  memmove(rt->simq, rt->simq + 1, (rt->nsimq - 1) * sizeof *rt->simq);
  if (--rt->nsimq == 0)
    uv_idle_stop(h);

  t = call->data;
  cancelled = call->priv == &sim_cancelled;
  res.tail = "";
  if (cancelled) {
    res.outcome = ADAPTER_CANCELLED;
    res.exit_code = -1;
    res.term_signal = 15;
    snprintf(res.error, sizeof res.error, "cancelled");
    res.outputs = json_object();
  } else if (scripted_failure(t, rt->opt->sim)) {
    res.outcome = ADAPTER_FAILED;
    res.exit_code = 1;
    snprintf(res.error, sizeof res.error, "simulated failure");
    res.outputs = json_object();
  } else {
    res.outcome = ADAPTER_SUCCEEDED;
    res.exit_code = 0;
    res.outputs = placeholder_outputs(rt, t->desc);
  }
  call->priv = NULL;
  json_t *outputs = res.outputs;
  call->on_done(call, &res); /* may free call */
  json_decref(outputs);
}

static int sim_start(struct adapter_call *call, struct cairn_error *err)
{
  struct engine__task *t = call->data;
  struct engine__rt *rt = t->rt;

  call->priv = &sim_running;
  if (sim_push(rt, call) != 0) {
    call->priv = NULL;
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  }
  uv_idle_start(&rt->sim_idle, sim_idle_cb);
  return 0;
}

static void sim_cancel(struct adapter_call *call)
{
  if (call->priv != NULL)
    call->priv = &sim_cancelled;
}

static const struct adapter_input sim_inputs[] = {{NULL, 0, 0, NULL, NULL}};
static const struct adapter_output sim_outputs[] = {{NULL, NULL, NULL}};

const struct adapter_desc engine__sim_adapter = {
  .name = "simulated",
  .summary = "a scripted outcome (cairn simulate)",
  .inputs = sim_inputs,
  .outputs = sim_outputs,
  .idempotent = 1,
  .check = NULL,
  .start = sim_start,
  .cancel = sim_cancel,
};

/* ---- checking a script against the workflow ---- */

static const struct engine_action *action_at(const struct engine_workflow *wf,
                                             const char *path)
{
  const struct engine_state *st;
  int branch;
  return engine__action_at(wf, path, &st, &branch);
}

/* Which actions a hint lists: all, or those with an undo or a ready
 * check. */
enum paths_of { PATHS_ALL, PATHS_UNDO, PATHS_READY };

static int has(const struct engine_action *a, enum paths_of which)
{
  return which == PATHS_ALL || (which == PATHS_UNDO && a->undo) ||
         (which == PATHS_READY && a->ready);
}

/* "a, b, c/d" of those action paths, for a hint. */
static void action_paths(const struct engine_workflow *wf,
                         enum paths_of which, char *out, size_t n)
{
  size_t len = 0;
  out[0] = '\0';
  for (size_t i = 0; i < wf->nstates; i++) {
    const struct engine_state *st = &wf->states[i];
    if (st->kind == ENGINE_DO && has(&st->action, which))
      len += (size_t)snprintf(out + len, len < n ? n - len : 0, "%s%s",
                              len ? ", " : "", st->name);
    if (st->kind == ENGINE_MAP && st->use_frame < 0 &&
        has(&st->action, which))
      len += (size_t)snprintf(out + len, len < n ? n - len : 0, "%s%s/KEY",
                              len ? ", " : "", st->name);
    for (size_t b = 0; st->kind == ENGINE_PARALLEL && b < st->nbranches; b++)
      if (has(&st->branches[b].action, which))
        len += (size_t)snprintf(out + len, len < n ? n - len : 0, "%s%s/%s",
                                len ? ", " : "", st->name,
                                st->branches[b].name);
    if (len >= n)
      return;
  }
}

int engine_sim_check(const struct engine_workflow *wf,
                     const struct engine_sim *sim, struct cairn_error *err)
{
  char list[1024];

  for (size_t i = 0; i < sim->nfail_at; i++) {
    char path[320];
    const char *spec = sim->fail_at[i];
    const char *colon = strrchr(spec, ':');
    long attempt = 0;

    snprintf(path, sizeof path, "%.*s",
             (int)(colon ? (size_t)(colon - spec) : strlen(spec)), spec);
    if (colon) {
      char *end;
      attempt = strtol(colon + 1, &end, 10);
      if (colon[1] == '\0' || *end != '\0' || attempt < 1)
        return cairn_error_set(err, CAIRN_E_INVAL,
                               "--fail-at '%s': the attempt must be a "
                               "number from 1 (hint: --fail-at STATE:2 fails "
                               "the second attempt)", spec);
    }
    const struct engine_action *a = action_at(wf, path);
    const struct engine_state *ms = engine_workflow_state(wf, path);
    if (ms != NULL && ms->kind == ENGINE_MAP)
      return cairn_error_set(err, CAIRN_E_INVAL,
                             "--fail-at '%s': '%s' is a map state; name one "
                             "of its instances (hint: --fail-at %s/KEY, the "
                             "KEY of an item)", spec, path, path);
    if (a == NULL) {
      action_paths(wf, PATHS_ALL, list, sizeof list);
      if (list[0] == '\0')
        return cairn_error_set(err, CAIRN_E_INVAL,
                               "--fail-at '%s': workflow '%s' has no action "
                               "states, so nothing in it can fail (hint: "
                               "leave out --fail-at)", spec, wf->name);
      return cairn_error_set(err, CAIRN_E_INVAL,
                             "--fail-at '%s': workflow '%s' has no action "
                             "state '%s' (hint: action states are %s)", spec,
                             wf->name, path, list);
    }
    if (attempt > a->retry.attempts)
      return cairn_error_set(err, CAIRN_E_INVAL,
                             "--fail-at '%s': '%s' makes at most %d "
                             "attempt%s, so attempt %ld never runs", spec,
                             path, a->retry.attempts,
                             a->retry.attempts == 1 ? "" : "s", attempt);
  }
  for (size_t i = 0; i < sim->nfail_undo; i++) {
    const struct engine_action *a = action_at(wf, sim->fail_undo[i]);
    if (a == NULL || a->undo == NULL) {
      action_paths(wf, PATHS_UNDO, list, sizeof list);
      return cairn_error_set(err, CAIRN_E_INVAL,
                             "--fail-undo '%s': workflow '%s' has no action "
                             "state '%s' with an undo (hint: states with an "
                             "undo are %s)", sim->fail_undo[i], wf->name,
                             sim->fail_undo[i], list[0] ? list : "none");
    }
  }
  for (size_t i = 0; i < sim->nfail_ready; i++) {
    const struct engine_action *a = action_at(wf, sim->fail_ready[i]);
    if (a == NULL || a->ready == NULL) {
      action_paths(wf, PATHS_READY, list, sizeof list);
      return cairn_error_set(err, CAIRN_E_INVAL,
                             "--fail-ready '%s': workflow '%s' has no action "
                             "state '%s' with a ready check (hint: states "
                             "with one are %s)", sim->fail_ready[i], wf->name,
                             sim->fail_ready[i], list[0] ? list : "none");
    }
  }
  return 0;
}

int engine_simulate(const struct engine_workflow *wf,
                    const struct engine_options *opt,
                    struct engine_result *res, struct cairn_error *err)
{
  struct journal *j = NULL;
  int rc;

  memset(res, 0, sizeof *res);
  if (opt->sim == NULL)
    return cairn_error_set(err, CAIRN_E_INVAL, "no simulation script");
  rc = engine_sim_check(wf, opt->sim, err);
  if (rc != 0)
    return rc;
  /* No hash chain: this journal is closed below unread by anyone but
   * the engine itself (no verify, show or export sees it), so a chain
   * would prove nothing. */
  rc = journal_open(&j, ":memory:", JOURNAL_CREATE | JOURNAL_UNCHAINED, err);
  if (rc != 0)
    return rc;
  rc = engine_run(j, wf, opt, res, err);
  journal_close(j);
  return rc;
}
