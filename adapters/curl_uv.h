/* libcurl's multi interface driven by a libuv loop, shared by the HTTP
 * adapters (http.check, notify.webhook, switch.blue-green's confirmation):
 * one CURLM per loop, created when the first user acquires it and kept,
 * resting, while no one uses it, until adapter_loop_done (adapter.h), so
 * checks on one loop, at once or one after another, share connections,
 * easy handles and one timer.
 *
 * Single-threaded: a loop's users must all run on that loop's thread (as
 * cairn's engine does). Memory: the shared state and the easy handles
 * belong to this module; a user's struct adapter__http is the user's. */
#ifndef CAIRN_ADAPTERS_CURL_UV_H
#define CAIRN_ADAPTERS_CURL_UV_H

#include <curl/curl.h>
#include <jansson.h>
#include <uv.h>

#include "common/error.h"

struct adapter__curlm;

/* Called once per try started with adapter__http_send, when it ends (rc
 * is its CURLcode; CURLE_OPERATION_TIMEDOUT also for one whose time ran
 * out while it waited for its turn, unsent, and then easy is NULL), from
 * the loop. easy is for curl_easy_getinfo until the callback returns or
 * calls adapter__http_end, which gives it back for another request. */
typedef void adapter__curl_done_fn(CURL *easy, CURLcode rc, void *ud);

/* The loop's shared multi handle, created on first use; adds one user.
 * Returns NULL (with err filled) when curl cannot be set up. */
struct adapter__curlm *adapter__curlm_acquire(uv_loop_t *loop,
                                              struct cairn_error *err);

/* Drops one user. With none left the shared state rests: its handles
 * stay open but no longer keep the loop alive (adapter_loop_done frees
 * it). */
void adapter__curlm_release(struct adapter__curlm *m);

/* A one-line description of a failed transfer: "connection refused",
 * "no response within 10s", the TLS verification failure, else curl's
 * own words (errbuf, CURL_ERROR_SIZE, may be ""). */
void adapter__curl_describe(CURL *easy, CURLcode rc, const char *errbuf,
                            long timeout_ms, char *out, size_t n);

/* What a request asks for: method, url, body (may be NULL; body_len
 * bytes), timeout, TLS (insecure, ca may be NULL), a fresh connection
 * (forbid_reuse), body and header sinks (may be NULL) with their ud.
 * The strings are the caller's and must outlive the request: curl reads
 * them when the request goes in, which may be later than it is sent.
 * headers and errbuf are adapter__http's own. */
struct adapter__curl_req {
  const char *method;
  const char *url;
  struct curl_slist *headers;
  const char *body;
  size_t body_len;
  long timeout_ms;
  int insecure;
  int forbid_reuse;
  const char *ca;
  char *errbuf;
  size_t (*on_body)(char *p, size_t size, size_t n, void *ud);
  size_t (*on_header)(char *p, size_t size, size_t n, void *ud);
  void *ud;
};

/* The `headers` input (a map of strings, may be NULL) as a curl list,
 * plus extra ("Name: value", may be NULL). *out is owned by the caller
 * (curl_slist_free_all); NULL when there are none. */
int adapter__curl_headers(json_t *map, const char *extra,
                          struct curl_slist **out, struct cairn_error *err);

/* One request's life on the loop, as http.check, notify.webhook and
 * switch.blue-green's confirmation share it: the request, given an easy
 * handle from the multi's pool when its first try goes in and kept for
 * the next tries, then given back at the end; a timer of the
 * adapter's own (its state timeout, the pause between tries), and one
 * end: the transfer in flight removed, the timer closed, the shared multi
 * released, then complete(ud). Embedded in the adapter's run struct. */
struct curl_xfer;
struct adapter__http {
  struct adapter__curlm *m;
  struct curl_xfer *x;
  struct curl_slist *hdrs;
  uv_timer_t timer; /* the adapter's; timer.data is the adapter's too */
  int in_multi;     /* a transfer is in flight */
  int ending;
  char errbuf[CURL_ERROR_SIZE];
  void (*complete)(void *ud);
  void *ud;
};

/* Sets h up for q (copied; its strings must outlive h): the request
 * headers are the `headers` input (may be NULL) plus extra (may be NULL)
 * and errbuf is h's, whatever q says; the loop's multi is acquired and
 * the timer initialised. On error nothing is left open and
 * adapter__http_release frees what there is. */
int adapter__http_init(struct adapter__http *h, uv_loop_t *loop,
                       json_t *headers, const char *extra,
                       const struct adapter__curl_req *q,
                       struct cairn_error *err);

/* Starts a try, limited to timeout_ms (0: none); done(easy, rc, ud)
 * follows once, on the loop (it calls adapter__http_sent first). */
int adapter__http_send(struct adapter__http *h, long timeout_ms,
                       adapter__curl_done_fn *done, void *ud,
                       struct cairn_error *err);

/* In done: the transfer is over; takes it out of the multi. */
void adapter__http_sent(struct adapter__http *h);

/* The end (once; later calls do nothing): removes a transfer in flight
 * (its done never comes), gives the easy handle back, closes the timer,
 * releases the multi, then complete(ud) from the loop once nothing of h
 * is open. */
void adapter__http_end(struct adapter__http *h, void (*complete)(void *ud),
                       void *ud);

/* Frees the request and the header list (and the easy handle, if it was
 * not given back by adapter__http_end): in complete, or after a failed
 * init. */
void adapter__http_release(struct adapter__http *h);

#endif
