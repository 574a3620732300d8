/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tcpcp rewrite: change an image's local address (and port) in place,
 * the way one edits a CRIU image with crit.  For restoring where the
 * service has another address and something on the path (NAT, a load
 * balancer) translates between it and the one the peer knows: the peer's
 * view of the connection is not changed.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tcpcp-cli.h"

/* ADDR, [ADDR], ADDR:PORT (IPv4) or [ADDR]:PORT; port 0 if absent. */
static int parse_addr(const char *arg, int *family, uint8_t addr[16], unsigned int *port)
{
	char buf[INET6_ADDRSTRLEN + 8], *a = buf, *p = NULL, *end;	/* [ADDR]:PORT */

	if (strlen(arg) >= sizeof(buf))
		return -1;
	memcpy(buf, arg, strlen(arg) + 1);
	if (*a == '[') {
		char *close = strchr(++a, ']');

		if (!close)
			return -1;
		*close = 0;
		if (close[1] == ':')
			p = close + 2;
		else if (close[1])
			return -1;
	} else if (strchr(a, ':') == strrchr(a, ':') && strchr(a, ':')) {
		p = strchr(a, ':');	/* one colon: IPv4 with a port */
		*p++ = 0;
	}
	*port = 0;
	if (p) {
		unsigned long v = strtoul(p, &end, 10);

		if (*end || end == p || !v || v > 65535)
			return -1;
		*port = (unsigned int)v;
	}
	if (inet_pton(AF_INET, a, addr) == 1)
		*family = AF_INET;
	else if (inet_pton(AF_INET6, a, addr) == 1)
		*family = AF_INET6;
	else
		return -1;
	return 0;
}

static void endpoint_str(const TcpcpEndpoint *ep, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";

	inet_ntop((int)ep->family, ep->addr.data, a, sizeof(a));
	snprintf(buf, len, ep->family == AF_INET6 ? "[%s]:%u" : "%s:%u", a, ep->port);
}

int cmd_rewrite(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "local", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	const char *local = NULL, *path;
	char before[64], after[64];
	struct image_out out;
	unsigned int port;
	uint8_t addr[16];
	TcpcpIci *ici;
	size_t len;
	void *img;
	int c, family, err;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'l')
			die_usage("rewrite FILE --local ADDR[:PORT]");
		local = optarg;
	}
	if (optind != argc - 1 || !local)
		die_usage("rewrite FILE --local ADDR[:PORT]");
	path = argv[optind];
	if (parse_addr(local, &family, addr, &port))
		die_usage("--local '%s' is not ADDR, ADDR:PORT or [ADDR]:PORT", local);

	ici = image_load(path);
	if (!ici)
		return EXIT_FAIL;
	if ((int)ici->local->family != family) {
		tcpcp_ici__free_unpacked(ici, NULL);
		return fail("%s: the connection is %s, --local is not", path,
			    family == AF_INET ? "IPv6" : "IPv4");
	}
	endpoint_str(ici->local, before, sizeof(before));
	/* The decoded image owns its buffers: write into them. */
	memcpy(ici->local->addr.data, addr, ici->local->addr.len);
	if (port)
		ici->local->port = port;
	endpoint_str(ici->local, after, sizeof(after));
	img = tcpcp_image_encode(ici, &len);
	tcpcp_ici__free_unpacked(ici, NULL);
	if (!img)
		return fail("%s: %s", path, tcpcp_strerror());
	if (image_open(&out, path)) {
		free(img);
		return EXIT_FAIL;
	}
	err = image_commit(&out, img, len);
	free(img);
	if (err)
		return EXIT_FAIL;
	printf("%s: local %s -> %s\n", path, before, after);
	return EXIT_OK;
}
