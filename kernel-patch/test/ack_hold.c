// SPDX-License-Identifier: GPL-2.0
/*
 * Tests TCP_ACK_HOLD and TCP_ACK_RELEASE (kernel-patch/series/0002-...) on
 * TCP pairs over loopback in a private network namespace.  Why: the
 * option's promise is about the wire (no ACK above what the application
 * consumed or released, a right edge that never moves back, no SACK), so
 * every segment the receiver sends is read back from an AF_PACKET socket
 * and checked, and a stream of several MB must still arrive intact.  On
 * a kernel without the option it reports "stock path" (getsockopt fails
 * with ENOPROTOOPT) and exits 0, or 1 with --expect-patched (used inside
 * the qemu guest).  Needs CAP_SYS_ADMIN (unshare) and CAP_NET_RAW.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef TCP_ACK_HOLD
#define TCP_ACK_HOLD 48
#define TCP_ACK_RELEASE 49
#define TCP_ACK_HOLD_OFF 0
#define TCP_ACK_HOLD_CONSUMED 1
#define TCP_ACK_HOLD_RELEASED 2
#endif

#define STREAM_BYTES (32 << 20)
#define RELEASE_EVERY 65536

#define TEST_NAME "ack_hold"
#include "guest.h"
#include "wire.h"

static int read_n(int fd, uint32_t n)
{
	unsigned char buf[65536];
	ssize_t k;

	while (n) {
		if (!wait_readable(fd, 5000))
			return -1;
		k = read(fd, buf, n < sizeof(buf) ? n : sizeof(buf));
		if (k <= 0)
			return -1;
		n -= k;
	}
	return 0;
}

/*
 * A child sends STREAM_BYTES and closes; the parent reads them in 64 KiB
 * reads, checks every byte and, in mode 2, releases every RELEASE_EVERY
 * bytes, checking each of the receiver's segments against the released
 * point.  Returns MB/s, or -1 if the stream did not complete.
 */
static double stream(struct wire *w, int mode, char *d, size_t dl)
{
	static unsigned char buf[65536];
	uint32_t base = 0, total = 0, released = 0;
	int s, r, bad = 0, st;
	double t0, t1;
	pid_t pid;
	ssize_t k;

	make_pair(w, &s, &r);
	if (mode && set_int(r, TCP_ACK_HOLD, mode))
		die("TCP_ACK_HOLD");
	if (get_int(r, TCP_ACK_RELEASE, &base))
		die("get TCP_ACK_RELEASE");
	drain(w, base);
	reset_counts(w);
	pid = spawn_writer(s, r, STREAM_BYTES);
	t0 = now();
	for (;;) {
		k = read_pattern(r, buf, sizeof(buf), &total, &bad);
		if (k == -2)
			snprintf(d, dl, "stalled after %u bytes", total);
		if (k <= 0)
			break;
		if (mode == TCP_ACK_HOLD_RELEASED &&
		    total - released >= RELEASE_EVERY) {
			released = total;
			if (set_int(r, TCP_ACK_RELEASE, base + released))
				die("TCP_ACK_RELEASE");
		}
		drain(w, base + (mode ? released : STREAM_BYTES + 1));
	}
	t1 = now();
	if (mode == TCP_ACK_HOLD_RELEASED)
		set_int(r, TCP_ACK_RELEASE, base + total + 1);	/* and the FIN */
	usleep(100000);
	drain(w, base + total + 1);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	close(r);
	if (total != STREAM_BYTES || bad) {
		if (!d[0])
			snprintf(d, dl, "%u of %u bytes, %d wrong", total,
				 STREAM_BYTES, bad);
		return -1;
	}
	if (!mode) {
		snprintf(d, dl, "%u bytes intact in %.2f s, %d receiver segments",
			 total, t1 - t0, w->n);
		return STREAM_BYTES / (t1 - t0) / 1e6;
	}
	snprintf(d, dl, "%u bytes intact in %.2f s, %d receiver segments (%d captured late), %d ACK above the released point (highest %u over), %d right edge back%s, %d SACK",
		 total, t1 - t0, w->n, w->late, w->above,
		 w->above ? w->worst - base - total : 0, w->edge_back, w->back,
		 w->sack);
	return STREAM_BYTES / (t1 - t0) / 1e6;
}

int main(int argc, char **argv)
{
	int stock;
	int expect_patched = argc > 1 && !strcmp(argv[1], "--expect-patched");
	struct wire w = { 0 };
	uint32_t v, base, base2;
	int lfd, s, r, ok, rcvbuf = 32 << 20;
	double mb0, mb2;
	char d[700];

	lfd = private_lo();
	stock = stock_path(lfd, TCP_ACK_HOLD, "TCP_ACK_HOLD", expect_patched, &v);
	if (stock >= 0)
		return stock;
	result(v == 0, "get_unconnected_off", "");
	expect_errno(lfd, TCP_ACK_HOLD, 1, ENOTCONN, "set_unconnected_enotconn");
	close(lfd);

	w.pkt = socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_IP));
	if (w.pkt < 0)
		die("socket(AF_PACKET)");
	setsockopt(w.pkt, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
	make_pair(&w, &s, &r);

	/* Off: received and unread data is acknowledged. */
	if (get_int(r, TCP_ACK_RELEASE, &base))
		die("get TCP_ACK_RELEASE");
	send_all(s, 0, 1000);
	usleep(300000);
	drain(&w, base + 1000);
	snprintf(d, sizeof(d), "ACK %u bytes of 1000 unread", w.last_ack - base);
	result(w.n && w.last_ack == base + 1000, "off_acks_unread_data", d);
	expect_errno(r, TCP_ACK_RELEASE, base, EINVAL, "release_when_off_einval");
	expect_errno(r, TCP_ACK_HOLD, 3, EINVAL, "mode_3_einval");
	if (read_n(r, 1000))
		die("read");

	/* Mode 1: the ACK follows what was read. */
	base += 1000;
	ok = set_int(r, TCP_ACK_HOLD, TCP_ACK_HOLD_CONSUMED) == 0 &&
	     get_int(r, TCP_ACK_HOLD, &v) == 0 && v == 1;
	result(ok, "set_consumed_reads_back", "");
	get_int(r, TCP_ACK_RELEASE, &v);
	snprintf(d, sizeof(d), "%u after the last ACK", v - base);
	result(v == base, "held_ack_starts_at_last_ack", d);
	reset_counts(&w);
	send_all(s, 1000, 20000);
	usleep(300000);
	drain(&w, base);
	snprintf(d, sizeof(d), "%d segments, %d ACK above 0 of 20000 read (highest +%u), %d right edge back, %d SACK",
		 w.n, w.above, w.above ? w.worst - base : 0, w.edge_back, w.sack);
	result(!w.above && !w.edge_back && !w.sack, "consumed_nothing_read_no_ack", d);
	reset_counts(&w);
	w.n = 0;
	if (read_n(r, 5000))
		die("read 5000");
	usleep(200000);
	drain(&w, base + 5000);
	snprintf(d, sizeof(d), "last ACK %+d after reading 5000 of 20000, %d segments, %d above",
		 (int)(w.last_ack - base), w.n, w.above);
	result(w.n && w.last_ack == base + 5000 && !w.above && !w.edge_back,
	       "consumed_read_acks_exactly", d);
	if (read_n(r, 15000))
		die("read 15000");
	usleep(200000);
	drain(&w, base + 20000);
	snprintf(d, sizeof(d), "last ACK %+d after reading all 20000",
		 (int)(w.last_ack - base));
	result(w.last_ack == base + 20000 && !w.above && !w.edge_back,
	       "consumed_read_all_acks_all", d);

	/* Mode 2: the ACK follows TCP_ACK_RELEASE, clamped to what was read. */
	base2 = base + 20000;
	ok = set_int(r, TCP_ACK_HOLD, TCP_ACK_HOLD_RELEASED) == 0 &&
	     get_int(r, TCP_ACK_RELEASE, &v) == 0 && v == base2;
	snprintf(d, sizeof(d), "held ACK %+d", (int)(v - base2));
	result(ok, "set_released_starts_at_last_ack", d);
	reset_counts(&w);
	w.n = 0;
	send_all(s, 21000, 30000);
	if (read_n(r, 30000))
		die("read 30000");
	usleep(300000);
	drain(&w, base2);
	snprintf(d, sizeof(d), "%d segments, %d ACK above the release point after reading 30000, %d right edge back",
		 w.n, w.above, w.edge_back);
	result(!w.above && !w.edge_back, "released_read_but_unreleased_no_ack", d);
	reset_counts(&w);
	w.n = 0;
	ok = set_int(r, TCP_ACK_RELEASE, base2 + 10000) == 0;
	usleep(200000);
	drain(&w, base2 + 10000);
	get_int(r, TCP_ACK_RELEASE, &v);
	snprintf(d, sizeof(d), "ACK %+d on the wire, held ACK %+d, after releasing 10000",
		 (int)(w.last_ack - base2), (int)(v - base2));
	result(ok && w.n && w.last_ack == base2 + 10000 && v == base2 + 10000 &&
	       !w.above && !w.edge_back, "release_acks_exactly", d);
	set_int(r, TCP_ACK_RELEASE, base2 + 5000);	/* below: no effect */
	ok = set_int(r, TCP_ACK_RELEASE, base2 + 1000000) == 0;
	usleep(200000);
	drain(&w, base2 + 30000);
	snprintf(d, sizeof(d), "ACK %+d after releasing 1000000 with 30000 read",
		 (int)(w.last_ack - base2));
	result(ok && w.last_ack == base2 + 30000 && !w.above && !w.edge_back,
	       "release_clamped_to_consumed", d);
	close(s);
	close(r);

	/* Streams: mode 2 releasing every 64 KiB, and off. */
	d[0] = 0;
	mb2 = stream(&w, TCP_ACK_HOLD_RELEASED, d, sizeof(d));
	result(mb2 > 0 && !w.above && !w.edge_back && !w.sack,
	       "stream_released_every_64k", d);
	d[0] = 0;
	mb0 = stream(&w, TCP_ACK_HOLD_OFF, d, sizeof(d));
	result(mb0 > 0, "stream_off", d);
	printf("INFO ack_hold.throughput: %d MB over loopback, 64 KiB reads: off %.1f MB/s, TCP_ACK_HOLD_RELEASED releasing every 64 KiB %.1f MB/s\n",
	       STREAM_BYTES >> 20, mb0, mb2);

	printf("SUMMARY ack_hold: %d failed\n", failures);
	return failures != 0;
}
