/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Borrowing a socket from another process.  pidfd_getfd() gives us the
 * same struct socket the process holds, so isolating or releasing it here
 * acts on the process's connection; the kernel checks ptrace access.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <unistd.h>

#include "tcpcp-cli.h"

static long number(const char *s, const char *what, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < 0 || v > max)
		die_usage("%s '%s' is not a valid number", what, s);
	return v;
}

/* Give our copy the number it has in the target when that is free here,
 * so that library messages naming "fd N" name the user's N. */
static int same_number(int s, int fd)
{
	if (s == fd || fcntl(fd, F_GETFD) != -1 || errno != EBADF)
		return s;
	if (dup3(s, fd, O_CLOEXEC) != fd)
		return s;
	close(s);
	return fd;
}

int target_fd(const char *pid_s, const char *fd_s)
{
	long pid, fd;
	int pidfd, s;

	if (!pid_s || !fd_s)
		die_usage("--pid and --fd are required");
	pid = number(pid_s, "pid", INT_MAX);
	fd = number(fd_s, "fd", INT_MAX);
	pidfd = pidfd_open((pid_t)pid, 0);
	if (pidfd < 0) {
		if (errno == ESRCH)
			return -fail("no process with pid %ld", pid);
		return -fail("cannot open process %ld: %s", pid, strerror(errno));
	}
	s = pidfd_getfd(pidfd, (int)fd, 0);
	if (s < 0) {
		int err = errno;

		close(pidfd);
		if (err == EBADF)
			return -fail("process %ld has no fd %ld", pid, fd);
		if (err == EPERM)
			return -fail("not allowed to take fd %ld of process %ld (ptrace access, CAP_SYS_PTRACE)",
				     fd, pid);
		return -fail("cannot take fd %ld of process %ld: %s", fd, pid, strerror(err));
	}
	close(pidfd);
	return same_number(s, (int)fd);
}
