// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * switch_cost: what one flow: traffic switch costs, through the library
 * (tcpcp_switch_run: a libnftnl batch on a kept netlink socket) and, side
 * by side, through what it replaced (one libnftables text command per
 * element, context kept, run inside the gateway's namespace).
 *
 *     switch_cost GATEWAY-NETNS N
 *
 * N loopback connections here; each is steered once by each method (the
 * text method's elements name the listener's port plus one, so that
 * neither method finds the other's element).  Prints one JSON
 * line: mean microseconds per switch, the first (which creates the
 * table and opens the socket) counted apart.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <nftables/libnftables.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <tcpcp.h>

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void die(const char *what, const char *why)
{
	fprintf(stderr, "switch_cost: %s: %s\n", what, why);
	exit(1);
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
	socklen_t alen = sizeof(a);
	double lib_first, lib = 0, nft_first, nft = 0;
	char spec[256], path[256], cmd[256];
	struct tcpcp_switch *sw;
	struct nft_ctx *ctx;
	int l, n, here, gw, *s;

	if (argc != 3 || (n = atoi(argv[2])) < 2)
		die("usage", "switch_cost GATEWAY-NETNS N (N >= 2)");
	s = calloc((size_t)n, sizeof(*s));
	l = socket(AF_INET, SOCK_STREAM, 0);
	if (!s || l < 0 || bind(l, (void *)&a, sizeof(a)) || listen(l, n) ||
	    getsockname(l, (void *)&a, &alen))
		die("listener", "cannot set up");
	for (int i = 0; i < n; i++) {
		int c = socket(AF_INET, SOCK_STREAM, 0);

		if (c < 0 || connect(c, (void *)&a, sizeof(a)) || (s[i] = accept(l, NULL, NULL)) < 0)
			die("connection", "cannot set up");
	}
	snprintf(spec, sizeof(spec), "flow:%s:3", argv[1]);
	if (!(sw = tcpcp_switch_new(spec)))
		die(spec, tcpcp_strerror());
	for (int i = 0; i < n; i++) {
		double t = now_us();

		if (tcpcp_switch_run(sw, s[i]))
			die("tcpcp_switch_run", tcpcp_strerror());
		t = now_us() - t;
		if (i)
			lib += t;
		else
			lib_first = t;
	}
	tcpcp_switch_free(sw);

	/* The replaced way: libnftables' text inside the gateway's netns. */
	snprintf(path, sizeof(path), "/run/netns/%s", argv[1]);
	here = open("/proc/self/ns/net", O_RDONLY);
	gw = open(path, O_RDONLY);
	if (here < 0 || gw < 0 || setns(gw, CLONE_NEWNET))
		die(path, "cannot enter");
	for (int i = 0; i < n; i++) {
		struct sockaddr_in p;
		socklen_t plen = sizeof(p);
		double t = now_us();

		if (!i) {
			ctx = nft_ctx_new(NFT_CTX_DEFAULT);
			nft_ctx_buffer_output(ctx);
			nft_ctx_buffer_error(ctx);
		}
		getpeername(s[i], (void *)&p, &plen);
		snprintf(cmd, sizeof(cmd), "add element inet tcpcp-steer v4 { 127.0.0.1 . %u . "
			 "127.0.0.1 . %u : 0x3 }", ntohs(p.sin_port), ntohs(a.sin_port) + 1u);
		if (nft_run_cmd_from_buffer(ctx, cmd))
			die("nft", nft_ctx_get_error_buffer(ctx));
		t = now_us() - t;
		if (i)
			nft += t;
		else
			nft_first = t;
	}
	nft_ctx_free(ctx);
	if (setns(here, CLONE_NEWNET))
		die("setns", "cannot come back");
	printf("{\"n\": %d, \"lib_first_us\": %.1f, \"lib_us\": %.1f, "
	       "\"nft_first_us\": %.1f, \"nft_us\": %.1f}\n",
	       n, lib_first, lib / (n - 1), nft_first, nft / (n - 1));
	return 0;
}
