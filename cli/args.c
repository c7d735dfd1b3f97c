/* Option parsing for every command: one table per command (git's
 * parse-options shape), on top of getopt_long. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define MAX_OPTS 32

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
      const char *what = optopt > 0 && optopt < 256 ? shortopt
                                                    : argv[optind - 1];
      fprintf(stderr, "%s: %s '%s' (hint: see '%s %s --help')\n",
              ctx->prog, c == ':' ? "missing value for" : "unknown option",
              what, ctx->prog, argv[0]);
      return CLI_EXIT_USAGE;
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
      long v = strtol(optarg, &end, 10);
      if (*optarg == '\0' || *end != '\0' || v < 0) {
        fprintf(stderr, "%s: option '--%s' needs a non-negative integer, "
                        "got '%s'\n", ctx->prog, o->name, optarg);
        return CLI_EXIT_USAGE;
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
