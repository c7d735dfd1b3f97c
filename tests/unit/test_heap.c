/* Unit tests for common/heap.c: after cairn_heap_prefault, the heap's
 * first allocations touch resident pages, counted by the kernel's minor
 * page faults (getrusage), with the same allocations in a child without
 * it as the control. */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
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

#define BLOCK (16 << 10) /* below any mmap threshold */
#define MIB ((size_t)1 << 20)

/* Minor faults taken while allocating and writing total bytes in small
 * blocks; the blocks are freed after. -1 when out of memory. */
static long faults_of_allocating(size_t total)
{
  size_t n = total / BLOCK;
  char **b = calloc(n, sizeof *b);
  struct rusage before, after;
  long faults = -1;

  if (b == NULL)
    return -1;
  getrusage(RUSAGE_SELF, &before);
  for (size_t i = 0; i < n; i++) {
    if ((b[i] = malloc(BLOCK)) == NULL)
      goto out;
    memset(b[i], (int)(i & 0x7f) + 1, BLOCK);
  }
  getrusage(RUSAGE_SELF, &after);
  faults = after.ru_minflt - before.ru_minflt;
out:
  for (size_t i = 0; i < n; i++)
    free(b[i]);
  free(b);
  return faults;
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
  /* The control: writing 1 MiB of new allocations is counted as page
   * faults here, at least one a page (fresh heap or, in this forked
   * child, pages shared with the parent), so the n < 16 below is not
   * true merely because nothing is counted. */
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    _exit(faults_of_allocating(MIB) >= (long)(MIB / 4096 / 2) ? 0 : 1);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);

  rc = cairn_heap_prefault((size_t)2 << 20);
  if (rc == -ENOSYS)
    skip(); /* not glibc's malloc (a sanitizer's) */
  if (rc == -EINVAL && !kernel_at_least(5, 14))
    skip(); /* no MADV_POPULATE_WRITE */
  assert_int_equal(rc, 0);
  n = faults_of_allocating(MIB);
  assert_true(n >= 0);
  assert_true(n < 16);
  /* freed, the pages stay: a second round does not fault either */
  n = faults_of_allocating(MIB);
  assert_true(n >= 0 && n < 16);
}

/* What a child of test_reserve exits with: 0 passed, 77 cannot run here,
 * else the number of the check that failed. */
enum { RESERVE_SKIP = 77 };

static int reserve_child(int with_reserve)
{
  struct mallinfo2 mi;
  size_t arena;
  long n;
  int rc;

  if (cairn_heap_reserve(MIB) != -ENOSYS)
    return 1; /* no prefault: nothing done */
  rc = cairn_heap_prefault(2 * MIB);
  if (rc == -ENOSYS || (rc == -EINVAL && !kernel_at_least(5, 14)))
    return RESERVE_SKIP;
  if (rc != 0)
    return 2;
  /* enough free already: the heap stays as it is */
  arena = mallinfo2().arena;
  if (cairn_heap_reserve(MIB) != 0 || mallinfo2().arena != arena)
    return 3;
  if (with_reserve && cairn_heap_reserve(8 * MIB) != 0)
    return 4;
  mi = mallinfo2();
  if (with_reserve && mi.fordblks < 8 * MIB)
    return 5;
  /* 6 MiB in small blocks: beyond the first 2 MiB, page by page unless
   * reserved */
  n = faults_of_allocating(6 * MIB);
  if (with_reserve ? n < 0 || n >= 64 : n < (long)(4 * MIB / 4096 / 2))
    return 6;
  /* freed, the reserved pages stay in the heap */
  if (with_reserve && (n = faults_of_allocating(6 * MIB)) >= 64)
    return 7;
  /* at most CAIRN_HEAP_RESERVE_MAX at once */
  arena = mallinfo2().arena;
  if (with_reserve && (cairn_heap_reserve(SIZE_MAX) != 0 ||
                       mallinfo2().arena > arena + CAIRN_HEAP_RESERVE_MAX))
    return 8;
  return 0;
}

static void test_reserve(void **state)
{
  int status[2];

  (void)state;
  for (int with = 0; with <= 1; with++) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
      _exit(reserve_child(with));
    assert_int_equal(waitpid(pid, &status[with], 0), pid);
    assert_true(WIFEXITED(status[with]));
    if (WEXITSTATUS(status[with]) == RESERVE_SKIP)
      skip(); /* not glibc's malloc, or Linux before 5.14 */
    if (WEXITSTATUS(status[with]) != 0)
      fail_msg("%s reserve: check %d failed", with ? "with" : "without",
               WEXITSTATUS(status[with]));
  }
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
    /* first: its children must come from a process that never
     * pre-faulted, which test_prefault does */
    cmocka_unit_test(test_reserve),
    cmocka_unit_test(test_prefault),
    cmocka_unit_test(test_bad_size),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
