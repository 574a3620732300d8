/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the C benches share: a network namespace of their own for a run,
 * lo up, so that nothing one run attaches (the clamp's tc program, the
 * gate's hooks) slows the runs after it, and nothing is left behind when
 * the process that made it ends.  0, or -1 with errno and *@what saying
 * which step failed.  bench_bpf_was_empty(): whether to call
 * tcpcp_gate_unload() at the end.
 */
#ifndef TCPCP_BENCH_NETNS_H
#define TCPCP_BENCH_NETNS_H

#include <net/if.h>
#include <stdbool.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static inline int bench_fresh_netns(const char **what)
{
	struct ifreq ifr = { .ifr_name = "lo" };
	int fd, err = -1;

	*what = "unshare(CLONE_NEWNET): run as root";
	if (unshare(CLONE_NEWNET))
		return -1;
	*what = "SIOCGIFFLAGS lo";
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr))
		goto out;
	*what = "SIOCSIFFLAGS lo up";
	ifr.ifr_flags |= IFF_UP;
	if (!ioctl(fd, SIOCSIFFLAGS, &ifr))
		err = 0;
out:
	if (fd >= 0)
		close(fd);
	return err;
}

/* The host's BPF objects (gate, clamp) stay pinned between uses by
 * design; a bench that loaded them takes them away again: true if none
 * was pinned before it started. */
static inline bool bench_bpf_was_empty(void)
{
	return access("/run/tcpcp/bpf/gate", F_OK) && access("/run/tcpcp/bpf/clamp", F_OK);
}

#endif
