/* The params of a run: the workflow's defaults, then each --set NAME=VALUE
 * converted to the declared type and checked against the pattern. */
#include "engine/workflow.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"

static int conv_integer(const char *v, json_t **out)
{
  char *end;
  long long x;
  const char *d = (*v == '-' || *v == '+') ? v + 1 : v;

  if (*d < '0' || *d > '9' || strspn(d, "0123456789") != strlen(d))
    return -1;
  errno = 0;
  x = strtoll(v, &end, 10);
  if (errno == ERANGE)
    return -1;
  *out = json_integer(x);
  return 0;
}

static int conv_number(const char *v, json_t **out)
{
  locale_t c;
  char *end = NULL;
  double d;
  const char *p = (*v == '-' || *v == '+') ? v + 1 : v;

  /* Decimal only: strtod would also take hex, inf and nan. */
  if (*p == '\0' || strspn(p, "0123456789.eE+-") != strlen(p) ||
      !((*p >= '0' && *p <= '9') || *p == '.'))
    return -1;
  if (conv_integer(v, out) == 0)
    return 0;
  if ((c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0)) == (locale_t)0)
    return -1;
  d = strtod_l(v, &end, c);
  freelocale(c);
  if (end == v || *end != '\0' || !isfinite(d))
    return -1;
  *out = json_real(d);
  return 0;
}

static int conv_boolean(const char *v, json_t **out)
{
  if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "TRUE"))
    *out = json_true();
  else if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "FALSE"))
    *out = json_false();
  else
    return -1;
  return 0;
}

/* A list from --set: JSON ("[1, 2]"), else strings split at commas
 * ("auth,user"; "" is the empty list). */
static int conv_list(const char *v, json_t **out)
{
  const char *p = v;
  while (*p == ' ')
    p++;
  if (*p == '[') {
    *out = json_loads(v, JSON_DECODE_ANY, NULL);
    if (*out != NULL && json_is_array(*out))
      return 0;
    json_decref(*out);
    *out = NULL;
    return -1;
  }
  if ((*out = json_array()) == NULL)
    return 0;
  for (p = v; *v != '\0'; p = v) {
    size_t n = strcspn(p, ",");
    json_array_append_new(*out, json_stringn(p, n));
    v = p[n] == ',' ? p + n + 1 : p + n;
    if (p[n] == ',' && *v == '\0')
      json_array_append_new(*out, json_string(""));
  }
  return 0;
}

static int conv_object(const char *v, json_t **out)
{
  *out = json_loads(v, JSON_DECODE_ANY, NULL);
  if (*out != NULL && json_is_object(*out))
    return 0;
  json_decref(*out);
  *out = NULL;
  return -1;
}

static const char *const type_a[] = {"a string", "an integer", "a number",
                                     "a boolean", "a list", "an object"};

/* *out: value converted to p's type (a new reference). */
static int convert(const struct engine_param *p, const char *value,
                   json_t **out, struct cairn_error *err)
{
  int bad = 0;

  *out = NULL;
  switch (p->type) {
  case ENGINE_PARAM_STRING:
    if ((*out = json_string(value)) == NULL)
      return cairn_error_set(err, CAIRN_E_INVAL,
                             "param '%s' is not valid UTF-8", p->name);
    break;
  case ENGINE_PARAM_INTEGER:
    bad = conv_integer(value, out);
    break;
  case ENGINE_PARAM_NUMBER:
    bad = conv_number(value, out);
    break;
  case ENGINE_PARAM_BOOLEAN:
    bad = conv_boolean(value, out);
    break;
  case ENGINE_PARAM_LIST:
    bad = conv_list(value, out);
    break;
  case ENGINE_PARAM_OBJECT:
    bad = conv_object(value, out);
    break;
  }
  if (bad)
    return cairn_error_set(err, CAIRN_E_INVAL, "param '%s' must be %s, got "
                           "'%s'%s", p->name, type_a[p->type], value,
                           p->type == ENGINE_PARAM_BOOLEAN
                               ? " (hint: use true or false)"
                           : p->type == ENGINE_PARAM_LIST
                               ? " (hint: a JSON list, or a,b,c)"
                           : p->type == ENGINE_PARAM_OBJECT
                               ? " (hint: a JSON object)" : "");
  if (*out == NULL)
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  if (p->pattern != NULL) {
    regex_t re;
    int rc;
    if (p->re != NULL) { /* compiled by the loader */
      rc = regexec(p->re, value, 0, NULL, 0);
    } else if ((rc = regcomp(&re, p->pattern, REG_EXTENDED | REG_NOSUB)) ==
               0) {
      rc = regexec(&re, value, 0, NULL, 0);
      regfree(&re);
    }
    if (rc != 0) {
      json_decref(*out);
      *out = NULL;
      if (p->secret) /* never on the terminal */
        return cairn_error_set(err, CAIRN_E_INVAL, "param '%s' must match "
                               "'%s', and the value given does not (it is "
                               "secret: not shown)", p->name, p->pattern);
      return cairn_error_set(err, CAIRN_E_INVAL, "param '%s' must match "
                             "'%s', got '%s'", p->name, p->pattern, value);
    }
  }
  return 0;
}

size_t engine_secret_too_short(const char *s)
{
  size_t n = cairn_utf8_chars(s);

  return n < ENGINE_SECRET_MIN ? n : 0;
}

int engine_secret_length_check(const char *s, const char *what,
                               struct cairn_error *err)
{
  /* Masked wherever it occurs, a value this short would garble the
   * output, and where the *** fall would show it. */
  size_t chars = s ? engine_secret_too_short(s) : 0;
  if (chars == 0)
    return 0;
  return cairn_error_set(err, CAIRN_E_INVAL,
                         "%s is %zu character%s long: too short to keep out "
                         "of the output (hint: give it at least %d "
                         "characters; cairn masks a secret wherever it "
                         "occurs)", what, chars, chars == 1 ? "" : "s",
                         ENGINE_SECRET_MIN);
}

int engine_secrets_check(const struct engine_workflow *wf,
                         const json_t *params, struct cairn_error *err)
{
  char what[300];
  int rc = 0;

  for (size_t i = 0; rc == 0 && i < wf->nsecrets; i++) {
    snprintf(what, sizeof what, "secret %s (from the environment)",
             wf->secrets[i]);
    rc = engine_secret_length_check(getenv(wf->secrets[i]), what, err);
  }
  for (size_t i = 0; rc == 0 && i < wf->nparams; i++)
    if (wf->params[i].secret) {
      snprintf(what, sizeof what, "secret param '%s'", wf->params[i].name);
      rc = engine_secret_length_check(
          json_string_value(json_object_get(params, wf->params[i].name)),
          what, err);
    }
  return rc;
}

int engine_param_value(const struct engine_param *p, json_t *value,
                       json_t **out, struct cairn_error *err)
{
  int ok = 0;

  *out = NULL;
  switch (p->type) {
  case ENGINE_PARAM_STRING: ok = json_is_string(value); break;
  case ENGINE_PARAM_INTEGER: ok = json_is_integer(value); break;
  case ENGINE_PARAM_NUMBER: ok = json_is_number(value); break;
  case ENGINE_PARAM_BOOLEAN: ok = json_is_boolean(value); break;
  case ENGINE_PARAM_LIST: ok = json_is_array(value); break;
  case ENGINE_PARAM_OBJECT: ok = json_is_object(value); break;
  }
  /* A number or a boolean given to a string param is its text, as it
   * would be from --set (`port: 8080` in a use state's with). */
  if (p->type == ENGINE_PARAM_STRING &&
      (json_is_number(value) || json_is_boolean(value))) {
    char *text = json_dumps(value, JSON_ENCODE_ANY);
    int rc = text ? convert(p, text, out, err)
                  : cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    free(text);
    return rc;
  }
  /* A string is converted as --set would ("{{ x }}" inside a longer
   * string renders to text), and checked against the pattern. */
  if (json_is_string(value) && (!ok || p->pattern != NULL)) {
    struct cairn_error e = {0};
    if (convert(p, json_string_value(value), out, &e) == 0)
      return 0;
    if (ok)
      return cairn_error_set(err, e.code, "%s", e.msg);
  }
  if (!ok)
    return cairn_error_set(err, CAIRN_E_INVAL, "param '%s' must be %s, got "
                           "%s", p->name, type_a[p->type],
                           json_is_string(value) ? "a string"
                           : json_is_array(value) ? "a list"
                           : json_is_object(value) ? "an object"
                           : json_is_boolean(value) ? "a boolean"
                           : json_is_null(value) ? "null" : "a number");
  *out = json_incref(value);
  return 0;
}

static int unknown_param(const struct engine_workflow *wf, const char *name,
                         struct cairn_error *err)
{
  char list[512] = "";
  size_t used = 0;

  if (wf->nparams == 0)
    return cairn_error_set(err, CAIRN_E_INVAL, "unknown param '%s' (hint: "
                           "this workflow declares no params)", name);
  for (size_t i = 0; i < wf->nparams && used + 1 < sizeof list; i++)
    used += (size_t)snprintf(list + used, sizeof list - used, "%s%s",
                             i ? ", " : "", wf->params[i].name);
  return cairn_error_set(err, CAIRN_E_INVAL, "unknown param '%s' (hint: "
                         "declared params are %s)", name, list);
}

int engine_workflow_params(const struct engine_workflow *wf,
                           const char *const *sets, size_t nsets,
                           json_t **out, struct cairn_error *err)
{
  json_t *obj, *v = NULL;
  char *name = NULL;
  int rc = 0;

  if (out == NULL || wf == NULL || (sets == NULL && nsets > 0))
    return cairn_error_set(err, CAIRN_E_INVAL, "invalid argument");
  *out = NULL;
  if ((obj = json_object()) == NULL)
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  for (size_t i = 0; i < wf->nparams; i++) {
    const struct engine_param *p = &wf->params[i];
    if (p->default_value != NULL &&
        json_object_set_new(obj, p->name, json_deep_copy(p->default_value))) {
      rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
      goto out;
    }
  }
  for (size_t i = 0; i < nsets; i++) {
    const char *eq = strchr(sets[i], '=');
    const struct engine_param *p;
    if (eq == NULL) {
      rc = cairn_error_set(err, CAIRN_E_INVAL, "invalid param setting '%s' "
                           "(hint: use --set NAME=VALUE)", sets[i]);
      goto out;
    }
    free(name);
    if ((name = strndup(sets[i], (size_t)(eq - sets[i]))) == NULL) {
      rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
      goto out;
    }
    if ((p = engine_workflow_param(wf, name)) == NULL) {
      rc = unknown_param(wf, name, err);
      goto out;
    }
    if ((rc = convert(p, eq + 1, &v, err)) != 0)
      goto out;
    if (json_object_set_new(obj, p->name, v)) {
      rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
      goto out;
    }
  }
  for (size_t i = 0; i < wf->nparams; i++)
    if (json_object_get(obj, wf->params[i].name) == NULL) {
      rc = cairn_error_set(err, CAIRN_E_INVAL, "param '%s' is required "
                           "(hint: --set %s=VALUE)", wf->params[i].name,
                           wf->params[i].name);
      goto out;
    }
out:
  free(name);
  if (rc != 0) {
    json_decref(obj);
    return rc;
  }
  *out = obj;
  return 0;
}
