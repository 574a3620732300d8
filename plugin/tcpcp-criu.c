/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * tcpcp.so: a CRIU plugin that carries established TCP connections as
 * tcpcp ICI images, so that a process restored on another host (another
 * network namespace that now owns the service address) keeps them.
 *
 *   criu dump    ... --tcp-established -L DIR --action-script plugin/criu-action.sh
 *   criu restore ... --tcp-close       -L DIR
 *
 * Dump: with --tcp-established criu locks the network and puts every
 * connection in repair mode, then silently kills the tasks.  Our exit
 * hook runs before that, with the tasks still frozen (and ptraced by
 * criu, which is this very process), so each connection is taken with
 * pidfd_getfd() -- the same struct socket, still in repair mode -- and its
 * ICI is written to tcpcp-<pid>-<fd>.img in the image directory.  criu
 * restores pids and fd numbers as they were, which is what matches an
 * image to its socket at restore.
 *
 * The exit hook cannot fail a dump, so a failure prints one line and
 * leaves the marker file tcpcp-failed (with the cause) in the image
 * directory.  Where criu runs the plugins' exit hooks before the post-dump
 * action script, criu-action.sh fails post-dump on the marker and criu
 * rolls back (the process runs on).  criu 4.1.1 runs the script first and
 * kills the process anyway; then the restore refuses the images, naming
 * the cause, rather than restore the process without its connection.
 *
 * Restore: from the plugin's init on, every connection in the images is
 * gated (tcpcp's nftables set) in criu's network namespace, so that
 * nothing answers the peer with a RST before the socket is back.  With
 * --tcp-close criu recreates each connection as a TCP socket in CLOSE
 * state.  In RESUME_DEVICES_LATE (tasks still stopped,
 * network unlocked) each such socket with an image is turned back into
 * the live connection in place, so the fd the application holds is the
 * connection.  That hook's return value is ignored by criu, so a failure
 * kills the task: restore fails visibly instead of handing the
 * application a dead socket.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <criu-plugin.h>

#include "internal.h"

#define MARKER "tcpcp-failed"


static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_getfd_(int pidfd, int fd)
{
	return (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
}

static void img_name(char *buf, size_t len, pid_t pid, int fd)
{
	snprintf(buf, len, "tcpcp-%d-%d.img", (int)pid, fd);
}

static int getint(int s, int level, int opt)
{
	socklen_t len = sizeof(int);
	int v = -1;

	if (getsockopt(s, level, opt, &v, &len))
		return -1;
	return v;
}

static bool is_tcp(int s)
{
	int d = getint(s, SOL_SOCKET, SO_DOMAIN);

	return (d == AF_INET || d == AF_INET6) &&
	       getint(s, SOL_SOCKET, SO_PROTOCOL) == IPPROTO_TCP;
}

static int tcp_state(int s)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	return getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &len) ? -1 : ti.tcpi_state;
}

/* Calls @fn for every socket fd of @pid (a duplicate, closed afterwards).
 * Stops at the first non-zero return. */
static int for_each_socket(pid_t pid, int (*fn)(pid_t, int, int, void *), void *arg)
{
	char path[64], link[64];
	struct dirent *de;
	int pidfd, ret = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return tcpcp_fail(errno, "pid %d: %s: %s", (int)pid, path, strerror(errno));
	pidfd = pidfd_open_(pid);
	if (pidfd < 0) {
		ret = tcpcp_fail(errno, "pidfd_open(%d): %s", (int)pid, strerror(errno));
		goto out;
	}
	while (!ret && (de = readdir(d))) {
		char *end;
		long fd = strtol(de->d_name, &end, 10);
		ssize_t n;
		int s;

		if (*end || end == de->d_name)
			continue;
		n = readlinkat(dirfd(d), de->d_name, link, sizeof(link) - 1);
		if (n < 0 || (link[n] = 0, strncmp(link, "socket:[", 8)))
			continue;
		s = pidfd_getfd_(pidfd, (int)fd);
		if (s < 0) {
			ret = tcpcp_fail(errno, "pid %d fd %ld: pidfd_getfd: %s", (int)pid, fd,
					 strerror(errno));
			break;
		}
		if (is_tcp(s))
			ret = fn(pid, (int)fd, s, arg);
		close(s);
	}
	close(pidfd);
out:
	closedir(d);
	return ret;
}

/* ---- dump ---------------------------------------------------------------- */

struct dump_ctx {
	int dir;
	int count;
	ino_t *seen;		/* one image per socket, however many fds */
	size_t nseen;
};

/* One dump, several hooks: the set of sockets done is shared. */
static struct dump_ctx dumping;

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int dump_one(pid_t pid, int fd, int s, void *arg)
{
	struct dump_ctx *c = arg;
	char name[64], desc[128];
	struct tcpcp_tuple t;
	struct stat st;
	size_t len, i;
	void *img;
	int out, err = 0;

	/* criu put every connection it dumps in repair mode; anything else
	 * (a listener, a half-made socket) is criu's own business. */
	if (tcp_state(s) != TCPCP_ST_ESTABLISHED || getint(s, IPPROTO_TCP, TCP_REPAIR) != 1)
		return 0;
	if (fstat(s, &st))
		return tcpcp_fail(errno, "fstat: %s", strerror(errno));
	for (i = 0; i < c->nseen; i++)
		if (c->seen[i] == st.st_ino)
			return 0;	/* criu restores shared fds as one socket */
	ino_t *seen = realloc(c->seen, (c->nseen + 1) * sizeof(*seen));
	if (!seen)
		return tcpcp_fail(ENOMEM, "out of memory");
	c->seen = seen;
	c->seen[c->nseen++] = st.st_ino;

	if (tcpcp_tuple_from_socket(s, &t))
		return -errno;
	tcpcp_tuple_str(&t, desc, sizeof(desc));
	img = tcpcp_get_ex(s, &len);
	if (!img)
		return tcpcp_fail(errno, "connection %s (pid %d fd %d): %s", desc, (int)pid, fd,
				  tcpcp_strerror());
	/* criu's network lock keeps the connection silent from here on, as
	 * it does for its own images; our gate would outlive a rollback. */
	tcpcp_gate_open(s, &t);
	img_name(name, sizeof(name), pid, fd);
	out = openat(c->dir, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0 || write_all(out, img, len) || fsync(out))
		err = tcpcp_fail(errno, "writing %s: %s", name, strerror(errno));
	if (out >= 0 && close(out) && !err)
		err = tcpcp_fail(errno, "writing %s: %s", name, strerror(errno));
	free(img);
	if (!err)
		c->count++;
	return err;
}

static int read_status(pid_t pid, pid_t *tgid, pid_t *tracer)
{
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	*tgid = *tracer = 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "Tgid:", 5))
			*tgid = atoi(line + 5);
		else if (!strncmp(line, "TracerPid:", 10))
			*tracer = atoi(line + 10);
	}
	fclose(f);
	return 0;
}

/* The dumped tasks are the processes that criu -- this process -- holds
 * under ptrace right now. */
static int dump_all(struct dump_ctx *c)
{
	pid_t self = getpid();
	struct dirent *de;
	int ret = 0;
	DIR *d;

	d = opendir("/proc");
	if (!d)
		return tcpcp_fail(errno, "/proc: %s", strerror(errno));
	while (!ret && (de = readdir(d))) {
		pid_t pid = atoi(de->d_name), tgid, tracer;

		if (pid <= 0 || read_status(pid, &tgid, &tracer) || tgid != pid || tracer != self)
			continue;
		ret = for_each_socket(pid, dump_one, c);
	}
	closedir(d);
	return ret;
}

static void mark_failed(int dir, const char *why)
{
	int fd = openat(dir, MARKER, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd >= 0) {
		dprintf(fd, "%s\n", why);
		close(fd);
	}
}

/* ---- restore ------------------------------------------------------------- */

static int read_image(int dir, const char *name, void **buf, size_t *len)
{
	struct stat st;
	ssize_t n;
	int fd;

	fd = openat(dir, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || !(*buf = malloc((size_t)st.st_size + 1))) {
		close(fd);
		return tcpcp_fail(errno ? errno : ENOMEM, "reading %s: %s", name, strerror(errno));
	}
	n = read(fd, *buf, (size_t)st.st_size + 1);
	close(fd);
	if (n < 0) {
		free(*buf);
		return tcpcp_fail(errno, "reading %s: %s", name, strerror(errno));
	}
	*len = (size_t)n;
	return 0;
}

/* "local -> peer" from the image, for messages; "?" if it cannot tell. */
static void image_desc(const void *img, size_t len, char *buf, size_t size)
{
	struct sockaddr_storage l, p;
	struct tcpcp_tuple t;
	socklen_t sl;
	TcpcpIci *ici = tcpcp_image_decode(img, len);

	if (!ici || !ici->local || !ici->peer ||
	    tcpcp_sockaddr_from_endpoint(ici->local, &l, &sl) ||
	    tcpcp_sockaddr_from_endpoint(ici->peer, &p, &sl)) {
		snprintf(buf, size, "?");
	} else {
		tcpcp_tuple_from_sockaddrs(&l, &p, &t);
		tcpcp_tuple_str(&t, buf, size);
	}
	if (ici)
		tcpcp_ici__free_unpacked(ici, NULL);
}

struct restore_ctx {
	int dir;
	int failed;
};

/* criu's CLOSE socket carries the shutdown of --tcp-close and possibly a
 * filter; a disconnect clears the former, the latter must not eat the
 * resumed stream. */
static int reset_socket(int s)
{
	struct sockaddr sa = { .sa_family = AF_UNSPEC };
	int zero = 0;

	if (connect(s, &sa, sizeof(sa)))
		return tcpcp_fail(errno, "disconnect of criu's socket: %s", strerror(errno));
	if (setsockopt(s, SOL_SOCKET, SO_DETACH_FILTER, &zero, sizeof(zero)) && errno != ENOENT)
		return tcpcp_fail(errno, "SO_DETACH_FILTER: %s", strerror(errno));
	return 0;
}

static bool bound(int s)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(s, (struct sockaddr *)&ss, &len))
		return false;
	return ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port != 0
				       : ((struct sockaddr_in6 *)&ss)->sin6_port != 0;
}

static int restore_one(pid_t pid, int fd, int s, void *arg)
{
	struct tcpcp_create_opts o = { .port_mode = TCPCP_PORT_SAME };
	struct restore_ctx *c = arg;
	char name[64], desc[128];
	void *img = NULL;
	size_t len = 0;
	int err;

	if (tcp_state(s) != TCPCP_ST_CLOSE)
		return 0;
	img_name(name, sizeof(name), pid, fd);
	err = read_image(c->dir, name, &img, &len);
	if (err == -ENOENT)
		return 0;	/* a socket criu restored by itself */
	if (!err) {
		image_desc(img, len, desc, sizeof(desc));
		if (bound(s))
			o.port_mode = TCPCP_PORT_BOUND;
		if (!(err = reset_socket(s)) &&
		    (tcpcp_create_on(s, img, len, &o) || tcpcp_activate_ex(s, img, len)))
			err = -errno;
	} else {
		snprintf(desc, sizeof(desc), "?");
	}
	free(img);
	if (err) {
		/* One line: which connection, which process, why. */
		fprintf(stderr, "tcpcp: cannot restore connection %s (pid %d fd %d, %s): %s\n",
			desc, (int)pid, fd, name, tcpcp_strerror());
		c->failed = 1;
		return err;
	}
	return 0;
}

/* criu unlocks the network before RESUME_DEVICES_LATE, and until then
 * the connection's socket does not exist here: a retransmission from the
 * peer would meet a listener or nothing and draw a RST.  So every
 * connection in the images is gated from the start of the restore; the
 * create path takes the gate over and activation opens it. */
static struct tcpcp_tuple *gated;
static size_t ngated;

static int gate_images(int dir)
{
	struct dirent *de;
	int s, dfd, ret = 0;
	DIR *d;

	dfd = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || !(d = fdopendir(dfd))) {
		if (dfd >= 0)
			close(dfd);
		return tcpcp_fail(errno, "image directory: %s", strerror(errno));
	}
	/* Any socket of criu's netns, the one the tasks are restored into. */
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	while (!ret && s >= 0 && (de = readdir(d))) {
		struct sockaddr_storage l, p;
		struct tcpcp_tuple *t;
		TcpcpIci *ici;
		socklen_t sl;
		size_t len;
		void *img;

		if (strncmp(de->d_name, "tcpcp-", 6) || !strstr(de->d_name, ".img") ||
		    read_image(dir, de->d_name, &img, &len))
			continue;
		ici = tcpcp_image_decode(img, len);
		free(img);
		/* A bad image fails where it is matched to its socket. */
		if (!ici || tcpcp_ici_check(ici) ||
		    tcpcp_sockaddr_from_endpoint(ici->local, &l, &sl) ||
		    tcpcp_sockaddr_from_endpoint(ici->peer, &p, &sl)) {
			if (ici)
				tcpcp_ici__free_unpacked(ici, NULL);
			continue;
		}
		tcpcp_ici__free_unpacked(ici, NULL);
		t = realloc(gated, (ngated + 1) * sizeof(*t));
		if (!t) {
			ret = tcpcp_fail(ENOMEM, "out of memory");
			break;
		}
		gated = t;
		tcpcp_tuple_from_sockaddrs(&l, &p, &gated[ngated]);
		ret = tcpcp_gate_close(s, &gated[ngated]);
		if (!ret)
			ngated++;
	}
	if (s < 0)
		ret = tcpcp_fail(errno, "socket: %s", strerror(errno));
	else
		close(s);
	closedir(d);
	return ret;
}

/* Idempotent: a restored connection's gate is already open. */
static void ungate_images(void)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	size_t i;

	for (i = 0; s >= 0 && i < ngated; i++)
		tcpcp_gate_open(s, &gated[i]);
	if (s >= 0)
		close(s);
	free(gated);
	gated = NULL;
	ngated = 0;
}

/* A dump whose capture failed lacks a connection: restoring it would
 * hand the application a dead socket, so refuse, with the dump's cause. */
static int refuse_failed_dump(int dir)
{
	char why[512];
	ssize_t n;
	int fd = openat(dir, MARKER, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	n = read(fd, why, sizeof(why) - 1);
	close(fd);
	why[n > 0 ? n : 0] = 0;
	why[strcspn(why, "\n")] = 0;
	fprintf(stderr, "tcpcp: refusing to restore: the dump left %s (%s)\n", MARKER, why);
	return -1;
}

/* ---- criu entry points ----------------------------------------------------- */

static int tcpcp_criu_init(int stage)
{
	/* A marker from an earlier dump into this directory is stale. */
	if (stage == CR_PLUGIN_STAGE__DUMP)
		unlinkat(criu_get_image_dir(), MARKER, 0);
	if (stage == CR_PLUGIN_STAGE__RESTORE && refuse_failed_dump(criu_get_image_dir()))
		return -1;
	if (stage == CR_PLUGIN_STAGE__RESTORE && gate_images(criu_get_image_dir())) {
		fprintf(stderr, "tcpcp: %s\n", tcpcp_strerror());
		ungate_images();
		return -1;
	}
	return 0;
}

static void tcpcp_criu_exit(int stage, int ret)
{
	char why[512];

	if (stage == CR_PLUGIN_STAGE__RESTORE)
		ungate_images();
	if (stage == CR_PLUGIN_STAGE__DUMP && !ret) {
		dumping.dir = criu_get_image_dir();
		if (dump_all(&dumping)) {
			snprintf(why, sizeof(why), "tcpcp: dump failed: %s", tcpcp_strerror());
			fprintf(stderr, "%s\n", why);
			mark_failed(dumping.dir, why);
		}
	}
	free(dumping.seen);
	memset(&dumping, 0, sizeof(dumping));
}

static int tcpcp_criu_resume_late(int pid)
{
	struct restore_ctx c = { .dir = criu_get_image_dir() };

	if (!for_each_socket(pid, restore_one, &c))
		return 0;
	if (!c.failed)
		fprintf(stderr, "tcpcp: pid %d: %s\n", pid, tcpcp_strerror());
	{
		/* criu ignores this hook's result: a process must not run
		 * on with a connection that silently died. */
		kill(pid, SIGKILL);
		return -1;
	}
	return 0;
}

/* criu finds the plugin by this symbol; everything else stays inside. */
__attribute__((visibility("default"))) cr_plugin_desc_t CR_PLUGIN_DESC = {
	.name = "tcpcp",
	.init = tcpcp_criu_init,
	.exit = tcpcp_criu_exit,
	.version = CRIU_PLUGIN_VERSION,
	/* criu calls only the hooks it knows, so 3.17 loads this too. */
	.max_hooks = CR_PLUGIN_HOOK__MAX,
	.hooks = {
		[CR_PLUGIN_HOOK__RESUME_DEVICES_LATE] = (void *)tcpcp_criu_resume_late,
	},
};
