/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Many connections (1000 unless --conns says otherwise), each with a
 * little unread data both ways: every one must come back on its own fd.
 */
#include "server.h"

static void apply(struct zopts *o)
{
	o->hold = true;
	if (o->conns == 1)
		o->conns = 1000;
	if (!o->bytes_c2s && !o->bytes_s2c)
		o->bytes_c2s = o->bytes_s2c = 4096;
}

static void setup(struct zconn *c, unsigned int n, const struct zopts *o)
{
	zdtm_pump(c, n, o, true, false);
}

int main(int argc, char **argv)
{
	static const struct zdefaults d = { .apply = apply, .setup = setup };

	zdtm_server_main(argc, argv, &d);
}
