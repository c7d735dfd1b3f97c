/* One libcurl multi handle per libuv loop, shared by every HTTP request
 * in flight on it, driven the way curl's docs/examples/multi-uv.c does:
 * curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION: a
 * uv_poll_t per socket, found again through curl_multi_assign) and when
 * to call it back (CURLMOPT_TIMERFUNCTION: one uv_timer_t). */
#include "adapters/curl_uv.h"
#include "adapters/adapter.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct curl_sock {
  uv_poll_t poll;
  curl_socket_t fd;
  struct adapter__curlm *m;
  struct curl_sock *prev, *next;
};

struct adapter__curlm {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  int users;
  int dispatching;   /* inside drain(): a teardown must wait */
  int teardown;      /* the last user left during drain() */
  int open;          /* handles closing, their callbacks not run yet */
  struct curl_sock *socks;
  void (*released)(void *ud);
  void *released_ud;
  struct adapter__curlm *next;
};

/* What CURLOPT_PRIVATE points at. */
struct curl_xfer {
  adapter__curl_done_fn *done;
  void *ud;
};

/* The live shared states, one per loop (single-threaded, see header). */
static struct adapter__curlm *curlm_list;

static void curlm_unlink(struct adapter__curlm *m)
{
  for (struct adapter__curlm **p = &curlm_list; *p; p = &(*p)->next)
    if (*p == m) {
      *p = m->next;
      return;
    }
}

/* ---- events --------------------------------------------------------------- */

static void drain(struct adapter__curlm *m);
static void teardown(struct adapter__curlm *m);

static void on_sock_close(uv_handle_t *h)
{
  struct curl_sock *s = h->data;
  struct adapter__curlm *m = s->m;

  free(s);
  if (--m->open == 0 && m->teardown) {
    void (*released)(void *) = m->released;
    void *ud = m->released_ud;
    free(m);
    if (released)
      released(ud);
  }
}

static void sock_close(struct curl_sock *s)
{
  struct adapter__curlm *m = s->m;

  if (s->prev)
    s->prev->next = s->next;
  else
    m->socks = s->next;
  if (s->next)
    s->next->prev = s->prev;
  m->open++;
  uv_close((uv_handle_t *)&s->poll, on_sock_close);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
  struct curl_sock *s = p->data;
  struct adapter__curlm *m = s->m;
  int flags = 0;
  int running;

  if (status < 0)
    flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE)
    flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE)
    flags |= CURL_CSELECT_OUT;
  curl_multi_socket_action(m->multi, s->fd, flags, &running);
  drain(m);
}

static void on_timer(uv_timer_t *t)
{
  struct adapter__curlm *m = t->data;
  int running;

  curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  drain(m);
}

/* CURLMOPT_TIMERFUNCTION: only (re)arms the one-shot timer. */
static int on_curl_timer(CURLM *multi, long ms, void *ud)
{
  struct adapter__curlm *m = ud;

  (void)multi;
  if (ms < 0)
    uv_timer_stop(&m->timer);
  else
    uv_timer_start(&m->timer, on_timer, ms == 0 ? 1 : (uint64_t)ms, 0);
  return 0;
}

/* CURLMOPT_SOCKETFUNCTION: watch, change or forget a socket. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *ud,
                          void *sockp)
{
  struct adapter__curlm *m = ud;
  struct curl_sock *s = sockp;
  int events = 0;

  (void)easy;
  if (what == CURL_POLL_REMOVE) {
    if (s) {
      uv_poll_stop(&s->poll);
      curl_multi_assign(m->multi, fd, NULL);
      sock_close(s);
    }
    return 0;
  }
  if (s == NULL) {
    if ((s = calloc(1, sizeof *s)) == NULL)
      return -1;
    if (uv_poll_init_socket(m->loop, &s->poll, fd) != 0) {
      free(s);
      return -1;
    }
    s->fd = fd;
    s->m = m;
    s->poll.data = s;
    s->next = m->socks;
    if (m->socks)
      m->socks->prev = s;
    m->socks = s;
    curl_multi_assign(m->multi, fd, s);
  }
  if (what & CURL_POLL_IN)
    events |= UV_READABLE;
  if (what & CURL_POLL_OUT)
    events |= UV_WRITABLE;
  uv_poll_start(&s->poll, events, on_poll);
  return 0;
}

/* Hands finished transfers to their owners. */
static void drain(struct adapter__curlm *m)
{
  CURLMsg *msg;
  int left;

  m->dispatching++;
  while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
    struct curl_xfer *x = NULL;
    if (msg->msg != CURLMSG_DONE)
      continue;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
    if (x && x->done) {
      CURL *easy = msg->easy_handle;
      CURLcode rc = msg->data.result;
      adapter__curl_done_fn *done = x->done;
      x->done = NULL; /* once */
      done(easy, rc, x->ud);
    }
  }
  if (--m->dispatching == 0 && m->teardown && m->multi)
    teardown(m);
}

/* ---- life ------------------------------------------------------------------ */

static void on_timer_close(uv_handle_t *h)
{
  struct adapter__curlm *m = h->data;

  if (--m->open == 0) {
    void (*released)(void *) = m->released;
    void *ud = m->released_ud;
    free(m);
    if (released)
      released(ud);
  }
}

/* Cleans the multi up while the loop runs (its connections close and
 * their sockets are removed through on_curl_socket), then closes what is
 * left: the timer and any socket curl did not remove. */
static void teardown(struct adapter__curlm *m)
{
  curl_multi_cleanup(m->multi);
  m->multi = NULL;
  m->open++; /* the timer */
  while (m->socks) {
    uv_poll_stop(&m->socks->poll);
    sock_close(m->socks);
  }
  uv_close((uv_handle_t *)&m->timer, on_timer_close);
}

struct adapter__curlm *adapter__curlm_acquire(uv_loop_t *loop,
                                              struct cairn_error *err)
{
  static int global_done;
  struct adapter__curlm *m;

  for (m = curlm_list; m; m = m->next)
    if (m->loop == loop) {
      m->users++;
      return m;
    }
  if (!global_done) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      cairn_error_set(err, CAIRN_E_IO, "cannot initialise libcurl");
      return NULL;
    }
    global_done = 1;
  }
  if ((m = calloc(1, sizeof *m)) == NULL) {
    cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    return NULL;
  }
  if ((m->multi = curl_multi_init()) == NULL) {
    free(m);
    cairn_error_set(err, CAIRN_E_NOMEM, "cannot create a curl multi handle");
    return NULL;
  }
  m->loop = loop;
  m->users = 1;
  uv_timer_init(loop, &m->timer);
  m->timer.data = m;
  curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
  curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
  curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
  /* many checks of one service reuse a few connections, not one each */
  curl_multi_setopt(m->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 64L);
  m->next = curlm_list;
  curlm_list = m;
  return m;
}

void adapter__curlm_release(struct adapter__curlm *m,
                            void (*released)(void *ud), void *ud)
{
  if (m == NULL)
    return;
  if (--m->users > 0) {
    if (released)
      released(ud);
    return;
  }
  curlm_unlink(m); /* a new user from now on gets a new one */
  m->teardown = 1;
  m->released = released;
  m->released_ud = ud;
  if (m->dispatching == 0)
    teardown(m);
}

int adapter__curlm_add(struct adapter__curlm *m, CURL *easy,
                       adapter__curl_done_fn *done, void *ud,
                       struct cairn_error *err)
{
  struct curl_xfer *x = NULL;
  CURLMcode mc;

  curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
  if (x == NULL) {
    if ((x = calloc(1, sizeof *x)) == NULL)
      return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    curl_easy_setopt(easy, CURLOPT_PRIVATE, x);
  }
  x->done = done;
  x->ud = ud;
  if ((mc = curl_multi_add_handle(m->multi, easy)) != CURLM_OK) {
    x->done = NULL;
    return cairn_error_set(err, CAIRN_E_IO, "cannot start a request: %s",
                           curl_multi_strerror(mc));
  }
  return 0;
}

void adapter__curlm_remove(struct adapter__curlm *m, CURL *easy)
{
  struct curl_xfer *x = NULL;

  curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
  if (x)
    x->done = NULL;
  if (m && m->multi)
    curl_multi_remove_handle(m->multi, easy);
}

/* ---- requests ------------------------------------------------------------- */

void adapter__curl_describe(CURL *easy, CURLcode rc, const char *errbuf,
                            long timeout_ms, char *out, size_t n)
{
  long oserr = 0;
  char d[32];

  curl_easy_getinfo(easy, CURLINFO_OS_ERRNO, &oserr);
  switch (rc) {
  case CURLE_COULDNT_CONNECT:
    if (oserr != 0) {
      snprintf(out, n, "%s", uv_strerror(-(int)oserr));
      out[0] = (char)(out[0] >= 'A' && out[0] <= 'Z' ? out[0] + 32 : out[0]);
      return;
    }
    break;
  case CURLE_OPERATION_TIMEDOUT:
    adapter_format_duration(timeout_ms, d, sizeof d);
    snprintf(out, n, "no response within %s", d);
    return;
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CACERT_BADFILE:
    snprintf(out, n, "TLS certificate not trusted (%s); give `ca:` the "
             "server's CA bundle",
             errbuf && errbuf[0] ? errbuf : curl_easy_strerror(rc));
    return;
  default:
    break;
  }
  snprintf(out, n, "%s", errbuf && errbuf[0] ? errbuf : curl_easy_strerror(rc));
  if (out[0] >= 'A' && out[0] <= 'Z' && !(out[1] >= 'A' && out[1] <= 'Z'))
    out[0] = (char)(out[0] + 32); /* git style, keeping "SSL ..." */
}

int adapter__curl_setup(CURL *easy, const struct adapter__curl_req *q,
                        struct cairn_error *err)
{
  curl_easy_setopt(easy, CURLOPT_URL, q->url);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
#endif
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, q->timeout_ms);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, q->headers);
  curl_easy_setopt(easy, CURLOPT_USERAGENT, "cairn/" CAIRN_VERSION);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, q->errbuf);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, q->insecure ? 0L : 1L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, q->insecure ? 0L : 2L);
  if (q->ca && curl_easy_setopt(easy, CURLOPT_CAINFO, q->ca) != CURLE_OK)
    return cairn_error_set(err, CAIRN_E_INVAL, "cannot use CA bundle '%s'",
                           q->ca);
  if (q->body) {
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, q->body);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)q->body_len);
  }
  if (strcmp(q->method, "GET") == 0 && !q->body)
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  else if (strcmp(q->method, "HEAD") == 0)
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  else if (strcmp(q->method, "POST") != 0 || !q->body)
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, q->method);
  if (q->on_body) {
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, q->on_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, q->ud);
  }
  if (q->on_header) {
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, q->on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, q->ud);
  }
  return 0;
}

/* Frees what adapter__curlm_add hung on the handle; call before
 * curl_easy_cleanup. */
void adapter__curl_free(CURL *easy)
{
  struct curl_xfer *x = NULL;

  if (easy == NULL)
    return;
  curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
  free(x);
  curl_easy_cleanup(easy);
}

int adapter__curl_headers(json_t *map, const char *extra,
                          struct curl_slist **out, struct cairn_error *err)
{
  struct curl_slist *l = NULL, *n;
  const char *key;
  json_t *v;
  char line[8192];

  *out = NULL;
  json_object_foreach(map, key, v) {
    const char *val = json_string_value(v);
    if (val == NULL || strpbrk(key, ":\r\n") || strpbrk(val, "\r\n")) {
      curl_slist_free_all(l);
      return cairn_error_set(err, CAIRN_E_INVAL,
                             "bad header '%s': a name without ':' and a "
                             "one-line string value are needed",
                             key);
    }
    /* "Name;" is curl's way of sending a header with an empty value */
    if (val[0] == '\0')
      snprintf(line, sizeof line, "%s;", key);
    else
      snprintf(line, sizeof line, "%s: %s", key, val);
    if ((n = curl_slist_append(l, line)) == NULL)
      goto nomem;
    l = n;
  }
  if (extra) {
    if ((n = curl_slist_append(l, extra)) == NULL)
      goto nomem;
    l = n;
  }
  *out = l;
  return 0;
nomem:
  curl_slist_free_all(l);
  return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
}

/* ---- one request's life ---------------------------------------------------- */

int adapter__http_init(struct adapter__http *h, uv_loop_t *loop,
                       json_t *headers, const char *extra,
                       struct adapter__curl_req *q, struct cairn_error *err)
{
  int rc;

  memset(h, 0, sizeof *h);
  if ((h->easy = curl_easy_init()) == NULL)
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  if ((rc = adapter__curl_headers(headers, extra, &h->hdrs, err)) < 0)
    return rc;
  q->headers = h->hdrs;
  q->errbuf = h->errbuf;
  if ((rc = adapter__curl_setup(h->easy, q, err)) < 0)
    return rc;
  if ((h->m = adapter__curlm_acquire(loop, err)) == NULL)
    return err && err->code ? err->code : CAIRN_E_IO;
  uv_timer_init(loop, &h->timer); /* cannot fail on Unix */
  return 0;
}

int adapter__http_send(struct adapter__http *h, adapter__curl_done_fn *done,
                       void *ud, struct cairn_error *err)
{
  int rc;

  h->errbuf[0] = '\0';
  if ((rc = adapter__curlm_add(h->m, h->easy, done, ud, err)) < 0)
    return rc;
  h->in_multi = 1;
  return 0;
}

void adapter__http_sent(struct adapter__http *h)
{
  adapter__curlm_remove(h->m, h->easy);
  h->in_multi = 0;
}

static void http_timer_closed(uv_handle_t *t)
{
  struct adapter__http *h =
      (struct adapter__http *)((char *)t - offsetof(struct adapter__http,
                                                     timer));

  adapter__curlm_release(h->m, h->complete, h->ud);
}

void adapter__http_end(struct adapter__http *h, void (*complete)(void *ud),
                       void *ud)
{
  if (h->ending)
    return;
  h->ending = 1;
  h->complete = complete;
  h->ud = ud;
  if (h->in_multi)
    adapter__http_sent(h);
  uv_close((uv_handle_t *)&h->timer, http_timer_closed);
}

void adapter__http_release(struct adapter__http *h)
{
  adapter__curl_free(h->easy);
  h->easy = NULL;
  curl_slist_free_all(h->hdrs);
  h->hdrs = NULL;
}
