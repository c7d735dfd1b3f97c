/* The tables status, history, show and adapters print for people, laid
 * out the way `helm list` and `kubectl get` do: every row is kept until
 * the table is printed, then each column is as wide as its widest cell
 * (the header is a row like the others, so it is the least width), in
 * characters, not bytes, with two spaces between columns. The last cell of
 * a line is never padded, so an open-ended column (an actor, a payload, an
 * error) goes last, and no padding is left at the end of a line. */
#ifndef CAIRN_CLI_TABLE_H
#define CAIRN_CLI_TABLE_H

#include <stddef.h>

struct cli_table;

/* A table of ncols columns (1 to 32); right has a bit (1u << i) for
 * each column i aligned to the right (a sequence number, a duration).
 * NULL when out of memory, which cli_table_add and cli_table_print take
 * as a table that failed. Owned by the caller: cli_table_destroy. */
struct cli_table *cli_table_create(size_t ncols, unsigned right);
/* Frees t and its cells. NULL does nothing. */
void cli_table_destroy(struct cli_table *t);

/* Adds a row of the n cells of cells, copied: the caller keeps them (a
 * row of no cells, or of more than ncols, is not added; a NULL cell is
 * empty). A row of fewer cells than columns ends with a cell that runs
 * on to the end of the line, whatever the columns it crosses: it is not
 * measured, nor aligned to the right (a note under a row, a log line,
 * a heading). Once an add could not allocate, the table has failed and
 * every later add does nothing. */
void cli_table_add(struct cli_table *t, size_t n, const char *const *cells);

/* Prints the rows to stdout and returns 0; when the table failed, prints
 * the error instead and returns the exit code to use (CLI_EXIT_FAILED). */
int cli_table_print(const struct cli_table *t);

#endif
