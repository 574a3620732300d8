/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tcpcp-zdtm-peer: the other end of every test connection, in its own
 * namespace.  Connects --conns times (round robin over --connect
 * addresses), or with --listen accepts them (for tcp_client), streams and verifies like the test does, prints PASS only
 * if every byte in both directions arrived intact and in order.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "zdtm.h"

/* Connects, unless the address list came with --listen... which
 * getopt cannot tell apart: a first argument "--listen" selects it. */
int main(int argc, char **argv)
{
	bool listening = argc > 1 && !strncmp(argv[1], "--listen", 8);
	struct zopts o;
	struct zconn *c;
	int lfd[4], i;

	zdtm_parse(argc, argv, &o, "");
	zdtm_signals();
	zdtm_nofile(o.conns);
	c = calloc(o.conns, sizeof(*c));
	if (!c)
		zdtm_fail("out of memory");
	if (listening) {
		/* The far end of tcp_client: the peer is the server here, but
		 * the streams keep their roles (c2s from the connecting side). */
		for (i = 0; i < o.naddr; i++)
			lfd[i] = zdtm_listen(o.addr[i]);
		zdtm_ready(&o);
		zdtm_accept_all(lfd, o.naddr, c, &o);
	} else {
		zdtm_connect_all(c, &o, false);
	}
	if (o.hold)
		zdtm_pump(c, o.conns, &o, false, false);
	if (!listening)
		zdtm_ready(&o);
	zdtm_run(c, o.conns, &o, listening);
	zdtm_pass();
}
