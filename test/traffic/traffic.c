// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * tcpcp-traffic: a bidirectional stream generator and verifier for
 * connection passing tests.
 *
 * Byte i of a stream is a pure function of (seed, i), so a process on
 * another host can continue a stream at any offset: the origin writes its
 * offsets to a state file when tcpcp takes the socket, and the process on
 * the destination picks them up with --fd and --state.  Every received
 * byte is compared with what the peer must have sent, and a running
 * FNV-1a hash of each direction lets a test compare both ends cheaply.
 *
 * A taken socket shows itself through TCP_REPAIR: recv() fails with EPERM
 * and send() with EINVAL.  The offsets we save then are exactly what went
 * through the socket API, which is what the ICI's queues continue from.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
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
#include <time.h>
#include <unistd.h>

#define EXIT_USAGE	2
#define EXIT_MISMATCH	3
#define EXIT_RESET	4

#define BUF_SIZE	(64 * 1024)
#define TICK_MS		50
#define PACE_MS		10
#define CONNECT_TRIES	100	/* x 100 ms: the listener may start late */

#define FNV_OFFSET	0xcbf29ce484222325ULL
#define FNV_PRIME	0x100000001b3ULL

struct stream {
	uint64_t seed;
	uint64_t off;
	uint64_t hash;
};

struct stall {
	uint64_t off;
	unsigned int ms;
	uint64_t end_ns;
	enum { STALL_NONE, STALL_ARMED, STALL_ACTIVE, STALL_DONE } st;
};

struct traffic {
	int fd;
	uint64_t tx_total, rx_total;	/* a half-closed test sends less one way */
	struct stream tx, rx;
	uint64_t rate;		/* bytes/s, 0: unpaced */
	uint64_t start_ns;
	uint64_t tx_start;	/* pacing counts this process's bytes only */
	struct stall rstall, wstall;
	bool shut, eof, taken;
	const char *state_out;
};

struct opts {
	const char *listen, *connect, *state, *state_out, *ready;
	int fd;
	uint64_t tx_total, rx_total, tx_seed, rx_seed;
	bool have_tx_total, have_rx_total, have_tx_seed, have_rx_seed;
	uint64_t rate;
	unsigned int max_pacing;	/* SO_MAX_PACING_RATE, bytes/s; 0: none */
	unsigned int rcvbuf;		/* SO_RCVBUF (which locks it); 0: autotuned */
	struct stall rstall, wstall;
	unsigned int linger_ms;
	uint64_t tx_skip;		/* after a fail-over: bytes the peer has */
};

enum io { IO_IDLE, IO_OK, IO_AGAIN, IO_TAKEN };

static volatile sig_atomic_t terminated;

static void __attribute__((noreturn, format(printf, 2, 3)))
die(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("tcpcp-traffic: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	/* EINTR is welcome: it is how SIGTERM cuts the wait short. */
	nanosleep(&ts, NULL);
}

static uint64_t splitmix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t stream_word(uint64_t seed, uint64_t i)
{
	return splitmix64(seed + (i + 1) * 0x9e3779b97f4a7c15ULL);
}

static void stream_fill(uint64_t seed, uint64_t off, unsigned char *buf, size_t len)
{
	uint64_t w = stream_word(seed, off / 8);
	size_t i;

	for (i = 0; i < len; i++, off++) {
		if (i && !(off % 8))
			w = stream_word(seed, off / 8);
		buf[i] = w >> (8 * (off % 8));
	}
}

static uint64_t fnv1a(uint64_t h, const unsigned char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ buf[i]) * FNV_PRIME;
	return h;
}

static uint64_t min(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* ---- command line ---- */

static uint64_t parse_size(const char *s, const char *what)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		die(EXIT_USAGE, "bad %s: %s", what, s);
	switch (*end) {
	case 'G': v <<= 10;	/* fall through */
	case 'M': v <<= 10;	/* fall through */
	case 'k': case 'K': v <<= 10; end++; break;
	}
	if (*end)
		die(EXIT_USAGE, "bad %s: %s", what, s);
	return v;
}

static void parse_stall(const char *s, struct stall *st)
{
	char *colon = strchr(s, ':'), off[64];

	if (!colon || colon - s >= (long)sizeof(off))
		die(EXIT_USAGE, "bad stall, want OFF:MS: %s", s);
	snprintf(off, sizeof(off), "%.*s", (int)(colon - s), s);
	st->off = parse_size(off, "stall offset");
	st->ms = parse_size(colon + 1, "stall duration");
	st->st = STALL_ARMED;
}

/* ADDR:PORT or [ADDR6]:PORT */
static socklen_t parse_addr(const char *s, struct sockaddr_storage *ss)
{
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(s, ':');
	size_t hlen;
	uint64_t port;

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		die(EXIT_USAGE, "bad address, want ADDR:PORT: %s", s);
	hlen = colon - s;
	if (s[0] == '[' && hlen >= 2 && s[hlen - 1] == ']')
		snprintf(host, sizeof(host), "%.*s", (int)hlen - 2, s + 1);
	else
		snprintf(host, sizeof(host), "%.*s", (int)hlen, s);
	port = parse_size(colon + 1, "port");
	if (port > 65535)
		die(EXIT_USAGE, "bad port: %s", colon + 1);
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		return sizeof(*s4);
	}
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		return sizeof(*s6);
	}
	die(EXIT_USAGE, "bad address: %s", host);
}

static void usage(void)
{
	fputs("usage: tcpcp-traffic (--listen ADDR:PORT | --connect ADDR:PORT | --fd N [--state FILE])\n"
	      "         --bytes N | --tx-bytes N --rx-bytes N\n"
	      "         [--tx-seed S] [--rx-seed S] [--rate BYTES/S]\n"
	      "         [--read-stall OFF:MS] [--write-stall OFF:MS]\n"
	      "         [--state-out FILE] [--ready FILE] [--linger MS]\n"
	      "         [--max-pacing-rate BYTES/S] [--rcvbuf BYTES] [--tx-skip N]\n", stderr);
	exit(EXIT_USAGE);
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "listen", 1, NULL, 'l' }, { "connect", 1, NULL, 'c' },
		{ "fd", 1, NULL, 'f' }, { "state", 1, NULL, 's' },
		{ "state-out", 1, NULL, 'o' }, { "bytes", 1, NULL, 'b' },
		{ "tx-bytes", 1, NULL, 'T' }, { "rx-bytes", 1, NULL, 'X' },
		{ "tx-seed", 1, NULL, 't' }, { "rx-seed", 1, NULL, 'r' },
		{ "rate", 1, NULL, 'R' }, { "read-stall", 1, NULL, 'S' },
		{ "write-stall", 1, NULL, 'W' }, { "ready", 1, NULL, 'y' },
		{ "linger", 1, NULL, 'L' }, { "max-pacing-rate", 1, NULL, 'P' },
		{ "rcvbuf", 1, NULL, 'B' }, { "tx-skip", 1, NULL, 'K' },
		{ "help", 0, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	int c, modes;

	memset(o, 0, sizeof(*o));
	o->fd = -1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'l': o->listen = optarg; break;
		case 'c': o->connect = optarg; break;
		case 'f': o->fd = parse_size(optarg, "fd"); break;
		case 's': o->state = optarg; break;
		case 'o': o->state_out = optarg; break;
		case 'b':
			o->tx_total = o->rx_total = parse_size(optarg, "byte count");
			o->have_tx_total = o->have_rx_total = true;
			break;
		case 'T': o->tx_total = parse_size(optarg, "byte count"); o->have_tx_total = true; break;
		case 'X': o->rx_total = parse_size(optarg, "byte count"); o->have_rx_total = true; break;
		case 't': o->tx_seed = parse_size(optarg, "seed"); o->have_tx_seed = true; break;
		case 'r': o->rx_seed = parse_size(optarg, "seed"); o->have_rx_seed = true; break;
		case 'R': o->rate = parse_size(optarg, "rate"); break;
		case 'P': o->max_pacing = (unsigned int)parse_size(optarg, "pacing rate"); break;
		case 'B': o->rcvbuf = (unsigned int)parse_size(optarg, "receive buffer"); break;
		case 'S': parse_stall(optarg, &o->rstall); break;
		case 'W': parse_stall(optarg, &o->wstall); break;
		case 'y': o->ready = optarg; break;
		case 'L': o->linger_ms = parse_size(optarg, "linger"); break;
		case 'K': o->tx_skip = parse_size(optarg, "skip"); break;
		default: usage();
		}
	}
	modes = !!o->listen + !!o->connect + (o->fd >= 0);
	if (optind != argc || modes != 1 || (o->state && o->fd < 0))
		usage();
}

/* ---- state file ---- */

static void state_save(const struct traffic *t)
{
	char tmp[4096];
	FILE *f;

	if (!t->state_out)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", t->state_out);
	f = fopen(tmp, "w");
	if (!f)
		die(1, "cannot write %s: %s", tmp, strerror(errno));
	fprintf(f, "tx_seed=%" PRIu64 "\nrx_seed=%" PRIu64 "\n"
		"tx_bytes=%" PRIu64 "\nrx_bytes=%" PRIu64 "\n"
		"tx=%" PRIu64 "\nrx=%" PRIu64 "\n"
		"tx_hash=%016" PRIx64 "\nrx_hash=%016" PRIx64 "\nshut=%d\n",
		t->tx.seed, t->rx.seed, t->tx_total, t->rx_total, t->tx.off, t->rx.off,
		t->tx.hash, t->rx.hash, t->shut);
	/* A reader must never see half a state: rename only a complete file. */
	if (fclose(f) || rename(tmp, t->state_out))
		die(1, "cannot write %s: %s", t->state_out, strerror(errno));
}

static void merge(uint64_t *dst, bool have, uint64_t val, const char *key)
{
	if (have && *dst != val)
		die(EXIT_USAGE, "--%s disagrees with the state file", key);
	*dst = val;
}

static void state_load(const char *path, struct opts *o, struct traffic *t)
{
	uint64_t tx_seed = 0, rx_seed = 0, tx_total = 0, rx_total = 0, v;
	unsigned int seen = 0;
	char line[256], *eq, *end;
	FILE *f;

	f = fopen(path, "r");
	if (!f)
		die(1, "cannot read %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		eq = strchr(line, '=');
		if (!eq)
			die(1, "%s: bad line: %s", path, line);
		*eq = 0;
		errno = 0;
		v = strtoull(eq + 1, &end, strstr(line, "hash") ? 16 : 10);
		if (errno || end == eq + 1 || (*end && *end != '\n'))
			die(1, "%s: bad value for %s", path, line);
		if (!strcmp(line, "tx_seed"))		tx_seed = v, seen |= 1;
		else if (!strcmp(line, "rx_seed"))	rx_seed = v, seen |= 2;
		else if (!strcmp(line, "tx_bytes"))	tx_total = v, seen |= 4;
		else if (!strcmp(line, "rx_bytes"))	rx_total = v, seen |= 128;
		else if (!strcmp(line, "tx"))		t->tx.off = v, seen |= 8;
		else if (!strcmp(line, "rx"))		t->rx.off = v, seen |= 16;
		else if (!strcmp(line, "tx_hash"))	t->tx.hash = v, seen |= 32;
		else if (!strcmp(line, "rx_hash"))	t->rx.hash = v, seen |= 64;
		/* Our FIN went out before the pass: the destination must have
		 * it back, we do not send it again. */
		else if (!strcmp(line, "shut"))		t->shut = v, seen |= 256;
	}
	fclose(f);
	if (seen != 511)
		die(1, "%s: incomplete state file", path);
	merge(&o->tx_seed, o->have_tx_seed, tx_seed, "tx-seed");
	merge(&o->rx_seed, o->have_rx_seed, rx_seed, "rx-seed");
	merge(&o->tx_total, o->have_tx_total, tx_total, "tx-bytes");
	merge(&o->rx_total, o->have_rx_total, rx_total, "rx-bytes");
	o->have_tx_total = o->have_rx_total = true;
}

/* ---- connection setup ---- */

static int open_listen(const char *addr)
{
	struct sockaddr_storage ss;
	socklen_t len = parse_addr(addr, &ss);
	int l, s, one = 1;

	l = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0)
		die(1, "socket: %s", strerror(errno));
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l, (struct sockaddr *)&ss, len) || listen(l, 1))
		die(1, "cannot listen on %s: %s", addr, strerror(errno));
	s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (s < 0)
		die(1, "accept on %s: %s", addr, strerror(errno));
	close(l);
	return s;
}

static bool connect_retry(int err)
{
	return err == ECONNREFUSED || err == ENETUNREACH || err == EHOSTUNREACH;
}

static int open_connect(const char *addr)
{
	struct sockaddr_storage ss;
	socklen_t len = parse_addr(addr, &ss);
	int s, i;

	for (i = 0; !terminated; i++) {
		s = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (s < 0)
			die(1, "socket: %s", strerror(errno));
		if (!connect(s, (struct sockaddr *)&ss, len))
			return s;
		if (!connect_retry(errno) || i == CONNECT_TRIES)
			die(1, "cannot connect to %s: %s", addr, strerror(errno));
		close(s);
		sleep_ms(100);
	}
	die(1, "terminated while connecting");
}

static void touch(const char *path)
{
	int fd;

	if (!path)
		return;
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		die(1, "cannot create %s: %s", path, strerror(errno));
	close(fd);
}

/* ---- pacing and stalls ---- */

/* A stall fires once, when the offset reaches st->off in this process;
 * a process that starts past it (a continuation) never stalls. */
static void stall_init(struct stall *st, uint64_t start)
{
	if (st->st == STALL_ARMED && start > st->off)
		st->st = STALL_DONE;
}

/* How many bytes may move now, given the stall. */
static uint64_t stall_allow(struct stall *st, uint64_t off)
{
	uint64_t now;

	switch (st->st) {
	case STALL_ARMED:
		if (off < st->off)
			return st->off - off;
		st->st = STALL_ACTIVE;
		st->end_ns = now_ns() + st->ms * 1000000ULL;
		return 0;
	case STALL_ACTIVE:
		now = now_ns();
		if (now < st->end_ns)
			return 0;
		st->st = STALL_DONE;
		return UINT64_MAX;
	default:
		return UINT64_MAX;
	}
}

/* Paced writes go out in slices of PACE_MS worth of bytes: byte-sized
 * trickles would cost a segment each. */
static uint64_t pace_allow(const struct traffic *t)
{
	uint64_t budget, sent = t->tx.off - t->tx_start, slice;

	if (!t->rate)
		return UINT64_MAX;
	budget = (now_ns() - t->start_ns) * (double)t->rate / 1e9;
	slice = min(t->rate * PACE_MS / 1000 + 1, min(BUF_SIZE, t->tx_total - t->tx.off));
	return budget >= sent + slice ? budget - sent : 0;
}

static size_t tx_want(struct traffic *t)
{
	uint64_t left = t->tx_total - t->tx.off;

	if (!left)
		return 0;
	left = min(left, BUF_SIZE);
	left = min(left, pace_allow(t));
	return min(left, stall_allow(&t->wstall, t->tx.off));
}

static size_t rx_want(struct traffic *t)
{
	if (t->eof)
		return 0;
	/* Past the end we still read, to see EOF or catch surplus bytes. */
	return min(BUF_SIZE, stall_allow(&t->rstall, t->rx.off));
}

/* ---- I/O ---- */

static void __attribute__((noreturn)) io_fail(const char *op, int err)
{
	if (err == ECONNRESET || err == EPIPE)
		die(EXIT_RESET, "connection reset (%s: %s)", op, strerror(err));
	die(1, "%s: %s", op, strerror(err));
}

/* A zero-length recv consumes nothing but still runs TCP's repair check,
 * so it tells whether the socket is taken while we don't move data. */
static enum io probe(struct traffic *t)
{
	if (recv(t->fd, NULL, 0, MSG_DONTWAIT) == 0)
		return IO_AGAIN;
	if (errno == EPERM)
		return IO_TAKEN;
	if (errno == EAGAIN)
		return IO_AGAIN;
	io_fail("recv", errno);
}

static enum io shut_wr(struct traffic *t)
{
	/* shutdown() on a taken socket would queue a FIN behind tcpcp's back. */
	if (probe(t) == IO_TAKEN)
		return IO_TAKEN;
	if (shutdown(t->fd, SHUT_WR))
		io_fail("shutdown", errno);
	t->shut = true;
	return IO_OK;
}

static enum io tx_step(struct traffic *t)
{
	unsigned char buf[BUF_SIZE];
	size_t len = tx_want(t);
	ssize_t n;

	if (t->tx.off == t->tx_total)
		return t->shut ? IO_IDLE : shut_wr(t);
	if (!len)
		return IO_IDLE;
	stream_fill(t->tx.seed, t->tx.off, buf, len);
	n = send(t->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n < 0) {
		if (errno == EAGAIN)
			return IO_AGAIN;
		if (errno == EINVAL)
			return IO_TAKEN;
		io_fail("send", errno);
	}
	t->tx.hash = fnv1a(t->tx.hash, buf, n);
	t->tx.off += n;
	return IO_OK;
}

static void verify(const struct traffic *t, const unsigned char *buf, size_t len)
{
	unsigned char want[BUF_SIZE];
	size_t i;

	if (t->rx.off + len > t->rx_total)
		die(EXIT_MISMATCH, "received %" PRIu64 " bytes, expected %" PRIu64,
		    t->rx.off + len, t->rx_total);
	stream_fill(t->rx.seed, t->rx.off, want, len);
	if (!memcmp(buf, want, len))
		return;
	for (i = 0; buf[i] == want[i]; i++)
		;
	die(EXIT_MISMATCH, "mismatch at offset %" PRIu64 ": got 0x%02x, expected 0x%02x",
	    t->rx.off + i, buf[i], want[i]);
}

static enum io rx_step(struct traffic *t)
{
	unsigned char buf[BUF_SIZE];
	size_t len = rx_want(t);
	ssize_t n;

	if (!len)
		return IO_IDLE;
	n = recv(t->fd, buf, len, MSG_DONTWAIT);
	if (n < 0) {
		if (errno == EAGAIN)
			return IO_AGAIN;
		if (errno == EPERM)
			return IO_TAKEN;
		io_fail("recv", errno);
	}
	if (!n) {
		if (t->rx.off != t->rx_total)
			die(EXIT_MISMATCH, "EOF at offset %" PRIu64 ", expected %" PRIu64 " bytes",
			    t->rx.off, t->rx_total);
		t->eof = true;
		return IO_OK;
	}
	verify(t, buf, n);
	t->rx.hash = fnv1a(t->rx.hash, buf, n);
	t->rx.off += n;
	return IO_OK;
}

/* ---- main loop ---- */

static void wait_io(struct traffic *t)
{
	struct pollfd pfd = { .fd = t->fd };
	uint64_t ptx = pace_allow(t);
	int timeout = TICK_MS;

	if (rx_want(t))
		pfd.events |= POLLIN;
	if (tx_want(t))
		pfd.events |= POLLOUT;
	if (!ptx && t->tx.off < t->tx_total)
		timeout = PACE_MS;
	/* Without events, POLLHUP would wake us at once: just sleep. */
	poll(&pfd, pfd.events ? 1 : 0, timeout);
}

static void print_result(const struct traffic *t, const char *status)
{
	printf("{\"tx\":%" PRIu64 ",\"rx\":%" PRIu64 ",\"tx_hash\":\"%016" PRIx64
	       "\",\"rx_hash\":\"%016" PRIx64 "\",\"%s\":true}\n",
	       t->tx.off, t->rx.off, t->tx.hash, t->rx.hash, status);
	fflush(stdout);
}

static void on_term(struct traffic *t)
{
	if (!t->taken)
		die(1, "terminated at tx %" PRIu64 " rx %" PRIu64, t->tx.off, t->rx.off);
	/* The socket is tcpcp's now: closing it in repair mode is silent. */
	close(t->fd);
	print_result(t, "taken");
	exit(0);
}

static enum io step(struct traffic *t)
{
	enum io r = rx_step(t), w;

	if (r == IO_TAKEN)
		return r;
	w = tx_step(t);
	if (w == IO_TAKEN)
		return w;
	if (r == IO_IDLE && w == IO_IDLE)
		return probe(t);
	return IO_OK;
}

static bool done(const struct traffic *t)
{
	return t->shut && t->eof;
}

/* The state file is written once, when tcpcp takes the socket; a release
 * makes the stream go on. */
static void note(struct traffic *t, enum io r)
{
	if (r == IO_TAKEN && !t->taken)
		state_save(t);
	t->taken = r == IO_TAKEN;
}

static void run(struct traffic *t)
{
	while (!done(t)) {
		if (terminated)
			on_term(t);
		if (t->taken)
			sleep_ms(TICK_MS);
		else
			wait_io(t);
		note(t, step(t));
	}
}

/* Both directions are done, but the socket stays open a while: an
 * application that has sent its FIN and read the peer's but not closed
 * yet (LAST_ACK, CLOSING) can still be taken, and then continues on the
 * destination like any other. */
static void linger(struct traffic *t, unsigned int ms)
{
	uint64_t end = now_ns() + ms * 1000000ULL;

	while (t->taken || now_ns() < end) {
		if (terminated)
			on_term(t);
		note(t, probe(t));
		sleep_ms(TICK_MS);
	}
}

static void on_signal(int sig)
{
	(void)sig;
	terminated = 1;
}

static void setup_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;	/* no SA_RESTART: poll must return */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

static int open_socket(struct opts *o, struct traffic *t)
{
	int fd;

	if (o->state)
		state_load(o->state, o, t);
	if (!o->have_tx_total || !o->have_rx_total)
		die(EXIT_USAGE, "--bytes (or --tx-bytes and --rx-bytes) is required");
	if (o->listen)
		fd = open_listen(o->listen);
	else if (o->connect)
		fd = open_connect(o->connect);
	else
		fd = o->fd;
	/* The kernel paces this socket itself and stamps each segment with
	 * its departure time, ahead of the clock (TCP's EDT). */
	if (o->max_pacing && setsockopt(fd, SOL_SOCKET, SO_MAX_PACING_RATE,
					&o->max_pacing, sizeof(o->max_pacing)))
		die(1, "SO_MAX_PACING_RATE: %s", strerror(errno));
	if (o->rcvbuf && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &o->rcvbuf, sizeof(o->rcvbuf)))
		die(1, "SO_RCVBUF: %s", strerror(errno));
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK))
		die(1, "fd %d: %s", fd, strerror(errno));
	return fd;
}

/* Resurrected from a checkpoint (tcpcp probe --resurrect): the peer has
 * the next @n bytes of our stream already.  They count as sent, in the
 * offset and the hash, as the primary sent them; writing resumes after. */
static void tx_skip(struct traffic *t, uint64_t n)
{
	unsigned char buf[65536];

	if (n > t->tx_total - t->tx.off)
		die(EXIT_USAGE, "--tx-skip beyond --tx-bytes");
	while (n) {
		size_t k = (size_t)min(n, sizeof(buf));

		stream_fill(t->tx.seed, t->tx.off, buf, k);
		t->tx.hash = fnv1a(t->tx.hash, buf, k);
		t->tx.off += k;
		n -= k;
	}
}

int main(int argc, char **argv)
{
	struct traffic t;
	struct opts o;

	parse_opts(argc, argv, &o);
	setup_signals();
	memset(&t, 0, sizeof(t));
	t.tx.hash = t.rx.hash = FNV_OFFSET;
	t.fd = open_socket(&o, &t);
	t.tx_total = o.tx_total;
	t.rx_total = o.rx_total;
	if (t.tx.off > t.tx_total || t.rx.off > t.rx_total)
		die(EXIT_USAGE, "state offsets beyond --bytes");
	t.tx.seed = o.tx_seed;
	t.rx.seed = o.rx_seed;
	tx_skip(&t, o.tx_skip);
	t.rate = o.rate;
	t.rstall = o.rstall;
	t.wstall = o.wstall;
	stall_init(&t.rstall, t.rx.off);
	stall_init(&t.wstall, t.tx.off);
	t.state_out = o.state_out;
	t.start_ns = now_ns();
	t.tx_start = t.tx.off;
	touch(o.ready);
	run(&t);
	linger(&t, o.linger_ms);
	print_result(&t, "ok");
	return 0;
}
