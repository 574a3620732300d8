/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Congestion carry-over (paper sections 5 and 8, as host policy): a
 * recreated connection starts with the congestion window and slow-start
 * threshold its ICI recorded instead of the initial ten segments and
 * none, so that a pass on a fast path does not fall back to slow start.
 * No socket option sets them; a BPF congestion control does in its
 * init(), which runs when a socket selects it (bpf/carry.bpf.c).  Per
 * connection, while it is still in repair mode and has sent nothing: the
 * values go into the socket's storage, the socket selects tcpcp_carry,
 * and then its own algorithm again.  The congestion control is loaded
 * once for the host by the one loader (bpf.c).
 *
 * What is not carried: the RTT estimate (no knob: the first RTO stays at
 * TCP_TIMEOUT_FALLBACK until the first ACK of new data gives a sample,
 * which the ICI's timestamps make the first ACK at all) and the pacing
 * rate, which the algorithm derives from the window and the RTT.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <bpf/bpf.h>

#include "internal.h"
#include "bpf/gate.h"

/* A netfilter-style cap: no carried window above this many segments. */
#define CARRY_CWND_MAX	65535u
/* The kernel's "no threshold yet" (TCP_INFINITE_SSTHRESH). */
#define SSTHRESH_NONE	0x7fffffffu

/* @s through tcpcp_carry and back to the algorithm it had: init() of
 * the first copies @v in, init() of the second keeps it. */
static int carry_one(int map, int s, struct tcpcp_carry_val *v)
{
	char ca[TCPCP_CA_NAME_MAX];
	socklen_t len = sizeof(ca);
	int err = 0;

	if (getsockopt(s, IPPROTO_TCP, TCP_CONGESTION, ca, &len))
		return tcpcp_fail(errno, "cannot read the congestion control: %s",
				  strerror(errno));
	if (bpf_map_update_elem(map, &s, v, BPF_ANY))
		return tcpcp_fail(errno, "cannot carry the congestion state over: %s",
				  strerror(errno));
	if (setsockopt(s, IPPROTO_TCP, TCP_CONGESTION, TCPCP_CARRY_CA, strlen(TCPCP_CARRY_CA))) {
		err = tcpcp_fail(errno, "cannot select the " TCPCP_CARRY_CA
				 " congestion control: %s", strerror(errno));
		goto out;
	}
	if (bpf_map_lookup_elem(map, &s, v))
		err = tcpcp_fail(errno, "cannot read the carry-over's result: %s",
				 strerror(errno));
	else if (v->result != TCPCP_CARRY_DONE)
		err = tcpcp_fail(EINVAL, "the carry-over did not take (window %u, "
				 "threshold %u)", v->snd_cwnd, v->snd_ssthresh);
	/* Back to its own, also after a failure: a socket must not stay on
	 * tcpcp_carry behind its owner's back. */
	if (setsockopt(s, IPPROTO_TCP, TCP_CONGESTION, ca, strnlen(ca, len)) && !err)
		err = tcpcp_fail(errno, "cannot select the congestion control %.*s again: %s",
				 (int)strnlen(ca, len), ca, strerror(errno));
out:
	bpf_map_delete_elem(map, &s);
	return err;
}

/* What the ICI recorded, capped; false: no window recorded. */
static bool carried(const TcpcpIci *ici, struct tcpcp_carry_val *v)
{
	const TcpcpCongestion *c = ici->congestion;

	memset(v, 0, sizeof(*v));
	if (!c || !c->has_snd_cwnd || !c->snd_cwnd)
		return false;
	v->snd_cwnd = c->snd_cwnd < CARRY_CWND_MAX ? c->snd_cwnd : CARRY_CWND_MAX;
	v->snd_ssthresh = c->has_snd_ssthresh && c->snd_ssthresh && c->snd_ssthresh < SSTHRESH_NONE ?
			  c->snd_ssthresh : SSTHRESH_NONE;
	return true;
}

/* One connection; *@map is the carry map, opened on first use (-1
 * before) and left for the caller to close. */
static int carry_lazy(int *map, int s, const TcpcpIci *ici)
{
	struct tcpcp_carry_val v;
	int err;

	if (!carried(ici, &v))
		return 0;		/* nothing recorded: the initial window */
	if (*map < 0 && (err = tcpcp_bpf_carry_open(map)))
		return err;
	return carry_one(*map, s, &v);
}

int tcpcp_carry(int s, const TcpcpIci *ici)
{
	int map = -1, err;

	err = carry_lazy(&map, s, ici);
	if (map >= 0)
		close(map);
	return err;
}

TCPCP_EXPORT int tcpcp_carry_fds(const int *s, const void *const *ici, const size_t *len,
				 size_t n)
{
	int map = -1, err = 0;
	size_t i;

	tcpcp_clear_error();
	if (tcpcp_need_carry_policy())
		return -1;
	for (i = 0; i < n && !err; i++) {
		TcpcpIci *d = tcpcp_image_decode(ici[i], len[i]);

		if (!d)
			err = -errno;
		else {
			err = carry_lazy(&map, s[i], d);
			tcpcp_ici__free_unpacked(d, NULL);
		}
	}
	if (map >= 0)
		close(map);
	return err ? -1 : 0;
}
