/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Working in a socket's network namespace.  The gate and the injected
 * FINs of half-closed connections must be where the socket is, which
 * need not be where we are: `tcpcp get --pid` takes sockets out of other
 * namespaces, and CRIU's tasks may live in another one.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

int tcpcp_netns_enter(int s, int *saved)
{
	struct stat sock_ns, own_ns;
	int ns, err = 0;

	*saved = -1;
	ns = ioctl(s, SIOCGSKNS);
	if (ns < 0)
		return tcpcp_fail(errno, "cannot find the network namespace of fd %d: %s",
				  s, strerror(errno));
	if (fstat(ns, &sock_ns) || stat("/proc/thread-self/ns/net", &own_ns)) {
		err = tcpcp_fail(errno, "cannot stat network namespaces: %s", strerror(errno));
		goto out;
	}
	if (sock_ns.st_ino == own_ns.st_ino && sock_ns.st_dev == own_ns.st_dev)
		goto out;
	*saved = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (*saved < 0 || setns(ns, CLONE_NEWNET)) {
		err = tcpcp_fail(errno, "cannot enter the network namespace of fd %d: %s",
				 s, strerror(errno));
		if (*saved >= 0)
			close(*saved);
		*saved = -1;
	}
out:
	close(ns);
	return err;
}

void tcpcp_netns_leave(int saved)
{
	if (saved < 0)
		return;
	/* Failing to return would leave this thread in a foreign netns;
	 * nothing sane can continue after that. */
	if (setns(saved, CLONE_NEWNET))
		abort();
	close(saved);
}
