// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * ckpt_cost: what tcpcp_checkpoint() costs a connection that streams.
 *
 *     ckpt_cost [--receive] SECONDS RUNS PERIOD_MS...      (0: no checkpoints)
 *
 * A loopback connection; a child process reads and discards, this one
 * writes 64 KB at a time for SECONDS and, every PERIOD_MS, takes a
 * checkpoint with 16 bytes of application state, as a server would
 * between two writes.  Per period: throughput (median of RUNS, the
 * periods interleaved run by run) and its ratio to no checkpoints, the
 * checkpoint's own time (p50, p99, from this process's clock), and the
 * size of a checkpoint.  Loopback makes throughput CPU-bound, so whatever
 * a checkpoint costs shows.  Needs root: each run makes a network
 * namespace of its own, and the first checkpoint enters repair mode.
 *
 * --receive: the other way round, as a fail-over primary that receives:
 * the child writes, this process reads 64 KB at a time and, every
 * PERIOD_MS, takes a checkpoint and moves the acknowledgment clamp up to
 * it (tcpcp_ckpt_clamp(): the peer's bytes are acknowledged only once a
 * checkpoint holds them).  Throughput is what this side read; "none"
 * has neither checkpoints nor a clamp.  Also needs CAP_NET_RAW and
 * CAP_BPF (the clamp's tc program on lo).
 */
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <tcpcp.h>

#include "netns.h"

#define CHUNK		(64 * 1024)
#define MAX_PERIODS	8
#define MAX_RUNS	15

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "ckpt_cost: %s\n", what);
	exit(1);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* A connected pair on loopback: *@w (ours, the writer) and *@r. */
static void pair(int *w, int *r)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0);

	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&a, &len))
		die("listen on loopback");
	*r = socket(AF_INET, SOCK_STREAM, 0);
	if (*r < 0 || connect(*r, (struct sockaddr *)&a, sizeof(a)))
		die("connect");
	*w = accept(l, NULL, NULL);
	if (*w < 0)
		die("accept");
	close(l);
}

struct result {
	double mbps;
	uint64_t *ns;		/* each checkpoint's time */
	size_t n, img;
};

static void fresh_netns(void)
{
	const char *what;

	if (bench_fresh_netns(&what))
		die(what);
}

static void one_run(unsigned int secs, unsigned int period_ms, bool receive,
		    struct result *res)
{
	static char buf[CHUNK];
	struct tcpcp_ckpt *c = NULL;
	uint64_t t0, end, due, total = 0, t;
	size_t cap = 0;
	pid_t pid;
	int w, r, st;

	fresh_netns();
	pair(&w, &r);
	if (receive) {		/* we read from w; the child writes into r */
		int x = w;

		w = r;
		r = x;
	}
	pid = fork();
	if (pid < 0)
		die("fork");
	if (!pid) {
		close(w);
		if (receive)
			while (write(r, buf, sizeof(buf)) > 0)
				;
		else
			while (read(r, buf, sizeof(buf)) > 0)
				;
		_exit(0);
	}
	close(r);
	if (period_ms && !(c = tcpcp_ckpt_new(w)))
		die(tcpcp_strerror());
	res->n = 0;
	res->ns = NULL;
	t0 = now_ns();
	end = t0 + secs * 1000000000ull;
	due = t0 + period_ms * 1000000ull;
	while ((t = now_ns()) < end) {
		if (c && t >= due) {
			char state[16];
			size_t len;
			void *img;

			/* A receiver checkpoints what it has consumed: all
			 * that is there, else each checkpoint would copy the
			 * receive queue (megabytes on loopback). */
			while (receive) {
				ssize_t n = recv(w, buf, sizeof(buf), MSG_DONTWAIT);

				if (n <= 0)
					break;
				total += (uint64_t)n;
			}
			/* The reads and the state are the application's. */
			snprintf(state, sizeof(state), "%015llu", (unsigned long long)total);
			t = now_ns();
			img = tcpcp_checkpoint(c, w, state, sizeof(state), &len);
			if (!img)
				die(tcpcp_strerror());
			free(img);
			if (receive && tcpcp_ckpt_clamp(c, w))
				die(tcpcp_strerror());
			if (res->n == cap) {
				cap = cap ? 2 * cap : 1024;
				res->ns = realloc(res->ns, cap * sizeof(*res->ns));
				if (!res->ns)
					die("out of memory");
			}
			res->ns[res->n++] = now_ns() - t;
			res->img = len;
			due += period_ms * 1000000ull;
		}
		/* A reader waits no longer than its next checkpoint: the clamp
		 * lets the writer send one window past the last one, and then
		 * only the next checkpoint's clamp move lets it go on. */
		if (receive && c) {
			struct pollfd p = { .fd = w, .events = POLLIN };
			uint64_t now = now_ns();

			if (poll(&p, 1, due > now ? (int)((due - now) / 1000000 + 1) : 0) == 0)
				continue;
		}
		ssize_t n = receive ? read(w, buf, sizeof(buf)) : write(w, buf, sizeof(buf));

		if (n < 0)
			die(receive ? "read" : "write");
		if (!n)
			die("the writer stopped");
		total += (uint64_t)n;
	}
	res->mbps = (double)total / 1e6 / ((double)(now_ns() - t0) / 1e9);
	tcpcp_ckpt_free(c);
	close(w);
	waitpid(pid, &st, 0);
}

int main(int argc, char **argv)
{
	unsigned int secs, runs, period[MAX_PERIODS];
	static struct result res[MAX_PERIODS][MAX_RUNS];
	bool receive = argc > 1 && !strcmp(argv[1], "--receive");
	int np, i, k;
	bool unload = bench_bpf_was_empty();

	if (receive) {
		argv++;
		argc--;
	}
	if (argc < 4 || argc - 3 > MAX_PERIODS)
		die("usage: ckpt_cost [--receive] SECONDS RUNS PERIOD_MS... (0: none)");
	secs = (unsigned int)atoi(argv[1]);
	runs = (unsigned int)atoi(argv[2]);
	if (!secs || !runs || runs > MAX_RUNS)
		die("bad SECONDS or RUNS");
	np = argc - 3;
	for (i = 0; i < np; i++)
		period[i] = (unsigned int)atoi(argv[3 + i]);
	signal(SIGPIPE, SIG_IGN);
	for (k = 0; k < (int)runs; k++)
		for (i = 0; i < np; i++)
			one_run(secs, period[i], receive, &res[i][k]);
	printf("%-10s %12s %10s %12s %12s %14s %10s\n", "every", "MB/s", "vs none", "ckpt p50 us",
	       "ckpt p99 us", "checkpoints/s", "ICI bytes");
	double base = 0;
	for (i = 0; i < np; i++) {
		double mb[MAX_RUNS] = { 0 };
		uint64_t *all = NULL;
		size_t n = 0;

		for (k = 0; k < (int)runs; k++) {
			mb[k] = res[i][k].mbps;
			all = realloc(all, (n + res[i][k].n + 1) * sizeof(*all));
			if (!all)
				die("out of memory");
			memcpy(all + n, res[i][k].ns, res[i][k].n * sizeof(*all));
			n += res[i][k].n;
		}
		for (int a = 0; a < (int)runs; a++)	/* a median of few: sort in place */
			for (int b = a + 1; b < (int)runs; b++)
				if (mb[b] < mb[a]) {
					double x = mb[a];

					mb[a] = mb[b];
					mb[b] = x;
				}
		double med = mb[runs / 2];

		if (!period[i])
			base = med;
		if (!period[i]) {
			printf("%-10s %12.0f %9.1f%% %12s %12s %14s %10s\n", "none", med, 100.0, "-",
			       "-", "-", "-");
		} else {
			char name[32];

			qsort(all, n, sizeof(*all), cmp_u64);
			snprintf(name, sizeof(name), "%u ms", period[i]);
			printf("%-10s %12.0f %9.1f%% %12.1f %12.1f %14.0f %10zu\n", name, med,
			       base ? 100.0 * med / base : 0.0, n ? all[n / 2] / 1e3 : 0.0,
			       n ? all[n * 99 / 100] / 1e3 : 0.0, (double)n / runs / secs,
			       res[i][0].img);
		}
		for (k = 0; k < (int)runs; k++)
			free(res[i][k].ns);
		free(all);
	}
	/* Only what this bench loaded; a failure says a gate is in use. */
	if (unload && tcpcp_gate_unload())
		fprintf(stderr, "ckpt_cost: leaving tcpcp's BPF objects pinned: %s\n",
			tcpcp_strerror());
	return 0;
}
