/* Internal to adapters/: an action whose work blocks (file writes and
 * fsync) runs in libuv's thread pool, off the loop, and reports on the
 * loop. A job may go on from the loop after its work (switch.blue-green
 * in nginx mode: children and HTTP requests on the loop between file
 * steps in the pool), with the same timeout, cancel and result. */
#ifndef CAIRN_ADAPTERS_JOB_H
#define CAIRN_ADAPTERS_JOB_H

#include "adapters/adapter.h"

#include <stdatomic.h>

#define ADAPTER__JOB_TAIL 4096

struct adapter__job {
  uv_work_t req;
  struct adapter_call *call;
  /* Runs in a worker thread: touches only the job and call->inputs (read
   * only), sets outcome and error, adds to outputs, appends to tail. */
  void (*work)(struct adapter__job *j);
  atomic_int cancelled; /* set by cancel and on timeout; work checks it
                           between steps */
  atomic_int timed_out; /* set when call->timeout_ms ran out */
  uint64_t deadline_ns; /* uv_hrtime() when the timeout runs out; 0: none */
  uv_timer_t timer;     /* the timeout (on the loop) */
  int has_timer;
  int in_pool;          /* work is queued or running */
  int ending;           /* adapter__job_end was called */
  /* Set before the first work by a job that goes on from the loop: after
   * runs on the loop once each work returned (it queues more work, starts
   * something on the loop, or calls adapter__job_end); NULL: the job ends
   * then. on_stop runs on the loop when a cancel or the timeout comes
   * while no work is in the pool and the job has not ended (the flags are
   * set first); it stops what runs on the loop. data is the adapter's. */
  void (*after)(struct adapter__job *j);
  void (*on_stop)(struct adapter__job *j);
  void *data;
  enum adapter_outcome outcome;
  char error[512];
  json_t *outputs;      /* owned by the job */
  char tail[ADAPTER__JOB_TAIL];
  uint64_t start_ns;
};

/* Queues work for call (call->priv becomes the job). on_done follows,
 * on the loop, once work has returned (or with ADAPTER_CANCELLED if it
 * was cancelled before it began). With call->timeout_ms a timer on the
 * loop sets cancelled and timed_out when it runs out: work that then
 * fails (or had not begun) ends ADAPTER_TIMED_OUT; work that succeeded
 * anyway keeps its success. Blocking helpers bound their waits with
 * adapter__job_wait_ms. Returns 0 or CAIRN_E_NOMEM. */
int adapter__job_start(struct adapter_call *call,
                       void (*work)(struct adapter__job *j),
                       struct cairn_error *err);

/* adapter__job_start in two steps, for a job that sets after, on_stop and
 * data first: create (call->priv becomes the job, the timeout runs from
 * now; CAIRN_E_NOMEM), then queue (also for each later work; on the loop,
 * never while work is in the pool). */
struct adapter__job *adapter__job_create(struct adapter_call *call,
                                         struct cairn_error *err);
void adapter__job_queue(struct adapter__job *j,
                        void (*work)(struct adapter__job *j));

/* Ends a job that went on from the loop (nothing of the adapter's may
 * still run): on_done follows once the timer is closed. */
void adapter__job_end(struct adapter__job *j);

/* The cancel of a job adapter: flags the job; stops a queued work that
 * has not begun (not of a job with after, whose steps all run and see the
 * flags), and calls on_stop while the job runs on the loop. */
void adapter__job_cancel(struct adapter_call *call);

/* For a worker that blocks: how long it may wait now, at most max_ms:
 * 0 once cancelled or timed out, else the time left before the deadline
 * (max_ms when there is none). */
int adapter__job_wait_ms(struct adapter__job *j, int max_ms);

/* "timed out" or "cancelled" once either happened, else NULL. */
const char *adapter__job_stopped(struct adapter__job *j);

/* printf into j->error (one line); sets outcome ADAPTER_FAILED. */
void adapter__job_fail(struct adapter__job *j, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends a line (printf; a newline is added) to j->tail and to the
 * step's log (call->log_path), redacted. */
void adapter__job_note(struct adapter__job *j, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Files, for the adapters that keep state in them (adapters/file.c). */

/* Writes data[0..n) to path atomically: a temporary file in the same
 * folder, fchmod mode, fsync, rename over path, fsync the folder
 * (cairn_write_atomic, with its message in why[len]). On error path is
 * untouched and a negative value is returned. */
int adapter__write_atomic(const char *path, const char *data, size_t n,
                          unsigned mode, char *why, size_t len);

/* Reads at most max bytes of path into *out (malloc'd, NUL-terminated,
 * owned by the caller), its size in *n. Returns 0 or -errno. */
int adapter__read_file(const char *path, size_t max, char **out, size_t *n);

/* The SHA-256 of p[0..n) as 64 lower-case hex digits into out. Returns 0,
 * or -1 with out "" when OpenSSL fails. */
int adapter__sha256_hex(const char *p, size_t n, char out[65]);

#endif
