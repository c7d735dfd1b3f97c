/* cairn report: one run's section of the page — its header, the timeline
 * of its state paths as an inline SVG Gantt chart, a legend and a table of
 * the steps — rebuilt from the run's events (journal_replay and one pass
 * over the events for what replay does not keep). */
#include <stdlib.h>
#include <string.h>

#include "cli/report.h"
#include "journal/events.h"

/* Chart geometry, in SVG user units (the SVG scales to the page width). */
#define SVG_W 1000
#define LABEL_X 8        /* labels start here, indented per depth */
#define CHART_X0 280     /* time 0 */
#define CHART_W 660      /* room for "×3" after the longest bar */
#define AXIS_Y 30        /* the time axis line */
#define ROW_Y0 40        /* first row */
#define ROW_H 22
#define BAR_H 14
#define LABEL_MAX 34     /* bytes of a label before it is cut */

/* What replay does not keep: read from the events in one pass. */
struct scan {
  int64_t first_ms;     /* first event */
  int64_t last_ms;      /* last event: the end of anything still open */
  int64_t rollback_ms;  /* the rollback's start (transition to rollback or
                           rollback.requested), 0 when none */
  json_t *starts;       /* path -> [time of action.started, attempt >= 2,
                           of the latest entry of that path] */
  char *error;          /* run.finished's error, or NULL */
};

static int scan_event(const struct journal_event *ev, void *ud)
{
  struct scan *s = ud;
  if (s->first_ms == 0)
    s->first_ms = ev->time_ms;
  s->last_ms = ev->time_ms;
  if (strcmp(ev->kind, JOURNAL_EV_STATE_ENTERED) == 0) {
    json_object_del(s->starts, ev->state); /* a new entry starts afresh */
  } else if (strcmp(ev->kind, JOURNAL_EV_ACTION_STARTED) == 0 &&
             ev->attempt >= 2) {
    json_t *a = json_object_get(s->starts, ev->state);
    if (a == NULL) {
      a = json_array();
      json_object_set_new(s->starts, ev->state, a);
    }
    json_array_append_new(a, json_integer(ev->time_ms));
  } else if (s->rollback_ms == 0 &&
             (strcmp(ev->kind, JOURNAL_EV_ROLLBACK_REQUESTED) == 0 ||
              (strcmp(ev->kind, JOURNAL_EV_TRANSITION) == 0 &&
               json_is_string(json_object_get(ev->payload, "to")) &&
               strcmp(json_string_value(json_object_get(ev->payload, "to")),
                      JOURNAL_ROLLBACK) == 0))) {
    s->rollback_ms = ev->time_ms;
  } else if (strcmp(ev->kind, JOURNAL_EV_RUN_FINISHED) == 0) {
    const char *e = json_string_value(json_object_get(ev->payload, "error"));
    free(s->error);
    s->error = e ? strdup(e) : NULL;
  }
  return 0;
}

/* One bar of the chart. */
struct bar {
  const struct journal_step *step;
  int64_t start, end;
  const char *outcome; /* a word cli_report_class knows */
  int depth;           /* cli_path_depth: branches, map instances and the
                          states of a used workflow sit under their state,
                          an undo row as deep as the path it undoes */
  int undo;
};

static int is_child(const char *parent, const char *path)
{
  size_t n = strlen(parent);
  return strncmp(path, parent, n) == 0 && path[n] == '/';
}

static const char *phase_outcome(const struct journal_step *s, int running)
{
  switch (s->phase) {
  case JOURNAL_PHASE_SUCCEEDED: return "succeeded";
  case JOURNAL_PHASE_FAILED: return "failed";
  case JOURNAL_PHASE_CANCELLED: return "cancelled";
  case JOURNAL_PHASE_INTERRUPTED: return "interrupted";
  case JOURNAL_PHASE_STARTED:
  case JOURNAL_PHASE_RETRY_WAIT:
    return running ? "running" : "interrupted";
  case JOURNAL_PHASE_ENTERED:
    break;
  }
  /* Entered, nothing finished: a probe sent it back for another attempt,
   * or a state that runs no action of its own (parallel, choice, wait,
   * approval, the terminals). */
  if (s->attempt > 0)
    return running ? "running" : "interrupted";
  if (s->kind && strcmp(s->kind, "fail") == 0)
    return "failed";
  return NULL; /* decided by its branches or the run */
}

/* The bars of rp, in replay order (first entry; a state's branches come
 * right after it, the undo paths after the rollback). Ends are computed
 * back to front so a state with branches can take the end of its last
 * branch. */
static struct bar *make_bars(const struct journal_replay *rp,
                             const struct scan *sc, int running)
{
  struct bar *b = calloc(rp->nsteps ? rp->nsteps : 1, sizeof *b);
  if (b == NULL)
    return NULL;
  for (size_t i = rp->nsteps; i-- > 0;) {
    const struct journal_step *s = &rp->steps[i];
    struct bar *r = &b[i];
    int children = 0, failed = 0, cancelled = 0, open = 0, interrupted = 0;
    int64_t end = s->entered_ms;

    r->step = s;
    r->start = s->entered_ms;
    r->undo = strncmp(s->path, JOURNAL_UNDO_PREFIX,
                      strlen(JOURNAL_UNDO_PREFIX)) == 0;
    r->depth = cli_path_depth(s->path);
    for (size_t k = i + 1; k < rp->nsteps; k++) {
      if (!is_child(s->path, rp->steps[k].path))
        continue;
      children++;
      if (b[k].end > end)
        end = b[k].end;
      failed += strcmp(b[k].outcome, "failed") == 0;
      cancelled += strcmp(b[k].outcome, "cancelled") == 0;
      open += strcmp(b[k].outcome, "running") == 0;
      interrupted += strcmp(b[k].outcome, "interrupted") == 0;
    }
    r->outcome = phase_outcome(s, running);
    if (s->finished_ms) {
      r->end = s->finished_ms;
    } else if (r->outcome && (strcmp(r->outcome, "running") == 0 ||
                              strcmp(r->outcome, "interrupted") == 0)) {
      r->end = sc->last_ms;
    } else if (children) {
      r->end = end;
    } else {
      /* A choice, wait or approval lasts until the run moved on: the next
       * path entered after it; the last one ends with the run. */
      r->end = sc->last_ms;
      for (size_t k = i + 1; k < rp->nsteps; k++)
        if (rp->steps[k].entered_ms >= s->entered_ms) {
          r->end = rp->steps[k].entered_ms;
          break;
        }
      /* (an abandoned run stood there until it was abandoned) */
      if (!running && rp->current == NULL && i + 1 == rp->nsteps &&
          strcmp(rp->status, JOURNAL_STATUS_ABANDONED) != 0)
        r->end = s->entered_ms;
    }
    if (r->outcome == NULL) {
      if (failed)
        r->outcome = "failed";
      else if (open)
        r->outcome = "running";
      else if (interrupted)
        r->outcome = "interrupted";
      else if (cancelled && cancelled == children)
        r->outcome = "cancelled";
      else if (running && rp->current && strcmp(rp->current, s->path) == 0)
        r->outcome = "running"; /* waiting there: wait, approval */
      else if (strcmp(rp->status, JOURNAL_STATUS_ABANDONED) == 0 &&
               s->kind && strcmp(s->kind, "approval") == 0 &&
               i + 1 == rp->nsteps)
        r->outcome = "abandoned"; /* it waited there: cairn abandon */
      else
        r->outcome = children ? "succeeded" : "passed";
    }
    if (r->end < r->start)
      r->end = r->start;
  }
  return b;
}

/* ---- the chart --------------------------------------------------------- */

static double xat(int64_t t, int64_t t0, int64_t span)
{
  return CHART_X0 + (double)(t - t0) * CHART_W / (double)span;
}

/* A tick step of 1, 2 or 5 times a power of ten ms, for at most 8 ticks. */
static int64_t tick_step(int64_t span)
{
  static const int m[] = {1, 2, 5};
  for (int64_t p = 1;; p *= 10)
    for (int i = 0; i < 3; i++)
      if (span / (m[i] * p) <= 8)
        return m[i] * p;
}

static void write_chart(FILE *f, const struct journal_replay *rp,
                        const struct bar *b, const struct scan *sc,
                        int64_t t0, const char *run_id)
{
  int64_t tend = t0 + 1;
  for (size_t i = 0; i < rp->nsteps; i++)
    if (b[i].end > tend)
      tend = b[i].end;
  if (sc->rollback_ms > tend)
    tend = sc->rollback_ms;
  int64_t span = tend - t0, step = tick_step(span);
  int rows_end = ROW_Y0 + (int)rp->nsteps * ROW_H;
  /* the rollback marker's label goes under the rows, clear of the bars */
  int h = rows_end + (sc->rollback_ms ? 20 : 8);
  char d[32];

  fprintf(f, "<svg class=\"gantt\" viewBox=\"0 0 %d %d\" width=\"%d\" "
             "height=\"%d\" role=\"img\" aria-label=\"timeline of run ",
          SVG_W, h, SVG_W, h);
  cli_report_escape(f, run_id);
  fprintf(f, "\">\n");
  /* the time axis: a line, grid lines and labels at each tick */
  fprintf(f, "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n",
          CHART_X0, AXIS_Y, CHART_X0 + CHART_W, AXIS_Y);
  for (int64_t t = 0; t <= span; t += step) {
    double x = xat(t0 + t, t0, span);
    fprintf(f, "<line class=\"grid\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" "
               "y2=\"%d\"/><text class=\"tick\" x=\"%.1f\" y=\"%d\">%s</text>\n",
            x, AXIS_Y - 4, x, rows_end, x, AXIS_Y - 8,
            cli_duration(t, d, sizeof d));
  }
  if (sc->rollback_ms) {
    double x = xat(sc->rollback_ms, t0, span);
    fprintf(f, "<line class=\"rollback\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" "
               "y2=\"%d\"/><text class=\"rollback-label\" x=\"%.1f\" "
               "y=\"%d\">rollback</text>\n",
            x, AXIS_Y, x, rows_end, x + 3, h - 6);
  }
  for (size_t i = 0; i < rp->nsteps; i++) {
    const struct bar *r = &b[i];
    const struct journal_step *s = r->step;
    int y = ROW_Y0 + (int)i * ROW_H;
    double x1 = xat(r->start, t0, span), x2 = xat(r->end, t0, span);
    double w = x2 - x1 < 2 ? 2 : x2 - x1;
    const char *err = s->finished
        ? json_string_value(json_object_get(s->finished, "error"))
        : NULL;

    /* an undo that did its job has the undo colour; one that failed or
     * was cancelled shows that instead */
    fprintf(f, "<g class=\"step %s%s\">",
            r->undo && strcmp(r->outcome, "succeeded") == 0
                ? "undo"
                : cli_report_class(r->outcome),
            r->undo ? " undo-row" : "");
    fprintf(f, "<title>");
    cli_report_escape(f, s->path);
    fprintf(f, ": %s, %s", r->outcome,
            cli_duration(r->end - r->start, d, sizeof d));
    if (s->attempt > 1)
      fprintf(f, ", %d attempts", s->attempt);
    if (err && s->phase != JOURNAL_PHASE_SUCCEEDED) {
      fprintf(f, ": ");
      cli_report_escape(f, err);
    }
    fprintf(f, "</title>");
    fprintf(f, "<text class=\"label\" x=\"%d\" y=\"%d\">",
            LABEL_X + 14 * r->depth, y + BAR_H - 3);
    cli_report_escape_max(f, s->path, LABEL_MAX);
    fprintf(f, "</text><rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" "
               "rx=\"2\"/>",
            x1, y, w, BAR_H);
    /* each retry starts where a white cut crosses the bar */
    json_t *starts = json_object_get(sc->starts, s->path), *v;
    size_t k;
    json_array_foreach(starts, k, v) {
      double x = xat(json_integer_value(v), t0, span);
      fprintf(f, "<line class=\"attempt\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" "
                 "y2=\"%d\"/>", x, y, x, y + BAR_H);
    }
    if (s->attempt > 1)
      fprintf(f, "<text class=\"attempts\" x=\"%.1f\" y=\"%d\">×%d</text>",
              x1 + w + 4, y + BAR_H - 3, s->attempt);
    fprintf(f, "</g>\n");
  }
  fprintf(f, "</svg>\n");
}

static void write_legend(FILE *f)
{
  static const char *const items[][2] = {
    {"succeeded", "succeeded"},
    {"passed", "passed (no action of its own)"},
    {"failed", "failed or timed out"},
    {"cancelled", "cancelled"},
    {"running", "running or waiting"},
    {"interrupted", "interrupted"},
    {"abandoned", "abandoned while waiting"},
    {"undo", "undo step (after the rollback marker)"},
  };
  fprintf(f, "<ul class=\"legend\">");
  for (size_t i = 0; i < sizeof items / sizeof items[0]; i++)
    fprintf(f, "<li><span class=\"swatch %s\"></span>%s</li>", items[i][0],
            items[i][1]);
  fprintf(f, "<li><span class=\"swatch cut\"></span>a retry started "
             "(×N: N attempts)</li>"
             "<li><span class=\"swatch rb\"></span>rollback started</li>"
             "</ul>\n");
}

/* ---- the header and the steps table ------------------------------------ */

static void row(FILE *f, const char *name, const char *value)
{
  fprintf(f, "<tr><th>%s</th><td>", name);
  cli_report_escape(f, value && *value ? value : "-");
  fprintf(f, "</td></tr>\n");
}

static void write_header(FILE *f, struct journal *j,
                         const struct journal_run *run, const struct scan *sc)
{
  char t[32], d[32];
  const char *status = cli_run_status(j, run);
  char *params = json_dumps(run->params, JSON_COMPACT | JSON_SORT_KEYS);

  fprintf(f, "<table class=\"kv\">\n");
  row(f, "run", run->id);
  row(f, "workflow", run->workflow);
  row(f, "file", run->file);
  row(f, "file sha256", run->file_sha256);
  row(f, "environment", run->env);
  row(f, "release", run->release);
  row(f, "params", params);
  row(f, "actor", run->actor);
  row(f, "parent", run->parent);
  fprintf(f, "<tr><th>status</th><td><span class=\"status %s\">",
          cli_report_class(status));
  cli_report_escape(f, status);
  fprintf(f, "</span></td></tr>\n");
  row(f, "started", cli_time(run->created_ms, t, sizeof t));
  row(f, "took", run->finished_ms ? cli_duration(run->finished_ms -
                                                 run->created_ms, d, sizeof d)
                                  : NULL);
  if (sc->error)
    row(f, "error", sc->error);
  fprintf(f, "</table>\n");
  free(params);
}

static void write_steps(FILE *f, const struct journal_replay *rp,
                        const struct bar *b, int64_t t0)
{
  char at[32], took[32];
  fprintf(f, "<table class=\"steps\">\n<thead><tr><th>state</th><th>kind</th>"
             "<th>outcome</th><th>start</th><th>took</th><th>attempts</th>"
             "<th>detail</th></tr></thead>\n<tbody>\n");
  for (size_t i = 0; i < rp->nsteps; i++) {
    const struct journal_step *s = b[i].step;
    const char *err = s->finished
        ? json_string_value(json_object_get(s->finished, "error"))
        : NULL;
    fprintf(f, "<tr><td class=\"path\">");
    cli_report_escape(f, s->path);
    fprintf(f, "</td><td>");
    cli_report_escape(f, s->kind);
    fprintf(f, "</td><td><span class=\"status %s\">%s</span></td>"
               "<td>+%s</td><td>%s</td><td>%d</td><td class=\"detail\">",
            cli_report_class(b[i].outcome), b[i].outcome,
            cli_duration(b[i].start - t0, at, sizeof at),
            cli_duration(b[i].end - b[i].start, took, sizeof took),
            s->attempt);
    if (err && s->phase != JOURNAL_PHASE_SUCCEEDED) {
      cli_report_escape(f, err);
    } else if (s->outputs && json_object_size(s->outputs)) {
      char *o = json_dumps(s->outputs, JSON_COMPACT | JSON_SORT_KEYS);
      cli_report_escape_max(f, o, 300);
      free(o);
    }
    fprintf(f, "</td></tr>\n");
  }
  fprintf(f, "</tbody></table>\n");
}

int cli_report_run(FILE *f, struct journal *j, const struct journal_run *run,
                   struct cairn_error *err)
{
  struct journal_replay rp = {0};
  struct scan sc = {0};
  struct bar *b = NULL;
  int rc;

  sc.starts = json_object();
  if (sc.starts == NULL)
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  rc = journal_event_foreach(j, run->id, 0, scan_event, &sc, err);
  if (rc != 0)
    goto out;
  rc = journal_replay(j, run->id, &rp, err);
  if (rc != 0)
    goto out;
  int running = strcmp(cli_run_status(j, run), JOURNAL_STATUS_RUNNING) == 0;
  b = make_bars(&rp, &sc, running);
  if (b == NULL) {
    rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    goto out;
  }
  int64_t t0 = run->created_ms;
  if (sc.first_ms && sc.first_ms < t0)
    t0 = sc.first_ms;

  fprintf(f, "<section id=\"run\">\n<h2>Run ");
  cli_report_escape(f, run->id);
  fprintf(f, "</h2>\n");
  write_header(f, j, run, &sc);
  fprintf(f, "<h3>Timeline</h3>\n");
  if (rp.nsteps == 0) {
    fprintf(f, "<p>No state was entered.</p>\n");
  } else {
    write_chart(f, &rp, b, &sc, t0, run->id);
    write_legend(f);
    write_steps(f, &rp, b, t0);
  }
  fprintf(f, "</section>\n");
out:
  free(b);
  journal_replay_release(&rp); /* safe on the zeroed struct of a failure */
  json_decref(sc.starts);
  free(sc.error);
  return rc;
}
