/* One libcurl multi handle per libuv loop, shared by every HTTP request
 * in flight on it, driven the way curl's docs/examples/multi-uv.c does:
 * curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION: a
 * uv_poll_t per socket, found again through curl_multi_assign) and when
 * to call it back (CURLMOPT_TIMERFUNCTION: one uv_timer_t).
 *
 * At most CURLM_HOST_MAX requests to one scheme://host:port are in the
 * multi at a time; the rest wait here, in order, per host. libcurl would
 * queue them itself (CURLMOPT_MAX_HOST_CONNECTIONS, kept as a backstop),
 * but its pending transfers cost it dearly: 1,000 checks of one service
 * spent twice the instructions in curl_multi_socket_action. A waiting
 * request's own timeout runs from when it was added, as in curl: it gets
 * what is left of it when it goes in, and one whose time ran out while
 * waiting ends CURLE_OPERATION_TIMEDOUT without being sent (a sweep timer
 * looks every CURLM_SWEEP_MS while anything waits).
 *
 * A request gets its easy handle only when it goes into the multi, from
 * a pool of handles earlier requests gave back (curl_easy_reset keeps
 * what curl allocated for them): 1,000 checks of one host make about
 * CURLM_HOST_MAX handles, not 1,000, and curl_easy_init was the largest
 * single cost of such a fan-out.
 *
 * A socket's poll handle lives as long as the socket, not as long as one
 * transfer on it: curl forgets a kept-alive connection's socket between
 * transfers (CURL_POLL_REMOVE) and asks for it again for the next one, and
 * a new uv_poll_t each time cost more syscalls than the request itself.
 * The handle is stopped then, and closed when curl closes the socket
 * (CURLOPT_CLOSESOCKETFUNCTION, which runs before the fd can be reused).
 *
 * When its last user leaves, the multi rests instead of going away: its
 * handles no longer keep the loop alive, and the next request on the loop
 * (a deploy checks its services one state after another) finds the pool
 * and the connections of the last ones. adapter_loop_done frees it. */
#include "adapters/curl_uv.h"
#include "adapters/adapter.h"
#include "common/duration.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CURLM_HOST_MAX 64 /* requests in flight to one host */
#define CURLM_SWEEP_MS 50 /* how often waiting requests' timeouts are seen */

struct curl_xfer;

/* The requests to one scheme://host:port: how many are in the multi, and
 * those waiting for a turn, oldest first. Kept for the multi's life. */
struct curl_host {
  struct curl_host *next;
  int inflight;
  int repump; /* a place was freed while dispatching */
  struct curl_xfer *head, *tail;
  char key[];
};

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
  uv_timer_t sweep;  /* while requests wait or are due: see the top */
  int sweeping;
  struct curl_host *hosts;
  struct curl_xfer *due_head, *due_tail; /* to end from the sweep */
  int users;
  int dispatching;   /* inside drain() or sweep: a teardown must wait */
  int repump;        /* places freed while dispatching: see xfer_remove */
  int teardown;      /* adapter_loop_done came during drain() */
  int open;          /* handles closing, their callbacks not run yet */
  struct curl_sock *socks;
  CURL **idle;       /* handles given back, reset: see easy_take */
  size_t nidle, idle_cap;
  struct adapter__curlm *next;
};

enum xfer_state {
  XFER_IDLE,
  XFER_WAITING, /* in its host's queue */
  XFER_IN,      /* in the multi */
  XFER_DUE,     /* in the due list: ends from the sweep with due_rc */
};

/* One request (struct adapter__http's): what it asks for, and where it
 * is. CURLOPT_PRIVATE of its handle, while it has one, points here. */
struct curl_xfer {
  struct adapter__curl_req q;   /* its strings are the owner's */
  adapter__curl_done_fn *done;
  void *ud;
  CURL *easy;                   /* from the pool when it first went in */
  enum xfer_state state;
  struct curl_host *host;       /* while WAITING or IN */
  struct curl_xfer *prev, *next; /* its queue, or the due list */
  long timeout_ms;              /* the request's own limit; 0: none */
  uint64_t added;               /* uv_now() when adapter__curlm_add ran */
  CURLcode due_rc;
  char key[160];                /* scheme://host:port */
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
static void pump_freed(struct adapter__curlm *m);

static void on_sock_close(uv_handle_t *h)
{
  struct curl_sock *s = h->data;
  struct adapter__curlm *m = s->m;

  free(s);
  if (--m->open == 0 && m->teardown)
    free(m);
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

static struct curl_sock *sock_find(struct adapter__curlm *m, curl_socket_t fd)
{
  struct curl_sock *s;

  for (s = m->socks; s && s->fd != fd; s = s->next)
    ;
  return s;
}

/* A poll handle for fd, in m->socks; NULL when out of memory. */
static struct curl_sock *sock_new(struct adapter__curlm *m, curl_socket_t fd)
{
  struct curl_sock *s = calloc(1, sizeof *s);

  if (s == NULL)
    return NULL;
  if (uv_poll_init_socket(m->loop, &s->poll, fd) != 0) {
    free(s);
    return NULL;
  }
  s->fd = fd;
  s->m = m;
  s->poll.data = s;
  s->next = m->socks;
  if (m->socks)
    m->socks->prev = s;
  m->socks = s;
  return s;
}

/* CURLOPT_CLOSESOCKETFUNCTION (a connection keeps the one of the handle
 * that opened it): the socket's poll handle goes first, so no handle is
 * left on an fd number that something else may get next. */
static int on_curl_close(void *ud, curl_socket_t fd)
{
  struct curl_sock *s = sock_find(ud, fd);

  if (s) {
    uv_poll_stop(&s->poll);
    sock_close(s);
  }
  return close(fd);
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
    if (s) { /* kept until the socket closes: see the top */
      uv_poll_stop(&s->poll);
      curl_multi_assign(m->multi, fd, NULL);
    }
    return 0;
  }
  if (s == NULL) {
    s = sock_find(m, fd); /* a kept-alive connection's, back in use */
    if (s == NULL && (s = sock_new(m, fd)) == NULL)
      return -1;
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
  pump_freed(m);
  if (--m->dispatching == 0 && m->teardown && m->multi)
    teardown(m);
}

/* ---- life ------------------------------------------------------------------ */

static void on_timer_close(uv_handle_t *h)
{
  struct adapter__curlm *m = h->data;

  if (--m->open == 0)
    free(m);
}

/* Cleans the multi up while the loop runs (its connections close and
 * their sockets are removed through on_curl_socket), then closes what is
 * left: the timer and any socket curl did not remove. */
static void teardown(struct adapter__curlm *m)
{
  curl_multi_cleanup(m->multi);
  m->multi = NULL;
  m->open += 2; /* the timers */
  while (m->socks) {
    uv_poll_stop(&m->socks->poll);
    sock_close(m->socks);
  }
  while (m->nidle > 0)
    curl_easy_cleanup(m->idle[--m->nidle]);
  free(m->idle);
  m->idle = NULL;
  while (m->hosts) { /* empty: every user removed its requests */
    struct curl_host *h = m->hosts;
    m->hosts = h->next;
    free(h);
  }
  uv_close((uv_handle_t *)&m->timer, on_timer_close);
  uv_close((uv_handle_t *)&m->sweep, on_timer_close);
}

/* uv_ref or uv_unref of every handle of m: whether it keeps the loop
 * alive. */
static void curlm_ref(struct adapter__curlm *m, void (*ref)(uv_handle_t *))
{
  ref((uv_handle_t *)&m->timer);
  ref((uv_handle_t *)&m->sweep);
  for (struct curl_sock *s = m->socks; s; s = s->next)
    ref((uv_handle_t *)&s->poll);
}

struct adapter__curlm *adapter__curlm_acquire(uv_loop_t *loop,
                                              struct cairn_error *err)
{
  static int global_done;
  struct adapter__curlm *m;

  for (m = curlm_list; m; m = m->next)
    if (m->loop == loop) {
      if (m->users++ == 0)
        curlm_ref(m, uv_ref);
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
  uv_timer_init(loop, &m->sweep);
  m->sweep.data = m;
  curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
  curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
  curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
  /* many checks of one service reuse a few connections, not one each */
  curl_multi_setopt(m->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                    (long)CURLM_HOST_MAX);
  /* Idle connections kept for later checks: curl's default keeps four
   * times the transfers running, so a layer's ready checks had closed
   * the connections the validation after it would have used. */
  curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, (long)CURLM_HOST_MAX);
  m->next = curlm_list;
  curlm_list = m;
  return m;
}

void adapter__curlm_release(struct adapter__curlm *m)
{
  if (m && --m->users == 0)
    curlm_ref(m, uv_unref); /* rests: see the top */
}

void adapter_loop_done(uv_loop_t *loop)
{
  struct adapter__curlm *m;

  for (m = curlm_list; m && m->loop != loop; m = m->next)
    ;
  if (m == NULL)
    return;
  curlm_unlink(m); /* a new user from now on gets a new one */
  m->teardown = 1;
  if (m->dispatching == 0)
    teardown(m);
}

/* ---- handles ---------------------------------------------------------------- */

/* A handle for a request going in: one given back, else a new one.
 * NULL when out of memory. */
static CURL *easy_take(struct adapter__curlm *m)
{
  return m->nidle > 0 ? m->idle[--m->nidle] : curl_easy_init();
}

/* Back to the pool with its options reset (a later request sets its own;
 * the connections are the multi's and stay), or freed when the pool
 * cannot grow. */
static void easy_give(struct adapter__curlm *m, CURL *easy)
{
  if (m->nidle == m->idle_cap) {
    size_t cap = m->idle_cap ? 2 * m->idle_cap : 16;
    CURL **p = realloc(m->idle, cap * sizeof *p);
    if (p == NULL) {
      curl_easy_cleanup(easy);
      return;
    }
    m->idle = p;
    m->idle_cap = cap;
  }
  curl_easy_reset(easy);
  m->idle[m->nidle++] = easy;
}

/* Sets a handle of m up for x's request. Returns CURLE_OK or the failing
 * option's code (a CA bundle curl cannot take). */
static CURLcode easy_setup(struct adapter__curlm *m, CURL *easy,
                           struct curl_xfer *x)
{
  const struct adapter__curl_req *q = &x->q;
  CURLcode rc;

  curl_easy_setopt(easy, CURLOPT_PRIVATE, x);
  curl_easy_setopt(easy, CURLOPT_URL, q->url);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
#endif
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, q->headers);
  curl_easy_setopt(easy, CURLOPT_USERAGENT, "cairn/" CAIRN_VERSION);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, q->errbuf);
  curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, on_curl_close);
  curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, m);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, q->insecure ? 0L : 1L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, q->insecure ? 0L : 2L);
  if (q->forbid_reuse)
    curl_easy_setopt(easy, CURLOPT_FORBID_REUSE, 1L);
  if (q->ca && (rc = curl_easy_setopt(easy, CURLOPT_CAINFO, q->ca)) !=
                   CURLE_OK)
    return rc;
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
  return CURLE_OK;
}

/* ---- the queues ------------------------------------------------------------ */

static void list_push(struct curl_xfer **head, struct curl_xfer **tail,
                      struct curl_xfer *x)
{
  x->next = NULL;
  x->prev = *tail;
  if (*tail)
    (*tail)->next = x;
  else
    *head = x;
  *tail = x;
}

static void list_unlink(struct curl_xfer **head, struct curl_xfer **tail,
                        struct curl_xfer *x)
{
  if (x->prev)
    x->prev->next = x->next;
  else
    *head = x->next;
  if (x->next)
    x->next->prev = x->prev;
  else
    *tail = x->prev;
  x->prev = x->next = NULL;
}

static struct curl_host *host_get(struct adapter__curlm *m, const char *key)
{
  struct curl_host *h;
  size_t n = strlen(key);

  for (h = m->hosts; h; h = h->next)
    if (strcmp(h->key, key) == 0)
      return h;
  if ((h = calloc(1, sizeof *h + n + 1)) == NULL)
    return NULL;
  memcpy(h->key, key, n + 1);
  h->next = m->hosts;
  m->hosts = h;
  return h;
}

static void on_sweep(uv_timer_t *t);

static void sweep_arm(struct adapter__curlm *m, uint64_t ms)
{
  if (m->sweeping && ms > 0)
    return;
  m->sweeping = 1;
  uv_timer_start(&m->sweep, on_sweep, ms, CURLM_SWEEP_MS);
}

/* x ends from the sweep with rc, without (more of) a transfer. */
static void make_due(struct adapter__curlm *m, struct curl_xfer *x,
                     CURLcode rc)
{
  x->state = XFER_DUE;
  x->host = NULL;
  x->due_rc = rc;
  list_push(&m->due_head, &m->due_tail, x);
  sweep_arm(m, 0);
}

/* Into the multi, with what is left of its timeout, on a handle from the
 * pool when it has none yet. Returns CURLE_OK or why it cannot go in. */
static CURLcode xfer_in(struct adapter__curlm *m, struct curl_xfer *x)
{
  long t = 0;
  CURLcode rc;

  if (x->easy == NULL) {
    if ((x->easy = easy_take(m)) == NULL)
      return CURLE_OUT_OF_MEMORY;
    if ((rc = easy_setup(m, x->easy, x)) != CURLE_OK) {
      easy_give(m, x->easy);
      x->easy = NULL;
      return rc;
    }
  }
  if (x->timeout_ms > 0) {
    uint64_t waited = uv_now(m->loop) - x->added;
    t = waited < (uint64_t)x->timeout_ms ? x->timeout_ms - (long)waited : 1;
  }
  curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, t);
  if (curl_multi_add_handle(m->multi, x->easy) != CURLM_OK)
    return CURLE_OUT_OF_MEMORY; /* curl's only failure for a good handle */
  x->state = XFER_IN;
  x->host->inflight++;
  return CURLE_OK;
}

/* Lets the host's waiting requests in while there is room. */
static void pump(struct adapter__curlm *m, struct curl_host *h)
{
  CURLcode rc;

  while (m->multi && h->head && h->inflight < CURLM_HOST_MAX) {
    struct curl_xfer *x = h->head;
    list_unlink(&h->head, &h->tail, x);
    if (x->timeout_ms > 0 &&
        uv_now(m->loop) - x->added >= (uint64_t)x->timeout_ms)
      make_due(m, x, CURLE_OPERATION_TIMEDOUT);
    else if ((rc = xfer_in(m, x)) != CURLE_OK)
      make_due(m, x, rc);
  }
}

/* Lets waiting requests into the places freed during a dispatch, now
 * that the requests which ended in it have given their handles back. */
static void pump_freed(struct adapter__curlm *m)
{
  if (!m->repump)
    return;
  m->repump = 0;
  for (struct curl_host *h = m->hosts; h; h = h->next)
    if (h->repump) {
      h->repump = 0;
      pump(m, h);
    }
}

/* Ends the waiting requests whose time ran out, and those made due. */
static void on_sweep(uv_timer_t *t)
{
  struct adapter__curlm *m = t->data;
  uint64_t now = uv_now(m->loop);
  int waiting = 0;

  for (struct curl_host *h = m->hosts; h; h = h->next) {
    struct curl_xfer *x = h->head, *next;
    for (; x; x = next) {
      next = x->next;
      if (x->timeout_ms > 0 && now - x->added >= (uint64_t)x->timeout_ms) {
        list_unlink(&h->head, &h->tail, x);
        make_due(m, x, CURLE_OPERATION_TIMEDOUT);
      }
    }
  }
  m->dispatching++;
  while (m->due_head) { /* a callback may remove others: pop one by one */
    struct curl_xfer *x = m->due_head;
    adapter__curl_done_fn *done = x->done;
    list_unlink(&m->due_head, &m->due_tail, x);
    x->state = XFER_IDLE;
    x->done = NULL; /* once */
    if (done)
      done(x->easy, x->due_rc, x->ud);
  }
  pump_freed(m);
  /* the callbacks may have queued more: look again */
  for (struct curl_host *h = m->hosts; h && !waiting; h = h->next)
    waiting = h->head != NULL;
  if (!waiting && m->due_head == NULL && m->sweeping) {
    uv_timer_stop(&m->sweep);
    m->sweeping = 0;
  }
  if (--m->dispatching == 0 && m->teardown && m->multi)
    teardown(m);
}

/* Starts x, or queues it behind the others in flight to its host, with
 * timeout_ms (0: none) counted from now. done(easy, rc, ud) follows
 * exactly once unless x is removed first. */
static int xfer_add(struct adapter__curlm *m, struct curl_xfer *x,
                    long timeout_ms, adapter__curl_done_fn *done, void *ud,
                    struct cairn_error *err)
{
  CURLcode rc;

  if (x->state != XFER_IDLE)
    return cairn_error_set(err, CAIRN_E_INVAL, "a request is already "
                           "started on this handle");
  if ((x->host = host_get(m, x->key)) == NULL)
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  x->timeout_ms = timeout_ms;
  x->added = uv_now(m->loop);
  if (x->host->inflight >= CURLM_HOST_MAX) {
    x->done = done;
    x->ud = ud;
    x->state = XFER_WAITING;
    list_push(&x->host->head, &x->host->tail, x);
    sweep_arm(m, CURLM_SWEEP_MS);
    return 0;
  }
  if ((rc = xfer_in(m, x)) != CURLE_OK) {
    x->host = NULL;
    return cairn_error_set(err, CAIRN_E_IO, "cannot start a request: %s",
                           curl_easy_strerror(rc));
  }
  x->done = done;
  x->ud = ud;
  return 0;
}

/* Stops x, in flight or waiting (done is not called); harmless when it
 * already ended. Its handle stays with it. The place it frees goes to
 * the next request waiting: at once, or, inside a dispatch, once the
 * callbacks are over and the requests that ended have given their
 * handles back for the next ones to reuse. */
static void xfer_remove(struct adapter__curlm *m, struct curl_xfer *x)
{
  struct curl_host *h = x->host;

  x->done = NULL;
  switch (x->state) {
  case XFER_WAITING:
    list_unlink(&h->head, &h->tail, x);
    break;
  case XFER_IN:
    if (m && m->multi)
      curl_multi_remove_handle(m->multi, x->easy);
    h->inflight--;
    break;
  case XFER_DUE:
    list_unlink(&m->due_head, &m->due_tail, x);
    break;
  case XFER_IDLE:
    break;
  }
  x->state = XFER_IDLE;
  x->host = NULL;
  if (h == NULL || m == NULL)
    return;
  if (m->dispatching) { /* after the callbacks: see pump_freed */
    h->repump = m->repump = 1;
    return;
  }
  pump(m, h);
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
    cairn_duration_exact(timeout_ms, d, sizeof d);
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

/* The queue a request waits in: url up to the end of its authority,
 * without a user and password ("http://127.0.0.1:8080"). Not curl's own
 * normalisation (curl_url costs about 8,000 instructions a request, more
 * than the rest of the setup): two spellings of one host get two queues,
 * which curl's CURLMOPT_MAX_HOST_CONNECTIONS still bounds together. */
static void host_key(const char *url, char *key, size_t n)
{
  const char *sep = strstr(url, "://");
  const char *auth = sep ? sep + 3 : url;
  size_t alen = strcspn(auth, "/?#");
  const char *at = NULL;

  for (const char *p = auth; p < auth + alen; p++)
    if (*p == '@')
      at = p;
  if (at) {
    snprintf(key, n, "%.*s%.*s", (int)(auth - url), url,
             (int)(auth + alen - at - 1), at + 1);
    return;
  }
  snprintf(key, n, "%.*s", (int)(auth + alen - url), url);
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
                       const struct adapter__curl_req *q,
                       struct cairn_error *err)
{
  int rc;

  memset(h, 0, sizeof *h);
  if ((h->x = calloc(1, sizeof *h->x)) == NULL)
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  if ((rc = adapter__curl_headers(headers, extra, &h->hdrs, err)) < 0)
    return rc;
  h->x->q = *q;
  h->x->q.headers = h->hdrs;
  h->x->q.errbuf = h->errbuf;
  host_key(q->url, h->x->key, sizeof h->x->key);
  if ((h->m = adapter__curlm_acquire(loop, err)) == NULL)
    return err && err->code ? err->code : CAIRN_E_IO;
  uv_timer_init(loop, &h->timer); /* cannot fail on Unix */
  return 0;
}

int adapter__http_send(struct adapter__http *h, long timeout_ms,
                       adapter__curl_done_fn *done, void *ud,
                       struct cairn_error *err)
{
  int rc;

  h->errbuf[0] = '\0';
  if ((rc = xfer_add(h->m, h->x, timeout_ms, done, ud, err)) < 0)
    return rc;
  h->in_multi = 1;
  return 0;
}

void adapter__http_sent(struct adapter__http *h)
{
  xfer_remove(h->m, h->x);
  h->in_multi = 0;
}

static void http_timer_closed(uv_handle_t *t)
{
  struct adapter__http *h =
      (struct adapter__http *)((char *)t - offsetof(struct adapter__http,
                                                     timer));

  adapter__curlm_release(h->m);
  if (h->complete)
    h->complete(h->ud);
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
  if (h->x->easy) { /* for the next request to reuse */
    easy_give(h->m, h->x->easy);
    h->x->easy = NULL;
  }
  uv_close((uv_handle_t *)&h->timer, http_timer_closed);
}

void adapter__http_release(struct adapter__http *h)
{
  if (h->x) {
    if (h->x->easy) /* a request that never came to adapter__http_end */
      curl_easy_cleanup(h->x->easy);
    free(h->x);
    h->x = NULL;
  }
  curl_slist_free_all(h->hdrs);
  h->hdrs = NULL;
}
