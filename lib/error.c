/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

/* Per thread, like errno: the library keeps no other state. */
static __thread char last_error[512];

int tcpcp_fail(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	errno = err;
	return -err;
}

void tcpcp_clear_error(void)
{
	last_error[0] = '\0';
}

TCPCP_EXPORT const char *tcpcp_strerror(void)
{
	return last_error[0] ? last_error : "no error";
}
