/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What every in-guest test shares: PASS/FAIL lines in the form /init and
 * run.sh count ("PASS <test>.<check>: detail"), the failure count, and
 * integer TCP socket options.  Define TEST_NAME before including it.
 */
#ifndef TCPCP_GUEST_H
#define TCPCP_GUEST_H

#include <errno.h>
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

#endif
