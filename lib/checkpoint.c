/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Checkpoints of a live connection (paper section 6): the ICI of a
 * connection that runs on, taken by its owner at its own consistency
 * point, in microseconds, without the gate and without repair mode.
 *
 * Repair mode is what lets tcpcp_get() read sequence numbers and queues,
 * but on a connection that goes on it has a price: while TCP_SEND_QUEUE
 * is selected, every tcp_write_xmit() (an ACK arriving, the pacing timer,
 * TSQ, our own release_sock()) marks unsent bytes as sent without
 * sending them (net/ipv4/tcp_output.c), and the connection then waits for
 * a retransmission.  So repair mode is entered once, in tcpcp_ckpt_new(),
 * when nothing is unsent and nothing can be marked, to read what never
 * changes (addresses, negotiated options, socket options, the windows)
 * and the sequence numbers once.  From then on a checkpoint reads
 * TCP_INFO's byte counters, which move with snd_una and rcv_nxt, and the
 * queue lengths (SIOCOUTQ, SIOCINQ):
 *
 *   snd_una   = una0 + (bytes_acked - acked0)
 *   write_seq = snd_una + outq
 *   rcv_nxt   = rcv0 + (bytes_received - received0)
 *   copied_seq = rcv_nxt - inq
 *
 * with the lengths read on both sides of TCP_INFO, equal both times, so
 * that no segment moved them in between.  The receive queue is read with
 * a plain MSG_PEEK (no repair mode needed); the send queue is not read at
 * all (tcp_peek_sndq() has no offset, so it would copy the whole queue
 * each time, in repair mode): a
 * checkpoint says every byte up to write_seq was acknowledged and records
 * the real snd_una (unqueued_una).  On resurrection the peer says where
 * it stands, anywhere from there on, and the application writes again
 * what the peer lacks from its own state (tcpcp_resurrect()'s skip, which
 * is negative then).  Its state travels in the image (app_state).
 *
 * The owner must not write to or read from the socket from another
 * thread while a checkpoint is taken: the queue lengths would not match
 * the state it hands in.
 */
#include <errno.h>
#include <linux/capability.h>
#include <net/if.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "internal.h"
#include "bpf/gate.h"

#define CKPT_TRIES	20

struct tcpcp_ckpt {
	TcpcpIci *ici;			/* the first capture: what never changes */
	ProtobufCBinaryData sendq0, recvq0;	/* its own queues, freed with it */
	uint32_t una0, rcv0;		/* snd_una and rcv_nxt at ... */
	uint64_t acked0, received0;	/* ... these TCP_INFO counters */
	uint8_t *fixed;			/* its unchanging half, packed */
	size_t fixed_len;
	uint8_t *rbuf;			/* receive queue peek buffer */
	size_t rbuf_len;
	uint32_t last_rcv;		/* rcv_nxt of the latest checkpoint */
	uint32_t ts0;			/* TCP_TIMESTAMP read at ... */
	uint64_t ts0_ns;		/* ... this CLOCK_MONOTONIC time */
	int clamp;			/* the clamp's map, or -1 */
	uint32_t clamped;		/* where the clamp stands */
	int raw;			/* for the ACK a clamp move sends, or -1 */
	bool held;			/* the kernel holds the ACKs (TCP_ACK_HOLD) */
	struct tcpcp_tuple t;
};

static int tcp_info(int s, struct tcp_info *ti)
{
	socklen_t len = sizeof(*ti);

	memset(ti, 0, sizeof(*ti));
	if (getsockopt(s, IPPROTO_TCP, TCP_INFO, ti, &len))
		return tcpcp_fail(errno, "TCP_INFO on fd %d: %s", s, strerror(errno));
	/* tcpi_bytes_received is Linux 4.1's, the last of the two. */
	if (len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti->tcpi_bytes_received))
		return tcpcp_fail(EOPNOTSUPP, "the kernel's TCP_INFO has no byte counters (Linux 4.1+)");
	return 0;
}

static int ioctl_int(int s, unsigned long req, int *v, const char *name)
{
	if (!ioctl(s, req, v) && *v >= 0)
		return 0;
	return tcpcp_fail(errno ? errno : EPROTO, "reading %s: %s", name, strerror(errno));
}

static int reuseaddr(int s, int *v, bool set)
{
	socklen_t len = sizeof(*v);

	if (set ? setsockopt(s, SOL_SOCKET, SO_REUSEADDR, v, sizeof(*v))
		: getsockopt(s, SOL_SOCKET, SO_REUSEADDR, v, &len))
		return tcpcp_fail(errno, "SO_REUSEADDR: %s", strerror(errno));
	return 0;
}

/* The first capture, in repair mode, between two TCP_INFOs that agree. */
static int first_capture(int s, struct tcpcp_ckpt *c)
{
	struct tcp_info a, b;
	void *img = NULL;
	size_t len;
	int i, err;

	for (i = 0; i < CKPT_TRIES; i++) {
		bool moved;

		free(img);
		if ((err = tcp_info(s, &a)))
			return err;
		img = tcpcp_capture(s, &len);
		err = img ? 0 : -errno;
		if (tcp_info(s, &b)) {
			err = -errno;
			goto out;
		}
		moved = a.tcpi_bytes_acked != b.tcpi_bytes_acked ||
			a.tcpi_bytes_received != b.tcpi_bytes_received;
		/* Segments that arrive during the read can make its parts
		 * disagree (seen: rcv_wup read after an ACK beyond the
		 * rcv_nxt read before it, refused by the image's checks):
		 * that is movement too, read again. */
		if (!moved && err)
			goto out;
		if (!moved)
			break;
	}
	if (i == CKPT_TRIES) {
		err = tcpcp_fail(EAGAIN, "the connection kept moving during its first checkpoint");
		goto out;
	}
	c->ici = tcpcp_image_decode(img, len);
	if (!c->ici) {
		err = -errno;
		goto out;
	}
	c->una0 = c->ici->snd_una;
	c->rcv0 = c->ici->rcv_nxt;
	c->acked0 = a.tcpi_bytes_acked;
	c->received0 = a.tcpi_bytes_received;
	err = 0;
out:
	free(img);
	return err;
}

TCPCP_EXPORT void tcpcp_ckpt_free(struct tcpcp_ckpt *c)
{
	if (!c)
		return;
	if (c->ici) {
		c->ici->sendq = c->sendq0;
		c->ici->recvq = c->recvq0;
		c->ici->has_app_state = false;
		c->ici->app_state.data = NULL;
		tcpcp_ici__free_unpacked(c->ici, NULL);
	}
	free(c->fixed);
	free(c->rbuf);
	if (c->clamp >= 0)
		close(c->clamp);
	if (c->raw >= 0)
		close(c->raw);
	free(c);
}

/* TCP_TIMESTAMP once, and the clock it runs on (tcp_clock_ns() is
 * CLOCK_MONOTONIC) read just before: each checkpoint then tells the
 * timestamp from the clock, without a system call (one of six, 1-2 µs
 * on a cold cache). */
static int ts_start(int s, struct tcpcp_ckpt *c)
{
	socklen_t len = sizeof(c->ts0);

	c->ts0_ns = tcpcp_now_ns();
	if (getsockopt(s, IPPROTO_TCP, TCP_TIMESTAMP, &c->ts0, &len))
		return tcpcp_fail(errno, "reading TCP_TIMESTAMP: %s", strerror(errno));
	return 0;
}

/* Never behind what TCP_TIMESTAMP would say now, so that nothing resumed
 * from the checkpoint goes back in time: ts0 may be a tick short of the
 * socket's clock (bit 0, the resolution flag, cleared from it), and that
 * clock may have turned once more than the whole ticks since ts0_ns (it
 * read ts0 a little after): two ticks ahead covers both. */
static uint32_t ts_now(const struct tcpcp_ckpt *c)
{
	uint64_t ticks = (tcpcp_now_ns() - c->ts0_ns) / tcpcp_ts_tick_ns(c->ts0);

	return tcpcp_ts_later(c->ts0, ticks + 2);
}

/* The half of every checkpoint's image that never changes, packed once
 * (images/ici.proto, tcpcp_ici_fixed). */
static int pack_fixed(struct tcpcp_ckpt *c)
{
	TcpcpIciFixed f = TCPCP_ICI_FIXED__INIT;
	const TcpcpIci *ici = c->ici;

	f.major = ici->major;
	f.minor = ici->minor;
	f.local = ici->local;
	f.peer = ici->peer;
	f.state = ici->state;
	f.options = ici->options;
	f.sockopts = ici->sockopts;
	f.origin_host = ici->origin_host;
	c->fixed_len = tcpcp_ici_fixed__get_packed_size(&f);
	if (!(c->fixed = malloc(c->fixed_len)))
		return tcpcp_fail(ENOMEM, "out of memory");
	tcpcp_ici_fixed__pack(&f, c->fixed);
	return 0;
}

TCPCP_EXPORT struct tcpcp_ckpt *tcpcp_ckpt_new(int s)
{
	struct tcpcp_ckpt *c;
	int state, unsent, reuse, err;

	tcpcp_clear_error();
	if (tcpcp_check_tcp_socket(s, &state))
		return NULL;
	if (state != TCPCP_ST_ESTABLISHED) {
		tcpcp_fail(EOPNOTSUPP, "checkpoints of a connection in state %s are not supported "
			   "(only ESTABLISHED)", tcpcp_state_name(state));
		return NULL;
	}
	if (ioctl_int(s, SIOCOUTQNSD, &unsent, "SIOCOUTQNSD"))
		return NULL;
	if (unsent) {
		/* Repair mode with bytes unsent would send them nowhere. */
		tcpcp_fail(EAGAIN, "fd %d has %d bytes not yet sent: start its checkpoints before "
			   "writing, or once they are out", s, unsent);
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		tcpcp_fail(ENOMEM, "out of memory");
		return NULL;
	}
	c->clamp = c->raw = -1;
	if (reuseaddr(s, &reuse, false) || tcpcp_repair(s, TCP_REPAIR_ON))
		goto fail;
	err = first_capture(s, c);
	/* Leaving repair mode clears SO_REUSEADDR (sk_reuse); no window
	 * probe: the connection never stopped. */
	if (tcpcp_repair(s, TCP_REPAIR_OFF_NO_WP) || reuseaddr(s, &reuse, true) || err ||
	    pack_fixed(c) || (c->ici->has_timestamp && ts_start(s, c)))
		goto fail;
	c->sendq0 = c->ici->sendq;
	c->recvq0 = c->ici->recvq;
	c->last_rcv = c->rcv0;
	return c;
fail:
	err = errno;
	tcpcp_ckpt_free(c);
	errno = err;
	return NULL;
}

/* snd_una and rcv_nxt now, from TCP_INFO's counters (see the top). */
static uint32_t una_of(const struct tcpcp_ckpt *c, const struct tcp_info *ti)
{
	return c->una0 + (uint32_t)(ti->tcpi_bytes_acked - c->acked0);
}

static uint32_t rcv_nxt_of(const struct tcpcp_ckpt *c, const struct tcp_info *ti)
{
	return c->rcv0 + (uint32_t)(ti->tcpi_bytes_received - c->received0);
}

/* The queue lengths and the counters they go with.  While the owner
 * neither writes nor reads, outq moves only with snd_una (an ACK) and inq
 * only with rcv_nxt (a segment): equal lengths on both sides of TCP_INFO
 * mean its counters belong to them.  (Two TCP_INFOs around the lengths
 * took longer, and a stream's ACKs, every few microseconds on loopback,
 * made them disagree and the read start over.) */
static int read_live(int s, struct tcp_info *ti, int *outq, int *inq)
{
	int i, err, outq2, inq2;

	for (i = 0; i < CKPT_TRIES; i++) {
		if ((err = ioctl_int(s, SIOCOUTQ, outq, "SIOCOUTQ")) ||
		    (err = ioctl_int(s, SIOCINQ, inq, "SIOCINQ")) ||
		    (err = tcp_info(s, ti)) ||
		    (err = ioctl_int(s, SIOCOUTQ, &outq2, "SIOCOUTQ")) ||
		    (err = ioctl_int(s, SIOCINQ, &inq2, "SIOCINQ")))
			return err;
		if (ti->tcpi_state != TCPCP_ST_ESTABLISHED)
			return tcpcp_fail(EOPNOTSUPP, "the connection is %s now: checkpoints end there",
					  tcpcp_state_name(ti->tcpi_state));
		if (*outq == outq2 && *inq == inq2)
			break;
	}
	if (i == CKPT_TRIES)
		return tcpcp_fail(EAGAIN, "the connection kept moving while its checkpoint was read");
	return 0;
}

/* The first @inq bytes of the receive queue, which start at copied_seq
 * however many arrive meanwhile. */
static int peek_recvq(int s, struct tcpcp_ckpt *c, int inq, ProtobufCBinaryData *out)
{
	ssize_t n;

	out->data = NULL;
	out->len = 0;
	if (!inq)
		return 0;
	if (c->rbuf_len < (size_t)inq) {
		uint8_t *b = realloc(c->rbuf, (size_t)inq);

		if (!b)
			return tcpcp_fail(ENOMEM, "out of memory for a %d byte receive queue", inq);
		c->rbuf = b;
		c->rbuf_len = (size_t)inq;
	}
	n = recv(s, c->rbuf, (size_t)inq, MSG_PEEK | MSG_DONTWAIT);
	if (n != inq)
		return tcpcp_fail(n < 0 ? errno : EPROTO, "peeking the receive queue: %s",
				  n < 0 ? strerror(errno) : "fewer bytes than SIOCINQ said");
	out->data = c->rbuf;
	out->len = (size_t)inq;
	return 0;
}

/* The image: the fixed half packed by tcpcp_ckpt_new(), then the live
 * half of @c's ICI as this checkpoint left it. */
static void *encode(const struct tcpcp_ckpt *c, size_t *len)
{
	TcpcpIciLive l = TCPCP_ICI_LIVE__INIT;
	const TcpcpIci *ici = c->ici;
	uint8_t *img;

	l.snd_una = ici->snd_una;
	l.snd_nxt = ici->snd_nxt;
	l.write_seq = ici->write_seq;
	l.rcv_nxt = ici->rcv_nxt;
	l.copied_seq = ici->copied_seq;
	l.window = ici->window;
	l.has_timestamp = ici->has_timestamp;
	l.timestamp = ici->timestamp;
	l.has_ts_recent = ici->has_ts_recent;
	l.ts_recent = ici->ts_recent;
	l.sendq = ici->sendq;
	l.recvq = ici->recvq;
	l.congestion = ici->congestion;
	l.capture_realtime_ns = ici->capture_realtime_ns;
	l.has_unqueued_una = ici->has_unqueued_una;
	l.unqueued_una = ici->unqueued_una;
	l.has_app_state = ici->has_app_state;
	l.app_state = ici->app_state;
	img = tcpcp_image_alloc(c->fixed_len + tcpcp_live_pack(&l, NULL), len);
	if (img) {
		memcpy(img + TCPCP_HDR_LEN, c->fixed, c->fixed_len);
		tcpcp_live_pack(&l, img + TCPCP_HDR_LEN + c->fixed_len);
	}
	return img;
}

TCPCP_EXPORT void *tcpcp_checkpoint(struct tcpcp_ckpt *c, int s, const void *state,
				    size_t state_len, size_t *len)
{
	TcpcpIci *ici;
	struct tcp_info ti;
	struct timespec now;
	int outq, inq;
	uint32_t una;
	void *img;

	tcpcp_clear_error();
	if (!c || !len || (!state && state_len)) {
		tcpcp_fail(EINVAL, "tcpcp_checkpoint: missing argument");
		return NULL;
	}
	ici = c->ici;
	if (read_live(s, &ti, &outq, &inq) ||
	    peek_recvq(s, c, inq, &ici->recvq))
		return NULL;
	una = una_of(c, &ti);
	ici->rcv_nxt = rcv_nxt_of(c, &ti);
	c->last_rcv = ici->rcv_nxt;
	ici->copied_seq = ici->rcv_nxt - (uint32_t)inq;
	ici->write_seq = ici->snd_nxt = ici->snd_una = una + (uint32_t)outq;
	ici->has_unqueued_una = true;
	ici->unqueued_una = una;
	ici->sendq.data = NULL;
	ici->sendq.len = 0;
	if (ici->has_timestamp)
		ici->timestamp = tcpcp_ts_past_pacing(ts_now(c), ti.tcpi_pacing_rate);
	/* Where the kernel has it (the first capture found out). */
	if (ici->has_ts_recent)
		ici->has_ts_recent = !tcpcp_ts_recent_read(s, &ici->ts_recent);
	/* Our window as the peer last heard of it starts at rcv_nxt now. */
	ici->window->rcv_wup = ici->rcv_nxt;
	ici->window->snd_wl1 = ici->rcv_nxt;
	if (ici->congestion) {
		ici->congestion->snd_cwnd = ti.tcpi_snd_cwnd;
		ici->congestion->snd_ssthresh = ti.tcpi_snd_ssthresh;
		ici->congestion->srtt_us = ti.tcpi_rtt;
		ici->congestion->rttvar_us = ti.tcpi_rttvar;
		ici->congestion->rto_us = ti.tcpi_rto;
	}
	ici->has_app_state = true;
	ici->app_state.data = (uint8_t *)state;
	ici->app_state.len = state_len;
	clock_gettime(CLOCK_REALTIME, &now);
	ici->capture_realtime_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	img = encode(c, len);
	ici->app_state.data = NULL;
	ici->has_app_state = false;
	ici->recvq.data = NULL;
	ici->recvq.len = 0;
	return img;
}

/*
 * The acknowledgment clamp (paper section 6.2; bpf/clamp.bpf.c): from now
 * on @s acknowledges the peer's bytes no further than the latest
 * checkpoint's rcv_nxt (before the first, tcpcp_ckpt_new()'s).  Bytes
 * acknowledged beyond what a standby holds would be lost with the
 * primary: the peer never sends acknowledged bytes again.  So call this
 * once the latest checkpoint is safe at the standby, e.g. when the
 * control connection's send queue is empty (SIOCOUTQ 0: the standby's
 * host has it), and the clamp moves up to it.
 *
 * Where the kernel has TCP_ACK_HOLD (kernel-patch/ 0002) it does this
 * itself: mode 2 at the first call, and each call releases up to the
 * latest checkpoint (the kernel clamps that to what was read, and sends
 * the ACK itself).  Otherwise the first call loads the program for the
 * host (the one loader) and
 * attaches it at the egress of every interface of @s's network namespace
 * (a clsact filter, handle TCPCP_CLAMP_HANDLE, replaced if there); it
 * stays there, checking a socket storage lookup per segment, after the
 * connection is gone.  Each call after is one map update.
 */
#define TCPCP_CLAMP_HANDLE	0x7cc
#define TCPCP_CLAMP_PRIO	1

struct tc_ask {
	int prog;
};

static int attach_everywhere_loud(void *arg)
{
	const struct tc_ask *a = arg;
	struct if_nameindex *ifs = if_nameindex(), *i;
	int err = 0;

	if (!ifs)
		return tcpcp_fail(errno, "listing the interfaces: %s", strerror(errno));
	for (i = ifs; i->if_index && !err; i++) {
		LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)i->if_index,
			    .attach_point = BPF_TC_EGRESS);
		LIBBPF_OPTS(bpf_tc_opts, o, .handle = TCPCP_CLAMP_HANDLE,
			    .priority = TCPCP_CLAMP_PRIO, .prog_fd = a->prog,
			    .flags = BPF_TC_F_REPLACE);

		err = bpf_tc_hook_create(&hook);
		if (err && err != -EEXIST) {
			err = tcpcp_fail(-err, "cannot add a clsact qdisc to %s: %s", i->if_name,
					 strerror(-err));
			break;
		}
		err = bpf_tc_attach(&hook, &o);
		if (err)
			err = tcpcp_fail(-err, "cannot attach the acknowledgment clamp to %s: %s",
					 i->if_name, strerror(-err));
	}
	if_freenameindex(ifs);
	return err;
}

static int attach_everywhere(void *arg)
{
	return tcpcp_bpf_hushed(attach_everywhere_loud, arg);
}

/* TCP_INFO's tcpi_rcv_wnd (Linux 6.2), right after tcpi_snd_wnd, past
 * what older headers know: the window the kernel last announced, at its
 * rcv_wup. */
#define TCPI_RCV_WND_OFF	(offsetof(struct tcp_info, tcpi_snd_wnd) + 4)

/*
 * A clamp moved up tells the peer nothing by itself: the kernel sends its
 * next ACK only when data arrives, and a peer that has its whole window
 * in flight, unacknowledged because of the clamp, waits for its RTO.  So
 * the move is announced: one pure ACK at the new clamp, sent from a raw
 * socket, at our snd_nxt, our clock (TSecr 0: the peer takes no RTT
 * sample from it), its window reaching the right edge the kernel has
 * announced (rcv_nxt + rcv_wnd, near enough: the kernel's rcv_wup may
 * lag rcv_nxt by what it has not acknowledged yet).
 */
static int announce(struct tcpcp_ckpt *c, int s, uint32_t ack, uint8_t wscale)
{
	struct tcpcp_segment g = { .to_peer = true, .ack = ack };
	uint8_t info[sizeof(struct tcp_info) + 64];
	struct tcp_info *ti = (struct tcp_info *)info;
	socklen_t len = sizeof(info);
	uint32_t rcv_nxt, una, wnd = 0;
	int outq, unsent, inq;

	memset(info, 0, sizeof(info));
	if (getsockopt(s, IPPROTO_TCP, TCP_INFO, info, &len) ||
	    ioctl_int(s, SIOCOUTQ, &outq, "SIOCOUTQ") ||
	    ioctl_int(s, SIOCOUTQNSD, &unsent, "SIOCOUTQNSD") ||
	    ioctl_int(s, SIOCINQ, &inq, "SIOCINQ"))
		return -errno;
	if (len >= TCPI_RCV_WND_OFF + 4)
		memcpy(&wnd, info + TCPI_RCV_WND_OFF, 4);
	else
		wnd = c->ici->window->rcv_wnd;	/* before Linux 6.2: the first one's */
	una = una_of(c, ti);
	rcv_nxt = rcv_nxt_of(c, ti);
	g.seq = una + (uint32_t)outq - (uint32_t)unsent;
	wnd = (wnd + (rcv_nxt - ack)) >> wscale;
	if (!wnd)
		return 0;	/* a zero window would stop the peer: the kernel's next ACK will do */
	g.window = (uint16_t)(wnd > 0xffff ? 0xffff : wnd);
	if (c->ici->has_timestamp) {
		len = sizeof(g.tsval);
		if (getsockopt(s, IPPROTO_TCP, TCP_TIMESTAMP, &g.tsval, &len))
			return tcpcp_fail(errno, "reading TCP_TIMESTAMP: %s", strerror(errno));
		g.ts = true;
		g.tsval = tcpcp_ts_past_pacing(g.tsval, ti->tcpi_pacing_rate);
	}
	if (c->raw < 0) {
		c->raw = tcpcp_segment_raw(s, c->t.family, "announcing a clamp move");
		if (c->raw < 0) {
			c->raw = -1;
			return -errno;
		}
	}
	return tcpcp_segment_send_on(c->raw, &c->t, &g, "announcing a clamp move");
}

/* The clamp's map, and its program attached at the egress of every
 * interface of @s's network namespace. */
static int clamp_attach(int s, int *map)
{
	struct tc_ask a;
	int m, err;

	if ((err = tcpcp_need_cap(CAP_NET_ADMIN, "clamp acknowledgments (tc, BPF)")))
		return err;
	if ((err = tcpcp_bpf_clamp_open(&m, &a.prog)))
		return err;
	err = tcpcp_netns_run(s, attach_everywhere, &a);
	close(a.prog);
	if (err) {
		close(m);
		return err;
	}
	if (*map >= 0)
		close(*map);
	*map = m;
	return 0;
}

/* Where the kernel has TCP_ACK_HOLD (kernel-patch/ 0002), it clamps:
 * mode 2 acknowledges no more than what TCP_ACK_RELEASE released, and a
 * release that lets the ACK advance sends it at once.  1: on, 0: a stock
 * kernel (ENOPROTOOPT), -errno: refused. */
static int hold_acks(int s)
{
	int mode = TCPCP_ACK_HOLD_RELEASED;

	if (!setsockopt(s, IPPROTO_TCP, TCPCP_TCP_ACK_HOLD, &mode, sizeof(mode)))
		return 1;
	if (errno == ENOPROTOOPT)
		return 0;
	return tcpcp_fail(errno, "TCP_ACK_HOLD on fd %d: %s", s, strerror(errno));
}

static int release_acks(int s, uint32_t seq)
{
	int v = (int)seq;

	if (setsockopt(s, IPPROTO_TCP, TCPCP_TCP_ACK_RELEASE, &v, sizeof(v)))
		return tcpcp_fail(errno, "TCP_ACK_RELEASE on fd %d: %s", s, strerror(errno));
	return 0;
}

TCPCP_EXPORT int tcpcp_ckpt_clamp(struct tcpcp_ckpt *c, int s)
{
	struct tcpcp_clamp_val v = { 0 };
	bool moved;
	int map = -1, err;

	tcpcp_clear_error();
	if (!c)
		return tcpcp_fail(EINVAL, "tcpcp_ckpt_clamp: no checkpoint handle"), -1;
	if (!c->held && c->clamp < 0 && tcpcp_ack_hold_allowed()) {
		if ((err = hold_acks(s)) < 0) {
			errno = -err;
			return -1;
		}
		c->held = err;
	}
	if (c->held) {
		if ((err = release_acks(s, c->last_rcv))) {
			errno = -err;
			return -1;
		}
		c->clamped = c->last_rcv;
		return 0;
	}
	if (c->clamp < 0) {
		if (tcpcp_need_cap(CAP_NET_RAW, "announce clamp moves (a raw socket)") ||
		    tcpcp_tuple_from_socket(s, &c->t))
			return -1;
		if ((err = clamp_attach(s, &map))) {
			errno = -err;
			return -1;
		}
		c->clamp = map;
		c->clamped = c->last_rcv;
		moved = false;
	} else {
		moved = (int32_t)(c->last_rcv - c->clamped) > 0;
	}
	v.max_ack = c->last_rcv;
	v.wscale = (uint8_t)(c->ici->options->wscale ? c->ici->options->rcv_wscale : 0);
	if (bpf_map_update_elem(c->clamp, &s, &v, BPF_ANY))
		return tcpcp_fail(errno, "setting the acknowledgment clamp of fd %d: %s", s,
				  strerror(errno)), -1;
	c->clamped = v.max_ack;
	if (moved && (err = announce(c, s, v.max_ack, v.wscale))) {
		errno = -err;
		return -1;
	}
	return 0;
}

TCPCP_EXPORT const char *tcpcp_ckpt_clamp_how(const struct tcpcp_ckpt *c)
{
	if (c && c->held)
		return "TCP_ACK_HOLD";
	return c && c->clamp >= 0 ? "BPF" : NULL;
}

/* The clamp for sockets checkpointed some other way (a CRIU dump): each
 * acknowledges no further than @ack[i].  Where the kernel has
 * TCP_ACK_HOLD, it holds them (mode 2, released up to @ack[i]); else the
 * program is attached once per network namespace in the batch, with the
 * window scale the socket announced (TCP_INFO).  Not announced: the
 * caller's next segment on each (leaving repair mode sends a window
 * probe) carries it. */
TCPCP_EXPORT int tcpcp_clamp_fds(const int *s, const uint32_t *ack, size_t n)
{
	uint64_t last_ns = 0, ns;
	bool hold = n && tcpcp_ack_hold_allowed();
	int map = -1, err = 0;
	size_t i;

	tcpcp_clear_error();
	for (i = 0; i < n && !err; i++) {
		struct tcpcp_clamp_val v = { .max_ack = ack[i] };
		struct tcp_info ti;
		socklen_t len = sizeof(ti);

		if (hold && map < 0 && (err = hold_acks(s[i])) != 0) {
			if (err > 0)
				err = release_acks(s[i], ack[i]);
			continue;
		}
		memset(&ti, 0, sizeof(ti));
		if (getsockopt(s[i], IPPROTO_TCP, TCP_INFO, &ti, &len)) {
			err = tcpcp_fail(errno, "fd %d: TCP_INFO: %s", s[i], strerror(errno));
			break;
		}
		if ((err = tcpcp_netns_cookie(s[i], &ns)))
			break;
		/* Sorted by namespace or not, at worst attached again. */
		if (ns != last_ns && (err = clamp_attach(s[i], &map)))
			break;
		last_ns = ns;
		v.wscale = (ti.tcpi_options & TCPI_OPT_WSCALE) ? ti.tcpi_rcv_wscale : 0;
		if (bpf_map_update_elem(map, &s[i], &v, BPF_ANY))
			err = tcpcp_fail(errno, "setting the acknowledgment clamp of fd %d: %s",
					 s[i], strerror(errno));
	}
	if (map >= 0)
		close(map);
	return err ? -1 : 0;
}
