/* Large allocations on transparent huge pages: for the few structures of
 * many megabytes (a large workflow's YAML tree and states, a simulation's
 * event list), where the kernel's cost of each 4 KiB page touched for the
 * first time is a large part of the CPU time (measured at about 17 us a
 * page in a VM, against microseconds of work a page).
 *
 * Memory: cairn_huge_alloc's blocks are the caller's until
 * cairn_huge_free; blocks of CAIRN_HUGE bytes freed are kept (up to a
 * few dozen) for the next allocation, so the memory of one phase is used
 * again by the next instead of being mapped and faulted in anew. */
#ifndef CAIRN_HUGE_H
#define CAIRN_HUGE_H

#include <stddef.h>

#define CAIRN_HUGE ((size_t)2 << 20) /* a huge page */

/* 1 when the kernel gives transparent huge pages to a mapping that asks
 * for them (/sys/kernel/mm/transparent_hugepage/enabled is "always" or
 * "madvise"), else 0: then cairn_huge_alloc gives nothing and callers
 * use malloc, whose pages are at least used again after a free. */
int cairn_huge_available(void);

/* size bytes (rounded up to a multiple of CAIRN_HUGE) on a CAIRN_HUGE
 * boundary, asked for as transparent huge pages, zeroed when zero is
 * set; NULL when huge pages are not available or mapping fails. */
void *cairn_huge_alloc(size_t size, int zero);

/* Gives back p, of size bytes as asked from cairn_huge_alloc; NULL does
 * nothing. */
void cairn_huge_free(void *p, size_t size);

#endif
