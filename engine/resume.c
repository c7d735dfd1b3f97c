/* Resume: rebuild a run from its events alone and carry on from where it
 * stopped. Decides everything (what to stop, re-run, probe or ask about)
 * before journaling anything, so a refused resume leaves no trace. */
#include <dirent.h>
#include <fcntl.h>
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
};

/* Failed attempts per path since its last entry (the retry budget). */
struct failures {
  json_t *count; /* path -> integer */
};

static int count_failures(const struct journal_event *ev, void *ud)
{
  struct failures *f = ud;
  if (strcmp(ev->kind, JOURNAL_EV_STATE_ENTERED) == 0) {
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

static int is_idempotent(const struct engine__task *t)
{
  if (t->action->idempotent >= 0)
    return t->action->idempotent;
  return t->desc->idempotent;
}

/* Does /proc/PID/environ hold both NUL-terminated entries? */
static int environ_has(const char *pid, const char *a, const char *b)
{
  char path[64], buf[65536];
  int fd, found_a = 0, found_b = 0;
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
  }
  return found_a && found_b;
}

/* The engine died after spawning a child but before journaling its pid:
 * find the child by the markers every action's environment carries
 * (CAIRN_RUN_ID, CAIRN_STATE) and stop its group. */
static void stop_marked(const char *run_id, const char *path,
                        int64_t grace_ms)
{
  char a[128], b[400];
  DIR *d = opendir("/proc");
  struct dirent *de;

  if (d == NULL)
    return;
  snprintf(a, sizeof a, "CAIRN_RUN_ID=%s", run_id);
  snprintf(b, sizeof b, "CAIRN_STATE=%s", path);
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] < '1' || de->d_name[0] > '9')
      continue;
    if (!environ_has(de->d_name, a, b))
      continue;
    int pid = atoi(de->d_name);
    int64_t start = 0;
    pid_t pgid = getpgid(pid);
    if (pid == getpid() || pgid <= 0 ||
        cairn_proc_start_time(pid, &start) != 0)
      continue;
    cairn_proc_stop_group((int)pgid, pid, start, grace_ms);
  }
  closedir(d);
}

/* Makes sure the process group an unfinished attempt started is gone. */
static void stop_stale(const char *run_id, const struct journal_step *step,
                       int64_t grace_ms)
{
  char boot[40];
  json_t *sp = step->spawn;
  /* The journaled pid may be an earlier attempt's when the engine died
   * before journaling the last spawn: the markers find that one too. */
  stop_marked(run_id, step->path, grace_ms);
  if (sp == NULL)
    return;
  cairn_proc_boot_id(boot);
  const char *b = json_string_value(json_object_get(sp, "boot_id"));
  if (b && *boot && strcmp(b, boot) != 0)
    return; /* another boot: every process of it is gone */
  int pid = (int)json_integer_value(json_object_get(sp, "pid"));
  int pgid = (int)json_integer_value(json_object_get(sp, "pgid"));
  int64_t start = json_integer_value(json_object_get(sp, "proc_start"));
  if (pid > 0 && pgid > 0)
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
  int taken_over = 0, alive = 0, rt_ready = 0;
  char actor[300];
  int rc;

  memset(res, 0, sizeof *res);
  rc = journal_replay(j, run_id, &rp, err);
  if (rc != 0)
    return rc;
  snprintf(res->run_id, sizeof res->run_id, "%s", run_id);

  if (strcmp(rp.status, JOURNAL_STATUS_SUCCEEDED) == 0 ||
      strcmp(rp.status, JOURNAL_STATUS_FAILED) == 0 ||
      strcmp(rp.status, JOURNAL_STATUS_ROLLED_BACK) == 0 ||
      (strcmp(rp.status, JOURNAL_STATUS_ROLLBACK_FAILED) == 0 &&
       rp.rollback == NULL)) {
    rc = cairn_error_set(err, CAIRN_E_STATE,
                         "run %s already finished (%s): nothing to resume",
                         run_id, rp.status);
    goto out_rp;
  }
  if (strcmp(wf->sha256, rp.file_sha256 ? rp.file_sha256 : "") != 0 &&
      !opt.allow_changed) {
    rc = cairn_error_set(err, CAIRN_E_CHANGED,
                         "workflow file '%s' changed since run %s started "
                         "(hint: review the change, then resume with "
                         "--allow-changed)", wf->file, run_id);
    goto out_rp;
  }
  const char *env = json_string_value(json_object_get(rp.started, "env"));
  opt.env = env && *env ? env : NULL;

  /* A live holder (another resume of this run, or another run) wins. */
  if (journal_lock_get(j, wf->name, env ? env : "", &holder, &alive, NULL) == 0 &&
      alive && !(holder.pid == (int)getpid())) {
    rc = cairn_error_set(err, CAIRN_E_LOCKED,
                         "workflow '%s'%s%s is locked by run %s (pid %d on "
                         "%s)", wf->name, opt.env ? " env " : "",
                         opt.env ? opt.env : "", holder.run_id, holder.pid,
                         holder.host);
    goto out_rp;
  }

  fails.count = json_object();
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
  int undoing = rp.rollback != NULL;
  size_t nplan = 0;
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
  char ask[1500] = "";
  for (size_t i = 0; sx && i < sx->ntasks; i++) {
    struct engine__task *t = &sx->tasks[i];
    const struct journal_step *s = top ? journal_replay_step(&rp, t->path)
                                       : NULL;
    if (s == NULL) {
      plans[i] = PLAN_FRESH;
      continue;
    }
    t->attempt = s->attempt;
    t->failures = (int)json_integer_value(json_object_get(fails.count,
                                                          t->path));
    if (s->inputs && !engine__has_redaction(s->inputs)) {
      t->inputs = json_incref(s->inputs);
    } else if ((undoing ? engine__undo_resolve(&rt, t,
                                               json_array_get(rt.plan,
                                                              rt.plan_next),
                                               err)
                        : engine__task_resolve(t, err)) != 0) {
      char msg[CAIRN_ERRMSG_MAX];
      snprintf(msg, sizeof msg, "%s", err->msg);
      rc = cairn_error_set(err, err->code ? err->code : CAIRN_E_TEMPLATE,
                           "cannot resolve the inputs of '%s' of run %s: %s "
                           "(hint: fix the workflow, then resume with "
                           "--allow-changed)", t->path, run_id, msg);
      goto out_rt;
    }
    switch (s->phase) {
    case JOURNAL_PHASE_SUCCEEDED:
      plans[i] = PLAN_DONE_OK;
      t->outputs = s->outputs ? json_incref(s->outputs) : json_object();
      break;
    case JOURNAL_PHASE_FAILED:
      plans[i] = t->failures < t->action->retry.attempts ? PLAN_NEXT
                                                          : PLAN_FAILED;
      break;
    case JOURNAL_PHASE_ENTERED:
    case JOURNAL_PHASE_RETRY_WAIT:
      plans[i] = PLAN_NEXT;
      break;
    case JOURNAL_PHASE_STARTED:
    case JOURNAL_PHASE_INTERRUPTED:
    case JOURNAL_PHASE_CANCELLED:
      if (s->attempt == 0) {
        plans[i] = PLAN_NEXT;
      } else if (opt.assume && strcmp(opt.assume, "succeeded") == 0) {
        plans[i] = PLAN_ASSUME_OK;
      } else if (opt.assume && strcmp(opt.assume, "failed") == 0) {
        plans[i] = PLAN_ASSUME_BAD;
      } else if (is_idempotent(t)) {
        plans[i] = PLAN_NEXT;
      } else if (t->action->probe) {
        plans[i] = PLAN_PROBE;
      } else {
        plans[i] = PLAN_ASK;
        if (ask[0] == '\0') {
          snprintf(res->state, sizeof res->state, "%s", t->path);
          snprintf(ask, sizeof ask,
                   "state '%s' was running (attempt %d) when the run stopped; "
                   "it is not idempotent and has no probe, so cairn cannot "
                   "tell whether it took effect: check, then run 'cairn "
                   "resume %s --assume succeeded' to count it as done and go "
                   "on%s%s, or '--assume failed' to treat the attempt as "
                   "failed (retry or on_failure)",
                   t->path, s->attempt, run_id,
                   !undoing && st->next ? " to " : "",
                   !undoing && st->next ? st->next : "");
        }
      }
      break;
    }
  }
  /* A branch that failed for good decides the state: its siblings are
   * cancelled (their groups stopped below), never asked about. */
  int settled = 0;
  for (size_t i = 0; sx && i < sx->ntasks; i++)
    settled |= plans[i] == PLAN_FAILED;
  if (settled) {
    ask[0] = '\0';
    res->state[0] = '\0';
  }
  if (ask[0]) {
    /* Nothing is written: the run stays as it was. */
    res->outcome = ENGINE_WAITING;
    snprintf(res->message, sizeof res->message, "%s", ask);
    rc = 0;
    goto out_rt;
  }

  /* Make sure nothing from the dead engine still runs before anything is
   * started again (pid and start time checked: a reused pid is never
   * signalled). */
  for (size_t i = 0; sx && i < sx->ntasks; i++) {
    const struct journal_step *s = journal_replay_step(&rp, sx->tasks[i].path);
    if (s && (s->phase == JOURNAL_PHASE_STARTED ||
              s->phase == JOURNAL_PHASE_INTERRUPTED))
      stop_stale(run_id, s, opt.kill_grace_ms > 0 ? opt.kill_grace_ms : 5000);
  }

  rc = journal_lock_acquire(j, wf->name, env ? env : "", run_id, &holder,
                            &taken_over, err);
  if (rc != 0)
    goto out_rt;

  engine__actor(&opt, actor, sizeof actor);
  rc = journal_begin(j, err);
  if (rc == 0 && strcmp(wf->sha256, rp.file_sha256 ? rp.file_sha256 : "") != 0)
    rc = engine__append_direct(&rt, JOURNAL_EV_WORKFLOW_CHANGED,
                               json_pack("{s:s,s:s,s:s}", "old_sha256",
                                         rp.file_sha256 ? rp.file_sha256 : "",
                                         "new_sha256", wf->sha256, "actor",
                                         actor));
  if (rc == 0 && taken_over && strcmp(holder.run_id, run_id) != 0)
    rc = engine__append_takeover(&rt, &holder);
  if (rc == 0)
    rc = engine__append_direct(&rt, JOURNAL_EV_RUN_RESUMED,
                               json_pack("{s:s,s:b,s:s,s:s?}", "actor", actor,
                                         "allow_changed", opt.allow_changed,
                                         "file_sha256", wf->sha256, "assume",
                                         opt.assume));
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

  /* Carry on. */
  rt.cur = sx;
  sx = NULL;
  if (undoing && (rt.cur == NULL || top == NULL)) {
    /* The next undo afresh, or the end of a finished plan. */
    engine__undo_next(&rt);
  } else if (top == NULL) {
    /* Crashed right after the transition into it was journaled. */
    engine__sx_destroy(rt.cur);
    rt.cur = NULL;
    engine__enter(&rt, st->name);
  } else if (st->kind == ENGINE_DO || st->kind == ENGINE_PARALLEL ||
             (st->kind == ENGINE_MAP && top->inputs)) {
    struct engine__sx *x = rt.cur;
    /* A map starts what never started once the others are settled. */
    x->starting = st->kind == ENGINE_MAP;
    /* First settle the ones that are already decided, then start. */
    for (size_t i = 0; i < x->ntasks && rt.cur == x; i++) {
      struct engine__task *t = &x->tasks[i];
      switch (plans[i]) {
      case PLAN_DONE_OK:
        engine__task_done(t, 1, 0, NULL);
        break;
      case PLAN_FAILED: {
        const struct journal_step *s = journal_replay_step(&rp, t->path);
        const char *e = s && s->finished
            ? json_string_value(json_object_get(s->finished, "error"))
            : NULL;
        snprintf(t->error, sizeof t->error, "%s", e ? e : "failed");
        engine__task_done(t, 0, 0, t->error);
        break;
      }
      case PLAN_ASSUME_OK:
        engine__emit(&rt, JOURNAL_EV_DECISION_ASSUMED, t->path, t->attempt,
                     json_pack("{s:s,s:s}", "outcome", "succeeded", "actor",
                               actor));
        t->outputs = json_object();
        engine__task_done(t, 1, 0, NULL);
        break;
      default:
        break;
      }
    }
    for (size_t i = 0; i < x->ntasks && rt.cur == x; i++) {
      struct engine__task *t = &x->tasks[i];
      if (t->phase == ENGINE__TASK_DONE)
        continue;
      if (x->failed) {
        const struct journal_step *s = journal_replay_step(&rp, t->path);
        if (s == NULL || s->phase != JOURNAL_PHASE_CANCELLED)
          engine__emit(&rt, JOURNAL_EV_ACTION_FINISHED, t->path, t->attempt,
                       json_pack("{s:s,s:s}", "outcome", "cancelled", "error",
                                 "cancelled: a sibling branch failed"));
        /* As in a run: a cancelled branch's probe says whether it took
         * effect (and so whether its undo joins the plan). */
        if (t->action->probe && s && s->attempt > 0) {
          t->cancel_probe = 1;
          engine__task_probe(t);
        } else {
          engine__task_done(t, 0, 1, "cancelled");
        }
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
        engine__emit(&rt, JOURNAL_EV_STATE_ENTERED, t->path, 0,
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
      case PLAN_ASSUME_BAD:
        engine__emit(&rt, JOURNAL_EV_DECISION_ASSUMED, t->path, t->attempt,
                     json_pack("{s:s,s:s}", "outcome", "failed", "actor",
                               actor));
        t->failures++;
        snprintf(t->error, sizeof t->error,
                 "assumed failed after an interruption");
        if (t->failures < t->action->retry.attempts)
          engine__task_attempt(t);
        else
          engine__task_done(t, 0, 0, t->error);
        break;
      default:
        break;
      }
    }
    if (st->kind == ENGINE_MAP && rt.cur == x) {
      x->starting = 0;
      engine__map_more(&rt, x);
    }
  } else if (st->kind == ENGINE_WAIT) {
    /* The wait's end was journaled on entry: wait only what is left. */
    engine__start_wait(&rt, top->wait_until_ms);
  } else {
    /* choice, succeed, fail: their entry and outcome are one commit; a
     * journal that shows only the entry is re-decided. */
    engine__sx_destroy(rt.cur);
    rt.cur = NULL;
    engine__enter(&rt, st->name);
  }

  rc = engine__rt_loop(&rt);
  engine__rt_release(&rt);
  free(plans);
  json_decref(fails.count);
  journal_replay_release(&rp);
  return rc;

out_rt:
  engine__sx_destroy(sx);
  if (rt_ready) {
    engine__rt_abort(&rt);
    engine__rt_release(&rt);
  }
  free(plans);
out_rp:
  json_decref(fails.count);
  journal_replay_release(&rp);
  return rc;
}
