/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What /proc and pidfds tell about the tasks CRIU holds. */
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "plugin.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

/* Last value of a "Key:\tv1\tv2..." line of /proc/PID/status. */
static int status_field(pid_t pid, const char *key, pid_t *val)
{
	char path[64], line[256];
	size_t klen = strlen(key);
	int err = -ENOENT;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char *p;

		if (strncmp(line, key, klen) || line[klen] != ':')
			continue;
		p = strrchr(line, '\t');
		if (p && sscanf(p, "%d", val) == 1)
			err = 0;
		break;
	}
	fclose(f);
	return err;
}

/* The pid the task has in its own pid namespace: CRIU restores that one,
 * while the host's view of it may differ. */
int proc_nspid(pid_t pid, pid_t *nspid)
{
	return status_field(pid, "NSpid", nspid);
}

int proc_tracer(pid_t pid, pid_t *tracer)
{
	return status_field(pid, "TracerPid", tracer);
}

int pidfd_open_pid(pid_t pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);

	return fd < 0 ? -errno : fd;
}

/* A duplicate of the task's fd: the very same open file, so the same
 * struct socket, with its repair mode and queues. */
int pidfd_take(int pidfd, int fd)
{
	int s = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);

	return s < 0 ? -errno : s;
}

/* A descriptor the plugin keeps while CRIU works goes to FD_SETSIZE and
 * up when RLIMIT_NOFILE allows: thousands of them below it push the
 * netlink socket of CRIU's next nftables transaction (its network lock)
 * to fd 1024 or above, where libnftables 1.0.x waits with select() and
 * glibc aborts CRIU
 * ("bit out of range 0 - FD_SETSIZE"; scripts/criu/0002-*.patch does the
 * same for CRIU's own copies). */
int above_fd_setsize(int s)
{
	int hi = fcntl(s, F_DUPFD_CLOEXEC, FD_SETSIZE);

	if (hi < 0)
		return s;
	close(s);
	return hi;
}

/* Which network namespace a socket lives in: the gate is per netns. */
int sock_netns(int s, ino_t *ns)
{
	struct stat st;
	int fd = ioctl(s, SIOCGSKNS);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st)) {
		close(fd);
		return -errno;
	}
	close(fd);
	*ns = st.st_ino;
	return 0;
}
