/* An LD_PRELOAD shim for the CLI tests: every clock_gettime(CLOCK_REALTIME)
 * reads one millisecond later than the one before, so two reads of the
 * wall clock in one command are never in the same millisecond. A test
 * that needs "a later read gives a later time" (t0022: a record's
 * finished_ms is not before its created_ms) gets it every time instead of
 * once in a while. Other clocks are left alone. */
#include <dlfcn.h> /* RTLD_NEXT: meson defines _GNU_SOURCE */
#include <string.h>
#include <time.h>

int clock_gettime(clockid_t clk, struct timespec *ts)
{
  static int (*real)(clockid_t, struct timespec *);
  static long step_ms;
  if (real == NULL) {
    /* POSIX's way from dlsym's object pointer to a function pointer. */
    void *sym = dlsym(RTLD_NEXT, "clock_gettime");
    memcpy(&real, &sym, sizeof real);
  }
  int rc = real(clk, ts);
  if (rc != 0 || clk != CLOCK_REALTIME)
    return rc;
  long ns = ts->tv_nsec + (++step_ms % 1000) * 1000000L;
  ts->tv_sec += step_ms / 1000 + ns / 1000000000L;
  ts->tv_nsec = ns % 1000000000L;
  return 0;
}
