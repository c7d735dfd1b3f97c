/* cairn simulate FILE --fail-at STATE: run the real engine on an
 * in-memory journal with scripted outcomes and print its trace. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

int cli_sim_exit_code(const struct engine_result *res)
{
  switch (res->outcome) {
  case ENGINE_SUCCEEDED:
  case ENGINE_ROLLED_BACK:
    return CLI_EXIT_OK;
  case ENGINE_ROLLBACK_FAILED:
    return CLI_EXIT_ROLLBACK;
  case ENGINE_FAILED:
    return CLI_EXIT_FAILED;
  default:
    return CLI_EXIT_INTERRUPTED;
  }
}

int cli_simulate(const struct engine_workflow *wf, const char *env,
                 const struct cli_list *sets, const struct engine_sim *sim,
                 engine_observe_cb observe, void *ud,
                 struct engine_result *res, struct cairn_error *err)
{
  struct engine_options o;

  memset(&o, 0, sizeof o);
  o.env = env;
  o.sets = sets->items;
  o.nsets = sets->n;
  o.actor = "simulation";
  o.sim = sim;
  o.observe = observe;
  o.observe_text = 1; /* the trace prints payloads as journaled */
  o.ud = ud;
  return engine_simulate(wf, &o, res, err);
}

static const char *pstr(const struct journal_event *ev, const char *key)
{
  const char *s = json_string_value(json_object_get(ev->payload, key));
  return s ? s : "";
}

/* The --json line of ev into b, with the bytes json_dumps(JSON_COMPACT |
 * JSON_SORT_KEYS) would give for {seq, kind, state, attempt, payload},
 * written directly: packing a copy and dumping it through stdio cost more
 * than the simulation. 0, or -1 (then nothing of b is to be used). */
static int trace_json(struct cairn_buf *b, const struct journal_event *ev)
{
  cairn_buf_reset(b);
  if (ev->state == NULL || ev->payload == NULL)
    return -1;
  cairn_buf_add(b, "{\"attempt\":", 11);
  cairn_buf_add_i64(b, ev->attempt);
  cairn_buf_add(b, ",\"kind\":", 8);
  if (journal_canonical_string(b, ev->kind, strlen(ev->kind)) != 0)
    return -1;
  cairn_buf_add(b, ",\"payload\":", 11);
  if (ev->payload_text != NULL) /* the same bytes, as the journal wrote */
    cairn_buf_add(b, ev->payload_text, ev->payload_len);
  else if (journal_canonical_add(b, ev->payload) != 0)
    return -1;
  cairn_buf_add(b, ",\"seq\":", 7);
  cairn_buf_add_i64(b, ev->seq);
  cairn_buf_add(b, ",\"state\":", 9);
  if (journal_canonical_string(b, ev->state, strlen(ev->state)) != 0)
    return -1;
  cairn_buf_add(b, "}\n", 2);
  return b->failed ? -1 : 0;
}

/* The buffer of trace_json, reused from line to line. */
static struct cairn_buf trace_buf;

/* " [placeholders: a, b]" when the payload names inputs a simulation
 * took from placeholder outputs (as the journal writes them), else "". */
static const char *placeholders(const struct journal_event *ev, char *out,
                                size_t n)
{
  json_t *ph = json_object_get(ev->payload, "placeholders");
  size_t len, i;
  json_t *k;

  out[0] = '\0';
  if (json_array_size(ph) == 0)
    return out;
  len = (size_t)snprintf(out, n, " [placeholders:");
  json_array_foreach(ph, i, k) {
    if (len >= n)
      break;
    len += (size_t)snprintf(out + len, n - len, "%s %s", i ? "," : "",
                            json_string_value(k));
  }
  if (len < n)
    snprintf(out + len, n - len, "]");
  return out;
}

/* One line per event that says what the engine decided; the rest
 * (action.started, lock and run bookkeeping) is left out. Where a value
 * it shows came from placeholder outputs, a mark in brackets says so. */
static void trace_line(void *ud, const struct journal_event *ev)
{
  struct cli_ctx *ctx = ud;
  const char *k = ev->kind;

  if (ctx->json) {
    if (trace_json(&trace_buf, ev) == 0) {
      fwrite(trace_buf.p, 1, trace_buf.len, stdout);
      if (trace_buf.cap > 64 * 1024) /* not as large as the largest line */
        cairn_buf_release(&trace_buf);
      return;
    }
    /* As run --json, less what differs from one simulation to the next
     * (the run id and the clock). */
    json_t *v = json_pack("{s:I,s:s,s:s,s:i,s:O}", "seq",
                          (json_int_t)ev->seq, "kind", ev->kind, "state",
                          ev->state, "attempt", ev->attempt, "payload",
                          ev->payload);
    /* Not flushed line by line: nothing waits for a simulation's lines
     * as they come, and 40,000 writes cost more than the simulation. */
    json_dumpf(v, stdout, JSON_COMPACT | JSON_SORT_KEYS);
    fputc('\n', stdout);
    json_decref(v);
    return;
  }
  if (strcmp(k, JOURNAL_EV_STATE_ENTERED) == 0) {
    const char *kind = pstr(ev, "kind");
    char ph[400];
    placeholders(ev, ph, sizeof ph);
    if (strcmp(kind, "do") == 0 || strcmp(kind, "branch") == 0 ||
        strcmp(kind, "undo") == 0)
      printf("enter %s%s\n", ev->state, ph);
    else
      printf("enter %s (%s)%s\n", ev->state, kind, ph);
  } else if (strcmp(k, JOURNAL_EV_ACTION_FINISHED) == 0) {
    const char *o = pstr(ev, "outcome");
    if (strcmp(o, "succeeded") == 0)
      printf("  ✓ %s (attempt %d)\n", ev->state, ev->attempt);
    else
      printf("  ✗ %s (attempt %d): %s\n", ev->state, ev->attempt, o);
  } else if (strcmp(k, JOURNAL_EV_PROBE_FINISHED) == 0) {
    printf("  ? %s: probe %s\n", ev->state, pstr(ev, "outcome"));
  } else if (strcmp(k, JOURNAL_EV_ACTION_RETRYING) == 0) {
    char d[32];
    printf("  ↻ %s: attempt %d after %s\n", ev->state,
           (int)json_integer_value(json_object_get(ev->payload,
                                                   "next_attempt")),
           cli_duration(json_integer_value(json_object_get(ev->payload,
                                                           "delay_ms")),
                        d, sizeof d));
  } else if (strcmp(k, JOURNAL_EV_TRANSITION) == 0) {
    const char *to = pstr(ev, "to");
    char b1[4096]; /* a when: quotes the workflow's text */
    printf("→ %s (%s)%s\n", *to ? to : "end",
           cli_safe(pstr(ev, "reason"), b1, sizeof b1),
           json_is_true(json_object_get(ev->payload, "placeholders"))
               ? " [decided on placeholders]"
               : "");
  } else if (strcmp(k, JOURNAL_EV_ROLLBACK_PLANNED) == 0) {
    cli_print_plan_line(ev->payload);
  } else if (strcmp(k, JOURNAL_EV_RUN_FINISHED) == 0) {
    printf("■ %s\n", pstr(ev, "status"));
  } else if (strcmp(k, JOURNAL_EV_RUN_INTERRUPTED) == 0) {
    /* why goes to stderr, as the command's error */
    printf("■ %s\n", json_object_get(ev->payload, "error") ? "stopped"
                                                           : "interrupted");
  }
}

/* The items of a --fail-* option that made nothing fail, as a JSON
 * array appended to into; on a terminal, one line each. */
static void not_fired(const char *option, const struct cli_list *l,
                      const unsigned char *fired, json_t *into, int json)
{
  for (size_t i = 0; i < l->n; i++) {
    if (fired[i])
      continue;
    if (json)
      json_array_append_new(into, json_pack("{s:s,s:s}", "option", option,
                                            "value", l->items[i]));
    else
      printf("! %s %s did not fire: the simulation never ran that (a "
             "branch not taken, an instance KEY no item has; 'cairn plan' "
             "lists what can fail)\n", option, l->items[i]);
  }
}

int cli_cmd_simulate(int argc, char **argv, struct cli_ctx *ctx)
{
  const char *env = NULL;
  struct cli_list sets = {0}, fail_at = {0}, fail_undo = {0},
                  fail_ready = {0};
  const struct cli_option opts[] = {
    {"env", CLI_OPT_STRING, &env, "NAME", "the environment to simulate"},
    {"set", CLI_OPT_LIST, &sets, "NAME=VALUE", "set a param (repeatable)"},
    {"fail-at", CLI_OPT_LIST, &fail_at, "STATE[:ATTEMPT]",
     "make this action fail: every attempt, or only ATTEMPT (repeatable)"},
    {"fail-undo", CLI_OPT_LIST, &fail_undo, "STATE",
     "make the undo of this action fail (repeatable)"},
    {"fail-ready", CLI_OPT_LIST, &fail_ready, "STATE",
     "make the ready check of this action fail, after the action took "
     "effect (repeatable)"},
    {NULL, 0, NULL, NULL, NULL},
  };
  struct engine_workflow *wf = NULL;
  struct cairn_error err = {0};
  struct engine_result res;
  struct engine_sim sim = {0};
  unsigned char *fired = NULL;
  int npos = 0, code;

  code = cli_parse(argc, argv, ctx, opts,
                   "cairn simulate FILE [--env NAME] [--set NAME=VALUE]... "
                   "[--fail-at STATE[:ATTEMPT]]... [--fail-undo STATE]... "
                   "[--fail-ready STATE]... [--json]",
                   "Runs the real engine on an in-memory journal with every "
                   "action replaced by a scripted\noutcome (success unless "
                   "named by --fail-at or --fail-ready) and prints its trace: states "
                   "entered,\ntransitions and why, retries, the rollback plan "
                   "and each undo, and the status and\nexit code a real run "
                   "would end with. Nothing runs and no journal is written.\n"
                   "Outputs are placeholders (each declared output's empty "
                   "value); the trace marks in\nbrackets what came from them. "
                   "Exits 0 when the simulation ran, whatever it predicts;\n"
                   "3 when it did not reach an end (a loop, stopped after "
                   "100,000 state entries;\nSIGINT, SIGTERM).",
                   &npos);
  if (code != 0) {
    code = code == 1 ? CLI_EXIT_OK : code;
    goto out;
  }
  if (npos != 1) {
    cli_error("simulate needs one workflow file (usage: cairn simulate FILE "
              "--fail-at STATE...)");
    code = CLI_EXIT_USAGE;
    goto out;
  }
  {
    /* each item fires on its own: a second of the same would be said
     * not to have fired */
    const struct {
      const char *opt;
      const struct cli_list *l;
    } lists[] = {{"--fail-at", &fail_at}, {"--fail-undo", &fail_undo},
                 {"--fail-ready", &fail_ready}};
    for (size_t k = 0; k < sizeof lists / sizeof lists[0]; k++)
      for (size_t i = 0; i < lists[k].l->n; i++)
        for (size_t m = 0; m < i; m++)
          if (strcmp(lists[k].l->items[i], lists[k].l->items[m]) == 0) {
            char b1[1024];
            cli_error("%s %s is given twice (hint: once is enough)",
                      lists[k].opt,
                      cli_safe(lists[k].l->items[i], b1, sizeof b1));
            code = CLI_EXIT_USAGE;
            goto out;
          }
  }
  if (engine_workflow_load(&wf, argv[1], &err) != 0) {
    cli_workflow_error(&err, NULL);
    code = CLI_EXIT_USAGE;
    goto out;
  }
  sim.fail_at = fail_at.items;
  sim.nfail_at = fail_at.n;
  sim.fail_undo = fail_undo.items;
  sim.nfail_undo = fail_undo.n;
  sim.fail_ready = fail_ready.items;
  sim.nfail_ready = fail_ready.n;
  /* one calloc for the three lists' marks; 1 byte more: never NULL */
  fired = calloc(fail_at.n + fail_undo.n + fail_ready.n + 1, 1);
  if (fired == NULL) {
    cli_error("out of memory");
    code = CLI_EXIT_FAILED;
    goto out;
  }
  sim.fired_at = fired;
  sim.fired_undo = fired + fail_at.n;
  sim.fired_ready = fired + fail_at.n + fail_undo.n;
  if (engine_sim_check(wf, &sim, &err) != 0) {
    cli_error("%s", err.msg);
    code = CLI_EXIT_USAGE;
    goto out;
  }
  int rc = cli_simulate(wf, env, &sets, &sim, trace_line, ctx, &res, &err);
  if (rc != 0) {
    cli_error("%s", err.msg);
    code = cli_exit_for(rc);
    goto out;
  }
  if (res.outcome == ENGINE_INTERRUPTED) {
    /* no prediction: a signal stopped it, or a loop it could not leave
     * (only an interruption ends a simulation so) */
    cli_error("simulation %s", res.message);
    code = CLI_EXIT_INTERRUPTED;
    cli_error_result(ctx, code);
    goto out;
  }
  int would = cli_sim_exit_code(&res);
  json_t *unfired = json_array();
  not_fired("--fail-at", &fail_at, sim.fired_at, unfired, ctx->json);
  not_fired("--fail-undo", &fail_undo, sim.fired_undo, unfired, ctx->json);
  not_fired("--fail-ready", &fail_ready, sim.fired_ready, unfired,
            ctx->json);
  if (ctx->json) {
    json_t *v = json_pack("{s:s,s:s,s:i,s:s,s:s}", "kind", "result",
                          "status", res.status, "exit_code", would, "state",
                          res.state, "message", res.message);
    if (json_array_size(unfired) > 0)
      json_object_set(v, "not_fired", unfired);
    cli_print_json(v);
    json_decref(v);
  } else {
    printf("result: %s; a real run would exit %d\n", res.status, would);
  }
  json_decref(unfired);
  code = CLI_EXIT_OK;
out:
  free(fired);
  engine_workflow_destroy(wf);
  cairn_buf_release(&trace_buf);
  cli_list_release(&sets);
  cli_list_release(&fail_at);
  cli_list_release(&fail_undo);
  cli_list_release(&fail_ready);
  return code;
}
