/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "internal.h"

int tcpcp_repair(int s, int mode)
{
	if (!setsockopt(s, IPPROTO_TCP, TCP_REPAIR, &mode, sizeof(mode)))
		return 0;
	if (errno == EPERM)
		return tcpcp_fail(EPERM, "TCP_REPAIR refused: CAP_NET_ADMIN is needed");
	return tcpcp_fail(errno, "TCP_REPAIR %d on fd %d: %s", mode, s, strerror(errno));
}

int tcpcp_repair_queue(int s, int q)
{
	if (!setsockopt(s, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q)))
		return 0;
	return tcpcp_fail(errno, "TCP_REPAIR_QUEUE %d: %s", q, strerror(errno));
}

static int getint(int s, int level, int opt, int *val)
{
	socklen_t len = sizeof(*val);

	return getsockopt(s, level, opt, val, &len);
}

int tcpcp_tcp_state(int s)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	return getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &len) ? -1 : ti.tcpi_state;
}

const char *tcpcp_state_name(int st)
{
	static const char *const names[] = {
		"?", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1",
		"FIN_WAIT2", "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK",
		"LISTEN", "CLOSING",
	};

	return st > 0 && st < (int)(sizeof(names) / sizeof(names[0])) ? names[st] : "?";
}

TCPCP_EXPORT int tcpcp_passable(int s, const char **state)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int v;

	tcpcp_clear_error();
	if (getint(s, SOL_SOCKET, SO_PROTOCOL, &v) || v != IPPROTO_TCP) {
		tcpcp_fail(EPROTONOSUPPORT, "fd %d is not a TCP socket", s);
		return -1;
	}
	memset(&ti, 0, sizeof(ti));
	if (getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &len)) {
		tcpcp_fail(errno, "TCP_INFO on fd %d: %s", s, strerror(errno));
		return -1;
	}
	if (tcpcp_state_passable(ti.tcpi_state))
		return 1;
	if (state)
		*state = tcpcp_state_name(ti.tcpi_state);
	return 0;
}

/* Every way a caller can hand us the wrong thing gets its own message. */
int tcpcp_check_tcp_socket(int s, int *state)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	struct stat st;
	int v;

	if (fstat(s, &st))
		return tcpcp_fail(errno, "fd %d: %s", s, strerror(errno));
	if (!S_ISSOCK(st.st_mode))
		return tcpcp_fail(ENOTSOCK, "fd %d is not a socket", s);
	if (getint(s, SOL_SOCKET, SO_DOMAIN, &v) || (v != AF_INET && v != AF_INET6))
		return tcpcp_fail(EAFNOSUPPORT, "fd %d is not an IPv4 or IPv6 socket", s);
	if (getint(s, SOL_SOCKET, SO_TYPE, &v) || v != SOCK_STREAM ||
	    getint(s, SOL_SOCKET, SO_PROTOCOL, &v) || v != IPPROTO_TCP)
		return tcpcp_fail(EPROTONOSUPPORT, "fd %d is not a TCP socket", s);
	memset(&ti, 0, sizeof(ti));
	if (getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &len))
		return tcpcp_fail(errno, "TCP_INFO on fd %d: %s", s, strerror(errno));
	*state = ti.tcpi_state;
	if (!tcpcp_state_passable(ti.tcpi_state))
		return tcpcp_fail(ENOTCONN, "fd %d is in state %s, not ESTABLISHED or half-closed",
				  s, tcpcp_state_name(ti.tcpi_state));
	return 0;
}
