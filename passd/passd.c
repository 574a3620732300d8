/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tcpcp-passd: the destination's daemon.  It accepts control connections,
 * authenticates them, takes the offered connection and hands the active
 * socket to COMMAND as fd 3 (TCPCP_FD=3), with the origin's application
 * state in a file:
 *
 *   tcpcp-passd --listen ADDR:PORT --key FILE [--once] [--timeout MS]
 *               [--max-sessions N] [--state-dir DIR] [--congestion fresh|carry]
 *               -- COMMAND [ARGS...]
 *
 * In ARGS, {state} becomes the state file and {id} the session number.
 * Each session runs in a child, so a slow or hostile origin holds up no
 * other pass.  Failures are logged as one line naming the cause.
 *
 * Bounds, against clients without the key: a session lasts at most
 * --timeout per message (the greeting included), a frame's length is
 * believed only under a valid tag (lib/pass-frame.c), so a session holds
 * a few KB until it is authenticated, and at most --max-sessions
 * sessions are in progress at once (sessions.c says who makes room).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "sessions.h"
#include "tcpcp-cli.h"
#include "tcpcp.h"

struct args {
	const char *listen, *key, *state_dir;
	int timeout_ms, once, max_sessions;
	enum tcpcp_congestion congestion;
	char **cmd;
};

struct passd {
	const struct args *a;
	const uint8_t *key;
};

static const char usage_text[] =
	"usage: tcpcp passd --listen ADDR:PORT --key FILE [--once] [--timeout MS]\n"
	"                   [--max-sessions N] [--state-dir DIR] [--congestion fresh|carry]\n"
	"                   -- COMMAND [ARGS...]\n"
	"(also as tcpcp-passd)  Accept connections passed by tcpcp pass and run\n"
	"COMMAND with each (fd 3, TCPCP_FD=3; the origin's state in the file\n"
	"{state} names).  --timeout: per message (10000 ms); --max-sessions:\n"
	"sessions in progress at once (16); --congestion carry: each starts\n"
	"with its ICI's window (needs congestion-carry yes in /etc/tcpcp.conf).\n";

static __attribute__((noreturn)) void usage(int status)
{
	usage_exit(usage_text, status);
}

static void parse(int argc, char **argv, struct args *a)
{
	static const struct option lo[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "key", required_argument, NULL, 'k' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "state-dir", required_argument, NULL, 'd' },
		{ "once", no_argument, NULL, '1' },
		{ "max-sessions", required_argument, NULL, 'm' },
		{ "congestion", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*a = (struct args){ .timeout_ms = 10000, .state_dir = "/tmp", .max_sessions = 16 };
	while ((c = getopt_long(argc, argv, "+", lo, NULL)) != -1) {
		switch (c) {
		case 'l': a->listen = optarg; break;
		case 'k': a->key = optarg; break;
		case 'T': a->timeout_ms = atoi(optarg); break;
		case 'd': a->state_dir = optarg; break;
		case '1': a->once = 1; break;
		case 'm': a->max_sessions = atoi(optarg); break;
		case 'c':
			if ((c = parse_congestion(optarg)) < 0)
				usage(EXIT_USAGE);
			a->congestion = (enum tcpcp_congestion)c;
			break;
		case 'h': usage(EXIT_OK);
		default: usage(EXIT_USAGE);
		}
	}
	if (!a->listen || !a->key || optind >= argc)
		usage(EXIT_USAGE);
	if (a->max_sessions < 1 || a->max_sessions > SESSIONS_MAX)
		die("--max-sessions must be 1 to %d", SESSIONS_MAX);
	if (a->timeout_ms < 1)
		die("--timeout must be a positive number of milliseconds");
	a->cmd = argv + optind;
}

/* One session, in its own process: it becomes the handler.  It tells
 * the daemon through @told (close-on-exec) once the origin proved it
 * has the key: from then on the session is not dropped to make room. */
static void session(const struct args *a, const uint8_t *key, int ctl, unsigned long id,
		    int told)
{
	struct tcpcp_create_opts co = TCPCP_CREATE_OPTS_INIT;
	struct tcpcp_pass_recv_opts ro = TCPCP_PASS_RECV_OPTS_INIT;
	struct tcpcp_pass *p;
	char who[64];
	size_t len;
	void *state;
	int s;

	who_is(ctl, who);
	p = tcpcp_pass_open(ctl, TCPCP_PASS_DEST, key, a->timeout_ms);
	if (!p)
		die("session %lu from %s refused: %s", id, who, tcpcp_strerror());
	if (write(told, "A", 1) != 1)
		die("session %lu: cannot tell the daemon: %s", id, strerror(errno));
	co.congestion = a->congestion;
	ro.create = &co;
	s = tcpcp_pass_recv(p, &ro, &state, &len);
	tcpcp_pass_free(p);	/* the message is this thread's, not the session's */
	if (s < 0)
		die("session %lu from %s: not passed: %s", id, who, tcpcp_strerror());
	close(ctl);
	warnx("session %lu from %s: connection active, running %s", id, who, a->cmd[0]);
	run_handler(a->cmd, a->state_dir, s, state, len, id);
}

static void passd_session(void *arg, int ctl, unsigned long id, int told)
{
	const struct passd *d = arg;

	session(d->a, d->key, ctl, id, told);
}

int cmd_passd(int argc, char **argv)
{
	uint8_t key[TCPCP_PASS_KEY_LEN];
	struct args a;
	struct passd d = { &a, key };
	int l;

	parse(argc, argv, &a);
	if (tcpcp_pass_key_load(a.key, key))
		die("%s", tcpcp_strerror());
	l = listen_on(a.listen);
	if (l < 0)
		die("cannot listen on %s: %s", a.listen, strerror(-l));
	fprintf(stderr, "%s: listening on %s\n", prog, a.listen);
	return serve_sessions(l, a.max_sessions, a.once, passd_session, &d);
}
