/* The notes a state's first attempt keeps of how things stood before it
 * (adapters/note.h). */
#include "adapters/note.h"
#include "adapters/job.h"
#include "common/file.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#define NOTE_MAX (4 * 1024 * 1024) /* a note holds at most an include */

/* RUN_DIR/notes (dir) and RUN_DIR/notes/NAME.json (path); -1 when the
 * call has no run folder or the names do not fit. */
static int note_paths(const struct adapter_call *call, char *dir, size_t dn,
                      char *path, size_t pn)
{
  if (call->run_dir == NULL || call->name == NULL)
    return -1;
  if ((size_t)snprintf(dir, dn, "%s/notes", call->run_dir) >= dn ||
      (size_t)snprintf(path, pn, "%s/%s.json", dir, call->name) >= pn)
    return -1;
  return 0;
}

int adapter__note_read(const struct adapter_call *call, const char *key,
                       json_t **data, struct cairn_error *err)
{
  char dir[PATH_MAX], path[PATH_MAX], sum[65];
  char *text = NULL;
  size_t n = 0;
  json_t *note, *k, *entry;
  int rc;

  *data = NULL;
  if (note_paths(call, dir, sizeof dir, path, sizeof path) < 0)
    return 0;
  if (adapter__sha256_hex(key, strlen(key), sum) < 0)
    return cairn_error_set(err, CAIRN_E_NOMEM, "cannot compute a SHA-256");
  if ((rc = adapter__read_file(path, NOTE_MAX, &text, &n)) == -ENOENT)
    return 0;
  if (rc < 0)
    return cairn_error_set(err, CAIRN_E_IO, "cannot read note '%s': %s",
                           path, uv_strerror(rc));
  note = json_loadb(text, n, 0, NULL);
  free(text);
  k = json_object_get(note, "key");
  entry = json_object_get(note, "entry");
  if (!json_is_string(k) || !json_is_integer(entry) ||
      json_object_get(note, "data") == NULL) {
    json_decref(note);
    return cairn_error_set(err, CAIRN_E_IO, "note '%s' is not a note of "
                           "cairn's (remove it to start afresh)", path);
  }
  /* another visit's, or about something else: not this attempt's past */
  if (json_integer_value(entry) == call->entry &&
      strcmp(json_string_value(k), sum) == 0)
    *data = json_incref(json_object_get(note, "data"));
  json_decref(note);
  return 0;
}

int adapter__note_write(const struct adapter_call *call, const char *key,
                        json_t *data, struct cairn_error *err)
{
  char dir[PATH_MAX], path[PATH_MAX], sum[65];
  struct stat st;
  json_t *note;
  char *text;
  int rc;

  if (note_paths(call, dir, sizeof dir, path, sizeof path) < 0)
    return 0;
  if (adapter__sha256_hex(key, strlen(key), sum) < 0)
    return cairn_error_set(err, CAIRN_E_NOMEM, "cannot compute a SHA-256");
  if (stat(dir, &st) < 0) {
    if ((rc = cairn_mkdirs(dir, err)) < 0)
      return rc;
    /* the new folder's name in the run folder: durable too */
    (void)cairn_fsync_dir(dir);
  }
  note = json_pack("{s:I,s:s,s:O}", "entry", (json_int_t)call->entry, "key",
                   sum, "data", data);
  text = note ? json_dumps(note, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(note);
  if (text == NULL)
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  rc = cairn_write_atomic(path, text, strlen(text), 0600, err);
  free(text);
  return rc;
}
