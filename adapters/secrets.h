/* Internals of the secrets.generate adapter shared with its unit tests:
 * drawing one value, and reading an env file's values. */
#ifndef CAIRN_ADAPTERS_SECRETS_H
#define CAIRN_ADAPTERS_SECRETS_H

#include <stddef.h>

#include "common/error.h"

/* The number of characters a value of `length` random bytes takes in
 * alphabet ("base64url", "hex", "alnum"); 0 for an unknown alphabet. An
 * alnum value has at least length * 8 bits of entropy. */
size_t adapter__secret_chars(const char *alphabet, size_t length);

/* Draws a value of `length` random bytes (RAND_bytes) written in
 * alphabet; *out is malloc'd, NUL-terminated, owned by the caller (who
 * should OPENSSL_cleanse it). alnum uses rejection sampling: no modulo
 * bias. */
int adapter__secret_value(const char *alphabet, size_t length, char **out,
                          struct cairn_error *err);

#endif
