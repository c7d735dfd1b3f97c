/* Whether something listens on a TCP port, from /proc/net/tcp and
 * /proc/net/tcp6. Their lines read
 *   "  N: LOCAL_HEX:PORT_HEX REMOTE_HEX:PORT_HEX ST ..."
 * (LOCAL_HEX 8 hex digits, or 32 in tcp6), ST 0A for LISTEN. */
#include "common/listen.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define LISTEN_STATE 0x0A

/* 1 when the table at path has a listening socket on port, 0 when not
 * (or the file does not exist), else CAIRN_E_IO. */
static int table_has(const char *path, unsigned port, struct cairn_error *err)
{
  FILE *f = fopen(path, "re");
  char line[256];
  int cont = 0, found = 0;

  if (f == NULL) {
    if (errno == ENOENT)
      return 0;
    return cairn_error_set(err, CAIRN_E_IO, "cannot read '%s': %s", path,
                           strerror(errno));
  }
  while (!found && fgets(line, sizeof line, f) != NULL) {
    size_t len = strlen(line);
    unsigned lport, st;
    /* the rest of a line longer than the buffer is not a line */
    int rest = cont;

    cont = len > 0 && line[len - 1] != '\n';
    if (rest)
      continue;
    /* the header has no "N:" and matches nothing */
    if (sscanf(line, " %*[0-9]: %*[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x",
               &lport, &st) == 2 &&
        st == LISTEN_STATE && lport == port)
      found = 1;
  }
  if (!found && ferror(f)) {
    int e = errno;
    fclose(f);
    return cairn_error_set(err, CAIRN_E_IO, "cannot read '%s': %s", path,
                           strerror(e));
  }
  fclose(f);
  return found;
}

int cairn_tcp_listening(int port, int *listening, struct cairn_error *err)
{
  int rc;

  *listening = 0;
  if (port < 1 || port > 65535)
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "port %d is not between 1 and 65535", port);
  rc = table_has("/proc/net/tcp", (unsigned)port, err);
  if (rc == 0)
    rc = table_has("/proc/net/tcp6", (unsigned)port, err);
  if (rc < 0)
    return rc;
  *listening = rc;
  return 0;
}
