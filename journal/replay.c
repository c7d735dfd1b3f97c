/* Folding one run's events back into its state, by the rules in
 * journal/events.h. Replay is strict about the order of a state's own
 * events (an action.* of a path that was never entered, or for another
 * attempt than the one started, is CAIRN_E_JOURNAL naming the event) and
 * ignores kinds it does not know, so that newer kinds do not break older
 * readers.
 *
 * Memory: every json_t kept in the replay (started, inputs, spawn,
 * outputs, finished) is a new reference taken with json_incref on a value
 * borrowed from the loaded event (json_object_get); no _new variant that
 * steals a reference is used. journal_replay_release drops them all. */
#include "journal/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal/events.h"

struct fold {
  struct journal *j;
  struct journal_replay *r;
  struct cairn_error *err;
  size_t cap;        /* allocated steps */
  int entered_any;   /* a state.entered was seen */
  int transitioned;  /* a transition was seen */
};

static const char *jstr(const json_t *obj, const char *key)
{
  return json_string_value(json_object_get(obj, key));
}

static int64_t jint(const json_t *obj, const char *key)
{
  const json_t *v = json_object_get(obj, key);

  return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

/* Replaces *dst by a copy of s (NULL allowed). 0 or -1 without memory. */
static int set_str(char **dst, const char *s)
{
  char *copy = NULL;

  if (s != NULL && (copy = strdup(s)) == NULL)
    return -1;
  free(*dst);
  *dst = copy;
  return 0;
}

/* Replaces *dst by a new reference to v (NULL allowed). */
static void set_json(json_t **dst, json_t *v)
{
  json_incref(v);
  json_decref(*dst);
  *dst = v;
}

static void step_release(struct journal_step *s)
{
  free(s->path);
  free(s->kind);
  json_decref(s->inputs);
  json_decref(s->spawn);
  json_decref(s->outputs);
  json_decref(s->finished);
  memset(s, 0, sizeof *s);
}

void journal_replay_release(struct journal_replay *r)
{
  if (r == NULL)
    return;
  json_decref(r->started);
  json_decref(r->rollback);
  free(r->status);
  free(r->current);
  free(r->file_sha256);
  for (size_t i = 0; i < r->nsteps; i++)
    step_release(&r->steps[i]);
  free(r->steps);
  memset(r, 0, sizeof *r);
}

struct journal_step *journal_replay_step(const struct journal_replay *r,
                                         const char *path)
{
  if (r == NULL || path == NULL)
    return NULL;
  for (size_t i = 0; i < r->nsteps; i++)
    if (strcmp(r->steps[i].path, path) == 0)
      return &r->steps[i];
  return NULL;
}

static int bad(struct fold *f, const struct journal_event *ev,
               const char *what)
{
  return cairn_error_set(f->err, CAIRN_E_JOURNAL,
                         "event %" PRId64 " of run '%s' in journal '%s': %s",
                         ev->seq, f->r->run_id, f->j->path, what);
}

static int nomem(struct fold *f)
{
  return cairn_error_set(f->err, CAIRN_E_NOMEM, "out of memory");
}

/* Drops the steps of the branches of path ("path/..."): a new entry of a
 * parallel or map state starts its branches afresh too. */
static void drop_branches(struct journal_replay *r, const char *path)
{
  size_t len = strlen(path), keep = 0;

  for (size_t i = 0; i < r->nsteps; i++) {
    struct journal_step *s = &r->steps[i];

    if (strncmp(s->path, path, len) == 0 && s->path[len] == '/') {
      step_release(s);
      continue;
    }
    if (keep != i)
      r->steps[keep] = *s;
    keep++;
  }
  r->nsteps = keep;
}

static int on_entered(struct fold *f, const struct journal_event *ev)
{
  struct journal_replay *r = f->r;
  struct journal_step *s;

  if (ev->state[0] == '\0')
    return bad(f, ev, "state.entered without a state");
  drop_branches(r, ev->state);
  s = journal_replay_step(r, ev->state);
  if (s != NULL) {
    /* Entered again: starts afresh, keeping its place in the order. */
    char *path = s->path;

    s->path = NULL;
    step_release(s);
    s->path = path;
  } else {
    if (r->nsteps == f->cap) {
      size_t cap = f->cap ? 2 * f->cap : 8;
      struct journal_step *n = realloc(r->steps, cap * sizeof *n);

      if (n == NULL)
        return nomem(f);
      r->steps = n;
      f->cap = cap;
    }
    s = &r->steps[r->nsteps];
    memset(s, 0, sizeof *s);
    if ((s->path = strdup(ev->state)) == NULL)
      return nomem(f);
    r->nsteps++;
  }
  if (set_str(&s->kind, jstr(ev->payload, "kind")) != 0)
    return nomem(f);
  s->phase = JOURNAL_PHASE_ENTERED;
  set_json(&s->inputs, json_object_get(ev->payload, "inputs"));
  s->wait_until_ms = jint(ev->payload, "wait_until_ms");
  s->entered_seq = ev->seq;
  s->entered_ms = ev->time_ms;

  if (!f->entered_any && !f->transitioned &&
      set_str(&r->current, ev->state) != 0)
    return nomem(f);
  f->entered_any = 1;
  return 0;
}

static void set_final(struct journal_step *s, const struct journal_event *ev,
                      enum journal_phase phase)
{
  s->phase = phase;
  s->finished_seq = ev->seq;
  s->finished_ms = ev->time_ms;
}

static void set_open(struct journal_step *s, enum journal_phase phase)
{
  s->phase = phase;
  s->finished_seq = 0;
  s->finished_ms = 0;
}

/* The events about one attempt or outcome of an entered state. */
static int on_step_event(struct fold *f, const struct journal_event *ev)
{
  struct journal_step *s = journal_replay_step(f->r, ev->state);
  const char *kind = ev->kind;
  const char *outcome = jstr(ev->payload, "outcome");
  char msg[200];

  if (s == NULL) {
    snprintf(msg, sizeof msg, "%s of '%s' before its state.entered", kind,
             ev->state);
    return bad(f, ev, msg);
  }

  if (strcmp(kind, JOURNAL_EV_ACTION_STARTED) == 0) {
    int attempt = ev->attempt;

    if (attempt <= 0)
      attempt = (int)jint(ev->payload, "attempt");
    if (attempt <= 0)
      attempt = s->attempt + 1;
    s->attempt = attempt;
    set_json(&s->spawn, NULL);
    set_json(&s->outputs, NULL);
    set_open(s, JOURNAL_PHASE_STARTED);
    return 0;
  }

  if (strcmp(kind, JOURNAL_EV_ACTION_SPAWNED) == 0 ||
      strcmp(kind, JOURNAL_EV_ACTION_FINISHED) == 0) {
    if (s->attempt == 0 || (ev->attempt != 0 && ev->attempt != s->attempt)) {
      snprintf(msg, sizeof msg,
               "%s of '%s' is for attempt %d but attempt %d was started",
               kind, ev->state, ev->attempt, s->attempt);
      return bad(f, ev, msg);
    }
  }

  if (strcmp(kind, JOURNAL_EV_ACTION_SPAWNED) == 0) {
    set_json(&s->spawn, ev->payload);
    return 0;
  }

  if (strcmp(kind, JOURNAL_EV_ACTION_FINISHED) == 0) {
    set_json(&s->finished, ev->payload);
    set_json(&s->outputs, NULL);
    if (outcome == NULL) {
      return bad(f, ev, "action.finished without an outcome");
    } else if (strcmp(outcome, "succeeded") == 0) {
      set_json(&s->outputs, json_object_get(ev->payload, "outputs"));
      set_final(s, ev, JOURNAL_PHASE_SUCCEEDED);
    } else if (strcmp(outcome, "failed") == 0 ||
               strcmp(outcome, "timed_out") == 0) {
      set_final(s, ev, JOURNAL_PHASE_FAILED);
    } else if (strcmp(outcome, "cancelled") == 0) {
      set_final(s, ev, JOURNAL_PHASE_CANCELLED);
    } else if (strcmp(outcome, "interrupted") == 0) {
      set_open(s, JOURNAL_PHASE_INTERRUPTED);
    } else {
      snprintf(msg, sizeof msg, "action.finished with unknown outcome '%s'",
               outcome);
      return bad(f, ev, msg);
    }
    return 0;
  }

  if (strcmp(kind, JOURNAL_EV_ACTION_RETRYING) == 0) {
    set_open(s, JOURNAL_PHASE_RETRY_WAIT);
    return 0;
  }

  /* probe.finished and decision.assumed settle an unfinished attempt;
   * state.finished ends a use state (its error is shown like an action's) */
  if (strcmp(kind, JOURNAL_EV_STATE_FINISHED) == 0)
    set_json(&s->finished, ev->payload);
  if (outcome != NULL && strcmp(outcome, "succeeded") == 0) {
    set_json(&s->outputs, json_object_get(ev->payload, "outputs"));
    set_final(s, ev, JOURNAL_PHASE_SUCCEEDED);
    return 0;
  }
  if (outcome != NULL && strcmp(outcome, "failed") == 0) {
    set_json(&s->outputs, NULL);
    if (strcmp(kind, JOURNAL_EV_PROBE_FINISHED) == 0)
      set_open(s, JOURNAL_PHASE_ENTERED); /* did not happen: run again */
    else
      set_final(s, ev, JOURNAL_PHASE_FAILED);
    return 0;
  }
  snprintf(msg, sizeof msg, "%s with unknown outcome '%s'", kind,
           outcome != NULL ? outcome : "");
  return bad(f, ev, msg);
}

const char *journal_event_status(const char *kind, json_t *payload,
                                 int record)
{
  if (strcmp(kind, JOURNAL_EV_RUN_STARTED) == 0 ||
      strcmp(kind, JOURNAL_EV_RUN_RESUMED) == 0 ||
      strcmp(kind, JOURNAL_EV_ROLLBACK_REQUESTED) == 0)
    return JOURNAL_STATUS_RUNNING;
  if (strcmp(kind, JOURNAL_EV_RUN_INTERRUPTED) == 0)
    return JOURNAL_STATUS_INTERRUPTED;
  if (strcmp(kind, JOURNAL_EV_APPROVAL_WAITING) == 0)
    return JOURNAL_STATUS_WAITING;
  if (strcmp(kind, JOURNAL_EV_PROMOTION_REFUSED) == 0)
    return JOURNAL_STATUS_REFUSED;
  if (strcmp(kind, JOURNAL_EV_APPROVAL_GRANTED) == 0)
    return record ? JOURNAL_STATUS_APPROVED : NULL;
  if (strcmp(kind, JOURNAL_EV_RUN_FINISHED) == 0) {
    const char *s = jstr(payload, "status");
    return s ? s : "";
  }
  return NULL;
}

static int fold_event(const struct journal_event *ev, void *ud)
{
  struct fold *f = ud;
  struct journal_replay *r = f->r;
  const char *kind = ev->kind;
  /* a record (events.h) never started */
  const char *s = journal_event_status(kind, ev->payload, r->started == NULL);

  r->events++;
  r->last_seq = ev->seq;

  if (s != NULL && *s == '\0')
    return bad(f, ev, "run.finished without a status");
  if (s != NULL && set_str(&r->status, s) != 0)
    return nomem(f);
  if (strcmp(kind, JOURNAL_EV_RUN_STARTED) == 0) {
    set_json(&r->started, ev->payload);
    if (set_str(&r->file_sha256, jstr(ev->payload, "file_sha256")) != 0)
      return nomem(f);
  } else if (strcmp(kind, JOURNAL_EV_RUN_FINISHED) == 0) {
    set_str(&r->current, NULL);
    r->rollback_requested = 0;
  } else if (strcmp(kind, JOURNAL_EV_RUN_RESUMED) == 0) {
    r->rollback_requested = 0; /* a resume of old went on without it */
  } else if (strcmp(kind, JOURNAL_EV_ROLLBACK_REQUESTED) == 0) {
    r->rollback_requested = 1;
  } else if (strcmp(kind, JOURNAL_EV_ROLLBACK_PLANNED) == 0) {
    if (!json_is_array(json_object_get(ev->payload, "steps")))
      return bad(f, ev, "rollback.planned without steps");
    set_json(&r->rollback, ev->payload);
    r->rollback_requested = 0;
  } else if (strcmp(kind, JOURNAL_EV_WORKFLOW_CHANGED) == 0) {
    s = jstr(ev->payload, "new_sha256");
    if (s != NULL && set_str(&r->file_sha256, s) != 0)
      return nomem(f);
  } else if (strcmp(kind, JOURNAL_EV_TRANSITION) == 0) {
    s = jstr(ev->payload, "to");
    if (s == NULL)
      return bad(f, ev, "transition without a 'to'");
    if (set_str(&r->current, *s != '\0' ? s : NULL) != 0)
      return nomem(f);
    f->transitioned = 1;
  } else if (strcmp(kind, JOURNAL_EV_STATE_ENTERED) == 0) {
    return on_entered(f, ev);
  } else if (strcmp(kind, JOURNAL_EV_ACTION_STARTED) == 0 ||
             strcmp(kind, JOURNAL_EV_ACTION_SPAWNED) == 0 ||
             strcmp(kind, JOURNAL_EV_ACTION_FINISHED) == 0 ||
             strcmp(kind, JOURNAL_EV_ACTION_RETRYING) == 0 ||
             strcmp(kind, JOURNAL_EV_PROBE_FINISHED) == 0 ||
             strcmp(kind, JOURNAL_EV_DECISION_ASSUMED) == 0 ||
             strcmp(kind, JOURNAL_EV_STATE_FINISHED) == 0) {
    return on_step_event(f, ev);
  }
  /* lock.taken_over and kinds this cairn does not know: nothing to fold */
  return 0;
}

int journal_replay(struct journal *j, const char *run_id,
                   struct journal_replay *out, struct cairn_error *err)
{
  struct fold f = {j, out, err, 0, 0, 0};
  int rc;

  memset(out, 0, sizeof *out);
  if (run_id == NULL || *run_id == '\0')
    return cairn_error_set(err, CAIRN_E_NORUN, "no run id given");
  snprintf(out->run_id, sizeof out->run_id, "%s", run_id);
  if ((out->status = strdup(JOURNAL_STATUS_RUNNING)) == NULL)
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  rc = journal_event_foreach(j, run_id, 0, fold_event, &f, err);
  if (rc == 0 && out->events == 0)
    rc = cairn_error_set(err, CAIRN_E_NORUN,
                         "no events of run '%s' in journal '%s'", run_id,
                         j->path);
  if (rc != 0)
    journal_replay_release(out);
  return rc;
}
