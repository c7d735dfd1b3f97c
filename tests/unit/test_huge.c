/* Unit tests for common/huge.c: large allocations on transparent huge
 * pages, and the freed blocks kept for the next allocation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/huge.h"

/* Without huge pages on offer, nothing is given (callers use malloc). */
static void test_unavailable(void **state)
{
  (void)state;
  if (cairn_huge_available())
    skip();
  assert_null(cairn_huge_alloc(CAIRN_HUGE, 1));
  cairn_huge_free(NULL, CAIRN_HUGE); /* nothing to do */
}

static void test_blocks(void **state)
{
  unsigned char *a, *b, *c;

  (void)state;
  if (!cairn_huge_available())
    skip();
  /* on a huge page's boundary, zeroed when new */
  a = cairn_huge_alloc(100, 1);
  assert_non_null(a);
  assert_int_equal((uintptr_t)a % CAIRN_HUGE, 0);
  assert_int_equal(a[0], 0);
  assert_int_equal(a[CAIRN_HUGE - 1], 0);
  memset(a, 0xab, CAIRN_HUGE);

  /* a freed block is the next one given: as left, or zeroed if asked */
  cairn_huge_free(a, 100);
  b = cairn_huge_alloc(CAIRN_HUGE, 0);
  assert_ptr_equal(b, a);
  assert_int_equal(b[CAIRN_HUGE - 1], 0xab);
  cairn_huge_free(b, CAIRN_HUGE);
  b = cairn_huge_alloc(CAIRN_HUGE - 1, 1);
  assert_ptr_equal(b, a);
  assert_int_equal(b[0], 0);
  assert_int_equal(b[CAIRN_HUGE - 1], 0);

  /* more than one block: its own mapping, all of it usable */
  c = cairn_huge_alloc(CAIRN_HUGE + 1, 1);
  assert_non_null(c);
  assert_int_equal((uintptr_t)c % CAIRN_HUGE, 0);
  assert_true(c != b);
  c[2 * CAIRN_HUGE - 1] = 1;
  cairn_huge_free(c, CAIRN_HUGE + 1);
  cairn_huge_free(b, CAIRN_HUGE);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_unavailable),
    cmocka_unit_test(test_blocks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
