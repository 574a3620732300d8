/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef ZDTM_SERVER_H
#define ZDTM_SERVER_H

#include <stddef.h>

#include "zdtm.h"

struct zdefaults {
	void (*apply)(struct zopts *o);		/* the test's own settings */
	void (*setup)(struct zconn *c, unsigned int n, const struct zopts *o);
	/* After the restore (SIGUSR1), before any I/O: check the state. */
	void (*resumed)(struct zconn *c, unsigned int n, const struct zopts *o);
};

__attribute__((noreturn))
int zdtm_server_main(int argc, char **argv, const struct zdefaults *d);

#endif
