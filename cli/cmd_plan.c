/* cairn plan FILE: validate a workflow and print its happy path and, for
 * each action, what its failure would lead to, as simulations of the real
 * engine decide them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

/* What one simulation showed. */
struct sim_seen {
  const struct engine_workflow *wf;
  const char *fail_path;  /* the path made to fail, or NULL */
  json_t *path;           /* states entered (those of used workflows
                             too, not branches or map instances), in
                             order */
  json_t *instances;      /* map state -> the paths of its instances, in
                             the order they were entered */
  int reached;            /* fail_path failed for good */
  char to[320];           /* where its state's failure went */
  json_t *undo;           /* the undo_paths of the rollback plan */
};

static void seen_event(void *ud, const struct journal_event *ev)
{
  struct sim_seen *s = ud;
  const char *k = ev->kind;

  if (strcmp(k, JOURNAL_EV_STATE_ENTERED) == 0) {
    const struct engine_state *st;
    const char *key = NULL;
    if (engine_workflow_state(s->wf, ev->state) != NULL) {
      json_array_append_new(s->path, json_string(ev->state));
    } else if (s->instances != NULL &&
               (st = engine_workflow_path_state(s->wf, ev->state, &key)) !=
                   NULL &&
               st->kind == ENGINE_MAP && key != NULL) {
      /* an instance, by its state's own path: inside the instances of a
       * map over a used workflow, "M/S/KEY" (failing in every one) */
      char gen[700];
      size_t i;
      json_t *a = json_object_get(s->instances, st->name), *v;
      snprintf(gen, sizeof gen, "%s/%s", st->name, key);
      if (a == NULL)
        json_object_set_new(s->instances, st->name, a = json_array());
      json_array_foreach(a, i, v)
        if (strcmp(json_string_value(v), gen) == 0)
          return;
      json_array_append_new(a, json_string(gen));
    }
  } else if (strcmp(k, JOURNAL_EV_TRANSITION) == 0 && s->fail_path &&
             strcmp(json_string_value(json_object_get(ev->payload,
                                                      "reason")),
                    "on_failure") == 0 && s->to[0] == '\0') {
    const char *to = json_string_value(json_object_get(ev->payload, "to"));
    s->reached = 1;
    snprintf(s->to, sizeof s->to, "%s", to && *to ? to : "fail");
  } else if (strcmp(k, JOURNAL_EV_ROLLBACK_PLANNED) == 0 && s->undo == NULL) {
    size_t i;
    json_t *st;
    s->undo = json_array();
    json_array_foreach(json_object_get(ev->payload, "steps"), i, st)
      json_array_append(s->undo, json_object_get(st, "undo_path"));
  }
}

/* "a → b → c" */
static void join_path(json_t *a, const char *sep, char *out, size_t n)
{
  size_t len = 0, i;
  json_t *v;
  out[0] = '\0';
  json_array_foreach(a, i, v) {
    if (len >= n)
      break;
    len += (size_t)snprintf(out + len, n - len, "%s%s", i ? sep : "",
                            json_string_value(v));
  }
}

/* Every action path of wf, in file order, those of used workflows
 * included. A map state's are its instances on the happy path (from
 * instances), or STATE/ and a star when none ran there; a map over a used
 * workflow has none of its own. */
static json_t *action_paths(const struct engine_workflow *wf,
                            json_t *instances)
{
  json_t *a = json_array();
  char p[320];
  for (size_t i = 0; i < wf->nstates; i++) {
    const struct engine_state *st = &wf->states[i];
    json_t *inst = json_object_get(instances, st->name);
    if (st->kind == ENGINE_DO)
      json_array_append_new(a, json_string(st->name));
    for (size_t b = 0; st->kind == ENGINE_PARALLEL && b < st->nbranches;
         b++) {
      snprintf(p, sizeof p, "%s/%s", st->name, st->branches[b].name);
      json_array_append_new(a, json_string(p));
    }
    if (st->kind == ENGINE_MAP && st->use_frame >= 0) {
      /* over a used workflow: its states are listed as M/S (failing in
       * every instance) */
    } else if (st->kind == ENGINE_MAP && json_array_size(inst) > 0) {
      json_array_extend(a, inst);
    } else if (st->kind == ENGINE_MAP) {
      snprintf(p, sizeof p, "%s/*", st->name);
      json_array_append_new(a, json_string(p));
    }
  }
  return a;
}

/* The plan's label of an action whose ready check fails. */
#define NOT_READY " (not ready)"

/* 1 when the action at path has a ready check. */
static int has_ready(const struct engine_workflow *wf, const char *path)
{
  const struct engine_action *a = engine_workflow_action_at(wf, path);
  return a != NULL && a->ready != NULL;
}

/* Where a failure of st goes, by its on_failure or, in a used workflow,
 * by that of the use state it fails: that on_failure, and the use states
 * failed on the way (*through: a new array, innermost first). */
static const char *failure_of(const struct engine_workflow *wf,
                              const struct engine_state *st, json_t **through)
{
  const struct engine_state *owner = cli_failure_owner(wf, st);
  *through = json_array();
  for (const struct engine_state *u = st; u != owner;) {
    u = &wf->states[wf->frames[u->frame].use_state];
    json_array_append_new(*through, json_string(u->name));
  }
  return owner->on_failure;
}

/* A simulation did not reach an end (a signal, or a loop: only an
 * interruption ends one so): plan stops there, as the next would loop
 * again or be interrupted too. Returns the exit code. */
static int stopped(const char *what, const struct engine_result *res)
{
  cli_error("simulation of %s %s", what, res->message);
  return CLI_EXIT_INTERRUPTED;
}

int cli_cmd_plan(int argc, char **argv, struct cli_ctx *ctx)
{
  const char *env = NULL;
  struct cli_list sets = {0};
  const struct cli_option opts[] = {
    {"env", CLI_OPT_STRING, &env, "NAME", "the environment to plan for"},
    {"set", CLI_OPT_LIST, &sets, "NAME=VALUE", "set a param (repeatable)"},
    {NULL, 0, NULL, NULL, NULL},
  };
  struct engine_workflow *wf = NULL;
  struct cairn_error err = {0};
  struct engine_result res;
  struct engine_sim sim = {0};
  struct sim_seen happy = {0};
  json_t *paths = NULL, *out = NULL;
  char line[4096];
  int npos = 0, code, rc;

  code = cli_parse(argc, argv, ctx, opts,
                   "cairn plan FILE [--env NAME] [--set NAME=VALUE]... "
                   "[--json]",
                   "Validates FILE and prints the path a run takes when "
                   "every action succeeds and, for\neach action, where its "
                   "failure (after its retries) leads: a state, the end of "
                   "the\nrun, or a rollback with its undo steps. Each line "
                   "comes from a simulation of the\nreal engine (see cairn "
                   "simulate); nothing runs. A simulation that does not reach "
                   "an\nend (a loop, SIGINT, SIGTERM) stops plan: exit 3.",
                   &npos);
  if (code != 0) {
    code = code == 1 ? CLI_EXIT_OK : code;
    goto done;
  }
  if (npos != 1) {
    cli_error("plan needs one workflow file (usage: cairn plan FILE)");
    code = CLI_EXIT_USAGE;
    goto done;
  }
  if (engine_workflow_load(&wf, argv[1], &err) != 0) {
    cli_workflow_error(&err, NULL);
    code = CLI_EXIT_USAGE;
    goto done;
  }

  happy.wf = wf;
  happy.path = json_array();
  happy.instances = json_object();
  rc = cli_simulate(wf, env, &sets, &sim, seen_event, &happy, &res, &err);
  if (rc != 0) {
    cli_error("%s", err.msg);
    code = cli_exit_for(rc);
    goto done;
  }
  if (res.outcome == ENGINE_INTERRUPTED) {
    code = stopped("the happy path", &res);
    goto done;
  }
  out = json_pack("{s:s,s:s,s:O,s:s,s:i,s:[]}", "workflow", wf->name, "file",
                  argv[1], "happy_path", happy.path, "status", res.status,
                  "exit_code", cli_sim_exit_code(&res), "failures");
  if (happy.undo)
    json_object_set(out, "rollback", happy.undo);
  if (!ctx->json) {
    char undo[1200] = "";
    join_path(happy.path, " → ", line, sizeof line);
    if (happy.undo) {
      /* the happy path itself fails (an input no value makes valid) */
      size_t n = (size_t)snprintf(undo, sizeof undo, " → rollback");
      if (json_array_size(happy.undo) == 0)
        snprintf(undo + n, sizeof undo - n, ", nothing to undo");
      else if (n < sizeof undo - 2) {
        snprintf(undo + n, sizeof undo - n, ": ");
        join_path(happy.undo, ", ", undo + n + 2, sizeof undo - n - 2);
      }
    }
    printf("%s (%s): valid, %zu state%s\n", wf->name, argv[1], wf->nstates,
           wf->nstates == 1 ? "" : "s");
    printf("happy path: %s%s → %s (exit %d)\n", line, undo, res.status,
           cli_sim_exit_code(&res));
  }

  paths = action_paths(wf, happy.instances);
  if (!ctx->json && json_array_size(paths) > 0) /* no action: no heading */
    printf("when an action fails (after its retries):\n");
  size_t i, width = 0;
  json_t *v;
  json_array_foreach(paths, i, v) {
    size_t w = strlen(json_string_value(v)) +
               (has_ready(wf, json_string_value(v)) ? strlen(NOT_READY) : 0);
    if (w > width)
      width = w;
  }
  json_array_foreach(paths, i, v)
  for (int ready = 0; ready <= has_ready(wf, json_string_value(v)); ready++) {
    const char *path = json_string_value(v);
    const char *fail[1] = {path};
    /* the action fails, or (ready) it took effect and its check fails */
    struct engine_sim s1 = {.fail_at = ready ? NULL : fail,
                            .nfail_at = ready ? 0 : 1,
                            .fail_ready = ready ? fail : NULL,
                            .nfail_ready = ready ? 1 : 0};
    struct sim_seen seen = {wf, path, json_array(), NULL, 0, "", NULL};
    const struct engine_state *st = engine_workflow_path_state(wf, path, NULL);
    json_t *through = NULL;
    const char *on_failure = failure_of(wf, st, &through);
    char label[400];

    snprintf(label, sizeof label, "%s%s", path, ready ? NOT_READY : "");
    rc = cli_simulate(wf, env, &sets, &s1, seen_event, &seen, &res, &err);
    if (rc != 0 || res.outcome == ENGINE_INTERRUPTED) {
      json_decref(seen.path);
      json_decref(seen.undo);
      json_decref(through);
      if (rc != 0) {
        cli_error("%s", err.msg);
        code = cli_exit_for(rc);
      } else {
        char what[480];
        snprintf(what, sizeof what, "a failure %s '%s'",
                 ready ? "of the ready check of" : "at", path);
        code = stopped(what, &res);
      }
      goto done;
    }
    json_t *f = json_pack("{s:s,s:b,s:s}", "path", path, "reached",
                          seen.reached, "on_failure", on_failure);
    if (ready)
      json_object_set_new(f, "ready", json_true());
    if (json_array_size(through) > 0)
      json_object_set(f, "through", through);
    if (seen.reached) {
      json_object_set_new(f, "to", json_string(seen.to));
      json_object_set_new(f, "status", json_string(res.status));
      json_object_set_new(f, "exit_code",
                          json_integer(cli_sim_exit_code(&res)));
      if (seen.undo)
        json_object_set(f, "rollback", seen.undo);
    }
    json_array_append_new(json_object_get(out, "failures"), f);
    if (!ctx->json) {
      int ex = cli_sim_exit_code(&res);
      char fails[1200] = "→"; /* "→ fails db →" through used workflows */
      join_path(through, ", ", line, sizeof line);
      if (*line)
        snprintf(fails, sizeof fails, "→ fails %s →", line);
      if (!seen.reached) {
        printf("  %-*s  not reached on the happy path (on_failure: %s%s%s)"
               "\n", (int)width, label, on_failure, *line ? ", through " : "",
               line);
      } else if (seen.undo) {
        join_path(seen.undo, ", ", line, sizeof line);
        printf("  %-*s  %s rollback%s%s → %s (exit %d)\n", (int)width,
               label, fails,
               json_array_size(seen.undo) ? ": " : ", nothing to undo",
               json_array_size(seen.undo) ? line : "", res.status, ex);
      } else if (strcmp(seen.to, "fail") == 0) {
        printf("  %-*s  %s fail, nothing undone → %s (exit %d)\n",
               (int)width, label, fails, res.status, ex);
      } else {
        printf("  %-*s  %s %s (on_failure) → %s (exit %d)\n", (int)width,
               label, fails, seen.to, res.status, ex);
      }
    }
    json_decref(seen.path);
    json_decref(seen.undo);
    json_decref(through);
  }
  if (ctx->json)
    cli_print_json(out);
  code = CLI_EXIT_OK;
done:
  json_decref(out);
  json_decref(paths);
  json_decref(happy.path);
  json_decref(happy.instances);
  json_decref(happy.undo); /* a happy path that rolls back has one */
  engine_workflow_destroy(wf);
  cli_list_release(&sets);
  return code;
}
