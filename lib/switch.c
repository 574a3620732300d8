/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Traffic switching (paper section 2.2, step 8) as a pluggable step.  A
 * spec names the mechanism and where it acts; most act at a gateway, in
 * another network namespace than the caller's, so the step enters that
 * namespace for its duration (this thread only).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "switch.h"

struct step {
	int (*fn)(const struct tcpcp_switch *, const struct tcpcp_tuple *);
	const struct tcpcp_switch *sw;
	const struct tcpcp_tuple *t;
};

static int run_step(void *arg)
{
	const struct step *st = arg;

	return st->fn(st->sw, st->t);
}

int tcpcp_in_netns(const char *path, int (*fn)(const struct tcpcp_switch *,
		   const struct tcpcp_tuple *), const struct tcpcp_switch *sw,
		   const struct tcpcp_tuple *t)
{
	struct step st = { fn, sw, t };
	int ns, err;

	if (!path)
		return fn(sw, t);
	ns = open(path, O_RDONLY | O_CLOEXEC);
	if (ns < 0)
		return tcpcp_fail(errno, "switch: network namespace %s: %s", path, strerror(errno));
	err = tcpcp_netns_run_at(ns, run_step, &st);
	close(ns);
	return err;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned int b[6];
	char end;
	int i;

	if (sscanf(s, "%x:%x:%x:%x:%x:%x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
		   &end) != 6)
		return -EINVAL;
	for (i = 0; i < 6; i++) {
		if (b[i] > 0xff)
			return -EINVAL;
		mac[i] = (uint8_t)b[i];
	}
	return 0;
}

/* "NAME" -> /run/netns/NAME, "-" -> ours, a path as it is. */
static int take_netns(struct tcpcp_switch *sw, const char *s, size_t len)
{
	if (len == 1 && *s == '-')
		return 0;
	if (!len)
		return -EINVAL;
	if (*s == '/')
		sw->netns = strndup(s, len);
	else if (asprintf(&sw->netns, "/run/netns/%.*s", (int)len, s) < 0)
		sw->netns = NULL;
	return sw->netns ? 0 : -ENOMEM;
}

/* KIND:NETNS:REST; REST split once more for arp (IFNAME:MAC). */
static int parse(struct tcpcp_switch *sw, const char *spec)
{
	const char *ns, *rest, *mac;
	char *end;

	if (!strncmp(spec, "exec:", 5))
		return -ENOTSUP;
	if (!strncmp(spec, "route:", 6))
		sw->kind = TCPCP_SW_ROUTE;
	else if (!strncmp(spec, "flow:", 5))
		sw->kind = TCPCP_SW_FLOW;
	else if (!strncmp(spec, "arp:", 4))
		sw->kind = TCPCP_SW_ARP;
	else
		return -EINVAL;
	ns = strchr(spec, ':') + 1;
	rest = strchr(ns, ':');
	if (!rest || take_netns(sw, ns, (size_t)(rest - ns)))
		return -EINVAL;
	rest++;
	switch (sw->kind) {
	case TCPCP_SW_FLOW:
		sw->mark = (uint32_t)strtoul(rest, &end, 0);
		return *rest && !*end ? 0 : -EINVAL;
	case TCPCP_SW_ARP:
		mac = strchr(rest, ':');
		if (!mac || mac == rest || parse_mac(mac + 1, sw->mac))
			return -EINVAL;
		sw->arg = strndup(rest, (size_t)(mac - rest));
		return sw->arg ? 0 : -ENOMEM;
	default:
		sw->arg = strdup(rest);
		return sw->arg && *sw->arg ? 0 : -EINVAL;
	}
}

TCPCP_EXPORT struct tcpcp_switch *tcpcp_switch_new(const char *spec)
{
	struct tcpcp_switch *sw;
	int err;

	tcpcp_clear_error();
	sw = calloc(1, sizeof(*sw));
	if (!sw) {
		tcpcp_fail(ENOMEM, "out of memory");
		return NULL;
	}
	if ((err = parse(sw, spec)) == -ENOTSUP) {
		tcpcp_fail(ENOTSUP, "exec: switch steps run commands, which the library does "
			   "not do: the tcpcp command takes them, a program uses tcpcp_switch_call()");
		tcpcp_switch_free(sw);
		return NULL;
	}
	if (err) {
		char shown[80];
		size_t i;

		/* Quoted as one line, whatever it holds (found by fuzz-parse). */
		for (i = 0; spec[i] && i < sizeof(shown) - 1; i++)
			shown[i] = spec[i] >= 0x20 && spec[i] < 0x7f ? spec[i] : '?';
		shown[i] = '\0';
		tcpcp_fail(EINVAL, "bad switch spec '%s%s' (route:NETNS:VIA[,VIA], "
			   "flow:NETNS:MARK or arp:NETNS:IFNAME:MAC)",
			   shown, spec[i] ? "..." : "");
		tcpcp_switch_free(sw);
		return NULL;
	}
	return sw;
}

TCPCP_EXPORT void tcpcp_switch_free(struct tcpcp_switch *sw)
{
	if (!sw)
		return;
	tcpcp_switch_flow_free(sw);
	free(sw->netns);
	free(sw->arg);
	free(sw);
}

TCPCP_EXPORT struct tcpcp_switch *tcpcp_switch_call(int (*fn)(void *arg, int s, char *why,
								 size_t len), void *arg)
{
	struct tcpcp_switch *sw;

	tcpcp_clear_error();
	if (!fn) {
		tcpcp_fail(EINVAL, "tcpcp_switch_call() without a function");
		return NULL;
	}
	sw = calloc(1, sizeof(*sw));
	if (!sw) {
		tcpcp_fail(ENOMEM, "out of memory");
		return NULL;
	}
	sw->kind = TCPCP_SW_CALL;
	sw->fn = fn;
	sw->fn_arg = arg;
	return sw;
}

static int run_call(const struct tcpcp_switch *sw, int s)
{
	char why[256] = "";

	if (!sw->fn(sw->fn_arg, s, why, sizeof(why)))
		return 0;
	why[sizeof(why) - 1] = '\0';
	for (char *c = why; *c; c++)	/* one line, whatever it wrote */
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	return tcpcp_fail(EIO, "switch step failed: %s", *why ? why : "(no reason given)");
}

TCPCP_EXPORT int tcpcp_switch_run(const struct tcpcp_switch *sw, int s)
{
	static int (*const fns[])(const struct tcpcp_switch *, const struct tcpcp_tuple *) = {
		[TCPCP_SW_ROUTE] = tcpcp_switch_route,
		[TCPCP_SW_FLOW] = tcpcp_switch_flow,
		[TCPCP_SW_ARP] = tcpcp_switch_arp,
	};
	struct tcpcp_tuple t;

	tcpcp_clear_error();
	if (sw->kind == TCPCP_SW_CALL)
		return run_call(sw, s) ? -1 : 0;
	if (tcpcp_tuple_from_socket(s, &t))
		return -1;
	/* A netlink socket acts in the namespace it was opened in. */
	if (sw->kind == TCPCP_SW_FLOW && tcpcp_switch_flow_ready(sw))
		return tcpcp_switch_flow(sw, &t) ? -1 : 0;
	return tcpcp_in_netns(sw->netns, fns[sw->kind], sw, &t) ? -1 : 0;
}
