/* Resume: rebuild a run from its events alone and carry on from where it
 * stopped. Decides everything (what to stop, re-run, probe or ask about)
 * before journaling anything, so a refused resume leaves no trace. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/proc.h"
#include "engine/runtime.h"

/* What resume will do with one action of the current state. */
enum plan {
  PLAN_DONE_OK,    /* finished and succeeded */
  PLAN_FAILED,     /* finished and failed for good */
  PLAN_FRESH,      /* never entered: resolve and start attempt 1 */
  PLAN_NEXT,       /* start the next attempt */
  PLAN_PROBE,      /* interrupted; its probe decides */
  PLAN_ASSUME_OK,  /* interrupted; the user said it took effect */
  PLAN_ASSUME_BAD, /* interrupted; the user said it did not */
  PLAN_ASK,        /* interrupted; a person must decide */
  PLAN_CANCELLED,  /* an instance of a map over a used workflow that
                      ended cancelled */
  PLAN_RESUME,     /* an instance started and unfinished: its own cursor
                      carries on where it is */
};

/* Failed attempts per path since its last entry (the retry budget), and
 * where each instance of a map over a used workflow is. */
struct failures {
  json_t *count; /* path -> integer */
  json_t *pos;   /* instance "M/KEY" -> path of its last transition's to */
  const struct engine_workflow *wf;
};

static int count_failures(const struct journal_event *ev, void *ud)
{
  struct failures *f = ud;
  if (strcmp(ev->kind, JOURNAL_EV_TRANSITION) == 0) {
    const char *to = json_string_value(json_object_get(ev->payload, "to"));
    size_t il = to ? engine_workflow_instance_len(f->wf, to) : 0;
    char ip[320];
    if (il > 0 && il < sizeof ip && to[il] == '/') {
      snprintf(ip, sizeof ip, "%.*s", (int)il, to);
      json_object_set_new(f->pos, ip, json_string(to));
    }
  } else if (strcmp(ev->kind, JOURNAL_EV_STATE_ENTERED) == 0) {
    json_object_set_new(f->count, ev->state, json_integer(0));
  } else if (strcmp(ev->kind, JOURNAL_EV_ACTION_FINISHED) == 0 ||
             strcmp(ev->kind, JOURNAL_EV_DECISION_ASSUMED) == 0) {
    const char *o = json_string_value(json_object_get(ev->payload, "outcome"));
    if (o && (strcmp(o, "failed") == 0 || strcmp(o, "timed_out") == 0)) {
      json_int_t n = json_integer_value(json_object_get(f->count, ev->state));
      json_object_set_new(f->count, ev->state, json_integer(n + 1));
    }
  }
  return 0;
}

/* Does /proc/PID/environ hold both NUL-terminated entries, and no
 * CAIRN_ENTRY_SEQ but entry (if any: a child of an older cairn has none)?
 * A loop enters a state again under the same path: the entry tells this
 * visit's child from one an earlier visit left behind (a daemon). */
static int environ_has(const char *pid, const char *a, const char *b,
                       const char *entry)
{
  static const char seq[] = "CAIRN_ENTRY_SEQ=";
  char path[64], buf[65536];
  int fd, found_a = 0, found_b = 0, other = 0;
  ssize_t n;

  snprintf(path, sizeof path, "/proc/%s/environ", pid);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  for (char *p = buf; p < buf + n; p += strlen(p) + 1) {
    found_a |= strcmp(p, a) == 0;
    found_b |= strcmp(p, b) == 0;
    other |= entry != NULL && strncmp(p, seq, sizeof seq - 1) == 0 &&
             strcmp(p, entry) != 0;
  }
  return found_a && found_b && !other;
}

/* Calls fn for each live process but this one whose environment carries
 * the markers every action's environment has (CAIRN_RUN_ID, CAIRN_STATE)
 * for the visit of path of run_id that entry_seq entered (0: any), until
 * fn returns nonzero; returns that, or 0. */
static int each_marked(const char *run_id, const char *path,
                       int64_t entry_seq,
                       int (*fn)(int pid, int pgid, int64_t start, void *ud),
                       void *ud)
{
  char a[128], b[400], c[64];
  DIR *d = opendir("/proc");
  struct dirent *de;
  int rc = 0;

  if (d == NULL)
    return 0;
  snprintf(a, sizeof a, "CAIRN_RUN_ID=%s", run_id);
  snprintf(b, sizeof b, "CAIRN_STATE=%s", path);
  snprintf(c, sizeof c, "CAIRN_ENTRY_SEQ=%" PRId64, entry_seq);
  while (rc == 0 && (de = readdir(d)) != NULL) {
    if (de->d_name[0] < '1' || de->d_name[0] > '9')
      continue;
    if (!environ_has(de->d_name, a, b, entry_seq > 0 ? c : NULL))
      continue;
    int pid = atoi(de->d_name);
    int64_t start = 0;
    pid_t pgid = getpgid(pid);
    if (pid == getpid() || pgid <= 0 ||
        cairn_proc_start_time(pid, &start) != 0)
      continue;
    rc = fn(pid, (int)pgid, start, ud);
  }
  closedir(d);
  return rc;
}

struct stop_ctx {
  int64_t grace_ms;
  int keep_pgid;
};

static int stop_one(int pid, int pgid, int64_t start, void *ud)
{
  const struct stop_ctx *c = ud;
  if (pgid != c->keep_pgid)
    cairn_proc_stop_group(pgid, pid, start, c->grace_ms);
  return 0;
}

static int first_pid(int pid, int pgid, int64_t start, void *ud)
{
  (void)pgid;
  (void)start;
  (void)ud;
  return pid;
}

/* The engine died after spawning a child but before journaling its pid:
 * find the child by its markers and stop its group. */
static void stop_marked(const char *run_id, const struct journal_step *s,
                        int64_t grace_ms, int keep_pgid)
{
  struct stop_ctx c = {grace_ms, keep_pgid};
  each_marked(run_id, s->path, s->entered_seq, stop_one, &c);
}

/* A live process of the unfinished step s of run_id (by its journaled
 * pid, else by its markers), or 0. */
static int step_pid(const char *run_id, const struct journal_step *s)
{
  char boot[40];
  json_t *sp = s->spawn;
  const char *b = json_string_value(json_object_get(sp, "boot_id"));
  int pid = (int)json_integer_value(json_object_get(sp, "pid"));

  cairn_proc_boot_id(boot);
  if (pid > 0 && b && strcmp(b, boot) == 0 &&
      cairn_proc_alive(pid, json_integer_value(
                                json_object_get(sp, "proc_start"))))
    return pid;
  return each_marked(run_id, s->path, s->entered_seq, first_pid, NULL);
}

const struct journal_step *engine__live_step(const struct journal_replay *rp,
                                             int *pid)
{
  for (size_t i = 0; i < rp->nsteps; i++) {
    const struct journal_step *s = &rp->steps[i];
    if ((s->phase == JOURNAL_PHASE_STARTED ||
         s->phase == JOURNAL_PHASE_INTERRUPTED) &&
        (*pid = step_pid(rp->run_id, s)) > 0)
      return s;
  }
  *pid = 0;
  return NULL;
}

int engine_changed(const struct engine_workflow *wf, const char *run_id,
                   const char *run_sha256, const char *why, const char *then,
                   struct cairn_error *err)
{
  if (strcmp(wf->sha256, run_sha256 ? run_sha256 : "") == 0)
    return 0;
  /* the run's hash covers the used files too, and only as one */
  return cairn_error_set(err, CAIRN_E_CHANGED,
                         "workflow file '%s'%s changed since run %s "
                         "started%s (hint: review the change, then %s with "
                         "--allow-changed)", wf->file,
                         wf->nframes ? " (or a workflow file it uses)" : "",
                         run_id, why, then);
}

int engine_resume_status(const char *run_id, const char *status, int planned,
                         struct cairn_error *err)
{
  if (strcmp(status, JOURNAL_STATUS_APPROVED) == 0 ||
      strcmp(status, JOURNAL_STATUS_REFUSED) == 0)
    return cairn_error_set(err, CAIRN_E_STATE,
                           "%s is a promotion record (%s), not a run: there "
                           "is nothing to resume or roll back", run_id,
                           status);
  if (strcmp(status, JOURNAL_STATUS_SUCCEEDED) == 0 ||
      strcmp(status, JOURNAL_STATUS_FAILED) == 0 ||
      strcmp(status, JOURNAL_STATUS_ROLLED_BACK) == 0 ||
      strcmp(status, JOURNAL_STATUS_ABANDONED) == 0 ||
      (strcmp(status, JOURNAL_STATUS_ROLLBACK_FAILED) == 0 && !planned))
    return cairn_error_set(err, CAIRN_E_STATE,
                           "run %s already finished (%s): nothing to resume",
                           run_id, status);
  return 0;
}

/* ---- a run that newer runs replaced ---- */

struct newer {
  const struct journal_run *run;
  char id[JOURNAL_RUN_ID_LEN];
  char release[256];
};

static int find_newer(const struct journal_run *r, void *ud)
{
  struct newer *n = ud;
  /* newest first: the first one started after the run is the live one */
  if (r->created_ms < n->run->created_ms ||
      (r->created_ms == n->run->created_ms &&
       strcmp(r->id, n->run->id) <= 0))
    return 1;
  memcpy(n->id, r->id, sizeof n->id);
  snprintf(n->release, sizeof n->release, "%s", r->release);
  return 1;
}

int engine_superseded(struct journal *j, const char *run_id,
                       const char *doing, int allow,
                       char newer[JOURNAL_RUN_ID_LEN], struct cairn_error *err)
{
  struct journal_run run;
  int rc = journal_run_get(j, run_id, &run, err);
  newer[0] = '\0';
  if (rc != 0)
    return rc;
  struct newer n = {&run, "", ""};
  struct journal_run_filter f = {run.workflow, run.env, NULL,
                                 JOURNAL_STATUS_SUCCEEDED, run.created_ms, 1};
  rc = journal_run_foreach(j, &f, find_newer, &n, err);
  if (rc == 1)
    rc = 0;
  if (rc == 0)
    memcpy(newer, n.id, sizeof n.id);
  /* one left unfinished can be closed instead; a finished one is closed */
  int open = strcmp(run.status, JOURNAL_STATUS_SUCCEEDED) != 0 &&
             strcmp(run.status, JOURNAL_STATUS_FAILED) != 0;
  if (rc == 0 && n.id[0] != '\0' && !allow)
    rc = cairn_error_set(
        err, CAIRN_E_STATE,
        "run %s was replaced: run %s of '%s'%s%s, started after it, has "
        "succeeded%s%s%s, and %s (hint: 'cairn status' shows what is live; "
        "--allow-superseded if that is what you want%s%s%s)", run_id, n.id,
        run.workflow, *run.env ? " in " : "", run.env,
        *n.release ? " (release " : "", n.release, *n.release ? ")" : "",
        doing, open ? ", or 'cairn abandon " : "", open ? run.id : "",
        open ? "' ends it where it stands" : "");
  journal_run_release(&run);
  return rc;
}

int engine__lock_orphans(struct journal *j, const char *workflow,
                         const char *env, const char *run_id,
                         struct cairn_error *err)
{
  struct journal_lock_holder h;
  struct journal_replay rp;
  int alive = 0, rc = 0;

  if (journal_lock_get(j, workflow, env, &h, &alive, NULL) != 0 || alive ||
      strcmp(h.run_id, run_id) == 0 ||
      journal_replay(j, h.run_id, &rp, NULL) != 0)
    return 0; /* free, held by a live engine (the lock says so), or ours */
  int pid = 0;
  const struct journal_step *s = engine__live_step(&rp, &pid);
  if (s != NULL)
    rc = cairn_error_set(
        err, CAIRN_E_LOCKED,
        "workflow '%s'%s%s%s is locked by run %s, whose engine is gone "
        "but whose step '%s' still runs (pid %d) (hint: 'cairn resume %s' "
        "carries that run on, stopping or adopting it; or wait until it "
        "ends)",
        workflow, *env ? " env '" : "", env, *env ? "'" : "", h.run_id,
        s->path, pid, h.run_id);
  journal_replay_release(&rp);
  return rc;
}

/* Makes sure the process group an unfinished attempt started is gone,
 * but for keep_pgid (> 0: a service the re-run adopts). */
static void stop_stale(const char *run_id, const struct journal_step *step,
                       int64_t grace_ms, int keep_pgid)
{
  char boot[40];
  json_t *sp = step->spawn;
  /* The journaled pid may be an earlier attempt's when the engine died
   * before journaling the last spawn: the markers find that one too. */
  stop_marked(run_id, step, grace_ms, keep_pgid);
  if (sp == NULL)
    return;
  cairn_proc_boot_id(boot);
  const char *b = json_string_value(json_object_get(sp, "boot_id"));
  if (b && *boot && strcmp(b, boot) != 0)
    return; /* another boot: every process of it is gone */
  int pid = (int)json_integer_value(json_object_get(sp, "pid"));
  int pgid = (int)json_integer_value(json_object_get(sp, "pgid"));
  int64_t start = json_integer_value(json_object_get(sp, "proc_start"));
  if (pid > 0 && pgid > 0 && pgid != keep_pgid)
    cairn_proc_stop_group(pgid, pid, start, grace_ms);
}

int engine__has_redaction(json_t *v)
{
  size_t i;
  const char *k;
  json_t *x;
  if (json_is_string(v))
    return strstr(json_string_value(v), "***") != NULL;
  if (json_is_array(v)) {
    json_array_foreach(v, i, x) if (engine__has_redaction(x)) return 1;
  } else if (json_is_object(v)) {
    json_object_foreach(v, k, x) if (engine__has_redaction(x)) return 1;
  }
  return 0;
}

void engine__rebuild_outputs(const struct engine_workflow *wf, json_t *states,
                             const struct journal_replay *rp)
{
  for (size_t i = 0; i < rp->nsteps; i++) {
    const struct journal_step *s = &rp->steps[i];
    if (s->phase != JOURNAL_PHASE_SUCCEEDED ||
        strncmp(s->path, JOURNAL_UNDO_PREFIX, strlen(JOURNAL_UNDO_PREFIX)) == 0)
      continue;
    /* a state's own path, else a branch or instance of the state before
     * the last '/' (kept there even when the workflow lost that state) */
    const char *key;
    engine_workflow_path_state(wf, s->path, &key);
    if (key == NULL) {
      json_object_set_new(states, s->path,
                          json_pack("{s:o}", "output",
                                    s->outputs ? json_incref(s->outputs)
                                               : json_object()));
      continue;
    }
    char parent[320];
    snprintf(parent, sizeof parent, "%.*s", (int)(key - 1 - s->path),
             s->path);
    json_t *st = json_object_get(states, parent);
    if (st == NULL) {
      st = json_pack("{s:{}}", "output");
      json_object_set_new(states, parent, st);
    }
    json_object_set_new(json_object_get(st, "output"), key,
                        s->outputs ? json_incref(s->outputs) : json_object());
  }
}

/* One line of execution being resumed: the run's own, or an instance of
 * a map over a used workflow (cx). */
struct spot {
  const struct engine_state *st;
  struct engine__sx *sx;
  const struct journal_step *top; /* the entry of sx's state, or NULL */
  enum plan *plans;               /* one per task of sx */
  struct engine__cursor *cx;      /* NULL: the run's own */
};

/* The steps resume cannot decide alone (neither idempotent nor probed),
 * asked about in one question, and which of the operator's --assume
 * answers decided something. */
struct question {
  int n;                  /* steps to ask about */
  char first[256];        /* the first one's path, */
  int first_attempt;      /* its attempt */
  char first_next[320];   /* and where it goes on to ("" at an end) */
  char list[600];         /* "'P' (attempt N, then Q)", ... the first few
                             (with the command twice, within
                             res->message) */
  int list_full;          /* list stopped short */
  const struct engine_options *opt;
  unsigned char *used;    /* per opt->assume_steps[i]: it decided a step */
  int generic_used;       /* opt->assume decided a step */
  int own_asked;          /* steps that needed asking, each decided by
                             its own PATH=ANSWER */
};

/* The answer --assume gives for step path: a PATH=VALUE of its own (any
 * interrupted step; *own set), else the plain one (only for a step that
 * needs asking), else NULL. */
static const char *answer_for(struct question *q, const char *path,
                              int *own)
{
  size_t n = strlen(path);
  *own = 0;
  for (size_t i = 0; i < q->opt->nassume_steps; i++) {
    const char *a = q->opt->assume_steps[i];
    if (strncmp(a, path, n) == 0 && a[n] == '=') {
      q->used[i] = 1;
      *own = 1;
      return a + n + 1;
    }
  }
  return q->opt->assume;
}

/* Notes that step path (attempt, going on to next, "" at an end) needs a
 * person's decision (res->state the first one's path). */
static void question_add(struct question *q, struct engine__rt *rt,
                         const char *path, int attempt, const char *next)
{
  size_t len = strlen(q->list), dlen = strlen(rt->res->decide);
  /* whole paths only: a script decides each one by name */
  if (!rt->res->decide_more &&
      dlen + strlen(path) + 2 <= sizeof rt->res->decide)
    snprintf(rt->res->decide + dlen, sizeof rt->res->decide - dlen, "%s\n",
             path);
  else
    rt->res->decide_more = 1;
  if (q->n++ == 0) {
    snprintf(rt->res->state, sizeof rt->res->state, "%s", path);
    snprintf(q->first, sizeof q->first, "%s", path);
    snprintf(q->first_next, sizeof q->first_next, "%s", next);
    q->first_attempt = attempt;
  }
  if (q->list_full)
    return;
  if (len + strlen(path) + strlen(next) + 40 >= sizeof q->list) {
    q->list_full = 1;
    return;
  }
  snprintf(q->list + len, sizeof q->list - len, "%s'%s' (attempt %d%s%s)",
           len ? ", " : "", path, attempt, next[0] ? ", then " : "", next);
}

/* The question, said in ask: the first step alone when it is the only
 * one; else every step (the first few), and that a plain --assume
 * answers for all of them. Both commands it suggests repeat the
 * PATH=ANSWER decisions already given: nothing was journaled. */
static void question_say(const struct question *q, const char *run_id,
                         char *ask, size_t nask)
{
  char cmd[500];
  size_t len = (size_t)snprintf(cmd, sizeof cmd, "cairn resume %s", run_id);

  for (size_t i = 0; i < q->opt->nassume_steps; i++) {
    size_t more = strlen(" --assume ") + strlen(q->opt->assume_steps[i]);
    if (len + more + 1 > sizeof cmd) {
      /* never half an answer: a command copied must parse */
      snprintf(cmd, sizeof cmd, "cairn resume %s [your --assume PATH=... "
               "answers]", run_id);
      break;
    }
    len += (size_t)snprintf(cmd + len, sizeof cmd - len, " --assume %s",
                            q->opt->assume_steps[i]);
  }
  if (q->n == 1 && strncmp(q->first, JOURNAL_UNDO_PREFIX,
                           strlen(JOURNAL_UNDO_PREFIX)) == 0) {
    snprintf(ask, nask,
             "undo step '%s' was running (attempt %d) when the run stopped; "
             "it is not idempotent and has no probe, so cairn cannot tell "
             "whether it took effect: check, then run '%s --assume "
             "succeeded' to count it as done and go on with the rollback, "
             "or '%s --assume failed' to end the rollback as "
             "rollback_failed (a later 'cairn resume' runs the undo again)",
             q->first, q->first_attempt, cmd, cmd);
    return;
  }
  if (q->n == 1) {
    snprintf(ask, nask,
             "state '%s' was running (attempt %d) when the run stopped; "
             "it is not idempotent and has no probe, so cairn cannot "
             "tell whether it took effect: check, then run '%s --assume "
             "succeeded' to count it as done and go on%s%s, or '%s "
             "--assume failed' to treat the attempt as failed (retry or "
             "on_failure)",
             q->first, q->first_attempt, cmd, q->first_next[0] ? " to " : "",
             q->first_next, cmd);
    return;
  }
  snprintf(ask, nask,
           "%d steps were running when the run stopped, none of them "
           "idempotent or with a probe, so cairn cannot tell whether they "
           "took effect: %s%s. Check each, then run '%s --assume "
           "succeeded' to count them all as done, '%s --assume failed' to "
           "treat each attempt as failed (retry or on_failure), or decide "
           "them one by one with '--assume PATH=succeeded' or '--assume "
           "PATH=failed' (repeatable)",
           q->n, q->list, q->list_full ? ", and more" : "", cmd, cmd);
}

/* Decides what resume does with each task of sp->sx (sp->plans), its
 * inputs and attempts restored from the journal; each action that needs
 * a person's decision is added to q. */
static int decide(struct engine__rt *rt, const struct journal_replay *rp,
                  const struct failures *fails, struct spot *sp, int undoing,
                  struct question *q, struct cairn_error *err)
{
  struct engine__sx *sx = sp->sx;
  const struct engine_state *st = sp->st;
  int instances = st && st->kind == ENGINE_MAP && st->use_frame >= 0 &&
                  !undoing;

  for (size_t i = 0; sx && i < sx->ntasks; i++) {
    struct engine__task *t = &sx->tasks[i];
    const struct journal_step *s = sp->top ? journal_replay_step(rp, t->path)
                                           : NULL;
    if (s == NULL) {
      sp->plans[i] = PLAN_FRESH;
      continue;
    }
    if (instances) {
      /* an instance: its state.finished says how it ended */
      int cancelled = json_is_true(json_object_get(s->finished,
                                                   "cancelled"));
      sp->plans[i] = s->phase == JOURNAL_PHASE_SUCCEEDED ? PLAN_DONE_OK
                     : s->phase == JOURNAL_PHASE_FAILED
                         ? (cancelled ? PLAN_CANCELLED : PLAN_FAILED)
                         : PLAN_RESUME;
      if (s->phase == JOURNAL_PHASE_SUCCEEDED) {
        /* as rebuilt (a secret rendered again), else as journaled */
        json_t *o = json_object_get(json_object_get(json_object_get(
            json_object_get(rt->scope, "states"), sx->path), "output"),
            t->path + strlen(sx->path) + 1);
        t->outputs = o ? json_incref(o)
                       : s->outputs ? json_incref(s->outputs)
                                    : json_object();
      }
      continue;
    }
    t->attempt = s->attempt;
    t->failures = (int)json_integer_value(json_object_get(fails->count,
                                                          t->path));
    if (s->inputs && !engine__has_redaction(s->inputs)) {
      t->inputs = json_incref(s->inputs);
    } else if ((undoing ? engine__undo_resolve(rt, t,
                                               json_array_get(rt->plan,
                                                              rt->plan_next),
                                               err)
                        : engine__task_resolve(t, err)) != 0) {
      char msg[CAIRN_ERRMSG_MAX];
      snprintf(msg, sizeof msg, "%s", err->msg);
      return cairn_error_set(err, err->code ? err->code : CAIRN_E_TEMPLATE,
                             "cannot resolve the inputs of '%s' of run %s: "
                             "%s (hint: fix the workflow, then resume with "
                             "--allow-changed)", t->path, rt->run_id, msg);
    }
    switch (s->phase) {
    case JOURNAL_PHASE_SUCCEEDED:
      sp->plans[i] = PLAN_DONE_OK;
      t->outputs = s->outputs ? json_incref(s->outputs) : json_object();
      break;
    case JOURNAL_PHASE_FAILED:
      sp->plans[i] = t->failures < t->action->retry.attempts ? PLAN_NEXT
                                                              : PLAN_FAILED;
      break;
    case JOURNAL_PHASE_ENTERED:
    case JOURNAL_PHASE_RETRY_WAIT:
      sp->plans[i] = PLAN_NEXT;
      break;
    case JOURNAL_PHASE_STARTED:
    case JOURNAL_PHASE_INTERRUPTED:
    case JOURNAL_PHASE_CANCELLED: {
      int own = 0;
      const char *a = s->attempt ? answer_for(q, t->path, &own) : NULL;
      int needs = s->attempt && !engine__task_idempotent(t) &&
                  t->action->probe == NULL;
      if (s->attempt == 0 || engine_not_started(s)) {
        sp->plans[i] = PLAN_NEXT;
      } else if (a && (own || needs)) {
        /* a plain --assume answers only the question asked; a step's
         * own PATH=VALUE decides it whatever it is */
        sp->plans[i] = strcmp(a, "succeeded") == 0 ? PLAN_ASSUME_OK
                                                    : PLAN_ASSUME_BAD;
        q->generic_used |= !own;
        q->own_asked += own && needs;
      } else if (engine__task_idempotent(t)) {
        sp->plans[i] = PLAN_NEXT;
      } else if (t->action->probe) {
        sp->plans[i] = PLAN_PROBE;
      } else {
        char next[320] = "";
        /* inside an instance (rt->cx), its next is M/KEY/S, not M/S */
        if (!undoing && st->next)
          engine__jpath(rt, st->next, next, sizeof next);
        sp->plans[i] = PLAN_ASK;
        question_add(q, rt, t->path, s->attempt, next);
      }
      break;
    }
    }
  }
  return 0;
}

/* Makes sure nothing of sp from the dead engine still runs before
 * anything is started again (pid and start time checked: a reused pid is
 * never signalled). */
/* The group of the child that unfinished step s of task t started, when
 * that child is meant to outlive the step (a service), is alive as
 * journaled, and t runs again: the re-run adopts it (its pid file names
 * it) rather than a stop and a restart. 0 otherwise: a child whose pid
 * was never journaled is stopped as any other. */
static int adoptable(const struct engine__task *t,
                     const struct journal_step *s, enum plan plan)
{
  char boot[40];
  const char *b;
  int pgid;

  if (plan != PLAN_NEXT || t->desc == NULL || !t->desc->adopts ||
      s->spawn == NULL)
    return 0;
  cairn_proc_boot_id(boot);
  b = json_string_value(json_object_get(s->spawn, "boot_id"));
  pgid = (int)json_integer_value(json_object_get(s->spawn, "pgid"));
  if (b == NULL || strcmp(b, boot) != 0 || pgid <= 0 ||
      !cairn_proc_alive(
          (int)json_integer_value(json_object_get(s->spawn, "pid")),
          json_integer_value(json_object_get(s->spawn, "proc_start"))))
    return 0;
  return pgid;
}

static void stop_spot(const struct journal_replay *rp, const struct spot *sp,
                      const char *run_id, int64_t grace_ms)
{
  for (size_t i = 0; sp->sx && i < sp->sx->ntasks; i++) {
    const struct engine__task *t = &sp->sx->tasks[i];
    const struct journal_step *s = journal_replay_step(rp, t->path);
    if (t->inst == NULL && s &&
        (s->phase == JOURNAL_PHASE_STARTED ||
         s->phase == JOURNAL_PHASE_INTERRUPTED))
      stop_stale(run_id, s, grace_ms, adoptable(t, s, sp->plans[i]));
  }
}

/* Sets up the cursor of instance t of map state m (started, unfinished)
 * at the state its last transition entered, and decides what it does
 * there (sp). */
static int instance_spot(struct engine__rt *rt,
                         const struct journal_replay *rp,
                         const struct failures *fails, struct engine__task *t,
                         struct spot *sp, struct question *q,
                         struct cairn_error *err)
{
  const struct engine_state *m = t->sx->st;
  const struct engine_frame *f = &rt->wf->frames[m->use_frame];
  struct engine__cursor *cx = calloc(1, sizeof *cx);
  const char *pos = json_string_value(json_object_get(fails->pos, t->path));
  int rc = 0;

  if (cx == NULL)
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  cx->owner = t;
  cx->up = t->sx->cx;
  snprintf(cx->pfx, sizeof cx->pfx, "%s/", t->path);
  cx->frames = json_incref(json_object_get(rt->inst, t->path));
  if (cx->frames == NULL) {
    free(cx);
    return cairn_error_set(err, CAIRN_E_JOURNAL, "the entry of instance "
                           "'%s' of run %s has no params", t->path,
                           rt->run_id);
  }
  t->inst = cx;
  t->phase = ENGINE__TASK_RUNNING;
  sp->cx = cx;
  sp->st = pos ? engine_workflow_path_state(rt->wf, pos, NULL)
               : engine_workflow_state(rt->wf, f->start);
  /* one of the used workflow's states (or of one it uses): a state that
   * --allow-changed removed can resolve to the map itself by its path,
   * and the instance would spin there */
  int fr = sp->st ? sp->st->frame : -1;
  while (fr >= 0 && fr != m->use_frame)
    fr = rt->wf->frames[fr].parent;
  if (fr < 0)
    sp->st = NULL;
  if (sp->st == NULL)
    return cairn_error_set(err, CAIRN_E_CHANGED, "instance '%s' of run %s "
                           "is in state '%s', which the workflow no longer "
                           "has", t->path, rt->run_id, pos ? pos : "?");
  rt->cx = cx;
  sp->sx = engine__sx_new(rt, sp->st);
  if (sp->sx == NULL) {
    rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  } else {
    sp->top = journal_replay_step(rp, sp->sx->path);
    if (sp->top && sp->st->kind == ENGINE_MAP && sp->top->inputs)
      rc = engine__map_rebuild(rt, sp->sx, sp->top, err);
  }
  if (rc == 0 && (sp->plans = calloc(sp->sx->ntasks + 1,
                                     sizeof *sp->plans)) == NULL)
    rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  if (rc == 0)
    rc = decide(rt, rp, fails, sp, 0, q, err);
  rt->cx = NULL;
  return rc;
}

/* Journals every --assume decision of the spots (main, then the
 * instances) before any is carried on: a failure carried on first would
 * cancel its siblings, or end a map before its later instances are
 * carried on, and an answer the operator gave must be journaled as given
 * (its undo planned when it said succeeded). */
static void journal_decisions(struct engine__rt *rt, struct spot *sp,
                              struct spot *isp, size_t nisp,
                              const char *actor)
{
  for (size_t k = 0; k <= nisp; k++) {
    struct spot *p = k == 0 ? sp : &isp[k - 1];
    for (size_t i = 0; p->sx && i < p->sx->ntasks; i++) {
      struct engine__task *t = &p->sx->tasks[i];
      if (p->plans[i] != PLAN_ASSUME_OK && p->plans[i] != PLAN_ASSUME_BAD)
        continue;
      rt->cx = p->cx;
      engine__emit(rt, JOURNAL_EV_DECISION_ASSUMED, t->path, t->attempt,
                   json_pack("{s:s,s:s}", "outcome",
                             p->plans[i] == PLAN_ASSUME_OK ? "succeeded"
                                                           : "failed",
                             "actor", actor));
    }
  }
  rt->cx = NULL;
}

/* Carries sp on: settles the tasks decided, starts the others (a map
 * what never started, within its limit), or enters its state again. */
static void carry_on(struct engine__rt *rt, const struct journal_replay *rp,
                     struct spot *sp)
{
  const struct engine_state *st = sp->st;
  const struct journal_step *top = sp->top;
  struct engine__sx **slot = engine__slot(rt, sp->cx);
  struct engine__sx *x = sp->sx;
  enum plan *plans = sp->plans;

  rt->cx = sp->cx;
  *slot = x;
  sp->sx = NULL;
  if (top == NULL) {
    /* Crashed right after the transition into it was journaled. */
    engine__sx_destroy(x);
    *slot = NULL;
    engine__enter(rt, st->name);
  } else if (st->kind == ENGINE_DO || st->kind == ENGINE_PARALLEL ||
             (st->kind == ENGINE_MAP && top->inputs)) {
    int use_map = st->kind == ENGINE_MAP && st->use_frame >= 0;
    /* A map starts what never started once the others are settled. */
    x->starting = st->kind == ENGINE_MAP;
    /* First settle the ones that are already decided, then start. */
    for (size_t i = 0; i < x->ntasks && *slot == x; i++) {
      struct engine__task *t = &x->tasks[i];
      switch (plans[i]) {
      case PLAN_DONE_OK:
        engine__task_done(t, 1, 0, NULL);
        break;
      case PLAN_CANCELLED:
        engine__task_done(t, 0, 1, "cancelled");
        break;
      case PLAN_FAILED: {
        const struct journal_step *s = journal_replay_step(rp, t->path);
        const char *e = s && s->finished
            ? json_string_value(json_object_get(s->finished, "error"))
            : NULL;
        cairn_msg_set(&t->error, "%s", e ? e : "failed");
        engine__task_done(t, 0, 0, cairn_msg(t->error));
        break;
      }
      case PLAN_ASSUME_OK: /* journaled by journal_decisions */
        t->outputs = json_object();
        engine__task_done(t, 1, 0, NULL);
        break;
      default:
        break;
      }
      rt->cx = sp->cx;
    }
    for (size_t i = 0; i < x->ntasks && *slot == x; i++) {
      struct engine__task *t = &x->tasks[i];
      if (t->phase == ENGINE__TASK_DONE || t->inst)
        continue;
      if ((x->failed && !engine__fail_late(x)) ||
          (sp->cx && sp->cx->cancelled)) {
        const struct journal_step *s = journal_replay_step(rp, t->path);
        if (use_map)
          continue; /* an instance never started: engine__map_more */
        if (plans[i] == PLAN_ASSUME_BAD) {
          /* the operator said it took no effect: failed, not cancelled
           * (a cancelled branch's undo would join the plan) */
          engine__task_done(t, 0, 0, "assumed failed after an interruption");
          rt->cx = sp->cx;
          continue;
        }
        if (s == NULL || s->phase != JOURNAL_PHASE_CANCELLED)
          engine__emit(rt, JOURNAL_EV_ACTION_FINISHED, t->path, t->attempt,
                       json_pack("{s:s,s:s}", "outcome", "cancelled", "error",
                                 engine__cancel_why(x)));
        /* As in a run: a cancelled branch's probe says whether it took
         * effect (and so whether its undo joins the plan). */
        if (t->action->probe && s && s->attempt > 0) {
          t->cancel_probe = 1;
          engine__task_probe(t);
        } else {
          engine__task_done(t, 0, 1, "cancelled");
        }
        rt->cx = sp->cx;
        continue;
      }
      switch (plans[i]) {
      case PLAN_FRESH: {
        struct cairn_error e2 = {0};
        if (st->kind == ENGINE_MAP)
          break; /* engine__map_more starts it, within the limit */
        if (engine__task_resolve(t, &e2) != 0) {
          engine__task_done(t, 0, 0, e2.msg);
          break;
        }
        engine__emit(rt, JOURNAL_EV_STATE_ENTERED, t->path, 0,
                     json_pack("{s:s,s:O}", "kind", "branch", "inputs",
                               t->inputs));
        engine__task_attempt(t);
        break;
      }
      case PLAN_NEXT:
        if (t->failures >= t->action->retry.attempts) {
          engine__task_done(t, 0, 0, "failed");
          break;
        }
        engine__task_attempt(t);
        break;
      case PLAN_PROBE:
        engine__task_probe(t);
        break;
      case PLAN_ASSUME_BAD: /* journaled by journal_decisions */
        t->failures++;
        cairn_msg_set(&t->error, "assumed failed after an interruption");
        if (t->failures < t->action->retry.attempts)
          engine__task_attempt(t);
        else
          engine__task_done(t, 0, 0, cairn_msg(t->error));
        break;
      default:
        break;
      }
      rt->cx = sp->cx;
    }
    if (st->kind == ENGINE_MAP && *slot == x && !use_map) {
      x->starting = 0;
      engine__map_more(rt, x);
    }
  } else if (st->kind == ENGINE_WAIT) {
    /* The wait's end was journaled on entry: wait only what is left. */
    engine__start_wait(rt, top->wait_until_ms);
  } else {
    /* choice, succeed, fail, use: their entry and outcome are one
     * commit; a journal that shows only the entry is re-decided. */
    engine__sx_destroy(x);
    *slot = NULL;
    engine__enter(rt, st->name);
  }
  rt->cx = NULL;
}

int engine_resume(struct journal *j, const struct engine_workflow *wf,
                  const char *run_id, const struct engine_options *opt_in,
                  struct engine_result *res, struct cairn_error *err)
{
  struct journal_replay rp;
  struct engine_options opt = *opt_in;
  struct engine__rt rt;
  struct failures fails = {0};
  enum plan *plans = NULL;
  const struct engine_state *st = NULL;
  struct engine__sx *sx = NULL;
  struct journal_lock_holder holder;
  int taken_over = 0, rt_ready = 0;
  struct spot *isp = NULL; /* the instances resumed in their cursors */
  size_t nisp = 0;
  struct question q = {0};
  char actor[300], newer[JOURNAL_RUN_ID_LEN];
  int rc;

  memset(res, 0, sizeof *res);
  /* A run's state is rebuilt only from its events: they are what acts
   * here, so they are authenticated first (a tampered event would pick
   * what to run). */
  rc = journal_run_check(j, run_id, NULL, err);
  if (rc == 0)
    rc = journal_replay(j, run_id, &rp, err);
  if (rc != 0)
    return rc;
  snprintf(res->run_id, sizeof res->run_id, "%s", run_id);

  if ((rc = engine_resume_status(run_id, rp.status, rp.rollback != NULL,
                                 err)) != 0)
    goto out_rp;
  if (rp.rollback_requested && opt.reject == NULL) {
    /* cairn rollback died before it planned: what was asked is that
     * rollback, not the run going on (a second request is journaled) */
    journal_replay_release(&rp);
    return engine_rollback(j, wf, run_id, opt_in, res, err);
  }
  if (!opt.allow_changed &&
      (rc = engine_changed(wf, run_id, rp.file_sha256, "",
                           opt.reject ? "reject" : "resume", err)) != 0)
    goto out_rp;
  const char *env = json_string_value(json_object_get(rp.started, "env"));
  opt.env = env && *env ? env : NULL;
  cairn_actor(opt.actor, actor, sizeof actor);
  if (opt.reject != NULL &&
      ((rc = engine_reject_status(run_id, rp.status, err)) != 0 ||
       (rc = engine__decider_check(wf, &rp, env, actor, "reject", err)) != 0))
    goto out_rp;
  rc = engine_superseded(
      j, run_id,
      opt.reject ? "rejecting it would run its undo steps under that deploy"
      : rp.rollback ? "carrying on its rollback would run its undo steps "
                      "under that deploy"
                    : "resuming it would carry on an older deploy over that "
                      "one",
      opt.allow_superseded, newer, err);
  if (rc != 0)
    goto out_rp;

  /* A live holder (another resume of this run, or another run) wins. */
  if ((rc = journal_lock_check(j, wf->name, env, err)) != 0)
    goto out_rp;
  if ((rc = engine__lock_orphans(j, wf->name, env ? env : "", run_id,
                                 err)) != 0)
    goto out_rp;

  fails.count = json_object();
  fails.pos = json_object();
  fails.wf = wf;
  rc = journal_event_foreach(j, run_id, 0, count_failures, &fails, err);
  if (rc != 0)
    goto out_rp;

  rc = engine__rt_init(&rt, j, wf, &opt, res, err);
  if (rc != 0)
    goto out_rt;
  rt_ready = 1;
  snprintf(rt.run_id, sizeof rt.run_id, "%s", run_id);
  rc = engine__run_params(&rt, &rp, err);
  if (rc == 0)
    rc = engine_run_dir(j, run_id, rt.run_dir, sizeof rt.run_dir, err);
  if (rc != 0)
    goto out_rt;
  snprintf(res->run_dir, sizeof res->run_dir, "%s", rt.run_dir);
  /* the steps it carries on keep the visit the dead engine entered */
  for (size_t i = 0; rc == 0 && i < rp.nsteps; i++)
    if (json_object_set_new(rt.entered, rp.steps[i].path,
                            json_integer(rp.steps[i].entered_seq)) != 0)
      rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  if (rc != 0)
    goto out_rt;
  json_object_set_new(json_object_get(rt.scope, "run"), "id",
                      json_string(run_id));
  json_object_set_new(json_object_get(rt.scope, "run"), "dir",
                      json_string(rt.run_dir));
  engine__rebuild_outputs(wf, json_object_get(rt.scope, "states"), &rp);
  rc = engine__restore_secrets(&rt, &rp, err);
  if (rc == 0)
    rc = engine__rebuild_frames(&rt, &rp, err);
  if (rc != 0)
    goto out_rt;

  /* Decide, per action of the current state, before writing anything. */
  const char *cur = rp.current ? rp.current : wf->start;
  char mapcur[320];
  int undoing = rp.rollback != NULL;
  size_t nplan = 0;
  struct spot main_sp = {0};
  if (!undoing && cur != NULL && engine_workflow_instance_len(wf, cur) > 0) {
    /* The last transition was inside an instance of a map over a used
     * workflow: the run itself is at that map. */
    size_t il = engine_workflow_instance_len(wf, cur), ml = il;
    while (ml > 0 && cur[ml - 1] != '/')
      ml--;
    snprintf(mapcur, sizeof mapcur, "%.*s", (int)(ml ? ml - 1 : 0), cur);
    cur = mapcur;
  }
  if (undoing) {
    /* A rollback goes on with its journaled plan, never a recomputed one:
     * from the first step whose undo has not succeeded. */
    const char *e = json_string_value(json_object_get(rp.rollback, "error"));
    snprintf(rt.rb_error, sizeof rt.rb_error, "%s", e ? e : "");
    const char *fs = json_string_value(json_object_get(rp.rollback, "state"));
    rt.rb_requested = fs == NULL;
    snprintf(res->state, sizeof res->state, "%s", fs ? fs : "");
    rt.plan = json_incref(json_object_get(rp.rollback, "steps"));
    nplan = json_array_size(rt.plan);
    for (rt.plan_next = 0; rt.plan_next < nplan; rt.plan_next++) {
      const char *up = json_string_value(json_object_get(
          json_array_get(rt.plan, rt.plan_next), "undo_path"));
      const struct journal_step *s = journal_replay_step(&rp, up);
      if (s == NULL || s->phase != JOURNAL_PHASE_SUCCEEDED)
        break;
    }
    cur = NULL;
  }
  st = undoing ? NULL : engine_workflow_state(wf, cur);
  if (undoing && rt.plan_next < nplan) {
    sx = engine__undo_sx(&rt, rt.plan_next, err);
    if (sx == NULL) {
      rc = err->code;
      goto out_rt;
    }
    st = sx->st;
  } else if (undoing) {
    st = NULL; /* every undo done: only the run's end is left */
  } else if (st == NULL) {
    rc = cairn_error_set(err, CAIRN_E_CHANGED,
                         "run %s is in state '%s', which the workflow no "
                         "longer has", run_id, cur);
    goto out_rt;
  }
  const struct journal_step *top = NULL;
  if (undoing && sx) {
    top = journal_replay_step(&rp, sx->tasks[0].path);
    /* An undo that failed for good (rollback_failed) is retried afresh. */
    if (top && top->phase == JOURNAL_PHASE_FAILED)
      top = NULL;
  } else if (!undoing) {
    top = journal_replay_step(&rp, st->name);
    sx = engine__sx_new(&rt, st);
    if (sx && top && st->kind == ENGINE_MAP && top->inputs &&
        (rc = engine__map_rebuild(&rt, sx, top, err)) != 0)
      goto out_rt;
  }
  if (sx == NULL && !undoing) {
    rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    goto out_rt;
  }
  plans = calloc(sx ? sx->ntasks + 1 : 1, sizeof *plans);
  isp = calloc(sx ? sx->ntasks + 1 : 1, sizeof *isp);
  if (plans == NULL || isp == NULL) {
    rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    goto out_rt;
  }
  main_sp = (struct spot){st, sx, top, plans, NULL};
  q.opt = &opt;
  q.used = calloc(opt.nassume_steps + 1, 1);
  if (q.used == NULL) {
    rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    goto out_rt;
  }
  if ((rc = decide(&rt, &rp, &fails, &main_sp, undoing, &q, err)) != 0)
    goto out_rt;
  /* Each instance started and unfinished resumes where it is. */
  for (size_t i = 0; sx && i < sx->ntasks; i++)
    if (plans[i] == PLAN_RESUME &&
        (rc = instance_spot(&rt, &rp, &fails, &sx->tasks[i], &isp[nisp++],
                            &q, err)) != 0)
      goto out_rt;
  /* A branch that failed for good decides the state: its siblings are
   * cancelled (their groups stopped below), never asked about; not in a
   * map that runs every instance (fail_fast: false). */
  int settled = 0;
  int late = sx && engine__fail_late(sx);
  for (size_t i = 0; sx && !late && i < sx->ntasks; i++)
    settled |= plans[i] == PLAN_FAILED;
  for (size_t k = 0; k < nisp && !late; k++)
    for (size_t i = 0; isp[k].sx && i < isp[k].sx->ntasks; i++)
      settled |= isp[k].plans[i] == PLAN_FAILED;
  if (settled) {
    q.n = 0;
    res->state[0] = '\0';
    res->decide[0] = '\0';
    res->decide_more = 0;
  }
  /* --assume answers a question; refused (nothing journaled) when there
   * is none, rather than journaled as a decision nothing needed. */
  if (opt.assume && !q.generic_used && q.own_asked) {
    rc = cairn_error_set(err, CAIRN_E_INVAL,
                         "run %s: every step to decide has its own --assume "
                         "PATH=...: the plain --assume %s would decide "
                         "nothing (hint: leave it out)", run_id, opt.assume);
    goto out_rt;
  }
  if (opt.assume && !q.generic_used) {
    rc = cairn_error_set(err, CAIRN_E_INVAL,
                         "run %s has no interrupted step to decide about: "
                         "--assume %s would decide nothing (hint: 'cairn "
                         "resume %s' without it)", run_id, opt.assume,
                         run_id);
    goto out_rt;
  }
  for (size_t i = 0; i < opt.nassume_steps; i++) {
    if (q.used[i])
      continue;
    rc = cairn_error_set(err, CAIRN_E_INVAL,
                         "run %s has no interrupted step '%.*s': --assume "
                         "%s would decide nothing (hint: 'cairn resume %s' "
                         "without it names the steps to decide)", run_id,
                         (int)strcspn(opt.assume_steps[i], "="),
                         opt.assume_steps[i], opt.assume_steps[i], run_id);
    goto out_rt;
  }
  /* Make sure nothing from the dead engine still runs before anything is
   * started again, or before the operator is asked whether a step took
   * effect: a step that goes on while they check would make the answer
   * wrong. */
  {
    int64_t grace = opt.kill_grace_ms > 0 ? opt.kill_grace_ms : 5000;
    stop_spot(&rp, &main_sp, run_id, grace);
    for (size_t k = 0; k < nisp; k++)
      stop_spot(&rp, &isp[k], run_id, grace);
  }
  if (q.n > 0) {
    /* Nothing is written: the run stays as it was. */
    res->outcome = ENGINE_WAITING;
    question_say(&q, run_id, res->message, sizeof res->message);
    rc = 0;
    goto out_rt;
  }

  rc = journal_lock_acquire(j, wf->name, env ? env : "", run_id, &holder,
                            &taken_over, err);
  if (rc != 0)
    goto out_rt;

  rc = journal_begin(j, err);
  if (rc == 0 && opt.reject != NULL) {
    /* the decision first, then the resume it makes */
    rc = engine__append_direct_at(
        &rt, JOURNAL_EV_APPROVAL_REJECTED, rp.current,
        engine__decision(actor, opt.reject->user, opt.reject->comment));
  }
  if (rc == 0 && strcmp(wf->sha256, rp.file_sha256 ? rp.file_sha256 : "") != 0)
    rc = engine__append_direct(&rt, JOURNAL_EV_WORKFLOW_CHANGED,
                               json_pack("{s:s,s:s,s:s}", "old_sha256",
                                         rp.file_sha256 ? rp.file_sha256 : "",
                                         "new_sha256", wf->sha256, "actor",
                                         actor));
  if (rc == 0 && taken_over && strcmp(holder.run_id, run_id) != 0)
    rc = engine__append_takeover(&rt, &holder);
  if (rc == 0) {
    json_t *ev = json_pack("{s:s,s:b,s:s,s:s?}", "actor", actor,
                           "allow_changed", opt.allow_changed, "file_sha256",
                           wf->sha256, "assume", opt.assume);
    if (ev && newer[0] != '\0') /* --allow-superseded: on whose deploy */
      json_object_set_new(ev, "superseded_by", json_string(newer));
    json_t *steps = opt.nassume_steps ? json_array() : NULL;
    for (size_t i = 0; steps && i < opt.nassume_steps; i++)
      json_array_append_new(steps, json_string(opt.assume_steps[i]));
    if (ev && steps)
      json_object_set_new(ev, "assume_steps", steps);
    rc = engine__append_direct(&rt, JOURNAL_EV_RUN_RESUMED, ev);
  }
  if (rc == 0)
    rc = journal_run_set_status(j, run_id, JOURNAL_STATUS_RUNNING, 0, err);
  if (rc == 0)
    rc = journal_commit(j, err);
  if (rc != 0) {
    journal_rollback(j);
    journal_lock_release(j, wf->name, env ? env : "", run_id, NULL);
    goto out_rt;
  }
  engine__notify_direct(&rt);
  journal_decisions(&rt, &main_sp, isp, nisp, actor);

  /* Carry on. */
  sx = NULL;
  if (undoing && (main_sp.sx == NULL || top == NULL)) {
    rt.cur = main_sp.sx;
    main_sp.sx = NULL;
    engine__undo_next(&rt); /* the next undo afresh, or the plan's end */
  } else if (undoing) {
    carry_on(&rt, &rp, &main_sp);
  } else if (st->kind == ENGINE_MAP && st->use_frame >= 0 && top &&
             top->inputs) {
    /* A map over a used workflow: the instances that ended are settled,
     * the unfinished carry on in their cursors, then the map starts what
     * never started, within its limit. */
    struct engine__sx *x = main_sp.sx;
    int failed = 0;
    for (size_t i = 0; i < x->ntasks; i++)
      failed |= plans[i] == PLAN_FAILED;
    rt.cur = x;
    x->starting = 1;
    /* once one failed, the others are cancelled (as in a run: their
     * running actions journaled cancelled, the probe rule applied),
     * unless the map runs them all */
    for (size_t k = 0; k < nisp; k++) {
      isp[k].cx->cancelled = failed && !engine__fail_late(x);
      if (rt.cur == x && isp[k].cx->owner->phase != ENGINE__TASK_DONE)
        carry_on(&rt, &rp, &isp[k]);
    }
    if (rt.cur == x)
      carry_on(&rt, &rp, &main_sp);
    if (rt.cur == x) {
      x->starting = 0;
      engine__map_more(&rt, x);
    }
  } else {
    carry_on(&rt, &rp, &main_sp);
  }

  rc = engine__rt_loop(&rt);
  engine__rt_release(&rt);
  for (size_t k = 0; k < nisp; k++) {
    engine__sx_destroy(isp[k].sx); /* not carried on */
    free(isp[k].plans);
  }
  free(isp);
  free(plans);
  free(q.used);
  json_decref(fails.count);
  json_decref(fails.pos);
  journal_replay_release(&rp);
  return rc;

out_rt:
  for (size_t k = 0; k < nisp; k++) {
    engine__sx_destroy(isp[k].sx);
    free(isp[k].plans);
  }
  free(isp);
  engine__sx_destroy(sx);
  if (rt_ready) {
    engine__rt_abort(&rt);
    engine__rt_release(&rt);
  }
  free(plans);
  free(q.used);
out_rp:
  json_decref(fails.count);
  json_decref(fails.pos);
  journal_replay_release(&rp);
  return rc;
}
