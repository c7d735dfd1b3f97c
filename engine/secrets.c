/* Secrets a run learns while it runs (secrets.generate, secret params)
 * and gets back on resume: into {{ secrets.NAME }} or params and the
 * redaction list, never into the journal. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/runtime.h"

/* Adds s (borrowed) to the list unless it is there. 0, or an error (also
 * set as rt->fatal) when out of memory or the list is full. */
static int add_form(struct engine__rt *rt, const char *s)
{
  size_t n = 0;

  for (; rt->redact[n]; n++)
    if (strcmp(rt->redact[n], s) == 0)
      return 0;
  /* The list has room for every declared secret and ENGINE__REDACT_SPARE
   * values more, and running calls hold it, so it cannot grow. A run
   * that learns more stops rather than show one unredacted. */
  if (n >= rt->capredact) {
    if (!rt->fatal)
      rt->fatal = cairn_error_set(
          rt->err, CAIRN_E_STATE,
          "run %s learned more distinct secret values than it can "
          "redact (%zu); cairn stops rather than show one (hint: give a "
          "map's instances one secret, not one each)",
          *rt->run_id ? rt->run_id : "(not started yet)", rt->capredact);
    return rt->fatal;
  }
  if ((rt->redact[n] = strdup(s)) == NULL) /* rt->redact[n + 1] is NULL */
    return rt->fatal = CAIRN_E_NOMEM;
  return 0;
}

int engine__learn_value(struct engine__rt *rt, const char *s,
                        const char *what, struct cairn_error *err)
{
  if (s == NULL || *s == '\0')
    return 0;
  int rc = rt->opt->sim ? 0 : engine_secret_length_check(s, what, err);
  if (rc != 0)
    return rc;
  rc = add_form(rt, s);
  /* Also the forms s takes inside JSON text, as when an object holding it
   * is rendered into a string, a message quotes it as JSON, or a step
   * prints JSON: a quote, a backslash or a control character escaped;
   * '/' as "\/" (PHP's default); other than ASCII as "\u00e4"
   * (Python's default, lower case) or "\u00E4" (jansson's). */
  static const size_t flags[] = {0, JSON_ESCAPE_SLASH, JSON_ENSURE_ASCII,
                                 JSON_ENSURE_ASCII | JSON_ESCAPE_SLASH};
  json_t *j = rc == 0 ? json_string(s) : NULL;
  for (size_t f = 0; j != NULL && rc == 0 && f < 4; f++) {
    char *dump = json_dumps(j, JSON_ENCODE_ANY | flags[f]);
    size_t len = dump ? strlen(dump) : 0;
    if (dump == NULL) {
      rc = rt->fatal = CAIRN_E_NOMEM;
      break;
    }
    dump[len - 1] = '\0';
    if (strcmp(dump + 1, s) != 0)
      rc = add_form(rt, dump + 1);
    int upper = 0;
    for (char *u = strstr(dump + 1, "\\u"); u != NULL && u[1] != '\0';
         u = strstr(u + 2, "\\u"))
      for (int k = 2; k < 6 && u[k]; k++)
        if (u[k] >= 'A' && u[k] <= 'F') {
          u[k] = (char)(u[k] - 'A' + 'a');
          upper = 1;
        }
    if (rc == 0 && upper)
      rc = add_form(rt, dump + 1);
    free(dump);
  } /* j is NULL for text that is not UTF-8: JSON cannot hold it */
  json_decref(j);
  return rc;
}

void engine__learn_secrets(struct engine__rt *rt, json_t *secrets,
                           const char *from)
{
  const char *name;
  json_t *v;

  json_object_foreach(secrets, name, v) {
    const char *s = json_string_value(v);
    char what[300];
    int rc;
    if (s == NULL)
      continue;
    /* A copy: the adapter may wipe its own strings once on_done returns,
     * and later states render from this one. */
    json_object_set_new(json_object_get(rt->scope, "secrets"), name,
                        json_string(s));
    snprintf(what, sizeof what, "secret %s (from state '%s')", name, from);
    /* too short (an env file edited by hand): the run stops before a
     * state could show it; once the value is fixed, resume runs the step
     * again */
    if ((rc = engine__learn_value(rt, s, what, rt->err)) != 0) {
      if (!rt->fatal)
        rt->fatal = rc;
      return;
    }
  }
}

int engine__learn_params(struct engine__rt *rt,
                         const struct engine_param *params, size_t n,
                         json_t *values, struct cairn_error *err)
{
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < n; i++)
    if (params[i].secret) {
      char what[300];
      snprintf(what, sizeof what, "secret param '%s'", params[i].name);
      rc = engine__learn_value(rt, json_string_value(json_object_get(
                                       values, params[i].name)),
                               what, err);
    }
  return rc;
}

int engine__run_params(struct engine__rt *rt, const struct journal_replay *rp,
                       struct cairn_error *err)
{
  const struct engine_workflow *wf = rt->wf;
  json_t *params = json_deep_copy(json_object_get(rp->started, "params"));
  json_t *given = json_object(); /* NAME -> the text of its --set */
  int rc = params && given ? 0
                           : cairn_error_set(err, CAIRN_E_NOMEM,
                                             "out of memory");

  /* --set here only gives a secret param again: the others are the
   * journaled ones, and a run does not change its params halfway. */
  for (size_t i = 0; rc == 0 && i < rt->opt->nsets; i++) {
    const char *set = rt->opt->sets[i], *eq = strchr(set, '=');
    int len = eq ? (int)(eq - set) : (int)strlen(set);
    char name[256];
    const struct engine_param *p;
    snprintf(name, sizeof name, "%.*s", len, set);
    p = eq ? engine_workflow_param(wf, name) : NULL;
    if (eq == NULL)
      rc = cairn_error_set(err, CAIRN_E_INVAL, "--set %s: expected "
                           "NAME=VALUE", set);
    else if (p == NULL)
      rc = cairn_error_set(err, CAIRN_E_INVAL, "--set %.*s: workflow '%s' "
                           "has no param '%.*s' (hint: only a secret param "
                           "is given again, by its name)", len, set,
                           wf->name, len, set);
    else if (!p->secret)
      rc = cairn_error_set(err, CAIRN_E_INVAL, "--set %.*s: only a secret "
                           "param can be given to run %s again (hint: its "
                           "other params are the journaled ones)", len, set,
                           rt->run_id);
    else if (json_object_set_new(given, p->name, json_string(eq + 1)) != 0)
      rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  }
  for (size_t i = 0; rc == 0 && i < wf->nparams; i++) {
    const struct engine_param *p = &wf->params[i];
    json_t *v = NULL, *s = json_object_get(given, p->name);
    if (!p->secret || !engine__has_redaction(json_object_get(params, p->name)))
      continue;
    if (s == NULL)
      rc = cairn_error_set(err, CAIRN_E_INVAL, "run %s has the secret param "
                           "'%s', which the journal does not keep (hint: "
                           "give it again with --set %s=VALUE)", rt->run_id,
                           p->name, p->name);
    else if ((rc = engine_param_value(p, s, &v, err)) == 0)
      json_object_set_new(params, p->name, v);
  }
  if (rc == 0)
    rc = engine__learn_params(rt, wf->params, wf->nparams, params, err);
  if (rc == 0)
    json_object_set(rt->scope, "params", params);
  json_decref(given);
  json_decref(params);
  return rc;
}

int engine__restore_secrets(struct engine__rt *rt,
                            const struct journal_replay *rp,
                            struct cairn_error *err)
{
  for (size_t i = 0; i < rp->nsteps; i++) {
    const struct journal_step *s = &rp->steps[i];
    const struct engine_state *st;
    int branch;
    const struct engine_action *a;
    const struct adapter_desc *desc;
    json_t *secrets = NULL;

    if (s->phase != JOURNAL_PHASE_SUCCEEDED ||
        strncmp(s->path, JOURNAL_UNDO_PREFIX, strlen(JOURNAL_UNDO_PREFIX)) ==
            0)
      continue;
    a = engine__action_at(rt->wf, s->path, &st, &branch);
    desc = a ? adapter_find(a->adapter) : NULL;
    if (desc == NULL || desc->secrets_of == NULL)
      continue;
    int rc = desc->secrets_of(s->inputs, s->outputs, &secrets, err);
    if (rc != 0) {
      cairn_error_prefix(err, "cannot get back the secrets of state '%s' of "
                         "run %s", s->path, rt->run_id);
      return rc;
    }
    engine__learn_secrets(rt, secrets, s->path);
    json_decref(secrets);
    /* too short (its file edited since): refused before resume asks or
     * writes anything */
    if (rt->fatal)
      return rt->fatal;
  }
  return 0;
}
