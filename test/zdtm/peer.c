/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tcpcp-zdtm-peer: the other end of every test connection, in its own
 * namespace.  Connects --conns times (round robin over --connect
 * addresses), streams and verifies like the test does, prints PASS only
 * if every byte in both directions arrived intact and in order.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "zdtm.h"

int main(int argc, char **argv)
{
	struct zopts o;
	struct zconn *c;
	unsigned int i;

	zdtm_parse(argc, argv, &o, "");
	zdtm_signals();
	zdtm_nofile(o.conns);
	c = calloc(o.conns, sizeof(*c));
	if (!c)
		zdtm_fail("out of memory");
	for (i = 0; i < o.conns; i++) {
		int fd = zdtm_connect(o.addr[i % (unsigned int)o.naddr]);
		uint8_t h[8] = { (uint8_t)i, (uint8_t)(i >> 8), (uint8_t)(i >> 16), (uint8_t)(i >> 24) };

		if (send(fd, h, sizeof(h), 0) != sizeof(h))
			zdtm_fail("connection %u: cannot send its header", i);
		zdtm_conn_init(&c[i], fd, i, &o, false);
	}
	if (o.hold)
		zdtm_pump(c, o.conns, &o, false, false);
	zdtm_ready(&o);
	zdtm_run(c, o.conns, &o, false);
	zdtm_pass();
}
