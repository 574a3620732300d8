/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Moving a service address on a shared segment: announce that the
 * connection's local address (ipX) is now at MAC, with a gratuitous ARP
 * request (IPv4) or an unsolicited neighbour advertisement with the
 * override flag (IPv6).  Neighbours that cache ipX, the gateway first of
 * all, rewrite their entry and send the peer's segments to MAC.
 *
 * The frame leaves from our own MAC, so that switches keep learning the
 * right port; only the announced link-layer address is MAC.  It may be
 * sent by the origin on behalf of the destination.
 */
#include <errno.h>
#include <libnet.h>
#include <string.h>

#include "switch.h"

#define ANNOUNCE_COUNT	2	/* one more in case the first is lost */

static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
static const uint8_t all_nodes_mac[6] = { 0x33, 0x33, 0, 0, 0, 1 };

static int build_garp(libnet_t *l, const struct tcpcp_switch *sw, const struct tcpcp_tuple *t)
{
	/* Sender and target address both ipX: a gratuitous request. */
	if (libnet_build_arp(ARPHRD_ETHER, ETHERTYPE_IP, 6, 4, ARPOP_REQUEST,
			     sw->mac, (uint8_t *)&t->local.v4, (uint8_t *)bcast,
			     (uint8_t *)&t->local.v4, NULL, 0, l, 0) < 0 ||
	    libnet_autobuild_ethernet(bcast, ETHERTYPE_ARP, l) < 0)
		return -1;
	return 0;
}

static int build_una(libnet_t *l, const struct tcpcp_switch *sw, const struct tcpcp_tuple *t)
{
	struct libnet_in6_addr target, all_nodes;
	uint8_t mac[6];
	const uint32_t len = LIBNET_ICMPV6_NDP_NADV_H + 8;

	memcpy(&target, &t->local.v6, 16);
	memset(&all_nodes, 0, sizeof(all_nodes));
	all_nodes.__u6_addr.__u6_addr8[0] = 0xff;
	all_nodes.__u6_addr.__u6_addr8[1] = 0x02;
	all_nodes.__u6_addr.__u6_addr8[15] = 0x01;
	memcpy(mac, sw->mac, 6);
	/* Innermost first: option, advertisement, IPv6, Ethernet. */
	if (libnet_build_icmpv6_ndp_opt(ND_OPT_TARGET_LINKADDR, mac, 6, l, 0) < 0 ||
	    libnet_build_icmpv6_ndp_nadv(ND_NEIGHBOR_ADVERT, 0, 0, ND_NA_FLAG_OVERRIDE,
					 target, NULL, 0, l, 0) < 0 ||
	    libnet_build_ipv6(0, 0, len, IPPROTO_ICMPV6, 255, target, all_nodes,
			      NULL, 0, l, 0) < 0 ||
	    libnet_autobuild_ethernet(all_nodes_mac, ETHERTYPE_IPV6, l) < 0)
		return -1;
	return 0;
}

int tcpcp_switch_arp(const struct tcpcp_switch *sw, const struct tcpcp_tuple *t)
{
	char errbuf[LIBNET_ERRBUF_SIZE];
	libnet_t *l;
	int i, err = 0;

	l = libnet_init(LIBNET_LINK, sw->arg, errbuf);
	if (!l)
		return tcpcp_fail(EPERM, "switch arp: %s: %.*s", sw->arg,
				  (int)strcspn(errbuf, "\n"), errbuf);
	if ((t->family == AF_INET ? build_garp : build_una)(l, sw, t)) {
		err = tcpcp_fail(EIO, "switch arp: building the announcement: %s",
				 libnet_geterror(l));
		goto out;
	}
	for (i = 0; i < ANNOUNCE_COUNT && !err; i++)
		if (libnet_write(l) < 0)
			err = tcpcp_fail(EIO, "switch arp: sending on %s: %s", sw->arg,
					 libnet_geterror(l));
out:
	libnet_destroy(l);
	return err;
}
