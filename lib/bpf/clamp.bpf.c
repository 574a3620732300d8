/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The acknowledgment clamp of fail-over (paper section 6.2, TCPR's ACK
 * hold, done on the primary itself): a connection under checkpoints
 * never acknowledges more of the peer's bytes than its last checkpoint
 * holds (consumed by the application, whose state it carries, or in its
 * receive queue).  Bytes acknowledged beyond it would be lost with the
 * primary: the peer does not send acknowledged bytes again.
 *
 * A tc egress program on the interfaces of the primary's namespace.  The
 * socket a segment leaves from is skb->sk, set for every segment TCP
 * sends, pure ACKs too; its clamp is in socket storage, which the library
 * writes by the socket's fd at each checkpoint, and which goes with the
 * socket.  A segment whose ACK lies beyond the clamp gets the clamp
 * instead, its window grown by as much, so that the right edge stays
 * where the kernel put it (and so that each such ACK is a window update
 * to the peer, not a duplicate ACK that would make it retransmit), and
 * its SACK option blanked (NOPs): the peer must not think it need not
 * send again what only this host holds.  Checksums follow.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "gate.h"

#define TCPOPT_NOP	1
#define TCPOPT_SACK	5
#define OPT_MAX		40
#define OPT_BUF		64	/* a power of two: indexes masked into it */

/* An index the verifier can see is inside the buffer: masked after a
 * barrier, so that the compiler cannot drop the mask it thinks useless. */
static __always_inline __u32 at(__u32 i)
{
	asm volatile("" : "+r"(i));
	return i & (OPT_BUF - 1);
}

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct tcpcp_clamp_val);
} tcpcp_clamp SEC(".maps");

/* Where the TCP header starts, or 0: IPv4 or IPv6 without extension
 * headers, after an Ethernet header (veth, Ethernet, and loopback, whose
 * header is zeros; a device without one is not clamped). */
static __always_inline __u32 tcp_offset(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	__u32 off = sizeof(struct ethhdr);

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + off;

		if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP ||
		    (ip->frag_off & bpf_htons(0x1fff)))
			return 0;
		return off + ip->ihl * 4;
	}
	if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + off;

		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_TCP)
			return 0;
		return off + sizeof(*ip6);
	}
	return 0;
}

/* The options (@len bytes) with the SACK option made NOPs; whether there
 * was one.  These are Linux's own segments, whose options are laid out
 * by tcp_options_write(): NOP, NOP, timestamps (12 bytes) if in use,
 * then NOP, NOP, SACK.  So the SACK option's kind is at 14 or at 2; a
 * walk over arbitrary options made the verifier give up. */
static __always_inline int blank_sack(__u8 *o, __u32 len)
{
	__u32 from, to;
	int j;

	if (len >= 16 && o[14] == TCPOPT_SACK)
		from = 14;
	else if (len >= 4 && o[2] == TCPOPT_SACK)
		from = 2;
	else
		return 0;
	to = from + o[at(from + 1)];
	if (to > len || to < from + 2)
		return 0;
	for (j = 0; j < OPT_MAX; j++)
		if ((__u32)j >= from && (__u32)j < to)
			o[j] = TCPOPT_NOP;
	return 1;
}

SEC("tc")
int tcpcp_clamp_ack(struct __sk_buff *skb)
{
	struct tcpcp_clamp_val *v;
	struct bpf_sock *sk = skb->sk;
	struct tcphdr th;
	__u8 opt[OPT_BUF], old[OPT_BUF];
	__u32 off, ack, delta, win, olen, csum_off;
	__be32 nack;
	__be16 nwin;

	if (!sk)
		return TC_ACT_OK;
	sk = bpf_sk_fullsock(sk);
	if (!sk || sk->protocol != IPPROTO_TCP)
		return TC_ACT_OK;
	v = bpf_sk_storage_get(&tcpcp_clamp, sk, 0, 0);
	if (!v)
		return TC_ACT_OK;
	off = tcp_offset(skb);
	if (!off || bpf_skb_load_bytes(skb, off, &th, sizeof(th)))
		return TC_ACT_OK;
	ack = bpf_ntohl(th.ack_seq);
	if (!th.ack || th.syn || th.rst || (__s32)(ack - v->max_ack) <= 0)
		return TC_ACT_OK;
	/* The same right edge: the window grows by what the ACK gives up. */
	delta = ack - v->max_ack;
	win = ((__u32)bpf_ntohs(th.window) << v->wscale) + delta;
	win >>= v->wscale;
	if (win > 0xffff)
		win = 0xffff;
	nack = bpf_htonl(v->max_ack);
	nwin = bpf_htons((__u16)win);
	csum_off = off + offsetof(struct tcphdr, check);
	if (bpf_l4_csum_replace(skb, csum_off, th.ack_seq, nack, sizeof(nack)) ||
	    bpf_skb_store_bytes(skb, off + offsetof(struct tcphdr, ack_seq), &nack, sizeof(nack), 0) ||
	    bpf_l4_csum_replace(skb, csum_off, th.window, nwin, sizeof(nwin)) ||
	    bpf_skb_store_bytes(skb, off + offsetof(struct tcphdr, window), &nwin, sizeof(nwin), 0))
		return TC_ACT_SHOT;	/* half rewritten: better lost than wrong */
	olen = th.doff * 4 - sizeof(th);
	if (olen > OPT_MAX || olen == 0 || olen % 4)
		return TC_ACT_OK;
	__builtin_memset(opt, 0, sizeof(opt));
	if (bpf_skb_load_bytes(skb, off + sizeof(th), opt, olen))
		return TC_ACT_OK;
	__builtin_memcpy(old, opt, OPT_BUF);
	if (blank_sack(opt, olen)) {
		__s64 d = bpf_csum_diff((__be32 *)old, olen, (__be32 *)opt, olen, 0);

		if (bpf_l4_csum_replace(skb, csum_off, 0, (__u32)d, 0) ||
		    bpf_skb_store_bytes(skb, off + sizeof(th), opt, olen, 0))
			return TC_ACT_SHOT;
	}
	return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
