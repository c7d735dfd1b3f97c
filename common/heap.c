/* Pre-faulting the heap. A deploy's engine touches about 2 MiB of heap;
 * on virtual machines each first touch of a page is a trap into the
 * hypervisor costing 10 µs or more, so ~500 of them were a few per cent of
 * cairn's own CPU in a deploy (docs/benchmarks.md, Stop 14). One madvise
 * does the same work without the traps. */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#if defined(__GLIBC__) && defined(__linux__)
#include <malloc.h>
#endif

#include "common/heap.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

int cairn_heap_prefault(size_t bytes)
{
  if (bytes == 0 || bytes > INT_MAX / 4)
    return -EINVAL;
#if defined(__GLIBC__) && defined(__linux__)
  long page = sysconf(_SC_PAGESIZE);
  uintptr_t lo, hi;
  char *p;
  int rc = 0;

  if (page <= 0)
    return -EINVAL;
  /* Fixed thresholds: the block below must come from the heap, not from
   * its own mapping, and must stay in the heap once freed. */
  if (mallopt(M_MMAP_THRESHOLD, (int)bytes * 2) != 1 ||
      mallopt(M_TRIM_THRESHOLD, (int)bytes * 4) != 1)
    return -ENOSYS;
  p = malloc(bytes);
  if (p == NULL)
    return -ENOMEM;
  lo = ((uintptr_t)p + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
  hi = ((uintptr_t)p + bytes) & ~((uintptr_t)page - 1);
  if (hi > lo && madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE) != 0)
    rc = -errno;
  free(p);
  return rc;
#else
  return -ENOSYS;
#endif
}
