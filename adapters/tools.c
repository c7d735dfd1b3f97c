/* The kubectl, helm and compose adapters: thin actions over the real
 * command-line tools, each a short sequence of commands (argv, never a
 * shell; every value one element, options written --name=value so a value
 * is never read as a flag), with what the tools print parsed into outputs
 * and the natural undo as each one's default.
 *
 * One runner serves the three (struct tool_job): an adapter's next()
 * names the next command from what the last one did, until it says done
 * or failed. Each command is a child of the exec adapter (adapters/exec.h)
 * as sql.migrate's psql is: its own session and process group, stdin
 * /dev/null, no descriptor but 0-2 inherited; its stdout is kept (1 MiB)
 * for parsing, and both streams go, redacted, to the step's log and the
 * tail.
 *
 * Life of a job: a command runs, then the next one or the end. A timeout
 * or cancel stops the running command's whole group (exec: SIGTERM, the
 * grace, SIGKILL; its end comes only once no member is left) and no
 * further command starts. The job's timer is closed last; its close
 * callback calls on_done. */
#include "adapters/adapter.h"
#include "adapters/input.h"
#include "adapters/exec.h"
#include "adapters/spawn.h"
#include "common/buf.h"
#include "common/utf8.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOOL_STDOUT_MAX (1024 * 1024) /* kept for parsing */

enum tool_next {
  TOOL_SPAWN, /* j->argv holds the next command */
  TOOL_DONE,
  TOOL_FAIL,  /* j->error says why */
};

struct tool_job;

struct tool_kind {
  /* Called with j->ran 0 before the first command, then after each. */
  enum tool_next (*next)(struct tool_job *j);
};

struct tool_job {
  struct adapter_call *call;
  const struct tool_kind *kind;
  json_t *in;       /* call->inputs, borrowed */
  json_t *outputs;
  int stage;        /* the adapter's own step counter */
  size_t idx;       /* its position in a list (deployments) */
  json_t *list;     /* its list, owned */

  /* the command */
  json_t *argv;     /* strings, owned */
  char what[64];    /* "helm upgrade", for messages */
  struct adapter__child child;
  char *header;     /* "$ argv...\n" for the log, redacted */
  int ran;          /* commands finished */
  char spawn_err[512]; /* why the last one could not start; "" when it did */
  int64_t exit_status;
  int term_signal;
  struct cairn_buf sout;   /* its raw stdout */
  char errtail[512];       /* its redacted stderr, the end */
  size_t errtail_len;

  uv_timer_t timer; /* the timeout */
  int stopping;     /* timed out or cancelled */
  enum adapter_outcome stop_outcome;
  int finishing;

  int log_fd;
  char tail[2 * ADAPTER_TAIL_MAX];
  size_t tail_len;
  char tail_out[ADAPTER_TAIL_MAX + 1];
  char error[512];
  uint64_t start_ns;
  char *set_file;   /* helm: the values file of `set` (removed at the end) */
};

/* ---- small helpers ------------------------------------------------------ */

static const char *in_str(struct tool_job *j, const char *name)
{
  const char *s = json_string_value(json_object_get(j->in, name));
  return s ? s : "";
}

static void av_add(struct tool_job *j, const char *s)
{
  json_array_append_new(j->argv, json_string(s));
}

/* "--name=value" when value is not empty. */
static void av_opt(struct tool_job *j, const char *flag, const char *value)
{
  char *s;
  size_t n;

  if (value == NULL || value[0] == '\0')
    return;
  n = strlen(flag) + strlen(value) + 2;
  if ((s = malloc(n)) == NULL)
    return;
  snprintf(s, n, "%s=%s", flag, value);
  av_add(j, s);
  free(s);
}

/* A new command: argv[0] tool, then words; what names it in messages. */
static void av_begin(struct tool_job *j, const char *what)
{
  json_decref(j->argv);
  j->argv = json_array();
  snprintf(j->what, sizeof j->what, "%s", what);
  for (const char *p = what; *p;) {
    size_t n = strcspn(p, " ");
    json_array_append_new(j->argv, json_stringn(p, n));
    p += n;
    p += strspn(p, " ");
  }
}

/* ---- output ------------------------------------------------------------- */

static void errtail_append(struct tool_job *j, const char *p, size_t n)
{
  size_t cap = sizeof j->errtail - 1;

  if (n >= cap) {
    memcpy(j->errtail, p + n - cap, cap);
    j->errtail_len = cap;
  } else {
    if (j->errtail_len + n > cap) {
      size_t drop = j->errtail_len + n - cap;
      memmove(j->errtail, j->errtail + drop, j->errtail_len - drop);
      j->errtail_len -= drop;
    }
    memcpy(j->errtail + j->errtail_len, p, n);
    j->errtail_len += n;
  }
  j->errtail[j->errtail_len] = '\0';
}

/* The command's output, redacted (exec has logged it): the tail, and for
 * stderr the error's tail. */
static void on_output(void *ud, int is_stdout, const char *p, size_t n)
{
  struct tool_job *j = ud;

  adapter__tail_add(j->tail, &j->tail_len, p, n);
  if (!is_stdout)
    errtail_append(j, p, n);
}

/* Its raw stdout, kept for parsing. */
static void on_stdout_raw(void *ud, const char *p, size_t n)
{
  struct tool_job *j = ud;

  if (j->sout.len + n <= TOOL_STDOUT_MAX)
    cairn_buf_add(&j->sout, p, n);
  else
    j->sout.failed = 1;
}

/* The last non-empty line of the command's stderr, redacted and valid
 * UTF-8 (it goes into the journal). */
static const char *last_err_line(struct tool_job *j, char *buf, size_t n)
{
  size_t len;
  const char *line = cairn_last_line(j->errtail, j->errtail_len, &len);

  if (len >= n)
    len = cairn_utf8_cut(line, n - 1);
  memcpy(buf, line, len);
  buf[len] = '\0';
  cairn_utf8_scrub(buf, len);
  return buf;
}

/* ---- the job's end ------------------------------------------------------ */

static void job_free(struct tool_job *j)
{
  if (j->log_fd >= 0)
    close(j->log_fd);
  if (j->set_file) {
    unlink(j->set_file);
    free(j->set_file);
  }
  adapter__child_release(&j->child);
  json_decref(j->outputs);
  json_decref(j->argv);
  json_decref(j->list);
  cairn_buf_release(&j->sout);
  free(j->header);
  free(j);
}

static void on_timer_close(uv_handle_t *h)
{
  struct tool_job *j = h->data;
  struct adapter_call *call = j->call;
  struct adapter_result res;

  memset(&res, 0, sizeof res);
  res.exit_code = j->ran && !j->spawn_err[0] && !j->term_signal
                    ? (int)j->exit_status : -1;
  res.term_signal = j->term_signal;
  res.duration_ms = (int64_t)((uv_hrtime() - j->start_ns) / 1000000);
  res.outputs = j->outputs;
  if (j->stopping) {
    res.outcome = j->stop_outcome;
    snprintf(res.error, sizeof res.error, "%s", j->error);
  } else if (j->error[0]) {
    res.outcome = ADAPTER_FAILED;
    snprintf(res.error, sizeof res.error, "%s", j->error);
  } else {
    res.outcome = ADAPTER_SUCCEEDED;
  }
  /* the tail is journaled as JSON text: valid UTF-8 */
  res.tail = (char *)adapter__tail_text(j->tail, j->tail_len, j->tail_out);
  call->priv = NULL;
  call->on_done(call, &res);
  job_free(j);
}

static void finish(struct tool_job *j)
{
  if (j->finishing)
    return;
  j->finishing = 1;
  uv_timer_stop(&j->timer);
  uv_close((uv_handle_t *)&j->timer, on_timer_close);
}

static void spawn_next(struct tool_job *j);

/* The command is over: its group is empty and its handles are closed. */
static void command_done(struct adapter__child *c,
                         const struct adapter_result *res)
{
  struct tool_job *j = c->data;
  char line[400];

  j->ran++;
  j->exit_status = res->exit_code;
  j->term_signal = res->term_signal;
  j->spawn_err[0] = '\0';
  if (!c->spawned)
    snprintf(j->spawn_err, sizeof j->spawn_err, "%s",
             res->error[0] ? res->error : "cannot run the command");
  if (j->stopping) {
    finish(j);
    return;
  }
  if (j->spawn_err[0]) {
    snprintf(j->error, sizeof j->error,
             "%s (is it installed and on PATH?)", j->spawn_err);
    finish(j);
    return;
  }
  switch (j->kind->next(j)) {
  case TOOL_SPAWN:
    spawn_next(j);
    return;
  case TOOL_DONE:
    j->error[0] = '\0';
    break;
  case TOOL_FAIL:
    if (j->error[0] == '\0') {
      last_err_line(j, line, sizeof line);
      if (j->term_signal)
        snprintf(j->error, sizeof j->error, "'%s' was killed by signal %d%s%s",
                 j->what, j->term_signal, line[0] ? ": " : "", line);
      else
        snprintf(j->error, sizeof j->error, "'%s' exited with status %d%s%s",
                 j->what, (int)j->exit_status, line[0] ? ": " : "", line);
    }
    break;
  }
  finish(j);
}

/* 1 when the last command exited with status 0. */
static int ran_ok(struct tool_job *j)
{
  return !j->spawn_err[0] && !j->term_signal && j->exit_status == 0;
}

/* ---- one command -------------------------------------------------------- */

/* "$ tool args...\n", redacted, for the log: j->header. */
static int make_header(struct tool_job *j)
{
  struct cairn_buf b = { 0 };
  size_t i;
  json_t *item;

  cairn_buf_add(&b, "$", 1);
  json_array_foreach(j->argv, i, item) {
    cairn_buf_add(&b, " ", 1);
    cairn_buf_add(&b, json_string_value(item), json_string_length(item));
  }
  cairn_buf_add(&b, "\n", 1);
  free(j->header);
  j->header = NULL;
  if (b.failed) {
    cairn_buf_release(&b);
    return -1;
  }
  j->header = adapter_redact(b.p, j->call->redact); /* takes b.p */
  return 0;
}

static void spawn_next(struct tool_job *j)
{
  struct adapter_call *call = j->call;
  struct adapter__exec_hooks hooks = { on_stdout_raw, on_output, j };
  struct adapter__child_spec spec = { 0 };
  struct cairn_error err = { 0 };
  size_t n = json_array_size(j->argv);
  const char **args;

  j->errtail_len = 0;
  j->errtail[0] = '\0';
  j->sout.len = 0;
  j->sout.failed = 0;
  if ((args = calloc(n + 1, sizeof *args)) == NULL || make_header(j) < 0) {
    free(args);
    snprintf(j->error, sizeof j->error, "out of memory");
    finish(j);
    return;
  }
  for (size_t i = 0; i < n; i++)
    args[i] = json_string_value(json_array_get(j->argv, i));
  spec.argv = args;
  spec.log_path = call->log_path;
  spec.log_header = j->header;
  spec.hooks = &hooks;
  if (adapter__child_start(&j->child, &spec, &err) < 0) {
    snprintf(j->error, sizeof j->error, "cannot run '%s': %s", j->what,
             err.msg);
    finish(j);
  }
  free(args);
}

/* ---- timeout and cancel ------------------------------------------------- */

static void stop(struct tool_job *j, enum adapter_outcome why)
{
  if (j->stopping || j->finishing)
    return;
  j->stopping = 1;
  j->stop_outcome = why;
  if (why == ADAPTER_TIMED_OUT)
    snprintf(j->error, sizeof j->error, "'%s' timed out after %lld ms",
             j->what, (long long)j->call->timeout_ms);
  else
    snprintf(j->error, sizeof j->error, "cancelled during '%s'", j->what);
  adapter__child_cancel(&j->child); /* its on_done finishes the job */
}

static void on_timer(uv_timer_t *t)
{
  stop(t->data, ADAPTER_TIMED_OUT);
}

static void tool_cancel(struct adapter_call *call)
{
  struct tool_job *j = call ? call->priv : NULL;

  if (j != NULL)
    stop(j, ADAPTER_CANCELLED);
}

static int tool_start(struct adapter_call *call, const struct tool_kind *kind,
                      struct cairn_error *err)
{
  struct tool_job *j;
  enum tool_next first;
  int rc;

  if (!json_is_object(call->inputs))
    return cairn_error_set(err, CAIRN_E_INVAL, "inputs of %s must be a map",
                           call->desc ? call->desc->name : "a tool");
  if ((j = calloc(1, sizeof *j)) == NULL)
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  j->call = call;
  j->kind = kind;
  j->in = call->inputs;
  j->log_fd = -1;
  j->sout.max = TOOL_STDOUT_MAX + 1;
  j->child.parent = call;
  j->child.on_done = command_done;
  j->child.data = j;
  if ((j->outputs = json_object()) == NULL) {
    free(j);
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  }

  first = kind->next(j); /* checks the inputs, builds the first argv */
  if (first == TOOL_FAIL) {
    rc = cairn_error_set(err, CAIRN_E_INVAL, "%s",
                         j->error[0] ? j->error : "nothing to run");
    job_free(j);
    return rc;
  }
  /* best effort, as every step's log: a full disk fails no release */
  j->log_fd = adapter_log_open(call);
  j->start_ns = uv_hrtime();
  uv_timer_init(call->loop, &j->timer);
  j->timer.data = j;
  call->priv = j;
  if (first == TOOL_DONE) {
    /* nothing to do (a rollout undo without deployments): success, with
     * on_done from the loop as always */
    if (j->log_fd >= 0 && adapter__write_all(j->log_fd, "nothing to run\n",
                                             15) < 0)
      adapter_log_failed(call->log_errno, errno);
    finish(j);
    return 0;
  }
  if (call->timeout_ms > 0) {
    uv_update_time(call->loop);
    uv_timer_start(&j->timer, on_timer, (uint64_t)call->timeout_ms, 0);
  }
  spawn_next(j);
  return 0;
}

/* ---- checks shared by the three ----------------------------------------- */

/* A value that would be read as a flag where it stands alone. */
static int check_not_flag(json_t *with, const char *key,
                          struct cairn_error *err)
{
  json_t *v = json_object_get(with, key);
  size_t i;
  json_t *item;

  if (json_is_string(v) && !adapter_is_template(v) && json_string_value(v)[0] == '-')
    return cairn_error_set(err, CAIRN_E_INVAL, "input '%s' must not start "
                           "with '-' ('%s' would be read as an option)", key,
                           json_string_value(v));
  if (json_is_array(v)) {
    json_array_foreach(v, i, item) {
      if (json_is_string(item) && !adapter_is_template(item) &&
          json_string_value(item)[0] == '-')
        return cairn_error_set(err, CAIRN_E_INVAL, "input '%s' must not "
                               "have an item starting with '-' ('%s' would "
                               "be read as an option)", key,
                               json_string_value(item));
    }
  }
  return 0;
}

/* The input `action` is one of the words in `allowed` (space-separated). */
static int check_action(json_t *with, const char *allowed,
                        struct cairn_error *err)
{
  json_t *v = json_object_get(with, "action");
  const char *a;
  size_t n;

  if (!json_is_string(v) || adapter_is_template(v))
    return 0;
  a = json_string_value(v);
  n = strlen(a);
  for (const char *p = allowed; *p;) {
    size_t w = strcspn(p, " ");
    if (w == n && memcmp(p, a, n) == 0)
      return 0;
    p += w;
    p += strspn(p, " ");
  }
  return cairn_error_set(err, CAIRN_E_INVAL, "unknown action '%s' (use %s)",
                         a, allowed);
}

static const char *action_of(json_t *with, const char *dflt)
{
  const char *a = json_string_value(json_object_get(with, "action"));
  return a ? a : dflt;
}

/* "300s" for --timeout, from integer milliseconds (rounded up). */
static void seconds_text(json_t *ms, char *out, size_t n)
{
  out[0] = '\0';
  if (json_is_integer(ms))
    snprintf(out, n, "%llds",
             (long long)((json_integer_value(ms) + 999) / 1000));
}

/* Runs check on the rendered inputs; on error j->error says why. */
static enum tool_next recheck(struct tool_job *j,
                              int (*check)(json_t *, struct cairn_error *))
{
  struct cairn_error e = { 0 };

  if (check(j->in, &e) < 0) {
    snprintf(j->error, sizeof j->error, "%s", e.msg);
    return TOOL_FAIL;
  }
  return TOOL_SPAWN;
}

/* ---- kubectl ------------------------------------------------------------ */

static int kubectl_check(json_t *with, struct cairn_error *err)
{
  const char *action = action_of(with, "apply");
  int rc;
  json_t *res = json_object_get(with, "resources");
  size_t i;
  json_t *item;

  if ((rc = check_action(with, "apply rollout_undo", err)) < 0)
    return rc;
  if ((rc = check_not_flag(with, "deployment", err)) < 0)
    return rc;
  if (strcmp(action, "apply") == 0 &&
      !adapter__input_given(with, "file") ==
          !adapter__input_given(with, "kustomize"))
    return cairn_error_set(err, CAIRN_E_INVAL, "kubectl apply needs exactly "
                           "one of 'file' and 'kustomize'");
  if (json_is_string(json_object_get(with, "file")) &&
      strcmp(json_string_value(json_object_get(with, "file")), "-") == 0)
    return cairn_error_set(err, CAIRN_E_INVAL, "input 'file' cannot be '-' "
                           "(standard input is /dev/null)");
  if (res && !json_is_null(res) && !adapter_is_template(res)) {
    if (!json_is_array(res))
      return cairn_error_set(err, CAIRN_E_INVAL, "input 'resources' must be "
                             "a list of kind/name strings");
    json_array_foreach(res, i, item) {
      if (!json_is_string(item))
        return cairn_error_set(err, CAIRN_E_INVAL, "input 'resources' must "
                               "be a list of kind/name strings");
    }
  }
  return 0;
}

static void kubectl_globals(struct tool_job *j)
{
  av_opt(j, "--namespace", in_str(j, "namespace"));
  av_opt(j, "--context", in_str(j, "context"));
}

/* The deployments to wait for or undo: `deployment`, or each
 * deployment in resources ("deployment.apps/web" -> "web"). */
static json_t *deployments_of(struct tool_job *j, json_t *resources)
{
  json_t *list = json_array();
  const char *d = in_str(j, "deployment");
  size_t i;
  json_t *item;

  if (d[0]) {
    json_array_append_new(list, json_string(d));
    return list;
  }
  json_array_foreach(resources, i, item) {
    const char *s = json_string_value(item);
    const char *slash = s ? strchr(s, '/') : NULL;
    if (slash == NULL)
      continue;
    if ((size_t)(slash - s) == strlen("deployment.apps") &&
        strncmp(s, "deployment.apps", (size_t)(slash - s)) == 0)
      json_array_append_new(list, json_string(slash + 1));
    else if ((size_t)(slash - s) == strlen("deployment") &&
             strncmp(s, "deployment", (size_t)(slash - s)) == 0)
      json_array_append_new(list, json_string(slash + 1));
  }
  return list;
}

/* `kubectl apply -o name` prints one kind/name per line. */
static json_t *parse_names(struct tool_job *j)
{
  json_t *res = json_array();
  const char *p = j->sout.p ? j->sout.p : "", *end = p + j->sout.len;

  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    size_t ll = eol ? (size_t)(eol - p) : (size_t)(end - p);
    size_t a = 0;
    while (a < ll && (p[a] == ' ' || p[a] == '\t'))
      a++;
    while (ll > a && (p[ll - 1] == ' ' || p[ll - 1] == '\r'))
      ll--;
    if (ll > a && memchr(p + a, '/', ll - a) != NULL) {
      char *s = strndup(p + a, ll - a);
      if (s) {
        s = adapter_redact(s, j->call->redact);
        json_array_append_new(res, json_string(s));
        free(s);
      }
    }
    p += (eol ? (size_t)(eol - p) : (size_t)(end - p)) + 1;
  }
  return res;
}

static enum tool_next kubectl_deployment_cmd(struct tool_job *j,
                                             const char *verb)
{
  char what[64], rt[32], target[512];
  const char *name = json_string_value(json_array_get(j->list, j->idx));

  snprintf(what, sizeof what, "kubectl rollout %s", verb);
  av_begin(j, what);
  snprintf(target, sizeof target, "deployment/%s", name);
  av_add(j, target);
  if (strcmp(verb, "status") == 0) {
    seconds_text(json_object_get(j->in, "rollout_timeout"), rt, sizeof rt);
    av_opt(j, "--timeout", rt);
  }
  kubectl_globals(j);
  j->idx++;
  return TOOL_SPAWN;
}

static enum tool_next kubectl_next(struct tool_job *j)
{
  int apply = strcmp(in_str(j, "action"), "apply") == 0;

  if (j->stage == 0) {
    if (recheck(j, kubectl_check) == TOOL_FAIL)
      return TOOL_FAIL;
    j->stage = 1;
    if (apply) {
      av_begin(j, "kubectl apply");
      av_opt(j, "--filename", in_str(j, "file"));
      av_opt(j, "--kustomize", in_str(j, "kustomize"));
      av_add(j, "--output=name");
      kubectl_globals(j);
      return TOOL_SPAWN;
    }
    j->list = deployments_of(j, json_object_get(j->in, "resources"));
    json_object_set(j->outputs, "deployments", j->list);
    j->stage = 2;
    if (json_array_size(j->list) == 0)
      return TOOL_DONE; /* nothing that rollout undo knows */
    return kubectl_deployment_cmd(j, "undo");
  }
  if (!ran_ok(j))
    return TOOL_FAIL;
  if (j->stage == 1) { /* apply ran */
    json_t *res = parse_names(j);
    json_object_set_new(j->outputs, "resources", res);
    j->list = deployments_of(j, res);
    json_object_set(j->outputs, "deployments", j->list);
    j->stage = 2;
    if (!json_is_true(json_object_get(j->in, "wait")))
      return TOOL_DONE;
  }
  if (j->idx < json_array_size(j->list))
    return kubectl_deployment_cmd(j, apply ? "status" : "undo");
  return TOOL_DONE;
}

static int kubectl_start(struct adapter_call *call, struct cairn_error *err)
{
  static const struct tool_kind k = { kubectl_next };
  return tool_start(call, &k, err);
}

/* ---- helm --------------------------------------------------------------- */

static int helm_check(json_t *with, struct cairn_error *err)
{
  const char *action = action_of(with, "upgrade");
  int rc;

  if ((rc = check_action(with, "upgrade rollback uninstall revert",
                         err)) < 0 ||
      (rc = check_not_flag(with, "release", err)) < 0 ||
      (rc = check_not_flag(with, "chart", err)) < 0)
    return rc;
  if (strcmp(action, "upgrade") == 0 && !adapter__input_given(with, "chart"))
    return cairn_error_set(err, CAIRN_E_INVAL, "helm upgrade needs 'chart'");
  if (strcmp(action, "rollback") == 0 &&
      !adapter__input_given(with, "revision"))
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "helm rollback needs 'revision'");
  if (strcmp(action, "revert") == 0 &&
      !adapter__input_given(with, "previous_revision"))
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "helm revert needs 'previous_revision' (0: "
                           "uninstall)");
  return 0;
}

static void helm_globals(struct tool_job *j)
{
  av_opt(j, "--namespace", in_str(j, "namespace"));
  av_opt(j, "--kube-context", in_str(j, "kube_context"));
}

static void helm_status_cmd(struct tool_job *j)
{
  av_begin(j, "helm status");
  av_add(j, in_str(j, "release"));
  av_add(j, "--output=json");
  helm_globals(j);
}

/* The release's revision from `helm status -o json` ("version"), or -1. */
static json_int_t helm_revision(struct tool_job *j, json_t **status)
{
  json_t *doc = j->sout.failed ? NULL
                               : json_loadb(j->sout.p ? j->sout.p : "",
                                            j->sout.len, 0, NULL);
  json_t *v = json_object_get(doc, "version");
  json_int_t rev = json_is_integer(v) ? json_integer_value(v) : -1;

  if (status) {
    const char *s =
      json_string_value(json_object_get(json_object_get(doc, "info"),
                                        "status"));
    *status = s ? json_string(s) : NULL;
  }
  json_decref(doc);
  return rev;
}

static void helm_wait_opts(struct tool_job *j)
{
  char t[32];

  if (json_is_true(json_object_get(j->in, "wait")))
    av_add(j, "--wait");
  seconds_text(json_object_get(j->in, "timeout"), t, sizeof t);
  av_opt(j, "--timeout", t);
}

static enum tool_next helm_rollback_cmd(struct tool_job *j, json_int_t rev)
{
  char r[32];

  snprintf(r, sizeof r, "%" JSON_INTEGER_FORMAT, rev);
  av_begin(j, "helm rollback");
  av_add(j, in_str(j, "release"));
  av_add(j, r);
  helm_globals(j);
  helm_wait_opts(j);
  json_object_set_new(j->outputs, "revision", json_integer(rev));
  return TOOL_SPAWN;
}

/* One --set value as helm types it: true, false, null, an integer, or a
 * string. */
static json_t *helm_set_value(const char *v)
{
  char *end;
  long long n;

  if (strcmp(v, "true") == 0)
    return json_true();
  if (strcmp(v, "false") == 0)
    return json_false();
  if (strcmp(v, "null") == 0)
    return json_null();
  errno = 0;
  n = strtoll(v, &end, 10);
  if (v[0] != '\0' && *end == '\0' && errno == 0 &&
      !(v[0] == '0' && v[1] != '\0'))
    return json_integer(n);
  return json_string(v);
}

/* Puts "a.b=v" (dots split keys; "\." and "\," are literal) into doc. */
static int helm_set_one(json_t *doc, const char *item, size_t len,
                        char *why, size_t n)
{
  char *key = malloc(len + 1), *val = NULL;
  size_t k = 0, i = 0;
  json_t *at = doc;
  int rc = -1;

  if (key == NULL) {
    snprintf(why, n, "out of memory");
    return -1;
  }
  for (; i < len && item[i] != '='; i++) {
    if (item[i] == '[') {
      snprintf(why, n, "helm set item '%.*s': list indexes are not "
               "supported (use a values file)", (int)len, item);
      goto out;
    }
    if (item[i] == '\\' && i + 1 < len && item[i + 1] == '.') {
      key[k++] = '.';
      i++;
    } else if (item[i] == '.') {
      json_t *sub;
      key[k] = '\0';
      if (k == 0)
        break;
      sub = json_object_get(at, key);
      if (!json_is_object(sub)) {
        sub = json_object();
        json_object_set_new(at, key, sub);
      }
      at = sub;
      k = 0;
    } else {
      key[k++] = item[i];
    }
  }
  key[k] = '\0';
  if (i >= len || k == 0) {
    snprintf(why, n, "helm set item '%.*s' is not key=value", (int)len, item);
    goto out;
  }
  if ((val = malloc(len - i)) == NULL) {
    snprintf(why, n, "out of memory");
    goto out;
  }
  k = 0;
  for (i++; i < len; i++) {
    if (item[i] == '\\' && i + 1 < len && item[i + 1] == ',')
      i++;
    val[k++] = item[i];
  }
  val[k] = '\0';
  json_object_set_new(at, key, helm_set_value(val));
  rc = 0;
out:
  free(key);
  free(val);
  return rc;
}

/* Writes the `set` items to a values file of their own (0600, in the run
 * folder, removed when the call ends) and passes it with --values: values
 * in argv would be readable by anyone in /proc/PID/cmdline. */
static enum tool_next helm_set_file(struct tool_job *j)
{
  json_t *set = json_object_get(j->in, "set"), *doc, *item;
  struct adapter_call *call = j->call;
  char *text = NULL;
  size_t i;
  int fd = -1;

  if (json_array_size(set) == 0)
    return TOOL_SPAWN;
  if (call->run_dir == NULL) {
    snprintf(j->error, sizeof j->error, "helm set needs a run folder");
    return TOOL_FAIL;
  }
  if ((doc = json_object()) == NULL)
    goto nomem;
  json_array_foreach(set, i, item) {
    const char *s = json_string_value(item), *p = s;
    while (s && *p) { /* items are separated by unescaped commas */
      size_t len = 0;
      while (p[len] && !(p[len] == ',' && (len == 0 || p[len - 1] != '\\')))
        len++;
      if (helm_set_one(doc, p, len, j->error, sizeof j->error) < 0) {
        json_decref(doc);
        return TOOL_FAIL;
      }
      p += len;
      if (*p == ',')
        p++;
    }
  }
  text = json_dumps(doc, JSON_COMPACT);
  json_decref(doc);
  if (text == NULL ||
      asprintf(&j->set_file, "%s/%s.helm-set.json", call->run_dir,
               call->name ? call->name : "helm") < 0) {
    j->set_file = NULL;
    goto nomem;
  }
  unlink(j->set_file); /* one left by a killed cairn */
  fd = open(j->set_file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 || adapter__write_all(fd, text, strlen(text)) < 0) {
    snprintf(j->error, sizeof j->error, "cannot write helm values file "
             "'%s': %s", j->set_file, uv_strerror(-errno));
    if (fd >= 0)
      close(fd);
    free(text);
    return TOOL_FAIL;
  }
  close(fd);
  free(text);
  av_opt(j, "--values", j->set_file);
  return TOOL_SPAWN;
nomem:
  free(text);
  snprintf(j->error, sizeof j->error, "out of memory");
  return TOOL_FAIL;
}

static enum tool_next helm_next(struct tool_job *j)
{
  const char *action = in_str(j, "action");
  json_t *item;
  size_t i;

  if (j->stage == 0) {
    if (recheck(j, helm_check) == TOOL_FAIL)
      return TOOL_FAIL;
    json_object_set_new(j->outputs, "release",
                        json_string(in_str(j, "release")));
    j->stage = 1;
    if (strcmp(action, "upgrade") == 0) {
      /* -1 until the revision before is known: a step stopped before its
       * upgrade began says so, and its undo (revert) has nothing to do */
      json_object_set_new(j->outputs, "previous_revision", json_integer(-1));
      helm_status_cmd(j); /* the revision before */
      return TOOL_SPAWN;
    }
    if (strcmp(action, "rollback") == 0)
      return helm_rollback_cmd(
        j, json_integer_value(json_object_get(j->in, "revision")));
    if (strcmp(action, "revert") == 0) {
      json_int_t prev =
        json_integer_value(json_object_get(j->in, "previous_revision"));
      if (prev < 0) { /* the upgrade was stopped before it began */
        json_object_set_new(j->outputs, "did", json_string("nothing"));
        return TOOL_DONE;
      }
      if (prev > 0) {
        json_object_set_new(j->outputs, "did", json_string("rollback"));
        return helm_rollback_cmd(j, prev);
      }
    }
    json_object_set_new(j->outputs, "did", json_string("uninstall"));
    av_begin(j, "helm uninstall");
    av_add(j, in_str(j, "release"));
    helm_globals(j);
    return TOOL_SPAWN;
  }
  const char *did = json_string_value(json_object_get(j->outputs, "did"));
  if (strcmp(action, "revert") == 0 && did && strcmp(did, "uninstall") == 0 &&
      !ran_ok(j) && !j->spawn_err[0] && strstr(j->errtail, "not found")) {
    /* an install stopped before it made the release: an undo tolerates
     * nothing to undo */
    json_object_set_new(j->outputs, "did", json_string("nothing"));
    return TOOL_DONE;
  }
  if (strcmp(action, "upgrade") != 0)
    return ran_ok(j) ? TOOL_DONE : TOOL_FAIL;

  switch (j->stage) {
  case 1: { /* status before */
    json_int_t prev = 0;
    if (ran_ok(j)) {
      if ((prev = helm_revision(j, NULL)) < 0) {
        snprintf(j->error, sizeof j->error, "cannot read the revision of "
                 "release '%s' from 'helm status -o json'",
                 in_str(j, "release"));
        return TOOL_FAIL;
      }
    } else if (j->spawn_err[0] || strstr(j->errtail, "not found") == NULL) {
      return TOOL_FAIL;
    }
    json_object_set_new(j->outputs, "previous_revision", json_integer(prev));
    j->stage = 2;
    av_begin(j, "helm upgrade");
    av_add(j, in_str(j, "release"));
    av_add(j, in_str(j, "chart"));
    av_add(j, "--install");
    helm_globals(j);
    json_array_foreach(json_object_get(j->in, "values"), i, item) {
      av_opt(j, "--values", json_string_value(item));
    }
    if (helm_set_file(j) == TOOL_FAIL)
      return TOOL_FAIL;
    av_opt(j, "--version", in_str(j, "version"));
    helm_wait_opts(j);
    return TOOL_SPAWN;
  }
  case 2: /* upgraded */
    if (!ran_ok(j))
      return TOOL_FAIL;
    j->stage = 3;
    helm_status_cmd(j);
    return TOOL_SPAWN;
  default: { /* status after */
    json_t *status = NULL;
    json_int_t rev;
    if (!ran_ok(j))
      return TOOL_FAIL;
    if ((rev = helm_revision(j, &status)) < 0) {
      snprintf(j->error, sizeof j->error, "cannot read the revision of "
               "release '%s' from 'helm status -o json'",
               in_str(j, "release"));
      return TOOL_FAIL;
    }
    json_object_set_new(j->outputs, "revision", json_integer(rev));
    if (status)
      json_object_set_new(j->outputs, "status", status);
    return TOOL_DONE;
  }
  }
}

static int helm_start(struct adapter_call *call, struct cairn_error *err)
{
  static const struct tool_kind k = { helm_next };
  return tool_start(call, &k, err);
}

/* ---- compose ------------------------------------------------------------ */

static int compose_check(json_t *with, struct cairn_error *err)
{
  int rc;

  if ((rc = check_action(with, "up down", err)) < 0 ||
      (rc = check_not_flag(with, "services", err)) < 0)
    return rc;
  return 0;
}

static enum tool_next compose_next(struct tool_job *j)
{
  int up = strcmp(in_str(j, "action"), "up") == 0;
  json_t *services = json_object_get(j->in, "services");
  json_t *item;
  size_t i;

  if (j->stage > 0)
    return ran_ok(j) ? TOOL_DONE : TOOL_FAIL;
  if (recheck(j, compose_check) == TOOL_FAIL)
    return TOOL_FAIL;
  j->stage = 1;
  av_begin(j, "docker compose"); /* its options go before the subcommand */
  snprintf(j->what, sizeof j->what, "docker compose %s", up ? "up" : "down");
  av_opt(j, "--file", in_str(j, "file"));
  av_opt(j, "--project-name", in_str(j, "project"));
  av_add(j, up ? "up" : "down");
  if (up) {
    av_add(j, "--detach");
    json_array_foreach(services, i, item) {
      av_add(j, json_string_value(item));
    }
  }
  json_object_set_new(j->outputs, "project",
                      json_string(in_str(j, "project")));
  json_object_set_new(j->outputs, "file", json_string(in_str(j, "file")));
  json_object_set_new(j->outputs, "services",
                      services ? json_incref(services) : json_array());
  return TOOL_SPAWN;
}

static int compose_start(struct adapter_call *call, struct cairn_error *err)
{
  static const struct tool_kind k = { compose_next };
  return tool_start(call, &k, err);
}

/* ---- descriptions ------------------------------------------------------- */

/* Optional strings default to "" (not given) so that undo templates can
 * name them whether or not the state did. */
static const struct adapter_input kubectl_inputs[] = {
  { "action", ADAPTER_T_STRING, 0, "\"apply\"", "apply or rollout_undo" },
  { "file", ADAPTER_T_STRING, 0, "\"\"",
    "apply: a manifest file or folder (--filename; this or kustomize)" },
  { "kustomize", ADAPTER_T_STRING, 0, "\"\"",
    "apply: a kustomization folder (--kustomize; this or file)" },
  { "namespace", ADAPTER_T_STRING, 0, "\"\"", "--namespace" },
  { "context", ADAPTER_T_STRING, 0, "\"\"", "--context" },
  { "wait", ADAPTER_T_BOOLEAN, 0, "false",
    "apply: then wait for each deployment with kubectl rollout status" },
  { "rollout_timeout", ADAPTER_T_DURATION, 0, "\"5m\"",
    "how long rollout status waits (--timeout)" },
  { "deployment", ADAPTER_T_STRING, 0, "\"\"",
    "the deployment to wait for or undo (default: every deployment "
    "applied, or every one in resources)" },
  { "resources", ADAPTER_T_ANY, 0, "[]",
    "rollout_undo: kind/name list, as apply's output" },
  { NULL, 0, 0, NULL, NULL },
};

static const struct adapter_output kubectl_outputs[] = {
  { "resources", "list", "apply: each kind/name applied (-o name)" },
  { "deployments", "list", "the deployments waited for or undone" },
  { NULL, NULL, NULL },
};

const struct adapter_desc adapter_kubectl = {
  .name = "kubectl",
  .summary = "kubectl apply (and wait for the rollout), or rollout undo",
  .inputs = kubectl_inputs,
  .outputs = kubectl_outputs,
  .idempotent = 1,
  .undo_adapter = "kubectl",
  .undo_with = "{\"action\": \"rollout_undo\","
               " \"resources\": \"{{ self.output.resources }}\","
               " \"deployment\": \"{{ self.input.deployment }}\","
               " \"namespace\": \"{{ self.input.namespace }}\","
               " \"context\": \"{{ self.input.context }}\"}",
  .check = kubectl_check,
  .start = kubectl_start,
  .cancel = tool_cancel,
};

static const struct adapter_input helm_inputs[] = {
  { "action", ADAPTER_T_STRING, 0, "\"upgrade\"",
    "upgrade (--install), rollback, uninstall, or revert (rollback to "
    "previous_revision, uninstall when it is 0)" },
  { "release", ADAPTER_T_STRING, 1, NULL, "the release name" },
  { "chart", ADAPTER_T_STRING, 0, "\"\"", "upgrade: chart reference or path" },
  { "namespace", ADAPTER_T_STRING, 0, "\"\"", "--namespace" },
  { "kube_context", ADAPTER_T_STRING, 0, "\"\"", "--kube-context" },
  { "values", ADAPTER_T_ARGV, 0, NULL, "upgrade: values files (--values)" },
  { "set", ADAPTER_T_ARGV, 0, NULL, "upgrade: key=value items as --set reads them (a.b=v; true, false, "
    "null and integers typed), passed in a 0600 values file, never in "
    "argv" },
  { "version", ADAPTER_T_STRING, 0, "\"\"", "upgrade: chart version" },
  { "wait", ADAPTER_T_BOOLEAN, 0, "false", "--wait" },
  { "timeout", ADAPTER_T_DURATION, 0, NULL, "--timeout for helm" },
  { "revision", ADAPTER_T_INTEGER, 0, NULL, "rollback: the revision" },
  { "previous_revision", ADAPTER_T_INTEGER, 0, NULL,
    "revert: upgrade's previous_revision" },
  { NULL, 0, 0, NULL, NULL },
};

static const struct adapter_output helm_outputs[] = {
  { "release", "string", "the release" },
  { "revision", "integer", "upgrade: the new revision; rollback: the "
    "revision rolled back to" },
  { "previous_revision", "integer",
    "upgrade: the revision before (0: the release did not exist)" },
  { "status", "string", "upgrade: helm's status of the release" },
  { "did", "string", "revert: rollback or uninstall" },
  { NULL, NULL, NULL },
};

const struct adapter_desc adapter_helm = {
  .name = "helm",
  .summary = "helm upgrade --install, rollback or uninstall a release",
  .inputs = helm_inputs,
  .outputs = helm_outputs,
  .idempotent = 1,
  .undo_adapter = "helm",
  .undo_with = "{\"action\": \"revert\","
               " \"release\": \"{{ self.input.release }}\","
               " \"namespace\": \"{{ self.input.namespace }}\","
               " \"kube_context\": \"{{ self.input.kube_context }}\","
               " \"wait\": \"{{ self.input.wait }}\","
               " \"previous_revision\":"
               " \"{{ self.output.previous_revision }}\"}",
  .check = helm_check,
  .start = helm_start,
  .cancel = tool_cancel,
};

static const struct adapter_input compose_inputs[] = {
  { "action", ADAPTER_T_STRING, 0, "\"up\"", "up (--detach) or down" },
  { "file", ADAPTER_T_STRING, 1, NULL, "the compose file (--file)" },
  { "project", ADAPTER_T_STRING, 1, NULL, "the project name "
    "(--project-name)" },
  { "services", ADAPTER_T_ARGV, 0, NULL, "up: only these services" },
  { NULL, 0, 0, NULL, NULL },
};

static const struct adapter_output compose_outputs[] = {
  { "project", "string", "the project" },
  { "file", "string", "the compose file" },
  { "services", "list", "the services named (empty: all)" },
  { NULL, NULL, NULL },
};

const struct adapter_desc adapter_compose = {
  .name = "compose",
  .summary = "docker compose up --detach, or down",
  .inputs = compose_inputs,
  .outputs = compose_outputs,
  .idempotent = 1,
  .undo_adapter = "compose",
  .undo_with = "{\"action\": \"down\", \"file\": \"{{ self.input.file }}\","
               " \"project\": \"{{ self.input.project }}\"}",
  .check = compose_check,
  .start = compose_start,
  .cancel = tool_cancel,
};
