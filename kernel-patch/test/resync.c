// SPDX-License-Identifier: GPL-2.0
/*
 * Tests TCP_REPAIR_RESYNC (kernel-patch/series/0003-...) over loopback in
 * a private network namespace.  Why: a socket restored from an old
 * checkpoint has snd_nxt below what the peer already acknowledged, and a
 * stock kernel drops those ACKs, so the connection stalls; the test
 * restores a socket from a checkpoint as CRIU/soccr does, lets the peer's
 * ACK arrive, and checks the skip count, the data flow afterwards in both
 * directions, and (AF_PACKET capture) that no RST or FIN was sent.  It
 * also shows the stall without the option.  On a kernel without the
 * option it reports "stock path" (getsockopt fails with ENOPROTOOPT) and
 * exits 0, or 1 with --expect-patched (used inside the qemu guest).
 * Needs CAP_SYS_ADMIN (unshare) and CAP_NET_ADMIN (repair mode).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_packet.h>
#include <linux/sockios.h>
#include <net/ethernet.h>
#include <net/if.h>
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

#ifndef TCP_REPAIR_RESYNC
#define TCP_REPAIR_RESYNC 50
#endif
#ifndef TCP_REPAIR_TS_RECENT
#define TCP_REPAIR_TS_RECENT 47
#endif

#define K 5000		/* bytes sent after the checkpoint */

struct repair_opt {
	uint32_t code, val;
};

struct repair_window {
	uint32_t snd_wl1, snd_wnd, max_window, rcv_wnd, rcv_wup;
};

/* What soccr saves of an idle established socket (empty queues). */
struct checkpoint {
	uint32_t snd_seq, rcv_seq, mss, ts_recent;
	struct repair_window win;
	struct tcp_info ti;
};

#define TEST_NAME "resync"
#include "guest.h"

static void must(int rc, const char *what)
{
	if (rc)
		die(what);
}

static int wait_readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1;
}

static int outq(int fd)
{
	int n = -1;

	ioctl(fd, SIOCOUTQ, &n);
	return n;
}

static void wait_acked(int fd)
{
	int i;

	for (i = 0; i < 200 && outq(fd); i++)
		usleep(10000);
	if (outq(fd))
		die("data not acknowledged");
}

static unsigned char pattern(uint32_t i)
{
	return (unsigned char)(i * 13 + (i >> 9));
}

static void send_pattern(int fd, uint32_t off, uint32_t n)
{
	unsigned char buf[K];
	uint32_t i;

	for (i = 0; i < n; i++)
		buf[i] = pattern(off + i);
	if (write(fd, buf, n) != (ssize_t)n)
		die("write");
}

/* Reads exactly n bytes within 2 s; number of wrong bytes, or -1. */
static int recv_pattern(int fd, uint32_t off, uint32_t n)
{
	unsigned char buf[K];
	uint32_t got = 0, i;
	int bad = 0;
	ssize_t k;

	while (got < n) {
		if (!wait_readable(fd, 2000))
			return -1;
		k = read(fd, buf, n - got);
		if (k <= 0)
			return -1;
		for (i = 0; i < k; i++)
			bad += buf[i] != pattern(off + got + i);
		got += k;
	}
	return bad;
}

/* Counts TCP RSTs and FINs sent from @port (both directions seen once). */
static void count_rst_fin(int pkt, uint16_t port, int *rst, int *fin)
{
	unsigned char b[128];
	struct sockaddr_ll ll;
	socklen_t sl;
	ssize_t n;

	while ((n = recvfrom(pkt, b, sizeof(b), MSG_DONTWAIT,
			     (struct sockaddr *)&ll, (sl = sizeof(ll), &sl))) > 0) {
		unsigned char *t = b + (b[0] & 15) * 4;

		if (ll.sll_pkttype == PACKET_OUTGOING || b[9] != IPPROTO_TCP ||
		    n < (b[0] & 15) * 4 + 20 || ntohs(*(uint16_t *)t) != port)
			continue;
		*rst += !!(t[13] & 0x04);
		*fin += !!(t[13] & 0x01);
	}
}

static void connect_pair(int *a, int *b, struct sockaddr_in *la,
			 struct sockaddr_in *lb)
{
	struct sockaddr_in sa;
	socklen_t sl;
	int lfd = loopback_listener(&sa);

	*lb = sa;
	*a = socket(AF_INET, SOCK_STREAM, 0);
	if (*a < 0 || connect(*a, (struct sockaddr *)&sa, sizeof(sa)))
		die("connect");
	*b = accept(lfd, NULL, NULL);
	if (*b < 0)
		die("accept");
	close(lfd);
	sl = sizeof(*la);
	getsockname(*a, (struct sockaddr *)la, &sl);
}

static void take_checkpoint(int a, struct checkpoint *c)
{
	socklen_t l;

	must(set_int(a, TCP_REPAIR, 1), "TCP_REPAIR on");
	must(set_int(a, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE) ||
	     get_int(a, TCP_QUEUE_SEQ, &c->snd_seq) ||
	     set_int(a, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE) ||
	     get_int(a, TCP_QUEUE_SEQ, &c->rcv_seq) ||
	     get_int(a, TCP_MAXSEG, &c->mss), "checkpoint seqs");
	l = sizeof(c->win);
	must(getsockopt(a, IPPROTO_TCP, TCP_REPAIR_WINDOW, &c->win, &l),
	     "TCP_REPAIR_WINDOW");
	l = sizeof(c->ti);
	must(getsockopt(a, IPPROTO_TCP, TCP_INFO, &c->ti, &l), "TCP_INFO");
	c->ts_recent = 0;
	get_int(a, TCP_REPAIR_TS_RECENT, &c->ts_recent);	/* 0001, if there */
	/* No window probe: the peer's answer would rate-limit (500 ms,
	 * tcp_invalid_ratelimit) its answer to the restored socket's probe.
	 */
	must(set_int(a, TCP_REPAIR, -1), "TCP_REPAIR off");
}

/*
 * Drops @a silently (closed in repair mode: no FIN, no RST) and rebuilds
 * it from @c as soccr does; arms TCP_REPAIR_RESYNC if @arm.  Leaves it in
 * repair mode.
 */
static int restore(int a, const struct checkpoint *c, const struct sockaddr_in *la,
		   const struct sockaddr_in *lb, int arm)
{
	struct repair_opt opts[4];
	uint32_t ts;
	int n, one = 1;

	must(get_int(a, TCP_TIMESTAMP, &ts), "TCP_TIMESTAMP");
	must(set_int(a, TCP_REPAIR, 1), "TCP_REPAIR on (old)");
	close(a);

	n = socket(AF_INET, SOCK_STREAM, 0);
	must(n < 0 || set_int(n, TCP_REPAIR, 1) ||
	     setsockopt(n, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	     bind(n, (const struct sockaddr *)la, sizeof(*la)), "bind restored");
	must(set_int(n, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE) ||
	     set_int(n, TCP_QUEUE_SEQ, c->snd_seq) ||
	     set_int(n, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE) ||
	     set_int(n, TCP_QUEUE_SEQ, c->rcv_seq) ||
	     set_int(n, TCP_REPAIR_QUEUE, TCP_NO_QUEUE), "TCP_QUEUE_SEQ");
	must(connect(n, (const struct sockaddr *)lb, sizeof(*lb)), "repair connect");
	opts[0] = (struct repair_opt){ TCPOPT_MAXSEG, c->mss };
	opts[1] = (struct repair_opt){ TCPOPT_WINDOW,
		c->ti.tcpi_snd_wscale | c->ti.tcpi_rcv_wscale << 16 };
	opts[2] = (struct repair_opt){ TCPOPT_SACK_PERMITTED, 0 };
	opts[3] = (struct repair_opt){ TCPOPT_TIMESTAMP, 0 };
	must(setsockopt(n, IPPROTO_TCP, TCP_REPAIR_OPTIONS, opts, sizeof(opts)),
	     "TCP_REPAIR_OPTIONS");
	must(setsockopt(n, IPPROTO_TCP, TCP_REPAIR_WINDOW, &c->win, sizeof(c->win)),
	     "TCP_REPAIR_WINDOW restore");
	/* The clock goes on from where the old socket's was. */
	must(set_int(n, TCP_TIMESTAMP, ts + 10), "TCP_TIMESTAMP");
	if (c->ts_recent)
		set_int(n, TCP_REPAIR_TS_RECENT, c->ts_recent);
	if (arm)
		must(set_int(n, TCP_REPAIR_RESYNC, 1), "arm TCP_REPAIR_RESYNC");
	return n;
}

int main(int argc, char **argv)
{
	int stock;
	int expect_patched = argc > 1 && !strcmp(argv[1], "--expect-patched");
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 9),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_TCP, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, 128),
		BPF_STMT(BPF_RET | BPF_K, 0),
	};
	struct sock_fprog prog = { .len = 4, .filter = f };
	struct sockaddr_in la, lb;
	struct checkpoint c;
	int lfd, a, b, pkt, ok, rst = 0, fin = 0, bad;
	uint32_t v, sent;
	char d[200];

	lfd = private_lo();
	stock = stock_path(lfd, TCP_REPAIR_RESYNC, "TCP_REPAIR_RESYNC", expect_patched, &v);
	if (stock >= 0)
		return stock;
	result(v == 0, "get_unarmed_zero", "");
	expect_errno(lfd, TCP_REPAIR_RESYNC, 1, EPERM, "arm_outside_repair_eperm");
	close(lfd);

	pkt = socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_IP));
	if (pkt < 0 || setsockopt(pkt, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)))
		die("AF_PACKET");

	/* Armed: a sends, is checkpointed, sends K more, is restored. */
	connect_pair(&a, &b, &la, &lb);
	send_pattern(a, 0, 1000);
	if (recv_pattern(b, 0, 1000))
		die("first 1000 bytes");
	wait_acked(a);
	take_checkpoint(a, &c);
	send_pattern(a, 1000, K);
	if (recv_pattern(b, 1000, K))
		die("K bytes");
	wait_acked(a);
	a = restore(a, &c, &la, &lb, 1);
	get_int(a, TCP_REPAIR_RESYNC, &v);
	result((int)v == -1, "get_armed_minus_one", "");
	must(set_int(a, TCP_REPAIR, 0), "TCP_REPAIR off");	/* window probe */
	usleep(300000);
	ok = get_int(a, TCP_REPAIR_RESYNC, &v) == 0 && v == K;
	snprintf(d, sizeof(d), "skip %d, expected %d", (int)v, K);
	result(ok, "peer_ack_accepted_skip_is_k", d);
	send_pattern(a, 1000 + K, 3000);
	bad = recv_pattern(b, 1000 + K, 3000);
	snprintf(d, sizeof(d), "%s", bad < 0 ? "not received" : bad ? "wrong bytes" : "3000 bytes intact");
	result(bad == 0, "a_to_b_after_resync", d);
	send_pattern(b, 7, 2000);
	bad = recv_pattern(a, 7, 2000);
	snprintf(d, sizeof(d), "%s", bad < 0 ? "not received" : bad ? "wrong bytes" : "2000 bytes intact");
	result(bad == 0, "b_to_a_after_resync", d);
	wait_acked(a);
	sent = outq(a);
	snprintf(d, sizeof(d), "%u bytes unacknowledged", sent);
	result(sent == 0, "a_fully_acked", d);
	usleep(100000);
	count_rst_fin(pkt, ntohs(la.sin_port), &rst, &fin);
	count_rst_fin(pkt, ntohs(lb.sin_port), &rst, &fin);
	snprintf(d, sizeof(d), "%d RST, %d FIN from either end", rst, fin);
	result(!rst && !fin, "no_rst_no_fin_on_wire", d);
	set_int(a, TCP_REPAIR, 1);
	close(a);
	set_int(b, TCP_REPAIR, 1);
	close(b);

	/* Not armed: the same restore stalls, as on a stock kernel. */
	connect_pair(&a, &b, &la, &lb);
	send_pattern(a, 0, 1000);
	if (recv_pattern(b, 0, 1000))
		die("first 1000 bytes (unarmed)");
	wait_acked(a);
	take_checkpoint(a, &c);
	send_pattern(a, 1000, K);
	if (recv_pattern(b, 1000, K))
		die("K bytes (unarmed)");
	wait_acked(a);
	a = restore(a, &c, &la, &lb, 0);
	must(set_int(a, TCP_REPAIR, 0), "TCP_REPAIR off (unarmed)");
	send_pattern(a, 1000 + K, 3000);
	ok = !wait_readable(b, 1500);
	sent = outq(a);
	snprintf(d, sizeof(d), "peer %s, %u bytes still unacknowledged after 1.5 s",
		 ok ? "got nothing" : "got data", sent);
	result(ok && sent == 3000, "unarmed_peer_ack_dropped_stall", d);
	set_int(a, TCP_REPAIR, 1);
	close(a);
	set_int(b, TCP_REPAIR, 1);
	close(b);

	printf("SUMMARY resync: %d failed\n", failures);
	return failures != 0;
}
