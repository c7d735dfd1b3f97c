/* common/utf8.c: text from outside made fit for JSON, how many
 * characters it holds, and the last line of a command's output. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "common/utf8.h"

/* scrubs a copy of in (n bytes) and compares it with want */
static void expect_scrub(const char *in, size_t n, const char *want,
                         size_t replaced)
{
  char buf[64];

  assert_true(n < sizeof buf);
  memcpy(buf, in, n);
  buf[n] = '\0';
  assert_int_equal(cairn_utf8_scrub(buf, n), replaced);
  assert_memory_equal(buf, want, n);
}

static void test_scrub_keeps_valid_text(void **state)
{
  (void)state;
  /* ASCII, 2-, 3- and 4-byte characters (é, €, U+10FFFF, 😀) */
  expect_scrub("caf\xc3\xa9 \xe2\x82\xac \xf4\x8f\xbf\xbf \xf0\x9f\x98\x80",
               19, "caf\xc3\xa9 \xe2\x82\xac \xf4\x8f\xbf\xbf \xf0\x9f\x98\x80",
               0);
  expect_scrub("", 0, "", 0);
}

static void test_scrub_replaces_each_bad_byte(void **state)
{
  (void)state;
  expect_scrub("caf\xe9!", 5, "caf?!", 1);                /* Latin-1 */
  expect_scrub("a\0b", 3, "a?b", 1);                      /* NUL */
  expect_scrub("\x80\xbf", 2, "??", 2);                   /* stray */
  expect_scrub("\xc0\xaf", 2, "??", 2);                   /* overlong / */
  expect_scrub("\xe0\x80\xaf", 3, "???", 3);              /* overlong */
  expect_scrub("\xed\xa0\x80", 3, "???", 3);              /* surrogate */
  expect_scrub("\xf4\x90\x80\x80", 4, "????", 4);         /* > U+10FFFF */
  expect_scrub("\xf5\x80", 2, "??", 2);
  /* a character cut at the end: each of its bytes */
  expect_scrub("ok\xe2\x82", 4, "ok??", 2);
  expect_scrub("ok\xf0\x9f\x98", 5, "ok???", 3);
  /* a bad lead byte does not swallow the valid character after it */
  expect_scrub("\xe2\xc3\xa9", 3, "?\xc3\xa9", 1);
}

static void test_char_len(void **state)
{
  (void)state;
  assert_int_equal(cairn_utf8_char_len((const unsigned char *)"a", 1), 1);
  assert_int_equal(cairn_utf8_char_len((const unsigned char *)"\xc3\xa9", 2), 2);
  assert_int_equal(cairn_utf8_char_len((const unsigned char *)"\xc3\xa9", 1), 0);
  assert_int_equal(cairn_utf8_char_len((const unsigned char *)"\xe2\x82\xac", 3), 3);
  assert_int_equal(cairn_utf8_char_len((const unsigned char *)"\xf0\x9f\x98\x80", 4), 4);
  assert_int_equal(cairn_utf8_char_len((const unsigned char *)"", 1), 0);
}

static void test_cut(void **state)
{
  const char *s = "ab\xe2\x82\xac" "c"; /* a, b, €, c */

  (void)state;
  assert_int_equal(cairn_utf8_cut(s, 2), 2);  /* before € */
  assert_int_equal(cairn_utf8_cut(s, 3), 2);  /* inside €: back to its start */
  assert_int_equal(cairn_utf8_cut(s, 4), 2);
  assert_int_equal(cairn_utf8_cut(s, 5), 5);  /* after € */
}

static void test_chars(void **state)
{
  (void)state;
  assert_int_equal(cairn_utf8_chars(""), 0);
  assert_int_equal(cairn_utf8_chars("1.0.0"), 5);
  /* é, €, 😀: one each, whatever their bytes */
  assert_int_equal(cairn_utf8_chars("caf\xc3\xa9"), 4);
  assert_int_equal(cairn_utf8_chars("\xe2\x82\xac 5"), 3);
  assert_int_equal(cairn_utf8_chars("\xf0\x9f\x98\x80!"), 2);
  /* a byte that begins no character is one, and does not swallow the
   * valid character after it; a character cut at the end, a byte each */
  assert_int_equal(cairn_utf8_chars("caf\xe9!"), 5);
  assert_int_equal(cairn_utf8_chars("\xe2\xc3\xa9"), 2);
  assert_int_equal(cairn_utf8_chars("ok\xe2\x82"), 4);
}

static void expect_last(const char *s, const char *want)
{
  size_t n = 12345;
  const char *line = cairn_last_line(s, strlen(s), &n);

  assert_int_equal(n, strlen(want));
  assert_memory_equal(line, want, n);
  if (n == 0)
    assert_ptr_equal(line, s);
}

static void test_last_line(void **state)
{
  (void)state;
  expect_last("one\ntwo\n", "two");
  expect_last("one\ntwo", "two");
  expect_last("one\n  two  \r\n\n \t\n", "two");
  expect_last("only", "only");
  expect_last("", "");
  expect_last("\n \n\r\n", "");
  expect_last("a\n\tError: x y\r\n", "Error: x y");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_scrub_keeps_valid_text),
    cmocka_unit_test(test_scrub_replaces_each_bad_byte),
    cmocka_unit_test(test_char_len),
    cmocka_unit_test(test_cut),
    cmocka_unit_test(test_chars),
    cmocka_unit_test(test_last_line),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
