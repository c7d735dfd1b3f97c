/* cpu_at_exit: the CPU meter of tests/bench/demo.sh. LD_PRELOADed into
 * one process, it appends "PID USER_US SYSTEM_US MINOR_FAULTS SWITCHES
 * IDLE_US POOL_US UNTIMED SYNC_US" for that process (all its threads, none of its
 * children; SWITCHES counts voluntary and involuntary context switches) to
 * the file named by CAIRN_BENCH_CPU_OUT as the process exits. Exact where
 * sampling /proc/PID/stat is not: that counts whole clock ticks and misses
 * what the process does after the last sample (closing the journal).
 *
 * IDLE_US is the wall time the event loop slept in epoll_wait (a call with
 * a timeout other than 0): waiting on children, sockets, timers or the
 * thread pool. POOL_US is the wall time of every uv_queue_work job
 * (cairn's own work on a worker thread: file writes and their fsyncs,
 * hashing migrations), summed, so jobs running at once count twice and
 * jobs running while the loop was busy count too: the script's
 * "wall - idle + pool" overstates cairn's own time rather than hide any.
 * UNTIMED counts jobs the meter could not time (its table was full).
 * SYNC_US is the wall time the main thread spent in fdatasync and fsync
 * (the journal's commits): a part of the time the loop does not sleep.
 *
 *   CAIRN_BENCH_CPU_OUT=FILE LD_PRELOAD=.../libcpu_at_exit.so cairn run ...
 */

#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

static char out_path[4096];
static atomic_llong idle_ns, pool_ns, untimed, sync_ns;

static long long now_ns(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* libuv's loop sleeps in one of these two (libuv 1.44 on Linux). A call
 * with timeout 0 only polls, and is the loop's own time. */
int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
  static int (*real)(int, struct epoll_event *, int, int);
  long long t0;
  int n;

  if (real == NULL)
    *(void **)&real = dlsym(RTLD_NEXT, "epoll_wait");
  if (timeout == 0)
    return real(epfd, ev, max, timeout);
  t0 = now_ns();
  n = real(epfd, ev, max, timeout);
  idle_ns += now_ns() - t0;
  return n;
}

int epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout,
                const sigset_t *mask)
{
  static int (*real)(int, struct epoll_event *, int, int, const sigset_t *);
  long long t0;
  int n;

  if (real == NULL)
    *(void **)&real = dlsym(RTLD_NEXT, "epoll_pwait");
  if (timeout == 0)
    return real(epfd, ev, max, timeout, mask);
  t0 = now_ns();
  n = real(epfd, ev, max, timeout, mask);
  idle_ns += now_ns() - t0;
  return n;
}

/* The main thread's syncs (the engine's loop runs there). *real caches
 * libc's function, as the epoll wrappers do: a lookup a call would add to
 * the CPU time the meter reports. */
static int timed_sync(int (**real)(int), const char *name, int fd)
{
  long long t0;
  int rc;

  if (*real == NULL)
    *(void **)real = dlsym(RTLD_NEXT, name);
  if (*real == NULL)
    abort(); /* no libc under it: a bug in the meter */
  if (gettid() != getpid())
    return (*real)(fd);
  t0 = now_ns();
  rc = (*real)(fd);
  sync_ns += now_ns() - t0;
  return rc;
}

int fdatasync(int fd)
{
  static int (*real)(int);

  return timed_sync(&real, "fdatasync", fd);
}

int fsync(int fd)
{
  static int (*real)(int);

  return timed_sync(&real, "fsync", fd);
}

/* Each job's own callback, found by its request while it is queued. A
 * few jobs are ever queued at once; past the table's size a job runs
 * untimed and is counted as such. */
#define JOBS 512
static struct {
  uv_work_t *req;
  uv_work_cb cb;
} jobs[JOBS];
static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;

static void timed_work(uv_work_t *req)
{
  uv_work_cb cb = NULL;
  long long t0;

  pthread_mutex_lock(&jobs_lock);
  for (int i = 0; i < JOBS; i++)
    if (jobs[i].req == req) {
      cb = jobs[i].cb;
      jobs[i].req = NULL;
      break;
    }
  pthread_mutex_unlock(&jobs_lock);
  if (cb == NULL)
    abort(); /* not a job this meter queued: a bug in the meter */
  t0 = now_ns();
  cb(req);
  pool_ns += now_ns() - t0;
}

int uv_queue_work(uv_loop_t *loop, uv_work_t *req, uv_work_cb work_cb,
                  uv_after_work_cb after_cb)
{
  static int (*real)(uv_loop_t *, uv_work_t *, uv_work_cb, uv_after_work_cb);
  int slot = -1;

  if (real == NULL)
    *(void **)&real = dlsym(RTLD_NEXT, "uv_queue_work");
  if (work_cb != NULL) {
    pthread_mutex_lock(&jobs_lock);
    for (int i = 0; i < JOBS && slot < 0; i++)
      if (jobs[i].req == NULL) {
        jobs[i].req = req;
        jobs[i].cb = work_cb;
        slot = i;
      }
    pthread_mutex_unlock(&jobs_lock);
  }
  if (slot < 0) {
    if (work_cb != NULL)
      untimed++;
    return real(loop, req, work_cb, after_cb);
  }
  return real(loop, req, timed_work, after_cb);
}

/* Only the process it was loaded into is measured: its children (the
 * services, PostgreSQL) must not load the meter or inherit the file. */
__attribute__((constructor)) static void meter_start(void)
{
  const char *p = getenv("CAIRN_BENCH_CPU_OUT");

  if (p != NULL && snprintf(out_path, sizeof out_path, "%s", p) <
                       (int)sizeof out_path)
    unsetenv("CAIRN_BENCH_CPU_OUT");
  else
    out_path[0] = '\0';
  unsetenv("LD_PRELOAD");
}

/* Runs in exit() after the program's atexit handlers and the destructors
 * of the libraries loaded after it, so nearly all of its work is in. */
__attribute__((destructor)) static void meter_report(void)
{
  struct rusage ru;
  char line[160];
  int fd, n;

  if (out_path[0] == '\0' || getrusage(RUSAGE_SELF, &ru) != 0)
    return;
  n = snprintf(line, sizeof line,
               "%ld %lld %lld %ld %ld %lld %lld %lld %lld\n",
               (long)getpid(),
               (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
               (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec,
               ru.ru_minflt, ru.ru_nvcsw + ru.ru_nivcsw,
               (long long)idle_ns / 1000, (long long)pool_ns / 1000,
               (long long)untimed, (long long)sync_ns / 1000);
  fd = open(out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0)
    return;
  if (n > 0 && write(fd, line, (size_t)n) != n)
    n = -1; /* the report is short; the script says so */
  close(fd);
}
