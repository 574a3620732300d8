/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Asking a peer where it stands (paper section 6.1, on a stock kernel).
 *
 * A checkpoint is older than the connection: since it was taken the peer
 * may have acknowledged more of our data and sent more of its own.  Linux
 * drops an ACK above snd_nxt, so a socket rebuilt at the checkpoint's
 * sequence numbers would stall; the standby asks first.  It sends the
 * peer, from a raw socket, a pure ACK whose sequence number lies far
 * outside the peer's window and whose acknowledgment is the checkpoint's
 * rcv_nxt (never beyond what the peer has sent: RFC 5961 makes a peer
 * ignore an ACK of data it never sent, and a RST is never used to ask).
 * A Linux peer answers such a segment with a duplicate ACK that carries
 * its snd_nxt (SEQ), its
 * rcv_nxt (ACK), its window, and with timestamps its clock (TSval) and the
 * last TSval of ours it accepted (TSecr, its ts_recent).
 *
 * Which ACK is the answer: after a fail-over the peer's ordinary ACKs for
 * the dead primary's last segments (still queued on the path) reach the
 * standby too, before the answer, and they tell an older rcv_nxt.  With
 * SACK the probe carries one byte, which the peer reports as a duplicate
 * in a D-SACK block (tcp_send_dupack()): only an ACK that names the
 * probe's sequence number is taken.  (A segment with data is also exempt
 * from the peer's rate limit of answers to invalid segments.)  Without
 * SACK the first ACK is taken, which may be such an older one.
 *
 * The answer is read from a packet socket, which sees it before netfilter;
 * the gate, closed here for the connections first, keeps it from our own
 * TCP, which has no socket for it and would answer with a RST.  Answers are
 * rate-limited per connection (tcp_invalid_ratelimit, 500 ms by default),
 * so all connections are probed at once, and a connection still silent is
 * asked again every PROBE_EVERY_MS until the caller's time runs out.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/capability.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

#define PROBE_EVERY_MS	600	/* just past a peer's 500 ms rate limit */
#define PROBE_GATE_S	60	/* the gate drops the connection this long */
#define PACKET_RCVBUF	(8 << 20)

static uint64_t now_ms(void)
{
	return tcpcp_now_ns() / 1000000;
}

/* The probe of one checkpoint: far below the peer's window, and an ACK
 * the peer must find old or current, never new; its connection's ends. */
static int probe_of(const void *img, size_t len, struct tcpcp_ends *e, struct tcpcp_tuple *t,
		    struct tcpcp_segment *g, struct tcpcp_probe_want *w)
{
	TcpcpIci *ici = tcpcp_image_decode(img, len);
	socklen_t slen = sizeof(e->local);

	if (!ici)
		return -errno;
	memset(g, 0, sizeof(*g));
	tcpcp_sockaddr_from_endpoint(ici->local, &e->local, &slen);
	slen = sizeof(e->peer);
	tcpcp_sockaddr_from_endpoint(ici->peer, &e->peer, &slen);
	tcpcp_tuple_from_sockaddrs(&e->local, &e->peer, t);
	g->to_peer = true;
	g->seq = ici->snd_una - 0x40000000u;
	g->ack = ici->rcv_nxt;
	g->one_byte = w->dsack = ici->options->sack;
	w->seq = g->seq;
	/* No timestamp option: the checkpoint's TSval is older than the
	 * peer's ts_recent, and since Linux 6.15 a pure ACK that fails PAWS
	 * is dropped without a word (LINUX_MIB_PAWS_OLD_ACK).  Without the
	 * option there is no PAWS check, and the sequence check answers. */
	tcpcp_ici__free_unpacked(ici, NULL);
	return 0;
}

struct packet_ask {
	int fd;
};

/* Every packet of the namespace, at the network layer. */
static int packet_socket(void *arg)
{
	struct packet_ask *a = arg;

	int size = PACKET_RCVBUF;

	a->fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_ALL));
	if (a->fd < 0)
		return tcpcp_fail(errno, "probing a peer needs a packet socket (CAP_NET_RAW): %s",
				  strerror(errno));
	/* A thousand answers come within a millisecond: with the default
	 * buffer most were dropped and asked for again 600 ms later. */
	if (setsockopt(a->fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)))
		setsockopt(a->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	return 0;
}

/* Its timestamps into @v; whether its first SACK block is [@seq, @seq + 1),
 * the D-SACK of our probe's byte. */
static bool read_options(const struct tcphdr *th, size_t len, struct tcpcp_peer_view *v,
			 uint32_t seq)
{
	const uint8_t *o = (const uint8_t *)(th + 1), *end = (const uint8_t *)th + len;
	bool dsack = false;

	while (o < end) {
		if (*o == TCPOPT_EOL)
			break;
		if (*o == TCPOPT_NOP) {
			o++;
			continue;
		}
		if (o + 1 >= end || o[1] < 2 || o + o[1] > end)
			break;
		if (o[0] == TCPOPT_TIMESTAMP && o[1] == TCPOLEN_TIMESTAMP) {
			uint32_t val, ecr;

			memcpy(&val, o + 2, 4);
			memcpy(&ecr, o + 6, 4);
			v->has_ts = 1;
			v->tsval = ntohl(val);
			v->tsecr = ntohl(ecr);
		}
		if (o[0] == TCPOPT_SACK && o[1] >= 10) {
			uint32_t l, r;

			memcpy(&l, o + 2, 4);
			memcpy(&r, o + 6, 4);
			dsack = ntohl(l) == seq && ntohl(r) == seq + 1;
		}
		o += o[1];
	}
	return dsack;
}

/* One packet, as the network gave it (hostile: test/fuzz/fuzz_answer.c):
 * the answer for which of the connections @t, if any. */
void tcpcp_probe_answer(const uint8_t *pkt, size_t len, const struct tcpcp_tuple *t,
			const struct tcpcp_probe_want *w, size_t n, struct tcpcp_peer_view *v)
{
	const struct tcphdr *th;
	struct tcpcp_peer_view one;
	const void *src, *dst;
	size_t i, alen, hlen, tlen;
	int family;

	if (len >= sizeof(struct iphdr) && pkt[0] >> 4 == 4) {
		const struct iphdr *ip = (const void *)pkt;

		hlen = ip->ihl * 4u;
		if (ip->protocol != IPPROTO_TCP || hlen < sizeof(*ip) || len < hlen ||
		    (ntohs(ip->frag_off) & 0x1fff))
			return;
		family = AF_INET;
		alen = 4;
		src = &ip->saddr;
		dst = &ip->daddr;
	} else if (len >= sizeof(struct ip6_hdr) && pkt[0] >> 4 == 6) {
		const struct ip6_hdr *ip = (const void *)pkt;

		if (ip->ip6_nxt != IPPROTO_TCP)
			return;
		hlen = sizeof(*ip);
		family = AF_INET6;
		alen = 16;
		src = &ip->ip6_src;
		dst = &ip->ip6_dst;
	} else {
		return;
	}
	if (len < hlen + sizeof(*th))
		return;
	th = (const void *)(pkt + hlen);
	tlen = th->doff * 4u;
	if (tlen < sizeof(*th) || len < hlen + tlen || th->rst || th->syn || !th->ack)
		return;
	for (i = 0; i < n; i++) {
		if (v[i].answered || t[i].family != family ||
		    ntohs(th->source) != t[i].pport || ntohs(th->dest) != t[i].lport ||
		    memcmp(src, &t[i].peer, alen) || memcmp(dst, &t[i].local, alen))
			continue;
		memset(&one, 0, sizeof(one));
		if (!read_options(th, tlen, &one, w[i].seq) && w[i].dsack)
			return;		/* an ordinary ACK, not the answer */
		v[i] = one;
		v[i].answered = 1;
		v[i].snd_nxt = ntohl(th->seq);
		v[i].rcv_nxt = ntohl(th->ack_seq);
		v[i].window = ntohs(th->window);
		return;
	}
}

/* One raw socket per family for all probes: opening one per segment
 * (a thread into the namespace, a socket) made 1000 probes take 2.5 s. */
static size_t send_probes(int s, int raw[2], const struct tcpcp_tuple *t,
			  const struct tcpcp_segment *g, size_t n,
			  const struct tcpcp_peer_view *v, int *err)
{
	size_t i, left = 0;

	for (i = 0; i < n; i++) {
		int *fd = &raw[t[i].family == AF_INET6];

		if (v[i].answered)
			continue;
		left++;
		if (!*err && *fd < 0 && (*fd = tcpcp_segment_raw(s, t[i].family, "probing a peer")) < 0)
			*err = *fd;
		if (!*err)
			*err = tcpcp_segment_send_on(*fd, &t[i], &g[i], "probing a peer");
	}
	return left;
}

static int listen_and_probe(int s, int pk, const struct tcpcp_tuple *tt,
			    const struct tcpcp_segment *g, const struct tcpcp_probe_want *w,
			    size_t n, struct tcpcp_peer_view *v, unsigned int timeout_ms)
{
	uint64_t end = now_ms() + timeout_ms, next = 0;
	int err = 0, raw[2] = { -1, -1 };
	uint8_t buf[256];
	size_t left = n;

	while (left && !err) {
		uint64_t t = now_ms();
		struct sockaddr_ll from;
		socklen_t flen;
		struct pollfd pf = { .fd = pk, .events = POLLIN };
		ssize_t got;

		if (t >= end)
			break;
		if (t >= next) {
			left = send_probes(s, raw, tt, g, n, v, &err);
			next = t + PROBE_EVERY_MS;
			continue;
		}
		if (poll(&pf, 1, (int)((next < end ? next : end) - t)) < 0 && errno != EINTR) {
			err = tcpcp_fail(errno, "probing a peer: poll: %s", strerror(errno));
			break;
		}
		for (;;) {
			flen = sizeof(from);
			got = recvfrom(pk, buf, sizeof(buf), MSG_TRUNC, (struct sockaddr *)&from,
				       &flen);
			if (got < 0)
				break;
			if (from.sll_pkttype == PACKET_OUTGOING)
				continue;
			tcpcp_probe_answer(buf, (size_t)got < sizeof(buf) ? (size_t)got : sizeof(buf),
					   tt, w, n, v);
		}
		for (left = 0, t = 0; t < n; t++)
			left += !v[t].answered;
	}
	for (int f = 0; f < 2; f++)
		if (raw[f] >= 0)
			close(raw[f]);
	return err;
}

TCPCP_EXPORT int tcpcp_probe(int s, const void *const *imgs, const size_t *lens, size_t n,
			     struct tcpcp_peer_view *views, unsigned int timeout_ms)
{
	struct packet_ask pk = { .fd = -1 };
	struct tcpcp_ends *e = NULL;
	struct tcpcp_tuple *tt = NULL;
	struct tcpcp_segment *g = NULL;
	struct tcpcp_probe_want *w = NULL;
	int own = -1, err = 0, answered = 0;
	size_t i;

	tcpcp_clear_error();
	if (!n)
		return 0;
	if (!imgs || !lens || !views)
		return tcpcp_fail(EINVAL, "tcpcp_probe: no images or no room for the answers"), -1;
	memset(views, 0, n * sizeof(*views));
	if (tcpcp_need_cap(CAP_NET_ADMIN, "probe a peer (the gate)") ||
	    tcpcp_need_cap(CAP_NET_RAW, "probe a peer (raw and packet sockets)"))
		return -1;
	e = calloc(n, sizeof(*e));
	tt = calloc(n, sizeof(*tt));
	g = calloc(n, sizeof(*g));
	w = calloc(n, sizeof(*w));
	if (!e || !tt || !g || !w) {
		err = tcpcp_fail(ENOMEM, "out of memory for %zu probes", n);
		goto out;
	}
	for (i = 0; i < n && !err; i++)
		err = probe_of(imgs[i], lens[i], &e[i], &tt[i], &g[i], &w[i]);
	if (err)
		goto out;
	if ((s = tcpcp_any_socket(s, &own)) < 0) {
		err = -errno;
		goto out;
	}
	/* Our TCP must not answer the answer. */
	if (tcpcp_gate_close_ends(s, e, n, PROBE_GATE_S)) {
		err = -errno;
		goto out;
	}
	if ((err = tcpcp_netns_run(s, packet_socket, &pk)))
		goto out;
	err = listen_and_probe(s, pk.fd, tt, g, w, n, views, timeout_ms);
	for (i = 0; i < n; i++)
		answered += views[i].answered;
out:
	if (pk.fd >= 0)
		close(pk.fd);
	if (own >= 0)
		close(own);
	free(e);
	free(tt);
	free(g);
	free(w);
	if (err) {
		errno = -err;
		return -1;
	}
	return answered;
}
