/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Gate batches the gate itself does not offer yet, for the CRIU plugin:
 * closing many connections for a while (tcpcp_gate_close_many_for),
 * tcpcp_gate_linger() for many, and opening many with the connections
 * started as soon as the gate is open (tcpcp_gate_open_many_then).
 *
 * The plugin closes the gate of every connection of the frozen tasks for
 * a while (DUMP_LINGER_S): if CRIU kills the tasks, the origin must go on
 * dropping the peer's segments (a RST would end the connection) until the
 * restored copy takes over, and must not keep them for ever once it has.
 * Closing them with a timeout from the start costs nothing more at the end
 * of the dump, while the peer waits; tcpcp_gate_linger() per connection
 * there took 13 ms each with the nftables gate, 13 s for a thousand.
 *
 * So while the gate is isolate.c's nftables table, this file changes the
 * elements of that table itself, under the gate's flock: one transaction,
 * one command per set listing every element (several times faster to
 * parse than a command per element), no deleting or failing transaction
 * where it can be helped (since Linux 6.12 adding an element sets its
 * timeout), and an nftables context kept until the caller is done
 * waiting, so that the slow netlink close after a deleting transaction
 * (4-28 ms here: the kernel's deferred destruction) is not waited for.
 * If that table is not there (another gate) it falls back on the gate's
 * own calls, which are right for any gate.  A gate with its own batches
 * should implement these three and this file go.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <nftables/libnftables.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
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

/* "a . p . b . q[ timeout Ns], " of every connection of @family. */
static size_t keys(const struct tcpcp_tuple *t, size_t n, int family, const char *extra,
		   char *buf, size_t room)
{
	char l[INET6_ADDRSTRLEN], p[INET6_ADDRSTRLEN];
	size_t i, len = 0;

	for (i = 0; i < n; i++) {
		if (t[i].family != family)
			continue;
		inet_ntop(t[i].family, &t[i].local, l, sizeof(l));
		inet_ntop(t[i].family, &t[i].peer, p, sizeof(p));
		len += (size_t)snprintf(buf + len, room - len, "%s%s . %u . %s . %u%s",
					len ? ", " : "", l, t[i].lport, p, t[i].pport, extra);
	}
	return len;
}

enum batch { CREATE, REPLACE, UPDATE, OPEN };

/* Since Linux 6.12 adding an element that exists sets its timeout (a
 * permanent one included); before, it left the element as it was. */
static bool timeout_updates(void)
{
	static int v = -1;
	struct utsname u;
	int major = 0, minor = 0;

	if (v < 0) {
		if (!uname(&u))
			sscanf(u.release, "%d.%d", &major, &minor);
		v = major > 6 || (major == 6 && minor >= 12);
	}
	return v;
}

/* One command per set and step, all elements listed in it: libnftables
 * parses a list several times faster than one command per element.
 * UPDATE, "add with a timeout", creates or renews every element without
 * deleting one (a transaction that deletes, or fails, costs ms more).
 * Before Linux 6.12: CREATE them with their timeout (fails if one exists),
 * else REPLACE, "add; delete; add with a timeout", as tcpcp_gate_linger()
 * does for one: present or absent, each ends up timed. */
static char *batch_cmd(const struct tcpcp_tuple *t, size_t n, unsigned int secs, enum batch how)
{
	static const struct { int family; const char *set; } sets[] = {
		{ AF_INET, "v4" }, { AF_INET6, "v6" } };
	size_t i, len = 0, klen, room = n * 2 * 120 + 512;
	char extra[32], *k = malloc(room), *kt = malloc(room), *cmd = malloc(3 * room);

	if (!k || !kt || !cmd)
		goto fail;
	cmd[0] = '\0';
	snprintf(extra, sizeof(extra), " timeout %us", secs);
	for (i = 0; i < 2; i++) {
		const char *set = sets[i].set;

		if (!(klen = keys(t, n, sets[i].family, "", k, room)))
			continue;
		keys(t, n, sets[i].family, extra, kt, room);
		if (how == OPEN)
			len += (size_t)snprintf(cmd + len, 3 * room - len,
						"add element " NFT_GATE_TABLE " %s { %s }\n"
						"delete element " NFT_GATE_TABLE " %s { %s }\n",
						set, k, set, k);
		else if (how != REPLACE)
			len += (size_t)snprintf(cmd + len, 3 * room - len, "%s element "
						NFT_GATE_TABLE " %s { %s }\n",
						how == CREATE ? "create" : "add", set, kt);
		else
			len += (size_t)snprintf(cmd + len, 3 * room - len,
						"add element " NFT_GATE_TABLE " %s { %s }\n"
						"delete element " NFT_GATE_TABLE " %s { %s }\n"
						"add element " NFT_GATE_TABLE " %s { %s }\n",
						set, k, set, k, set, kt);
	}
	free(k);
	free(kt);
	return cmd;
fail:
	free(k);
	free(kt);
	free(cmd);
	return NULL;
}

/* The nftables context, kept from one call to the next in the same netns
 * and freed by tcpcp_gate_many_release(): closing its netlink socket after
 * a transaction that deleted elements waits for the kernel's deferred
 * destruction (4-28 ms here), which by the time of the release has run. */
static struct {
	struct nft_ctx *nft;
	ino_t ns;
} kept;

void tcpcp_gate_many_release(void)
{
	if (kept.nft)
		nft_ctx_free(kept.nft);
	kept.nft = NULL;
}

/* Inside the netns of @ns_of (a socket). */
static struct nft_ctx *context(int ns_of)
{
	struct stat st;
	int ns = ioctl(ns_of, SIOCGSKNS);

	if (ns < 0 || fstat(ns, &st))
		st.st_ino = 0;
	if (ns >= 0)
		close(ns);
	if (kept.nft && (kept.ns != st.st_ino || !st.st_ino))
		tcpcp_gate_many_release();
	if (!kept.nft && (kept.nft = nft_ctx_new(NFT_CTX_DEFAULT))) {
		nft_ctx_buffer_output(kept.nft);
		nft_ctx_buffer_error(kept.nft);
		kept.ns = st.st_ino;
	}
	return kept.nft;
}

typedef int nft_fn(struct nft_ctx *nft, void *arg);	/* 1: done, -1: failed */

/* @fn under the gate's flock, in @s's netns, with the kept context.
 * 1: done, 0: no nftables gate table there (or no lock), -1: failed.  The
 * existence check lists a chain: listing the table would print every
 * element. */
static int in_gate(int s, nft_fn *fn, void *arg)
{
	int lock, saved = -1, ret = 0;
	struct nft_ctx *nft;

	lock = open(NFT_GATE_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock < 0 || flock(lock, LOCK_EX))
		goto out;	/* the gate's own calls know their way */
	if (tcpcp_netns_enter(s, &saved)) {
		ret = -1;
		goto out;
	}
	nft = context(s);
	if (!nft)
		ret = tcpcp_fail(ENOMEM, "cannot create an nftables context");
	else if (!nft_run_cmd_from_buffer(nft, "list chain " NFT_GATE_TABLE " out"))
		ret = fn(nft, arg);
	tcpcp_netns_leave(saved);
out:
	if (lock >= 0)
		close(lock);
	return ret;
}

static int nft_fail(struct nft_ctx *nft, const char *what)
{
	return tcpcp_fail(EPERM, "cannot %s the connections with nftables: %.200s", what,
			  nft_ctx_get_error_buffer(nft));
}

struct cmds {
	char *create, *replace;
};

static int run_timed(struct nft_ctx *nft, void *arg)
{
	struct cmds *c = arg;

	if ((c->create && !nft_run_cmd_from_buffer(nft, c->create)) ||
	    !nft_run_cmd_from_buffer(nft, c->replace))
		return 1;
	return nft_fail(nft, "isolate");
}

/* 1: done, 0: no nftables gate table in @s's netns, -1: failed. */
static int nft_try(int s, const struct tcpcp_tuple *t, size_t n, unsigned int secs, bool close_)
{
	struct cmds c = { NULL, NULL };
	int ret;

	if (timeout_updates()) {
		c.replace = batch_cmd(t, n, secs, UPDATE);
	} else {
		c.replace = batch_cmd(t, n, secs, REPLACE);
		if (close_)
			c.create = batch_cmd(t, n, secs, CREATE);
	}
	if (!c.replace || (close_ && !timeout_updates() && !c.create))
		ret = tcpcp_fail(ENOMEM, "out of memory");
	else
		ret = in_gate(s, run_timed, &c);
	free(c.create);
	free(c.replace);
	return ret;
}

/* The gate creates its table on first use: through it for the first
 * connection, then the others are created timed and the first made timed.
 * No table even then: not the nftables gate, so one call per connection. */
static int timed(int s, const struct tcpcp_tuple *t, size_t n, unsigned int secs, bool close_)
{
	int ret = nft_try(s, t, n, secs, close_);

	if (ret == 0 && close_) {
		if (tcpcp_gate_close_many(s, t, 1))
			return -1;
		ret = n > 1 ? nft_try(s, t + 1, n - 1, secs, true) : 1;
		if (ret > 0)
			ret = nft_try(s, t, 1, secs, false);
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

struct opening {
	char *cmd;
	void (*opened)(void *arg);
	void *arg;
};

static bool set_empty(struct nft_ctx *nft, const char *set)
{
	char cmd[64];

	snprintf(cmd, sizeof(cmd), "list set " NFT_GATE_TABLE " %s", set);
	if (nft_run_cmd_from_buffer(nft, cmd))
		return true;
	return !strstr(nft_ctx_get_output_buffer(nft), "elements =");
}

/* As the gate opens: adding first, so that one already gone cannot fail
 * the batch; what waits for the gate runs as soon as it is open; the
 * table goes once empty, as the gate's own open does. */
static int run_open(struct nft_ctx *nft, void *arg)
{
	struct opening *o = arg;

	if (nft_run_cmd_from_buffer(nft, o->cmd))
		return nft_fail(nft, "open the gate of");
	if (o->opened)
		o->opened(o->arg);
	if (set_empty(nft, "v4") && set_empty(nft, "v6"))
		nft_run_cmd_from_buffer(nft, "delete table " NFT_GATE_TABLE);
	return 1;
}

/* tcpcp_gate_open_many(), then @opened(@arg), without waiting for the
 * netlink close of a deleting transaction in between (the kept context). */
int tcpcp_gate_open_many_then(int s, const struct tcpcp_tuple *t, size_t n,
			      void (*opened)(void *arg), void *arg)
{
	struct opening o = { batch_cmd(t, n, 0, OPEN), opened, arg };
	int ret;

	if (!o.cmd)
		return tcpcp_fail(ENOMEM, "out of memory");
	ret = in_gate(s, run_open, &o);
	free(o.cmd);
	if (ret == 0) {
		ret = tcpcp_gate_open_many(s, t, n) ? -1 : 1;
		if (ret > 0 && opened)
			opened(arg);
	}
	return ret < 0 ? -1 : 0;
}
