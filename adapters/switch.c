/* switch.blue-green: points live traffic at a colour, by an atomic
 * symlink swap or by nginx's upstream include (nginx -t, reload, then an
 * HTTP request through nginx proves the new colour answers).
 *
 * The whole switch is a job in libuv's thread pool (adapters/job.h): it
 * renames files, waits for `nginx -t` and `nginx -s reload`, and polls
 * confirm_url with curl_easy, sleeping between tries; none of that may
 * block the loop, and a thread is simpler here than curl's multi on the
 * loop for one request at a time. Cancel and the state's timeout are
 * checked between tries and bound every wait (nginx runs under poll(),
 * its group killed when the time is up; each request's own timeout).
 *
 * The include starts with a marker line, "# cairn switch.blue-green:
 * COLOUR", so the next switch knows which colour was live (its `from`). */
#include "adapters/adapter.h"
#include "adapters/job.h"
#include "adapters/spawn.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SWITCH_MARKER "# cairn switch.blue-green: "
#define SWITCH_BODY_MAX 65536
#define SWITCH_POLL_MS 100
#define SWITCH_TRY_MS 2000 /* one confirm request */
#define SWITCH_NGINX_OUT 16384
#define SWITCH_RESTORE_MS 10000 /* the reload that switches back */

/* Every optional input but `to` has a default ("" or {}) that means
 * "not given": so the default undo's self.input.K always resolves. */
static json_t *input(json_t *in, const char *name)
{
  json_t *v = json_object_get(in, name);

  if (json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0) ||
      (json_is_object(v) && json_object_size(v) == 0))
    return NULL;
  return v;
}

static const char *input_str(json_t *in, const char *name)
{
  return json_string_value(input(in, name));
}

static void sleep_ms(int ms)
{
  struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

  while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
    ;
}

static int64_t now_ms(void)
{
  return (int64_t)(uv_hrtime() / 1000000);
}

/* ---- symlink mode ------------------------------------------------------- */

/* The colour whose target the link points at, or "" (no link, or a
 * target no colour names). */
static const char *link_colour(const char *link, json_t *targets)
{
  char cur[PATH_MAX], a[PATH_MAX], b[PATH_MAX];
  ssize_t n = readlink(link, cur, sizeof cur - 1);
  const char *key;
  json_t *v;

  if (n < 0)
    return "";
  cur[n] = '\0';
  json_object_foreach(targets, key, v) {
    if (strcmp(json_string_value(v), cur) == 0)
      return key;
  }
  /* the same folder written another way: compare where they lead */
  if (realpath(link, a) == NULL)
    return "";
  json_object_foreach(targets, key, v) {
    const char *t = json_string_value(v);
    char *dcopy = strdup(link);
    char joined[PATH_MAX * 2];
    if (dcopy == NULL)
      return "";
    if (t[0] == '/')
      snprintf(joined, sizeof joined, "%s", t);
    else
      snprintf(joined, sizeof joined, "%s/%s", dirname(dcopy), t);
    free(dcopy);
    if (realpath(joined, b) != NULL && strcmp(a, b) == 0)
      return key;
  }
  return "";
}

static void symlink_switch(struct adapter__job *j, const char *to)
{
  json_t *in = j->call->inputs;
  const char *link = input_str(in, "link");
  json_t *targets = input(in, "targets");
  const char *from = link_colour(link, targets);
  const char *target;
  char *tmp;
  size_t len = strlen(link) + 32;

  json_object_set_new(j->outputs, "from", json_string(from));
  json_object_set_new(j->outputs, "to", json_string(to));
  if (to[0] == '\0') { /* the undo of a first switch: nothing was live */
    if (unlink(link) < 0 && errno != ENOENT)
      adapter__job_fail(j, "cannot remove link '%s': %s", link,
                        uv_strerror(-errno));
    else
      adapter__job_note(j, "switch.blue-green: removed link '%s'", link);
    return;
  }
  target = json_string_value(json_object_get(targets, to));
  if (strcmp(from, to) == 0) {
    adapter__job_note(j, "switch.blue-green: '%s' already points at %s",
                      link, to);
    return;
  }
  if ((tmp = malloc(len)) == NULL) {
    adapter__job_fail(j, "out of memory");
    return;
  }
  snprintf(tmp, len, "%s.cairn-%ld", link, (long)getpid());
  unlink(tmp);
  if (symlink(target, tmp) < 0) {
    adapter__job_fail(j, "cannot create link '%s': %s", tmp,
                      uv_strerror(-errno));
  } else if (rename(tmp, link) < 0) {
    int e = errno;
    unlink(tmp);
    adapter__job_fail(j, "cannot replace '%s' with a link to '%s': %s%s",
                      link, target, uv_strerror(-e),
                      e == EISDIR ? " (it is a directory, not a link)" : "");
  } else {
    adapter__job_note(j, "switch.blue-green: '%s' -> '%s' (%s, was %s)",
                      link, target, to, from[0] ? from : "none");
  }
  free(tmp);
}

/* ---- nginx mode --------------------------------------------------------- */

/* How long nginx may still run, at most max ms: until the job's timeout
 * or cancel, or with an own limit `until` (now_ms() time, for the reload
 * that puts the old colour back after a cancel) until then. */
static int nginx_left(struct adapter__job *j, int64_t until, int max)
{
  int64_t left;

  if (until == 0)
    return adapter__job_wait_ms(j, max);
  left = until - now_ms();
  return left <= 0 ? 0 : left < max ? (int)left : max;
}

/* Waits for nginx (pid, the leader of its own group) to exit; when its
 * time is up, stops its group: SIGTERM, then SIGKILL after the grace. 1
 * when it exited by itself (*status set), 0 when it was stopped. */
static int nginx_wait(struct adapter__job *j, pid_t pid, int64_t until,
                      int *status)
{
  int64_t grace = j->call->kill_grace_ms > 0 ? j->call->kill_grace_ms : 5000;
  int64_t kill_at = 0;

  for (;;) {
    pid_t w = waitpid(pid, status, WNOHANG);
    if (w == pid)
      return kill_at == 0;
    if (w < 0 && errno != EINTR)
      return kill_at == 0;
    if (kill_at == 0 && nginx_left(j, until, 1) == 0) {
      kill(-pid, SIGTERM);
      kill(-pid, SIGCONT);
      kill_at = now_ms() + grace;
    } else if (kill_at != 0 && now_ms() >= kill_at) {
      kill(-pid, SIGKILL);
      while (waitpid(pid, status, 0) < 0 && errno == EINTR)
        ;
      return 0;
    }
    sleep_ms(10);
  }
}

/* Runs nginx with the prefix and conf inputs and then `extra` (NULL-
 * terminated), collecting what it prints. Returns its exit status (-1 when
 * it could not run or was killed); out gets its output, one line, the
 * "nginx: " prefixes and the "test failed" line dropped. */
static int run_nginx(struct adapter__job *j, const char *const *extra,
                     int64_t until, char *out, size_t n)
{
  json_t *in = j->call->inputs;
  const char *args[12];
  char buf[SWITCH_NGINX_OUT];
  size_t k = 0, len = 0;
  int p[2], status = 0, rc;
  pid_t pid;

  args[k++] = input_str(in, "nginx");
  if (input_str(in, "nginx_prefix")) {
    args[k++] = "-p";
    args[k++] = input_str(in, "nginx_prefix");
  }
  if (input_str(in, "nginx_conf")) {
    args[k++] = "-c";
    args[k++] = input_str(in, "nginx_conf");
  }
  while (*extra && k < 11)
    args[k++] = *extra++;
  args[k] = NULL;
  out[0] = '\0';
  if ((rc = adapter__pipe(p)) != 0) {
    snprintf(out, n, "cannot make a pipe: %s", uv_strerror(-rc));
    return -1;
  }
  adapter__cloexec_fds();
  rc = adapter__spawn(&pid, (char *const *)args, NULL, NULL, p[1], p[1]);
  close(p[1]);
  if (rc != 0) {
    close(p[0]);
    adapter__spawn_error(out, n, -rc, args[0], NULL);
    return -1;
  }
  /* read until EOF, never past the job's timeout or a cancel */
  for (;;) {
    struct pollfd pfd = { .fd = p[0], .events = POLLIN };
    int wait = nginx_left(j, until, SWITCH_POLL_MS);
    ssize_t r;
    if (wait == 0)
      break;
    if ((rc = poll(&pfd, 1, wait)) < 0 && errno == EINTR)
      continue;
    if (rc < 0)
      break;
    if (rc == 0)
      continue;
    r = read(p[0], buf + len, sizeof buf - 1 - len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    len += (size_t)r;
    if (len == sizeof buf - 1)
      break;
  }
  close(p[0]);
  buf[len] = '\0';
  if (!nginx_wait(j, pid, until, &status)) {
    snprintf(out, n, "%s", until ? "it did not finish in time"
                                 : adapter__job_stopped(j));
    return -1;
  }
  /* the lines that say why, joined */
  len = 0;
  for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
    char lvl[32];
    if (strncmp(line, "nginx: ", 7) == 0)
      line += 7;
    /* "2024/01/02 03:04:05 [emerg] 123#123: why": the level and the why */
    if (line[0] >= '0' && line[0] <= '9' && strchr(line, '[')) {
      char *lb = strchr(line, '['), *rb = strchr(lb, ']');
      char *colon = rb ? strstr(rb, ": ") : NULL;
      if (rb && colon && (size_t)(rb - lb) < sizeof lvl - 1) {
        snprintf(lvl, sizeof lvl, "%.*s", (int)(rb - lb + 1), lb);
        len += (size_t)snprintf(out + len, len < n ? n - len : 0, "%s%s %s",
                                len ? "; " : "", lvl, colon + 2);
        if (len >= n)
          break;
        continue;
      }
    }
    if (strstr(line, "test failed") || strstr(line, "syntax is ok") ||
        strstr(line, "test is successful") || *line == '\0')
      continue;
    len += (size_t)snprintf(out + len, len < n ? n - len : 0, "%s%s",
                            len ? "; " : "", line);
    if (len >= n)
      break;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The colour the include names (its marker line), or "". */
static void include_colour(const char *text, char *out, size_t n)
{
  const char *m = text ? strstr(text, SWITCH_MARKER) : NULL;
  size_t len;

  out[0] = '\0';
  if (m == NULL)
    return;
  m += strlen(SWITCH_MARKER);
  len = strcspn(m, "\r\n");
  snprintf(out, n, "%.*s", (int)len, m);
}

struct body {
  char buf[SWITCH_BODY_MAX + 1];
  size_t len;
};

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
  struct body *b = ud;
  size_t n = size * nmemb;
  size_t room = SWITCH_BODY_MAX - b->len;

  memcpy(b->buf + b->len, p, n < room ? n : room);
  b->len += n < room ? n : room;
  b->buf[b->len] = '\0';
  return n; /* keep reading: a cut body is fine for a substring */
}

/* Polls url until its body holds expect. 0, or -1 with last[] saying what
 * it got last. */
static int confirm(struct adapter__job *j, const char *url,
                   const char *expect, int64_t within_ms, char *last,
                   size_t n)
{
  int64_t deadline = now_ms() + within_ms;
  struct body *b = malloc(sizeof *b);
  CURL *c = curl_easy_init();
  int rc = -1;

  snprintf(last, n, "no answer");
  if (b == NULL || c == NULL) {
    snprintf(last, n, "out of memory");
    goto out;
  }
  for (;;) {
    CURLcode cc;
    long status = 0;
    long try_ms = adapter__job_wait_ms(j, SWITCH_TRY_MS);

    if (try_ms == 0) /* cancelled or timed out (0 would mean no limit) */
      break;
    b->len = 0;
    b->buf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, try_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    /* a fresh connection each time: a kept one may reach an old worker */
    curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
    cc = curl_easy_perform(c);
    if (cc == CURLE_OK) {
      curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
      if (status >= 200 && status < 300 && strstr(b->buf, expect)) {
        rc = 0;
        break;
      }
      snprintf(last, n, "HTTP %ld '%.60s'", status, b->buf);
      for (char *p = last; *p; p++)
        if (*p == '\n' || *p == '\r')
          *p = ' ';
    } else {
      snprintf(last, n, "%s", curl_easy_strerror(cc));
    }
    if (now_ms() >= deadline || adapter__job_wait_ms(j, SWITCH_POLL_MS) == 0)
      break;
    sleep_ms(adapter__job_wait_ms(j, SWITCH_POLL_MS));
  }
out:
  curl_easy_cleanup(c);
  free(b);
  return rc;
}

/* Puts the old include back (or removes it when there was none). */
static void include_restore(const char *path, const char *old, size_t on)
{
  char why[256];

  if (old)
    adapter__write_atomic(path, old, on, 0644, why, sizeof why);
  else
    unlink(path);
}

static void nginx_switch(struct adapter__job *j, const char *to)
{
  static const char *const test_args[] = { "-t", NULL };
  static const char *const reload_args[] = { "-s", "reload", NULL };
  json_t *in = j->call->inputs;
  const char *path = input_str(in, "include");
  json_t *ups = input(in, "upstreams");
  const char *url = input_str(in, "confirm_url");
  const char *expect = input_str(in, "confirm_expect");
  int64_t within = json_integer_value(input(in, "confirm_within"));
  char from[128], msg[1024], last[160], why[512];
  char *old = NULL, *text = NULL;
  size_t on = 0;
  int rc;

  rc = adapter__read_file(path, 1024 * 1024, &old, &on);
  if (rc < 0 && rc != -ENOENT) {
    adapter__job_fail(j, "cannot read include '%s': %s", path,
                      uv_strerror(rc));
    return;
  }
  include_colour(old, from, sizeof from);
  json_object_set_new(j->outputs, "from", json_string(from));
  json_object_set_new(j->outputs, "to", json_string(to));
  if (to[0] == '\0') {
    /* undo of a first switch: there was no colour to go back to, and
     * nginx needs some upstream: leave it as it is */
    adapter__job_note(j, "switch.blue-green: nothing was live before; "
                      "'%s' left as it is", path);
    goto out;
  }
  const char *addr = json_string_value(json_object_get(ups, to));
  /* Both go into nginx's configuration: a ';', brace or newline in them
   * would write configuration of its own. */
  if (addr == NULL || strspn(to, "abcdefghijklmnopqrstuvwxyz"
                                 "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
                          strlen(to) ||
      *addr == '\0' ||
      strspn(addr, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                   "0123456789.-:[]") != strlen(addr)) {
    adapter__job_fail(j, "upstream of colour '%s' must be a host:port "
                      "(letters, digits, '.', '-', ':' and []), got '%s'",
                      to, addr ? addr : "");
    goto out;
  }
  if (asprintf(&text, "%s%s\nserver %s;\n", SWITCH_MARKER, to, addr) < 0) {
    text = NULL;
    adapter__job_fail(j, "out of memory");
    goto out;
  }
  if (adapter__write_atomic(path, text, strlen(text), 0644, why,
                            sizeof why) < 0) {
    adapter__job_fail(j, "%s", why);
    goto out;
  }
  if (run_nginx(j, test_args, 0, msg, sizeof msg) != 0) {
    include_restore(path, old, on);
    if (adapter__job_stopped(j))
      adapter__job_fail(j, "'nginx -t' stopped (restored the previous "
                        "include)");
    else
      adapter__job_fail(j, "nginx -t rejected the include for '%s' (restored "
                      "the previous one): %s", to, msg);
    goto out;
  }
  if (run_nginx(j, reload_args, 0, msg, sizeof msg) != 0) {
    include_restore(path, old, on);
    if (adapter__job_stopped(j))
      adapter__job_fail(j, "'nginx -s reload' stopped (restored the "
                        "previous include)");
    else
      adapter__job_fail(j, "nginx -s reload failed (restored the previous "
                      "include): %s", msg);
    goto out;
  }
  adapter__job_note(j, "switch.blue-green: nginx reloaded with '%s' -> %s "
                    "(was %s)", path, to, from[0] ? from : "none");
  if (url == NULL)
    goto out;
  if (expect == NULL)
    expect = to;
  if (confirm(j, url, expect, within, last, sizeof last) < 0) {
    /* the new colour does not answer: put the old one back live */
    include_restore(path, old, on);
    /* even after a cancel or timeout: nginx must serve the old colour */
    run_nginx(j, reload_args, now_ms() + SWITCH_RESTORE_MS, msg, sizeof msg);
    adapter__job_fail(j, "%s: '%s' did not answer with '%s' (last: %s); "
                      "switched back to %s",
                      adapter__job_stopped(j) ? adapter__job_stopped(j)
                                              : "timed out",
                      url, expect, last, from[0] ? from : "the old include");
    goto out;
  }
  adapter__job_note(j, "switch.blue-green: '%s' answers with '%s'", url,
                    expect);
out:
  free(old);
  free(text);
}

static void switch_work(struct adapter__job *j)
{
  json_t *in = j->call->inputs;
  const char *to = json_string_value(json_object_get(in, "to"));
  const char *mode = input_str(in, "mode");

  /* "" is symlink mode, as in switch_check */
  if (mode != NULL && strcmp(mode, "nginx") == 0)
    nginx_switch(j, to);
  else
    symlink_switch(j, to);
}

/* ---- inputs ------------------------------------------------------------- */

static int is_template(json_t *v)
{
  return json_is_string(v) && strstr(json_string_value(v), "{{") != NULL;
}

static int switch_check(json_t *with, struct cairn_error *err)
{
  json_t *mode = input(with, "mode");
  json_t *to = input(with, "to");
  const char *m = json_is_string(mode) ? json_string_value(mode) : "symlink";
  const char *need[2], *map;

  if (is_template(mode))
    return 0;
  if (strcmp(m, "symlink") == 0) {
    need[0] = "link";
    need[1] = map = "targets";
  } else if (strcmp(m, "nginx") == 0) {
    need[0] = "include";
    need[1] = map = "upstreams";
  } else {
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "bad mode '%s' for switch.blue-green (symlink or "
                           "nginx)",
                           m);
  }
  for (int i = 0; i < 2; i++)
    if (input(with, need[i]) == NULL)
      return cairn_error_set(err, CAIRN_E_INVAL,
                             "switch.blue-green in %s mode needs input '%s'",
                             m, need[i]);
  if (json_is_string(to) && !is_template(to) &&
      json_string_value(to)[0] != '\0' && json_is_object(input(with, map)) &&
      json_object_get(input(with, map), json_string_value(to)) == NULL)
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "colour '%s' is not in input '%s'",
                           json_string_value(to), map);
  return 0;
}

static int switch_start(struct adapter_call *call, struct cairn_error *err)
{
  int rc;

  if ((rc = switch_check(call->inputs, err)) < 0)
    return rc;
  return adapter__job_start(call, switch_work, err);
}

static const struct adapter_input switch_inputs[] = {
  { "to", ADAPTER_T_STRING, 1, NULL,
    "the colour to make live (a key of targets or upstreams)" },
  { "mode", ADAPTER_T_STRING, 0, "\"symlink\"", "symlink or nginx" },
  { "link", ADAPTER_T_STRING, 0, "\"\"", "symlink: the live link" },
  { "targets", ADAPTER_T_STRMAP, 0, "{}",
    "symlink: colour -> folder the link points at" },
  { "include", ADAPTER_T_STRING, 0, "\"\"",
    "nginx: the file inside the upstream block that nginx includes" },
  { "upstreams", ADAPTER_T_STRMAP, 0, "{}",
    "nginx: colour -> HOST:PORT of its backend" },
  { "nginx", ADAPTER_T_STRING, 0, "\"nginx\"", "nginx: the nginx program" },
  { "nginx_conf", ADAPTER_T_STRING, 0, "\"\"",
    "nginx: its configuration file (-c)" },
  { "nginx_prefix", ADAPTER_T_STRING, 0, "\"\"", "nginx: its prefix (-p)" },
  { "confirm_url", ADAPTER_T_STRING, 0, "\"\"",
    "nginx: a URL through nginx polled after the reload" },
  { "confirm_expect", ADAPTER_T_STRING, 0, "\"\"",
    "nginx: text the body must contain (default: the colour)" },
  { "confirm_within", ADAPTER_T_DURATION, 0, "\"10s\"",
    "nginx: how long the confirmation may take" },
  { NULL, 0, 0, NULL, NULL },
};

static const struct adapter_output switch_outputs[] = {
  { "from", "string", "the colour live before (\"\" when none)" },
  { "to", "string", "the colour live now" },
  { NULL, NULL, NULL },
};

const struct adapter_desc adapter_switch_blue_green = {
  .name = "switch.blue-green",
  .summary = "point live traffic at a colour (symlink or nginx upstream)",
  .inputs = switch_inputs,
  .outputs = switch_outputs,
  .idempotent = 1,
  .undo_adapter = "switch.blue-green",
  .undo_with =
      "{\"to\": \"{{ self.output.from }}\", \"mode\": \"{{ self.input.mode "
      "}}\", \"link\": \"{{ self.input.link }}\", \"targets\": \"{{ "
      "self.input.targets }}\", \"include\": \"{{ self.input.include }}\", "
      "\"upstreams\": \"{{ self.input.upstreams }}\", \"nginx\": \"{{ "
      "self.input.nginx }}\", \"nginx_conf\": \"{{ self.input.nginx_conf }}\", "
      "\"nginx_prefix\": \"{{ self.input.nginx_prefix }}\", \"confirm_url\": "
      "\"{{ self.input.confirm_url }}\"}",
  .check = switch_check,
  .start = switch_start,
  .cancel = adapter__job_cancel,
};
