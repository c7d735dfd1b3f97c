/* cairn report: one self-contained HTML page (inline CSS and SVG, nothing
 * fetched) with each environment's history as a table and one run's
 * timeline as a Gantt chart (cli/report_timeline.c). Reads the journal
 * only; writes the page atomically. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/report.h"
#include "common/file.h"

#define REPORT_MODE 0644 /* the journal it reads is redacted; see cli.md */

/* Every colour of the page, once: the CSS rules for bars, legend swatches
 * and status labels are generated from it, and cli_report_class accepts
 * exactly these words. */
static const struct {
  const char *word;
  const char *color;
} palette[] = {
  {"succeeded", "#2e7d32"},
  {"passed", "#81c784"},
  {"failed", "#c62828"},
  {"cancelled", "#9e9e9e"},
  {"running", "#1565c0"},
  {"interrupted", "#ef6c00"},
  {"undo", "#6a1b9a"},
  {"rolled_back", "#ad1457"},
  {"rollback_failed", "#7f0000"},
  {"abandoned", "#757575"},
};

void cli_report_escape_max(FILE *f, const char *s, size_t max)
{
  size_t n = 0;
  if (s == NULL)
    return;
  for (const char *p = s; *p; p++, n++) {
    const unsigned char *u = (const unsigned char *)p;
    size_t c = cli_control_len(u);

    /* cut before a character, never inside one (continuation bytes are
     * 10xxxxxx) */
    if (n >= max && (*u & 0xC0) != 0x80) {
      fputs("…", f);
      return;
    }
    /* XML cannot hold most controls even as &#27;, and HTML calls them
     * errors: shown as \xHH, as on the terminal. Tabs and line ends
     * stay (a log tail keeps its lines). */
    if (c != 0 && *p != '\t' && *p != '\n' && *p != '\r') {
      for (size_t i = 0; i < c; i++)
        fprintf(f, "\\x%02x", u[i]);
      p += c - 1;
      n += c - 1;
      continue;
    }
    if (*u >= 0x80) { /* a whole character: cli_control_len let it by */
      c = cli_char_len(u);
      fwrite(p, 1, c, f);
      p += c - 1;
      n += c - 1;
      continue;
    }
    switch (*p) {
    case '&': fputs("&amp;", f); break;
    case '<': fputs("&lt;", f); break;
    case '>': fputs("&gt;", f); break;
    case '"': fputs("&quot;", f); break;
    case '\'': fputs("&#39;", f); break;
    default: fputc(*p, f); break;
    }
  }
}

void cli_report_escape(FILE *f, const char *s)
{
  cli_report_escape_max(f, s, (size_t)-1);
}

const char *cli_report_class(const char *s)
{
  for (size_t i = 0; s && i < sizeof palette / sizeof palette[0]; i++)
    if (strcmp(s, palette[i].word) == 0)
      return s;
  return "other";
}

static void write_style(FILE *f)
{
  fputs("<style>\n"
        "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;"
        "background:#fff}\n"
        "h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px}"
        "h3{font-size:15px;margin:18px 0 6px}\n"
        ".meta{color:#666;margin:0}\n"
        ".untrusted{color:#a00;font-weight:bold}\n"
        "table{border-collapse:collapse;margin:4px 0 12px}\n"
        "th,td{text-align:left;padding:3px 10px;border-bottom:1px solid #e3e3e3;"
        "vertical-align:top}\n"
        "thead th{background:#f4f4f4}\n"
        "table.kv th{color:#555;font-weight:normal}\n"
        "td.id,td.path,td.detail{font-family:ui-monospace,monospace;"
        "font-size:13px}\n"
        "td.detail{max-width:520px;overflow-wrap:anywhere}\n"
        "tr.chosen{background:#fff8e1}\n"
        ".status{padding:1px 7px;border-radius:9px;color:#fff;"
        "background:#607d8b;white-space:nowrap}\n"
        "svg.gantt{max-width:100%;height:auto;font:12px ui-monospace,"
        "monospace;background:#fcfcfc;border:1px solid #e3e3e3}\n"
        ".gantt .axis{stroke:#444}.gantt .grid{stroke:#e6e6e6}\n"
        ".gantt .tick{fill:#555;text-anchor:middle;font-size:11px}\n"
        ".gantt .label{fill:#222}.gantt .undo-row .label{fill:#6a1b9a}\n"
        ".gantt .attempt{stroke:#fff;stroke-width:2}\n"
        ".gantt .attempts{fill:#222;font-weight:bold}\n"
        ".gantt .rollback{stroke:#6a1b9a;stroke-width:1.5;"
        "stroke-dasharray:5 3}\n"
        ".gantt .rollback-label{fill:#6a1b9a;font-weight:bold}\n"
        ".gantt .step rect{fill:#607d8b}\n"
        "ul.legend{list-style:none;padding:0;margin:6px 0 12px;display:flex;"
        "flex-wrap:wrap;gap:4px 18px}\n"
        ".swatch{display:inline-block;width:14px;height:10px;margin-right:5px;"
        "border-radius:2px;background:#607d8b}\n"
        ".swatch.cut{background:linear-gradient(90deg,#2e7d32 45%,#fff 45%,"
        "#fff 60%,#2e7d32 60%)}\n"
        ".swatch.rb{background:none;border-left:2px dashed #6a1b9a;"
        "border-radius:0}\n",
        f);
  for (size_t i = 0; i < sizeof palette / sizeof palette[0]; i++)
    fprintf(f, ".step.%s rect{fill:%s}.swatch.%s,.status.%s{background:%s}\n",
            palette[i].word, palette[i].color, palette[i].word,
            palette[i].word, palette[i].color);
  fputs("</style>\n", f);
}

/* ---- the history ------------------------------------------------------- */

/* What the history holds: runs and promotion records (approvals,
 * refusals: rows that never ran, so they have no timeline), newest
 * first. */
struct collected {
  struct journal *j;
  json_t *rows;                     /* every row, as cli_run_json */
  size_t records;                   /* how many of rows are records */
  char newest[JOURNAL_RUN_ID_LEN];  /* the newest real run, or "" */
};

static int collect_run(const struct journal_run *run, void *ud)
{
  struct collected *c = ud;
  if (journal_run_is_record(run))
    c->records++;
  else if (c->newest[0] == '\0')
    memcpy(c->newest, run->id, sizeof c->newest);
  return json_array_append_new(c->rows, cli_run_json(c->j, run)) == 0
             ? 0
             : CAIRN_E_NOMEM;
}

static const char *str(json_t *run, const char *key)
{
  const char *s = json_string_value(json_object_get(run, key));
  return s ? s : "";
}

static void cell(FILE *f, const char *cls, const char *s)
{
  fprintf(f, "<td%s%s%s>", cls ? " class=\"" : "", cls ? cls : "",
          cls ? "\"" : "");
  cli_report_escape(f, *s ? s : "-");
  fprintf(f, "</td>");
}

/* One environment's table, newest first, at most limit rows (0: all). */
static void write_env_history(FILE *f, json_t *runs, const char *env,
                              long limit, const char *chosen)
{
  size_t i, shown = 0, more = 0;
  json_t *r;
  char t[32], d[32];

  fprintf(f, "<h3>");
  if (*env) {
    fprintf(f, "Environment ");
    cli_report_escape(f, env);
  } else {
    fprintf(f, "No environment");
  }
  fprintf(f, "</h3>\n<table class=\"history\">\n<thead><tr><th>run</th>"
             "<th>workflow</th><th>release</th><th>status</th><th>started</th>"
             "<th>took</th><th>actor</th><th>parent</th></tr></thead>\n"
             "<tbody>\n");
  json_array_foreach(runs, i, r) {
    if (strcmp(str(r, "env"), env) != 0)
      continue;
    if (limit > 0 && shown >= (size_t)limit) {
      more++;
      continue;
    }
    shown++;
    int is_chosen = chosen && strcmp(str(r, "id"), chosen) == 0;
    int64_t c = json_integer_value(json_object_get(r, "created_ms"));
    int64_t e = json_integer_value(json_object_get(r, "finished_ms"));
    fprintf(f, "<tr%s><td class=\"id\">", is_chosen ? " class=\"chosen\"" : "");
    if (is_chosen)
      fprintf(f, "<a href=\"#run\">");
    cli_report_escape(f, str(r, "id"));
    fprintf(f, "%s</td>", is_chosen ? "</a>" : "");
    cell(f, NULL, str(r, "workflow"));
    cell(f, NULL, str(r, "release"));
    fprintf(f, "<td><span class=\"status %s\">",
            cli_report_class(str(r, "status")));
    cli_report_escape(f, str(r, "status"));
    fprintf(f, "</span></td>");
    cell(f, NULL, cli_time(c, t, sizeof t));
    cell(f, NULL, e ? cli_duration(e - c, d, sizeof d) : "");
    cell(f, NULL, str(r, "actor"));
    cell(f, "id", str(r, "parent"));
    fprintf(f, "</tr>\n");
  }
  fprintf(f, "</tbody></table>\n");
  if (more)
    fprintf(f, "<p class=\"meta\">%zu older run%s not shown (--limit).</p>\n",
            more, more == 1 ? "" : "s");
}

/* The environments of runs (newest first), in the order they were first
 * deployed to, so dev, staging, prod read top to bottom. New reference. */
static json_t *env_order(json_t *runs)
{
  json_t *envs = json_array(), *seen = json_object();
  for (size_t i = json_array_size(runs); i-- > 0;) {
    const char *e = str(json_array_get(runs, i), "env");
    if (json_object_get(seen, e))
      continue;
    json_object_set_new(seen, e, json_true());
    json_array_append_new(envs, json_string(e));
  }
  json_decref(seen);
  return envs;
}

/* ---- writing the file -------------------------------------------------- */

/* ---- the command ------------------------------------------------------- */

int cli_cmd_report(int argc, char **argv, struct cli_ctx *ctx)
{
  const char *env = NULL, *run_id = NULL, *out = NULL;
  long limit = 100;
  const struct cli_option opts[] = {
    {"env", CLI_OPT_STRING, &env, "NAME", "only this environment"},
    {"run", CLI_OPT_STRING, &run_id, "RUN",
     "the run whose timeline to draw (default: the newest)"},
    {"limit", CLI_OPT_INT, &limit, "N",
     "at most N runs per environment (default 100, 0: all)"},
    {"output", CLI_OPT_STRING, &out, "FILE", "write the page to FILE"},
    {"o", CLI_OPT_STRING, &out, "FILE", "same as --output"},
    {NULL, 0, NULL, NULL, NULL},
  };
  struct journal *j = NULL;
  struct journal_run run = {0};
  struct cairn_error err = {0};
  json_t *runs = NULL, *envs = NULL;
  FILE *f = NULL;
  char *page = NULL;
  size_t page_len = 0;
  int npos = 0, have_run = 0;
  char t[32];
  int code = cli_parse(argc, argv, ctx, opts,
                       "cairn report [--env E] [--run RUN] [--limit N] "
                       "-o FILE.html",
                       "Writes one self-contained HTML page (no network "
                       "fetches): each environment's\nhistory as a table, "
                       "and one run's timeline as a Gantt chart of its "
                       "states.",
                       &npos);
  if (code != 0)
    return code == 1 ? CLI_EXIT_OK : code;
  if (npos != 0) {
    cli_error("report takes no arguments (hint: 'cairn report -o "
              "report.html')");
    return CLI_EXIT_USAGE;
  }
  if (out == NULL || *out == '\0') {
    cli_error("report needs a file to write (hint: 'cairn report -o "
              "report.html')");
    return CLI_EXIT_USAGE;
  }
  code = cli_open_journal(ctx, 0, 1, &j);
  if (code != 0)
    return code;

  runs = json_array();
  struct journal_run_filter filter = {NULL, env, NULL, NULL, 0, 0};
  struct collected c = {j, runs, 0, ""};
  int rc = journal_run_foreach(j, &filter, collect_run, &c, &err);
  if (rc != 0) {
    cli_error("%s", err.msg);
    code = cli_exit_for(rc);
    goto out;
  }
  if (env && json_array_size(runs) == 0) {
    cli_error("no runs in environment '%s' (hint: 'cairn history' lists "
              "the runs)", env);
    code = CLI_EXIT_USAGE;
    goto out;
  }
  /* The newest run, not a record: a record has no timeline to draw. */
  if (run_id || c.newest[0]) {
    code = cli_get_run(j, run_id ? run_id : c.newest, &run);
    if (code != 0)
      goto out;
    have_run = 1;
  }
  envs = env_order(runs);

  /* The page is built in memory, then written whole (common/file.h). */
  f = open_memstream(&page, &page_len);
  if (f == NULL) {
    cli_error("out of memory");
    code = CLI_EXIT_FAILED;
    goto out;
  }
  /* Also well-formed XML (void elements closed), so a test can check its
   * nesting with an XML parser; HTML parsers read it the same way. */
  fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n"
        /* nothing may be loaded from anywhere: styles are inline, there
         * are no scripts, images or fonts */
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src "
        "'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action "
        "'none'\"/>\n"
        "<meta name=\"viewport\" content=\"width=device-width\"/>\n"
        "<title>cairn report</title>\n",
        f);
  write_style(f);
  fputs("</head>\n<body>\n<h1>cairn report</h1>\n<p class=\"meta\">journal ",
        f);
  cli_report_escape(f, journal_path(j));
  size_t nruns = json_array_size(runs) - c.records;
  fprintf(f, " · %zu run%s", nruns, nruns == 1 ? "" : "s");
  if (c.records)
    fprintf(f, " and %zu promotion record%s (approvals, refusals)",
            c.records, c.records == 1 ? "" : "s");
  if (env) {
    fprintf(f, " in ");
    cli_report_escape(f, env);
  }
  fprintf(f, " · written %s</p>\n",
          cli_time(journal_now_ms(), t, sizeof t));
  /* The page shows the runs table and the events as they are: say when
   * they fail verify, as a reader takes a report for the audit trail.
   * A whole pass over the journal, which report (unlike status, history
   * and show, used all the time) can afford. */
  struct journal_verify_result vr;
  struct cairn_error why = {0};
  rc = journal_verify(j, &vr, &why);
  if (rc != 0) {
    const char *what = rc == CAIRN_E_KEY
                           ? "journal not verified: it is keyed and no key "
                             "was given (--key-file)"
                           : "journal fails verification: ";
    fprintf(f, "<p class=\"untrusted\">");
    cli_report_escape(f, what);
    if (rc != CAIRN_E_KEY)
      cli_report_escape(f, why.msg);
    fprintf(f, " (cairn verify)</p>\n");
    char said[4 * CAIRN_ERRMSG_MAX];
    fprintf(stderr, "cairn: warning: %s%s\n", what,
            rc == CAIRN_E_KEY ? "" : cli_safe(why.msg, said, sizeof said));
  }
  if (have_run) {
    rc = cli_report_run(f, j, &run, &err);
    if (rc == CAIRN_E_NOMEM) {
      cli_error("%s", err.msg);
      code = cli_exit_for(rc);
      goto out;
    }
    if (rc != 0) {
      /* events that cannot be read (an edited journal): the page is
       * still written, saying so where the timeline would be */
      char said[4 * CAIRN_ERRMSG_MAX];
      fprintf(f, "<section id=\"run\">\n<h2>Run ");
      cli_report_escape(f, run.id);
      fprintf(f, "</h2>\n<p class=\"untrusted\">its timeline cannot be "
                 "shown: ");
      cli_report_escape(f, err.msg);
      fprintf(f, " (cairn verify)</p>\n</section>\n");
      fprintf(stderr, "cairn: warning: the timeline of run %s cannot be "
              "shown: %s\n", run.id, cli_safe(err.msg, said, sizeof said));
    }
  }
  fprintf(f, "<section id=\"history\">\n<h2>History</h2>\n");
  if (json_array_size(runs) == 0)
    fprintf(f, "<p>No runs yet.</p>\n");
  size_t i;
  json_t *e;
  json_array_foreach(envs, i, e)
    write_env_history(f, runs, json_string_value(e), limit,
                      have_run ? run.id : NULL);
  fprintf(f, "</section>\n</body>\n</html>\n");

  rc = fclose(f) == 0 ? cairn_write_atomic(out, page, page_len, REPORT_MODE,
                                           &err)
                      : cairn_error_set(&err, CAIRN_E_NOMEM, "out of memory");
  f = NULL;
  if (rc != 0) {
    cli_error("%s", err.msg);
    code = CLI_EXIT_USAGE;
    goto out;
  }
  if (!ctx->json)
    printf("wrote %s\n", out);
out:
  if (f) /* a failure while building it: nothing was written */
    fclose(f);
  free(page);
  json_decref(envs);
  json_decref(runs);
  if (have_run)
    journal_run_release(&run);
  journal_close(j);
  return code;
}
