/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Half-closed connections at the checkpoint: on even connections the peer
 * has sent its stream and its FIN (we are in CLOSE_WAIT, its bytes and
 * its FIN unread), on odd ones we have sent ours and our FIN (FIN_WAIT1
 * or FIN_WAIT2, the peer holding its reads).  After the restore each
 * connection must be in the state it was, before any I/O: the FINs came
 * back, we do not send ours again, and the peer's EOF is still to read
 * after exactly its stream.
 */
#include <errno.h>
#include <stdbool.h>
#include <netinet/tcp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "server.h"

static void apply(struct zopts *o)
{
	o->hold = true;
	o->fin_early = true;
	if (!o->bytes_c2s && !o->bytes_s2c)
		o->bytes_c2s = o->bytes_s2c = 32 << 10;
}

static int tcp_state(const struct zconn *c)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
		zdtm_fail("connection %u: TCP_INFO: %s", c->idx, strerror(errno));
	return ti.tcpi_state;
}

/* Queue our whole stream, and our FIN where it comes early. */
static void setup(struct zconn *c, unsigned int n, const struct zopts *o)
{
	unsigned int i;

	zdtm_pump(c, n, o, true, false);
	for (i = 0; i < n; i++) {
		if (c[i].tx_off != c[i].tx_total)
			zdtm_fail("connection %u: stream not queued before the checkpoint", c[i].idx);
		zdtm_maybe_shut(&c[i]);
	}
}

/* Our FIN came back: FIN_WAIT1/2, or already past them because the
 * peer's FIN arrived between the restore and this check (the peer runs
 * on; a capture of a failed run showed its FIN 8 ms after the restored
 * socket's window probe, which moved it through TIME_WAIT, so the socket
 * reads CLOSE): that is the kernel's next state for the same half-close,
 * told from a reset by the socket's pending error.  Without our FIN
 * replayed, the peer's would have made it CLOSE_WAIT instead. */
static bool our_fin_state(const struct zconn *c, int st)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (st == TCP_FIN_WAIT1 || st == TCP_FIN_WAIT2 || st == TCP_CLOSING ||
	    st == TCP_TIME_WAIT)
		return true;
	if (st != TCP_CLOSE)
		return false;
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) || err)
		zdtm_fail("connection %u: closed after the restore: %s", c->idx,
			  strerror(err ? err : errno));
	return true;
}

static void resumed(struct zconn *c, unsigned int n, const struct zopts *o)
{
	unsigned int i;

	(void)o;
	for (i = 0; i < n; i++) {
		int st = tcp_state(&c[i]);

		if (c[i].fin_early ? !our_fin_state(&c[i], st) : st != TCP_CLOSE_WAIT)
			zdtm_fail("connection %u: state %d after the restore, want %s", c[i].idx, st,
				  c[i].fin_early ? "FIN_WAIT1/2 (or past them by the peer's FIN)"
						 : "CLOSE_WAIT");
	}
}

int main(int argc, char **argv)
{
	static const struct zdefaults d = { .apply = apply, .setup = setup, .resumed = resumed };

	zdtm_server_main(argc, argv, &d);
}
