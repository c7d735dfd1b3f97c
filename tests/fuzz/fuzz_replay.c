/* libFuzzer target for journal replay: each input line is one event,
 * "KIND\tSTATE\tATTEMPT\tPAYLOAD-JSON", appended to an in-memory journal
 * in order; then the run is replayed. Replay must never crash, leak or
 * produce a step twice, whatever order or payloads the events have (a
 * journal edited by hand, or written by a future cairn). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "journal/events.h"

static const char *const kinds[] = {
  JOURNAL_EV_RUN_STARTED, JOURNAL_EV_RUN_RESUMED, JOURNAL_EV_RUN_INTERRUPTED,
  JOURNAL_EV_RUN_FINISHED, JOURNAL_EV_WORKFLOW_CHANGED,
  JOURNAL_EV_LOCK_TAKEN_OVER, JOURNAL_EV_STATE_ENTERED,
  JOURNAL_EV_ACTION_STARTED, JOURNAL_EV_ACTION_SPAWNED,
  JOURNAL_EV_ACTION_FINISHED, JOURNAL_EV_ACTION_RETRYING,
  JOURNAL_EV_PROBE_FINISHED, JOURNAL_EV_DECISION_ASSUMED,
  JOURNAL_EV_TRANSITION,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static struct journal *j;
  static const char run_id[] = "01JFUZZ0000000000000000000";
  struct cairn_error err = {0};
  struct journal_replay rp;
  char *buf, *line, *save = NULL;

  if (j == NULL && journal_open(&j, ":memory:", JOURNAL_CREATE, &err) != 0)
    abort();
  buf = malloc(size + 1);
  if (buf == NULL)
    return 0;
  memcpy(buf, data, size);
  buf[size] = '\0';

  /* A fresh run id per input keeps inputs independent in one journal. */
  static unsigned long n;
  char id[JOURNAL_RUN_ID_LEN];
  memcpy(id, run_id, sizeof id);
  for (unsigned long k = ++n, i = 25; k && i > 10; k /= 10, i--)
    id[i] = (char)('0' + k % 10);

  journal_append(j, id, JOURNAL_EV_RUN_STARTED, "", 0, 1, NULL, NULL, &err);
  for (line = strtok_r(buf, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    char *f[4] = {line, NULL, NULL, NULL};
    for (int i = 1; i < 4; i++) {
      char *tab = f[i - 1] ? strchr(f[i - 1], '\t') : NULL;
      if (tab) {
        *tab = '\0';
        f[i] = tab + 1;
      }
    }
    const char *kind = f[0];
    /* Mostly real kinds: a digit picks one, so the fuzzer reaches them. */
    if (f[0][0] >= '0' && f[0][0] <= '9')
      kind = kinds[(unsigned)(f[0][0] - '0') % (sizeof kinds / sizeof kinds[0])];
    json_t *payload = f[3] ? json_loads(f[3], JSON_DECODE_ANY, NULL) : NULL;
    if (payload && !json_is_object(payload)) {
      json_decref(payload);
      payload = NULL;
    }
    journal_append(j, id, kind, f[1] ? f[1] : "", f[2] ? atoi(f[2]) : 0, 1,
                   payload, NULL, &err);
    json_decref(payload);
  }
  free(buf);

  if (journal_replay(j, id, &rp, &err) == 0) {
    for (size_t a = 0; a < rp.nsteps; a++)
      for (size_t b = a + 1; b < rp.nsteps; b++)
        if (strcmp(rp.steps[a].path, rp.steps[b].path) == 0)
          abort(); /* one step per path */
    journal_replay_release(&rp);
  }
  return 0;
}
