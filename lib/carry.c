/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Congestion carry-over (paper sections 5 and 8, as host policy): a
 * recreated connection starts with the congestion window its ICI
 * recorded instead of the initial ten segments, so that a pass on a fast
 * path does not fall back to slow start.  No socket option sets a
 * window; a BPF iterator program calls bpf_setsockopt(TCP_BPF_IW) on the
 * one socket the library names (bpf/carry.bpf.c), while it is still in
 * repair mode and has sent nothing.  The program is loaded once for the
 * host by the one loader (bpf.c) and runs only when read here.
 *
 * What is not carried: ssthresh (BPF's only knob for it clamps the
 * window there for good), the RTT estimate (no knob at all: the first
 * RTO stays at TCP_TIMEOUT_FALLBACK until the first ACK of new data
 * gives a sample) and the pacing rate, which the algorithm derives.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "internal.h"
#include "bpf/gate.h"

/* A netfilter-style cap: no carried window above this many segments. */
#define CARRY_CWND_MAX	65535u

/* The iterator walks the TCP sockets of the namespace that creates it. */
static int run_iter(void *arg)
{
	int prog = *(int *)arg, link, it, err = 0;
	char buf[256];
	ssize_t n;

	link = bpf_link_create(prog, 0, BPF_TRACE_ITER, NULL);
	if (link < 0)
		return tcpcp_fail(errno, "cannot attach the carry-over iterator (Linux 6.0+): %s",
				  strerror(errno));
	it = bpf_iter_create(link);
	if (it < 0) {
		err = tcpcp_fail(errno, "cannot start the carry-over iterator: %s", strerror(errno));
		goto out;
	}
	while ((n = read(it, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
		;
	if (n < 0)
		err = tcpcp_fail(errno, "the carry-over iterator failed: %s", strerror(errno));
	close(it);
out:
	close(link);
	return err;
}

int tcpcp_carry(int s, const TcpcpIci *ici, const struct tcpcp_tuple *t)
{
	struct tcpcp_carry_val v = { 0 };
	struct tcpcp_gate_key k;
	uint64_t cookie;
	int map, prog, err;

	if (!ici->congestion || !ici->congestion->has_snd_cwnd || !ici->congestion->snd_cwnd)
		return 0;		/* nothing recorded: the initial window */
	v.snd_cwnd = ici->congestion->snd_cwnd < CARRY_CWND_MAX ? ici->congestion->snd_cwnd :
		     CARRY_CWND_MAX;
	if ((err = tcpcp_netns_cookie(s, &cookie)) || (err = tcpcp_bpf_carry_open(&map, &prog)))
		return err;
	tcpcp_gate_key_of(t, cookie, &k);
	if (bpf_map_update_elem(map, &k, &v, BPF_ANY)) {
		err = tcpcp_fail(errno, "cannot carry the congestion window over: %s",
				 strerror(errno));
		goto out;
	}
	err = tcpcp_netns_run(s, run_iter, &prog);
	if (!err && bpf_map_lookup_elem(map, &k, &v))
		err = tcpcp_fail(errno, "cannot read the carry-over's result: %s", strerror(errno));
	else if (!err && v.result == TCPCP_CARRY_REFUSED)
		err = tcpcp_fail(EINVAL, "the kernel refused the congestion window of %u segments",
				 v.snd_cwnd);
	else if (!err && v.result != TCPCP_CARRY_DONE)
		err = tcpcp_fail(ENOENT, "the carry-over did not find the recreated connection");
	bpf_map_delete_elem(map, &k);
out:
	close(map);
	close(prog);
	return err;
}
