/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Output skip (paper section 6.1, "notify the application ... skip over
 * unnecessary data", for applications that cannot be told): a process
 * restored from an image older than its connection's last state writes
 * again, from the image's state on, bytes that the peer already has.  The
 * connection was rebuilt at the peer's rcv_nxt (tcpcp_resurrect()), so
 * those bytes must not reach the send queue: as sequence numbers they
 * would be new data, and the peer would take them for the bytes after
 * the ones it has.  An sk_msg program on a sockhash sees every sendmsg
 * (write, send, sendfile's splice) before TCP copies it in, and pops the
 * first @left bytes (bpf_msg_pop_data) from the messages as they come;
 * the writer's call still reports every byte written.  A message popped
 * to nothing is passed empty: TCP queues nothing and the caller is told
 * the whole length went.
 *
 * The count lives in the socket's storage (the library writes it by fd,
 * before it puts the socket in the sockhash); once it reaches zero every
 * message passes untouched.  A socket leaves the sockhash when it is
 * closed (the kernel unlinks it); the library takes it out earlier if
 * asked (tcpcp_skip_done()).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "gate.h"

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct tcpcp_skip_val);
} tcpcp_skip SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, __u64);		/* the socket's cookie */
	__type(value, __u64);
} tcpcp_skip_socks SEC(".maps");

SEC("sk_msg")
int tcpcp_skip_out(struct sk_msg_md *msg)
{
	struct tcpcp_skip_val *v;
	struct bpf_sock *sk = msg->sk;
	__u32 pop;

	if (!sk)
		return SK_PASS;
	v = bpf_sk_storage_get(&tcpcp_skip, sk, 0, 0);
	if (!v || !v->left || !msg->size)
		return SK_PASS;
	pop = v->left < msg->size ? (__u32)v->left : msg->size;
	/* Inside the message by construction; should the kernel refuse it
	 * anyway, the write fails (EACCES) rather than putting bytes the
	 * peer has at sequence numbers where it expects others. */
	if (bpf_msg_pop_data(msg, 0, pop, 0))
		return SK_DROP;
	v->left -= pop;
	v->dropped += pop;
	return SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
