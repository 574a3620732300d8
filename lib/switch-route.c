/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The paper's switch (section 2.2): a host route for the connection's
 * local address (ipX) at a gateway, replaced to point at the new host.
 * It moves every connection to ipX; see switch-flow.c for one 4-tuple.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/rtnetlink.h>
#include <netlink/netlink.h>
#include <netlink/route/route.h>
#include <stdlib.h>
#include <string.h>

#include "switch.h"

/* VIA may list one gateway per family: "10.77.3.2,fd77:3::2". */
static int pick_via(const char *list, int family, struct nl_addr **via)
{
	char *copy = strdup(list), *tok, *save = NULL;
	int err = -ENOENT;

	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		if (!nl_addr_parse(tok, family, via)) {
			err = 0;
			break;
		}
	free(copy);
	return err;
}

static int build(const struct tcpcp_switch *sw, const struct tcpcp_tuple *t,
		 struct rtnl_route *r)
{
	struct rtnl_nexthop *nh;
	struct nl_addr *dst, *via = NULL;

	if (pick_via(sw->arg, t->family, &via))
		return tcpcp_fail(EINVAL, "switch route: no %s gateway in '%s'",
				  t->family == AF_INET ? "IPv4" : "IPv6", sw->arg);
	dst = nl_addr_build(t->family, &t->local, t->family == AF_INET ? 4 : 16);
	nh = rtnl_route_nh_alloc();
	if (!dst || !nh) {
		nl_addr_put(dst);
		nl_addr_put(via);
		rtnl_route_nh_free(nh);
		return tcpcp_fail(ENOMEM, "out of memory");
	}
	nl_addr_set_prefixlen(dst, t->family == AF_INET ? 32 : 128);
	rtnl_route_set_family(r, (uint8_t)t->family);
	rtnl_route_set_dst(r, dst);
	rtnl_route_set_table(r, RT_TABLE_MAIN);
	rtnl_route_set_protocol(r, RTPROT_STATIC);
	rtnl_route_set_scope(r, RT_SCOPE_UNIVERSE);
	rtnl_route_nh_set_gateway(nh, via);
	rtnl_route_add_nexthop(r, nh);
	nl_addr_put(dst);
	nl_addr_put(via);
	return 0;
}

int tcpcp_switch_route(const struct tcpcp_switch *sw, const struct tcpcp_tuple *t)
{
	struct rtnl_route *r = rtnl_route_alloc();
	struct nl_sock *nl = nl_socket_alloc();
	char a[INET6_ADDRSTRLEN];
	int err;

	if (!r || !nl) {
		err = tcpcp_fail(ENOMEM, "out of memory");
		goto out;
	}
	if ((err = build(sw, t, r)))
		goto out;
	if ((err = nl_connect(nl, NETLINK_ROUTE)) ||
	    (err = rtnl_route_add(nl, r, NLM_F_CREATE | NLM_F_REPLACE))) {
		inet_ntop(t->family, &t->local, a, sizeof(a));
		err = tcpcp_fail(EIO, "switch route: cannot route %s via %s: %s", a, sw->arg,
				 nl_geterror(err));
	}
out:
	rtnl_route_put(r);
	nl_socket_free(nl);
	return err;
}
