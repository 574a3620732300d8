/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What /proc and pidfds tell about the tasks CRIU holds. */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <linux/sockios.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
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

struct in_netns {
	int nsfd, err;
	int (*fn)(void *arg);
	void *arg;
};

/* A thread of its own enters the netns, so CRIU's threads stay where
 * they are; what it makes there (a socket, a netlink socket) keeps that
 * netns. */
static void *run_in(void *arg)
{
	struct in_netns *r = arg;

	r->err = setns(r->nsfd, CLONE_NEWNET) ? -errno : r->fn(r->arg);
	return NULL;
}

int in_netns(int nsfd, int (*fn)(void *arg), void *arg)
{
	struct in_netns r = { .nsfd = nsfd, .fn = fn, .arg = arg };
	pthread_t t;
	int err;

	err = pthread_create(&t, NULL, run_in, &r);
	if (err)
		return -err;
	pthread_join(t, NULL);
	return r.err;
}

static int make_socket(void *arg)
{
	int *s = arg;

	*s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	return *s < 0 ? -errno : 0;
}

/* A socket in the network namespace of @nsfd: it names that netns to
 * the gate.  -errno on failure. */
int netns_socket(int nsfd)
{
	int s = -1, err = in_netns(nsfd, make_socket, &s);

	return err ? err : s;
}

/* The same for the netns of task @pid. */
int netns_socket_of(pid_t pid)
{
	char path[64];
	int fd, s;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	s = netns_socket(fd);
	close(fd);
	return s;
}

/* Network namespaces handed to CRIU as open files, other than its own:
 * a runtime passes the container's (runc and crun: --inherit-fd
 * fd[N]:extRootNetNS, the namespace at config.json's path) and the tasks
 * are restored into it.  Such an fd is on nsfs (its link names the path it
 * was opened by, /run/netns/NAME, not net:[...]) and says CLONE_NEWNET.
 * Their fds in @fds (at most @max, each netns once); the count, or -errno. */
int inherited_netns(int *fds, ino_t *inos, int max)
{
	struct statfs fs;
	struct dirent *de;
	struct stat st;
	int n = 0, i, err;
	ino_t own = 0;
	DIR *d;

	if ((err = sock_netns_self(&own)))
		return err;
	d = opendir("/proc/self/fd");
	if (!d)
		return -errno;
	while ((de = readdir(d)) && n < max) {
		int fd;

		if (de->d_name[0] == '.')
			continue;
		fd = atoi(de->d_name);
		if (fd == dirfd(d) || fstatfs(fd, &fs) || fs.f_type != NSFS_MAGIC ||
		    ioctl(fd, NS_GET_NSTYPE) != CLONE_NEWNET || fstat(fd, &st) ||
		    st.st_ino == own)
			continue;
		for (i = 0; i < n && inos[i] != st.st_ino; i++)
			;
		if (i < n)
			continue;
		fds[n] = fd;
		inos[n++] = st.st_ino;
	}
	closedir(d);
	return n;
}

/* CRIU's own network namespace. */
int sock_netns_self(ino_t *ns)
{
	struct stat st;

	if (stat("/proc/self/ns/net", &st))
		return -errno;
	*ns = st.st_ino;
	return 0;
}

double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}
