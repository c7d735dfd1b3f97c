/* Whether something listens on a TCP port: the kernel's sock_diag
 * netlink dump of the listening sockets only, else /proc/net/tcp and
 * /proc/net/tcp6. Reading those walks every connection's hash bucket as
 * well (some 1.5 ms a read here: 45 ms a deploy of 16 services); the dump
 * asked for LISTEN alone walks the listeners. The /proc lines read
 *   "  N: LOCAL_HEX:PORT_HEX REMOTE_HEX:PORT_HEX ST ..."
 * (LOCAL_HEX 8 hex digits, or 32 in tcp6), ST 0A for LISTEN. */
#include "common/listen.h"

#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

/* 1 when a socket of family listens on port, 0 when none does (or the
 * kernel has no such family), -1 when the dump cannot be had (the caller
 * reads /proc instead). */
static int diag_has(int family, unsigned port)
{
  struct {
    struct nlmsghdr nlh;
    struct inet_diag_req_v2 r;
  } req;
  union {
    struct nlmsghdr h;
    char b[32768];
  } buf;
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  int found = 0;

  if (fd < 0)
    return -1;
  memset(&req, 0, sizeof req);
  req.nlh.nlmsg_len = sizeof req;
  req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  req.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.r.sdiag_family = (unsigned char)family;
  req.r.sdiag_protocol = IPPROTO_TCP;
  req.r.idiag_states = 1u << LISTEN_STATE; /* TCP_LISTEN alone */
  if (sendto(fd, &req, sizeof req, 0, (struct sockaddr *)&sa, sizeof sa) < 0) {
    close(fd);
    return -1;
  }
  for (;;) {
    ssize_t n = recv(fd, &buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    for (struct nlmsghdr *h = &buf.h; NLMSG_OK(h, (size_t)n);
         h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type == NLMSG_DONE) {
        close(fd);
        return found;
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr *e = NLMSG_DATA(h);
        close(fd);
        /* no IPv6 in this kernel: nothing listens there */
        return e->error == -ENOENT || e->error == -EAFNOSUPPORT ? 0 : -1;
      }
      if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY) {
        const struct inet_diag_msg *m = NLMSG_DATA(h);
        found |= ntohs(m->id.idiag_sport) == port;
      }
    }
  }
  close(fd);
  return -1;
}

int cairn_tcp_listening(int port, int *listening, struct cairn_error *err)
{
  int rc, v4, v6;

  *listening = 0;
  if (port < 1 || port > 65535)
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "port %d is not between 1 and 65535", port);
  v4 = diag_has(AF_INET, (unsigned)port);
  v6 = v4 == 1 ? 0 : diag_has(AF_INET6, (unsigned)port);
  if (v4 >= 0 && v6 >= 0) {
    *listening = v4 || v6;
    return 0;
  }
  rc = table_has("/proc/net/tcp", (unsigned)port, err);
  if (rc == 0)
    rc = table_has("/proc/net/tcp6", (unsigned)port, err);
  if (rc < 0)
    return rc;
  *listening = rc;
  return 0;
}
