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
#include <stdlib.h>
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

/* The windows of @n connections of @s's namespace (their keys in @k,
 * windows in @v), in one pass of the iterator: per connection a map
 * entry, whatever the number of sockets it walks. */
static int carry_keys(int s, const struct tcpcp_gate_key *k, struct tcpcp_carry_val *v, size_t n)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_ANY);
	__u32 count = (__u32)n;
	int map, prog, err;
	size_t i;

	if ((err = tcpcp_bpf_carry_open(&map, &prog)))
		return err;
	if (bpf_map_update_batch(map, k, v, &count, &opts)) {
		err = tcpcp_fail(errno, "cannot carry the congestion window over: %s",
				 strerror(errno));
		n = count;		/* only those went in */
		goto out;
	}
	err = tcpcp_netns_run(s, run_iter, &prog);
	for (i = 0; i < n && !err; i++) {
		if (bpf_map_lookup_elem(map, &k[i], &v[i]))
			err = tcpcp_fail(errno, "cannot read the carry-over's result: %s",
					 strerror(errno));
		else if (v[i].result == TCPCP_CARRY_REFUSED)
			err = tcpcp_fail(EINVAL, "the kernel refused a congestion window of %u "
					 "segments", v[i].snd_cwnd);
		else if (v[i].result != TCPCP_CARRY_DONE)
			err = tcpcp_fail(ENOENT, "the carry-over did not find a recreated "
					 "connection");
	}
out:
	for (i = 0; i < n; i++)
		bpf_map_delete_elem(map, &k[i]);
	close(map);
	close(prog);
	return err;
}

/* The window an ICI recorded, capped; 0: none recorded. */
static uint32_t window_of(const TcpcpIci *ici)
{
	if (!ici->congestion || !ici->congestion->has_snd_cwnd)
		return 0;
	return ici->congestion->snd_cwnd < CARRY_CWND_MAX ? ici->congestion->snd_cwnd :
	       CARRY_CWND_MAX;
}

int tcpcp_carry(int s, const TcpcpIci *ici, const struct tcpcp_tuple *t)
{
	struct tcpcp_carry_val v = { window_of(ici), 0 };
	struct tcpcp_gate_key k;
	uint64_t cookie;
	int err;

	if (!v.snd_cwnd)
		return 0;		/* nothing recorded: the initial window */
	if ((err = tcpcp_netns_cookie(s, &cookie)))
		return err;
	tcpcp_gate_key_of(t, cookie, &k);
	return carry_keys(s, &k, &v, 1);
}

TCPCP_EXPORT int tcpcp_carry_fds(const int *s, const void *const *ici, const size_t *len,
				 size_t n)
{
	struct tcpcp_carry_val *v = NULL;
	struct tcpcp_gate_key *k = NULL;
	struct tcpcp_tuple *t = NULL;
	size_t i, m = 0;
	uint64_t cookie;
	int err = 0;

	tcpcp_clear_error();
	if (tcpcp_need_carry_policy())
		return -1;
	if (!n)
		return 0;
	k = calloc(n, sizeof(*k));
	v = calloc(n, sizeof(*v));
	if (!k || !v) {
		err = tcpcp_fail(ENOMEM, "out of memory for %zu connections", n);
		goto out;
	}
	if ((err = tcpcp_tuples_of_fds(s, n, &t, &cookie)))
		goto out;
	for (i = 0; i < n && !err; i++) {
		TcpcpIci *d = tcpcp_image_decode(ici[i], len[i]);

		if (!d)
			err = -errno;
		else if ((v[m].snd_cwnd = window_of(d)))
			tcpcp_gate_key_of(&t[i], cookie, &k[m++]);
		if (d)
			tcpcp_ici__free_unpacked(d, NULL);
	}
	if (!err && m)
		err = carry_keys(s[0], k, v, m);
out:
	free(t);
	free(k);
	free(v);
	return err ? -1 : 0;
}
