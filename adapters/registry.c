/* The adapter table, the checks of a state's `with` against an adapter's
 * input table, defaults and conversions, and redaction of secrets from
 * text (whole strings, or output arriving in pieces). */
#include "adapters/adapter.h"
#include "adapters/input.h"
#include "adapters/spawn.h"
#include "common/buf.h"
#include "common/duration.h"
#include "common/utf8.h"

#include <curl/curl.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const struct adapter_desc *const adapter_registry[] = {
  &adapter_exec,
  &adapter_sql_migrate,
  &adapter_process_start,
  &adapter_process_stop,
  &adapter_file_write,
  &adapter_file_remove,
  &adapter_switch_blue_green,
  &adapter_secrets_generate,
  &adapter_kubectl,
  &adapter_helm,
  &adapter_compose,
  &adapter_http_check,
  &adapter_notify_webhook,
  &adapter_tcp_wait,
  NULL,
};

int adapter_global_init(struct cairn_error *err)
{
  static int done;
  /* Not thread-safe itself, and libcurl would otherwise do it lazily in
   * whichever thread (a pool worker) first makes a handle. */
  if (!done && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return cairn_error_set(err, CAIRN_E_NOMEM, "cannot set up libcurl");
  done = 1;
  return 0;
}

const struct adapter_desc *adapter_find(const char *name)
{
  if (name == NULL)
    return NULL;
  for (size_t i = 0; adapter_registry[i] != NULL; i++)
    if (strcmp(adapter_registry[i]->name, name) == 0)
      return adapter_registry[i];
  return NULL;
}

/* Kept beside enum adapter_type: name, and the phrase used in messages. */
static const struct {
  const char *name;
  const char *phrase;
} type_info[] = {
  [ADAPTER_T_STRING]   = { "string", "a string" },
  [ADAPTER_T_INTEGER]  = { "integer", "an integer" },
  [ADAPTER_T_NUMBER]   = { "number", "a number" },
  [ADAPTER_T_BOOLEAN]  = { "boolean", "a boolean" },
  [ADAPTER_T_DURATION] = { "duration", "a duration" },
  [ADAPTER_T_ARGV]     = { "list of strings", "a non-empty list of strings" },
  [ADAPTER_T_STRMAP]   = { "map of strings", "a map of strings" },
  [ADAPTER_T_ANY]      = { "any", "any value" },
};

const char *adapter_type_name(enum adapter_type t)
{
  if ((unsigned)t >= sizeof type_info / sizeof type_info[0])
    return "unknown";
  return type_info[t].name;
}

/* Kept beside enum adapter_outcome; these are the journal's words. */
static const char *const outcome_names[] = {
  [ADAPTER_SUCCEEDED] = "succeeded",
  [ADAPTER_FAILED]    = "failed",
  [ADAPTER_TIMED_OUT] = "timed_out",
  [ADAPTER_CANCELLED] = "cancelled",
};

const char *adapter_outcome_name(enum adapter_outcome o)
{
  if ((unsigned)o >= sizeof outcome_names / sizeof outcome_names[0])
    return "unknown";
  return outcome_names[o];
}

/* A JSON duration in ms: a string in the language of common/duration.h,
 * or a number of seconds (an integer or not). */
static int duration_value(json_t *v, int64_t *ms, struct cairn_error *err)
{
  if (json_is_string(v))
    return cairn_duration_parse(json_string_value(v), ms, err);
  double x = json_number_value(v);
  if (!(x >= 0))
    return cairn_error_set(err, CAIRN_E_INVAL, "negative duration %g", x);
  if (x > 9.0e15)
    return cairn_error_set(err, CAIRN_E_INVAL, "duration %g is too large",
                           x);
  *ms = json_is_integer(v) ? (int64_t)json_integer_value(v) * 1000
                           : (int64_t)(x * 1000 + 0.5);
  return 0;
}

/* ---- checking and converting inputs ------------------------------------- */

int adapter_is_template(json_t *v)
{
  return json_is_string(v) && strstr(json_string_value(v), "{{") != NULL;
}

/* ---- reading inputs (adapters/input.h) ----------------------------------- */

json_t *adapter__input(json_t *in, const char *name)
{
  json_t *v = json_object_get(in, name);
  return json_is_null(v) ? NULL : v;
}

const char *adapter__input_str(json_t *in, const char *name)
{
  return json_string_value(json_object_get(in, name));
}

int adapter__check_env_names(json_t *env, struct cairn_error *err)
{
  const char *key;
  json_t *v;

  json_object_foreach(env, key, v) {
    if (key[0] == '\0' || strchr(key, '=') != NULL)
      return cairn_error_set(err, CAIRN_E_INVAL,
                             "bad environment variable name '%s' in input "
                             "'env'",
                             key);
  }
  return 0;
}

int adapter__check_port(json_t *in, struct cairn_error *err)
{
  json_t *port = adapter__input(in, "port");

  if (json_is_integer(port) &&
      (json_integer_value(port) < 1 || json_integer_value(port) > 65535))
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "value %" JSON_INTEGER_FORMAT " is out of range "
                           "for input 'port' (hint: use a TCP port from 1 "
                           "to 65535)",
                           json_integer_value(port));
  return 0;
}

json_t *adapter__input_given(json_t *in, const char *name)
{
  json_t *v = adapter__input(in, name);

  if ((json_is_string(v) && json_string_length(v) == 0) ||
      (json_is_object(v) && json_object_size(v) == 0))
    return NULL;
  return v;
}

/* How a JSON value's type reads in a message ("not a list"). */
static const char *json_kind(json_t *v)
{
  switch (json_typeof(v)) {
  case JSON_OBJECT:  return "a map";
  case JSON_ARRAY:   return "a list";
  case JSON_STRING:  return "a string";
  case JSON_INTEGER: return "an integer";
  case JSON_REAL:    return "a number";
  case JSON_TRUE:
  case JSON_FALSE:   return "a boolean";
  case JSON_NULL:    return "null";
  }
  return "a value";
}

/* A scalar as a JSON string (new reference), or NULL for null, lists and
 * maps. YAML users write `argv: [sleep, 5]` and `env: { PORT: 8080 }`. */
static json_t *scalar_string(json_t *v)
{
  char buf[64];

  switch (json_typeof(v)) {
  case JSON_STRING:
    return json_incref(v);
  case JSON_INTEGER:
    snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return json_string(buf);
  case JSON_REAL:
    snprintf(buf, sizeof buf, "%.15g", json_real_value(v));
    return json_string(buf);
  case JSON_TRUE:
    return json_string("true");
  case JSON_FALSE:
    return json_string("false");
  default:
    return NULL;
  }
}

/* Checks v (not null) against in->type. With templates, a string holding
 * "{{" passes wherever a value or an item is expected. With out, *out
 * gets the converted value (new reference): durations in integer ms,
 * items of lists and maps as strings. */
static int check_value(const struct adapter_input *in, json_t *v,
                       int templates, json_t **out, struct cairn_error *err)
{
  int ok = 0;

  if (out)
    *out = NULL;
  if (templates && adapter_is_template(v))
    return 0;

  switch (in->type) {
  case ADAPTER_T_STRING:
    ok = json_is_string(v);
    break;
  case ADAPTER_T_INTEGER:
    ok = json_is_integer(v);
    break;
  case ADAPTER_T_NUMBER:
    ok = json_is_number(v);
    break;
  case ADAPTER_T_BOOLEAN:
    ok = json_is_boolean(v);
    break;
  case ADAPTER_T_ANY:
    ok = 1;
    break;
  case ADAPTER_T_DURATION: {
    int64_t ms;
    struct cairn_error de = {0};
    if (!json_is_string(v) && !json_is_number(v))
      break;
    if (duration_value(v, &ms, &de) < 0)
      return cairn_error_set(err, CAIRN_E_INVAL,
                             "invalid input '%s': %s (hint: "
                             CAIRN_DURATION_HINT ")", in->name, de.msg);
    if (out && (*out = json_integer(ms)) == NULL)
      return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    return 0;
  }
  case ADAPTER_T_ARGV: {
    size_t i;
    json_t *item;
    json_t *arr = NULL;
    if (!json_is_array(v) || json_array_size(v) == 0)
      break;
    if (out && (arr = json_array()) == NULL)
      return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    json_array_foreach(v, i, item) {
      json_t *s;
      if (templates && adapter_is_template(item))
        continue;
      s = scalar_string(item);
      if (s == NULL) {
        json_decref(arr);
        return cairn_error_set(err, CAIRN_E_INVAL,
                               "input '%s' item %zu must be a string, not %s",
                               in->name, i + 1, json_kind(item));
      }
      if (arr && json_array_append_new(arr, s) < 0) {
        json_decref(arr);
        return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
      }
      if (!arr)
        json_decref(s);
    }
    if (out)
      *out = arr;
    return 0;
  }
  case ADAPTER_T_STRMAP: {
    const char *key;
    json_t *item;
    json_t *obj = NULL;
    if (!json_is_object(v))
      break;
    if (out && (obj = json_object()) == NULL)
      return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    json_object_foreach(v, key, item) {
      json_t *s;
      if (templates && adapter_is_template(item))
        continue;
      s = scalar_string(item);
      if (s == NULL) {
        json_decref(obj);
        return cairn_error_set(err, CAIRN_E_INVAL,
                               "input '%s' key '%s' must be a string, not %s",
                               in->name, key, json_kind(item));
      }
      if (obj && json_object_set_new(obj, key, s) < 0) {
        json_decref(obj);
        return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
      }
      if (!obj)
        json_decref(s);
    }
    if (out)
      *out = obj;
    return 0;
  }
  }

  if (!ok)
    return cairn_error_set(err, CAIRN_E_INVAL, "input '%s' must be %s, not %s",
                           in->name, type_info[in->type].phrase,
                           json_kind(v));
  if (out)
    *out = json_incref(v);
  return 0;
}

static const struct adapter_input *find_input(const struct adapter_desc *desc,
                                              const char *name)
{
  for (const struct adapter_input *in = desc->inputs; in && in->name; in++)
    if (strcmp(in->name, name) == 0)
      return in;
  return NULL;
}

/* Levenshtein distance, capped: enough for a did-you-mean. */
static size_t edit_distance(const char *a, const char *b)
{
  size_t la = strlen(a), lb = strlen(b);
  size_t row[65];

  if (la > 64 || lb > 64)
    return 99;
  for (size_t j = 0; j <= lb; j++)
    row[j] = j;
  for (size_t i = 1; i <= la; i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t up = row[j];
      size_t best = diag + (a[i - 1] != b[j - 1]);
      if (up + 1 < best)
        best = up + 1;
      if (row[j - 1] + 1 < best)
        best = row[j - 1] + 1;
      row[j] = best;
      diag = up;
    }
  }
  return row[lb];
}

static int unknown_input(const struct adapter_desc *desc, const char *key,
                         struct cairn_error *err)
{
  const char *best = NULL;
  size_t bestd = 3; /* suggest only within two edits */

  for (const struct adapter_input *in = desc->inputs; in && in->name; in++) {
    size_t d = edit_distance(key, in->name);
    if (d < bestd) {
      bestd = d;
      best = in->name;
    }
  }
  if (best)
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "unknown input '%s' for %s (did you mean '%s'?)",
                           key, desc->name, best);
  return cairn_error_set(err, CAIRN_E_INVAL, "unknown input '%s' for %s", key,
                         desc->name);
}

/* The input an adapter's own check blames: the first "input 'NAME'" its
 * message names, when with has it (the key is with's, borrowed), so the
 * loader's file:line:column points at that input, not at 'with'. */
static const char *blamed_input(json_t *with, const char *msg)
{
  const char *at = strstr(msg, "input '");
  const char *end;
  char name[128];
  void *it;

  if (at == NULL || (end = strchr(at + 7, '\'')) == NULL ||
      (size_t)(end - at - 7) >= sizeof name)
    return NULL;
  snprintf(name, sizeof name, "%.*s", (int)(end - at - 7), at + 7);
  it = json_object_iter_at(with, name);
  return it ? json_object_iter_key(it) : NULL;
}

int adapter_check_with(const struct adapter_desc *desc, json_t *with,
                       const char **bad_key, struct cairn_error *err)
{
  const char *key;
  json_t *v;
  int rc;

  if (bad_key)
    *bad_key = NULL;
  if (with != NULL && !json_is_object(with))
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "inputs of %s must be a map, not %s", desc->name,
                           json_kind(with));

  json_object_foreach(with, key, v) {
    const struct adapter_input *in = find_input(desc, key);
    if (in == NULL) {
      if (bad_key)
        *bad_key = key;
      return unknown_input(desc, key, err);
    }
    if (json_is_null(v))
      continue; /* null means not given */
    if ((rc = check_value(in, v, 1, NULL, err)) < 0) {
      if (bad_key)
        *bad_key = key;
      return rc;
    }
  }
  for (const struct adapter_input *in = desc->inputs; in && in->name; in++) {
    if (!in->required)
      continue;
    v = json_object_get(with, in->name);
    if (v == NULL || json_is_null(v))
      return cairn_error_set(err, CAIRN_E_INVAL,
                             "missing required input '%s' for %s", in->name,
                             desc->name);
  }
  if (desc->check && (rc = desc->check(with, err)) < 0) {
    if (bad_key)
      *bad_key = blamed_input(with, err->msg);
    return rc;
  }
  return 0;
}

/* The registry's defaults, parsed and converted once: a fan-out of 1,000
 * checks parsed each of http.check's defaults 1,000 times. Built under a
 * once, read-only after, kept for the process's life; a use takes a deep
 * copy. A slot left NULL (no default, or a bad one) takes the slow path,
 * which says what is wrong. */
static json_t **default_cache[sizeof adapter_registry /
                              sizeof adapter_registry[0]];
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void default_cache_build(void)
{
  for (size_t i = 0; adapter_registry[i] != NULL; i++) {
    const struct adapter_input *in = adapter_registry[i]->inputs;
    size_t n = 0;

    while (in != NULL && in[n].name != NULL)
      n++;
    if (n == 0 || (default_cache[i] = calloc(n, sizeof(json_t *))) == NULL)
      continue;
    for (size_t k = 0; k < n; k++) {
      json_t *d = in[k].default_json == NULL
                      ? NULL
                      : json_loads(in[k].default_json, JSON_DECODE_ANY, NULL);
      if (d != NULL && check_value(&in[k], d, 0, &default_cache[i][k],
                                   NULL) < 0)
        default_cache[i][k] = NULL;
      json_decref(d);
    }
  }
}

/* The converted defaults of desc's inputs, in their order, when desc is
 * the registry's; else NULL. */
static json_t *const *default_row(const struct adapter_desc *desc)
{
  if (pthread_once(&default_once, default_cache_build) != 0)
    return NULL;
  for (size_t i = 0; adapter_registry[i] != NULL; i++)
    if (adapter_registry[i] == desc)
      return default_cache[i];
  return NULL;
}

int adapter_apply_defaults(const struct adapter_desc *desc, json_t *with,
                           json_t **out, struct cairn_error *err)
{
  json_t *const *defaults = default_row(desc);
  json_t *res = NULL;
  const char *key;
  json_t *v;
  int rc;

  *out = NULL;
  if (with != NULL && !json_is_object(with))
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "inputs of %s must be a map, not %s", desc->name,
                           json_kind(with));
  json_object_foreach(with, key, v) {
    if (find_input(desc, key) == NULL)
      return unknown_input(desc, key, err);
  }
  if ((res = json_object()) == NULL)
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");

  for (const struct adapter_input *in = desc->inputs; in && in->name; in++) {
    json_t *given = json_object_get(with, in->name);
    json_t *dflt = NULL;
    json_t *conv = NULL;

    if ((given == NULL || json_is_null(given)) &&
        (defaults == NULL || defaults[in - desc->inputs] == NULL ||
         (conv = json_deep_copy(defaults[in - desc->inputs])) == NULL)) {
      if (in->default_json == NULL) {
        if (in->required) {
          rc = cairn_error_set(err, CAIRN_E_INVAL,
                               "missing required input '%s' for %s",
                               in->name, desc->name);
          goto fail;
        }
        continue;
      }
      dflt = json_loads(in->default_json, JSON_DECODE_ANY, NULL);
      if (dflt == NULL) {
        rc = cairn_error_set(err, CAIRN_E_INVAL,
                             "bad default for input '%s' of %s", in->name,
                             desc->name);
        goto fail;
      }
      given = dflt;
    }
    if (conv == NULL) {
      rc = check_value(in, given, 0, &conv, err);
      json_decref(dflt);
      if (rc < 0)
        goto fail;
    }
    if (json_object_set_new(res, in->name, conv) < 0) {
      rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
      goto fail;
    }
  }
  if (desc->check && (rc = desc->check(with, err)) < 0)
    goto fail;
  *out = res;
  return 0;

fail:
  json_decref(res);
  return rc;
}

/* ---- redaction ---------------------------------------------------------- */

size_t adapter_redact_feed(const char *in, size_t n,
                           const char *const *redact, int final,
                           void (*emit)(void *ud, const char *p, size_t n),
                           void *ud)
{
  size_t i = 0;
  size_t run = 0; /* start of the bytes not yet emitted */

  if (redact == NULL) {
    if (n)
      emit(ud, in, n);
    return n;
  }
  while (i < n) {
    size_t best = 0;  /* longest value matching at i */
    size_t maybe = 0; /* longest value that might, given more bytes */

    for (const char *const *r = redact; *r; r++) {
      const char *val = *r;
      size_t len;
      if (val[0] != in[i] || val[0] == '\0')
        continue;
      len = strlen(val);
      if (n - i >= len) {
        if (len > best && memcmp(in + i, val, len) == 0)
          best = len;
      } else if (!final && len > maybe && memcmp(in + i, val, n - i) == 0) {
        maybe = len;
      }
    }
    if (maybe > best) {
      if (i > run)
        emit(ud, in + run, i - run);
      return i;
    }
    if (best) {
      if (i > run)
        emit(ud, in + run, i - run);
      emit(ud, "***", 3);
      i += best;
      run = i;
    } else {
      i++;
    }
  }
  if (n > run)
    emit(ud, in + run, n - run);
  return n;
}

char *adapter_redact(char *s, const char *const *redact)
{
  struct cairn_buf b = { 0 };
  int found = 0;

  if (s == NULL || redact == NULL)
    return s;
  for (const char *const *r = redact; *r && !found; r++)
    found = (*r)[0] != '\0' && strstr(s, *r) != NULL;
  if (!found)
    return s;

  adapter_redact_feed(s, strlen(s), redact, 1, cairn_buf_emit, &b);
  if (b.failed) {
    /* Out of memory: mask in place, same length, rather than leak. */
    free(b.p);
    for (const char *const *r = redact; *r; r++) {
      size_t len = strlen(*r);
      char *p = s;
      if (len == 0)
        continue;
      while ((p = strstr(p, *r)) != NULL) {
        memset(p, '*', len);
        p += len;
      }
    }
    return s;
  }
  free(s);
  return b.p;
}

static json_t *redact_string(const char *s, size_t n,
                             const char *const *redact)
{
  struct cairn_buf b = { 0 };
  json_t *j;

  adapter_redact_feed(s, n, redact, 1, cairn_buf_emit, &b);
  if (b.failed) {
    cairn_buf_release(&b);
    return json_string("***");
  }
  j = json_stringn(b.p ? b.p : "", b.len);
  if (j == NULL) /* the cut made it invalid UTF-8 */
    j = json_string("***");
  cairn_buf_release(&b);
  return j;
}

json_t *adapter_redact_json(json_t *v, const char *const *redact)
{
  const char *key;
  json_t *item;
  size_t i;
  json_t *out;

  switch (json_typeof(v)) {
  case JSON_STRING:
    return redact_string(json_string_value(v), json_string_length(v),
                         redact);
  case JSON_OBJECT:
    if ((out = json_object()) == NULL)
      return NULL;
    json_object_foreach(v, key, item) {
      json_t *k = redact_string(key, strlen(key), redact);
      json_t *val = adapter_redact_json(item, redact);
      if (k && val)
        json_object_set_new(out, json_string_value(k), val);
      else
        json_decref(val);
      json_decref(k);
    }
    return out;
  case JSON_ARRAY:
    if ((out = json_array()) == NULL)
      return NULL;
    json_array_foreach(v, i, item) {
      json_array_append_new(out, adapter_redact_json(item, redact));
    }
    return out;
  default:
    return json_incref(v);
  }
}

/* ---- logs --------------------------------------------------------------- */

void adapter_log_failed(int *log_errno, int e)
{
  if (log_errno != NULL && *log_errno == 0)
    *log_errno = e ? e : EIO;
}

int adapter_log_open(const struct adapter_call *call)
{
  int fd;

  if (call->log_path == NULL)
    return -1;
  fd = open(call->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    adapter_log_failed(call->log_errno, errno);
  else if (call->log_header &&
           adapter__write_all(fd, call->log_header,
                              strlen(call->log_header)) < 0)
    adapter_log_failed(call->log_errno, errno);
  return fd;
}

void adapter_log_append(const char *path, const char *text, int *log_errno)
{
  int fd;

  if (path == NULL || text == NULL || text[0] == '\0')
    return;
  /* best effort: a full disk must not fail the deploy, but is told */
  fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    adapter_log_failed(log_errno, errno);
    return;
  }
  if (adapter__write_all(fd, text, strlen(text)) < 0)
    adapter_log_failed(log_errno, errno);
  close(fd);
}

char *adapter_log_line(const struct adapter_call *call, const char *fmt, ...)
{
  va_list ap;
  char *line = NULL, *nl = NULL;
  int n;

  va_start(ap, fmt);
  n = vasprintf(&line, fmt, ap);
  va_end(ap);
  if (n < 0 || (line = adapter_redact(line, call->redact)) == NULL)
    return NULL;
  if (call->log_path && asprintf(&nl, "%s\n", line) >= 0) {
    adapter_log_append(call->log_path, nl, call->log_errno);
    free(nl);
  }
  return line;
}

void adapter_log_write(const struct adapter_call *call, const char *text)
{
  char *red, *all = NULL;

  if (call->log_path == NULL || text == NULL)
    return;
  red = adapter_redact(strdup(text), call->redact);
  /* the header and the text in one write: one open of the file */
  if (red != NULL && asprintf(&all, "%s%s", call->log_header ?
                              call->log_header : "", red) >= 0)
    adapter_log_append(call->log_path, all, call->log_errno);
  free(all);
  free(red);
}

/* res->error and res->tail from error and log (see adapter_finish_text). */
static char *result_text(const struct adapter_call *call, const char *error,
                         const char *log, struct adapter_result *res)
{
  char *e, *all;
  size_t len, cut = 0;

  res->error[0] = '\0';
  if (error && error[0] && (e = adapter_redact(strdup(error), call->redact))) {
    snprintf(res->error, sizeof res->error, "%s", e);
    free(e);
    /* a server's or a tool's words, maybe cut mid-character */
    cairn_utf8_scrub(res->error, strlen(res->error));
  }
  /* redact the whole text, then cut: a cut first could split a secret
   * and leave its end in the tail */
  if ((all = adapter_redact(strdup(log ? log : ""), call->redact)) == NULL)
    return res->tail = strdup("");
  len = strlen(all);
  if (len > ADAPTER_TAIL_MAX) {
    cut = len - ADAPTER_TAIL_MAX;
    while (((unsigned char)all[cut] & 0xC0) == 0x80) /* not mid-character */
      cut++;
    memmove(all, all + cut, len - cut + 1);
    len -= cut;
  }
  cairn_utf8_scrub(all, len);
  return res->tail = all;
}

char *adapter_finish_text(const struct adapter_call *call, const char *error,
                          const char *log, struct adapter_result *res)
{
  /* A success whose whole text the journal keeps (the tail) needs no log
   * file: creating one a step was a large share of a short step's cost. */
  if (res->outcome != ADAPTER_SUCCEEDED ||
      (log != NULL && strlen(log) > ADAPTER_TAIL_MAX))
    adapter_log_write(call, log ? log : "");
  return result_text(call, error, log, res);
}

