/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The dumped side's common body: listen, accept, set up, run to the end. */
#include <stdlib.h>
#include <unistd.h>

#include "zdtm.h"
#include "server.h"

int zdtm_server_main(int argc, char **argv, const struct zdefaults *d)
{
	struct zopts o;
	struct zconn *c;
	int lfd[4], i;

	zdtm_parse(argc, argv, &o, "");
	if (d->apply)
		d->apply(&o);
	zdtm_signals();
	zdtm_nofile(o.conns);
	for (i = 0; i < o.naddr; i++)
		lfd[i] = zdtm_listen(o.addr[i]);
	c = calloc(o.conns, sizeof(*c));
	if (!c)
		zdtm_fail("out of memory");
	zdtm_accept_all(lfd, o.naddr, c, &o);
	if (d->setup)
		d->setup(c, o.conns, &o);
	zdtm_ready(&o);
	if (d->resumed) {
		while (!zdtm_go)
			usleep(10000);
		d->resumed(c, o.conns, &o);
	}
	zdtm_run(c, o.conns, &o, true);
	/* The listeners came through too: they must still be listening. */
	for (i = 0; i < o.naddr; i++) {
		int v = 0;
		socklen_t len = sizeof(v);

		if (getsockopt(lfd[i], SOL_SOCKET, SO_ACCEPTCONN, &v, &len) || !v)
			zdtm_fail("listener on %s is gone", o.addr[i]);
	}
	zdtm_pass();
}
