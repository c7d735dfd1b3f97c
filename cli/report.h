/* The pieces of `cairn report` shared by cli/cmd_report.c (the page and
 * the history tables) and cli/report_timeline.c (one run's section with
 * its SVG Gantt chart). */
#ifndef CAIRN_CLI_REPORT_H
#define CAIRN_CLI_REPORT_H

#include <stdio.h>

#include "cli/cli.h"

/* Writes s to f with &, <, >, " and ' as character references, so any
 * string from the journal is text in an element or in a quoted
 * attribute, never markup. Every journal string reaches the page through
 * here. s NULL writes nothing. */
void cli_report_escape(FILE *f, const char *s);

/* Like cli_report_escape, at most max bytes of s, cut at a UTF-8
 * character boundary, with "…" when cut. */
void cli_report_escape_max(FILE *f, const char *s, size_t max);

/* The CSS class of a status or outcome word: s itself when it is one of
 * the words the page has colours for, else "other", so a journal string
 * never lands unescaped in a class attribute. Returns s or a static
 * string. */
const char *cli_report_class(const char *s);

/* Writes the section of run (borrowed) to f: its header (workflow, file,
 * env, release, params, actor, parent, status, times, error), an inline
 * SVG Gantt chart of its state paths (time axis, one bar per path,
 * branches under their state, attempts, the rollback marker, the undo
 * steps), a legend, and a table of the steps. Returns 0, or a negative
 * CAIRN_E_* code with err filled when the run's events cannot be read. */
int cli_report_run(FILE *f, struct journal *j, const struct journal_run *run,
                   struct cairn_error *err);

#endif
