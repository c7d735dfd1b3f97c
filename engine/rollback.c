/* Rollback: the undo plan, computed from a run's events alone, journaled
 * whole before the first undo runs, then carried out one undo at a time.
 *
 * The plan is every completed action path whose action has an undo, in
 * reverse order of completion, where the branches of one entry of a
 * parallel state are undone in reverse order of declaration, whatever
 * order they finished in. A path counts as completed when an
 * action.finished, probe.finished or decision.assumed says succeeded. A
 * branch cancelled because a sibling failed counts as completed when it
 * has no probe (it may have done part of its work, and an undo must
 * tolerate nothing to undo), and otherwise only when its probe succeeded.
 * A state completed twice (a loop through a choice) is undone twice, the
 * later completion first.
 *
 * A map over a used workflow sits where its entry is in that order, its
 * instances grouped: the instances in reverse item order, whatever order
 * they ran in; inside one instance, its own actions in reverse order of
 * completion, by the same rules (its parallel branches and map instances
 * as above). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/proc.h"
#include "engine/runtime.h"
#include "engine/template.h"

/* ---- the planner: a fold over a run's events ---- */

/* A completed action with an undo: a plan step to be. */
struct completion {
  char *path;                     /* owned */
  const char *state, *adapter;    /* the workflow's */
  int branch, entry, outer, sub, cancelled;
  size_t i;                       /* its place in journal order */
  json_t *inputs, *outputs;       /* owned references */
  json_t *item, *index;           /* a map instance's, owned; else NULL */
};

struct planner {
  const struct engine_workflow *wf;
  json_t *inputs;     /* path -> inputs of its latest state.entered (paths
                         whose action has an undo: no other is read), as
                         kept_inputs keeps them */
  struct cairn_buf text; /* reused by kept_inputs */
  json_t *items;      /* map instance path -> [index, item] */
  struct completion *done; /* completions, in journal order */
  size_t ndone, capdone;
  json_t *sub;        /* instance "M/KEY" of a map over a used workflow ->
                         entries of its states so far */
  int entry;          /* counts entries of top-level states */
  int planned;        /* a rollback.planned was seen: nothing more to add */
  int nomem;          /* a completion could not be kept */
};

static void completion_release(struct completion *c)
{
  free(c->path);
  json_decref(c->inputs);
  json_decref(c->outputs);
  json_decref(c->item);
  json_decref(c->index);
}

static int planner_init(struct planner *p, const struct engine_workflow *wf)
{
  memset(p, 0, sizeof *p);
  p->wf = wf;
  p->inputs = json_object();
  p->items = json_object();
  p->sub = json_object();
  return p->inputs && p->items && p->sub ? 0 : CAIRN_E_NOMEM;
}

static void planner_release(struct planner *p)
{
  cairn_buf_release(&p->text);
  json_decref(p->inputs);
  json_decref(p->items);
  json_decref(p->sub);
  for (size_t i = 0; i < p->ndone; i++)
    completion_release(&p->done[i]);
  free(p->done);
}

/* An entry's inputs as the planner keeps them until a plan is made: an
 * object as its canonical text in a string (a 10,000-state run kept
 * some 2 MB of objects for its 5,000 undos, which only a rollback
 * reads), none as null, anything else in a one-item array. NULL when out
 * of memory. */
static json_t *kept_inputs(struct planner *p, json_t *in)
{
  if (in == NULL)
    return json_null();
  if (!json_is_object(in))
    return json_pack("[O]", in);
  cairn_buf_reset(&p->text);
  if (journal_canonical_add(&p->text, in) != 0)
    return NULL;
  return json_stringn_nocheck(p->text.p, p->text.len);
}

/* The inputs of a plan step from what kept_inputs kept (a new
 * reference; NULL when out of memory). */
static json_t *step_inputs(json_t *kept)
{
  if (json_is_array(kept))
    return json_incref(json_array_get(kept, 0));
  if (!json_is_string(kept))
    return json_incref(kept);
  return json_loadb(json_string_value(kept), json_string_length(kept),
                    JSON_ALLOW_NUL, NULL);
}

static int is_undo_path(const char *path)
{
  return strncmp(path, JOURNAL_UNDO_PREFIX, strlen(JOURNAL_UNDO_PREFIX)) == 0;
}

const struct engine_action *engine__action_at(
    const struct engine_workflow *wf, const char *path,
    const struct engine_state **st_out, int *branch)
{
  const char *key;
  const struct engine_state *st = engine_workflow_path_state(wf, path, &key);

  *st_out = st;
  *branch = -1;
  if (st == NULL)
    return NULL;
  if (key == NULL)
    return st->kind == ENGINE_DO ? &st->action : NULL;
  if (st->kind == ENGINE_MAP) /* an instance; one over a used workflow
                                 runs states, not an action */
    return st->use_frame < 0 ? &st->action : NULL;
  if (st->kind != ENGINE_PARALLEL)
    return NULL;
  if (wf->branch_at != NULL) {
    char bp[640];
    json_t *i;
    snprintf(bp, sizeof bp, "%s/%s", st->name, key);
    if ((i = json_object_get(wf->branch_at, bp)) == NULL)
      return NULL;
    *branch = (int)json_integer_value(i);
    return &st->branches[*branch].action;
  }
  for (size_t i = 0; i < st->nbranches; i++) /* still loading */
    if (strcmp(st->branches[i].name, key) == 0) {
      *branch = (int)i;
      return &st->branches[i].action;
    }
  return NULL;
}

const struct engine_action *engine_workflow_action_at(
    const struct engine_workflow *wf, const char *path)
{
  const struct engine_state *st;
  int branch;
  return engine__action_at(wf, path, &st, &branch);
}

static void planner_add(struct planner *p, const char *path, json_t *outputs,
                        int cancelled)
{
  const struct engine_state *st;
  int branch;
  const struct engine_action *a = engine__action_at(p->wf, path, &st, &branch);

  if (a == NULL || a->undo == NULL)
    return;
  json_t *inputs = json_object_get(p->inputs, path);
  json_t *inst = json_object_get(p->items, path);
  size_t il = engine_workflow_instance_len(p->wf, path);
  char ip[320];
  int outer = -1, sub = 0;
  if (inst != NULL) /* map instances: undone in reverse item order */
    branch = (int)json_integer_value(json_array_get(inst, 0));
  if (il > 0 && il < sizeof ip) {
    /* inside an instance of a map over a used workflow: grouped by it */
    snprintf(ip, sizeof ip, "%.*s", (int)il, path);
    outer = (int)json_integer_value(json_array_get(
        json_object_get(p->items, ip), 0));
    sub = (int)json_integer_value(json_object_get(p->sub, ip));
  }
  struct completion c = {
      strdup(path), st->name, a->undo->adapter, branch, p->entry, outer, sub,
      cancelled, 0, inputs ? json_incref(inputs) : json_object(),
      outputs ? json_incref(outputs) : json_object(), NULL, NULL};
  if (inst != NULL && json_array_get(inst, 1) != NULL) {
    c.item = json_incref(json_array_get(inst, 1));
    c.index = json_incref(json_array_get(inst, 0));
  }
  if (c.path == NULL || c.inputs == NULL || c.outputs == NULL) {
    completion_release(&c);
    p->nomem = 1;
    return;
  }
  /* One undo per entry of a path: a later attempt of the same entry (it
   * succeeded after one that only failed its ready check) replaces it. */
  for (size_t i = p->ndone; i-- > 0;) {
    struct completion *o = &p->done[i];
    if (o->entry != p->entry)
      break;
    if (strcmp(o->path, path) == 0 && o->sub == sub) {
      completion_release(o);
      *o = c;
      return;
    }
  }
  if (p->ndone == p->capdone) {
    size_t cap = p->capdone ? p->capdone * 2 : 64;
    struct completion *d = realloc(p->done, cap * sizeof *d);
    if (d == NULL) {
      completion_release(&c);
      p->nomem = 1;
      return;
    }
    p->done = d;
    p->capdone = cap;
  }
  p->done[p->ndone++] = c;
}

static void planner_feed(struct planner *p, const char *kind,
                         const char *path, json_t *payload)
{
  const char *outcome = NULL;

  /* only how an action or a probe ended has an outcome that counts */
  if (strcmp(kind, JOURNAL_EV_ACTION_FINISHED) == 0 ||
      strcmp(kind, JOURNAL_EV_PROBE_FINISHED) == 0 ||
      strcmp(kind, JOURNAL_EV_DECISION_ASSUMED) == 0)
    outcome = json_string_value(json_object_get(payload, "outcome"));
  if (p->planned || path == NULL || is_undo_path(path)) {
    if (strcmp(kind, JOURNAL_EV_ROLLBACK_PLANNED) == 0)
      p->planned = 1;
    return;
  }
  if (strcmp(kind, JOURNAL_EV_ROLLBACK_PLANNED) == 0) {
    p->planned = 1;
  } else if (strcmp(kind, JOURNAL_EV_STATE_ENTERED) == 0) {
    size_t il = engine_workflow_instance_len(p->wf, path);
    const char *key = NULL;
    if (il == 0 && engine_workflow_state(p->wf, path) != NULL)
      p->entry++; /* a state, not one of its branches or instances */
    else if (il > 0 && path[il] == '/' &&
             engine_workflow_path_state(p->wf, path, &key) != NULL &&
             key == NULL) {
      /* a state of an instance: an entry within it */
      char ip[320];
      snprintf(ip, sizeof ip, "%.*s", (int)il, path);
      json_object_set_new(p->sub, ip, json_integer(
          json_integer_value(json_object_get(p->sub, ip)) + 1));
    }
    const struct engine_state *st;
    int branch;
    const struct engine_action *a = engine__action_at(p->wf, path, &st,
                                                      &branch);
    json_t *in = json_object_get(payload, "inputs");
    if (a != NULL && a->undo != NULL &&
        json_object_set_new(p->inputs, path, kept_inputs(p, in)) != 0)
      p->nomem = 1;
    json_t *item = json_object_get(payload, "item");
    if (item != NULL)
      json_object_set_new(p->items, path,
                          json_pack("[O,O]", json_object_get(payload,
                                                             "index"),
                                    item));
  } else if (outcome == NULL) {
    return;
  } else if (strcmp(kind, JOURNAL_EV_ACTION_FINISHED) == 0) {
    if (strcmp(outcome, "succeeded") == 0) {
      planner_add(p, path, json_object_get(payload, "outputs"), 0);
    } else if (json_is_true(json_object_get(payload, "took_effect"))) {
      /* failed its ready check: it ran, so it is undone, once per entry */
      planner_add(p, path, json_object_get(payload, "outputs"), 0);
    } else if (strcmp(outcome, "cancelled") == 0) {
      const struct engine_state *st;
      int branch;
      const struct engine_action *a = engine__action_at(p->wf, path, &st, &branch);
      if (a && a->probe == NULL) /* its undo sees what it had learned */
        planner_add(p, path, json_object_get(payload, "outputs"), 1);
    }
  } else if (strcmp(kind, JOURNAL_EV_PROBE_FINISHED) == 0 ||
             strcmp(kind, JOURNAL_EV_DECISION_ASSUMED) == 0) {
    if (strcmp(outcome, "succeeded") == 0)
      planner_add(p, path, json_object_get(payload, "outputs"), 0);
  }
}

static int cmp_completion(const void *a, const void *b)
{
  const struct completion *x = *(const struct completion *const *)a;
  const struct completion *y = *(const struct completion *const *)b;

  /* later entries first; within one, later instances of a map over a
   * used workflow first, and in one of them its later entries; then
   * later-declared branches first */
  if (x->entry != y->entry)
    return x->entry > y->entry ? -1 : 1;
  if (x->outer != y->outer)
    return x->outer > y->outer ? -1 : 1;
  if (x->sub != y->sub)
    return x->sub > y->sub ? -1 : 1;
  if (x->branch != y->branch)
    return x->branch > y->branch ? -1 : 1;
  return x->i > y->i ? -1 : x->i < y->i;
}

/* The plan's steps, in the order they run (a new array; NULL when out of
 * memory). */
static json_t *planner_steps(struct planner *p)
{
  size_t n = p->ndone;
  struct completion **v = calloc(n ? n : 1, sizeof *v);
  json_t *steps = json_array();
  json_t *seen = json_object();

  if (p->nomem || v == NULL || steps == NULL || seen == NULL) {
    free(v);
    json_decref(steps);
    json_decref(seen);
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    v[i] = &p->done[i];
    v[i]->i = i;
  }
  qsort(v, n, sizeof *v, cmp_completion);
  for (size_t i = 0; i < n; i++) {
    const char *path = v[i]->path;
    json_int_t k = json_integer_value(json_object_get(seen, path)) + 1;
    char undo_path[400];

    json_object_set_new(seen, path, json_integer(k));
    if (k == 1)
      snprintf(undo_path, sizeof undo_path, JOURNAL_UNDO_PREFIX "%s", path);
    else
      snprintf(undo_path, sizeof undo_path, JOURNAL_UNDO_PREFIX "%s#%d",
               path, (int)k);
    json_t *s = json_pack("{s:s,s:s,s:s,s:s,s:o,s:O}", "path", path,
                          "undo_path", undo_path, "state", v[i]->state,
                          "adapter", v[i]->adapter, "inputs",
                          step_inputs(v[i]->inputs), "outputs",
                          v[i]->outputs);
    if (s == NULL) {
      free(v);
      json_decref(steps);
      json_decref(seen);
      return NULL;
    }
    if (v[i]->cancelled)
      json_object_set_new(s, "cancelled", json_true());
    if (v[i]->item != NULL) {
      json_object_set(s, "item", v[i]->item);
      json_object_set(s, "index", v[i]->index);
    }
    json_array_append_new(steps, s);
  }
  free(v);
  json_decref(seen);
  return steps;
}

static int planner_event_cb(const struct journal_event *ev, void *ud)
{
  planner_feed(ud, ev->kind, ev->state, ev->payload);
  return 0;
}

/* The same fold, kept by a running engine as it commits each event, so
 * that a failure late in a long run does not read the run back. */
struct engine__planner {
  struct planner p;
};

struct engine__planner *engine__planner_new(const struct engine_workflow *wf)
{
  struct engine__planner *pl = calloc(1, sizeof *pl);
  if (pl == NULL)
    return NULL;
  if (planner_init(&pl->p, wf) != 0) {
    engine__planner_free(pl);
    return NULL;
  }
  return pl;
}

void engine__planner_feed(struct engine__planner *pl, const char *kind,
                          const char *state, json_t *payload)
{
  planner_feed(&pl->p, kind, state, payload);
}

void engine__planner_free(struct engine__planner *pl)
{
  if (pl == NULL)
    return;
  planner_release(&pl->p);
  free(pl);
}

/* Folds the committed events of run_id (and, when rt is given, the
 * events it has queued but not yet committed) into *steps. */
static int plan_compute(struct journal *j, const struct engine_workflow *wf,
                        const char *run_id, struct engine__rt *rt,
                        json_t **steps, struct cairn_error *err)
{
  struct planner p;
  int rc = 0;

  *steps = NULL;
  if (planner_init(&p, wf) != 0) {
    rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    goto out;
  }
  rc = journal_event_foreach(j, run_id, 0, planner_event_cb, &p, err);
  for (size_t i = 0; rc == 0 && rt && i < rt->nqueue; i++)
    planner_feed(&p, rt->queue[i].kind, rt->queue[i].state,
                 rt->queue[i].payload);
  if (rc == 0 && (*steps = planner_steps(&p)) == NULL)
    rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
out:
  planner_release(&p);
  return rc;
}

#ifdef CAIRN_TEST_HOOKS
/* With CAIRN_TEST_PLAN_CHECK set, the incremental plan is checked against
 * the one read back from the journal; a difference aborts the run (the
 * CLI tests set it, so every rollback they make is checked). */
static void plan_check(struct engine__rt *rt, json_t *steps)
{
  struct cairn_error err = {0};
  json_t *want = NULL;
  const char *e = getenv("CAIRN_TEST_PLAN_CHECK");

  if (e == NULL || *e == '\0' || steps == NULL)
    return;
  if (plan_compute(rt->j, rt->wf, rt->run_id, rt, &want, &err) != 0 ||
      !json_equal(want, steps)) {
    char *a = json_dumps(steps, JSON_SORT_KEYS | JSON_COMPACT);
    char *b = want ? json_dumps(want, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
    fprintf(stderr, "cairn: test hook: the incremental undo plan differs "
            "from the journal's (%s)\nkept:    %s\njournal: %s\n", err.msg,
            a ? a : "?", b ? b : "?");
    abort();
  }
  json_decref(want);
}
#endif

/* ---- carrying out the plan ---- */

/* "a, b, c" of the `path` of steps [from, to). */
static void list_paths(json_t *plan, size_t from, size_t to, char *out,
                       size_t n)
{
  size_t len = 0;
  out[0] = '\0';
  for (size_t i = from; i < to && len < n; i++)
    len += (size_t)snprintf(out + len, n - len, "%s%s", i > from ? ", " : "",
                            json_string_value(json_object_get(
                                json_array_get(plan, i), "path")));
}

static json_t *paths_array(json_t *plan, size_t from, size_t to)
{
  json_t *a = json_array();
  for (size_t i = from; i < to; i++)
    json_array_append(a, json_object_get(json_array_get(plan, i), "path"));
  return a;
}

void engine__rollback_begin(struct engine__rt *rt, const char *from,
                            const char *error)
{
  struct cairn_error err = {0};
  json_t *steps = NULL;
  json_t *p;

  snprintf(rt->rb_error, sizeof rt->rb_error, "%s", error ? error : "");
  rt->rb_requested = from == NULL;
  if (from)
    snprintf(rt->res->state, sizeof rt->res->state, "%s", from);
  if (rt->planner != NULL) {
    /* kept as events committed: add those still queued, and done */
    for (size_t i = 0; i < rt->nqueue; i++)
      planner_feed(&rt->planner->p, rt->queue[i].kind, rt->queue[i].state,
                   rt->queue[i].payload);
    steps = planner_steps(&rt->planner->p);
    engine__planner_free(rt->planner);
    rt->planner = NULL;
    if (steps == NULL)
      cairn_error_set(&err, CAIRN_E_NOMEM, "out of memory");
#ifdef CAIRN_TEST_HOOKS
    plan_check(rt, steps);
#endif
  } else {
    plan_compute(rt->j, rt->wf, rt->run_id, rt, &steps, &err);
  }
  if (steps == NULL) {
    /* The journal cannot be read: nothing is undone, say why. */
    char msg[2200];
    snprintf(msg, sizeof msg, "%s; cannot plan the rollback: %s",
             rt->rb_error, err.msg);
    engine__end_run(rt, JOURNAL_STATUS_ROLLBACK_FAILED, from, msg, NULL);
    return;
  }
  /* Queued behind the transition into the rollback: one commit. */
  p = json_pack("{s:s,s:O}", "reason", from ? "failure" : "request", "steps",
                steps);
  if (from)
    json_object_set_new(p, "state", json_string(from));
  if (error && *error)
    json_object_set_new(p, "error", engine__text(error));
  engine__emit(rt, JOURNAL_EV_ROLLBACK_PLANNED, from, 0, p);
  json_decref(rt->plan);
  rt->plan = steps;
  rt->plan_next = 0;
  engine__sx_retire(rt, rt->cur);
  rt->cur = NULL;
  engine__undo_next(rt);
}

struct engine__sx *engine__undo_sx(struct engine__rt *rt, size_t i,
                                   struct cairn_error *err)
{
  json_t *step = json_array_get(rt->plan, i);
  const char *path = json_string_value(json_object_get(step, "path"));
  const char *undo_path = json_string_value(json_object_get(step,
                                                            "undo_path"));
  const struct engine_state *st;
  int branch;
  const struct engine_action *a;
  struct engine__sx *sx;

  if (path == NULL || undo_path == NULL) {
    cairn_error_set(err, CAIRN_E_JOURNAL, "step %zu of the rollback plan of "
                    "run %s has no path", i + 1, rt->run_id);
    return NULL;
  }
  a = engine__action_at(rt->wf, path, &st, &branch);
  if (a == NULL || a->undo == NULL) {
    cairn_error_set(err, CAIRN_E_CHANGED, "the rollback plan of run %s "
                    "undoes '%s', which has no undo in workflow '%s' any "
                    "more", rt->run_id, path, rt->wf->file);
    return NULL;
  }
  sx = calloc(1, sizeof *sx);
  if (sx == NULL || (sx->tasks = calloc(1, sizeof *sx->tasks)) == NULL) {
    free(sx);
    cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    return NULL;
  }
  sx->st = st;
  sx->ntasks = sx->open = 1;
  sx->is_undo = 1;
  sx->step = i;
  /* an undo inside an instance of a map over a used workflow renders
   * with that instance's params */
  sx->cx = engine__undo_view(rt, path);
  sx->cx_owned = sx->cx != NULL;
  snprintf(sx->path, sizeof sx->path, "%s", undo_path);
  if (engine__task_init(rt, sx, &sx->tasks[0], undo_path, a->undo) != 0) {
    engine__sx_destroy(sx);
    cairn_error_set(err, CAIRN_E_NOMEM, "cannot set up the undo of '%s'",
                    path);
    return NULL;
  }
  /* the undo of a map instance sees its item; journaled with a secret
   * redacted, it is rendered again from the map's items */
  json_t *item = json_object_get(step, "item");
  if (item != NULL && engine__has_redaction(item) &&
      json_is_integer(json_object_get(step, "index")))
    sx->tasks[0].item = engine__map_item(
        rt, st, (size_t)json_integer_value(json_object_get(step, "index")));
  if (sx->tasks[0].item == NULL)
    sx->tasks[0].item = json_incref(item);
  return sx;
}


/* The outputs a forward step journaled, as its undo reads them: with the
 * value each output a newer adapter added takes for a step an older cairn
 * journaled without it (adapter_desc.absent), so a run started before
 * still rolls back. A new reference (an empty object when none). */
static json_t *outputs_then(const struct engine_action *a, json_t *outputs)
{
  const struct adapter_desc *d = a ? adapter_find(a->adapter) : NULL;
  json_t *o = json_is_object(outputs) ? json_copy(outputs) : json_object();

  for (size_t i = 0; o && d && d->absent && d->absent[i].name; i++)
    if (json_object_get(o, d->absent[i].name) == NULL)
      json_object_set_new(o, d->absent[i].name,
                          json_loads(d->absent[i].json, JSON_DECODE_ANY,
                                     NULL));
  return o;
}

int engine__undo_resolve(struct engine__rt *rt, struct engine__task *t,
                         json_t *step, struct cairn_error *err)
{
  json_t *input = json_incref(json_object_get(step, "inputs"));
  const struct engine_state *st;
  int branch;
  const struct engine_action *a = engine__action_at(
      rt->wf, json_string_value(json_object_get(step, "path")), &st, &branch);

  /* The journal holds the forward inputs with secrets as ***: the undo
   * needs the real values (a password to migrate back with), so those are
   * rendered again from the state's `with`, as resume does for a forward
   * action. They are journaled redacted like any input. */
  if (a && engine__has_redaction(input)) {
    json_t *rendered = NULL, *full = NULL;
    json_t *scope = engine__scope_in(rt, t->sx->cx, st, t->item);
    if (scope && engine_template_render(a->with, scope, &rendered, NULL) == 0 &&
        adapter_apply_defaults(adapter_find(a->adapter), rendered, &full,
                               NULL) == 0) {
      json_decref(input);
      input = full;
    }
    json_decref(rendered);
    json_decref(scope);
  }
  json_object_set_new(rt->scope, "self",
                      json_pack("{s:o,s:o}", "input", input, "output",
                                outputs_then(a, json_object_get(step,
                                                                "outputs"))));
  int rc = engine__task_resolve(t, err);
  json_object_del(rt->scope, "self");
  return rc;
}

void engine__undo_next(struct engine__rt *rt)
{
  size_t n = json_array_size(rt->plan);
  struct cairn_error err = {0};
  struct engine__sx *sx;

  engine__sx_retire(rt, rt->cur);
  rt->cur = NULL;
  if (rt->interrupted) {
    engine__finish_interrupted(rt);
    return;
  }
  if (rt->plan_next >= n) {
    char done[1200], msg[2800];
    list_paths(rt->plan, 0, n, done, sizeof done);
    if (rt->rb_error[0])
      snprintf(msg, sizeof msg, "%s; rolled back: %s", rt->rb_error,
               n ? done : "nothing to undo");
    else
      snprintf(msg, sizeof msg, "rolled back: %s",
               n ? done : "nothing to undo");
    /* A failed deploy stays failed once undone; only a rollback on
     * request turns a run into rolled_back. */
    engine__end_run(rt, rt->rb_requested ? JOURNAL_STATUS_ROLLED_BACK
                                         : JOURNAL_STATUS_FAILED, NULL, msg,
                    json_pack("{s:o,s:[]}", "undone", paths_array(rt->plan, 0,
                                                                 n),
                              "left"));
    if (rt->rb_requested)
      rt->res->outcome = ENGINE_ROLLED_BACK;
    return;
  }
  json_t *step = json_array_get(rt->plan, rt->plan_next);
  sx = engine__undo_sx(rt, rt->plan_next, &err);
  if (sx == NULL) {
    if (err.code == CAIRN_E_NOMEM) {
      rt->fatal = CAIRN_E_NOMEM;
      return;
    }
    /* cannot happen in a run that planned with this workflow; on resume
     * engine__undo_sx is checked before anything is journaled */
    engine__end_run(rt, JOURNAL_STATUS_ROLLBACK_FAILED, NULL, err.msg, NULL);
    return;
  }
  rt->cur = sx;
  struct engine__task *t = &sx->tasks[0];
  int rc = engine__undo_resolve(rt, t, step, &err);
  json_t *p = json_pack("{s:s,s:s}", "kind", "undo", "of",
                        json_string_value(json_object_get(step, "path")));
  if (engine__task_entered(t, p, rc, &err, 0) != 0)
    return;
  engine__task_attempt(t);
}

void engine__undo_done(struct engine__rt *rt, struct engine__sx *sx)
{
  struct engine__task *t = &sx->tasks[0];
  size_t n = json_array_size(rt->plan);

  if (rt->interrupted) {
    engine__finish_interrupted(rt);
    return;
  }
  if (!sx->failed) {
    rt->plan_next = sx->step + 1;
    engine__undo_next(rt);
    return;
  }
  char undone[1200], left[1200], msg[4000];
  list_paths(rt->plan, 0, sx->step, undone, sizeof undone);
  /* left: what is still to undo, the failed step first */
  list_paths(rt->plan, sx->step, n, left, sizeof left);
  if (rt->opt->sim) /* no log, no run to resume: the same text each time */
    snprintf(msg, sizeof msg, "undo of '%s' failed: %s; undone: %s; left: %s",
             json_string_value(json_object_get(json_array_get(rt->plan,
                                                              sx->step),
                                               "path")),
             cairn_msg(t->error), undone[0] ? undone : "nothing",
             left[0] ? left : "nothing");
  else {
    char log[ENGINE__LOG_PATH_MAX + 80];
    engine__log_note(t, log, sizeof log);
    snprintf(msg, sizeof msg,
             "undo of '%s' failed: %s%s; undone: %s; left: %s; fix "
             "the cause, then 'cairn resume %s' retries the rest",
             json_string_value(json_object_get(json_array_get(rt->plan,
                                                              sx->step),
                                               "path")),
             cairn_msg(t->error), log, undone[0] ? undone : "nothing",
             left[0] ? left : "nothing", rt->run_id);
  }
  json_t *extra = json_pack("{s:o,s:O,s:o}", "undone",
                            paths_array(rt->plan, 0, sx->step), "failed",
                            json_object_get(json_array_get(rt->plan,
                                                           sx->step),
                                            "path"),
                            "left", paths_array(rt->plan, sx->step + 1, n));
  engine__end_run(rt, JOURNAL_STATUS_ROLLBACK_FAILED, t->path, msg, extra);
}

/* ---- the public entry points ---- */

/* For a state s of a used workflow, at journal path `path`: scope with
 * that workflow's params (as its use state, or its instance of a map over
 * it, journaled them) and its own states. NULL otherwise. */
static json_t *frame_view(const struct engine_workflow *wf,
                          const struct journal_replay *rp, json_t *scope,
                          const struct engine_state *s, const char *path)
{
  const struct engine_frame *f = engine_workflow_frame(wf, s);
  const struct journal_step *u;
  json_t *view, *states, *v;
  const char *k, *uname;
  char upath[320];
  size_t n, il;

  if (f == NULL || (view = json_copy(scope)) == NULL)
    return NULL;
  uname = wf->states[f->use_state].name;
  snprintf(upath, sizeof upath, "%s", uname);
  if ((il = engine_workflow_instance_len(wf, path)) > 0) {
    /* inside instance "M/KEY": the use state "M/X" runs as "M/KEY/X" */
    size_t ml = il;
    while (ml > 0 && path[ml - 1] != '/')
      ml--;
    if (ml > 0 && strncmp(uname, path, ml - 1) == 0 &&
        (uname[ml - 1] == '\0' || uname[ml - 1] == '/'))
      snprintf(upath, sizeof upath, "%.*s%s", (int)il, path,
               uname + ml - 1);
  }
  u = journal_replay_step(rp, upath);
  json_object_set_new(view, "params", u && u->inputs ? json_incref(u->inputs)
                                                     : json_object());
  states = json_object();
  strncat(upath, "/", sizeof upath - strlen(upath) - 1);
  n = strlen(upath);
  json_object_foreach(json_object_get(scope, "states"), k, v)
    if (strncmp(k, upath, n) == 0 && strchr(k + n, '/') == NULL)
      json_object_set(states, k + n, v);
  json_object_set_new(view, "states", states);
  return view;
}

/* Adds to each step the inputs its undo would run with now (undo_inputs,
 * secrets shown as ***), or why they cannot be resolved (undo_error). */
static void preview_undo_inputs(struct journal *j,
                                const struct engine_workflow *wf,
                                const struct journal_replay *rp,
                                json_t *steps)
{
  char dir[4096];
  const char *env = json_string_value(json_object_get(rp->started, "env"));
  const struct engine_environment *e = env && *env ? engine_workflow_env(wf,
                                                                         env)
                                                   : NULL;
  struct cairn_error err = {0};
  json_t *scope = json_pack("{s:O,s:o,s:{},s:{},s:{s:s}}", "params",
                            json_object_get(rp->started, "params"), "vars",
                            e ? json_deep_copy(e->vars) : json_object(),
                            "secrets", "states", "run", "id", rp->run_id);
  size_t i;
  json_t *st;

  if (scope == NULL)
    return;
  for (i = 0; i < wf->nsecrets; i++)
    json_object_set_new(json_object_get(scope, "secrets"), wf->secrets[i],
                        json_string("***"));
  if (engine_run_dir(j, rp->run_id, dir, sizeof dir, &err) == 0)
    json_object_set_new(json_object_get(scope, "run"), "dir",
                        json_string(dir));
  engine__rebuild_outputs(wf, json_object_get(scope, "states"), rp);
  json_array_foreach(steps, i, st) {
    const struct engine_state *s;
    int branch;
    const struct engine_action *a = engine__action_at(
        wf, json_string_value(json_object_get(st, "path")), &s, &branch);
    json_t *rendered = NULL, *inputs = NULL;
    if (a == NULL || a->undo == NULL)
      continue;
    json_object_set_new(scope, "self",
                        json_pack("{s:O,s:o}", "input",
                                  json_object_get(st, "inputs"), "output",
                                  outputs_then(a, json_object_get(st,
                                                                  "outputs"))));
    if (json_object_get(st, "item") != NULL)
      json_object_set(scope, "item", json_object_get(st, "item"));
    else
      json_object_del(scope, "item");
    json_t *view = frame_view(wf, rp, scope, s,
                              json_string_value(json_object_get(st, "path")));
    int rc = engine_template_render(a->undo->with, view ? view : scope,
                                    &rendered, &err);
    json_decref(view);
    if (rc == 0)
      rc = adapter_apply_defaults(adapter_find(a->undo->adapter), rendered,
                                  &inputs, &err);
    if (rc == 0)
      json_object_set_new(st, "undo_inputs", inputs);
    else
      json_object_set_new(st, "undo_error", engine__text(err.msg));
    json_decref(rendered);
  }
  json_decref(scope);
}

int engine_not_started(const struct journal_step *s)
{
  return s->phase == JOURNAL_PHASE_INTERRUPTED && s->finished &&
         json_is_false(json_object_get(s->finished, "started"));
}

const struct journal_step *engine_cut_short(const struct journal_replay *rp)
{
  for (size_t i = 0; i < rp->nsteps; i++)
    if ((rp->steps[i].phase == JOURNAL_PHASE_STARTED ||
         rp->steps[i].phase == JOURNAL_PHASE_INTERRUPTED) &&
        !engine_not_started(&rp->steps[i]))
      return &rp->steps[i];
  return NULL;
}

/* Why a rollback of run_id (replayed as rp) on request is refused now, as
 * an error in err and its code (CAIRN_E_LOCKED: it or another run of its
 * workflow and environment still runs; CAIRN_E_STATE: it waits, was cut
 * short, is rolled back or being rolled back, or a newer run replaced
 * it), or 0 when it may go on. newer gets the run that replaced it, as
 * engine_superseded says. Shared by the rollback and its dry run, so a
 * dry run says what the real one would do. */
static int rollback_refusal(struct journal *j,
                            const struct engine_workflow *wf,
                            const char *run_id,
                            const struct journal_replay *rp,
                            int allow_superseded,
                            char newer[JOURNAL_RUN_ID_LEN],
                            struct cairn_error *err)
{
  const char *env = json_string_value(json_object_get(rp->started, "env"));
  const char *status = rp->status;
  struct journal_lock_holder holder;
  int alive = 0;

  if (journal_lock_get(j, wf->name, env ? env : "", &holder, &alive, NULL) !=
      0)
    alive = 0; /* free, or not readable: the rollback's own take says */
  int ours = alive && strcmp(holder.run_id, run_id) == 0;
  if (ours && strcmp(status, JOURNAL_STATUS_RUNNING) == 0)
    return cairn_error_set(err, CAIRN_E_LOCKED,
                           "run %s is still running (pid %d on %s): wait for "
                           "it to end, or interrupt it first", run_id,
                           holder.pid, holder.host);
  if (strcmp(status, JOURNAL_STATUS_ROLLED_BACK) == 0)
    return cairn_error_set(err, CAIRN_E_STATE,
                           "run %s was already rolled back: nothing to undo",
                           run_id);
  if (strcmp(status, JOURNAL_STATUS_ABANDONED) == 0)
    return cairn_error_set(err, CAIRN_E_STATE,
                           "run %s was abandoned: it ended where it stood, "
                           "and is not undone on request (hint: 'cairn show "
                           "%s' lists what it did)", run_id, run_id);
  /* another live run of this workflow and environment: the real one
   * would wait for no lock, and a dry run says so first */
  if (alive && !ours)
    return journal_lock_error(err, wf->name, env ? env : "", &holder);
  if (strcmp(status, JOURNAL_STATUS_FAILED) != 0 &&
      (rp->rollback || strcmp(status, JOURNAL_STATUS_ROLLBACK_FAILED) == 0))
    return cairn_error_set(err, CAIRN_E_STATE,
                           "run %s is being rolled back already (hint: "
                           "'cairn resume %s' carries on its rollback)",
                           run_id, run_id);
  if (strcmp(status, JOURNAL_STATUS_FAILED) == 0 && rp->rollback)
    return cairn_error_set(err, CAIRN_E_STATE,
                           "run %s failed and rolled back by itself: nothing "
                           "is left to undo (hint: 'cairn show %s' lists what "
                           "its rollback undid)", run_id, run_id);
  if (strcmp(status, JOURNAL_STATUS_WAITING) == 0)
    return cairn_error_set(err, CAIRN_E_STATE,
                           "run %s is waiting: only a finished run is rolled "
                           "back on request (hint: a waiting run goes on "
                           "with 'cairn approve %s', then 'cairn resume %s', "
                           "or ends with 'cairn reject %s', which undoes "
                           "what it did)", run_id, run_id, run_id, run_id);
  /* A failed run that undid nothing (on_failure: fail, a fail state, a
   * choice that matched nothing) is undone on request like a succeeded
   * one: what it finished is still in place. So is an interrupted one (a
   * "running" one with no live engine, checked above, too) when no step
   * of it was cut short, so that what it did is known; a step that was
   * is for resume to settle first (it re-runs it, probes it or asks). */
  const struct journal_step *s =
      strcmp(status, JOURNAL_STATUS_SUCCEEDED) != 0 &&
              strcmp(status, JOURNAL_STATUS_FAILED) != 0
          ? engine_cut_short(rp)
          : NULL;
  if (s != NULL)
    return cairn_error_set(
        err, CAIRN_E_STATE,
        "run %s is interrupted, and its step '%s' was cut short: whether it "
        "took effect is for resume to settle before anything is undone "
        "(hint: 'cairn resume %s' settles it, by a re-run, its probe or "
        "your --assume, and goes on)", run_id, s->path, run_id);
  return engine_superseded(j, run_id,
                            "rolling it back would run its undo steps under "
                            "that deploy", allow_superseded, newer, err);
}

/* How far a journaled plan's undo of step st got: "done", "failed",
 * "unfinished" (started, not ended: resume decides it) or "pending". */
static const char *undo_progress(const struct journal_replay *rp, json_t *st)
{
  const char *up = json_string_value(json_object_get(st, "undo_path"));
  const struct journal_step *u = up ? journal_replay_step(rp, up) : NULL;

  if (u == NULL)
    return "pending";
  switch (u->phase) {
  case JOURNAL_PHASE_SUCCEEDED:
    return "done";
  case JOURNAL_PHASE_FAILED:
    return "failed";
  default:
    return "unfinished";
  }
}

int engine_rollback_plan(struct journal *j, const struct engine_workflow *wf,
                         const char *run_id, int allow_superseded,
                         json_t **steps, int *journaled, int *refused,
                         struct cairn_error *why, struct cairn_error *err)
{
  struct journal_replay rp;
  size_t i;
  json_t *st;
  int rc;

  *steps = NULL;
  *journaled = 0;
  *refused = 0;
  /* The plan is rendered from the run's events: authenticated first, so
   * a dry run shows what the real one would refuse. */
  rc = journal_run_check(j, run_id, NULL, err);
  if (rc == 0)
    rc = journal_replay(j, run_id, &rp, err);
  if (rc != 0)
    return rc;
  if (rp.rollback) {
    *steps = json_deep_copy(json_object_get(rp.rollback, "steps"));
    *journaled = 1;
    json_array_foreach(*steps, i, st)
      json_object_set_new(st, "progress",
                          json_string(undo_progress(&rp, st)));
  } else {
    rc = plan_compute(j, wf, run_id, NULL, steps, err);
  }
  if (rc == 0) {
    preview_undo_inputs(j, wf, &rp, *steps);
    char newer[JOURNAL_RUN_ID_LEN];
    *refused = rollback_refusal(j, wf, run_id, &rp, allow_superseded, newer,
                                why);
  }
  journal_replay_release(&rp);
  return rc;
}

int engine_rollback(struct journal *j, const struct engine_workflow *wf,
                    const char *run_id, const struct engine_options *opt_in,
                    struct engine_result *res, struct cairn_error *err)
{
  struct journal_replay rp;
  struct engine_options opt = *opt_in;
  struct engine__rt rt;
  struct journal_lock_holder holder;
  int taken_over = 0;
  char actor[300], newer[JOURNAL_RUN_ID_LEN] = "";
  int rc;

  memset(res, 0, sizeof *res);
  /* The undo plan and its inputs come from the run's events: a tampered
   * event would pick what to undo, so they are authenticated first. */
  rc = journal_run_check(j, run_id, NULL, err);
  if (rc == 0)
    rc = journal_replay(j, run_id, &rp, err);
  if (rc != 0)
    return rc;
  snprintf(res->run_id, sizeof res->run_id, "%s", run_id);
  const char *env = json_string_value(json_object_get(rp.started, "env"));
  opt.env = env && *env ? env : NULL;

  rc = rollback_refusal(j, wf, run_id, &rp, opt.allow_superseded, newer,
                        err);
  if (rc != 0)
    goto out;
  if (!opt.allow_changed &&
      (rc = engine_changed(wf, run_id, rp.file_sha256, ENGINE_ROLLBACK_CHANGED,
                           "roll back", err)) != 0)
    goto out;

  rc = engine__rt_init(&rt, j, wf, &opt, res, err);
  if (rc != 0) {
    engine__rt_abort(&rt);
    engine__rt_release(&rt);
    goto out;
  }
  snprintf(rt.run_id, sizeof rt.run_id, "%s", run_id);
  rc = engine__run_params(&rt, &rp, err);
  if (rc == 0)
    rc = engine_run_dir(j, run_id, rt.run_dir, sizeof rt.run_dir, err);
  if (rc == 0)
    rc = engine__lock_orphans(j, wf->name, env ? env : "", run_id, err);
  if (rc == 0)
    rc = journal_lock_acquire(j, wf->name, env ? env : "", run_id, &holder,
                              &taken_over, err);
  if (rc != 0) {
    engine__rt_abort(&rt);
    engine__rt_release(&rt);
    goto out;
  }
  snprintf(res->run_dir, sizeof res->run_dir, "%s", rt.run_dir);
  json_object_set_new(json_object_get(rt.scope, "run"), "id",
                      json_string(run_id));
  json_object_set_new(json_object_get(rt.scope, "run"), "dir",
                      json_string(rt.run_dir));
  engine__rebuild_outputs(wf, json_object_get(rt.scope, "states"), &rp);
  rc = engine__restore_secrets(&rt, &rp, err);
  if (rc == 0)
    rc = engine__rebuild_frames(&rt, &rp, err);
  if (rc != 0) {
    journal_lock_release(j, wf->name, env ? env : "", run_id, NULL);
    engine__rt_abort(&rt);
    engine__rt_release(&rt);
    goto out;
  }

  cairn_actor(opt.actor, actor, sizeof actor);
  rc = journal_begin(j, err);
  if (rc == 0 && taken_over && strcmp(holder.run_id, run_id) != 0)
    rc = engine__append_takeover(&rt, &holder);
  if (rc == 0)
    rc = engine__append_direct(
        &rt, JOURNAL_EV_ROLLBACK_REQUESTED,
        newer[0] ? json_pack("{s:s,s:s}", "actor", actor, "superseded_by",
                             newer)
                 : json_pack("{s:s}", "actor", actor));
  if (rc == 0)
    rc = journal_run_set_status(j, run_id, JOURNAL_STATUS_RUNNING, 0, err);
  if (rc == 0)
    rc = journal_commit(j, err);
  if (rc != 0) {
    journal_rollback(j);
    journal_lock_release(j, wf->name, env ? env : "", run_id, NULL);
    engine__rt_abort(&rt);
    engine__rt_release(&rt);
    goto out;
  }
  engine__notify_direct(&rt);
  engine__rollback_begin(&rt, NULL, NULL);
  rc = engine__rt_loop(&rt);
  engine__rt_release(&rt);
out:
  journal_replay_release(&rp);
  return rc;
}
