/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Congestion carry-over: give a recreated connection, still in repair
 * mode, the congestion window its ICI recorded.  No system call sets a
 * socket's cwnd; bpf_setsockopt(TCP_BPF_IW) does, on a connection that
 * has sent no data yet (a repaired one has not: its queue went back
 * without a transmission).  A BPF_TRACE_ITER program over the TCP
 * sockets of the namespace that runs it can call it (Linux 6.0), needs
 * no cgroup and no hook on anybody's path, and runs only when the
 * library reads the iterator: once per create, or per batch.
 *
 * The library puts the 4-tuple (the gate's key layout) and the window in
 * tcpcp_carry, reads the iterator, and finds in the entry what the
 * kernel said.  ssthresh is left to the algorithm: BPF's only way to set
 * it (TCP_BPF_SNDCWND_CLAMP) also caps the window there for good.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "gate.h"

#define AF_INET		2
#define AF_INET6	10
#define SOL_TCP		6
#define TCP_BPF_IW	1001

/* The kernel's in6_addr is a union inside; read whole, as bytes. */
struct in6 {
	__u8 b[16];
};

struct net {
	__u64 net_cookie;
} __attribute__((preserve_access_index));

struct sock_common {
	__be32 skc_daddr, skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	struct {
		struct net *net;
	} skc_net;
	struct in6 skc_v6_daddr, skc_v6_rcv_saddr;
} __attribute__((preserve_access_index));

struct bpf_iter_meta;
struct bpf_iter__tcp {
	struct bpf_iter_meta *meta;
	struct sock_common *sk_common;
	__u32 uid;
} __attribute__((preserve_access_index));

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TCPCP_GATE_MAX);
	__type(key, struct tcpcp_gate_key);
	__type(value, struct tcpcp_carry_val);
} tcpcp_carry SEC(".maps");

static __always_inline int v4mapped(const __u8 *a)
{
	return !(a[0] | a[1] | a[2] | a[3] | a[4] | a[5] | a[6] | a[7] | a[8] | a[9]) &&
	       a[10] == 0xff && a[11] == 0xff;
}

SEC("iter/tcp")
int tcpcp_carry_cwnd(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct tcpcp_gate_key k = {};
	struct tcpcp_carry_val *v;
	struct in6 d6;
	int cwnd;

	if (!skc)
		return 0;
	k.netns = BPF_CORE_READ(skc, skc_net.net, net_cookie);
	k.lport = bpf_htons(skc->skc_num);
	k.pport = skc->skc_dport;
	d6 = skc->skc_v6_daddr;
	/* The library keys an IPv4-mapped connection as the IPv4 one it
	 * is on the wire (lib/tuple.c); skc_daddr holds it there too. */
	if (skc->skc_family == AF_INET || (skc->skc_family == AF_INET6 && v4mapped(d6.b))) {
		__be32 l = skc->skc_rcv_saddr, p = skc->skc_daddr;

		k.family = AF_INET;
		__builtin_memcpy(k.laddr, &l, 4);
		__builtin_memcpy(k.paddr, &p, 4);
	} else if (skc->skc_family == AF_INET6) {
		struct in6 l6 = skc->skc_v6_rcv_saddr;

		k.family = AF_INET6;
		__builtin_memcpy(k.laddr, l6.b, 16);
		__builtin_memcpy(k.paddr, d6.b, 16);
	} else {
		return 0;
	}
	v = bpf_map_lookup_elem(&tcpcp_carry, &k);
	if (!v || v->result)
		return 0;
	cwnd = (int)v->snd_cwnd;
	v->result = bpf_setsockopt(skc, SOL_TCP, TCP_BPF_IW, &cwnd, sizeof(cwnd)) ?
		    TCPCP_CARRY_REFUSED : TCPCP_CARRY_DONE;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
