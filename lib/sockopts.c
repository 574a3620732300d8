/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Socket and TCP options the user set and would lose with a plain
 * recreation.  Saving is best effort per option (an option a kernel
 * lacks is simply not recorded); restoring an option that the image
 * carries must succeed, or the recreated endpoint would behave
 * differently from the original without anybody noticing.
 */
#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"

static bool get(int s, int level, int opt, uint32_t *val)
{
	socklen_t len = sizeof(int);
	int v = 0;

	if (getsockopt(s, level, opt, &v, &len))
		return false;
	*val = (uint32_t)v;
	return true;
}

static int set(int s, int level, int opt, uint32_t val, const char *name)
{
	int v = (int)val;

	if (!setsockopt(s, level, opt, &v, sizeof(v)))
		return 0;
	return tcpcp_fail(errno, "cannot restore %s=%u: %s", name, val, strerror(errno));
}

#define SAVE(level, opt, field) \
	(so->has_##field = get(s, level, opt, &so->field))
#define SAVE_BOOL(level, opt, field) do {				\
		uint32_t v_;						\
		if ((so->has_##field = get(s, level, opt, &v_)))	\
			so->field = v_ != 0;				\
	} while (0)

/* Linux 5.14: which buffer sizes the application fixed (SO_SNDBUF /
 * SO_RCVBUF lock them) and which the kernel autotunes. */
#ifndef SO_BUF_LOCK
#define SO_BUF_LOCK 72
#endif
#define SNDBUF_LOCK	1	/* SOCK_SNDBUF_LOCK */
#define RCVBUF_LOCK	2	/* SOCK_RCVBUF_LOCK */

static void save_buf_lock(int s, TcpcpSockopts *so)
{
	uint32_t v;

	if (!get(s, SOL_SOCKET, SO_BUF_LOCK, &v))
		return;		/* older kernel: unknown */
	so->has_sndbuf_locked = so->has_rcvbuf_locked = true;
	so->sndbuf_locked = v & SNDBUF_LOCK;
	so->rcvbuf_locked = v & RCVBUF_LOCK;
}

int tcpcp_sockopts_save(int s, int family, TcpcpSockopts *so)
{
	char ca[TCPCP_CA_NAME_MAX + 1] = "";
	socklen_t len = TCPCP_CA_NAME_MAX;
	bool v6 = family == AF_INET6;

	tcpcp_sockopts__init(so);
	SAVE_BOOL(IPPROTO_TCP, TCP_NODELAY, nodelay);
	SAVE_BOOL(SOL_SOCKET, SO_KEEPALIVE, keepalive);
	SAVE(IPPROTO_TCP, TCP_KEEPIDLE, keepidle);
	SAVE(IPPROTO_TCP, TCP_KEEPINTVL, keepintvl);
	SAVE(IPPROTO_TCP, TCP_KEEPCNT, keepcnt);
	SAVE(IPPROTO_TCP, TCP_USER_TIMEOUT, user_timeout);
	SAVE(IPPROTO_TCP, TCP_NOTSENT_LOWAT, notsent_lowat);
	SAVE(IPPROTO_TCP, TCP_WINDOW_CLAMP, window_clamp);
	SAVE(SOL_SOCKET, SO_SNDBUF, sndbuf);
	SAVE(SOL_SOCKET, SO_RCVBUF, rcvbuf);
	save_buf_lock(s, so);
	SAVE(SOL_SOCKET, SO_MARK, mark);
	SAVE(SOL_SOCKET, SO_PRIORITY, priority);
	SAVE_BOOL(SOL_SOCKET, SO_REUSEADDR, reuseaddr);
	SAVE_BOOL(SOL_SOCKET, SO_REUSEPORT, reuseport);
	if (v6) {
		SAVE(IPPROTO_IPV6, IPV6_TCLASS, tos);
		SAVE(IPPROTO_IPV6, IPV6_UNICAST_HOPS, ttl);
	} else {
		SAVE(IPPROTO_IP, IP_TOS, tos);
		SAVE(IPPROTO_IP, IP_TTL, ttl);
	}
	if (!getsockopt(s, IPPROTO_TCP, TCP_CONGESTION, ca, &len) && ca[0]) {
		ca[TCPCP_CA_NAME_MAX] = '\0';
		so->congestion = strdup(ca);
		if (!so->congestion)
			return tcpcp_fail(ENOMEM, "out of memory");
	}
	return 0;
}

void tcpcp_sockopts_free(TcpcpSockopts *so)
{
	free(so->congestion);
	so->congestion = NULL;
}

/* Before connect(): the congestion module should be initialised once,
 * and SO_REUSEPORT only matters at bind time.  (The buffers' sizes are
 * create.c's size_buffers(): the ICI's, or larger to take the queues
 * back.) */
int tcpcp_sockopts_restore_early(int s, int family, const TcpcpSockopts *so)
{
	int err = 0;

	(void)family;
	if (!so)
		return 0;
	if (so->has_reuseport && so->reuseport &&
	    (err = set(s, SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT")))
		return err;
	if (so->congestion &&
	    setsockopt(s, IPPROTO_TCP, TCP_CONGESTION, so->congestion, strlen(so->congestion)))
		return tcpcp_fail(errno, "congestion control \"%s\" is not available here: %s",
				  so->congestion, strerror(errno));
	return 0;
}

#define RESTORE(level, opt, field, name) do {					\
		if (so->has_##field && (err = set(s, level, opt, so->field, name)))	\
			return err;						\
	} while (0)

/* After the connection exists; the mark in particular must not be set
 * before the endpoint is gated, or a policy route could steer the
 * (dropped) first segments differently. */
int tcpcp_sockopts_restore_late(int s, int family, const TcpcpSockopts *so)
{
	int err = 0;

	if (!so)
		return 0;
	RESTORE(IPPROTO_TCP, TCP_NODELAY, nodelay, "TCP_NODELAY");
	RESTORE(IPPROTO_TCP, TCP_KEEPIDLE, keepidle, "TCP_KEEPIDLE");
	RESTORE(IPPROTO_TCP, TCP_KEEPINTVL, keepintvl, "TCP_KEEPINTVL");
	RESTORE(IPPROTO_TCP, TCP_KEEPCNT, keepcnt, "TCP_KEEPCNT");
	RESTORE(SOL_SOCKET, SO_KEEPALIVE, keepalive, "SO_KEEPALIVE");
	RESTORE(IPPROTO_TCP, TCP_USER_TIMEOUT, user_timeout, "TCP_USER_TIMEOUT");
	RESTORE(IPPROTO_TCP, TCP_NOTSENT_LOWAT, notsent_lowat, "TCP_NOTSENT_LOWAT");
	RESTORE(SOL_SOCKET, SO_PRIORITY, priority, "SO_PRIORITY");
	if (so->has_mark && so->mark)
		RESTORE(SOL_SOCKET, SO_MARK, mark, "SO_MARK");
	/* Forcing the sizes to take the queues back locked both; what the
	 * origin autotuned autotunes here again, from the size it had. */
	if (so->has_sndbuf_locked && so->has_rcvbuf_locked &&
	    (err = set(s, SOL_SOCKET, SO_BUF_LOCK, (so->sndbuf_locked ? SNDBUF_LOCK : 0) |
		       (so->rcvbuf_locked ? RCVBUF_LOCK : 0), "SO_BUF_LOCK")))
		return err;
	/* 0 is "unset" and refused on a connected socket. */
	if (so->window_clamp)
		RESTORE(IPPROTO_TCP, TCP_WINDOW_CLAMP, window_clamp, "TCP_WINDOW_CLAMP");
	if (family == AF_INET6) {
		RESTORE(IPPROTO_IPV6, IPV6_TCLASS, tos, "IPV6_TCLASS");
		RESTORE(IPPROTO_IPV6, IPV6_UNICAST_HOPS, ttl, "IPV6_UNICAST_HOPS");
	} else {
		RESTORE(IPPROTO_IP, IP_TOS, tos, "IP_TOS");
		RESTORE(IPPROTO_IP, IP_TTL, ttl, "IP_TTL");
	}
	return 0;
}

/* Leaving repair mode resets SO_REUSEADDR (the kernel forces reuse while
 * repairing and sets "no reuse" when it stops), so it goes back last. */
int tcpcp_sockopts_restore_reuse(int s, const TcpcpSockopts *so)
{
	int err = 0;

	if (so && so->has_reuseaddr && so->reuseaddr)
		RESTORE(SOL_SOCKET, SO_REUSEADDR, reuseaddr, "SO_REUSEADDR");
	return 0;
}
