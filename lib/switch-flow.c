/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Per-connection steering at a gateway, beyond the paper: a map from the
 * connection's 4-tuple (as the peer's segments carry it) to a packet
 * mark, which the gateway's policy routing turns into a next hop:
 *
 *   ip rule add fwmark MARK lookup MARK
 *   ip route add ipX via HOST table MARK
 *
 * Only the passed connection moves; others to ipX keep their route.
 * Mark 0 removes the entry, so the connection follows the main table.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <nftables/libnftables.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "switch.h"

#define STEER_LOCK "/run/lock/tcpcp-steer.lock"

/* The peer's segments: saddr = peer, daddr = local (ipX). */
static const char steer_table[] =
	"table inet tcpcp-steer {\n"
	" map v4 { type ipv4_addr . inet_service . ipv4_addr . inet_service : mark; }\n"
	" map v6 { type ipv6_addr . inet_service . ipv6_addr . inet_service : mark; }\n"
	" chain pre { type filter hook prerouting priority mangle; policy accept;\n"
	"  meta mark set ip saddr . tcp sport . ip daddr . tcp dport map @v4\n"
	"  meta mark set ip6 saddr . tcp sport . ip6 daddr . tcp dport map @v6\n"
	" }\n"
	"}\n";

static void element(const struct tcpcp_tuple *t, char *buf, size_t len)
{
	char l[INET6_ADDRSTRLEN], p[INET6_ADDRSTRLEN];

	inet_ntop(t->family, &t->local, l, sizeof(l));
	inet_ntop(t->family, &t->peer, p, sizeof(p));
	snprintf(buf, len, "inet tcpcp-steer %s { %s . %u . %s . %u",
		 t->family == AF_INET ? "v4" : "v6", p, t->pport, l, t->lport);
}

static const char *first_line(struct nft_ctx *nft)
{
	static __thread char line[256];
	const char *e = nft_ctx_get_error_buffer(nft);

	if (!e || !*e)
		return "unknown nftables error";
	snprintf(line, sizeof(line), "%.*s", (int)strcspn(e, "\n"), e);
	return line;
}

/* Steering a connection for the first time adds its element, nothing
 * else: a transaction that deletes one takes 10-25 ms to commit here
 * (it waits for the kernel's RCU-deferred release), on the path of the
 * pass.  Only a connection steered before, or unsteered (mark 0), pays
 * the delete. */
static int apply(struct nft_ctx *nft, const struct tcpcp_switch *sw, const char *el)
{
	char cmd[512];

	if (sw->mark) {
		snprintf(cmd, sizeof(cmd), "add element %s : 0x%x }", el, sw->mark);
		if (!nft_run_cmd_from_buffer(nft, cmd))
			return 0;
	}
	snprintf(cmd, sizeof(cmd), "delete element %s }", el);
	nft_run_cmd_from_buffer(nft, cmd);	/* absent is fine */
	if (!sw->mark)
		return 0;
	snprintf(cmd, sizeof(cmd), "add element %s : 0x%x }", el, sw->mark);
	return nft_run_cmd_from_buffer(nft, cmd) ? -1 : 0;
}

void tcpcp_switch_flow_free(struct tcpcp_switch *sw)
{
	if (sw->nft)
		nft_ctx_free(sw->nft);
	sw->nft = NULL;
}

/* Runs inside the gateway's namespace, where the context's netlink
 * socket must be opened. */
int tcpcp_switch_flow(const struct tcpcp_switch *csw, const struct tcpcp_tuple *t)
{
	struct tcpcp_switch *sw = (struct tcpcp_switch *)csw;	/* its cache */
	char el[256];
	int lock, err = 0;

	if (!sw->nft) {
		sw->nft = nft_ctx_new(NFT_CTX_DEFAULT);
		if (!sw->nft)
			return tcpcp_fail(ENOMEM, "cannot create an nftables context");
		nft_ctx_buffer_output(sw->nft);
		nft_ctx_buffer_error(sw->nft);
	}
	/* Serialises the table's creation between concurrent passes. */
	lock = open(STEER_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock < 0 || flock(lock, LOCK_EX)) {
		err = tcpcp_fail(errno, "cannot lock %s: %s", STEER_LOCK, strerror(errno));
		goto out;
	}
	element(t, el, sizeof(el));
	if (!sw->steer_ready && nft_run_cmd_from_buffer(sw->nft, "list table inet tcpcp-steer") &&
	    nft_run_cmd_from_buffer(sw->nft, steer_table))
		err = -1;
	if (err || apply(sw->nft, sw, el))
		err = tcpcp_fail(EPERM, "switch flow: cannot steer the connection: %s",
				 first_line(sw->nft));
	sw->steer_ready = !err;
out:
	if (lock >= 0)
		close(lock);
	return err;
}
