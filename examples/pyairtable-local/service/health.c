/* GET /health: healthy only when, in this order,
 *   1. every secret the service needs is set in its environment,
 *   2. its config file (if any) does not mark the release broken,
 *   3. its PostgreSQL (if any) answers an SSLRequest with 'N' or 'S',
 *   4. its Redis (if any) answers AUTH with +OK and PING with +PONG.
 * The first that fails is the reason of the 503. Checks 3 and 4 run in
 * parallel on the loop with SVC_PROBE_TIMEOUT_MS each; a /health that
 * arrives while a check runs waits for that check's answer. Checks 1 and 2
 * read the environment and a small local file synchronously.
 *
 * No reason ever holds a secret: they name the variable, the address or
 * the server's error word, never a value. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "service.h"

/* ---- secrets and config ------------------------------------------------- */

static int check_secrets(const svc *s, char *reason, size_t cap) {
  for (int i = 0; i < s->n_secrets; i++) {
    const char *v = getenv(s->secrets[i]);
    if (!v || !*v) {
      snprintf(reason, cap, "secret %s is not set", s->secrets[i]);
      return -1;
    }
  }
  return 0;
}

/* The config file: lines KEY=VALUE, blanks around both ignored, '#'
 * starts a comment; `broken=true` (or yes, 1) marks the release broken.
 * Other keys are ignored. */
static int check_config(const svc *s, char *reason, size_t cap) {
  char line[512];
  FILE *f;
  int broken = 0;

  if (!s->config)
    return 0;
  f = fopen(s->config, "r");
  if (!f) {
    snprintf(reason, cap, "cannot read config '%s': %s", s->config,
             strerror(errno));
    return -1;
  }
  while (fgets(line, sizeof line, f)) {
    char *k = line, *v, *e;
    if ((e = strchr(line, '#')))
      *e = '\0';
    if (!(v = strchr(line, '=')))
      continue;
    *v++ = '\0';
    while (*k == ' ' || *k == '\t')
      k++;
    for (e = v + strlen(v); e > v && strchr(" \t\r\n", e[-1]); e--)
      e[-1] = '\0';
    for (e = k + strlen(k); e > k && strchr(" \t", e[-1]); e--)
      e[-1] = '\0';
    while (*v == ' ' || *v == '\t')
      v++;
    if (strcmp(k, "broken") == 0)
      broken = strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0 ||
               strcmp(v, "1") == 0;
  }
  fclose(f);
  if (broken) {
    snprintf(reason, cap, "config '%s' marks release %s as broken", s->config,
             s->release);
    return -1;
  }
  return 0;
}

/* ---- the probes ------------------------------------------------------------ */

static void probe_done(svc *s);

static int pg_complete(const char *in, size_t len) {
  (void)in;
  return len >= 1;
}

static void pg_answered(svc_exchange *ex, int status, const char *in,
                        size_t len, void *data) {
  svc *s = data;
  char *r = s->health.pg_reason;
  size_t cap = sizeof s->health.pg_reason;
  (void)ex;
  s->health.pg = NULL;
  if (status < 0)
    snprintf(r, cap, "postgres %s: %s", s->pg.text, uv_strerror(status));
  else if (len == 0)
    snprintf(r, cap, "postgres %s: closed the connection without answering",
             s->pg.text);
  else if (in[0] != 'N' && in[0] != 'S')
    snprintf(r, cap, "postgres %s: answered 0x%02x, not PostgreSQL",
             s->pg.text, (unsigned char)in[0]);
  probe_done(s);
}

/* Two replies: one to AUTH, one to PING; each a line. */
static int redis_complete(const char *in, size_t len) {
  const char *nl = memchr(in, '\n', len);
  return nl && memchr(nl + 1, '\n', len - (size_t)(nl + 1 - in)) != NULL;
}

/* The first word of an error reply ("-WRONGPASS invalid ..." -> WRONGPASS),
 * or "?": the rest of the line is the server's text and is not repeated. */
static void error_word(const char *line, char *out, size_t cap) {
  size_t n = 0;
  if (*line == '-')
    line++;
  while (line[n] && line[n] != ' ' && line[n] != '\r' && line[n] != '\n' &&
         n + 1 < cap && n < 32)
    n++;
  snprintf(out, cap, "%.*s", (int)n, n ? line : "?");
}

static void redis_answered(svc_exchange *ex, int status, const char *in,
                           size_t len, void *data) {
  svc *s = data;
  char *r = s->health.redis_reason;
  size_t cap = sizeof s->health.redis_reason;
  char word[40];
  const char *second = NULL;
  (void)ex;
  s->health.redis = NULL;
  if (len > 0) {
    const char *nl = memchr(in, '\n', len);
    second = nl ? nl + 1 : NULL;
  }
  if (status < 0) {
    snprintf(r, cap, "redis %s: %s", s->redis.text, uv_strerror(status));
  } else if (len == 0) {
    snprintf(r, cap, "redis %s: closed the connection without answering",
             s->redis.text);
  } else if (strncmp(in, "+OK\r\n", 5) != 0) {
    error_word(in, word, sizeof word);
    snprintf(r, cap, "redis %s: AUTH refused (%s)", s->redis.text, word);
  } else if (!second || strncmp(second, "+PONG\r\n", 7) != 0) {
    error_word(second ? second : "", word, sizeof word);
    snprintf(r, cap, "redis %s: PING did not answer PONG (%s)", s->redis.text,
             word);
  }
  probe_done(s);
}

static void start_pg(svc *s) {
  /* SSLRequest: length 8, code 80877103 (1234 << 16 | 5679). A server
   * that speaks the PostgreSQL protocol answers one byte, 'S' or 'N'. */
  static const char ssl_request[8] = {0, 0, 0, 8, 0x04, (char)0xd2, 0x16, 0x2f};
  int rc = svc_exchange_start(s->loop, &s->pg, ssl_request, sizeof ssl_request,
                              16, SVC_PROBE_TIMEOUT_MS, pg_complete,
                              pg_answered, s, &s->health.pg);
  if (rc < 0) {
    snprintf(s->health.pg_reason, sizeof s->health.pg_reason,
             "postgres %s: %s", s->pg.text, uv_strerror(rc));
    probe_done(s);
  }
}

static void start_redis(svc *s) {
  const char *pw = getenv("REDIS_PASSWORD");
  size_t pwlen = pw ? strlen(pw) : 0, cap = pwlen + 128;
  char *cmd = malloc(cap);
  int n, rc = UV_ENOMEM;
  if (cmd) {
    /* RESP arrays, so that any byte of the password goes through as is. */
    n = snprintf(cmd, cap,
                 "*2\r\n$4\r\nAUTH\r\n$%zu\r\n%s\r\n*1\r\n$4\r\nPING\r\n",
                 pwlen, pw ? pw : "");
    rc = svc_exchange_start(s->loop, &s->redis, cmd, (size_t)n, 1024,
                            SVC_PROBE_TIMEOUT_MS, redis_complete,
                            redis_answered, s, &s->health.redis);
    explicit_bzero(cmd, cap);
    free(cmd);
  }
  if (rc < 0) {
    snprintf(s->health.redis_reason, sizeof s->health.redis_reason,
             "redis %s: %s", s->redis.text, uv_strerror(rc));
    probe_done(s);
  }
}

/* ---- answering ------------------------------------------------------------- */

static void answer_all(svc *s, const char *reason) {
  char *json;
  if (reason)
    json = svc_json_object("status", "unhealthy", "service", s->name,
                           "version", s->release, "reason", reason, NULL);
  else
    json = svc_json_object("status", "healthy", "service", s->name, "version",
                           s->release, NULL);
  s->health.running = 0;
  while (s->health.waiters) {
    svc_conn *c = s->health.waiters;
    s->health.waiters = c->health_next;
    c->health_next = NULL;
    c->waiting_health = 0;
    svc_conn_respond(c, reason ? 503 : 200, json ? json : "{}");
  }
  free(json);
}

static void probe_done(svc *s) {
  svc_health *h = &s->health;
  if (--h->pending > 0)
    return;
  if (h->pg_reason[0])
    answer_all(s, h->pg_reason);
  else if (h->redis_reason[0])
    answer_all(s, h->redis_reason);
  else
    answer_all(s, NULL);
}

void svc_health_request(svc *s, svc_conn *c) {
  svc_health *h = &s->health;
  char reason[512];
  svc_conn **tail = &h->waiters;

  while (*tail)
    tail = &(*tail)->health_next;
  *tail = c;
  c->health_next = NULL;
  c->waiting_health = 1;
  if (h->running)
    return;

  h->running = 1;
  if (check_secrets(s, reason, sizeof reason) < 0 ||
      check_config(s, reason, sizeof reason) < 0) {
    answer_all(s, reason);
    return;
  }
  h->pg_reason[0] = h->redis_reason[0] = '\0';
  /* One count for this function, so that a probe failing at once does not
   * answer before the other has started. */
  h->pending = 1 + s->has_pg + s->has_redis;
  if (s->has_pg)
    start_pg(s);
  if (s->has_redis)
    start_redis(s);
  probe_done(s);
}

void svc_health_forget(svc *s, svc_conn *c) {
  for (svc_conn **p = &s->health.waiters; *p; p = &(*p)->health_next) {
    if (*p == c) {
      *p = c->health_next;
      break;
    }
  }
  c->health_next = NULL;
  c->waiting_health = 0;
}

void svc_health_cancel(svc *s) {
  if (s->health.pg)
    svc_exchange_cancel(s->health.pg);
  if (s->health.redis)
    svc_exchange_cancel(s->health.redis);
  s->health.pg = s->health.redis = NULL;
  s->health.running = 0;
}
