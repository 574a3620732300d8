/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tcpcp-dispatcher: the paper's dispatcher (section 1.3).  It accepts a
 * client, reads the HTTP request line and headers, picks a worker round
 * robin and passes the connection there with the request path as the
 * application state; the worker answers.  A pass that fails leaves the
 * connection here, and the dispatcher answers 503 itself.
 *
 *   tcpcp-dispatcher --listen ADDR:PORT --key FILE
 *                    --worker CTLADDR:PORT[=SWITCH] ... [--switch-back SWITCH]
 *
 * SWITCH moves the connection's traffic to that worker's host (e.g.
 * flow:GATEWAY:MARK, so that only this connection moves).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "demo.h"

const char *prog = "tcpcp-dispatcher";

#define MAX_WORKERS 16

struct worker {
	char *ctl;
	struct tcpcp_switch *to;
};

static void usage(void)
{
	fputs("usage: tcpcp-dispatcher --listen ADDR:PORT --key FILE\n"
	      "                        --worker CTLADDR:PORT[=SWITCH] ... [--switch-back SWITCH]\n",
	      stderr);
	exit(2);
}


static void add_worker(struct worker *w, char *arg)
{
	char *eq = strchr(arg, '=');

	w->ctl = arg;
	if (eq) {
		*eq = '\0';
		w->to = switch_new_or_die(eq + 1);
	}
}

static void refuse(int s, int code, const char *reason)
{
	char body[128];
	int n = snprintf(body, sizeof(body), "%d %s\n", code, reason);

	if (http_header(s, code, reason, n, NULL) > 0)
		send_all(s, body, (size_t)n);
	shutdown(s, SHUT_WR);
}

static void dispatch(int s, struct worker *w, const struct tcpcp_switch *back,
		     const uint8_t *key)
{
	struct tcpcp_pass_send_opts o = { .size = sizeof(o), .to = w->to, .back = back,
					  .linger_s = 60 };
	char path[1024];
	int err;

	err = http_read_request(s, path, sizeof(path));
	if (err) {
		warnx("bad request: %s", strerror(-err));
		refuse(s, 400, "Bad Request");
		close(s);
		return;
	}
	if (demo_pass(s, w->ctl, key, path, strlen(path), &o) >= 0) {
		fprintf(stderr, "%s: %s -> %s\n", prog, path, w->ctl);
		return;		/* tcpcp_close()d: it lives at the worker now */
	}
	refuse(s, 503, "Service Unavailable");
	close(s);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "key", required_argument, NULL, 'k' },
		{ "worker", required_argument, NULL, 'w' },
		{ "switch-back", required_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	struct worker workers[MAX_WORKERS] = { { 0 } };
	uint8_t key[TCPCP_PASS_KEY_LEN];
	const char *listen_addr = NULL, *key_file = NULL;
	struct tcpcp_switch *back = NULL;
	unsigned int n = 0, next = 0;
	int c, l, s;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'l': listen_addr = optarg; break;
		case 'k': key_file = optarg; break;
		case 'w':
			if (n == MAX_WORKERS)
				die("at most %d workers", MAX_WORKERS);
			add_worker(&workers[n++], optarg);
			break;
		case 'b': back = switch_new_or_die(optarg); break;
		default: usage();
		}
	}
	if (!listen_addr || !key_file || !n || optind != argc)
		usage();
	if (tcpcp_pass_key_load(key_file, key))
		die("%s", tcpcp_strerror());
	l = listen_on(listen_addr);
	if (l < 0)
		die("cannot listen on %s: %s", listen_addr, strerror(-l));
	fprintf(stderr, "%s: listening on %s, %u workers\n", prog, listen_addr, n);
	for (;;) {
		s = accept_next(l);
		dispatch(s, &workers[next], back, key);
		next = (next + 1) % n;
	}
}
