/* Starting a child process for an adapter (see adapters/spawn.h): the
 * vfork and execve exec and process.start share, and small helpers. */
#include "adapters/spawn.h"
#include "adapters/adapter.h"
#include "common/proc.h"
#include "common/utf8.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

extern char **environ;

/* strsignal() wording varies and sigabbrev_np() is recent glibc. */
const char *adapter__signal_name(int sig, char *buf, size_t n)
{
  static const struct {
    int sig;
    const char *name;
  } names[] = {
    { SIGHUP, "SIGHUP" },     { SIGINT, "SIGINT" },   { SIGQUIT, "SIGQUIT" },
    { SIGILL, "SIGILL" },     { SIGTRAP, "SIGTRAP" }, { SIGABRT, "SIGABRT" },
    { SIGBUS, "SIGBUS" },     { SIGFPE, "SIGFPE" },   { SIGKILL, "SIGKILL" },
    { SIGUSR1, "SIGUSR1" },   { SIGSEGV, "SIGSEGV" }, { SIGUSR2, "SIGUSR2" },
    { SIGPIPE, "SIGPIPE" },   { SIGALRM, "SIGALRM" }, { SIGTERM, "SIGTERM" },
    { SIGCHLD, "SIGCHLD" },   { SIGCONT, "SIGCONT" }, { SIGSTOP, "SIGSTOP" },
    { SIGTSTP, "SIGTSTP" },   { SIGTTIN, "SIGTTIN" }, { SIGTTOU, "SIGTTOU" },
    { SIGURG, "SIGURG" },     { SIGXCPU, "SIGXCPU" }, { SIGXFSZ, "SIGXFSZ" },
    { SIGVTALRM, "SIGVTALRM" }, { SIGPROF, "SIGPROF" },
    { SIGWINCH, "SIGWINCH" }, { SIGIO, "SIGIO" },     { SIGSYS, "SIGSYS" },
  };

  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (names[i].sig == sig)
      return names[i].name;
  snprintf(buf, n, "%d", sig);
  return buf;
}

/* Children must inherit no descriptor but 0-2: libuv's own are
 * close-on-exec, the journal's SQLite file and others may not be. */
void adapter__cloexec_fds(void)
{
  DIR *d;
  struct dirent *e;
  int dfd;

#if defined(CLOSE_RANGE_CLOEXEC) && !defined(CAIRN_EXEC_NO_CLOSE_RANGE)
  static int no_close_range; /* the kernel said ENOSYS or EINVAL once */
  if (!no_close_range) {
    if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
      return;
    no_close_range = 1;
  }
#endif
  if ((d = opendir("/proc/self/fd")) == NULL)
    return;
  dfd = dirfd(d);
  while ((e = readdir(d)) != NULL) {
    char *end;
    long fd = strtol(e->d_name, &end, 10);
    int fl;
    if (*end != '\0' || end == e->d_name || fd <= 2 || fd == dfd)
      continue;
    fl = fcntl((int)fd, F_GETFD);
    if (fl >= 0 && !(fl & FD_CLOEXEC))
      fcntl((int)fd, F_SETFD, fl | FD_CLOEXEC);
  }
  closedir(d);
}

int adapter__write_all(int fd, const char *p, size_t n)
{
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* The child's environment: ours, then env_extra, then the `env` input
 * (a later value of a name replaces an earlier one). One allocation. */
static int name_len(const char *kv)
{
  const char *eq = strchr(kv, '=');
  return eq ? (int)(eq - kv) : -1;
}

static int same_name(const char *a, const char *b)
{
  int la = name_len(a), lb = name_len(b);
  return la >= 0 && la == lb && memcmp(a, b, (size_t)la) == 0;
}

char **adapter__build_env(const char *const *extra, json_t *env)
{
  size_t ne = 0, nx = 0, nv = json_object_size(env), size, no = 0, k = 0;
  const char **over;
  char **envp;
  char *strs;
  const char *key;
  json_t *v;

  while (environ && environ[ne])
    ne++;
  while (extra && extra[nx])
    nx++;
  size = (ne + nx + nv + 1) * sizeof(char *) + (nx + nv) * sizeof(char *);
  json_object_foreach(env, key, v)
    size += strlen(key) + json_string_length(v) + 2;
  if ((envp = malloc(size)) == NULL)
    return NULL;
  over = (const char **)(envp + ne + nx + nv + 1);
  strs = (char *)(over + nx + nv);

  for (size_t i = 0; i < nx; i++)
    if (name_len(extra[i]) > 0)
      over[no++] = extra[i];
  json_object_foreach(env, key, v) {
    size_t kl = strlen(key), vl = json_string_length(v);
    memcpy(strs, key, kl);
    strs[kl] = '=';
    memcpy(strs + kl + 1, json_string_value(v), vl);
    strs[kl + 1 + vl] = '\0';
    over[no++] = strs;
    strs += kl + vl + 2;
  }
  for (size_t i = 0; i < ne; i++) {
    int replaced = 0;
    for (size_t j = 0; j < no && !replaced; j++)
      replaced = same_name(environ[i], over[j]);
    if (!replaced)
      envp[k++] = environ[i];
  }
  for (size_t i = 0; i < no; i++) {
    int later = 0;
    for (size_t j = i + 1; j < no && !later; j++)
      later = same_name(over[i], over[j]);
    if (!later)
      envp[k++] = (char *)over[i];
  }
  envp[k] = NULL;
  return envp;
}

/* Why the spawn failed, as a user reads it. */
void adapter__spawn_error(char *out, size_t n, int rc, const char *file,
                          const char *cwd, const char *const *redact)
{
  struct stat st;
  int e = 0;

  if (cwd != NULL) {
    if (stat(cwd, &st) < 0)
      e = errno;
    else if (!S_ISDIR(st.st_mode))
      e = ENOTDIR;
    else if (access(cwd, X_OK) < 0)
      e = errno;
  }
  char *shown = adapter_redact(strdup(e ? cwd : file), redact);
  if (e)
    snprintf(out, n, "cannot change to directory '%s': %s",
             shown ? shown : "?", uv_strerror(-e));
  else
    snprintf(out, n, "cannot run '%s': %s", shown ? shown : "?",
             uv_strerror(rc));
  free(shown);
}

/* ---- spawning ----------------------------------------------------------- */

/* What the child does between vfork and execve, prepared by the parent:
 * it may not allocate (it shares our memory, and another thread may hold
 * malloc's lock). */
struct spawn_req {
  char *const *cands;  /* the paths to try, NULL-terminated */
  char **sh;           /* "/bin/sh", a slot for the path, args[1..], NULL */
  char *const *args;
  char *const *envp;
  const char *cwd;     /* may be NULL */
  int out_w, err_w;    /* above 2 */
  const struct rlimit *nofile; /* the open-files limit to restore, or NULL */
};

/* The child: first the time it runs at (into *born: CLOCK_BOOTTIME, in
 * ns), then default signal dispositions and an empty mask, its own
 * session, stdin /dev/null, stdout and stderr the pipes, the open-files
 * limit cairn was started with, then execve of
 * each candidate as execvp does (a file the kernel cannot execute,
 * ENOEXEC, runs through /bin/sh). Only system calls: why it failed goes to
 * *err, then _exit. */
static void child_exec(const struct spawn_req *q, volatile int *err,
                       volatile int64_t *born) __attribute__((noreturn));
static void child_exec(const struct spawn_req *q, volatile int *err,
                       volatile int64_t *born)
{
  struct sigaction dfl;
  struct timespec now;
  sigset_t none;
  int fd, e = ENOENT, eacces = 0;

  /* the vDSO: no lock, no allocation, as a vfork child must */
  if (clock_gettime(CLOCK_BOOTTIME, &now) == 0)
    *born = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP)
      (void)sigaction(sig, &dfl, NULL); /* glibc's own two say EINVAL */
  if (setsid() < 0)
    goto fail;
  if ((fd = open("/dev/null", O_RDONLY)) < 0)
    goto fail;
  if (fd != 0 && (dup2(fd, 0) < 0 || close(fd) < 0))
    goto fail;
  if (dup2(q->out_w, 1) < 0 || dup2(q->err_w, 2) < 0)
    goto fail;
  if (q->cwd && chdir(q->cwd) < 0)
    goto fail;
  /* the limit cairn was started with, not the one it raised itself to */
  if (q->nofile && setrlimit(RLIMIT_NOFILE, q->nofile) < 0)
    goto fail;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  for (char *const *c = q->cands; *c; c++) {
    execve(*c, q->args, q->envp);
    e = errno;
    if (e == ENOEXEC) {
      q->sh[1] = *c;
      execve("/bin/sh", q->sh, q->envp);
      goto fail;
    }
    if (e == EACCES)
      eacces = 1;
    else if (e != ENOENT && e != ENOTDIR && e != ESTALE && e != ENODEV &&
             e != ETIMEDOUT)
      goto fail; /* errno is e: no other candidate is tried */
  }
  *err = eacces ? EACCES : e;
  _exit(127);
fail:
  *err = errno;
  _exit(127);
}

#ifdef CAIRN_TEST_HOOKS
static long spawn_proc_reads; /* spawns whose start time came from /proc */
#endif

/* vfork: the child runs on our stack until execve, with no page table of
 * its own, like glibc's posix_spawn, which also maps and unmaps a stack
 * for it each time (page table changes are, on a virtual machine, much
 * of what a spawn costs). Every signal stays blocked meanwhile, so no
 * handler of ours runs in the child. Returns 0, or the errno of the step
 * that failed (the child then already exited, and is reaped). */
static int vspawn(pid_t *pid, int64_t *start, const struct spawn_req *q)
{
  volatile int err = 0;
  volatile int64_t born = -1;
  sigset_t all, old;
  struct timespec before, after;
  pid_t p;

  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  /* The kernel stamps the child between this reading and the child's
   * first (proc.h): microseconds apart, where a reading after vfork
   * returns would also span the child's exec. */
  clock_gettime(CLOCK_BOOTTIME, &before);
  p = vfork();
  if (p == 0)
    child_exec(q, &err, &born);
  int e = errno;
  if (born >= 0) {
    after.tv_sec = (time_t)(born / 1000000000);
    after.tv_nsec = (long)(born % 1000000000);
  } else {
    clock_gettime(CLOCK_BOOTTIME, &after);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (p < 0)
    return e;
  if (err != 0) {
    while (waitpid(p, NULL, 0) < 0 && errno == EINTR)
      ;
    return err;
  }
  *pid = p;
  if (cairn_proc_start_between(&before, &after, start) != 0) {
#ifdef CAIRN_TEST_HOOKS
    spawn_proc_reads++;
#endif
    /* Unreaped, the pid is still this child's: /proc cannot show another. */
    if (cairn_proc_start_time((int)p, start) != 0)
      *start = 0;
  }
  return 0;
}

#ifdef CAIRN_TEST_HOOKS
long adapter__spawn_proc_reads(void)
{
  return spawn_proc_reads;
}
#endif

static const char *path_of(char *const *env)
{
  for (; env && *env; env++)
    if (strncmp(*env, "PATH=", 5) == 0)
      return *env + 5;
  return NULL;
}

/* execvp's candidates for file: itself when it holds a '/', else each
 * element of path (glibc's default when NULL; an empty element is the
 * current directory) joined with it. One allocation: free the array. */
static char **candidates(const char *file, const char *path)
{
  size_t flen = strlen(file), n = 2, size;
  char **c, *w;

  if (strchr(file, '/') != NULL)
    path = NULL, n = 1;
  else if (path == NULL)
    path = "/bin:/usr/bin";
  for (const char *p = path; p && *p; p++)
    n += *p == ':';
  size = (n + 1) * sizeof *c + (path ? strlen(path) : 0) + n * (flen + 2);
  if ((c = malloc(size)) == NULL)
    return NULL;
  w = (char *)(c + n + 1);
  if (path == NULL) {
    memcpy(w, file, flen + 1);
    c[0] = w;
    c[1] = NULL;
    return c;
  }
  n = 0;
  for (const char *p = path;; p++) {
    const char *end = strchr(p, ':');
    size_t dlen = end ? (size_t)(end - p) : strlen(p);

    c[n++] = w;
    if (dlen > 0) {
      memcpy(w, p, dlen);
      w[dlen] = '/';
      w += dlen + 1;
    }
    memcpy(w, file, flen + 1);
    w += flen + 1;
    if (end == NULL)
      break;
    p = end;
  }
  c[n] = NULL;
  return c;
}

/* A descriptor above 2, so that the child's dup2s and /dev/null cannot
 * clobber one another (we may run with 0-2 closed). */
static int above_stdio(int fd)
{
  int nfd;

  if (fd > 2)
    return fd;
  nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  close(fd);
  return nfd;
}

int adapter__pipe(int fds[2])
{
  int p[2];

  if (pipe2(p, O_CLOEXEC) < 0)
    return errno;
  p[0] = above_stdio(p[0]);
  p[1] = above_stdio(p[1]);
  if (p[0] < 0 || p[1] < 0) {
    int e = errno;
    if (p[0] >= 0)
      close(p[0]);
    if (p[1] >= 0)
      close(p[1]);
    return e;
  }
  fds[0] = p[0];
  fds[1] = p[1];
  return 0;
}

/* Runs the child: its own session, default signal dispositions and an
 * empty mask, stdin /dev/null, stdout and stderr the pipes' write ends.
 * argv[0] without a '/' is looked up in the PATH of the child's
 * environment, as libuv's execvp child did. */
int adapter__spawn(pid_t *pid, int64_t *start, char *const *args,
                   char **envp, const char *cwd, int out_w, int err_w)
{
  struct spawn_req q;
  size_t n = 0;
  int rc;

  if (args[0][0] == '\0')
    return ENOENT;
  while (args[n])
    n++;
  q.args = args;
  q.envp = envp ? envp : environ;
  q.cwd = cwd;
  q.out_w = out_w;
  q.err_w = err_w;
  q.nofile = cairn_nofile_found();
  q.cands = candidates(args[0], path_of(q.envp));
  q.sh = calloc(n + 2, sizeof *q.sh);
  if (q.cands == NULL || q.sh == NULL) {
    rc = ENOMEM;
    goto out;
  }
  q.sh[0] = (char *)"/bin/sh";
  for (size_t i = 1; i < n; i++)
    q.sh[i + 1] = args[i];
  rc = vspawn(pid, start, &q);
out:
  free((void *)q.cands);
  free(q.sh);
  return rc;
}

/* ---- the tail of output --------------------------------------------------- */

void adapter__tail_add(char *buf, size_t *len, const char *p, size_t n)
{
  if (n >= ADAPTER_TAIL_MAX) {
    memcpy(buf, p + n - ADAPTER_TAIL_MAX, ADAPTER_TAIL_MAX);
    *len = ADAPTER_TAIL_MAX;
    return;
  }
  if (*len + n > 2 * ADAPTER_TAIL_MAX) {
    size_t keep = ADAPTER_TAIL_MAX - n;
    memmove(buf, buf + *len - keep, keep);
    *len = keep;
  }
  memcpy(buf + *len, p, n);
  *len += n;
}

const char *adapter__tail_text(const char *buf, size_t len, char *out)
{
  size_t start = 0;

  if (len > ADAPTER_TAIL_MAX) {
    start = len - ADAPTER_TAIL_MAX;
    /* from a character's start: at most 3 continuation bytes */
    for (int k = 0; k < 3 && start < len &&
                    ((unsigned char)buf[start] & 0xC0) == 0x80; k++)
      start++;
  }
  memcpy(out, buf + start, len - start);
  out[len - start] = '\0';
  cairn_utf8_scrub(out, len - start);
  return out;
}

