/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "zdtm.h"

volatile int zdtm_go;

void zdtm_fail(const char *fmt, ...)
{
	va_list ap;

	printf("FAIL: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(1);
}

void zdtm_pass(void)
{
	printf("PASS\n");
	fflush(stdout);
	exit(0);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t num(const char *s, const char *what)
{
	char *end;
	uint64_t v = strtoull(s, &end, 0);

	if (*end == 'K' || *end == 'k')
		v <<= 10, end++;
	else if (*end == 'M')
		v <<= 20, end++;
	if (end == s || *end)
		zdtm_fail("bad %s '%s'", what, s);
	return v;
}

void zdtm_parse(int argc, char **argv, struct zopts *o, const char *usage_extra)
{
	static const struct option lo[] = {
		{ "listen", 1, NULL, 'l' }, { "connect", 1, NULL, 'l' },
		{ "conns", 1, NULL, 'n' }, { "bytes", 1, NULL, 'b' },
		{ "bytes-c2s", 1, NULL, 'c' }, { "bytes-s2c", 1, NULL, 's' },
		{ "seed", 1, NULL, 'S' }, { "rate", 1, NULL, 'r' },
		{ "hold", 0, NULL, 'H' }, { "ready", 1, NULL, 'R' },
		{ "timeout", 1, NULL, 't' }, { "source", 1, NULL, 'a' },
		{ "fin-early", 0, NULL, 'F' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->conns = 1;
	o->seed = 1;
	o->timeout_s = 120;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'l':
			if (o->naddr == 4)
				zdtm_fail("at most 4 addresses");
			o->addr[o->naddr++] = optarg;
			break;
		case 'n': o->conns = (unsigned int)num(optarg, "conns"); break;
		case 'b': o->bytes_c2s = o->bytes_s2c = num(optarg, "bytes"); break;
		case 'c': o->bytes_c2s = num(optarg, "bytes"); break;
		case 's': o->bytes_s2c = num(optarg, "bytes"); break;
		case 'S': o->seed = num(optarg, "seed"); break;
		case 'r': o->rate = num(optarg, "rate"); break;
		case 'H': o->hold = true; break;
		case 'F': o->fin_early = true; break;
		case 'R': o->ready = optarg; break;
		case 't': o->timeout_s = (unsigned int)num(optarg, "timeout"); break;
		case 'a':
			if (o->nsource == 4)
				zdtm_fail("at most 4 sources");
			o->source[o->nsource++] = optarg;
			break;
		default:
			fprintf(stderr, "usage: %s (--listen|--connect) ADDR:PORT... [--conns N]\n"
				"  [--bytes N | --bytes-c2s N --bytes-s2c N] [--seed S] [--rate B/S]\n"
				"  [--hold] [--fin-early] [--ready FILE] [--timeout S] %s\n",
				argv[0], usage_extra);
			exit(2);
		}
	}
	if (!o->naddr || !o->conns)
		zdtm_fail("need an address and at least one connection");
}

static void on_usr1(int sig)
{
	(void)sig;
	zdtm_go = 1;
}

void zdtm_signals(void)
{
	struct sigaction sa = { .sa_handler = on_usr1 };

	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

void zdtm_nofile(unsigned int need)
{
	struct rlimit rl = { need + 64, need + 64 };

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur >= need + 64)
		return;
	rl.rlim_cur = rl.rlim_max = need + 64;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		zdtm_fail("RLIMIT_NOFILE %u: %s", need + 64, strerror(errno));
}

void zdtm_ready(const struct zopts *o)
{
	char tmp[4096];
	int fd;

	if (!o->ready)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", o->ready);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || close(fd) || rename(tmp, o->ready))
		zdtm_fail("cannot write %s: %s", o->ready, strerror(errno));
}

socklen_t zdtm_sockaddr(const char *s, struct sockaddr_storage *ss)
{
	char host[128];
	const char *colon = strrchr(s, ':');
	size_t hl;
	int port;

	if (!colon || (hl = (size_t)(colon - s)) >= sizeof(host))
		zdtm_fail("bad address '%s'", s);
	memcpy(host, s, hl);
	host[hl] = '\0';
	port = atoi(colon + 1);
	memset(ss, 0, sizeof(*ss));
	if (host[0] == '[') {
		struct sockaddr_in6 *a = (void *)ss;

		host[hl - 1] = '\0';
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
			zdtm_fail("bad address '%s'", s);
		return sizeof(*a);
	} else {
		struct sockaddr_in *a = (void *)ss;

		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			zdtm_fail("bad address '%s'", s);
		return sizeof(*a);
	}
}

int zdtm_listen(const char *addr)
{
	struct sockaddr_storage ss;
	socklen_t len = zdtm_sockaddr(addr, &ss);
	int s = socket(ss.ss_family, SOCK_STREAM, 0), one = 1;

	if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(s, (struct sockaddr *)&ss, len) || listen(s, 4096))
		zdtm_fail("listen on %s: %s", addr, strerror(errno));
	return s;
}

int zdtm_connect(const char *addr, const char *source)
{
	struct sockaddr_storage ss, src;
	socklen_t len = zdtm_sockaddr(addr, &ss);
	int s = socket(ss.ss_family, SOCK_STREAM, 0);

	if (s < 0)
		zdtm_fail("socket: %s", strerror(errno));
	if (source) {
		socklen_t slen = zdtm_sockaddr(source, &src);

		if (bind(s, (struct sockaddr *)&src, slen))
			zdtm_fail("bind to %s: %s", source, strerror(errno));
	}
	if (connect(s, (struct sockaddr *)&ss, len))
		zdtm_fail("connect to %s: %s", addr, strerror(errno));
	return s;
}

void zdtm_connect_all(struct zconn *c, const struct zopts *o, bool server)
{
	unsigned int i;

	for (i = 0; i < o->conns; i++) {
		unsigned int a = i % (unsigned int)o->naddr;
		int fd = zdtm_connect(o->addr[a], (int)a < o->nsource ? o->source[a] : NULL);
		uint8_t h[8] = { (uint8_t)i, (uint8_t)(i >> 8), (uint8_t)(i >> 16), (uint8_t)(i >> 24) };

		if (send(fd, h, sizeof(h), 0) != sizeof(h))
			zdtm_fail("connection %u: cannot send its header", i);
		zdtm_conn_init(&c[i], fd, i, o, server);
	}
}

/* ---- the streams ---- */

static uint64_t mix(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void fill(const struct zopts *o, enum dir d, uint32_t idx, uint64_t off,
		 uint8_t *buf, size_t len)
{
	uint64_t key = mix(o->seed ^ ((uint64_t)d << 62) ^ ((uint64_t)idx << 32));
	size_t i;

	for (i = 0; i < len; i++, off++)
		buf[i] = (uint8_t)(mix(key + off / 8) >> (8 * (off % 8)));
}

static void set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

void zdtm_conn_init(struct zconn *c, int fd, uint32_t idx, const struct zopts *o, bool server)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->idx = idx;
	c->have_idx = true;
	c->tx_dir = server ? S2C : C2S;
	c->tx_total = server ? o->bytes_s2c : o->bytes_c2s;
	c->rx_total = server ? o->bytes_c2s : o->bytes_s2c;
	c->fin_early = o->fin_early && (idx % 2) == server;
	set_nonblock(fd);
}

void zdtm_accept_all(int *lfd, int nl, struct zconn *c, const struct zopts *o)
{
	struct pollfd p[4];
	unsigned int got = 0;
	int i;

	for (i = 0; i < nl; i++)
		p[i] = (struct pollfd){ .fd = lfd[i], .events = POLLIN };
	while (got < o->conns) {
		if (poll(p, (nfds_t)nl, (int)o->timeout_s * 1000) <= 0)
			zdtm_fail("only %u of %u connections came", got, o->conns);
		for (i = 0; i < nl && got < o->conns; i++) {
			uint8_t h[8];
			int fd;

			if (!(p[i].revents & POLLIN))
				continue;
			fd = accept(lfd[i], NULL, NULL);
			if (fd < 0)
				zdtm_fail("accept: %s", strerror(errno));
			/* The peer sends the header right after connect. */
			if (recv(fd, h, sizeof(h), MSG_WAITALL) != sizeof(h))
				zdtm_fail("connection %u sent no header", got);
			zdtm_conn_init(&c[got], fd, (uint32_t)(h[0] | h[1] << 8 | h[2] << 16 | (uint32_t)h[3] << 24), o, true);
			if (c[got].idx >= o->conns)
				zdtm_fail("bad connection index %u", c[got].idx);
			got++;
		}
	}
}

static bool done(const struct zconn *c)
{
	return c->tx_shut && c->rx_eof;
}

/* Returns bytes moved. */
static size_t tx_step(struct zconn *c, const struct zopts *o, size_t budget)
{
	uint8_t buf[16384];
	size_t want = (size_t)(c->tx_total - c->tx_off);
	ssize_t n;

	if (want > sizeof(buf))
		want = sizeof(buf);
	if (want > budget)
		want = budget;
	if (!want)
		return 0;
	fill(o, c->tx_dir, c->idx, c->tx_off, buf, want);
	n = send(c->fd, buf, want, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		zdtm_fail("connection %u: send at %llu: %s", c->idx,
			  (unsigned long long)c->tx_off, strerror(errno));
	}
	c->tx_off += (uint64_t)n;
	return (size_t)n;
}

static size_t rx_step(struct zconn *c, const struct zopts *o)
{
	uint8_t buf[16384], want[16384];
	ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		zdtm_fail("connection %u: recv at %llu: %s", c->idx,
			  (unsigned long long)c->rx_off, strerror(errno));
	}
	if (n == 0) {
		if (c->rx_off != c->rx_total)
			zdtm_fail("connection %u: EOF after %llu of %llu bytes", c->idx,
				  (unsigned long long)c->rx_off, (unsigned long long)c->rx_total);
		c->rx_eof = true;
		return 0;
	}
	if (c->rx_off + (uint64_t)n > c->rx_total)
		zdtm_fail("connection %u: %llu bytes more than the %llu sent", c->idx,
			  (unsigned long long)(c->rx_off + (uint64_t)n - c->rx_total),
			  (unsigned long long)c->rx_total);
	fill(o, (enum dir)!c->tx_dir, c->idx, c->rx_off, want, (size_t)n);
	if (memcmp(buf, want, (size_t)n)) {
		size_t i = 0;

		while (buf[i] == want[i])
			i++;
		zdtm_fail("connection %u: byte %llu differs", c->idx,
			  (unsigned long long)(c->rx_off + i));
	}
	c->rx_off += (uint64_t)n;
	return (size_t)n;
}

/* FIN once both directions are through, unless the test half-closes the
 * connection on purpose before the checkpoint (fin_early). */
void zdtm_maybe_shut(struct zconn *c)
{
	if (!c->tx_shut && c->tx_off == c->tx_total &&
	    (c->rx_off == c->rx_total || c->fin_early)) {
		if (shutdown(c->fd, SHUT_WR))
			zdtm_fail("connection %u: shutdown: %s", c->idx, strerror(errno));
		c->tx_shut = true;
	}
}

void zdtm_pump(struct zconn *c, unsigned int n, const struct zopts *o, bool server, bool may_read)
{
	unsigned int i;

	(void)server;
	for (i = 0; i < n; i++) {
		while (tx_step(&c[i], o, SIZE_MAX))
			;
		while (may_read && !c[i].rx_eof && rx_step(&c[i], o))
			;
	}
}

/* --rate is shared evenly: each connection gets its part, so that all of
 * them are mid-transfer at any moment rather than the first ones done. */
static size_t conn_budget(const struct zconn *c, const struct zopts *o, unsigned int n,
			  uint64_t t_ms)
{
	uint64_t allow;

	if (!o->rate)
		return SIZE_MAX;
	allow = o->rate * (t_ms + 20) / 1000 / n;
	return allow > c->tx_off ? (size_t)(allow - c->tx_off) : 0;
}

void zdtm_run(struct zconn *c, unsigned int n, const struct zopts *o, bool server)
{
	struct pollfd *p = calloc(n, sizeof(*p));
	uint64_t start = now_ms();
	unsigned int i, left;

	(void)server;
	if (!p)
		zdtm_fail("out of memory");
	for (;;) {
		bool may_read = !o->hold || zdtm_go;
		uint64_t t = now_ms() - start;

		left = 0;
		for (i = 0; i < n; i++) {
			p[i].fd = c[i].fd;
			p[i].events = 0;
			if (done(&c[i]))
				continue;
			left++;
			if (c[i].tx_off < c[i].tx_total && conn_budget(&c[i], o, n, t))
				p[i].events |= POLLOUT;
			if (may_read && !c[i].rx_eof)
				p[i].events |= POLLIN;
		}
		if (!left)
			break;
		if (t > o->timeout_s * 1000ull)
			zdtm_fail("timed out with %u connection(s) unfinished", left);
		if (poll(p, n, 10) < 0 && errno != EINTR)
			zdtm_fail("poll: %s", strerror(errno));
		for (i = 0; i < n; i++) {
			if (p[i].revents & (POLLOUT | POLLERR | POLLHUP))
				tx_step(&c[i], o, conn_budget(&c[i], o, n, t));
			if (p[i].revents & (POLLIN | POLLERR | POLLHUP) && may_read)
				rx_step(&c[i], o);
			zdtm_maybe_shut(&c[i]);
		}
	}
	free(p);
}
