/* A growable byte buffer, always NUL-terminated, with an optional size
 * cap (curl's dynbuf idea): on a failed allocation or a write past the
 * cap it stops growing and remembers that it failed, so a caller can
 * append freely and check once. */
#ifndef CAIRN_BUF_H
#define CAIRN_BUF_H

#include <stddef.h>

struct cairn_buf {
  char *p;       /* owned; NULL until the first byte */
  size_t len;
  size_t cap;
  size_t max;    /* 0: no cap */
  int failed;    /* an append did not fit or could not allocate */
};

/* Appends n bytes of p (copied). Does nothing once failed. */
void cairn_buf_add(struct cairn_buf *b, const char *p, size_t n);
/* The same with the shape of a sink callback (ud is the buffer). */
void cairn_buf_emit(void *ud, const char *p, size_t n);
/* Frees the bytes and zeroes the buffer (its cap is kept). */
void cairn_buf_release(struct cairn_buf *b);

#endif
