/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Dump: lock every TCP connection of the frozen tasks in one batch, capture
 * each, and at the end either let the locks linger (the tasks die) or open
 * them again (the tasks run on).
 *
 * CRIU's own lock (--network-lock nftables) costs two libnftables
 * transactions per connection, taken one by one as it dumps each socket.
 * CRIU 4.x calls CHECKPOINT_DEVICES once the whole tree is frozen and
 * before its network lock and its per-task dump (criu/cr-dump.c:
 * collect_pstree, checkpoint_devices, network_lock, dump_one_task...).
 * There the plugin finds the sockets itself (no hook ever receives an
 * inet socket: /proc/PID/fd and pidfd_getfd give the very struct socket),
 * closes the tcpcp gate for all of them in one call per network namespace,
 * puts each in repair mode and writes its ICI to tcpcp-NSPID-FD.img beside
 * CRIU's images.  With --tcp-close CRIU then leaves the sockets alone (and
 * its restore needs --tcp-close anyway: one configuration file serves both,
 * as runtimes want).  With --tcp-established and --network-lock skip it
 * locks nothing, but still repairs and dumps each socket (its own images
 * stay complete) and keeps them in repair mode while it kills the tasks.
 *
 * exit(DUMP, ret) runs while the tasks are still frozen, before CRIU kills
 * or resumes them (cr_dump_finish()).  ret is not the whole story: a failed
 * post-dump script or --leave-running resumes the tasks too; with
 * --tcp-established CRIU has then taken every socket out of repair mode
 * first (network_unlock()), with --tcp-close CRIU's final state says it
 * (flags.c).  So:
 *   ret != 0, a socket out of repair mode, or CRIU's final state alive or
 *     stopped: the tasks run on.  The gates
 *     open, each connection leaves repair mode with a window probe (the
 *     peer sees at most a retransmission).
 *   otherwise the tasks die, silently (repair mode).  The gates were
 *     closed for DUMP_LINGER_S from the start, so nothing more is done
 *     while the peer waits: its segments are dropped here, not answered
 *     with a RST, until the restored copy takes over, and then the gates
 *     go by themselves.
 * A capture that fails makes the hook fail, so the dump fails and the
 * connections go on (and tcpcp-FAILED says why).
 *
 * Fail-over (docs/failover.md): with TCPCP_CLAMP=1, a dump after which
 * the tasks run on (--leave-running) also moves each connection's
 * acknowledgment clamp up to the rcv_nxt its image holds, before it
 * leaves repair mode (whose window probe tells the peer).  From then on
 * the host acknowledges none of the peer's bytes that the latest dump
 * does not hold, so a restore of it after the primary died
 * (TCPCP_RESURRECT=1) gets them again from the peer.  A failed dump
 * leaves the clamp where the last good one put it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <criu-plugin.h>

#include <tcpcp.h>
#include <ici.pb-c.h>

#include "plugin.h"

struct conn {
	int s;			/* our duplicate of the task's socket; after the
				 * capture only the first of each netns, else -1 */
	pid_t pid, nspid;
	int fd;			/* in the task */
	ino_t ino, ns;		/* the socket, its network namespace */
	struct tcpcp_ends e;
	int reuseaddr;		/* leaving repair mode clears SO_REUSEADDR */
	bool gated, repaired;
	bool nftlocked;		/* its netns's own ruleset drops it (nftlock.c) */
	uint32_t rcv_nxt;	/* its image's, for TCPCP_CLAMP */
};

static struct {
	struct conn *c;
	size_t n, room;
	int dir;		/* CRIU's image directory */
	unsigned int failed;
	time_t locked_at;	/* CLOCK_MONOTONIC seconds */
	double write_ms;	/* of the capture: writing the image files */
	bool clamp;		/* TCPCP_CLAMP=1 */
} dump = { .dir = -1 };

static void mark_failed(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void mark_failed(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int fd;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pr_err("%s\n", msg);
	dump.failed++;
	fd = openat(dump.dir, IMG_FAILED, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd >= 0) {
		dprintf(fd, "%s\n", msg);
		close(fd);
	}
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

/* Written beside CRIU's images.  No temporary file and rename: an image
 * cut short (a crash midway) fails the restore's check of its framed
 * length, and with ten thousand of them the rename was a third of the
 * capture.  No fsync: CRIU does not sync its own images either. */
static int write_image(int dir, const char *name, const void *buf, size_t len)
{
	int fd, err;

	fd = openat(dir, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	err = write_all(fd, buf, len);
	close(fd);
	if (err)
		unlinkat(dir, name, 0);
	return err;
}

static time_t now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static int getint(int s, int level, int opt)
{
	socklen_t len = sizeof(int);
	int v = 0;

	return getsockopt(s, level, opt, &v, &len) ? -1 : v;
}

static int add_conn(const struct conn *c)
{
	if (dump.n == dump.room) {
		size_t n = dump.room ? dump.room * 2 : 64;
		struct conn *p = realloc(dump.c, n * sizeof(*p));

		if (!p)
			return -ENOMEM;
		dump.c = p;
		dump.room = n;
	}
	dump.c[dump.n++] = *c;
	return 0;
}

/* Keep @s if it is a connection the plugin carries; else close it. */
static int take_socket(struct conn *c, unsigned long ino)
{
	const char *state = "";
	char name[128];
	int err;

	switch (tcpcp_passable(c->s, &state)) {
	case 1:
		break;
	case 0:
		if (!strcmp(state, "LISTEN") || !strcmp(state, "CLOSE"))
			goto skip;	/* CRIU restores it by itself */
		sock_name(c->s, name, sizeof(name));
		pr_warn("connection %s (pid %d fd %d) is neither established nor half-closed "
			"(state %s): left to CRIU, a restore with --tcp-close closes it\n",
			name, c->pid, c->fd, state);
		goto skip;
	default:
		goto skip;	/* not TCP */
	}
	if (tcpcp_ends_of(c->s, &c->e)) {
		mark_failed("cannot read connection fd %d of task %d: %s", c->fd, c->pid,
			    tcpcp_strerror());
		close(c->s);
		return -1;
	}
	if ((err = sock_netns(c->s, &c->ns)) < 0) {
		mark_failed("cannot tell the network namespace of fd %d of task %d: %s", c->fd,
			    c->pid, strerror(-err));
		close(c->s);
		return -1;
	}
	c->ino = (ino_t)ino;
	c->reuseaddr = getint(c->s, SOL_SOCKET, SO_REUSEADDR) > 0;
	c->s = above_fd_setsize(c->s);
	if ((err = add_conn(c)) < 0) {
		close(c->s);
		return err;
	}
	return 0;
skip:
	close(c->s);
	return 0;
}

static int find_in_task(pid_t pid)
{
	struct conn c = { .pid = pid };
	char path[64], link[64];
	struct dirent *de;
	int pidfd, err = 0;
	DIR *d;

	if (proc_nspid(pid, &c.nspid) || (pidfd = pidfd_open_pid(pid)) < 0) {
		mark_failed("cannot open task %d: %s", pid, strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	if (!d) {
		mark_failed("cannot list the files of task %d: %s", pid, strerror(errno));
		close(pidfd);
		return -1;
	}
	while (!err && (de = readdir(d))) {
		unsigned long ino;
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		n = readlinkat(dirfd(d), de->d_name, link, sizeof(link) - 1);
		if (n < 0)
			continue;
		link[n] = '\0';
		if (sscanf(link, "socket:[%lu]", &ino) != 1)
			continue;
		c.fd = atoi(de->d_name);
		c.s = pidfd_take(pidfd, c.fd);
		if (c.s < 0) {
			mark_failed("cannot take fd %d of task %d: %s", c.fd, pid, strerror(-c.s));
			err = -1;
		} else {
			err = take_socket(&c, ino);
		}
	}
	closedir(d);
	close(pidfd);
	return err;
}

static int by_ns_ino(const void *a, const void *b)
{
	const struct conn *x = a, *y = b;

	if (x->ns != y->ns)
		return x->ns < y->ns ? -1 : 1;
	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

/* A socket shared by several fds or tasks is carried once. */
static void sort_and_dedup(void)
{
	size_t i, n = 0;

	qsort(dump.c, dump.n, sizeof(*dump.c), by_ns_ino);
	for (i = 0; i < dump.n; i++) {
		if (n && dump.c[n - 1].ino == dump.c[i].ino && dump.c[n - 1].ns == dump.c[i].ns)
			close(dump.c[i].s);
		else
			dump.c[n++] = dump.c[i];
	}
	dump.n = n;
}

/* The dumped tasks are the ones this process (CRIU) traces. */
static int find_conns(unsigned int *tasks)
{
	pid_t self = getpid(), tracer;
	struct dirent *de;
	int err = 0;
	DIR *d;

	d = opendir("/proc");
	if (!d) {
		mark_failed("cannot list /proc: %s", strerror(errno));
		return -1;
	}
	while (!err && (de = readdir(d))) {
		pid_t pid = atoi(de->d_name);

		if (pid <= 0 || proc_tracer(pid, &tracer) || tracer != self)
			continue;
		(*tasks)++;
		err = find_in_task(pid);
	}
	closedir(d);
	if (err == -ENOMEM)
		mark_failed("out of memory");
	if (!err)
		sort_and_dedup();
	return err ? -1 : 0;
}

/* What a gate call does for one netns: connections [i, j) share it. */
typedef int gate_fn(int s, const struct tcpcp_ends *e, size_t n, unsigned int secs);

static int for_each_netns(gate_fn *fn, unsigned int secs, bool gated, const char *what)
{
	struct tcpcp_ends *t = calloc(dump.n ? dump.n : 1, sizeof(*t));
	size_t i = 0, j, k, n;
	int err = 0;

	if (!t)
		return -ENOMEM;
	for (; i < dump.n; i = j) {
		for (j = i, n = 0; j < dump.n && dump.c[j].ns == dump.c[i].ns; j++)
			if (dump.c[j].gated == gated)
				t[n++] = dump.c[j].e;
		if (!n)
			continue;
		if (fn(dump.c[i].s, t, n, secs)) {
			pr_err("cannot %s %zu connection(s): %s\n", what, n, tcpcp_strerror());
			err = -1;
			continue;
		}
		for (k = i; k < j; k++)
			dump.c[k].gated = !gated;
	}
	free(t);
	return err;
}

static int open_gates(int s, const struct tcpcp_ends *e, size_t n, unsigned int secs)
{
	(void)secs;
	return tcpcp_gate_open_ends(s, e, n, NULL, NULL);
}

static int set_repair(int s, int mode)
{
	return setsockopt(s, IPPROTO_TCP, TCP_REPAIR, &mode, sizeof(mode));
}

static int image_rcv_nxt(const void *buf, size_t len, uint32_t *rcv_nxt)
{
	struct tcpcp_image *img = tcpcp_image_read(buf, len);
	const TcpcpIci *ici = img ? tcpcp_image_ici(img) : NULL;

	if (ici)
		*rcv_nxt = ici->rcv_nxt;
	tcpcp_image_free(img);
	return ici ? 0 : -1;
}

/* One connection: repair mode, its ICI, its image file; on failure the
 * cause in @why. */
static int capture(struct conn *c, char *why, size_t wlen)
{
	char name[64];
	size_t len;
	void *img;
	double t;
	int err;

	if (getint(c->s, IPPROTO_TCP, TCP_REPAIR) <= 0) {
		if (set_repair(c->s, TCP_REPAIR_ON)) {
			snprintf(why, wlen, "TCP_REPAIR: %s", strerror(errno));
			return -1;
		}
		c->repaired = true;
	}
	img = tcpcp_capture(c->s, &len);
	if (!img) {
		snprintf(why, wlen, "%s", tcpcp_strerror());
		return -1;
	}
	if (dump.clamp && image_rcv_nxt(img, len, &c->rcv_nxt)) {
		free(img);
		snprintf(why, wlen, "cannot read back its image");
		return -1;
	}
	snprintf(name, sizeof(name), IMG_FMT, c->nspid, c->fd);
	t = now_ms();
	err = write_image(dump.dir, name, img, len);
	dump.write_ms += now_ms() - t;
	free(img);
	if (err)
		snprintf(why, wlen, "cannot write %s: %s", name, strerror(-err));
	return err ? -1 : 0;
}

/* One after the other: threads sharing the captures out over this VM's
 * two CPUs made 10,000 of them slower (546 ms against 451-518 ms), the
 * peer's traffic and the image directory's lock being shared too.  So did
 * a thread that wrote the image files while the next connections were
 * captured (1000: 300-460 ms against 37-46 ms, the writes 300-450 ms
 * against 20 ms in line). */
static int capture_all(void)
{
	char conn[128], why[256];
	size_t i;

	for (i = 0; i < dump.n; i++) {
		struct conn *c = &dump.c[i];

		if (!capture(c, why, sizeof(why)))
			continue;
		tcpcp_ends_str(&c->e, conn, sizeof(conn));
		mark_failed("cannot capture connection %s (pid %d fd %d): %s", conn, c->pid,
			    c->fd, why);
		return -1;
	}
	return 0;
}

static void reset(void)
{
	size_t i;

	for (i = 0; i < dump.n; i++)
		if (dump.c[i].s >= 0)
			close(dump.c[i].s);
	free(dump.c);
	memset(&dump, 0, sizeof(dump));
	dump.dir = -1;
}

/* CRIU keeps a copy of each socket for the whole dump too: with ours,
 * 10,000 connections made CRIU's own dup() fail (EMFILE).  One per netns
 * stays, to name it to the gate; exit() takes the others again if the
 * tasks run on. */
static void keep_one_per_netns(void)
{
	size_t i;

	for (i = 1; i < dump.n; i++) {
		if (dump.c[i].ns == dump.c[i - 1].ns) {
			close(dump.c[i].s);
			dump.c[i].s = -1;
		}
	}
}

/* A namespace CRIU dumps with the tree and restores anew: the tasks'
 * own, neither CRIU's nor marked external (a runtime's named one). */
static bool dumped_with_tree(ino_t ns)
{
	ino_t own;

	return !sock_netns_self(&own) && ns != own && !criu_netns_external(ns);
}

/* In such namespaces the lock goes into their ruleset too, so that the
 * restored namespace comes up locked (nftlock.c). */
static void nftlock_owned_netns(void)
{
	struct tcpcp_ends *t = calloc(dump.n ? dump.n : 1, sizeof(*t));
	size_t i, j, k;
	int err;

	if (!t)
		goto out;
	for (i = 0; i < dump.n; i = j) {
		for (j = i; j < dump.n && dump.c[j].ns == dump.c[i].ns; j++)
			t[j - i] = dump.c[j].e;
		if (!dumped_with_tree(dump.c[i].ns))
			continue;
		err = nftlock_add(dump.c[i].s, t, j - i);
		if (err) {
			pr_warn("cannot lock %zu connection(s) in the ruleset of network namespace "
				"net:[%lu] (%s): a segment reaching the restored namespace before "
				"the plugin may be answered with a RST\n", j - i,
				(unsigned long)dump.c[i].ns, strerror(-err));
			continue;
		}
		for (k = i; k < j; k++)
			dump.c[k].nftlocked = true;
	}
out:
	free(t);
}

/* The tasks run on: their namespaces' rulesets as they were. */
static void nftunlock(void)
{
	size_t i;
	int err;

	for (i = 0; i < dump.n; i++) {
		if (!dump.c[i].nftlocked || (i && dump.c[i - 1].ns == dump.c[i].ns &&
					     dump.c[i - 1].nftlocked))
			continue;
		err = dump.c[i].s >= 0 ? nftlock_remove(dump.c[i].s) : -EBADF;
		if (err)
			pr_err("cannot remove table inet tcpcp-criu from network namespace "
			       "net:[%lu]: %s: remove it by hand\n", (unsigned long)dump.c[i].ns,
			       strerror(-err));
	}
}

/* CHECKPOINT_DEVICES: the tree is frozen, CRIU has touched no socket.
 * The gates close for DUMP_LINGER_S: if CRIU kills the tasks, they stay
 * closed that long without another call while the peer waits. */
int dump_lock(void)
{
	unsigned int tasks = 0;
	double t0 = now_ms(), t1, t2, t3;

	dump.dir = criu_get_image_dir();
	/* TCPCP_CLAMP: move the acknowledgment clamps at a dump the tasks
	 * survive. */
	if (env_switch("TCPCP_CLAMP", "1", "0", "clamp acknowledgments to the last dump",
		       &dump.clamp))
		return -1;
	if (find_conns(&tasks))
		return -1;
	if (!dump.n)
		return 0;
	if (flags_check(dump.n)) {
		reset();	/* nothing was touched: nothing to undo */
		return -1;
	}
	t1 = now_ms();
	if (for_each_netns(tcpcp_gate_close_ends, DUMP_LINGER_S, false, "lock"))
		return -1;
	dump.locked_at = now_s();
	t2 = now_ms();
	if (capture_all())
		return -1;
	t3 = now_ms();
	nftlock_owned_netns();
	keep_one_per_netns();
	pr_info("%zu connection(s) of %u task(s) locked and captured "
		"(found in %.1f ms, locked in %.1f ms, captured in %.1f ms of which writing "
		"the images %.1f ms, then %.1f ms)\n",
		dump.n, tasks, t1 - t0, t2 - t1, t3 - t2, dump.write_ms, now_ms() - t3);
	return 0;
}

/* Our copy of the task's socket again (keep_one_per_netns() let most go). */
static int take_again(struct conn *c)
{
	int pidfd;

	if (c->s >= 0)
		return 0;
	pidfd = pidfd_open_pid(c->pid);
	c->s = pidfd < 0 ? pidfd : pidfd_take(pidfd, c->fd);
	if (pidfd >= 0)
		close(pidfd);
	return c->s < 0 ? c->s : 0;
}

/* TCPCP_CLAMP: every connection acknowledges no further than its image
 * holds, set before any leaves repair mode. */
static void clamp_all(void)
{
	uint32_t *ack = calloc(dump.n, sizeof(*ack));
	int *s = calloc(dump.n, sizeof(*s));
	size_t i, n = 0;
	char conn[128];

	for (i = 0; ack && s && i < dump.n; i++) {
		if (take_again(&dump.c[i])) {
			tcpcp_ends_str(&dump.c[i].e, conn, sizeof(conn));
			pr_err("connection %s (pid %d fd %d): cannot take it again to clamp it\n",
			       conn, dump.c[i].pid, dump.c[i].fd);
			continue;
		}
		s[n] = dump.c[i].s;
		ack[n++] = dump.c[i].rcv_nxt;
	}
	if (!ack || !s)
		pr_err("out of memory: the acknowledgment clamps stay at the last dump\n");
	else if (n && tcpcp_clamp_fds(s, ack, n))
		pr_err("cannot move the acknowledgment clamps: %s\n", tcpcp_strerror());
	else if (n)
		pr_info("the acknowledgments of %zu connection(s) are clamped to this dump\n", n);
	free(ack);
	free(s);
}

/* Out of repair mode with a window probe once the gate is open, and
 * SO_REUSEADDR as it was (TCP_REPAIR_OFF clears it). */
static void resume_conn(struct conn *c)
{
	const char *step;
	char conn[128];
	int err;

	tcpcp_ends_str(&c->e, conn, sizeof(conn));
	if ((err = -take_again(c))) {
		step = "cannot take it again";
		goto fail;
	}
	step = "TCP_REPAIR";
	if ((getint(c->s, IPPROTO_TCP, TCP_REPAIR) <= 0 && set_repair(c->s, TCP_REPAIR_ON)) ||
	    set_repair(c->s, TCP_REPAIR_OFF)) {
		err = errno;
		goto fail;
	}
	if (c->reuseaddr &&
	    setsockopt(c->s, SOL_SOCKET, SO_REUSEADDR, &c->reuseaddr, sizeof(c->reuseaddr)))
		pr_warn("connection %s (pid %d fd %d) runs on without SO_REUSEADDR: %s\n",
			conn, c->pid, c->fd, strerror(errno));
	return;
fail:
	pr_err("connection %s (pid %d fd %d) stays in repair mode: %s: %s\n", conn, c->pid,
	       c->fd, step, strerror(err));
}

/* With --tcp-established CRIU takes every socket it repaired out of
 * repair mode before it resumes the tasks, and leaves them all in it when
 * it kills them.  With --tcp-close it never touches them: then CRIU's
 * final state says it (flags.c). */
static bool tasks_run_on(int criu_ret)
{
	int state;
	size_t i;

	if (criu_ret)
		return true;
	for (i = 0; i < dump.n; i++)
		if (dump.c[i].s >= 0 && getint(dump.c[i].s, IPPROTO_TCP, TCP_REPAIR) == 0)
			return true;
	state = criu_final_state();
	if (state < 0)
		pr_warn("cannot read what CRIU does with the tasks (its opts): assuming it "
			"kills them\n");
	return state == CRIU_TASK_ALIVE || state == CRIU_TASK_STOPPED;
}

/* The tasks die: the gates stay closed for what is left of their
 * timeout, renewed if a long dump used up half of it. */
static void let_linger(void)
{
	int left = DUMP_LINGER_S - (int)(now_s() - dump.locked_at);

	if (left < DUMP_LINGER_S / 2) {
		if (for_each_netns(tcpcp_gate_close_ends, DUMP_LINGER_S, true, "linger"))
			return;
		left = DUMP_LINGER_S;
	}
	pr_info("%zu connection(s) dumped; this host drops their segments for %d s more\n",
		dump.n, left);
}

/* The tasks die, and the namespaces dumped with them too (ownns.c): the
 * gates there go once the tasks have, not after DUMP_LINGER_S. */
static void release_own_netns(void)
{
	struct ns_group *g = calloc(dump.n, sizeof(*g));
	struct tcpcp_ends *e = calloc(dump.n, sizeof(*e));
	pid_t *pids = calloc(dump.n, sizeof(*pids));
	size_t i, j, ng = 0, np = 0;
	int err;

	if (!g || !e || !pids)
		goto out;
	for (i = 0; i < dump.n; i = j) {
		int nsfd;

		for (j = i; j < dump.n && dump.c[j].ns == dump.c[i].ns; j++) {
			e[j] = dump.c[j].e;
			pids[np++] = dump.c[j].pid;
		}
		if (dump.c[i].s < 0 || !dumped_with_tree(dump.c[i].ns))
			continue;
		nsfd = ioctl(dump.c[i].s, SIOCGSKNS);
		g[ng].s = nsfd < 0 ? -errno : netns_socket(nsfd);
		if (nsfd >= 0)
			close(nsfd);
		if (g[ng].s < 0) {
			pr_warn("cannot reach network namespace net:[%lu]: %s; its gate stays\n",
				(unsigned long)dump.c[i].ns, strerror(-g[ng].s));
			continue;
		}
		g[ng].e = &e[i];
		g[ng++].n = j - i;
	}
	if (!ng)
		goto out;
	err = release_after_tasks(pids, np, g, ng, DUMP_LINGER_S);
	if (err)
		pr_warn("cannot start the helper that removes the gate with the tasks' network "
			"namespace: %s; it stays\n", strerror(-err));
	else
		pr_info("the tasks' own network namespace goes with them: its gate is removed "
			"once they have exited\n");
out:
	for (i = 0; g && i < ng; i++)
		close(g[i].s);
	free(g);
	free(e);
	free(pids);
}

/* exit(DUMP): the tasks are still frozen; CRIU kills or resumes them next. */
void dump_finish(int criu_ret)
{
	size_t i;

	if (!dump.n)
		goto out;
	if (tasks_run_on(criu_ret)) {
		nftunlock();
		if (dump.clamp && !criu_ret)
			clamp_all();
		if (for_each_netns(open_gates, 0, true, "unlock") == 0)
			for (i = 0; i < dump.n; i++)
				resume_conn(&dump.c[i]);
		pr_info("the tasks run on (%s): %zu connection(s) unlocked\n",
			criu_ret ? "the dump failed" : "--leave-running or a post-dump script",
			dump.n);
	} else {
		let_linger();
		release_own_netns();
	}
out:
	reset();
}
