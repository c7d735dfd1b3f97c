/* A growable byte buffer, always NUL-terminated, with an optional size
 * cap (curl's dynbuf idea): on a failed allocation or a write past the
 * cap it stops growing and remembers that it failed, so a caller can
 * append freely and check once. */
#ifndef CAIRN_BUF_H
#define CAIRN_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct cairn_buf {
  char *p;       /* owned; NULL until the first byte */
  size_t len;
  size_t cap;
  size_t max;    /* 0: no cap */
  int failed;    /* an append did not fit or could not allocate */
};

/* The slow path of cairn_buf_add: grows the buffer (or fails) first. */
void cairn_buf__add_grow(struct cairn_buf *b, const char *p, size_t n);

/* Appends n bytes of p (copied). Does nothing once failed. Inline: the
 * canonical JSON and the journal's hash input make millions of small
 * appends, most of which fit. */
static inline void cairn_buf_add(struct cairn_buf *b, const char *p, size_t n)
{
  if (n == 0)
    return;
  if (!b->failed && b->len + n < b->cap &&
      (b->max == 0 || b->len + n <= b->max)) {
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return;
  }
  cairn_buf__add_grow(b, p, n);
}
/* Appends v in decimal. */
void cairn_buf_add_i64(struct cairn_buf *b, int64_t v);
/* Empties the buffer for reuse: keeps its memory, clears failed. */
void cairn_buf_reset(struct cairn_buf *b);
/* The same with the shape of a sink callback (ud is the buffer). */
void cairn_buf_emit(void *ud, const char *p, size_t n);
/* Frees the bytes and zeroes the buffer (its cap is kept). */
void cairn_buf_release(struct cairn_buf *b);

#endif
