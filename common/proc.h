/* Facts about processes on this host, read from /proc, and stopping a
 * process group without ever signalling a reused pid. */
#ifndef CAIRN_PROC_H
#define CAIRN_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <time.h>

/* Start time of pid in clock ticks since boot (/proc/PID/stat field 22).
 * Returns 0, or -ESRCH when there is no such process. */
int cairn_proc_start_time(int pid, int64_t *ticks);

/* The start time /proc/PID/stat would show for a child forked between
 * two readings of CLOCK_BOOTTIME, before and after the fork, without
 * reading /proc (dear on a virtual machine: some 80 us a read, more than
 * half what the spawn itself costs). The kernel stamps a new process
 * with CLOCK_BOOTTIME inside fork and shows it truncated to clock ticks,
 * so when both readings fall in the same tick, that tick is the start.
 * Returns 0 and sets *ticks then; -1 when the readings straddle a tick
 * (or a tick is not a whole number of nanoseconds): read /proc then. */
int cairn_proc_start_between(const struct timespec *before,
                             const struct timespec *after, int64_t *ticks);

/* 1 when pid exists and started at start_ticks (so it is the same process,
 * not a reuse of the pid), 0 otherwise. start_ticks 0 skips that check. */
int cairn_proc_alive(int pid, int64_t start_ticks);

/* This boot's id (/proc/sys/kernel/random/boot_id), 36 characters and a
 * NUL; "" when unreadable. Pids from another boot are never signalled.
 * Read once a process (thread-safe). */
void cairn_proc_boot_id(char out[40]);

/* Stops process group pgid whose leader was pid started at start_ticks:
 * when the leader is the same process (or already gone but the group
 * still has members), SIGTERM to the group, wait up to grace_ms for it to
 * empty, then SIGKILL. Blocks (used by resume, before the loop runs).
 * Returns 0 when the group is gone, or -errno. */
int cairn_proc_stop_group(int pgid, int pid, int64_t start_ticks,
                          int64_t grace_ms);

/* 1 when any process is in group pgid, else 0. */
int cairn_proc_group_alive(int pgid);

/* "user@host" of this process, into out of size n. */
void cairn_proc_actor(char *out, unsigned long n);

/* Who is acting, as the journal records it, into out of size n: given
 * (the caller's; NULL or "" for none), else $CAIRN_ACTOR, else user@host.
 * Cut at a character, never inside one, and any byte that is not UTF-8
 * made '?': the journal's JSON holds only UTF-8. given is borrowed. */
void cairn_actor(const char *given, char *out, size_t n);

/* Raises this process's soft limit on open files to its hard limit (at
 * most 1,048,576): a run holds two pipes for each running step and a
 * socket for each check, and a fan-out that hit a soft limit of 1,024
 * failed real steps and rolled back deployed work. Remembers the limit it
 * found, for children (cairn_nofile_found). Best effort: a limit that
 * cannot be raised stays as it was. Returns the soft limit in effect
 * after (LLONG_MAX for none), or -1 when it cannot be read. */
long long cairn_nofile_raise(void);
/* The soft limit on open files this process started with, when
 * cairn_nofile_raise changed it; else NULL. A child gets it back before
 * exec: programs that use select() break on descriptors above 1,023. */
const struct rlimit *cairn_nofile_found(void);

#endif
