/* SPDX-License-Identifier: GPL-2.0-or-later */
/* tcpcp create: recreate an endpoint and hand it to a program. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "tcpcp.h"
#include "tcpcp-cli.h"

struct create_args {
	struct tcpcp_create_opts opts;
	struct sockaddr_storage local;
	unsigned int bound_port;
	int activate, fdnum;
	const char *image;
	char **cmd;
};

static void parse_local(const char *s, struct create_args *a)
{
	struct sockaddr_in *sin = (void *)&a->local;
	struct sockaddr_in6 *sin6 = (void *)&a->local;

	memset(&a->local, 0, sizeof(a->local));
	if (inet_pton(AF_INET, s, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		a->opts.local_len = sizeof(*sin);
	} else if (inet_pton(AF_INET6, s, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		a->opts.local_len = sizeof(*sin6);
	} else {
		die_usage("--local '%s' is not an IPv4 or IPv6 address", s);
	}
	a->opts.local = (struct sockaddr *)&a->local;
}

static void parse_port_mode(const char *s, struct create_args *a)
{
	char *end;

	if (!strcmp(s, "same")) {
		a->opts.port_mode = TCPCP_PORT_SAME;
	} else if (!strcmp(s, "any")) {
		a->opts.port_mode = TCPCP_PORT_ANY;
	} else if (!strncmp(s, "bound:", 6)) {
		a->opts.port_mode = TCPCP_PORT_BOUND;
		a->bound_port = (unsigned int)strtoul(s + 6, &end, 10);
		if (*end || end == s + 6 || !a->bound_port || a->bound_port > 65535)
			die_usage("--port-mode bound:PORT needs a port 1..65535");
	} else {
		die_usage("--port-mode is same, any or bound:PORT");
	}
}

static void parse(int argc, char **argv, struct create_args *a)
{
	static const struct option opts[] = {
		{ "port-mode", required_argument, NULL, 'm' },
		{ "local", required_argument, NULL, 'l' },
		{ "transparent", no_argument, NULL, 't' },
		{ "keep-timestamp", no_argument, NULL, 'k' },
		{ "congestion", required_argument, NULL, 'c' },
		{ "activate", no_argument, NULL, 'a' },
		{ "fd-number", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	a->fdnum = 3;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'm': parse_port_mode(optarg, a); break;
		case 'l': parse_local(optarg, a); break;
		case 't': a->opts.transparent = 1; break;
		case 'k': a->opts.keep_timestamp = 1; break;
		case 'c':
			if ((c = parse_congestion(optarg)) < 0)
				die_usage("--congestion is fresh or carry");
			a->opts.congestion = (enum tcpcp_congestion)c;
			break;
		case 'a': a->activate = 1; break;
		case 'n':
			a->fdnum = atoi(optarg);
			if (a->fdnum < 3)
				die_usage("--fd-number must be 3 or more");
			break;
		default: die_usage("create: unexpected option");
		}
	}
	if (optind >= argc)
		die_usage("create: image FILE is required");
	a->image = argv[optind++];
	if (optind >= argc)
		die_usage("create: a COMMAND to hand the connection to is required (-- COMMAND ...)");
	a->cmd = argv + optind;
}

/* Paper section 2.1, second mode: the application binds first. */
static int bound_socket(struct create_args *a)
{
	struct sockaddr_storage ss;
	int s, one = 1;

	if (!a->opts.local)
		return -fail("create: --port-mode bound:PORT needs --local ADDR to bind to");
	s = socket(a->local.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -fail("socket: %s", strerror(errno));
	memcpy(&ss, &a->local, sizeof(ss));
	if (ss.ss_family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)a->bound_port);
	else
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)a->bound_port);
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s, (struct sockaddr *)&ss, a->opts.local_len)) {
		fail("create: cannot bind port %u: %s", a->bound_port, strerror(errno));
		close(s);
		return -1;
	}
	return s;
}

static int hand_over(int s, struct create_args *a)
{
	char num[16];

	/* dup2 clears close-on-exec on the copy; an fd already in place
	 * keeps the flag the library gave it. */
	if (s != a->fdnum) {
		if (dup2(s, a->fdnum) < 0)
			return fail("create: dup2: %s", strerror(errno));
		close(s);
	} else if (fcntl(s, F_SETFD, 0)) {
		return fail("create: fcntl: %s", strerror(errno));
	}
	snprintf(num, sizeof(num), "%d", a->fdnum);
	setenv("TCPCP_FD", num, 1);
	execvp(a->cmd[0], a->cmd);
	return fail("create: cannot run %s: %s", a->cmd[0], strerror(errno));
}

int cmd_create(int argc, char **argv)
{
	struct create_args a;
	size_t len;
	void *img;
	int s, ret = EXIT_FAIL;

	memset(&a, 0, sizeof(a));
	a.opts.size = sizeof(a.opts);
	parse(argc, argv, &a);
	img = image_read(a.image, &len);
	if (!img)
		return EXIT_FAIL;
	if (a.opts.port_mode == TCPCP_PORT_BOUND) {
		a.opts.s = bound_socket(&a);
		if (a.opts.s < 0)
			goto out;
	}
	s = tcpcp_create_ex(img, len, &a.opts);
	if (s < 0) {
		fail("create: %s", tcpcp_strerror());
		if (a.opts.port_mode == TCPCP_PORT_BOUND)
			close(a.opts.s);
		goto out;
	}
	if (a.activate && tcpcp_activate_ex(s, img, len)) {
		fail("create: activate: %s", tcpcp_strerror());
		close(s);
		goto out;
	}
	free(img);
	img = NULL;
	ret = hand_over(s, &a);
	/* exec failed: a socket still in repair mode closes silently; an
	 * activated one would FIN, but the peer then gets a clean end. */
	close(s);
out:
	free(img);
	return ret;
}
