/* Internal to adapters/: reading a call's inputs (or a state's raw `with`
 * in a check), the same way in every adapter. Everything returned is
 * borrowed from in. */
#ifndef CAIRN_ADAPTERS_INPUT_H
#define CAIRN_ADAPTERS_INPUT_H

#include <jansson.h>

#include "common/error.h"

/* The input name, or NULL when it is missing or null. */
json_t *adapter__input(json_t *in, const char *name);

/* Its string, or NULL when it is missing, null or not a string. */
const char *adapter__input_str(json_t *in, const char *name);

/* Like adapter__input, but "" and {} count as not given too: the defaults
 * an optional input has so that an undo template can always name it. */
json_t *adapter__input_given(json_t *in, const char *name);

/* Checks the names of an `env` input (a map, may be NULL): none empty or
 * holding '='. Returns 0 or CAIRN_E_INVAL. */
int adapter__check_env_names(json_t *env, struct cairn_error *err);

/* Checks input `port` of in (a state's raw `with`, or rendered inputs):
 * when it is an integer, 1 to 65535 (a template passes). Returns 0 or
 * CAIRN_E_INVAL. */
int adapter__check_port(json_t *in, struct cairn_error *err);

#endif
