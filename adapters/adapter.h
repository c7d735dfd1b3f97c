/* The interface every action sits behind. An adapter is a description
 * (data the loader validates a state's `with:` against, and `cairn
 * adapters` prints) plus start/cancel functions driven by the libuv loop.
 * Adapters know nothing of the journal or the engine: they get resolved
 * inputs and report through callbacks.
 *
 * Memory: the caller owns struct adapter_call and everything it points
 * to, and keeps it all valid until on_done has returned; the adapter calls
 * on_done exactly once per successful start, and only after every libuv
 * handle it opened is closed, so the caller may free the call inside
 * on_done. The result passed to on_done is borrowed for the duration of
 * the callback (take a reference to outputs to keep them). */
#ifndef CAIRN_ADAPTER_H
#define CAIRN_ADAPTER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/error.h"

enum adapter_type {
  ADAPTER_T_STRING,
  ADAPTER_T_INTEGER,
  ADAPTER_T_NUMBER,
  ADAPTER_T_BOOLEAN,
  ADAPTER_T_DURATION, /* a duration string ("5s") or integer seconds */
  ADAPTER_T_ARGV,     /* a non-empty array of strings */
  ADAPTER_T_STRMAP,   /* an object of string values */
  ADAPTER_T_ANY,
};
const char *adapter_type_name(enum adapter_type t);

struct adapter_input {
  const char *name;
  enum adapter_type type;
  int required;
  const char *default_json; /* JSON text of the default, or NULL */
  const char *doc;
};

struct adapter_output {
  const char *name;
  const char *type;
  const char *doc;
};

/* An output added after steps were journaled without it, and the value
 * (JSON text) such a step is taken to have had: its default undo reads
 * it, and a run started by an older cairn must still roll back. */
struct adapter_absent {
  const char *name;
  const char *json;
};

enum adapter_outcome {
  ADAPTER_SUCCEEDED,
  ADAPTER_FAILED,
  ADAPTER_TIMED_OUT,
  ADAPTER_CANCELLED,
};
const char *adapter_outcome_name(enum adapter_outcome o);

struct adapter_result {
  enum adapter_outcome outcome;
  int exit_code;       /* -1 when it did not exit normally */
  int term_signal;     /* 0 when none */
  json_t *outputs;     /* object, never NULL */
  char *tail;          /* last output, redacted, may be "" */
  char error[512];     /* why it failed, one line; "" on success */
  int64_t duration_ms;
  json_t *secrets;     /* NULL, or an object NAME -> value the run learns
                          (secrets.generate): the engine adds them to
                          {{ secrets.NAME }} and redacts them everywhere;
                          they are never journaled. Owned by the adapter
                          (borrowed by on_done, like outputs). */
};

struct adapter_call;

struct adapter_desc {
  const char *name;
  const char *summary;
  const struct adapter_input *inputs;   /* ends with a {NULL} entry */
  const struct adapter_output *outputs; /* ends with a {NULL} entry */
  const struct adapter_absent *absent;  /* NULL, or ends with {NULL} */
  int idempotent;
  /* 1: the child a call starts outlives the call on purpose (a service),
   * and starting the same thing again adopts it when it is alive: resume
   * leaves such a child of an unfinished step running for the re-run to
   * adopt instead of stopping it. */
  int adopts;
  /* 1: a cancelled call still reports every output (process.start stops
   * the service it started and says which), so the undo a rollback plans
   * for a cancelled step can read them; `cairn simulate` gives such a
   * call placeholders for them, as it does a call that succeeded. */
  int outputs_when_cancelled;
  /* About how many bytes of heap one call holds while it runs (0: the
   * engine's default), for the room a fan-out makes before its branches
   * start (cairn_heap_reserve). Measured, not a limit. */
  size_t heap_hint;
  /* The undo a state gets when it writes none (NULL: none): an adapter
   * name and its `with` as JSON text, where templates may use
   * self.input.K and self.output.K (the forward call's inputs and
   * outputs), e.g. process.start's {"pid_file": "{{ self.output.pid_file
   * }}"}. */
  const char *undo_adapter;
  const char *undo_with;
  /* For adapters that produce secrets: the secrets a finished call made,
   * from its journaled inputs and outputs (which hold no secret; e.g. the
   * env file they were written to), so a resumed run has them again. May
   * be NULL. *secrets is a new object owned by the caller. */
  int (*secrets_of)(json_t *inputs, json_t *outputs, json_t **secrets,
                    struct cairn_error *err);
  /* Extra checks of a state's raw `with` beyond the input table (e.g. exec
   * wants argv or shell, not both); may be NULL. Values that are
   * template strings must be accepted. */
  int (*check)(json_t *with, struct cairn_error *err);
  /* Starts the action. On error nothing is running and on_done will not
   * be called. */
  int (*start)(struct adapter_call *call, struct cairn_error *err);
  /* Asks a running action to stop (process group: SIGTERM, grace,
   * SIGKILL); on_done follows with ADAPTER_CANCELLED. A second cancel
   * while it is still stopping skips the rest of the grace (SIGKILL). */
  void (*cancel)(struct adapter_call *call);
};

struct adapter_call {
  uv_loop_t *loop;
  const struct adapter_desc *desc;
  json_t *inputs;            /* resolved, defaults applied (borrowed) */
  const char *log_path;      /* output appended here, redacted; 0600 */
  int *log_errno;            /* may be NULL; else the errno of the first
                                write to log_path that failed (a full disk,
                                a folder that cannot be written) goes here,
                                so the log can be called incomplete: a log
                                never fails the action */
  const char *run_dir;       /* the run's private folder (0700), where an
                                adapter keeps what it needs (pid files,
                                backups); may be NULL in a simulation */
  const char *name;          /* the state path as a file name
                                ("infra.db"), to name such files */
  const char *run_id;        /* the run this call is part of, for what an
                                adapter leaves behind to say which run
                                made it (process.start's pid file); may
                                be NULL (a test) */
  int64_t entry;             /* which visit of the state this call is
                                part of (the journal seq of its
                                state.entered): the same for every
                                attempt of a visit, a retry and a resumed
                                run's re-run included; another for a later
                                visit (a loop). So a note an adapter keeps
                                under run_dir at a visit's first attempt
                                is told from an earlier visit's. 0 when
                                unknown (a simulation) */
  const char *log_header;    /* written to the log before the output (a
                                line, with its newline); may be NULL */
  int64_t timeout_ms;        /* 0: none; on expiry the outcome is
                                ADAPTER_TIMED_OUT */
  int64_t kill_grace_ms;     /* SIGTERM to SIGKILL; 0 means 5000 */
  const char *const *env_extra; /* "K=V" added to a child's environment,
                                   NULL-terminated, may be NULL */
  const char *const *redact; /* values to print as ***, NULL-terminated,
                                may be NULL */
  void (*on_spawned)(struct adapter_call *call, int pid, int pgid,
                     int64_t proc_start); /* may be NULL */
  void (*on_done)(struct adapter_call *call,
                  const struct adapter_result *res);
  void *data;                /* the caller's */
  void *priv;                /* the adapter's */
};

/* Frees what the adapters keep on loop between actions (the shared curl
 * multi handle, its pool and idle connections). Call it once no action
 * runs on the loop, then run the loop again so the close callbacks
 * complete, before uv_loop_close. Without anything kept, does nothing. */
void adapter_loop_done(uv_loop_t *loop);

/* Sets up what the adapters share process-wide (libcurl's global state)
 * before any thread runs; the engine calls it when a run starts (not
 * every command: it costs start-up time). Returns 0 or CAIRN_E_NOMEM. */
int adapter_global_init(struct cairn_error *err);

/* Every adapter, NULL-terminated (borrowed, static). */
extern const struct adapter_desc *const adapter_registry[];
/* The adapter named name, or NULL. */
const struct adapter_desc *adapter_find(const char *name);

/* Checks raw `with` against desc: unknown keys, missing required keys,
 * values of the wrong type (a string containing "{{" passes any type: it
 * is checked once rendered). On error returns CAIRN_E_INVAL with the
 * offending key in *bad_key (borrowed from with, may be NULL). */
int adapter_check_with(const struct adapter_desc *desc, json_t *with,
                       const char **bad_key, struct cairn_error *err);

/* Returns a new object: rendered `with` plus defaults for missing keys,
 * type-checked after rendering (durations become integer milliseconds).
 * *out is owned by the caller. */
int adapter_apply_defaults(const struct adapter_desc *desc, json_t *with,
                           json_t **out, struct cairn_error *err);

/* Replaces each occurrence of each redact value in s (in place, s is
 * malloc'd and may be reallocated) by "***". Returns the new pointer. */
char *adapter_redact(char *s, const char *const *redact);

/* The streaming form of adapter_redact, for output that arrives in
 * pieces. Passes in[0..n) to emit (in runs, "***" for each redact value;
 * where values overlap the longest wins) and returns how many bytes of in
 * it consumed. Unless final, the unconsumed rest (shorter than the longest
 * value) may be the start of a value split across pieces: pass it again,
 * in front of the next piece. With final everything is consumed. Empty
 * redact values are ignored; redact may be NULL. */
size_t adapter_redact_feed(const char *in, size_t n,
                           const char *const *redact, int final,
                           void (*emit)(void *ud, const char *p, size_t n),
                           void *ud);


/* A copy of v with every string and key redacted (a new reference, owned
 * by the caller; NULL when out of memory). */
json_t *adapter_redact_json(json_t *v, const char *const *redact);

/* Appends text (borrowed; written as it is) to the log at path, created
 * 0600. Best effort: nothing when path or text is NULL; when the file
 * cannot be written, the errno goes to *log_errno (when log_errno is not
 * NULL and *log_errno is still 0). */
void adapter_log_append(const char *path, const char *text, int *log_errno);

/* Records e, the errno of a failed write to a log, in *log_errno unless
 * log_errno is NULL or an earlier one is there already. */
void adapter_log_failed(int *log_errno, int e);

/* Opens call->log_path to append (created 0600) and writes
 * call->log_header (if any) to it. Returns the descriptor (the caller
 * closes it), or -1 when log_path is NULL or the file cannot be opened.
 * Best effort: a failure only goes to *call->log_errno. */
int adapter_log_open(const struct adapter_call *call);

/* Formats one line (no newline in fmt), redacts it with call->redact and
 * appends it and a newline to call->log_path (none when NULL; best
 * effort, a failure in *call->log_errno). Returns the redacted line
 * (malloc'd, the caller frees it), or NULL when out of memory. */
char *adapter_log_line(const struct adapter_call *call, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends call->log_header (if any) and text, redacted, to call->log_path
 * (created 0600; nothing when log_path is NULL). Best effort: a log that
 * cannot be written never fails the action (its errno goes to
 * *call->log_errno). text is borrowed. */
void adapter_log_write(const struct adapter_call *call, const char *text);

#define ADAPTER_TAIL_MAX 4096 /* bytes of result.tail */

/* For adapters whose output is their own log lines: sets res->error from
 * error (redacted; may be NULL or "") and res->tail to the last
 * ADAPTER_TAIL_MAX bytes of log redacted (redacted whole, then cut at a
 * UTF-8 character's start, so no part of a secret survives the cut), and
 * writes log (may be NULL) with adapter_log_write unless res->outcome is a
 * success whose whole log fits in the tail (the journal keeps it: no log
 * file). res->tail is malloc'd (NULL only when out of memory): the caller
 * frees it after on_done. Returns res->tail. */
char *adapter_finish_text(const struct adapter_call *call, const char *error,
                          const char *log, struct adapter_result *res);

/* 1 when v is a string holding a template ("{{"), checked once rendered. */
int adapter_is_template(json_t *v);

/* The adapters themselves (static; also reachable through the registry).
 *
 * exec: runs `argv` (no shell) or `shell` (/bin/sh -c) as the leader of
 * its own session and process group (pgid == pid), stdin /dev/null, no
 * descriptor but 0-2 inherited. Its inputs must come from
 * adapter_apply_defaults (`timeout` in integer ms). stdout and stderr are
 * appended, redacted, to log_path; outputs: exit_code (-1 when it did not
 * exit normally) and json (when the whole stdout is one JSON object of at
 * most 1 MiB; its strings and keys redacted). on_done comes after the
 * leader exited and both pipes reached EOF, or 100 ms after the leader's
 * exit when something it left behind holds them. A leader that exits by
 * itself never has its group signalled. Timeout and cancel: SIGTERM and
 * SIGCONT to the group, then SIGKILL after kill_grace_ms; on_done waits
 * until no live member is left (or the grace ran out and SIGKILL went).
 * A cancel after the leader exited by itself only ends the wait: the
 * outcome stays what the exit says. A failed spawn is ADAPTER_FAILED
 * through on_done ("cannot run 'x': no such file or directory"); start()
 * fails only for bad inputs (CAIRN_E_INVAL) or an unopenable log
 * (CAIRN_E_IO). */
extern const struct adapter_desc adapter_exec;

/* sql.migrate: applies the NNN_name.up.sql files of `dir` above the
 * database's version up to `to` (default: the highest), or reverts with the
 * down files, newest first, when `to` is lower; one transaction per file,
 * each recorded (version, name, SHA-256 of the up file, applied_at) in the
 * history table `table`. Every applied file's checksum is checked first: a
 * changed file fails the call, naming it. `db` is a SQLite file
 * (`sqlite:PATH` too; the sqlite3 library, on a libuv worker thread) or a
 * postgres:// URL (psql children through adapter_exec, the password only as
 * PGPASSWORD in their environment; while the server refuses connections
 * or starts up, the first psql is tried again for `connect_within`).
 * Outputs from_version (the version before the state's first attempt of
 * this visit: kept in a note under run_dir, so a retry or a resumed run
 * reports it too), to_version (also after a failure: the version the
 * database stayed at) and applied (file names, down files included); after
 * a stop that killed psql the history table is read again (once no
 * transaction writes it), so they are the database's even when the server
 * committed after psql died. A migration file that fails going up is
 * followed by the down files back to from_version before the call fails
 * (its error says how that went); a timeout or cancel reverts nothing.
 * Folder, file and database problems are ADAPTER_FAILED through on_done;
 * start() fails only for bad inputs (CAIRN_E_INVAL) or an unopenable log
 * (CAIRN_E_IO). */
extern const struct adapter_desc adapter_sql_migrate;
/* process.start: starts `argv` detached (its own session and process
 * group, stdin /dev/null, stdout and stderr appended to `log`, no
 * descriptor but 0-2 inherited, the inherited environment plus env_extra
 * plus `env`) and writes a pid file (pid, pgid, start time, argv, log,
 * boot id, and call->run_id and call->entry: who started it). A pid file
 * naming a live process with the same start time and argv makes it a
 * no-op with the same outputs, and output adopted true unless the pid
 * file names this run and visit (then an earlier attempt started it); one
 * naming a live process with another argv fails. With `port` it fails
 * before starting anything when a socket listens on that TCP port already
 * (common/listen.h; a service it adopts is not checked). With `wait` it fails, with the
 * service log's last lines as tail, when the service is not alive after
 * that long. Default undo: process.stop of its pid_file and start time,
 * passing adopted (true: it stops nothing).
 * process.stop: SIGTERM (and SIGCONT) to the group, polls on the loop for
 * up to `grace`, then SIGKILL; a gone process, or a pid now owned by a
 * process with another start time (never signalled), is success with
 * stopped false. A live pid whose start time is unknown (no proc_start)
 * is never signalled: that fails; so does a pgid that is not the pid's
 * own group, is 1 or is cairn's. Removes the pid file. With keep_argv
 * (and pid_file), a live process running exactly that argv is left
 * running, its pid file too: success, stopped false, kept true; with
 * adopted true, nothing is looked at: success, kept true, pid 0. */
extern const struct adapter_desc adapter_process_start;
extern const struct adapter_desc adapter_process_stop;

/* file.write: writes `content` to `path` atomically (temporary file,
 * fsync, rename) with `mode`, a file replaced keeping its owner and group
 * (as far as cairn's user may give it away: the log says when not), and
 * keeps what was there under run_dir/backups/NAME; its default undo
 * (file.write with restore_from) puts that back byte for byte, with its
 * mode, owner and group, or removes a file that did not exist.
 * file.remove: removes a file; a missing one is success. Both run in the
 * thread pool. */
extern const struct adapter_desc adapter_file_write;
extern const struct adapter_desc adapter_file_remove;

/* switch.blue-green: points live traffic at colour `to`. mode symlink:
 * renames a new symlink over `link` (atomic), pointing at targets[to].
 * mode nginx: writes `include` (a server line for upstreams[to])
 * atomically, runs `nginx -t` (restoring the include and failing with
 * nginx's message when it fails), reloads nginx, then polls confirm_url
 * (through the loop's shared curl multi) until its body holds
 * confirm_expect. File steps run in the thread pool, nginx as a child of
 * the exec adapter. Outputs from (the colour before the state's first
 * attempt of this visit, "" when none: kept in a note under run_dir, so a
 * retry or a resumed run reports it too, and a failed confirmation puts
 * that include back) and to. The state's timeout and cancel end every
 * wait at once: a running nginx has its group stopped (SIGTERM, grace,
 * SIGKILL), the request in flight is dropped, and the outcome is
 * ADAPTER_TIMED_OUT or ADAPTER_CANCELLED. Default undo: the same switch
 * back to `from`. */
extern const struct adapter_desc adapter_switch_blue_green;
/* secrets.generate: for each of `names`, a value of `length` random bytes
 * (RAND_bytes) written in `alphabet`, kept in the env `file` (0600, its
 * folder 0700 when created, written atomically); a NAME=value already
 * there is kept. The values come back in result->secrets only, never in
 * outputs (file, generated, kept); secrets_of reads them back from the
 * file on resume. The file work runs on libuv's thread pool. */
extern const struct adapter_desc adapter_secrets_generate;

/* kubectl, helm, compose: thin actions over the command-line tools
 * (adapters/tools.c). Each runs a short sequence of commands found on
 * PATH (argv, no shell; options as --name=value; a value that would stand
 * alone and starts with '-' is refused), parses what they print into
 * outputs and has the natural undo as its default: kubectl rollout undo
 * of the deployments applied, helm revert (rollback to the revision
 * before, or uninstall when there was none), docker compose down. A tool
 * that fails gives "'helm upgrade' exited with status 1: <last line of
 * its stderr>". Each command is a child of the exec adapter
 * (adapters/exec.h): timeout and cancel stop the running command's group
 * (SIGTERM, grace, SIGKILL), on_done comes once it is empty or SIGKILL
 * went, and no further command starts. */
extern const struct adapter_desc adapter_kubectl;
extern const struct adapter_desc adapter_helm;
extern const struct adapter_desc adapter_compose;
/* tcp.wait: connects to host:port (uv_getaddrinfo for names, each address
 * in turn) every `interval` until one connection is accepted (then closed
 * at once) or `within` runs out: "127.0.0.1:5432 did not accept a
 * connection within 30s (last: connection refused)". within 0 is one
 * attempt. The state's timeout ends it as ADAPTER_TIMED_OUT. Outputs:
 * attempts, elapsed_ms. Idempotent. */
extern const struct adapter_desc adapter_tcp_wait;

/* http.check: one request (or one every `interval` until `expect` holds,
 * for up to `within`) through the loop's shared libcurl multi handle
 * (adapters/curl_uv.h); TLS verified unless insecure is true. The error
 * names the method, URL and what did not match ("GET http://h/health:
 * json 'status' is \"starting\", expected \"healthy\" (after 12 attempts
 * in 30s)"). Outputs: status, latency_ms, headers, json, attempts (strings
 * redacted). cancel() removes the transfer: ADAPTER_CANCELLED. */
extern const struct adapter_desc adapter_http_check;

/* notify.webhook: POSTs `body` (or {"event": E, ...data}) as JSON, up to
 * `attempts` times, through the same shared multi handle. Not delivered
 * (no 2xx) is logged and reported as success with delivered: false,
 * unless required is true: then ADAPTER_FAILED. Not idempotent. */
extern const struct adapter_desc adapter_notify_webhook;

#endif
