/* host_costs: what the kernel operations a deploy is made of cost on this
 * host, in CPU time of the calling process, for tests/bench/demo.sh. On a
 * virtual machine they can cost ten times what they cost on bare metal,
 * and they, not cairn's own code, set most of its share of a deploy.
 *
 *   host_costs    prints "FAULT_US SYSCALL_US SPAWN_US SWITCH_US"
 *
 * Each is the median of 5 rounds of getrusage(RUSAGE_SELF) deltas:
 *   FAULT_US    first write to a page of fresh anonymous memory (huge
 *               pages refused, the CPU time divided by the faults taken)
 *   SYSCALL_US  getppid(), the cheapest system call
 *   SPAWN_US    posix_spawn of /bin/true and waitpid for it (the parent's
 *               part only: the child's CPU is not in RUSAGE_SELF)
 *   SWITCH_US   one sleep and wake-up: a pipe ping-pong with a child,
 *               per round trip, minus its two system calls
 */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define ROUNDS 5

/* CPU time so far, and the minor faults taken when faults is not NULL */
static double cpu_us_faults(long *faults)
{
  struct rusage ru;

  if (faults != NULL)
    *faults = 0;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return 0;
  if (faults != NULL)
    *faults = ru.ru_minflt;
  return (double)ru.ru_utime.tv_sec * 1e6 + (double)ru.ru_utime.tv_usec +
         (double)ru.ru_stime.tv_sec * 1e6 + (double)ru.ru_stime.tv_usec;
}

static double cpu_us(void)
{
  return cpu_us_faults(NULL);
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double v[ROUNDS])
{
  qsort(v, ROUNDS, sizeof v[0], cmp_double);
  return v[ROUNDS / 2];
}

/* Rounds long enough for getrusage's microseconds (and the scheduler's
 * tick-based split of user and system time, summed here) to be exact
 * to a few per cent. */
static double fault_us(void)
{
  const size_t pages = 4096, page = (size_t)sysconf(_SC_PAGESIZE);
  double v[ROUNDS];

  for (int r = 0; r < ROUNDS; r++) {
    char *p = mmap(NULL, pages * page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    long f0, f1;
    double t;
    if (p == MAP_FAILED)
      return -1;
    /* with transparent huge pages, one fault could fill 512 pages */
    madvise(p, pages * page, MADV_NOHUGEPAGE);
    t = cpu_us_faults(&f0);
    for (size_t i = 0; i < pages; i++)
      ((volatile char *)p)[i * page] = 1;
    t = cpu_us_faults(&f1) - t;
    munmap(p, pages * page);
    if (f1 <= f0)
      return -1;
    v[r] = t / (double)(f1 - f0);
  }
  return median(v);
}

static double syscall_us(void)
{
  const int n = 200000;
  double v[ROUNDS];

  for (int r = 0; r < ROUNDS; r++) {
    double t = cpu_us();
    for (int i = 0; i < n; i++)
      syscall(SYS_getppid);
    v[r] = (cpu_us() - t) / n;
  }
  return median(v);
}

static double spawn_us(void)
{
  const int n = 100;
  char *argv[] = {"true", NULL};
  double v[ROUNDS];

  for (int r = 0; r < ROUNDS; r++) {
    double t = cpu_us();
    for (int i = 0; i < n; i++) {
      pid_t pid;
      if (posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ) != 0 ||
          waitpid(pid, NULL, 0) != pid)
        return -1;
    }
    v[r] = (cpu_us() - t) / n;
  }
  return median(v);
}

static double switch_us(double sys_us)
{
  const int n = 5000;
  double v[ROUNDS];

  for (int r = 0; r < ROUNDS; r++) {
    int to[2], from[2];
    char c = 0;
    pid_t pid;
    double t;

    if (pipe(to) != 0 || pipe(from) != 0)
      return -1;
    if ((pid = fork()) < 0)
      return -1;
    if (pid == 0) {
      for (int i = 0; i < n; i++)
        if (read(to[0], &c, 1) != 1 || write(from[1], &c, 1) != 1)
          _exit(1);
      _exit(0);
    }
    t = cpu_us();
    for (int i = 0; i < n; i++)
      if (write(to[1], &c, 1) != 1 || read(from[0], &c, 1) != 1)
        return -1;
    v[r] = (cpu_us() - t) / n - 2 * sys_us;
    waitpid(pid, NULL, 0);
    close(to[0]), close(to[1]), close(from[0]), close(from[1]);
  }
  return median(v);
}

int main(void)
{
  double f = fault_us(), s = syscall_us(), p = spawn_us(), w = switch_us(s);

  if (f < 0 || p < 0 || w < 0) {
    fprintf(stderr, "host_costs: a measurement failed\n");
    return 1;
  }
  printf("%.2f %.2f %.1f %.2f\n", f, s, p, w);
  return 0;
}
