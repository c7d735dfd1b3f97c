/* journal_gen: builds a large journal for tests/bench/journal.sh through
 * the real append path (journal_run_insert, journal_append), so its chain
 * is valid and verify has real work. Each run has exactly 100 events shaped
 * as the engine writes them: run.started, 24 exec states (state.entered,
 * action.started, action.finished, transition; the first two also
 * action.spawned), run.finished. Runs are spread one a minute into the
 * past, over 10 workflows and 3 environments.
 *
 *   journal_gen JOURNAL RUNS [KEYFILE] */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "journal/events.h"
#include "journal/journal.h"

#define STATES 24
#define BATCH 50 /* runs per transaction: fsyncs are not what is measured */

static int fail(const struct cairn_error *err)
{
  fprintf(stderr, "journal_gen: %s\n", err->msg);
  return 1;
}

static int one_run(struct journal *j, long i, long runs,
                   struct cairn_error *err)
{
  static const char *const envs[] = {"dev", "staging", "prod"};
  struct journal_run run = {0};
  char wf[32], rel[32], state[32], next[32];
  int64_t t = journal_now_ms() - (int64_t)(runs - i) * 60000;
  int rc;

  snprintf(wf, sizeof wf, "service-%ld", i % 10);
  snprintf(rel, sizeof rel, "1.%ld.0", i / 30);
  if ((rc = journal_new_run_id(run.id, err)) != 0)
    return rc;
  run.workflow = wf;
  run.file = "/srv/deploy/service.yaml";
  run.file_sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  run.env = (char *)envs[i % 3];
  run.release = rel;
  run.params = json_pack("{s:s}", "release", rel);
  run.status = JOURNAL_STATUS_SUCCEEDED;
  run.actor = "bench@host";
  run.parent = "";
  run.created_ms = t;
  run.updated_ms = t + 30000;
  run.finished_ms = t + 30000;
  rc = journal_run_insert(j, &run, err);
  json_t *p = json_pack("{s:s,s:s,s:s,s:s,s:s,s:O,s:s}", "workflow", wf,
                        "file", run.file, "file_sha256", run.file_sha256,
                        "env", run.env, "release", rel, "params", run.params,
                        "actor", run.actor);
  if (rc == 0)
    rc = journal_append(j, run.id, JOURNAL_EV_RUN_STARTED, "", 0, t, p, NULL,
                        err);
  json_decref(p);
  for (int s = 0; rc == 0 && s < STATES; s++) {
    int64_t ts = t + 1000 * s;

    snprintf(state, sizeof state, "step%02d", s);
    snprintf(next, sizeof next, "step%02d", s + 1);
    p = json_pack("{s:s,s:{s:[s,s]}}", "kind", "do", "inputs", "argv",
                  "/bin/true", state);
    rc = journal_append(j, run.id, JOURNAL_EV_STATE_ENTERED, state, 0, ts, p,
                        NULL, err);
    json_decref(p);
    p = json_pack("{s:s,s:i}", "adapter", "exec", "attempt", 1);
    if (rc == 0)
      rc = journal_append(j, run.id, JOURNAL_EV_ACTION_STARTED, state, 1,
                          ts + 1, p, NULL, err);
    json_decref(p);
    p = json_pack("{s:i,s:i,s:i,s:s}", "pid", 1000 + s, "pgid", 1000 + s,
                  "proc_start", 12345, "boot_id", "bench");
    if (rc == 0 && s < 2)
      rc = journal_append(j, run.id, JOURNAL_EV_ACTION_SPAWNED, state, 1,
                          ts + 2, p, NULL, err);
    json_decref(p);
    p = json_pack("{s:s,s:i,s:{},s:i}", "outcome", "succeeded", "exit_code",
                  0, "outputs", "duration_ms", 900);
    if (rc == 0)
      rc = journal_append(j, run.id, JOURNAL_EV_ACTION_FINISHED, state, 1,
                          ts + 900, p, NULL, err);
    json_decref(p);
    p = json_pack("{s:s,s:s,s:s}", "from", state, "to",
                  s + 1 < STATES ? next : "", "reason", "next");
    if (rc == 0)
      rc = journal_append(j, run.id, JOURNAL_EV_TRANSITION, state, 0,
                          ts + 900, p, NULL, err);
    json_decref(p);
  }
  p = json_pack("{s:s}", "status", JOURNAL_STATUS_SUCCEEDED);
  if (rc == 0)
    rc = journal_append(j, run.id, JOURNAL_EV_RUN_FINISHED, "", 0, t + 30000,
                        p, NULL, err);
  json_decref(p);
  json_decref(run.params);
  return rc;
}

int main(int argc, char **argv)
{
  struct cairn_error err = {0};
  struct journal *j = NULL;
  unsigned char *key = NULL;
  size_t key_len = 0;
  long runs;

  if (argc < 3 || argc > 4 || (runs = atol(argv[2])) <= 0) {
    fprintf(stderr, "usage: journal_gen JOURNAL RUNS [KEYFILE]\n");
    return 2;
  }
  if (argc == 4 && journal_key_load(argv[3], &key, &key_len, &err) != 0)
    return fail(&err);
  if (journal_open(&j, argv[1], JOURNAL_CREATE, &err) != 0 ||
      journal_set_key(j, key, key_len, &err) != 0) {
    journal_key_free(key, key_len);
    journal_close(j);
    return fail(&err);
  }
  journal_key_free(key, key_len);
  for (long i = 0; i < runs; i += BATCH) {
    if (journal_begin(j, &err) != 0)
      break;
    for (long k = i; k < i + BATCH && k < runs; k++)
      if (one_run(j, k, runs, &err) != 0)
        goto out;
    if (journal_commit(j, &err) != 0)
      goto out;
  }
  journal_close(j);
  return err.code != 0 ? fail(&err) : 0;
out:
  journal_rollback(j);
  journal_close(j);
  return fail(&err);
}
