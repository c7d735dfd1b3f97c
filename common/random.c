/* Random bytes from OpenSSL, with the DRBG chosen once (common/random.h). */
#include "common/random.h"

#include <limits.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <pthread.h>

static void drbg_choose(void)
{
  /* Fails, leaving the default, once the DRBGs exist: nothing to do. */
  if (RAND_set_DRBG_type(NULL, "HASH-DRBG", NULL, NULL, "SHA256") != 1)
    ERR_clear_error();
}

int cairn_random_bytes(unsigned char *p, size_t n, struct cairn_error *err)
{
  static pthread_once_t once = PTHREAD_ONCE_INIT;

  pthread_once(&once, drbg_choose);
  while (n > 0) {
    int chunk = n > INT_MAX ? INT_MAX : (int)n;
    if (RAND_bytes(p, chunk) != 1) {
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
