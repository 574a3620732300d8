// SPDX-License-Identifier: GPL-2.0
/*
 * Tests TCP_REPAIR_TS_RECENT (kernel-patch/series/0001-...) on a TCP pair
 * over loopback in a private network namespace.  Why: ts_recent is the
 * peer's last TSval, which only a patched kernel exposes; the exact value
 * to expect is taken from the segments themselves (an AF_PACKET socket
 * on lo), not from a clock.  On a kernel without the option it reports
 * "stock path" (getsockopt fails with ENOPROTOOPT) and exits 0, or 1 with
 * --expect-patched (used inside the qemu guest).  Needs CAP_SYS_ADMIN
 * (unshare) and CAP_NET_ADMIN (repair mode, AF_PACKET).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <net/ethernet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef TCP_REPAIR_TS_RECENT
#define TCP_REPAIR_TS_RECENT 47
#endif
#ifndef TCP_REPAIR_OFF_NO_WP
#define TCP_REPAIR_OFF_NO_WP -1
#endif

#define TEST_NAME "ts_recent"
#include "guest.h"

/*
 * Reads every captured segment; remembers the last TSval sent from port
 * p[0] to p[1] in tsval[0] and from p[1] to p[0] in tsval[1].
 */
static void drain(int pkt, const uint16_t p[2], uint32_t tsval[2], int seen[2])
{
	unsigned char b[2048];
	struct sockaddr_ll ll;
	socklen_t sl;
	ssize_t n;

	while ((n = recvfrom(pkt, b, sizeof(b), MSG_DONTWAIT,
			     (struct sockaddr *)&ll, (sl = sizeof(ll), &sl))) > 0) {
		int ihl = (b[0] & 15) * 4, doff, dir, i;
		unsigned char *t = b + ihl;

		if (ll.sll_pkttype == PACKET_OUTGOING || b[9] != IPPROTO_TCP ||
		    n < ihl + 20)
			continue;
		dir = ntohs(*(uint16_t *)t) == p[1];
		if (ntohs(*(uint16_t *)t) != p[dir] ||
		    ntohs(*(uint16_t *)(t + 2)) != p[!dir])
			continue;
		doff = (t[12] >> 4) * 4;
		for (i = 20; i < doff && ihl + i < n;) {
			if (t[i] == 0)
				break;
			if (t[i] == 1) {
				i++;
				continue;
			}
			if (t[i] == 8 && t[i + 1] == 10) {
				tsval[dir] = ntohl(*(uint32_t *)(t + i + 2));
				seen[dir] = 1;
			}
			if (t[i + 1] < 2)
				break;
			i += t[i + 1];
		}
	}
}

static int wait_readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1;
}

int main(int argc, char **argv)
{
	int stock;
	int expect_patched = argc > 1 && !strcmp(argv[1], "--expect-patched");
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	uint32_t v, ts_a, ts_b, tsval[2] = { 0, 0 }, now_a;
	int seen[2] = { 0, 0 }, one = 1, lfd, a, b, pkt, ok, i;
	uint16_t port[2];	/* a's, b's */
	struct tcp_info ti;
	char d[160], buf[100];

	lfd = private_lo();
	stock = stock_path(lfd, TCP_REPAIR_TS_RECENT, "TCP_REPAIR_TS_RECENT", expect_patched, &v);
	if (stock >= 0)
		return stock;
	result(v == 0, "get_unconnected", "");

	pkt = socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_IP));
	if (pkt < 0)
		die("socket(AF_PACKET)");
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 1) ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl))
		die("listen");
	a = socket(AF_INET, SOCK_STREAM, 0);
	if (a < 0 || connect(a, (struct sockaddr *)&sa, sizeof(sa)))
		die("connect");
	b = accept(lfd, NULL, NULL);
	if (b < 0)
		die("accept");
	port[1] = ntohs(sa.sin_port);
	sl = sizeof(sa);
	getsockname(a, (struct sockaddr *)&sa, &sl);
	port[0] = ntohs(sa.sin_port);
	sl = sizeof(ti);
	if (getsockopt(b, IPPROTO_TCP, TCP_INFO, &ti, &sl))
		die("TCP_INFO");
	result(ti.tcpi_options & TCPI_OPT_TIMESTAMPS, "timestamps_negotiated", "");

	/* Some data both ways, then let delayed ACKs go out. */
	for (i = 0; i < 3; i++) {
		memset(buf, 'a' + i, sizeof(buf));
		if (write(a, buf, 100) != 100 || read(b, buf, 100) != 100 ||
		    write(b, buf, 100) != 100 || read(a, buf, 100) != 100)
			die("exchange");
		usleep(20000);
	}
	usleep(300000);
	drain(pkt, port, tsval, seen);
	if (get_int(b, TCP_REPAIR_TS_RECENT, &ts_b) ||
	    get_int(a, TCP_REPAIR_TS_RECENT, &ts_a))
		die("getsockopt(TCP_REPAIR_TS_RECENT)");
	snprintf(d, sizeof(d), "b's ts_recent %u, a's last TSval on the wire %u",
		 ts_b, tsval[0]);
	result(seen[0] && ts_b == tsval[0], "get_equals_peer_tsval_a_to_b", d);
	snprintf(d, sizeof(d), "a's ts_recent %u, b's last TSval on the wire %u",
		 ts_a, tsval[1]);
	result(seen[1] && ts_a == tsval[1], "get_equals_peer_tsval_b_to_a", d);
	if (get_int(a, TCP_TIMESTAMP, &now_a))
		die("TCP_TIMESTAMP");
	snprintf(d, sizeof(d), "a's clock %u - b's ts_recent %u = %d ms",
		 now_a, ts_b, (int32_t)(now_a - ts_b));
	result((int32_t)(now_a + 1 - ts_b) >= 0 &&
	       (int32_t)(now_a - ts_b) < 60000, "peer_clock_not_behind", d);

	expect_errno(b, TCP_REPAIR_TS_RECENT, 12345, EPERM, "set_outside_repair_eperm");

	if (set_int(b, TCP_REPAIR, TCP_REPAIR_ON))
		die("TCP_REPAIR on");
	ok = set_int(b, TCP_REPAIR_TS_RECENT, 0x12345678) == 0 &&
	     get_int(b, TCP_REPAIR_TS_RECENT, &v) == 0 && v == 0x12345678;
	snprintf(d, sizeof(d), "read back 0x%x", v);
	result(ok, "set_in_repair_reads_back", d);

	/*
	 * The stack must use the value: a ts_recent 2^30 ahead of a's clock
	 * makes b drop a's next segment (PAWS); one at a's clock lets a's
	 * retransmission in.
	 */
	get_int(a, TCP_TIMESTAMP, &now_a);
	if (set_int(b, TCP_REPAIR_TS_RECENT, now_a + 0x40000000) ||
	    set_int(b, TCP_REPAIR, TCP_REPAIR_OFF_NO_WP))
		die("set future ts_recent");
	if (write(a, "x", 1) != 1)
		die("write");
	result(!wait_readable(b, 1000), "paws_drops_older_tsval", "");
	get_int(a, TCP_TIMESTAMP, &now_a);
	if (set_int(b, TCP_REPAIR, TCP_REPAIR_ON) ||
	    set_int(b, TCP_REPAIR_TS_RECENT, now_a) ||
	    set_int(b, TCP_REPAIR, TCP_REPAIR_OFF_NO_WP))
		die("set current ts_recent");
	ok = wait_readable(b, 20000) && read(b, buf, 1) == 1 && buf[0] == 'x';
	result(ok, "paws_accepts_after_reset", "retransmission received");

	printf("SUMMARY ts_recent: %d failed\n", failures);
	return failures != 0;
}
