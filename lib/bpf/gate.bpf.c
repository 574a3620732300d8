/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The gate: drop every segment of a listed 4-tuple, in and out, in one
 * network namespace.  Four BPF_PROG_TYPE_NETFILTER programs (Linux 6.4+)
 * on the IPv4 and IPv6 LOCAL_IN and LOCAL_OUT hooks, at the priority the
 * nftables gate had (-300, before conntrack), look the segment's 4-tuple
 * and network namespace up in one hash map.  Same semantics as the nftables table it replaces:
 * before TCP sees a segment and before one leaves (a drop on LOCAL_OUT
 * fails the transmission with EPERM, so TCP keeps the data as not sent),
 * loopback included, for sockets that exist or no longer do.  What
 * changes is the cost of an update: one bpf() system call for a batch of
 * 4-tuples instead of a libnftables transaction.
 *
 * GPL: the programs use bpf_probe_read_kernel(), a GPL-only helper.
 * No vmlinux.h: the two sk_buff fields read are declared here and
 * relocated by libbpf against the running kernel's BTF (CO-RE).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "gate.h"

#define NF_DROP		0
#define NF_ACCEPT	1
#define AF_INET		2
#define AF_INET6	10
#define IPPROTO_TCP	6

struct sk_buff {
	unsigned char *head;
	__u16 network_header;
	__u32 mark;
} __attribute__((preserve_access_index));

struct net {
	__u64 net_cookie;	/* what SO_NETNS_COOKIE returns */
} __attribute__((preserve_access_index));

struct nf_hook_state {
	struct net *net;
} __attribute__((preserve_access_index));

/* include/linux/filter.h's context of netfilter programs. */
struct bpf_nf_ctx {
	const struct nf_hook_state *state;
	struct sk_buff *skb;
};

/* All namespaces' gates in one map, the namespace's cookie in the key:
 * the programs are loaded once for the host (loading costs 20 ms, of BTF
 * parsing and verification) and attached to a namespace in microseconds
 * (bpf.c). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TCPCP_GATE_MAX);
	__type(key, struct tcpcp_gate_key);
	__type(value, struct tcpcp_gate_val);
} tcpcp_gate SEC(".maps");

struct ip4 {
	__u8 vihl, tos;
	__be16 len, id, frag;
	__u8 ttl, proto;
	__u16 csum;
	__u8 saddr[4], daddr[4];
};

struct ip6 {
	__be32 vtcfl;
	__be16 plen;
	__u8 nexthdr, hop;
	__u8 saddr[16], daddr[16];
};

static __always_inline int verdict(struct bpf_nf_ctx *ctx, struct tcpcp_gate_key *k)
{
	struct tcpcp_gate_val *v;

	k->netns = BPF_CORE_READ(ctx->state, net, net_cookie);
	v = bpf_map_lookup_elem(&tcpcp_gate, k);
	if (!v)
		return NF_ACCEPT;
	/* A lingering entry that has run out lets everything through; only
	 * user space removes entries, so that its count stays exact. */
	if (v->expires && bpf_ktime_get_boot_ns() > v->expires)
		return NF_ACCEPT;
	return NF_DROP;
}

static __always_inline int gate(struct bpf_nf_ctx *ctx, int v6, int in)
{
	struct sk_buff *skb = ctx->skb;
	unsigned char *nh = BPF_CORE_READ(skb, head) + BPF_CORE_READ(skb, network_header);
	struct tcpcp_gate_key k = {};
	unsigned char *th;
	__be16 ports[2];

	/* Our own segments (segment.c): a replayed FIN coming in, a probe
	 * going out. */
	if (BPF_CORE_READ(skb, mark) == TCPCP_GATE_INJECT_MARK)
		return NF_ACCEPT;
	if (!v6) {
		struct ip4 ip;

		if (bpf_probe_read_kernel(&ip, sizeof(ip), nh))
			return NF_ACCEPT;
		/* LOCAL_IN sees reassembled datagrams; a later fragment
		 * on LOCAL_OUT has no ports to match. */
		if (ip.proto != IPPROTO_TCP || (ip.frag & bpf_htons(0x1fff)))
			return NF_ACCEPT;
		th = nh + (ip.vihl & 0xf) * 4;
		k.family = AF_INET;
		__builtin_memcpy(k.laddr, in ? ip.daddr : ip.saddr, 4);
		__builtin_memcpy(k.paddr, in ? ip.saddr : ip.daddr, 4);
	} else {
		struct ip6 ip;

		/* TCP right after the fixed header: Linux puts no extension
		 * header on its own TCP segments. */
		if (bpf_probe_read_kernel(&ip, sizeof(ip), nh) || ip.nexthdr != IPPROTO_TCP)
			return NF_ACCEPT;
		th = nh + sizeof(ip);
		k.family = AF_INET6;
		__builtin_memcpy(k.laddr, in ? ip.daddr : ip.saddr, 16);
		__builtin_memcpy(k.paddr, in ? ip.saddr : ip.daddr, 16);
	}
	if (bpf_probe_read_kernel(ports, sizeof(ports), th))
		return NF_ACCEPT;
	k.lport = in ? ports[1] : ports[0];
	k.pport = in ? ports[0] : ports[1];
	return verdict(ctx, &k);
}

SEC("netfilter") int tcpcp_in4(struct bpf_nf_ctx *c) { return gate(c, 0, 1); }
SEC("netfilter") int tcpcp_out4(struct bpf_nf_ctx *c) { return gate(c, 0, 0); }
SEC("netfilter") int tcpcp_in6(struct bpf_nf_ctx *c) { return gate(c, 1, 1); }
SEC("netfilter") int tcpcp_out6(struct bpf_nf_ctx *c) { return gate(c, 1, 0); }

char LICENSE[] SEC("license") = "GPL";
