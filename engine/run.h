/* The runtime: runs a workflow's state machine on a libuv loop, journaling
 * every step before it acts; and resumes a run from its journal.
 *
 * Memory: the journal, workflow and options are borrowed and must outlive
 * the call; results are filled into caller-owned structs. Events passed to
 * the observer are borrowed for the duration of the callback. */
#ifndef CAIRN_ENGINE_RUN_H
#define CAIRN_ENGINE_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "engine/workflow.h"
#include "journal/events.h"
#include "journal/journal.h"

enum engine_outcome {
  ENGINE_SUCCEEDED,   /* reached a succeed state */
  ENGINE_FAILED,      /* a failure ended the run (fail state, on_failure),
                         rolled back or not (see status) */
  ENGINE_ROLLBACK_FAILED, /* an undo failed after its retries: resumable */
  ENGINE_ROLLED_BACK, /* a rollback on request (engine_rollback) is done */
  ENGINE_INTERRUPTED, /* SIGINT/SIGTERM: resumable */
  ENGINE_WAITING,     /* resume needs a decision (--assume) */
};

struct engine_result {
  enum engine_outcome outcome;
  char run_id[JOURNAL_RUN_ID_LEN];
  char run_dir[4096];
  char status[32];      /* the run's final status ("succeeded", "failed",
                           "rolled_back", "rollback_failed"), or "" */
  char state[256];      /* the failed/undecided state, "" otherwise */
  char message[2048];   /* why it failed / what decision is needed */
  int64_t duration_ms;
};

/* A simulation: every action is replaced by a scripted outcome. Paths
 * are action paths ("migrate", "infra/redis"). */
struct engine_sim {
  const char *const *fail_at;   /* "PATH" (every attempt fails) or
                                   "PATH:N" (attempt N fails) */
  size_t nfail_at;
  const char *const *fail_undo; /* "PATH": the undo of PATH fails */
  size_t nfail_undo;
};

/* Called after each event is committed (so what it reports is durable). */
typedef void (*engine_observe_cb)(void *ud, const struct journal_event *ev);
/* Called every tick_ms while the loop runs (live progress). */
typedef void (*engine_tick_cb)(void *ud);

struct engine_options {
  const char *env;                 /* NULL: none */
  const char *const *sets;         /* "name=value" overrides */
  size_t nsets;
  const char *actor;               /* NULL: $CAIRN_ACTOR or user@host */
  int64_t grace_ms;                /* after SIGINT/SIGTERM, how long running
                                      actions may finish before they are
                                      stopped; 0 means 10 s */
  int64_t kill_grace_ms;           /* SIGTERM to SIGKILL; 0 means 5 s */
  engine_observe_cb observe;
  engine_tick_cb tick;
  int64_t tick_ms;
  void *ud;
  const struct engine_sim *sim;    /* non-NULL: simulate (see
                                      engine_simulate) */
  /* resume only */
  const char *assume;              /* "succeeded", "failed" or NULL */
  int allow_changed;
};

/* Starts a new run of wf and runs it to its end (or an interruption).
 * Returns 0 with *res filled for every outcome; a negative code when the
 * run could not start (bad params: CAIRN_E_INVAL; lock held:
 * CAIRN_E_LOCKED with the holder named; journal errors), in which case
 * nothing was journaled. */
int engine_run(struct journal *j, const struct engine_workflow *wf,
               const struct engine_options *opt, struct engine_result *res,
               struct cairn_error *err);

/* Resumes run_id (a full id) of wf, which must be the workflow the run was
 * started from (same sha256 unless opt->allow_changed). Rebuilds the run
 * from its events only. Returns 0 with *res filled, or a negative code
 * (CAIRN_E_STATE when the run already finished, CAIRN_E_CHANGED,
 * CAIRN_E_LOCKED; a needed decision is not an error but the
 * ENGINE_WAITING outcome) with nothing journaled. */
int engine_resume(struct journal *j, const struct engine_workflow *wf,
                  const char *run_id, const struct engine_options *opt,
                  struct engine_result *res, struct cairn_error *err);

/* Rolls back run_id, a succeeded run of wf, on request: journals
 * rollback.requested and the plan, then runs the undo steps (same rules as
 * after a failure). The run ends rolled_back (outcome ENGINE_FAILED with
 * status "rolled_back") or rollback_failed. Errors, with nothing
 * journaled: CAIRN_E_LOCKED when the run (or another of its workflow and
 * environment) is running; CAIRN_E_STATE when the run did not succeed or
 * was already rolled back; CAIRN_E_CHANGED when wf is not the file the
 * run used (unless opt->allow_changed). */
int engine_rollback(struct journal *j, const struct engine_workflow *wf,
                    const char *run_id, const struct engine_options *opt,
                    struct engine_result *res, struct cairn_error *err);

/* The undo plan of run_id as the journal implies it: the journaled plan
 * when a rollback was planned (*journaled = 1), else the plan a rollback
 * would journal now. *steps (owned by the caller) is an array of
 * {path, undo_path, state, adapter, cancelled?, inputs, outputs} (the
 * forward action's journaled inputs and outputs), each with the undo's
 * inputs as they would render now (undo_inputs, secrets as ***) or why
 * they do not (undo_error). */
int engine_rollback_plan(struct journal *j, const struct engine_workflow *wf,
                         const char *run_id, json_t **steps, int *journaled,
                         struct cairn_error *err);

/* Checks sim against wf: every fail_at names an action path (a do state
 * or a branch "STATE/BRANCH") and an attempt it can reach; every
 * fail_undo names an action path with an undo. CAIRN_E_INVAL naming the
 * first bad one, with a did-you-mean hint. */
int engine_sim_check(const struct engine_workflow *wf,
                     const struct engine_sim *sim, struct cairn_error *err);

/* Runs wf with opt->sim set on a new in-memory journal: the real engine,
 * every action replaced by a scripted outcome (success unless named in
 * sim), retry delays and waits not waited, branches completing one by
 * one in declaration order. Nothing outside the process is touched.
 * Events go to opt->observe as in a real run. */
int engine_simulate(const struct engine_workflow *wf,
                    const struct engine_options *opt,
                    struct engine_result *res, struct cairn_error *err);

/* The folder of a run's logs: "<journal dir>/runs/<run id>" (out of size
 * n). */
int engine_run_dir(const struct journal *j, const char *run_id, char *out,
                   size_t n, struct cairn_error *err);

#endif
