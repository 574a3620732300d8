// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * tcp_multi: several TCP connections checkpointed and restored at once,
 * in the style of CRIU's zdtm tests: set up, signal readiness, wait for
 * SIGUSR1 (sent after the restore), then check that everything went on.
 *
 *   tcp_multi --bytes N --ready FILE SPEC...
 *     SPEC  accept,ADDR,PORT         listen, take one connection, and keep
 *                                    the listener open beside it
 *           connect,LOCAL,PEER,PORT  connect from LOCAL (which must move
 *                                    with the process) to PEER:PORT, which
 *                                    must be listening already
 *
 * Connection i sends the stream of seed 100+i and expects that of seed
 * 200+i, the same streams tcpcp-traffic makes, so tcpcp-traffic at the
 * peer verifies every byte; so does this program, and it prints one JSON
 * line per connection in tcpcp-traffic's format, then exits 0 only if all
 * streams ended intact.
 *
 * Before the checkpoint each connection sends a part of its stream and
 * reads nothing, so both directions have data queued in the kernel
 * (unread here, unacknowledged or unsent towards a peer that stalls).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONN	8
#define BUF_SIZE	(64 * 1024)
#define PRE_BYTES	(256 * 1024)	/* sent before the checkpoint */
#define FNV_OFFSET	0xcbf29ce484222325ULL
#define FNV_PRIME	0x100000001b3ULL

struct conn {
	int fd, listener;
	uint64_t tx_seed, rx_seed, tx, rx, tx_hash, rx_hash;
	bool shut, eof;
	struct sockaddr_storage peer;
	socklen_t peer_len;
};

static volatile sig_atomic_t resumed;
static uint64_t total;

static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
	va_list ap;

	fputs("tcp_multi: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* tcpcp-traffic's stream: byte i of seed s is a pure function of (s, i). */
static uint64_t splitmix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void stream_fill(uint64_t seed, uint64_t off, unsigned char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++, off++)
		buf[i] = splitmix64(seed + (off / 8 + 1) * 0x9e3779b97f4a7c15ULL) >> (8 * (off % 8));
}

static uint64_t fnv1a(uint64_t h, const unsigned char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		h = (h ^ buf[i]) * FNV_PRIME;
	return h;
}

static socklen_t sockaddr(const char *addr, int port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *in = (void *)ss;
	struct sockaddr_in6 *in6 = (void *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, addr, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		return sizeof(*in);
	}
	if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		return sizeof(*in6);
	}
	die("bad address %s", addr);
}

/* Every listener exists before the first accept(), so that a peer never
 * meets a closed port (and the test's capture no setup RST). */
static void setup_listener(struct conn *c, char *spec)
{
	struct sockaddr_storage ss;
	char *f[4] = { 0 };
	socklen_t len;
	int n = 0, one = 1;

	for (char *p = strtok(spec, ","); p && n < 4; p = strtok(NULL, ","))
		f[n++] = p;
	c->listener = -1;
	c->fd = -1;
	c->tx = c->rx = 0;
	c->shut = c->eof = false;
	c->tx_hash = c->rx_hash = FNV_OFFSET;
	if (n == 3 && !strcmp(f[0], "accept")) {
		len = sockaddr(f[1], atoi(f[2]), &ss);
		c->listener = socket(ss.ss_family, SOCK_STREAM, 0);
		setsockopt(c->listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (c->listener < 0 || bind(c->listener, (void *)&ss, len) || listen(c->listener, 4))
			die("listen on %s port %s: %s", f[1], f[2], strerror(errno));
		return;
	}
	if (n != 4 || strcmp(f[0], "connect"))
		die("bad connection spec");
	len = sockaddr(f[1], 0, &ss);
	c->fd = socket(ss.ss_family, SOCK_STREAM, 0);
	if (c->fd < 0 || bind(c->fd, (void *)&ss, len))
		die("bind to %s: %s", f[1], strerror(errno));
	c->peer_len = sockaddr(f[2], atoi(f[3]), &c->peer);
}

static void setup_conn(struct conn *c)
{
	if (c->listener >= 0) {
		c->fd = accept(c->listener, NULL, NULL);
		if (c->fd < 0)
			die("accept: %s", strerror(errno));
		return;
	}
	if (connect(c->fd, (void *)&c->peer, c->peer_len))
		die("connect: %s", strerror(errno));
}

static ssize_t tx_step(struct conn *c, uint64_t limit)
{
	unsigned char buf[BUF_SIZE];
	size_t len = limit - c->tx < BUF_SIZE ? limit - c->tx : BUF_SIZE;
	ssize_t n;

	if (!len) {
		if (limit == total && !c->shut) {
			if (shutdown(c->fd, SHUT_WR))
				die("shutdown: %s", strerror(errno));
			c->shut = true;
		}
		return 0;
	}
	stream_fill(c->tx_seed, c->tx, buf, len);
	n = send(c->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n < 0 && errno != EAGAIN)
		die("send: %s", strerror(errno));
	if (n > 0) {
		c->tx_hash = fnv1a(c->tx_hash, buf, n);
		c->tx += n;
	}
	return n;
}

static bool rx_step(struct conn *c)
{
	unsigned char buf[BUF_SIZE], want[BUF_SIZE];
	ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (n < 0)
		return errno == EAGAIN ? false : (die("recv: %s", strerror(errno)), false);
	if (!n) {
		if (c->rx != total)
			die("EOF at %" PRIu64 " of %" PRIu64, c->rx, total);
		c->eof = true;
		return false;
	}
	if (c->rx + n > total)
		die("conn %" PRIu64 ": %" PRIu64 " + %zd bytes, more than %" PRIu64, c->rx_seed - 200, c->rx, n, total);
	stream_fill(c->rx_seed, c->rx, want, n);
	if (memcmp(buf, want, n))
		die("stream %" PRIu64 " corrupt near offset %" PRIu64, c->rx_seed, c->rx);
	c->rx_hash = fnv1a(c->rx_hash, buf, n);
	c->rx += n;
	return true;
}

static void on_usr1(int sig)
{
	(void)sig;
	resumed = 1;
}

int main(int argc, char **argv)
{
	struct conn c[MAX_CONN];
	const char *ready = NULL;
	int nc = 0, i, fd;
	bool all;

	sigset_t usr1, old;

	/* Blocked until sigsuspend(): a SIGUSR1 that comes early is kept. */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, &old);
	signal(SIGUSR1, on_usr1);
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--bytes") && i + 1 < argc)
			total = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--ready") && i + 1 < argc)
			ready = argv[++i];
		else if (nc < MAX_CONN) {
			c[nc].tx_seed = 100 + nc;
			c[nc].rx_seed = 200 + nc;
			setup_listener(&c[nc++], argv[i]);
		} else
			die("at most %d connections", MAX_CONN);
	}
	if (!nc || total < PRE_BYTES || !ready)
		die("usage: tcp_multi --bytes N --ready FILE SPEC...");

	for (i = 0; i < nc; i++)
		setup_conn(&c[i]);
	/* Phase 1: queue data both ways, read nothing. */
	for (i = 0; i < nc; i++)
		while (c[i].tx < PRE_BYTES) {
			struct pollfd p = { .fd = c[i].fd, .events = POLLOUT };

			tx_step(&c[i], PRE_BYTES);
			if (c[i].tx < PRE_BYTES)
				poll(&p, 1, 100);
		}
	/* Then fill the send buffers: with the peer not reading, what does
	 * not fit into its window stays queued here. */
	for (i = 0; i < nc; i++)
		while (tx_step(&c[i], total) > 0)
			;
	fd = open(ready, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die("%s: %s", ready, strerror(errno));
	close(fd);
	while (!resumed)
		sigsuspend(&old);

	/* Phase 2: everything, both ways, to the end. */
	do {
		struct pollfd p[MAX_CONN];

		all = true;
		for (i = 0; i < nc; i++) {
			while (rx_step(&c[i]))
				;
			tx_step(&c[i], total);
			p[i].fd = c[i].fd;
			p[i].events = (c[i].eof ? 0 : POLLIN) | (c[i].shut ? 0 : POLLOUT);
			all &= c[i].eof && c[i].shut;
		}
		if (!all)
			poll(p, nc, 100);
	} while (!all);
	for (i = 0; i < nc; i++)
		printf("{\"conn\":%d,\"tx\":%" PRIu64 ",\"rx\":%" PRIu64 ",\"tx_hash\":\"%016" PRIx64
		       "\",\"rx_hash\":\"%016" PRIx64 "\",\"ok\":true}\n",
		       i, c[i].tx, c[i].rx, c[i].tx_hash, c[i].rx_hash);
	return 0;
}
