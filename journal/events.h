/* Every event kind the journal holds, with its payload, in one place; and
 * the replay that folds one run's events back into its state.
 *
 * Rules that hold between events of one run (the engine keeps them, replay
 * relies on them):
 *  - run.started is the run's first event; run.finished, when present, its
 *    last (a resume after run.interrupted appends run.resumed and goes on).
 *  - For a state path P: state.entered(P) comes before any action.* of P;
 *    action.started(P, n) before action.spawned(P, n) before
 *    action.finished(P, n). Attempts count up from 1 within one entry.
 *  - action.finished and the transition it causes are in one transaction.
 *  - A second state.entered(P) (a loop through a choice) starts P afresh.
 *
 * Paths: a top-level state is its name ("migrate"); a branch of a
 * parallel state is "state/branch" ("infra/redis"); an instance of a map
 * state "state/key" ("health/auth"); a state of a workflow used by a use
 * state "use/state" ("db/start", nested: "a/db/start"); a state S of the
 * workflow a map state M runs per item, in instance KEY, "M/KEY/S" (its
 * transitions too, so `current` can be such a path while the map runs).
 * So a path names a state when the workflow has a state of that name,
 * else, without the KEY after a map over a used workflow, one of its
 * states, else the part before its last '/' is a parallel or map state.
 * A state's
 * state.entered comes before those of its branches. The undo of a path P
 * runs as the path "undo:P" (state names cannot hold ':'), or "undo:P#N"
 * for the Nth undo of P in one plan (a state completed N times through a
 * loop); its events are those of a forward action.
 *
 * A rollback is one transition {to: "rollback"} (after a failure) or one
 * rollback.requested (a finished run, on request), then one
 * rollback.planned in the same transaction, then the undo paths in plan
 * order, then run.finished with status failed (the rollback of a failure),
 * rolled_back (a rollback on request) or rollback_failed.
 *
 * How journal_replay folds the events of one run (each row: the event and
 * what it does to the run or to the step of ev->state):
 *   run.started       started = payload; file_sha256; status "running"
 *   run.resumed       status "running"
 *   rollback.requested status "running" (a succeeded run rolled back on
 *                     request goes on after its run.finished)
 *   rollback.planned  rollback = payload (the journaled undo plan)
 *   run.interrupted   status "interrupted"
 *   approval.waiting  status "waiting"
 *   approval.granted  (on a run) nothing; on a record: status "approved"
 *   run.abandoned     nothing (its run.finished sets the status)
 *   promotion.refused status "refused"
 *   run.finished      status = payload.status (required); current = NULL
 *   workflow.changed  file_sha256 = new_sha256
 *   transition        current = payload.to (required), NULL when "" (the
 *                     run ended), "rollback" when a failure started a
 *                     rollback; before any transition, current is the
 *                     path of the first state.entered
 *   state.entered     the step of P is created (order of first entry) or,
 *                     when P was entered before, reset in place: phase
 *                     ENTERED, attempt 0, inputs/kind/wait_until_ms from
 *                     the payload, spawn/outputs/finished NULL, seqs 0; the
 *                     steps of P's branches ("P/...") are removed, so a
 *                     new entry of a parallel state starts its branches
 *                     afresh too (they come back with their next entry)
 *   action.started    phase STARTED; attempt = ev->attempt (or payload
 *                     attempt, or previous + 1); spawn and outputs NULL
 *   action.spawned    spawn = payload (so spawn is always the current
 *                     attempt's process, NULL until it has spawned)
 *   action.finished   finished = payload; by outcome: succeeded ->
 *                     SUCCEEDED with outputs = payload.outputs; failed and
 *                     timed_out -> FAILED; cancelled -> CANCELLED;
 *                     interrupted -> INTERRUPTED (not final, finished_seq
 *                     stays 0)
 *   action.retrying   phase RETRY_WAIT (finished_seq back to 0)
 *   probe.finished    succeeded -> SUCCEEDED (the crashed attempt took
 *                     effect); failed -> ENTERED keeping attempt: the
 *                     action did not take effect and runs again as
 *                     attempt + 1 (not FAILED: no on_failure, no retry
 *                     budget spent)
 *   decision.assumed  succeeded -> SUCCEEDED; failed -> FAILED
 *   state.finished    the same (a use state: its used workflow ended)
 *   lock.taken_over, and kinds replay does not know: ignored
 * SUCCEEDED, FAILED and CANCELLED set finished_seq/finished_ms to that
 * event. An action.*, probe.finished or decision.assumed of a path with no
 * state.entered, an action.spawned/finished for another attempt than the
 * one started, a missing or unknown outcome, a transition without `to`
 * or a run.finished without status is CAIRN_E_JOURNAL naming the event.
 */
#ifndef CAIRN_JOURNAL_EVENTS_H
#define CAIRN_JOURNAL_EVENTS_H

#include "journal/journal.h"

/* run.started     {workflow, file, file_sha256, env, release, params, actor}
 * run.resumed     {actor, allow_changed: bool, file_sha256}
 * run.interrupted {signal}
 * run.finished    {status, error?}
 * workflow.changed {old_sha256, new_sha256, actor}  (resume --allow-changed)
 * lock.taken_over {run_id, pid, host, proc_start}   (previous holder)
 * state.entered   {kind, inputs?, wait_until_ms?}   inputs resolved, redacted
 * action.started  {adapter, attempt}
 * action.spawned  {pid, pgid, proc_start, boot_id}
 * action.finished {outcome, exit_code?, signal?, outputs?, tail?, error?,
 *                  duration_ms, took_effect?, log_error?, started?}
 *                  started: false when an interrupt came between the
 *                  attempt's action.started and its spawn (it never ran;
 *                  outcome interrupted); took_effect:
 *                  failed, but only its ready check did (the action
 *                  ran); log_error: why a write to the step's log failed
 *                  (strerror), so the log is incomplete or missing
 *                  outcome: succeeded | failed | timed_out | cancelled |
 *                  interrupted
 * action.retrying {delay_ms, next_attempt}
 * probe.finished  {outcome: succeeded|failed, exit_code?, tail?}
 * decision.assumed {outcome: succeeded|failed, actor}
 * state.finished  {outcome: succeeded|failed, outputs?, error?,
 *                  cancelled?}  a use state or a map instance running a
 *                  used workflow, when that workflow reached succeed
 *                  (outputs: the workflow's `outputs`, redacted) or failed
 *                  (cancelled: true for an instance stopped because
 *                  another failed); also an approval state that was
 *                  rejected ({outcome: failed, error, rejected_by})
 * state.entered of a use state: {kind: use, inputs: its params}; of a map
 *                  state: {kind: map, inputs: {items, keys}}; of a map
 *                  instance: {kind: instance, inputs, item, index}
 * transition      {from, to, reason}  to: a state, "" when the run ends,
 *                  or "rollback"; reason: next | on_failure | when:<expr> |
 *                  default | succeed | fail | approved | rejected
 * rollback.requested {actor}                        (cairn rollback RUN)
 * rollback.planned {reason: failure|request, state?, error?,
 *                   steps: [{path, undo_path, state, adapter, cancelled?,
 *                            inputs, outputs, item?, index?}...]}  in the
 *                  order they run (item, index: of a map instance)
 * approval.waiting {need, have: [actor...], approvers?: [name...]}  an
 *                  approval state (ev->state) has too few approvals: the
 *                  run stops with status waiting and releases its lock;
 *                  resume enters the state again
 * approval.granted {actor, user?, comment?}  cairn approve: on a run
 *                  waiting at an approval state (ev->state = that state),
 *                  or as the only event of a promotion approval record
 *                  (below, which adds {workflow, env, release}). actor:
 *                  CAIRN_ACTOR or user@host, unchecked; user: the user@host
 *                  that ran the command, when it differs from actor. An
 *                  approval state counts those given since the run last
 *                  left that state (a transition from it)
 * approval.rejected {actor, user?, comment?}  cairn reject: on a run
 *                  waiting at an approval state (ev->state), journaled with
 *                  the run.resumed that goes on at once; actor and user as
 *                  for approval.granted. The state then fails (state.finished
 *                  {outcome: failed, error, rejected_by}) and the run takes
 *                  the failure path, whatever approvals it has. It counts
 *                  until the run leaves the state (a transition from it)
 *                  or the state has failed for it (state.finished)
 * run.abandoned   {actor, user?, comment?, was, superseded_by?}  cairn
 *                  abandon: a run that waited, was interrupted or whose
 *                  rollback failed ends where it stands, undoing nothing.
 *                  ev->state: the state it stood at (NULL when none);
 *                  was: its status before; superseded_by: a newer
 *                  succeeded run of its workflow and environment. The
 *                  same transaction appends run.finished {status:
 *                  abandoned} and releases the run's lock
 * promotion.refused {workflow, env, release, gate: after|approvals|release,
 *                  reason, actor, file?, file_sha256?}  the only event of a
 *                  refusal record (file and file_sha256 since they are
 *                  held to the row)
 *
 * Records: a promotion approval (cairn approve ENV --workflow W --release
 * R) and a promotion refusal are journal-level facts, not runs. Each is a
 * runs row that never ran, with status approved or refused, the
 * workflow, env, release and actor of the fact, and exactly one event
 * (approval.granted or promotion.refused) instead of run.started; replay
 * folds such a record into status = the row's kind and no steps.
 * run.finished after a rollback adds {undone: [path...], failed?: path,
 *                  left: [path...]}
 */
#define JOURNAL_EV_RUN_STARTED "run.started"
#define JOURNAL_EV_RUN_RESUMED "run.resumed"
#define JOURNAL_EV_RUN_INTERRUPTED "run.interrupted"
#define JOURNAL_EV_RUN_FINISHED "run.finished"
#define JOURNAL_EV_WORKFLOW_CHANGED "workflow.changed"
#define JOURNAL_EV_LOCK_TAKEN_OVER "lock.taken_over"
#define JOURNAL_EV_STATE_ENTERED "state.entered"
#define JOURNAL_EV_ACTION_STARTED "action.started"
#define JOURNAL_EV_ACTION_SPAWNED "action.spawned"
#define JOURNAL_EV_ACTION_FINISHED "action.finished"
#define JOURNAL_EV_ACTION_RETRYING "action.retrying"
#define JOURNAL_EV_PROBE_FINISHED "probe.finished"
#define JOURNAL_EV_DECISION_ASSUMED "decision.assumed"
#define JOURNAL_EV_STATE_FINISHED "state.finished"
#define JOURNAL_EV_TRANSITION "transition"
#define JOURNAL_EV_ROLLBACK_REQUESTED "rollback.requested"
#define JOURNAL_EV_ROLLBACK_PLANNED "rollback.planned"
#define JOURNAL_EV_APPROVAL_WAITING "approval.waiting"
#define JOURNAL_EV_APPROVAL_GRANTED "approval.granted"
#define JOURNAL_EV_APPROVAL_REJECTED "approval.rejected"
#define JOURNAL_EV_PROMOTION_REFUSED "promotion.refused"
#define JOURNAL_EV_RUN_ABANDONED "run.abandoned"

/* The prefix of an undo's path, and the `to` of a transition into a
 * rollback. */
#define JOURNAL_UNDO_PREFIX "undo:"
#define JOURNAL_ROLLBACK "rollback"

/* Run statuses (runs.status and run.finished's status). */
#define JOURNAL_STATUS_RUNNING "running"
#define JOURNAL_STATUS_SUCCEEDED "succeeded"
#define JOURNAL_STATUS_FAILED "failed"
#define JOURNAL_STATUS_INTERRUPTED "interrupted"
#define JOURNAL_STATUS_ROLLED_BACK "rolled_back"
#define JOURNAL_STATUS_ROLLBACK_FAILED "rollback_failed"
#define JOURNAL_STATUS_WAITING "waiting"   /* at an approval state */
/* closed by cairn abandon: it ended where it stood, nothing undone */
#define JOURNAL_STATUS_ABANDONED "abandoned"
/* Records, not runs (see above): they never start. */
#define JOURNAL_STATUS_APPROVED "approved"
#define JOURNAL_STATUS_REFUSED "refused"

/* The status an event of kind gives its run, or NULL when it gives none:
 * running for run.started, run.resumed and rollback.requested;
 * interrupted for run.interrupted; waiting for approval.waiting; the
 * payload's status for run.finished ("" when it has none); refused for
 * promotion.refused, and approved for approval.granted when record says
 * the run is a record (one that never started: an approval given inside a
 * run gives none). One mapping for the engine that sets runs.status, the
 * replay and verify, which check it. payload is borrowed; the result is a
 * constant or a string of payload. */
const char *journal_event_status(const char *kind, json_t *payload,
                                 int record);

enum journal_phase {
  JOURNAL_PHASE_ENTERED,     /* state.entered, no attempt running: none
                                started yet (attempt 0), or a probe said
                                the last one did not take effect (attempt
                                > 0: run attempt + 1) */
  JOURNAL_PHASE_STARTED,     /* action.started (maybe spawned), unfinished */
  JOURNAL_PHASE_RETRY_WAIT,  /* action.retrying: next attempt not started */
  JOURNAL_PHASE_SUCCEEDED,   /* last action.finished succeeded, or probe or
                                decision said so */
  JOURNAL_PHASE_FAILED,      /* last action.finished failed or timed
                                out, or a decision said failed */
  JOURNAL_PHASE_CANCELLED,
  JOURNAL_PHASE_INTERRUPTED, /* finished with outcome interrupted: treated
                                by resume like STARTED */
};

/* What the events say about one state path, as of the last event. */
struct journal_step {
  char *path;
  char *kind;            /* state.entered's kind ("do", "parallel", ...) */
  enum journal_phase phase;
  int attempt;           /* latest attempt started, 0 before any */
  json_t *inputs;        /* state.entered's inputs, or NULL */
  json_t *spawn;         /* action.spawned payload of the latest attempt,
                            NULL until that attempt has spawned */
  json_t *outputs;       /* outputs of the succeeding action.finished (or
                            probe/decision), NULL unless SUCCEEDED */
  json_t *finished;      /* latest action.finished payload, or NULL */
  int64_t wait_until_ms; /* from state.entered, 0 when none */
  int64_t entered_seq;
  int64_t finished_seq;  /* seq that made the phase final, 0 before */
  int64_t entered_ms;
  int64_t finished_ms;
};

struct journal_replay {
  char run_id[JOURNAL_RUN_ID_LEN];
  json_t *started;       /* run.started payload */
  char *status;          /* from run.finished, else "interrupted" after
                            run.interrupted, else "running" */
  char *current;         /* state the run is in: the `to` of the last
                            transition, or the first state.entered's path
                            when no transition yet; NULL when finished or
                            nothing entered */
  char *file_sha256;     /* latest accepted sha (run.started, or the new
                            one of workflow.changed) */
  json_t *rollback;      /* the last rollback.planned payload, or NULL */
  int rollback_requested; /* its last rollback.requested has no
                             rollback.planned after it (the engine died
                             between the two commits) */
  struct journal_step *steps; /* in order of first entry */
  size_t nsteps;
  int64_t last_seq;
  int64_t events;
};

/* Folds the events of run_id into *out. CAIRN_E_NORUN when the run has no
 * events. out owns everything; release with journal_replay_release. */
int journal_replay(struct journal *j, const char *run_id,
                   struct journal_replay *out, struct cairn_error *err);
void journal_replay_release(struct journal_replay *r);
/* The step of a path, or NULL (borrowed from r). */
struct journal_step *journal_replay_step(const struct journal_replay *r,
                                         const char *path);

#endif
