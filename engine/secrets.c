/* Secrets a run learns while it runs (secrets.generate) and gets back on
 * resume: into {{ secrets.NAME }} and the redaction list, never into the
 * journal. */
#include <stdlib.h>
#include <string.h>

#include "engine/runtime.h"

void engine__learn_secrets(struct engine__rt *rt, json_t *secrets)
{
  const char *name;
  json_t *v;
  size_t n = 0;

  while (rt->redact[n])
    n++;
  json_object_foreach(secrets, name, v) {
    const char *s = json_string_value(v);
    int known = 0;
    if (s == NULL)
      continue;
    /* A copy: the adapter may wipe its own strings once on_done returns,
     * and later states render from this one. */
    json_object_set_new(json_object_get(rt->scope, "secrets"), name,
                        json_string(s));
    for (size_t i = 0; i < n; i++)
      known |= strcmp(rt->redact[i], s) == 0;
    /* The array is full only with more than ENGINE__REDACT_SPARE secrets
     * no `secrets:` declares; such values cannot be used in templates, so
     * only their redaction is lost, and a step's output could show them. */
    if (known || *s == '\0' || n >= rt->capredact)
      continue;
    char *copy = strdup(s);
    if (copy == NULL) {
      rt->fatal = CAIRN_E_NOMEM;
      return;
    }
    rt->redact[n++] = copy; /* rt->redact[n] stays NULL */
  }
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
    engine__learn_secrets(rt, secrets);
    json_decref(secrets);
  }
  return 0;
}
