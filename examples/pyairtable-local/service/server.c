/* Connections and a minimal HTTP/1.1 server: the request line, headers
 * (Content-Length and Connection; no chunked bodies), keep-alive, bytes
 * arriving in any pieces, one request answered at a time per connection
 * (pipelined requests wait in the buffer), and an idle timeout.
 *
 * A connection has two handles (the socket and the idle timer) and is
 * freed in the close callback of the last one. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "service.h"

#define SVC_MAX_REQUEST (64 * 1024) /* request line, headers and body */
#define SVC_IDLE_MS 15000

typedef struct conn_write {
  uv_write_t req;
  svc_conn *c;
  size_t len;
  char buf[];
} conn_write;

static void process(svc_conn *c);

char *svc_json_object(const char *key, ...) {
  json_t *o = json_object();
  char *text;
  va_list ap;
  va_start(ap, key);
  for (const char *k = key; k; k = va_arg(ap, const char *)) {
    const char *v = va_arg(ap, const char *);
    /* json_string refuses text that is not UTF-8: such a value is left
     * out rather than sent broken. */
    if (v)
      json_object_set_new(o, k, json_string(v));
  }
  va_end(ap);
  /* Keys keep their insertion order (jansson >= 2.8). */
  text = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  return text;
}

static const char *status_text(int status) {
  switch (status) {
  case 200: return "OK";
  case 400: return "Bad Request";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 413: return "Payload Too Large";
  case 414: return "URI Too Long";
  case 431: return "Request Header Fields Too Large";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  default: return "Unknown";
  }
}

/* ---- lifetime ------------------------------------------------------------ */

static void on_conn_close(uv_handle_t *h) {
  svc_conn *c = h->data;
  if (--c->handles > 0)
    return;
  free(c->in);
  free(c);
}

static void conn_close(svc_conn *c) {
  if (c->closing)
    return;
  c->closing = 1;
  *c->pprev = c->next;
  if (c->next)
    c->next->pprev = c->pprev;
  if (c->waiting_health)
    svc_health_forget(c->s, c);
  if (c->proxy)
    svc_gateway_forget(c);
  uv_close((uv_handle_t *)&c->tcp, on_conn_close);
  uv_close((uv_handle_t *)&c->idle, on_conn_close);
}

void svc_server_close_all(svc *s) {
  while (s->conns)
    conn_close(s->conns);
}

static void on_idle(uv_timer_t *t) {
  conn_close(t->data);
}

/* ---- responses ------------------------------------------------------------ */

static void on_write(uv_write_t *req, int status) {
  conn_write *w = (conn_write *)req;
  svc_conn *c = w->c;
  free(w);
  if (c->closing)
    return;
  c->busy = 0;
  if (status < 0 || !c->keep_alive) {
    conn_close(c);
    return;
  }
  uv_timer_start(&c->idle, on_idle, SVC_IDLE_MS, 0);
  process(c);
}

/* The path as logged: printable ASCII only. */
static void log_request(const svc_conn *c, int status) {
  char path[sizeof c->path];
  size_t i;
  for (i = 0; c->path[i] && i + 1 < sizeof path; i++)
    path[i] = (c->path[i] > ' ' && c->path[i] < 127) ? c->path[i] : '?';
  path[i] = '\0';
  printf("%s %s %d\n", c->method[0] ? c->method : "-", path[0] ? path : "-",
         status);
}

void svc_conn_respond(svc_conn *c, int status, const char *json) {
  size_t body = strlen(json) + 1, cap = body + 256;
  conn_write *w;
  int n, rc;
  uv_buf_t b;

  if (c->closing)
    return;
  log_request(c, status);
  w = malloc(sizeof *w + cap);
  if (!w) {
    conn_close(c);
    return;
  }
  n = snprintf(w->buf, cap,
               "HTTP/1.1 %d %s\r\n"
               "Content-Type: application/json\r\n"
               "Content-Length: %zu\r\n"
               "Connection: %s\r\n"
               "\r\n"
               "%s\n",
               status, status_text(status), body,
               c->keep_alive ? "keep-alive" : "close", json);
  w->c = c;
  w->len = (size_t)n;
  b = uv_buf_init(w->buf, (unsigned)w->len);
  rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
  if (rc < 0) {
    free(w);
    conn_close(c);
  }
}

/* An error answered with the connection closed after it. */
static void respond_error(svc_conn *c, int status, const char *error) {
  char *json = svc_json_object("error", error, NULL);
  c->busy = 1;
  c->keep_alive = 0;
  uv_timer_stop(&c->idle);
  svc_conn_respond(c, status, json ? json : "{}");
  free(json);
}

/* ---- routes ---------------------------------------------------------------- */

static void route_root(svc *s, svc_conn *c) {
  json_t *o = json_object(), *ups = json_array();
  char *text;
  json_object_set_new(o, "service", json_string(s->name));
  json_object_set_new(o, "version", json_string(s->release));
  for (int i = 0; i < s->n_upstreams; i++)
    json_array_append_new(ups, json_string(s->upstreams[i].name));
  json_object_set_new(o, "upstreams", ups);
  text = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  svc_conn_respond(c, 200, text ? text : "{}");
  free(text);
}

static void route(svc *s, svc_conn *c) {
  char path[sizeof c->path];
  char *q;
  snprintf(path, sizeof path, "%s", c->path);
  if ((q = strchr(path, '?')))
    *q = '\0';
  if (strcmp(c->method, "GET") != 0) {
    char *json = svc_json_object("error", "only GET is served", NULL);
    svc_conn_respond(c, 405, json ? json : "{}");
    free(json);
  } else if (strcmp(path, "/health") == 0) {
    svc_health_request(s, c);
  } else if (strcmp(path, "/") == 0) {
    route_root(s, c);
  } else if (s->n_upstreams > 0 && strncmp(path, "/api/", 5) == 0) {
    svc_gateway_request(s, c, path + 5);
  } else {
    char *json = svc_json_object("error", "not found", NULL);
    svc_conn_respond(c, 404, json ? json : "{}");
    free(json);
  }
}

/* ---- the request parser ------------------------------------------------------ */

/* Trims blanks on both ends of [*b, *e). */
static void trim(const char **b, const char **e) {
  while (*b < *e && (**b == ' ' || **b == '\t'))
    (*b)++;
  while (*e > *b && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
    (*e)--;
}

static int value_has(const char *b, const char *e, const char *word) {
  size_t n = strlen(word);
  for (const char *p = b; p + n <= e; p++)
    if (strncasecmp(p, word, n) == 0)
      return 1;
  return 0;
}

/* Parses the request at the start of the buffer; HEAD ends after its blank
 * line. Returns 0 and sets *BODY, or an HTTP status to fail with (the
 * message in *ERR). */
static int parse_head(svc_conn *c, const char *head, size_t head_len,
                      size_t *body, const char **err) {
  const char *end = head + head_len - 2; /* at the final CRLF */
  const char *eol = memchr(head, '\r', head_len);
  const char *sp1, *sp2, *p;
  int http11;

  *body = 0;
  *err = "malformed request line";
  sp1 = memchr(head, ' ', (size_t)(eol - head));
  if (!sp1 || sp1 == head || (size_t)(sp1 - head) >= sizeof c->method)
    return 400;
  sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
  if (!sp2 || sp1[1] != '/')
    return 400;
  for (p = head; p < sp1; p++)
    if (!isupper((unsigned char)*p))
      return 400;
  if (eol - sp2 - 1 != 8 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0 ||
      (sp2[8] != '0' && sp2[8] != '1'))
    return 400;
  http11 = sp2[8] == '1';
  memcpy(c->method, head, (size_t)(sp1 - head));
  c->method[sp1 - head] = '\0';
  if ((size_t)(sp2 - sp1 - 1) >= sizeof c->path) {
    snprintf(c->path, sizeof c->path, "%.*s...", (int)sizeof c->path - 4,
             sp1 + 1);
    *err = "request target too long";
    return 414;
  }
  memcpy(c->path, sp1 + 1, (size_t)(sp2 - sp1 - 1));
  c->path[sp2 - sp1 - 1] = '\0';
  c->keep_alive = http11;

  for (p = eol + 2; p < end;) {
    const char *le = memchr(p, '\r', (size_t)(end - p + 2));
    const char *colon = memchr(p, ':', (size_t)(le - p));
    const char *vb, *ve;
    *err = "malformed header";
    if (!colon || colon == p || le[1] != '\n')
      return 400;
    vb = colon + 1;
    ve = le;
    trim(&vb, &ve);
    if (colon - p == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
      char *stop;
      unsigned long long n;
      *err = "bad Content-Length";
      if (vb == ve || !isdigit((unsigned char)*vb))
        return 400;
      n = strtoull(vb, &stop, 10);
      if (stop != ve)
        return 400;
      *err = "request body too large";
      if (n > SVC_MAX_REQUEST)
        return 413;
      *body = (size_t)n;
    } else if (colon - p == 10 && strncasecmp(p, "Connection", 10) == 0) {
      if (value_has(vb, ve, "close"))
        c->keep_alive = 0;
      else if (value_has(vb, ve, "keep-alive"))
        c->keep_alive = 1;
    } else if (colon - p == 17 &&
               strncasecmp(p, "Transfer-Encoding", 17) == 0) {
      *err = "chunked request bodies are not supported";
      return 501;
    }
    p = le + 2;
  }
  return 0;
}

/* Handles the next whole request in the buffer, if any and if none is
 * being answered. */
static void process(svc_conn *c) {
  const char *hend, *err;
  size_t head_len, body, total;
  int status;

  if (c->busy || c->closing)
    return;
  hend = c->in_len ? memmem(c->in, c->in_len, "\r\n\r\n", 4) : NULL;
  if (!hend) {
    if (c->in_len >= SVC_MAX_REQUEST)
      respond_error(c, 431, "request header too large");
    else if (c->eof)
      conn_close(c);
    return;
  }
  head_len = (size_t)(hend - c->in) + 4;
  c->method[0] = c->path[0] = '\0';
  status = parse_head(c, c->in, head_len, &body, &err);
  if (status) {
    respond_error(c, status, err);
    return;
  }
  total = head_len + body;
  if (total > SVC_MAX_REQUEST) {
    respond_error(c, 413, "request too large");
    return;
  }
  if (c->in_len < total) {
    if (c->eof)
      conn_close(c);
    return;
  }
  /* The body is read and ignored. */
  memmove(c->in, c->in + total, c->in_len - total);
  c->in_len -= total;
  if (c->eof)
    c->keep_alive = 0;
  c->busy = 1;
  uv_timer_stop(&c->idle);
  route(c->s, c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  svc_conn *c = h->data;
  (void)hint;
  if (!c->in) {
    c->in = malloc(SVC_MAX_REQUEST);
    c->in_cap = c->in ? SVC_MAX_REQUEST : 0;
  }
  if (c->in_len >= c->in_cap) {
    *buf = uv_buf_init(NULL, 0); /* on_read gets UV_ENOBUFS */
    return;
  }
  *buf = uv_buf_init(c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  svc_conn *c = st->data;
  (void)buf;
  if (c->closing)
    return;
  if (n == UV_EOF) {
    c->eof = 1;
    uv_read_stop(st);
    if (!c->busy)
      process(c);
    return;
  }
  if (n == UV_ENOBUFS && c->busy) {
    /* A client sending ahead while a request is answered: the buffer is
     * full, close rather than grow it. */
    conn_close(c);
    return;
  }
  if (n < 0) {
    conn_close(c);
    return;
  }
  c->in_len += (size_t)n;
  process(c);
}

static void on_connection(uv_stream_t *server, int status) {
  svc *s = server->data;
  svc_conn *c;
  if (status < 0 || s->stopping)
    return;
  c = calloc(1, sizeof *c);
  if (!c)
    return;
  c->s = s;
  uv_tcp_init(s->loop, &c->tcp);
  uv_timer_init(s->loop, &c->idle);
  c->tcp.data = c->idle.data = c;
  c->handles = 2;
  c->next = s->conns;
  c->pprev = &s->conns;
  if (s->conns)
    s->conns->pprev = &c->next;
  s->conns = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0 ||
      uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_timer_start(&c->idle, on_idle, SVC_IDLE_MS, 0);
}

int svc_server_listen(svc *s) {
  struct sockaddr_in addr;
  struct sockaddr_storage got;
  int len = sizeof got, rc;

  uv_tcp_init(s->loop, &s->listener);
  s->listener.data = s;
  rc = uv_ip4_addr("127.0.0.1", s->port, &addr);
  if (rc == 0)
    rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&s->listener, 511, on_connection);
  if (rc == 0)
    rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&got, &len);
  if (rc == 0)
    s->port = ntohs(((struct sockaddr_in *)&got)->sin_port);
  return rc;
}
