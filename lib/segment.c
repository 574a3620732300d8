/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One TCP segment of a connection, without payload or with one byte (a
 * probe the peer's answer can be told by, probe.c), written whole (IP
 * header included) to a raw socket of a given namespace and marked so that
 * it passes the connection's closed gate both ways: the peer's FIN or ACK
 * replayed into a rebuilt half-closed connection (fin.c, towards us), and
 * the probe that asks a peer where it stands (probe.c, towards the peer).
 *
 * Built by hand rather than with libnet: libnet's raw open probes the
 * send buffer with thousands of setsockopt() calls (4 ms here, more than
 * the rest of a create), for one segment of 40 to 72 bytes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

_Static_assert(sizeof(struct iphdr) == 20 && sizeof(struct ip6_hdr) == 40 &&
	       sizeof(struct tcphdr) == 20, "headers back to back, no padding");

#define TS_OPT_LEN	12	/* NOP, NOP, kind 8, length 10, TSval, TSecr */

struct tcp_ts {
	struct tcphdr th;
	uint8_t opt[TS_OPT_LEN + 1];	/* the options, then a payload byte */
};

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

static uint16_t tcp_checksum(int family, const void *src, const void *dst,
			     const struct tcp_ts *seg, size_t len)
{
	size_t alen = family == AF_INET ? 4 : 16;
	uint32_t sum = IPPROTO_TCP + (uint32_t)len;

	sum = sum16(src, alen, sum);
	sum = sum16(dst, alen, sum);
	sum = sum16(seg, len, sum);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

static size_t build_tcp(struct tcp_ts *seg, uint16_t sport, uint16_t dport,
			const struct tcpcp_segment *g)
{
	struct tcphdr *th = &seg->th;
	size_t len = sizeof(*th);

	memset(seg, 0, sizeof(*seg));
	th->source = htons(sport);
	th->dest = htons(dport);
	th->seq = htonl(g->seq);
	th->ack_seq = htonl(g->ack);
	th->fin = g->fin;
	th->rst = g->rst;
	th->ack = 1;
	th->window = htons(g->window);
	if (g->ts) {
		uint32_t v = htonl(g->tsval), e = htonl(g->tsecr);

		seg->opt[0] = seg->opt[1] = TCPOPT_NOP;
		seg->opt[2] = TCPOPT_TIMESTAMP;
		seg->opt[3] = TCPOLEN_TIMESTAMP;
		memcpy(&seg->opt[4], &v, 4);
		memcpy(&seg->opt[8], &e, 4);
		len += TS_OPT_LEN;
	}
	th->doff = (unsigned int)(len / 4);
	if (g->one_byte)
		len++;		/* zeroed above */
	return len;
}

struct raw_ask {
	int family, fd;
	const char *why;
};

/* IPPROTO_RAW: we write the IP header. */
static int raw_socket(void *arg)
{
	struct raw_ask *a = arg;

	a->fd = socket(a->family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
	if (a->fd < 0)
		return tcpcp_fail(errno, "%s needs a raw socket (CAP_NET_RAW): %s", a->why,
				  strerror(errno));
	return 0;
}

int tcpcp_segment_raw(int s, int family, const char *why)
{
	struct raw_ask raw = { .family = family, .why = why };
	uint32_t mark = TCPCP_INJECT_MARK;
	int err;

	/* A socket stays in the namespace it was made in. */
	if ((err = tcpcp_netns_run(s, raw_socket, &raw)))
		return err;
	if (setsockopt(raw.fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark))) {
		err = tcpcp_fail(errno, "%s: marking a segment (SO_MARK): %s", why, strerror(errno));
		close(raw.fd);
		return err;
	}
	return raw.fd;
}

int tcpcp_segment_send(int s, const struct tcpcp_tuple *t, const struct tcpcp_segment *g,
		       const char *why)
{
	int raw = tcpcp_segment_raw(s, t->family, why), err;

	if (raw < 0)
		return raw;
	err = tcpcp_segment_send_on(raw, t, g, why);
	close(raw);
	return err;
}

int tcpcp_segment_send_on(int raw, const struct tcpcp_tuple *t, const struct tcpcp_segment *g,
			  const char *why)
{
	union {
		struct { struct iphdr ip; struct tcp_ts tcp; } v4;
		struct { struct ip6_hdr ip; struct tcp_ts tcp; } v6;
	} pkt;
	const void *src = g->to_peer ? (const void *)&t->local : (const void *)&t->peer;
	const void *dst = g->to_peer ? (const void *)&t->peer : (const void *)&t->local;
	uint16_t sport = g->to_peer ? t->lport : t->pport;
	uint16_t dport = g->to_peer ? t->pport : t->lport;
	struct sockaddr_storage to;
	size_t tlen, len;

	memset(&pkt, 0, sizeof(pkt));
	memset(&to, 0, sizeof(to));
	if (t->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&to;

		tlen = build_tcp(&pkt.v4.tcp, sport, dport, g);
		pkt.v4.tcp.th.check = tcp_checksum(AF_INET, src, dst, &pkt.v4.tcp, tlen);
		len = sizeof(pkt.v4.ip) + tlen;
		pkt.v4.ip.version = 4;
		pkt.v4.ip.ihl = sizeof(pkt.v4.ip) / 4;
		pkt.v4.ip.tot_len = htons((uint16_t)len);
		pkt.v4.ip.ttl = 64;
		pkt.v4.ip.protocol = IPPROTO_TCP;
		memcpy(&pkt.v4.ip.saddr, src, 4);
		memcpy(&pkt.v4.ip.daddr, dst, 4);
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, dst, 4);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&to;

		tlen = build_tcp(&pkt.v6.tcp, sport, dport, g);
		pkt.v6.tcp.th.check = tcp_checksum(AF_INET6, src, dst, &pkt.v6.tcp, tlen);
		len = sizeof(pkt.v6.ip) + tlen;
		pkt.v6.ip.ip6_flow = htonl(6u << 28);
		pkt.v6.ip.ip6_plen = htons((uint16_t)tlen);
		pkt.v6.ip.ip6_nxt = IPPROTO_TCP;
		pkt.v6.ip.ip6_hlim = 64;
		memcpy(&pkt.v6.ip.ip6_src, src, 16);
		memcpy(&pkt.v6.ip.ip6_dst, dst, 16);
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, dst, 16);
	}
	if (sendto(raw, &pkt, len, 0, (struct sockaddr *)&to, sizeof(to)) != (ssize_t)len)
		return tcpcp_fail(errno, "%s: sending a segment: %s", why, strerror(errno));
	return 0;
}
