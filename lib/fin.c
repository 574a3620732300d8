/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Half-closed connections: one side has sent its FIN and the other may
 * still be sending (FIN_WAIT1/2, CLOSE_WAIT, LAST_ACK, CLOSING).  A FIN
 * takes one sequence number and no byte of a queue, and repair mode has
 * no way to queue one, so the destination replays the FINs through TCP
 * itself, as CRIU's soccr does:
 *
 *   our FIN     shutdown(SHUT_WR) in repair mode queues it.  With
 *               TCP_SEND_QUEUE selected the kernel marks it sent without
 *               transmitting, as it was at the origin; else it waits
 *               behind the unsent data, and the closed gate drops the
 *               first attempt to send it.
 *   peer's FIN  a FIN "from the peer", injected with a raw socket and
 *               marked so that it passes our own closed gate, is taken by
 *               TCP as if it had just arrived.
 *   FIN acked   likewise a pure ACK of our FIN (FIN_WAIT2).
 *
 * The steps follow the state diagram: FIN_WAIT1 = ESTABLISHED + our FIN;
 * CLOSING = FIN_WAIT1 + the peer's FIN; CLOSE_WAIT = ESTABLISHED + the
 * peer's FIN; LAST_ACK = CLOSE_WAIT + our FIN; FIN_WAIT2 = FIN_WAIT1 + the
 * ACK.  Each step is checked against the state the kernel then reports,
 * so a segment TCP did not take fails the create with the reason instead
 * of leaving a connection in the wrong state.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* Loopback delivery of an injected segment normally completes before
 * sendto() returns, but softirq may be deferred on a busy machine. */
#define STATE_WAIT_MS	1000

bool tcpcp_state_passable(int st)
{
	switch (st) {
	case TCPCP_ST_ESTABLISHED:
	case TCPCP_ST_FIN_WAIT1:
	case TCPCP_ST_FIN_WAIT2:
	case TCPCP_ST_CLOSE_WAIT:
	case TCPCP_ST_LAST_ACK:
	case TCPCP_ST_CLOSING:
		return true;
	}
	return false;
}

struct tcpcp_fins tcpcp_fins_of(uint32_t st)
{
	struct tcpcp_fins f = {
		.out = st == TCPCP_ST_FIN_WAIT1 || st == TCPCP_ST_FIN_WAIT2 ||
		       st == TCPCP_ST_CLOSING || st == TCPCP_ST_LAST_ACK,
		.out_acked = st == TCPCP_ST_FIN_WAIT2,
		.in = st == TCPCP_ST_CLOSE_WAIT || st == TCPCP_ST_CLOSING ||
		      st == TCPCP_ST_LAST_ACK,
	};

	return f;
}

static int expect_state(int s, int want, const char *step)
{
	struct timespec ms = { 0, 1000000 };
	int st, i;

	for (i = 0; (st = tcpcp_tcp_state(s)) != want && i < STATE_WAIT_MS; i++)
		nanosleep(&ms, NULL);
	if (st == want)
		return 0;
	return tcpcp_fail(EPROTO, "restoring a half-closed connection: after %s it is in state %s, not %s",
			  step, tcpcp_state_name(st), tcpcp_state_name(want));
}

static int queue_fin(int s, bool sent)
{
	int err = 0;

	if (sent && (err = tcpcp_repair_queue(s, TCP_SEND_QUEUE)))
		return err;
	if (shutdown(s, SHUT_WR))
		err = tcpcp_fail(errno, "queueing our FIN (shutdown): %s", strerror(errno));
	if (sent && !err)
		err = tcpcp_repair_queue(s, TCP_NO_QUEUE);
	return err;
}

/* The peer's advertised window as it would stand in its header, so the
 * injected segment leaves our view of the peer's window as it was. */
static uint16_t window_field(const TcpcpIci *ici)
{
	uint32_t w = ici->window->snd_wnd >> (ici->options->wscale ? ici->options->snd_wscale : 0);

	return w > 0xffff ? 0xffff : (uint16_t)w;
}

/* RFC 1071 over the pseudo header and the segment. */
static uint32_t sum16(const void *p, size_t len, uint32_t sum)
{
	const uint8_t *b = p;

	for (; len > 1; b += 2, len -= 2)
		sum += (uint32_t)b[0] << 8 | b[1];
	if (len)
		sum += (uint32_t)b[0] << 8;
	return sum;
}

static uint16_t tcp_checksum(const struct tcpcp_tuple *t, const struct tcphdr *th)
{
	size_t alen = t->family == AF_INET ? 4 : 16;
	uint32_t sum = IPPROTO_TCP + sizeof(*th);

	sum = sum16(&t->peer, alen, sum);
	sum = sum16(&t->local, alen, sum);
	sum = sum16(th, sizeof(*th), sum);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

_Static_assert(sizeof(struct iphdr) == 20 && sizeof(struct ip6_hdr) == 40 &&
	       sizeof(struct tcphdr) == 20, "headers back to back, no padding");

struct raw_ask {
	int family, fd;
};

/* IPPROTO_RAW: we write the IP header, with the peer's source. */
static int raw_socket(void *arg)
{
	struct raw_ask *a = arg;

	a->fd = socket(a->family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
	if (a->fd < 0)
		return tcpcp_fail(errno, "restoring a half-closed connection needs a raw socket "
				  "(CAP_NET_RAW): %s", strerror(errno));
	return 0;
}

/* A segment from the peer's address and port to our socket, sent on a raw
 * socket of the socket's own netns so that it arrives through loopback.
 * Built by hand rather than with libnet: libnet's raw open probes the
 * send buffer with thousands of setsockopt() calls (4 ms here, more than
 * the rest of a create), for one 40- or 60-byte segment. */
static int inject(int s, const TcpcpIci *ici, uint32_t seq, uint32_t ack, bool fin)
{
	union {
		struct { struct iphdr ip; struct tcphdr tcp; } v4;
		struct { struct ip6_hdr ip; struct tcphdr tcp; } v6;
	} pkt;
	uint32_t mark = TCPCP_INJECT_MARK;
	struct sockaddr_storage dst;
	struct tcpcp_tuple t;
	struct tcphdr *th;
	struct raw_ask raw_ask;
	int raw, err;
	size_t len;

	if ((err = tcpcp_tuple_from_socket(s, &t)))
		return err;
	memset(&pkt, 0, sizeof(pkt));
	memset(&dst, 0, sizeof(dst));
	th = t.family == AF_INET ? &pkt.v4.tcp : &pkt.v6.tcp;
	th->source = htons(t.pport);
	th->dest = htons(t.lport);
	th->seq = htonl(seq);
	th->ack_seq = htonl(ack);
	th->doff = sizeof(*th) / 4;
	th->fin = fin;
	th->ack = 1;
	th->window = htons(window_field(ici));
	th->check = tcp_checksum(&t, th);
	if (t.family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&dst;

		pkt.v4.ip.version = 4;
		pkt.v4.ip.ihl = sizeof(pkt.v4.ip) / 4;
		pkt.v4.ip.tot_len = htons(sizeof(pkt.v4));
		pkt.v4.ip.ttl = 64;
		pkt.v4.ip.protocol = IPPROTO_TCP;
		pkt.v4.ip.saddr = t.peer.v4.s_addr;
		pkt.v4.ip.daddr = t.local.v4.s_addr;
		sin->sin_family = AF_INET;
		sin->sin_addr = t.local.v4;
		len = sizeof(pkt.v4);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&dst;

		pkt.v6.ip.ip6_flow = htonl(6u << 28);
		pkt.v6.ip.ip6_plen = htons(sizeof(pkt.v6.tcp));
		pkt.v6.ip.ip6_nxt = IPPROTO_TCP;
		pkt.v6.ip.ip6_hlim = 64;
		pkt.v6.ip.ip6_src = t.peer.v6;
		pkt.v6.ip.ip6_dst = t.local.v6;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = t.local.v6;
		len = sizeof(pkt.v6);
	}
	/* A socket stays in the namespace it was made in. */
	raw_ask.family = t.family;
	if ((err = tcpcp_netns_run(s, raw_socket, &raw_ask)))
		return err;
	raw = raw_ask.fd;
	if (setsockopt(raw, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)))
		err = tcpcp_fail(errno, "marking the injected %s (SO_MARK): %s",
				 fin ? "FIN" : "ACK", strerror(errno));
	else if (sendto(raw, &pkt, len, 0, (struct sockaddr *)&dst, sizeof(dst)) != (ssize_t)len)
		err = tcpcp_fail(errno, "injecting the peer's %s: %s", fin ? "FIN" : "ACK",
				 strerror(errno));
	close(raw);
	return err;
}

/* After the queues are back: the FINs of @ici's state, in the order the
 * state diagram reaches it. */
int tcpcp_fins_restore(int s, const TcpcpIci *ici)
{
	struct tcpcp_fins f = tcpcp_fins_of(ici->state);
	bool fin_sent = f.out && ici->snd_nxt == ici->write_seq;
	bool ours_first = f.out && ici->state != TCPCP_ST_LAST_ACK;
	uint32_t rcv_nxt = ici->rcv_nxt - f.in;
	int err;

	if (ours_first &&
	    ((err = queue_fin(s, fin_sent)) ||
	     (err = expect_state(s, TCPCP_ST_FIN_WAIT1, "queueing our FIN"))))
		return err;
	/* It acknowledges what the peer had acknowledged, not our FIN:
	 * an ACK of it would make FIN_WAIT1 jump to TIME_WAIT. */
	if (f.in &&
	    ((err = inject(s, ici, rcv_nxt, ici->snd_una, true)) ||
	     (err = expect_state(s, ours_first ? TCPCP_ST_CLOSING : TCPCP_ST_CLOSE_WAIT,
				 "the peer's FIN"))))
		return err;
	if (ici->state == TCPCP_ST_LAST_ACK &&
	    ((err = queue_fin(s, fin_sent)) ||
	     (err = expect_state(s, TCPCP_ST_LAST_ACK, "queueing our FIN"))))
		return err;
	if (f.out_acked &&
	    ((err = inject(s, ici, rcv_nxt, ici->write_seq, false)) ||
	     (err = expect_state(s, TCPCP_ST_FIN_WAIT2, "the ACK of our FIN"))))
		return err;
	return expect_state(s, (int)ici->state, "restoring the queues");
}
