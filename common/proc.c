/* Facts about processes from /proc, and stopping a process group without
 * ever signalling a reused pid.
 *
 * Why a reused pid cannot be hit: Linux keeps a pid number allocated while
 * any process still uses it as its process-group id. So while group pgid
 * has members, the number pgid belongs to that group; once it is empty,
 * the number may go to a new process. cairn_proc_stop_group therefore
 * signals -pgid only when its leader is provably the process the journal
 * recorded (same pid and start time), or when the leader is gone but the
 * group still has members; it stops as soon as the group is empty. */
#include "common/proc.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common/utf8.h"

#define POLL_MS 10
#define KILL_WAIT_MS 5000 /* after SIGKILL, how long the group may linger */

struct stat_fields {
  char state;       /* field 3 */
  int pgrp;         /* field 5 */
  int64_t start;    /* field 22 */
};

/* Reads /proc/PID/stat. Field 2 (comm) is in parentheses and may itself
 * hold spaces and parentheses, so fields are counted after the last ')'.
 * Returns 0, -ESRCH when there is no such process, or -errno. */
static int read_stat(int pid, struct stat_fields *out)
{
  char path[64], buf[1024];
  ssize_t n;
  size_t len = 0;
  int fd, field;
  char *p, *end;

  if (pid <= 0)
    return -ESRCH;
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? -ESRCH : -errno;
  while (len < sizeof buf - 1 &&
         (n = read(fd, buf + len, sizeof buf - 1 - len)) != 0) {
    if (n < 0) {
      if (errno == EINTR)
        continue;
      n = -errno;
      close(fd);
      return n == -ESRCH ? -ESRCH : (int)n; /* it exited while we read */
    }
    len += (size_t)n;
  }
  close(fd);
  buf[len] = '\0';

  p = strrchr(buf, ')');
  if (p == NULL)
    return -EINVAL;
  p++;
  /* p is at " S ppid pgrp ...": field 3 is the first after ')'. */
  for (field = 3; field <= 22; field++) {
    while (*p == ' ')
      p++;
    if (*p == '\0')
      return -EINVAL;
    if (field == 3) {
      out->state = *p;
    } else if (field == 5) {
      out->pgrp = (int)strtol(p, &end, 10);
      if (end == p)
        return -EINVAL;
    } else if (field == 22) {
      errno = 0;
      out->start = (int64_t)strtoull(p, &end, 10);
      if (end == p || errno != 0)
        return -EINVAL;
      return 0;
    }
    while (*p != ' ' && *p != '\0')
      p++;
  }
  return -EINVAL;
}

int cairn_proc_start_time(int pid, int64_t *ticks)
{
  struct stat_fields f;
  int rc = read_stat(pid, &f);

  if (rc == 0)
    *ticks = f.start;
  return rc;
}

int cairn_proc_start_between(const struct timespec *before,
                             const struct timespec *after, int64_t *ticks)
{
  long hz = sysconf(_SC_CLK_TCK); /* USER_HZ, from the auxiliary vector */
  int64_t a, b, per_tick;

  /* the kernel divides by NSEC_PER_SEC / USER_HZ only when that is whole */
  if (hz <= 0 || 1000000000L % hz != 0)
    return -1;
  per_tick = 1000000000L / hz;
  a = ((int64_t)before->tv_sec * 1000000000L + before->tv_nsec) / per_tick;
  b = ((int64_t)after->tv_sec * 1000000000L + after->tv_nsec) / per_tick;
  if (a != b)
    return -1;
  *ticks = a;
  return 0;
}

int cairn_proc_alive(int pid, int64_t start_ticks)
{
  struct stat_fields f;

  if (read_stat(pid, &f) != 0)
    return 0;
  if (f.state == 'Z' || f.state == 'X')
    return 0; /* exited, not yet reaped */
  return start_ticks == 0 || f.start == start_ticks;
}

static char boot_id[40];

static void boot_id_read(void)
{
  FILE *fp = fopen("/proc/sys/kernel/random/boot_id", "re");
  size_t n;

  if (fp == NULL)
    return;
  if (fgets(boot_id, sizeof boot_id, fp) == NULL)
    boot_id[0] = '\0';
  fclose(fp);
  n = strlen(boot_id);
  while (n > 0 && isspace((unsigned char)boot_id[n - 1]))
    boot_id[--n] = '\0';
}

void cairn_proc_boot_id(char out[40])
{
  static pthread_once_t once = PTHREAD_ONCE_INIT;

  pthread_once(&once, boot_id_read); /* it cannot change while we run */
  memcpy(out, boot_id, sizeof boot_id);
}

int cairn_proc_group_alive(int pgid)
{
  DIR *d;
  struct dirent *de;
  int alive = 0;

  if (pgid <= 0)
    return 0;
  if (kill(-pgid, 0) != 0 && errno == ESRCH)
    return 0;
  /* kill() also reaches zombies: look for a member that still runs. */
  d = opendir("/proc");
  if (d == NULL)
    return 1;
  while (!alive && (de = readdir(d)) != NULL) {
    struct stat_fields f;
    char *end;
    long pid = strtol(de->d_name, &end, 10);

    if (*end != '\0' || pid <= 0)
      continue;
    if (read_stat((int)pid, &f) == 0 && f.pgrp == pgid && f.state != 'Z' &&
        f.state != 'X')
      alive = 1;
  }
  closedir(d);
  return alive;
}

static int64_t mono_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until group pgid is empty or ms have passed: 1 when empty. */
static int wait_group_gone(int pgid, int64_t ms)
{
  int64_t until = mono_ms() + ms;
  struct timespec nap = {0, POLL_MS * 1000000L};

  for (;;) {
    if (!cairn_proc_group_alive(pgid))
      return 1;
    if (mono_ms() >= until)
      return 0;
    nanosleep(&nap, NULL);
  }
}

int cairn_proc_stop_group(int pgid, int pid, int64_t start_ticks,
                          int64_t grace_ms)
{
  struct stat_fields f;
  int rc;

  /* Never kill(0) or kill(-1), nor our own group. */
  if (pgid <= 1 || pgid == (int)getpgrp())
    return -EINVAL;
  rc = read_stat(pid, &f);
  if (rc == 0 && f.state != 'Z' && f.state != 'X') {
    /* The leader's pid exists: it must be the process we started. */
    if (start_ticks == 0)
      return -EINVAL; /* cannot prove it is */
    if (f.start != start_ticks)
      return 0; /* a reused pid: our process and its group are gone */
  } else if (rc != 0 && rc != -ESRCH) {
    return rc;
  }
  if (!cairn_proc_group_alive(pgid))
    return 0;

  if (kill(-pgid, SIGTERM) != 0)
    return errno == ESRCH ? 0 : -errno;
  if (wait_group_gone(pgid, grace_ms > 0 ? grace_ms : 0))
    return 0;
  if (kill(-pgid, SIGKILL) != 0)
    return errno == ESRCH ? 0 : -errno;
  return wait_group_gone(pgid, KILL_WAIT_MS) ? 0 : -ETIMEDOUT;
}

void cairn_proc_actor(char *out, unsigned long n)
{
  char host[256] = "";
  char user[256] = "";
  struct passwd pw, *res = NULL;
  char buf[1024];
  const char *env;

  if (out == NULL || n == 0)
    return;
  if (getpwuid_r(geteuid(), &pw, buf, sizeof buf, &res) == 0 && res != NULL)
    snprintf(user, sizeof user, "%s", res->pw_name);
  else if ((env = getenv("USER")) != NULL && *env != '\0')
    snprintf(user, sizeof user, "%s", env);
  else
    snprintf(user, sizeof user, "%u", (unsigned)geteuid());
  if (gethostname(host, sizeof host) != 0 || host[0] == '\0')
    snprintf(host, sizeof host, "localhost");
  host[sizeof host - 1] = '\0';
  snprintf(out, n, "%s@%s", user, host);
}

void cairn_actor(const char *given, char *out, size_t n)
{
  const char *a = given && *given ? given : getenv("CAIRN_ACTOR");
  size_t len;

  if (out == NULL || n == 0)
    return;
  if (a == NULL || *a == '\0') {
    cairn_proc_actor(out, n);
    a = out;
  }
  len = strlen(a);
  if (len >= n)
    len = cairn_utf8_cut(a, n - 1);
  memmove(out, a, len);
  out[len] = '\0';
  cairn_utf8_scrub(out, len);
}

/* The limit found, once raised; read by spawned children before exec. */
static struct rlimit nofile_found;
static int nofile_raised;

static long long nofile_value(rlim_t v)
{
  return v == RLIM_INFINITY || v > (rlim_t)LLONG_MAX ? LLONG_MAX
                                                     : (long long)v;
}

long long cairn_nofile_raise(void)
{
  struct rlimit now, want;

  if (getrlimit(RLIMIT_NOFILE, &now) != 0)
    return -1;
  if (nofile_raised)
    return nofile_value(now.rlim_cur);
  want = now;
  want.rlim_cur = now.rlim_max;
  if (want.rlim_cur == RLIM_INFINITY || want.rlim_cur > 1048576)
    want.rlim_cur = 1048576; /* the kernel's default nr_open */
  if (want.rlim_cur <= now.rlim_cur || setrlimit(RLIMIT_NOFILE, &want) != 0)
    return nofile_value(now.rlim_cur);
  nofile_found = now;
  nofile_raised = 1;
  return nofile_value(want.rlim_cur);
}

const struct rlimit *cairn_nofile_found(void)
{
  return nofile_raised ? &nofile_found : NULL;
}
