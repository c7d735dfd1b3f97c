/* Option parsing for every command: one table per command (git's
 * parse-options shape), on top of getopt_long. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define MAX_OPTS 32

/* The commands whose --json output ends with a result line even when they
 * cannot start (docs/cli.md, "cairn run"): options they cannot parse end
 * it with one too. */
static const char *const result_commands[] = {"run", "resume", "rollback"};

/* Whether --json is among the arguments, read or not yet (an error stops
 * getopt before the ones that follow it). */
static int wants_json(int argc, char **argv, int json)
{
  for (int i = 1; i < argc && !json; i++) {
    if (strcmp(argv[i], "--") == 0)
      break;
    json = strcmp(argv[i], "--json") == 0;
  }
  return json;
}

/* A usage error of cli_parse: msg (through cli_error, so a result line
 * can repeat it), then, with --json, a command's result line. */
static int usage_error(struct cli_ctx *ctx, int argc, char **argv, int json,
                       const char *msg)
{
  cli_error("%s", msg);
  if (ctx->cmd && wants_json(argc, argv, json))
    for (size_t i = 0; i < sizeof result_commands / sizeof *result_commands;
         i++)
      if (strcmp(ctx->cmd->name, result_commands[i]) == 0) {
        ctx->json = 1;
        cli_error_result(ctx, CLI_EXIT_USAGE);
      }
  return CLI_EXIT_USAGE;
}

/* The spelling of the long option getopt_long just returned (argv borrowed):
 * its own element, or the one before when its value was the next. */
static const char *long_spelling(char **argv)
{
  if (optarg && optind >= 2 && optarg == argv[optind - 1])
    return argv[optind - 2];
  return argv[optind - 1];
}

/* 1 when name[0..len) is the whole name of one of the long options lo. */
static int known_long(const struct option *lo, const char *name, size_t len)
{
  for (; lo->name != NULL; lo++)
    if (strlen(lo->name) == len && strncmp(lo->name, name, len) == 0)
      return 1;
  return 0;
}

static void print_help(const struct cli_option *opts, const char *usage,
                       const char *description, int json)
{
  printf("usage: %s\n", usage);
  if (description)
    printf("\n%s\n", description);
  printf("\noptions:\n");
  for (const struct cli_option *o = opts; o && o->name; o++) {
    char left[64];
    snprintf(left, sizeof left, "%s%s%s%s", o->name[1] ? "--" : "-",
             o->name, o->arg ? " " : "", o->arg ? o->arg : "");
    if (strlen(left) > 24) /* its own line: the help keeps its column */
      printf("  %s\n  %-24s %s\n", left, "", o->help);
    else
      printf("  %-24s %s\n", left, o->help);
  }
  if (json)
    printf("  %-24s %s\n", "--json", "print JSON lines for scripts");
  printf("  %-24s %s\n", "--journal PATH",
         "the journal (default: .cairn/journal.db found upwards, or "
         "$CAIRN_JOURNAL)");
  printf("  %-24s %s\n", "--key-file FILE",
         "the key of a keyed journal (or $CAIRN_KEY_FILE)");
  printf("  %-24s %s\n", "--help", "show this help");
}

int cli_parse(int argc, char **argv, struct cli_ctx *ctx,
              const struct cli_option *opts, const char *usage,
              const char *description, int *npos)
{
  struct option lo[MAX_OPTS + 5];
  /* ":h" and each one-letter option, with ':' when it takes a value */
  char shorts[3 + 2 * MAX_OPTS] = ":h";
  size_t ns = 2;
  size_t n = 0;
  int help = 0, json = 0;
  char msg[512];

  for (const struct cli_option *o = opts; o && o->name && n < MAX_OPTS; o++) {
    lo[n].name = o->name;
    lo[n].has_arg = o->type == CLI_OPT_FLAG ? no_argument : required_argument;
    lo[n].flag = NULL;
    lo[n].val = 1000 + (int)n;
    if (o->name[0] && !o->name[1] && o->name[0] != 'h') {
      shorts[ns++] = o->name[0];
      if (o->type != CLI_OPT_FLAG)
        shorts[ns++] = ':';
    }
    n++;
  }
  shorts[ns] = '\0';
  size_t nopts = n;
  lo[n++] = (struct option){"help", no_argument, NULL, 'h'};
  lo[n++] = (struct option){"journal", required_argument, NULL, 'J'};
  lo[n++] = (struct option){"json", no_argument, NULL, 'j'};
  lo[n++] = (struct option){"key-file", required_argument, NULL, 'K'};
  lo[n] = (struct option){NULL, 0, NULL, 0};

  optind = 1;
  opterr = 0;
  for (;;) {
    int idx = -1;
    /* ":" makes a missing value ':' apart from an unknown option '?'; no
     * "+" so options may follow the positional arguments. */
    int c = getopt_long(argc, argv, shorts, lo, &idx);
    if (c == -1)
      break;
    if (idx >= 0) {
      /* getopt_long takes any unambiguous prefix ("--dry" for --dry-run):
       * cairn does not, so that adding an option never breaks a script
       * that spelt another one short. */
      const char *sp = long_spelling(argv);
      size_t len = strncmp(sp, "--", 2) == 0 ? strcspn(sp + 2, "=") : 0;
      if (len != strlen(lo[idx].name)) {
        snprintf(msg, sizeof msg, "unknown option '%.*s' (hint: write it "
                 "in full: '--%s')", (int)(len + 2), sp, lo[idx].name);
        return usage_error(ctx, argc, argv, json, msg);
      }
    }
    for (size_t k = 0; k < nopts && c > 0 && c < 256 && c != 'h'; k++)
      if (opts[k].name[0] == c && !opts[k].name[1])
        c = 1000 + (int)k; /* "-x": the option named "x" */
    if (c == 'h') {
      help = 1;
      continue;
    }
    if (c == 'J') {
      ctx->journal_opt = optarg;
      continue;
    }
    if (c == 'K') {
      ctx->key_file = optarg;
      continue;
    }
    if (c == 'j') {
      json = 1;
      continue;
    }
    if (c == '?' || c == ':') {
      /* Inside a cluster (-xy) getopt does not move optind: name the
       * letter itself. */
      char shortopt[3] = {'-', (char)optopt, '\0'};
      const char *last = argv[optind - 1];
      const char *what = optopt > 0 && optopt < 256 ? shortopt : last;
      size_t wlen;
      int valued = 0;
      if (strncmp(last, "--", 2) == 0) {
        /* a long option: as typed, never the letter cairn keeps it by
         * ("-J" for --journal) */
        what = last;
        valued = c == '?' && strchr(last, '=') != NULL;
      }
      wlen = valued ? (size_t)(strchr(what, '=') - what) : strlen(what);
      if (valued && known_long(lo, what + 2, wlen - 2))
        snprintf(msg, sizeof msg, "option '%.*s' takes no value (hint: see "
                 "'%s %s --help')", (int)wlen, what, ctx->prog, argv[0]);
      else
        snprintf(msg, sizeof msg, "%s '%s' (hint: see '%s %s --help')",
                 c == ':' ? "missing value for" : "unknown option", what,
                 ctx->prog, argv[0]);
      return usage_error(ctx, argc, argv, json, msg);
    }
    const struct cli_option *o = &opts[c - 1000];
    switch (o->type) {
    case CLI_OPT_FLAG:
      *(int *)o->value = 1;
      break;
    case CLI_OPT_STRING:
      *(const char **)o->value = optarg;
      break;
    case CLI_OPT_LIST: {
      struct cli_list *l = o->value;
      const char **items = realloc(l->items, (l->n + 1) * sizeof *items);
      if (items == NULL) {
        fprintf(stderr, "%s: out of memory\n", ctx->prog);
        return CLI_EXIT_USAGE;
      }
      l->items = items;
      l->items[l->n++] = optarg;
      break;
    }
    case CLI_OPT_INT: {
      char *end;
      errno = 0;
      long v = strtol(optarg, &end, 10);
      if (*optarg == '\0' || *end != '\0' || v < 0) {
        snprintf(msg, sizeof msg, "option '--%s' needs a non-negative "
                 "integer, got '%s'", o->name, optarg);
        return usage_error(ctx, argc, argv, json, msg);
      }
      if (errno == ERANGE) {
        snprintf(msg, sizeof msg, "option '--%s' takes at most %ld, got '%s'",
                 o->name, LONG_MAX, optarg);
        return usage_error(ctx, argc, argv, json, msg);
      }
      *(long *)o->value = v;
      break;
    }
    }
  }
  if (help) {
    print_help(opts, usage, description,
               ctx->cmd == NULL || (ctx->cmd->flags & CLI_JSON));
    return 1;
  }
  if (json)
    ctx->json = 1;
  /* Positionals: move them to argv[1..]. */
  int k = 1;
  for (int i = optind; i < argc; i++)
    argv[k++] = argv[i];
  *npos = k - 1;
  return 0;
}

void cli_list_release(struct cli_list *l)
{
  free(l->items);
  l->items = NULL;
  l->n = 0;
}
