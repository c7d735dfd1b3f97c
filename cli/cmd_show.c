/* cairn show RUN: a run's header and the timeline of its states, rebuilt
 * from its events. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/table.h"
#include "common/utf8.h"

static const char *phase_name(enum journal_phase p)
{
  switch (p) {
  case JOURNAL_PHASE_ENTERED: return "entered";
  case JOURNAL_PHASE_STARTED: return "running";
  case JOURNAL_PHASE_RETRY_WAIT: return "retrying";
  case JOURNAL_PHASE_SUCCEEDED: return "succeeded";
  case JOURNAL_PHASE_FAILED: return "failed";
  case JOURNAL_PHASE_CANCELLED: return "cancelled";
  case JOURNAL_PHASE_INTERRUPTED: return "interrupted";
  }
  return "?";
}

/* From its first whole line when text (the last bytes of something)
 * begins mid-line: a copy the caller frees. */
static char *whole_lines(const char *text, int cut)
{
  const char *start = text;
  if (cut && (start = strchr(text, '\n')) != NULL)
    start++;
  return strdup(start ? start : text);
}

/* The last lines (at most 2 KiB) of step s's log, .cairn/runs/RUN/P.log
 * (written redacted by the engine), or, for a step that made none (a
 * success whose words the journal keeps) or whose log is incomplete (a
 * write to it failed: log_error), of its journaled tail; NULL when there
 * is neither. Caller frees. */
static char *log_tail(struct journal *j, const char *run_id,
                      const struct journal_step *s)
{
  char dir[4096], name[ENGINE_STEP_FILE_MAX], file[4400], buf[2049];
  const char *tail = json_string_value(json_object_get(s->finished, "tail"));
  FILE *f = NULL;

  if (json_object_get(s->finished, "log_error") == NULL &&
      engine_run_dir(j, run_id, dir, sizeof dir, NULL) == 0 &&
      engine_step_file(s->path, name, sizeof name) == 0 &&
      snprintf(file, sizeof file, "%s/%s.log", dir, name) <
          (int)sizeof file)
    f = fopen(file, "r");
  if (f == NULL) {
    size_t n = tail ? strlen(tail) : 0;
    return n ? whole_lines(n > 2048 ? tail + n - 2048 : tail, n > 2048)
             : NULL;
  }
  long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : 0;
  long from = size > 2048 ? size - 2048 : 0;
  fseek(f, from, SEEK_SET);
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  return whole_lines(buf, from > 0);
}

/* Whether approval state s, entered and not left, has a rejection its
 * visit has not acted on yet (the engine died in between), as the engine
 * would find it. */
static int rejection_pending(struct journal *j, const char *run_id,
                             const struct journal_step *s)
{
  json_t *found = NULL;

  if (s->kind == NULL || strcmp(s->kind, "approval") != 0 ||
      s->phase != JOURNAL_PHASE_ENTERED ||
      engine_rejection(j, run_id, s->path, &found, NULL) != 0)
    return 0;
  json_decref(found);
  return found != NULL;
}

/* The outcome column of step i: its phase and attempts; "passed" for a
 * state that runs no action of its own (parallel, map, choice, wait, the
 * terminals), or "failed" when a branch or instance of it failed; an
 * approval state the run waits at is "waiting", a rejected one
 * "rejected", the one it stood at when abandoned "abandoned". A use
 * state has the outcome of its used workflow. A step started and not
 * ended is "running" only while the run's engine lives (live), else
 * "unfinished": what became of it is for resume to find out. */
static void step_outcome(struct journal *j, const struct journal_replay *rp,
                         size_t i, int live, const char *abandoned_at,
                         char *out, size_t n)
{
  const struct journal_step *s = &rp->steps[i];
  size_t len = strlen(s->path);
  const char *phase = s->phase == JOURNAL_PHASE_STARTED && !live
                          ? "unfinished"
                          : phase_name(s->phase);

  if (s->attempt > 1) {
    snprintf(out, n, "%s x%d", phase, s->attempt);
    return;
  }
  if (json_object_get(s->finished, "rejected_by") != NULL ||
      rejection_pending(j, rp->run_id, s)) {
    /* an approval state that cairn reject failed, or (the engine died in
     * between) was to fail */
    snprintf(out, n, "rejected");
    return;
  }
  if (s->kind && strcmp(s->kind, "approval") == 0 &&
      s->phase == JOURNAL_PHASE_ENTERED &&
      strcmp(rp->status, JOURNAL_STATUS_WAITING) == 0 && rp->current &&
      strcmp(rp->current, s->path) == 0) {
    snprintf(out, n, "waiting");
    return;
  }
  if (abandoned_at && strcmp(abandoned_at, s->path) == 0 &&
      s->phase == JOURNAL_PHASE_ENTERED) {
    /* the state the run stood at, waiting, when cairn abandon ended it */
    snprintf(out, n, "abandoned");
    return;
  }
  if (json_is_true(json_object_get(s->finished, "cancelled"))) {
    /* an instance stopped because another failed */
    snprintf(out, n, "cancelled");
    return;
  }
  if (s->kind == NULL || strcmp(s->kind, "do") == 0 ||
      strcmp(s->kind, "branch") == 0 || strcmp(s->kind, "instance") == 0 ||
      s->attempt > 0 || s->phase != JOURNAL_PHASE_ENTERED) {
    snprintf(out, n, "%s", phase);
    return;
  }
  snprintf(out, n, "passed");
  for (size_t k = i + 1; k < rp->nsteps; k++)
    if (strncmp(rp->steps[k].path, s->path, len) == 0 &&
        rp->steps[k].path[len] == '/' &&
        rp->steps[k].phase == JOURNAL_PHASE_FAILED)
      snprintf(out, n, "failed");
}

#define STATE_COLS 6
#define STATE_RIGHT (1u << 3 | 1u << 4) /* START, TOOK */
#define EVENT_COLS 4
#define EVENT_RIGHT (1u << 0)           /* SEQ */
#define PAYLOAD_MAX 160                 /* bytes of a payload shown */

static int collect_event(const struct journal_event *ev, void *ud)
{
  json_t *a = ud;
  json_array_append_new(a, json_pack("{s:I,s:s,s:s,s:i,s:I,s:O,s:s}", "seq",
                                     (json_int_t)ev->seq, "kind", ev->kind,
                                     "state", ev->state, "attempt",
                                     ev->attempt, "time_ms",
                                     (json_int_t)ev->time_ms, "payload",
                                     ev->payload, "hash", ev->hash));
  return 0;
}

/* The run.abandoned event among evs (rows of collect_event), or NULL:
 * who ended the run where it stood, and where. Borrowed from evs. */
static json_t *abandonment(json_t *evs)
{
  size_t i;
  json_t *e;
  json_array_foreach(evs, i, e) {
    const char *k = json_string_value(json_object_get(e, "kind"));
    if (k && strcmp(k, JOURNAL_EV_RUN_ABANDONED) == 0)
      return e;
  }
  return NULL;
}

int cli_cmd_show(int argc, char **argv, struct cli_ctx *ctx)
{
  int events = 0, logs = 0;
  const struct cli_option opts[] = {
    {"events", CLI_OPT_FLAG, &events, NULL, "list every event too"},
    {"logs", CLI_OPT_FLAG, &logs, NULL,
     "add the tail of each state's log (secrets redacted)"},
    {NULL, 0, NULL, NULL, NULL},
  };
  struct journal *j = NULL;
  struct journal_run run = {0};
  struct journal_replay rp = {0};
  struct cairn_error err = {0};
  json_t *evs = NULL;
  struct cli_table *table = NULL;
  int npos = 0, have_run = 0, have_rp = 0;
  char t[32], d[32], b1[2048], b2[256];
  int code = cli_parse(argc, argv, ctx, opts, "cairn show RUN [--events] "
                       "[--logs] [--json]",
                       "Shows one run (by id or a unique prefix of it): who "
                       "ran which workflow where,\nand each state with its "
                       "start, duration, attempts, outcome and outputs.",
                       &npos);
  if (code != 0)
    return code == 1 ? CLI_EXIT_OK : code;
  if (npos != 1) {
    cli_error("show needs one run id (hint: 'cairn history' lists them)");
    return CLI_EXIT_USAGE;
  }
  code = cli_open_journal(ctx, 0, 1, &j);
  if (code != 0)
    return code;
  code = cli_get_run(j, argv[1], &run);
  if (code != 0)
    goto out;
  have_run = 1;
  int rc = journal_replay(j, run.id, &rp, &err);
  if (rc != 0) {
    cli_error("%s", err.msg);
    code = cli_exit_for(rc);
    goto out;
  }
  have_rp = 1;
  evs = json_array();
  rc = journal_event_foreach(j, run.id, 0, collect_event, evs, &err);
  if (rc != 0) {
    cli_error("%s", err.msg);
    code = cli_exit_for(rc);
    goto out;
  }

  if (ctx->json) {
    json_t *steps = json_array();
    for (size_t i = 0; i < rp.nsteps; i++) {
      const struct journal_step *s = &rp.steps[i];
      json_t *o = json_pack("{s:s,s:s,s:s,s:i,s:I,s:I}", "path", s->path,
                            "kind", s->kind ? s->kind : "", "phase",
                            phase_name(s->phase), "attempts", s->attempt,
                            "entered_ms", (json_int_t)s->entered_ms,
                            "finished_ms", (json_int_t)s->finished_ms);
      if (s->outputs)
        json_object_set(o, "outputs", s->outputs);
      if (s->inputs)
        json_object_set(o, "inputs", s->inputs);
      if (s->finished && json_object_get(s->finished, "error"))
        json_object_set(o, "error", json_object_get(s->finished, "error"));
      if (s->finished && json_object_get(s->finished, "rejected_by"))
        json_object_set(o, "rejected_by",
                        json_object_get(s->finished, "rejected_by"));
      if (s->finished && json_object_get(s->finished, "log_error"))
        json_object_set(o, "log_error",
                        json_object_get(s->finished, "log_error"));
      char *tail = logs ? log_tail(j, run.id, s) : NULL;
      if (tail)
        json_object_set_new(o, "log_tail", json_string(tail));
      free(tail);
      json_array_append_new(steps, o);
    }
    json_t *v = json_pack("{s:o,s:o,s:O}", "run", cli_run_json(j, &run),
                          "states", steps, "events", evs);
    cli_print_json(v);
    json_decref(v);
    goto out;
  }

  printf("run       %s\n", run.id);
  /* Every string a user or a step wrote goes through cli_safe. */
  if (*run.file)
    printf("workflow  %s (%s, sha256 %.12s)\n",
           cli_safe(run.workflow, b2, sizeof b2),
           cli_safe(run.file, b1, sizeof b1), run.file_sha256);
  else /* an approval record names a workflow, not a file */
    printf("workflow  %s\n", cli_safe(run.workflow, b2, sizeof b2));
  if (*run.env)
    printf("env       %s\n", cli_safe(run.env, b2, sizeof b2));
  if (*run.release)
    printf("release   %s\n", cli_safe(run.release, b2, sizeof b2));
  {
    char *ps = json_dumps(run.params, JSON_COMPACT | JSON_SORT_KEYS);
    /* JSON escapes the C0 controls but neither DEL nor C1 */
    printf("params    %s\n", ps ? cli_safe(ps, b1, sizeof b1) : "{}");
    free(ps);
  }
  printf("actor     %s\n", cli_safe(run.actor, b2, sizeof b2));
  if (*run.parent)
    printf("parent    %s\n", run.parent);
  const char *shown_status = cli_run_status(j, &run);
  int live = strcmp(shown_status, JOURNAL_STATUS_RUNNING) == 0;
  printf("status    %s\n", cli_safe(shown_status, b1, sizeof b1));
  json_t *ab = abandonment(evs);
  const char *abandoned_at = NULL;
  if (ab) {
    json_t *p = json_object_get(ab, "payload");
    const char *c = json_string_value(json_object_get(p, "comment"));
    const char *was = json_string_value(json_object_get(p, "was"));
    const char *who = json_string_value(json_object_get(p, "actor"));
    abandoned_at = json_string_value(json_object_get(ab, "state"));
    if (abandoned_at && *abandoned_at == '\0')
      abandoned_at = NULL;
    printf("          abandoned by %s%s%s (it was %s; nothing was undone)\n",
           cli_safe(who ? who : "?", b2, sizeof b2),
           c ? ": " : "", c ? cli_safe(c, b1, sizeof b1) : "",
           was ? was : "?");
  }
  printf("started   %s\n", cli_time(run.created_ms, t, sizeof t));
  if (run.finished_ms)
    printf("took      %s\n",
           cli_duration(run.finished_ms - run.created_ms, d, sizeof d));
  /* The states of an instance of a map over a used workflow come right
   * after it, not interleaved with those of the other instances. */
  size_t *order = calloc(rp.nsteps + 1, sizeof *order), norder = 0;
  char *put = calloc(rp.nsteps + 1, 1);
  for (size_t i = 0; order && put && i < rp.nsteps; i++) {
    const struct journal_step *s = &rp.steps[i];
    size_t len = strlen(s->path);
    if (put[i])
      continue;
    order[norder++] = i;
    put[i] = 1;
    if (s->kind == NULL || strcmp(s->kind, "instance") != 0)
      continue;
    for (size_t k = i + 1; k < rp.nsteps; k++)
      if (!put[k] && strncmp(rp.steps[k].path, s->path, len) == 0 &&
          rp.steps[k].path[len] == '/') {
        order[norder++] = k;
        put[k] = 1;
      }
  }
  static const char *const state_head[STATE_COLS] = {
    "STATE", "KIND", "OUTCOME", "START", "TOOK", "DETAIL"};
  table = cli_table_create(STATE_COLS, STATE_RIGHT);
  cli_table_add(table, STATE_COLS, state_head);
  for (size_t oi = 0; oi < norder; oi++) {
    size_t i = order[oi];
    const struct journal_step *s = &rp.steps[i];
    char start[32], took[32] = "-", detail[512] = "";
    cli_duration(s->entered_ms - run.created_ms, start, sizeof start);
    if (s->finished_ms)
      cli_duration(s->finished_ms - s->entered_ms, took, sizeof took);
    const char *e = s->finished
        ? json_string_value(json_object_get(s->finished, "error"))
        : NULL;
    if (e && s->phase != JOURNAL_PHASE_SUCCEEDED)
      snprintf(detail, sizeof detail, "%s", e);
    else if (s->outputs && json_object_size(s->outputs)) {
      char *o = json_dumps(s->outputs, JSON_COMPACT | JSON_SORT_KEYS);
      snprintf(detail, sizeof detail, "%.200s", o ? o : "");
      free(o);
    }
    char outcome[48], path[400];
    step_outcome(j, &rp, i, live, abandoned_at, outcome, sizeof outcome);
    /* branches, map instances and the states of a used workflow (and
     * their undo steps) indented under their state */
    snprintf(path, sizeof path, "%*s%s", 2 * cli_path_depth(s->path), "",
             cli_safe(s->path, b2, sizeof b2));
    const char *row[STATE_COLS] = {path, s->kind ? s->kind : "", outcome,
                                   start, took,
                                   cli_safe(detail, b1, sizeof b1)};
    cli_table_add(table, STATE_COLS, row);
    /* The note and the log lines under a state begin in its KIND column.
     * Turning TLS verification off must not pass unnoticed in review. */
    if (json_is_true(json_object_get(s->inputs, "insecure")))
      cli_table_add(table, 2, (const char *[]){"", "! TLS not verified "
                                                   "(insecure: true)"});
    const char *log_error = json_string_value(json_object_get(s->finished,
                                                              "log_error"));
    if (logs && log_error) {
      char why[600], note[700];
      snprintf(note, sizeof note, "! log incomplete (%s): its last lines, "
               "from the journal", cli_safe(log_error, why, sizeof why));
      cli_table_add(table, 2, (const char *[]){"", note});
    }
    char *tail = logs ? log_tail(j, run.id, s) : NULL;
    for (char *l = tail, *nl; l && *l; l = nl) {
      char line[4 * 2048 + 1], bar[4 * 2048 + 3]; /* a tail is 2 KiB */
      nl = strchr(l, '\n');
      if (nl)
        *nl++ = '\0';
      else
        nl = l + strlen(l);
      snprintf(bar, sizeof bar, "| %s", cli_safe(l, line, sizeof line));
      cli_table_add(table, 2, (const char *[]){"", bar});
    }
    free(tail);
  }
  free(order);
  free(put);
  if (journal_run_is_record(&run)) {
    /* a record never ran: no states to list */
    printf("\na promotion record (%s): it holds one event, which "
           "'--events' shows\n", run.status);
  } else {
    printf("\n");
    code = cli_table_print(table);
  }
  if (events && code == CLI_EXIT_OK) {
    static const char *const event_head[EVENT_COLS] = {"SEQ", "KIND",
                                                       "STATE", "PAYLOAD"};
    cli_table_destroy(table);
    table = cli_table_create(EVENT_COLS, EVENT_RIGHT);
    cli_table_add(table, EVENT_COLS, event_head);
    size_t i;
    json_t *ev;
    json_array_foreach(evs, i, ev) {
      char *pl = json_dumps(json_object_get(ev, "payload"),
                            JSON_COMPACT | JSON_SORT_KEYS);
      char seq[24], cut[PAYLOAD_MAX + sizeof "…"], kind[256];
      const char *p = pl ? pl : "";
      snprintf(seq, sizeof seq, "%lld",
               (long long)json_integer_value(json_object_get(ev, "seq")));
      /* cut at PAYLOAD_MAX bytes, not inside a character, and said so;
       * escaped after the cut, so no \xHH is cut in two */
      if (strlen(p) > PAYLOAD_MAX) {
        size_t keep = cairn_utf8_cut(p, PAYLOAD_MAX);
        memcpy(cut, p, keep);
        memcpy(cut + keep, "…", sizeof "…");
        p = cut;
      }
      p = cli_safe(p, b1, sizeof b1);
      const char *row[EVENT_COLS] = {
        seq,
        cli_safe(json_string_value(json_object_get(ev, "kind")), kind,
                 sizeof kind),
        cli_safe(json_string_value(json_object_get(ev, "state")), b2,
                 sizeof b2),
        p};
      cli_table_add(table, EVENT_COLS, row);
      free(pl);
    }
    printf("\n");
    code = cli_table_print(table);
  }
out:
  cli_table_destroy(table);
  json_decref(evs);
  if (have_rp)
    journal_replay_release(&rp);
  if (have_run)
    journal_run_release(&run);
  journal_close(j);
  return code;
}
