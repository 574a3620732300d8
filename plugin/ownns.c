/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A dumped tree's own network namespace, when CRIU kills the tree.
 *
 * CRIU dumps the namespace itself (its devices, addresses, routes) when
 * the tree owns it, and restores a new one; the old one should die with
 * the tasks, and its veth with it (a restore on the same host creates the
 * same veth again: "File exists" while the old one lives).  But the gate's
 * BPF links are pinned, and a netfilter link holds its namespace: left to
 * linger, the gate would keep the dead tree's namespace for good, since no
 * later call ever reaches a namespace without a task or a name.
 *
 * The gate cannot simply open at exit(DUMP): the tasks are still alive,
 * their sockets in repair mode, and a segment let in would be acknowledged
 * without being in the image.  So a helper process outlives CRIU: it waits
 * (pidfds) until every task of those namespaces has exited, their sockets
 * closed silently in repair mode; takes the namespace's interfaces down,
 * since the namespace dies some time after its last reference goes and
 * would answer the peer with a RST meanwhile (seen: 65 ms after the
 * kill); then opens the gates, whose last entries take the links with
 * them, and closes its own socket there, the last reference: the
 * namespace goes.  It holds nothing of CRIU's (stdio on /dev/null, every
 * other fd closed) and gives up after a bound.
 */
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <tcpcp.h>

#include "plugin.h"

static int by_fd(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* Everything but @keep (sorted here) closed; stdio on /dev/null. */
static void only_these(int *keep, size_t n)
{
	unsigned int from = 0;
	size_t i;
	int null;

	qsort(keep, n, sizeof(*keep), by_fd);
	for (i = 0; i < n; i++) {
		if ((unsigned int)keep[i] > from)
			close_range(from, (unsigned int)keep[i] - 1, 0);
		from = (unsigned int)keep[i] + 1;
	}
	close_range(from, ~0U, 0);
	null = open("/dev/null", O_RDWR);	/* the lowest free fd: 0 */
	if (null == 0) {
		dup2(0, 1);
		dup2(0, 2);
	}
}

/* Until every pidfd says its task has exited, or @secs. */
static void wait_all(const int *pidfd, size_t n, unsigned int secs)
{
	struct pollfd *p = calloc(n ? n : 1, sizeof(*p));
	time_t end = time(NULL) + secs;
	size_t i, left = n;

	if (!p)
		return;
	for (i = 0; i < n; i++)
		p[i] = (struct pollfd){ .fd = pidfd[i], .events = POLLIN };
	while (left && time(NULL) < end) {
		if (poll(p, n, 1000) < 0 && errno != EINTR)
			break;
		for (i = 0; i < n; i++) {
			if (p[i].fd >= 0 && (p[i].revents & (POLLIN | POLLHUP))) {
				p[i].fd = -1;
				left--;
			}
		}
	}
	free(p);
}

static int collect_up(const struct nlmsghdr *h, void *arg)
{
	const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(h);
	int *idx = arg, i;

	if (h->nlmsg_type != RTM_NEWLINK || (ifi->ifi_flags & IFF_LOOPBACK) ||
	    !(ifi->ifi_flags & IFF_UP))
		return MNL_CB_OK;
	for (i = 0; i < 63 && idx[i]; i++)
		;
	if (i < 63)
		idx[i] = ifi->ifi_index;
	return MNL_CB_OK;
}

/* Every interface but lo down, in the namespace this process is in: no
 * segment gets in (or a RST out) while the namespace waits to go. */
static void links_down(void)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct mnl_socket *nl = mnl_socket_open(NETLINK_ROUTE);
	struct nlmsghdr *h;
	struct ifinfomsg *ifi;
	int idx[64] = { 0 }, i, n;

	if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID))
		goto out;
	h = mnl_nlmsg_put_header(buf);
	h->nlmsg_type = RTM_GETLINK;
	h->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	h->nlmsg_seq = 1;
	ifi = mnl_nlmsg_put_extra_header(h, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	if (mnl_socket_sendto(nl, h, h->nlmsg_len) < 0)
		goto out;
	while ((n = (int)mnl_socket_recvfrom(nl, buf, sizeof(buf))) > 0)
		if (mnl_cb_run(buf, (size_t)n, 1, 0, collect_up, idx) <= MNL_CB_STOP)
			break;
	for (i = 0; i < 64 && idx[i]; i++) {
		h = mnl_nlmsg_put_header(buf);
		h->nlmsg_type = RTM_NEWLINK;
		h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
		h->nlmsg_seq = (unsigned int)i + 2;
		ifi = mnl_nlmsg_put_extra_header(h, sizeof(*ifi));
		ifi->ifi_family = AF_UNSPEC;
		ifi->ifi_index = idx[i];
		ifi->ifi_change = IFF_UP;
		ifi->ifi_flags = 0;
		if (mnl_socket_sendto(nl, h, h->nlmsg_len) < 0)
			break;
		n = (int)mnl_socket_recvfrom(nl, buf, sizeof(buf));
	}
out:
	if (nl)
		mnl_socket_close(nl);
}

/* Into the namespace of socket @s, and everything of its but lo down. */
static void quiesce(int s)
{
	int ns = ioctl(s, SIOCGSKNS);

	if (ns < 0)
		return;
	if (!setns(ns, CLONE_NEWNET))
		links_down();
	close(ns);
}

static void helper(const int *pidfd, size_t npid, const struct ns_group *g, size_t ng,
		   unsigned int secs)
{
	int *keep = calloc(npid + ng + 1, sizeof(*keep));
	size_t i, n = 0;

	if (!keep)
		_exit(1);
	for (i = 0; i < npid; i++)
		keep[n++] = pidfd[i];
	for (i = 0; i < ng; i++)
		keep[n++] = g[i].s;
	only_these(keep, n);
	wait_all(pidfd, npid, secs);
	for (i = 0; i < ng; i++)
		quiesce(g[i].s);
	for (i = 0; i < ng; i++) {
		tcpcp_gate_open_ends(g[i].s, g[i].e, g[i].n, NULL, NULL);
		close(g[i].s);
	}
	_exit(0);
}

int release_after_tasks(const pid_t *pids, size_t npid, const struct ns_group *g, size_t ng,
			unsigned int secs)
{
	int *pidfd = calloc(npid ? npid : 1, sizeof(*pidfd));
	size_t i, n = 0;
	int err = 0, st;
	pid_t child;

	if (!pidfd)
		return -ENOMEM;
	for (i = 0; i < npid; i++) {
		int fd = pidfd_open_pid(pids[i]);

		if (fd >= 0)
			pidfd[n++] = fd;	/* gone already: nothing to wait for */
	}
	child = fork();
	if (child == 0) {
		/* A session of its own, reparented at once: CRIU (or runc)
		 * waits for nothing of ours. */
		setsid();
		if (fork() == 0)
			helper(pidfd, n, g, ng, secs);
		_exit(0);
	}
	if (child < 0)
		err = -errno;
	else if (waitpid(child, &st, 0) < 0)
		err = -errno;
	for (i = 0; i < n; i++)
		close(pidfd[i]);
	free(pidfd);
	return err;
}
