/* Unit tests for common/heap.c: after cairn_heap_prefault, the heap's
 * first allocations touch resident pages, counted by the kernel's minor
 * page faults (getrusage), with the same allocations in a child without
 * it as the control. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/heap.h"

#define BLOCKS 64
#define BLOCK (16 << 10) /* 1 MiB in all, below the mmap threshold */

/* Minor faults taken while allocating and writing 1 MiB in small blocks;
 * the blocks are freed after. */
static long faults_of_allocating(void)
{
  static char *b[BLOCKS];
  struct rusage before, after;

  getrusage(RUSAGE_SELF, &before);
  for (int i = 0; i < BLOCKS; i++) {
    b[i] = malloc(BLOCK);
    if (b[i] == NULL)
      return -1;
    memset(b[i], i + 1, BLOCK);
  }
  getrusage(RUSAGE_SELF, &after);
  for (int i = 0; i < BLOCKS; i++)
    free(b[i]);
  return after.ru_minflt - before.ru_minflt;
}

/* Whether the running kernel is at least major.minor: only then is an
 * EINVAL from madvise a failure rather than a missing feature. */
static int kernel_at_least(int major, int minor)
{
  struct utsname u;
  int ma = 0, mi = 0;

  if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &ma, &mi) != 2)
    return 0;
  return ma > major || (ma == major && mi >= minor);
}

static void test_prefault(void **state)
{
  int status, rc;
  long n;
  pid_t pid;

  (void)state;
  /* The control: a fresh heap faults once a page (256 of them here). */
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    _exit(faults_of_allocating() >= BLOCKS * BLOCK / 4096 / 2 ? 0 : 1);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);

  rc = cairn_heap_prefault((size_t)2 << 20);
  if (rc == -ENOSYS)
    skip(); /* not glibc's malloc (a sanitizer's) */
  if (rc == -EINVAL && !kernel_at_least(5, 14))
    skip(); /* no MADV_POPULATE_WRITE */
  assert_int_equal(rc, 0);
  n = faults_of_allocating();
  assert_true(n >= 0);
  assert_true(n < 16);
  /* freed, the pages stay: a second round does not fault either */
  n = faults_of_allocating();
  assert_true(n >= 0 && n < 16);
}

static void test_bad_size(void **state)
{
  (void)state;
  assert_int_equal(cairn_heap_prefault(0), -EINVAL);
  assert_int_equal(cairn_heap_prefault(SIZE_MAX), -EINVAL);
  assert_int_equal(cairn_heap_prefault((size_t)INT_MAX / 4 + 1), -EINVAL);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_prefault),
    cmocka_unit_test(test_bad_size),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
