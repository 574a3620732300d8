/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The image as an opaque object, for programs that read or rewrite ICI
 * images without recreating anything (`tcpcp show`, `tcpcp edit`, the
 * CRIU plugin's restore): decode and check, the connection's two ends,
 * a new address or port for either, encode again.  What is decoded has
 * passed every check tcpcp_create() would make, and what is encoded is
 * checked again, so an edit can never produce an image that tcpcp would
 * refuse to read.  The fields themselves are images/ici.proto's: a
 * program that wants them all (like `crit show`) reads the schema's
 * generated structure through tcpcp_image_ici().
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct tcpcp_image {
	TcpcpIci *ici;
};

TCPCP_EXPORT struct tcpcp_image *tcpcp_image_read(const void *buf, size_t len)
{
	struct tcpcp_image *img;

	tcpcp_clear_error();
	img = calloc(1, sizeof(*img));
	if (!img) {
		tcpcp_fail(ENOMEM, "out of memory");
		return NULL;
	}
	img->ici = tcpcp_image_decode(buf, len);
	if (!img->ici) {
		int err = errno;

		free(img);
		errno = err;
		return NULL;
	}
	return img;
}

TCPCP_EXPORT void tcpcp_image_free(struct tcpcp_image *img)
{
	if (!img)
		return;
	tcpcp_ici__free_unpacked(img->ici, NULL);
	free(img);
}

TCPCP_EXPORT void *tcpcp_image_write(const struct tcpcp_image *img, size_t *len)
{
	void *buf;

	tcpcp_clear_error();
	if (tcpcp_ici_check(img->ici))
		return NULL;
	buf = tcpcp_image_encode(img->ici, len);
	return buf;
}

TCPCP_EXPORT int tcpcp_image_ends(const struct tcpcp_image *img,
				  struct sockaddr_storage *local, struct sockaddr_storage *peer)
{
	socklen_t len;

	if (local)
		tcpcp_sockaddr_from_endpoint(img->ici->local, local, &len);
	if (peer)
		tcpcp_sockaddr_from_endpoint(img->ici->peer, peer, &len);
	return 0;
}

static int set_end(TcpcpEndpoint *ep, const struct sockaddr *sa, const char *which)
{
	const void *addr;
	uint16_t port;

	if (!sa)
		return 0;
	if (sa->sa_family != (int)ep->family)
		return tcpcp_fail(EAFNOSUPPORT, "the image's %s address is IPv%d; an end of "
				  "another family cannot replace it", which,
				  ep->family == AF_INET ? 4 : 6);
	if (sa->sa_family == AF_INET) {
		addr = &((const struct sockaddr_in *)sa)->sin_addr;
		port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
	} else {
		addr = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	}
	/* The length was checked at decoding: 4 or 16, as the family says. */
	memcpy(ep->addr.data, addr, ep->addr.len);
	if (port)
		ep->port = port;
	return 0;
}

TCPCP_EXPORT int tcpcp_image_set_ends(struct tcpcp_image *img, const struct sockaddr *local,
				      const struct sockaddr *peer)
{
	TcpcpEndpoint l = *img->ici->local, p = *img->ici->peer;
	uint8_t lb[16], pb[16];

	tcpcp_clear_error();
	/* On copies: a refusal leaves the image as it was. */
	memcpy(lb, l.addr.data, l.addr.len);
	memcpy(pb, p.addr.data, p.addr.len);
	l.addr.data = lb;
	p.addr.data = pb;
	if (set_end(&l, local, "local") || set_end(&p, peer, "peer"))
		return -1;
	memcpy(img->ici->local->addr.data, lb, l.addr.len);
	memcpy(img->ici->peer->addr.data, pb, p.addr.len);
	img->ici->local->port = l.port;
	img->ici->peer->port = p.port;
	return 0;
}

TCPCP_EXPORT const struct TcpcpIci *tcpcp_image_ici(const struct tcpcp_image *img)
{
	return img->ici;
}
