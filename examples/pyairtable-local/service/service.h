/* pyairtable-service: one small HTTP service on libuv that plays any of the
 * PyAirtable services in examples/pyairtable-local (see its README.md).
 *
 * The program is an example stand-in, not part of libcairn: it shares no
 * code with cairn and links only libuv and jansson.
 *
 * Modules (prefix svc_ on every non-static name):
 *   main.c      flags, signals, the listener, shutdown
 *   server.c    connections: the HTTP/1.1 request parser, responses, routes
 *   health.c    GET /health: secrets, config file, PostgreSQL, Redis
 *   exchange.c  one outbound TCP exchange (connect, write, read until
 *               complete) with a deadline, used by health.c and gateway.c
 *   gateway.c   GET /api/NAME/health: proxies to an upstream's /health
 *
 * Ownership: the svc struct lives for the whole program (main's stack).
 * A connection is owned by the server and freed in the close callback of
 * its last handle; every other module refers to it only between
 * svc_conn_begin-style callbacks and must drop its pointer when told the
 * connection is gone (svc_health_forget, svc_gateway_forget). */
#ifndef PYAIRTABLE_SERVICE_H
#define PYAIRTABLE_SERVICE_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#define SVC_MAX_UPSTREAMS 32
#define SVC_MAX_SECRETS 16

/* How long a probe of PostgreSQL or Redis may take, and a proxied
 * request to an upstream. */
#define SVC_PROBE_TIMEOUT_MS 1000
#define SVC_PROXY_TIMEOUT_MS 3000

typedef struct svc_exchange svc_exchange;
typedef struct svc_conn svc_conn;

typedef struct svc_endpoint {
  char text[64];               /* as given: "127.0.0.1:5432" */
  struct sockaddr_in addr;
} svc_endpoint;

typedef struct svc_upstream {
  char name[64];
  svc_endpoint at;
} svc_upstream;

/* The health check in flight (at most one; requests that arrive meanwhile
 * wait for its answer). */
typedef struct svc_health {
  int running;
  int pending;                 /* probes not finished yet */
  svc_exchange *pg, *redis;
  char pg_reason[160], redis_reason[160];
  svc_conn *waiters;           /* through svc_conn.health_next */
} svc_health;

typedef struct svc {
  uv_loop_t *loop;
  const char *name, *release, *config;
  int port;
  int has_pg, has_redis;
  svc_endpoint pg, redis;
  svc_upstream upstreams[SVC_MAX_UPSTREAMS];
  int n_upstreams;
  const char *secrets[SVC_MAX_SECRETS]; /* names of environment variables */
  int n_secrets;

  uv_tcp_t listener;
  uv_signal_t sigterm, sigint;
  int stopping;
  svc_conn *conns;             /* every open connection */
  svc_health health;
} svc;

/* ---- exchange.c ---------------------------------------------------------- */

/* Says whether IN (LEN bytes read so far) is a whole answer: 1 yes, 0 read
 * more. At end of stream the exchange completes with what it has. */
typedef int (*svc_exchange_complete_fn)(const char *in, size_t len);

/* STATUS is 0 (IN holds the answer, possibly cut short by the peer's end
 * of stream) or a negative libuv code (UV_ETIMEDOUT at the deadline). IN is
 * valid during the call only. The exchange frees itself after the call. */
typedef void (*svc_exchange_cb)(svc_exchange *ex, int status, const char *in,
                                size_t len, void *data);

/* Connects to AT, writes OUT (copied; wiped from memory when freed: it may
 * hold a password), reads up to MAX_IN bytes until COMPLETE says so, and
 * calls CB exactly once unless cancelled. Returns 0 and sets *EXP, or a
 * negative libuv code (CB is then never called). */
int svc_exchange_start(uv_loop_t *loop, const svc_endpoint *at,
                       const char *out, size_t out_len, size_t max_in,
                       uint64_t timeout_ms, svc_exchange_complete_fn complete,
                       svc_exchange_cb cb, void *data, svc_exchange **exp);

/* Stops EX without calling its callback; it frees itself once its handles
 * are closed. */
void svc_exchange_cancel(svc_exchange *ex);

/* ---- server.c ------------------------------------------------------------ */

struct svc_conn {
  uv_tcp_t tcp;
  uv_timer_t idle;
  svc *s;
  svc_conn *next, **pprev;     /* svc.conns */
  svc_conn *health_next;       /* svc_health.waiters */
  int waiting_health;
  svc_exchange *proxy;         /* gateway request in flight */
  int upstream;                /* its index in svc.upstreams */

  char *in;                    /* bytes read, not yet handled */
  size_t in_len, in_cap;
  int busy;                    /* a request is being answered */
  int keep_alive, eof, closing, handles;
  char method[16], path[256];
};

int svc_server_listen(svc *s);
/* Closes every connection (the listener is closed by main.c). */
void svc_server_close_all(svc *s);

/* Answers the request C is busy with: STATUS and a JSON body (a string,
 * copied), logs the request line, then handles the next request or closes
 * C. */
void svc_conn_respond(svc_conn *c, int status, const char *json);

/* ---- health.c ------------------------------------------------------------ */

/* Answers GET /health on C, now or when the check in flight finishes. */
void svc_health_request(svc *s, svc_conn *c);
/* C is closing: drop it from the waiters. */
void svc_health_forget(svc *s, svc_conn *c);
/* Shutdown: cancel the probes in flight. */
void svc_health_cancel(svc *s);

/* ---- gateway.c ----------------------------------------------------------- */

/* Answers GET /api/NAME/health (and GET /api/NAME/...: 404) on C. */
void svc_gateway_request(svc *s, svc_conn *c, const char *rest);
/* C is closing: cancel its proxied request. */
void svc_gateway_forget(svc_conn *c);

/* ---- shared -------------------------------------------------------------- */

/* A JSON object as compact text (caller frees with free()); pairs of key
 * and string value, ending with NULL. Values that are NULL are skipped. */
char *svc_json_object(const char *key, ...);

#endif
