/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Connections named the way a user finds them in ss(8) output. */
#include <stdio.h>
#include <sys/socket.h>

#include "internal.h"
#include "plugin.h"

void sock_name(int s, char *buf, size_t len)
{
	struct tcpcp_tuple t;

	if (tcpcp_tuple_from_socket(s, &t))
		snprintf(buf, len, "(unconnected)");
	else
		tcpcp_tuple_str(&t, buf, len);
}

int image_tuple(const void *img, size_t len, struct tcpcp_tuple *t)
{
	struct sockaddr_storage l, p;
	TcpcpIci *ici;
	socklen_t sl;

	ici = tcpcp_image_decode(img, len);
	if (!ici)
		return -1;
	tcpcp_sockaddr_from_endpoint(ici->local, &l, &sl);
	tcpcp_sockaddr_from_endpoint(ici->peer, &p, &sl);
	tcpcp_tuple_from_sockaddrs(&l, &p, t);
	tcpcp_ici__free_unpacked(ici, NULL);
	return 0;
}

void image_name(const void *img, size_t len, char *buf, size_t blen)
{
	struct tcpcp_tuple t;

	if (image_tuple(img, len, &t))
		snprintf(buf, blen, "(unreadable image)");
	else
		tcpcp_tuple_str(&t, buf, blen);
}
