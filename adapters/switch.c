/* switch.blue-green: points live traffic at a colour, by an atomic
 * symlink swap or by nginx's upstream include (nginx -t, reload, then an
 * HTTP request through nginx proves the new colour answers).
 *
 * Both modes are jobs (adapters/job.h). In symlink mode the whole switch
 * runs in libuv's thread pool (renames and readlink). In nginx mode only
 * the file steps do (read and write the include, put it back); between
 * them the job goes on from the loop: nginx -t and nginx -s reload are
 * children of the exec adapter (adapters/exec.h: their own group, stopped
 * SIGTERM, grace, SIGKILL), and confirm_url is polled through the loop's
 * shared libcurl multi (adapters/curl_uv.h), a pause timer between tries.
 * So a cancel or the state's timeout stops whatever runs at once: the
 * child's group, or the request in flight.
 *
 *   PREPARE  (pool) read the include, write the new colour's
 *   TEST     nginx -t           fails or stops: RESTORE, the call fails
 *   RELOAD   nginx -s reload    fails or stops: RESTORE, the call fails
 *   CONFIRM  GET confirm_url until its body holds confirm_expect; fails or
 *            stops: RESTORE, then RELOAD_BACK (bounded by its own
 *            SWITCH_RESTORE_MS, even after a stop: nginx must serve the old
 *            colour), the call fails
 *
 * The include starts with a marker line, "# cairn switch.blue-green:
 * COLOUR", so the next switch knows which colour was live (its `from`);
 * an include written by hand is told by its server lines.
 *
 * A retried attempt, or the re-run of a resumed run, finds what an
 * earlier attempt switched to live already: its `from` would be the new
 * colour, and the default undo would "switch back" to it. So the first
 * attempt of a state notes the colour live before it (and in nginx mode
 * the include), before it changes anything (adapters/note.h), and every
 * later attempt of the visit reports that `from`; when its confirmation
 * fails, it puts that include back, not the one it found.
 *
 * What was live need not be a colour's (an nginx cairn never switched, a
 * link to releases/1.3), so a colour is not enough for the undo: the
 * first attempt also keeps what it found, byte for byte, in a backup
 * under the run folder (its output `backup`), and the default undo makes
 * that live again (restore_from). The backup is durable before the note
 * names it, and the note before anything changes; the undo writes the
 * same thing each time it runs, so a resumed rollback converges. */
#include "adapters/adapter.h"
#include "adapters/curl_uv.h"
#include "adapters/exec.h"
#include "adapters/input.h"
#include "adapters/job.h"
#include "adapters/note.h"
#include "common/file.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SWITCH_MARKER "# cairn switch.blue-green: "
#define SWITCH_BODY_MAX 65536
#define SWITCH_INCLUDE_MAX (1024 * 1024) /* an include, and its backup */
#define SWITCH_POLL_MS 100
#define SWITCH_TRY_MS 2000 /* one confirm request */
#define SWITCH_NGINX_OUT 16384
#define SWITCH_RESTORE_MS 10000 /* the reload that switches back */

/* Every optional input but `to` has a default ("" or {}) that means "not
 * given": so the default undo's self.input.K always resolves. */
static const char *given_str(json_t *in, const char *name)
{
  return json_string_value(adapter__input_given(in, name));
}

/* ---- the note of the state's first attempt ------------------------------ */

/* (pool) Keeps what was live before the state's first attempt where its
 * undo finds it (restore_from): RUN_DIR/backups/NAME.ENTRY (0600, in a
 * 0700 folder), one per visit as file.write's (a loop's next visit keeps its own, each visit's
 * undo puts back what that visit replaced). old[0..old_len) is the
 * include (nginx mode) or the link's target (symlink mode: the backup is
 * a link to the same target, so a target that is not UTF-8 is kept as
 * well). Its path goes to backup (n bytes; "" without a run folder: a
 * simulation, whose undo runs nothing). Durable before it returns: the
 * switch that follows may be the last thing cairn does. 0, or -1 after
 * adapter__job_fail. */
static int keep_backup(struct adapter__job *j, int is_link, const char *old,
                       size_t old_len, char *backup, size_t n)
{
  const struct adapter_call *call = j->call;
  struct cairn_error err = { 0 };
  char dir[PATH_MAX], tmp[PATH_MAX + 16], why[512];

  backup[0] = '\0';
  if (call->run_dir == NULL || call->name == NULL)
    return 0;
  if ((size_t)snprintf(dir, sizeof dir, "%s/backups", call->run_dir) >=
          sizeof dir ||
      (size_t)snprintf(backup, n, "%s/%s.%lld", dir, call->name,
                       (long long)call->entry) >= n) {
    adapter__job_fail(j, "the run folder's path is too long for a backup");
    return -1;
  }
  if (access(dir, F_OK) < 0) {
    if (cairn_mkdirs(dir, &err) < 0) {
      adapter__job_fail(j, "%s", err.msg);
      return -1;
    }
    (void)cairn_fsync_dir(dir); /* its name in the run folder */
  }
  if (!is_link) {
    if (adapter__write_atomic(backup, old, old_len, 0600, why,
                              sizeof why) < 0) {
      adapter__job_fail(j, "%s", why);
      return -1;
    }
    return 0;
  }
  /* a link beside it renamed over it: a backup of a crashed attempt
   * (before its note) is replaced whole */
  snprintf(tmp, sizeof tmp, "%s.tmp", backup);
  (void)unlink(tmp);
  if (symlink(old, tmp) < 0 || rename(tmp, backup) < 0) {
    int e = errno;
    (void)unlink(tmp);
    adapter__job_fail(j, "cannot keep the link of before in '%s': %s",
                      backup, uv_strerror(-e));
    return -1;
  }
  (void)cairn_fsync_dir(backup);
  return 0;
}

/* (pool) What was live before the state's first attempt, about `path`
 * (the link or the include): from an earlier attempt's note when there
 * is one, which replaces what this attempt found in from (n bytes) and
 * in backup (bn bytes) and, in nginx mode (first not NULL), gives the
 * include of then in *first (malloc'd, NULL when there was none;
 * *has_first says whether the note had it); else this attempt's view is
 * noted now, before anything changes: from, the backup of old[0..old_len)
 * (the include, or the link's target; NULL: none) kept when keep (not in
 * an undo: it restores a backup of its own) and, in nginx mode, the
 * include. 0, or -1 after adapter__job_fail. */
static int note_first(struct adapter__job *j, const char *path, char *from,
                      size_t n, const char *old, size_t old_len, int keep,
                      char *backup, size_t bn, char **first,
                      size_t *first_len, int *has_first)
{
  struct cairn_error err = { 0 };
  char key[PATH_MAX + 64];
  json_t *data = NULL, *v;

  backup[0] = '\0';
  snprintf(key, sizeof key, "switch.blue-green\n%s\n%s",
           first ? "nginx" : "symlink", path);
  if (adapter__note_read(j->call, key, &data, &err) < 0) {
    adapter__job_fail(j, "%s", err.msg);
    return -1;
  }
  if (data != NULL) {
    if (!json_is_string(v = json_object_get(data, "from"))) {
      json_decref(data);
      adapter__job_fail(j, "the note of an earlier attempt in '%s/notes' "
                        "has no colour", j->call->run_dir);
      return -1;
    }
    snprintf(from, n, "%s", json_string_value(v));
    /* a note of a cairn before backups has none: "" as then */
    if (json_is_string(v = json_object_get(data, "backup")))
      snprintf(backup, bn, "%s", json_string_value(v));
    v = json_object_get(data, "include");
    if (first && (json_is_string(v) || json_is_null(v))) {
      *has_first = 1;
      *first_len = json_string_length(v);
      if (json_is_string(v) &&
          (*first = malloc(*first_len + 1)) != NULL)
        memcpy(*first, json_string_value(v), *first_len + 1);
      if (json_is_string(v) && *first == NULL) {
        json_decref(data);
        adapter__job_fail(j, "out of memory");
        return -1;
      }
    }
    json_decref(data);
    adapter__job_note(j, "switch.blue-green: the state's first attempt "
                      "found %s live: from stays %s", from[0] ? from : "none",
                      from[0] ? from : "\"\"");
    return 0;
  }
  /* the backup before the note: a note names a backup that is there */
  if (keep && old != NULL &&
      keep_backup(j, first == NULL, old, old_len, backup, bn) < 0)
    return -1;
  if ((data = json_pack("{s:s,s:s}", "from", from, "backup", backup)) ==
      NULL) {
    adapter__job_fail(j, "out of memory");
    return -1;
  }
  /* an include that is not UTF-8 has no JSON string: the colour only, and
   * a later attempt puts back what it finds */
  if (first)
    json_object_set_new(data, "include",
                        old ? json_stringn(old, old_len) : json_null());
  if (adapter__note_write(j->call, key, data, &err) < 0) {
    json_decref(data);
    adapter__job_fail(j, "cannot keep the colour live before the switch "
                      "for a retry: %s", err.msg);
    return -1;
  }
  json_decref(data);
  return 0;
}

/* ---- symlink mode ------------------------------------------------------- */

/* A relative target is from the working directory, as every path input
 * (`link` too): `targets: {green: combo/green}` with `link: combo/live`
 * names ./combo/green. A link's own text is from the link's folder, so
 * what is written is the way from there (the tree can move as one), or
 * the absolute path when that way would lead elsewhere (the link's folder
 * reached through a symlink). With the link in the working directory the
 * text is the target as written. */

/* path (absolute) with "", "." and ".." components folded away, as text:
 * no lookup, so a ".." after a symlink is not what the kernel would make
 * of it (link_text checks the result). */
static void lexical_clean(char *path)
{
  char *w = path, *r = path;

  while (*r) {
    while (*r == '/')
      r++;
    size_t len = strcspn(r, "/");
    if (len == 0)
      break;
    if (len == 1 && r[0] == '.') {
      /* nothing */
    } else if (len == 2 && r[0] == '.' && r[1] == '.') {
      while (w > path && *--w != '/')
        ;
    } else {
      *w++ = '/';
      memmove(w, r, len);
      w += len;
    }
    r += len;
  }
  if (w == path)
    *w++ = '/';
  *w = '\0';
}

/* dst (n bytes): a, made absolute from the working directory and cleaned.
 * -1 when it does not fit or the working directory is gone. */
static int abs_clean(const char *a, char *dst, size_t n)
{
  char cwd[PATH_MAX];

  if (a[0] == '/') {
    if ((size_t)snprintf(dst, n, "%s", a) >= n)
      return -1;
  } else if (getcwd(cwd, sizeof cwd) == NULL ||
             (size_t)snprintf(dst, n, "%s/%s", cwd, a) >= n) {
    return -1;
  }
  lexical_clean(dst);
  return 0;
}

/* dst (n bytes): the real path of the folder holding link. -1 when it
 * cannot be reached. */
static int link_dir(const char *link, char *dst)
{
  char *copy = strdup(link);
  int rc = copy && realpath(dirname(copy), dst) != NULL ? 0 : -1;

  free(copy);
  return rc;
}

/* rel (n bytes): the way from folder dir to to, both absolute and
 * cleaned, as text. -1 when it does not fit. */
static int rel_path(const char *dir, const char *to, char *rel, size_t n)
{
  size_t i = 0, common = 0, len = 0;
  const char *c;

  /* the longest shared part that ends where a component ends in both */
  for (;;) {
    if ((dir[i] == '/' || dir[i] == '\0') && (to[i] == '/' || to[i] == '\0'))
      common = i;
    if (dir[i] == '\0' || dir[i] != to[i])
      break;
    i++;
  }
  rel[0] = '\0';
  for (c = dir + common; *c; c++)
    if (*c == '/' && c[1] != '\0' && c[1] != '/')
      len += (size_t)snprintf(rel + len, len < n ? n - len : 0, "../");
  c = to + common;
  while (*c == '/')
    c++;
  if (*c)
    len += (size_t)snprintf(rel + len, len < n ? n - len : 0, "%s", c);
  else if (len > 0)
    rel[--len] = '\0'; /* "../.." */
  else
    len = (size_t)snprintf(rel, n, ".");
  return len < n ? 0 : -1;
}

/* (pool) out (n bytes): the text that makes link lead to target t, which
 * exists (see above). 0, or -1 when a path is too long. */
static int link_text(const char *link, const char *t, char *out, size_t n)
{
  char dir[PATH_MAX], to[PATH_MAX], rel[PATH_MAX], check[2 * PATH_MAX + 2],
      cwd[PATH_MAX];
  struct stat a, b;

  if (t[0] == '/')
    return (size_t)snprintf(out, n, "%s", t) < n ? 0 : -1;
  /* the kernel reads it from the link's folder: it must lead to the
   * target, which a ".." in t after a symlink could change */
  if (link_dir(link, dir) == 0 && abs_clean(t, to, sizeof to) == 0 &&
      rel_path(dir, to, rel, sizeof rel) == 0 &&
      (size_t)snprintf(check, sizeof check, "%s/%s", dir, rel) <
          sizeof check &&
      stat(check, &a) == 0 && stat(t, &b) == 0 && a.st_dev == b.st_dev &&
      a.st_ino == b.st_ino)
    return (size_t)snprintf(out, n, "%s", rel) < n ? 0 : -1;
  /* the working directory's real path and t as written: the same lookup
   * as t from the working directory */
  if (getcwd(cwd, sizeof cwd) == NULL)
    return -1;
  return (size_t)snprintf(out, n, "%s/%s", cwd, t) < n ? 0 : -1;
}

/* (pool) The colour whose target the link leads to, or "": cur is the
 * link's text (NULL: no link). Where the link and a target are both
 * there, by where they lead; else (either not made yet) by their paths,
 * each from its own folder, cleaned. Borrowed from targets. */
static const char *link_colour(const char *link, const char *cur,
                               json_t *targets)
{
  char a[PATH_MAX], b[PATH_MAX], dir[PATH_MAX], joined[2 * PATH_MAX + 2];
  int leads, lexical = 0;
  const char *key;
  json_t *v;

  if (cur == NULL)
    return "";
  leads = realpath(link, a) != NULL;
  json_object_foreach(targets, key, v) {
    if (leads && realpath(json_string_value(v), b) != NULL) {
      if (strcmp(a, b) == 0)
        return key;
    } else {
      lexical = 1;
    }
  }
  if (!lexical)
    return "";
  if (cur[0] == '/')
    snprintf(joined, sizeof joined, "%s", cur);
  else if (link_dir(link, dir) == 0)
    snprintf(joined, sizeof joined, "%s/%s", dir, cur);
  else
    return "";
  if (abs_clean(joined, a, sizeof a) < 0)
    return "";
  json_object_foreach(targets, key, v) {
    if (leads && realpath(json_string_value(v), b) != NULL)
      continue; /* told apart by where they lead */
    if (abs_clean(json_string_value(v), b, sizeof b) == 0 &&
        strcmp(a, b) == 0)
      return key;
  }
  return "";
}

/* (pool) link made to read text: a new link beside it renamed over it
 * (atomic: the live path always leads somewhere). what names the target
 * in an error. 0, or -1 after adapter__job_fail. */
static int link_swap(struct adapter__job *j, const char *link,
                     const char *text, const char *what)
{
  size_t len = strlen(link) + 32;
  char *tmp = malloc(len);
  int rc = -1;

  if (tmp == NULL) {
    adapter__job_fail(j, "out of memory");
    return -1;
  }
  snprintf(tmp, len, "%s.cairn-%ld", link, (long)getpid());
  unlink(tmp);
  if (symlink(text, tmp) < 0) {
    adapter__job_fail(j, "cannot create link '%s': %s", tmp,
                      uv_strerror(-errno));
  } else if (rename(tmp, link) < 0) {
    int e = errno;
    unlink(tmp);
    adapter__job_fail(j, "cannot replace '%s' with a link to '%s': %s%s",
                      link, what, uv_strerror(-e),
                      e == EISDIR ? " (it is a directory, not a link)" : "");
  } else {
    rc = 0;
  }
  free(tmp);
  return rc;
}

/* (pool) The undo: the link the backup keeps (a link to the same target)
 * made live again, whatever colour it names. */
static void link_restore(struct adapter__job *j, const char *link,
                         const char *cur, const char *backup)
{
  char text[PATH_MAX];
  ssize_t n = readlink(backup, text, sizeof text - 1);

  if (n < 0) {
    adapter__job_fail(j, "cannot read backup '%s': %s", backup,
                      uv_strerror(-errno));
    return;
  }
  text[n] = '\0';
  if (cur != NULL && strcmp(cur, text) == 0) {
    adapter__job_note(j, "switch.blue-green: '%s' already points at '%s'",
                      link, text);
    return;
  }
  if (link_swap(j, link, text, text) == 0)
    adapter__job_note(j, "switch.blue-green: '%s' -> '%s' (as before the "
                      "switch)", link, text);
}

static void symlink_switch(struct adapter__job *j, const char *to)
{
  json_t *in = j->call->inputs;
  const char *link = given_str(in, "link");
  const char *restore = given_str(in, "restore_from");
  json_t *targets = adapter__input_given(in, "targets");
  const char *now, *target = NULL;
  char from[256], backup[PATH_MAX + 64], text[PATH_MAX], cur_buf[PATH_MAX];
  const char *cur = NULL; /* the link's text, NULL: no link */
  ssize_t n = readlink(link, cur_buf, sizeof cur_buf - 1);
  struct stat st;

  if (n >= 0) {
    cur_buf[n] = '\0';
    cur = cur_buf;
  }
  now = link_colour(link, cur, targets); /* borrowed from targets */
  if (restore == NULL && to[0] != '\0') {
    /* a target not there would be a dangling live link: refused before
     * anything is kept or changed */
    target = json_string_value(json_object_get(targets, to));
    if (target == NULL) {
      adapter__job_fail(j, "colour '%s' is not in input 'targets'", to);
      return;
    }
    if (stat(target, &st) < 0) {
      char cwd[PATH_MAX];
      if (errno == ENOENT && target[0] != '/' &&
          getcwd(cwd, sizeof cwd) != NULL)
        adapter__job_fail(j, "target '%s' of colour '%s' (input 'targets') "
                          "does not exist (a relative target is from the "
                          "working directory, '%s'); create it or correct "
                          "the path", target, to, cwd);
      else if (errno == ENOENT)
        adapter__job_fail(j, "target '%s' of colour '%s' (input 'targets') "
                          "does not exist; create it or correct the path",
                          target, to);
      else
        adapter__job_fail(j, "cannot reach target '%s' of colour '%s': %s",
                          target, to, uv_strerror(-errno));
      return;
    }
    if (link_text(link, target, text, sizeof text) < 0) {
      adapter__job_fail(j, "the path of target '%s' of colour '%s' is too "
                        "long", target, to);
      return;
    }
  }
  snprintf(from, sizeof from, "%s", now);
  if (note_first(j, link, from, sizeof from, cur, cur ? (size_t)n : 0,
                 restore == NULL, backup, sizeof backup, NULL, NULL,
                 NULL) < 0)
    return;
  json_object_set_new(j->outputs, "from", json_string(from));
  json_object_set_new(j->outputs, "to", json_string(to));
  json_object_set_new(j->outputs, "backup", json_string(backup));
  if (restore != NULL) { /* the default undo */
    link_restore(j, link, cur, restore);
    return;
  }
  if (to[0] == '\0') { /* the undo of a first switch: there was no link */
    if (unlink(link) < 0 && errno != ENOENT)
      adapter__job_fail(j, "cannot remove link '%s': %s", link,
                        uv_strerror(-errno));
    else
      adapter__job_note(j, "switch.blue-green: removed link '%s'", link);
    return;
  }
  if (strcmp(now, to) == 0) {
    adapter__job_note(j, "switch.blue-green: '%s' already points at %s",
                      link, to);
    return;
  }
  if (link_swap(j, link, text, target) == 0)
    adapter__job_note(j, "switch.blue-green: '%s' -> '%s' (%s, was %s)",
                      link, text, to, now[0] ? now : cur ? cur : "none");
}

/* ---- nginx mode --------------------------------------------------------- */

enum nginx_phase {
  NGINX_PREPARE,
  NGINX_TEST,
  NGINX_RELOAD,
  NGINX_CONFIRM,
  NGINX_RESTORE,     /* after a failed or stopped TEST or RELOAD */
  NGINX_UNDO,        /* RESTORE after CONFIRM, before RELOAD_BACK */
  NGINX_RELOAD_BACK,
  NGINX_DONE,
};

struct nginx_run {
  struct adapter__job *j;
  enum nginx_phase phase;
  const char *to, *path, *url, *expect; /* borrowed from the inputs */
  const char *restore; /* restore_from (the default undo), or NULL */
  char from[128];   /* live before the state's first attempt */
  char backup[PATH_MAX + 64]; /* where the include of then is kept */
  char now[128];    /* live when this attempt began (its include's) */
  char *old;        /* the include before (NULL: there was none) */
  size_t old_len;
  char *first;      /* the include before the state's first attempt, from
                       its note (has_first; NULL: there was none), put
                       back when the confirmation fails */
  size_t first_len;
  int has_first;
  int wrote;        /* the new include is in place */

  struct adapter__child child; /* nginx */
  char out[SWITCH_NGINX_OUT];  /* what it printed */
  size_t out_len;
  char why[1024];   /* the step that failed: why */

  struct adapter__http h;      /* the confirmation */
  int h_live;
  char body[SWITCH_BODY_MAX + 1];
  size_t body_len;
  uint64_t confirm_deadline;   /* uv_now() */
  char last[160];              /* what the last try got */
};

/* The colour live by the include text (NULL: none): its marker line, in
 * an include cairn wrote; else, in one written by hand before cairn's
 * first switch, the colour of ups (borrowed) whose HOST:PORT every
 * `server` directive names, those marked backup or down aside (they take
 * no traffic); "" when neither. */
static void include_colour(const char *text, json_t *ups, char *out,
                           size_t n)
{
  const char *m = text ? strstr(text, SWITCH_MARKER) : NULL;
  const char *found = NULL, *key;
  char *copy, *stmt, *save, *c;
  json_t *v;
  size_t len;

  out[0] = '\0';
  if (m != NULL) {
    m += strlen(SWITCH_MARKER);
    len = strcspn(m, "\r\n");
    snprintf(out, n, "%.*s", (int)len, m);
    return;
  }
  if (text == NULL || (copy = strdup(text)) == NULL)
    return;
  for (c = copy; (c = strchr(c, '#')) != NULL;) /* comments out */
    while (*c && *c != '\n')
      *c++ = ' ';
  for (stmt = strtok_r(copy, ";", &save); stmt;
       stmt = strtok_r(NULL, ";", &save)) {
    const char *ws = " \t\r\n";
    char *save2, *word = strtok_r(stmt, ws, &save2), *addr, *arg;
    const char *colour = NULL;
    int live = 1;

    if (word == NULL || strcmp(word, "server") != 0)
      continue;
    if ((addr = strtok_r(NULL, ws, &save2)) == NULL)
      continue;
    while ((arg = strtok_r(NULL, ws, &save2)) != NULL)
      if (strcmp(arg, "backup") == 0 || strcmp(arg, "down") == 0)
        live = 0;
    if (!live)
      continue;
    json_object_foreach(ups, key, v) {
      if (json_is_string(v) && strcmp(json_string_value(v), addr) == 0) {
        colour = key;
        break;
      }
    }
    if (colour == NULL || (found && strcmp(found, colour) != 0)) {
      found = NULL; /* a server no colour names, or two colours */
      break;
    }
    found = colour;
  }
  if (found)
    snprintf(out, n, "%s", found);
  free(copy);
}

/* The lines of nginx's output that say why, joined on one line: the
 * "nginx: " prefixes, the "test failed" line and the like dropped. */
static void nginx_why(char *buf, char *out, size_t n)
{
  size_t len = 0;

  out[0] = '\0';
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
}

static void nginx_output(void *ud, int is_stdout, const char *p, size_t n)
{
  struct nginx_run *x = ud;
  size_t room = sizeof x->out - 1 - x->out_len;

  (void)is_stdout;
  if (n > room)
    n = room;
  memcpy(x->out + x->out_len, p, n);
  x->out_len += n;
  x->out[x->out_len] = '\0';
}

/* Runs nginx with the prefix and conf inputs and then extra (NULL-
 * terminated); its end comes to nginx_done. timeout_ms 0: the job's. */
static void nginx_run(struct nginx_run *x, const char *const *extra,
                      int64_t timeout_ms)
{
  json_t *in = x->j->call->inputs;
  struct adapter__exec_hooks hooks = { NULL, nginx_output, x };
  struct adapter__child_spec spec = { 0 };
  struct cairn_error err = { 0 };
  const char *args[12];
  size_t k = 0;

  args[k++] = given_str(in, "nginx");
  if (given_str(in, "nginx_prefix")) {
    args[k++] = "-p";
    args[k++] = given_str(in, "nginx_prefix");
  }
  if (given_str(in, "nginx_conf")) {
    args[k++] = "-c";
    args[k++] = given_str(in, "nginx_conf");
  }
  while (*extra && k < 11)
    args[k++] = *extra++;
  args[k] = NULL;
  x->out_len = 0;
  x->out[0] = '\0';
  spec.argv = args;
  spec.hooks = &hooks;
  spec.timeout_ms = timeout_ms;
  if (adapter__child_start(&x->child, &spec, &err) < 0) {
    struct adapter_result res; /* as a child that could not run */
    memset(&res, 0, sizeof res);
    res.outcome = ADAPTER_FAILED;
    res.exit_code = -1;
    snprintf(res.error, sizeof res.error, "%s", err.msg);
    x->child.spawned = 0;
    x->child.on_done(&x->child, &res);
  }
}

static void nginx_end(struct nginx_run *x)
{
  struct adapter__job *j = x->j;

  x->phase = NGINX_DONE;
  adapter__child_release(&x->child);
  free(x->old);
  free(x->first);
  free(x);
  j->data = NULL;
  adapter__job_end(j);
}

/* (pool) The old include back, or none when there was none. After nginx
 * -t or the reload failed (RESTORE), the one this attempt found: nginx
 * was not reloaded, it still serves that. After the confirmation failed
 * (UNDO, a reload follows), the one before the state's first attempt. */
static void restore_work(struct adapter__job *j)
{
  struct nginx_run *x = j->data;
  int first = x->phase == NGINX_UNDO && x->has_first;
  const char *text = first ? x->first : x->old;
  size_t len = first ? x->first_len : x->old_len;
  char why[256];

  if (text)
    adapter__write_atomic(x->path, text, len, 0644, why, sizeof why);
  else
    unlink(x->path);
}

/* The include goes back (in the pool), then the call fails with x->why. */
static void restore_and_fail(struct nginx_run *x)
{
  x->phase = NGINX_RESTORE;
  adapter__job_queue(x->j, restore_work);
}

/* A stop came before or during step ("nginx -t"). */
static void stopped_at(struct nginx_run *x, const char *step)
{
  snprintf(x->why, sizeof x->why, "'%s' stopped (restored the previous "
           "include)", step);
  restore_and_fail(x);
}

static void confirm_try(struct nginx_run *x);

static void on_pause(uv_timer_t *t)
{
  confirm_try(t->data);
}

static void confirm_closed(void *ud)
{
  struct nginx_run *x = ud;
  struct adapter__job *j = x->j;

  adapter__http_release(&x->h);
  x->h_live = 0;
  if (x->phase == NGINX_CONFIRM) { /* it answered */
    adapter__job_note(j, "switch.blue-green: '%s' answers with '%s'", x->url,
                      x->expect);
    nginx_end(x);
    return;
  }
  /* NGINX_UNDO: the new colour does not answer: put the old one back */
  adapter__job_queue(j, restore_work);
}

static void confirm_end(struct nginx_run *x, int ok)
{
  if (!ok)
    x->phase = NGINX_UNDO;
  adapter__http_end(&x->h, confirm_closed, x);
}

static void on_confirm_done(CURL *easy, CURLcode rc, void *ud)
{
  struct nginx_run *x = ud;
  uv_loop_t *loop = x->j->call->loop;
  long status = 0;

  adapter__http_sent(&x->h);
  if (rc == CURLE_OK) {
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300 && strstr(x->body, x->expect)) {
      confirm_end(x, 1);
      return;
    }
    snprintf(x->last, sizeof x->last, "HTTP %ld '%.60s'", status, x->body);
    for (char *p = x->last; *p; p++)
      if (*p == '\n' || *p == '\r')
        *p = ' ';
  } else {
    snprintf(x->last, sizeof x->last, "%s", curl_easy_strerror(rc));
  }
  uv_update_time(loop);
  if (uv_now(loop) >= x->confirm_deadline) {
    confirm_end(x, 0);
    return;
  }
  uv_timer_start(&x->h.timer, on_pause, SWITCH_POLL_MS, 0);
}

static void confirm_try(struct nginx_run *x)
{
  struct cairn_error err = { 0 };

  x->body_len = 0;
  x->body[0] = '\0';
  if (adapter__http_send(&x->h, SWITCH_TRY_MS, on_confirm_done, x, &err) <
      0) {
    snprintf(x->last, sizeof x->last, "%s", err.msg);
    confirm_end(x, 0);
  }
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
  struct nginx_run *x = ud;
  size_t n = size * nmemb;
  size_t room = SWITCH_BODY_MAX - x->body_len;

  memcpy(x->body + x->body_len, p, n < room ? n : room);
  x->body_len += n < room ? n : room;
  x->body[x->body_len] = '\0';
  return n; /* keep reading: a cut body is fine for a substring */
}

static void confirm_start(struct nginx_run *x)
{
  struct adapter__job *j = x->j;
  uv_loop_t *loop = j->call->loop;
  struct adapter__curl_req q;
  struct cairn_error err = { 0 };

  memset(&q, 0, sizeof q);
  q.method = "GET";
  q.url = x->url;
  q.timeout_ms = SWITCH_TRY_MS;
  q.forbid_reuse = 1; /* a fresh connection each time: a kept one may
                         reach an old worker */
  q.on_body = on_body;
  q.ud = x;
  x->phase = NGINX_CONFIRM;
  snprintf(x->last, sizeof x->last, "no answer");
  if (adapter__http_init(&x->h, loop, NULL, NULL, &q, &err) < 0) {
    adapter__http_release(&x->h);
    snprintf(x->last, sizeof x->last, "%s", err.msg);
    x->phase = NGINX_UNDO;
    adapter__job_queue(j, restore_work);
    return;
  }
  x->h_live = 1;
  x->h.timer.data = x;
  uv_update_time(loop);
  x->confirm_deadline = uv_now(loop) + (uint64_t)json_integer_value(
      adapter__input_given(j->call->inputs, "confirm_within"));
  if (adapter__job_stopped(j)) {
    confirm_end(x, 0);
    return;
  }
  confirm_try(x);
}

/* A child nginx ended. */
static void nginx_done(struct adapter__child *c,
                       const struct adapter_result *res)
{
  static const char *const reload_args[] = { "-s", "reload", NULL };
  struct nginx_run *x = c->data;
  struct adapter__job *j = x->j;
  const char *stopped = adapter__job_stopped(j);
  int ok = res->outcome == ADAPTER_SUCCEEDED;

  if (x->phase == NGINX_RELOAD_BACK) { /* its own result does not matter */
    adapter__job_fail(j, "%s: '%s' did not answer with '%s' (last: %s); "
                      "switched back to %s",
                      stopped ? stopped : "timed out", x->url, x->expect,
                      x->last, x->from[0] ? x->from : "the old include");
    nginx_end(x);
    return;
  }
  if (!ok) {
    char msg[1024];
    if (!c->spawned) { /* "cannot run 'x': ..." */
      snprintf(msg, sizeof msg, "%s", res->error);
    } else {
      nginx_why(x->out, msg, sizeof msg);
      if (msg[0] == '\0')
        snprintf(msg, sizeof msg, "%s", res->error);
    }
    if (stopped) {
      stopped_at(x, x->phase == NGINX_TEST ? "nginx -t" : "nginx -s reload");
      return;
    }
    if (x->phase == NGINX_TEST && x->restore)
      snprintf(x->why, sizeof x->why, "nginx -t rejected the include of "
               "before the switch, kept in '%s' (restored the previous "
               "one): %s", x->restore, msg);
    else if (x->phase == NGINX_TEST)
      snprintf(x->why, sizeof x->why, "nginx -t rejected the include for "
               "'%s' (restored the previous one): %s", x->to, msg);
    else
      snprintf(x->why, sizeof x->why, "nginx -s reload failed (restored "
               "the previous include): %s", msg);
    restore_and_fail(x);
    return;
  }
  if (x->phase == NGINX_TEST) {
    if (stopped) { /* it passed, but the switch goes no further */
      stopped_at(x, "nginx -s reload");
      return;
    }
    x->phase = NGINX_RELOAD;
    nginx_run(x, reload_args, 0);
    return;
  }
  /* NGINX_RELOAD */
  adapter__job_note(j, "switch.blue-green: nginx reloaded with '%s' -> %s%s "
                    "(was %s)", x->path, x->to[0] ? x->to : "no colour",
                    x->restore ? ", as before the switch" : "",
                    x->now[0] ? x->now : "none");
  if (x->url == NULL) {
    nginx_end(x);
    return;
  }
  if (x->expect == NULL)
    x->expect = x->to;
  if (x->expect[0] == '\0') {
    /* the undo back to an include that names no colour: nothing it
     * could expect in the body */
    adapter__job_note(j, "switch.blue-green: not confirmed: the include of "
                      "before the switch names no colour");
    nginx_end(x);
    return;
  }
  confirm_start(x);
}

/* (pool) The include: the old one read, the new colour's written, or in
 * the default undo the one of before the switch. */
static void prepare_work(struct adapter__job *j)
{
  struct nginx_run *x = j->data;
  json_t *ups = adapter__input_given(j->call->inputs, "upstreams");
  const char *addr;
  char why[512];
  char *text = NULL;
  size_t text_len = 0;
  int rc;

  rc = adapter__read_file(x->path, SWITCH_INCLUDE_MAX, &x->old, &x->old_len);
  if (rc < 0 && rc != -ENOENT) {
    adapter__job_fail(j, "cannot read include '%s': %s", x->path,
                      uv_strerror(rc));
    return;
  }
  include_colour(x->old, ups, x->now, sizeof x->now);
  snprintf(x->from, sizeof x->from, "%s", x->now);
  if (note_first(j, x->path, x->from, sizeof x->from, x->old, x->old_len,
                 x->restore == NULL, x->backup, sizeof x->backup, &x->first,
                 &x->first_len, &x->has_first) < 0)
    return;
  json_object_set_new(j->outputs, "from", json_string(x->from));
  json_object_set_new(j->outputs, "to", json_string(x->to));
  json_object_set_new(j->outputs, "backup", json_string(x->backup));
  if (x->restore != NULL) {
    /* the default undo: exactly what was live, whatever colour it names
     * (the include of an nginx cairn never switched has none) */
    rc = adapter__read_file(x->restore, SWITCH_INCLUDE_MAX, &text,
                            &text_len);
    if (rc < 0) {
      adapter__job_fail(j, "cannot read backup '%s': %s", x->restore,
                        uv_strerror(rc));
      return;
    }
  } else if (x->to[0] == '\0') {
    /* undo of a first switch: there was no include to go back to, and
     * nginx needs some upstream: leave it as it is */
    adapter__job_note(j, "switch.blue-green: nothing was live before; "
                      "'%s' left as it is", x->path);
    return;
  } else {
    addr = json_string_value(json_object_get(ups, x->to));
    /* Both go into nginx's configuration: a ';', brace or newline in them
     * would write configuration of its own. */
    if (addr == NULL ||
        strspn(x->to, "abcdefghijklmnopqrstuvwxyz"
                      "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
            strlen(x->to) ||
        *addr == '\0' ||
        strspn(addr, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789.-:[]") != strlen(addr)) {
      adapter__job_fail(j, "upstream of colour '%s' must be a host:port "
                        "(letters, digits, '.', '-', ':' and []), got '%s'",
                        x->to, addr ? addr : "");
      return;
    }
    if (asprintf(&text, "%s%s\nserver %s;\n", SWITCH_MARKER, x->to, addr) <
        0) {
      adapter__job_fail(j, "out of memory");
      return;
    }
    text_len = strlen(text);
  }
  if (adapter__write_atomic(x->path, text, text_len, 0644, why,
                            sizeof why) < 0)
    adapter__job_fail(j, "%s", why);
  else
    x->wrote = 1;
  free(text);
}

/* On the loop, after each file step in the pool. */
static void nginx_after(struct adapter__job *j)
{
  static const char *const test_args[] = { "-t", NULL };
  static const char *const reload_args[] = { "-s", "reload", NULL };
  struct nginx_run *x = j->data;

  switch (x->phase) {
  case NGINX_PREPARE:
    if (!x->wrote) { /* failed, or nothing to do */
      nginx_end(x);
      return;
    }
    if (adapter__job_stopped(j)) {
      stopped_at(x, "nginx -t");
      return;
    }
    x->phase = NGINX_TEST;
    nginx_run(x, test_args, 0);
    return;
  case NGINX_RESTORE:
    adapter__job_fail(j, "%s", x->why);
    nginx_end(x);
    return;
  case NGINX_UNDO:
    /* even after a cancel or timeout: nginx must serve the old colour */
    x->phase = NGINX_RELOAD_BACK;
    nginx_run(x, reload_args, SWITCH_RESTORE_MS);
    return;
  default:
    nginx_end(x);
    return;
  }
}

/* A cancel or the timeout while the job runs on the loop. */
static void nginx_on_stop(struct adapter__job *j)
{
  struct nginx_run *x = j->data;

  if (x == NULL)
    return;
  if (x->phase == NGINX_TEST || x->phase == NGINX_RELOAD)
    adapter__child_cancel(&x->child); /* nginx_done goes on */
  else if (x->phase == NGINX_CONFIRM && x->h_live && !x->h.ending)
    confirm_end(x, 0);
}

static int nginx_start(struct adapter_call *call, const char *to,
                       struct cairn_error *err)
{
  struct nginx_run *x = calloc(1, sizeof *x);
  struct adapter__job *j;

  if (x == NULL)
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  if ((j = adapter__job_create(call, err)) == NULL) {
    free(x);
    return err ? err->code : CAIRN_E_NOMEM;
  }
  x->j = j;
  x->to = to;
  x->restore = given_str(call->inputs, "restore_from");
  x->path = given_str(call->inputs, "include");
  x->url = given_str(call->inputs, "confirm_url");
  x->expect = given_str(call->inputs, "confirm_expect");
  x->child.parent = call;
  x->child.on_done = nginx_done;
  x->child.data = x;
  j->data = x;
  j->after = nginx_after;
  j->on_stop = nginx_on_stop;
  adapter__job_queue(j, prepare_work);
  return 0;
}

static void symlink_work(struct adapter__job *j)
{
  symlink_switch(j, json_string_value(json_object_get(j->call->inputs,
                                                      "to")));
}

/* ---- inputs ------------------------------------------------------------- */

static int switch_check(json_t *with, struct cairn_error *err)
{
  json_t *mode = adapter__input_given(with, "mode");
  json_t *to = adapter__input_given(with, "to");
  const char *m = json_is_string(mode) ? json_string_value(mode) : "symlink";
  const char *need[2], *map;

  if (adapter_is_template(mode))
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
    if (adapter__input_given(with, need[i]) == NULL)
      return cairn_error_set(err, CAIRN_E_INVAL,
                             "switch.blue-green in %s mode needs input '%s'",
                             m, need[i]);
  if (json_is_string(to) && !adapter_is_template(to) &&
      json_string_value(to)[0] != '\0' && json_is_object(adapter__input_given(with, map)) &&
      json_object_get(adapter__input_given(with, map), json_string_value(to)) == NULL)
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "colour '%s' is not in input '%s'",
                           json_string_value(to), map);
  return 0;
}

static int switch_start(struct adapter_call *call, struct cairn_error *err)
{
  const char *to = json_string_value(json_object_get(call->inputs, "to"));
  const char *mode;
  int rc;

  if ((rc = switch_check(call->inputs, err)) < 0)
    return rc;
  if (to == NULL)
    return cairn_error_set(err, CAIRN_E_INVAL, "input 'to' must be a "
                           "string");
  mode = given_str(call->inputs, "mode");
  /* "" is symlink mode, as in switch_check */
  if (mode != NULL && strcmp(mode, "nginx") == 0)
    return nginx_start(call, to, err);
  return adapter__job_start(call, symlink_work, err);
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
  { "restore_from", ADAPTER_T_STRING, 0, "\"\"",
    "the undo: a backup a switch kept (its output 'backup'), made live "
    "again as it was" },
  { NULL, 0, 0, NULL, NULL },
};

static const struct adapter_output switch_outputs[] = {
  { "from", "string", "the colour live before (\"\" when none)" },
  { "to", "string", "the colour live now" },
  { "backup", "string",
    "what was live before, kept under the run folder for the undo (\"\" "
    "when nothing was: no link, no include)" },
  { NULL, NULL, NULL },
};

const struct adapter_desc adapter_switch_blue_green = {
  .name = "switch.blue-green",
  .summary = "point live traffic at a colour (symlink or nginx upstream)",
  .inputs = switch_inputs,
  .outputs = switch_outputs,
  /* a switch journaled before `backup` existed: no restore_from, so its
   * undo switches back to `from`, as it did then */
  .absent = (const struct adapter_absent[]){{"backup", "\"\""},
                                            {NULL, NULL}},
  .idempotent = 1,
  .undo_adapter = "switch.blue-green",
  .undo_with =
      "{\"to\": \"{{ self.output.from }}\", \"mode\": \"{{ self.input.mode "
      "}}\", \"link\": \"{{ self.input.link }}\", \"targets\": \"{{ "
      "self.input.targets }}\", \"include\": \"{{ self.input.include }}\", "
      "\"upstreams\": \"{{ self.input.upstreams }}\", \"nginx\": \"{{ "
      "self.input.nginx }}\", \"nginx_conf\": \"{{ self.input.nginx_conf }}\", "
      "\"nginx_prefix\": \"{{ self.input.nginx_prefix }}\", \"confirm_url\": "
      "\"{{ self.input.confirm_url }}\", \"restore_from\": \"{{ "
      "self.output.backup }}\"}",
  .check = switch_check,
  .start = switch_start,
  .cancel = adapter__job_cancel,
};
