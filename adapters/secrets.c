/* The secrets.generate adapter: random values (OpenSSL RAND_bytes) for a
 * list of names, kept in an env file (mode 0600) so a re-run or a resumed
 * run finds the same values; the run learns them through result->secrets,
 * never through outputs, so they are never journaled.
 *
 * The file work (read, draw, write a temporary file, fsync, rename, fsync
 * the folder) runs on libuv's thread pool: an fsync must not stall the
 * loop that drives the other branches of a run. */
#include "adapters/adapter.h"
#include "adapters/job.h"
#include "adapters/secrets.h"
#include "common/buf.h"
#include "common/file.h"
#include "common/random.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRETS_LENGTH_MAX 4096        /* bytes of randomness per value */
#define SECRETS_LENGTH_MIN 8           /* 64 bits; and never a value under
                                          ENGINE_SECRET_MIN characters */
#define SECRETS_FILE_MAX (1024 * 1024) /* an env file larger is refused */

static const char b64url[] =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char hexdig[] = "0123456789abcdef";
static const char alnum[] =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/* ---- values ------------------------------------------------------------- */

size_t adapter__secret_chars(const char *alphabet, size_t length)
{
  if (strcmp(alphabet, "base64url") == 0)
    return (length * 4 + 2) / 3; /* unpadded */
  if (strcmp(alphabet, "hex") == 0)
    return length * 2;
  if (strcmp(alphabet, "alnum") == 0) {
    /* the fewest characters with 62^k >= 256^length:
     * k = ceil(length * 8 / log2(62)); exact enough below 2^40 */
    double k = (double)length * 8.0 / 5.954196310386876;
    size_t n = (size_t)k;
    return n + ((double)n < k);
  }
  return 0;
}

int adapter__secret_value(const char *alphabet, size_t length, char **out,
                          struct cairn_error *err)
{
  size_t nchars = adapter__secret_chars(alphabet, length);
  unsigned char *raw = NULL;
  char *s = NULL;
  size_t o = 0;
  int rc = 0;

  *out = NULL;
  if (nchars == 0 || length == 0 || length > SECRETS_LENGTH_MAX)
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "bad alphabet '%s' or length %zu for a secret",
                           alphabet, length);
  if ((s = malloc(nchars + 1)) == NULL ||
      (raw = malloc(length + 2)) == NULL) {
    rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    goto out;
  }
  if (strcmp(alphabet, "alnum") == 0) {
    /* Rejection sampling: a byte below 248 = 4 * 62 maps to one of 62
     * characters with equal chance; the 8 others are drawn again. */
    while (o < nchars) {
      if ((rc = cairn_random_bytes(raw, length, err)) < 0)
        goto out;
      for (size_t i = 0; i < length && o < nchars; i++)
        if (raw[i] < 248)
          s[o++] = alnum[raw[i] % 62];
    }
  } else {
    if ((rc = cairn_random_bytes(raw, length, err)) < 0)
      goto out;
    if (alphabet[0] == 'h') {
      for (size_t i = 0; i < length; i++) {
        s[o++] = hexdig[raw[i] >> 4];
        s[o++] = hexdig[raw[i] & 15];
      }
    } else {
      raw[length] = raw[length + 1] = 0;
      for (size_t i = 0; i < length; i += 3) {
        unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 |
                     raw[i + 2];
        for (int k = 0; k < 4 && o < nchars; k++)
          s[o++] = b64url[(v >> (18 - 6 * k)) & 63];
      }
    }
  }
  s[o] = '\0';
  *out = s;
  s = NULL;
out:
  if (raw)
    OPENSSL_cleanse(raw, length + 2);
  free(raw);
  if (s)
    OPENSSL_cleanse(s, nchars + 1);
  free(s);
  return rc;
}

/* ---- names -------------------------------------------------------------- */

static int valid_name(const char *s)
{
  if (!((*s >= 'A' && *s <= 'Z') || *s == '_'))
    return 0;
  for (s++; *s; s++)
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
      return 0;
  return 1;
}

/* The cross-field rules: names well-formed and distinct, length in range,
 * a known alphabet. Template strings pass; they are checked rendered. */
static int secrets_check(json_t *with, struct cairn_error *err)
{
  json_t *names = json_object_get(with, "names");
  json_t *len = json_object_get(with, "length");
  json_t *alpha = json_object_get(with, "alphabet");
  json_t *item;
  size_t i;

  if (json_is_array(names)) {
    json_array_foreach(names, i, item) {
      const char *s = json_string_value(item);
      if (adapter_is_template(item) || s == NULL)
        continue;
      if (!valid_name(s))
        return cairn_error_set(err, CAIRN_E_INVAL,
                               "bad secret name '%s' (use [A-Z_][A-Z0-9_]*)",
                               s);
      for (size_t j = 0; j < i; j++)
        if (json_equal(json_array_get(names, j), item))
          return cairn_error_set(err, CAIRN_E_INVAL,
                                 "secret name '%s' is listed twice", s);
    }
  }
  if (json_is_integer(len) &&
      (json_integer_value(len) < SECRETS_LENGTH_MIN ||
       json_integer_value(len) > SECRETS_LENGTH_MAX))
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "value %" JSON_INTEGER_FORMAT " is out of range "
                           "for input 'length' (hint: bytes of randomness, "
                           "from %d to %d; 32 is the default)",
                           json_integer_value(len), SECRETS_LENGTH_MIN,
                           SECRETS_LENGTH_MAX);
  if (json_is_string(alpha) && !adapter_is_template(alpha) &&
      adapter__secret_chars(json_string_value(alpha), 1) == 0)
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "unknown alphabet '%s' (use base64url, hex or "
                           "alnum)",
                           json_string_value(alpha));
  return 0;
}

/* ---- the env file ------------------------------------------------------- */

/* Reads path (adapter__read_file) into *buf, its bytes scrubbed when it
 * is released (buf_scrub). A missing file is not an error when
 * missing_ok: *buf stays empty. */
static int read_file(const char *path, struct cairn_buf *buf, int missing_ok,
                     struct cairn_error *err)
{
  char *text;
  size_t len;
  int rc = adapter__read_file(path, SECRETS_FILE_MAX, &text, &len);

  if (rc == -ENOENT && missing_ok)
    return 0;
  if (rc == -EFBIG)
    return cairn_error_set(err, CAIRN_E_IO, "cannot read secrets file '%s': "
                           "larger than %d bytes", path, SECRETS_FILE_MAX);
  if (rc == -EISDIR)
    return cairn_error_set(err, CAIRN_E_IO, "cannot read secrets file '%s': "
                           "not a regular file", path);
  if (rc == -ENOMEM)
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  if (rc < 0)
    return cairn_error_set(err, CAIRN_E_IO, "cannot read secrets file '%s': "
                           "%s", path, strerror(-rc));
  buf->p = text;
  buf->len = len;
  buf->cap = len + 1;
  return 0;
}

/* The value of the first non-empty NAME= line of text, as a new string,
 * or NULL. */
static json_t *find_value(const char *text, size_t len, const char *name)
{
  size_t nl = strlen(name);
  const char *p = text, *end = text + len;

  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    size_t ll = eol ? (size_t)(eol - p) : (size_t)(end - p);
    if (ll > nl + 1 && memcmp(p, name, nl) == 0 && p[nl] == '=') {
      size_t vl = ll - nl - 1;
      if (p[ll - 1] == '\r')
        vl--;
      if (vl > 0)
        return json_stringn(p + nl + 1, vl);
    }
    p += ll + 1;
  }
  return NULL;
}

static void buf_scrub(struct cairn_buf *b)
{
  if (b->p)
    OPENSSL_cleanse(b->p, b->cap);
  cairn_buf_release(b);
}

/* Replaces path by text (mode 0600), its folder made 0700 if missing. */
static int write_atomic(const char *path, const char *text, size_t len,
                        struct cairn_error *err)
{
  char dir[PATH_MAX];
  const char *slash = strrchr(path, '/');
  int rc;

  if (slash == NULL)
    snprintf(dir, sizeof dir, ".");
  else if (slash == path)
    snprintf(dir, sizeof dir, "/");
  else
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  if ((rc = cairn_mkdirs(dir, err)) < 0)
    return rc;
  return cairn_write_atomic(path, text, len, 0600, err);
}

/* ---- the call ----------------------------------------------------------- */

struct secrets_job {
  uv_work_t req;
  struct adapter_call *call;
  const char *file;
  json_t *names;      /* borrowed from call->inputs */
  size_t length;
  const char *alphabet;
  json_t *secrets;    /* NAME -> value */
  json_t *generated;  /* names */
  json_t *kept;       /* names */
  json_t *outputs;    /* made at the start, filled at the end */
  struct cairn_error err;
  uint64_t start_ns;
};

/* On the thread pool: everything but on_done. */
static void secrets_work(uv_work_t *req)
{
  struct secrets_job *j = req->data;
  struct cairn_buf text = { 0 };
  struct cairn_buf out = { 0 };
  size_t i;
  json_t *item;

  if (read_file(j->file, &text, 1, &j->err) < 0)
    goto out;
  json_array_foreach(j->names, i, item) {
    const char *name = json_string_value(item);
    json_t *v = find_value(text.p ? text.p : "", text.len, name);
    char *s;
    if (v) {
      json_object_set_new(j->secrets, name, v);
      json_array_append(j->kept, item);
      continue;
    }
    if (adapter__secret_value(j->alphabet, j->length, &s, &j->err) < 0)
      goto out;
    v = json_string(s);
    OPENSSL_cleanse(s, strlen(s));
    free(s);
    if (v == NULL || json_object_set_new(j->secrets, name, v) < 0 ||
        json_array_append(j->generated, item) < 0) {
      cairn_error_set(&j->err, CAIRN_E_NOMEM, "out of memory");
      goto out;
    }
  }
  if (json_array_size(j->generated) == 0) {
    /* nothing new: leave the file alone, but never readable by others */
    struct stat st;
    if (stat(j->file, &st) == 0 && (st.st_mode & 077) != 0 &&
        chmod(j->file, 0600) < 0)
      cairn_error_set(&j->err, CAIRN_E_IO, "cannot chmod secrets file '%s': "
                      "%s", j->file, strerror(errno));
    goto out;
  }
  /* Every line of the old file, except an empty NAME= of a name drawn now
   * (it is replaced), then the new NAME=value lines. */
  {
    const char *p = text.p ? text.p : "", *end = p + text.len;
    while (p < end) {
      const char *eol = memchr(p, '\n', (size_t)(end - p));
      size_t ll = eol ? (size_t)(eol - p) : (size_t)(end - p);
      int drop = 0;
      json_array_foreach(j->generated, i, item) {
        const char *name = json_string_value(item);
        size_t nl = strlen(name);
        if (ll >= nl + 1 && memcmp(p, name, nl) == 0 && p[nl] == '=')
          drop = 1;
      }
      if (!drop) {
        cairn_buf_add(&out, p, ll);
        cairn_buf_add(&out, "\n", 1);
      }
      p += ll + 1;
    }
  }
  json_array_foreach(j->generated, i, item) {
    const char *name = json_string_value(item);
    const char *v = json_string_value(json_object_get(j->secrets, name));
    cairn_buf_add(&out, name, strlen(name));
    cairn_buf_add(&out, "=", 1);
    cairn_buf_add(&out, v, strlen(v));
    cairn_buf_add(&out, "\n", 1);
  }
  if (out.failed) {
    cairn_error_set(&j->err, CAIRN_E_NOMEM, "out of memory");
    goto out;
  }
  write_atomic(j->file, out.p, out.len, &j->err);
out:
  buf_scrub(&text);
  buf_scrub(&out);
}

static void names_text(struct cairn_buf *b, json_t *names)
{
  size_t i;
  json_t *item;

  if (json_array_size(names) == 0)
    cairn_buf_add(b, "none", 4);
  json_array_foreach(names, i, item) {
    if (i)
      cairn_buf_add(b, ", ", 2);
    cairn_buf_add(b, json_string_value(item), json_string_length(item));
  }
}

static void secrets_after(uv_work_t *req, int status)
{
  struct secrets_job *j = req->data;
  struct adapter_call *call = j->call;
  struct adapter_result res;
  struct cairn_buf msg = { 0 };

  memset(&res, 0, sizeof res);
  res.exit_code = -1;
  res.tail = (char *)"";
  res.duration_ms = (int64_t)((uv_hrtime() - j->start_ns) / 1000000);
  res.outputs = j->outputs; /* made at the start: never NULL */
  if (status == UV_ECANCELED) {
    res.outcome = ADAPTER_CANCELLED;
    snprintf(res.error, sizeof res.error, "cancelled");
  } else if (j->err.code < 0) {
    res.outcome = ADAPTER_FAILED;
    snprintf(res.error, sizeof res.error, "%s", j->err.msg);
  } else {
    res.outcome = ADAPTER_SUCCEEDED;
    res.exit_code = 0;
    res.secrets = j->secrets;
  }
  if (res.outcome == ADAPTER_SUCCEEDED &&
      (json_object_set_new(res.outputs, "file", json_string(j->file)) < 0 ||
       json_object_set(res.outputs, "generated", j->generated) < 0 ||
       json_object_set(res.outputs, "kept", j->kept) < 0)) {
    /* the values are in the file, but a success without its outputs
     * would leave the run without its secrets' names */
    res.outcome = ADAPTER_FAILED;
    res.exit_code = -1;
    res.secrets = NULL;
    snprintf(res.error, sizeof res.error, "out of memory");
  }
  if (res.outcome == ADAPTER_SUCCEEDED) {
    cairn_buf_add(&msg, "secrets.generate: generated ", 28);
    names_text(&msg, j->generated);
    cairn_buf_add(&msg, "; kept ", 7);
    names_text(&msg, j->kept);
    cairn_buf_add(&msg, "; in ", 5);
    cairn_buf_add(&msg, j->file, strlen(j->file));
    cairn_buf_add(&msg, "\n", 1);
    /* the journal keeps the tail: no log file for a success */
    if (!msg.failed)
      res.tail = msg.p;
  }
  call->priv = NULL;
  call->on_done(call, &res);
  cairn_buf_release(&msg);
  json_decref(j->outputs);
  /* jansson keeps its strings: overwrite the values before freeing */
  {
    const char *k;
    json_t *v;
    json_object_foreach(j->secrets, k, v) {
      OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
    }
  }
  json_decref(j->secrets);
  json_decref(j->generated);
  json_decref(j->kept);
  free(j);
}

static int secrets_start(struct adapter_call *call, struct cairn_error *err)
{
  json_t *in = call->inputs;
  json_t *file = json_object_get(in, "file");
  json_t *names = json_object_get(in, "names");
  json_t *len = json_object_get(in, "length");
  json_t *alpha = json_object_get(in, "alphabet");
  struct secrets_job *j;
  size_t i;
  json_t *item;
  int rc;

  if (!json_is_string(file) || json_string_length(file) == 0)
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "input 'file' must be a non-empty string");
  if (!json_is_array(names) || json_array_size(names) == 0)
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "input 'names' must be a non-empty list of "
                           "secret names");
  json_array_foreach(names, i, item) {
    if (!json_is_string(item))
      return cairn_error_set(err, CAIRN_E_INVAL,
                             "input 'names' must be a list of strings");
    if (adapter_is_template(item)) /* rendered, it is still "{{": not a name */
      return cairn_error_set(err, CAIRN_E_INVAL, "bad secret name '%s' (use "
                             "[A-Z_][A-Z0-9_]*)", json_string_value(item));
  }
  if (!json_is_integer(len) || !json_is_string(alpha))
    return cairn_error_set(err, CAIRN_E_INVAL, "inputs 'length' and "
                           "'alphabet' must be set (apply the adapter's "
                           "defaults first)");
  if ((rc = secrets_check(in, err)) < 0)
    return rc;

  if ((j = calloc(1, sizeof *j)) == NULL)
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  j->call = call;
  j->file = json_string_value(file);
  j->names = names;
  j->length = (size_t)json_integer_value(len);
  j->alphabet = json_string_value(alpha);
  j->secrets = json_object();
  j->generated = json_array();
  j->kept = json_array();
  j->outputs = json_object();
  j->start_ns = uv_hrtime();
  j->req.data = j;
  if (!j->secrets || !j->generated || !j->kept || !j->outputs) {
    rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    goto fail;
  }
  if ((rc = uv_queue_work(call->loop, &j->req, secrets_work,
                          secrets_after)) < 0) {
    rc = cairn_error_set(err, CAIRN_E_IO, "cannot queue secrets.generate: %s",
                         uv_strerror(rc));
    goto fail;
  }
  call->priv = j;
  return 0;

fail:
  json_decref(j->outputs);
  json_decref(j->secrets);
  json_decref(j->generated);
  json_decref(j->kept);
  free(j);
  return rc;
}

/* Work not begun is dropped (on_done says cancelled); work under way is
 * short and finishes, so the file is never left half-written. */
static void secrets_cancel(struct adapter_call *call)
{
  struct secrets_job *j = call ? call->priv : NULL;

  if (j)
    uv_cancel((uv_req_t *)&j->req);
}

/* A resumed run gets the values back from the env file the call wrote. */
static int secrets_of(json_t *inputs, json_t *outputs, json_t **secrets,
                      struct cairn_error *err)
{
  json_t *file = json_object_get(outputs, "file");
  json_t *names = json_object_get(inputs, "names");
  struct cairn_buf text = { 0 };
  json_t *res = NULL;
  json_t *item;
  size_t i;
  int rc;

  *secrets = NULL;
  if (!json_is_string(file))
    file = json_object_get(inputs, "file");
  if (!json_is_string(file) || !json_is_array(names))
    return cairn_error_set(err, CAIRN_E_INVAL, "secrets.generate: the "
                           "journaled inputs name no file or no names");
  if ((rc = read_file(json_string_value(file), &text, 0, err)) < 0) {
    cairn_error_prefix(err, "the generated secrets are lost");
    goto out;
  }
  if ((res = json_object()) == NULL) {
    rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    goto out;
  }
  json_array_foreach(names, i, item) {
    const char *name = json_string_value(item);
    json_t *v = name ? find_value(text.p, text.len, name) : NULL;
    if (v == NULL) {
      rc = cairn_error_set(err, CAIRN_E_NOTFOUND, "secret '%s' is no longer "
                           "in '%s' (it was generated there; restore the "
                           "file or start a new run)",
                           name ? name : "?", json_string_value(file));
      goto out;
    }
    json_object_set_new(res, name, v);
  }
  *secrets = res;
  res = NULL;
  rc = 0;
out:
  json_decref(res);
  buf_scrub(&text);
  return rc;
}

static const struct adapter_input secrets_inputs[] = {
  { "file", ADAPTER_T_STRING, 1, NULL,
    "the env file holding the values (NAME=value lines; mode 0600)" },
  { "names", ADAPTER_T_ARGV, 1, NULL,
    "the secret names, [A-Z_][A-Z0-9_]*" },
  { "length", ADAPTER_T_INTEGER, 0, "32",
    "bytes of randomness per value (8 to 4096)" },
  { "alphabet", ADAPTER_T_STRING, 0, "\"base64url\"",
    "how values are written: base64url (unpadded), hex or alnum" },
  { NULL, 0, 0, NULL, NULL },
};

static const struct adapter_output secrets_outputs[] = {
  { "file", "string", "the env file" },
  { "generated", "list", "the names drawn by this call" },
  { "kept", "list", "the names whose value was already in the file" },
  { NULL, NULL, NULL },
};

/* No default undo: removing the file would lose passwords that a database
 * half rolled back may still use. A workflow can write one. */
const struct adapter_desc adapter_secrets_generate = {
  .name = "secrets.generate",
  .summary = "generate random secrets into an env file, keeping existing "
             "values",
  .inputs = secrets_inputs,
  .outputs = secrets_outputs,
  .idempotent = 1,
  .secrets_of = secrets_of,
  .check = secrets_check,
  .start = secrets_start,
  .cancel = secrets_cancel,
};
