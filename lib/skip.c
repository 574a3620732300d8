/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Output skip: a program restored from an image older than its
 * connection (a speculative CRIU dump, then fail-over) writes again,
 * from the image's state on, bytes the peer already has.  Its rebuilt
 * connection starts at the peer's rcv_nxt (tcpcp_resurrect()), so those
 * bytes must vanish before TCP queues them: tcpcp_skip_output() puts the
 * socket in the output skip's sockhash with a count in its storage, and
 * the sk_msg program (bpf/skip.bpf.c) pops that many bytes off the front
 * of the writes that follow.  Per connection: two map updates.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "internal.h"

TCPCP_EXPORT int tcpcp_skip_output(int s, uint64_t n)
{
	struct tcpcp_skip_val v = { .left = n };
	uint64_t cookie, fd = (uint64_t)s;
	socklen_t len = sizeof(cookie);
	int map = -1, socks = -1, err;

	tcpcp_clear_error();
	if (!n)
		return 0;
	if (s < 0 || getsockopt(s, SOL_SOCKET, SO_COOKIE, &cookie, &len))
		return tcpcp_fail(s < 0 ? EBADF : errno, "tcpcp_skip_output: fd %d: %s", s,
				  strerror(s < 0 ? EBADF : errno)), -1;
	if ((err = tcpcp_bpf_skip_open(&map, &socks)))
		return -1;
	/* The count first: the program passes a socket it finds none for. */
	if (bpf_map_update_elem(map, &s, &v, BPF_ANY))
		err = tcpcp_fail(errno, "cannot set the output skip of fd %d: %s", s,
				 strerror(errno));
	else if (bpf_map_update_elem(socks, &cookie, &fd, BPF_ANY))
		err = tcpcp_fail(errno, "cannot put fd %d in the output skip's sockhash (an "
				 "established TCP socket, no TLS): %s", s, strerror(errno));
	if (err)
		bpf_map_delete_elem(map, &s);
	close(map);
	close(socks);
	return err ? -1 : 0;
}

TCPCP_EXPORT int64_t tcpcp_skip_left(int s)
{
	struct tcpcp_skip_val v;
	int64_t left;
	int map = -1;

	tcpcp_clear_error();
	if (tcpcp_bpf_skip_open(&map, NULL))
		return -1;
	left = bpf_map_lookup_elem(map, &s, &v) ? (errno == ENOENT ? 0 : -1) : (int64_t)v.left;
	if (left < 0)
		tcpcp_fail(errno, "cannot read the output skip of fd %d: %s", s, strerror(errno));
	close(map);
	return left;
}
