// SPDX-License-Identifier: GPL-2.0
/*
 * libtcpcp's resurrection without a probe on a kernel with
 * TCP_REPAIR_RESYNC (kernel-patch/series/0003-...).  Why: the library
 * must arm the option when asked (tcpcp_create_opts.resync) and report
 * the skip (tcpcp_resync_skip()), and the resurrected connection must
 * then carry data both ways from where the peer stands.  A loopback pair
 * in a private namespace: the "primary" is captured (tcpcp_capture(),
 * the whole state, as the CRIU plugin takes it), writes K more bytes that
 * the peer reads and acknowledges, and dies silently (closed in repair
 * mode); the library recreates it from the old image on a new socket,
 * armed, and activates it.  Its window probe makes the peer answer with
 * an ACK K bytes beyond the image: skip must be K, and then the streams
 * go on intact in both directions.  A second round with nothing sent
 * after the capture: skip 0 after the wait.  On a kernel without the
 * option it reports "stock path" (and the library's create fails with a
 * clear message), and fails with --expect-patched.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <tcpcp.h>

#define TCP_REPAIR_RESYNC 50
#ifndef TCP_REPAIR
#define TCP_REPAIR 19
#endif

#define TEST_NAME "lib_resync"
#include "guest.h"
#include "wire.h"

static int read_check(int fd, uint32_t off, uint32_t n)
{
	unsigned char buf[4096];
	ssize_t k;

	while (n) {
		if (!wait_readable(fd, 3000))
			return -1;
		k = read(fd, buf, n < sizeof(buf) ? n : sizeof(buf));
		if (k <= 0)
			return -1;
		for (ssize_t i = 0; i < k; i++)
			if (buf[i] != pattern(off + (uint32_t)i))
				return -2;
		off += (uint32_t)k;
		n -= (uint32_t)k;
	}
	return 0;
}

/* One round: @k bytes written after the capture; returns the skip. */
static void round_trip(uint32_t k, const char *name)
{
	struct tcpcp_create_opts o = TCPCP_CREATE_OPTS_INIT;
	struct sockaddr_in sa;
	int lfd = loopback_listener(&sa), peer, b, b2;
	char d[300];
	int64_t skip;
	size_t len;
	void *img;

	peer = socket(AF_INET, SOCK_STREAM, 0);
	if (peer < 0 || connect(peer, (struct sockaddr *)&sa, sizeof(sa)))
		die("connect");
	b = accept(lfd, NULL, NULL);
	if (b < 0)
		die("accept");
	close(lfd);
	/* The checkpoint: the whole state, in repair mode for the read. */
	if (set_int(b, TCP_REPAIR, 1))
		die("TCP_REPAIR");
	img = tcpcp_capture(b, &len);
	if (!img) {
		printf("FAIL " TEST_NAME ".setup: tcpcp_capture: %s\n", tcpcp_strerror());
		exit(1);
	}
	if (set_int(b, TCP_REPAIR, -1))		/* off, no window probe */
		die("TCP_REPAIR off");
	/* The primary goes on after the checkpoint, then dies silently. */
	send_all(b, 0, k);
	if (k && read_check(peer, 0, k))
		die("the peer's read before the death");
	usleep(200000);				/* its ACKs are in */
	if (set_int(b, TCP_REPAIR, 1))
		die("TCP_REPAIR before close");
	close(b);
	/* The standby's library: the old image, armed, activated. */
	o.port_mode = TCPCP_PORT_SAME;
	o.resync = 1;
	b2 = socket(AF_INET, SOCK_STREAM, 0);
	if (b2 < 0 || tcpcp_create_gated(b2, img, len, &o) ||
	    tcpcp_activate_ungated(b2, img, len)) {
		snprintf(d, sizeof(d), "create or activate: %s", tcpcp_strerror());
		result(0, name, d);
		return;
	}
	skip = tcpcp_resync_skip(b2, 1000);
	snprintf(d, sizeof(d), "skip %lld, expected %u%s%s", (long long)skip, k,
		 skip < 0 ? ": " : "", skip < 0 ? tcpcp_strerror() : "");
	result(skip == k, name, d);
	/* Both ways from there: the primary's stream at k, the peer's. */
	send_all(b2, k, 3000);
	send_all(peer, 0, 2000);
	snprintf(d, sizeof(d), "%s", "3000 bytes to the peer, 2000 back, intact");
	result(!read_check(peer, k, 3000) && !read_check(b2, 0, 2000),
	       k ? "streams_after_resync" : "streams_without_skip", d);
	free(img);
	close(b2);
	close(peer);
}

int main(int argc, char **argv)
{
	int expect_patched = argc > 1 && !strcmp(argv[1], "--expect-patched");
	uint32_t v;
	int lfd, stock;

	lfd = private_lo();
	stock = stock_path(lfd, TCP_REPAIR_RESYNC, "TCP_REPAIR_RESYNC", expect_patched, &v);
	close(lfd);
	if (stock >= 0)
		return stock;
	round_trip(5000, "skip_is_bytes_sent_after_capture");
	round_trip(0, "skip_zero_when_nothing_more");
	return failures ? 1 : 0;
}
