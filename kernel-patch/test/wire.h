/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the in-guest tests that look at the wire share (ack_hold.c,
 * lib_clamp.c): a loopback pair whose receiver's segments an AF_PACKET
 * socket reads back, the checks made on each (ACK above a limit, right
 * edge back, SACK), and a byte pattern for streams.  Include guest.h
 * first.
 */
#ifndef TCPCP_WIRE_H
#define TCPCP_WIRE_H

#include <arpa/inet.h>
#include <linux/filter.h>
#include <linux/if_packet.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

static inline double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* What the receiver's segments looked like since the last reset. */
struct wire {
	int pkt;		/* AF_PACKET socket, filtered to the receiver's port */
	int wscale;		/* the receiver's window scale */
	int n;			/* segments seen */
	uint32_t last_ack, max_ack, last_edge;
	uint16_t last_id;	/* IP ID of the newest segment: the send order */
	int late;		/* captured after a newer one (lo, 2 CPUs) */
	int above;		/* segments with an ACK above the limit */
	uint32_t worst;		/* the highest such ACK */
	int edge_back;		/* right edge below an earlier one */
	char back[160];		/* the first of those */
	int sack;		/* segments with a SACK option */
};

/* Only TCP segments from @port, and only their first 128 bytes. */
static inline void filter_port(int pkt, uint16_t port)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 9),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_TCP, 0, 4),
		BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 0),
		BPF_STMT(BPF_LD | BPF_H | BPF_IND, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, port, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, 128),
		BPF_STMT(BPF_RET | BPF_K, 0),
	};
	struct sock_fprog p = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	if (setsockopt(pkt, SOL_SOCKET, SO_ATTACH_FILTER, &p, sizeof(p)))
		die("SO_ATTACH_FILTER");
}

/*
 * Reads every captured segment of the receiver; counts those whose ACK
 * is above @limit, whose right edge (ack + window << wscale) is below an
 * earlier one, and those with a SACK option.
 */
static inline void drain(struct wire *w, uint32_t limit)
{
	unsigned char b[256];
	struct sockaddr_ll ll;
	socklen_t sl;
	ssize_t len;

	while ((len = recvfrom(w->pkt, b, sizeof(b), MSG_DONTWAIT,
			       (struct sockaddr *)&ll, (sl = sizeof(ll), &sl))) > 0) {
		int ihl = (b[0] & 15) * 4, doff, i;
		unsigned char *t = b + ihl;
		uint32_t ack, edge;

		if (ll.sll_pkttype == PACKET_OUTGOING || len < ihl + 20 ||
		    (t[13] & 0x02) || !(t[13] & 0x10))	/* SYN, or no ACK */
			continue;
		ack = ntohl(*(uint32_t *)(t + 8));
		edge = ack + ((uint32_t)ntohs(*(uint16_t *)(t + 14)) << w->wscale);
		if ((int32_t)(ack - limit) > 0) {
			if (!w->above || (int32_t)(ack - w->worst) > 0)
				w->worst = ack;
			w->above++;
		}
		/*
		 * The capture can see an older segment after a newer one (sent
		 * from another CPU); the IP ID counts the socket's segments.
		 * Such a segment is checked against the limit, not the edge.
		 */
		if (w->n && (int16_t)(ntohs(*(uint16_t *)(b + 4)) - w->last_id) < 0) {
			w->late++;
			continue;
		}
		w->last_id = ntohs(*(uint16_t *)(b + 4));
		if (w->n && (int32_t)(edge - w->last_edge) < 0 && !w->edge_back++)
			snprintf(w->back, sizeof(w->back),
				 " (first: ack %+d window %u<<%d edge %d below, segment %d, flags 0x%x)",
				 (int)(ack - w->last_ack), ntohs(*(uint16_t *)(t + 14)),
				 w->wscale, (int)(w->last_edge - edge), w->n, t[13]);
		if (!w->n || (int32_t)(ack - w->max_ack) > 0)
			w->max_ack = ack;
		if (!w->n || (int32_t)(edge - w->last_edge) > 0)
			w->last_edge = edge;
		w->last_ack = ack;
		w->n++;
		doff = (t[12] >> 4) * 4;
		for (i = 20; i < doff && ihl + i < len;) {
			if (t[i] == 0)
				break;
			if (t[i] == 1) {
				i++;
				continue;
			}
			if (t[i] == 5)
				w->sack++;
			if (i + 1 >= len - ihl || t[i + 1] < 2)
				break;
			i += t[i + 1];
		}
	}
}

static inline void reset_counts(struct wire *w)
{
	w->above = w->edge_back = w->sack = w->late = 0;
	w->back[0] = 0;
}

static inline int wait_readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1;
}

static inline unsigned char pattern(uint32_t i)
{
	return (unsigned char)(i * 7 + (i >> 13));
}

/* A connected pair: *s sends, *r receives; r's port is the listener's. */
static inline void make_pair(struct wire *w, int *s, int *r)
{
	struct sockaddr_in sa;
	socklen_t sl;
	struct tcp_info ti;
	int one, lfd = loopback_listener(&sa);

	filter_port(w->pkt, ntohs(sa.sin_port));
	while (recv(w->pkt, &one, sizeof(one), MSG_DONTWAIT) >= 0)
		;	/* captured under the previous filter */
	*s = socket(AF_INET, SOCK_STREAM, 0);
	if (*s < 0 || connect(*s, (struct sockaddr *)&sa, sizeof(sa)))
		die("connect");
	*r = accept(lfd, NULL, NULL);
	if (*r < 0)
		die("accept");
	close(lfd);
	sl = sizeof(ti);
	if (getsockopt(*r, IPPROTO_TCP, TCP_INFO, &ti, &sl))
		die("TCP_INFO");
	w->wscale = ti.tcpi_rcv_wscale;
	w->n = 0;
	reset_counts(w);
}

static inline void send_all(int fd, uint32_t off, uint32_t n)
{
	unsigned char buf[65536];
	uint32_t i, k;

	while (n) {
		k = n < sizeof(buf) ? n : sizeof(buf);
		for (i = 0; i < k; i++)
			buf[i] = pattern(off + i);
		if (write(fd, buf, k) != (ssize_t)k)
			die("write");
		off += k;
		n -= k;
	}
}

/* One read of at most @n bytes from @fd into @buf, each checked against
 * the pattern at *@total (mismatches added to *@bad), *@total moved on.
 * Returns what read() did, or -2 when nothing came for 5 s. */
static inline ssize_t read_pattern(int fd, unsigned char *buf, size_t n, uint32_t *total,
				   int *bad)
{
	ssize_t k;

	if (!wait_readable(fd, 5000))
		return -2;
	k = read(fd, buf, n);
	for (ssize_t i = 0; i < k; i++)
		*bad += buf[i] != pattern(*total + (uint32_t)i);
	if (k > 0)
		*total += (uint32_t)k;
	return k;
}

/* A child that writes @n bytes of the pattern on @s and closes it; here
 * only @r stays open.  Returns the child's pid. */
static inline pid_t spawn_writer(int s, int r, uint32_t n)
{
	pid_t pid = fork();

	if (pid < 0)
		die("fork");
	if (!pid) {
		close(r);
		send_all(s, 0, n);
		close(s);
		_exit(0);
	}
	close(s);
	return pid;
}

#endif
