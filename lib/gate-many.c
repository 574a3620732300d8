/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Batches of the gate that the gate itself does not offer yet.
 *
 * The CRIU plugin ends a dump whose tasks CRIU kills by letting the gate
 * of every connection linger: the origin must keep dropping the peer's
 * segments (a RST would end the connection) until the restored copy
 * takes over, and must not keep them for ever once it has.  Written only
 * in terms of the gate's own calls, so it serves whichever gate the
 * library has (nftables today, one transaction per connection; a gate
 * with a native batch should implement this itself).
 */
#include <errno.h>

#include "gate-many.h"

int tcpcp_gate_linger_many(int s, const struct tcpcp_tuple *t, size_t n, unsigned int secs)
{
	int err = 0;
	size_t i;

	for (i = 0; i < n; i++)
		if (tcpcp_gate_linger(s, &t[i], secs))
			err = -1;	/* the rest still linger: go on */
	return err;
}
