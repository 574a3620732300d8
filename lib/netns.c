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
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

struct run {
	int ns, ret;
	int (*fn)(void *);
	void *arg;
	char msg[512];
};

/* The thread enters the namespace and never leaves it: it ends there. */
static void *runner(void *p)
{
	struct run *r = p;

	if (setns(r->ns, CLONE_NEWNET))
		r->ret = tcpcp_fail(errno, "cannot enter the network namespace: %s",
				    strerror(errno));
	else
		r->ret = r->fn(r->arg);
	if (r->ret)
		snprintf(r->msg, sizeof(r->msg), "%s", tcpcp_strerror());
	return NULL;
}

static bool is_own(int ns)
{
	struct stat theirs, own;

	return !fstat(ns, &theirs) && !stat("/proc/thread-self/ns/net", &own) &&
	       theirs.st_ino == own.st_ino && theirs.st_dev == own.st_dev;
}

/* Work in another network namespace is done by a short-lived thread
 * rather than by switching the caller's: a thread that could not switch
 * back would leave the caller (CRIU, passd, a user's server) working in a
 * foreign namespace, and the library must neither allow that nor abort.
 * A thread costs ~30 us; in our own namespace @fn runs right here. */
int tcpcp_netns_run_at(int ns, int (*fn)(void *), void *arg)
{
	struct run r = { .ns = ns, .fn = fn, .arg = arg };
	pthread_t t;
	int err;

	if (is_own(ns))
		return fn(arg);
	if ((err = pthread_create(&t, NULL, runner, &r)))
		return tcpcp_fail(err, "cannot start a thread for another network namespace: %s",
				  strerror(err));
	pthread_join(t, NULL);
	if (r.ret)
		return tcpcp_fail(-r.ret, "%s", r.msg);
	return 0;
}

int tcpcp_netns_run(int s, int (*fn)(void *), void *arg)
{
	int ns = ioctl(s, SIOCGSKNS), err;

	if (ns < 0)
		return tcpcp_fail(errno, "cannot find the network namespace of fd %d: %s",
				  s, strerror(errno));
	err = tcpcp_netns_run_at(ns, fn, arg);
	close(ns);
	return err;
}

/* The namespace's name that is never reused while the machine runs. */
int tcpcp_netns_cookie(int s, uint64_t *cookie)
{
	socklen_t len = sizeof(*cookie);

	if (getsockopt(s, SOL_SOCKET, SO_NETNS_COOKIE, cookie, &len))
		return tcpcp_fail(errno, "cannot name the network namespace of fd %d "
				  "(SO_NETNS_COOKIE, Linux 5.14): %s", s, strerror(errno));
	return 0;
}
