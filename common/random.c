/* Random bytes from OpenSSL, with the DRBG chosen once (common/random.h). */
#include "common/random.h"

#include <limits.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>

static int chosen; /* our DRBG type is set: written once, in drbg_choose */

static void drbg_choose(void)
{
  const char *type = "HASH-DRBG";

#ifdef CAIRN_TEST_HOOKS
  /* test_secrets names one no provider has, to see the fallback work */
  const char *hook = getenv("CAIRN_TEST_DRBG");
  if (hook != NULL && *hook != '\0')
    type = hook;
#endif
  /* Fails, leaving the default, once the DRBGs exist: nothing to do. */
  chosen = RAND_set_DRBG_type(NULL, type, NULL, NULL, "SHA256") == 1;
  if (!chosen)
    ERR_clear_error();
}

/* A provider configuration without the hash DRBG: OpenSSL's default. */
static void drbg_default(void)
{
  ERR_clear_error();
  (void)RAND_set_DRBG_type(NULL, NULL, NULL, NULL, NULL);
}

int cairn_random_bytes(unsigned char *p, size_t n, struct cairn_error *err)
{
  static pthread_once_t choose_once = PTHREAD_ONCE_INIT;
  static pthread_once_t default_once = PTHREAD_ONCE_INIT;

  pthread_once(&choose_once, drbg_choose);
  while (n > 0) {
    int chunk = n > INT_MAX ? INT_MAX : (int)n;
    int ok = RAND_bytes(p, chunk) == 1;

    if (!ok && chosen) {
      pthread_once(&default_once, drbg_default);
      ok = RAND_bytes(p, chunk) == 1;
    }
    if (!ok) {
      char why[256];
      ERR_error_string_n(ERR_get_error(), why, sizeof why);
      return cairn_error_set(err, CAIRN_E_IO, "cannot draw random bytes: %s",
                             why);
    }
    p += chunk;
    n -= (size_t)chunk;
  }
  return 0;
}
