/* Pre-faulting the heap. A deploy's engine touches about 2 MiB of heap;
 * on virtual machines each first touch of a page is a trap into the
 * hypervisor costing 10 µs or more, so ~500 of them were a few per cent of
 * cairn's own CPU in a deploy (docs/benchmarks.md, Stop 14). One madvise
 * does the same work without the traps. A fan-out of 1,000 branches grows
 * the heap by some 8 MiB more at once: cairn_heap_reserve makes that room
 * the same way before the branches are made. */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#if defined(__GLIBC__) && defined(__linux__)
#include <malloc.h>
#define HEAP_TUNABLE 1
#else
#define HEAP_TUNABLE 0
#endif

#include "common/heap.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

#if HEAP_TUNABLE
/* Set by a successful cairn_heap_prefault: the size of the blocks that
 * still come from the heap (half the mmap threshold), and the trim
 * threshold in force. Only the loop thread calls these functions. */
static size_t block_max;
static size_t trim_now;

/* Makes the whole pages inside [p, p + n) resident; 0 or -errno. */
static int populate(const char *p, size_t n)
{
  long page = sysconf(_SC_PAGESIZE);
  uintptr_t lo, hi;

  if (page <= 0)
    return -EINVAL;
  lo = ((uintptr_t)p + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
  hi = ((uintptr_t)p + n) & ~((uintptr_t)page - 1);
  if (hi > lo && madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE) != 0)
    return -errno;
  return 0;
}
#endif

int cairn_heap_prefault(size_t bytes)
{
  if (bytes == 0 || bytes > INT_MAX / 4)
    return -EINVAL;
#if HEAP_TUNABLE
  size_t trim = bytes * 4;
  char *p;
  int rc;

  /* Fixed thresholds: the block below must come from the heap, not from
   * its own mapping, and must stay in the heap once freed. */
  if (mallopt(M_MMAP_THRESHOLD, (int)bytes * 2) != 1 ||
      mallopt(M_TRIM_THRESHOLD, (int)trim) != 1)
    return -ENOSYS;
  p = malloc(bytes);
  if (p == NULL)
    return -ENOMEM;
  rc = populate(p, bytes);
  free(p);
  if (rc == 0) {
    block_max = bytes;
    trim_now = trim;
  }
  return rc;
#else
  return -ENOSYS;
#endif
}

int cairn_heap_reserve(size_t bytes)
{
#if HEAP_TUNABLE
  struct mallinfo2 mi;
  size_t nblocks, arena;
  char **blocks;
  int rc = 0;

  if (block_max == 0)
    return -ENOSYS; /* no prefault: the process keeps malloc's defaults */
  if (bytes > CAIRN_HEAP_RESERVE_MAX)
    bytes = CAIRN_HEAP_RESERVE_MAX;
  mi = mallinfo2();
  if (mi.fordblks >= bytes)
    return 0; /* that much is free in the heap already */
  /* Blocks for all of it: the first ones take what is free (already
   * resident, populating it is cheap), the rest grow the heap. */
  nblocks = (bytes + block_max - 1) / block_max;
  arena = mi.arena + nblocks * block_max;
  /* Freed, the blocks join the heap's top: it must not be trimmed. */
  if (arena + block_max > trim_now) {
    if (arena + block_max > INT_MAX)
      return -ERANGE; /* mallopt takes an int */
    if (mallopt(M_TRIM_THRESHOLD, (int)(arena + block_max)) != 1)
      return -ENOSYS;
    trim_now = arena + block_max;
  }
  blocks = calloc(nblocks, sizeof *blocks);
  if (blocks == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < nblocks && rc == 0; i++) {
    if ((blocks[i] = malloc(block_max)) == NULL)
      rc = -ENOMEM;
    else
      rc = populate(blocks[i], block_max);
  }
  for (size_t i = nblocks; i-- > 0;)
    free(blocks[i]);
  free(blocks);
  return rc;
#else
  (void)bytes;
  return -ENOSYS;
#endif
}
