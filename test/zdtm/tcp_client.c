/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The client side: the dumped process opened the connections itself
 * (to tcpcp-zdtm-peer --listen), from the service address (--source) and
 * an ephemeral port, and streams both ways, paced, with the checkpoint in
 * the middle.  The restored connections must keep their local ports.
 */
#include <stdlib.h>

#include "zdtm.h"

int main(int argc, char **argv)
{
	struct zopts o;
	struct zconn *c;

	zdtm_parse(argc, argv, &o, "[--source ADDR:0]...");
	if (!o.bytes_c2s && !o.bytes_s2c)
		o.bytes_c2s = o.bytes_s2c = 2 << 20;
	zdtm_signals();
	zdtm_nofile(o.conns);
	c = calloc(o.conns, sizeof(*c));
	if (!c)
		zdtm_fail("out of memory");
	zdtm_connect_all(c, &o, false);
	if (o.hold)
		zdtm_pump(c, o.conns, &o, false, false);
	zdtm_ready(&o);
	zdtm_run(c, o.conns, &o, false);
	zdtm_pass();
}
