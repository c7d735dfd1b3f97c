/* Internals shared by engine/run.c (the runtime) and engine/resume.c
 * (rebuilding a runtime from the journal). Not part of the engine's API. */
#ifndef CAIRN_ENGINE_RUNTIME_H
#define CAIRN_ENGINE_RUNTIME_H

#include <jansson.h>
#include <uv.h>

#include "adapters/adapter.h"
#include "engine/run.h"

enum engine__task_phase {
  ENGINE__TASK_IDLE,       /* not started in this process */
  ENGINE__TASK_QUEUED,     /* waiting for the journal flush to start */
  ENGINE__TASK_RUNNING,
  ENGINE__TASK_RETRY_WAIT,
  ENGINE__TASK_DONE,
};

struct engine__sx;

/* States a cursor entered since anything in the run last started an
 * action or a wait (rt->progress was `at`): only a loop of states that
 * do nothing gets far (ENGINE__IDLE_MAX). */
struct engine__idle {
  size_t n;
  size_t at;
};

/* One line of execution besides the run's own (rt->cur): an instance
 * "M/KEY" of a map state M over a used workflow runs the states of its
 * frame as its own cursor, concurrently with the other instances. The
 * state M/S of the frame runs as the path M/KEY/S; the instance's params
 * and states live in `frames`. A view (owner NULL) only lends its frames
 * to an undo of a path inside an instance. */
struct engine__cursor {
  struct engine__sx *cur;         /* its state being carried out (owned:
                                     retired when it moves on, destroyed
                                     with the cursor) */
  char pfx[320];                  /* "M/KEY/" */
  json_t *frames;                 /* per wf->frames, this instance's
                                     {params, states} or null (owned;
                                     rt->inst holds another reference) */
  struct engine__task *owner;     /* the instance (a task of M's sx;
                                     borrowed: the task owns the cursor),
                                     NULL for a view */
  struct engine__cursor *up;      /* the cursor M runs in (borrowed);
                                     NULL: main */
  int cancelled;                  /* the map failed: end, go on no more */
  uv_timer_t *wait_timer;         /* heap, freed in its close callback */
  struct engine__idle idle;       /* states entered in a row without any
                                     action or wait */
};

/* One action being carried out: a `do` state, or one parallel branch. */
struct engine__task {
  struct engine__rt *rt;
  struct engine__sx *sx;
  char *path;                     /* "build" or "infra/db" (owned; name
                                     shares its allocation) */
  char *name;                     /* path as a file name: "infra.db" */
  const struct engine_action *action;
  const struct adapter_desc *desc;
  json_t *inputs;                 /* resolved, defaults applied (owned) */
  int redacted;                   /* inputs held a secret value */
  int attempt;                    /* last attempt number journaled */
  int failures;                   /* failed attempts in this entry */
  int probing;                    /* the running call is the probe */
  int readying;                   /* the running call is the ready check */
  json_t *pending;                /* the action's outputs while its ready
                                     check runs (owned) */
  int64_t pending_ms;             /* and how long the action took */
  int cancel_probe;               /* that probe follows a cancellation: it
                                     decides whether the branch took
                                     effect (and its undo joins a plan) */
  enum engine__task_phase phase;
  int failed;                     /* ended failed (not cancelled) */
  json_t *outputs;                /* owned, when succeeded */
  char *error;                    /* why it last failed (owned), NULL
                                     until then: most tasks never fail,
                                     and 512 bytes each made a fan-out of
                                     1,000 touch 125 more pages */
  char *log_path;                 /* run_dir/name.log (owned): on the
                                     heap, as the 4 KiB a path may take
                                     made most of a task's size */
  char log_header[64];            /* "--- action attempt N ---\n" */
  int log_errno;                  /* the first failed write to the log
                                     (adapter_call.log_errno), 0 if none:
                                     the log is incomplete or missing */
  struct adapter_call *call;      /* while RUNNING (freed in on_done) */
  json_t *call_inputs;            /* inputs of the running call (owned) */
  uv_timer_t *retry_timer;        /* heap, freed in its close callback */
  char *env_extra[5];             /* CAIRN_* of its calls, NULL-ended;
                                     made at the first call (task_env) */
  struct engine__task *next_queued;
  json_t *item;                   /* a map instance's item (owned), or
                                     NULL */
  int index;                      /* a map instance's index in the items */
  struct engine__cursor *inst;    /* an instance of a map over a used
                                     workflow: its cursor (owned) */
};

/* The state being carried out. */
struct engine__sx {
  const struct engine_state *st;
  struct engine__task *tasks;     /* 1 for do, one per branch */
  size_t ntasks;
  size_t open;                    /* tasks not DONE */
  int failed;
  size_t nfailed;                 /* tasks failed: more than one only in
                                     a map with fail_fast: false */
  char error[600];                /* the first failure's */
  char failed_path[320];
  int is_undo;                    /* an undo of rt->plan[step] */
  int ended;                      /* engine__state_done acted on it: a
                                     failure that stops its siblings
                                     ends it from inside its own end */
  int starting;                   /* a map starting instances (no
                                     re-entry) */
  int limit;                      /* a map's max_concurrency; 0: none */
  size_t step;
  struct engine__cursor *cx;      /* the cursor it runs in; NULL: the
                                     run's own */
  int cx_owned;                   /* cx is a view made for this undo */
  char path[320];                 /* its journal path ("M/KEY/S") */
  struct engine__sx *next_dead;   /* freed at the next flush, never
                                     inside a callback that may still
                                     walk its tasks */
};

struct engine__qitem {
  const char *kind;               /* static string */
  char *state;
  int attempt;
  json_t *payload;                /* owned */
  int64_t time_ms;                /* when it happened (queued), which a
                                     lazy event's commit may follow */
  int64_t seq;                    /* once journaled */
  int has_text;                   /* its canonical JSON once journaled,
                                     for the observer: text_len bytes at
                                     text_off of rt->texts */
  size_t text_off, text_len;
};

/* Room in the redaction list for secret values nothing declares up
 * front: generated secrets, and a secret param's value given to each
 * instance of a map over a used workflow (which may differ per item).
 * Pointers only: a large margin costs a few KiB. */
#define ENGINE__REDACT_SPARE 1024
/* The longest log path a task takes (as before it moved to the heap). */
#define ENGINE__LOG_PATH_MAX 4200

/* One run being carried out by this process. */
struct engine__rt {
  uv_loop_t loop;
  struct journal *j;
  const struct engine_workflow *wf;
  const struct engine_options *opt;
  struct engine_result *res;
  struct cairn_error *err;
  char run_id[JOURNAL_RUN_ID_LEN];
  char run_dir[4096];
  char env_name[256];
  char boot_id[40];               /* read once: it cannot change while we
                                     run */
  json_t *scope;                  /* params, vars, secrets, states, run */
  json_t *frames;                 /* per wf->frames: {params, states} once
                                     its use state was entered, else null */
  json_t *entered;                /* path -> seq of the state.entered of
                                     its latest visit (a loop enters a
                                     state again), which its children's
                                     CAIRN_ENTRY_SEQ names; NULL in a
                                     simulation */
  json_t *inst;                   /* "M/KEY" -> the frames of that instance
                                     of a map over a used workflow (owned;
                                     kept after the instance ends, for
                                     its undos) */
  struct engine__cursor *cx;      /* the cursor being worked on (NULL: the
                                     run's own); set by each entry point
                                     from the sx or task it works on */
  char **redact;                  /* secret values, NULL-terminated; its
                                     capacity is fixed (calls hold it) */
  size_t capredact;

  struct engine__qitem *queue;
  size_t nqueue, capqueue;
  struct cairn_buf texts;         /* the texts of the events being
                                     committed (one buffer, not a copy an
                                     event) */
  int tx_open;                    /* a simulation's transaction spans
                                     flushes (commit_queue) */
  size_t tx_events;               /* events appended in it */
  size_t urgent;                  /* queued events that must be committed
                                     this loop turn (all but lazy ones) */
  uv_timer_t lazy_timer;          /* commits lazy events in time
                                     (engine__emit_lazy) */
  uv_timer_t heartbeat_timer;     /* refreshes the lock's heartbeat */
  json_t *direct;                 /* [[kind, seq, payload]...] appended
                                     directly, not yet observed */
  struct engine__task *spawn_head, *spawn_tail;
  uv_idle_t idle;
  uv_check_t check;
  uv_signal_t sigint, sigterm;
  uv_timer_t grace_timer, wait_timer, tick_timer;

  struct engine__sx *cur;
  struct engine__sx *dead;

  /* Entering a state can enter the next at once (a choice, a succeed
   * that ends a used workflow, a map over nothing): past
   * ENGINE__ENTER_DEPTH nested entries, the next waits in pend for the
   * outermost engine__enter, so a long chain does not grow the stack. */
  int enter_depth;
  struct engine__pending {
    struct engine__cursor *cx;    /* NULL: main; gone when to is "" */
    char to[320];
  } *pend;
  size_t npend, cappend;
  size_t progress;                /* actions and waits started */
  struct engine__idle main_idle;  /* the main cursor's */

  /* rollback: the journaled plan's steps and the next one to undo */
  json_t *plan;
  struct engine__planner *planner; /* the plan so far, kept as events
                                      commit by a run started here (NULL
                                      on resume: the plan is then read
                                      from the journal) */
  size_t plan_next;
  char rb_error[1400];            /* why the rollback started */
  int rb_requested;               /* cairn rollback, not a failure */

  /* simulation: scripted calls complete one per loop turn, in the order
   * they started (engine/simulate.c) */
  struct adapter_call **simq;
  size_t nsimq, capsimq;
  uv_idle_t sim_idle;
  json_t *sim_outputs;            /* adapter name -> its placeholder
                                     outputs, one shared object each (no
                                     one changes outputs in place) */
  json_t *sim_outputs_last;       /* the outputs last recorded in the
                                     scope, and their record ({output}),
                                     shared by the next state with the
                                     same outputs (engine__record_outputs) */
  json_t *sim_record_last;
  json_t *sim_marks;              /* task path -> the keys of the inputs
                                     its latest entry took from
                                     placeholders (only paths with some) */
  int sim_decided;                /* the choice being decided read a
                                     placeholder: its transition says so */
  size_t sim_entries;             /* states entered (engine__sim_enter) */
  json_t *sim_loop;               /* past the limit: the paths entered
                                     since, to name the loop */
  char sim_loop_choice[320];      /* a choice in it that decided on a
                                     placeholder, or "" */
  char sim_loop_failed[320];      /* an action in it that failed as
                                     scripted, or "" */

  int interrupted;                /* signal number, 0 when none, or
                                     ENGINE__SIM_STOPPED */
  int finished;                   /* run.finished or run.interrupted queued */
  int closing;
  int fatal;                      /* the run must stop: out of memory,
                                     or a journal write failed */
  int unjournaled;                /* fatal is a commit that failed: the
                                     run stops as interrupted, undoing
                                     nothing (resume continues it) */
  char lost_ends[512];            /* "a succeeded, b failed": the ends of
                                     steps that commit would have
                                     journaled, which resume will ask
                                     about */
  int64_t start_ms;
};

int engine__rt_init(struct engine__rt *rt, struct journal *j,
                    const struct engine_workflow *wf,
                    const struct engine_options *opt,
                    struct engine_result *res, struct cairn_error *err);
/* Runs the loop until the run ends, closes every handle and the loop. */
int engine__rt_loop(struct engine__rt *rt);
void engine__rt_release(struct engine__rt *rt);
/* Closes the handles of a runtime whose run never started, and its loop. */
void engine__rt_abort(struct engine__rt *rt);
/* Frees a state execution none of whose tasks is running (NULL: no-op). */
void engine__sx_destroy(struct engine__sx *sx);
/* Waits in the current wait state until until_ms, then moves on. */
void engine__start_wait(struct engine__rt *rt, int64_t until_ms);

/* Appends an event now, inside the caller's open transaction (payload
 * stolen, may be NULL); the observer hears of it at engine__notify_direct,
 * called once that transaction has committed. For the events written
 * before the loop runs (run.started, run.resumed, ...). */
int engine__append_direct(struct engine__rt *rt, const char *kind,
                          json_t *payload);
/* The same, for an event about a state (state borrowed). */
int engine__append_direct_at(struct engine__rt *rt, const char *kind,
                             const char *state, json_t *payload);
void engine__notify_direct(struct engine__rt *rt);
/* The payload of a decision on an approval (approval.granted,
 * approval.rejected): {actor, user?, comment?}, user only when it is not
 * actor, comment only when not empty. A new reference, NULL when out of
 * memory or not UTF-8. */
json_t *engine__decision(const char *actor, const char *user,
                         const char *comment);
/* Whether actor may approve or reject (verb) run rp, which waits: the
 * state it waits at must be an approval state of wf, and actor one of
 * its approvers when it names some (the others' approvals do not count,
 * so neither would their no). 0, or CAIRN_E_CHANGED / CAIRN_E_INVAL with
 * err set. Everything borrowed. */
int engine__decider_check(const struct engine_workflow *wf,
                          const struct journal_replay *rp, const char *env,
                          const char *actor, const char *verb,
                          struct cairn_error *err);
/* Why a task of sx that a failure elsewhere stopped was cancelled: a
 * sibling branch of a parallel state failed, or another instance of a
 * map (sx is the map, or a state inside one of its instances). Static. */
const char *engine__cancel_why(const struct engine__sx *sx);
/* The payload of lock.taken_over naming the previous holder h: a new
 * reference, NULL when out of memory. */
json_t *engine__takeover_payload(const struct journal_lock_holder *h);
/* Appends lock.taken_over naming the previous holder (direct). */
int engine__append_takeover(struct engine__rt *rt,
                            const struct journal_lock_holder *h);
/* Queues an event (payload stolen, may be NULL), committed this loop
 * turn, before anything waiting for it starts. */
void engine__emit(struct engine__rt *rt, const char *kind, const char *state,
                  int attempt, json_t *payload);
/* Queues an event that need not be durable at once: it rides on the next
 * commit, made at the latest within_ms from now. Only for what a crash may
 * lose because resume makes up for it (a child's pid: the markers in its
 * environment; an idempotent action's success: resume runs it again). */
void engine__emit_lazy(struct engine__rt *rt, const char *kind,
                       const char *state, int attempt, json_t *payload,
                       uint64_t within_ms);
/* Whether running t's action again is safe: the state's `idempotent`,
 * else its adapter's. */
int engine__task_idempotent(const struct engine__task *t);
/* Enters a state: journals state.entered and starts what it does. */
void engine__enter(struct engine__rt *rt, const char *name);
/* The one place a run moves on: journals the transition from `from` to
 * `to` (NULL ends the run with `status`; JOURNAL_ROLLBACK starts the
 * rollback, error saying why) and enters `to`. */
void engine__transition(struct engine__rt *rt, const char *from,
                        const char *to, const char *reason,
                        const char *status, const char *error);
/* Sets up the state execution for st without journaling (resume). */
struct engine__sx *engine__sx_new(struct engine__rt *rt,
                                  const struct engine_state *st);
/* Starts the next attempt of t (journals action.started, then spawns). */
void engine__task_attempt(struct engine__task *t);
/* Runs t's probe (resume). */
void engine__task_probe(struct engine__task *t);
/* Marks t done (ok or not) and moves the state on when all are done. */
void engine__task_done(struct engine__task *t, int ok, int cancelled,
                       const char *error);
/* Resolves t's inputs from the scope (templates, defaults). */
int engine__task_resolve(struct engine__task *t, struct cairn_error *err);
/* A new JSON string of s (the caller's), which may come from outside: a
 * byte that is not valid UTF-8 becomes '?' rather than jansson refusing
 * the whole string and the event losing the field. NULL only when out of
 * memory. */
json_t *engine__text(const char *s);
/* v with every secret value replaced by *** (a new reference; v itself
 * when it holds none), and whether it holds one. */
json_t *engine__redact(struct engine__rt *rt, json_t *v);
int engine__holds_secret(struct engine__rt *rt, json_t *v);
/* Before a run takes over the lock of (workflow, env) from a dead engine
 * of another run: CAIRN_E_LOCKED (err says which step and pid) when a
 * step that run left unfinished still has a live process, which would
 * run alongside the new one; else 0. The strings are borrowed; run_id is
 * the run that wants the lock (its own dead holder is resume's case). */
/* Whether a failed task of sx leaves its siblings running (a map with
 * fail_fast: false; never an undo). */
int engine__fail_late(const struct engine__sx *sx);

/* The first step of rp that was cut short (started and not ended, or
 * ended "interrupted") and still has a live process, by its journaled pid
 * or else its markers, with that pid in *pid; NULL (and *pid 0) when
 * none. Borrowed from rp. */
const struct journal_step *engine__live_step(const struct journal_replay *rp,
                                             int *pid);
/* CAIRN_E_LOCKED when the lock of (workflow, env) is held by another run
 * whose engine is gone but one of whose steps still runs; 0 otherwise. */
int engine__lock_orphans(struct journal *j, const char *workflow,
                         const char *env, const char *run_id,
                         struct cairn_error *err);
/* Does any string in v contain "***" (journaled with a secret redacted)? */
int engine__has_redaction(json_t *v);
/* Adds secrets a call made (NAME -> value) to the scope and the
 * redaction list; from (borrowed) is the path of the step that gave them.
 * A value under ENGINE_SECRET_MIN characters stops the run (rt->fatal,
 * rt->err naming the secret and the step). */
void engine__learn_secrets(struct engine__rt *rt, json_t *secrets,
                           const char *from);
/* Adds the value s (borrowed; NULL and "" ignored) to the redaction list
 * once, as it is and as JSON escapes it. 0; CAIRN_E_INVAL with err saying
 * that `what` (say "secret DB_PASSWORD") is too short, under
 * ENGINE_SECRET_MIN characters (not in a simulation); CAIRN_E_NOMEM or,
 * when the list is full, CAIRN_E_STATE with rt->err saying so (either of
 * these also set as rt->fatal: the run stops). */
int engine__learn_value(struct engine__rt *rt, const char *s,
                        const char *what, struct cairn_error *err);
/* Adds the values in `values` (borrowed) of the params among params[0..n)
 * declared `secret` to the redaction list: 0, or the first error of
 * engine__learn_value (in err). */
int engine__learn_params(struct engine__rt *rt,
                         const struct engine_param *params, size_t n,
                         json_t *values, struct cairn_error *err);
/* Gives a resumed or rolled-back run its params: the journaled ones, and
 * each secret param (journaled redacted) again from rt->opt->sets, where
 * nothing else may be set. CAIRN_E_INVAL with a hint when one is
 * missing. */
int engine__run_params(struct engine__rt *rt, const struct journal_replay *rp,
                       struct cairn_error *err);
/* Gives a resumed run the secrets its finished steps made (adapters with
 * secrets_of). */
int engine__restore_secrets(struct engine__rt *rt,
                            const struct journal_replay *rp,
                            struct cairn_error *err);
/* Rebuilds states (the scope's "states" object) from every step of rp
 * that succeeded (engine/resume.c). */
void engine__rebuild_outputs(const struct engine_workflow *wf, json_t *states,
                             const struct journal_replay *rp);
/* Records a finished state's outputs in the template scope. */
void engine__record_outputs(struct engine__rt *rt, const char *state,
                            json_t *outputs);
/* Ends the run with status (journals run.finished with extra's members
 * added, extra stolen, may be NULL). */
void engine__end_run(struct engine__rt *rt, const char *status,
                     const char *state, const char *error, json_t *extra);
/* Journals run.interrupted and stops (once). */
void engine__finish_interrupted(struct engine__rt *rt);
/* Sets up a task of sx (path, log, environment markers). */
int engine__task_init(struct engine__rt *rt, struct engine__sx *sx,
                      struct engine__task *t, const char *path,
                      const struct engine_action *action);
/* Journals state.entered of task t: payload p (stolen; its kind set by
 * the caller) with t's resolved inputs, or, when their resolution
 * failed (rc != 0), with err's message; then that fails the task (the
 * message prefixed "cannot resolve the inputs of PATH" when say_inputs).
 * Returns rc. */
int engine__task_entered(struct engine__task *t, json_t *p, int rc,
                         const struct cairn_error *err, int say_inputs);
/* The journaled form of a task's resolved inputs (secrets redacted). */
json_t *engine__journal_inputs(struct engine__task *t);
/* Retires sx (freed at the next flush). */
void engine__sx_retire(struct engine__rt *rt, struct engine__sx *sx);

/* ---- rollback (engine/rollback.c) ---- */

/* The action at an action path ("S" for a do state, "S/B" for a branch),
 * and its state (*st_out, may be set even when NULL is returned) and
 * branch index (*branch, -1 for a do state). NULL when wf has no such
 * action. Borrowed from wf. */
const struct engine_action *engine__action_at(
    const struct engine_workflow *wf, const char *path,
    const struct engine_state **st_out, int *branch);

/* The undo planner's fold over a run's events, kept incrementally: fed
 * each event as it commits, in order (payload borrowed; what it keeps it
 * references, so payloads must not change after their commit). */
struct engine__planner;
struct engine__planner *engine__planner_new(const struct engine_workflow *wf);
void engine__planner_feed(struct engine__planner *pl, const char *kind,
                          const char *state, json_t *payload);
void engine__planner_free(struct engine__planner *pl);

/* Computes the undo plan from the run's committed events and those still
 * queued (so it is what the journal will say; kept by rt->planner when
 * there is one, else read back from the journal), journals it with
 * rollback.planned and starts the first undo. from: the failed state, or
 * NULL for a rollback on request; error: why. */
void engine__rollback_begin(struct engine__rt *rt, const char *from,
                            const char *error);
/* Starts the undo of rt->plan[rt->plan_next], or ends the run when the
 * plan is done. */
void engine__undo_next(struct engine__rt *rt);
/* Sets up the state execution of undo step i of rt->plan without
 * journaling (resume). NULL when out of memory or the step's state is no
 * longer in the workflow (err says which). */
struct engine__sx *engine__undo_sx(struct engine__rt *rt, size_t i,
                                   struct cairn_error *err);
/* Resolves the inputs of undo task t of plan step `step`, with self = the
 * forward action's journaled inputs and outputs (and a redacted secret in
 * them rendered again). */
int engine__undo_resolve(struct engine__rt *rt, struct engine__task *t,
                         json_t *step, struct cairn_error *err);
/* Called when the undo sx is done (state_done's counterpart). */
void engine__undo_done(struct engine__rt *rt, struct engine__sx *sx);

/* ---- use and map states (engine/frames.c) ---- */

/* The scope the templates of state st render in (st NULL: the run's): the
 * run's scope, or for a state of a used workflow one whose params and
 * states are that workflow's; with item (may be NULL) as `item`. A new
 * reference. */
json_t *engine__scope_for(struct engine__rt *rt,
                          const struct engine_state *st, json_t *item);
/* engine__scope_for as seen from cursor cx (an instance's, or NULL for
 * the run's own) rather than the current one. A new reference. */
json_t *engine__scope_in(struct engine__rt *rt, struct engine__cursor *cx,
                         const struct engine_state *st, json_t *item);
/* Records the outputs of a state of a used workflow in its frame too
 * (called by engine__record_outputs). */
void engine__frame_record(struct engine__rt *rt,
                          const struct engine_state *st, json_t *outputs);
/* Enters use state st: its params resolved and journaled, then its
 * first state. */
void engine__use_enter(struct engine__rt *rt, struct engine__sx *sx);
/* A succeed state st of a used workflow was entered: the use state
 * succeeds with the workflow's outputs and the run goes on after it. */
void engine__frame_succeed(struct engine__rt *rt,
                           const struct engine_state *st);
/* State st failed with msg: applies its on_failure; in a used workflow,
 * `rollback` and `fail` fail the use state instead. */
void engine__fail_state(struct engine__rt *rt, const struct engine_state *st,
                        const char *msg);
/* Enters map state sx->st: resolves its items, journals them and starts
 * the first instances. */
void engine__map_enter(struct engine__rt *rt, struct engine__sx *sx);
/* Makes sx's tasks from items and keys (arrays of one length; borrowed).
 * CAIRN_E_NOMEM. */
int engine__map_setup(struct engine__rt *rt, struct engine__sx *sx,
                      json_t *items, json_t *keys);
/* Starts instances of map sx that have not started, up to its
 * max_concurrency; none once it failed or the run is interrupted (they
 * count as done then, unjournaled). */
void engine__map_more(struct engine__rt *rt, struct engine__sx *sx);
/* Item `index` of map state st, its items rendered again (they were
 * journaled with a secret redacted). A new reference, NULL when they
 * cannot be. */
json_t *engine__map_item(struct engine__rt *rt, const struct engine_state *st,
                         size_t index);
/* Sets up the tasks of map sx from its journaled entry top (resume). */
int engine__map_rebuild(struct engine__rt *rt, struct engine__sx *sx,
                        const struct journal_step *top,
                        struct cairn_error *err);
/* Gives a resumed run the params and states of every used workflow
 * entered (engine/resume.c calls it after engine__rebuild_outputs). */
int engine__rebuild_frames(struct engine__rt *rt,
                           const struct journal_replay *rp,
                           struct cairn_error *err);

/* Where the state execution of cursor cx is kept (cx NULL or a view:
 * rt->cur). */
struct engine__sx **engine__slot(struct engine__rt *rt,
                                 struct engine__cursor *cx);
/* src copied into out[n], cut short as snprintf(out, n, "%s", src)
 * would, without its format (the runtime copies names and paths for
 * every state). */
void engine__copy(char *out, size_t n, const char *src);
/* The journal path of state `name` in the cursor rt->cx ("M/S" ->
 * "M/KEY/S"; name itself in the run's own). */
void engine__jpath(struct engine__rt *rt, const char *name, char *out,
                   size_t n);
/* Frees a cursor (its state execution, timer and frames). */
void engine__cursor_free(struct engine__cursor *cx);
/* Cancels the instance cx: its running actions are stopped (journaled
 * cancelled, the probe rule included), then it ends cancelled. */
void engine__cursor_cancel(struct engine__rt *rt, struct engine__cursor *cx);
/* Ends the instance cx without going on (cancelled, or interrupted: then
 * nothing is journaled and resume carries it on). */
void engine__cursor_stop(struct engine__rt *rt, struct engine__cursor *cx);
/* A view cursor lending undo step `path` the frames of its instance, or
 * NULL when the path is in none (or they are unknown). */
struct engine__cursor *engine__undo_view(struct engine__rt *rt,
                                         const char *path);
/* Stops (cancels) every running call under sx, instances included, and
 * the timers that would start more (retry delays, instances' waits):
 * for a second signal and a journal that cannot be written. */
void engine__stop_calls(struct engine__sx *sx);

/* ---- approval states (engine/approval.c) ---- */

/* Counts the approvals of the approval state st (just entered): enough
 * moves on to st->next; too few journals approval.waiting and stops the
 * run (status waiting, lock released, ENGINE_AWAITING_APPROVAL). In a
 * simulation the approval passes. */
void engine__approval_decide(struct engine__rt *rt,
                             const struct engine_state *st);

/* ---- simulation (engine/simulate.c) ---- */

/* The adapter every action is replaced by in a simulation. */
extern const struct adapter_desc engine__sim_adapter;

/* rt->interrupted of a simulation that stopped itself (a loop); its
 * message is in rt->res->message. */
#define ENGINE__SIM_STOPPED (-1)
/* A simulation stops after this many states entered (engine__enter:
 * the run's own, and those of used workflows and of each instance of a
 * map over one; not branches or map instances of a `do`). A map of
 * 1,000 instances of a 13-state workflow (postgres.yaml, the largest of
 * the standard library) enters about 13,000: only a loop gets this
 * far. */
#define ENGINE__SIM_MAX_ENTRIES 100000
/* Nested state entries before the next is left to the outermost. */
#define ENGINE__ENTER_DEPTH 64
/* A real run: states one cursor may enter in a row while nothing in the
 * run starts an action or a wait. Each entry is journaled, so a loop of
 * choices would otherwise grow the journal (and the memory) for ever; a
 * simulation has its own limit, which names the loop. */
#define ENGINE__IDLE_MAX 10000

/* What in a simulation's scope comes from placeholder outputs, besides
 * states.S of a state that has them (a state that failed, was cancelled
 * or never ran has none) and secrets a secrets.generate would have
 * made. */
struct engine__sim_src {
  int self_output;     /* self.output: the outputs of a simulated success
                          (a ready check's, an undo's of a step that
                          finished; not of one cancelled) */
  json_t *self_input;  /* names of self.input's keys that were (borrowed,
                          may be NULL) */
  int item;            /* item: a map's items rendered from them */
  json_t *params;      /* names of the params of a used workflow given
                          one (an object name -> true; borrowed, may be
                          NULL) */
};

/* Fills src for the templates of state st (in cursor cx; item: they see
 * an item of st, a map state) (engine/frames.c). */
void engine__sim_src(struct engine__rt *rt, struct engine__cursor *cx,
                     const struct engine_state *st, int item,
                     struct engine__sim_src *src);
/* The rendering of v (templates in strings, walked as
 * engine_template_render walks them) or, when v is NULL, of the bare
 * expression expr, failed in scope with err. 0 when each template that
 * fails reads a placeholder and every reference in it that reads none
 * resolves: a real run's outputs may make it render. Otherwise the code
 * of the failure a real run would have too, with err saying what it
 * says. */
int engine__sim_tolerates(struct engine__rt *rt, json_t *v, const char *expr,
                          json_t *scope, const struct engine__sim_src *src,
                          struct cairn_error *err);
/* v (an object) rendered in scope key by key, after engine__sim_tolerates
 * said 0: each key that does not render is kept as written. A new
 * reference (a copy of v when no object), NULL when out of memory. */
json_t *engine__sim_render_keys(json_t *v, json_t *scope);
/* Whether v (or, v NULL, expr) reads a placeholder in scope. */
int engine__sim_reads(struct engine__rt *rt, json_t *v, const char *expr,
                      json_t *scope, const struct engine__sim_src *src);
/* The keys of object v whose values read a placeholder: a new array, or
 * NULL when none does (or v is no object). */
json_t *engine__sim_keys(struct engine__rt *rt, json_t *v, json_t *scope,
                         const struct engine__sim_src *src);
/* The adapter desc's checks of inputs rendered in a simulation
 * (rendered, from `with` as written) failed with err. When they pass
 * with the keys that came from placeholders (keys, an array; may be
 * NULL) as written, the failure is the placeholders' doing: 0, with
 * *out a copy of rendered (a new reference). Otherwise the code of the
 * failure a real run has too, err saying what it says. The rest is
 * borrowed. */
int engine__sim_checks(const struct adapter_desc *desc, json_t *with,
                       json_t *rendered, json_t *keys, json_t **out,
                       struct cairn_error *err);
/* Counts the state st entered in the cursor rt->cx. Past
 * ENGINE__SIM_MAX_ENTRIES it follows the states entered until one comes
 * again, then stops the simulation (rt->interrupted set to
 * ENGINE__SIM_STOPPED, rt->res->message naming the loop and why it
 * goes on). */
void engine__sim_enter(struct engine__rt *rt, const struct engine_state *st);

/* Applies a state's failure path (on_failure). */
void engine__state_failed(struct engine__rt *rt, struct engine__sx *sx);
/* What a failure message says of t's log, into out (n bytes): " (log:
 * PATH)", " (log: PATH, incomplete: WHY)" when a write to it failed, " (no
 * log: WHY)" when none could be made, or "" (a simulation, or a step that
 * failed before anything was written). */
void engine__log_note(const struct engine__task *t, char *out, size_t n);
/* Called when every task of sx is done. */
void engine__state_done(struct engine__rt *rt, struct engine__sx *sx);

#endif
