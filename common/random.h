/* Random bytes for run ids and generated secrets, from OpenSSL's DRBG,
 * which cairn sets to the hash DRBG on SHA-256 before its first use. */
#ifndef CAIRN_RANDOM_H
#define CAIRN_RANDOM_H

#include <stddef.h>

#include "common/error.h"

/* Fills p (n bytes, the caller's) from OpenSSL's RAND_bytes. The first
 * call in the process asks for OpenSSL's HASH-DRBG on SHA-256 instead of
 * its default, CTR-DRBG on AES-256: both are NIST SP 800-90A generators
 * seeded by the operating system, but the default makes OpenSSL build its
 * table of ciphers (about 1 ms of CPU) in a process that uses SHA-256 for
 * its journal anyway and no cipher. When something in the process drew
 * random bytes before, the DRBG it made stays; when the providers
 * configured have no hash DRBG, OpenSSL's default is used. Returns 0, or
 * CAIRN_E_IO with OpenSSL's reason in err. */
int cairn_random_bytes(unsigned char *p, size_t n, struct cairn_error *err);

#endif
