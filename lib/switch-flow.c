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
 * Cost.  Each pass adds one element: through libnftables that was a
 * text parse and a cache refresh, six requests and eleven replies, 117 us
 * here; through libnftnl it is one prebuilt batch and its ACK on a
 * netlink socket kept open from the first run on.  A netlink socket stays
 * in the namespace it was opened in, so later runs need not enter the
 * gateway's namespace at all (switch.c), which saves the thread that
 * entering costs.  bench/switch_cost.sh: 270 us a switch before, 25 us
 * now.  The table is built the same way, once: libnftables waits for
 * netlink with select(), and glibc aborts a process whose fds go past
 * 1024 (FD_SETSIZE) there, which a dispatcher with many clients reaches.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "switch.h"

#define STEER_LOCK "/run/lock/tcpcp-steer.lock"
#define STEER_TABLE "tcpcp-steer"

/* nftables' datatypes (its datatype.h), as `nft list` shows the maps:
 * a concatenation's type is its members' types, 6 bits each. */
#define TYPE_IPADDR		7
#define TYPE_IP6ADDR		8
#define TYPE_INET_SERVICE	13
#define TYPE_MARK		19
#define CONCAT(a, b, c, d)	((((((a) << 6) | (b)) << 6 | (c)) << 6) | (d))

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

/* Send a batch built in @buf and read the kernel's answers: one ACK for
 * each of its @n messages, numbered from @first; -errno of the first
 * refusal.  The kernel runs a batch inside sendto(), so the answers are
 * there when it returns (SO_RCVTIMEO bounds the wait all the same). */
static int talk(struct tcpcp_switch *sw, struct mnl_nlmsg_batch *b, uint32_t first, unsigned n)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	ssize_t got;

	if (mnl_socket_sendto(sw->nl, mnl_nlmsg_batch_head(b), mnl_nlmsg_batch_size(b)) < 0)
		return -errno;
	while (n) {
		struct nlmsghdr *h;
		int len;

		got = mnl_socket_recvfrom(sw->nl, buf, sizeof(buf));
		if (got < 0)
			return -errno;
		for (h = (struct nlmsghdr *)buf, len = (int)got; mnl_nlmsg_ok(h, len);
		     h = mnl_nlmsg_next(h, &len)) {
			const struct nlmsgerr *e = mnl_nlmsg_get_payload(h);

			if (h->nlmsg_type != NLMSG_ERROR || h->nlmsg_seq < first)
				continue;
			if (e->error)
				return e->error;
			if (n)
				n--;
		}
	}
	return 0;
}

/* A batch: begin, the messages @fill adds, end. */
static int batch_run(struct tcpcp_switch *sw, unsigned (*fill)(struct mnl_nlmsg_batch *b,
							       uint32_t *seq, const void *arg),
		     const void *arg)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct mnl_nlmsg_batch *b = mnl_nlmsg_batch_start(buf, sizeof(buf));
	uint32_t first;
	unsigned n;
	int err;

	if (!b)
		return -ENOMEM;
	nftnl_batch_begin(mnl_nlmsg_batch_current(b), sw->nl_seq++);
	mnl_nlmsg_batch_next(b);
	first = sw->nl_seq;
	n = fill(b, &sw->nl_seq, arg);
	nftnl_batch_end(mnl_nlmsg_batch_current(b), sw->nl_seq++);
	mnl_nlmsg_batch_next(b);
	err = n ? talk(sw, b, first, n) : -ENOMEM;
	mnl_nlmsg_batch_stop(b);
	return err;
}

struct element {
	int type;		/* NFT_MSG_NEWSETELEM or _DELSETELEM */
	uint32_t mark;
	const struct tcpcp_tuple *t;
};

static unsigned fill_element(struct mnl_nlmsg_batch *b, uint32_t *seq, const void *arg)
{
	const struct element *el = arg;
	struct nftnl_set *set = nftnl_set_alloc();
	struct nftnl_set_elem *e = nftnl_set_elem_alloc();
	struct nlmsghdr *nlh;
	uint8_t key[40];

	if (!set || !e) {
		nftnl_set_free(set);
		nftnl_set_elem_free(e);
		return 0;
	}
	nftnl_set_set_str(set, NFTNL_SET_TABLE, STEER_TABLE);
	nftnl_set_set_str(set, NFTNL_SET_NAME, el->t->family == AF_INET ? "v4" : "v6");
	nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, key, (uint32_t)key_of(el->t, key));
	if (el->type == NFT_MSG_NEWSETELEM)	/* the mark: host order */
		nftnl_set_elem_set(e, NFTNL_SET_ELEM_DATA, &el->mark, sizeof(el->mark));
	nftnl_set_elem_add(set, e);
	nlh = nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(b), (uint16_t)el->type, NFPROTO_INET,
				    (el->type == NFT_MSG_NEWSETELEM ? NLM_F_CREATE : 0) | NLM_F_ACK,
				    (*seq)++);
	nftnl_set_elems_nlmsg_build_payload(nlh, set);
	mnl_nlmsg_batch_next(b);
	nftnl_set_free(set);
	return 1;
}

/* One element added (with the switch's mark) or deleted; -errno. */
static int element_tx(struct tcpcp_switch *sw, int type, const struct tcpcp_tuple *t)
{
	struct element el = { type, sw->mark, t };

	return batch_run(sw, fill_element, &el);
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

/* The steering table, as nft would build it from
 *   table inet tcpcp-steer {
 *     map v4 { type ipv4_addr . inet_service . ipv4_addr . inet_service : mark; }
 *     map v6 { type ipv6_addr . inet_service . ipv6_addr . inet_service : mark; }
 *     chain pre { type filter hook prerouting priority mangle; policy accept;
 *       meta mark set ip saddr . tcp sport . ip daddr . tcp dport map @v4
 *       meta mark set ip6 saddr . tcp sport . ip6 daddr . tcp dport map @v6 } }
 * (the peer's segments: saddr = peer, daddr = local, ipX), expression by
 * expression as `nft --debug=netlink` shows them. */
/* The rule's next expression, or NULL when out of memory: every builder
 * then says false and the batch is not sent. */
static struct nftnl_expr *expr(struct nftnl_rule *r, const char *name)
{
	struct nftnl_expr *e = nftnl_expr_alloc(name);

	if (e)
		nftnl_rule_add_expr(r, e);
	return e;
}

static bool add_meta_load(struct nftnl_rule *r, uint32_t key, uint32_t dreg)
{
	struct nftnl_expr *e = expr(r, "meta");

	if (!e)
		return false;
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, dreg);
	return true;
}

static bool add_cmp_eq(struct nftnl_rule *r, uint32_t sreg, uint8_t value)
{
	struct nftnl_expr *e = expr(r, "cmp");

	if (!e)
		return false;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, sreg);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
	nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, &value, 1);
	return true;
}

static bool add_payload(struct nftnl_rule *r, uint32_t base, uint32_t off, uint32_t len,
			uint32_t dreg)
{
	struct nftnl_expr *e = expr(r, "payload");

	if (!e)
		return false;
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, dreg);
	return true;
}

static bool add_lookup(struct nftnl_rule *r, const char *map, uint32_t set_id)
{
	struct nftnl_expr *e = expr(r, "lookup");

	if (!e)
		return false;
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG32_00);
	nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, map);
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, set_id);
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, NFT_REG32_00);
	return true;
}

static bool add_mark_set(struct nftnl_rule *r)
{
	struct nftnl_expr *e = expr(r, "meta");

	if (!e)
		return false;
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, NFT_META_MARK);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_SREG, NFT_REG32_00);
	return true;
}

struct family {
	uint8_t nfproto;
	const char *map;
	uint32_t set_id, alen, saddr, daddr, key_type;
};

static const struct family families[] = {
	{ NFPROTO_IPV4, "v4", 1, 4, 12, 16,
	  CONCAT(TYPE_IPADDR, TYPE_INET_SERVICE, TYPE_IPADDR, TYPE_INET_SERVICE) },
	{ NFPROTO_IPV6, "v6", 2, 16, 8, 24,
	  CONCAT(TYPE_IP6ADDR, TYPE_INET_SERVICE, TYPE_IP6ADDR, TYPE_INET_SERVICE) },
};

/* What nft (1.0.6) stores in such a map's user data, for `nft list` to
 * print its elements: the key's byte order 0 (a concatenation, each
 * member its own), the data's 1 (host order: a mark), and its own
 * records 3 and 6.  The kernel does not read it. */
static const uint8_t map_udata[] = {
	0x00, 0x04, 0x00, 0x00, 0x00, 0x00,  0x01, 0x04, 0x01, 0x00, 0x00, 0x00,
	0x03, 0x08, 0x00, 0x04, 0x0d, 0x00, 0x00, 0x00, 0x01, 0x00,
	0x06, 0x04, 0x00, 0x00, 0x00, 0x00,
};

static bool add_map(struct mnl_nlmsg_batch *b, uint32_t *seq, const struct family *f)
{
	struct nftnl_set *s = nftnl_set_alloc();
	struct nlmsghdr *nlh;

	if (!s)
		return false;
	nftnl_set_set_str(s, NFTNL_SET_TABLE, STEER_TABLE);
	nftnl_set_set_str(s, NFTNL_SET_NAME, f->map);
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	nftnl_set_set_u32(s, NFTNL_SET_ID, f->set_id);
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_MAP);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, f->key_type);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, 2 * f->alen + 8);
	nftnl_set_set_u32(s, NFTNL_SET_DATA_TYPE, TYPE_MARK);
	nftnl_set_set_u32(s, NFTNL_SET_DATA_LEN, 4);
	nftnl_set_set_data(s, NFTNL_SET_USERDATA, map_udata, sizeof(map_udata));
	nlh = nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(b), NFT_MSG_NEWSET, NFPROTO_INET,
				    NLM_F_CREATE | NLM_F_ACK, (*seq)++);
	nftnl_set_nlmsg_build_payload(nlh, s);
	mnl_nlmsg_batch_next(b);
	nftnl_set_free(s);
	return true;
}

/* The concatenation peer addr . peer port . local addr . local port, in
 * 32-bit registers from NFT_REG32_00 on, looked up in the family's map;
 * the mark found is the packet's. */
static bool add_rule(struct mnl_nlmsg_batch *b, uint32_t *seq, const struct family *f)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	uint32_t a = NFT_REG32_00, p = a + f->alen / 4, d = p + 1, q = d + f->alen / 4;
	struct nlmsghdr *nlh;
	bool ok;

	if (!r)
		return false;
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, STEER_TABLE);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, "pre");
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	ok = add_meta_load(r, NFT_META_NFPROTO, NFT_REG32_00) &&
	     add_cmp_eq(r, NFT_REG32_00, f->nfproto) &&
	     add_meta_load(r, NFT_META_L4PROTO, NFT_REG32_00) &&
	     add_cmp_eq(r, NFT_REG32_00, IPPROTO_TCP) &&
	     add_payload(r, NFT_PAYLOAD_NETWORK_HEADER, f->saddr, f->alen, a) &&
	     add_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 2, p) &&
	     add_payload(r, NFT_PAYLOAD_NETWORK_HEADER, f->daddr, f->alen, d) &&
	     add_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, q) &&
	     add_lookup(r, f->map, f->set_id) && add_mark_set(r);
	if (ok) {
		nlh = nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(b), NFT_MSG_NEWRULE,
					    NFPROTO_INET,
					    NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK, (*seq)++);
		nftnl_rule_nlmsg_build_payload(nlh, r);
		mnl_nlmsg_batch_next(b);
	}
	nftnl_rule_free(r);
	return ok;
}

static unsigned fill_table(struct mnl_nlmsg_batch *b, uint32_t *seq, const void *arg)
{
	struct nftnl_table *t = nftnl_table_alloc();
	struct nftnl_chain *c = nftnl_chain_alloc();
	struct nlmsghdr *nlh;
	bool ok = true;
	size_t i;

	(void)arg;
	if (!t || !c) {
		nftnl_table_free(t);
		nftnl_chain_free(c);
		return 0;
	}
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, STEER_TABLE);
	nlh = nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(b), NFT_MSG_NEWTABLE, NFPROTO_INET,
				    NLM_F_CREATE | NLM_F_ACK, (*seq)++);
	nftnl_table_nlmsg_build_payload(nlh, t);
	mnl_nlmsg_batch_next(b);
	for (i = 0; ok && i < 2; i++)
		ok = add_map(b, seq, &families[i]);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, STEER_TABLE);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, "pre");
	nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "filter");
	nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, NF_INET_PRE_ROUTING);
	nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, -150);		/* mangle */
	nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	nlh = nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(b), NFT_MSG_NEWCHAIN, NFPROTO_INET,
				    NLM_F_CREATE | NLM_F_ACK, (*seq)++);
	nftnl_chain_nlmsg_build_payload(nlh, c);
	mnl_nlmsg_batch_next(b);
	for (i = 0; ok && i < 2; i++)
		ok = add_rule(b, seq, &families[i]);
	nftnl_table_free(t);
	nftnl_chain_free(c);
	return ok ? 6 : 0;	/* table, two maps, chain, two rules */
}

/* Whether the table exists: one GETTABLE.  0 no, 1 yes, or -errno. */
static int table_exists(struct tcpcp_switch *sw)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nftnl_table *t = nftnl_table_alloc();
	struct nlmsghdr *nlh;
	uint32_t seq = sw->nl_seq++;
	ssize_t n;
	int err;

	if (!t)
		return -ENOMEM;
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, STEER_TABLE);
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETTABLE, NFPROTO_INET, NLM_F_ACK, seq);
	nftnl_table_nlmsg_build_payload(nlh, t);
	nftnl_table_free(t);
	if (mnl_socket_sendto(sw->nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	do {
		n = mnl_socket_recvfrom(sw->nl, buf, sizeof(buf));
		err = n < 0 ? -1 : mnl_cb_run(buf, (size_t)n, seq, mnl_socket_get_portid(sw->nl),
					      NULL, NULL);
	} while (err > 0);
	if (err < 0)
		return errno == ENOENT ? 0 : -errno;
	return 1;
}

/* The netlink socket every element goes through, and the table, created
 * by the first pass through this gateway (the lock keeps concurrent first
 * passes from both creating it).  Runs in the gateway's namespace. */
static int open_gateway(struct tcpcp_switch *sw)
{
	struct timeval tv = { .tv_sec = 2 };
	int lock = -1, err = 0;

	sw->nl = mnl_socket_open(NETLINK_NETFILTER);
	if (!sw->nl || mnl_socket_bind(sw->nl, 0, MNL_SOCKET_AUTOPID) ||
	    setsockopt(mnl_socket_get_fd(sw->nl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv))) {
		err = tcpcp_fail(errno, "switch flow: netlink socket: %s", strerror(errno));
		goto out;
	}
	sw->nl_seq = (uint32_t)time(NULL);
	lock = open(STEER_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock < 0 || flock(lock, LOCK_EX)) {
		err = tcpcp_fail(errno, "cannot lock %s: %s", STEER_LOCK, strerror(errno));
		goto out;
	}
	err = table_exists(sw);
	if (!err)
		err = batch_run(sw, fill_table, NULL);
	if (err < 0)
		err = tcpcp_fail(-err, "switch flow: cannot create the steering table: %s",
				 strerror(-err));
	else
		err = 0;
out:
	if (lock >= 0)
		close(lock);
	if (err)
		tcpcp_switch_flow_free(sw);
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
