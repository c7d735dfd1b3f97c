/* One outbound TCP exchange on the loop: connect, write a request, read
 * until the answer is whole, the peer ends the stream, or the deadline
 * passes. Two handles (the socket and the deadline timer); the struct is
 * freed in the close callback of the last one. */
#include <stdlib.h>
#include <string.h>

#include "service.h"

struct svc_exchange {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_connect_t connect;
  uv_write_t write;
  char *out;
  size_t out_len;
  char *in;
  size_t in_len, max_in;
  svc_exchange_complete_fn complete;
  svc_exchange_cb cb;
  void *data;
  int done;                    /* the callback ran or was cancelled */
  int handles;                 /* still open */
};

static void on_close(uv_handle_t *h) {
  svc_exchange *ex = h->data;
  if (--ex->handles > 0)
    return;
  explicit_bzero(ex->out, ex->out_len);
  free(ex->out);
  free(ex->in);
  free(ex);
}

/* Calls the callback once (unless cancelled) and closes the handles. */
static void finish(svc_exchange *ex, int status) {
  if (ex->done)
    return;
  ex->done = 1;
  if (ex->cb)
    ex->cb(ex, status, ex->in ? ex->in : "", ex->in_len, ex->data);
  uv_close((uv_handle_t *)&ex->tcp, on_close);
  uv_close((uv_handle_t *)&ex->timer, on_close);
}

static void on_timeout(uv_timer_t *t) {
  finish(t->data, UV_ETIMEDOUT);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  svc_exchange *ex = h->data;
  (void)hint;
  /* One byte more than max_in: a NUL after the answer for the parsers. */
  if (!ex->in)
    ex->in = malloc(ex->max_in + 1);
  if (!ex->in || ex->in_len >= ex->max_in) {
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  *buf = uv_buf_init(ex->in + ex->in_len, (unsigned)(ex->max_in - ex->in_len));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  svc_exchange *ex = st->data;
  (void)buf;
  if (ex->done)
    return;
  if (n == UV_EOF) {
    if (ex->in)
      ex->in[ex->in_len] = '\0';
    finish(ex, 0);
    return;
  }
  if (n < 0) {
    finish(ex, (int)n);
    return;
  }
  if (n == 0)
    return;
  ex->in_len += (size_t)n;
  ex->in[ex->in_len] = '\0';
  if (ex->complete(ex->in, ex->in_len) || ex->in_len >= ex->max_in)
    finish(ex, 0);
}

static void on_write(uv_write_t *w, int status) {
  svc_exchange *ex = w->data;
  if (status < 0)
    finish(ex, status);
}

static void on_connect(uv_connect_t *req, int status) {
  svc_exchange *ex = req->data;
  uv_buf_t b;
  int rc;
  if (ex->done)
    return;
  if (status < 0) {
    finish(ex, status);
    return;
  }
  b = uv_buf_init(ex->out, (unsigned)ex->out_len);
  ex->write.data = ex;
  rc = uv_write(&ex->write, (uv_stream_t *)&ex->tcp, &b, 1, on_write);
  if (rc == 0)
    rc = uv_read_start((uv_stream_t *)&ex->tcp, on_alloc, on_read);
  if (rc < 0)
    finish(ex, rc);
}

int svc_exchange_start(uv_loop_t *loop, const svc_endpoint *at,
                       const char *out, size_t out_len, size_t max_in,
                       uint64_t timeout_ms, svc_exchange_complete_fn complete,
                       svc_exchange_cb cb, void *data, svc_exchange **exp) {
  svc_exchange *ex = calloc(1, sizeof *ex);
  int rc;
  if (!ex)
    return UV_ENOMEM;
  ex->out = malloc(out_len ? out_len : 1);
  if (!ex->out) {
    free(ex);
    return UV_ENOMEM;
  }
  memcpy(ex->out, out, out_len);
  ex->out_len = out_len;
  ex->max_in = max_in;
  ex->complete = complete;
  ex->cb = cb;
  ex->data = data;

  /* From here on the handles exist: failures go through finish() with no
   * callback, and on_close frees. */
  uv_tcp_init(loop, &ex->tcp);
  uv_timer_init(loop, &ex->timer);
  ex->tcp.data = ex->timer.data = ex->connect.data = ex;
  ex->handles = 2;
  rc = uv_tcp_connect(&ex->connect, &ex->tcp,
                      (const struct sockaddr *)&at->addr, on_connect);
  if (rc == 0)
    rc = uv_timer_start(&ex->timer, on_timeout, timeout_ms, 0);
  if (rc < 0) {
    ex->cb = NULL;
    finish(ex, rc);
    return rc;
  }
  *exp = ex;
  return 0;
}

void svc_exchange_cancel(svc_exchange *ex) {
  ex->cb = NULL;
  finish(ex, UV_ECANCELED);
}
