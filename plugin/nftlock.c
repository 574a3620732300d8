/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A lock that travels with a network namespace CRIU dumps.
 *
 * When the tree owns its namespace, CRIU dumps it (devices, addresses,
 * routes, and its nftables ruleset) and restores a new one; the gate's BPF
 * programs are not part of it.  In the new namespace the addresses come
 * back tens of milliseconds before the plugin's RESUME_DEVICES_LATE
 * (48 ms measured, test_tree_in_own_netns), and a segment from the peer
 * then would meet a listener or no socket and draw a RST.  So at dump the
 * plugin also writes the connections into the namespace's own ruleset, a
 * table CRIU dumps and restores with it (restore_nftables, right after the
 * routes): the new namespace comes up dropping them, and the plugin
 * removes the table once each connection is rebuilt behind the gate.
 *
 * Its chains hook at priority -310: the gate's BPF programs hold -300,
 * and a BPF netfilter link refuses (EBUSY) to share its priority with any
 * other hook.
 *
 * One libnftables transaction at dump and one at restore, per namespace,
 * not per connection; libnftables is in CRIU's process anyway (its own
 * network lock).  It runs in a thread that enters the namespace: a
 * netlink socket belongs to the namespace it was opened in.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <nftables/libnftables.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <unistd.h>

#include <tcpcp.h>

#include "plugin.h"

#define TABLE "inet tcpcp-criu"

/* In the thread that entered the namespace (proc.c, in_netns()). */
static int run_cmd(void *arg)
{
	const char *cmd = arg;
	struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);
	int err = 0;

	if (!nft)
		return -ENOMEM;
	nft_ctx_buffer_output(nft);
	nft_ctx_buffer_error(nft);
	if (nft_run_cmd_from_buffer(nft, cmd))
		err = -EINVAL;
	nft_ctx_free(nft);
	return err;
}

/* @cmd through libnftables in the network namespace of socket @s. */
static int nft_in_netns(int s, const char *cmd)
{
	int nsfd = ioctl(s, SIOCGSKNS), err;

	if (nsfd < 0)
		return -errno;
	err = in_netns(nsfd, run_cmd, (void *)cmd);
	close(nsfd);
	return err;
}

static int addr_str(const struct sockaddr_storage *ss, char *buf, size_t len, int *port)
{
	const void *a = ss->ss_family == AF_INET ?
		(const void *)&((const struct sockaddr_in *)ss)->sin_addr :
		(const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;

	*port = ntohs(ss->ss_family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port :
			((const struct sockaddr_in6 *)ss)->sin6_port);
	return inet_ntop(ss->ss_family, a, buf, (socklen_t)len) ? 0 : -errno;
}

/* Append to @buf (of @room, at @*used) or fail with -ENOSPC. */
static int put(char *buf, size_t room, size_t *used, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int put(char *buf, size_t room, size_t *used, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf + *used, room - *used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= room - *used)
		return -ENOSPC;
	*used += (size_t)n;
	return 0;
}

static const char skeleton[] =
	"add table " TABLE "\n"
	"add set " TABLE " v4 { type ipv4_addr . inet_service . ipv4_addr . inet_service; }\n"
	"add set " TABLE " v6 { type ipv6_addr . inet_service . ipv6_addr . inet_service; }\n"
	"add chain " TABLE " in { type filter hook input priority -310; }\n"
	"add chain " TABLE " out { type filter hook output priority -310; }\n"
	"add rule " TABLE " in ip daddr . tcp dport . ip saddr . tcp sport @v4 drop\n"
	"add rule " TABLE " in ip6 daddr . tcp dport . ip6 saddr . tcp sport @v6 drop\n"
	"add rule " TABLE " out ip saddr . tcp sport . ip daddr . tcp dport @v4 drop\n"
	"add rule " TABLE " out ip6 saddr . tcp sport . ip6 daddr . tcp dport @v6 drop\n";

int nftlock_add(int s, const struct tcpcp_ends *e, size_t n)
{
	size_t room = sizeof(skeleton) + n * 128 + 64, used = 0, i;
	char *cmd = malloc(room);
	int err;

	if (!cmd)
		return -ENOMEM;
	err = put(cmd, room, &used, "%s", skeleton);
	for (i = 0; i < n && !err; i++) {
		char l[INET6_ADDRSTRLEN], p[INET6_ADDRSTRLEN];
		int lp, pp;

		err = addr_str(&e[i].local, l, sizeof(l), &lp) ?:
		      addr_str(&e[i].peer, p, sizeof(p), &pp) ?:
		      put(cmd, room, &used, "add element " TABLE " %s { %s . %d . %s . %d }\n",
			  e[i].local.ss_family == AF_INET ? "v4" : "v6", l, lp, p, pp);
	}
	if (!err)
		err = nft_in_netns(s, cmd);
	free(cmd);
	return err;
}

int nftlock_remove(int s)
{
	/* "delete" fails when there is no table: add it first, empty or
	 * not, so that the pair never fails for that reason. */
	return nft_in_netns(s, "add table " TABLE "\ndelete table " TABLE "\n");
}
