/* Large allocations on transparent huge pages (common/huge.h): aligned
 * anonymous mappings with madvise(MADV_HUGEPAGE), and a few freed blocks
 * kept for reuse. */
#include "common/huge.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

/* Freed single blocks kept: a 10,000-state workflow's tree is some five. */
#define KEEP 32

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int available;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void *kept[KEEP];
static size_t nkept;

static void probe(void)
{
#ifdef MADV_HUGEPAGE
  char line[128] = "";
  FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");

  if (f == NULL)
    return;
  if (fgets(line, sizeof line, f) != NULL)
    available = strstr(line, "[always]") != NULL ||
                strstr(line, "[madvise]") != NULL;
  fclose(f);
#endif
}

int cairn_huge_available(void)
{
  pthread_once(&once, probe);
  return available;
}

static size_t rounded(size_t size)
{
  return (size + CAIRN_HUGE - 1) / CAIRN_HUGE * CAIRN_HUGE;
}

void *cairn_huge_alloc(size_t size, int zero)
{
  size_t n = rounded(size ? size : 1), lead;
  char *p = NULL;

  if (!cairn_huge_available() || n < size)
    return NULL;
  if (n == CAIRN_HUGE) {
    pthread_mutex_lock(&lock);
    if (nkept > 0)
      p = kept[--nkept];
    pthread_mutex_unlock(&lock);
    if (p != NULL) {
      if (zero)
        memset(p, 0, n);
      return p;
    }
  }
#ifdef MADV_HUGEPAGE
  /* One block more than asked, then what lies off the boundary let go:
   * only a block on a boundary can be backed by huge pages. A new
   * mapping is zeroed. */
  p = mmap(NULL, n + CAIRN_HUGE, PROT_READ | PROT_WRITE,
           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return NULL;
  lead = (CAIRN_HUGE - (uintptr_t)p % CAIRN_HUGE) % CAIRN_HUGE;
  if (lead > 0)
    munmap(p, lead);
  munmap(p + lead + n, CAIRN_HUGE - lead);
  p += lead;
  madvise(p, n, MADV_HUGEPAGE); /* a hint: without it, small pages */
  return p;
#else
  (void)lead;
  (void)zero;
  return NULL;
#endif
}

void cairn_huge_free(void *p, size_t size)
{
  size_t n = rounded(size ? size : 1);

  if (p == NULL)
    return;
  if (n == CAIRN_HUGE) {
    pthread_mutex_lock(&lock);
    if (nkept < KEEP) {
      kept[nkept++] = p;
      p = NULL;
    }
    pthread_mutex_unlock(&lock);
    if (p == NULL)
      return;
  }
  munmap(p, n);
}
