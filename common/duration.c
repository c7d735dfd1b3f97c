/* Durations as workflows write them ("250ms", "1m30s", "1.5s", "30") and
 * as people read them ("850ms", "12.3s", "4m05s", "1h02m").
 *
 * A duration is one or more parts NUMBER UNIT, the units in decreasing
 * order (d, h, m, s, ms), each at most once; NUMBER is digits with an
 * optional fraction. A bare integer means seconds. The value is computed
 * in integer milliseconds (a fraction finer than a millisecond is rounded
 * to the nearest one); overflow of int64_t is an error, never a wrap. */
#include "common/duration.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const struct {
  const char *name;
  int64_t ms;
} units[] = {
  {"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1},
};
#define NUNITS (sizeof units / sizeof units[0])

static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_alpha(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* acc + v, or -1 on overflow (both >= 0). */
static int64_t add_ms(int64_t acc, int64_t v)
{
  return v > INT64_MAX - acc ? -1 : acc + v;
}

int cairn_duration_parse(const char *s, int64_t *out_ms,
                         struct cairn_error *err)
{
  const char *p = s;
  int64_t total = 0;
  int last = -1;

  if (s == NULL || *s == '\0')
    return cairn_error_set(err, CAIRN_E_INVAL, "empty duration");
  if (*s == '-')
    return cairn_error_set(err, CAIRN_E_INVAL, "negative duration '%s'", s);

  if (strspn(s, "0123456789") == strlen(s)) { /* whole seconds */
    for (; *p; p++) {
      int64_t d = *p - '0';
      if (total > (INT64_MAX / 1000 - d) / 10)
        return cairn_error_set(err, CAIRN_E_INVAL,
                               "duration '%s' is too large", s);
      total = total * 10 + d;
    }
    *out_ms = total * 1000;
    return 0;
  }

  while (*p) {
    const char *num = p, *unit;
    int64_t whole = 0, frac = 0, scale = 1, part;
    size_t ulen, u;

    if (!is_digit(*p)) {
      if (p == s)
        return cairn_error_set(err, CAIRN_E_INVAL, "invalid duration '%s': "
                               "it must start with a digit", s);
      return cairn_error_set(err, CAIRN_E_INVAL, "unexpected '%c' in '%s'",
                             *p, s);
    }
    for (; is_digit(*p); p++) {
      if (whole > (INT64_MAX - (*p - '0')) / 10)
        return cairn_error_set(err, CAIRN_E_INVAL,
                               "duration '%s' is too large", s);
      whole = whole * 10 + (*p - '0');
    }
    if (*p == '.') {
      p++;
      if (!is_digit(*p))
        return cairn_error_set(err, CAIRN_E_INVAL,
                               "invalid number '%.*s' in '%s'",
                               (int)(p - num), num, s);
      for (; is_digit(*p); p++)
        if (scale < 1000000000) { /* digits past the ninth do not matter */
          frac = frac * 10 + (*p - '0');
          scale *= 10;
        }
    }
    unit = p;
    while (is_alpha(*p))
      p++;
    ulen = (size_t)(p - unit);
    if (ulen == 0) {
      if (*p != '\0')
        return cairn_error_set(err, CAIRN_E_INVAL, "unexpected '%c' in '%s'",
                               *p, s);
      if (num == s)
        return cairn_error_set(err, CAIRN_E_INVAL, "missing unit in '%s'", s);
      return cairn_error_set(err, CAIRN_E_INVAL,
                             "missing unit after '%s' in '%s'", num, s);
    }
    for (u = 0; u < NUNITS; u++)
      if (strlen(units[u].name) == ulen && !memcmp(units[u].name, unit, ulen))
        break;
    if (u == NUNITS)
      return cairn_error_set(err, CAIRN_E_INVAL, "unknown unit '%.*s' in '%s'",
                             (int)ulen, unit, s);
    if ((int)u == last)
      return cairn_error_set(err, CAIRN_E_INVAL, "unit '%s' repeated in '%s'",
                             units[u].name, s);
    if ((int)u < last)
      return cairn_error_set(err, CAIRN_E_INVAL,
                             "units out of order in '%s'", s);
    last = (int)u;

    if (whole > INT64_MAX / units[u].ms)
      return cairn_error_set(err, CAIRN_E_INVAL, "duration '%s' is too large",
                             s);
    /* frac < 1e9 and ms <= 8.64e7: the product fits in 63 bits */
    part = add_ms(whole * units[u].ms,
                  (frac * units[u].ms + scale / 2) / scale);
    total = part < 0 ? -1 : add_ms(total, part);
    if (total < 0)
      return cairn_error_set(err, CAIRN_E_INVAL, "duration '%s' is too large",
                             s);
  }
  *out_ms = total;
  return 0;
}

char *cairn_duration_format(int64_t ms, char *out, size_t n)
{
  const char *sign = "";
  uint64_t v;

  if (out == NULL || n == 0)
    return out;
  if (ms < 0) {
    sign = "-";
    v = (uint64_t)(-(ms + 1)) + 1;
  } else {
    v = (uint64_t)ms;
  }
  if (v < 1000)
    snprintf(out, n, "%s%" PRIu64 "ms", sign, v);
  else if (v < 60000)
    snprintf(out, n, "%s%" PRIu64 ".%" PRIu64 "s", sign, v / 1000,
             v % 1000 / 100);
  else if (v < 3600000)
    snprintf(out, n, "%s%" PRIu64 "m%02" PRIu64 "s", sign, v / 60000,
             v / 1000 % 60);
  else if (v < 86400000)
    snprintf(out, n, "%s%" PRIu64 "h%02" PRIu64 "m", sign, v / 3600000,
             v / 60000 % 60);
  else
    snprintf(out, n, "%s%" PRIu64 "d%02" PRIu64 "h", sign, v / 86400000,
             v / 3600000 % 24);
  return out;
}

char *cairn_duration_exact(int64_t ms, char *out, size_t n)
{
  static const struct {
    const char *unit;
    int64_t ms;
  } whole[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}};
  size_t len = 0;

  if (out == NULL || n == 0)
    return out;
  if (ms <= 0) {
    snprintf(out, n, "0s");
    return out;
  }
  if (ms < 1000) {
    snprintf(out, n, "%" PRId64 "ms", ms);
    return out;
  }
  out[0] = '\0';
  for (size_t i = 0; i < sizeof whole / sizeof whole[0]; i++) {
    if (ms >= whole[i].ms && len < n)
      len += (size_t)snprintf(out + len, n - len, "%" PRId64 "%s",
                              ms / whole[i].ms, whole[i].unit);
    ms %= whole[i].ms;
  }
  if (ms == 0 || len >= n)
    return out;
  if (ms % 1000 == 0) {
    snprintf(out + len, n - len, "%" PRId64 "s", ms / 1000);
  } else {
    char frac[4];
    int digits = 3;
    snprintf(frac, sizeof frac, "%03d", (int)(ms % 1000));
    while (frac[digits - 1] == '0')
      digits--;
    snprintf(out + len, n - len, "%" PRId64 ".%.*ss", ms / 1000, digits,
             frac);
  }
  return out;
}
