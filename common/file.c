/* The atomic write: temporary file, fsync, rename, fsync of the folder;
 * its variant without the fsyncs for files a crash makes stale; mkdir -p
 * of private folders. */
#include "common/file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cairn_fsync_dir(const char *path)
{
  char *copy = strdup(path);
  int fd, rc = 0;

  if (copy == NULL)
    return -ENOMEM;
  fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  free(copy);
  if (fd < 0)
    return -errno;
  if (fsync(fd) < 0 && errno != EINVAL) /* some file systems cannot */
    rc = -errno;
  close(fd);
  return rc;
}

static int write_error(const char *path, int e, struct cairn_error *err)
{
  return cairn_error_set(err, CAIRN_E_IO, "cannot write '%s': %s%s", path,
                         strerror(e),
                         e == ENOENT ? " (hint: does its folder exist?)" : "");
}

/* fchown(fd, uid, gid) as far as the writer may: 0 with *owned 0 when the
 * kernel refused to give the file away (only root may), after setting the
 * group alone if it allows that; -1 with errno on any other failure. */
static int give_file(int fd, uid_t uid, gid_t gid, int *owned)
{
  *owned = 1;
  if ((uid == (uid_t)-1 && gid == (gid_t)-1) || fchown(fd, uid, gid) == 0)
    return 0;
  if (errno != EPERM && errno != EINVAL)
    return -1;
  *owned = 0;
  if (gid != (gid_t)-1 && fchown(fd, (uid_t)-1, gid) < 0 && errno != EPERM &&
      errno != EINVAL)
    return -1;
  return 0;
}

/* The temporary file a replacement of path is written to: ".NAME.XXXXXX"
 * beside it (hidden, and on the same file system, so the rename is
 * atomic), created 0600. Refused when path holds anything but a regular
 * file: the rename would replace it, not write to it (a device, as root
 * /dev/null itself; a FIFO; the link of a symlink). The fd, *tmp set
 * (malloc'd), or -1 with err set. */
static int tmp_open(const char *path, char **tmp, struct cairn_error *err)
{
  size_t plen = strlen(path);
  const char *slash = strrchr(path, '/');
  struct stat st;
  int fd, e;

  *tmp = NULL;
  if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
    cairn_error_set(err, CAIRN_E_IO,
                    "cannot write '%s': it is a %s, and cairn replaces only "
                    "regular files (hint: give the path of a file)",
                    path, S_ISLNK(st.st_mode)    ? "symlink"
                          : S_ISDIR(st.st_mode)  ? "folder"
                          : S_ISFIFO(st.st_mode) ? "FIFO"
                          : S_ISSOCK(st.st_mode) ? "socket"
                                                 : "device");
    return -1;
  }
  if ((*tmp = malloc(plen + 16)) == NULL) {
    cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    return -1;
  }
  if (slash)
    snprintf(*tmp, plen + 16, "%.*s.%s.XXXXXX", (int)(slash - path + 1),
             path, slash + 1);
  else
    snprintf(*tmp, plen + 16, ".%s.XXXXXX", path);
  if ((fd = mkostemp(*tmp, O_CLOEXEC)) < 0) {
    e = errno;
    free(*tmp);
    *tmp = NULL;
    write_error(path, e, err);
    return -1;
  }
  return fd;
}

/* A replacement of path given up after error e: fd (when >= 0) closed,
 * tmp removed and freed. Returns write_error's code. */
static int tmp_fail(int fd, char *tmp, const char *path, int e,
                    struct cairn_error *err)
{
  if (fd >= 0)
    close(fd);
  unlink(tmp);
  free(tmp);
  return write_error(path, e, err);
}

/* Puts the written tmp (fd, closed here) in place of path: owner, mode,
 * fsync when durable, rename, then the folder's fsync. On failure tmp is
 * removed. tmp is freed either way. 0, or CAIRN_E_IO with err set. */
static int put_in_place(int fd, char *tmp, const char *path, unsigned mode,
                        uid_t uid, gid_t gid, int *owned, int durable,
                        struct cairn_error *err)
{
  int e, given;

  /* the owner first: a chown may clear the set-id bits of the mode */
  if (give_file(fd, uid, gid, &given) < 0 || fchmod(fd, (mode_t)mode) < 0 ||
      (durable && fsync(fd) < 0))
    goto fail;
  e = close(fd);
  fd = -1;
  if (e < 0 || rename(tmp, path) < 0)
    goto fail;
  free(tmp);
  if (durable)
    cairn_fsync_dir(path);
  if (owned)
    *owned = given;
  return 0;

fail:
  return tmp_fail(fd, tmp, path, errno, err);
}

static int write_renamed(const char *path, const void *data, size_t n,
                         unsigned mode, uid_t uid, gid_t gid, int *owned,
                         int durable, struct cairn_error *err)
{
  const char *p = data;
  char *tmp;
  int fd = tmp_open(path, &tmp, err);

  if (fd < 0)
    return err->code;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      return tmp_fail(fd, tmp, path, errno, err);
    p += w;
    n -= (size_t)w;
  }
  return put_in_place(fd, tmp, path, mode, uid, gid, owned, durable, err);
}

int cairn_out_begin(struct cairn_out *o, const char *path,
                    struct cairn_error *err)
{
  int fd;

  memset(o, 0, sizeof *o);
  if ((fd = tmp_open(path, &o->tmp, err)) < 0)
    return err->code;
  if ((o->f = fdopen(fd, "w")) == NULL) {
    int rc = tmp_fail(fd, o->tmp, path, errno, err);
    o->tmp = NULL;
    return rc;
  }
  o->path = path;
  return 0;
}

int cairn_out_commit(struct cairn_out *o, unsigned mode,
                     struct cairn_error *err)
{
  int fd, e;

  if (fflush(o->f) != 0 || (fd = dup(fileno(o->f))) < 0) {
    e = errno;
    cairn_out_abort(o);
    return write_error(o->path, e, err);
  }
  if (ferror(o->f)) { /* a write on the way failed; its errno is gone */
    close(fd);
    cairn_out_abort(o);
    return write_error(o->path, EIO, err);
  }
  fclose(o->f); /* flushed above: its fd's copy goes on */
  o->f = NULL;
  e = put_in_place(fd, o->tmp, o->path, mode, (uid_t)-1, (gid_t)-1, NULL, 1,
                   err);
  o->tmp = NULL;
  return e;
}

void cairn_out_abort(struct cairn_out *o)
{
  if (o->f != NULL)
    fclose(o->f);
  if (o->tmp != NULL) {
    unlink(o->tmp);
    free(o->tmp);
  }
  memset(o, 0, sizeof *o);
}

int cairn_write_atomic(const char *path, const void *data, size_t n,
                       unsigned mode, struct cairn_error *err)
{
  return write_renamed(path, data, n, mode, (uid_t)-1, (gid_t)-1, NULL, 1,
                       err);
}

int cairn_write_atomic_owned(const char *path, const void *data, size_t n,
                             unsigned mode, uid_t uid, gid_t gid, int *owned,
                             struct cairn_error *err)
{
  return write_renamed(path, data, n, mode, uid, gid, owned, 1, err);
}

int cairn_write_replace(const char *path, const void *data, size_t n,
                        unsigned mode, struct cairn_error *err)
{
  return write_renamed(path, data, n, mode, (uid_t)-1, (gid_t)-1, NULL, 0,
                       err);
}

/* The folder itself first: usually it exists or only it is missing, so one
 * mkdir does. Only ENOENT walks up, once per missing parent; parent_made
 * stops a second walk if someone removes the parent meanwhile. d is
 * modified and restored. */
static int mkdirs_at(char *d, int parent_made, struct cairn_error *err)
{
  char *slash;
  int rc;

  if (mkdir(d, 0700) == 0) {
    /* by descriptor: the name may be swapped for a link meanwhile */
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), ok;
    if (fd >= 0) {
      ok = fchmod(fd, 0700) == 0;
      rc = errno;
      close(fd);
    } else {
      /* a umask without the owner's read bit (0477) made a folder we
       * cannot open to read: by name then, still refusing a link */
      ok = errno == EACCES &&
           fchmodat(AT_FDCWD, d, 0700, AT_SYMLINK_NOFOLLOW) == 0;
      rc = errno;
    }
    if (ok)
      return 0;
    return cairn_error_set(err, CAIRN_E_IO, "cannot chmod '%s': %s", d,
                           strerror(rc));
  }
  rc = errno;
  if (rc == EEXIST) {
    struct stat sb;
    /* a folder, or a link to one, as mkdir -p accepts */
    if (stat(d, &sb) == 0 && S_ISDIR(sb.st_mode))
      return 0;
    return cairn_error_set(err, CAIRN_E_IO, "cannot create folder '%s': %s",
                           d, "a file of that name is in the way");
  }
  slash = strrchr(d, '/');
  if (rc != ENOENT || parent_made || slash == NULL || slash == d)
    return cairn_error_set(err, CAIRN_E_IO, "cannot create folder '%s': %s",
                           d, strerror(rc));
  *slash = '\0';
  rc = mkdirs_at(d, 0, err);
  *slash = '/';
  return rc != 0 ? rc : mkdirs_at(d, 1, err);
}

int cairn_mkdirs(const char *dir, struct cairn_error *err)
{
  char *d = strdup(dir);
  int rc;

  if (d == NULL)
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  rc = mkdirs_at(d, 0, err);
  free(d);
  return rc;
}

int cairn_mkdir_parent(const char *path, struct cairn_error *err)
{
  const char *slash = strrchr(path, '/');
  char *dir;
  int rc;

  if (slash == NULL || slash == path)
    return 0; /* the working directory, or / */
  if ((dir = strndup(path, (size_t)(slash - path))) == NULL)
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  rc = cairn_mkdirs(dir, err);
  free(dir);
  return rc;
}
