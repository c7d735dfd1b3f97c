/* The command line: the command table, option parsing, output and the
 * exit codes. Only cli/ prints or exits. */
#ifndef CAIRN_CLI_H
#define CAIRN_CLI_H

#include <stdio.h>

#include "common/error.h"
#include "engine/run.h"
#include "journal/journal.h"

/* Exit codes (documented in docs/cli.md and cairn(1)). */
enum cli_exit {
  CLI_EXIT_OK = 0,          /* done / succeeded */
  CLI_EXIT_FAILED = 1,      /* the run failed (and was rolled back) */
  CLI_EXIT_USAGE = 2,       /* bad usage, invalid workflow, bad input */
  CLI_EXIT_INTERRUPTED = 3, /* interrupted, or waiting for a decision */
  CLI_EXIT_LOCKED = 4,      /* another run holds the lock */
  CLI_EXIT_GATE = 5,        /* promotion gate refused */
  CLI_EXIT_ROLLBACK = 6,    /* rollback failed */
};

struct cli_command;

struct cli_ctx {
  const char *prog;         /* "cairn" */
  const struct cli_command *cmd; /* the command running (its flags say
                                    whether --help lists --json) */
  const char *journal_opt;  /* --journal, or NULL */
  const char *key_file;     /* --key-file, or NULL ($CAIRN_KEY_FILE) */
  int json;                 /* --json */
  int tty;                  /* stdout is a terminal */
  int color;                /* tty and NO_COLOR unset */
};

enum cli_cmd_flags {
  CLI_JSON = 1 << 0,   /* accepts --json */
  CLI_ENGINE = 1 << 1, /* runs the engine: main pre-faults its heap and
                          ignores SIGPIPE */
};

struct cli_command {
  const char *name;
  int (*fn)(int argc, char **argv, struct cli_ctx *ctx);
  unsigned flags;
  const char *summary;
};

/* ---- options (cli/args.c) ---- */

enum cli_opt_type {
  CLI_OPT_FLAG,    /* int *: set to 1 */
  CLI_OPT_STRING,  /* const char **: last one wins */
  CLI_OPT_LIST,    /* struct cli_list *: every occurrence */
  CLI_OPT_INT,     /* long *: a non-negative integer */
};

struct cli_list {
  const char **items; /* malloc'd array of borrowed argv strings */
  size_t n;
};

struct cli_option {
  const char *name;     /* long name without "--"; NULL ends the table; a
                           one-letter name is also taken as "-x" (give
                           the long spelling its own row with the same
                           value) */
  enum cli_opt_type type;
  void *value;
  const char *arg;      /* name of the argument in help, e.g. "FILE" */
  const char *help;
};

/* Option rows that resume, rollback and reject share: each goes on with
 * a run already journaled. */
#define CLI_OPTION_ALLOW_SUPERSEDED(flag)                                    \
  {"allow-superseded", CLI_OPT_FLAG, &(flag), NULL,                          \
   "go on although a newer run of the workflow and environment has "        \
   "succeeded since (journaled)"}
#define CLI_OPTION_SECRET_SETS(list)                                         \
  {"set", CLI_OPT_LIST, &(list), "NAME=VALUE",                               \
   "give a secret param again (the journal never kept it; repeatable)"}

/* Parses argv (argv[0] is the command name) against opts; --help, --json
 * and --journal are always understood (--help lists --json only when
 * ctx->cmd has CLI_JSON: a command without it refuses --json itself). Positional arguments are moved to
 * the front of argv+1 and counted in *npos. Returns 0 to go on, 1 when
 * --help was printed (exit 0), or CLI_EXIT_USAGE after printing a
 * one-line error and the usage line. usage is "cairn run FILE [options]";
 * description is printed under it by --help. */
int cli_parse(int argc, char **argv, struct cli_ctx *ctx,
              const struct cli_option *opts, const char *usage,
              const char *description, int *npos);
void cli_list_release(struct cli_list *l);

/* ---- shared helpers (cli/main.c) ---- */

/* Prints "cairn: MESSAGE" (and "hint" lines are part of message) to
 * stderr, one line. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints a workflow loader error on stderr, one line; then (NULL for
 * none) is added after "; " to say what the error stops. */
void cli_workflow_error(const struct cairn_error *err, const char *then);
/* With --json, the last line of a run, resume or rollback that ended
 * before it had a result (bad input, a lock, a refusal): {"kind":
 * "result", "status": "error", "exit_code": code, "message": the last
 * error said}. Nothing for code 0 or without --json. */
void cli_error_result(const struct cli_ctx *ctx, int code);
/* Maps a negative error code to an exit code. */
int cli_exit_for(int code);
/* cli_open_journal's create, when the journal is missing. */
enum cli_journal_missing {
  CLI_JOURNAL_MUST_EXIST = 0, /* an error (exit 2) */
  CLI_JOURNAL_CREATE = 1,     /* create it */
  CLI_JOURNAL_IF_ANY = 2,     /* return 0 with *out NULL, printing nothing:
                                 for a command that reads before it knows
                                 whether it will write */
};
/* Opens the journal of this working directory (or --journal /
 * CAIRN_JOURNAL). create: see enum cli_journal_missing. On failure prints
 * the error and returns the exit code to use; 0 on success. *out is owned by
 * the caller (journal_close). The key of --key-file (else $CAIRN_KEY_FILE)
 * is read before the journal is opened and given to it (journal_set_key):
 * opened for writing, a keyed journal refuses to open without its key. */
int cli_open_journal(struct cli_ctx *ctx, int create, int readonly,
                     struct journal **out);
/* Loads a run by id or prefix, printing an error when none. Returns 0 or
 * an exit code. */
int cli_get_run(struct journal *j, const char *id, struct journal_run *out);
/* Loads the workflow file run was started from into *wf (the caller's, to
 * destroy), or prints the loader's error and that the run cannot do what
 * cannot says ("resume", "be rolled back") until it loads. Returns 0 or
 * CLI_EXIT_USAGE. run is borrowed. */
int cli_run_workflow(const struct journal_run *run, const char *cannot,
                     struct engine_workflow **wf);

/* ---- output (cli/output.c) ---- */

struct cli_progress;
/* A progress printer for run/resume (human lines, a live view on a TTY, or
 * JSON lines). Owned by the caller, freed by cli_progress_destroy. */
struct cli_progress *cli_progress_create(struct cli_ctx *ctx);
void cli_progress_destroy(struct cli_progress *p);
/* Engine callbacks; ud is the struct cli_progress. */
void cli_progress_observe(void *ud, const struct journal_event *ev);
void cli_progress_observed(void *ud); /* draws the live view, flushes */
void cli_progress_tick(void *ud);
/* Prints the end of a run/resume and returns its exit code. */
/* The run goes on from its rejection (cairn reject): its failure for the
 * rejection is what was asked, and the result's exit code 0 (1 when its
 * failure path failed too). */
void cli_progress_rejecting(struct cli_progress *p);
int cli_progress_result(struct cli_progress *p, const struct engine_result *r,
                        const char *journal_path);

/* s as it may go to a terminal: s itself when it holds no control
 * character, else a copy in buf (n bytes, NUL included; cut short when it
 * does not fit) with each byte below 0x20, 0x7f and each C1 control
 * (U+0080 to U+009F, two bytes in UTF-8) written as \xHH, so a value
 * from a workflow, a param or a step's output cannot move the cursor or
 * clear the screen. For the human tables, not for JSON (which escapes its
 * own). s is borrowed; the result lives as long as s and buf. */
const char *cli_safe(const char *s, char *buf, size_t n);
/* The length of the control character at p (below 0x20, 0x7f, or a C1
 * control, two bytes in UTF-8), 1 for a byte that starts no UTF-8
 * character, or 0 when there is neither there. p points into a
 * NUL-terminated string. */
size_t cli_control_len(const unsigned char *p);
/* s (borrowed; NULL reads as "") as a new JSON string, with each byte
 * that is not UTF-8 replaced by '?' (jansson refuses such text, and a
 * field it refused would vanish); NULL only when out of memory. */
json_t *cli_text(const char *s);
/* The length of the character at p that cli_control_len let through (0
 * there): a whole UTF-8 sequence, 1 for ASCII, so a scan that goes by it
 * never takes a continuation byte for a byte that starts none. */
size_t cli_char_len(const unsigned char *p);
/* "1.2s" etc. into buf. */
const char *cli_duration(int64_t ms, char *buf, size_t n);
/* "2026-11-22 19:57:01" (local time) into buf. */
const char *cli_time(int64_t ms, char *buf, size_t n);
/* Prints "↶ rollback plan: undo:a, undo:b" for a rollback.planned
 * payload (borrowed). */
void cli_print_plan_line(json_t *planned);
/* Prints a JSON value as one line to stdout. Steals nothing. */
void cli_print_json(json_t *v);

/* How deep a journal path nests: one level per '/' (a branch, a map
 * instance, a state of a used workflow: "db/start" 1, "a/db/start" 2), the
 * same for an undo path as for the path it undoes ("undo:db/start" 1). */
int cli_path_depth(const char *path);
/* The state whose on_failure decides where a failure of st goes: st
 * itself, unless st is in a used workflow and its on_failure is rollback
 * or fail, which fail the use state instead: then the first use state up
 * the chain that names a state, or the top one (borrowed from wf). */
const struct engine_state *cli_failure_owner(const struct engine_workflow *wf,
                                             const struct engine_state *st);

/* Fills the engine options run and resume share (grace, progress). Returns
 * 0 or an exit code after printing the error. */
int cli_run_options(struct engine_options *o, const char *grace,
                    struct cli_progress *p, struct cli_ctx *ctx);
/* The status to show for a run: a "running" run whose engine is gone is
 * shown as "interrupted". Returns a static string or run->status. */
const char *cli_run_status(struct journal *j, const struct journal_run *run);

/* A run as a JSON object (new reference). */
json_t *cli_run_json(struct journal *j, const struct journal_run *run);

/* ---- commands ---- */

int cli_cmd_run(int argc, char **argv, struct cli_ctx *ctx);
int cli_cmd_resume(int argc, char **argv, struct cli_ctx *ctx);
int cli_cmd_status(int argc, char **argv, struct cli_ctx *ctx);
int cli_cmd_history(int argc, char **argv, struct cli_ctx *ctx);
int cli_cmd_show(int argc, char **argv, struct cli_ctx *ctx);
int cli_cmd_validate(int argc, char **argv, struct cli_ctx *ctx);
int cli_cmd_graph(int argc, char **argv, struct cli_ctx *ctx);
int cli_cmd_verify(int argc, char **argv, struct cli_ctx *ctx);
int cli_cmd_version(int argc, char **argv, struct cli_ctx *ctx);
int cli_cmd_simulate(int argc, char **argv, struct cli_ctx *ctx);
int cli_cmd_plan(int argc, char **argv, struct cli_ctx *ctx);
int cli_cmd_rollback(int argc, char **argv, struct cli_ctx *ctx);
int cli_cmd_adapters(int argc, char **argv, struct cli_ctx *ctx);
int cli_cmd_report(int argc, char **argv, struct cli_ctx *ctx);
int cli_cmd_approve(int argc, char **argv, struct cli_ctx *ctx);
int cli_cmd_reject(int argc, char **argv, struct cli_ctx *ctx);
int cli_cmd_abandon(int argc, char **argv, struct cli_ctx *ctx);
int cli_cmd_promote(int argc, char **argv, struct cli_ctx *ctx);
int cli_cmd_export(int argc, char **argv, struct cli_ctx *ctx);

/* ---- simulation (cli/cmd_simulate.c), shared with plan ---- */

/* Simulates wf (engine_simulate) with env, sets and sim; events go to
 * observe(ud). Everything is borrowed. */
int cli_simulate(const struct engine_workflow *wf, const char *env,
                 const struct cli_list *sets, const struct engine_sim *sim,
                 engine_observe_cb observe, void *ud,
                 struct engine_result *res, struct cairn_error *err);
/* The exit code a real run that ended like res would give. */
int cli_sim_exit_code(const struct engine_result *res);

#endif
