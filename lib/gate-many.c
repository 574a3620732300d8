/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Gate batches with a timeout, which the gate itself does not offer yet:
 * tcpcp_gate_linger() for many connections, and closing many for a while.
 *
 * The CRIU plugin closes the gate of every connection of the frozen tasks
 * for a while (DUMP_LINGER_S): if CRIU kills the tasks, the origin must go
 * on dropping the peer's segments (a RST would end the connection) until
 * the restored copy takes over, and must not keep them for ever once it
 * has.  Closing them with a timeout from the start costs nothing more at
 * the end of the dump, while the peer waits; tcpcp_gate_linger() per
 * connection there took 13 ms each with the nftables gate (a deleting
 * transaction's slow netlink close), 13 s for a thousand.
 *
 * So while the gate is isolate.c's nftables table, this file replaces the
 * elements in that table in one transaction, under the gate's own flock,
 * exactly as tcpcp_gate_linger() does for one.  If that table is not
 * there (another gate, or none closed in this netns) it falls back on
 * tcpcp_gate_linger() per connection, which is right for any gate.  A gate
 * with its own batch should implement tcpcp_gate_linger_many() and this
 * file go.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <nftables/libnftables.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "gate-many.h"

/* isolate.c's names. */
#define NFT_GATE_LOCK	"/run/lock/tcpcp-gate.lock"
#define NFT_GATE_TABLE	"inet tcpcp"

static int one_by_one(int s, const struct tcpcp_tuple *t, size_t n, unsigned int secs)
{
	int err = 0;
	size_t i;

	for (i = 0; i < n; i++)
		if (tcpcp_gate_linger(s, &t[i], secs))
			err = -1;	/* the rest still linger: go on */
	return err;
}

static size_t element(const struct tcpcp_tuple *t, const char *extra, char *buf, size_t len)
{
	char l[INET6_ADDRSTRLEN], p[INET6_ADDRSTRLEN];

	inet_ntop(t->family, &t->local, l, sizeof(l));
	inet_ntop(t->family, &t->peer, p, sizeof(p));
	return (size_t)snprintf(buf, len, NFT_GATE_TABLE " %s { %s . %u . %s . %u%s }",
				t->family == AF_INET ? "v4" : "v6", l, t->lport, p, t->pport, extra);
}

/* Closing creates the elements with their timeout (a transaction that
 * only adds closes its socket at once).  If one exists, or to let an
 * element linger, "add; delete; add with a timeout" replaces it, as
 * tcpcp_gate_linger() does for one: present or absent, it ends up timed. */
static char *batch_cmd(const struct tcpcp_tuple *t, size_t n, unsigned int secs, bool create)
{
	size_t i, len = 0, room = n * 3 * 300 + 1;
	char el[256], el_to[256], extra[32], *cmd = malloc(room);

	if (!cmd)
		return NULL;
	cmd[0] = '\0';
	snprintf(extra, sizeof(extra), " timeout %us", secs);
	for (i = 0; i < n; i++) {
		element(&t[i], "", el, sizeof(el));
		element(&t[i], extra, el_to, sizeof(el_to));
		if (create)
			len += (size_t)snprintf(cmd + len, room - len, "create element %s\n", el_to);
		else
			len += (size_t)snprintf(cmd + len, room - len,
						"add element %s\ndelete element %s\nadd element %s\n",
						el, el, el_to);
	}
	return cmd;
}

/* 1: done, 0: no nftables gate table here, -1: failed. */
static int nft_batch(const char *create, const char *replace)
{
	struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);
	int ret = -1;

	if (!nft)
		return tcpcp_fail(ENOMEM, "cannot create an nftables context");
	nft_ctx_buffer_output(nft);
	nft_ctx_buffer_error(nft);
	if (nft_run_cmd_from_buffer(nft, "list table " NFT_GATE_TABLE))
		ret = 0;
	else if ((create && !nft_run_cmd_from_buffer(nft, create)) ||
		 !nft_run_cmd_from_buffer(nft, replace))
		ret = 1;
	else
		tcpcp_fail(EPERM, "cannot drop the connections' segments with nftables: %.200s",
			   nft_ctx_get_error_buffer(nft));
	nft_ctx_free(nft);
	return ret;
}

/* 1: done, 0: no nftables gate table in @s's netns, -1: failed. */
static int nft_try(int s, const struct tcpcp_tuple *t, size_t n, unsigned int secs, bool close_)
{
	char *create = NULL, *replace = NULL;
	int lock, saved = -1, ret = 0;

	lock = open(NFT_GATE_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock < 0 || flock(lock, LOCK_EX))
		goto out;	/* the gate's own calls know their way */
	replace = batch_cmd(t, n, secs, false);
	if (close_)
		create = batch_cmd(t, n, secs, true);
	if (!replace || (close_ && !create)) {
		ret = tcpcp_fail(ENOMEM, "out of memory");
		goto out;
	}
	if (tcpcp_netns_enter(s, &saved)) {
		ret = -1;
		goto out;
	}
	ret = nft_batch(create, replace);
	tcpcp_netns_leave(saved);
out:
	free(create);
	free(replace);
	if (lock >= 0)
		close(lock);
	return ret;
}

/* The gate creates its table on first use: close through it, then make
 * the elements timed in one more batch.  No table even then: not the
 * nftables gate, so one call per connection. */
static int timed(int s, const struct tcpcp_tuple *t, size_t n, unsigned int secs, bool close_)
{
	int ret = nft_try(s, t, n, secs, close_);

	if (ret == 0 && close_) {
		if (tcpcp_gate_close_many(s, t, n))
			return -1;
		ret = nft_try(s, t, n, secs, false);
	}
	if (ret == 0)
		return one_by_one(s, t, n, secs);
	return ret < 0 ? -1 : 0;
}

int tcpcp_gate_linger_many(int s, const struct tcpcp_tuple *t, size_t n, unsigned int secs)
{
	if (!n || !secs)
		return one_by_one(s, t, n, secs);
	return timed(s, t, n, secs, false);
}

/* Closed now, open again by itself after @secs (or tcpcp_gate_open*()).
 * Without the nftables table (first use in this netns, or another gate)
 * the gate's own calls create it: permanent, then lingering. */
int tcpcp_gate_close_many_for(int s, const struct tcpcp_tuple *t, size_t n, unsigned int secs)
{
	if (!n || !secs)
		return tcpcp_gate_close_many(s, t, n);
	return timed(s, t, n, secs, true);
}
