/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The gate map's key and value, shared by the BPF programs (gate.bpf.c)
 * and the library (isolate.c).  Fixed-size types only: the BPF side and
 * the C side must agree byte for byte, and the loader checks the pinned
 * map's sizes against these before trusting it.
 */
#ifndef TCPCP_BPF_GATE_H
#define TCPCP_BPF_GATE_H

#include <linux/types.h>

/* The 4-tuple as the local end sees it on the wire, in its network
 * namespace.  Keys with family 0 never match a segment: the library
 * keeps each namespace's counts there. */
struct tcpcp_gate_key {
	__u64 netns;		/* the namespace's cookie (SO_NETNS_COOKIE) */
	__u8 family;		/* AF_INET (2) or AF_INET6 (10) */
	__u8 pad[3];		/* zero */
	__be16 lport, pport;	/* network order, as in the TCP header */
	__u8 laddr[16];		/* IPv4: the first 4 bytes, the rest zero */
	__u8 paddr[16];
};

struct tcpcp_gate_val {
	/* CLOCK_BOOTTIME in ns after which the entry no longer drops (a
	 * closed origin's linger); 0: until it is removed. */
	__u64 expires;
};

/* Congestion carry-over (carry.bpf.c): the window and threshold for a
 * connection, in its socket storage; the congestion control's init()
 * answers in @result. */
struct tcpcp_carry_val {
	__u32 snd_cwnd;		/* segments */
	__u32 snd_ssthresh;	/* segments; 0x7fffffff: none (slow start) */
	__u32 result;		/* 0: not met yet; TCPCP_CARRY_* */
};
#define TCPCP_CARRY_CA		"tcpcp_carry"	/* its name in TCP_CONGESTION */
#define TCPCP_CARRY_DONE	1
#define TCPCP_CARRY_REFUSED	2	/* a zero value */

/* The acknowledgment clamp (clamp.bpf.c), in a socket's storage: its
 * ACKs go no further than max_ack; wscale is its receive window scale. */
struct tcpcp_clamp_val {
	__u32 max_ack;
	__u8 wscale;
	__u8 pad[3];
};

/* Segments tcpcp injects itself (fin.c) carry this mark and pass the
 * closed gate on input. */
#define TCPCP_GATE_INJECT_MARK	0x7c9c0001u

/* The host's gates hold at most this many 4-tuples at a time. */
#define TCPCP_GATE_MAX		(1u << 18)

/* Output skip of a connection resurrected from an older image
 * (skip.bpf.c): the application will write again @left bytes the peer
 * already has; they are dropped before they reach the send queue. */
struct tcpcp_skip_val {
	__u64 left;		/* bytes still to drop */
	__u64 dropped;		/* dropped so far */
};

#endif
