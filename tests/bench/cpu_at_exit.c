/* cpu_at_exit: the CPU meter of tests/bench/demo.sh. LD_PRELOADed into
 * one process, it appends "PID USER_US SYSTEM_US MINOR_FAULTS SWITCHES"
 * for that process (all its threads, none of its children; SWITCHES counts
 * voluntary and involuntary context switches) to the file named by
 * CAIRN_BENCH_CPU_OUT as the process exits. Exact where sampling
 * /proc/PID/stat is not: that counts whole clock ticks and misses what
 * the process does after the last sample (closing the journal).
 *
 *   CAIRN_BENCH_CPU_OUT=FILE LD_PRELOAD=.../libcpu_at_exit.so cairn run ...
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

static char out_path[4096];

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
  n = snprintf(line, sizeof line, "%ld %lld %lld %ld %ld\n", (long)getpid(),
               (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
               (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec,
               ru.ru_minflt, ru.ru_nvcsw + ru.ru_nivcsw);
  fd = open(out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0)
    return;
  if (n > 0 && write(fd, line, (size_t)n) != n)
    n = -1; /* the report is short; the script says so */
  close(fd);
}
