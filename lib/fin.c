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

/* A segment from the peer's address and port to our socket, sent on a raw
 * socket of the socket's own netns so that it arrives through loopback
 * (segment.c). */
static int inject(int s, const TcpcpIci *ici, uint32_t seq, uint32_t ack, bool fin)
{
	struct tcpcp_segment g = { .seq = seq, .ack = ack, .window = window_field(ici),
				   .fin = fin };
	struct tcpcp_tuple t;
	int err;

	if ((err = tcpcp_tuple_from_socket(s, &t)))
		return err;
	return tcpcp_segment_send(s, &t, &g, fin ? "restoring a half-closed connection (the peer's FIN)" :
				  "restoring a half-closed connection (the ACK of our FIN)");
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
