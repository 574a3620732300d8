// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * resurrect_cost: how long resurrecting N connections from images older
 * than the connections takes, the stock kernel's way (a probe) against
 * kernel-patch/ 0003's (TCP_REPAIR_RESYNC, no probe).
 *
 *     resurrect_cost RUNS N...
 *
 * Per run, a network namespace of its own with N loopback connections.
 * Each "primary" end is captured whole (tcpcp_capture(), as the CRIU
 * plugin takes it), then writes SENT more bytes, which the peer reads and
 * acknowledges, and dies silently (closed in repair mode).  From here the
 * clock runs, both ways starting from the gate closed for all N:
 *
 *   probe:  tcpcp_probe() of all N peers at once, tcpcp_resurrect() of
 *           each image to its peer's view, create, gate opened, activate;
 *   resync: create each from the old image as it is, armed
 *           (tcpcp_create_opts.resync), gate opened, activate, and
 *           tcpcp_resync_skip() once the peers' answers to the window
 *           probes came.
 *
 * Then each resurrected end writes one byte (the stream's next, after the
 * skip) and the clock stops when every peer has read it: "live" is the
 * first new byte at the last peer.  Columns: the median over RUNS of
 * "live" and of the steps before the first write, per N; "ok" says every
 * skip was SENT and every peer read the right byte.  The resync row is
 * only printed where the kernel has the option (kernel-patch/, `make
 * kernel-bench` runs this in the qemu guest).  Needs root.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <tcpcp.h>

#include "netns.h"

#define SENT		3000	/* bytes the primary sent after its image */
#define MAX_N		2000
#define MAX_RUNS	15
#define PROBE_MS	3000
#define RESYNC_WAIT_MS	1000
#define TCP_REPAIR_RESYNC 50	/* kernel-patch/series/0003 */

enum mode { PROBE, RESYNC, MODES };
static const char *const mode_name[MODES] = { "probe", "resync" };

struct conn {
	int primary, peer, s;
	void *img, *res;
	size_t len, rlen;
	int64_t skip;
	struct tcpcp_ends e;
};

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000ull + (uint64_t)ts.tv_nsec / 1000;
}

static void die(const char *what)
{
	fprintf(stderr, "resurrect_cost: %s%s%s\n", what, errno ? ": " : "",
		errno ? strerror(errno) : "");
	exit(1);
}

static void die_lib(const char *what)
{
	fprintf(stderr, "resurrect_cost: %s: %s\n", what, tcpcp_strerror());
	exit(1);
}

static unsigned char pattern(uint32_t i)
{
	return (unsigned char)(i * 7 + 3);
}

static int set_int(int s, int opt, int v)
{
	return setsockopt(s, IPPROTO_TCP, opt, &v, sizeof(v));
}

static void fresh_netns(void)
{
	const char *what;

	if (bench_fresh_netns(&what))
		die(what);
}

static bool has_resync(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0), v;
	socklen_t len = sizeof(v);
	bool yes;

	if (s < 0)
		die("socket");
	yes = !getsockopt(s, IPPROTO_TCP, TCP_REPAIR_RESYNC, &v, &len);
	close(s);
	return yes;
}

static void send_all(int s, uint32_t off, uint32_t n)
{
	unsigned char buf[4096];

	while (n) {
		uint32_t k = n < sizeof(buf) ? n : (uint32_t)sizeof(buf);
		ssize_t w;

		for (uint32_t i = 0; i < k; i++)
			buf[i] = pattern(off + i);
		w = write(s, buf, k);
		if (w <= 0)
			die("write");
		off += (uint32_t)w;
		n -= (uint32_t)w;
	}
}

/* Reads @n bytes from @s (blocking, bounded by poll), checks the pattern. */
static bool read_check(int s, uint32_t off, uint32_t n)
{
	unsigned char buf[4096];
	struct pollfd p = { .fd = s, .events = POLLIN };

	while (n) {
		ssize_t k;

		if (poll(&p, 1, 5000) != 1)
			return false;
		k = read(s, buf, n < sizeof(buf) ? n : sizeof(buf));
		if (k <= 0)
			return false;
		for (ssize_t i = 0; i < k; i++)
			if (buf[i] != pattern(off + (uint32_t)i))
				return false;
		off += (uint32_t)k;
		n -= (uint32_t)k;
	}
	return true;
}

/* N pairs; each primary captured, SENT bytes later dead. */
static void setup(struct conn *c, size_t n)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0), outq;

	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, (int)n) ||
	    getsockname(l, (struct sockaddr *)&a, &alen))
		die("listen on loopback");
	for (size_t i = 0; i < n; i++) {
		c[i].peer = socket(AF_INET, SOCK_STREAM, 0);
		if (c[i].peer < 0 || connect(c[i].peer, (struct sockaddr *)&a, sizeof(a)))
			die("connect");
		c[i].primary = accept(l, NULL, NULL);
		if (c[i].primary < 0 || tcpcp_ends_of(c[i].primary, &c[i].e))
			die("accept");
		if (set_int(c[i].primary, TCP_REPAIR, 1))
			die("TCP_REPAIR");
		c[i].img = tcpcp_capture(c[i].primary, &c[i].len);
		if (!c[i].img)
			die_lib("tcpcp_capture");
		if (set_int(c[i].primary, TCP_REPAIR, -1))	/* off, no window probe */
			die("TCP_REPAIR off");
		send_all(c[i].primary, 0, SENT);
		if (!read_check(c[i].peer, 0, SENT))
			die("the peer's read before the death");
	}
	close(l);
	for (size_t i = 0; i < n; i++) {
		/* Every byte acknowledged before the death, as in a fail-over
		 * where the peer had them all. */
		for (int t = 0; t < 2000; t++) {
			if (ioctl(c[i].primary, SIOCOUTQ, &outq))
				die("SIOCOUTQ");
			if (!outq)
				break;
			usleep(1000);
		}
		if (set_int(c[i].primary, TCP_REPAIR, 1))
			die("TCP_REPAIR before close");
		close(c[i].primary);
	}
}

struct times {
	double steps_ms, live_ms;
	bool ok;
};

struct batch {
	struct conn *c;
	size_t n;
	int err;
};

/* tcpcp_gate_open_ends()'s callback: every connection leaves repair mode
 * once the gate is open. */
static void activate_all(void *arg)
{
	struct batch *b = arg;

	for (size_t i = 0; i < b->n; i++)
		if (tcpcp_activate_ungated(b->c[i].s, b->c[i].res ? b->c[i].res : b->c[i].img,
					   b->c[i].res ? b->c[i].rlen : b->c[i].len))
			b->err = 1;
}

static void one_run(enum mode m, size_t n, struct times *t)
{
	struct conn *c = calloc(n, sizeof(*c));
	struct tcpcp_peer_view *v = calloc(n, sizeof(*v));
	const void **imgs = calloc(n, sizeof(*imgs));
	struct tcpcp_ends *e = calloc(n, sizeof(*e));
	size_t *lens = calloc(n, sizeof(*lens));
	struct batch b = { .c = c, .n = n };
	uint64_t t0, t1;

	if (!c || !v || !imgs || !e || !lens)
		die("out of memory");
	fresh_netns();
	setup(c, n);
	for (size_t i = 0; i < n; i++) {
		imgs[i] = c[i].img;
		lens[i] = c[i].len;
		e[i] = c[i].e;
	}
	t0 = now_us();
	if (tcpcp_gate_close_ends(-1, e, n, 60))
		die_lib("tcpcp_gate_close_ends");
	if (m == PROBE) {
		if (tcpcp_probe(-1, imgs, lens, n, v, PROBE_MS) != (int)n)
			die_lib("tcpcp_probe: not every peer answered");
		for (size_t i = 0; i < n; i++) {
			c[i].res = tcpcp_resurrect(c[i].img, c[i].len, &v[i], &c[i].skip,
						   &c[i].rlen);
			if (!c[i].res)
				die_lib("tcpcp_resurrect");
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct tcpcp_create_opts o = TCPCP_CREATE_OPTS_INIT;

		o.resync = m == RESYNC;
		c[i].s = socket(AF_INET, SOCK_STREAM, 0);
		if (c[i].s < 0 ||
		    tcpcp_create_gated(c[i].s, c[i].res ? c[i].res : c[i].img,
				       c[i].res ? c[i].rlen : c[i].len, &o))
			die_lib("tcpcp_create_gated");
	}
	if (tcpcp_gate_open_ends(-1, e, n, activate_all, &b) || b.err)
		die_lib("opening the gate and activating");
	if (m == RESYNC)
		for (size_t i = 0; i < n; i++)
			if ((c[i].skip = tcpcp_resync_skip(c[i].s, RESYNC_WAIT_MS)) < 0)
				die_lib("tcpcp_resync_skip");
	t1 = now_us();
	t->ok = true;
	for (size_t i = 0; i < n; i++) {
		if (c[i].skip != SENT)
			t->ok = false;
		send_all(c[i].s, SENT, 1);
	}
	for (size_t i = 0; i < n; i++)
		if (!read_check(c[i].peer, SENT, 1))
			t->ok = false;
	t->steps_ms = (double)(t1 - t0) / 1e3;
	t->live_ms = (double)(now_us() - t0) / 1e3;
	for (size_t i = 0; i < n; i++) {
		close(c[i].s);
		close(c[i].peer);
		free(c[i].img);
		free(c[i].res);
	}
	free(c);
	free(v);
	free(imgs);
	free(e);
	free(lens);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	static struct times t[MAX_RUNS];
	struct rlimit rl;
	unsigned int runs;
	bool resync = has_resync();
	bool unload = bench_bpf_was_empty();

	if (argc < 3)
		die("usage: resurrect_cost RUNS N...");
	runs = (unsigned int)atoi(argv[1]);
	if (!runs || runs > MAX_RUNS)
		die("bad RUNS (1-15)");
	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	printf("resurrection of N connections %u bytes behind their images (median of %u runs)\n",
	       SENT, runs);
	printf("%6s %-7s %16s %16s %4s\n", "N", "mode", "steps ms", "live ms", "ok");
	for (int a = 2; a < argc; a++) {
		size_t n = (size_t)atol(argv[a]);

		if (!n || n > MAX_N)
			die("bad N (1-2000)");
		for (enum mode m = PROBE; m < MODES; m++) {
			double steps[MAX_RUNS], live[MAX_RUNS];
			bool ok = true;

			if (m == RESYNC && !resync) {
				printf("%6zu %-7s %16s %16s %4s\n", n, mode_name[m],
				       "-", "-", "no TCP_REPAIR_RESYNC: stock kernel");
				continue;
			}
			/* Each run's namespace goes with the process that made
			 * it: run each in a child. */
			for (unsigned int k = 0; k < runs; k++) {
				int pfd[2];
				pid_t pid;

				fflush(stdout);	/* not printed again by the child */
				if (pipe(pfd))
					die("pipe");
				pid = fork();
				if (pid < 0)
					die("fork");
				if (!pid) {
					close(pfd[0]);
					one_run(m, n, &t[k]);
					if (write(pfd[1], &t[k], sizeof(t[k])) != sizeof(t[k]))
						_exit(1);
					_exit(0);
				}
				close(pfd[1]);
				if (read(pfd[0], &t[k], sizeof(t[k])) != sizeof(t[k]))
					die("a run failed (its message above)");
				close(pfd[0]);
				while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
					;
				steps[k] = t[k].steps_ms;
				live[k] = t[k].live_ms;
				ok = ok && t[k].ok;
			}
			qsort(steps, runs, sizeof(double), cmp_d);
			qsort(live, runs, sizeof(double), cmp_d);
			printf("%6zu %-7s %16.2f %16.2f %4s\n", n, mode_name[m], steps[runs / 2],
			       live[runs / 2], ok ? "yes" : "NO");
			fflush(stdout);
		}
	}
	/* Only what this bench loaded; a failure says a gate is in use. */
	if (unload && tcpcp_gate_unload())
		fprintf(stderr, "resurrect_cost: leaving tcpcp's BPF objects pinned: %s\n",
			tcpcp_strerror());
	return 0;
}
