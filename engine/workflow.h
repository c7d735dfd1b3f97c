/* The workflow model (what a YAML file says, checked) and its strict loader.
 *
 * Memory: a struct engine_workflow owns every string, array and json value
 * reachable from it; engine_workflow_destroy frees it all. Pointers handed
 * out by the lookup functions are borrowed from the workflow. */
#ifndef CAIRN_ENGINE_WORKFLOW_H
#define CAIRN_ENGINE_WORKFLOW_H

#include <jansson.h>
#include <regex.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

struct engine_pos {
  int line; /* 1-based; 0 when unknown */
  int col;  /* 1-based */
};

enum engine_kind {
  ENGINE_DO,
  ENGINE_PARALLEL,
  ENGINE_CHOICE,
  ENGINE_WAIT,
  ENGINE_SUCCEED,
  ENGINE_FAIL,
  ENGINE_APPROVAL, /* stops the run until enough `cairn approve` */
  ENGINE_USE,      /* runs a sub-workflow (inlined: see struct engine_frame) */
  ENGINE_MAP,      /* one action per item of a list */
};
/* "do", "parallel", ... */
const char *engine_kind_name(enum engine_kind k);

struct engine_retry {
  int attempts;         /* total attempts, >= 1 (1: no retry) */
  int64_t delay_ms;     /* before the 2nd attempt */
  double backoff;       /* delay multiplier per attempt, >= 1 */
  int64_t max_delay_ms; /* cap; 0: none */
};

/* One action: an adapter name and its inputs, with the policies around it.
 * `with` keeps template strings unrendered. */
struct engine_action {
  const char *adapter;       /* "exec": the registry's own name (static,
                                never freed) */
  json_t *with;              /* object, never NULL */
  struct engine_retry retry;
  int64_t timeout_ms;        /* 0: none */
  int idempotent;            /* 1, 0, or -1 for the adapter's default */
  struct engine_action *probe; /* NULL when none; a probe has no probe */
  struct engine_action *undo;  /* NULL when none; an undo has no undo
                                  (it may have a probe and idempotent) */
  int undo_default;          /* undo is the adapter's own (none written) */
  struct engine_action *ready; /* NULL when none: checked after the action
                                  succeeds; its failure fails the attempt */
  struct engine_pos pos;     /* of the `do` key */
};

struct engine_branch {
  char *name;
  struct engine_action action;
  struct engine_pos pos;
};

struct engine_when {
  char *expr;  /* a template expression, without the braces */
  char *next;
  struct engine_pos pos;
};

struct engine_state {
  char *name;
  enum engine_kind kind;
  struct engine_pos pos;
  char *description;           /* may be NULL */

  struct engine_action action; /* ENGINE_DO */

  struct engine_branch *branches; /* ENGINE_PARALLEL, in declaration order */
  size_t nbranches;

  struct engine_when *whens;   /* ENGINE_CHOICE */
  size_t nwhens;
  char *default_next;          /* ENGINE_CHOICE; may be NULL */

  int64_t wait_ms;             /* ENGINE_WAIT */

  /* ENGINE_APPROVAL: how many distinct actors must approve, and which
   * count (NULL: anyone). approvals 0 and approvers NULL mean "as the
   * run's environment says" (at least 1); see engine_approval_rule. */
  int approvals;
  char **approvers;
  size_t napprovers;

  char *next;                  /* NULL for terminals and choice */
  char *on_failure;            /* "rollback" (default), "fail" or a state;
                                  the default is one string all states
                                  share (engine_workflow_destroy knows) */
  struct engine_pos on_failure_pos;
  char *message;               /* ENGINE_FAIL: optional message */

  /* ENGINE_USE: the sub-workflow's params as written (templates kept) and
   * the frame its states run in (an index into wf->frames). */
  json_t *use_with;
  int use_frame;

  /* ENGINE_MAP: items (a template string or an array), the instance key
   * (a template, or NULL: the item or its index), how many instances run
   * at once (0: all), and the action each instance runs (in `action`). */
  json_t *map_items;
  char *map_key;
  int max_concurrency;
  char *map_concurrency;       /* or a template giving it, rendered on
                                  entry; NULL when written as a number */
  int map_fail_late;           /* fail_fast: false: a failed instance
                                  stops none of the others; the map fails
                                  once every instance has ended */

  int frame;                   /* the frame the state belongs to; -1: the
                                  top workflow */
};

/* A used workflow, inlined: its states are in the using workflow's
 * `states` under the names PREFIX + their own ("db/start"), so every
 * state of a run has one path and the runtime stays one state machine.
 * Inside a frame, `next`, `on_failure` and choices name full paths; an
 * on_failure of `rollback` or `fail`, and reaching a `fail` state, fail
 * the use state instead (its own on_failure applies); reaching a
 * `succeed` state ends the frame: the use state succeeds with the used
 * workflow's outputs. */
struct engine_frame {
  char *prefix;          /* "db/" or "a/db/" */
  char *start;           /* the full name of its first state */
  size_t use_state;      /* index of the use state in the top workflow */
  int parent;            /* frame of the use state; -1: the top */
  char *file;            /* the used file, absolute */
  char sha256[65];
  struct engine_param *params; /* the used workflow's (owned) */
  size_t nparams;
  json_t *outputs;       /* name -> template, rendered at its succeed;
                            object, never NULL */
};

enum engine_param_type {
  ENGINE_PARAM_STRING,
  ENGINE_PARAM_INTEGER,
  ENGINE_PARAM_NUMBER,
  ENGINE_PARAM_BOOLEAN,
  ENGINE_PARAM_LIST,
  ENGINE_PARAM_OBJECT,
};

/* The fewest characters of a secret value (a secret, a secret param's
 * value or default) cairn takes: it masks a secret wherever it occurs,
 * and a shorter one occurs everywhere, garbling the output and showing
 * itself where the *** fall. */
#define ENGINE_SECRET_MIN 4

/* The length in characters of secret value s (borrowed) when it is too
 * short to take (1 to ENGINE_SECRET_MIN - 1 characters), else 0 (an
 * empty value has nothing to mask). */
size_t engine_secret_too_short(const char *s);

/* CAIRN_E_INVAL naming what (say "secret TOK (from the environment)") when
 * s is too short to take (engine_secret_too_short), else 0. Both
 * borrowed. */
int engine_secret_length_check(const char *s, const char *what,
                               struct cairn_error *err);

struct engine_param {
  char *name;
  enum engine_param_type type;
  json_t *default_value; /* NULL: the param is required */
  char *pattern;         /* POSIX extended regex, or NULL */
  regex_t *re;           /* pattern compiled once (owned), or NULL */
  char *description;
  int secret;            /* its value is redacted everywhere, never
                            journaled (a string) */
  struct engine_pos pos;
};

struct engine_environment {
  char *name;
  json_t *vars;          /* object, never NULL */
  char *after;           /* may be NULL */
  int approvals;
  char **approvers;      /* only these actors count; NULL: anyone */
  size_t napprovers;
  struct engine_pos pos;
};

struct engine_workflow {
  char *file;            /* absolute path */
  char sha256[65];       /* hex SHA-256 of the file's bytes */
  char *name;
  char *description;
  struct engine_param *params;
  size_t nparams;
  char **secrets;        /* names */
  size_t nsecrets;
  struct engine_environment *envs;
  size_t nenvs;
  char *start;
  struct engine_state *states; /* in file order */
  size_t nstates;
  size_t states_mapped;  /* bytes of the huge pages states is in (a large
                            workflow's), 0: it is calloc'd */
  size_t *name_slots;    /* state name -> 1 + index into states: open
                            addressing, 0 empty (engine_workflow_state) */
  size_t nname_slots;    /* a power of two above twice nstates */
  json_t *branch_at;     /* "STATE/BRANCH" -> index of the branch in its
                            parallel state (lookups) */
  json_t *outputs;       /* `outputs:` name -> template; object */
  struct engine_frame *frames; /* used workflows, inlined (see above) */
  size_t nframes;
};

/* Loads and checks path strictly. On error returns CAIRN_E_WORKFLOW (or
 * CAIRN_E_IO for an unreadable file) with err->msg of the form
 *   "FILE:LINE:COL: error: WHAT (hint: HOW)"
 * (FILE as given). Checks: YAML well-formed; `cairn: 1`; unknown keys
 * (with a did-you-mean hint); duplicate keys; required keys (`name`,
 * `start`, `states`); exactly one kind per state; a transition (next,
 * on_failure, choice next/default, start) to a missing state; unreachable
 * states; states with no path to a terminal; bad durations; bad retry
 * values; bad param types/patterns/defaults; template syntax and
 * references (params.X must be declared, states.S must exist, vars.X must
 * be declared in some environment, secrets.X declared in `secrets`, run.id
 * and run.dir, env.ANY). *out is owned by the caller. */
int engine_workflow_load(struct engine_workflow **out, const char *path,
                         struct cairn_error *err);
/* The same from a buffer; `name` stands for the file in messages and
 * file stays as name; sha256 is of the buffer. */
int engine_workflow_load_buffer(struct engine_workflow **out, const char *name,
                                const char *buf, size_t len,
                                struct cairn_error *err);
void engine_workflow_destroy(struct engine_workflow *wf);

/* The heap a branch holds while it runs when its adapter gives no
 * heap_hint (http.check: 7.3 KiB a branch, measured). */
#define ENGINE_BRANCH_HEAP ((size_t)8 << 10)
/* Fan-outs narrower than this fit in the heap made resident at start. */
#define ENGINE_RESERVE_BRANCHES 32

/* About the heap the branches of parallel state st hold while they run
 * (their adapters' heap_hint, else ENGINE_BRANCH_HEAP, each): what the
 * engine makes room for before it starts them. 0 for any other state and
 * for fewer than ENGINE_RESERVE_BRANCHES branches. */
size_t engine_state_branches_heap(const struct engine_state *st);

const struct engine_state *engine_workflow_state(
    const struct engine_workflow *wf, const char *name);
const struct engine_environment *engine_workflow_env(
    const struct engine_workflow *wf, const char *name);
/* Whether env (NULL: none given) is an environment a run of wf can use:
 * 0, or CAIRN_E_INVAL with a message that names the environments wf
 * declares ("workflow 'W' has no environment 'X' (hint: its environments
 * are dev, staging, prod)"; "declares environments: choose one with
 * --env (dev, staging, prod)" when env is NULL; or, for a workflow that
 * declares none, "leave out --env"). wf and env are borrowed. */
int engine_workflow_env_check(const struct engine_workflow *wf,
                              const char *env, struct cairn_error *err);
const struct engine_param *engine_workflow_param(
    const struct engine_workflow *wf, const char *name);
/* The param called name among params[0..n) (a frame's), or NULL. */
const struct engine_param *engine_param_find(const struct engine_param *params,
                                             size_t n, const char *name);

/* What an approval state st (NULL: a promotion to env) needs: *need
 * distinct actors, only those of *approvers (n of them; NULL: anyone).
 * The state's own settings win; else the environment's (env may be NULL
 * or unknown); at least 1. *approvers is borrowed from wf. */
void engine_approval_rule(const struct engine_workflow *wf,
                          const struct engine_state *st, const char *env,
                          int *need, char *const **approvers, size_t *n);

/* Checks value against p's type and pattern (a use state's `with`),
 * converting a string as --set would; *out: the value to use (a new
 * reference). CAIRN_E_INVAL naming the param when it does not fit. */
int engine_param_value(const struct engine_param *p, json_t *value,
                       json_t **out, struct cairn_error *err);

/* The state a journal path belongs to: the state of that name (a used
 * workflow's states hold '/'), else, inside an instance "M/KEY" of a map
 * over a used workflow, the state of "M/..." without the KEY, else the
 * state before the path's last '/', of which it is a branch or map
 * instance. *key (may be NULL) gets what
 * follows that '/' (pointing into path), NULL for a state's own path or a
 * path without '/'. NULL when no state matches. Borrowed from wf. */
const struct engine_state *engine_workflow_path_state(
    const struct engine_workflow *wf, const char *path, const char **key);

/* The action a journal path runs: a do state's ("S"), a branch's ("S/B"),
 * a map instance's ("M/KEY", not over a used workflow), also inside used
 * workflows; NULL when the path runs none (a choice, a use state, a
 * path of no state). Borrowed from wf. */
const struct engine_action *engine_workflow_action_at(
    const struct engine_workflow *wf, const char *path);

/* The length of the outermost instance of a map over a used workflow
 * that path lies in ("M/KEY" of "M/KEY/db/start", or of "M/KEY" itself),
 * 0 when it lies in none. */
size_t engine_workflow_instance_len(const struct engine_workflow *wf,
                                    const char *path);

/* The frame of state st, or NULL for the top workflow (borrowed). */
const struct engine_frame *engine_workflow_frame(
    const struct engine_workflow *wf, const struct engine_state *st);

/* The secrets a run of wf would start with, checked before anything is
 * journaled: each declared secret set in the environment, and each
 * secret param of params (engine_workflow_params' object), must not be
 * too short (engine_secret_length_check). 0, or CAIRN_E_INVAL. */
int engine_secrets_check(const struct engine_workflow *wf,
                         const json_t *params, struct cairn_error *err);

/* Builds the params object for a run: defaults, then each "name=value" of
 * sets (converted to the declared type, checked against the pattern).
 * Unknown names, missing required params and bad values are
 * CAIRN_E_INVAL with a message naming the param. *out owned by caller. */
int engine_workflow_params(const struct engine_workflow *wf,
                           const char *const *sets, size_t nsets,
                           json_t **out, struct cairn_error *err);

#endif
