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
 *
 * Cost.  The table is created once, through libnftables' text (readable,
 * and paid once).  Each pass then adds one element: through libnftables
 * that is a text parse and a cache refresh, six requests and eleven
 * replies, 117 us here; through libnftnl it is one prebuilt batch and
 * its ACK on a netlink socket kept open from the first run on.  A
 * netlink socket stays in the namespace it was opened in, so later runs
 * need not enter the gateway's namespace at all (switch.c), which saves
 * the thread that entering costs.  bench/switch_cost.sh: 270 us a
 * switch before, 25 us now.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/set.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <nftables/libnftables.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "switch.h"

#define STEER_LOCK "/run/lock/tcpcp-steer.lock"
#define STEER_TABLE "tcpcp-steer"

/* The peer's segments: saddr = peer, daddr = local (ipX). */
static const char steer_table[] =
	"table inet " STEER_TABLE " {\n"
	" map v4 { type ipv4_addr . inet_service . ipv4_addr . inet_service : mark; }\n"
	" map v6 { type ipv6_addr . inet_service . ipv6_addr . inet_service : mark; }\n"
	" chain pre { type filter hook prerouting priority mangle; policy accept;\n"
	"  meta mark set ip saddr . tcp sport . ip daddr . tcp dport map @v4\n"
	"  meta mark set ip6 saddr . tcp sport . ip6 daddr . tcp dport map @v6\n"
	" }\n"
	"}\n";

/* The element's key as nftables lays out a concatenation: each field
 * in network order, padded with zeros to a 4-byte register. */
static size_t key_of(const struct tcpcp_tuple *t, uint8_t key[40])
{
	size_t alen = t->family == AF_INET ? 4 : 16;
	uint16_t pport = htons(t->pport), lport = htons(t->lport);

	memset(key, 0, 40);
	memcpy(key, &t->peer, alen);
	memcpy(key + alen, &pport, 2);
	memcpy(key + alen + 4, &t->local, alen);
	memcpy(key + 2 * alen + 4, &lport, 2);
	return 2 * alen + 8;
}

/* One element added (NFT_MSG_NEWSETELEM, with @mark) or deleted, as a
 * batch of its own; -errno from the kernel's answer. */
static int element_tx(struct tcpcp_switch *sw, int type, const struct tcpcp_tuple *t)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct mnl_nlmsg_batch *b = mnl_nlmsg_batch_start(buf, sizeof(buf));
	struct nftnl_set *set = nftnl_set_alloc();
	struct nftnl_set_elem *e = nftnl_set_elem_alloc();
	struct nlmsghdr *nlh;
	uint8_t key[40];
	uint32_t seq;
	int err = 0;
	ssize_t n;

	if (!b || !set || !e) {
		err = -ENOMEM;
		goto out;
	}
	nftnl_set_set_str(set, NFTNL_SET_TABLE, STEER_TABLE);
	nftnl_set_set_str(set, NFTNL_SET_NAME, t->family == AF_INET ? "v4" : "v6");
	nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, key, (uint32_t)key_of(t, key));
	if (type == NFT_MSG_NEWSETELEM)		/* the mark: host order */
		nftnl_set_elem_set(e, NFTNL_SET_ELEM_DATA, &sw->mark, sizeof(sw->mark));
	nftnl_set_elem_add(set, e);
	e = NULL;
	nftnl_batch_begin(mnl_nlmsg_batch_current(b), sw->nl_seq++);
	mnl_nlmsg_batch_next(b);
	seq = sw->nl_seq++;
	nlh = nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(b), (uint16_t)type, NFPROTO_INET,
				    (type == NFT_MSG_NEWSETELEM ? NLM_F_CREATE : 0) | NLM_F_ACK, seq);
	nftnl_set_elems_nlmsg_build_payload(nlh, set);
	mnl_nlmsg_batch_next(b);
	nftnl_batch_end(mnl_nlmsg_batch_current(b), sw->nl_seq++);
	mnl_nlmsg_batch_next(b);
	if (mnl_socket_sendto(sw->nl, mnl_nlmsg_batch_head(b), mnl_nlmsg_batch_size(b)) < 0) {
		err = -errno;
		goto out;
	}
	/* The kernel runs the batch inside sendto(): its answer is there. */
	n = mnl_socket_recvfrom(sw->nl, buf, sizeof(buf));
	if (n < 0 || mnl_cb_run(buf, (size_t)n, seq, mnl_socket_get_portid(sw->nl),
				NULL, NULL) < 0)
		err = -errno;
out:
	if (b)
		mnl_nlmsg_batch_stop(b);
	if (e)
		nftnl_set_elem_free(e);
	if (set)
		nftnl_set_free(set);
	return err;
}

/* Steering a connection for the first time adds its element, nothing
 * else: a transaction that deletes one takes 10-25 ms to commit here
 * (it waits for the kernel's RCU-deferred release), on the path of the
 * pass.  Only a connection steered before, or unsteered (mark 0), pays
 * the delete. */
static int apply(struct tcpcp_switch *sw, const struct tcpcp_tuple *t)
{
	int err;

	if (sw->mark && !element_tx(sw, NFT_MSG_NEWSETELEM, t))
		return 0;
	err = element_tx(sw, NFT_MSG_DELSETELEM, t);
	if (err && err != -ENOENT)
		return err;
	return sw->mark ? element_tx(sw, NFT_MSG_NEWSETELEM, t) : 0;
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

/* The table, created by the first pass through this gateway (the lock
 * keeps concurrent first passes from racing), and the netlink socket
 * every later element goes through.  Runs in the gateway's namespace. */
static int open_gateway(struct tcpcp_switch *sw)
{
	struct timeval tv = { .tv_sec = 2 };
	struct nft_ctx *nft = NULL;
	int lock, err = 0;

	lock = open(STEER_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock < 0 || flock(lock, LOCK_EX)) {
		err = tcpcp_fail(errno, "cannot lock %s: %s", STEER_LOCK, strerror(errno));
		goto out;
	}
	nft = nft_ctx_new(NFT_CTX_DEFAULT);
	if (!nft) {
		err = tcpcp_fail(ENOMEM, "cannot create an nftables context");
		goto out;
	}
	nft_ctx_buffer_output(nft);
	nft_ctx_buffer_error(nft);
	if (nft_run_cmd_from_buffer(nft, "list table inet " STEER_TABLE) &&
	    nft_run_cmd_from_buffer(nft, steer_table)) {
		err = tcpcp_fail(EPERM, "switch flow: cannot create the steering table: %s",
				 first_line(nft));
		goto out;
	}
	sw->nl = mnl_socket_open(NETLINK_NETFILTER);
	if (!sw->nl || mnl_socket_bind(sw->nl, 0, MNL_SOCKET_AUTOPID) ||
	    setsockopt(mnl_socket_get_fd(sw->nl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv))) {
		err = tcpcp_fail(errno, "switch flow: netlink socket: %s", strerror(errno));
		tcpcp_switch_flow_free(sw);
	}
	sw->nl_seq = (uint32_t)time(NULL);
out:
	if (nft)
		nft_ctx_free(nft);
	if (lock >= 0)
		close(lock);
	return err;
}

void tcpcp_switch_flow_free(struct tcpcp_switch *sw)
{
	if (sw->nl)
		mnl_socket_close(sw->nl);
	sw->nl = NULL;
}

/* The first run happens inside the gateway's namespace; later ones may
 * run anywhere (tcpcp_switch_flow_ready()). */
int tcpcp_switch_flow(const struct tcpcp_switch *csw, const struct tcpcp_tuple *t)
{
	struct tcpcp_switch *sw = (struct tcpcp_switch *)csw;	/* its cache */
	int err;

	if (!sw->nl && (err = open_gateway(sw)))
		return err;
	if ((err = apply(sw, t)))
		return tcpcp_fail(-err, "switch flow: cannot steer the connection: %s",
				  strerror(-err));
	return 0;
}

bool tcpcp_switch_flow_ready(const struct tcpcp_switch *sw)
{
	return sw->nl != NULL;
}
