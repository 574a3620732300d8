/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tcpcp-fileserver: a static HTTP file server that sheds a large download
 * mid-transfer (paper section 1): after --pass-after bytes of a body it
 * passes the connection to another tcpcp-fileserver with the application
 * state "PATH\nOFFSET\n", and that one sends the rest.  OFFSET counts the
 * body bytes the kernel accepted; those not yet acknowledged travel in the
 * ICI's send queue, so the client's byte stream has no gap or overlap.
 *
 *   tcpcp-fileserver --root DIR --key FILE [--listen ADDR:PORT]
 *                    [--ctl ADDR:PORT] [--pass-to CTLADDR:PORT
 *                    --pass-after BYTES [--switch-to S] [--switch-back S]]
 *
 * --listen serves clients, --ctl takes passed downloads; both may be set.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "demo.h"

const char *prog = "tcpcp-fileserver";

#define CHUNK	(64 * 1024)

struct cfg {
	const char *root, *key_file, *listen, *ctl, *pass_to;
	long long pass_after;
	struct tcpcp_pass_send_opts o;
	uint8_t key[TCPCP_PASS_KEY_LEN];
};

static void usage(void)
{
	fputs("usage: tcpcp-fileserver --root DIR --key FILE [--listen ADDR:PORT] [--ctl ADDR:PORT]\n"
	      "           [--pass-to CTLADDR:PORT --pass-after BYTES [--switch-to S] [--switch-back S]]\n",
	      stderr);
	exit(2);
}

/* true: the connection went elsewhere */
static bool shed(struct cfg *c, int s, const char *path, long long off)
{
	char state[1200];
	int n = snprintf(state, sizeof(state), "%s\n%lld\n", path, off);

	if (demo_pass(s, c->pass_to, c->key, state, (size_t)n, &c->o) < 0)
		return false;
	fprintf(stderr, "%s: passed %s at offset %lld to %s\n", prog, path, off, c->pass_to);
	return true;
}

static void send_body(struct cfg *c, int s, int fd, const char *path, long long off,
		      bool may_pass)
{
	static char buf[CHUNK];
	ssize_t n, sent;

	for (;;) {
		if (may_pass && off >= c->pass_after) {
			if (shed(c, s, path, off))
				return;
			may_pass = false;	/* released: we carry on */
		}
		n = pread(fd, buf, sizeof(buf), off);
		if (n <= 0)
			break;
		sent = send(s, buf, (size_t)n, MSG_NOSIGNAL);
		if (sent < 0 && errno == EINTR)
			continue;
		if (sent < 0) {
			warnx("%s: send at offset %lld: %s", path, off, strerror(errno));
			close(s);
			return;
		}
		off += sent;
	}
	demo_finish(s);
}

static void serve_client(struct cfg *c, int s)
{
	char path[1024];
	struct stat st;
	int fd;

	if (http_read_request(s, path, sizeof(path))) {
		demo_finish(s);
		return;
	}
	fd = open_under(c->root, path);
	if (fd < 0 || fstat(fd, &st)) {
		http_header(s, 404, "Not Found", 0, NULL);
		demo_finish(s);
		return;
	}
	if (!http_header(s, 200, "OK", (long long)st.st_size, NULL))
		send_body(c, s, fd, path, 0, c->pass_to != NULL);
	close(fd);
}

struct download {
	const char *root;
	char path[1024];
	long long off;
	int fd;
};

/* Refuse before the endpoint exists, so that the origin keeps serving:
 * once activated, a download we cannot continue could only be cut. */
static int check_download(void *arg, const void *state, size_t len, const char **why)
{
	struct download *d = arg;
	char text[1100];

	if (!len) {
		*why = "no download state";
		return -1;
	}
	snprintf(text, sizeof(text), "%.*s", (int)(len < sizeof(text) ? len : sizeof(text) - 1),
		 (const char *)state);
	if (sscanf(text, "%1023[^\n]\n%lld", d->path, &d->off) != 2 || d->off < 0) {
		*why = "malformed download state";
		return -1;
	}
	d->fd = open_under(d->root, d->path);
	if (d->fd < 0) {
		*why = "the file is not here";
		return -1;
	}
	return 0;
}

static void take_download(struct cfg *c, int ctl)
{
	struct download d = { .root = c->root, .fd = -1 };
	struct tcpcp_pass_recv_opts o = { .size = sizeof(o), .check = check_download, .arg = &d };
	char *state = NULL;
	int s;

	s = demo_take(ctl, c->key, &state, &o);
	if (s >= 0) {
		fprintf(stderr, "%s: continuing %s at offset %lld\n", prog, d.path, d.off);
		send_body(c, s, d.fd, d.path, d.off, false);
	}
	if (d.fd >= 0)
		close(d.fd);
	free(state);
}

static void parse(int argc, char **argv, struct cfg *c)
{
	static const struct option lo[] = {
		{ "root", required_argument, NULL, 'r' },
		{ "key", required_argument, NULL, 'k' },
		{ "listen", required_argument, NULL, 'l' },
		{ "ctl", required_argument, NULL, 'c' },
		{ "pass-to", required_argument, NULL, 'p' },
		{ "pass-after", required_argument, NULL, 'a' },
		{ "switch-to", required_argument, NULL, 't' },
		{ "switch-back", required_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	int o;

	while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (o) {
		case 'r': c->root = optarg; break;
		case 'k': c->key_file = optarg; break;
		case 'l': c->listen = optarg; break;
		case 'c': c->ctl = optarg; break;
		case 'p': c->pass_to = optarg; break;
		case 'a': c->pass_after = atoll(optarg); break;
		case 't':
		case 'b':
			*(o == 't' ? &c->o.to : &c->o.back) = switch_new_or_die(optarg);
			break;
		default: usage();
		}
	}
	if (!c->root || !c->key_file || (!c->listen && !c->ctl) || optind != argc)
		usage();
}

static int listener(const char *addr)
{
	int l;

	if (!addr)
		return -1;
	l = listen_on(addr);
	if (l < 0)
		die("cannot listen on %s: %s", addr, strerror(-l));
	return l;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = SIG_IGN, .sa_flags = SA_NOCLDWAIT };
	struct cfg c = { .o = { .size = sizeof(c.o), .linger_s = 60 } };
	struct pollfd pfd[2];
	int i, s;

	parse(argc, argv, &c);
	if (tcpcp_pass_key_load(c.key_file, c.key))
		die("%s", tcpcp_strerror());
	pfd[0] = (struct pollfd){ .fd = listener(c.listen), .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = listener(c.ctl), .events = POLLIN };
	sigaction(SIGCHLD, &sa, NULL);
	fprintf(stderr, "%s: ready\n", prog);
	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll: %s", strerror(errno));
		}
		for (i = 0; i < 2; i++) {
			if (!(pfd[i].revents & POLLIN))
				continue;
			s = accept4(pfd[i].fd, NULL, NULL, SOCK_CLOEXEC);
			if (s < 0)
				continue;
			if (fork() == 0) {
				close(pfd[0].fd);
				close(pfd[1].fd);
				if (i == 0)
					serve_client(&c, s);
				else
					take_download(&c, s);
				exit(0);
			}
			close(s);
		}
	}
}
