/* Internal to adapters/: starting a child process the way every adapter
 * that runs one does (vfork and execve, its own session, argv without a
 * shell, no descriptor but 0-2 inherited), and the few helpers those
 * adapters share. Not part of the adapter interface (adapter.h). */
#ifndef CAIRN_ADAPTERS_SPAWN_H
#define CAIRN_ADAPTERS_SPAWN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Marks every descriptor above 2 close-on-exec (the journal's SQLite file
 * and others may not be): call before adapter__spawn. */
void adapter__cloexec_fds(void);

/* The child's environment: ours, then extra ("K=V", NULL-terminated, may
 * be NULL), then env (an object of strings, may be NULL); a later value
 * of a name replaces an earlier one. One allocation, owned by the caller
 * (free()); it borrows environ's, extra's and nothing of env. NULL when
 * out of memory. */
char **adapter__build_env(const char *const *extra, json_t *env);

/* Spawns args (args[0] looked up in the PATH of envp, as execvp does; a
 * file without "#!" runs through /bin/sh) as the leader of a new session
 * and process group, default signal dispositions, an empty mask, stdin
 * /dev/null, stdout out_fd and stderr err_fd (both above 2), in cwd (NULL:
 * ours), with envp (NULL: ours). Sets *pid and *start, the child's start
 * time in clock ticks as /proc/PID/stat shows it (0 only if that could not
 * be read), which with the pid names it even after the pid is reused.
 * Returns 0 or a positive errno; nothing is borrowed past the call. */
int adapter__spawn(pid_t *pid, int64_t *start, char *const *args,
                   char **envp, const char *cwd, int out_fd, int err_fd);

#ifdef CAIRN_TEST_HOOKS
/* How many spawns so far read the start time from /proc, the clock
 * readings around them straddling a tick (test_exec). */
long adapter__spawn_proc_reads(void);
#endif

/* A pipe, both ends close-on-exec and above 2. Returns 0 or an errno. */
int adapter__pipe(int fds[2]);

/* Why a spawn failed (rc: a negative errno), as a user reads it:
 * "cannot change to directory 'x': ..." or "cannot run 'x': ...", into
 * out (n bytes). The path is redacted (redact: NULL-terminated, may be
 * NULL) before the message is cut to fit, so no part of a secret shows. */
void adapter__spawn_error(char *out, size_t n, int rc, const char *file,
                          const char *cwd, const char *const *redact);

/* "SIGTERM"; digits into buf for a signal without a name here. */
const char *adapter__signal_name(int sig, char *buf, size_t n);

/* write(2) until done; 0 or -1 with errno. */
int adapter__write_all(int fd, const char *p, size_t n);

/* The end of a child's output: buf (2 * ADAPTER_TAIL_MAX bytes, *len of
 * them used) keeps at least the last ADAPTER_TAIL_MAX bytes added. */
void adapter__tail_add(char *buf, size_t *len, const char *p, size_t n);

/* Its last ADAPTER_TAIL_MAX bytes as result.tail: valid UTF-8 (invalid
 * bytes and NULs become '?'), cut at a character's start, into out
 * (ADAPTER_TAIL_MAX + 1 bytes), which is returned. */
const char *adapter__tail_text(const char *buf, size_t len, char *out);

#endif
