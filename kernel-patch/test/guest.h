/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What every in-guest test shares: PASS/FAIL lines in the form /init and
 * run.sh count ("PASS <test>.<check>: detail"), the failure count, and
 * integer TCP socket options.  Define TEST_NAME before including it.
 */
#ifndef TCPCP_GUEST_H
#define TCPCP_GUEST_H

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static int failures;

static inline void result(int ok, const char *name, const char *detail)
{
	printf("%s " TEST_NAME ".%s%s%s\n", ok ? "PASS" : "FAIL", name,
	       detail[0] ? ": " : "", detail);
	fflush(stdout);
	if (!ok)
		failures++;
}

static inline void die(const char *what)
{
	printf("FAIL " TEST_NAME ".setup: %s: %s\n", what, strerror(errno));
	exit(1);
}

static inline int get_int(int fd, int opt, uint32_t *val)
{
	socklen_t len = sizeof(*val);

	return getsockopt(fd, IPPROTO_TCP, opt, val, &len);
}

static inline int set_int(int fd, int opt, int val)
{
	return setsockopt(fd, IPPROTO_TCP, opt, &val, sizeof(val));
}

/* A private network namespace with lo up; returns a fresh TCP socket
 * in it, for the option checks that need no connection. */
/* A PASS/FAIL line: setting @opt to @val must fail with @want. */
static inline void expect_errno(int fd, int opt, int val, int want, const char *name)
{
	char d[64];
	int ok;

	errno = 0;
	ok = set_int(fd, opt, val) == -1 && errno == want;
	snprintf(d, sizeof(d), "errno %s", strerror(errno));
	result(ok, name, d);
}

static inline int private_lo(void)
{
	struct ifreq ifr = { .ifr_name = "lo" };
	int fd;

	if (unshare(CLONE_NEWNET))
		die("unshare(CLONE_NEWNET)");
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr))
		die("SIOCGIFFLAGS lo");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr))
		die("SIOCSIFFLAGS lo up");
	return fd;
}

/* A TCP listener on 127.0.0.1, an ephemeral port (in *@sa). */
static inline int loopback_listener(struct sockaddr_in *sa)
{
	socklen_t sl = sizeof(*sa);
	int one = 1, lfd;

	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lfd, (struct sockaddr *)sa, sizeof(*sa)) || listen(lfd, 1) ||
	    getsockname(lfd, (struct sockaddr *)sa, &sl))
		die("listen");
	return lfd;
}

/* Reads option @opt of @fd into @v.  A kernel without it (ENOPROTOOPT)
 * is the stock path: one line, PASS unless the patch is expected, and
 * the caller returns what this returns (0 or 1) from main(). */
static inline int stock_path(int fd, int opt, const char *optname,
			     int expect_patched, uint32_t *v)
{
	if (!get_int(fd, opt, v))
		return -1;
	if (errno != ENOPROTOOPT)
		die(optname);
	printf("%s " TEST_NAME ".stock_path: getsockopt(%d) fails with ENOPROTOOPT: kernel has no %s\n",
	       expect_patched ? "FAIL" : "PASS", opt, optname);
	return expect_patched;
}

#endif
