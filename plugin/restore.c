/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Restore: turn CRIU's placeholders back into the live connections.
 *
 * With --tcp-close CRIU restores every established connection as a TCP
 * socket in CLOSE state at the same fd: unbound, shut down both ways, with
 * SO_MARK and any socket filter put back.  RESUME_DEVICES_LATE(pid) runs
 * for each restored task while CRIU still holds it stopped under ptrace
 * and after CRIU has unlocked the network; there the plugin takes each
 * placeholder with pidfd_getfd() and repairs that very socket into the
 * connection of its tcpcp image, so the task finds its connection on the
 * fd it had.  CRIU ignores the hook's return value: on failure the plugin
 * kills the task itself, after naming the connection and the cause.
 * Images are only read, so a failed restore can be tried again.
 *
 * CRIU unlocks the network before that hook, and with --tcp-close it never
 * locked these connections: a segment from the peer arriving in between
 * would meet no socket and draw a RST.  So init(RESTORE) closes the tcpcp
 * gate for every connection in the images first, in the namespace the
 * tasks go into: one a runtime hands CRIU as an open file (a container's),
 * else CRIU's own.  A namespace CRIU makes for the tree does not exist
 * yet then; it comes up with the dump's lock in its own ruleset
 * (nftlock.c), which the gate replaces in RESUME_DEVICES_LATE.  Per task, all its
 * connections are rebuilt (behind that gate, in repair mode), then their gates
 * open in one batch (one bpf() call) and each leaves repair mode: one
 * nftables transaction per connection each way, as it first was, made a
 * thousand connections take seconds.  A connection that could not be rebuilt keeps its gate closed
 * for LINGER_S seconds, long enough to try the restore again.
 *
 * Congestion carry-over: with TCPCP_CONGESTION=carry in CRIU's environment
 * (and "congestion-carry yes" in the host's tcpcp.conf, checked in init),
 * the rebuilt connections of a task get their images' windows and
 * thresholds before their gates open.  Failing that, those not carried yet
 * start fresh, with a warning: a slower start is no reason to lose the task.
 *
 * Fail-over (TCPCP_RESURRECT=1): the images come from a speculative dump
 * (--leave-running) of tasks that went on and then died, so each peer may
 * have more of our bytes than the image sent, and more of its own sent.
 * After gating, init() asks every peer where it stands (tcpcp_probe(), all
 * at once) and brings each image up to it (tcpcp_resurrect()): the rebuilt
 * connection starts at the peer's rcv_nxt.  The restored task writes again,
 * from the image's state on, the bytes the peer has past the image's
 * write_seq (the skip): once the connection is live they are dropped on
 * their way in (tcpcp_skip_output()), so the task needs no change.  A
 * connection whose peer does not answer, or that cannot be resurrected
 * (too old, too far, half-closed), is given up with one line and its peer
 * reset: the task finds CRIU's closed placeholder on that fd.
 * The service address must reach this host only once its connections are
 * gated here, or the peer's first segment draws a RST: TCPCP_TAKEOVER, a
 * shell command run right after the gating and before the probe, moves
 * it (a route, an address, a VRRP script: the user's, as for `tcpcp
 * standby --takeover`).
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criu-plugin.h>

#include <tcpcp.h>
#include <ici.pb-c.h>

#include "plugin.h"

#define LINGER_S 60
/* Gated from init() until the rebuilt connection opens: that long at most,
 * so that a CRIU that dies midway leaves nothing behind. */
#define GATE_S DUMP_LINGER_S

struct conn {
	pid_t nspid;
	int fd;
	bool done;		/* live again */
	bool gated;
	struct tcpcp_ends e;
	void *img;		/* the image, read once in init() */
	size_t len;
	int s;			/* rebuilt, awaiting activation; else -1 */
	bool reuseaddr;		/* SO_REUSEADDR to put back after repair */
	ino_t ns;		/* the netns it was restored in */
	uint64_t skip;		/* TCPCP_RESURRECT: bytes the peer has past the image */
};

static struct conn *conns;
static size_t nconns;
/* The network namespaces init() gated in (MAX_NS at most). */
#define MAX_NS 8
static struct {
	int s;			/* a socket in it */
	ino_t ino;
} gate_ns[MAX_NS];
static int nns;
static bool carry;		/* TCPCP_CONGESTION=carry */
static bool resurrect;		/* TCPCP_RESURRECT=1 */
/* How long the peers have to answer the probe (tcpcp probe's default). */
#define PROBE_TIMEOUT_MS 3000
static bool dumped_netns;	/* CRIU dumped a namespace (netdev-ID.img) */

static int read_image(int dir, const char *name, void **buf, size_t *len)
{
	struct stat st;
	size_t got = 0;
	int fd, err = 0;

	*buf = NULL;
	fd = openat(dir, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || st.st_size <= 0 || st.st_size > (off_t)IMG_MAX) {
		err = -EBADMSG;
		goto out;
	}
	*buf = malloc((size_t)st.st_size);
	if (!*buf) {
		err = -ENOMEM;
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, (char *)*buf + got, (size_t)st.st_size - got);

		if (n <= 0) {
			err = n ? -errno : -EBADMSG;
			goto out;
		}
		got += (size_t)n;
	}
	*len = got;
out:
	close(fd);
	if (err) {
		free(*buf);
		*buf = NULL;
	}
	return err;
}

static int read_failed_marker(int dir)
{
	char msg[1024];
	ssize_t n;
	int fd;

	fd = openat(dir, IMG_FAILED, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, msg, sizeof(msg) - 1);
	close(fd);
	msg[n > 0 ? n : 0] = '\0';
	msg[strcspn(msg, "\n")] = '\0';
	pr_err("the dump in this directory did not capture every connection (%s); "
	       "restore it without --lib (criu --tcp-established), or dump again\n", msg);
	return -1;
}

/* Where init() gates: the network namespaces CRIU was handed (a
 * container's, by its runtime), else CRIU's own, where a plain `criu
 * restore` puts the tasks.  A socket in each names it to the gate. */
static int gate_namespaces(void)
{
	int fds[MAX_NS], n, i, s;
	ino_t inos[MAX_NS];

	n = inherited_netns(fds, inos, MAX_NS);
	if (n < 0)
		pr_warn("cannot list CRIU's open files: %s\n", strerror(-n));
	if (n <= 0) {
		s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (s < 0 || sock_netns(s, &inos[0])) {
			pr_err("cannot open a socket: %s\n", strerror(errno));
			if (s >= 0)
				close(s);
			return -1;
		}
		gate_ns[nns].s = s;
		gate_ns[nns++].ino = inos[0];
		return 0;
	}
	for (i = 0; i < n; i++) {
		s = netns_socket(fds[i]);
		if (s < 0) {
			pr_err("cannot enter network namespace net:[%lu] (fd %d): %s\n",
			       (unsigned long)inos[i], fds[i], strerror(-s));
			return -1;
		}
		gate_ns[nns].s = s;
		gate_ns[nns++].ino = inos[i];
		pr_info("the tasks go into network namespace net:[%lu] (fd %d): gated there\n",
			(unsigned long)inos[i], fds[i]);
	}
	return 0;
}

static int read_ends(int dir, struct conn *c)
{
	char name[64];
	size_t len = 0;
	void *img;
	int err;

	snprintf(name, sizeof(name), IMG_FMT, c->nspid, c->fd);
	err = read_image(dir, name, &img, &len);
	if (!err && image_ends(img, len, &c->e))
		err = -EBADMSG;
	if (err) {
		free(img);
	} else {
		c->img = img;
		c->len = len;
	}
	if (err)
		pr_err("image %s is unusable: %s (dump again, or restore without --lib)\n",
		       name, err == -EBADMSG ? tcpcp_strerror() : strerror(-err));
	return err;
}

/* One batch for all: CRIU has not started the tasks yet. */
static int gate_all(int dir)
{
	struct tcpcp_ends *t;
	int ns, err = 0;
	size_t i;

	if (!nconns)
		return 0;		/* not a word, not a socket */
	t = calloc(nconns, sizeof(*t));
	if (!t)
		return -1;
	for (i = 0; i < nconns && !err; i++)
		if (!(err = read_ends(dir, &conns[i])))
			t[i] = conns[i].e;
	if (!err)
		err = gate_namespaces();
	for (ns = 0; ns < nns && !err; ns++) {
		err = tcpcp_gate_close_ends(gate_ns[ns].s, t, nconns, GATE_S);
		if (err)
			pr_err("cannot gate the connections to restore: %s\n", tcpcp_strerror());
	}
	for (i = 0; i < nconns; i++)
		conns[i].gated = !err;
	free(t);
	return err;
}

/* TCPCP_CONGESTION: fresh (the default) or carry, which the host's
 * policy must allow: refused here, before anything is touched. */
static int congestion_mode(void)
{
	if (env_switch("TCPCP_CONGESTION", "carry", "fresh",
		       "the images' congestion windows", &carry))
		return -1;
	if (carry && tcpcp_carry_fds(NULL, NULL, NULL, 0)) {
		pr_err("TCPCP_CONGESTION=carry: %s\n", tcpcp_strerror());
		return -1;
	}
	return 0;
}

/* The rebuilt connections of a task get their images' windows. */
static void carry_over(pid_t nspid)
{
	const void **img = calloc(nconns ? nconns : 1, sizeof(*img));
	size_t *len = calloc(nconns ? nconns : 1, sizeof(*len));
	int *fd = calloc(nconns ? nconns : 1, sizeof(*fd));
	size_t i, n = 0;

	for (i = 0; img && len && fd && i < nconns; i++) {
		if (conns[i].nspid != nspid || conns[i].s < 0)
			continue;
		fd[n] = conns[i].s;
		img[n] = conns[i].img;
		len[n++] = conns[i].len;
	}
	if (!img || !len || !fd)
		pr_warn("task %d: out of memory: its connections start with a fresh congestion "
			"state\n", nspid);
	else if (n && tcpcp_carry_fds(fd, img, len, n))
		pr_warn("task %d: %s: its connections not carried yet start with a fresh "
			"congestion state\n", nspid, tcpcp_strerror());
	else if (n)
		pr_info("task %d: the congestion windows of %zu connection(s) carried over\n",
			nspid, n);
	free(img);
	free(len);
	free(fd);
}

/* A connection that cannot come back: CRIU's closed placeholder stays on
 * its fd, and its peer, if it answered, gets the one reset it accepts. */
static void give_up(struct conn *c, const struct tcpcp_peer_view *v, const char *why)
{
	char conn[128];
	bool reset;

	tcpcp_ends_str(&c->e, conn, sizeof(conn));
	reset = v->answered && !tcpcp_reset_peer(gate_ns[0].s, c->img, c->len, v);
	pr_err("connection %s (image " IMG_FMT "): %s: given up%s\n", conn, c->nspid, c->fd,
	       why, reset ? ", its peer reset" : "");
	c->done = true;
}

/* Every image brought up to where its peer stands, all probed at once. */
static int resurrect_all(void)
{
	struct tcpcp_peer_view *v = calloc(nconns, sizeof(*v));
	const void **imgs = calloc(nconns, sizeof(*imgs));
	size_t *lens = calloc(nconns, sizeof(*lens));
	size_t i, up = 0, skipping = 0;
	double t0 = now_ms();
	int answered = -1;

	if (!v || !imgs || !lens) {
		pr_err("out of memory\n");
		goto out;
	}
	for (i = 0; i < nconns; i++) {
		imgs[i] = conns[i].img;
		lens[i] = conns[i].len;
	}
	answered = tcpcp_probe(gate_ns[0].s, imgs, lens, nconns, v, PROBE_TIMEOUT_MS);
	if (answered < 0) {
		pr_err("cannot ask the peers of %zu connection(s) where they stand: %s\n", nconns,
		       tcpcp_strerror());
		goto out;
	}
	for (i = 0; i < nconns; i++) {
		struct conn *c = &conns[i];
		char why[300];
		int64_t skip;
		size_t len;
		void *img;

		if (!v[i].answered) {
			snprintf(why, sizeof(why), "its peer did not answer in %d ms",
				 PROBE_TIMEOUT_MS);
			give_up(c, &v[i], why);
			continue;
		}
		img = tcpcp_resurrect(c->img, c->len, &v[i], &skip, &len);
		if (img && skip < 0) {	/* a full capture covers what the peer lacks */
			free(img);
			img = NULL;
			snprintf(why, sizeof(why), "the image lacks %lld byte(s) the peer wants",
				 (long long)-skip);
		} else if (!img) {
			snprintf(why, sizeof(why), "%s", tcpcp_strerror());
		}
		if (!img) {
			give_up(c, &v[i], why);
			continue;
		}
		free(c->img);
		c->img = img;
		c->len = len;
		c->skip = (uint64_t)skip;
		up++;
		skipping += skip > 0;
	}
	pr_info("resurrection: %zu of %zu connection(s) brought up to their peers in %.1f ms "
		"(%zu of them skip output the peer has)\n", up, nconns, now_ms() - t0, skipping);
out:
	free(v);
	free(imgs);
	free(lens);
	return answered < 0 ? -1 : 0;
}

/* TCPCP_TAKEOVER: the service address moves here, once gated.  CRIU has
 * no SIGCHLD handler yet in init(RESTORE), so a child of ours is ours. */
static int takeover(void)
{
	const char *cmd = getenv("TCPCP_TAKEOVER");
	double t0 = now_ms();
	int status;
	pid_t pid;

	if (!cmd || !*cmd)
		return 0;
	pid = fork();
	if (pid < 0) {
		pr_err("TCPCP_TAKEOVER: cannot fork: %s\n", strerror(errno));
		return -1;
	}
	if (!pid) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			pr_err("TCPCP_TAKEOVER: %s\n", strerror(errno));
			return -1;
		}
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		pr_err("TCPCP_TAKEOVER (%s) failed (%s %d): the connections stay gated here\n",
		       cmd, WIFEXITED(status) ? "exit" : "signal",
		       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		return -1;
	}
	pr_info("TCPCP_TAKEOVER done in %.1f ms\n", now_ms() - t0);
	return 0;
}

/* Which connections the images hold: gate them, report any left behind. */
int restore_init(void)
{
	int dir = criu_get_image_dir(), dfd, err;
	double t0 = now_ms();
	size_t room = 0;
	struct dirent *de;
	DIR *d;

	dumped_netns = false;
	if (read_failed_marker(dir) || congestion_mode() ||
	    env_switch("TCPCP_RESURRECT", "1", "0", "restore after a fail-over", &resurrect))
		return -1;
	dfd = dup(dir);
	d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		pr_err("cannot list the image directory: %s\n", strerror(errno));
		if (dfd >= 0)
			close(dfd);
		return -1;
	}
	while ((de = readdir(d))) {
		struct conn c = { .s = -1 };
		struct conn *p;
		char tail;

		if (!strncmp(de->d_name, "netdev-", 7))
			dumped_netns = true;
		if (sscanf(de->d_name, "tcpcp-%d-%d.im%c", &c.nspid, &c.fd, &tail) != 3 ||
		    strcmp(strrchr(de->d_name, '.'), ".img"))
			continue;
		if (nconns == room) {
			room = room ? room * 2 : 64;
			p = realloc(conns, room * sizeof(*p));
			if (!p) {
				closedir(d);
				return -1;
			}
			conns = p;
		}
		conns[nconns++] = c;
	}
	closedir(d);
	err = gate_all(dir);
	if (!err && nconns)
		err = takeover();
	if (!err && nconns && resurrect)
		err = resurrect_all();
	/* Installed in CRIU's plugin directory it runs at every restore:
	 * without images of ours, not a word. */
	if (!err && nconns)
		pr_info("%zu connection image(s) to restore, read and locked in %.1f ms\n",
			nconns, now_ms() - t0);
	return err;
}

static int setint(int s, int level, int opt, int val)
{
	return setsockopt(s, level, opt, &val, sizeof(val)) ? -errno : 0;
}

/* Undo what CRIU did to its placeholder that would get in the way: the
 * shutdown flags (a disconnect clears them), the socket filter and the
 * mark (the image has its own, restored once the connection is gated).
 * On failure, what failed in @why, one line. */
static int clear_placeholder(int s, char *why, size_t len)
{
	struct sockaddr sa = { .sa_family = AF_UNSPEC };
	const char *state = "";
	int zero = 0;

	/* Anything but CRIU's placeholder must stay untouched: a disconnect
	 * would reset a live connection. */
	if (tcpcp_passable(s, &state) || strcmp(state, "CLOSE"))
		snprintf(why, len, "not CRIU's placeholder (%s)", *state ? state : "not TCP");
	else if (connect(s, &sa, sizeof(sa)))
		snprintf(why, len, "cannot reset CRIU's placeholder: %s", strerror(errno));
	else if (setsockopt(s, SOL_SOCKET, SO_DETACH_FILTER, &zero, sizeof(zero)) &&
		 errno != ENOENT)
		snprintf(why, len, "SO_DETACH_FILTER: %s", strerror(errno));
	else if (setint(s, SOL_SOCKET, SO_MARK, 0))
		snprintf(why, len, "clearing SO_MARK: %s", strerror(errno));
	else
		return 0;
	return -1;
}

static bool image_reuseaddr(const void *buf, size_t len)
{
	struct tcpcp_image *img = tcpcp_image_read(buf, len);
	const TcpcpIci *ici = img ? tcpcp_image_ici(img) : NULL;
	bool v = ici && ici->sockopts && ici->sockopts->has_reuseaddr && ici->sockopts->reuseaddr;

	tcpcp_image_free(img);
	return v;
}

/* Rebuild on the placeholder; it stays gated and in repair mode. */
static int rebuild_conn(int pidfd, struct conn *c)
{
	struct tcpcp_create_opts o = { .size = sizeof(o), .port_mode = TCPCP_PORT_SAME };
	char name[64], conn[128] = "", why[256] = "";
	int s, err = 0;

	snprintf(name, sizeof(name), IMG_FMT, c->nspid, c->fd);
	tcpcp_ends_str(&c->e, conn, sizeof(conn));
	s = pidfd_take(pidfd, c->fd);
	if (s < 0) {
		pr_err("connection %s (%s): task %d has no fd %d: %s\n",
		       conn, name, c->nspid, c->fd, strerror(-s));
		return s;
	}
	/* It stays open here until its gate opens: thousands of them. */
	s = above_fd_setsize(s);
	if (tcpcp_passable(s, NULL) == 1) {
		/* Restored without --tcp-close: CRIU rebuilt it from its own
		 * images, at the origin's addresses.  It is live; leave it be. */
		pr_warn("connection %s (task %d fd %d) was restored by CRIU itself, not from %s "
			"(restore with --tcp-close to use the tcpcp images)\n",
			conn, c->nspid, c->fd, name);
		c->done = true;
		close(s);
	} else if (clear_placeholder(s, why, sizeof(why)) ||
		   tcpcp_create_gated(s, c->img, c->len, &o)) {
		err = errno ? -errno : -EINVAL;
		if (!*why)
			snprintf(why, sizeof(why), "%s", tcpcp_strerror());
		pr_err("cannot restore connection %s (%s, task %d fd %d): %s\n",
		       conn, name, c->nspid, c->fd, why);
		close(s);
	} else {
		c->s = s;
		c->reuseaddr = image_reuseaddr(c->img, c->len);
	}
	return err;
}

/* Let it run: out of repair mode (a window probe), SO_REUSEADDR back. */
static int start_conn(struct conn *c)
{
	char conn[128];
	int one = 1;

	tcpcp_ends_str(&c->e, conn, sizeof(conn));
	if (tcpcp_activate_ungated(c->s, NULL, 0)) {
		pr_err("cannot start restored connection %s (task %d fd %d): %s\n",
		       conn, c->nspid, c->fd, tcpcp_strerror());
		return -1;
	}
	if (c->reuseaddr && setsockopt(c->s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one))) {
		pr_err("cannot start restored connection %s (task %d fd %d): SO_REUSEADDR: %s\n",
		       conn, c->nspid, c->fd, strerror(errno));
		return -1;
	}
	c->done = true;
	pr_debug("restored %s on task %d fd %d\n", conn, c->nspid, c->fd);
	return 0;
}

struct starting {
	size_t started, failed;
	double at;		/* when the gate was open */
};

/* Called as soon as the gate is open: each rebuilt one leaves repair mode. */
static void start_all(void *arg)
{
	struct starting *st = arg;
	size_t i;

	st->at = now_ms();
	for (i = 0; i < nconns; i++) {
		if (conns[i].s < 0)
			continue;
		if (start_conn(&conns[i]))
			st->failed++;
		else
			st->started++;
		if (conns[i].done && conns[i].skip)
			continue;	/* skip_all(), once the gate's lock is let go */
		close(conns[i].s);
		conns[i].s = -1;
	}
}

/* TCPCP_RESURRECT: what the task writes again that the peer has goes
 * nowhere.  Before the task runs: it is still stopped. */
static int skip_all(pid_t nspid)
{
	char conn[128];
	int err = 0;
	size_t i;

	for (i = 0; i < nconns; i++) {
		struct conn *c = &conns[i];

		if (c->nspid != nspid || !c->done || !c->skip || c->s < 0)
			continue;
		tcpcp_ends_str(&c->e, conn, sizeof(conn));
		if (tcpcp_skip_output(c->s, c->skip)) {
			pr_err("restored connection %s (task %d fd %d): %s\n", conn, c->nspid,
			       c->fd, tcpcp_strerror());
			err = -1;
		} else {
			pr_info("connection %s (task %d fd %d): the first %llu byte(s) the task "
				"writes are dropped: its peer has them\n", conn, c->nspid, c->fd,
				(unsigned long long)c->skip);
		}
		close(c->s);
		c->s = -1;
	}
	return err;
}

static bool gated_in(ino_t ino)
{
	int g;

	for (g = 0; g < nns; g++)
		if (gate_ns[g].ino == ino)
			return true;
	return false;
}

/* A namespace CRIU made for the tree came up with the dump's lock in its
 * ruleset (nftlock.c): the gate takes over before the table goes, since a
 * segment reaching a connection in repair mode would be acknowledged. */
static int unlock_made_netns(int ns, const struct tcpcp_ends *t, size_t n)
{
	int err;

	if (!dumped_netns)
		return 0;
	if (tcpcp_gate_close_ends(ns, t, n, GATE_S)) {
		pr_err("cannot gate %zu restored connection(s): %s\n", n, tcpcp_strerror());
		return -1;
	}
	err = nftlock_remove(ns);
	if (err)
		pr_err("cannot remove table inet tcpcp-criu of the restored network namespace: "
		       "%s\n", strerror(-err));
	return err ? -1 : 0;
}

/* All connections of the task are rebuilt first, then their gates open
 * in one transaction and each leaves repair mode at once. */
static int restore_conns(pid_t pid, int pidfd, pid_t nspid)
{
	struct tcpcp_ends *t = calloc(nconns ? nconns : 1, sizeof(*t));
	struct starting st = { 0 };
	double t0 = now_ms(), t1;
	size_t i, n = 0;
	int err = 0, ns = -1;
	ino_t ino = 0;

	if (!t)
		return -ENOMEM;
	for (i = 0; i < nconns && !err; i++) {
		if (conns[i].nspid != nspid || conns[i].done)
			continue;
		err = rebuild_conn(pidfd, &conns[i]);
		if (!err)
			t[n++] = conns[i].e;	/* rebuilt, or CRIU's own */
	}
	if (!err && carry)
		carry_over(nspid);
	t1 = st.at = now_ms();
	if (!err && n) {
		/* The gate of the task's own netns: CRIU's, the runtime's, or
		 * one CRIU made for the tree. */
		ns = netns_socket_of(pid);
		if (ns >= 0 && !sock_netns(ns, &ino) && !gated_in(ino))
			err = unlock_made_netns(ns, t, n);
		if (!err && (ns < 0 || !ino || tcpcp_gate_open_ends(ns, t, n, start_all, &st))) {
			pr_err("cannot open the gate of %zu restored connection(s): %s\n",
			       n, ns < 0 ? strerror(-ns) : tcpcp_strerror());
			err = -1;
		}
		if (ns >= 0)
			close(ns);
		for (i = 0; i < nconns; i++)
			if (conns[i].nspid == nspid)
				conns[i].ns = ino;
	}
	if (skip_all(nspid))
		err = -1;
	for (i = 0; i < nconns; i++) {		/* not started: still gated */
		if (conns[i].s >= 0) {
			close(conns[i].s);
			conns[i].s = -1;
		}
	}
	free(t);
	if (st.started)
		pr_info("restored %zu connection(s) of task %d (rebuilt in %.1f ms, "
			"unlocked in %.1f ms, started in %.1f ms)\n",
			st.started, nspid, t1 - t0, st.at - t1, now_ms() - st.at);
	return err || st.failed ? -1 : 0;
}

int restore_task(int pid)
{
	int pidfd, err;
	pid_t nspid;

	if (proc_nspid(pid, &nspid)) {
		pr_err("cannot read the status of restored task %d\n", pid);
		return -1;
	}
	pidfd = pidfd_open_pid(pid);
	if (pidfd < 0) {
		pr_err("cannot open restored task %d: %s\n", pid, strerror(-pidfd));
		return -1;
	}
	err = restore_conns(pid, pidfd, nspid);
	if (err) {
		/* The task would run with a dead socket where its connection
		 * was; CRIU does not look at our return value, so stop it
		 * here.  The peer saw nothing: the socket is still gated. */
		pr_err("killing restored task %d (pid %d here): its connections could not be restored\n",
		       nspid, pid);
		if (kill(pid, SIGKILL))
			pr_err("cannot kill task %d: %s\n", pid, strerror(errno));
	}
	close(pidfd);
	return err ? -1 : 0;
}

/* Where init() gated and the task was not: the entries of the restored
 * connections go now, not when their timeout runs out. */
static void open_elsewhere(int g)
{
	struct tcpcp_ends *t = calloc(nconns ? nconns : 1, sizeof(*t));
	size_t i, n = 0;

	for (i = 0; t && i < nconns; i++)
		if (conns[i].done && conns[i].gated && conns[i].ns != gate_ns[g].ino)
			t[n++] = conns[i].e;
	if (n && tcpcp_gate_open_ends(gate_ns[g].s, t, n, NULL, NULL))
		pr_warn("%zu gate entries stay in net:[%lu] for at most %d s: %s\n", n,
			(unsigned long)gate_ns[g].ino, GATE_S, tcpcp_strerror());
	free(t);
}

/* Not restored: keep the peer from being reset for a while, then let go
 * (a gate closed for LINGER_S), so that nothing of ours stays for good. */
int restore_fini(bool criu_ok)
{
	size_t i, left = 0;
	char conn[128];
	int g;

	for (g = 0; g < nns; g++)
		open_elsewhere(g);
	for (i = 0; i < nconns; i++) {
		bool lingers = false;

		if (conns[i].done || !conns[i].gated)
			continue;
		left++;
		tcpcp_ends_str(&conns[i].e, conn, sizeof(conn));
		if (criu_ok)
			pr_err("connection %s (image " IMG_FMT ") was not restored\n",
			       conn, conns[i].nspid, conns[i].fd);
		for (g = 0; g < nns; g++)
			if (!tcpcp_gate_close_ends(gate_ns[g].s, &conns[i].e, 1, LINGER_S))
				lingers = true;
		if (lingers)
			pr_warn("segments of %s are dropped here for %d s: restore again before that\n",
				conn, LINGER_S);
	}
	for (g = 0; g < nns; g++)
		close(gate_ns[g].s);
	nns = 0;
	for (i = 0; i < nconns; i++)
		free(conns[i].img);
	free(conns);
	conns = NULL;
	nconns = 0;
	return left ? -1 : 0;
}
