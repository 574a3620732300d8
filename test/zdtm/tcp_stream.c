/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A transfer in both directions, paced so that the checkpoint falls in
 * the middle of it: segments in flight, unacknowledged data, timers.
 */
#include "server.h"

static void apply(struct zopts *o)
{
	if (!o->bytes_c2s && !o->bytes_s2c)
		o->bytes_c2s = o->bytes_s2c = 2 << 20;
	if (!o->rate)
		o->rate = 1 << 20;
}

int main(int argc, char **argv)
{
	static const struct zdefaults d = { .apply = apply };

	zdtm_server_main(argc, argv, &d);
}
