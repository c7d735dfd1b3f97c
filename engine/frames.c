/* Use and map states. A used workflow's states run inline, under the use
 * state's path, with their own params and states (a frame; see struct
 * engine_frame); a map state runs its action, or its used workflow (each
 * instance a cursor of its own, see struct engine__cursor), once per item
 * of a list, at most max_concurrency at a time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/runtime.h"
#include "engine/template.h"

#define MAP_KEY_MAX 63

/* Frame f as the cursor being worked on sees it: its instance's own,
 * else an outer instance's, else the run's. */
static json_t *frame_obj(struct engine__rt *rt, int f)
{
  if (f < 0)
    return NULL;
  for (struct engine__cursor *cx = rt->cx; cx; cx = cx->up) {
    json_t *o = json_array_get(cx->frames, (size_t)f);
    if (json_is_object(o))
      return o;
  }
  return json_array_get(rt->frames, (size_t)f);
}

json_t *engine__scope_in(struct engine__rt *rt, struct engine__cursor *cx,
                         const struct engine_state *st, json_t *item)
{
  struct engine__cursor *prev = rt->cx;
  json_t *scope;

  rt->cx = cx;
  scope = engine__scope_for(rt, st, item);
  rt->cx = prev;
  return scope;
}

json_t *engine__scope_for(struct engine__rt *rt,
                          const struct engine_state *st, json_t *item)
{
  const char *k;
  json_t *v, *s, *fr;

  if ((st == NULL || st->frame < 0) && item == NULL)
    return json_incref(rt->scope);
  if ((s = json_object()) == NULL)
    return NULL;
  json_object_foreach(rt->scope, k, v)
    json_object_set(s, k, v);
  if (st != NULL && st->frame >= 0) {
    fr = frame_obj(rt, st->frame);
    v = json_object_get(fr, "params");
    json_object_set_new(s, "params", v ? json_incref(v) : json_object());
    v = json_object_get(fr, "states");
    json_object_set_new(s, "states", v ? json_incref(v) : json_object());
  }
  if (item != NULL)
    json_object_set(s, "item", item);
  return s;
}

/* Renders v (a template string or a value holding some) in scope. In a
 * simulation, whose outputs are placeholders, what does not resolve
 * because of them (src says what comes from them) is kept as written (in
 * an object, key by key); any other failure is a real run's too. *out: a
 * new reference. */
static int render(struct engine__rt *rt, json_t *v, json_t *scope,
                  const struct engine__sim_src *src, json_t **out,
                  struct cairn_error *err)
{
  int rc = json_is_string(v)
               ? engine_template_render_string(json_string_value(v), scope,
                                               out, err)
               : engine_template_render(v, scope, out, err);
  if (rc != 0 && rt->opt->sim &&
      (rc = engine__sim_tolerates(rt, v, NULL, scope, src, err)) == 0) {
    *out = engine__sim_render_keys(v, scope);
    return *out ? 0 : CAIRN_E_NOMEM;
  }
  return rc;
}

/* Does map state st (in the cursor rt->cx) render its items from
 * placeholders? params: its frame's params that came from them. */
static int items_placeholder(struct engine__rt *rt,
                             const struct engine_state *st, json_t *params)
{
  struct engine__sim_src src = {0, NULL, 0, params};
  json_t *scope;
  int reads;

  if (!json_is_string(st->map_items) && !json_is_array(st->map_items))
    return 0;
  scope = engine__scope_for(rt, st, NULL);
  reads = engine__sim_reads(rt, st->map_items, NULL, scope, &src);
  json_decref(scope);
  return reads;
}

void engine__sim_src(struct engine__rt *rt, struct engine__cursor *cx,
                     const struct engine_state *st, int item,
                     struct engine__sim_src *src)
{
  struct engine__cursor *prev = rt->cx;

  memset(src, 0, sizeof *src);
  if (!rt->opt->sim || st == NULL)
    return;
  rt->cx = cx;
  src->params = json_object_get(frame_obj(rt, st->frame), "sim_params");
  if (item && st->kind == ENGINE_MAP)
    src->item = items_placeholder(rt, st, src->params);
  rt->cx = prev;
}

/* The names of object o (a new array), or NULL when it has none. */
static json_t *names_of(json_t *o)
{
  json_t *a = json_object_size(o) ? json_array() : NULL;
  const char *k;
  json_t *v;

  json_object_foreach(o, k, v)
    json_array_append_new(a, json_string(k));
  return a;
}

void engine__frame_record(struct engine__rt *rt,
                          const struct engine_state *st, json_t *outputs)
{
  json_t *fr;

  if (st == NULL || st->frame < 0 ||
      !json_is_object(fr = frame_obj(rt, st->frame)))
    return;
  json_object_set_new(json_object_get(fr, "states"),
                      st->name + strlen(rt->wf->frames[st->frame].prefix),
                      json_pack("{s:O}", "output",
                                outputs ? outputs : json_object()));
}

/* ---- use ---- */

/* Renders a use state's `with` (in a simulation, each param on its own:
 * one that reads placeholder outputs is kept as written, or rendered
 * from them, and named in *ph, an object created then). */
static int use_with(struct engine__rt *rt, const struct engine_state *st,
                    json_t *scope, const struct engine__sim_src *src,
                    json_t **with, json_t **ph, struct cairn_error *err)
{
  const char *k;
  json_t *v;
  int rc = 0;

  if (!rt->opt->sim || !json_is_object(st->use_with))
    return render(rt, st->use_with, scope, src, with, err);
  if ((*with = json_object()) == NULL)
    return CAIRN_E_NOMEM;
  json_object_foreach(st->use_with, k, v) {
    json_t *r = NULL;
    if ((rc = render(rt, v, scope, src, &r, err)) != 0)
      break;
    json_object_set_new(*with, k, r);
    if (engine__sim_reads(rt, v, NULL, scope, src)) {
      if (*ph == NULL && (*ph = json_object()) == NULL)
        return CAIRN_E_NOMEM;
      json_object_set_new(*ph, k, json_true());
    }
  }
  return rc;
}

/* The params a use state gives its workflow: the declared defaults, then
 * its `with` rendered in the using state's scope and checked against the
 * declarations. *out: a new reference. In a simulation, *ph (may be NULL
 * when not wanted; a new object, or NULL) names those that came from
 * placeholder outputs: one of them that fails its check is kept as it
 * is, as a real run's value may pass. */
static int use_params(struct engine__rt *rt, const struct engine_state *st,
                      json_t *item, json_t **out, json_t **ph,
                      struct cairn_error *err)
{
  const struct engine_frame *f = &rt->wf->frames[st->use_frame];
  json_t *scope = engine__scope_for(rt, st, item), *with = NULL, *v;
  json_t *params = json_object(), *unknown = NULL;
  struct engine__sim_src src;
  const char *k;
  int rc = scope && params ? 0 : CAIRN_E_NOMEM;

  engine__sim_src(rt, rt->cx, st, item != NULL, &src);
  if (rc == 0)
    rc = use_with(rt, st, scope, &src, &with, &unknown, err);
  for (size_t i = 0; rc == 0 && i < f->nparams; i++)
    if (f->params[i].default_value != NULL)
      json_object_set_new(params, f->params[i].name,
                          json_deep_copy(f->params[i].default_value));
  if (rc == 0)
    json_object_foreach(with, k, v) {
      const struct engine_param *p = engine_param_find(f->params, f->nparams,
                                                       k);
      json_t *cv = NULL;
      if (p == NULL) /* the loader refuses it; a changed file on resume */
        continue;
      if (engine_param_value(p, v, &cv, err) != 0) {
        if (json_object_get(unknown, k) == NULL) {
          rc = err->code;
          break;
        }
        cv = json_incref(v);
      }
      json_object_set_new(params, k, cv);
    }
  json_decref(scope);
  json_decref(with);
  if (rc != 0) {
    json_decref(params);
    json_decref(unknown);
    return rc;
  }
  /* a value given to a secret param is a secret, whatever gave it */
  rc = engine__learn_params(rt, f->params, f->nparams, params, err);
  if (rc != 0) {
    json_decref(params);
    json_decref(unknown);
    return rc;
  }
  *out = params;
  if (ph != NULL)
    *ph = unknown;
  else
    json_decref(unknown);
  return 0;
}

/* Journals the entry at path of a used workflow (a use state, or an
 * instance of a map over one): payload p (stolen) with its params (rc 0,
 * secrets redacted; in a simulation, those that came from placeholders
 * named: ph, borrowed, may be NULL) or why they cannot be resolved
 * (err). */
static void entered_with_params(struct engine__rt *rt, const char *path,
                                json_t *p, int rc, json_t *params,
                                json_t *ph, const struct cairn_error *err)
{
  if (rc == 0) {
    json_object_set_new(p, "inputs", engine__redact(rt, params));
    if (engine__holds_secret(rt, params))
      json_object_set_new(p, "redacted", json_true());
    if (ph != NULL)
      json_object_set_new(p, "placeholders", names_of(ph));
  } else {
    json_object_set_new(p, "error", engine__text(err->msg));
  }
  engine__emit(rt, JOURNAL_EV_STATE_ENTERED, path, 0, p);
}

/* Frame f gets params (stolen) and, in a simulation, ph (stolen, may be
 * NULL): its params that came from placeholders (engine__sim_src). */
static void set_frame(struct engine__rt *rt, int f, json_t *params,
                      json_t *ph)
{
  json_t *fr = json_pack("{s:o,s:{}}", "params", params, "states");

  if (fr != NULL && ph != NULL)
    json_object_set_new(fr, "sim_params", ph);
  else
    json_decref(ph);
  json_array_set_new(rt->cx && rt->cx->owner ? rt->cx->frames : rt->frames,
                     (size_t)f, fr);
}

void engine__use_enter(struct engine__rt *rt, struct engine__sx *sx)
{
  const struct engine_state *st = sx->st;
  const struct engine_frame *f = &rt->wf->frames[st->use_frame];
  struct cairn_error err = {0};
  json_t *params = NULL, *ph = NULL;
  int rc = use_params(rt, st, NULL, &params, &ph, &err);

  entered_with_params(rt, sx->path, json_pack("{s:s,s:s}", "kind", "use",
                                              "file", f->file),
                      rc, params, ph, &err);
  if (rc != 0) {
    char msg[1200];
    snprintf(msg, sizeof msg, "state '%s' failed: cannot resolve the params "
             "of '%s': %s", sx->path, f->file, err.msg);
    engine__fail_state(rt, st, msg);
    return;
  }
  set_frame(rt, st->use_frame, params, ph);
  engine__transition(rt, st->name, f->start, "use", NULL, NULL);
}

/* The instance of cursor cx ends: journaled (not when interrupted:
 * resume carries it on), its cursor's state retired, then its map hears
 * of it (in the map's own cursor). outputs: stolen, NULL unless ok; ph
 * (stolen, may be NULL): in a simulation, those from placeholders. */
static void instance_end(struct engine__rt *rt, struct engine__cursor *cx,
                         int ok, int cancelled, const char *msg,
                         json_t *outputs, json_t *ph)
{
  struct engine__task *t = cx->owner;
  struct engine__cursor *prev = rt->cx;

  if (t->phase == ENGINE__TASK_DONE) {
    json_decref(outputs);
    json_decref(ph);
    return;
  }
  if (ok) {
    json_t *p = json_pack("{s:s,s:o}", "outcome", "succeeded", "outputs",
                          engine__redact(rt, outputs));
    if (p != NULL && ph != NULL)
      json_object_set(p, "placeholders", ph);
    engine__emit(rt, JOURNAL_EV_STATE_FINISHED, t->path, 0, p);
  } else if (!rt->interrupted || !cancelled)
    /* a cancelled instance did not succeed: "failed", marked cancelled
     * (the map's failure is another instance's) */
    engine__emit(rt, JOURNAL_EV_STATE_FINISHED, t->path, 0,
                 json_pack("{s:s,s:o,s:b}", "outcome", "failed", "error",
                           engine__text(msg), "cancelled", cancelled));
  json_decref(ph);
  json_decref(t->outputs);
  t->outputs = outputs;
  engine__sx_retire(rt, cx->cur);
  cx->cur = NULL;
  rt->cx = cx->up;
  engine__task_done(t, ok, cancelled, msg);
  rt->cx = prev;
}

void engine__cursor_stop(struct engine__rt *rt, struct engine__cursor *cx)
{
  instance_end(rt, cx, 0, 1, cx->cancelled ? "cancelled: another instance "
               "failed" : "interrupted", NULL, NULL);
}

/* The use state u fails with msg: journaled, then its on_failure; for a
 * map over a used workflow, the instance being worked on fails. */
static void fail_use(struct engine__rt *rt, const struct engine_state *u,
                     const char *msg)
{
  char path[320];

  if (u->kind == ENGINE_MAP) {
    instance_end(rt, rt->cx, 0, 0, msg, NULL, NULL);
    return;
  }
  engine__jpath(rt, u->name, path, sizeof path);
  engine__emit(rt, JOURNAL_EV_STATE_FINISHED, path, 0,
               json_pack("{s:s,s:o}", "outcome", "failed", "error",
                         engine__text(msg)));
  engine__fail_state(rt, u, msg);
}

/* The records of use state u's outputs (states.U, in the scope it runs
 * in) say which came from placeholder outputs (ph, borrowed, may be
 * NULL: none): the others its workflow made of params are real
 * (engine__sim_src). */
static void sim_mark_record(struct engine__rt *rt,
                            const struct engine_state *u, json_t *ph)
{
  json_t *list = ph ? json_incref(ph) : json_array(), *rec, *fr;

  if ((rt->cx == NULL || rt->cx->owner == NULL) &&
      (rec = json_object_get(json_object_get(rt->scope, "states"),
                             u->name)) != NULL)
    json_object_set(rec, "placeholders", list);
  if (u->frame >= 0 && (fr = frame_obj(rt, u->frame)) != NULL &&
      (rec = json_object_get(json_object_get(fr, "states"),
                             u->name + strlen(rt->wf->frames[u->frame]
                                                  .prefix))) != NULL)
    json_object_set(rec, "placeholders", list);
  json_decref(list);
}

void engine__frame_succeed(struct engine__rt *rt,
                           const struct engine_state *st)
{
  const struct engine_frame *f = &rt->wf->frames[st->frame];
  const struct engine_state *u = &rt->wf->states[f->use_state];
  struct cairn_error err = {0};
  json_t *scope = engine__scope_for(rt, st, NULL), *outs = NULL, *ph = NULL;
  struct engine__sim_src src;
  int rc;
  char upath[320];

  engine__sim_src(rt, rt->cx, st, 0, &src);
  rc = scope ? render(rt, f->outputs, scope, &src, &outs, &err)
             : CAIRN_E_NOMEM;
  if (rc == 0 && rt->opt->sim) /* they say which outputs are placeholders */
    ph = engine__sim_keys(rt, f->outputs, scope, &src);
  json_decref(scope);
  engine__jpath(rt, u->name, upath, sizeof upath);
  if (rc != 0) {
    char msg[1200];
    snprintf(msg, sizeof msg, "state '%s' failed: cannot resolve the outputs "
             "of '%s': %s", upath, f->file, err.msg);
    fail_use(rt, u, msg);
    return;
  }
  if (u->kind == ENGINE_MAP) {
    /* an instance reached succeed: its outputs are the map's for it */
    instance_end(rt, rt->cx, 1, 0, NULL, outs, ph);
    return;
  }
  engine__record_outputs(rt, u->name, outs);
  if (rt->opt->sim)
    sim_mark_record(rt, u, ph);
  json_t *p = json_pack("{s:s,s:o}", "outcome", "succeeded", "outputs",
                        engine__redact(rt, outs));
  if (p != NULL && ph != NULL)
    json_object_set_new(p, "placeholders", ph);
  else
    json_decref(ph);
  engine__emit(rt, JOURNAL_EV_STATE_FINISHED, upath, 0, p);
  json_decref(outs);
  engine__transition(rt, u->name, u->next, "next", NULL, NULL);
}

void engine__fail_state(struct engine__rt *rt, const struct engine_state *st,
                        const char *msg)
{
  const char *on = st->on_failure ? st->on_failure : "rollback";
  int ends = strcmp(on, "rollback") == 0 || strcmp(on, "fail") == 0;

  if (ends && st->frame >= 0) {
    /* The used workflow failed: its use state did. */
    fail_use(rt, &rt->wf->states[rt->wf->frames[st->frame].use_state], msg);
    return;
  }
  if (strcmp(on, "rollback") == 0)
    engine__transition(rt, st->name, JOURNAL_ROLLBACK, "on_failure", NULL,
                       msg);
  else if (strcmp(on, "fail") == 0)
    engine__transition(rt, st->name, NULL, "on_failure",
                       JOURNAL_STATUS_FAILED, msg);
  else
    engine__transition(rt, st->name, on, "on_failure", NULL, NULL);
}

/* ---- map ---- */

static int key_ok(const char *k)
{
  size_t n = strlen(k);
  if (n == 0 || n > MAP_KEY_MAX || strcmp(k, ".") == 0 ||
      strcmp(k, "..") == 0)
    return 0;
  return strspn(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                   "0123456789._-") == n;
}

/* The max_concurrency of map state st: its number, or its template
 * rendered (an integer >= 1). In a simulation, one rendered from
 * placeholder outputs that gives none is no limit (*ph set). */
static int map_limit(struct engine__rt *rt, const struct engine_state *st,
                     int *out, int *ph, struct cairn_error *err)
{
  json_t *scope, *v = NULL, *tpl = NULL;
  struct engine__sim_src src;
  json_int_t n = 0;
  int rc;

  *out = st->max_concurrency;
  *ph = 0;
  if (st->map_concurrency == NULL)
    return 0;
  if ((scope = engine__scope_for(rt, st, NULL)) == NULL)
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  rc = engine_template_render_string(st->map_concurrency, scope, &v, err);
  if (rt->opt->sim) {
    engine__sim_src(rt, rt->cx, st, 0, &src);
    if ((tpl = json_string(st->map_concurrency)) == NULL)
      rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    else if (rc != 0)
      rc = engine__sim_tolerates(rt, tpl, NULL, scope, &src, err);
    else
      *ph = engine__sim_reads(rt, tpl, NULL, scope, &src);
    if (rc == 0 && v == NULL) /* tolerated */
      *ph = 1;
  }
  json_decref(tpl);
  json_decref(scope);
  if (rc != 0)
    return rc;
  if (json_is_integer(v))
    n = json_integer_value(v);
  else if (json_is_string(v))
    n = strtoll(json_string_value(v), NULL, 10);
  json_decref(v);
  if ((n < 1 || n > 1000000) && *ph) {
    *out = 0;
    return 0;
  }
  if (n < 1 || n > 1000000)
    return cairn_error_set(err, CAIRN_E_INVAL, "'max_concurrency' must give "
                           "an integer of at least 1");
  *out = (int)n;
  return 0;
}

/* Does the key of item (of map st) come from placeholder outputs: its
 * items do (ph), or its key template reads them? */
static int key_placeholder(struct engine__rt *rt,
                           const struct engine_state *st, json_t *item,
                           const struct engine__sim_src *src, int ph)
{
  json_t *scope, *tpl;
  int reads;

  if (ph || st->map_key == NULL)
    return ph;
  scope = engine__scope_for(rt, st, item);
  tpl = json_string(st->map_key);
  reads = engine__sim_reads(rt, tpl, NULL, scope, src);
  json_decref(tpl);
  json_decref(scope);
  return reads;
}

/* The key of item i of map st: its `key` rendered with it. In a
 * simulation, a key that does not render because of placeholder outputs
 * is the index. *kv: a new reference. */
static int map_key(struct engine__rt *rt, const struct engine_state *st,
                   json_t *item, size_t i, const struct engine__sim_src *src,
                   json_t **kv, struct cairn_error *err)
{
  json_t *scope = engine__scope_for(rt, st, item), *tpl = NULL;
  int rc = scope ? engine_template_render_string(st->map_key, scope, kv, err)
                 : CAIRN_E_NOMEM;

  if (rc != 0 && rc != CAIRN_E_NOMEM && rt->opt->sim) {
    rc = (tpl = json_string(st->map_key)) != NULL
             ? engine__sim_tolerates(rt, tpl, NULL, scope, src, err)
             : CAIRN_E_NOMEM;
    if (rc == 0 && (*kv = json_integer((json_int_t)i)) == NULL)
      rc = CAIRN_E_NOMEM;
  }
  json_decref(tpl);
  json_decref(scope);
  return rc;
}

/* The items of map state st and the key of each (new references). In a
 * simulation, *ph (may be NULL) says whether the items come from
 * placeholder outputs: then what a real run's may make a list of
 * distinct keys is made one (one item, index keys). */
static int map_items(struct engine__rt *rt, const struct engine_state *st,
                     json_t **items_out, json_t **keys_out, int *ph_out,
                     struct cairn_error *err)
{
  json_t *scope = engine__scope_for(rt, st, NULL), *items = NULL, *item;
  json_t *keys = json_array(), *seen = json_object();
  struct engine__sim_src src;
  size_t i;
  int rc = scope && keys && seen ? 0 : CAIRN_E_NOMEM;
  int ph = 0;

  engine__sim_src(rt, rt->cx, st, 0, &src);
  if (rc == 0)
    rc = render(rt, st->map_items, scope, &src, &items, err);
  if (rc == 0 && rt->opt->sim)
    ph = engine__sim_reads(rt, st->map_items, NULL, scope, &src);
  src.item = ph; /* what the key sees */
  if (rc == 0 && !json_is_array(items)) {
    if (ph) {
      /* a placeholder: one instance shows what each would do */
      json_t *one = json_pack("[O]", items);
      json_decref(items);
      items = one;
    } else {
      rc = cairn_error_set(err, CAIRN_E_INVAL, "'items' must give a list, "
                           "got %s", json_is_object(items) ? "an object"
                           : json_is_string(items) ? "a string"
                           : "a scalar");
    }
  }
  json_array_foreach(rc == 0 ? items : NULL, i, item) {
    char key[128];
    json_t *kv = NULL;
    if (st->map_key != NULL) {
      if ((rc = map_key(rt, st, item, i, &src, &kv, err)) != 0)
        break;
    } else {
      kv = json_incref(item);
    }
    if (json_is_string(kv))
      snprintf(key, sizeof key, "%s", json_string_value(kv));
    else if (json_is_integer(kv))
      snprintf(key, sizeof key, "%" JSON_INTEGER_FORMAT,
               json_integer_value(kv));
    else if (st->map_key == NULL)
      snprintf(key, sizeof key, "%zu", i);
    else
      key[0] = '\0';
    json_decref(kv);
    if (rt->opt->sim && (!key_ok(key) || json_object_get(seen, key)) &&
        key_placeholder(rt, st, item, &src, ph))
      snprintf(key, sizeof key, "%zu", i); /* a placeholder item */
    {
      /* a key is a path, a log name and a line on the terminal: one that
       * would show a secret value is the index instead */
      json_t *ks = json_string(key);
      if (ks && engine__holds_secret(rt, ks))
        snprintf(key, sizeof key, "%zu", i);
      json_decref(ks);
    }
    if (!key_ok(key)) {
      rc = cairn_error_set(err, CAIRN_E_INVAL, "item %zu has the key '%s', "
                           "not 1 to %d of letters, digits, '.', '_' and "
                           "'-' (hint: give the map a 'key' that makes one)",
                           i, key, MAP_KEY_MAX);
      break;
    }
    if (st->use_frame >= 0) {
      /* The used workflow's state S runs as M/KEY/S and is named M/S:
       * a KEY that is also an S would make the journal path M/KEY name
       * both the instance and that state (resume, rollback, show). */
      char sn[320];
      snprintf(sn, sizeof sn, "%s/%s", st->name, key);
      if (engine_workflow_state(rt->wf, sn) != NULL) {
        rc = cairn_error_set(err, CAIRN_E_INVAL, "item %zu has the key "
                             "'%s', also the name of a state of '%s' "
                             "(hint: give the map a 'key' that differs "
                             "from the used workflow's state names, e.g. "
                             "\"svc-{{ item.name }}\")",
                             i, key, rt->wf->frames[st->use_frame].file);
        break;
      }
    }
    if (json_object_get(seen, key) != NULL) {
      rc = cairn_error_set(err, CAIRN_E_INVAL, "items %d and %zu have the "
                           "same key '%s' (hint: give the map a 'key' that "
                           "tells them apart)",
                           (int)json_integer_value(json_object_get(seen,
                                                                   key)),
                           i, key);
      break;
    }
    json_object_set_new(seen, key, json_integer((json_int_t)i));
    json_array_append_new(keys, json_string(key));
  }
  json_decref(scope);
  json_decref(seen);
  if (rc != 0) {
    json_decref(items);
    json_decref(keys);
    return rc;
  }
  *items_out = items;
  *keys_out = keys;
  if (ph_out != NULL)
    *ph_out = ph;
  return 0;
}

json_t *engine__map_item(struct engine__rt *rt, const struct engine_state *st,
                         size_t index)
{
  struct cairn_error err = {0};
  json_t *items = NULL, *keys = NULL, *item = NULL;

  if (map_items(rt, st, &items, &keys, NULL, &err) == 0)
    item = json_incref(json_array_get(items, index));
  json_decref(items);
  json_decref(keys);
  return item;
}

int engine__map_setup(struct engine__rt *rt, struct engine__sx *sx,
                      json_t *items, json_t *keys)
{
  size_t n = json_array_size(items);

  if (n == 0)
    return 0;
  if ((sx->tasks = calloc(n, sizeof *sx->tasks)) == NULL)
    return CAIRN_E_NOMEM;
  sx->ntasks = sx->open = n;
  for (size_t i = 0; i < n; i++) {
    char path[320];
    struct engine__task *t = &sx->tasks[i];
    snprintf(path, sizeof path, "%s/%s", sx->path,
             json_string_value(json_array_get(keys, i)));
    if (engine__task_init(rt, sx, t, path, &sx->st->action) != 0)
      return CAIRN_E_NOMEM;
    t->item = json_incref(json_array_get(items, i));
    t->index = (int)i;
  }
  return 0;
}

void engine__map_enter(struct engine__rt *rt, struct engine__sx *sx)
{
  const struct engine_state *st = sx->st;
  struct cairn_error err = {0};
  json_t *items = NULL, *keys = NULL;
  int limit_ph = 0, items_ph = 0;
  int rc = map_limit(rt, st, &sx->limit, &limit_ph, &err);
  json_t *p = json_pack("{s:s}", "kind", "map");

  if (rc == 0)
    rc = map_items(rt, st, &items, &keys, &items_ph, &err);
  if (rc == 0)
    json_object_set_new(p, "inputs",
                        json_pack("{s:o,s:O,s:i}", "items",
                                  engine__redact(rt, items), "keys", keys,
                                  "max_concurrency", sx->limit));
  if (rc == 0 && (items_ph || limit_ph)) /* a simulation's */
    json_object_set_new(p, "placeholders",
                        items_ph && limit_ph
                            ? json_pack("[s,s,s]", "items", "keys",
                                        "max_concurrency")
                        : items_ph ? json_pack("[s,s]", "items", "keys")
                                   : json_pack("[s]", "max_concurrency"));
  else if (rc != 0)
    json_object_set_new(p, "error", engine__text(err.msg));
  engine__emit(rt, JOURNAL_EV_STATE_ENTERED, sx->path, 0, p);
  if (rc == 0 && engine__map_setup(rt, sx, items, keys) != 0)
    rc = CAIRN_E_NOMEM;
  json_decref(items);
  json_decref(keys);
  if (rc == CAIRN_E_NOMEM) {
    rt->fatal = CAIRN_E_NOMEM;
    return;
  }
  if (rc != 0) {
    char msg[1200];
    snprintf(msg, sizeof msg, "state '%s' failed: %s", sx->path, err.msg);
    engine__fail_state(rt, st, msg);
    return;
  }
  engine__map_more(rt, sx);
}

/* Journals the entry of instance t and starts its first attempt. */
static void instance_start(struct engine__rt *rt, struct engine__task *t)
{
  struct cairn_error err = {0};
  int rc = engine__task_resolve(t, &err);
  json_t *p = json_pack("{s:s,s:o,s:i}", "kind", "instance", "item",
                        engine__redact(rt, t->item), "index", t->index);

  if (engine__task_entered(t, p, rc, &err, 1) == 0)
    engine__task_attempt(t);
}

/* Starts instance t of a map over a used workflow: its params resolved
 * with its item and journaled as its entry, then its cursor enters the
 * workflow's first state. */
static void use_instance_start(struct engine__rt *rt, struct engine__task *t)
{
  const struct engine_state *st = t->sx->st;
  const struct engine_frame *f = &rt->wf->frames[st->use_frame];
  struct cairn_error err = {0};
  struct engine__cursor *cx = calloc(1, sizeof *cx), *prev = rt->cx;
  json_t *params = NULL, *ph = NULL;
  int rc;

  if (cx == NULL || (cx->frames = json_array()) == NULL) {
    free(cx);
    rt->fatal = CAIRN_E_NOMEM;
    return;
  }
  for (size_t i = 0; i < rt->wf->nframes; i++)
    json_array_append_new(cx->frames, json_null());
  cx->owner = t;
  cx->up = t->sx->cx;
  snprintf(cx->pfx, sizeof cx->pfx, "%s/", t->path);
  t->inst = cx;
  t->phase = ENGINE__TASK_RUNNING;
  rc = use_params(rt, st, t->item, &params, &ph, &err);
  entered_with_params(rt, t->path,
                      json_pack("{s:s,s:s,s:o,s:i}", "kind", "instance",
                                "file", f->file, "item",
                                engine__redact(rt, t->item), "index",
                                t->index),
                      rc, params, ph, &err);
  rt->cx = cx;
  if (rc != 0) {
    char msg[1200];
    snprintf(msg, sizeof msg, "state '%s' failed: cannot resolve the params "
             "of '%s': %s", t->path, f->file, err.msg);
    instance_end(rt, cx, 0, 0, msg, NULL, NULL);
  } else {
    set_frame(rt, st->use_frame, params, ph);
    json_object_set(rt->inst, t->path, cx->frames);
    engine__transition(rt, st->name, f->start, "use", NULL, NULL);
  }
  rt->cx = prev;
}

void engine__map_more(struct engine__rt *rt, struct engine__sx *sx)
{
  size_t running = 0;
  int limit = sx->limit;
  struct engine__sx **slot = engine__slot(rt, sx->cx);
  struct engine__cursor *prev = rt->cx;

  if (*slot != sx || sx->starting)
    return;
  rt->cx = sx->cx;
  sx->starting = 1;
  for (size_t i = 0; i < sx->ntasks; i++)
    running += sx->tasks[i].phase != ENGINE__TASK_IDLE &&
               sx->tasks[i].phase != ENGINE__TASK_DONE;
  for (size_t i = 0; i < sx->ntasks && *slot == sx; i++) {
    struct engine__task *t = &sx->tasks[i];
    if (t->phase != ENGINE__TASK_IDLE)
      continue;
    if ((sx->failed && !engine__fail_late(sx)) || rt->interrupted ||
        (sx->cx && sx->cx->cancelled)) {
      /* never started: nothing to journal, nothing to undo */
      t->phase = ENGINE__TASK_DONE;
      sx->open--;
      continue;
    }
    if (limit > 0 && running >= (size_t)limit)
      break;
    running++;
    if (sx->st->use_frame >= 0)
      use_instance_start(rt, t);
    else
      instance_start(rt, t);
    /* An instance with no action on its way (a choice straight to
     * succeed) ends inside its start, while this loop holds `starting`:
     * its slot is free now, or the map would wait for it forever. */
    if (t->phase == ENGINE__TASK_DONE)
      running--;
  }
  sx->starting = 0;
  if (*slot == sx && sx->open == 0)
    engine__state_done(rt, sx);
  rt->cx = prev;
}

/* ---- resume ---- */

struct engine__cursor *engine__undo_view(struct engine__rt *rt,
                                         const char *path)
{
  size_t il = engine_workflow_instance_len(rt->wf, path);
  struct engine__cursor *cx;
  char key[320];
  json_t *fr;

  if (il == 0 || il >= sizeof key)
    return NULL;
  snprintf(key, sizeof key, "%.*s", (int)il, path);
  if ((fr = json_object_get(rt->inst, key)) == NULL ||
      (cx = calloc(1, sizeof *cx)) == NULL)
    return NULL;
  cx->frames = json_incref(fr);
  snprintf(cx->pfx, sizeof cx->pfx, "%s/", key);
  return cx;
}

/* The index of instance path "M/KEY" in its map's journaled keys, or -1. */
static int instance_index(const struct journal_replay *rp, const char *path)
{
  const char *slash = strrchr(path, '/');
  const struct journal_step *m;
  char mp[320];
  size_t i;
  json_t *k;

  if (slash == NULL)
    return -1;
  snprintf(mp, sizeof mp, "%.*s", (int)(slash - path), path);
  if ((m = journal_replay_step(rp, mp)) == NULL)
    return -1;
  json_array_foreach(json_object_get(m->inputs, "keys"), i, k)
    if (strcmp(json_string_value(k), slash + 1) == 0)
      return (int)i;
  return -1;
}

/* The frames of every instance of a map over a used workflow entered
 * (rt->inst): its params (and those of the uses inside it) from their
 * entries, the outputs of its states from rt->scope's states. */
static int rebuild_instances(struct engine__rt *rt,
                             const struct journal_replay *rp,
                             struct cairn_error *err)
{
  const struct engine_workflow *wf = rt->wf;
  const char *k;
  json_t *v;

  for (size_t i = 0; i < rp->nsteps; i++) {
    const struct journal_step *s = &rp->steps[i];
    size_t il = engine_workflow_instance_len(wf, s->path);
    const struct engine_state *st;
    json_t *frames, *params = NULL;
    char ip[320];

    if (il == 0 || il >= sizeof ip || s->inputs == NULL ||
        (st = engine_workflow_path_state(wf, s->path, NULL)) == NULL ||
        st->use_frame < 0)
      continue;
    snprintf(ip, sizeof ip, "%.*s", (int)il, s->path);
    if (s->path[il] == '\0') {
      /* the instance: its params were journaled, a secret redacted */
      if (!engine__has_redaction(s->inputs)) {
        params = json_incref(s->inputs);
      } else {
        int idx = instance_index(rp, s->path);
        json_t *item = idx >= 0 ? engine__map_item(rt, st, (size_t)idx)
                                : NULL;
        int rc = item ? use_params(rt, st, item, &params, NULL, err)
                      : cairn_error_set(err, CAIRN_E_JOURNAL, "cannot "
                                        "render the params of instance "
                                        "'%s' again", s->path);
        json_decref(item);
        if (rc != 0)
          return rc;
      }
      if ((frames = json_array()) == NULL) {
        json_decref(params);
        return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
      }
      for (size_t f = 0; f < wf->nframes; f++)
        json_array_append_new(frames, json_null());
      json_object_set_new(rt->inst, ip, frames);
    } else if (st->kind == ENGINE_USE &&
               (frames = json_object_get(rt->inst, ip)) != NULL) {
      params = json_incref(s->inputs); /* a use inside the instance */
    } else {
      continue;
    }
    json_array_set_new(frames, (size_t)st->use_frame,
                       json_pack("{s:o,s:{}}", "params", params, "states"));
  }
  json_object_foreach(json_object_get(rt->scope, "states"), k, v) {
    size_t il = engine_workflow_instance_len(wf, k);
    const struct engine_state *st;
    json_t *fo;
    char ip[320];
    if (il == 0 || il >= sizeof ip || k[il] != '/' ||
        (st = engine_workflow_path_state(wf, k, NULL)) == NULL ||
        st->frame < 0)
      continue;
    snprintf(ip, sizeof ip, "%.*s", (int)il, k);
    fo = json_array_get(json_object_get(rt->inst, ip), (size_t)st->frame);
    if (json_is_object(fo))
      json_object_set_new(json_object_get(fo, "states"),
                          st->name + strlen(wf->frames[st->frame].prefix),
                          json_pack("{s:O}", "output",
                                    json_object_get(v, "output")));
  }
  /* An instance's outputs are journaled with secrets redacted: render
   * them again in its frame, into the map's output (states.M.output.KEY,
   * where a resumed map takes them from too). */
  for (size_t i = 0; i < rp->nsteps; i++) {
    const struct journal_step *s = &rp->steps[i];
    const struct engine_state *st;
    const char *key;
    struct engine__cursor *view;
    json_t *scope, *outs = NULL, *mo;
    char mp[320];
    if (s->phase != JOURNAL_PHASE_SUCCEEDED || s->outputs == NULL ||
        !engine__has_redaction(s->outputs) ||
        engine_workflow_instance_len(wf, s->path) != strlen(s->path) ||
        (st = engine_workflow_path_state(wf, s->path, &key)) == NULL ||
        key == NULL || (view = engine__undo_view(rt, s->path)) == NULL)
      continue;
    scope = engine__scope_in(rt, view, engine_workflow_state(
                                           wf, wf->frames[st->use_frame].start),
                             NULL);
    snprintf(mp, sizeof mp, "%.*s", (int)(key - 1 - s->path), s->path);
    mo = json_object_get(json_object_get(json_object_get(rt->scope,
                                                         "states"), mp),
                         "output");
    if (scope && json_is_object(mo) &&
        render(rt, wf->frames[st->use_frame].outputs, scope, NULL, &outs,
               err) == 0)
      json_object_set_new(mo, key, outs);
    json_decref(scope);
    engine__cursor_free(view);
  }
  return 0;
}

int engine__rebuild_frames(struct engine__rt *rt,
                           const struct journal_replay *rp,
                           struct cairn_error *err)
{
  const struct engine_workflow *wf = rt->wf;
  const char *k;
  json_t *v;

  if (wf->nframes == 0)
    return 0;
  /* Steps are in order of first entry: a frame's parents come first, so
   * params that must be rendered again (they held a secret) can be. */
  for (size_t i = 0; i < rp->nsteps; i++) {
    const struct journal_step *s = &rp->steps[i];
    const struct engine_state *st = engine_workflow_state(wf, s->path);
    json_t *params = NULL;
    if (st == NULL || st->kind != ENGINE_USE || s->inputs == NULL)
      continue;
    if (!engine__has_redaction(s->inputs))
      params = json_incref(s->inputs);
    else if (use_params(rt, st, NULL, &params, NULL, err) != 0)
      return err->code;
    set_frame(rt, st->use_frame, params, NULL);
  }
  json_object_foreach(json_object_get(rt->scope, "states"), k, v)
    engine__frame_record(rt, engine_workflow_state(wf, k),
                         json_object_get(v, "output"));
  if (rebuild_instances(rt, rp, err) != 0)
    return err->code;
  /* A used workflow's outputs are journaled with secrets redacted: render
   * them again from its frame, innermost first (an outer frame's states
   * hold its inner use states' outputs). */
  for (size_t i = rp->nsteps; i-- > 0;) {
    const struct journal_step *s = &rp->steps[i];
    const struct engine_state *st = engine_workflow_state(wf, s->path);
    const struct engine_frame *f;
    const struct engine_state *any;
    json_t *scope, *outs = NULL;
    if (st == NULL || st->kind != ENGINE_USE ||
        s->phase != JOURNAL_PHASE_SUCCEEDED || s->outputs == NULL ||
        !engine__has_redaction(s->outputs))
      continue;
    f = &wf->frames[st->use_frame];
    any = engine_workflow_state(wf, f->start);
    scope = engine__scope_for(rt, any, NULL);
    if (scope && render(rt, f->outputs, scope, NULL, &outs, err) == 0)
      engine__record_outputs(rt, st->name, outs);
    json_decref(outs);
    json_decref(scope);
  }
  return 0;
}

int engine__map_rebuild(struct engine__rt *rt, struct engine__sx *sx,
                        const struct journal_step *top,
                        struct cairn_error *err)
{
  json_t *items = json_object_get(top->inputs, "items");
  json_t *keys = json_object_get(top->inputs, "keys");
  json_t *limit = json_object_get(top->inputs, "max_concurrency");
  int rc;

  if (json_is_integer(limit))
    sx->limit = (int)json_integer_value(limit);
  else if ((rc = map_limit(rt, sx->st, &sx->limit, &(int){0}, err)) != 0)
    return rc;

  if (items && keys && !engine__has_redaction(items)) {
    json_incref(items);
    json_incref(keys);
  } else if ((rc = map_items(rt, sx->st, &items, &keys, NULL, err)) != 0) {
    return rc;
  }
  if (json_array_size(items) != json_array_size(keys))
    rc = cairn_error_set(err, CAIRN_E_JOURNAL, "the entry of map state '%s' "
                         "has %zu items but %zu keys", sx->st->name,
                         json_array_size(items), json_array_size(keys));
  else if ((rc = engine__map_setup(rt, sx, items, keys)) != 0)
    cairn_error_set(err, rc, "out of memory");
  json_decref(items);
  json_decref(keys);
  return rc;
}
