/* cairn abandon: close a run that is waiting, interrupted or stuck in a
 * failed rollback, where it stands, undoing nothing. The record of a
 * deploy nobody will carry on, without acting on what it left. */
#include <stdio.h>
#include <string.h>

#include "engine/runtime.h"

/* What the run was: a "running" one whose engine is gone (checked before)
 * was interrupted, as status and show call it. */
static const char *abandon_was(const struct journal_replay *rp)
{
  return strcmp(rp->status, JOURNAL_STATUS_RUNNING) == 0
             ? JOURNAL_STATUS_INTERRUPTED
             : rp->status;
}

/* The state it stood at: none once it was rolling back (its steps are
 * undo paths) or had not entered one. */
static const char *abandon_at(const struct journal_replay *rp)
{
  return rp->current && strcmp(rp->current, JOURNAL_ROLLBACK) != 0
             ? rp->current
             : NULL;
}

/* Why run_id (replayed as rp) cannot be abandoned, in err with its code,
 * or 0. holder/alive: the lock of its workflow and environment. */
static int abandon_refusal(const char *run_id, const struct journal_replay *rp,
                           const struct journal_lock_holder *holder, int alive,
                           struct cairn_error *err)
{
  const char *st = rp->status;
  int pid = 0;
  const struct journal_step *s;

  if (strcmp(st, JOURNAL_STATUS_APPROVED) == 0 ||
      strcmp(st, JOURNAL_STATUS_REFUSED) == 0)
    return cairn_error_set(err, CAIRN_E_STATE,
                           "%s is a promotion record (%s), not a run: there "
                           "is nothing to abandon", run_id, st);
  if (strcmp(st, JOURNAL_STATUS_RUNNING) == 0 && alive &&
      strcmp(holder->run_id, run_id) == 0)
    return cairn_error_set(err, CAIRN_E_LOCKED,
                           "run %s is still running (pid %d on %s): stop it "
                           "first (Ctrl-C, or kill %d: it ends interrupted), "
                           "then abandon it", run_id, holder->pid,
                           holder->host, holder->pid);
  if (strcmp(st, JOURNAL_STATUS_WAITING) != 0 &&
      strcmp(st, JOURNAL_STATUS_INTERRUPTED) != 0 &&
      strcmp(st, JOURNAL_STATUS_ROLLBACK_FAILED) != 0 &&
      strcmp(st, JOURNAL_STATUS_RUNNING) != 0) { /* running: engine died */
    int live = strcmp(st, JOURNAL_STATUS_SUCCEEDED) == 0;
    return cairn_error_set(
        err, CAIRN_E_STATE,
        "run %s already finished (%s): there is nothing to abandon%s%s%s",
        run_id, st, live ? " (hint: 'cairn rollback " : "",
        live ? run_id : "", live ? "' undoes it)" : "");
  }
  /* A step the run left unfinished whose process still runs would go on
   * unrecorded: it is for resume to settle, or for its end. */
  if ((s = engine__live_step(rp, &pid)) != NULL)
    return cairn_error_set(err, CAIRN_E_LOCKED,
                           "run %s has a step that still runs: '%s' (pid "
                           "%d) (hint: wait until it ends, or 'cairn resume "
                           "%s' carries the run on, stopping or adopting "
                           "it)", run_id, s->path, pid, run_id);
  return 0;
}

/* Appends the abandonment of rp and closes its row; inside the caller's
 * transaction. */
static int abandon_append(struct journal *j, const struct journal_replay *rp,
                          const struct engine_abandon *a, const char *newer,
                          struct cairn_error *err)
{
  json_t *p = engine__decision(a->actor, a->user, a->comment);
  int rc;

  if (p == NULL)
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  json_object_set_new(p, "was", json_string(abandon_was(rp)));
  if (*newer)
    json_object_set_new(p, "superseded_by", json_string(newer));
  rc = journal_append(j, rp->run_id, JOURNAL_EV_RUN_ABANDONED,
                      abandon_at(rp), 0, 0, p, NULL, err);
  json_decref(p);
  if (rc != 0)
    return rc;
  p = json_pack("{s:s}", "status", JOURNAL_STATUS_ABANDONED);
  rc = journal_append(j, rp->run_id, JOURNAL_EV_RUN_FINISHED, NULL, 0, 0, p,
                      NULL, err);
  json_decref(p);
  if (rc == 0)
    rc = journal_run_set_status(j, rp->run_id, JOURNAL_STATUS_ABANDONED,
                                journal_now_ms(), err);
  return rc;
}

int engine_abandon(struct journal *j, const char *run_id,
                   const struct engine_abandon *a,
                   struct engine_abandoned *out, struct cairn_error *err)
{
  struct journal_run run;
  struct journal_replay rp;
  struct journal_lock_holder holder;
  int alive = 0, taken_over = 0, rc;
  char newer[JOURNAL_RUN_ID_LEN] = "";

  memset(out, 0, sizeof *out);
  rc = journal_run_get(j, run_id, &run, err);
  if (rc != 0)
    return rc;
  /* One transaction: the check, the lock (which a resume of the run
   * takes too, so the two cannot cross), the events, the release. */
  rc = journal_begin(j, err);
  if (rc != 0) {
    journal_run_release(&run);
    return rc;
  }
  rc = journal_replay(j, run.id, &rp, err);
  if (rc != 0)
    goto out_run;
  if (journal_lock_get(j, run.workflow, run.env, &holder, &alive, NULL) != 0)
    alive = 0;
  rc = abandon_refusal(run.id, &rp, &holder, alive, err);
  /* a newer run whose engine died with a step still running */
  if (rc == 0)
    rc = engine__lock_orphans(j, run.workflow, run.env, run.id, err);
  /* another run of its workflow and environment running now */
  if (rc == 0)
    rc = journal_lock_acquire(j, run.workflow, run.env, run.id, &holder,
                              &taken_over, err);
  if (rc == 0)
    rc = engine_superseded(j, run.id, "", 1, newer, err);
  if (rc == 0 && taken_over && strcmp(holder.run_id, run.id) != 0) {
    json_t *p = engine__takeover_payload(&holder);
    rc = p ? journal_append(j, run.id, JOURNAL_EV_LOCK_TAKEN_OVER, NULL, 0, 0,
                            p, NULL, err)
           : cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    json_decref(p);
  }
  if (rc == 0)
    rc = abandon_append(j, &rp, a, newer, err);
  if (rc == 0)
    rc = journal_lock_release(j, run.workflow, run.env, run.id, err);
  if (rc == 0)
    rc = journal_commit(j, err);
  if (rc == 0) {
    const char *at = abandon_at(&rp);
    snprintf(out->was, sizeof out->was, "%s", abandon_was(&rp));
    snprintf(out->state, sizeof out->state, "%s", at ? at : "");
    memcpy(out->newer, newer, sizeof out->newer);
  }
  journal_replay_release(&rp);
out_run:
  if (rc != 0)
    journal_rollback(j);
  journal_run_release(&run);
  return rc;
}
