/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A checkpoint brought up to where the peer stands (paper section 6.1):
 * the image a standby recreates when the primary has died.
 *
 * The probe (probe.c) tells the peer's rcv_nxt (how far it has our bytes)
 * and snd_nxt (how far it has sent its own).  Our side restarts exactly at
 * the peer's rcv_nxt, so that the first byte the new endpoint sends is the
 * first the peer still wants:
 *   - if that lies within the checkpoint's send queue, the bytes before it
 *     go, and the rest is queued again as never sent;
 *   - if it lies beyond (the primary wrote and the peer received more after
 *     the checkpoint), the queue is empty and the application is told how
 *     many bytes past the checkpoint to skip: it regenerates its output
 *     from there ("notify the application ... skip over unnecessary data");
 *   - a checkpoint of tcpcp_checkpoint() holds no send queue at all: the
 *     application writes on from the peer's rcv_nxt, which may lie before
 *     its checkpointed state (a negative skip: it writes those bytes
 *     again) but never before the checkpoint's snd_una.
 * The peer's clock (its TSecr is the last TSval of ours it accepted)
 * bounds ours from below, so PAWS never sees our timestamps go back; its
 * window is taken as it now advertises it.
 *
 * Our receive side stays at the checkpoint: the peer retransmits from its
 * snd_una.  If the primary acknowledged bytes beyond the checkpoint, the
 * peer will not send them again and they are lost: only an acknowledgment
 * clamp on the primary prevents that (docs/failover.md).
 *
 * Bounds: the peer's position must lie ahead of the checkpoint by less than
 * 2^31 bytes, both ways, or sequence arithmetic cannot tell ahead from
 * behind; and the checkpoint must be younger than a maximum segment
 * lifetime (2 min, RFC 9293), after which the peer may have forgotten the
 * connection and its sequence numbers may belong to another.  Such a
 * checkpoint is refused.  Half-closed connections are not resurrected
 * (yet): refused with a clear message.
 */
#include <errno.h>
#include <linux/capability.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define SEQ_HALF	0x80000000u
#define MSL_S		120

/* Seconds since the checkpoint was taken (its CLOCK_REALTIME), 0 if the
 * clock says it lies ahead. */
static uint64_t age_s(const TcpcpIci *ici)
{
	struct timespec now;
	uint64_t ns;

	clock_gettime(CLOCK_REALTIME, &now);
	ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	return ns > ici->capture_realtime_ns ? (ns - ici->capture_realtime_ns) / 1000000000ull : 0;
}

/* TCP_TIMESTAMP's value for a clock that restarts above @tsecr, the last
 * TSval of ours the peer took.  The value is what the first segment
 * carries, and its bit 0 also tells the kernel the clock's resolution
 * (1: microseconds, since Linux 6.7): it keeps the checkpoint's, or a
 * millisecond clock would come back ticking a thousand times too fast. */
static uint32_t ts_above(uint32_t ts, uint32_t tsecr)
{
	uint32_t want = tsecr + 1;

	if ((want & 1) != (ts & 1))
		want++;
	return (int32_t)(want - ts) > 0 ? want : ts;
}

TCPCP_EXPORT void *tcpcp_resurrect(const void *ckpt, size_t len,
				   const struct tcpcp_peer_view *v, int64_t *skip,
				   size_t *out_len)
{
	TcpcpIci *ici;
	uint32_t una, queued, acked, sent;
	void *out = NULL;

	tcpcp_clear_error();
	if (!ckpt || !v || !skip || !out_len) {
		tcpcp_fail(EINVAL, "tcpcp_resurrect: missing argument");
		return NULL;
	}
	if (!v->answered) {
		tcpcp_fail(EINVAL, "the peer did not answer the probe: nothing to resurrect from");
		return NULL;
	}
	ici = tcpcp_image_decode(ckpt, len);
	if (!ici)
		return NULL;
	if (ici->state != TCPCP_ST_ESTABLISHED) {
		tcpcp_fail(EOPNOTSUPP, "resurrecting a connection in state %s is not supported "
			   "(only ESTABLISHED)", tcpcp_state_name((int)ici->state));
		goto out;
	}
	if (age_s(ici) > MSL_S) {
		tcpcp_fail(ETIME, "the checkpoint is %llu s old, older than a maximum segment "
			   "lifetime (%d s): not resurrected", (unsigned long long)age_s(ici), MSL_S);
		goto out;
	}
	/* A tcpcp_checkpoint() holds no send queue: the peer may stand
	 * anywhere from the snd_una of its time on. */
	una = ici->has_unqueued_una ? ici->unqueued_una : ici->snd_una;
	queued = ici->write_seq - ici->snd_una;
	acked = v->rcv_nxt - una;
	sent = v->snd_nxt - ici->rcv_nxt;
	if (acked >= SEQ_HALF || sent >= SEQ_HALF) {
		tcpcp_fail(ERANGE, "the peer stands %u bytes (ours) and %u bytes (its own) from the "
			   "checkpoint: 2^31 or more, or behind it; too old to resurrect",
			   acked, sent);
		goto out;
	}
	if (ici->has_unqueued_una) {
		/* Ahead of the application's state, or behind it: it writes
		 * on, or again, from the peer's rcv_nxt. */
		ici->sendq.len = 0;
		*skip = (int32_t)(v->rcv_nxt - ici->write_seq);
		ici->write_seq = v->rcv_nxt;
		ici->has_unqueued_una = false;
	} else if (acked <= queued) {
		/* The rest of the queue goes out again, as never sent. */
		memmove(ici->sendq.data, ici->sendq.data + acked, queued - acked);
		ici->sendq.len = queued - acked;
		*skip = 0;
	} else {
		ici->sendq.len = 0;
		*skip = acked - queued;
		ici->write_seq = v->rcv_nxt;
	}
	ici->snd_una = ici->snd_nxt = v->rcv_nxt;
	if (v->has_ts && ici->options->timestamps && ici->has_timestamp)
		ici->timestamp = ts_above(ici->timestamp, v->tsecr);
	ici->window->snd_wnd = (uint32_t)v->window << (ici->options->wscale ?
						       ici->options->snd_wscale : 0);
	ici->window->snd_wl1 = ici->rcv_nxt;
	if (ici->window->max_window < ici->window->snd_wnd)
		ici->window->max_window = ici->window->snd_wnd;
	if (!tcpcp_ici_check(ici))
		out = tcpcp_image_encode(ici, out_len);
out:
	tcpcp_ici__free_unpacked(ici, NULL);
	return out;
}

/*
 * Giving a connection up cleanly (paper section 6's bounds): a checkpoint
 * that is not resurrected would leave its peer retransmitting into a host
 * that drops it, until its own timeouts end the connection minutes later.
 * The probe told where the peer stands, so a reset it accepts can be sent
 * at once: its sequence number exactly the peer's rcv_nxt (RFC 5961
 * accepts no other; one in the window but not exact only draws a
 * challenge ACK), with ACK, as the kernel's own resets carry.
 */
TCPCP_EXPORT int tcpcp_reset_peer(int s, const void *ckpt, size_t len,
				  const struct tcpcp_peer_view *v)
{
	struct tcpcp_segment g = { .to_peer = true, .rst = true };
	struct sockaddr_storage l, p;
	struct tcpcp_image *im;
	struct tcpcp_tuple t;
	int own = -1, err;

	tcpcp_clear_error();
	if (!ckpt || !v)
		return tcpcp_fail(EINVAL, "tcpcp_reset_peer: missing argument"), -1;
	if (!v->answered)
		return tcpcp_fail(EINVAL, "the peer did not answer the probe: no sequence number "
				  "it would accept"), -1;
	if (tcpcp_need_cap(CAP_NET_RAW, "reset a peer (a raw socket)"))
		return -1;
	im = tcpcp_image_read(ckpt, len);
	if (!im)
		return -1;
	err = tcpcp_image_ends(im, &l, &p);
	tcpcp_image_free(im);
	if (err)
		return -1;
	tcpcp_tuple_from_sockaddrs(&l, &p, &t);
	g.seq = v->rcv_nxt;
	g.ack = v->snd_nxt;
	if ((s = tcpcp_any_socket(s, &own)) < 0)
		return -1;
	err = tcpcp_segment_send(s, &t, &g, "resetting the peer");
	if (own >= 0)
		close(own);
	if (err) {
		errno = -err;
		return -1;
	}
	return 0;
}

/* The other way to resurrect, where the kernel has TCP_REPAIR_RESYNC
 * (kernel-patch/ 0003): no probe; the image is recreated as it is, armed
 * (tcpcp_create_opts.resync), and the peer's answer to the activation's
 * window probe moves it on to where the peer stands.  The option disarms
 * itself on an ACK beyond snd_nxt and then reads back the skip; an ACK at
 * or below leaves it armed, so after @wait_ms without one the peer had
 * no more than the image: disarmed here, skip 0. */
TCPCP_EXPORT int64_t tcpcp_resync_skip(int s, unsigned int wait_ms)
{
	uint64_t t0;
	socklen_t len;
	int v, zero = 0;

	tcpcp_clear_error();
	t0 = tcpcp_now_ns();
	for (;;) {
		len = sizeof(v);
		if (getsockopt(s, IPPROTO_TCP, TCPCP_TCP_REPAIR_RESYNC, &v, &len))
			return tcpcp_fail(errno, "TCP_REPAIR_RESYNC on fd %d: %s", s,
					  errno == ENOPROTOOPT ? "the kernel has no such option "
					  "(kernel-patch/ 0003)" : strerror(errno)), -1;
		if (v >= 0)
			return v;
		if ((tcpcp_now_ns() - t0) / 1000000 >= wait_ms)
			break;
		usleep(1000);
	}
	if (setsockopt(s, IPPROTO_TCP, TCPCP_TCP_REPAIR_RESYNC, &zero, sizeof(zero)))
		return tcpcp_fail(errno, "disarming TCP_REPAIR_RESYNC on fd %d: %s", s,
				  strerror(errno)), -1;
	/* An ACK may have come between the last look and the disarming. */
	len = sizeof(v);
	if (!getsockopt(s, IPPROTO_TCP, TCPCP_TCP_REPAIR_RESYNC, &v, &len) && v > 0)
		return v;
	return 0;
}
