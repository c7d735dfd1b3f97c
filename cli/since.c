/* --since: a date, a time or a duration ago (cli/since.h). */
#include "cli/since.h"

#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "common/duration.h"

/* The n digits at s as a number into *out: 0, or -1 when one of them is
 * not a digit (the end of the string included, so s is never read past
 * it). */
static int digits(const char *s, int n, int *out)
{
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 0;
}

/* A date or time into *tm and *utc (a 'Z' at its end); 0, or -1 when s
 * is not written as one. */
static int scan_date(const char *s, struct tm *tm, int *utc)
{
  const char *p = s + 10;

  memset(tm, 0, sizeof *tm);
  if (digits(s, 4, &tm->tm_year) != 0 || s[4] != '-' ||
      digits(s + 5, 2, &tm->tm_mon) != 0 || s[7] != '-' ||
      digits(s + 8, 2, &tm->tm_mday) != 0)
    return -1;
  tm->tm_year -= 1900;
  tm->tm_mon -= 1;
  if (*p == ' ' || *p == 'T') {
    if (digits(p + 1, 2, &tm->tm_hour) != 0 || p[3] != ':' ||
        digits(p + 4, 2, &tm->tm_min) != 0)
      return -1;
    p += 6;
    if (*p == ':') {
      if (digits(p + 1, 2, &tm->tm_sec) != 0)
        return -1;
      p += 3;
    }
    if (*p == 'Z') {
      *utc = 1;
      p++;
    }
  }
  return *p == '\0' ? 0 : -1;
}

int cli_since_parse(const char *s, enum cli_since_zone zone, int64_t *ms)
{
  const char *hint = zone == CLI_SINCE_UTC
      ? "YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][Z] in UTC, or a duration ago "
        "such as 7d or 12h"
      : "YYYY-MM-DD or 'YYYY-MM-DD HH:MM[:SS]' in local time, or a "
        "duration ago such as 7d or 12h";
  struct cairn_error err = {0};
  struct tm tm, back;
  int64_t ago;
  int utc = zone == CLI_SINCE_UTC;
  time_t t;

  if (*s != '\0' && strspn(s, "0123456789") == strlen(s)) {
    cli_error("--since: '%s' is a number without a unit (hint: %s)", s,
              hint);
    return CLI_EXIT_USAGE;
  }
  if (cairn_duration_parse(s, &ago, &err) == 0) {
    *ms = journal_now_ms() - ago;
    return 0;
  }
  if (scan_date(s, &tm, &utc) != 0) {
    cli_error("--since: '%s' is not a date or a duration (hint: %s)", s,
              hint);
    return CLI_EXIT_USAGE;
  }
  /* The calendar check: timegm rolls 2026-02-30 over to 2026-03-02 and
   * 24:00 to the next day; a real date comes back as it went in. */
  back = tm;
  if (timegm(&back) == (time_t)-1 || back.tm_year != tm.tm_year ||
      back.tm_mon != tm.tm_mon || back.tm_mday != tm.tm_mday ||
      back.tm_hour != tm.tm_hour || back.tm_min != tm.tm_min ||
      back.tm_sec != tm.tm_sec) {
    cli_error("--since: '%s' is not a real date or time (hint: %s)",
              s, hint);
    return CLI_EXIT_USAGE;
  }
  tm.tm_isdst = -1;
  t = utc ? timegm(&tm) : mktime(&tm);
  if (t == (time_t)-1) {
    cli_error("--since: '%s' is out of range (hint: %s)", s, hint);
    return CLI_EXIT_USAGE;
  }
  *ms = (int64_t)t * 1000;
  return 0;
}
