/* Approvals and promotion gates: counting `cairn approve` from the
 * journal, the approval state kind, and the checks `cairn promote` makes
 * before it starts a run. Everything is decided from the journal alone. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/runtime.h"

/* ---- counting approvals ---- */

struct count {
  const char *state;        /* only events at this state (NULL: any) */
  char *const *approvers;
  size_t n;
  json_t *counted, *ignored; /* arrays of distinct actors */
  /* a record's event must name these (NULL: an approval inside a run):
   * the runs row that led to it is outside the hash chain */
  const char *workflow, *env, *release;
  /* the seq of the run's last transition out of the state: a record
   * journaled before it was spent on that visit */
  int64_t left_seq;
};

/* Does payload's field name say want? */
static int names(json_t *payload, const char *name, const char *want)
{
  const char *v = json_string_value(json_object_get(payload, name));
  return v != NULL && strcmp(v, want) == 0;
}

static int has_str(json_t *a, const char *s)
{
  size_t i;
  json_t *v;
  json_array_foreach(a, i, v) if (strcmp(json_string_value(v), s) == 0)
    return 1;
  return 0;
}

static void count_actor(struct count *c, const char *actor)
{
  int ok = c->n == 0;
  for (size_t i = 0; i < c->n && !ok; i++)
    ok = strcmp(c->approvers[i], actor) == 0;
  json_t *into = ok ? c->counted : c->ignored;
  /* The same actor approving twice counts once. */
  if (!has_str(into, actor))
    json_array_append_new(into, json_string(actor));
}

static int count_event(const struct journal_event *ev, void *ud)
{
  struct count *c = ud;
  const char *actor = json_string_value(json_object_get(ev->payload,
                                                        "actor"));
  /* A visit of an approval state ends with its transition out: a loop
   * back into it needs approvals anew, not those of the earlier visit. */
  if (c->state && strcmp(ev->kind, JOURNAL_EV_TRANSITION) == 0 &&
      strcmp(ev->state, c->state) == 0) {
    json_array_clear(c->counted);
    json_array_clear(c->ignored);
    c->left_seq = ev->seq;
    return 0;
  }
  if (c->workflow && ev->seq <= c->left_seq)
    return 0; /* a promotion record counts once per visit, as the rest */
  if (strcmp(ev->kind, JOURNAL_EV_APPROVAL_GRANTED) != 0 || actor == NULL ||
      (c->state && strcmp(ev->state, c->state) != 0))
    return 0;
  if (c->workflow && (!names(ev->payload, "workflow", c->workflow) ||
                      !names(ev->payload, "env", c->env) ||
                      !names(ev->payload, "release", c->release)))
    return 0;
  count_actor(c, actor);
  return 0;
}

static int collect_id(const struct journal_run *r, void *ud)
{
  return json_array_append_new(ud, json_string(r->id)) == 0 ? 0
                                                             : CAIRN_E_NOMEM;
}

int engine_approvals(struct journal *j, const char *run_id, const char *state,
                     const char *workflow, const char *env,
                     const char *release, char *const *approvers, size_t n,
                     json_t **counted, json_t **ignored, json_t **unchecked,
                     struct cairn_error *err)
{
  struct count c = {state, approvers, n, json_array(), json_array(),
                    NULL, NULL, NULL, 0};
  struct journal_run_filter f = {workflow, env ? env : "",
                                 release ? release : "",
                                 JOURNAL_STATUS_APPROVED, 0, 0};
  json_t *ids = json_array(), *bad = json_array();
  int rc = 0;

  *counted = NULL;
  if (ignored)
    *ignored = NULL;
  if (unchecked)
    *unchecked = NULL;
  if (run_id)
    rc = journal_event_foreach(j, run_id, 0, count_event, &c, err);
  /* Records first collected, then read: a callback of run_foreach must
   * not start another statement of the same slot. */
  if (rc == 0)
    rc = journal_run_foreach(j, &f, collect_id, ids, err);
  /* Oldest first, so actors come in the order they approved. */
  c.state = NULL;
  c.workflow = workflow;
  c.env = env ? env : "";
  c.release = release ? release : "";
  for (size_t i = json_array_size(ids); rc == 0 && i > 0; i--) {
    const char *id = json_string_value(json_array_get(ids, i - 1));
    struct cairn_error why = {0};
    int64_t at = 0;
    /* A record is a runs row and one event anyone with write access to
     * the file can insert: it counts only when its event authenticates
     * (on a keyed journal, only the key's holder can make one that does). */
    rc = journal_run_check(j, id, &at, &why);
    if (rc == CAIRN_E_CHAIN) {
      char what[80];
      snprintf(what, sizeof what, "%s (event %lld)", id, (long long)at);
      rc = json_array_append_new(bad, json_string(what)) == 0 ? 0
                                                               : CAIRN_E_NOMEM;
      continue;
    }
    if (rc != 0) {
      *err = why;
      break;
    }
    rc = journal_event_foreach(j, id, 0, count_event, &c, err);
  }
  json_decref(ids);
  if (rc != 0) {
    json_decref(c.counted);
    json_decref(c.ignored);
    json_decref(bad);
    return rc;
  }
  if (unchecked)
    *unchecked = bad;
  else
    json_decref(bad);
  *counted = c.counted;
  if (ignored)
    *ignored = c.ignored;
  else
    json_decref(c.ignored);
  return 0;
}

/* "alice, bob" into buf (the items of a string array). */
static const char *join_names(json_t *a, char *buf, size_t n)
{
  size_t i, used = 0;
  json_t *v;
  buf[0] = '\0';
  json_array_foreach(a, i, v) {
    int w = snprintf(buf + used, n - used, "%s%s", i ? ", " : "",
                     json_string_value(v));
    if (w < 0 || (size_t)w >= n - used)
      break;
    used += (size_t)w;
  }
  return buf;
}

static json_t *names_json(char *const *names, size_t n)
{
  json_t *a = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(a, json_string(names[i]));
  return a;
}

/* ---- the approval state ---- */

struct rejection {
  const char *state;
  json_t *found; /* the first approval.rejected of this visit */
};

static int find_rejection(const struct journal_event *ev, void *ud)
{
  struct rejection *r = ud;
  if (strcmp(ev->state, r->state) != 0)
    return 0;
  /* as for approvals, a visit ends with the transition out of the state;
   * a rejection is spent once the state has failed for it (in a used
   * workflow no transition leaves the state: a loop back into it must
   * wait anew, not fail again) */
  if (strcmp(ev->kind, JOURNAL_EV_TRANSITION) == 0 ||
      strcmp(ev->kind, JOURNAL_EV_STATE_FINISHED) == 0) {
    json_decref(r->found);
    r->found = NULL;
  } else if (strcmp(ev->kind, JOURNAL_EV_APPROVAL_REJECTED) == 0 &&
             r->found == NULL) {
    r->found = json_incref(ev->payload);
  }
  return 0;
}

int engine_rejection(struct journal *j, const char *run_id, const char *state,
                     json_t **found, struct cairn_error *err)
{
  struct rejection r = {state, NULL};
  int rc = journal_event_foreach(j, run_id, 0, find_rejection, &r, err);

  if (rc != 0) {
    json_decref(r.found);
    r.found = NULL;
  }
  *found = r.found;
  return rc;
}

/* The approval state st was rejected (cairn reject): it fails, and the
 * run takes the failure path an action's failure would (approval has no
 * on_failure: a rollback, or in a used workflow the use state's). */
static void rejected(struct engine__rt *rt, const struct engine_state *st,
                     json_t *why)
{
  const char *actor = json_string_value(json_object_get(why, "actor"));
  const char *comment = json_string_value(json_object_get(why, "comment"));
  struct cairn_buf msg = {0};

  if (actor == NULL)
    actor = "?";
  /* whole: a comment is as long as its author made it */
  cairn_buf_add(&msg, "rejected by ", 12);
  cairn_buf_add(&msg, actor, strlen(actor));
  if (comment && *comment) {
    cairn_buf_add(&msg, ": ", 2);
    cairn_buf_add(&msg, comment, strlen(comment));
  }
  cairn_buf_add(&msg, "", 1);
  if (msg.failed) {
    cairn_buf_release(&msg);
    rt->fatal = cairn_error_set(rt->err, CAIRN_E_NOMEM, "out of memory");
    return;
  }
  engine__emit(rt, JOURNAL_EV_STATE_FINISHED, st->name, 0,
               json_pack("{s:s,s:o,s:o}", "outcome", "failed", "error",
                         engine__text(msg.p), "rejected_by",
                         engine__text(actor)));
  if (st->frame >= 0)
    engine__fail_state(rt, st, msg.p);
  else
    engine__transition(rt, st->name, JOURNAL_ROLLBACK, "rejected", NULL,
                       msg.p);
  cairn_buf_release(&msg);
}

void engine__approval_decide(struct engine__rt *rt,
                             const struct engine_state *st)
{
  char *const *approvers;
  size_t n;
  int need;
  json_t *have = NULL;
  struct cairn_error err = {0};
  json_t *rej = NULL;

  if (rt->opt->sim) {
    /* A simulation touches no journal but its own: the approval is
     * taken as given, and the trace says so. */
    engine__transition(rt, st->name, st->next, "approval (simulated: passes)",
                       NULL, NULL);
    return;
  }
  /* A rejection wins over any number of approvals. */
  if (engine_rejection(rt->j, rt->run_id, st->name, &rej, &err) != 0) {
    engine__transition(rt, st->name, NULL, "failed", JOURNAL_STATUS_FAILED,
                       err.msg);
    return;
  }
  if (rej != NULL) {
    rejected(rt, st, rej);
    json_decref(rej);
    return;
  }
  engine_approval_rule(rt->wf, st, rt->env_name, &need, &approvers, &n);
  const char *release = json_string_value(json_object_get(
      json_object_get(rt->scope, "params"), "release"));
  if (engine_approvals(rt->j, rt->run_id, st->name, rt->wf->name,
                       rt->env_name, release ? release : "", approvers, n,
                       &have, NULL, NULL, &err) != 0) {
    engine__transition(rt, st->name, NULL, "failed", JOURNAL_STATUS_FAILED,
                       err.msg);
    return;
  }
  if ((int)json_array_size(have) >= need) {
    json_decref(have);
    engine__transition(rt, st->name, st->next, "approved", NULL, NULL);
    return;
  }
  int left = need - (int)json_array_size(have);
  json_t *p = json_pack("{s:i,s:o}", "need", need, "have", have);
  char list[600] = "", msg[1200];
  if (n > 0) {
    json_t *a = names_json(approvers, n);
    join_names(a, list, sizeof list);
    json_object_set_new(p, "approvers", a);
  }
  engine__emit(rt, JOURNAL_EV_APPROVAL_WAITING, st->name, 0, p);
  snprintf(msg, sizeof msg, "run %s waits for %d more approval%s at state "
           "'%s'%s%s%s: cairn approve %s", rt->run_id, left,
           left == 1 ? "" : "s", st->name, n ? " (approvers: " : "", list,
           n ? ")" : "", rt->run_id);
  rt->res->outcome = ENGINE_AWAITING_APPROVAL;
  snprintf(rt->res->status, sizeof rt->res->status, "%s",
           JOURNAL_STATUS_WAITING);
  snprintf(rt->res->state, sizeof rt->res->state, "%s", st->name);
  snprintf(rt->res->message, sizeof rt->res->message, "%s", msg);
  rt->finished = 1;
}

/* ---- cairn approve ---- */

/* Journals a record (an approval or a refusal: a runs row that never
 * runs) with its one event of kind, in one transaction. A record takes no
 * time: created, updated and finished are one reading of the clock, taken
 * once the write lock is held (two readings could make finished_ms come
 * before created_ms, and history show a negative duration): it sets r's
 * created, updated and finished times. r and payload are borrowed. */
static int record_insert(struct journal *j, struct journal_run *r,
                         const char *kind, json_t *payload,
                         struct cairn_error *err)
{
  int rc = journal_begin(j, err);
  if (rc != 0)
    return rc;
  r->created_ms = r->updated_ms = r->finished_ms = journal_now_ms();
  rc = journal_run_insert(j, r, err);
  if (rc == 0)
    rc = journal_append(j, r->id, kind, "", 0, 0, payload, NULL, err);
  if (rc == 0)
    rc = journal_commit(j, err);
  else
    journal_rollback(j);
  return rc;
}

json_t *engine__decision(const char *actor, const char *user,
                         const char *comment)
{
  json_t *p = json_pack("{s:s}", "actor", actor);
  /* who typed it, beside who they say they are, when the two differ */
  if (p && user && *user && strcmp(user, actor) != 0)
    json_object_set_new(p, "user", json_string(user));
  if (p && comment && *comment)
    json_object_set_new(p, "comment", json_string(comment));
  return p;
}

int engine_approve_status(const char *run_id, const char *status,
                          struct cairn_error *err)
{
  if (strcmp(status, JOURNAL_STATUS_WAITING) == 0)
    return 0;
  return cairn_error_set(err, CAIRN_E_STATE,
                         "run %s is not waiting for an approval (it is %s; "
                         "hint: 'cairn approve ENV --workflow W --release R' "
                         "approves a promotion)", run_id, status);
}

/* How many distinct actors count at the state rp waits at now, and how
 * many it needs; *had says whether actor was among them. */
static int approval_tally(struct journal *j, const struct engine_workflow *wf,
                          const struct journal_replay *rp, const char *env,
                          const char *release, const char *actor, int *have,
                          int *need, int *had, struct cairn_error *err)
{
  const struct engine_state *st = engine_workflow_state(wf, rp->current);
  char *const *approvers;
  size_t n;
  json_t *counted = NULL;

  engine_approval_rule(wf, st, env, need, &approvers, &n);
  int rc = engine_approvals(j, rp->run_id, rp->current, wf->name, env,
                            release, approvers, n, &counted, NULL, NULL, err);
  if (rc != 0)
    return rc;
  *have = (int)json_array_size(counted);
  *had = has_str(counted, actor);
  json_decref(counted);
  return 0;
}

int engine_approve_run(struct journal *j, const struct engine_workflow *wf,
                       const char *run_id, const struct engine_approve *a,
                       struct engine_approved *out, struct cairn_error *err)
{
  struct journal_replay rp;
  struct journal_run run = {0};
  char newer[JOURNAL_RUN_ID_LEN];
  int had = 0;

  memset(out, 0, sizeof *out);
  int rc = journal_run_get(j, run_id, &run, err);
  if (rc != 0)
    return rc;
  rc = journal_replay(j, run.id, &rp, err);
  if (rc != 0) {
    journal_run_release(&run);
    return rc;
  }
  /* Each check refuses with nothing journaled: an approval that could
   * not count, or that resume would refuse to act on, is a mistake to
   * say now rather than at the resume. */
  if ((rc = engine_approve_status(run.id, rp.status, err)) != 0)
    goto out;
  if (!a->allow_changed &&
      (rc = engine_changed(wf, run.id, rp.file_sha256, "", "approve",
                           err)) != 0)
    goto out;
  if ((rc = engine__decider_check(wf, &rp, run.env, a->actor, "approve",
                                  err)) != 0)
    goto out;
  if ((rc = engine_superseded(j, run.id,
                              "approving it would let 'cairn resume' carry "
                              "on an older deploy over that one",
                              a->allow_superseded, newer, err)) != 0)
    goto out;
  snprintf(out->state, sizeof out->state, "%s", rp.current);
  if ((rc = approval_tally(j, wf, &rp, run.env, run.release, a->actor,
                           &out->have, &out->need, &had, err)) != 0)
    goto out;
  out->again = had;
  json_t *p = engine__decision(a->actor, a->user, a->comment);
  rc = journal_append(j, run.id, JOURNAL_EV_APPROVAL_GRANTED, rp.current, 0,
                      0, p, NULL, err);
  json_decref(p);
  if (rc == 0 && !had)
    out->have++;
out:
  journal_replay_release(&rp);
  journal_run_release(&run);
  return rc;
}

int engine_reject_status(const char *run_id, const char *status,
                         struct cairn_error *err)
{
  char h[200] = ""; /* a run that ended has nothing left to say no to */

  if (strcmp(status, JOURNAL_STATUS_WAITING) == 0)
    return 0;
  if (strcmp(status, JOURNAL_STATUS_RUNNING) == 0)
    snprintf(h, sizeof h, " (hint: it runs now; it can be rejected once it "
             "waits at an approval)");
  else if (strcmp(status, JOURNAL_STATUS_INTERRUPTED) == 0)
    snprintf(h, sizeof h, " (hint: an interrupted run goes on with 'cairn "
             "resume %s')", run_id);
  else if (strcmp(status, JOURNAL_STATUS_SUCCEEDED) == 0)
    snprintf(h, sizeof h, " (hint: 'cairn rollback %s' undoes a succeeded "
             "run)", run_id);
  else if (strcmp(status, JOURNAL_STATUS_APPROVED) == 0 ||
           strcmp(status, JOURNAL_STATUS_REFUSED) == 0)
    snprintf(h, sizeof h, " (hint: it is a promotion record, not a run)");
  return cairn_error_set(err, CAIRN_E_STATE,
                         "run %s is not waiting for an approval (it is %s): "
                         "only a waiting run can be rejected%s", run_id,
                         status, h);
}

int engine__decider_check(const struct engine_workflow *wf,
                          const struct journal_replay *rp, const char *env,
                          const char *actor, const char *verb,
                          struct cairn_error *err)
{
  const struct engine_state *st =
      rp->current ? engine_workflow_state(wf, rp->current) : NULL;
  char *const *approvers;
  size_t n;
  int need;

  if (st == NULL || st->kind != ENGINE_APPROVAL)
    return cairn_error_set(err, CAIRN_E_CHANGED,
                           "run %s waits at state '%s', which the workflow "
                           "file '%s' no longer has as an approval state",
                           rp->run_id, rp->current ? rp->current : "",
                           wf->file);
  engine_approval_rule(wf, st, env, &need, &approvers, &n);
  if (n == 0)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (strcmp(approvers[i], actor) == 0)
      return 0;
  char list[600];
  json_t *a = names_json(approvers, n);
  join_names(a, list, sizeof list);
  json_decref(a);
  return cairn_error_set(err, CAIRN_E_INVAL,
                         "'%s' may not %s run %s: only the approvers of "
                         "state '%s' may (%s) (hint: CAIRN_ACTOR says who "
                         "you are)", actor, verb, rp->run_id, rp->current,
                         list);
}

int engine_approve_release(struct journal *j, const char *workflow,
                           const char *env, const char *release,
                           const char *actor, const char *user,
                           const char *comment,
                           char record_id[JOURNAL_RUN_ID_LEN],
                           struct cairn_error *err)
{
  struct journal_run r = {0};
  int rc = journal_new_run_id(record_id, err);
  if (rc != 0)
    return rc;
  memcpy(r.id, record_id, sizeof r.id);
  r.workflow = (char *)workflow;
  r.env = (char *)env;
  r.release = (char *)release;
  r.status = JOURNAL_STATUS_APPROVED;
  r.actor = (char *)actor;
  json_t *p = engine__decision(actor, user, comment);
  if (p)
    json_object_update_new(p, json_pack("{s:s,s:s,s:s}", "workflow",
                                        workflow, "env", env, "release",
                                        release));
  rc = record_insert(j, &r, JOURNAL_EV_APPROVAL_GRANTED, p, err);
  json_decref(p);
  return rc;
}

/* ---- promotion ---- */

static int first_run(const struct journal_run *r, void *ud)
{
  struct journal_run *out = ud;
  /* Records (approvals, refusals) are not runs. */
  if (journal_run_is_record(r))
    return 0;
  *out = *r;
  /* Keep the strings: take them over from the row the caller releases. */
  out->workflow = strdup(r->workflow);
  out->file = strdup(r->file);
  out->file_sha256 = strdup(r->file_sha256);
  out->env = strdup(r->env);
  out->release = strdup(r->release);
  out->params = json_incref(r->params);
  out->status = strdup(r->status);
  out->actor = strdup(r->actor);
  out->parent = strdup(r->parent);
  return 1;
}

/* The newest run of (workflow, env[, release][, status]) into *out. */
static int newest(struct journal *j, const char *workflow, const char *env,
                  const char *release, const char *status,
                  struct journal_run *out, struct cairn_error *err)
{
  struct journal_run_filter f = {workflow, env, release, status, 0, 0};
  struct cairn_error why = {0};
  int rc = 0;

  /* A gate trusts the row only as far as its events, which the hash chain
   * covers, agree with it. The row and the events are two reads: a run
   * that finishes between them disagrees once, an edited row every time. */
  for (int tries = 0; tries < 3; tries++) {
    memset(out, 0, sizeof *out);
    rc = journal_run_foreach(j, &f, first_run, out, err);
    if (rc == 0)
      return CAIRN_E_NOTFOUND;
    if (rc != 1)
      return rc;
    rc = journal_run_confirm(j, out, NULL, &why);
    if (rc == 0)
      return 0;
    journal_run_release(out);
    if (rc != CAIRN_E_CHAIN)
      break;
  }
  if (rc != CAIRN_E_CHAIN)
    return cairn_error_set(err, rc, "%s", why.msg);
  return cairn_error_set(err, rc, "%s (hint: 'cairn verify' checks the "
                         "whole journal)", why.msg);
}

int engine_live_run(struct journal *j, const char *workflow, const char *env,
                    struct journal_run *run, struct cairn_error *err)
{
  return newest(j, workflow, env, NULL, JOURNAL_STATUS_SUCCEEDED, run, err);
}

/* Where a run failed: the state of its on_failure transition, or of the
 * fail state it reached; "" when not known. */
struct failed_at {
  char state[256];
};

static int find_failed(const struct journal_event *ev, void *ud)
{
  struct failed_at *f = ud;
  const char *reason = json_string_value(json_object_get(ev->payload,
                                                         "reason"));
  const char *kind = json_string_value(json_object_get(ev->payload, "kind"));
  if (f->state[0])
    return 0;
  if ((strcmp(ev->kind, JOURNAL_EV_TRANSITION) == 0 && reason &&
       (strcmp(reason, "on_failure") == 0 || strcmp(reason, "failed") == 0)) ||
      (strcmp(ev->kind, JOURNAL_EV_STATE_ENTERED) == 0 && kind &&
       strcmp(kind, "fail") == 0))
    snprintf(f->state, sizeof f->state, "%s", ev->state);
  return 0;
}

void engine_gate_release(struct engine_gate *g)
{
  free(g->reason);
  free(g->release);
  free(g->note);
  g->reason = g->release = g->note = NULL;
}

/* Appends a sentence to g->note ("; " between two). */
static int gate_note(struct engine_gate *g, struct cairn_error *err,
                     const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int gate_note(struct engine_gate *g, struct cairn_error *err,
                     const char *fmt, ...)
{
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  size_t used = g->note ? strlen(g->note) : 0;
  char *r = realloc(g->note, used + strlen(line) + 3);
  if (r == NULL)
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  snprintf(r + used, strlen(line) + 3, "%s%s", used ? "; " : "", line);
  g->note = r;
  return 0;
}

/* Appends to g->reason (printf's format), growing it. */
static int gate_say(struct engine_gate *g, struct cairn_error *err,
                    const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int gate_say(struct engine_gate *g, struct cairn_error *err,
                    const char *fmt, ...)
{
  size_t used = g->reason ? strlen(g->reason) : 0;
  va_list ap;
  va_start(ap, fmt);
  int w = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *r = w < 0 ? NULL : realloc(g->reason, used + (size_t)w + 1);
  if (r == NULL)
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  g->reason = r;
  va_start(ap, fmt);
  vsnprintf(r + used, (size_t)w + 1, fmt, ap);
  va_end(ap);
  return 0;
}

static int check_after(struct journal *j, const struct engine_workflow *wf,
                       const struct engine_environment *e,
                       struct engine_gate *g, struct cairn_error *err)
{
  struct journal_run ok, last;
  int rc = newest(j, wf->name, e->after, g->release, JOURNAL_STATUS_SUCCEEDED,
                  &ok, err);
  if (rc == 0) {
    /* The gate stands on this run's events: authenticated (hashes and
     * links, HMAC on a keyed journal), not only agreeing with its row. */
    rc = journal_run_check(j, ok.id, NULL, err);
    if (rc == CAIRN_E_CHAIN)
      cairn_error_prefix(err, "the after gate of %s relies on a run in %s",
                         e->name, e->after);
    /* The gate matches workflows by name: a run of another file of that
     * name passes it, and is said (the runs keep each file's sha256). */
    if (rc == 0 && strcmp(ok.file_sha256, wf->sha256) != 0)
      rc = gate_note(g, err, "run %s in %s ran another workflow file (%s, "
                     "sha256 %.12s), not %s (sha256 %.12s)", ok.id,
                     e->after, ok.file, ok.file_sha256, wf->file,
                     wf->sha256);
    if (rc == 0)
      memcpy(g->parent, ok.id, sizeof g->parent);
    journal_run_release(&ok);
    return rc;
  }
  if (rc != CAIRN_E_NOTFOUND)
    return rc;
  g->refused = 1;
  snprintf(g->gate, sizeof g->gate, "after");
  rc = newest(j, wf->name, e->after, g->release, NULL, &last, err);
  if (rc == CAIRN_E_NOTFOUND)
    return gate_say(g, err,
                    "release %s has no succeeded run in %s; it never ran "
                    "there", engine_release_shown(g->release), e->after);
  if (rc != 0)
    return rc;
  struct failed_at fa = {""};
  if (strcmp(last.status, JOURNAL_STATUS_FAILED) == 0 ||
      strcmp(last.status, JOURNAL_STATUS_ROLLBACK_FAILED) == 0)
    rc = journal_event_foreach(j, last.id, 0, find_failed, &fa, err);
  if (rc == 0 && fa.state[0])
    rc = gate_say(g, err,
                  "release %s has no succeeded run in %s; last attempt %s "
                  "failed at %s", engine_release_shown(g->release), e->after,
                  last.id, fa.state);
  else if (rc == 0)
    rc = gate_say(g, err,
                  "release %s has no succeeded run in %s; last attempt %s "
                  "is %s", engine_release_shown(g->release), e->after,
                  last.id, last.status);
  journal_run_release(&last);
  return rc;
}

static int check_approvals(struct journal *j, const struct engine_workflow *wf,
                           const struct engine_environment *e,
                           struct engine_gate *g, struct cairn_error *err)
{
  char *const *approvers;
  size_t n;
  int need;
  json_t *have = NULL, *ignored = NULL, *bad = NULL;
  char a[600], b[600], c[600];

  engine_approval_rule(wf, NULL, e->name, &need, &approvers, &n);
  int rc = engine_approvals(j, NULL, NULL, wf->name, e->name, g->release,
                            approvers, n, &have, &ignored, &bad, err);
  if (rc != 0)
    return rc;
  if ((int)json_array_size(have) >= need && json_array_size(bad))
    rc = gate_note(g, err, "not counted, approval records whose events do "
                   "not check out (hint: run 'cairn verify'): %s",
                   join_names(bad, c, sizeof c));
  if ((int)json_array_size(have) < need) {
    g->refused = 1;
    snprintf(g->gate, sizeof g->gate, "approvals");
    json_t *al = names_json(approvers, n);
    rc = gate_say(g, err,
                  "release %s needs %d approval%s from distinct actors for "
                  "%s, has %zu%s%s%s", engine_release_shown(g->release), need,
                  need == 1 ? "" : "s", e->name, json_array_size(have),
                  json_array_size(have) ? " (" : "",
                  join_names(have, a, sizeof a),
                  json_array_size(have) ? ")" : "");
    if (rc == 0 && json_array_size(ignored))
      rc = gate_say(g, err, "; not counted, not approvers (%s): %s",
                    join_names(al, b, sizeof b),
                    join_names(ignored, c, sizeof c));
    if (rc == 0 && json_array_size(bad))
      rc = gate_say(g, err, "; not counted, approval records whose events "
                    "do not check out (hint: run 'cairn verify'): %s",
                    join_names(bad, c, sizeof c));
    /* A workflow without a release param promotes release "": its
     * approvals are given with --release "" (said so, to be copied). */
    if (rc == 0)
      rc = gate_say(g, err,
                    " (hint: cairn approve %s --workflow %s --release %s)",
                    e->name, wf->name, engine_release_shown(g->release));
    json_decref(al);
  }
  json_decref(have);
  json_decref(ignored);
  json_decref(bad);
  return rc;
}

const char *engine_release_shown(const char *release)
{
  return release && *release ? release : "\"\"";
}

int engine_promotion_check(struct journal *j, const struct engine_workflow *wf,
                           const char *env, const char *release,
                           struct engine_gate *g, struct cairn_error *err)
{
  const struct engine_environment *e = engine_workflow_env(wf, env);
  int rc;

  memset(g, 0, sizeof *g);
  if (e == NULL)
    return engine_workflow_env_check(wf, env != NULL ? env : "", err);
  if (release == NULL && e->after) {
    struct journal_run live;
    rc = engine_live_run(j, wf->name, e->after, &live, err);
    if (rc == CAIRN_E_NOTFOUND)
      return cairn_error_set(err, CAIRN_E_INVAL,
                             "no release of '%s' is live in %s to promote to "
                             "%s (hint: promote one to %s first, or name one "
                             "with --release)", wf->name, e->after, env,
                             e->after);
    if (rc != 0)
      return rc;
    g->release = strdup(live.release);
    journal_run_release(&live);
  } else if (release == NULL) {
    /* The root of the chain: the release param's value as a run would
     * have it (its default). */
    json_t *params = NULL;
    rc = engine_workflow_params(wf, NULL, 0, &params, err);
    if (rc != 0)
      return rc;
    const char *r = json_string_value(json_object_get(params, "release"));
    g->release = strdup(r ? r : "");
    json_decref(params);
  } else {
    g->release = strdup(release);
  }
  if (g->release == NULL)
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  if (e->after && (rc = check_after(j, wf, e, g, err)) != 0)
    return rc;
  if (!g->refused && e->approvals > 0 &&
      (rc = check_approvals(j, wf, e, g, err)) != 0)
    return rc;
  return 0;
}

int engine_promotion_refuse(struct journal *j, const struct engine_workflow *wf,
                            const char *env, const struct engine_gate *g,
                            const char *actor,
                            char record_id[JOURNAL_RUN_ID_LEN],
                            struct cairn_error *err)
{
  struct journal_run r = {0};
  int rc = journal_new_run_id(r.id, err);
  if (rc != 0)
    return rc;
  memcpy(record_id, r.id, sizeof r.id);
  r.workflow = wf->name;
  r.file = wf->file;
  r.file_sha256 = (char *)wf->sha256;
  r.env = (char *)env;
  r.release = (char *)g->release;
  r.status = JOURNAL_STATUS_REFUSED;
  r.actor = (char *)actor;
  /* file and file_sha256 as the row has them, so verify can hold the
   * row to the event */
  json_t *p = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "workflow",
                        wf->name, "env", env, "release", g->release, "gate",
                        g->gate, "reason", g->reason, "actor", actor, "file",
                        wf->file, "file_sha256", wf->sha256);
  rc = record_insert(j, &r, JOURNAL_EV_PROMOTION_REFUSED, p, err);
  json_decref(p);
  return rc;
}
