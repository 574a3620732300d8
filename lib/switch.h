/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TCPCP_SWITCH_H
#define TCPCP_SWITCH_H

#include "internal.h"

struct mnl_socket;

enum tcpcp_switch_kind {
	TCPCP_SW_ROUTE,
	TCPCP_SW_FLOW,
	TCPCP_SW_ARP,
	TCPCP_SW_CALL,		/* the caller's function (tcpcp_switch_call) */
};

struct tcpcp_switch {
	enum tcpcp_switch_kind kind;
	char *netns;		/* path; NULL: the caller's */
	char *arg;		/* VIA list or IFNAME */
	int (*fn)(void *arg, int s, char *why, size_t len);	/* call */
	void *fn_arg;
	uint32_t mark;		/* flow */
	uint8_t mac[6];		/* arp */
	/* flow: a netlink socket kept from the first run on, opened in the
	 * gateway's namespace.  A cache, not a setting: one thread uses a
	 * switch at a time. */
	struct mnl_socket *nl;
	uint32_t nl_seq;
};
void tcpcp_switch_flow_free(struct tcpcp_switch *sw);
/* Its socket is open: it acts in the gateway's namespace from anywhere. */
bool tcpcp_switch_flow_ready(const struct tcpcp_switch *sw);

/* switch.c: run @fn inside @sw->netns, back in ours afterwards. */
int tcpcp_in_netns(const char *path, int (*fn)(const struct tcpcp_switch *,
		   const struct tcpcp_tuple *), const struct tcpcp_switch *sw,
		   const struct tcpcp_tuple *t);

/* One file per mechanism. */
int tcpcp_switch_route(const struct tcpcp_switch *sw, const struct tcpcp_tuple *t);
int tcpcp_switch_flow(const struct tcpcp_switch *sw, const struct tcpcp_tuple *t);
int tcpcp_switch_arp(const struct tcpcp_switch *sw, const struct tcpcp_tuple *t);

#endif
