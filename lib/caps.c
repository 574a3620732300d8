/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <sys/capability.h>

#include "internal.h"

/* Asking first turns the kernel's bare EPERM, which could come from any
 * of a dozen calls, into a message that names what is missing. */
int tcpcp_need_cap(int cap, const char *why)
{
	cap_flag_value_t v = CAP_CLEAR;
	cap_t c = cap_get_proc();
	char *name;
	int err;

	if (!c)
		return 0;	/* can't tell: let the kernel decide */
	cap_get_flag(c, cap, CAP_EFFECTIVE, &v);
	cap_free(c);
	if (v == CAP_SET)
		return 0;
	name = cap_to_name(cap);
	for (char *p = name; p && *p; p++)
		*p = (char)toupper((unsigned char)*p);
	err = tcpcp_fail(EPERM, "%s is needed to %s", name ? name : "a capability", why);
	cap_free(name);
	return err;
}
