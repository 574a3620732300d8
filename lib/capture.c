/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Taking the ICI of a live socket (paper section 2, steps 1-3).
 *
 * Order matters: the gate closes first, so from here on no segment
 * reaches TCP and none leaves; then repair mode makes the application's
 * own reads and writes fail (EPERM / EINVAL) instead of moving the queues
 * under us; only then is the state read.  A segment that passed the hooks
 * just before the gate closed can still be in softirq, so the state is
 * read until two reads agree.
 */
#include <errno.h>
#include <linux/capability.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/utsname.h>
#include <time.h>

#include "internal.h"

#define CONSISTENT_READ_TRIES 20

struct seqs {
	uint32_t write_seq, rcv_nxt;
	int outq, unsent, inq;
};

static int get_u32(int s, int opt, uint32_t *val, const char *name)
{
	socklen_t len = sizeof(*val);

	if (!getsockopt(s, IPPROTO_TCP, opt, val, &len))
		return 0;
	return tcpcp_fail(errno, "reading %s: %s", name, strerror(errno));
}

/* TCP_REPAIR_TS_RECENT, where the kernel has it: 0, or -1 (any errno). */
int tcpcp_ts_recent_read(int s, uint32_t *val)
{
	socklen_t len = sizeof(*val);

	return getsockopt(s, IPPROTO_TCP, TCPCP_TCP_REPAIR_TS_RECENT, val, &len);
}

static int get_ioctl(int s, unsigned long req, int *val, const char *name)
{
	if (!ioctl(s, req, val))
		return 0;
	return tcpcp_fail(errno, "reading %s: %s", name, strerror(errno));
}

static int read_seqs(int s, struct seqs *q)
{
	int err;

	if ((err = tcpcp_repair_queue(s, TCP_SEND_QUEUE)) ||
	    (err = get_u32(s, TCP_QUEUE_SEQ, &q->write_seq, "write_seq")) ||
	    (err = get_ioctl(s, SIOCOUTQ, &q->outq, "SIOCOUTQ")) ||
	    (err = get_ioctl(s, SIOCOUTQNSD, &q->unsent, "SIOCOUTQNSD")) ||
	    (err = tcpcp_repair_queue(s, TCP_RECV_QUEUE)) ||
	    (err = get_u32(s, TCP_QUEUE_SEQ, &q->rcv_nxt, "rcv_nxt")) ||
	    (err = get_ioctl(s, SIOCINQ, &q->inq, "SIOCINQ")))
		return err;
	if (q->outq < 0 || q->unsent < 0 || q->unsent > q->outq || q->inq < 0)
		return tcpcp_fail(EPROTO, "kernel reported inconsistent queue sizes");
	return 0;
}

/* The head of the retransmit queue may still hold bytes before snd_una
 * (a partially acknowledged single segment is not trimmed), so peek with
 * room to spare and keep the last @len bytes, which end at the queue's
 * end sequence by construction. */
static int peek_queue(int s, int queue, ProtobufCBinaryData *out, int len)
{
	size_t room = (size_t)len + 65536;
	uint8_t *buf;
	ssize_t n;
	int err;

	out->data = NULL;
	out->len = 0;
	if (!len)
		return 0;
	if ((err = tcpcp_repair_queue(s, queue)))
		return err;
	buf = malloc(room);
	if (!buf)
		return tcpcp_fail(ENOMEM, "out of memory for a %d byte queue", len);
	n = recv(s, buf, room, MSG_PEEK | MSG_DONTWAIT);
	if (n < len) {
		free(buf);
		if (n < 0)
			return tcpcp_fail(errno, "reading the %s queue: %s",
					  queue == TCP_SEND_QUEUE ? "send" : "receive", strerror(errno));
		return -EAGAIN;	/* moved under us: read again */
	}
	if (n > len)
		memmove(buf, buf + (n - len), (size_t)len);
	out->data = buf;
	out->len = (size_t)len;
	return 0;
}

static void free_queues(TcpcpIci *ici)
{
	free(ici->sendq.data);
	free(ici->recvq.data);
	ici->sendq.data = ici->recvq.data = NULL;
	ici->sendq.len = ici->recvq.len = 0;
}

/* The kernel's counters include FINs (SIOCOUTQ our unacknowledged one,
 * rcv_nxt the peer's), the queues hold bytes only.  copied_seq is kept
 * before the peer's FIN even if the application has read the EOF: the
 * destination's application reads it again. */
/*
 * Bytes never sent must stay unsent in the ICI.  While TCP_SEND_QUEUE is
 * selected (reading write_seq, peeking the queue), any tcp_write_xmit()
 * marks the unsent bytes as sent without transmitting them: that is how
 * repair mode refills a send queue.  A pacing timer (BBR paces inside
 * TCP here) or TSQ fires it now and then, and the ICI then said 1.2 MB
 * were in flight that never left: the destination waited a retransmission
 * timeout before sending anything (bench/throughput_recovery.py: a 0.35 s
 * stall in about half the runs).  Nothing is really sent once the gate is
 * closed and the application's writes fail in repair mode, so the number
 * of unsent bytes read first, with no queue selected, stays the truth.
 */
static int read_queues(int s, TcpcpIci *ici)
{
	struct tcpcp_fins f = tcpcp_fins_of(ici->state);
	int fin_out = f.out && !f.out_acked, fin_in = f.in;
	struct seqs a, b;
	int err, i, unsent;

	if ((err = tcpcp_repair_queue(s, TCP_NO_QUEUE)) ||
	    (err = get_ioctl(s, SIOCOUTQNSD, &unsent, "SIOCOUTQNSD")))
		return err;
	for (i = 0; i < CONSISTENT_READ_TRIES; i++) {
		if ((err = read_seqs(s, &a)))
			return err;
		if (a.outq < fin_out)
			return tcpcp_fail(EPROTO, "kernel reported no FIN in the send queue of a %s socket",
					  tcpcp_state_name((int)ici->state));
		err = peek_queue(s, TCP_SEND_QUEUE, &ici->sendq, a.outq - fin_out);
		if (!err)
			err = peek_queue(s, TCP_RECV_QUEUE, &ici->recvq, a.inq);
		if (!err && !(err = read_seqs(s, &b)) && !memcmp(&a, &b, sizeof(a))) {
			ici->write_seq = a.write_seq;
			ici->snd_una = a.write_seq - (uint32_t)a.outq;
			if (a.unsent < unsent && unsent <= a.outq)
				a.unsent = unsent;	/* marked sent, never sent */
			ici->snd_nxt = a.write_seq - (uint32_t)a.unsent;
			ici->rcv_nxt = a.rcv_nxt;
			ici->copied_seq = a.rcv_nxt - (uint32_t)fin_in - (uint32_t)a.inq;
			return tcpcp_repair_queue(s, TCP_NO_QUEUE);
		}
		free_queues(ici);
		if (err && err != -EAGAIN)
			return err;
	}
	return tcpcp_fail(EAGAIN, "connection state kept changing while isolated");
}

static int endpoint_from_sockaddr(const struct sockaddr_storage *ss, TcpcpEndpoint *ep)
{
	tcpcp_endpoint__init(ep);
	ep->family = ss->ss_family;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)ss;

		ep->addr.data = malloc(4);
		if (ep->addr.data)
			memcpy(ep->addr.data, &sin->sin_addr, 4);
		ep->addr.len = 4;
		ep->port = ntohs(sin->sin_port);
	} else {
		const struct sockaddr_in6 *sin6 = (const void *)ss;

		ep->addr.data = malloc(16);
		if (ep->addr.data)
			memcpy(ep->addr.data, &sin6->sin6_addr, 16);
		ep->addr.len = 16;
		ep->port = ntohs(sin6->sin6_port);
		if (sin6->sin6_scope_id) {
			ep->has_scope_id = true;
			ep->scope_id = sin6->sin6_scope_id;
		}
	}
	return ep->addr.data ? 0 : tcpcp_fail(ENOMEM, "out of memory");
}

static int read_endpoints(int s, TcpcpEndpoint *local, TcpcpEndpoint *peer)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int err;

	if (getsockname(s, (struct sockaddr *)&ss, &len))
		return tcpcp_fail(errno, "getsockname: %s", strerror(errno));
	if ((err = endpoint_from_sockaddr(&ss, local)))
		return err;
	len = sizeof(ss);
	if (getpeername(s, (struct sockaddr *)&ss, &len))
		return tcpcp_fail(errno, "getpeername: %s", strerror(errno));
	return endpoint_from_sockaddr(&ss, peer);
}

static int read_options(int s, const struct tcp_info *ti, TcpcpOptions *o)
{
	tcpcp_options__init(o);
	/* In repair mode TCP_MAXSEG reports mss_clamp, the negotiated
	 * maximum, rather than the current mss_cache. */
	if (get_u32(s, TCP_MAXSEG, &o->mss_clamp, "TCP_MAXSEG"))
		return -errno;
	o->rcv_mss = ti->tcpi_rcv_mss;
	o->sack = !!(ti->tcpi_options & TCPI_OPT_SACK);
	o->timestamps = !!(ti->tcpi_options & TCPI_OPT_TIMESTAMPS);
	o->wscale = !!(ti->tcpi_options & TCPI_OPT_WSCALE);
	if (o->wscale) {
		o->snd_wscale = ti->tcpi_snd_wscale;
		o->rcv_wscale = ti->tcpi_rcv_wscale;
	}
	o->has_ecn = true;
	o->ecn = !!(ti->tcpi_options & TCPI_OPT_ECN);
	return 0;
}

static void read_congestion(const struct tcp_info *ti, TcpcpCongestion *c)
{
	tcpcp_congestion__init(c);
	c->has_snd_cwnd = c->has_snd_ssthresh = c->has_srtt_us = true;
	c->has_rttvar_us = c->has_rto_us = c->has_pacing_rate = true;
	c->has_delivery_rate = c->has_reordering = true;
	c->snd_cwnd = ti->tcpi_snd_cwnd;
	c->snd_ssthresh = ti->tcpi_snd_ssthresh;
	c->srtt_us = ti->tcpi_rtt;
	c->rttvar_us = ti->tcpi_rttvar;
	c->rto_us = ti->tcpi_rto;
	c->pacing_rate = (uint32_t)(ti->tcpi_pacing_rate > UINT32_MAX ? UINT32_MAX : ti->tcpi_pacing_rate);
	c->delivery_rate = ti->tcpi_delivery_rate;
	c->reordering = ti->tcpi_reordering;
}

static int read_window(int s, TcpcpWindow *w)
{
	struct tcp_repair_window trw;
	socklen_t len = sizeof(trw);

	if (getsockopt(s, IPPROTO_TCP, TCP_REPAIR_WINDOW, &trw, &len))
		return tcpcp_fail(errno, "reading TCP_REPAIR_WINDOW: %s", strerror(errno));
	tcpcp_window__init(w);
	w->snd_wl1 = trw.snd_wl1;
	w->snd_wnd = trw.snd_wnd;
	w->max_window = trw.max_window;
	w->rcv_wnd = trw.rcv_wnd;
	w->rcv_wup = trw.rcv_wup;
	return 0;
}

/* Everything lives in one allocation-owning struct so that one cleanup
 * path frees whatever was filled in. */
struct capture {
	TcpcpIci ici;
	TcpcpEndpoint local, peer;
	TcpcpOptions options;
	TcpcpWindow window;
	TcpcpSockopts sockopts;
	TcpcpCongestion congestion;
	struct utsname uts;
};

static void capture_free(struct capture *c)
{
	free(c->local.addr.data);
	free(c->peer.addr.data);
	free_queues(&c->ici);
	tcpcp_sockopts_free(&c->sockopts);
}

/* A paced socket (BBR, fq, SO_MAX_PACING_RATE) stamps each segment with
 * its earliest departure time, not the clock: after a segment leaves,
 * tp->tcp_wstamp_ns moves on by the segment's length at the pacing rate
 * (net/ipv4/tcp_output.c, tcp_update_skb_after_send()), and whatever it
 * sends next, a pure ACK too, carries that later TSval.  At a slow rate
 * that is hundreds of milliseconds past what TCP_TIMESTAMP reads (seen:
 * 376 ms, BBR at ~170 KB/s, after a 64 KB segment), and a destination
 * resuming from TCP_TIMESTAMP would stamp older TSvals than the peer has
 * seen: its PAWS drops them until the clock catches up.
 *
 * No socket option shows tcp_wstamp_ns (a BPF fentry or kprobe on
 * tcp_get_info() could read it; both are refused where tcpcp is tested),
 * so the clock is moved past the most it can lead by: one segment of at
 * most GSO's 64 KB at a quarter of the current pacing rate.  The rate the
 * segment left at may have been lower than today's: BBR paces at 0.35 of
 * its estimate while draining and at 0.75 or 1.25 in turns while probing,
 * and the soak saw 251 ms where 64 KB at today's rate gave less.  A later
 * clock costs the peer nothing (PAWS only refuses older TSvals; each end
 * times its round trips with its own clock).  A segment built larger (BIG
 * TCP) can still lead by more. */
#define PACING_SEG_MAX		65536u
#define PACING_RATE_FALL	4	/* how far the rate may have risen since */

uint32_t tcpcp_ts_past_pacing(uint32_t ts, uint64_t rate)
{
	uint64_t tick = tcpcp_ts_tick_ns(ts);

	if (!rate || rate == UINT64_MAX)
		return ts;		/* not paced */
	return tcpcp_ts_later(ts, ((uint64_t)PACING_SEG_MAX * PACING_RATE_FALL * 1000000000ull /
				   rate + tick - 1) / tick);
}

static int capture_state(int s, struct capture *c)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	struct timespec now;
	int err;

	tcpcp_ici__init(&c->ici);
	c->ici.major = TCPCP_ICI_MAJOR;
	c->ici.minor = TCPCP_ICI_MINOR;
	c->ici.local = &c->local;
	c->ici.peer = &c->peer;
	c->ici.options = &c->options;
	c->ici.window = &c->window;
	c->ici.sockopts = &c->sockopts;
	c->ici.congestion = &c->congestion;

	clock_gettime(CLOCK_REALTIME, &now);
	c->ici.capture_realtime_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	if (!uname(&c->uts))
		c->ici.origin_host = c->uts.nodename;

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &len))
		return tcpcp_fail(errno, "TCP_INFO: %s", strerror(errno));
	c->ici.state = ti.tcpi_state;
	if ((err = read_endpoints(s, &c->local, &c->peer)) ||
	    (err = read_options(s, &ti, &c->options)) ||
	    (err = tcpcp_sockopts_save(s, c->local.family, &c->sockopts)))
		return err;
	read_congestion(&ti, &c->congestion);
	if (c->options.timestamps) {
		c->ici.has_timestamp = true;
		if ((err = get_u32(s, TCP_TIMESTAMP, &c->ici.timestamp, "TCP_TIMESTAMP")))
			return err;
		c->ici.timestamp = tcpcp_ts_past_pacing(c->ici.timestamp, ti.tcpi_pacing_rate);
		/* The peer's last TSval needs kernel-patch/ 0001; a stock
		 * kernel says ENOPROTOOPT and the ICI goes without it. */
		c->ici.has_ts_recent = !tcpcp_ts_recent_read(s, &c->ici.ts_recent);
	}
	if ((err = read_queues(s, &c->ici)) || (err = read_window(s, &c->window)))
		return err;
	/* What we just read must be what we would accept at a destination. */
	return tcpcp_ici_check(&c->ici);
}

static int in_repair(int s)
{
	socklen_t len = sizeof(int);
	int v = 0;

	return !getsockopt(s, IPPROTO_TCP, TCP_REPAIR, &v, &len) && v;
}

/* For a caller that already isolated the connection by other means and
 * put it in repair mode (CRIU's network lock and --tcp-established): read
 * the state only, no gate, and leave the socket exactly as it was. */
TCPCP_EXPORT void *tcpcp_capture(int s, size_t *len)
{
	struct capture c;
	void *img = NULL;
	int state;

	tcpcp_clear_error();
	memset(&c, 0, sizeof(c));
	if (tcpcp_check_tcp_socket(s, &state))
		return NULL;
	if (!in_repair(s)) {
		tcpcp_fail(EINVAL, "fd %d is not in repair mode", s);
		return NULL;
	}
	if (!capture_state(s, &c))
		img = tcpcp_image_encode(&c.ici, len);
	capture_free(&c);
	return img;
}

TCPCP_EXPORT void *tcpcp_get_ex(int s, size_t *len)
{
	struct tcpcp_tuple t;
	struct capture c;
	bool was_repair;
	void *img = NULL;
	int state, err;

	tcpcp_clear_error();
	memset(&c, 0, sizeof(c));
	if (tcpcp_check_tcp_socket(s, &state) ||
	    tcpcp_need_cap(CAP_NET_ADMIN, "isolate a connection and read its state") ||
	    tcpcp_tuple_from_socket(s, &t))
		return NULL;
	/* Someone (criu) may have put it in repair mode already; then
	 * leaving repair mode is not ours to do on failure. */
	was_repair = in_repair(s);
	if (tcpcp_gate_close(s, &t))
		return NULL;
	if (!was_repair && tcpcp_repair(s, TCP_REPAIR_ON))
		goto undo;
	if (capture_state(s, &c))
		goto undo;
	img = tcpcp_image_encode(&c.ici, len);
	if (img)
		goto out;
undo:
	err = errno;
	if (!was_repair)
		tcpcp_repair(s, TCP_REPAIR_OFF);
	tcpcp_gate_open(s, &t);
	errno = err;
out:
	capture_free(&c);
	return img;
}

TCPCP_EXPORT void *tcpcp_get(int s)
{
	size_t len;

	return tcpcp_get_ex(s, &len);
}

TCPCP_EXPORT int tcpcp_maxicisize(int s)
{
	int snd = 0, rcv = 0, state;
	socklen_t len = sizeof(int);

	if (tcpcp_check_tcp_socket(s, &state))
		return -1;
	getsockopt(s, SOL_SOCKET, SO_SNDBUF, &snd, &len);
	len = sizeof(int);
	getsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcv, &len);
	/* Queues cannot outgrow the buffers; 4 KiB covers every other
	 * field with room to spare. */
	return TCPCP_HDR_LEN + snd + rcv + 4096;
}
