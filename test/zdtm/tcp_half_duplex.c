/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Traffic in one direction only: the server streams, the peer only
 * acknowledges.  The reverse direction's sequence numbers must come
 * through untouched although no byte ever moved on them.
 */
#include "server.h"

static void apply(struct zopts *o)
{
	o->bytes_c2s = 0;
	if (!o->bytes_s2c)
		o->bytes_s2c = 2 << 20;
	if (!o->rate)
		o->rate = 1 << 20;
}

int main(int argc, char **argv)
{
	static const struct zdefaults d = { .apply = apply };

	zdtm_server_main(argc, argv, &d);
}
