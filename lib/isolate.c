/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The gate: a tcpcp-owned nftables table, one per network namespace, that
 * drops every segment of a listed 4-tuple in both directions.
 *
 * Why not TCP_REPAIR alone: a socket in repair mode still ACKs, runs its
 * retransmission, keepalive and pacing timers and so transmits; and once
 * the origin socket is closed, the kernel answers the peer's next segment
 * with a RST.  Dropping at the input and output hooks stops all of it,
 * before TCP sees a segment and before a segment leaves, and works for a
 * socket that no longer exists.  A transmission dropped on the output hook
 * fails with EPERM, so TCP keeps the data queued as not sent: the captured
 * state does not drift while the gate is closed.
 *
 * One kind of segment passes the closed gate: the ones tcpcp itself
 * injects, marked TCPCP_INJECT_MARK, to put back the peer's FIN of a
 * half-closed connection (fin.c).
 *
 * The table is created on first use and deleted when its sets are empty.
 * An flock serialises tcpcp processes so that creation and deletion never
 * race with another process's element.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <nftables/libnftables.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "internal.h"

#define GATE_LOCK "/run/lock/tcpcp-gate.lock"

static const char gate_table[] =
	"table inet tcpcp {\n"
	" set v4 { type ipv4_addr . inet_service . ipv4_addr . inet_service; flags timeout; }\n"
	" set v6 { type ipv6_addr . inet_service . ipv6_addr . inet_service; flags timeout; }\n"
	" chain in { type filter hook input priority -300; policy accept;\n"
	"  meta mark " TCPCP_INJECT_MARK_STR " accept\n"
	"  ip daddr . tcp dport . ip saddr . tcp sport @v4 drop\n"
	"  ip6 daddr . tcp dport . ip6 saddr . tcp sport @v6 drop\n"
	" }\n"
	" chain out { type filter hook output priority -300; policy accept;\n"
	"  ip saddr . tcp sport . ip daddr . tcp dport @v4 drop\n"
	"  ip6 saddr . tcp sport . ip6 daddr . tcp dport @v6 drop\n"
	" }\n"
	"}\n";

struct gate {
	struct nft_ctx *nft;
	int saved_ns;		/* our own netns while inside the socket's */
	int lock;
};

static void gate_exit(struct gate *g)
{
	if (g->nft)
		nft_ctx_free(g->nft);
	tcpcp_netns_leave(g->saved_ns);
	if (g->lock >= 0)
		close(g->lock);
}

static int gate_enter(int s, struct gate *g)
{
	int err;

	g->nft = NULL;
	g->saved_ns = -1;
	g->lock = open(GATE_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (g->lock < 0)
		g->lock = open("/tmp/tcpcp-gate.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (g->lock < 0 || flock(g->lock, LOCK_EX))
		return tcpcp_fail(errno, "cannot lock %s: %s", GATE_LOCK, strerror(errno));
	/* The gate must live in the socket's netns, which need not be
	 * ours: `tcpcp get --pid` takes sockets out of other namespaces. */
	err = tcpcp_netns_enter(s, &g->saved_ns);
	if (err)
		goto fail;
	g->nft = nft_ctx_new(NFT_CTX_DEFAULT);
	if (!g->nft) {
		err = tcpcp_fail(ENOMEM, "cannot create an nftables context");
		goto fail;
	}
	nft_ctx_buffer_output(g->nft);
	nft_ctx_buffer_error(g->nft);
	return 0;
fail:
	gate_exit(g);
	return err;
}

static int nft(struct gate *g, const char *cmd)
{
	return nft_run_cmd_from_buffer(g->nft, cmd) ? -1 : 0;
}

static const char *nft_error(struct gate *g)
{
	const char *e = nft_ctx_get_error_buffer(g->nft);
	static __thread char line[256];
	size_t n;

	if (!e || !*e)
		return "unknown nftables error";
	n = strcspn(e, "\n");
	snprintf(line, sizeof(line), "%.*s", (int)n, e);
	return line;
}

static void element(const struct tcpcp_tuple *t, const char *extra, char *buf, size_t len)
{
	char l[INET6_ADDRSTRLEN], p[INET6_ADDRSTRLEN];

	inet_ntop(t->family, &t->local, l, sizeof(l));
	inet_ntop(t->family, &t->peer, p, sizeof(p));
	snprintf(buf, len, "inet tcpcp %s { %s . %u . %s . %u%s }",
		 t->family == AF_INET ? "v4" : "v6", l, t->lport, p, t->pport, extra);
}

static bool set_empty(struct gate *g, const char *set)
{
	char cmd[64];

	snprintf(cmd, sizeof(cmd), "list set inet tcpcp %s", set);
	if (nft(g, cmd))
		return true;
	return !strstr(nft_ctx_get_output_buffer(g->nft), "elements =");
}

static void drop_table_if_empty(struct gate *g)
{
	if (set_empty(g, "v4") && set_empty(g, "v6"))
		nft(g, "delete table inet tcpcp");
}

int tcpcp_gate_linger(int s, const struct tcpcp_tuple *t, unsigned int secs)
{
	char el[256], el_to[256], extra[32], cmd[1024];
	struct gate g;
	int err;

	if (!secs)
		return tcpcp_gate_open(s, t);
	if ((err = gate_enter(s, &g)))
		return err;
	element(t, "", el, sizeof(el));
	snprintf(extra, sizeof(extra), " timeout %us", secs);
	element(t, extra, el_to, sizeof(el_to));
	snprintf(cmd, sizeof(cmd), "add element %s\ndelete element %s\nadd element %s\n",
		 el, el, el_to);
	if (nft(&g, cmd) && (nft(&g, gate_table) || nft(&g, cmd)))
		err = tcpcp_fail(EPERM, "cannot keep dropping the closed connection's segments: %s",
				 nft_error(&g));
	gate_exit(&g);
	return err;
}

/* Close or open the gate for @n connections in one nftables transaction:
 * the CRIU plugin's thousand single transactions took seconds while the
 * restored tasks waited.  Opening adds each element before deleting it,
 * so one that is absent already (as good as removed) cannot fail the
 * whole batch.  Closing creates the elements; only if one exists already
 * (a lingering one, whose timeout must not open the gate behind our back)
 * does it replace them, delete and add: a transaction that deletes makes
 * the close() of libnftables' netlink socket wait for the kernel's
 * deferred destruction, 4-28 ms here, on the path of every isolation. */
static int gate_many(int s, const struct tcpcp_tuple *t, size_t n, bool close_,
		     int (*opened)(int s))
{
	size_t i, len = 0, flen = 0, room = n * 3 * 300 + 1;
	char el[256], *cmd, *fresh = NULL;
	struct gate g;
	int err;

	if (!n)
		return 0;
	cmd = malloc(room);
	if (!cmd || (close_ && !(fresh = malloc(room)))) {
		err = tcpcp_fail(ENOMEM, "out of memory");
		goto out;
	}
	cmd[0] = '\0';
	for (i = 0; i < n; i++) {
		element(&t[i], "", el, sizeof(el));
		len += (size_t)snprintf(cmd + len, room - len, close_ ?
					"add element %s\ndelete element %s\nadd element %s\n" :
					"add element %s\ndelete element %s\n%.0s", el, el, el);
		if (close_)
			flen += (size_t)snprintf(fresh + flen, room - flen, "create element %s\n", el);
	}
	if ((err = gate_enter(s, &g)))
		goto out;
	if (close_ && nft(&g, fresh) && nft(&g, cmd) && (nft(&g, gate_table) || nft(&g, fresh)))
		err = tcpcp_fail(EPERM, "cannot isolate the connection%s with nftables: %s",
				 n > 1 ? "s" : "", nft_error(&g));
	/* The gate is open once the transaction is in, before the slow
	 * close: what waits for it (the window probe) goes now. */
	if (!close_) {
		nft(&g, cmd);
		if (opened)
			err = opened(s);
		drop_table_if_empty(&g);
	}
	gate_exit(&g);
out:
	free(fresh);
	free(cmd);
	return err;
}

int tcpcp_gate_close_many(int s, const struct tcpcp_tuple *t, size_t n)
{
	return gate_many(s, t, n, true, NULL);
}

int tcpcp_gate_open_many(int s, const struct tcpcp_tuple *t, size_t n)
{
	return gate_many(s, t, n, false, NULL);
}

/* Permanent until tcpcp_gate_open(). */
int tcpcp_gate_close(int s, const struct tcpcp_tuple *t)
{
	return gate_many(s, t, 1, true, NULL);
}

int tcpcp_gate_open(int s, const struct tcpcp_tuple *t)
{
	return gate_many(s, t, 1, false, NULL);
}

int tcpcp_gate_open_then(int s, const struct tcpcp_tuple *t, int (*opened)(int s))
{
	return gate_many(s, t, 1, false, opened);
}
