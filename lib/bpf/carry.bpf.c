/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Congestion carry-over: give a recreated connection, still in repair
 * mode, the congestion window and slow-start threshold its ICI recorded.
 * No socket option sets either, and BPF's socket-option knobs fall short
 * (TCP_BPF_IW sets the window only; TCP_BPF_SNDCWND_CLAMP sets ssthresh
 * but also caps the window there for good).  A congestion control's
 * init() may write both (the verifier lets tcp_congestion_ops programs
 * store to snd_cwnd and snd_ssthresh), and setting TCP_CONGESTION on an
 * established socket runs the new algorithm's init() at once.
 *
 * So this is a congestion control, "tcpcp_carry", that a socket passes
 * through for two system calls: the library puts the values in the
 * socket's storage (keyed by its fd from user space), selects
 * tcpcp_carry (init() copies them in and answers in @result), and
 * selects the socket's own algorithm again, whose init() keeps them
 * (reno has none, cubic's keeps both; bbr's resets ssthresh, which bbr
 * does not use).  Nothing walks other sockets: the cost per connection
 * is a handful of system calls, whatever the number of connections.
 *
 * Should a socket stay on it (a caller killed between the two calls),
 * it behaves as Reno, through the kernel's own functions.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "gate.h"

/* What of the kernel's structures is used, found by name through BTF. */
struct sock {
} __attribute__((preserve_access_index));

struct tcp_sock {
	__u32 snd_cwnd;
	__u32 snd_ssthresh;
} __attribute__((preserve_access_index));

struct tcp_congestion_ops {
	__u32 (*ssthresh)(struct sock *sk);
	void (*cong_avoid)(struct sock *sk, __u32 ack, __u32 acked);
	__u32 (*undo_cwnd)(struct sock *sk);
	void (*init)(struct sock *sk);
	char name[16];
} __attribute__((preserve_access_index));

extern __u32 tcp_reno_ssthresh(struct sock *sk) __ksym;
extern void tcp_reno_cong_avoid(struct sock *sk, __u32 ack, __u32 acked) __ksym;
extern __u32 tcp_reno_undo_cwnd(struct sock *sk) __ksym;

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct tcpcp_carry_val);
} tcpcp_carry SEC(".maps");

SEC("struct_ops/tcpcp_carry_init")
void BPF_PROG(tcpcp_carry_init, struct sock *sk)
{
	struct tcpcp_carry_val *v = bpf_sk_storage_get(&tcpcp_carry, sk, 0, 0);
	struct tcp_sock *tp = (struct tcp_sock *)sk;

	if (!v || v->result)
		return;
	if (!v->snd_cwnd || !v->snd_ssthresh) {
		v->result = TCPCP_CARRY_REFUSED;
		return;
	}
	tp->snd_cwnd = v->snd_cwnd;
	tp->snd_ssthresh = v->snd_ssthresh;
	v->result = TCPCP_CARRY_DONE;
}

SEC("struct_ops/tcpcp_carry_ssthresh")
__u32 BPF_PROG(tcpcp_carry_ssthresh, struct sock *sk)
{
	return tcp_reno_ssthresh(sk);
}

SEC("struct_ops/tcpcp_carry_cong_avoid")
void BPF_PROG(tcpcp_carry_cong_avoid, struct sock *sk, __u32 ack, __u32 acked)
{
	tcp_reno_cong_avoid(sk, ack, acked);
}

SEC("struct_ops/tcpcp_carry_undo_cwnd")
__u32 BPF_PROG(tcpcp_carry_undo_cwnd, struct sock *sk)
{
	return tcp_reno_undo_cwnd(sk);
}

SEC(".struct_ops")
struct tcp_congestion_ops tcpcp_carry_ops = {
	.init = (void *)tcpcp_carry_init,
	.ssthresh = (void *)tcpcp_carry_ssthresh,
	.cong_avoid = (void *)tcpcp_carry_cong_avoid,
	.undo_cwnd = (void *)tcpcp_carry_undo_cwnd,
	.name = TCPCP_CARRY_CA,
};

char LICENSE[] SEC("license") = "GPL";
