/* common/duration.c: parsing what workflows write, formatting for people. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "common/duration.h"

static void expect_ms(const char *s, int64_t want)
{
  struct cairn_error err = {0};
  int64_t ms = -42;
  int rc = cairn_duration_parse(s, &ms, &err);

  if (rc != 0)
    print_error("'%s': %s\n", s, err.msg);
  assert_int_equal(rc, 0);
  assert_int_equal(ms, want);
}

static void expect_bad(const char *s, const char *want)
{
  struct cairn_error err = {0};
  int64_t ms = -42;

  assert_int_equal(cairn_duration_parse(s, &ms, &err), CAIRN_E_INVAL);
  assert_int_equal(err.code, CAIRN_E_INVAL);
  assert_int_equal(ms, -42); /* untouched */
  assert_string_equal(err.msg, want);
}

static void test_valid(void **state)
{
  (void)state;
  expect_ms("250ms", 250);
  expect_ms("5s", 5000);
  expect_ms("1m30s", 90000);
  expect_ms("2h", 7200000);
  expect_ms("1d", 86400000);
  expect_ms("1d2h3m4s5ms", 86400000 + 7200000 + 180000 + 4000 + 5);
  expect_ms("1.5s", 1500);
  expect_ms("0.25m", 15000);
  expect_ms("1.0005s", 1001); /* rounded to the nearest millisecond */
  expect_ms("1.0004s", 1000);
  expect_ms("0.1234567891234s", 123);
  expect_ms("30", 30000); /* a bare integer is seconds */
  expect_ms("0", 0);
  expect_ms("0s", 0);
  expect_ms("007s", 7000);
  expect_ms("90m", 5400000); /* a part may exceed the next unit */
  expect_ms("9223372036854775807ms", INT64_MAX);
  expect_ms("106751991167d", INT64_C(106751991167) * 86400000);
}

static void test_invalid(void **state)
{
  struct cairn_error err = {0};
  int64_t ms;
  (void)state;

  expect_bad("", "empty duration");
  assert_int_equal(cairn_duration_parse(NULL, &ms, &err), CAIRN_E_INVAL);
  assert_string_equal(err.msg, "empty duration");
  expect_bad("-5s", "negative duration '-5s'");
  expect_bad("-1", "negative duration '-1'");
  expect_bad("5x", "unknown unit 'x' in '5x'");
  expect_bad("5S", "unknown unit 'S' in '5S'");
  expect_bad("5sec", "unknown unit 'sec' in '5sec'");
  expect_bad("1.5", "missing unit in '1.5'");
  expect_bad("1m30", "missing unit after '30' in '1m30'");
  expect_bad("30s1m", "units out of order in '30s1m'");
  expect_bad("1s500ms1m", "units out of order in '1s500ms1m'");
  expect_bad("5s5s", "unit 's' repeated in '5s5s'");
  expect_bad("1.s", "invalid number '1.' in '1.s'");
  expect_bad(".5s", "invalid duration '.5s': it must start with a digit");
  expect_bad("abc", "invalid duration 'abc': it must start with a digit");
  expect_bad("+5s", "invalid duration '+5s': it must start with a digit");
  expect_bad("5s 3m", "unexpected ' ' in '5s 3m'");
  expect_bad("5 s", "unexpected ' ' in '5 s'");
  expect_bad("9223372036854775808ms",
             "duration '9223372036854775808ms' is too large");
  expect_bad("106751991168d", "duration '106751991168d' is too large");
  expect_bad("9223372036854776", "duration '9223372036854776' is too large");
  expect_bad("99999999999999999999999s",
             "duration '99999999999999999999999s' is too large");
  expect_bad("106751991167d1d", "unit 'd' repeated in '106751991167d1d'");
  expect_bad("106751991167d23h59m59s999ms",
             "duration '106751991167d23h59m59s999ms' is too large");
}

static void expect_fmt(int64_t ms, const char *want)
{
  char buf[32];

  memset(buf, 'x', sizeof buf);
  assert_ptr_equal(cairn_duration_format(ms, buf, sizeof buf), buf);
  assert_string_equal(buf, want);
}

static void test_format(void **state)
{
  char small[4];
  (void)state;

  expect_fmt(0, "0ms");
  expect_fmt(850, "850ms");
  expect_fmt(999, "999ms");
  expect_fmt(1000, "1.0s");
  expect_fmt(12345, "12.3s");
  expect_fmt(59999, "59.9s"); /* cut, never rounded up to "60.0s" */
  expect_fmt(60000, "1m00s");
  expect_fmt(245000, "4m05s");
  expect_fmt(3599999, "59m59s");
  expect_fmt(3600000, "1h00m");
  expect_fmt(3720000, "1h02m");
  expect_fmt(86399999, "23h59m");
  expect_fmt(86400000, "1d00h");
  expect_fmt(90000000, "1d01h");
  expect_fmt(-850, "-850ms");
  expect_fmt(-245000, "-4m05s");
  expect_fmt(INT64_MIN, "-106751991167d07h");
  expect_fmt(INT64_MAX, "106751991167d07h");

  /* truncated to n bytes, NUL included */
  assert_ptr_equal(cairn_duration_format(245000, small, sizeof small), small);
  assert_string_equal(small, "4m0");
  assert_null(cairn_duration_format(1, NULL, 0));
}

static void expect_exact(int64_t ms, const char *want)
{
  struct cairn_error err = {0};
  char buf[48];
  int64_t back = -1;

  memset(buf, 'x', sizeof buf);
  assert_ptr_equal(cairn_duration_exact(ms, buf, sizeof buf), buf);
  assert_string_equal(buf, want);
  /* what it writes, the parser reads back to the same value */
  assert_int_equal(cairn_duration_parse(buf, &back, &err), 0);
  assert_int_equal(back, ms > 0 ? ms : 0);
}

static void test_exact(void **state)
{
  char small[4];
  (void)state;

  expect_exact(0, "0s");
  expect_exact(-5, "0s");
  expect_exact(1, "1ms");
  expect_exact(250, "250ms");
  expect_exact(1000, "1s");
  expect_exact(1500, "1.5s");
  expect_exact(1250, "1.25s");
  expect_exact(1001, "1.001s");
  expect_exact(60000, "1m");
  expect_exact(60500, "1m0.5s");
  expect_exact(90000, "1m30s");
  expect_exact(3600000, "1h");
  expect_exact(3630000, "1h30s");
  expect_exact(86400000, "1d");
  expect_exact(93784005, "1d2h3m4.005s");
  expect_exact(INT64_MAX, "106751991167d7h12m55.807s");

  assert_ptr_equal(cairn_duration_exact(90000, small, sizeof small), small);
  assert_string_equal(small, "1m3");
  assert_null(cairn_duration_exact(1, NULL, 0));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_valid),
    cmocka_unit_test(test_invalid),
    cmocka_unit_test(test_format),
    cmocka_unit_test(test_exact),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
