/* The growable buffer of common/buf.h. */
#include "common/buf.h"

#include <stdlib.h>
#include <string.h>

void cairn_buf__add_grow(struct cairn_buf *b, const char *p, size_t n)
{
  if (b->failed || n == 0)
    return;
  if (b->max && b->len + n > b->max) {
    b->failed = 1;
    return;
  }
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    char *np;
    while (cap < b->len + n + 1)
      cap *= 2;
    if ((np = realloc(b->p, cap)) == NULL) {
      b->failed = 1;
      return;
    }
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->len, p, n);
  b->len += n;
  b->p[b->len] = '\0';
}

void cairn_buf_add_i64(struct cairn_buf *b, int64_t v)
{
  char d[24], *e = d + sizeof d, *q = e;

  if (v >= 0 && v < 10) { /* attempts, exit codes: most are one digit */
    d[0] = (char)('0' + v);
    cairn_buf_add(b, d, 1);
    return;
  }
  /* In unsigned arithmetic, so that INT64_MIN negates. */
  uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

  do
    *--q = (char)('0' + u % 10);
  while ((u /= 10) != 0);
  if (v < 0)
    *--q = '-';
  cairn_buf_add(b, q, (size_t)(e - q));
}

void cairn_buf_reset(struct cairn_buf *b)
{
  b->len = 0;
  b->failed = 0;
  if (b->p != NULL)
    b->p[0] = '\0';
}

void cairn_buf_emit(void *ud, const char *p, size_t n)
{
  cairn_buf_add(ud, p, n);
}

void cairn_buf_release(struct cairn_buf *b)
{
  size_t max = b->max;
  free(b->p);
  memset(b, 0, sizeof *b);
  b->max = max;
}
