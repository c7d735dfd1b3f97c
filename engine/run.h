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
  ENGINE_AWAITING_APPROVAL, /* stopped at an approval state with too few
                               approvals (status "waiting"): approve,
                               then resume */
};

struct engine_result {
  enum engine_outcome outcome;
  char run_id[JOURNAL_RUN_ID_LEN];
  char run_dir[4096];
  char status[32];      /* the run's final status ("succeeded", "failed",
                           "rolled_back", "rollback_failed"), or "" */
  char state[256];      /* the failed/undecided state, "" otherwise */
  char message[2048];   /* why it failed / what decision is needed */
  char decide[2048];    /* ENGINE_WAITING: each step to decide (--assume
                           PATH=...), one path a line; as many as fit */
  int decide_more;      /* decide left some out */
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
  const char *const *fail_ready; /* "PATH": the ready check of PATH fails
                                    (its action succeeded: its undo joins
                                    a rollback) */
  size_t nfail_ready;
  /* Optional (NULL: not kept), the caller's, one byte per item of the
   * list above, zeroed by the caller: set to 1 when that item made
   * something fail. An item left 0 named nothing the simulation ran (a
   * branch not taken, an instance KEY no item has). */
  unsigned char *fired_at, *fired_undo, *fired_ready;
};

/* Called after each event is committed (so what it reports is durable). */
typedef void (*engine_observe_cb)(void *ud, const struct journal_event *ev);
/* Called once the events of one commit have all been observed: where an
 * observer that buffers its output writes it out (one write a commit, not
 * one an event: a fan-out of 1,000 checks commits their ends together). */
typedef void (*engine_observed_cb)(void *ud);
/* Called every tick_ms while the loop runs (live progress). */
typedef void (*engine_tick_cb)(void *ud);

/* A rejection (engine_options.reject); every string borrowed. */
struct engine_reject {
  const char *user;    /* who typed it (user@host) when not actor; NULL */
  const char *comment; /* why; NULL or "": none */
};

struct engine_options {
  const char *env;                 /* NULL: none */
  const char *const *sets;         /* "name=value" overrides */
  size_t nsets;
  const char *actor;               /* NULL: $CAIRN_ACTOR or user@host */
  const char *parent;              /* run: the run this one is promoted
                                      from (runs.parent, run.started's
                                      parent); NULL: none */
  int64_t grace_ms;                /* after SIGINT/SIGTERM, how long running
                                      actions may finish before they are
                                      stopped: 0 not at all (SIGTERM at
                                      once), negative means 10 s */
  int64_t kill_grace_ms;           /* SIGTERM to SIGKILL; 0 means 5 s */
  engine_observe_cb observe;
  engine_observed_cb observed;     /* may be NULL */
  int observe_text;                /* the observer prints payloads: give
                                      it each one's journaled text
                                      (journal_event.payload_text) */
  engine_tick_cb tick;
  int64_t tick_ms;
  void *ud;
  const struct engine_sim *sim;    /* non-NULL: simulate (see
                                      engine_simulate) */
  /* resume only */
  const char *assume;              /* "succeeded", "failed" or NULL: the
                                      answer for every step resume
                                      cannot decide alone */
  const char *const *assume_steps; /* "PATH=succeeded|failed" each, for
                                      that interrupted step, whatever it
                                      is (borrowed; VALUE checked by the
                                      caller) */
  size_t nassume_steps;
  int allow_changed;
  /* resume and rollback: go on with a run that a newer run of its
   * workflow and environment replaced (journaled as superseded_by) */
  int allow_superseded;
  /* cairn reject: the run must wait at an approval state; its rejection
   * (approval.rejected by actor) is journaled with run.resumed, and the
   * state fails at once. NULL: none */
  const struct engine_reject *reject;
};

/* Starts a new run of wf and runs it to its end (or an interruption).
 * Returns 0 with *res filled for every outcome; a negative code when the
 * run could not start (bad params: CAIRN_E_INVAL; lock held:
 * CAIRN_E_LOCKED with the holder named; journal errors), in which case
 * nothing was journaled. */
int engine_run(struct journal *j, const struct engine_workflow *wf,
               const struct engine_options *opt, struct engine_result *res,
               struct cairn_error *err);

/* Whether a run with this status (from its row, or its replay) has
 * anything left to resume: CAIRN_E_STATE with err saying why not (a
 * record, or a run that finished; rollback_failed counts as finished
 * only when planned is 0, no rollback was planned), else 0. Before the
 * workflow is loaded, pass planned 1. run_id and status are borrowed. */
int engine_resume_status(const char *run_id, const char *status, int planned,
                         struct cairn_error *err);

/* Whether wf is the workflow run_id ran (run_sha256: its file_sha256,
 * which covers the files it uses): 0, or CAIRN_E_CHANGED with err saying
 * "workflow file F changed since run R started" + why (", and ...", may
 * be "") and to THEN with --allow-changed after a review. Borrows all. */
int engine_changed(const struct engine_workflow *wf, const char *run_id,
                   const char *run_sha256, const char *why, const char *then,
                   struct cairn_error *err);
/* What a rollback adds to engine_changed's message. */
#define ENGINE_ROLLBACK_CHANGED ", and its undo steps come from it"

/* Resumes run_id (a full id) of wf, which must be the workflow the run was
 * started from (same sha256 unless opt->allow_changed). Rebuilds the run
 * from its events only, after authenticating them (journal_run_check:
 * CAIRN_E_CHAIN naming the first bad event, CAIRN_E_KEY for a keyed
 * journal without its key). Returns 0 with *res filled, or a negative code
 * (CAIRN_E_STATE when the run already finished, CAIRN_E_CHANGED,
 * CAIRN_E_LOCKED, CAIRN_E_CHAIN; a needed decision is not an error but the
 * ENGINE_WAITING outcome) with nothing journaled. With opt->reject (cairn
 * reject), the run must wait at an approval state and the actor be one
 * of its approvers when it lists some (CAIRN_E_STATE, CAIRN_E_INVAL, with
 * nothing journaled); the rejection is journaled with run.resumed. */
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
 * run used (unless opt->allow_changed); CAIRN_E_CHAIN when the run's
 * events do not authenticate (journal_run_check, checked first). */
/* Whether a newer run of run_id's workflow and environment (started
 * after it) has succeeded: then a resume or rollback of run_id would act
 * under that deploy. newer gets its id ("" when none). When there is one
 * and allow is 0: CAIRN_E_STATE, err saying which and that doing ("resuming
 * it would ...") is what would happen. 0 otherwise, or a journal error. */
int engine_superseded(struct journal *j, const char *run_id,
                       const char *doing, int allow,
                       char newer[JOURNAL_RUN_ID_LEN], struct cairn_error *err);

/* The first step of run rp that an interruption cut short (started, not
 * ended, or ended "interrupted": whether it took effect is for resume to
 * settle), or NULL. Borrowed from rp. */
const struct journal_step *engine_cut_short(const struct journal_replay *rp);
/* Whether step s was interrupted before its attempt started (journaled
 * {outcome: interrupted, started: false}): nothing of it ran, so resume
 * runs it again without a question and it was not cut short. */
int engine_not_started(const struct journal_step *s);

int engine_rollback(struct journal *j, const struct engine_workflow *wf,
                    const char *run_id, const struct engine_options *opt,
                    struct engine_result *res, struct cairn_error *err);

/* The undo plan of run_id as the journal implies it: the journaled plan
 * when a rollback was planned (*journaled = 1; each step then says how
 * far its undo got: progress "done", "failed", "unfinished" or
 * "pending"), else the plan a rollback would journal now. *steps (owned
 * by the caller) is an array of {path, undo_path, state, adapter,
 * cancelled?, inputs, outputs} (the forward action's journaled inputs and
 * outputs), each with the undo's inputs as they would render now
 * (undo_inputs, secrets as ***) or why they do not (undo_error).
 * *refused is 0 when engine_rollback would go on now, else the error code
 * it would return, with its message in *why (a dry run says what the real
 * one would do, allow_superseded as its opt->allow_superseded; a changed
 * workflow file is left to the caller). The run's events are
 * authenticated first (journal_run_check: CAIRN_E_CHAIN or CAIRN_E_KEY). */
int engine_rollback_plan(struct journal *j, const struct engine_workflow *wf,
                         const char *run_id, int allow_superseded,
                         json_t **steps, int *journaled, int *refused,
                         struct cairn_error *why, struct cairn_error *err);

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

/* ---- approvals and promotion (engine/approval.c) ---- */

/* The distinct actors whose approval.granted counts: those on run_id at
 * state given since the run last left state (run_id NULL: none; a loop
 * back into an approval state needs approvals anew) and those of the
 * promotion approval records of (workflow, env, release), in order of
 * first approval. A record counts only when its event authenticates
 * (journal_run_check); the others go to *unchecked as "ID (event N)".
 * With approvers (n > 0) only those count; the others go to *ignored. The
 * arrays (of strings) are owned by the caller; ignored and unchecked may
 * be NULL. */
int engine_approvals(struct journal *j, const char *run_id, const char *state,
                     const char *workflow, const char *env,
                     const char *release, char *const *approvers, size_t n,
                     json_t **counted, json_t **ignored, json_t **unchecked,
                     struct cairn_error *err);

/* Whether a run of this status can be approved (cairn approve RUN): only
 * a waiting one. 0, or CAIRN_E_STATE with err saying why not. run_id and
 * status are borrowed. */
int engine_approve_status(const char *run_id, const char *status,
                          struct cairn_error *err);

/* cairn approve RUN: who approves (actor is who the approver says they
 * are, CAIRN_ACTOR: nothing checks it; user, the account that ran the
 * command, is journaled beside it when it differs, NULL: not known), why
 * (comment may be NULL), and what resume's flags of the same name would
 * accept. */
struct engine_approve {
  const char *actor;
  const char *user;
  const char *comment;
  int allow_changed;
  int allow_superseded;
};
/* Where the approval went and what it made of the state. */
struct engine_approved {
  char state[256]; /* the approval state the run waits at */
  int have;        /* distinct actors that count there now */
  int need;        /* approvals the state needs */
  int again;       /* 1: the actor had approved this visit already */
};
/* Journals approval.granted {actor, user?, comment?} on run_id (a full
 * id or a unique prefix) at the approval state it waits at, and fills
 * *out. Refused with nothing journaled: CAIRN_E_STATE when the run does
 * not wait (engine_approve_status) or a newer run replaced it (unless
 * a->allow_superseded); CAIRN_E_CHANGED when wf, the run's workflow file
 * as it is now, changed since the run started (unless a->allow_changed)
 * or no longer has that approval state; CAIRN_E_INVAL when the state
 * lists approvers and a->actor is not one (their approval would not
 * count). wf and a are borrowed. */
int engine_approve_run(struct journal *j, const struct engine_workflow *wf,
                       const char *run_id, const struct engine_approve *a,
                       struct engine_approved *out, struct cairn_error *err);

/* The rejection (approval.rejected payload, a new reference) that the
 * current visit of approval state state of run_id has not acted on yet:
 * one journaled since the run last left the state (a transition from it)
 * or the state last failed for one (state.finished). *found is NULL when
 * there is none. 0, or a journal error. */
int engine_rejection(struct journal *j, const char *run_id, const char *state,
                     json_t **found, struct cairn_error *err);

/* Whether a run of this status can be rejected (cairn reject): only a
 * waiting one. 0, or CAIRN_E_STATE with err saying why not and what to do
 * instead. run_id and status are borrowed. */
int engine_reject_status(const char *run_id, const char *status,
                         struct cairn_error *err);

/* cairn abandon RUN: who closes it, and why (comment may be NULL); user
 * is journaled beside actor when the two differ, as for an approval. */
struct engine_abandon {
  const char *actor;
  const char *user;
  const char *comment;
};
/* What the run was when abandoned. */
struct engine_abandoned {
  char was[32];                   /* waiting, interrupted, rollback_failed */
  char state[256];                /* where it stood; "" when rolling back */
  char newer[JOURNAL_RUN_ID_LEN]; /* a newer succeeded run, or "" */
};
/* Ends run_id (a full id or a unique prefix) where it stands, undoing
 * nothing: a run that waits at an approval, was interrupted (or whose
 * engine died) or whose rollback failed. In one transaction: the run's
 * lock (so no resume of it can cross), run.abandoned, run.finished
 * {status: abandoned}, the row's status, the lock's release. Refused with
 * nothing journaled: CAIRN_E_STATE for a run that finished or a record;
 * CAIRN_E_LOCKED when its engine still runs, a step it left unfinished
 * still has a live process, or another live run holds its workflow and
 * environment. Needs no workflow file: nothing of it runs. a is
 * borrowed; *out is filled on success. */
int engine_abandon(struct journal *j, const char *run_id,
                   const struct engine_abandon *a,
                   struct engine_abandoned *out, struct cairn_error *err);

/* cairn approve ENV --workflow W --release R: journals a promotion
 * approval record (events.h) and fills record_id; actor and user as for
 * engine_approve_run. */
int engine_approve_release(struct journal *j, const char *workflow,
                           const char *env, const char *release,
                           const char *actor, const char *user,
                           const char *comment,
                           char record_id[JOURNAL_RUN_ID_LEN],
                           struct cairn_error *err);

/* What the gates of an environment say about a release. The strings are
 * owned by the gate, of any length (a release is as long as `--set
 * release=` made it): engine_gate_release frees them. */
struct engine_gate {
  int refused;                     /* 1: a gate refused (see gate, reason) */
  char gate[16];                   /* "after" or "approvals" */
  char *reason;                    /* one line: which gate and why; NULL
                                      unless refused */
  char *release;                   /* the release checked */
  char parent[JOURNAL_RUN_ID_LEN]; /* the succeeded run in `after`, or "" */
  char *note;                      /* one line to show before running, or
                                      NULL: the after run ran another file
                                      of the same name; approval records
                                      not counted as their events do not
                                      authenticate */
};
/* Frees a gate's strings; the gate may then be checked again. */
void engine_gate_release(struct engine_gate *g);

/* The release live in (workflow, env): the newest succeeded run (a run
 * rolled back on request has status rolled_back; a failed one never
 * counts). 0 with *run filled (caller releases it), or CAIRN_E_NOTFOUND. */
int engine_live_run(struct journal *j, const char *workflow, const char *env,
                    struct journal_run *run, struct cairn_error *err);

/* Checks every gate of env for release (NULL: the release live in the
 * environment env comes after; none there is CAIRN_E_INVAL). Returns 0
 * with *g filled (g->refused says whether a gate refused); a negative
 * code for a bad env or a journal error, CAIRN_E_CHAIN when the run the
 * after gate would rely on does not agree with its row or its events do
 * not authenticate (journal_run_check). Journals nothing. *g is the
 * caller's to release (engine_gate_release), whatever the return, and
 * before it is checked again (the check starts from a cleared gate). */
int engine_promotion_check(struct journal *j, const struct engine_workflow *wf,
                           const char *env, const char *release,
                           struct engine_gate *g, struct cairn_error *err);

/* A release as promotion says it: "" (quoted) for the empty release of a
 * workflow without a release param, as --release "" gives it; else the
 * release itself. Borrowed; static storage for "". */
const char *engine_release_shown(const char *release);

/* Journals a refusal record with one promotion.refused event, and fills
 * record_id with its id. Everything else is borrowed. */
int engine_promotion_refuse(struct journal *j, const struct engine_workflow *wf,
                            const char *env, const struct engine_gate *g,
                            const char *actor,
                            char record_id[JOURNAL_RUN_ID_LEN],
                            struct cairn_error *err);

/* The longest name (with its NUL) of a step's files in its run folder,
 * before their suffixes (".log", ".service.log", ".pid", ...): under
 * NAME_MAX with room for those. */
#define ENGINE_STEP_FILE_MAX 201

/* The name a step's files take in its run folder, from its state path
 * (borrowed): the path with '/' as '.' ("infra/db" logs to infra.db.log),
 * or, for a path of ENGINE_STEP_FILE_MAX bytes or more, its first 183
 * bytes then '~' and 16 hex digits of its SHA-256,
 * so a long name still makes files, each its own. Into out (n bytes).
 * Returns 0, or CAIRN_E_INVAL when out is too small. */
int engine_step_file(const char *path, char *out, size_t n);

/* The folder of a run's logs: "<journal dir>/runs/<run id>" (out of size
 * n). */
int engine_run_dir(const struct journal *j, const char *run_id, char *out,
                   size_t n, struct cairn_error *err);

#endif
