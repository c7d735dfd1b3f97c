/* --since of history and export: from when a listing starts. One parser,
 * so both commands take the same forms and refuse the same mistakes. */
#ifndef CAIRN_CLI_SINCE_H
#define CAIRN_CLI_SINCE_H

#include <stdint.h>

/* The zone of a date or time written without 'Z': history prints local
 * times, export is for machines and speaks UTC. */
enum cli_since_zone {
  CLI_SINCE_LOCAL,
  CLI_SINCE_UTC,
};

/* Parses s (borrowed), one of
 *   YYYY-MM-DD                       midnight starting that day
 *   YYYY-MM-DD HH:MM[:SS]            'T' may stand for the space; a
 *                                    trailing 'Z' makes it UTC
 *   a duration with its units        "7d", "12h", "1h30m": that long ago
 *                                    (common/duration.h; a bare number,
 *                                    which a workflow reads as seconds,
 *                                    is refused: "2026" is not a date)
 * a date or time in zone unless it ends in 'Z'. Nothing else: no space
 * around it, and no day or time the calendar has not (2026-02-30, 24:00),
 * which mktime would roll over into the next month. Returns 0 and sets
 * *ms (Unix time in ms), or prints a one-line error naming s and returns
 * CLI_EXIT_USAGE. */
int cli_since_parse(const char *s, enum cli_since_zone zone, int64_t *ms);

#endif
