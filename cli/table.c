/* Aligned columns for the human tables: rows kept, widths measured, then
 * printed (see cli/table.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/table.h"
#include "common/buf.h"
#include "common/utf8.h"

#define GAP 2 /* spaces between two columns */

struct table_row {
  size_t at; /* its first cell in text */
  size_t n;  /* how many cells */
};

struct cli_table {
  size_t ncols;
  unsigned right;            /* bit i: column i aligned to the right */
  struct cairn_buf text;     /* every cell, each ending with its NUL; no
                                cap: as long as what the journal holds */
  struct table_row *rows;
  size_t nrows, cap;
  int failed;                /* a row could not be kept */
  size_t width[];            /* ncols: the widest measured cell of each */
};

struct cli_table *cli_table_create(size_t ncols, unsigned right)
{
  struct cli_table *t;

  if (ncols == 0 || ncols > 8 * sizeof right) /* a bit of right each */
    return NULL;
  t = calloc(1, sizeof *t + ncols * sizeof t->width[0]);
  if (t) {
    t->ncols = ncols;
    t->right = right;
  }
  return t;
}

void cli_table_destroy(struct cli_table *t)
{
  if (t == NULL)
    return;
  cairn_buf_release(&t->text);
  free(t->rows);
  free(t);
}

/* Whether cell c of a row of n cells has a column of its own, or runs on
 * to the end of the line. */
static int measured(const struct cli_table *t, size_t c, size_t n)
{
  return n == t->ncols || c + 1 < n;
}

void cli_table_add(struct cli_table *t, size_t n, const char *const *cells)
{
  if (t == NULL || t->failed || n == 0 || n > t->ncols)
    return;
  if (t->nrows == t->cap) {
    size_t cap = t->cap ? 2 * t->cap : 16;
    struct table_row *rows = realloc(t->rows, cap * sizeof *rows);
    if (rows == NULL) {
      t->failed = 1;
      return;
    }
    t->rows = rows;
    t->cap = cap;
  }
  t->rows[t->nrows] = (struct table_row){t->text.len, n};
  for (size_t c = 0; c < n; c++) {
    const char *cell = cells[c] ? cells[c] : "";
    size_t w = cairn_utf8_chars(cell);
    cairn_buf_add(&t->text, cell, strlen(cell) + 1);
    if (measured(t, c, n) && w > t->width[c])
      t->width[c] = w;
  }
  if (t->text.failed)
    t->failed = 1;
  else
    t->nrows++;
}

int cli_table_print(const struct cli_table *t)
{
  if (t == NULL || t->failed) {
    cli_error("out of memory");
    return CLI_EXIT_FAILED;
  }
  for (size_t r = 0; r < t->nrows; r++) {
    const char *cell = t->text.p + t->rows[r].at;
    size_t n = t->rows[r].n, blanks = 0; /* owed before the next text */
    for (size_t c = 0; c < n; c++, cell += strlen(cell) + 1) {
      int own = measured(t, c, n), right = own && (t->right >> c & 1);
      size_t pad = own ? t->width[c] - cairn_utf8_chars(cell) : 0;
      if (right)
        blanks += pad;
      if (*cell) {
        printf("%*s%s", (int)blanks, "", cell);
        blanks = 0;
      }
      if (!right)
        blanks += pad;
      blanks += GAP;
    }
    fputc('\n', stdout);
  }
  return CLI_EXIT_OK;
}
