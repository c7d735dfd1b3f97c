/* Files written whole or not at all: the atomic write every part of cairn
 * uses (backups, env files of secrets, reports), and its variant without
 * fsync for pid files; and the private folders they go in. */
#ifndef CAIRN_COMMON_FILE_H
#define CAIRN_COMMON_FILE_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "common/error.h"

/* Writes data[0..n) to path atomically: a temporary file in the same
 * folder (so the rename is atomic), fchmod mode, fsync, rename over path,
 * then fsync of the folder (best effort: the rename is done). On error
 * path is untouched, no temporary file is left, and the result is
 * CAIRN_E_IO (CAIRN_E_NOMEM) with err "cannot write 'PATH': WHY" plus a
 * hint when the folder does not exist. A path that holds anything but a
 * regular file (a symlink, a device, a FIFO, a folder) is refused, since
 * the rename would replace it. data is borrowed. */
int cairn_write_atomic(const char *path, const void *data, size_t n,
                       unsigned mode, struct cairn_error *err);

/* cairn_write_atomic whose new file gets owner uid and group gid before
 * it is renamed into place (fchown before fchmod, so that mode stands
 * whole); (uid_t)-1 and (gid_t)-1 leave either the writer's, as
 * cairn_write_atomic does. For replacing a file that is not cairn's own
 * (file.write) without changing its hands. Only root may give a file
 * away: a change the kernel refuses (EPERM, or EINVAL for an id outside
 * the user namespace) is not an error. Then the group alone is set when
 * the writer may (it belongs to it), else neither, and *owned (may be
 * NULL) is 0; it is 1 when the file got both as asked. Same errors and
 * ownership as cairn_write_atomic. */
int cairn_write_atomic_owned(const char *path, const void *data, size_t n,
                             unsigned mode, uid_t uid, gid_t gid, int *owned,
                             struct cairn_error *err);

/* cairn_write_atomic without either fsync: readers still see the old
 * content or the new, never a part, but after a crash of the machine the
 * file may hold either or be empty. For files whose content a reboot makes
 * stale anyway (a pid file, which records the boot it belongs to), where
 * two fsyncs a write are the larger part of starting a service. Same
 * errors and ownership as cairn_write_atomic. */
int cairn_write_replace(const char *path, const void *data, size_t n,
                        unsigned mode, struct cairn_error *err);

/* A file written in pieces and then put in place as cairn_write_atomic
 * puts one (a temporary file beside it, renamed over it), or not at all:
 * for output too large to hold in memory first (cairn export -o). */
struct cairn_out {
  FILE *f;          /* write here (owned) */
  char *tmp;        /* the temporary file's path (owned) */
  const char *path; /* borrowed from cairn_out_begin's caller */
};
/* Opens o for path (borrowed: it must outlive o), with cairn_write_atomic's
 * refusals. 0, or CAIRN_E_IO / CAIRN_E_NOMEM with err set and o empty. */
int cairn_out_begin(struct cairn_out *o, const char *path,
                    struct cairn_error *err);
/* Flushes, sets mode, fsyncs and renames the file into place, then
 * fsyncs the folder. On error (a write that failed on the way included)
 * path is untouched and the temporary file gone. o is empty after. */
int cairn_out_commit(struct cairn_out *o, unsigned mode,
                     struct cairn_error *err);
/* Drops what was written: path is untouched. o is empty after. */
void cairn_out_abort(struct cairn_out *o);

/* fsync of the folder holding path, so a rename or unlink in it survives
 * a crash. Returns 0 or -errno. */
int cairn_fsync_dir(const char *path);

/* mkdir -p: dir and every missing folder above it, each made 0700 (chmod
 * after mkdir, so the umask cannot widen or narrow it); folders that exist
 * (or links to folders) are left as they are. 0, or CAIRN_E_IO with
 * "cannot create folder 'D': WHY" (a file of that name in the way, too)
 * or "cannot chmod 'D': WHY" (CAIRN_E_NOMEM). dir is borrowed. */
int cairn_mkdirs(const char *dir, struct cairn_error *err);

/* cairn_mkdirs of the folder holding path (nothing when path names no
 * folder: a bare name, or one right under /). */
int cairn_mkdir_parent(const char *path, struct cairn_error *err);

#endif
