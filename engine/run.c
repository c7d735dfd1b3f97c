/* The state-machine runtime on libuv. Every event is queued by
 * engine__emit and committed by flush() in one transaction per loop turn
 * (group commit) before anything it announces is started: actions queued
 * for spawning wait in spawn_head until the flush that journals their
 * action.started has committed. */
#include "engine/runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/file.h"
#include "common/heap.h"
#include "common/proc.h"
#include "common/utf8.h"
#include "engine/template.h"

static void flush(struct engine__rt *rt);
static void free_dead(struct engine__rt *rt);

static void idle_noop(uv_idle_t *h)
{
  (void)h;
}

/* How long a lazy event may wait for a commit to ride on. A child's pid:
 * most steps finish within it (their pid goes with their action.finished:
 * one durable commit a step); a crash before it is journaled loses
 * nothing, as resume finds the child by its environment's markers. */
#define LAZY_SPAWNED_MS 1000
/* An idempotent action's success that starts nothing (a branch whose
 * siblings still run): the successes of a fan-out of checks share one
 * commit instead of one each, and a crash before it makes resume run the
 * action again, as it may. Short, as the observer (the terminal) hears
 * of an event only once it is committed. */
#define LAZY_SUCCESS_MS 200

static void lazy_cb(uv_timer_t *h)
{
  flush(h->data);
}

static void rt_close_all(struct engine__rt *rt);
static void task_start_now(struct engine__task *t);

/* ---- the event queue and group commit ---- */

static void qitem_release(struct engine__qitem *it)
{
  free(it->state);
  json_decref(it->payload);
}

json_t *engine__text(const char *s)
{
  json_t *j = json_string(s);
  char *copy;

  if (j != NULL || s == NULL || (copy = strdup(s)) == NULL)
    return j;
  cairn_utf8_scrub(copy, strlen(copy));
  j = json_string(copy);
  free(copy);
  return j;
}

/* An event's error message, redacted where it is journaled: it may quote
 * a value (a param that fails its pattern, a folder that cannot be
 * entered), unlike the inputs and outputs that are redacted where they
 * are made. Only this field: the others name states and steps, which a
 * short secret value must not rewrite. */
static void redact_error(struct engine__rt *rt, json_t *payload)
{
  json_t *e = json_object_get(payload, "error");

  if (json_is_string(e) && engine__holds_secret(rt, e)) {
    json_t *r = engine__redact(rt, e);
    /* out of memory: the whole message goes, not the secret */
    json_object_set_new(payload, "error", r ? r : json_string("***"));
  }
}

/* Queues an event; 0, or -1 (the run is then fatal) when out of memory. */
/* An event could not be queued: the run stops at the next flush (as when
 * the journal cannot be written; resume goes on from what is), which
 * must come soon. Returns -1 for enqueue. */
static int queue_failed(struct engine__rt *rt, int code)
{
  if (!rt->fatal)
    rt->fatal = code;
  rt->urgent++;
  uv_idle_start(&rt->idle, idle_noop);
  return -1;
}

static int enqueue(struct engine__rt *rt, const char *kind, const char *state,
                   int attempt, json_t *payload)
{
  if (payload == NULL)
    /* never an empty {} in its place: replay could not read the event,
     * and what it should have said is lost */
    return queue_failed(rt, rt->fatal ? rt->fatal
                            : cairn_error_set(rt->err, CAIRN_E_NOMEM,
                                              "cannot make the %s event of "
                                              "'%s' (out of memory, or text "
                                              "that is not UTF-8)", kind,
                                              state ? state : ""));
  if (rt->nqueue == rt->capqueue) {
    size_t cap = rt->capqueue ? rt->capqueue * 2 : 16;
    struct engine__qitem *q = realloc(rt->queue, cap * sizeof *q);
    if (q == NULL) {
      json_decref(payload);
      return queue_failed(rt, CAIRN_E_NOMEM);
    }
    rt->queue = q;
    rt->capqueue = cap;
  }
  struct engine__qitem *it = &rt->queue[rt->nqueue++];
  it->has_text = 0;
  it->kind = kind;
  it->state = strdup(state ? state : "");
  it->attempt = attempt;
  it->payload = payload;
  redact_error(rt, it->payload);
  it->time_ms = journal_now_ms();
  return 0;
}

void engine__emit(struct engine__rt *rt, const char *kind, const char *state,
                  int attempt, json_t *payload)
{
  if (enqueue(rt, kind, state, attempt, payload) != 0)
    return;
  rt->urgent++;
  /* Keep the loop from blocking in poll until the flush has run. */
  uv_idle_start(&rt->idle, idle_noop);
}

void engine__emit_lazy(struct engine__rt *rt, const char *kind,
                       const char *state, int attempt, json_t *payload,
                       uint64_t within_ms)
{
  uv_timer_t *tm = &rt->lazy_timer;

  if (enqueue(rt, kind, state, attempt, payload) != 0)
    return;
#ifdef CAIRN_TEST_HOOKS
  /* The crash tests stretch the wait to see what a crash loses. */
  const char *hook = getenv("CAIRN_TEST_LAZY_MS");
  if (hook != NULL && *hook != '\0')
    within_ms = strtoull(hook, NULL, 10);
#endif
  /* the earliest deadline of the events waiting wins */
  if (!uv_is_active((uv_handle_t *)tm) || uv_timer_get_due_in(tm) > within_ms)
    uv_timer_start(tm, lazy_cb, within_ms, 0);
}

int engine__append_direct(struct engine__rt *rt, const char *kind,
                          json_t *payload)
{
  return engine__append_direct_at(rt, kind, "", payload);
}

int engine__append_direct_at(struct engine__rt *rt, const char *kind,
                             const char *state, json_t *payload)
{
  int64_t seq = 0;
  if (payload == NULL)
    /* never an empty {} in its place: what it should have said is lost */
    return cairn_error_set(rt->err, CAIRN_E_NOMEM,
                           "cannot make the %s event (out of memory, or "
                           "text that is not UTF-8)", kind);
  redact_error(rt, payload);
  int rc = journal_append(rt->j, rt->run_id, kind, state, 0, 0, payload, &seq,
                          rt->err);
  if (rc == 0) {
    if (rt->direct == NULL)
      rt->direct = json_array();
    json_array_append_new(rt->direct, json_pack("[s,I,O,s]", kind,
                                                (json_int_t)seq, payload,
                                                state));
  }
  json_decref(payload);
  return rc;
}

json_t *engine__takeover_payload(const struct journal_lock_holder *h)
{
  return json_pack("{s:s,s:i,s:s,s:I}", "run_id", h->run_id, "pid", h->pid,
                   "host", h->host, "proc_start", (json_int_t)h->proc_start);
}

int engine__append_takeover(struct engine__rt *rt,
                            const struct journal_lock_holder *h)
{
  return engine__append_direct(rt, JOURNAL_EV_LOCK_TAKEN_OVER,
                               engine__takeover_payload(h));
}

void engine__notify_direct(struct engine__rt *rt)
{
  size_t i;
  json_t *e;
  if (rt->direct && rt->opt->observe) {
    json_array_foreach(rt->direct, i, e) {
      struct journal_event ev = {0};
      ev.seq = json_integer_value(json_array_get(e, 1));
      memcpy(ev.run_id, rt->run_id, sizeof ev.run_id);
      ev.kind = (char *)json_string_value(json_array_get(e, 0));
      ev.state = (char *)json_string_value(json_array_get(e, 3));
      ev.time_ms = journal_now_ms();
      ev.payload = json_array_get(e, 2);
      rt->opt->observe(rt->opt->ud, &ev);
    }
    if (rt->opt->observed)
      rt->opt->observed(rt->opt->ud);
  }
  json_decref(rt->direct);
  rt->direct = NULL;
}

static int is_final_kind(const char *kind)
{
  return strcmp(kind, JOURNAL_EV_RUN_FINISHED) == 0 ||
         strcmp(kind, JOURNAL_EV_RUN_INTERRUPTED) == 0 ||
         strcmp(kind, JOURNAL_EV_APPROVAL_WAITING) == 0;
}

/* A simulation's journal is in memory and read by no one but the engine
 * (which reads inside the open transaction): its events are committed
 * in transactions of this many events or more, the last at the run's
 * end, instead of one per loop turn. A failed write ends a simulation
 * like a run, with what the observer heard since the last commit lost
 * with the journal. */
#define SIM_TX_EVENTS 4096

/* Commits every queued event in one transaction and tells the observer.
 * Returns 0 or the journal's error. */
static int commit_queue(struct engine__rt *rt)
{
  size_t n = rt->nqueue;
  int64_t now = journal_now_ms();
  int rc = 0;
  int final = 0;

  cairn_buf_reset(&rt->texts);
  if (!rt->tx_open)
    rc = journal_begin(rt->j, rt->err);
  uv_timer_stop(&rt->lazy_timer);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    struct engine__qitem *it = &rt->queue[i];
    rc = journal_append(rt->j, rt->run_id, it->kind, it->state, it->attempt,
                        it->time_ms, it->payload, &it->seq, rt->err);
    if (rc == 0 && rt->opt->observe && rt->opt->observe_text) {
      /* the payload's text, so an observer printing it need not make it
       * again (best effort: without it, it does); kept only for an
       * observer that prints payloads */
      size_t len;
      const char *text = journal_last_payload(rt->j, &len);
      if (text != NULL) {
        it->text_off = rt->texts.len;
        it->text_len = len;
        cairn_buf_add(&rt->texts, text, len);
        it->has_text = !rt->texts.failed;
      }
    }
    if (rc == 0 && is_final_kind(it->kind)) {
      final = 1;
      /* as replay and verify read it back */
      const char *status = journal_event_status(it->kind, it->payload, 0);
      rc = journal_run_set_status(rt->j, rt->run_id, status, now, rt->err);
      if (rc == 0)
        rc = journal_lock_release(rt->j, rt->wf->name, rt->env_name,
                                  rt->run_id, rt->err);
    }
  }
  rt->tx_events += n;
  rt->tx_open = rc == 0 && rt->opt->sim && !final &&
                rt->tx_events < SIM_TX_EVENTS;
  if (rc == 0 && !rt->tx_open) {
    rt->tx_events = 0;
    rc = journal_commit(rt->j, rt->err);
  }
  if (rc != 0) {
    rt->tx_open = 0;
    journal_rollback(rt->j);
    return rc;
  }
  for (size_t i = 0; i < n; i++) {
    struct engine__qitem *it = &rt->queue[i];
    if (rt->opt->observe) {
      struct journal_event ev = {0};
      ev.seq = it->seq;
      memcpy(ev.run_id, rt->run_id, sizeof ev.run_id);
      ev.kind = (char *)it->kind;
      ev.state = it->state;
      ev.attempt = it->attempt;
      ev.time_ms = it->time_ms;
      ev.payload = it->payload;
      if (it->has_text && !rt->texts.failed) {
        ev.payload_text = rt->texts.p + it->text_off;
        ev.payload_len = it->text_len;
      }
      rt->opt->observe(rt->opt->ud, &ev);
    }
    if (rt->planner)
      engine__planner_feed(rt->planner, it->kind, it->state, it->payload);
    if (rt->entered && strcmp(it->kind, JOURNAL_EV_STATE_ENTERED) == 0 &&
        json_object_set_new(rt->entered, it->state,
                            json_integer(it->seq)) != 0)
      rt->fatal = CAIRN_E_NOMEM;
    qitem_release(it);
  }
  if (n > 0 && rt->opt->observe && rt->opt->observed)
    rt->opt->observed(rt->opt->ud);
  if (rt->texts.cap > 64 * 1024) /* not as large as the largest flush */
    cairn_buf_release(&rt->texts);
  /* Events queued meanwhile (none today) stay for the next round. */
  memmove(rt->queue, rt->queue + n, (rt->nqueue - n) * sizeof *rt->queue);
  rt->nqueue -= n;
  return 0;
}

/* Starts the actions whose intent is now durable. */
static void start_spawns(struct engine__rt *rt)
{
  while (rt->spawn_head && !rt->fatal) {
    struct engine__task *t = rt->spawn_head;
    rt->spawn_head = t->next_queued;
    if (rt->spawn_head == NULL)
      rt->spawn_tail = NULL;
    t->next_queued = NULL;
    task_start_now(t);
  }
}

/* Remembers, when a commit failed, a step's end that it carried: the
 * step ran, resume will ask how it went, and the user should know. Not
 * the ends that stopping the run queues after (never tried). */
static void note_lost_end(struct engine__rt *rt,
                          const struct engine__qitem *it)
{
  size_t len = strlen(rt->lost_ends);
  const char *o;

  if (strcmp(it->kind, JOURNAL_EV_ACTION_FINISHED) != 0 || it->state == NULL)
    return;
  o = json_string_value(json_object_get(it->payload, "outcome"));
  if (len == 0)
    snprintf(rt->res->state, sizeof rt->res->state, "%s", it->state);
  if (len + 1 < sizeof rt->lost_ends)
    snprintf(rt->lost_ends + len, sizeof rt->lost_ends - len, "%s%s %s",
             len ? ", " : "", it->state, o ? o : "ended");
}

/* Group commit: everything queued this loop turn in one transaction, then
 * the actions waiting for it; again while that queued urgent events (a
 * spawn that failed at once) or more spawns (a probe that failed). */
static void flush(struct engine__rt *rt)
{
  int first = 1;
  /* called from the loop, never inside a cursor's work */
  rt->cx = NULL;
  while (!rt->fatal && (first || rt->urgent > 0 || rt->spawn_head)) {
    first = 0;
    rt->urgent = 0;
    if (rt->nqueue > 0) {
      int rc = commit_queue(rt);
      if (rc != 0) {
        rt->fatal = rc;
        rt->unjournaled = 1;
        /* the ends of steps this commit carried: they ran */
        for (size_t i = 0; i < rt->nqueue; i++)
          note_lost_end(rt, &rt->queue[i]);
        break;
      }
    }
    start_spawns(rt);
  }
  if (rt->fatal) {
    /* The journal cannot be written: stop everything, record nothing
     * more. What was committed is consistent; resume picks it up. */
    for (size_t i = 0; i < rt->nqueue; i++) {
      qitem_release(&rt->queue[i]);
    }
    rt->nqueue = 0;
    rt->urgent = 0;
    rt->spawn_head = rt->spawn_tail = NULL;
    engine__stop_calls(rt->cur);
    rt->finished = 1;
  }
  free_dead(rt);
  uv_idle_stop(&rt->idle);
  if (rt->finished && !rt->closing && (rt->cur == NULL || rt->cur->open == 0))
    rt_close_all(rt);
}

static void check_cb(uv_check_t *h)
{
  struct engine__rt *rt = h->data;
  /* Lazy events alone wait for their timer or the next urgent commit. */
  if (rt->urgent > 0 || rt->spawn_head || rt->finished || rt->dead)
    flush(rt);
}

/* ---- scope and helpers ---- */

void engine__record_outputs(struct engine__rt *rt, const char *state,
                            json_t *outputs)
{
  json_t *states = json_object_get(rt->scope, "states");

  if (rt->cx != NULL && rt->cx->owner != NULL) {
    /* a state of an instance: its outputs are the instance's own */
    engine__frame_record(rt, engine_workflow_state(rt->wf, state), outputs);
    return;
  }
  json_t *o;

  if (rt->opt->sim && outputs != NULL && outputs == rt->sim_outputs_last) {
    /* A simulated action's outputs are its adapter's one placeholder
     * object: the states that have them share one record of them, not
     * an object each (nothing changes a record once made). */
    o = json_incref(rt->sim_record_last);
  } else if ((o = json_object()) != NULL) {
    json_object_set_new_nocheck(o, "output", outputs ? json_incref(outputs)
                                                     : json_object());
    if (rt->opt->sim && outputs != NULL) {
      json_decref(rt->sim_outputs_last);
      json_decref(rt->sim_record_last);
      rt->sim_outputs_last = json_incref(outputs);
      rt->sim_record_last = json_incref(o);
    }
  }
  json_object_set_new(states, state, o);
  engine__frame_record(rt, engine_workflow_state(rt->wf, state), outputs);
}

/* Does any redact value occur in a string inside v? */
static int holds_secret(json_t *v, char **redact)
{
  if (redact == NULL || redact[0] == NULL)
    return 0;
  if (json_is_string(v)) {
    for (char **r = redact; *r; r++)
      if (**r && strstr(json_string_value(v), *r))
        return 1;
    return 0;
  }
  size_t i;
  const char *k;
  json_t *x;
  if (json_is_array(v)) {
    json_array_foreach(v, i, x) if (holds_secret(x, redact)) return 1;
  } else if (json_is_object(v)) {
    json_object_foreach(v, k, x) if (holds_secret(x, redact)) return 1;
  }
  return 0;
}

/* A copy of v with every secret value replaced by ***. */
static json_t *redacted_copy(json_t *v, char **redact)
{
  if (json_is_string(v)) {
    char *s = strdup(json_string_value(v));
    s = adapter_redact(s, (const char *const *)redact);
    json_t *out = json_string(s ? s : "");
    free(s);
    return out;
  }
  size_t i;
  const char *k;
  json_t *x;
  if (json_is_array(v)) {
    json_t *a = json_array();
    json_array_foreach(v, i, x) json_array_append_new(a, redacted_copy(x, redact));
    return a;
  }
  if (json_is_object(v)) {
    json_t *o = json_object();
    json_object_foreach(v, k, x) json_object_set_new(o, k, redacted_copy(x, redact));
    return o;
  }
  return json_incref(v);
}

/* What in the scope of task t's templates comes from placeholder outputs
 * (a simulation's): for an undo, the outputs of a step that finished (a
 * cancelled one has none) and the inputs its entry took from them. */
static void task_sim_src(struct engine__task *t, struct engine__sim_src *src)
{
  struct engine__rt *rt = t->rt;

  engine__sim_src(rt, t->sx->cx, t->sx->st, t->item != NULL, src);
  if (t->sx->is_undo) {
    json_t *step = json_array_get(rt->plan, t->sx->step);
    src->self_output = !json_is_true(json_object_get(step, "cancelled"));
    src->self_input = json_object_get(
        rt->sim_marks, json_string_value(json_object_get(step, "path")));
  }
}

/* A simulation notes which inputs of task t come from placeholders (for
 * its state.entered, engine__task_entered). */
static void task_sim_mark(struct engine__task *t, json_t *scope,
                          const struct engine__sim_src *src)
{
  struct engine__rt *rt = t->rt;
  json_t *keys = engine__sim_keys(rt, t->action->with, scope, src);

  if (keys == NULL) {
    json_object_del(rt->sim_marks, t->path);
    return;
  }
  if (rt->sim_marks == NULL && (rt->sim_marks = json_object()) == NULL) {
    json_decref(keys);
    return;
  }
  json_object_set_new(rt->sim_marks, t->path, keys);
}

int engine__task_resolve(struct engine__task *t, struct cairn_error *err)
{
  json_t *rendered = NULL;
  json_t *scope = engine__scope_in(t->rt, t->sx->cx, t->sx->st, t->item);
  struct engine__sim_src src;
  int rc;

  /* only read, by adapter_apply_defaults: what holds no template is
   * shared, not copied */
  rc = scope ? engine_template_render_shared(t->action->with, scope,
                                             &rendered, err)
             : cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  if (t->rt->opt->sim && scope != NULL) {
    task_sim_src(t, &src);
    /* A simulated action's outputs are placeholders, so a template that
     * reads them may not resolve: such an input is shown as written. Any
     * other failure is a real run's too. */
    if (rc != 0)
      rc = engine__sim_tolerates(t->rt, t->action->with, NULL, scope, &src,
                                 err);
    if (rc == 0)
      task_sim_mark(t, scope, &src);
    if (rc == 0 && rendered == NULL &&
        (rendered = engine__sim_render_keys(t->action->with, scope)) == NULL)
      rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  }
  json_decref(scope);
  if (rc != 0)
    return rc;
  json_decref(t->inputs);
  t->inputs = NULL;
  rc = adapter_apply_defaults(t->desc, rendered, &t->inputs, err);
  if (rc != 0 && t->rt->opt->sim) /* a placeholder may fail a check */
    rc = engine__sim_checks(t->desc, t->action->with, rendered,
                            json_object_get(t->rt->sim_marks, t->path),
                            &t->inputs, err);
  json_decref(rendered);
  if (rc == 0)
    t->redacted = holds_secret(t->inputs, t->rt->redact);
  return rc;
}

json_t *engine__redact(struct engine__rt *rt, json_t *v)
{
  return holds_secret(v, rt->redact) ? redacted_copy(v, rt->redact)
                                     : json_incref(v);
}

int engine__holds_secret(struct engine__rt *rt, json_t *v)
{
  return holds_secret(v, rt->redact);
}

int engine__task_entered(struct engine__task *t, json_t *p, int rc,
                         const struct cairn_error *err, int say_inputs)
{
  json_t *ph = json_object_get(t->rt->sim_marks, t->path);

  if (rc == 0)
    json_object_set_new(p, "inputs", engine__journal_inputs(t));
  else
    json_object_set_new(p, "error", engine__text(err->msg));
  if (rc == 0 && ph != NULL) /* a simulation's inputs from placeholders */
    json_object_set(p, "placeholders", ph);
  if (t->redacted)
    json_object_set_new(p, "redacted", json_true());
  engine__emit(t->rt, JOURNAL_EV_STATE_ENTERED, t->path, 0, p);
  if (rc != 0) {
    char msg[1200];
    if (say_inputs)
      snprintf(msg, sizeof msg, "cannot resolve the inputs of '%s': %s",
               t->path, err->msg);
    else
      snprintf(msg, sizeof msg, "%s", err->msg);
    engine__task_done(t, 0, 0, msg);
  }
  return rc;
}

json_t *engine__journal_inputs(struct engine__task *t)
{
  return t->redacted ? redacted_copy(t->inputs, t->rt->redact)
                     : json_incref(t->inputs);
}

/* ---- tasks ---- */

static void timer_free_cb(uv_handle_t *h)
{
  free(h);
}

static void task_release(struct engine__task *t)
{
  json_decref(t->inputs);
  json_decref(t->outputs);
  json_decref(t->call_inputs);
  json_decref(t->pending);
  json_decref(t->item);
  t->inputs = t->outputs = t->call_inputs = t->pending = t->item = NULL;
  free(t->log_path);
  t->log_path = NULL;
  free(t->path); /* and name */
  t->path = t->name = NULL;
  free(t->error);
  t->error = NULL;
  for (size_t i = 0; i < sizeof t->env_extra / sizeof t->env_extra[0]; i++) {
    free(t->env_extra[i]);
    t->env_extra[i] = NULL;
  }
  if (t->retry_timer) {
    uv_close((uv_handle_t *)t->retry_timer, timer_free_cb);
    t->retry_timer = NULL;
  }
  engine__cursor_free(t->inst);
  t->inst = NULL;
}

void engine__cursor_free(struct engine__cursor *cx)
{
  if (cx == NULL)
    return;
  if (cx->owner != NULL) {
    /* an entry left for the outermost engine__enter dies with it */
    struct engine__rt *rt = cx->owner->rt;
    for (size_t i = 0; i < rt->npend; i++)
      if (rt->pend[i].cx == cx)
        rt->pend[i].to[0] = '\0';
  }
  engine__sx_destroy(cx->cur);
  if (cx->wait_timer)
    uv_close((uv_handle_t *)cx->wait_timer, timer_free_cb);
  json_decref(cx->frames);
  free(cx);
}

struct engine__sx **engine__slot(struct engine__rt *rt,
                                 struct engine__cursor *cx)
{
  return cx != NULL && cx->owner != NULL ? &cx->cur : &rt->cur;
}

/* Is sx what its cursor is carrying out (not retired)? */
static int live(struct engine__rt *rt, struct engine__sx *sx)
{
  return *engine__slot(rt, sx->cx) == sx;
}

void engine__copy(char *out, size_t n, const char *src)
{
  size_t len = strlen(src);

  if (n == 0)
    return;
  if (len >= n)
    len = n - 1;
  memcpy(out, src, len);
  out[len] = '\0';
}

void engine__jpath(struct engine__rt *rt, const char *name, char *out,
                   size_t n)
{
  struct engine__cursor *cx = rt->cx;
  const char *m;
  size_t ml;

  if (cx == NULL || cx->owner == NULL || name == NULL) {
    engine__copy(out, n, name ? name : "");
    return;
  }
  m = cx->owner->sx->st->name;
  ml = strlen(m);
  if (strncmp(name, m, ml) == 0 && name[ml] == '/')
    snprintf(out, n, "%s%s", cx->pfx, name + ml + 1);
  else if (strcmp(name, m) == 0)
    snprintf(out, n, "%.*s", (int)strlen(cx->pfx) - 1, cx->pfx);
  else
    snprintf(out, n, "%s", name);
}

void engine__sx_destroy(struct engine__sx *sx)
{
  if (sx == NULL)
    return;
  for (size_t i = 0; i < sx->ntasks; i++)
    task_release(&sx->tasks[i]);
  free(sx->tasks);
  if (sx->cx_owned)
    engine__cursor_free(sx->cx);
  free(sx);
}

void engine__sx_retire(struct engine__rt *rt, struct engine__sx *sx)
{
  if (sx == NULL)
    return;
  sx->next_dead = rt->dead;
  rt->dead = sx;
}

static void free_dead(struct engine__rt *rt)
{
  while (rt->dead) {
    struct engine__sx *sx = rt->dead;
    rt->dead = sx->next_dead;
    engine__sx_destroy(sx);
  }
}

int engine_step_file(const char *path, char *out, size_t n)
{
  size_t len = strlen(path), keep = len;
  unsigned char md[32];

  if (len >= ENGINE_STEP_FILE_MAX) {
    /* a prefix (paths are ASCII: names and keys), then 16 hex digits of
     * the whole */
    keep = ENGINE_STEP_FILE_MAX - 18;
    if (EVP_Digest(path, len, md, NULL, EVP_sha256(), NULL) != 1)
      return CAIRN_E_NOMEM;
  }
  if (keep + (keep < len ? 17 : 0) + 1 > n)
    return CAIRN_E_INVAL;
  for (size_t i = 0; i < keep; i++)
    out[i] = path[i] == '/' ? '.' : path[i];
  out[keep] = '\0';
  if (keep < len) {
    out[keep] = '~';
    for (int i = 0; i < 8; i++)
      snprintf(out + keep + 1 + 2 * i, 3, "%02x", md[i]);
  }
  return 0;
}

int engine__task_init(struct engine__rt *rt, struct engine__sx *sx,
                      struct engine__task *t, const char *path,
                      const struct engine_action *action)
{
  size_t n = strnlen(path, 319); /* the journal's longest path */
  char cut[320], name[ENGINE_STEP_FILE_MAX];
  int rc;

  memset(t, 0, sizeof *t);
  t->rt = rt;
  t->sx = sx;
  memcpy(cut, path, n);
  cut[n] = '\0';
  if ((rc = engine_step_file(cut, name, sizeof name)) < 0)
    return rc;
  /* the path, then the name its files take, in one allocation (a wide
   * fan-out makes a task per branch) */
  size_t nl = strlen(name);
  if ((t->path = malloc(n + 1 + nl + 1)) == NULL)
    return CAIRN_E_NOMEM;
  memcpy(t->path, cut, n + 1);
  t->name = memcpy(t->path + n + 1, name, nl + 1);
  t->action = action;
  /* an instance of a map over a used workflow runs no action itself */
  t->desc = action->adapter ? adapter_find(action->adapter) : NULL;
  if (t->desc == NULL && action->adapter != NULL)
    return CAIRN_E_WORKFLOW;
  if (rt->opt->sim)
    return 0; /* a simulation writes no log */
  int w = asprintf(&t->log_path, "%s/%s.log", rt->run_dir, t->name);
  if (w < 0) {
    t->log_path = NULL;
    return CAIRN_E_NOMEM;
  }
  if (w >= ENGINE__LOG_PATH_MAX)
    return CAIRN_E_INVAL;
  return 0;
}

/* The CAIRN_* variables of t's calls, made at its first call (a
 * simulation's calls run nothing and take none). Its state.entered is
 * committed by then: CAIRN_ENTRY_SEQ tells this visit's children from
 * those an earlier visit of the same state left running (resume.c). */
static int task_env(struct engine__task *t)
{
  struct engine__rt *rt = t->rt;
  json_t *seq = json_object_get(rt->entered, t->path);

  if (t->env_extra[0] != NULL || rt->opt->sim)
    return 0;
  if (asprintf(&t->env_extra[0], "CAIRN_RUN_ID=%s", rt->run_id) < 0 ||
      asprintf(&t->env_extra[1], "CAIRN_STATE=%s", t->path) < 0 ||
      asprintf(&t->env_extra[2], "CAIRN_RUN_DIR=%s", rt->run_dir) < 0 ||
      (seq != NULL &&
       asprintf(&t->env_extra[3], "CAIRN_ENTRY_SEQ=%" JSON_INTEGER_FORMAT,
                json_integer_value(seq)) < 0))
    return CAIRN_E_NOMEM;
  return 0;
}

/* A wide parallel state makes all its branches in one loop turn: room
 * for them first, resident in a few calls rather than page by page
 * (common/heap.h; a no-op where the process made no heap at start). */
static void reserve_branches(const struct engine_state *st)
{
  size_t bytes = engine_state_branches_heap(st);

  if (bytes > 0)
    (void)cairn_heap_reserve(bytes); /* only a speed-up */
}

struct engine__sx *engine__sx_new(struct engine__rt *rt,
                                  const struct engine_state *st)
{
  struct engine__sx *sx = calloc(1, sizeof *sx);
  if (sx == NULL)
    return NULL;
  sx->st = st;
  sx->cx = rt->cx;
  engine__jpath(rt, st->name, sx->path, sizeof sx->path);
  if (st->kind == ENGINE_DO) {
    sx->ntasks = 1;
  } else if (st->kind == ENGINE_PARALLEL) {
    sx->ntasks = st->nbranches;
    reserve_branches(st);
  }
  if (sx->ntasks) {
    sx->tasks = calloc(sx->ntasks, sizeof *sx->tasks);
    if (sx->tasks == NULL) {
      free(sx);
      return NULL;
    }
  }
  for (size_t i = 0; i < sx->ntasks; i++) {
    char path[320];
    const struct engine_action *a;
    if (st->kind == ENGINE_DO) {
      engine__copy(path, sizeof path, sx->path);
      a = &st->action;
    } else {
      snprintf(path, sizeof path, "%s/%s", sx->path, st->branches[i].name);
      a = &st->branches[i].action;
    }
    if (engine__task_init(rt, sx, &sx->tasks[i], path, a) != 0) {
      engine__sx_destroy(sx);
      return NULL;
    }
  }
  sx->open = sx->ntasks;
  return sx;
}

/* Takes t out of the tasks waiting for the flush to start them. */
static void spawn_unlink(struct engine__rt *rt, struct engine__task *t)
{
  struct engine__task *prev = NULL;
  for (struct engine__task *x = rt->spawn_head; x; prev = x,
                           x = x->next_queued) {
    if (x != t)
      continue;
    if (prev)
      prev->next_queued = x->next_queued;
    else
      rt->spawn_head = x->next_queued;
    if (rt->spawn_tail == x)
      rt->spawn_tail = prev;
    x->next_queued = NULL;
    return;
  }
}

static void queue_spawn(struct engine__task *t)
{
  struct engine__rt *rt = t->rt;
  t->phase = ENGINE__TASK_QUEUED;
  t->next_queued = NULL;
  if (rt->spawn_tail)
    rt->spawn_tail->next_queued = t;
  else
    rt->spawn_head = t;
  rt->spawn_tail = t;
  uv_idle_start(&rt->idle, idle_noop);
}

void engine__task_attempt(struct engine__task *t)
{
  json_t *p = json_object();

  t->rt->progress++;
  t->attempt++;
  t->probing = 0;
  /* built directly: json_pack's format cost more than the object */
  if (p != NULL) {
    json_object_set_new_nocheck(p, "adapter", json_string(t->desc->name));
    json_object_set_new_nocheck(p, "attempt", json_integer(t->attempt));
  }
  engine__emit(t->rt, JOURNAL_EV_ACTION_STARTED, t->path, t->attempt, p);
  queue_spawn(t);
}

void engine__task_probe(struct engine__task *t)
{
  t->probing = 1;
  queue_spawn(t);
}

static void on_spawned(struct adapter_call *call, int pid, int pgid,
                       int64_t proc_start)
{
  struct engine__task *t = call->data;
  if (t->probing || t->readying)
    return;
  engine__emit_lazy(t->rt, JOURNAL_EV_ACTION_SPAWNED, t->path, t->attempt,
                    json_pack("{s:i,s:i,s:I,s:s}", "pid", pid, "pgid", pgid,
                              "proc_start", (json_int_t)proc_start,
                              "boot_id", t->rt->boot_id),
                    LAZY_SPAWNED_MS);
}

static int64_t retry_delay(const struct engine_retry *r, int failures)
{
  double d = (double)r->delay_ms;
  for (int i = 1; i < failures; i++)
    d *= r->backoff > 0 ? r->backoff : 1;
  if (r->max_delay_ms > 0 && d > (double)r->max_delay_ms)
    d = (double)r->max_delay_ms;
  if (d > (double)INT64_MAX / 2)
    d = (double)INT64_MAX / 2;
  return (int64_t)d;
}

static void retry_timer_cb(uv_timer_t *h)
{
  struct engine__task *t = h->data;
  if (t->rt->interrupted) {
    engine__task_done(t, 0, 1, "interrupted");
    return;
  }
  engine__task_attempt(t);
}

/* log_errno: the task's first failed write to its log, 0 if none. */
static json_t *finished_payload(const struct adapter_result *res,
                                const char *outcome, int log_errno)
{
  json_t *p = json_object();

  if (p == NULL)
    return NULL;
  json_object_set_new_nocheck(p, "outcome", json_string(outcome));
  json_object_set_new_nocheck(p, "duration_ms",
                              json_integer((json_int_t)res->duration_ms));
  if (res->exit_code >= 0)
    json_object_set_new_nocheck(p, "exit_code", json_integer(res->exit_code));
  if (res->term_signal)
    json_object_set_new_nocheck(p, "signal", json_integer(res->term_signal));
  if (res->outputs && json_object_size(res->outputs))
    json_object_set_nocheck(p, "outputs", res->outputs);
  if (res->tail && res->tail[0])
    json_object_set_new_nocheck(p, "tail", engine__text(res->tail));
  if (res->error[0])
    json_object_set_new_nocheck(p, "error", engine__text(res->error));
  if (log_errno) /* show --logs and the step's line say so */
    json_object_set_new_nocheck(p, "log_error",
                                json_string(strerror(log_errno)));
  return p;
}

/* p (returned) says that res's outputs are placeholders, when they are:
 * in a simulation, those of a success (a failure's are empty). */
static json_t *sim_marked(struct engine__rt *rt, json_t *p,
                          const struct adapter_result *res)
{
  if (p != NULL && rt->opt->sim && json_object_size(res->outputs) > 0)
    json_object_set_new_nocheck(p, "placeholders", json_true());
  return p;
}

static void task_finished(struct engine__task *t,
                          const struct adapter_result *res);

/* A branch cancelled because a sibling failed: a probe, when it has one,
 * learns whether it took effect before the state counts as done. */
static void task_after_cancel(struct engine__task *t)
{
  if (t->action->probe && !t->rt->interrupted) {
    t->cancel_probe = 1;
    engine__task_probe(t);
    return;
  }
  engine__task_done(t, 0, 1, "cancelled");
}

/* The adapter is done with the call (every handle closed): free it. */
static void on_done(struct adapter_call *call, const struct adapter_result *res)
{
  struct engine__task *t = call->data;

  if (res->secrets && !t->probing)
    engine__learn_secrets(t->rt, res->secrets, t->path);
  free(call);
  t->call = NULL;
  json_decref(t->call_inputs);
  t->call_inputs = NULL;
  task_finished(t, res);
}

int engine__task_idempotent(const struct engine__task *t)
{
  if (t->action->idempotent >= 0)
    return t->action->idempotent;
  return t->desc->idempotent;
}

/* Journals how an attempt (or probe) ended and decides what follows:
 * done, a retry after its delay, or the state's failure. */
static void task_finished(struct engine__task *t,
                          const struct adapter_result *res)
{
  struct engine__rt *rt = t->rt;
  int ok = res->outcome == ADAPTER_SUCCEEDED;
  int stopped = res->outcome == ADAPTER_CANCELLED;

  if (t->probing) {
    t->probing = 0;
    engine__emit(rt, JOURNAL_EV_PROBE_FINISHED, t->path, t->attempt,
                 sim_marked(rt, finished_payload(res, ok ? "succeeded"
                                                         : "failed",
                                                  t->log_errno),
                            res));
    if (t->cancel_probe) {
      /* A cancelled branch: the probe only says whether it took effect
       * (then it counts as done and its undo joins the plan). */
      t->cancel_probe = 0;
      if (ok)
        t->outputs = json_incref(res->outputs);
      engine__task_done(t, ok, !ok, ok ? NULL : "cancelled");
    } else if (ok) {
      t->outputs = json_incref(res->outputs);
      engine__task_done(t, 1, 0, NULL);
    } else if (rt->interrupted || stopped) {
      engine__task_done(t, 0, 1, "interrupted");
    } else {
      /* The interrupted action did not take effect: run it again. */
      engine__task_attempt(t);
    }
    return;
  }

  struct adapter_result merged;
  int not_ready = 0;
  if (t->readying) {
    /* The ready check decides the attempt; the action's outputs stand. */
    merged = *res;
    t->readying = 0;
    /* the step took the action's time and its check's, as `show` says */
    merged.duration_ms = t->pending_ms + res->duration_ms;
    /* the action ran: its outputs are what its undo needs, also when a
     * stop cut its check short (a cancelled branch is undone with them) */
    merged.outputs = t->pending;
    if (!ok && !stopped) {
      snprintf(merged.error, sizeof merged.error, "not ready: %s",
               res->error);
      merged.outcome = ADAPTER_FAILED;
      not_ready = 1;
    }
    res = &merged;
  } else if (ok && t->action->ready && !rt->interrupted) {
    /* Done, but not ready yet: run the check before anything is
     * journaled (it changes nothing, so nothing is announced). */
    json_decref(t->pending);
    t->pending = json_incref(res->outputs);
    t->pending_ms = res->duration_ms;
    t->readying = 1;
    task_start_now(t);
    return;
  }
  const char *outcome = adapter_outcome_name(res->outcome);
  if (stopped && rt->interrupted)
    outcome = "interrupted";
  json_t *fp = sim_marked(rt, finished_payload(res, outcome,
                                                    t->log_errno), res);
  if (not_ready) /* the action ran: a rollback must undo it */
    json_object_set_new(fp, "took_effect", json_true());
  if (ok && !rt->opt->sim && engine__task_idempotent(t))
    engine__emit_lazy(rt, JOURNAL_EV_ACTION_FINISHED, t->path, t->attempt, fp,
                      LAZY_SUCCESS_MS);
  else
    engine__emit(rt, JOURNAL_EV_ACTION_FINISHED, t->path, t->attempt, fp);
  if (ok) {
    t->outputs = json_incref(res->outputs);
    engine__task_done(t, 1, 0, NULL);
    return;
  }
  if (stopped) {
    if (rt->interrupted)
      engine__task_done(t, 0, 1, "interrupted");
    else
      task_after_cancel(t);
    return;
  }
  t->failures++;
  cairn_msg_set(&t->error, "%s", res->error);
  if (t->failures < t->action->retry.attempts && !rt->interrupted &&
      !t->sx->failed) {
    int64_t delay = retry_delay(&t->action->retry, t->failures);
    engine__emit(rt, JOURNAL_EV_ACTION_RETRYING, t->path, t->attempt,
                 json_pack("{s:I,s:i}", "delay_ms", (json_int_t)delay,
                           "next_attempt", t->attempt + 1));
    if (t->retry_timer == NULL) {
      t->retry_timer = malloc(sizeof *t->retry_timer);
      if (t->retry_timer == NULL) {
        rt->fatal = CAIRN_E_NOMEM;
        return;
      }
      uv_timer_init(&rt->loop, t->retry_timer);
      t->retry_timer->data = t;
    }
    t->phase = ENGINE__TASK_RETRY_WAIT;
    /* A simulation journals the delay it would wait, and goes on. */
    uv_timer_start(t->retry_timer, retry_timer_cb,
                   rt->opt->sim ? 0 : (uint64_t)delay, 0);
    return;
  }
  engine__task_done(t, 0, 0, res->error);
}

/* Starts the task's action (or probe) now: its intent is journaled. */
static void task_start_now(struct engine__task *t)
{
  struct engine__rt *rt = t->rt;
  struct cairn_error err = {0};
  const struct engine_action *a = t->probing    ? t->action->probe
                                 : t->readying ? t->action->ready
                                               : t->action;
  const struct adapter_desc *desc = rt->opt->sim ? &engine__sim_adapter
                                   : a != t->action ? adapter_find(a->adapter)
                                                    : t->desc;
  struct adapter_call *call;
  json_t *inputs = NULL;
  int rc;

  if (rt->interrupted) {
    /* Journaled as started but never spawned: resume will see it. */
    engine__task_done(t, 0, 1, "interrupted");
    return;
  }
  if (a != t->action) {
    json_t *rendered = NULL;
    /* A probe or ready check sees the inputs (and a ready check the
     * outputs) of the action it checks as self. */
    json_object_set_new(rt->scope, "self",
                        json_pack("{s:O,s:o}", "input", t->inputs, "output",
                                  t->readying && t->pending
                                      ? json_incref(t->pending)
                                      : json_object()));
    json_t *scope = engine__scope_in(rt, t->sx->cx, t->sx->st, t->item);
    rc = scope ? engine_template_render(a->with, scope, &rendered, &err)
               : cairn_error_set(&err, CAIRN_E_NOMEM, "out of memory");
    struct engine__sim_src src;
    if (rt->opt->sim) {
      task_sim_src(t, &src);
      src.self_output = t->readying;
    }
    if (rc != 0 && rt->opt->sim && scope != NULL) {
      /* what does not render only because of placeholder outputs is
       * shown as written */
      if ((rc = engine__sim_tolerates(rt, a->with, NULL, scope, &src,
                                      &err)) == 0 &&
          (rendered = engine__sim_render_keys(a->with, scope)) == NULL)
        rc = cairn_error_set(&err, CAIRN_E_NOMEM, "out of memory");
    }
    if (rc == 0) {
      rc = adapter_apply_defaults(adapter_find(a->adapter), rendered, &inputs,
                                  &err);
      if (rc != 0 && rt->opt->sim) { /* a placeholder may fail a check */
        json_t *keys = engine__sim_keys(rt, a->with, scope, &src);
        rc = engine__sim_checks(adapter_find(a->adapter), a->with, rendered,
                                keys, &inputs, &err);
        json_decref(keys);
      }
    }
    json_decref(scope);
    json_object_del(rt->scope, "self");
    json_decref(rendered);
    if (rc != 0 && t->readying) {
      struct adapter_result res = {0};
      res.outcome = ADAPTER_FAILED;
      res.exit_code = -1;
      snprintf(res.error, sizeof res.error, "%s", err.msg);
      task_finished(t, &res);
      return;
    }
    if (rc != 0) {
      engine__emit(rt, JOURNAL_EV_PROBE_FINISHED, t->path, t->attempt,
                   json_pack("{s:s,s:o}", "outcome", "failed", "error",
                             engine__text(err.msg)));
      t->probing = 0;
      engine__task_attempt(t);
      return;
    }
  } else {
    inputs = json_incref(t->inputs);
  }

  call = calloc(1, sizeof *call);
  if (call == NULL || task_env(t) != 0) {
    free(call);
    json_decref(inputs);
    rt->fatal = CAIRN_E_NOMEM;
    return;
  }
  call->loop = &rt->loop;
  call->desc = desc;
  call->inputs = inputs;
  call->log_path = t->log_path;
  call->log_errno = &t->log_errno;
  call->run_dir = rt->run_dir;
  call->name = t->name;
  call->run_id = rt->run_id;
  call->entry = json_integer_value(json_object_get(rt->entered, t->path));
  call->timeout_ms = a->timeout_ms;
  call->kill_grace_ms = rt->opt->kill_grace_ms;
  call->env_extra = (const char *const *)t->env_extra;
  call->redact = (const char *const *)rt->redact;
  call->on_spawned = on_spawned;
  call->on_done = on_done;
  call->data = t;
  t->call = call;
  t->call_inputs = inputs;
  t->phase = ENGINE__TASK_RUNNING;

  /* A header per attempt keeps one log readable across retries (a
   * simulation writes no log). */
  if (!rt->opt->sim) {
    snprintf(t->log_header, sizeof t->log_header, "--- %s attempt %d ---\n",
             t->probing ? "probe" : t->readying ? "ready check" : "action",
             t->attempt);
    call->log_header = t->log_header;
  }
  rc = desc->start(call, &err);
  if (rc != 0) {
    /* Nothing runs and on_done will not come: a failed attempt like any
     * other, so retries apply. */
    struct adapter_result res = {0};
    t->call = NULL;
    t->call_inputs = NULL;
    free(call);
    json_decref(inputs);
    res.outcome = ADAPTER_FAILED;
    res.exit_code = -1;
    snprintf(res.error, sizeof res.error, "%s", err.msg);
    task_finished(t, &res);
  }
}

const char *engine__cancel_why(const struct engine__sx *sx)
{
  if (sx->st->kind == ENGINE_PARALLEL)
    return "cancelled: a sibling branch failed";
  /* a map's instance, or a step inside one: another instance failed */
  return "cancelled: another instance of the map failed";
}

/* Cancels the tasks of sx but `except` (a sibling failed): running calls
 * stopped, instances cancelled, attempts journaled but not started and
 * retries waiting journaled cancelled. */
static void cancel_tasks(struct engine__rt *rt, struct engine__sx *sx,
                         struct engine__task *except)
{
  for (size_t i = 0; i < sx->ntasks; i++) {
    struct engine__task *o = &sx->tasks[i];
    if (o == except)
      continue;
    if (o->phase == ENGINE__TASK_RUNNING && o->inst)
      engine__cursor_cancel(rt, o->inst);
    else if (o->phase == ENGINE__TASK_RUNNING && o->call)
      o->call->desc->cancel(o->call);
    else if (o->phase == ENGINE__TASK_QUEUED) {
      /* Its attempt is journaled but not started yet: it never will
       * be. Cancelled like a running sibling, in a run as in a
       * simulation. */
      spawn_unlink(rt, o);
      if (o->probing) {
        o->probing = o->cancel_probe = 0;
        engine__task_done(o, 0, 1, "cancelled");
      } else {
        engine__emit(rt, JOURNAL_EV_ACTION_FINISHED, o->path, o->attempt,
                     json_pack("{s:s,s:s}", "outcome", "cancelled",
                               "error", engine__cancel_why(sx)));
        task_after_cancel(o);
      }
    } else if (o->phase == ENGINE__TASK_RETRY_WAIT) {
      uv_timer_stop(o->retry_timer);
      engine__emit(rt, JOURNAL_EV_ACTION_FINISHED, o->path, o->attempt,
                   json_pack("{s:s,s:s}", "outcome", "cancelled", "error",
                             engine__cancel_why(sx)));
      task_after_cancel(o);
    }
  }
}

void engine__cursor_cancel(struct engine__rt *rt, struct engine__cursor *cx)
{
  struct engine__sx *sx = cx->cur;
  struct engine__cursor *prev = rt->cx;

  if (cx->cancelled)
    return;
  cx->cancelled = 1;
  rt->cx = cx;
  if (sx == NULL || sx->st->kind == ENGINE_WAIT || sx->open == 0) {
    /* nothing runs in it: it ends now */
    if (cx->wait_timer)
      uv_timer_stop(cx->wait_timer);
    engine__cursor_stop(rt, cx);
  } else {
    cancel_tasks(rt, sx, NULL);
  }
  rt->cx = prev;
}

void engine__stop_calls(struct engine__sx *sx)
{
  for (size_t i = 0; sx && i < sx->ntasks; i++) {
    struct engine__task *t = &sx->tasks[i];
    if (t->phase == ENGINE__TASK_RUNNING && t->inst) {
      /* an instance waiting, while another's commit failed, would keep
       * the loop (and the process) alive for the rest of its wait */
      if (t->inst->wait_timer)
        uv_timer_stop(t->inst->wait_timer);
      engine__stop_calls(t->inst->cur);
    } else if (t->phase == ENGINE__TASK_RUNNING && t->call) {
      t->call->desc->cancel(t->call);
    } else if (t->phase == ENGINE__TASK_RETRY_WAIT) {
      uv_timer_stop(t->retry_timer); /* no attempt starts any more */
    }
  }
}

void engine__task_done(struct engine__task *t, int ok, int cancelled,
                       const char *error)
{
  struct engine__sx *sx = t->sx;
  struct engine__rt *rt = t->rt;
  struct engine__cursor *prev = rt->cx;

  if (t->phase == ENGINE__TASK_DONE)
    return;
  if (t->retry_timer)
    uv_timer_stop(t->retry_timer);
  t->phase = ENGINE__TASK_DONE;
  if (error && !ok && error != t->error)
    cairn_msg_set(&t->error, "%s", error);
  sx->open--;
  rt->cx = sx->cx;

  if (!ok && !cancelled) {
    t->failed = 1;
    sx->nfailed++;
  }
  if (!ok && !cancelled && !sx->failed) {
    sx->failed = 1;
    snprintf(sx->failed_path, sizeof sx->failed_path, "%s", t->path);
    snprintf(sx->error, sizeof sx->error, "%s", cairn_msg(t->error));
    /* A failed branch stops its siblings, unless the map runs them all
     * (fail_fast: false). */
    if (!engine__fail_late(sx))
      cancel_tasks(rt, sx, t);
  }
  if (sx->st->kind == ENGINE_MAP && !sx->is_undo) {
    /* the next instance, or none once one failed (unless fail_fast:
     * false); done when all are */
    engine__map_more(rt, sx);
  } else if (sx->open == 0) {
    engine__state_done(rt, sx);
  }
  rt->cx = prev;
}

/* ---- states and transitions ---- */

void engine__finish_interrupted(struct engine__rt *rt)
{
  if (rt->finished)
    return;
  rt->res->outcome = ENGINE_INTERRUPTED;
  rt->finished = 1;
  if (rt->interrupted == ENGINE__SIM_STOPPED) {
    /* a simulation in a loop: res->message says which */
    engine__emit(rt, JOURNAL_EV_RUN_INTERRUPTED, NULL, 0,
                 json_pack("{s:s}", "error", rt->res->message));
    return;
  }
  engine__emit(rt, JOURNAL_EV_RUN_INTERRUPTED, NULL, 0,
               json_pack("{s:i}", "signal", rt->interrupted));
  snprintf(rt->res->message, sizeof rt->res->message,
           "interrupted by %s", rt->interrupted == SIGTERM ? "SIGTERM"
                                                           : "SIGINT");
}

void engine__end_run(struct engine__rt *rt, const char *status,
                     const char *state, const char *error, json_t *extra)
{
  json_t *p = json_pack("{s:s}", "status", status);
  if (error && *error)
    json_object_set_new(p, "error", engine__text(error));
  if (extra)
    json_object_update(p, extra);
  json_decref(extra);
  engine__emit(rt, JOURNAL_EV_RUN_FINISHED, NULL, 0, p);
  snprintf(rt->res->status, sizeof rt->res->status, "%s", status);
  if (strcmp(status, JOURNAL_STATUS_SUCCEEDED) == 0)
    rt->res->outcome = ENGINE_SUCCEEDED;
  else if (strcmp(status, JOURNAL_STATUS_ROLLBACK_FAILED) == 0)
    rt->res->outcome = ENGINE_ROLLBACK_FAILED;
  else
    rt->res->outcome = ENGINE_FAILED;
  if (state)
    snprintf(rt->res->state, sizeof rt->res->state, "%s", state);
  if (error) {
    /* the terminal hears it, as the journal does, redacted */
    char *said = adapter_redact(strdup(error),
                                (const char *const *)rt->redact);
    snprintf(rt->res->message, sizeof rt->res->message, "%s",
             said ? said : "out of memory");
    free(said);
  }
  rt->finished = 1;
}

/* Counts a transition of the cursor rt->cx into a state: whether it has
 * gone past ENGINE__IDLE_MAX in a row with nothing started anywhere in
 * the run meanwhile (then the count starts again, so a failure path that
 * loops too is caught too). */
static int idle_loop(struct engine__rt *rt)
{
  struct engine__idle *idle = rt->cx != NULL && rt->cx->owner != NULL
                                  ? &rt->cx->idle
                                  : &rt->main_idle;

  if (rt->opt->sim)
    return 0;
  if (idle->at != rt->progress) {
    idle->at = rt->progress;
    idle->n = 0;
  }
  if (++idle->n <= ENGINE__IDLE_MAX)
    return 0;
  idle->n = 0;
  return 1;
}

void engine__transition(struct engine__rt *rt, const char *from,
                        const char *to, const char *reason,
                        const char *status, const char *error)
{
  char jfrom[320], jto[320];

  if (to != NULL && strcmp(to, JOURNAL_ROLLBACK) != 0 && idle_loop(rt)) {
    /* State `from` fails instead of going on: in a used workflow its use
     * state's on_failure applies; at the top, the run rolls back. */
    const struct engine_state *st = engine_workflow_state(rt->wf, from);
    char path[320], msg[800];
    engine__jpath(rt, from, path, sizeof path);
    snprintf(msg, sizeof msg, "state '%s' failed after %d states in a row "
             "that started no action and waited for nothing: a loop that "
             "would never end (hint: 'cairn simulate' names the loop; give "
             "it a way out, or a wait state)", path, ENGINE__IDLE_MAX);
    if (st != NULL && st->frame >= 0)
      engine__fail_state(rt, st, msg);
    else
      engine__transition(rt, from, JOURNAL_ROLLBACK, "a loop that never ends",
                         NULL, msg);
    return;
  }

  /* inside an instance, both are the instance's paths */
  engine__jpath(rt, from, jfrom, sizeof jfrom);
  if (to != NULL && strcmp(to, JOURNAL_ROLLBACK) != 0)
    engine__jpath(rt, to, jto, sizeof jto);
  else
    engine__copy(jto, sizeof jto, to ? to : "");
  json_t *p = json_object();
  if (p != NULL) {
    json_object_set_new_nocheck(p, "from", json_string(jfrom));
    json_object_set_new_nocheck(p, "to", json_string(jto));
    json_object_set_new_nocheck(p, "reason", json_string(reason));
    if (rt->sim_decided) /* a simulated choice read placeholders */
      json_object_set_new_nocheck(p, "placeholders", json_true());
  }
  rt->sim_decided = 0;
  engine__emit(rt, JOURNAL_EV_TRANSITION, jfrom, 0, p);
  if (to == NULL) {
    engine__end_run(rt, status, from, error, NULL);
    return;
  }
  if (strcmp(to, JOURNAL_ROLLBACK) == 0) {
    engine__rollback_begin(rt, from, error);
    return;
  }
  engine__enter(rt, to);
}

static void wait_cb(uv_timer_t *h)
{
  struct engine__rt *rt = h->data;
  struct engine__sx *sx = rt->cur;
  if (sx == NULL || sx->st->kind != ENGINE_WAIT)
    return;
  engine__state_done(rt, sx);
}

/* The wait of an instance's cursor is over. */
static void cx_wait_cb(uv_timer_t *h)
{
  struct engine__cursor *cx = h->data;
  struct engine__sx *sx = cx->cur;
  if (sx == NULL || sx->st->kind != ENGINE_WAIT)
    return;
  engine__state_done(cx->owner->rt, sx);
}

/* Starts waiting in a wait state until until_ms (journaled on entry). */
void engine__start_wait(struct engine__rt *rt, int64_t until_ms)
{
  struct engine__cursor *cx = rt->cx;
  int64_t left = until_ms - journal_now_ms();
  uint64_t ms;

  rt->progress++;
  if (rt->opt->sim)
    left = 0; /* a simulation journals the wait and goes on */
  ms = (uint64_t)(left > 0 ? left : 0);
  if (cx == NULL || cx->owner == NULL) {
    uv_timer_start(&rt->wait_timer, wait_cb, ms, 0);
    return;
  }
  if (cx->wait_timer == NULL) {
    if ((cx->wait_timer = malloc(sizeof *cx->wait_timer)) == NULL) {
      rt->fatal = CAIRN_E_NOMEM;
      return;
    }
    uv_timer_init(&rt->loop, cx->wait_timer);
    cx->wait_timer->data = cx;
  }
  uv_timer_start(cx->wait_timer, cx_wait_cb, ms, 0);
}

/* A choice that cannot decide ends the run failed; in a used workflow it
 * fails the use state (whose on_failure then applies). */
static void choice_failed(struct engine__rt *rt, const struct engine_state *st,
                          const char *msg)
{
  if (st->frame >= 0)
    engine__fail_state(rt, st, msg);
  else
    engine__transition(rt, st->name, NULL, "failed", JOURNAL_STATUS_FAILED,
                       msg);
}

/* A fail state's message, rendered in the state's scope and redacted
 * (malloc'd; NULL when it has none, or out of memory). One that cannot be
 * rendered (a simulation's placeholder outputs; an output this path of
 * the run never made) is said as written: the run fails either way. */
static char *fail_message(struct engine__rt *rt, const struct engine_state *st)
{
  struct cairn_error err = {0};
  json_t *scope, *out = NULL;
  char *s = NULL;

  if (st->message == NULL)
    return NULL;
  if (strstr(st->message, "{{") != NULL &&
      (scope = engine__scope_for(rt, st, NULL)) != NULL) {
    if (engine_template_render_string(st->message, scope, &out, &err) == 0)
      s = json_is_string(out) ? strdup(json_string_value(out))
                              : json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(out);
    json_decref(scope);
  }
  if (s == NULL)
    s = strdup(st->message);
  return adapter_redact(s, (const char *const *)rt->redact);
}

static void choice_decide(struct engine__rt *rt, const struct engine_state *st)
{
  json_t *scope = engine__scope_for(rt, st, NULL);
  char path[320]; /* messages name it as journaled (M/KEY/S) */
  struct engine__sim_src src;

  engine__jpath(rt, st->name, path, sizeof path);
  engine__sim_src(rt, rt->cx, st, 0, &src);
  for (size_t i = 0; i < st->nwhens; i++) {
    struct cairn_error err = {0};
    int truth = 0;
    int rc = engine_template_eval_bool(st->whens[i].expr, scope, &truth,
                                       &err);
    if (rt->opt->sim && scope != NULL &&
        engine__sim_reads(rt, NULL, st->whens[i].expr, scope, &src)) {
      /* Decided on placeholder outputs: its transition says so, and a
       * loop it keeps going names it (engine__sim_enter). */
      rt->sim_decided = 1;
      if (rt->sim_loop != NULL)
        engine__copy(rt->sim_loop_choice, sizeof rt->sim_loop_choice, path);
    }
    if (rc != 0 && rt->opt->sim &&
        (rc = engine__sim_tolerates(rt, NULL, st->whens[i].expr, scope, &src,
                                    &err)) == 0) {
      /* A `when` that reads placeholders and cannot be decided counts as
       * false (the trace shows which way the simulation went). Any other
       * failure is a real run's too. */
      truth = 0;
    } else if (rc != 0) {
      json_decref(scope);
      char msg[1200];
      rt->sim_decided = 0; /* it failed, as it would for real */
      snprintf(msg, sizeof msg, "choice '%s': %s", path, err.msg);
      choice_failed(rt, st, msg);
      return;
    }
    if (truth) {
      char reason[600];
      json_decref(scope);
      snprintf(reason, sizeof reason, "when: %s", st->whens[i].expr);
      engine__transition(rt, st->name, st->whens[i].next, reason, NULL, NULL);
      return;
    }
  }
  json_decref(scope);
  if (st->default_next) {
    engine__transition(rt, st->name, st->default_next, "default", NULL, NULL);
    return;
  }
  char msg[600];
  snprintf(msg, sizeof msg, "no branch of choice '%s' matched and it has no "
                            "default", path);
  choice_failed(rt, st, msg);
}

static void enter_state(struct engine__rt *rt, const char *name);

void engine__enter(struct engine__rt *rt, const char *name)
{
  if (rt->enter_depth >= ENGINE__ENTER_DEPTH) {
    if (rt->npend == rt->cappend) {
      size_t cap = rt->cappend ? rt->cappend * 2 : 4;
      struct engine__pending *p = realloc(rt->pend, cap * sizeof *p);
      if (p == NULL) {
        rt->fatal = CAIRN_E_NOMEM;
        return;
      }
      rt->pend = p;
      rt->cappend = cap;
    }
    struct engine__pending *e = &rt->pend[rt->npend++];
    e->cx = rt->cx != NULL && rt->cx->owner != NULL ? rt->cx : NULL;
    engine__copy(e->to, sizeof e->to, name);
    /* the state it leaves is left now, as entering would leave it: what
     * unwinds from here must not take it for the cursor's current one */
    struct engine__sx **slot = engine__slot(rt, rt->cx);
    engine__sx_retire(rt, *slot);
    *slot = NULL;
    return;
  }
  rt->enter_depth++;
  enter_state(rt, name);
  rt->enter_depth--;
  if (rt->enter_depth > 0)
    return;
  /* the outermost: the entries left for it, oldest first, each in its
   * own cursor */
  struct engine__cursor *prev = rt->cx;
  for (size_t i = 0; i < rt->npend; i++) {
    char to[320];
    if (rt->pend[i].to[0] == '\0')
      continue; /* its cursor is gone */
    engine__copy(to, sizeof to, rt->pend[i].to);
    rt->cx = rt->pend[i].cx;
    rt->enter_depth++;
    enter_state(rt, to);
    rt->enter_depth--;
  }
  rt->npend = 0;
  rt->cx = prev;
}

static void enter_state(struct engine__rt *rt, const char *name)
{
  const struct engine_state *st = engine_workflow_state(rt->wf, name);
  struct engine__sx **slot = engine__slot(rt, rt->cx);
  struct engine__sx *sx;

  engine__sx_retire(rt, *slot);
  *slot = NULL;
  if (rt->opt->sim && st != NULL && !rt->interrupted)
    engine__sim_enter(rt, st); /* past its limit, a loop stops it */
  if (rt->cx != NULL && rt->cx->owner != NULL &&
      (rt->interrupted || rt->cx->cancelled)) {
    /* an instance starts nothing new either; resume enters it */
    engine__cursor_stop(rt, rt->cx);
    return;
  }
  if (st == NULL) {
    char msg[600];
    snprintf(msg, sizeof msg, "state '%s' does not exist", name);
    engine__end_run(rt, JOURNAL_STATUS_FAILED, name, msg, NULL);
    return;
  }
  if (rt->interrupted) {
    /* Start nothing new; resume enters it. */
    engine__finish_interrupted(rt);
    return;
  }
  sx = engine__sx_new(rt, st);
  if (sx == NULL) {
    rt->fatal = CAIRN_E_NOMEM;
    return;
  }
  *slot = sx;

  switch (st->kind) {
  case ENGINE_DO:
  case ENGINE_PARALLEL:
    if (st->kind == ENGINE_PARALLEL)
      engine__emit(rt, JOURNAL_EV_STATE_ENTERED, sx->path, 0,
                   json_pack("{s:s}", "kind", "parallel"));
    for (size_t i = 0; i < sx->ntasks; i++) {
      struct engine__task *t = &sx->tasks[i];
      struct cairn_error err = {0};
      int rc = engine__task_resolve(t, &err);
      /* A do state's entry and a branch's entry carry the inputs that
       * were resolved now, once, for every attempt and for resume. */
      json_t *p = json_object();
      if (p != NULL)
        json_object_set_new_nocheck(
            p, "kind", json_string(st->kind == ENGINE_DO ? "do" : "branch"));
      if (engine__task_entered(t, p, rc, &err, 1) != 0) {
        if (*slot != sx)
          return;
        continue;
      }
      if (!sx->failed)
        engine__task_attempt(t);
      else
        engine__task_done(t, 0, 1, "cancelled");
      if (*slot != sx)
        return;
    }
    break;
  case ENGINE_CHOICE:
    engine__emit(rt, JOURNAL_EV_STATE_ENTERED, sx->path, 0,
                 json_pack("{s:s}", "kind", "choice"));
    choice_decide(rt, st);
    break;
  case ENGINE_WAIT: {
    int64_t until = journal_now_ms() + st->wait_ms;
    engine__emit(rt, JOURNAL_EV_STATE_ENTERED, sx->path, 0,
                 json_pack("{s:s,s:I}", "kind", "wait", "wait_until_ms",
                           (json_int_t)until));
    engine__start_wait(rt, until);
    break;
  }
  case ENGINE_APPROVAL:
    engine__emit(rt, JOURNAL_EV_STATE_ENTERED, sx->path, 0,
                 json_pack("{s:s}", "kind", "approval"));
    engine__approval_decide(rt, st);
    break;
  case ENGINE_USE:
    engine__use_enter(rt, sx);
    break;
  case ENGINE_MAP:
    engine__map_enter(rt, sx);
    break;
  case ENGINE_SUCCEED:
    engine__emit(rt, JOURNAL_EV_STATE_ENTERED, sx->path, 0,
                 json_pack("{s:s}", "kind", "succeed"));
    if (st->frame >= 0)
      engine__frame_succeed(rt, st);
    else
      engine__end_run(rt, JOURNAL_STATUS_SUCCEEDED, NULL, NULL, NULL);
    break;
  case ENGINE_FAIL: {
    char msg[1200];
    char *said = fail_message(rt, st);
    engine__emit(rt, JOURNAL_EV_STATE_ENTERED, sx->path, 0,
                 json_pack("{s:s}", "kind", "fail"));
    snprintf(msg, sizeof msg, "reached fail state '%s'%s%s", sx->path,
             said ? ": " : "", said ? said : "");
    free(said);
    if (st->frame >= 0)
      engine__fail_state(rt, st, msg); /* the use state fails */
    else
      engine__end_run(rt, JOURNAL_STATUS_FAILED, st->name, msg, NULL);
    break;
  }
  }
}

int engine__fail_late(const struct engine__sx *sx)
{
  return sx->st->kind == ENGINE_MAP && sx->st->map_fail_late && !sx->is_undo;
}

/* "; 2 more instances failed: health/a, health/b" after the first
 * failure's message, when a map ran on past it (fail_fast: false), or
 * "branches" of a parallel state that failed together. */
static void more_failed(const struct engine__sx *sx, char *out, size_t n)
{
  const char *what = sx->st->kind == ENGINE_PARALLEL ? "branch" : "instance";
  size_t len;

  out[0] = '\0';
  if (sx->nfailed < 2)
    return;
  len = (size_t)snprintf(out, n, "; %zu more %s%s failed:", sx->nfailed - 1,
                         what,
                         sx->nfailed > 2 ? (*what == 'b' ? "es" : "s") : "");
  for (size_t i = 0, k = 0; i < sx->ntasks && len < n; i++) {
    if (!sx->tasks[i].failed ||
        strcmp(sx->tasks[i].path, sx->failed_path) == 0)
      continue;
    len += (size_t)snprintf(out + len, n - len, "%s %s", k++ ? "," : "",
                            sx->tasks[i].path);
  }
}

void engine__log_note(const struct engine__task *t, char *out, size_t n)
{
  int exists = t->log_path != NULL && access(t->log_path, F_OK) == 0;

  if (exists && t->log_errno)
    snprintf(out, n, " (log: %s, incomplete: %s)", t->log_path,
             strerror(t->log_errno));
  else if (exists)
    snprintf(out, n, " (log: %s)", t->log_path);
  else if (t->log_path != NULL && t->log_errno)
    snprintf(out, n, " (no log: %s)", strerror(t->log_errno));
  else
    snprintf(out, n, "%s", ""); /* a simulation, or nothing to say yet */
}

void engine__state_failed(struct engine__rt *rt, struct engine__sx *sx)
{
  char msg[1400], more[600], log[ENGINE__LOG_PATH_MAX + 80] = "";

  more_failed(sx, more, sizeof more);
  if (sx->st->kind == ENGINE_MAP && sx->st->use_frame >= 0) {
    /* an instance's message names the state of it that failed */
    snprintf(msg, sizeof msg, "%s%s", sx->error, more);
    engine__fail_state(rt, sx->st, msg);
    return;
  }
  /* none when it failed before anything wrote one (its inputs) */
  for (size_t i = 0; i < sx->ntasks && !rt->opt->sim; i++) /* a
                                        simulation writes no log */
    if (strcmp(sx->tasks[i].path, sx->failed_path) == 0)
      engine__log_note(&sx->tasks[i], log, sizeof log);
  snprintf(msg, sizeof msg, "state '%s' failed: %s%s%s", sx->failed_path,
           sx->error, log, more);
  engine__fail_state(rt, sx->st, msg);
}

void engine__state_done(struct engine__rt *rt, struct engine__sx *sx)
{
  const struct engine_state *st = sx->st;
  struct engine__cursor *prev = rt->cx;
  struct engine__cursor *cx = sx->cx && sx->cx->owner ? sx->cx : NULL;

  /* Once: the last task ending can be a sibling that a failing task
   * stopped, and that one's end comes back here after it (a map's
   * on_failure would be taken twice) */
  if (!live(rt, sx) || sx->ended)
    return;
  sx->ended = 1;
  rt->cx = sx->cx;
  if (sx->is_undo) {
    engine__undo_done(rt, sx);
  } else if (cx && (cx->cancelled || rt->interrupted)) {
    /* an instance cancelled, or interrupted (resume carries it on) */
    engine__cursor_stop(rt, cx);
  } else if (sx->failed && !rt->interrupted) {
    engine__state_failed(rt, sx);
  } else if (rt->interrupted && cx == NULL) {
    /* Finished actions are journaled; the transition waits for resume. */
    engine__finish_interrupted(rt);
  } else {
    if (st->kind == ENGINE_DO) {
      engine__record_outputs(rt, st->name, sx->tasks[0].outputs);
    } else if (st->kind == ENGINE_PARALLEL || st->kind == ENGINE_MAP) {
      json_t *o = json_object();
      for (size_t i = 0; i < sx->ntasks; i++)
        json_object_set_new(o, sx->tasks[i].path + strlen(sx->path) + 1,
                            sx->tasks[i].outputs
                                ? json_incref(sx->tasks[i].outputs)
                                : json_object());
      engine__record_outputs(rt, st->name, o);
      json_decref(o);
    }
    engine__transition(rt, st->name, st->next, "next", NULL, NULL);
  }
  rt->cx = prev;
}

/* ---- signals, ticks, lifecycle ---- */

static void stop_running(struct engine__rt *rt)
{
  engine__stop_calls(rt->cur);
}

static void grace_cb(uv_timer_t *h)
{
  stop_running(h->data);
}

/* The first signal reaches sx (and the instances under it): retries
 * waiting end, map instances never started never will, an instance
 * waiting ends; returns how many calls still run. */
static int interrupt_sx(struct engine__rt *rt, struct engine__sx *sx)
{
  int running = 0;

  if (sx == NULL)
    return 0;
  for (size_t i = 0; i < sx->ntasks; i++) {
    struct engine__task *t = &sx->tasks[i];
    if (t->phase == ENGINE__TASK_RUNNING && t->inst) {
      struct engine__cursor *cx = t->inst;
      int n = interrupt_sx(rt, cx->cur);
      if (n == 0 && cx->cur && cx->cur->st->kind == ENGINE_WAIT) {
        if (cx->wait_timer)
          uv_timer_stop(cx->wait_timer);
        engine__cursor_stop(rt, cx);
      }
      running += n;
    } else if (t->phase == ENGINE__TASK_RUNNING) {
      running++;
    } else if (t->phase == ENGINE__TASK_IDLE &&
               sx->st->kind == ENGINE_MAP && !sx->is_undo) {
      t->phase = ENGINE__TASK_DONE; /* a map instance never started */
      sx->open--;
    } else if (t->phase == ENGINE__TASK_RETRY_WAIT) {
      engine__task_done(t, 0, 1, "interrupted");
    } else if (t->phase == ENGINE__TASK_QUEUED) {
      /* Its attempt is journaled and waits for that commit to start: it
       * never will, and the journal says so, so that resume runs it
       * rather than asks whether it took effect. (A queued probe is
       * not journaled yet: resume probes again.) */
      spawn_unlink(rt, t);
      if (!t->probing)
        engine__emit(rt, JOURNAL_EV_ACTION_FINISHED, t->path, t->attempt,
                     json_pack("{s:s,s:s,s:b}", "outcome", "interrupted",
                               "error", "interrupted before it started",
                               "started", 0));
      t->probing = 0;
      engine__task_done(t, 0, 1, "interrupted");
    }
    if (!live(rt, sx))
      return running;
  }
  return running;
}

static void signal_cb(uv_signal_t *h, int signum)
{
  struct engine__rt *rt = h->data;
  struct engine__sx *sx = rt->cur;
  int running = 0;

  if (rt->finished)
    return;
  rt->cx = NULL;
  if (rt->interrupted) {
    /* A second signal: no more grace, the steps get SIGTERM now. One
     * after that (or after the grace ran out) is a second cancel: their
     * groups get SIGKILL now. */
    uv_timer_stop(&rt->grace_timer);
    stop_running(rt);
    return;
  }
  rt->interrupted = signum;
  if (sx) {
    running = interrupt_sx(rt, sx);
    if (rt->cur != sx)
      return;
    if (sx->st->kind == ENGINE_WAIT)
      uv_timer_stop(&rt->wait_timer);
    if (sx->st->kind == ENGINE_MAP && sx->open == 0 && !rt->finished) {
      engine__state_done(rt, sx);
      return;
    }
  }
  if (running == 0) {
    engine__finish_interrupted(rt);
    uv_idle_start(&rt->idle, idle_noop);
    return;
  }
  uv_timer_start(&rt->grace_timer, grace_cb,
                 (uint64_t)(rt->opt->grace_ms >= 0 ? rt->opt->grace_ms
                                                   : 10000),
                 0);
}

#define HEARTBEAT_MS 10000

/* The lock row says when its holder was last seen alive; a failure to
 * write it is not worth stopping a deploy for (the next commit will say
 * whether the journal is still writable). */
static void heartbeat_cb(uv_timer_t *h)
{
  struct engine__rt *rt = h->data;
  if (!rt->finished)
    journal_lock_heartbeat(rt->j, rt->wf->name, rt->env_name, rt->run_id,
                           NULL);
}

static void tick_cb(uv_timer_t *h)
{
  struct engine__rt *rt = h->data;
  if (rt->opt->tick)
    rt->opt->tick(rt->opt->ud);
}

static void rt_close_all(struct engine__rt *rt)
{
  rt->closing = 1;
  uv_close((uv_handle_t *)&rt->idle, NULL);
  uv_close((uv_handle_t *)&rt->check, NULL);
  uv_close((uv_handle_t *)&rt->sigint, NULL);
  uv_close((uv_handle_t *)&rt->sigterm, NULL);
  uv_close((uv_handle_t *)&rt->grace_timer, NULL);
  uv_close((uv_handle_t *)&rt->wait_timer, NULL);
  uv_close((uv_handle_t *)&rt->tick_timer, NULL);
  uv_close((uv_handle_t *)&rt->lazy_timer, NULL);
  uv_close((uv_handle_t *)&rt->heartbeat_timer, NULL);
  uv_close((uv_handle_t *)&rt->sim_idle, NULL);
  engine__sx_retire(rt, rt->cur);
  rt->cur = NULL;
  free_dead(rt);
}

int engine_run_dir(const struct journal *j, const char *run_id, char *out,
                   size_t n, struct cairn_error *err)
{
  const char *jp = journal_path(j);
  const char *slash;
  int w;

  if (strcmp(jp, ":memory:") == 0) {
    const char *tmp = getenv("TMPDIR");
    w = snprintf(out, n, "%s/cairn-%d/%s", tmp && *tmp ? tmp : "/tmp",
                 (int)getpid(), run_id);
  } else if ((slash = strrchr(jp, '/')) != NULL) {
    w = snprintf(out, n, "%.*s/runs/%s", (int)(slash - jp), jp, run_id);
  } else {
    w = snprintf(out, n, "runs/%s", run_id);
  }
  if (w < 0 || (size_t)w >= n)
    return cairn_error_set(err, CAIRN_E_INVAL, "run folder path too long");
  return 0;
}

static json_t *env_vars(const struct engine_workflow *wf, const char *env)
{
  const struct engine_environment *e = env ? engine_workflow_env(wf, env) : NULL;
  return e ? json_deep_copy(e->vars) : json_object();
}

int engine__rt_init(struct engine__rt *rt, struct journal *j,
                    const struct engine_workflow *wf,
                    const struct engine_options *opt,
                    struct engine_result *res, struct cairn_error *err)
{
  memset(rt, 0, sizeof *rt);
  rt->j = j;
  rt->wf = wf;
  rt->opt = opt;
  rt->res = res;
  rt->err = err;
  rt->start_ms = journal_now_ms();
  cairn_proc_boot_id(rt->boot_id);
  snprintf(rt->env_name, sizeof rt->env_name, "%s", opt->env ? opt->env : "");

  rt->scope = json_pack("{s:{},s:o,s:{},s:{},s:{}}", "params", "vars",
                        env_vars(wf, opt->env), "secrets", "states", "run");
  rt->frames = json_array();
  rt->inst = json_object();
  rt->entered = opt->sim ? NULL : json_object();
  for (size_t i = 0; rt->frames && i < wf->nframes; i++)
    json_array_append_new(rt->frames, json_null());
  /* Room for a value of each declared secret from the environment and
   * one generated, and some more: running calls hold this array, so it
   * never moves (see engine__learn_secrets). */
  size_t spare = ENGINE__REDACT_SPARE;
#ifdef CAIRN_TEST_HOOKS
  /* t0044 fills the list without a thousand map instances */
  const char *hook = getenv("CAIRN_TEST_REDACT_SPARE");
  if (hook != NULL && *hook != '\0')
    spare = strtoull(hook, NULL, 10);
#endif
  rt->capredact = 2 * wf->nsecrets + spare;
  for (size_t i = 0; i < wf->nparams; i++)
    rt->capredact += (size_t)wf->params[i].secret;
  for (size_t f = 0; f < wf->nframes; f++)
    for (size_t i = 0; i < wf->frames[f].nparams; i++)
      rt->capredact += (size_t)wf->frames[f].params[i].secret;
  rt->capredact *= 9; /* each value as it is and in up to eight forms JSON
                        escapes it (engine__learn_value) */
  rt->redact = calloc(rt->capredact + 1, sizeof *rt->redact);
  if (rt->scope == NULL || rt->redact == NULL || rt->inst == NULL ||
      (rt->entered == NULL && !opt->sim))
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  /* Secrets come from the environment; their values are never journaled
   * or printed. */
  for (size_t i = 0; i < wf->nsecrets; i++) {
    const char *v = getenv(wf->secrets[i]);
    if (v == NULL)
      continue;
    char what[300];
    json_object_set_new(json_object_get(rt->scope, "secrets"),
                        wf->secrets[i], json_string(v));
    snprintf(what, sizeof what, "secret %s (from the environment)",
             wf->secrets[i]);
    int rc = engine__learn_value(rt, v, what, err);
    if (rc != 0)
      return rc;
  }

  int rc = adapter_global_init(err);
  if (rc != 0)
    return rc;
  rc = uv_loop_init(&rt->loop);
  if (rc != 0)
    return cairn_error_set(err, rc, "cannot start the event loop: %s",
                           uv_strerror(rc));
  rt->loop.data = rt;
  uv_idle_init(&rt->loop, &rt->idle);
  uv_check_init(&rt->loop, &rt->check);
  uv_signal_init(&rt->loop, &rt->sigint);
  uv_signal_init(&rt->loop, &rt->sigterm);
  uv_timer_init(&rt->loop, &rt->grace_timer);
  uv_timer_init(&rt->loop, &rt->wait_timer);
  uv_timer_init(&rt->loop, &rt->tick_timer);
  uv_timer_init(&rt->loop, &rt->lazy_timer);
  uv_timer_init(&rt->loop, &rt->heartbeat_timer);
  uv_idle_init(&rt->loop, &rt->sim_idle);
  rt->sim_idle.data = rt;
  rt->lazy_timer.data = rt->heartbeat_timer.data = rt;
  rt->idle.data = rt->check.data = rt->sigint.data = rt->sigterm.data = rt;
  rt->grace_timer.data = rt->wait_timer.data = rt->tick_timer.data = rt;
  uv_check_start(&rt->check, check_cb);
  uv_unref((uv_handle_t *)&rt->check);
  uv_signal_start(&rt->sigint, signal_cb, SIGINT);
  uv_signal_start(&rt->sigterm, signal_cb, SIGTERM);
  uv_unref((uv_handle_t *)&rt->sigint);
  uv_unref((uv_handle_t *)&rt->sigterm);
  if (opt->tick && opt->tick_ms > 0) {
    uv_timer_start(&rt->tick_timer, tick_cb, (uint64_t)opt->tick_ms,
                   (uint64_t)opt->tick_ms);
    uv_unref((uv_handle_t *)&rt->tick_timer);
  }
  return 0;
}

/* Sets run.id and run.dir in the scope and makes the run folder. */
static int rt_set_run(struct engine__rt *rt, const char *run_id)
{
  snprintf(rt->run_id, sizeof rt->run_id, "%s", run_id);
  memcpy(rt->res->run_id, rt->run_id, sizeof rt->run_id);
  int rc = engine_run_dir(rt->j, run_id, rt->run_dir, sizeof rt->run_dir,
                          rt->err);
  if (rc != 0)
    return rc;
  snprintf(rt->res->run_dir, sizeof rt->res->run_dir, "%s", rt->run_dir);
  json_object_set_new(json_object_get(rt->scope, "run"), "id",
                      json_string(run_id));
  json_object_set_new(json_object_get(rt->scope, "run"), "dir",
                      json_string(rt->run_dir));
  /* A simulation touches nothing outside the process. */
  return rt->opt->sim ? 0 : cairn_mkdirs(rt->run_dir, rt->err);
}

int engine__rt_loop(struct engine__rt *rt)
{
  uv_idle_start(&rt->idle, idle_noop);
  uv_timer_start(&rt->heartbeat_timer, heartbeat_cb, HEARTBEAT_MS,
                 HEARTBEAT_MS);
  uv_unref((uv_handle_t *)&rt->heartbeat_timer);
  uv_run(&rt->loop, UV_RUN_DEFAULT);
  if (!rt->closing) {
    /* Nothing left to wait for but the run did not end: a bug, but never
     * hang. Close what is open and report. */
    if (!rt->fatal)
      rt->fatal = cairn_error_set(rt->err, CAIRN_E_STATE,
                                  "run %s stalled in state '%s'", rt->run_id,
                                  rt->cur ? rt->cur->st->name : "?");
    rt_close_all(rt);
    uv_run(&rt->loop, UV_RUN_DEFAULT);
  }
  rt->res->duration_ms = journal_now_ms() - rt->start_ms;
  adapter_loop_done(&rt->loop);
  uv_run(&rt->loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&rt->loop) != 0) {
    uv_walk(&rt->loop, NULL, NULL);
  }
  if (rt->unjournaled) {
    /* Write-ahead: what was not journaled was not done, and an undo
     * could not be journaled either. The journal holds a run that
     * stopped, as after a crash, so it ends as interrupted. */
    const char *then = rt->plan != NULL ? "its rollback stopped there"
                                        : "nothing was undone";
    rt->res->outcome = ENGINE_INTERRUPTED;
    if (rt->lost_ends[0] != '\0')
      snprintf(rt->res->message, sizeof rt->res->message,
               "stopped: the journal could not record that %s (%s), and %s; "
               "resume will ask about it",
               rt->lost_ends, rt->err->msg, then);
    else
      snprintf(rt->res->message, sizeof rt->res->message,
               "stopped: its next step could not be journaled (%s), and %s",
               rt->err->msg, then);
    return 0;
  }
  return rt->fatal;
}

void engine__rt_abort(struct engine__rt *rt)
{
  /* The loop may hold initialised handles: close them cleanly. */
  if (rt->loop.data != rt)
    return;
  rt_close_all(rt);
  adapter_loop_done(&rt->loop);
  uv_run(&rt->loop, UV_RUN_DEFAULT);
  uv_loop_close(&rt->loop);
}

void engine__rt_release(struct engine__rt *rt)
{
  if (rt->tx_open) /* a simulation that ended without a final event */
    journal_commit(rt->j, &(struct cairn_error){0});
  rt->tx_open = 0;
  for (size_t i = 0; i < rt->nqueue; i++) {
    qitem_release(&rt->queue[i]);
  }
  free(rt->queue);
  cairn_buf_release(&rt->texts);
  free(rt->simq);
  free(rt->pend);
  json_decref(rt->sim_outputs);
  json_decref(rt->sim_outputs_last);
  json_decref(rt->sim_record_last);
  json_decref(rt->sim_marks);
  json_decref(rt->sim_loop);
  json_decref(rt->plan);
  engine__planner_free(rt->planner);
  json_decref(rt->direct);
  json_decref(rt->scope);
  json_decref(rt->frames);
  json_decref(rt->inst);
  json_decref(rt->entered);
  if (rt->redact)
    for (char **r = rt->redact; *r; r++)
      free(*r);
  free(rt->redact);
}

int engine_run(struct journal *j, const struct engine_workflow *wf,
               const struct engine_options *opt, struct engine_result *res,
               struct cairn_error *err)
{
  struct engine__rt rt;
  struct journal_lock_holder holder;
  struct journal_run run = {0};
  char run_id[JOURNAL_RUN_ID_LEN];
  char actor[300];
  json_t *params = NULL;
  int taken_over = 0;
  int rc;

  memset(res, 0, sizeof *res);
  if ((rc = engine_workflow_env_check(wf, opt->env, err)) != 0)
    return rc;
  rc = engine_workflow_params(wf, opt->sets, opt->nsets, &params, err);
  if (rc != 0)
    return rc;
  rc = journal_new_run_id(run_id, err);
  if (rc != 0)
    goto out_params;

  rc = engine__rt_init(&rt, j, wf, opt, res, err);
  if (rc != 0)
    goto out_rt;
  json_object_set(rt.scope, "params", params);
  rc = engine__learn_params(&rt, wf->params, wf->nparams, params, err);
  if (rc == 0)
    rc = engine__lock_orphans(j, wf->name, rt.env_name, run_id, err);
  if (rc == 0)
    rc = journal_lock_acquire(j, wf->name, rt.env_name, run_id, &holder,
                              &taken_over, err);
  if (rc != 0)
    goto out_rt;
  /* Only a run that holds the lock gets a folder. */
  rc = rt_set_run(&rt, run_id);
  if (rc != 0) {
    journal_lock_release(j, wf->name, rt.env_name, run_id, NULL);
    goto out_rt;
  }

  cairn_actor(opt->actor, actor, sizeof actor);
  memcpy(run.id, run_id, sizeof run.id);
  run.workflow = wf->name;
  run.file = wf->file;
  run.file_sha256 = (char *)wf->sha256;
  run.env = rt.env_name;
  json_t *rel = json_object_get(params, "release");
  run.release = (char *)(json_is_string(rel) ? json_string_value(rel) : "");
  /* A param that holds a secret's value (--set TOKEN=$TOKEN) is
   * journaled as ***, like every input. */
  json_t *jparams = holds_secret(params, rt.redact)
                        ? redacted_copy(params, rt.redact)
                        : json_incref(params);
  run.params = jparams;
  run.status = JOURNAL_STATUS_RUNNING;
  run.actor = actor;
  run.parent = (char *)(opt->parent ? opt->parent : "");

  rc = journal_begin(j, err);
  if (rc == 0)
    rc = journal_run_insert(j, &run, err);
  if (rc == 0) {
    json_t *started = json_pack("{s:s,s:s,s:s,s:s,s:s,s:O,s:s}", "workflow",
                                wf->name, "file", wf->file, "file_sha256",
                                wf->sha256, "env", rt.env_name, "release",
                                run.release, "params", jparams, "actor",
                                actor);
    if (started && opt->parent && *opt->parent)
      json_object_set_new(started, "parent", json_string(opt->parent));
    rc = engine__append_direct(&rt, JOURNAL_EV_RUN_STARTED, started);
  }
  if (rc == 0 && taken_over)
    rc = engine__append_takeover(&rt, &holder);
  if (rc == 0)
    rc = journal_commit(j, err);
  json_decref(jparams);
  if (rc != 0) {
    journal_rollback(j);
    journal_lock_release(j, wf->name, rt.env_name, run_id, NULL);
    /* no run.started: the journal knows no such run, so no folder */
    if (!opt->sim)
      (void)rmdir(rt.run_dir);
    goto out_rt;
  }
  engine__notify_direct(&rt);

  /* A new run: its undo plan can be kept as it goes (the direct events
   * above add nothing to it). Without memory, it is read back instead. */
  rt.planner = engine__planner_new(wf);
  engine__enter(&rt, wf->start);
  rc = engine__rt_loop(&rt);
  engine__rt_release(&rt);
  json_decref(params);
  return rc;

out_rt:
  engine__rt_abort(&rt);
  engine__rt_release(&rt);
out_params:
  json_decref(params);
  return rc;
}
