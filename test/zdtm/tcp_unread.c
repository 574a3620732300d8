/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unread data in both directions: each side sends its whole stream and
 * reads nothing until SIGUSR1, after the restore.  The checkpoint finds
 * the receive queue full of the peer's bytes and the send queue holding
 * what the peer has not acknowledged.
 */
#include "server.h"

static void apply(struct zopts *o)
{
	o->hold = true;
	if (!o->bytes_c2s && !o->bytes_s2c)
		o->bytes_c2s = o->bytes_s2c = 64 << 10;
}

/* Queue everything before saying ready. */
static void setup(struct zconn *c, unsigned int n, const struct zopts *o)
{
	zdtm_pump(c, n, o, true, false);
}

int main(int argc, char **argv)
{
	static const struct zdefaults d = { .apply = apply, .setup = setup };

	zdtm_server_main(argc, argv, &d);
}
