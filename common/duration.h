/* Durations as workflows write them: "250ms", "5s", "1m30s", "2h", "1.5s"
 * (units ms, s, m, h, d; parts in decreasing order, each unit once), or
 * an integer meaning seconds. */
#ifndef CAIRN_COMMON_DURATION_H
#define CAIRN_COMMON_DURATION_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

/* What an error about a duration suggests, after what is wrong. */
#define CAIRN_DURATION_HINT "durations look like 250ms, 5s, 1m30s, 2h or 1d"

/* Parses s into milliseconds: the one parser of the language, for the
 * workflow's own keys, the adapters' inputs and the command line.
 * CAIRN_E_INVAL with a message saying what is wrong ("unknown unit 'x' in
 * '5x'", no hint: the caller adds CAIRN_DURATION_HINT where it fits) on
 * bad input, negative values, overflow or an empty string. */
int cairn_duration_parse(const char *s, int64_t *out_ms,
                         struct cairn_error *err);

/* Formats ms for people: "850ms", "12.3s", "4m05s", "1h02m" (rounded
 * down to what a person reads at a glance: for elapsed times). Writes at
 * most n bytes into out (NUL included) and returns out. */
char *cairn_duration_format(int64_t ms, char *out, size_t n);

/* Formats ms exactly, in the language cairn_duration_parse reads back:
 * "250ms", "2s", "1.5s", "1m30s", "1d2h" (each unit once, a fraction of a
 * second as decimals of s; 0 or less: "0s"). For a duration a workflow
 * gave (a timeout, a wait), said back as written. out as above. */
char *cairn_duration_exact(int64_t ms, char *out, size_t n);

#endif
