/* The file adapters: file.write (atomic, keeping the previous content
 * under the run folder so its undo restores it byte for byte) and
 * file.remove; plus the atomic write and bounded read the other adapters
 * use for their own files (adapters/job.h).
 *
 * Backups: the first attempt of each visit of a file.write state keeps
 * what was at `path` before it in RUN_DIR/backups/STATE.N (0600; N the
 * visit's state.entered) and a note in RUN_DIR/backups/STATE.N.json
 * ({"path", "previous", "mode", "uid", "gid"}). A retried or resumed
 * attempt finds the note and keeps it: what it would see at `path` is
 * already its own content. The undo is file.write with
 * restore_from set to the backup ("" when there was no file: the undo
 * removes it), which puts back content, mode, owner and group.
 *
 * A file replaced keeps its owner and group (a configuration root:www-data
 * 0640 must stay readable by the group its service runs as): they are set
 * on the temporary file before the rename, as far as cairn's user may
 * (cairn_write_atomic_owned; the step's log says when it could not). The
 * work runs in the thread pool (fsync blocks). */
#include "adapters/adapter.h"
#include "adapters/input.h"
#include "adapters/job.h"
#include "common/file.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_MAX (64 * 1024 * 1024) /* largest file kept as a backup */

/* ---- shared with the other adapters ------------------------------------- */

int adapter__read_file(const char *path, size_t max, char **out, size_t *n)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  char *buf;
  size_t len = 0;
  int e = 0;

  *out = NULL;
  *n = 0;
  if (fd < 0)
    return -errno;
  if (fstat(fd, &st) < 0)
    e = errno;
  else if (!S_ISREG(st.st_mode))
    e = EISDIR;
  else if ((size_t)st.st_size > max)
    e = EFBIG;
  if (e) {
    close(fd);
    return -e;
  }
  if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
    close(fd);
    return -ENOMEM;
  }
  while (len < (size_t)st.st_size) {
    ssize_t r = read(fd, buf + len, (size_t)st.st_size - len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break; /* shrank under us: what we have */
    len += (size_t)r;
  }
  close(fd);
  buf[len] = '\0';
  *out = buf;
  *n = len;
  return 0;
}

int adapter__write_atomic(const char *path, const char *data, size_t n,
                          unsigned mode, char *why, size_t len)
{
  struct cairn_error err = {0};
  int rc = cairn_write_atomic(path, data, n, mode, &err);
  if (rc != 0)
    snprintf(why, len, "%s", err.msg);
  return rc != 0 ? -EIO : 0;
}

/* ---- helpers ------------------------------------------------------------ */

/* "0644" -> 0644; -1 when it is not an octal mode. */
static long parse_mode(const char *s)
{
  char *end;
  long m;

  if (s == NULL || *s == '\0' || strspn(s, "01234567") != strlen(s))
    return -1;
  m = strtol(s, &end, 8);
  return m > 07777 ? -1 : m;
}

int adapter__sha256_hex(const char *p, size_t n, char out[65])
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;

  out[0] = '\0';
  if (EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) != 1 || len != 32)
    return -1;
  for (unsigned i = 0; i < len; i++)
    snprintf(out + 2 * i, 3, "%02x", md[i]);
  return 0;
}

static int mkdir_0700(const char *dir)
{
  if (mkdir(dir, 0700) < 0 && errno != EEXIST)
    return -errno;
  return 0;
}

/* ---- file.write --------------------------------------------------------- */

/* Keeps what is at path (or that nothing is) under the run folder, once
 * per visit of the state. *backup gets the backup's path ("" when there
 * was no file); *previous whether there was one. */
static int keep_previous(struct adapter__job *j, const char *path,
                         char *backup, size_t bn, int *previous)
{
  struct adapter_call *call = j->call;
  char dir[4200], meta[4300], why[512];
  char *text = NULL, *old = NULL;
  size_t tn = 0, on = 0;
  struct stat st;
  json_t *note;
  int rc;

  if (call->run_dir == NULL || call->name == NULL) {
    adapter__job_fail(j, "file.write needs a run folder to keep '%s' in "
                      "for its undo", path);
    return -1;
  }
  snprintf(dir, sizeof dir, "%s/backups", call->run_dir);
  /* one backup a visit (call->entry): a loop's next visit may write
   * another path, and each visit's undo restores what it replaced */
  snprintf(backup, bn, "%s/%s.%lld", dir, call->name, (long long)call->entry);
  snprintf(meta, sizeof meta, "%s.json", backup);
  if (adapter__read_file(meta, 65536, &text, &tn) == 0) {
    note = json_loadb(text, tn, 0, NULL);
    free(text);
    if (json_is_object(note) &&
        json_is_string(json_object_get(note, "path")) &&
        strcmp(json_string_value(json_object_get(note, "path")), path) == 0) {
      *previous = json_is_true(json_object_get(note, "previous"));
      if (!*previous)
        backup[0] = '\0';
      json_decref(note);
      return 0; /* an earlier attempt of this state kept it */
    }
    json_decref(note);
  }

  if ((rc = mkdir_0700(dir)) < 0) {
    adapter__job_fail(j, "cannot create backup folder '%s': %s", dir,
                      uv_strerror(rc));
    return -1;
  }
  *previous = 0;
  if (lstat(path, &st) == 0) {
    if (!S_ISREG(st.st_mode)) {
      adapter__job_fail(j, "'%s' is not a regular file; file.write replaces "
                        "only files", path);
      return -1;
    }
    if ((rc = adapter__read_file(path, FILE_MAX, &old, &on)) < 0) {
      adapter__job_fail(j, "cannot read '%s' to keep it for the undo: %s",
                        path, uv_strerror(rc));
      return -1;
    }
    *previous = 1;
    rc = adapter__write_atomic(backup, old, on, 0600, why, sizeof why);
    free(old);
    if (rc < 0) {
      adapter__job_fail(j, "%s", why);
      return -1;
    }
  } else if (errno != ENOENT) {
    adapter__job_fail(j, "cannot read '%s': %s", path, uv_strerror(-errno));
    return -1;
  }
  note = json_pack("{s:s, s:b, s:i}", "path", path, "previous", *previous,
                   "mode", *previous ? (int)(st.st_mode & 07777) : 0);
  /* whose it was, for the undo to give it back */
  if (note && *previous &&
      (json_object_set_new(note, "uid", json_integer(st.st_uid)) < 0 ||
       json_object_set_new(note, "gid", json_integer(st.st_gid)) < 0)) {
    json_decref(note);
    note = NULL;
  }
  text = note ? json_dumps(note, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(note);
  if (text == NULL) {
    adapter__job_fail(j, "out of memory");
    return -1;
  }
  rc = adapter__write_atomic(meta, text, strlen(text), 0600, why, sizeof why);
  free(text);
  if (rc < 0) {
    adapter__job_fail(j, "%s", why);
    return -1;
  }
  if (!*previous)
    backup[0] = '\0';
  return 0;
}

/* Writes content with mode, owner uid and group gid ((uid_t)-1 and
 * (gid_t)-1: the writer's) unless path already holds exactly that. */
static int put(struct adapter__job *j, const char *path, const char *content,
               size_t n, unsigned mode, uid_t uid, gid_t gid)
{
  struct cairn_error err = {0};
  char *old = NULL;
  size_t on = 0;
  struct stat st;
  int same = 0, owned = 1;

  if (stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
      (st.st_mode & 07777) == mode &&
      (uid == (uid_t)-1 || st.st_uid == uid) &&
      (gid == (gid_t)-1 || st.st_gid == gid) &&
      adapter__read_file(path, FILE_MAX, &old, &on) == 0)
    same = on == n && memcmp(old, content, n) == 0;
  free(old);
  if (same) {
    adapter__job_note(j, "file.write: '%s' already has this content", path);
    return 0;
  }
  if (cairn_write_atomic_owned(path, content, n, mode, uid, gid, &owned,
                               &err) < 0) {
    adapter__job_fail(j, "%s", err.msg);
    return -1;
  }
  adapter__job_note(j, "file.write: wrote '%s' (%zu bytes, mode %04o)", path,
                    n, mode);
  /* not a failure: without privilege the file becomes cairn's user's, as
   * any file it writes; the log says whose it was meant to be */
  if (!owned && stat(path, &st) == 0)
    adapter__job_note(j, "file.write: '%s' is owned by uid %ju gid %ju, not "
                      "uid %ju gid %ju: only root may give a file away",
                      path, (uintmax_t)st.st_uid, (uintmax_t)st.st_gid,
                      (uintmax_t)uid, (uintmax_t)gid);
  return 0;
}

/* An owner or group id kept in a backup note, or (id_t)-1 when there is
 * none (a note of an older cairn) or it is not one. */
static id_t note_id(json_t *note, const char *key)
{
  json_t *v = json_object_get(note, key);

  if (!json_is_integer(v) || json_integer_value(v) < 0 ||
      json_integer_value(v) >= (json_int_t)UINT32_MAX)
    return (id_t)-1;
  return (id_t)json_integer_value(v);
}

/* The undo: put the kept content (and mode) back, or remove the file. */
static void restore(struct adapter__job *j, const char *path,
                    const char *from)
{
  char meta[4300];
  char *text = NULL, *data = NULL;
  size_t tn = 0, dn = 0;
  json_t *note = NULL;
  unsigned mode = 0644;
  uid_t uid = (uid_t)-1;
  gid_t gid = (gid_t)-1;
  char sum[65] = "";
  int rc, existed = access(path, F_OK) == 0;

  if (from[0] == '\0') {
    if (unlink(path) < 0 && errno != ENOENT) {
      adapter__job_fail(j, "cannot remove '%s': %s", path,
                        uv_strerror(-errno));
      return;
    }
    adapter__job_note(j, "file.write: removed '%s' (there was no file "
                      "before)", path);
    goto out;
  }
  if ((rc = adapter__read_file(from, FILE_MAX, &data, &dn)) < 0) {
    adapter__job_fail(j, "cannot read backup '%s': %s", from,
                      uv_strerror(rc));
    return;
  }
  snprintf(meta, sizeof meta, "%s.json", from);
  if (adapter__read_file(meta, 65536, &text, &tn) == 0 &&
      (note = json_loadb(text, tn, 0, NULL)) != NULL) {
    json_t *m = json_object_get(note, "mode");
    /* the mode it had, 0000 too: a file nobody may read stays so */
    if (json_is_integer(m) && json_integer_value(m) >= 0 &&
        json_integer_value(m) <= 07777)
      mode = (unsigned)json_integer_value(m);
    uid = (uid_t)note_id(note, "uid");
    gid = (gid_t)note_id(note, "gid");
  }
  free(text);
  json_decref(note);
  if (put(j, path, data, dn, mode, uid, gid) == 0)
    adapter__sha256_hex(data, dn, sum);
  free(data);
out:
  json_object_set_new(j->outputs, "path", json_string(path));
  json_object_set_new(j->outputs, "sha256", json_string(sum));
  json_object_set_new(j->outputs, "previous", json_boolean(existed));
  json_object_set_new(j->outputs, "backup", json_string(""));
}

/* Does s hold one of the run's secret values? Then its hash is not an
 * output: an unsalted SHA-256 of a password file would let anyone who
 * reads the journal test guesses against it. */
static int holds_secret(const char *s, const char *const *redact)
{
  for (; s && redact && *redact; redact++)
    if (**redact && strstr(s, *redact) != NULL)
      return 1;
  return 0;
}

static void write_work(struct adapter__job *j)
{
  json_t *in = j->call->inputs;
  const char *path = adapter__input_str(in, "path");
  json_t *content = adapter__input(in, "content");
  const char *from = adapter__input_str(in, "restore_from");
  const char *given = adapter__input_str(in, "mode");
  int secret = holds_secret(json_string_value(content), j->call->redact);
  /* Without a mode, a file that holds a secret's value is private. */
  long mode = given ? parse_mode(given) : secret ? 0600 : 0644;
  char backup[4300], sum[65];
  int previous = 0;
  uid_t uid = (uid_t)-1;
  gid_t gid = (gid_t)-1;
  struct stat st;

  if (from) {
    restore(j, path, from);
    return;
  }
  if (keep_previous(j, path, backup, sizeof backup, &previous) < 0)
    return;
  /* a file replaced stays whose it was; a new one is the writer's */
  if (lstat(path, &st) == 0 && S_ISREG(st.st_mode)) {
    uid = st.st_uid;
    gid = st.st_gid;
  }
  if (put(j, path, json_string_value(content), json_string_length(content),
          (unsigned)mode, uid, gid) < 0)
    return;
  if (secret)
    sum[0] = '\0';
  else
    adapter__sha256_hex(json_string_value(content),
                        json_string_length(content), sum);
  json_object_set_new(j->outputs, "path", json_string(path));
  json_object_set_new(j->outputs, "sha256", json_string(sum));
  json_object_set_new(j->outputs, "previous", json_boolean(previous));
  json_object_set_new(j->outputs, "backup", json_string(backup));
}

static int write_check(json_t *with, struct cairn_error *err)
{
  json_t *content = adapter__input(with, "content");
  json_t *from = adapter__input(with, "restore_from");
  json_t *mode = adapter__input(with, "mode");

  if (content && from)
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "'content' and 'restore_from' cannot be used "
                           "together");
  if (!content && !from)
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "either 'content' or 'restore_from' is required");
  if (json_is_string(mode) && !strstr(json_string_value(mode), "{{") &&
      parse_mode(json_string_value(mode)) < 0)
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "bad mode '%s' for input 'mode': an octal string "
                           "such as \"0644\" is expected",
                           json_string_value(mode));
  return 0;
}

static int write_start(struct adapter_call *call, struct cairn_error *err)
{
  int rc;

  if (adapter__input_str(call->inputs, "path") == NULL ||
      adapter__input_str(call->inputs, "path")[0] == '\0')
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "input 'path' must be a non-empty string");
  if ((rc = write_check(call->inputs, err)) < 0)
    return rc;
  return adapter__job_start(call, write_work, err);
}

/* ---- file.remove -------------------------------------------------------- */

static void remove_work(struct adapter__job *j)
{
  const char *path = adapter__input_str(j->call->inputs, "path");
  struct stat st;
  int removed = 0;

  if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    adapter__job_fail(j, "'%s' is a directory; file.remove removes only "
                      "files", path);
    return;
  }
  if (unlink(path) == 0) {
    removed = 1;
    cairn_fsync_dir(path);
    adapter__job_note(j, "file.remove: removed '%s'", path);
  } else if (errno == ENOENT) {
    adapter__job_note(j, "file.remove: '%s' was already gone", path);
  } else {
    adapter__job_fail(j, "cannot remove '%s': %s", path, uv_strerror(-errno));
    return;
  }
  json_object_set_new(j->outputs, "path", json_string(path));
  json_object_set_new(j->outputs, "removed", json_boolean(removed));
}

static int remove_start(struct adapter_call *call, struct cairn_error *err)
{
  const char *path = adapter__input_str(call->inputs, "path");

  if (path == NULL || path[0] == '\0')
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "input 'path' must be a non-empty string");
  return adapter__job_start(call, remove_work, err);
}

static const struct adapter_input write_inputs[] = {
  { "path", ADAPTER_T_STRING, 1, NULL, "the file to write" },
  { "content", ADAPTER_T_STRING, 0, NULL,
    "what to write (templates in it are rendered by the engine)" },
  { "mode", ADAPTER_T_STRING, 0, NULL,
    "permissions, an octal string (default \"0644\", \"0600\" when the "
    "content holds a secret's value)" },
  { "restore_from", ADAPTER_T_STRING, 0, NULL,
    "instead of content: a backup file.write kept (its output 'backup'); "
    "\"\" removes path (there was no file before)" },
  { NULL, 0, 0, NULL, NULL },
};

static const struct adapter_output write_outputs[] = {
  { "path", "string", "the file written" },
  { "sha256", "string", "SHA-256 of its content, hex; \"\" when the content holds a secret" },
  { "previous", "boolean", "whether a file was there before" },
  { "backup", "string",
    "where the previous content is kept (\"\" when there was none)" },
  { NULL, NULL, NULL },
};

const struct adapter_desc adapter_file_write = {
  .name = "file.write",
  .summary = "write a file atomically, keeping the previous one for undo",
  .inputs = write_inputs,
  .outputs = write_outputs,
  .idempotent = 1,
  .undo_adapter = "file.write",
  .undo_with = "{\"path\": \"{{ self.output.path }}\", "
               "\"restore_from\": \"{{ self.output.backup }}\"}",
  .check = write_check,
  .start = write_start,
  .cancel = adapter__job_cancel,
};

static const struct adapter_input remove_inputs[] = {
  { "path", ADAPTER_T_STRING, 1, NULL, "the file to remove" },
  { NULL, 0, 0, NULL, NULL },
};

static const struct adapter_output remove_outputs[] = {
  { "path", "string", "the file" },
  { "removed", "boolean", "false when it was already gone" },
  { NULL, NULL, NULL },
};

const struct adapter_desc adapter_file_remove = {
  .name = "file.remove",
  .summary = "remove a file (a missing file is success)",
  .inputs = remove_inputs,
  .outputs = remove_outputs,
  .idempotent = 1,
  .start = remove_start,
  .cancel = adapter__job_cancel,
};
