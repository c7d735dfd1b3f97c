/* Making the heap a run will use resident in one system call, rather than
 * one page fault per page as it first grows. */
#ifndef CAIRN_HEAP_H
#define CAIRN_HEAP_H

#include <stddef.h>

/* Grows the heap by about bytes, makes those pages resident with
 * madvise(MADV_POPULATE_WRITE), and hands them back to malloc, which then
 * keeps them: allocations below 2 * bytes come from the heap (not from
 * mmap) and up to 4 * bytes of free memory at its top is not returned to
 * the system. Later allocations use those pages without faulting.
 * For the rest of the process: glibc's sliding mmap threshold is off and
 * both thresholds override GLIBC_TUNABLES; meant for a command's process
 * (cairn run and the like), not for a library's host.
 * Returns 0; -EINVAL when bytes is 0 or above INT_MAX / 4; -ENOSYS when
 * the C library's malloc cannot be tuned so (not glibc on Linux, or a
 * sanitizer's); else -errno from malloc or madvise (EINVAL before Linux
 * 5.14). malloc stays usable whatever the result. */
int cairn_heap_prefault(size_t bytes);

/* The most cairn_heap_reserve makes room for at once. */
#define CAIRN_HEAP_RESERVE_MAX ((size_t)64 << 20)

/* Before a burst of allocations of about bytes in all (capped at
 * CAIRN_HEAP_RESERVE_MAX), in a process whose heap cairn_heap_prefault
 * set up: unless that much is free in the heap already, takes that much
 * in blocks the heap serves (what is free first, then new room at its
 * top), makes them resident, frees them, and raises the trim threshold
 * so they stay. Returns 0, -ENOSYS without a successful
 * cairn_heap_prefault (nothing done), -ERANGE when the heap would grow
 * past INT_MAX bytes (the trim threshold is an int; nothing done),
 * -ENOMEM, or -errno from madvise. Only a speed-up: the burst works
 * whatever the result. Not thread-safe: the loop thread's. */
int cairn_heap_reserve(size_t bytes);

#endif
