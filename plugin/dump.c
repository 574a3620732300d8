/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Dump: capture the ICI of every established TCP connection of the dumped
 * tasks, from the plugin's exit(DUMP) hook.
 *
 * No CRIU hook ever receives an inet socket, so the plugin finds the
 * sockets itself.  At exit(DUMP, 0) CRIU has finished writing its images
 * but still holds every task frozen under ptrace (it kills or resumes them
 * only after the hook), and with --tcp-established it has put each
 * connection into repair mode behind its network lock: the state cannot
 * move and nothing reaches the peer.  pidfd_getfd() gives us the same
 * struct socket, so reading it here is exactly reading the dumped one.
 *
 * exit() cannot fail the dump.  A capture failure is written to
 * tcpcp-FAILED in the image directory, which makes a restore with this
 * plugin refuse to start (CRIU's own tcp images stay usable).
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criu-plugin.h>

#include "internal.h"
#include "plugin.h"

#define ST_LISTEN 10	/* TCP_LISTEN of the kernel's tcp_states.h */

struct dump_ctx {
	int dir;		/* CRIU's image directory */
	ino_t *seen;		/* sockets shared by several fds: once */
	size_t nseen, aseen;
	unsigned int ok, failed;
};

static bool seen(struct dump_ctx *c, ino_t ino)
{
	size_t i;

	for (i = 0; i < c->nseen; i++)
		if (c->seen[i] == ino)
			return true;
	if (c->nseen == c->aseen) {
		size_t n = c->aseen ? c->aseen * 2 : 64;
		ino_t *p = realloc(c->seen, n * sizeof(*p));

		if (!p)
			return false;	/* at worst captured twice */
		c->seen = p;
		c->aseen = n;
	}
	c->seen[c->nseen++] = ino;
	return false;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Written beside CRIU's images, complete or not at all (rename). */
static int write_image(int dir, const char *name, const void *buf, size_t len)
{
	char tmp[128];
	int fd, err;

	snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
	fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	/* No fsync: CRIU does not sync its own images either, and a
	 * thousand syncs would add to the time the tasks stay frozen. */
	err = write_all(fd, buf, len);
	close(fd);
	if (!err && renameat(dir, tmp, dir, name))
		err = -errno;
	if (err)
		unlinkat(dir, tmp, 0);
	return err;
}

static void mark_failed(struct dump_ctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void mark_failed(struct dump_ctx *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int fd;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pr_err("%s\n", msg);
	c->failed++;
	fd = openat(c->dir, IMG_FAILED, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd >= 0) {
		dprintf(fd, "%s\n", msg);
		close(fd);
	}
}

static int tcp_state(int s, bool *repair)
{
	struct tcp_info ti;
	socklen_t len = sizeof(int);
	int v = 0;

	if (getsockopt(s, SOL_SOCKET, SO_PROTOCOL, &v, &len) || v != IPPROTO_TCP)
		return -1;
	len = sizeof(v);
	v = 0;
	getsockopt(s, IPPROTO_TCP, TCP_REPAIR, &v, &len);
	*repair = v != 0;
	len = sizeof(ti);
	if (getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &len))
		return -1;
	return ti.tcpi_state;
}

static void capture_one(struct dump_ctx *c, pid_t pid, pid_t nspid, int fd, int s)
{
	char name[64], conn[128];
	bool repair;
	void *img;
	size_t len;
	int state, err;

	state = tcp_state(s, &repair);
	if (state < 0 || state == ST_LISTEN || state == TCPCP_ST_CLOSE)
		return;		/* not TCP, or CRIU restores it by itself */
	sock_name(s, conn, sizeof(conn));
	if (!tcpcp_state_passable(state)) {
		pr_warn("connection %s (pid %d fd %d) is neither established nor half-closed (state %s): "
			"left to CRIU, a restore with --tcp-close closes it\n",
			conn, pid, fd, tcpcp_state_name(state));
		return;
	}
	if (!repair) {
		mark_failed(c, "connection %s (pid %d fd %d) is not in repair mode: dump with --tcp-established",
			    conn, pid, fd);
		return;
	}
	img = tcpcp_capture_repaired(s, &len);
	if (!img) {
		mark_failed(c, "cannot capture connection %s (pid %d fd %d): %s",
			    conn, pid, fd, tcpcp_strerror());
		return;
	}
	snprintf(name, sizeof(name), IMG_FMT, nspid, fd);
	err = write_image(c->dir, name, img, len);
	free(img);
	if (err) {
		mark_failed(c, "cannot write %s for connection %s: %s", name, conn, strerror(-err));
		return;
	}
	c->ok++;
	pr_info("captured %s (pid %d fd %d) into %s, %zu bytes\n", conn, pid, fd, name, len);
}

static void dump_task(struct dump_ctx *c, pid_t pid)
{
	char path[64], link[64];
	struct dirent *de;
	pid_t nspid;
	int pidfd;
	DIR *d;

	if (proc_nspid(pid, &nspid) || (pidfd = pidfd_open_pid(pid)) < 0) {
		mark_failed(c, "cannot open task %d: %s", pid, strerror(errno));
		return;
	}
	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	if (!d) {
		mark_failed(c, "cannot list the files of task %d: %s", pid, strerror(errno));
		close(pidfd);
		return;
	}
	while ((de = readdir(d))) {
		unsigned long ino;
		ssize_t n;
		int fd, s;

		if (de->d_name[0] == '.')
			continue;
		fd = atoi(de->d_name);
		n = readlinkat(dirfd(d), de->d_name, link, sizeof(link) - 1);
		if (n < 0)
			continue;
		link[n] = '\0';
		if (sscanf(link, "socket:[%lu]", &ino) != 1 || seen(c, (ino_t)ino))
			continue;
		s = pidfd_take(pidfd, fd);
		if (s < 0) {
			mark_failed(c, "cannot take fd %d of task %d: %s", fd, pid, strerror(-s));
			continue;
		}
		capture_one(c, pid, nspid, fd, s);
		close(s);	/* our duplicate only: the task's fd is untouched */
	}
	closedir(d);
	close(pidfd);
}

/* The dumped tasks are the ones this process (CRIU) traces. */
int dump_connections(void)
{
	struct dump_ctx c = { .dir = criu_get_image_dir() };
	pid_t self = getpid(), tracer;
	struct dirent *de;
	unsigned int tasks = 0;
	DIR *d;

	d = opendir("/proc");
	if (!d) {
		mark_failed(&c, "cannot list /proc: %s", strerror(errno));
		return -1;
	}
	while ((de = readdir(d))) {
		pid_t pid = atoi(de->d_name);

		if (pid <= 0 || proc_tracer(pid, &tracer) || tracer != self)
			continue;
		tasks++;
		dump_task(&c, pid);
	}
	closedir(d);
	free(c.seen);
	pr_info("%u connection(s) captured from %u task(s), %u failed\n", c.ok, tasks, c.failed);
	return c.failed ? -1 : 0;
}
