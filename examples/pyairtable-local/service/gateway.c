/* The api-gateway role: GET /api/NAME/health is proxied to the upstream
 * NAME's GET /health (a new connection per request, Connection: close),
 * and the upstream's status and body are returned as they are. An
 * upstream that cannot be reached gives 502 (504 at the deadline) with a
 * body of the same shape as an unhealthy service's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service.h"

#define PROXY_MAX_ANSWER (64 * 1024)

/* The end of the answer's head, or NULL. */
static const char *head_end(const char *in, size_t len) {
  const char *e = memmem(in, len, "\r\n\r\n", 4);
  return e ? e + 4 : NULL;
}

/* The Content-Length of the head [IN, END), or -1. */
static long content_length(const char *in, const char *end) {
  for (const char *p = in; p < end; p++) {
    if ((p == in || p[-1] == '\n') && end - p > 15 &&
        strncasecmp(p, "Content-Length:", 15) == 0)
      return strtol(p + 15, NULL, 10);
  }
  return -1;
}

/* Whole when the head is and Content-Length bytes follow it; without a
 * Content-Length, at the end of the stream. */
static int answer_complete(const char *in, size_t len) {
  const char *body = head_end(in, len);
  long n;
  if (!body)
    return 0;
  n = content_length(in, body);
  return n >= 0 && (size_t)(in + len - body) >= (size_t)n;
}

static void respond_unreachable(svc_conn *c, const svc_upstream *up,
                                int status, const char *why) {
  char reason[200];
  char *json;
  snprintf(reason, sizeof reason, "upstream %s at %s: %s", up->name,
           up->at.text, why);
  json = svc_json_object("status", "unreachable", "service", up->name,
                         "reason", reason, NULL);
  svc_conn_respond(c, status, json ? json : "{}");
  free(json);
}

static void proxied(svc_exchange *ex, int status, const char *in, size_t len,
                    void *data) {
  svc_conn *c = data;
  const svc_upstream *up = &c->s->upstreams[c->upstream];
  const char *body;
  char *copy;
  int code = 0;
  size_t n;
  (void)ex;

  c->proxy = NULL;
  if (status < 0) {
    respond_unreachable(c, up, status == UV_ETIMEDOUT ? 504 : 502,
                        uv_strerror(status));
    return;
  }
  body = head_end(in, len);
  if (!body || sscanf(in, "HTTP/1.%*1[01] %3d", &code) != 1 || code < 100 ||
      code > 599) {
    respond_unreachable(c, up, 502, "not an HTTP answer");
    return;
  }
  n = (size_t)(in + len - body);
  while (n > 0 && (body[n - 1] == '\n' || body[n - 1] == '\r'))
    n--;
  copy = malloc(n + 1);
  if (!copy) {
    respond_unreachable(c, up, 502, "out of memory");
    return;
  }
  memcpy(copy, body, n);
  copy[n] = '\0';
  svc_conn_respond(c, code, copy);
  free(copy);
}

void svc_gateway_request(svc *s, svc_conn *c, const char *rest) {
  const svc_upstream *up = NULL;
  char req[256];
  char *json;
  int n, rc;

  for (int i = 0; i < s->n_upstreams; i++) {
    size_t k = strlen(s->upstreams[i].name);
    if (strncmp(rest, s->upstreams[i].name, k) == 0 &&
        strcmp(rest + k, "/health") == 0) {
      up = &s->upstreams[i];
      c->upstream = i;
    }
  }
  if (!up) {
    json = svc_json_object("error", "no such upstream route", NULL);
    svc_conn_respond(c, 404, json ? json : "{}");
    free(json);
    return;
  }
  n = snprintf(req, sizeof req,
               "GET /health HTTP/1.1\r\n"
               "Host: %s\r\n"
               "Connection: close\r\n"
               "\r\n",
               up->at.text);
  rc = svc_exchange_start(s->loop, &up->at, req, (size_t)n, PROXY_MAX_ANSWER,
                          SVC_PROXY_TIMEOUT_MS, answer_complete, proxied, c,
                          &c->proxy);
  if (rc < 0)
    respond_unreachable(c, up, 502, uv_strerror(rc));
}

void svc_gateway_forget(svc_conn *c) {
  if (c->proxy)
    svc_exchange_cancel(c->proxy);
  c->proxy = NULL;
}
