/* What run and resume print while a run goes: plain lines off a TTY, a
 * live view on one (a line per running state with its elapsed time,
 * redrawn each tick), or JSON lines of the committed events. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "common/duration.h"
#include "common/utf8.h"

#define LIVE_MAX 64

struct live {
  char path[320];
  int64_t since_ms;
  int attempt;
};

struct cli_progress {
  struct cli_ctx *ctx;
  char run_id[JOURNAL_RUN_ID_LEN];
  struct live live[LIVE_MAX];
  size_t nlive;
  size_t drawn; /* live lines currently on screen */
  char last_status[32];
  int rejecting; /* cli_progress_rejecting */
};

size_t cli_control_len(const unsigned char *p)
{
  if (*p < 0x20 || *p == 0x7f)
    return 1;
  if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
    return 2;
  /* a byte that starts no UTF-8 character: a terminal in an 8-bit mode
   * reads a lone 0x9b as CSI (a NUL ends the string before any byte
   * past it is read) */
  if (*p >= 0x80 && cairn_utf8_char_len(p, 4) == 0)
    return 1;
  return 0;
}

size_t cli_char_len(const unsigned char *p)
{
  size_t c = *p < 0x80 ? 1 : cairn_utf8_char_len(p, 4);
  return c ? c : 1;
}

const char *cli_safe(const char *s, char *buf, size_t n)
{
  const unsigned char *p = (const unsigned char *)s;
  size_t k = 0, c;

  while (*p && cli_control_len(p) == 0)
    p += cli_char_len(p);
  if (*p == '\0')
    return s;
  if (n == 0)
    return "";
  for (p = (const unsigned char *)s; *p; p += c) {
    c = cli_control_len(p);
    if (c == 0) {
      c = cli_char_len(p);
      if (k + c >= n)
        break;
      memcpy(buf + k, p, c);
      k += c;
    } else if (k + 4 * c < n)
      for (size_t i = 0; i < c; i++)
        k += (size_t)snprintf(buf + k, n - k, "\\x%02x", p[i]);
    else
      break;
  }
  buf[k] = '\0';
  return buf;
}

json_t *cli_text(const char *s)
{
  json_t *v = json_string(s ? s : "");
  if (v != NULL)
    return v;
  /* not UTF-8 (an edited row: cairn writes none such), which JSON cannot
   * hold: shown with '?' for each bad byte rather than dropped */
  char *copy = strdup(s);
  if (copy == NULL)
    return NULL;
  cairn_utf8_scrub(copy, strlen(copy));
  v = json_string(copy);
  free(copy);
  return v;
}

/* cli_safe into one buffer of this file, for the run's lines: an error
 * holds what a step printed, escape sequences included, and they would
 * act on the terminal. Valid until the next call. */
static const char *safe_text(const char *s)
{
  static char buf[4 * 4096 + 1];

  return cli_safe(s, buf, sizeof buf);
}

const char *cli_duration(int64_t ms, char *buf, size_t n)
{
  return cairn_duration_format(ms, buf, n);
}

const char *cli_time(int64_t ms, char *buf, size_t n)
{
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  localtime_r(&t, &tm);
  strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

void cli_print_json(json_t *v)
{
  char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
  if (s) {
    fputs(s, stdout);
    fputc('\n', stdout);
    free(s);
  }
  fflush(stdout);
}

int cli_path_depth(const char *path)
{
  int depth = 0;
  /* no state, branch or map key can hold '/' (nor does "undo:"), so
   * each one is a level */
  for (; *path; path++)
    depth += *path == '/';
  return depth;
}

const struct engine_state *cli_failure_owner(const struct engine_workflow *wf,
                                             const struct engine_state *st)
{
  while (st->frame >= 0 && (size_t)st->frame < wf->nframes &&
         (strcmp(st->on_failure, "rollback") == 0 ||
          strcmp(st->on_failure, "fail") == 0))
    st = &wf->states[wf->frames[st->frame].use_state];
  return st;
}

struct cli_progress *cli_progress_create(struct cli_ctx *ctx)
{
  struct cli_progress *p = calloc(1, sizeof *p);
  if (p)
    p->ctx = ctx;
  return p;
}

void cli_progress_destroy(struct cli_progress *p)
{
  free(p);
}

static const char *c_on(struct cli_progress *p, const char *code)
{
  return p->ctx->color ? code : "";
}

static const char *c_off(struct cli_progress *p)
{
  return p->ctx->color ? "\033[0m" : "";
}

static void erase_live(struct cli_progress *p)
{
  for (size_t i = 0; i < p->drawn; i++)
    fputs("\033[1A\033[2K", stdout);
  p->drawn = 0;
}

static void draw_live(struct cli_progress *p)
{
  int64_t now = journal_now_ms();
  char d[32];
  for (size_t i = 0; i < p->nlive; i++) {
    printf("%s…%s %s %s%s%s", c_on(p, "\033[33m"), c_off(p), p->live[i].path,
           c_on(p, "\033[2m"),
           cli_duration(now - p->live[i].since_ms, d, sizeof d), c_off(p));
    if (p->live[i].attempt > 1)
      printf(" (attempt %d)", p->live[i].attempt);
    fputc('\n', stdout);
  }
  p->drawn = p->nlive;
  fflush(stdout);
}

static struct live *live_find(struct cli_progress *p, const char *path)
{
  for (size_t i = 0; i < p->nlive; i++)
    if (strcmp(p->live[i].path, path) == 0)
      return &p->live[i];
  return NULL;
}

static int64_t live_remove(struct cli_progress *p, const char *path)
{
  for (size_t i = 0; i < p->nlive; i++)
    if (strcmp(p->live[i].path, path) == 0) {
      int64_t since = p->live[i].since_ms;
      memmove(&p->live[i], &p->live[i + 1],
              (p->nlive - i - 1) * sizeof p->live[0]);
      p->nlive--;
      return since;
    }
  return -1;
}

static void observe_json(const struct journal_event *ev)
{
  json_t *v = json_pack("{s:I,s:s,s:s,s:s,s:i,s:I,s:O}", "seq",
                        (json_int_t)ev->seq, "run", ev->run_id, "kind",
                        ev->kind, "state", ev->state, "attempt", ev->attempt,
                        "time_ms", (json_int_t)ev->time_ms, "payload",
                        ev->payload);
  /* no flush: cli_progress_observed writes a commit's lines at once */
  json_dumpf(v, stdout, JSON_COMPACT | JSON_SORT_KEYS);
  fputc('\n', stdout);
  json_decref(v);
}

static const char *pstr(const struct journal_event *ev, const char *key)
{
  const char *s = json_string_value(json_object_get(ev->payload, key));
  return s ? s : "";
}

void cli_progress_observe(void *ud, const struct journal_event *ev)
{
  struct cli_progress *p = ud;
  const char *k = ev->kind;
  char d[32];

  snprintf(p->run_id, sizeof p->run_id, "%s", ev->run_id);
  if (p->ctx->json) {
    observe_json(ev);
    return;
  }
  if (p->ctx->tty)
    erase_live(p);

  if (strcmp(k, JOURNAL_EV_RUN_STARTED) == 0) {
    const char *env = pstr(ev, "env");
    printf("run %s: %s%s%s\n", ev->run_id, pstr(ev, "workflow"),
           *env ? " in " : "", env);
  } else if (strcmp(k, JOURNAL_EV_RUN_RESUMED) == 0) {
    printf("run %s resumed\n", ev->run_id);
  } else if (strcmp(k, JOURNAL_EV_ACTION_STARTED) == 0) {
    struct live *l = live_find(p, ev->state);
    if (l == NULL && p->nlive < LIVE_MAX) {
      l = &p->live[p->nlive++];
      snprintf(l->path, sizeof l->path, "%s", ev->state);
      l->since_ms = ev->time_ms;
    }
    if (l)
      l->attempt = ev->attempt;
    if (!p->ctx->tty) {
      if (ev->attempt > 1)
        printf("start %s (attempt %d)\n", ev->state, ev->attempt);
      else
        printf("start %s\n", ev->state);
    }
  } else if (strcmp(k, JOURNAL_EV_ACTION_FINISHED) == 0 ||
             strcmp(k, JOURNAL_EV_PROBE_FINISHED) == 0) {
    const char *o = pstr(ev, "outcome");
    const char *e = pstr(ev, "error");
    const char *le = pstr(ev, "log_error");
    int probe = strcmp(k, JOURNAL_EV_PROBE_FINISHED) == 0;
    json_int_t ms = json_integer_value(json_object_get(ev->payload,
                                                       "duration_ms"));
    live_remove(p, ev->state);
    if (strcmp(o, "succeeded") == 0)
      printf("%s✓%s %s%s %s%s%s", c_on(p, "\033[32m"), c_off(p),
             ev->state, probe ? " (probe: it took effect)" : "",
             c_on(p, "\033[2m"), cli_duration(ms, d, sizeof d), c_off(p));
    else
      /* the duration in brackets: an error may end "after 1s" itself;
       * 0ms too (a program that cannot run), as a success says it */
      printf("%s✗%s %s%s %s%s%s (%s)", c_on(p, "\033[31m"), c_off(p),
             ev->state, probe ? " (probe: it did not take effect)" : "", o,
             *e ? ": " : "", safe_text(e), cli_duration(ms, d, sizeof d));
    /* a log that could not be written is said where it happened */
    if (*le)
      printf(" (log incomplete: %s)", safe_text(le));
    putchar('\n');
  } else if (strcmp(k, JOURNAL_EV_ACTION_RETRYING) == 0) {
    json_int_t ms = json_integer_value(json_object_get(ev->payload,
                                                       "delay_ms"));
    printf("↻ %s: attempt %d in %s\n", ev->state,
           (int)json_integer_value(json_object_get(ev->payload,
                                                   "next_attempt")),
           cli_duration(ms, d, sizeof d));
  } else if (strcmp(k, JOURNAL_EV_TRANSITION) == 0) {
    const char *reason = pstr(ev, "reason");
    const char *to = pstr(ev, "to");
    if (*to && strcmp(reason, "next") != 0)
      printf("→ %s (%s)\n", to, safe_text(reason));
  } else if (strcmp(k, JOURNAL_EV_STATE_ENTERED) == 0) {
    const char *kind = pstr(ev, "kind");
    const char *e = pstr(ev, "error");
    if (*e) /* its inputs could not be made: no action started */
      printf("%s✗%s %s failed: %s\n", c_on(p, "\033[31m"), c_off(p),
             ev->state, safe_text(e));
    else if (strcmp(kind, "wait") == 0) {
      json_int_t until = json_integer_value(json_object_get(ev->payload,
                                                            "wait_until_ms"));
      printf("… %s: waiting %s\n", ev->state,
             cli_duration(until - ev->time_ms, d, sizeof d));
    }
  } else if (strcmp(k, JOURNAL_EV_ROLLBACK_REQUESTED) == 0) {
    printf("run %s: rollback requested by %s\n", ev->run_id,
           safe_text(pstr(ev, "actor")));
  } else if (strcmp(k, JOURNAL_EV_ROLLBACK_PLANNED) == 0) {
    cli_print_plan_line(ev->payload);
  } else if (strcmp(k, JOURNAL_EV_APPROVAL_REJECTED) == 0) {
    const char *c = pstr(ev, "comment");
    char who[1024];
    printf("%s✗%s %s rejected by %s%s%s\n", c_on(p, "\033[31m"), c_off(p),
           ev->state, cli_safe(pstr(ev, "actor"), who, sizeof who),
           *c ? ": " : "", safe_text(c));
  } else if (strcmp(k, JOURNAL_EV_DECISION_ASSUMED) == 0) {
    printf("! %s: assumed %s (by %s)\n", ev->state, pstr(ev, "outcome"),
           safe_text(pstr(ev, "actor")));
  } else if (strcmp(k, JOURNAL_EV_LOCK_TAKEN_OVER) == 0) {
    printf("! took over the lock of run %s (pid %d is gone)\n",
           pstr(ev, "run_id"),
           (int)json_integer_value(json_object_get(ev->payload, "pid")));
  } else if (strcmp(k, JOURNAL_EV_WORKFLOW_CHANGED) == 0) {
    printf("! the workflow file changed since the run started "
           "(--allow-changed)\n");
  }
}

void cli_progress_observed(void *ud)
{
  struct cli_progress *p = ud;

  if (p->ctx->tty && !p->ctx->json)
    draw_live(p); /* flushes */
  else
    fflush(stdout);
}

void cli_print_plan_line(json_t *planned)
{
  json_t *steps = json_object_get(planned, "steps");
  size_t i;
  json_t *st;
  printf("↶ rollback plan:");
  if (json_array_size(steps) == 0)
    printf(" nothing to undo");
  json_array_foreach(steps, i, st)
    printf("%s %s", i ? "," : "",
           json_string_value(json_object_get(st, "undo_path")));
  fputc('\n', stdout);
}

void cli_progress_tick(void *ud)
{
  struct cli_progress *p = ud;
  if (p->ctx->json || !p->ctx->tty || p->nlive == 0)
    return;
  erase_live(p);
  draw_live(p);
}

void cli_progress_rejecting(struct cli_progress *p)
{
  p->rejecting = 1;
}

int cli_progress_result(struct cli_progress *p, const struct engine_result *r,
                        const char *journal_path)
{
  char d[32];
  int code;
  const char *status;

  switch (r->outcome) {
  case ENGINE_SUCCEEDED:
    code = CLI_EXIT_OK;
    status = "succeeded";
    break;
  case ENGINE_FAILED:
    /* a rejected run failing is what its rejection asked for */
    code = p->rejecting && strncmp(r->message, "rejected by ", 12) == 0
               ? CLI_EXIT_OK  /* not when its failure path failed too */
               : CLI_EXIT_FAILED;
    status = r->status[0] ? r->status : "failed";
    break;
  case ENGINE_ROLLBACK_FAILED:
    code = CLI_EXIT_ROLLBACK;
    status = "rollback_failed";
    break;
  case ENGINE_ROLLED_BACK:
    code = CLI_EXIT_OK;
    status = "rolled_back";
    break;
  case ENGINE_WAITING:
  case ENGINE_AWAITING_APPROVAL:
    code = CLI_EXIT_INTERRUPTED;
    status = "waiting";
    break;
  default:
    code = CLI_EXIT_INTERRUPTED;
    status = "interrupted";
    break;
  }
  if (p->ctx->json) {
    json_t *v = json_pack("{s:s,s:s,s:s,s:i,s:s,s:s,s:I}", "kind", "result",
                          "run", r->run_id, "status", status, "exit_code",
                          code, "state", r->state, "message", r->message,
                          "duration_ms", (json_int_t)r->duration_ms);
    if (v && r->outcome == ENGINE_WAITING) {
      /* the steps to decide, for a script's --assume PATH=... */
      json_t *steps = json_array();
      for (const char *l = r->decide, *nl; steps && *l; l = nl + 1) {
        nl = strchr(l, '\n');
        if (nl == NULL)
          break;
        json_array_append_new(steps, json_stringn(l, (size_t)(nl - l)));
      }
      json_object_set_new(v, "decide", steps);
      json_object_set_new(v, "decide_complete",
                          json_boolean(!r->decide_more));
    }
    cli_print_json(v);
    json_decref(v);
    return code;
  }
  if (p->ctx->tty)
    erase_live(p);
  switch (r->outcome) {
  case ENGINE_SUCCEEDED:
    printf("run %s %ssucceeded%s in %s\n", r->run_id, c_on(p, "\033[32m"),
           c_off(p), cli_duration(r->duration_ms, d, sizeof d));
    break;
  case ENGINE_FAILED:
    printf("run %s %sfailed%s in %s: %s\n", r->run_id, c_on(p, "\033[31m"),
           c_off(p), cli_duration(r->duration_ms, d, sizeof d),
           safe_text(r->message));
    break;
  case ENGINE_ROLLED_BACK:
    printf("run %s %srolled back%s in %s: %s\n", r->run_id,
           c_on(p, "\033[32m"), c_off(p),
           cli_duration(r->duration_ms, d, sizeof d), safe_text(r->message));
    break;
  case ENGINE_ROLLBACK_FAILED:
    printf("run %s %srollback failed%s in %s: %s\n", r->run_id,
           c_on(p, "\033[31m"), c_off(p),
           cli_duration(r->duration_ms, d, sizeof d), safe_text(r->message));
    break;
  case ENGINE_WAITING:
    printf("run %s needs a decision: %s\n", r->run_id, safe_text(r->message));
    break;
  case ENGINE_AWAITING_APPROVAL:
    printf("%s\n", safe_text(r->message));
    break;
  case ENGINE_INTERRUPTED:
    printf("run %s %s; continue it with 'cairn resume %s'\n", r->run_id,
           safe_text(r->message), r->run_id);
    break;
  }
  (void)journal_path;
  fflush(stdout);
  return code;
}
