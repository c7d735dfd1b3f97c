/* UTF-8 checks for text that goes into JSON: jansson refuses a string that
 * is not valid UTF-8, and a field it refuses would be left out silently.
 * Also the length in characters the CLI's tables align columns by. */
#include "common/utf8.h"

#include <string.h>

size_t cairn_utf8_char_len(const unsigned char *s, size_t len)
{
  unsigned char c = s[0], lo = 0x80, hi = 0xBF;
  size_t need;

  if (c >= 0x01 && c <= 0x7F)
    return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 2;
    if (c == 0xE0)
      lo = 0xA0; /* overlong */
    else if (c == 0xED)
      hi = 0x9F; /* a surrogate */
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3;
    if (c == 0xF0)
      lo = 0x90; /* overlong */
    else if (c == 0xF4)
      hi = 0x8F; /* past U+10FFFF */
  } else {
    return 0;
  }
  if (need >= len || s[1] < lo || s[1] > hi)
    return 0;
  for (size_t k = 2; k <= need; k++)
    if ((s[k] & 0xC0) != 0x80)
      return 0;
  return need + 1;
}

size_t cairn_utf8_scrub(char *s, size_t len)
{
  unsigned char *p = (unsigned char *)s;
  size_t replaced = 0;

  for (size_t i = 0; i < len;) {
    size_t n = cairn_utf8_char_len(p + i, len - i);
    if (n == 0) {
      p[i++] = '?';
      replaced++;
    } else {
      i += n;
    }
  }
  return replaced;
}

size_t cairn_utf8_cut(const char *s, size_t n)
{
  /* at most 3 continuation bytes follow a character's first */
  for (int k = 0; k < 3 && n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80; k++)
    n--;
  return n;
}

int cairn_utf8_valid(const char *s)
{
  const unsigned char *p = (const unsigned char *)s;
  size_t len = strlen(s);

  for (size_t i = 0; i < len;) {
    size_t c = cairn_utf8_char_len(p + i, len - i);
    if (c == 0)
      return 0;
    i += c;
  }
  return 1;
}

size_t cairn_utf8_chars(const char *s)
{
  const unsigned char *p = (const unsigned char *)s;
  size_t len = strlen(s), n = 0;

  for (size_t i = 0; i < len; n++) {
    size_t c = cairn_utf8_char_len(p + i, len - i);
    i += c ? c : 1;
  }
  return n;
}

static int blank(char c)
{
  return c == ' ' || c == '\t' || c == '\r';
}

const char *cairn_last_line(const char *s, size_t len, size_t *n)
{
  const char *end = s + len, *line;

  while (end > s && (blank(end[-1]) || end[-1] == '\n'))
    end--;
  line = end;
  while (line > s && line[-1] != '\n')
    line--;
  while (line < end && blank(*line))
    line++;
  *n = (size_t)(end - line);
  return *n ? line : s;
}
