/* cairn's entry point: the command table (git's commands[] shape), the
 * shared helpers every command uses, and the map from errors to exit
 * codes. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/proc.h"
#include "common/heap.h"

/* About what a deploy's engine process touches of its heap (a PyAirtable
 * deploy: 2.1 MiB); made resident in one call (common/heap.h). */
#define CLI_ENGINE_HEAP ((size_t)2 << 20)
/* The fewest open files any command is started with (see main). */
#define CLI_NOFILE_MIN 64

static const struct cli_command commands[] = {
  {"run", cli_cmd_run, CLI_JSON | CLI_ENGINE, "run a workflow"},
  {"resume", cli_cmd_resume, CLI_JSON | CLI_ENGINE, "carry on an interrupted run"},
  {"status", cli_cmd_status, CLI_JSON, "show runs in progress, or one run"},
  {"history", cli_cmd_history, CLI_JSON, "list runs, newest first"},
  {"show", cli_cmd_show, CLI_JSON, "show one run: its states and events"},
  {"rollback", cli_cmd_rollback, CLI_JSON | CLI_ENGINE,
   "undo a finished or interrupted run, or print its plan (--dry-run)"},
  {"promote", cli_cmd_promote, CLI_JSON | CLI_ENGINE,
   "run in an environment once its gates pass (exit 5 when refused)"},
  {"approve", cli_cmd_approve, CLI_JSON,
   "approve a waiting run, or a release for an environment"},
  {"reject", cli_cmd_reject, CLI_JSON | CLI_ENGINE,
   "reject a waiting run: it fails at its approval and undoes what it did"},
  {"abandon", cli_cmd_abandon, CLI_JSON,
   "end a waiting or interrupted run where it stands, undoing nothing"},
  {"validate", cli_cmd_validate, CLI_JSON, "check a workflow file"},
  {"graph", cli_cmd_graph, 0, "print the state machine as Graphviz dot or Mermaid"},
  {"plan", cli_cmd_plan, CLI_JSON,
   "print the happy path and where each failure leads"},
  {"simulate", cli_cmd_simulate, CLI_JSON,
   "run the engine with scripted outcomes, touching nothing"},
  {"report", cli_cmd_report, 0,
   "write an HTML page: history per environment, a run's timeline"},
  {"verify", cli_cmd_verify, CLI_JSON, "check the journal's hash chain"},
  {"export", cli_cmd_export, 0, "write every run and event as JSON lines or CSV"},
  {"adapters", cli_cmd_adapters, CLI_JSON,
   "list the actions a state can take, with inputs and outputs"},
  {"version", cli_cmd_version, CLI_JSON, "print the version"},
};

/* The last error said, for the result line of --json (cli_error_result). */
static char last_error[CAIRN_ERRMSG_MAX + 256];

/* An error quotes what it is about (a name from a workflow file, a
 * journal's row, a step's output): its control characters are written
 * as \xHH, so none acts on the terminal. --json keeps it as it is. */
static void say_error(const char *prefix, const char *msg)
{
  static char buf[4 * sizeof last_error];
  fprintf(stderr, "%s%s\n", prefix, cli_safe(msg, buf, sizeof buf));
}

void cli_error(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
  say_error("cairn: ", last_error);
}

void cli_workflow_error(const struct cairn_error *err, const char *then)
{
  const char *sep = then != NULL ? "; " : "";

  if (then == NULL)
    then = "";
  /* A loader error already reads "FILE:LINE:COL: error: ..."; a file that
   * cannot be read at all gets the program's prefix like any error. */
  if (err->code == CAIRN_E_IO) {
    cli_error("%s%s%s", err->msg, sep, then);
  } else {
    snprintf(last_error, sizeof last_error, "%s%s%s", err->msg, sep, then);
    say_error("", last_error);
  }
}

void cli_error_result(const struct cli_ctx *ctx, int code)
{
  if (!ctx->json || code == CLI_EXIT_OK)
    return;
  /* cli_text: a message quoting bytes that are not UTF-8 (a file name,
   * an edited journal row) must not lose the line */
  json_t *v = json_pack("{s:s,s:s,s:i,s:o}", "kind", "result", "status",
                        "error", "exit_code", code, "message",
                        cli_text(last_error));
  cli_print_json(v);
  json_decref(v);
}

int cli_exit_for(int code)
{
  switch (code) {
  case 0:
    return CLI_EXIT_OK;
  case CAIRN_E_LOCKED:
    return CLI_EXIT_LOCKED;
  case CAIRN_E_INVAL:
  case CAIRN_E_WORKFLOW:
  case CAIRN_E_TEMPLATE:
  case CAIRN_E_NOTJOURNAL:
  case CAIRN_E_SCHEMA:
  case CAIRN_E_NORUN:
  case CAIRN_E_AMBIGUOUS:
  case CAIRN_E_CHANGED:
  case CAIRN_E_STATE:
  case CAIRN_E_NOTFOUND:
  case CAIRN_E_IO:
  case CAIRN_E_KEY:
  /* the journal could not be read or written (a full disk, a lock held
   * too long): nothing journaled, nothing failed */
  case CAIRN_E_JOURNAL:
    return CLI_EXIT_USAGE;
  default:
    return CLI_EXIT_FAILED;
  }
}

int cli_open_journal(struct cli_ctx *ctx, int create, int readonly,
                     struct journal **out)
{
  struct cairn_error err = {0};
  char path[4096];
  int rc;

  *out = NULL;
  if (ctx->journal_opt) {
    snprintf(path, sizeof path, "%s", ctx->journal_opt);
  } else {
    rc = journal_find_path(path, sizeof path, NULL, &err);
    if (rc == CAIRN_E_NOTFOUND && create == CLI_JOURNAL_IF_ANY)
      return 0;
    if (rc == CAIRN_E_NOTFOUND && !create) {
      cli_error("no cairn journal here (looked for .cairn/journal.db in "
                "this folder and above; hint: run a workflow first, or "
                "pass --journal PATH)");
      return CLI_EXIT_USAGE;
    }
    if (rc != 0 && rc != CAIRN_E_NOTFOUND) {
      cli_error("%s", err.msg);
      return cli_exit_for(rc);
    }
  }
  if (create != CLI_JOURNAL_CREATE && access(path, F_OK) != 0) {
    if (create == CLI_JOURNAL_IF_ANY && errno == ENOENT)
      return 0;
    cli_error("no journal at '%s': %s", path, strerror(errno));
    return CLI_EXIT_USAGE;
  }
  /* The key first: a bad key file must not create or touch a journal. */
  const char *key_file = ctx->key_file;
  unsigned char *key = NULL;
  size_t key_len = 0;
  if (key_file == NULL && getenv("CAIRN_KEY_FILE") != NULL &&
      *getenv("CAIRN_KEY_FILE") != '\0')
    key_file = getenv("CAIRN_KEY_FILE");
  if (key_file != NULL &&
      (rc = journal_key_load(key_file, &key, &key_len, &err)) != 0) {
    cli_error("%s", err.msg);
    return cli_exit_for(rc);
  }
  unsigned flags = (create == CLI_JOURNAL_CREATE ? JOURNAL_CREATE : 0) |
                   (readonly ? JOURNAL_READONLY : 0);
  rc = journal_open(out, path, flags, &err);
  if (rc == 0)
    rc = journal_set_key(*out, key, key_len, &err);
  journal_key_free(key, key_len);
  if (rc != 0) {
    journal_close(*out);
    *out = NULL;
    cli_error("%s", err.msg);
    return cli_exit_for(rc);
  }
  return 0;
}

int cli_get_run(struct journal *j, const char *id, struct journal_run *out)
{
  struct cairn_error err = {0};
  int rc = journal_run_get(j, id, out, &err);
  if (rc != 0) {
    cli_error("%s", err.msg);
    return cli_exit_for(rc);
  }
  return 0;
}

int cli_run_workflow(const struct journal_run *run, const char *cannot,
                     struct engine_workflow **wf)
{
  struct cairn_error err = {0};
  char then[128];
  if (engine_workflow_load(wf, run->file, &err) == 0)
    return 0;
  snprintf(then, sizeof then, "run %s cannot %s until its workflow file loads",
           run->id, cannot);
  cli_workflow_error(&err, then);
  return CLI_EXIT_USAGE;
}

static void usage(FILE *f)
{
  fprintf(f, "usage: cairn COMMAND [options]\n\n"
             "cairn runs deploys written as state machines in YAML, "
             "journaling every step to SQLite\nso an interrupted deploy "
             "resumes where it stopped.\n\ncommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf(f, "\n'cairn COMMAND --help' tells more about one command; "
             "'man cairn' about all.\n"
             "exit codes: 0 done, 1 failed, 2 usage or invalid input, "
             "3 interrupted or waiting\nfor a decision, 4 locked by another "
             "run, 5 promotion refused, 6 rollback failed.\n");
}

int main(int argc, char **argv)
{
  struct cli_ctx ctx = {0};
  const char *nc = getenv("NO_COLOR");

  ctx.prog = "cairn";
  ctx.tty = isatty(STDOUT_FILENO);
  ctx.color = ctx.tty && !(nc && *nc);

  if (argc < 2) {
    usage(stderr);
    return CLI_EXIT_USAGE;
  }
  const char *name = argv[1];
  if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 ||
      strcmp(name, "help") == 0) {
    if (argc > 2 && strcmp(name, "help") == 0 &&
        strcmp(argv[2], "adapters") == 0) {
      /* The reference of the actions, like git help's guides: the
       * same command, with whatever follows (a name, --json). */
      return cli_cmd_adapters(argc - 2, argv + 2, &ctx);
    }
    if (argc > 2 && strcmp(name, "help") == 0 &&
        strcmp(argv[2], "help") != 0 && strcmp(argv[2], "--help") != 0 &&
        strcmp(argv[2], "-h") != 0) {
      /* "cairn help run" is "cairn run --help"; "cairn help help" is
       * this usage. */
      char *hargv[] = {argv[2], "--help", NULL};
      for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, argv[2]) == 0) {
          ctx.cmd = &commands[i];
          return commands[i].fn(2, hargv, &ctx);
        }
      cli_error("unknown command '%s' (hint: 'cairn help' lists them)",
                argv[2]);
      return CLI_EXIT_USAGE;
    }
    usage(stdout);
    return CLI_EXIT_OK;
  }
  if (strcmp(name, "--version") == 0)
    name = "version";
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(commands[i].name, name) == 0) {
      ctx.cmd = &commands[i];
      if (commands[i].flags & CLI_ENGINE) {
        (void)cairn_heap_prefault(CLI_ENGINE_HEAP); /* only a speed-up */
        /* A reader that goes away (`| head`, a closed terminal or ssh
         * session: SIGPIPE, SIGHUP) must not kill a deploy between a
         * journaled start and its step: its lines are lost (EPIPE, EIO),
         * the run goes on. Children get every signal's default and the
         * open-files limit back (adapters/spawn.c). */
        signal(SIGPIPE, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
      }
      /* Under a few dozen open files, SQLite, libuv and a step's pipes
       * fail wherever the limit falls: a step "fails" and is rolled back,
       * a reader blames the journal, or libuv aborts. Said once, first. */
      long long nofile = cairn_nofile_raise();
      if (strcmp(name, "version") != 0 && nofile >= 0 &&
          nofile < CLI_NOFILE_MIN) {
        cli_error("the open-files limit is %lld and its hard limit allows "
                  "no more; cairn needs at least %d: raise it (ulimit -n "
                  "1024, or LimitNOFILE= for a service)",
                  nofile, CLI_NOFILE_MIN);
        return CLI_EXIT_USAGE;
      }
      return commands[i].fn(argc - 1, argv + 1, &ctx);
    }
  cli_error("unknown command '%s' (hint: 'cairn help' lists them)", name);
  return CLI_EXIT_USAGE;
}
