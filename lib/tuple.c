/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* An AF_INET6 socket talking to an IPv4 peer puts IPv4 on the wire; the
 * gate must match what the wire carries. */
static void addr_from_sockaddr(const struct sockaddr_storage *ss, int *family,
			       void *addr, uint16_t *port)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)ss;

		*family = AF_INET;
		memcpy(addr, &sin->sin_addr, 4);
		*port = ntohs(sin->sin_port);
	} else {
		const struct sockaddr_in6 *sin6 = (const void *)ss;

		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			*family = AF_INET;
			memcpy(addr, &sin6->sin6_addr.s6_addr[12], 4);
		} else {
			*family = AF_INET6;
			memcpy(addr, &sin6->sin6_addr, 16);
		}
		*port = ntohs(sin6->sin6_port);
	}
}

void tcpcp_tuple_from_sockaddrs(const struct sockaddr_storage *l,
				const struct sockaddr_storage *p, struct tcpcp_tuple *t)
{
	int pf;

	memset(t, 0, sizeof(*t));
	addr_from_sockaddr(l, &t->family, &t->local, &t->lport);
	addr_from_sockaddr(p, &pf, &t->peer, &t->pport);
}

int tcpcp_tuple_from_socket(int s, struct tcpcp_tuple *t)
{
	struct sockaddr_storage l, p;
	socklen_t ll = sizeof(l), pl = sizeof(p);

	if (getsockname(s, (struct sockaddr *)&l, &ll))
		return tcpcp_fail(errno, "getsockname on fd %d: %s", s, strerror(errno));
	if (getpeername(s, (struct sockaddr *)&p, &pl))
		return tcpcp_fail(errno, "fd %d is not connected: %s", s, strerror(errno));
	if (l.ss_family != AF_INET && l.ss_family != AF_INET6)
		return tcpcp_fail(EAFNOSUPPORT, "fd %d is not an IPv4/IPv6 socket", s);
	tcpcp_tuple_from_sockaddrs(&l, &p, t);
	return 0;
}

TCPCP_EXPORT int tcpcp_ends_of(int s, struct tcpcp_ends *e)
{
	socklen_t ll = sizeof(e->local), pl = sizeof(e->peer);

	tcpcp_clear_error();
	if (getsockname(s, (struct sockaddr *)&e->local, &ll))
		tcpcp_fail(errno, "getsockname on fd %d: %s", s, strerror(errno));
	else if (getpeername(s, (struct sockaddr *)&e->peer, &pl))
		tcpcp_fail(errno, "fd %d is not connected: %s", s, strerror(errno));
	else if (e->local.ss_family != AF_INET && e->local.ss_family != AF_INET6)
		tcpcp_fail(EAFNOSUPPORT, "fd %d is not an IPv4/IPv6 socket", s);
	else
		return 0;
	return -1;
}

TCPCP_EXPORT int tcpcp_ends_str(const struct tcpcp_ends *e, char *buf, size_t len)
{
	struct tcpcp_tuple t;
	char probe[128];

	tcpcp_clear_error();
	if ((e->local.ss_family != AF_INET && e->local.ss_family != AF_INET6) ||
	    e->peer.ss_family != e->local.ss_family) {
		tcpcp_fail(EAFNOSUPPORT, "not an IPv4 or IPv6 pair of ends");
		return -1;
	}
	tcpcp_tuple_from_sockaddrs(&e->local, &e->peer, &t);
	tcpcp_tuple_str(&t, probe, sizeof(probe));
	if (strlen(probe) >= len) {
		tcpcp_fail(ENOSPC, "%zu bytes are too few for \"%s\"", len, probe);
		return -1;
	}
	memcpy(buf, probe, strlen(probe) + 1);
	return 0;
}

int tcpcp_sockaddr_from_endpoint(const TcpcpEndpoint *ep,
				 struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (ep->family == AF_INET) {
		struct sockaddr_in *sin = (void *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(ep->port);
		memcpy(&sin->sin_addr, ep->addr.data, 4);
		*len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (void *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(ep->port);
		memcpy(&sin6->sin6_addr, ep->addr.data, 16);
		sin6->sin6_scope_id = ep->has_scope_id ? ep->scope_id : 0;
		*len = sizeof(*sin6);
	}
	return 0;
}

void tcpcp_tuple_str(const struct tcpcp_tuple *t, char *buf, size_t len)
{
	char l[INET6_ADDRSTRLEN], p[INET6_ADDRSTRLEN];
	const char *fmt = t->family == AF_INET6 ? "[%s]:%u -> [%s]:%u" : "%s:%u -> %s:%u";

	inet_ntop(t->family, &t->local, l, sizeof(l));
	inet_ntop(t->family, &t->peer, p, sizeof(p));
	snprintf(buf, len, fmt, l, t->lport, p, t->pport);
}
