/* Whether something listens on a TCP port of this host, asked of the
 * kernel (sock_diag, else /proc/net): the process that holds the port is
 * sent nothing (a probe connection would reach it, and use up the one
 * accept of a listener like nc). */
#ifndef CAIRN_LISTEN_H
#define CAIRN_LISTEN_H

#include "common/error.h"

/* Sets *listening to 1 when a TCP socket is in state LISTEN on port (1 to
 * 65535) on any local address, IPv4 or IPv6, of this network namespace,
 * else 0: the kernel's listening sockets (a sock_diag dump of TCP_LISTEN
 * alone; where netlink is refused, the lines of /proc/net/tcp and
 * /proc/net/tcp6 whose state is 0A).
 * Returns 0, or CAIRN_E_IO with "cannot read '/proc/net/tcp': WHY" (a
 * missing /proc/net/tcp6, a kernel without IPv6, means nothing listens
 * there), or CAIRN_E_INVAL for a port out of range. */
int cairn_tcp_listening(int port, int *listening, struct cairn_error *err);

#endif
