/* The http.check adapter: one HTTP request (or one every `interval`
 * until the expectation holds or `within` runs out) through the loop's
 * shared libcurl multi handle (adapters/curl_uv.h), checked against
 * `expect`: status, header values, JSON fields by dotted path.
 *
 * Life of one check (struct http_run on call->priv): REQUEST (a transfer
 * is in the multi; the timer holds the state's timeout, if any), WAITING
 * (between attempts; the timer holds the interval), FINISHING (the timer
 * is closing, then the shared multi is released; on_done after both). */
#include "adapters/adapter.h"
#include "common/duration.h"
#include "adapters/curl_uv.h"
#include "common/buf.h"

#include <ctype.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HTTP_BODY_MAX (4 * 1024 * 1024) /* kept for the json output */
#define HTTP_LOG_MAX (64 * 1024)

enum http_phase { HTTP_REQUEST, HTTP_WAITING, HTTP_FINISHING };

struct http_run {
  struct adapter_call *call;
  struct adapter__http h; /* the request, the timer, the shared multi */
  enum http_phase phase;

  const char *method, *url; /* borrowed from call->inputs */
  json_t *expect;           /* borrowed; may be NULL */
  int64_t within_ms, interval_ms, timeout_ms;
  int64_t sent_timeout_ms; /* the last request's: timeout_ms, or what was
                              left of within */
  uint64_t start, deadline, hard_deadline; /* uv_now(); 0: none */

  int attempts;
  long status;
  int64_t latency_ms;
  struct cairn_buf body;
  int body_truncated;
  json_t *headers; /* the last response's, names lowercased */
  json_t *json;    /* the last body, when it is JSON */
  json_t *outputs; /* made at the start, filled at the end */
  /* Why the last attempt did not pass, and the error the check ends
   * with: made when first needed (cairn_msg_set), as most checks pass
   * and two 512-byte buffers each made a fan-out of 1,000 touch 250 more
   * pages. */
  char *why;
  enum adapter_outcome outcome;
  char *error;
  struct cairn_buf log;
};

/* ---- expectations --------------------------------------------------------
 * An expectation is a plain value (equality) or a map of comparisons, all
 * of which must hold: {equals: V, regex: "ERE", gt|ge|lt|le: N}. */

static const char *const cmp_ops[] = { "equals", "regex", "gt", "ge", "lt",
                                       "le", NULL };

static int check_expectation(const char *what, json_t *exp,
                             struct cairn_error *err)
{
  const char *op;
  json_t *v;

  if (!json_is_object(exp))
    return 0;
  if (json_object_size(exp) == 0)
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "expect %s: an empty map compares nothing (use "
                           "equals, regex, gt, ge, lt, le)",
                           what);
  json_object_foreach(exp, op, v) {
    int k = 0;
    while (cmp_ops[k] && strcmp(cmp_ops[k], op) != 0)
      k++;
    if (cmp_ops[k] == NULL)
      return cairn_error_set(err, CAIRN_E_INVAL,
                             "expect %s: unknown comparison '%s' (use "
                             "equals, regex, gt, ge, lt, le)",
                             what, op);
    if (adapter_is_template(v))
      continue;
    if (k == 1) {
      regex_t re;
      int rc;
      if (!json_is_string(v))
        return cairn_error_set(err, CAIRN_E_INVAL,
                               "expect %s: regex must be a string", what);
      if ((rc = regcomp(&re, json_string_value(v), REG_EXTENDED | REG_NOSUB))
          != 0) {
        char msg[128];
        regerror(rc, &re, msg, sizeof msg);
        /* what and the regex are the user's, and may hold " (": they
         * go in the hint, after where the loader puts the state */
        return cairn_error_set(err, CAIRN_E_INVAL,
                               "input 'expect' has a bad regex (hint: %s: "
                               "'%s' is not a POSIX extended regex: %s)",
                               what, json_string_value(v), msg);
      }
      regfree(&re);
    } else if (k >= 2 && !json_is_number(v)) {
      return cairn_error_set(err, CAIRN_E_INVAL,
                             "expect %s: %s needs a number", what, op);
    }
  }
  return 0;
}

static int check_expect(json_t *expect, struct cairn_error *err)
{
  const char *key;
  json_t *v, *item;
  size_t i;
  char what[300];
  int rc;

  if (expect == NULL || json_is_null(expect) || adapter_is_template(expect))
    return 0;
  if (!json_is_object(expect))
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "input 'expect' must be a map with status, "
                           "headers or json");
  json_object_foreach(expect, key, v) {
    if (strcmp(key, "status") == 0) {
      if (json_is_integer(v) || adapter_is_template(v))
        continue;
      if (!json_is_array(v) || json_array_size(v) == 0)
        goto bad_status;
      json_array_foreach(v, i, item) {
        if (!json_is_integer(item) && !adapter_is_template(item))
          goto bad_status;
      }
    } else if (strcmp(key, "headers") == 0 || strcmp(key, "json") == 0) {
      const char *k2;
      json_t *e;
      int hdr = key[0] == 'h';
      if (adapter_is_template(v))
        continue;
      if (!json_is_object(v))
        return cairn_error_set(err, CAIRN_E_INVAL,
                               "expect %s must be a map of %s to "
                               "expectations",
                               key, hdr ? "header names" : "paths");
      json_object_foreach(v, k2, e) {
        snprintf(what, sizeof what, "%s '%s'", hdr ? "header" : "json", k2);
        if ((rc = check_expectation(what, e, err)) < 0)
          return rc;
      }
    } else {
      return cairn_error_set(err, CAIRN_E_INVAL,
                             "unknown key '%s' in input 'expect' (use "
                             "status, headers, json)",
                             key);
    }
  }
  return 0;
bad_status:
  return cairn_error_set(err, CAIRN_E_INVAL,
                         "expect status must be an integer or a list of "
                         "integers");
}

/* v as compact JSON for a message: its secrets redacted (redact may be
 * NULL), then cut to fit out's n bytes, so no part of a secret shows. */
static void text_of(json_t *v, const char *const *redact, char *out,
                    size_t n)
{
  char *s = adapter_redact(json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT),
                           redact);

  snprintf(out, n, "%s", s ? s : "?");
  if (s && strlen(s) >= n && n > 4)
    memcpy(out + n - 4, "...", 4);
  free(s);
}

/* The text a string or scalar compares as: a string's value, else JSON.
 * malloc'd (the caller frees it); NULL when out of memory. */
static char *scalar_text(json_t *v)
{
  if (json_is_string(v))
    return strdup(json_string_value(v));
  return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
}

/* Equality, lenient where YAML and templates make types drift: numbers
 * compare by value, and a string equals a scalar with the same text. */
static int values_equal(json_t *a, json_t *b)
{
  if (json_equal(a, b))
    return 1;
  if (json_is_number(a) && json_is_number(b))
    return json_number_value(a) == json_number_value(b);
  if ((json_is_string(a) || json_is_string(b)) && !json_is_object(a) &&
      !json_is_object(b) && !json_is_array(a) && !json_is_array(b)) {
    char *ta = scalar_text(a), *tb = scalar_text(b);
    int same = ta && tb && strcmp(ta, tb) == 0;
    free(ta);
    free(tb);
    return same;
  }
  return 0;
}

/* 1 when actual meets exp; else 0 with why ("json 'a' is 3, expected >
 * 5"). what names the subject ("json 'a'", "header 'x'"). */
static int meets(const char *what, json_t *actual, json_t *exp,
                 const char *const *redact, char *why, size_t n)
{
  char ta[160], te[160];
  const char *op;
  json_t *v;

  if (actual == NULL) {
    snprintf(why, n, "%s is missing", what);
    return 0;
  }
  text_of(actual, redact, ta, sizeof ta);
  if (!json_is_object(exp)) {
    if (values_equal(actual, exp))
      return 1;
    text_of(exp, redact, te, sizeof te);
    snprintf(why, n, "%s is %s, expected %s", what, ta, te);
    return 0;
  }
  json_object_foreach(exp, op, v) {
    if (strcmp(op, "equals") == 0) {
      if (values_equal(actual, v))
        continue;
      text_of(v, redact, te, sizeof te);
      snprintf(why, n, "%s is %s, expected %s", what, ta, te);
      return 0;
    }
    if (strcmp(op, "regex") == 0) {
      regex_t re;
      int ok;
      if (json_is_object(actual) || json_is_array(actual) ||
          !json_is_string(v) ||
          regcomp(&re, json_string_value(v), REG_EXTENDED | REG_NOSUB) != 0) {
        ok = 0;
      } else {
        char *subject = scalar_text(actual);
        ok = subject && regexec(&re, subject, 0, NULL, 0) == 0;
        free(subject);
        regfree(&re);
      }
      if (ok)
        continue;
      char *rx = json_is_string(v) ? adapter_redact(
                                         strdup(json_string_value(v)), redact)
                                   : NULL;
      snprintf(why, n, "%s is %s, expected to match regex '%s'", what, ta,
               rx ? rx : "?");
      free(rx);
      return 0;
    }
    {
      double a = json_number_value(actual), b = json_number_value(v);
      const char *sym = strcmp(op, "gt") == 0   ? ">"
                        : strcmp(op, "ge") == 0 ? ">="
                        : strcmp(op, "lt") == 0 ? "<"
                                                : "<=";
      int ok = json_is_number(actual) &&
               (sym[0] == '>' ? (sym[1] ? a >= b : a > b)
                              : (sym[1] ? a <= b : a < b));
      if (ok)
        continue;
      text_of(v, redact, te, sizeof te);
      if (json_is_number(actual))
        snprintf(why, n, "%s is %s, expected %s %s", what, ta, sym, te);
      else
        snprintf(why, n, "%s is %s, expected a number %s %s", what, ta, sym,
                 te);
      return 0;
    }
  }
  return 1;
}

/* The value at a dotted path ("data.items.0.name"), or NULL. */
static json_t *at_path(json_t *root, const char *path)
{
  json_t *cur = root;
  char seg[256];

  while (cur && *path) {
    const char *dot = strchr(path, '.');
    size_t len = dot ? (size_t)(dot - path) : strlen(path);
    if (len >= sizeof seg)
      return NULL;
    memcpy(seg, path, len);
    seg[len] = '\0';
    if (json_is_object(cur)) {
      cur = json_object_get(cur, seg);
    } else if (json_is_array(cur) && len > 0 &&
               strspn(seg, "0123456789") == len) {
      cur = json_array_get(cur, strtoul(seg, NULL, 10));
    } else {
      return NULL;
    }
    path += len + (dot ? 1 : 0);
  }
  return cur;
}

/* 1 when the last response meets expect; else 0 with r->why. */
static int evaluate(struct http_run *r)
{
  json_t *st = json_object_get(r->expect, "status");
  json_t *hs = json_object_get(r->expect, "headers");
  json_t *js = json_object_get(r->expect, "json");
  const char *key;
  json_t *e;
  char what[300], why[CAIRN_MSG_MAX];
  int ok = 0;

  if (st == NULL || json_is_null(st)) {
    ok = r->status == 200;
  } else if (json_is_array(st)) {
    size_t i;
    json_array_foreach(st, i, e) {
      ok |= json_integer_value(e) == r->status;
    }
  } else {
    ok = json_integer_value(st) == r->status;
  }
  if (!ok) {
    char te[160];
    if (st == NULL || json_is_null(st))
      snprintf(te, sizeof te, "200");
    else if (json_is_array(st))
      text_of(st, r->call->redact, te, sizeof te);
    else
      snprintf(te, sizeof te, "%" JSON_INTEGER_FORMAT,
               json_integer_value(st));
    cairn_msg_set(&r->why, "status %ld, expected %s%s", r->status,
                  json_is_array(st) ? "one of " : "", te);
    return 0;
  }
  json_object_foreach(hs, key, e) {
    char lower[256];
    size_t i;
    for (i = 0; key[i] && i < sizeof lower - 1; i++)
      lower[i] = (char)tolower((unsigned char)key[i]);
    lower[i] = '\0';
    snprintf(what, sizeof what, "header '%s'", key);
    if (!meets(what, json_object_get(r->headers, lower), e, r->call->redact,
               why, sizeof why)) {
      cairn_msg_set(&r->why, "%s", why);
      return 0;
    }
  }
  if (json_object_size(js) > 0 && r->json == NULL) {
    cairn_msg_set(&r->why, "the body is not JSON%s",
                  r->body_truncated ? " (or larger than 4 MiB)" : "");
    return 0;
  }
  json_object_foreach(js, key, e) {
    snprintf(what, sizeof what, "json '%s'", key);
    if (!meets(what, at_path(r->json, key), e, r->call->redact, why,
               sizeof why)) {
      cairn_msg_set(&r->why, "%s", why);
      return 0;
    }
  }
  return 1;
}

/* ---- responses -------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
  struct http_run *r = ud;
  size_t len = size * n;

  if (r->body.len + len > HTTP_BODY_MAX)
    r->body_truncated = 1; /* keep reading: the status still counts */
  else
    cairn_buf_add(&r->body, p, len);
  return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
  struct http_run *r = ud;
  size_t len = size * n, k, vs, ve;
  char name[256];
  json_t *old;

  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) { /* a new response */
    json_object_clear(r->headers);
    return len;
  }
  for (k = 0; k < len && p[k] != ':' && k < sizeof name - 1; k++)
    name[k] = (char)tolower((unsigned char)p[k]);
  if (k == 0 || k >= len || p[k] != ':')
    return len;
  name[k] = '\0';
  vs = k + 1;
  while (vs < len && (p[vs] == ' ' || p[vs] == '\t'))
    vs++;
  ve = len;
  while (ve > vs && (p[ve - 1] == '\r' || p[ve - 1] == '\n' ||
                     p[ve - 1] == ' ' || p[ve - 1] == '\t'))
    ve--;
  old = json_object_get(r->headers, name);
  if (old) { /* repeated: joined as HTTP allows */
    struct cairn_buf b = { 0 };
    cairn_buf_add(&b, json_string_value(old), json_string_length(old));
    cairn_buf_add(&b, ", ", 2);
    cairn_buf_add(&b, p + vs, ve - vs);
    if (!b.failed && b.p)
      json_object_set_new(r->headers, name, json_stringn(b.p, b.len));
    cairn_buf_release(&b);
  } else {
    json_t *v = json_stringn(p + vs, ve - vs);
    if (v) /* NULL: not UTF-8; dropped */
      json_object_set_new(r->headers, name, v);
  }
  return len;
}

/* ---- the run ------------------------------------------------------------ */

static void log_line(struct http_run *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void log_line(struct http_run *r, const char *fmt, ...)
{
  char line[800];
  va_list ap;
  int k;

  va_start(ap, fmt);
  k = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (k < 0)
    return;
  cairn_buf_add(&r->log, line, strlen(line));
  cairn_buf_add(&r->log, "\n", 1);
}

static void run_free(struct http_run *r)
{
  adapter__http_release(&r->h);
  cairn_buf_release(&r->body);
  cairn_buf_release(&r->log);
  json_decref(r->headers);
  json_decref(r->json);
  json_decref(r->outputs);
  free(r->why);
  free(r->error);
  free(r);
}

static void complete(void *ud)
{
  struct http_run *r = ud;
  struct adapter_call *call = r->call;
  struct adapter_result res;
  json_t *json = r->json;
  json_t *hdrs = r->headers;
  int bad;

  memset(&res, 0, sizeof res);
  res.outcome = r->outcome;
  res.exit_code = -1;
  res.duration_ms = (int64_t)(uv_now(call->loop) - r->start);
  if (call->redact && call->redact[0]) {
    json = json ? adapter_redact_json(json, call->redact) : NULL;
    hdrs = adapter_redact_json(hdrs, call->redact);
  } else {
    json_incref(json);
    json_incref(hdrs);
  }
  /* every set runs (each takes its value, set or not) */
  bad = r->json != NULL && json == NULL;
  bad |= json_object_set_new(r->outputs, "status", json_integer(r->status));
  bad |= json_object_set_new(r->outputs, "latency_ms",
                             json_integer(r->latency_ms));
  bad |= json_object_set_new(r->outputs, "headers", hdrs);
  bad |= json_object_set_new(r->outputs, "attempts",
                             json_integer(r->attempts));
  if (json)
    bad |= json_object_set_new(r->outputs, "json", json);
  res.outputs = r->outputs; /* made at the start: never NULL */
  if (bad) {
    res.outcome = ADAPTER_FAILED; /* not a success without its outputs */
    cairn_msg_set(&r->error, "%s %s: out of memory", r->method, r->url);
  }
  if (r->log.failed)
    log_line(r, "(log cut)");
  /* a check that passed writes no log file (see adapter_finish_text):
   * one file a check was the largest cost of a fan-out of many checks */
  adapter_finish_text(call, r->error, r->log.p, &res);
  call->priv = NULL;
  call->on_done(call, &res); /* may free call */
  free(res.tail);
  run_free(r);
}

static void finish(struct http_run *r, enum adapter_outcome o)
{
  if (r->phase == HTTP_FINISHING)
    return;
  r->phase = HTTP_FINISHING;
  r->outcome = o;
  adapter__http_end(&r->h, complete, r);
}

static void fail(struct http_run *r, enum adapter_outcome o)
{
  char d[32], after[96] = "";
  /* The message is cut to CAIRN_MSG_MAX: redact the parts before, or a
   * cut secret in the URL (a token in its query) would pass redaction. */
  char *url = adapter_redact(strdup(r->url), r->call->redact);
  char *why = adapter_redact(strdup(cairn_msg(r->why)), r->call->redact);
  const char *u = url ? url : "?", *w = why ? why : "";

  if (o == ADAPTER_CANCELLED) {
    cairn_msg_set(&r->error, "%s %s: cancelled", r->method, u);
  } else if (o == ADAPTER_TIMED_OUT) {
    cairn_duration_exact(r->call->timeout_ms, d, sizeof d);
    cairn_msg_set(&r->error, "%s %s: timed out after %s%s%s%s", r->method,
                  u, d, w[0] ? " (last: " : "", w, w[0] ? ")" : "");
  } else {
    if (r->within_ms > 0) {
      cairn_duration_exact(r->within_ms, d, sizeof d);
      snprintf(after, sizeof after, " (after %d attempt%s in %s)",
               r->attempts, r->attempts == 1 ? "" : "s", d);
    }
    cairn_msg_set(&r->error, "%s %s: %s%s", r->method, u, w, after);
  }
  free(url);
  free(why);
  finish(r, o);
}

static void on_timer(uv_timer_t *t);
static void attempt(struct http_run *r);

static void on_xfer_done(CURL *easy, CURLcode rc, void *ud)
{
  struct http_run *r = ud;
  curl_off_t total = 0;
  uint64_t now;

  adapter__http_sent(&r->h);
  uv_update_time(r->call->loop);
  now = uv_now(r->call->loop);
  curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &total);
  r->latency_ms = (int64_t)(total / 1000);
  if (rc != CURLE_OK) {
    r->status = 0;
    char why[CAIRN_MSG_MAX];
    adapter__curl_describe(easy, rc, r->h.errbuf, r->sent_timeout_ms, why,
                           sizeof why);
    cairn_msg_set(&r->why, "%s", why);
    log_line(r, "%s %s: %s", r->method, r->url, why);
  } else {
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &r->status);
    json_decref(r->json);
    r->json = r->body.len
                  ? json_loadb(r->body.p, r->body.len, JSON_DECODE_ANY, NULL)
                  : NULL;
    if (r->body_truncated) {
      json_decref(r->json);
      r->json = NULL;
    }
    if (evaluate(r)) {
      log_line(r, "%s %s: %ld in %lld ms", r->method, r->url, r->status,
               (long long)r->latency_ms);
      finish(r, ADAPTER_SUCCEEDED);
      return;
    }
    log_line(r, "%s %s: %s", r->method, r->url, cairn_msg(r->why));
  }
  if (r->deadline && now + (uint64_t)r->interval_ms < r->deadline) {
    uint64_t wait = (uint64_t)r->interval_ms;
    if (r->hard_deadline && now + wait > r->hard_deadline)
      wait = r->hard_deadline > now ? r->hard_deadline - now : 0;
    r->phase = HTTP_WAITING;
    uv_timer_start(&r->h.timer, on_timer, wait, 0);
    return;
  }
  fail(r, ADAPTER_FAILED);
}

static void on_timer(uv_timer_t *t)
{
  struct http_run *r = t->data;

  if (r->hard_deadline && uv_now(r->call->loop) >= r->hard_deadline) {
    fail(r, ADAPTER_TIMED_OUT);
    return;
  }
  if (r->phase == HTTP_WAITING)
    attempt(r);
}

static void attempt(struct http_run *r)
{
  struct cairn_error err = { 0 };
  uint64_t now = uv_now(r->call->loop);
  int64_t t = r->timeout_ms;

  r->attempts++;
  r->phase = HTTP_REQUEST;
  cairn_buf_release(&r->body);
  r->body_truncated = 0;
  json_object_clear(r->headers);
  /* a request never outlives `within`: its last one is cut short */
  if (r->deadline && r->deadline > now &&
      (t == 0 || (int64_t)(r->deadline - now) < t))
    t = (int64_t)(r->deadline - now);
  r->sent_timeout_ms = t;
  if (r->hard_deadline)
    uv_timer_start(&r->h.timer, on_timer,
                   r->hard_deadline > now ? r->hard_deadline - now : 0, 0);
  if (adapter__http_send(&r->h, (long)t, on_xfer_done, r, &err) < 0) {
    cairn_msg_set(&r->why, "%s", err.msg);
    fail(r, ADAPTER_FAILED);
  }
}

/* Whether url (a string, maybe a template) can be an http:// or https://
 * URL: its text before the first "{{" starts with one of the two schemes,
 * or is the start of one, or is empty (the template gives the scheme).
 * curl itself is limited to the two (adapters/curl_uv.c); this says so at
 * validate, where the file:line:column points at the url. */
static int url_scheme_ok(const char *url)
{
  static const char *const schemes[] = {"http://", "https://"};
  const char *open = strstr(url, "{{");
  size_t lit = open ? (size_t)(open - url) : strlen(url);

  if (lit == 0)
    return 1;
  for (size_t i = 0; i < 2; i++) {
    size_t n = strlen(schemes[i]);
    if (strncasecmp(url, schemes[i], lit < n ? lit : n) == 0 &&
        (lit >= n || open != NULL))
      return 1;
  }
  return 0;
}

static int http_check_with(json_t *with, struct cairn_error *err)
{
  json_t *m = json_object_get(with, "method");
  json_t *url = json_object_get(with, "url");
  int rc;

  if (json_is_string(url) && !url_scheme_ok(json_string_value(url)))
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "input 'url' must be an http:// or https:// URL "
                           "(hint: write http://HOST[:PORT]/PATH or "
                           "https://...)");
  if ((rc = check_expect(json_object_get(with, "expect"), err)) < 0)
    return rc;
  if (json_is_string(m) && !adapter_is_template(m)) {
    const char *s = json_string_value(m);
    if (s[0] == '\0' || strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(s))
      return cairn_error_set(err, CAIRN_E_INVAL,
                             "input 'method' must be an HTTP method in "
                             "capitals (GET, POST, ...), not '%s'",
                             s);
  }
  return 0;
}

static int http_start(struct adapter_call *call, struct cairn_error *err)
{
  json_t *in = call->inputs;
  json_t *body = json_object_get(in, "body");
  json_t *ca = json_object_get(in, "ca");
  struct adapter__curl_req q;
  struct http_run *r;
  int rc;

  if ((rc = http_check_with(in, err)) < 0)
    return rc;
  if (!json_is_string(json_object_get(in, "url")) ||
      !json_is_string(json_object_get(in, "method")) ||
      !json_is_integer(json_object_get(in, "within")) ||
      !json_is_integer(json_object_get(in, "interval")) ||
      !json_is_integer(json_object_get(in, "timeout")))
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "http.check needs url, method, within, interval "
                           "and timeout (apply the adapter's defaults "
                           "first)");
  if ((r = calloc(1, sizeof *r)) == NULL)
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  r->call = call;
  r->url = json_string_value(json_object_get(in, "url"));
  r->method = json_string_value(json_object_get(in, "method"));
  r->expect = json_object_get(in, "expect");
  r->within_ms = json_integer_value(json_object_get(in, "within"));
  r->interval_ms = json_integer_value(json_object_get(in, "interval"));
  r->timeout_ms = json_integer_value(json_object_get(in, "timeout"));
  r->log.max = HTTP_LOG_MAX;
  if ((r->headers = json_object()) == NULL ||
      (r->outputs = json_object()) == NULL) {
    rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    goto fail;
  }
  memset(&q, 0, sizeof q);
  q.method = r->method;
  q.url = r->url;
  q.body = json_string_value(body);
  q.body_len = json_string_length(body);
  q.timeout_ms = (long)r->timeout_ms;
  q.insecure = json_is_true(json_object_get(in, "insecure"));
  q.ca = json_string_value(ca);
  q.on_body = on_body;
  q.on_header = on_header;
  q.ud = r;
  if ((rc = adapter__http_init(&r->h, call->loop,
                               json_object_get(in, "headers"), NULL, &q,
                               err)) < 0)
    goto fail;

  uv_update_time(call->loop); /* the engine may have blocked on a commit */
  r->start = uv_now(call->loop);
  if (r->within_ms > 0)
    r->deadline = r->start + (uint64_t)r->within_ms;
  if (call->timeout_ms > 0)
    r->hard_deadline = r->start + (uint64_t)call->timeout_ms;
  r->h.timer.data = r;
  call->priv = r;
  attempt(r);
  return 0;

fail:
  run_free(r);
  return rc;
}

static void http_cancel(struct adapter_call *call)
{
  struct http_run *r = call ? call->priv : NULL;

  if (r == NULL || r->phase == HTTP_FINISHING)
    return;
  fail(r, ADAPTER_CANCELLED);
}

static const struct adapter_input http_inputs[] = {
  { "url", ADAPTER_T_STRING, 1, NULL, "http:// or https:// URL" },
  { "method", ADAPTER_T_STRING, 0, "\"GET\"", "HTTP method" },
  { "headers", ADAPTER_T_STRMAP, 0, NULL, "request headers" },
  { "body", ADAPTER_T_STRING, 0, NULL, "request body" },
  { "expect", ADAPTER_T_ANY, 0, NULL,
    "{status: N or [N...] (default 200), headers: {name: expectation}, "
    "json: {dotted.path: expectation}}; an expectation is a value, or "
    "{equals|regex|gt|ge|lt|le: value}" },
  { "within", ADAPTER_T_DURATION, 0, "0",
    "poll until the expectation holds, up to this long (0: one try)" },
  { "interval", ADAPTER_T_DURATION, 0, "\"1s\"", "pause between tries" },
  { "timeout", ADAPTER_T_DURATION, 0, "\"10s\"", "limit of one request" },
  { "insecure", ADAPTER_T_BOOLEAN, 0, "false",
    "skip TLS certificate verification (never for production)" },
  { "ca", ADAPTER_T_STRING, 0, NULL, "CA bundle file to verify TLS with" },
  { NULL, 0, 0, NULL, NULL },
};

static const struct adapter_output http_outputs[] = {
  { "status", "integer", "HTTP status of the last response (0: none)" },
  { "latency_ms", "integer", "time the last request took" },
  { "headers", "object", "the last response's headers, names lowercased" },
  { "json", "any", "the last response's body, when it is JSON" },
  { "attempts", "integer", "requests made" },
  { NULL, NULL, NULL },
};

const struct adapter_desc adapter_http_check = {
  .name = "http.check",
  .summary = "check an HTTP endpoint's status, headers and JSON",
  .inputs = http_inputs,
  .outputs = http_outputs,
  .idempotent = 1,
  .check = http_check_with,
  .start = http_start,
  .cancel = http_cancel,
};
