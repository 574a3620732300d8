/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/*
 * Paper section 7: what an ICI can do (any sequence numbers, any peer,
 * any options) is what a raw socket can do, so creating a connection from
 * one also takes CAP_NET_RAW.  The kernel does not enforce this — repair
 * mode itself asks only for CAP_NET_ADMIN — so it is a host policy, and a
 * host may relax it in its configuration file:
 *
 *     create-needs-net-raw no
 *
 * in /etc/tcpcp.conf, or the file named by $TCPCP_CONFIG.
 */
#define TCPCP_CONFIG_DEFAULT "/etc/tcpcp.conf"

static const char *config_path(void)
{
	const char *path = secure_getenv("TCPCP_CONFIG");

	return path ? path : TCPCP_CONFIG_DEFAULT;
}

/* Whether the configuration file sets @key to @want (its last line for
 * @key counts); no file, no such line: false. */
static bool config_is(const char *key, const char *want)
{
	char line[256], k[64], val[64];
	bool is = false;
	FILE *f;

	f = fopen(config_path(), "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, " %63s %63s", k, val) == 2 && !strcmp(k, key))
			is = !strcmp(val, want);
	}
	fclose(f);
	return is;
}

static bool net_raw_relaxed(void)
{
	return config_is("create-needs-net-raw", "no");
}

/* Paper sections 5 and 8: congestion state is only valid on a path like
 * the one it was learnt on, and a caller that sets it can push a peer
 * harder than the path allows.  So a host opts in:
 *
 *     congestion-carry yes
 */
int tcpcp_need_carry_policy(void)
{
	if (config_is("congestion-carry", "yes"))
		return 0;
	return tcpcp_fail(EPERM, "congestion carry-over is not allowed on this host "
			  "(\"congestion-carry yes\" in %s)", config_path());
}

/* kernel-patch/'s TCP_ACK_HOLD, where the kernel has it, clamps the
 * acknowledgments of a checkpointed connection instead of the BPF
 * program; a host can keep the BPF clamp (to compare the two, or to
 * work around a kernel it does not trust):
 *
 *     ack-hold no
 */
bool tcpcp_ack_hold_allowed(void)
{
	return !config_is("ack-hold", "no");
}

/* The file is read only when CAP_NET_RAW is missing: a restore of
 * 10,000 connections by root would otherwise open it 10,000 times. */
int tcpcp_need_create_caps(void)
{
	if (tcpcp_need_cap(CAP_NET_ADMIN, "recreate a connection in repair mode"))
		return -1;
	if (!tcpcp_need_cap(CAP_NET_RAW,
			    "create a connection from an ICI (host policy; see tcpcp.conf)"))
		return 0;
	if (!net_raw_relaxed())
		return -1;
	tcpcp_clear_error();
	return 0;
}
