/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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

/* The caller's option structure of .size bytes into ours, @size bytes:
 * a shorter one (an older program) leaves our later members zero; a
 * longer one (a newer program) is fine as long as what we do not know
 * is zero.  The rules of clone3() and openat2(). */
#define OPTS_SIZE_MAX	4096

int tcpcp_opts_copy(void *ours, size_t size, const void *theirs, const char *what)
{
	const unsigned char *in = theirs;
	size_t usize, i;

	memset(ours, 0, size);
	if (!theirs)
		return 0;
	memcpy(&usize, theirs, sizeof(usize));
	if (usize < sizeof(size_t) || usize > OPTS_SIZE_MAX)
		return tcpcp_fail(EINVAL, "struct %s has .size %zu: set it to sizeof(struct %s)",
				  what, usize, what);
	for (i = size; i < usize; i++)
		if (in[i])
			return tcpcp_fail(E2BIG, "struct %s sets members this libtcpcp does not "
					  "know (it knows %zu of %zu bytes)", what, size, usize);
	memcpy(ours, theirs, usize < size ? usize : size);
	memcpy(ours, &size, sizeof(size));
	return 0;
}
