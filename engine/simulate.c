/* Simulation: the real runtime on an in-memory journal, with every action
 * replaced by a scripted outcome. Calls complete one per loop turn in the
 * order they started, so parallel branches finish in declaration order
 * and a simulation prints the same trace every time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/runtime.h"
#include "engine/template.h"

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

/* 1 + the index of s in list, or 0. */
static size_t listed(const char *const *list, size_t n, const char *s)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp(list[i], s) == 0)
      return i + 1;
  return 0;
}

/* Is path (or, inside an instance "M/KEY" of a map over a used
 * workflow, the same path without KEY: "M/S" names that state in every
 * instance) or path:attempt (attempt > 0) in list? 1 + its index, or 0;
 * the item is marked in fired (may be NULL) as having fired. */
static size_t listed_path(const struct engine_workflow *wf,
                          const char *const *list, size_t n,
                          unsigned char *fired, const char *path, int attempt)
{
  char key[400], gen[320];
  const char *k = NULL;
  const struct engine_state *st;
  size_t i;

  if (n == 0)
    return 0; /* the common case: nothing is scripted to fail */
  snprintf(key, sizeof key, "%s:%d", path, attempt);
  if ((i = listed(list, n, path)) == 0 && attempt > 0)
    i = listed(list, n, key);
  if (i == 0 && engine_workflow_instance_len(wf, path) > 0 &&
      (st = engine_workflow_path_state(wf, path, &k)) != NULL) {
    snprintf(gen, sizeof gen, "%s%s%s", st->name, k ? "/" : "", k ? k : "");
    snprintf(key, sizeof key, "%s:%d", gen, attempt);
    if ((i = listed(list, n, gen)) == 0 && attempt > 0)
      i = listed(list, n, key);
  }
  if (i > 0 && fired != NULL)
    fired[i - 1] = 1;
  return i;
}

/* Does the script make this attempt of t fail? */
static int scripted_failure(const struct engine__task *t,
                            const struct engine_sim *sim)
{
  const struct engine_workflow *wf = t->rt->wf;
  char key[400];

  if (t->probing)
    return 0; /* a probe finds that the action took effect */
  if (t->readying) /* every attempt of the check, so its retries too */
    return listed_path(wf, sim->fail_ready, sim->nfail_ready,
                       sim->fired_ready, t->path, 0) > 0;
  if (strncmp(t->path, JOURNAL_UNDO_PREFIX, strlen(JOURNAL_UNDO_PREFIX)) == 0) {
    /* "undo:P" or "undo:P#N" undoes P */
    const char *p = t->path + strlen(JOURNAL_UNDO_PREFIX);
    snprintf(key, sizeof key, "%.*s", (int)strcspn(p, "#"), p);
    return listed_path(wf, sim->fail_undo, sim->nfail_undo, sim->fired_undo,
                       key, 0) > 0;
  }
  return listed_path(wf, sim->fail_at, sim->nfail_at, sim->fired_at, t->path,
                     t->attempt) > 0;
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
    /* what a real call reports when cancelled: the undo of the cancelled
     * step renders from it */
    res.outputs = !t->probing && !t->readying &&
                          t->desc->outputs_when_cancelled
                      ? placeholder_outputs(rt, t->desc)
                      : json_object();
  } else if (scripted_failure(t, rt->opt->sim)) {
    res.outcome = ADAPTER_FAILED;
    res.exit_code = 1;
    snprintf(res.error, sizeof res.error, "simulated failure");
    res.outputs = json_object();
    if (rt->sim_loop != NULL) /* past the limit: a loop, this may be why */
      engine__copy(rt->sim_loop_failed, sizeof rt->sim_loop_failed, t->path);
  } else {
    res.outcome = ADAPTER_SUCCEEDED;
    res.exit_code = 0;
    /* a probe's outputs are its own adapter's, as in a real run (a
     * cancelled branch it finds took effect gets them) */
    res.outputs = placeholder_outputs(
        rt, t->probing ? adapter_find(t->action->probe->adapter) : t->desc);
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

/* ---- what a simulation cannot know ----
 *
 * A simulated action's outputs are placeholders, so a template that reads
 * them may not render (a key of exec's `json`), or render to what a real
 * run would not. Such a failure is the simulation's, not the workflow's:
 * the template is shown as written. A failure that does not come from
 * them (a param's missing item, a bad default) is the workflow's: a real
 * run has it too, so the simulation must. What reads a placeholder is
 * told by each reference's root, which engine_template_check names. */

/* Has this simulation run an action that makes secrets (secrets_of)?
 * Its secrets are then unknown here: a simulated call makes none. Such an
 * action's placeholder outputs are in rt->sim_outputs once it
 * succeeded. */
static int made_secrets(struct engine__rt *rt)
{
  const char *name;
  json_t *v;

  json_object_foreach(rt->sim_outputs, name, v) {
    const struct adapter_desc *d = adapter_find(name);
    if (d != NULL && d->secrets_of != NULL)
      return 1;
  }
  return 0;
}

/* Is name listed in names (an array of strings, or an object's keys)? */
static int named(json_t *names, const char *name)
{
  size_t i;
  json_t *v;

  if (json_is_object(names))
    return json_object_get(names, name) != NULL;
  json_array_foreach(names, i, v)
    if (json_is_string(v) && strcmp(json_string_value(v), name) == 0)
      return 1;
  return 0;
}

static int some(json_t *names)
{
  return json_is_object(names) ? json_object_size(names) > 0
                               : json_array_size(names) > 0;
}

/* Does the reference path[0..n) read a placeholder in scope? */
static int placeholder_ref(struct engine__rt *rt, json_t *scope,
                           const struct engine__sim_src *src,
                           const char *const *path, size_t n)
{
  const char *root = path[0];

  if (strcmp(root, "states") == 0) {
    json_t *states = json_object_get(scope, "states"), *rec, *ph;
    if (n < 2)
      return json_object_size(states) > 0;
    /* only a state that succeeded has outputs: an action's are
     * placeholders all, a use state's those its record names */
    if ((rec = json_object_get(states, path[1])) == NULL)
      return 0;
    if ((ph = json_object_get(rec, "placeholders")) == NULL)
      return 1;
    return n < 4 ? some(ph) : named(ph, path[3]);
  }
  if (strcmp(root, "self") == 0) {
    if (n < 2)
      return src->self_output || some(src->self_input);
    if (strcmp(path[1], "output") == 0)
      return src->self_output;
    return n < 3 ? some(src->self_input) : named(src->self_input, path[2]);
  }
  if (strcmp(root, "item") == 0)
    return src->item;
  if (strcmp(root, "params") == 0)
    return n < 2 ? some(src->params) : named(src->params, path[1]);
  if (strcmp(root, "secrets") == 0)
    return n >= 2 &&
           json_object_get(json_object_get(scope, "secrets"), path[1]) ==
               NULL &&
           made_secrets(rt);
  return 0; /* vars, env, run: a real run has the same */
}

struct refs {
  struct engine__rt *rt;
  json_t *scope;
  const struct engine__sim_src *src;
  const char *text;     /* the template (or expression) checked */
  int resolve;          /* render each reference that reads none */
  int reads;            /* a reference reads a placeholder */
  int failed;           /* one that reads none does not resolve: */
  struct cairn_error err; /* why, as a real run says it */
};

/* The end of the reference whose root starts at off in s: past each
 * ".name" and "[N]" of path (the parser allows blanks before them). */
static size_t ref_end(const char *s, size_t off, const char *const *path,
                      size_t n)
{
  size_t pos = off + strlen(path[0]);

  for (size_t i = 1; i < n; i++) {
    size_t p = pos;
    while (s[p] == ' ' || s[p] == '\t' || s[p] == '\n' || s[p] == '\r')
      p++;
    if (s[p] == '.') {
      pos = p + 1 + strlen(path[i]);
    } else if (s[p] == '[') {
      const char *close = strchr(s + p, ']');
      if (close == NULL)
        break;
      pos = (size_t)(close - s) + 1;
    } else {
      break;
    }
  }
  return pos;
}

static int ref_cb(void *ud, const char *const *path, size_t n, size_t off,
                  struct cairn_error *err)
{
  struct refs *r = ud;
  char *text = NULL;
  json_t *v = NULL;

  (void)err;
  if (placeholder_ref(r->rt, r->scope, r->src, path, n)) {
    r->reads = 1;
    return 0;
  }
  if (!r->resolve || r->failed)
    return 0;
  /* the reference alone, so that its failure reads as a real run's */
  if (asprintf(&text, "{{ %.*s }}",
               (int)(ref_end(r->text, off, path, n) - off), r->text + off) < 0)
    return 0; /* out of memory: it counts as resolved */
  if (engine_template_render_string(text, r->scope, &v, &r->err) != 0 &&
      r->err.code != CAIRN_E_NOMEM)
    r->failed = 1;
  json_decref(v);
  free(text);
  return 0;
}

/* Checks the references of one template (a string holding "{{", or a
 * bare expression). */
static void refs_of(struct refs *r, const char *text, int expr)
{
  struct cairn_error e = {0};

  r->text = text;
  if (expr)
    (void)engine_template_check_expr(text, ref_cb, r, NULL, &e);
  else
    (void)engine_template_check(text, ref_cb, r, NULL, &e);
}

/* Walks v as engine_template_render does; in each string with a
 * template, reads (r->resolve 0) or, where it does not render, whether
 * that is a placeholder's doing. Returns 0, or the code of the first
 * failure a real run has too (r->err says it). */
static int walk(struct refs *r, json_t *v)
{
  const char *k;
  size_t i;
  json_t *x;
  int rc;

  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    json_t *out = NULL;
    struct cairn_error e = {0};

    if (strstr(s, "{{") == NULL)
      return 0;
    if (!r->resolve) {
      refs_of(r, s, 0);
      return 0;
    }
    rc = engine_template_render_string(s, r->scope, &out, &e);
    json_decref(out);
    if (rc == 0)
      return 0;
    int reads = r->reads;
    r->reads = 0;
    refs_of(r, s, 0);
    if (r->failed)
      return r->err.code;
    if (!r->reads) {
      /* nothing in it is a placeholder: the failure is its own */
      r->err = e;
      return e.code;
    }
    r->reads |= reads;
    return 0;
  }
  if (json_is_array(v))
    json_array_foreach(v, i, x) if ((rc = walk(r, x)) != 0) return rc;
  if (json_is_object(v))
    json_object_foreach(v, k, x) if ((rc = walk(r, x)) != 0) return rc;
  return 0;
}

int engine__sim_tolerates(struct engine__rt *rt, json_t *v, const char *expr,
                          json_t *scope, const struct engine__sim_src *src,
                          struct cairn_error *err)
{
  struct refs r = {rt, scope, src, NULL, 1, 0, 0, {0}};
  int rc;

  if (err->code == CAIRN_E_NOMEM || scope == NULL)
    return err->code ? err->code : CAIRN_E_NOMEM;
  if (v != NULL) {
    rc = walk(&r, v);
  } else {
    refs_of(&r, expr, 1);
    rc = r.failed ? r.err.code : !r.reads ? err->code : 0;
    if (!r.failed)
      r.err = *err;
  }
  if (rc != 0)
    *err = r.err;
  return rc;
}

json_t *engine__sim_render_keys(json_t *v, json_t *scope)
{
  json_t *out, *x, *r;
  const char *k;

  if (!json_is_object(v))
    return json_deep_copy(v);
  if ((out = json_object()) == NULL)
    return NULL;
  json_object_foreach(v, k, x) {
    struct cairn_error e = {0};
    r = NULL;
    if (engine_template_render(x, scope, &r, &e) != 0)
      r = json_deep_copy(x);
    if (r == NULL || json_object_set_new(out, k, r) != 0) {
      json_decref(out);
      return NULL;
    }
  }
  return out;
}

int engine__sim_reads(struct engine__rt *rt, json_t *v, const char *expr,
                      json_t *scope, const struct engine__sim_src *src)
{
  struct refs r = {rt, scope, src, NULL, 0, 0, 0, {0}};

  if (scope == NULL)
    return 0;
  if (v != NULL)
    (void)walk(&r, v);
  else if (expr != NULL)
    refs_of(&r, expr, 1);
  return r.reads;
}

json_t *engine__sim_keys(struct engine__rt *rt, json_t *v, json_t *scope,
                         const struct engine__sim_src *src)
{
  json_t *keys = NULL, *x;
  const char *k;

  json_object_foreach(v, k, x) {
    if (!engine__sim_reads(rt, x, NULL, scope, src))
      continue;
    if (keys == NULL && (keys = json_array()) == NULL)
      return NULL;
    json_array_append_new(keys, json_string(k));
  }
  return keys;
}

int engine__sim_checks(const struct adapter_desc *desc, json_t *with,
                       json_t *rendered, json_t *keys, json_t **out,
                       struct cairn_error *err)
{
  json_t *probe, *k;
  size_t i;
  int rc;

  if (json_array_size(keys) == 0 || err->code == CAIRN_E_NOMEM)
    return err->code;
  /* a template as written passes any type check (and an adapter's own
   * check), as at load: what still fails is a real value's fault */
  if ((probe = json_copy(rendered)) == NULL)
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  json_array_foreach(keys, i, k)
    json_object_set(probe, json_string_value(k),
                    json_object_get(with, json_string_value(k)));
  rc = adapter_check_with(desc, probe, NULL, err);
  json_decref(probe);
  if (rc != 0)
    return rc;
  if ((*out = json_deep_copy(rendered)) == NULL)
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  return 0;
}

/* ---- a loop ---- */

/* How many paths past the limit are followed to find the loop's. */
#define LOOP_WINDOW 1000

static size_t max_entries(void)
{
#ifdef CAIRN_TEST_HOOKS
  /* tests/cli reach the limit without 100,000 entries */
  const char *hook = getenv("CAIRN_TEST_SIM_MAX_ENTRIES");
  if (hook != NULL && *hook != '\0')
    return (size_t)strtoull(hook, NULL, 10);
#endif
  return ENGINE__SIM_MAX_ENTRIES;
}

void engine__sim_enter(struct engine__rt *rt, const struct engine_state *st)
{
  char path[320], loop[700], why[400];
  size_t len = 0, n, i;

  if (++rt->sim_entries <= max_entries())
    return;
  engine__jpath(rt, st->name, path, sizeof path);
  /* Go on until the first path past the limit comes again: the paths
   * between are the loop. */
  n = json_array_size(rt->sim_loop);
  if (rt->sim_loop == NULL && (rt->sim_loop = json_array()) == NULL) {
    rt->fatal = CAIRN_E_NOMEM;
    return;
  }
  if (n == 0 || (strcmp(json_string_value(json_array_get(rt->sim_loop, 0)),
                        path) != 0 &&
                 n < LOOP_WINDOW)) {
    json_array_append_new(rt->sim_loop, json_string(path));
    return;
  }
  json_array_append_new(rt->sim_loop, json_string(path));
  /* "a → b → a", or the first 8 and the last of a long one (or of as
   * many as were followed, when none came again) */
  n = json_array_size(rt->sim_loop);
  loop[0] = '\0';
  for (i = 0; i < n && len < sizeof loop; i++) {
    if (i == 8 && n > 10) {
      len += (size_t)snprintf(loop + len, sizeof loop - len, " → … (%zu "
                              "more)", n - 9);
      i = n - 1;
      if (len >= sizeof loop)
        break;
    }
    len += (size_t)snprintf(loop + len, sizeof loop - len, "%s%s",
                            i ? " → " : "",
                            json_string_value(json_array_get(rt->sim_loop,
                                                             i)));
  }
  if (rt->sim_loop_choice[0])
    snprintf(why, sizeof why, "choice '%s' decides on placeholder outputs, "
             "which keep it going (a real run's outputs may end it)",
             rt->sim_loop_choice);
  else if (rt->sim_loop_failed[0])
    snprintf(why, sizeof why, "'%s' fails at every entry, as scripted "
             "(a real run's may not)", rt->sim_loop_failed);
  else
    snprintf(why, sizeof why, "nothing in it depends on placeholder "
             "outputs: a real run would loop the same way");
  snprintf(rt->res->message, sizeof rt->res->message,
           "stopped after %zu state entries, in the loop %s: %s",
           max_entries(), loop, why);
  rt->interrupted = ENGINE__SIM_STOPPED;
}

/* ---- checking a script against the workflow ---- */

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
    const struct engine_action *a = engine_workflow_action_at(wf, path);
    const struct engine_state *ms = engine_workflow_state(wf, path);
    if (ms != NULL && ms->kind == ENGINE_MAP && ms->use_frame >= 0)
      return cairn_error_set(err, CAIRN_E_INVAL,
                             "--fail-at '%s': '%s' is a map over a used "
                             "workflow; name a state of it (hint: --fail-at "
                             "%s/S fails state S in every instance, %s/KEY/S "
                             "in one)", spec, path, path, path);
    if (ms != NULL && ms->kind == ENGINE_MAP)
      return cairn_error_set(err, CAIRN_E_INVAL,
                             "--fail-at '%s': '%s' is a map state; name one "
                             "of its instances (hint: --fail-at %s/KEY, the "
                             "KEY of an item)", spec, path, path);
    const char *slash = a == NULL ? strrchr(path, '/') : NULL;
    if (slash != NULL) {
      /* M/KEY of a map over a used workflow: an instance is a workflow,
       * not one action */
      char m[320];
      snprintf(m, sizeof m, "%.*s", (int)(slash - path), path);
      const struct engine_state *mm = engine_workflow_state(wf, m);
      if (mm != NULL && mm->kind == ENGINE_MAP && mm->use_frame >= 0)
        return cairn_error_set(err, CAIRN_E_INVAL,
                               "--fail-at '%s': '%s' is an instance of map "
                               "'%s' over a used workflow; name a state of "
                               "it (hint: --fail-at %s/S fails its state S, "
                               "%s/S that state in every instance)", spec,
                               path, m, path, m);
    }
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
  /* --fail-undo and --fail-ready: each path an action with that part */
  const struct {
    const char *const *paths;
    size_t n;
    enum paths_of which;
    const char *option, *with;
  } parts[] = {
    {sim->fail_undo, sim->nfail_undo, PATHS_UNDO, "--fail-undo",
     "an undo"},
    {sim->fail_ready, sim->nfail_ready, PATHS_READY, "--fail-ready",
     "a ready check"},
  };
  for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++)
    for (size_t i = 0; i < parts[k].n; i++) {
      const char *path = parts[k].paths[i];
      const struct engine_action *a = engine_workflow_action_at(wf, path);
      if (a == NULL || !has(a, parts[k].which)) {
        action_paths(wf, parts[k].which, list, sizeof list);
        return cairn_error_set(err, CAIRN_E_INVAL,
                               "%s '%s': workflow '%s' has no action state "
                               "'%s' with %s (hint: states with %s are %s)",
                               parts[k].option, path, wf->name, path,
                               parts[k].with, parts[k].with,
                               list[0] ? list : "none");
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
