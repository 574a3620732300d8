/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tcpcp edit: rewrite the addresses and ports of ICI images, the way crit
 * edits CRIU's images.  For a restore behind NAT or per-flow steering:
 * the recreated endpoint takes the new local address and port, the peer
 * (or a translator in front of it) keeps seeing the old ones.
 *
 *   tcpcp edit [--local ADDR] [--local-port PORT] [--peer ADDR]
 *              [--peer-port PORT] [--only-local ADDR] [--only-port PORT] FILE...
 *
 * Each file is rewritten atomically; --only-* select which images change
 * (say, one service's connections in a CRIU image directory) and leave
 * the others byte for byte as they were.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "tcpcp.h"
#include "tcpcp-cli.h"

struct addr {
	bool set;
	int family;
	uint8_t bytes[16];
};

struct edit {
	struct addr local, peer, only_local;
	int local_port, peer_port, only_port;	/* -1: unset */
};

static void parse_addr(const char *s, struct addr *a, const char *opt)
{
	a->set = true;
	if (inet_pton(AF_INET, s, a->bytes) == 1)
		a->family = AF_INET;
	else if (inet_pton(AF_INET6, s, a->bytes) == 1)
		a->family = AF_INET6;
	else
		die_usage("%s '%s' is not an IPv4 or IPv6 address", opt, s);
}

static int parse_port(const char *s, const char *opt)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (end == s || *end || v < 1 || v > 65535)
		die_usage("%s '%s' is not a port number (1-65535)", opt, s);
	return (int)v;
}

static bool selected(const struct sockaddr_storage *local, const struct edit *e)
{
	if (e->only_local.set && (local->ss_family != e->only_local.family ||
				  memcmp(sockaddr_addr(local), e->only_local.bytes,
					 local->ss_family == AF_INET ? 4 : 16)))
		return false;
	return e->only_port < 0 || sockaddr_port(local) == e->only_port;
}

/* @ss with the new address and port, where given (port 0: keep it). */
static int new_end(struct sockaddr_storage *ss, const struct addr *a, int port,
		   const char *path, const char *which)
{
	if (a->set && a->family != ss->ss_family)
		return fail("%s: the %s address is IPv%d, the new one is not",
			    path, which, ss->ss_family == AF_INET ? 4 : 6);
	if (a->set)
		memcpy(sockaddr_addr(ss), a->bytes, ss->ss_family == AF_INET ? 4 : 16);
	if (port >= 0)
		sockaddr_set_port(ss, (uint16_t)port);
	return 0;
}

static int edit_one(const char *path, const struct edit *e)
{
	struct sockaddr_storage local, peer;
	char before[64], after[64];
	struct tcpcp_image *img;
	struct image_out io;
	void *out = NULL;
	size_t olen;
	int rc = EXIT_FAIL;

	img = image_load(path);
	if (!img)
		return EXIT_FAIL;
	tcpcp_image_ends(img, &local, &peer);
	if (!selected(&local, e)) {
		rc = EXIT_OK;
		goto out;
	}
	sockaddr_str(&local, before, sizeof(before));
	if (new_end(&local, &e->local, e->local_port, path, "local") ||
	    new_end(&peer, &e->peer, e->peer_port, path, "peer"))
		goto out;
	sockaddr_str(&local, after, sizeof(after));
	if (tcpcp_image_set_ends(img, (struct sockaddr *)&local, (struct sockaddr *)&peer) ||
	    !(out = tcpcp_image_write(img, &olen))) {
		fail("%s: %s", path, tcpcp_strerror());
		goto out;
	}
	/* A temporary file renamed over the image: never half an image. */
	if (image_open(&io, path) || image_commit(&io, out, olen))
		goto out;
	printf("%s: local %s -> %s\n", path, before, after);
	rc = EXIT_OK;
out:
	free(out);
	tcpcp_image_free(img);
	return rc;
}

int cmd_edit(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "local", 1, NULL, 'l' }, { "local-port", 1, NULL, 'L' },
		{ "peer", 1, NULL, 'p' }, { "peer-port", 1, NULL, 'P' },
		{ "only-local", 1, NULL, 'o' }, { "only-port", 1, NULL, 'O' },
		{ NULL, 0, NULL, 0 },
	};
	struct edit e = { .local_port = -1, .peer_port = -1, .only_port = -1 };
	int c, i, rc = EXIT_OK;

	while ((c = getopt_long(argc, argv, "+", lo, NULL)) != -1) {
		switch (c) {
		case 'l': parse_addr(optarg, &e.local, "--local"); break;
		case 'L': e.local_port = parse_port(optarg, "--local-port"); break;
		case 'p': parse_addr(optarg, &e.peer, "--peer"); break;
		case 'P': e.peer_port = parse_port(optarg, "--peer-port"); break;
		case 'o': parse_addr(optarg, &e.only_local, "--only-local"); break;
		case 'O': e.only_port = parse_port(optarg, "--only-port"); break;
		default: die_usage("edit: unknown option");
		}
	}
	if (optind >= argc)
		die_usage("edit: no image file given");
	if (!e.local.set && !e.peer.set && e.local_port < 0 && e.peer_port < 0)
		die_usage("edit: nothing to change (--local, --local-port, --peer, --peer-port)");
	for (i = optind; i < argc; i++)
		if (edit_one(argv[i], &e))
			rc = EXIT_FAIL;
	return rc;
}
