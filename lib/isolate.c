/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The gate: drops every segment of a listed 4-tuple in both directions,
 * in the 4-tuple's network namespace.
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
 * Why BPF and not nftables: the gate was an nftables table fed through
 * libnftables, a fresh context and text parser per call, and closing its
 * netlink socket after a transaction that deleted an element waits for
 * the kernel's deferred destroy work (synchronize_rcu(), 4-28 ms here).
 * A BPF hash map behind netfilter programs (bpf/gate.bpf.c, loaded once
 * per namespace by bpf.c) is changed by one bpf() system call for a whole
 * batch: bench/README.md has the numbers, docs/gate.md the choice.
 */
#include <arpa/inet.h>
#include <linux/capability.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "internal.h"

void tcpcp_gate_key_of(const struct tcpcp_tuple *t, uint64_t netns, struct tcpcp_gate_key *k)
{
	size_t alen = t->family == AF_INET ? 4 : 16;

	memset(k, 0, sizeof(*k));
	k->netns = netns;
	k->family = (__u8)t->family;
	k->lport = htons(t->lport);
	k->pport = htons(t->pport);
	memcpy(k->laddr, &t->local, alen);
	memcpy(k->paddr, &t->peer, alen);
}

static __u64 boottime_ns(void)
{
	struct timespec now;

	clock_gettime(CLOCK_BOOTTIME, &now);
	return (__u64)now.tv_sec * 1000000000ull + (__u64)now.tv_nsec;
}

/* When an entry that drops for @secs more stops dropping. */
static __u64 expiry(unsigned int secs)
{
	return boottime_ns() + secs * 1000000000ull;
}

/*
 * Accounting.  Whether a gate is empty decides when its hooks go, and a
 * hash map cannot say so cheaply: the first key is found by scanning
 * every bucket (a millisecond at 2^20).  So the gate counts its entries
 * itself, under the loader's lock, in keys of family 0 that no segment
 * matches: permanent entries, lingering ones, and when the last linger
 * ends.  Only user space removes entries (the programs let a run-out
 * one through), so the counts stay exact.
 */
enum { META_COUNT = 1, META_UNTIL, META_KEEP };

struct gate_meta {
	__u64 live, linger, until;
};

static __u64 meta_read(int gate, uint64_t netns, int which)
{
	struct tcpcp_gate_key k;
	struct tcpcp_gate_val v = { 0 };

	memset(&k, 0, sizeof(k));
	k.netns = netns;
	k.pad[0] = (__u8)which;
	bpf_map_lookup_elem(gate, &k, &v);
	return v.expires;
}

static int meta_write(int gate, uint64_t netns, int which, __u64 value)
{
	struct tcpcp_gate_key k;
	struct tcpcp_gate_val v = { value };

	memset(&k, 0, sizeof(k));
	k.netns = netns;
	k.pad[0] = (__u8)which;
	if (bpf_map_update_elem(gate, &k, &v, BPF_ANY))
		return tcpcp_fail(errno, "cannot count the gate's entries: %s", strerror(errno));
	return 0;
}

/* Both counts in one value: a gate holds far fewer than 2^32 entries. */
static void meta_get(int gate, uint64_t netns, struct gate_meta *m)
{
	__u64 c = meta_read(gate, netns, META_COUNT);

	m->live = c & 0xffffffffu;
	m->linger = c >> 32;
	m->until = meta_read(gate, netns, META_UNTIL);
}

static int meta_put(int gate, uint64_t netns, const struct gate_meta *m,
		    const struct gate_meta *was)
{
	int err = 0;

	if (m->live != was->live || m->linger != was->linger)
		err = meta_write(gate, netns, META_COUNT, m->live | m->linger << 32);
	if (!err && m->until != was->until)
		err = meta_write(gate, netns, META_UNTIL, m->until);
	return err;
}

/* Every entry of @netns, its counts too, in one walk over the map (the
 * map holds every namespace's): for a gate whose lingering entries have
 * all run out, and for a flush.  Rare, so a walk is fine. */
static void clear_ns(int gate, uint64_t netns)
{
	struct tcpcp_gate_key next, *keys = NULL, *p;
	size_t n = 0, i, room = 0;

	for (p = NULL; !bpf_map_get_next_key(gate, p, &next); p = &next) {
		if (next.netns != netns)
			continue;
		if (n == room) {
			struct tcpcp_gate_key *more = realloc(keys, (room = room * 2 + 64) * sizeof(*keys));

			if (!more)
				break;
			keys = more;
		}
		keys[n++] = next;
	}
	for (i = 0; i < n; i++)
		bpf_map_delete_elem(gate, &keys[i]);
	free(keys);
}

/* Take an entry out of the counts, as it was before a change. */
static void uncount(int gate, const struct tcpcp_gate_key *k, struct gate_meta *m, bool *had)
{
	struct tcpcp_gate_val old;

	*had = !bpf_map_lookup_elem(gate, k, &old);
	if (*had && old.expires && m->linger)
		m->linger--;
	else if (*had && !old.expires && m->live)
		m->live--;
}

static void count(struct gate_meta *m, __u64 expires)
{
	if (expires) {
		m->linger++;
		if (expires > m->until)
			m->until = expires;
	} else {
		m->live++;
	}
}

/* Nothing to drop: no entry, or lingering ones that have all run out
 * (cleared here, once, in one pass over the map). */
bool tcpcp_bpf_gate_idle(int gate, uint64_t netns)
{
	struct gate_meta m;

	meta_get(gate, netns, &m);
	if (m.live || (m.linger && m.until > boottime_ns()) ||
	    meta_read(gate, netns, META_KEEP) > boottime_ns())
		return false;
	if (m.linger)
		clear_ns(gate, netns);
	return true;
}

static struct tcpcp_gate_key *keys_of(const struct tcpcp_tuple *t, size_t n, uint64_t netns)
{
	struct tcpcp_gate_key *k = calloc(n, sizeof(*k));
	size_t i;

	if (!k) {
		tcpcp_fail(ENOMEM, "out of memory for %zu gate entries", n);
		return NULL;
	}
	for (i = 0; i < n; i++)
		tcpcp_gate_key_of(&t[i], netns, &k[i]);
	return k;
}

/* Add (or make permanent, or make linger) @n entries: one lookup each
 * for the counts, one system call for all of them.  An entry that exists
 * already, lingering after an earlier close, is replaced: its timeout
 * must not open the gate behind our back. */
static int gate_put(int s, const struct tcpcp_tuple *t, size_t n, __u64 expires)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_ANY);
	struct tcpcp_gate_val *v = NULL;
	struct tcpcp_gate_key *k = NULL;
	struct gate_meta m, before;
	struct tcpcp_bpf b;
	__u32 done = (__u32)n;
	unsigned int families = 0;
	bool had;
	size_t i;
	int err;

	if (!n)
		return 0;
	for (i = 0; i < n; i++)
		families |= t[i].family == AF_INET ? TCPCP_BPF_V4 : TCPCP_BPF_V6;
	if ((err = tcpcp_bpf_open(s, TCPCP_BPF_CREATE, &b)))
		return err;
	if ((err = tcpcp_bpf_attach(&b, s, families)))
		goto close;
	if (!(k = keys_of(t, n, b.cookie)) || !(v = calloc(n, sizeof(*v)))) {
		err = tcpcp_fail(ENOMEM, "out of memory for %zu gate entries", n);
		goto close;
	}
	for (i = 0; i < n; i++)
		v[i].expires = expires;
	meta_get(b.gate, b.cookie, &m);
	before = m;
	for (i = 0; i < n; i++) {
		uncount(b.gate, &k[i], &m, &had);
		count(&m, expires);
	}
	/* Counted first: a count too high keeps the hooks, never too low. */
	if ((err = meta_put(b.gate, b.cookie, &m, &before)))
		goto close;
	if (bpf_map_update_batch(b.gate, k, v, &done, &opts)) {
		err = tcpcp_fail(errno, "cannot isolate %zu connection%s in the gate: %s",
				 n, n > 1 ? "s" : "", strerror(errno));
		/* The first @done went in: take them out again. */
		for (i = 0; i < done; i++)
			bpf_map_delete_elem(b.gate, &k[i]);
		meta_put(b.gate, b.cookie, &before, &m);
	}
close:
	tcpcp_bpf_close(&b);
	free(v);
	free(k);
	return err;
}

/* Remove @n entries, each in any state, absent ones too (as good as
 * removed), then call @opened: the gate is open.  The namespace's hooks
 * go with the last entry. */
static int gate_del(int s, const struct tcpcp_tuple *t, size_t n,
		    int (*opened)(int s, void *arg), void *arg)
{
	struct tcpcp_gate_key *k = NULL;
	struct gate_meta m, before;
	struct tcpcp_bpf b;
	bool had;
	size_t i;
	int err;

	err = tcpcp_bpf_open(s, TCPCP_BPF_USE, &b);
	if (err == -ENOENT) {		/* no gate on this host */
		tcpcp_clear_error();
		return opened ? opened(s, arg) : 0;
	}
	if (err)
		return err;
	if (n && !(k = keys_of(t, n, b.cookie))) {
		err = -errno;
		goto close;
	}
	meta_get(b.gate, b.cookie, &m);
	before = m;
	for (i = 0; i < n; i++) {
		uncount(b.gate, &k[i], &m, &had);
		if (had && bpf_map_delete_elem(b.gate, &k[i]) && errno != ENOENT) {
			err = tcpcp_fail(errno, "cannot open the gate: %s", strerror(errno));
			break;
		}
	}
	meta_put(b.gate, b.cookie, &m, &before);
	if (!err && opened)
		err = opened(s, arg);
	if (tcpcp_bpf_gate_idle(b.gate, b.cookie))
		tcpcp_bpf_detach(&b);
close:
	tcpcp_bpf_close(&b);
	free(k);
	return err;
}

int tcpcp_gate_close_many(int s, const struct tcpcp_tuple *t, size_t n)
{
	return gate_put(s, t, n, 0);
}

int tcpcp_gate_open_many(int s, const struct tcpcp_tuple *t, size_t n)
{
	return gate_del(s, t, n, NULL, NULL);
}

int tcpcp_gate_linger_many(int s, const struct tcpcp_tuple *t, size_t n, unsigned int secs)
{
	if (!secs)
		return tcpcp_gate_open_many(s, t, n);
	return gate_put(s, t, n, expiry(secs));
}

/* Permanent until tcpcp_gate_open(). */
int tcpcp_gate_close(int s, const struct tcpcp_tuple *t)
{
	return gate_put(s, t, 1, 0);
}

int tcpcp_gate_open(int s, const struct tcpcp_tuple *t)
{
	return gate_del(s, t, 1, NULL, NULL);
}

static int call_opened(int s, void *arg)
{
	int (*opened)(int s) = *(int (**)(int))arg;

	return opened(s);
}

int tcpcp_gate_open_then(int s, const struct tcpcp_tuple *t, int (*opened)(int s))
{
	return gate_del(s, t, 1, call_opened, &opened);
}

int tcpcp_gate_linger(int s, const struct tcpcp_tuple *t, unsigned int secs)
{
	return tcpcp_gate_linger_many(s, t, 1, secs);
}

/* Batches of sockets, for callers that capture the state themselves
 * (the CRIU plugin locks a whole frozen tree at once).  All in one
 * network namespace: a gate is per namespace. */
int tcpcp_tuples_of_fds(const int *s, size_t n, struct tcpcp_tuple **t, uint64_t *netns)
{
	uint64_t first = 0, cookie;
	size_t i;

	*t = calloc(n ? n : 1, sizeof(**t));
	if (!*t)
		return tcpcp_fail(ENOMEM, "out of memory for %zu connections", n);
	for (i = 0; i < n; i++) {
		int state;

		if (tcpcp_check_tcp_socket(s[i], &state) || tcpcp_tuple_from_socket(s[i], &(*t)[i]) ||
		    tcpcp_netns_cookie(s[i], &cookie))
			goto fail;
		if (i && cookie != first) {
			tcpcp_fail(EXDEV, "fd %d is in another network namespace than fd %d: "
				   "one batch per namespace", s[i], s[0]);
			goto fail;
		}
		first = cookie;
	}
	if (netns)
		*netns = first;
	return 0;
fail:
	free(*t);
	*t = NULL;
	return -errno;
}

static int gate_fds(const int *s, size_t n, bool close_)
{
	struct tcpcp_tuple *t;
	int err;

	tcpcp_clear_error();
	if (!n)
		return 0;
	if (tcpcp_tuples_of_fds(s, n, &t, NULL))
		return -1;
	err = close_ ? gate_put(s[0], t, n, 0) : gate_del(s[0], t, n, NULL, NULL);
	free(t);
	return err ? -1 : 0;
}

TCPCP_EXPORT int tcpcp_gate_close_fds(const int *s, size_t n)
{
	if (!n || tcpcp_need_cap(CAP_NET_ADMIN, "isolate connections"))
		return n ? -1 : 0;
	return gate_fds(s, n, true);
}

TCPCP_EXPORT int tcpcp_gate_open_fds(const int *s, size_t n)
{
	return gate_fds(s, n, false);
}

/* Batches by 4-tuple, for callers without a socket per connection. */
static struct tcpcp_tuple *tuples_of_ends(const struct tcpcp_ends *e, size_t n)
{
	struct tcpcp_tuple *t = calloc(n ? n : 1, sizeof(*t));
	size_t i;

	if (!t) {
		tcpcp_fail(ENOMEM, "out of memory for %zu gate entries", n);
		return NULL;
	}
	for (i = 0; i < n; i++) {
		if ((e[i].local.ss_family != AF_INET && e[i].local.ss_family != AF_INET6) ||
		    e[i].peer.ss_family != e[i].local.ss_family) {
			tcpcp_fail(EAFNOSUPPORT, "gate entry %zu: not an IPv4 or IPv6 pair of ends", i);
			free(t);
			return NULL;
		}
		tcpcp_tuple_from_sockaddrs(&e[i].local, &e[i].peer, &t[i]);
	}
	return t;
}

TCPCP_EXPORT int tcpcp_gate_close_ends(int s, const struct tcpcp_ends *e, size_t n,
				       unsigned int secs)
{
	struct tcpcp_tuple *t;
	int err, own = -1;

	tcpcp_clear_error();
	if (!n)
		return 0;
	if (tcpcp_need_cap(CAP_NET_ADMIN, "isolate connections") || !(t = tuples_of_ends(e, n)))
		return -1;
	if ((s = tcpcp_any_socket(s, &own)) < 0) {
		free(t);
		return -1;
	}
	err = gate_put(s, t, n, secs ? expiry(secs) : 0);
	if (own >= 0)
		close(own);
	free(t);
	return err ? -1 : 0;
}

struct then {
	void (*fn)(void *arg);
	void *arg;
};

static int call_then(int s, void *arg)
{
	struct then *th = arg;

	(void)s;
	th->fn(th->arg);
	return 0;
}

TCPCP_EXPORT int tcpcp_gate_open_ends(int s, const struct tcpcp_ends *e, size_t n,
				      void (*opened)(void *arg), void *arg)
{
	struct then th = { opened, arg };
	struct tcpcp_tuple *t;
	int err, own = -1;

	tcpcp_clear_error();
	if (!(t = tuples_of_ends(e, n)))
		return -1;
	if ((s = tcpcp_any_socket(s, &own)) < 0) {
		free(t);
		return -1;
	}
	err = gate_del(s, t, n, opened ? call_then : NULL, &th);
	if (own >= 0)
		close(own);
	free(t);
	return err ? -1 : 0;
}

/* The public face, for `tcpcp gate` and for tests. */
int tcpcp_any_socket(int s, int *own)
{
	*own = -1;
	if (s >= 0)
		return s;
	*own = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (*own < 0)
		*own = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (*own < 0)
		tcpcp_fail(errno, "socket: %s", strerror(errno));
	return *own;
}

TCPCP_EXPORT long tcpcp_gate_entries(int s)
{
	struct gate_meta m;
	struct tcpcp_bpf b;
	long n;
	int own, err;

	tcpcp_clear_error();
	if ((s = tcpcp_any_socket(s, &own)) < 0)
		return -1;
	err = tcpcp_bpf_open(s, TCPCP_BPF_USE, &b);
	if (own >= 0)
		close(own);
	if (err == -ENOENT) {
		tcpcp_clear_error();
		return 0;
	}
	if (err)
		return -1;
	meta_get(b.gate, b.cookie, &m);
	n = (long)m.live + (m.until > boottime_ns() ? (long)m.linger : 0);
	tcpcp_bpf_close(&b);
	return n;
}

TCPCP_EXPORT int tcpcp_gate_keep(int s, unsigned int secs)
{
	struct tcpcp_bpf b;
	int own, err;

	tcpcp_clear_error();
	if (tcpcp_need_cap(CAP_NET_ADMIN, "keep the gate") || (s = tcpcp_any_socket(s, &own)) < 0)
		return -1;
	err = tcpcp_bpf_open(s, TCPCP_BPF_CREATE, &b);
	if (!err) {
		if (secs)
			err = tcpcp_bpf_attach(&b, s, TCPCP_BPF_V4 | TCPCP_BPF_V6);
		if (!err)
			err = meta_write(b.gate, b.cookie, META_KEEP, secs ? expiry(secs) : 0);
		if (!err && !secs && tcpcp_bpf_gate_idle(b.gate, b.cookie))
			tcpcp_bpf_detach(&b);
		tcpcp_bpf_close(&b);
	}
	if (own >= 0)
		close(own);
	return err ? -1 : 0;
}

TCPCP_EXPORT int tcpcp_gate_setup(void)
{
	tcpcp_clear_error();
	return tcpcp_bpf_setup() ? -1 : 0;
}

TCPCP_EXPORT int tcpcp_gate_unload(void)
{
	tcpcp_clear_error();
	return tcpcp_bpf_unload() ? -1 : 0;
}

TCPCP_EXPORT int tcpcp_gate_flush(int s)
{
	struct tcpcp_bpf b;
	int own, err;

	tcpcp_clear_error();
	if ((s = tcpcp_any_socket(s, &own)) < 0)
		return -1;
	/* The hooks first, whatever the folder holds (a foreign object or
	 * half an attach too), then the namespace's entries if the host's
	 * map is there and is ours. */
	err = tcpcp_bpf_open(s, TCPCP_BPF_LOCK, &b);
	if (!err) {
		tcpcp_bpf_detach(&b);
		tcpcp_bpf_close(&b);
		err = tcpcp_bpf_open(s, TCPCP_BPF_USE, &b);
		if (!err) {
			clear_ns(b.gate, b.cookie);
			tcpcp_bpf_close(&b);
		}
	}
	if (own >= 0)
		close(own);
	if (err == -ENOENT) {
		tcpcp_clear_error();
		err = 0;
	}
	return err ? -1 : 0;
}
