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
 * sessions are in progress at once.  When they are, a newcomer takes the
 * room of the oldest session whose client has not shown the key yet
 * (killed, with a line in the log), so clients without the key cannot
 * keep an origin out; it is refused only when all of them have.  Each
 * session holds a pipe's write end, close-on-exec: a byte says it is
 * authenticated, EOF that its handler started or it ended.
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
#include "tcpcp-cli.h"
#include "tcpcp.h"

#define SESSIONS_MAX	1024	/* what --max-sessions may say */

struct args {
	const char *listen, *key, *state_dir;
	int timeout_ms, once, max_sessions;
	enum tcpcp_congestion congestion;
	char **cmd;
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

static char *subst(const char *arg, const char *state, unsigned long id)
{
	char ids[24], *out;
	const char *p;
	size_t n = 0, cap = strlen(arg) + strlen(state) * 4 + 64;

	snprintf(ids, sizeof(ids), "%lu", id);
	out = malloc(cap);
	if (!out)
		die("out of memory");
	for (p = arg; *p && n + strlen(state) + sizeof(ids) < cap; ) {
		if (!strncmp(p, "{state}", 7)) {
			n += (size_t)sprintf(out + n, "%s", state);
			p += 7;
		} else if (!strncmp(p, "{id}", 4)) {
			n += (size_t)sprintf(out + n, "%s", ids);
			p += 4;
		} else {
			out[n++] = *p++;
		}
	}
	out[n] = '\0';
	return out;
}

static void write_state(const char *path, const void *buf, size_t len)
{
	/* O_EXCL: in a shared directory, never write through someone's link. */
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0 || write(fd, buf, len) != (ssize_t)len || close(fd))
		die("cannot write the application state to %s: %s", path, strerror(errno));
}

static void run_handler(const struct args *a, int s, const void *state, size_t len,
			unsigned long id)
{
	char path[4096], **argv;
	int i, n;

	snprintf(path, sizeof(path), "%s/tcpcp-passd.%d.%lu.state", a->state_dir,
		 (int)getppid(), id);
	write_state(path, state, len);
	for (n = 0; a->cmd[n]; n++)
		;
	argv = calloc((size_t)n + 1, sizeof(*argv));
	if (!argv)
		die("out of memory");
	for (i = 0; i < n; i++)
		argv[i] = subst(a->cmd[i], path, id);
	/* dup2() clears close-on-exec; a socket already on 3 keeps it. */
	if (s == 3 ? fcntl(s, F_SETFD, 0) : dup2(s, 3) < 0 || close(s))
		die("cannot put the socket on fd 3: %s", strerror(errno));
	setenv("TCPCP_FD", "3", 1);
	setenv("TCPCP_STATE_FILE", path, 1);
	execvp(argv[0], argv);
	die("cannot run %s: %s", argv[0], strerror(errno));
}

/* Who is at the other end of @ctl, for the log. */
static void who_is(int ctl, char who[64])
{
	struct sockaddr_storage from;
	socklen_t flen = sizeof(from);

	if (getpeername(ctl, (struct sockaddr *)&from, &flen))
		snprintf(who, 64, "?");
	else
		sockaddr_str(&from, who, 64);
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
	if (s < 0)
		die("session %lu from %s: not passed: %s", id, who, tcpcp_strerror());
	tcpcp_pass_free(p);
	close(ctl);
	warnx("session %lu from %s: connection active, running %s", id, who, a->cmd[0]);
	run_handler(a, s, state, len, id);
}

/* The sessions running the protocol, oldest first, each with the read
 * end of a pipe whose write end it holds: a byte when the origin has
 * authenticated, EOF when the handler starts or the session ends. */
struct session {
	int fd;
	pid_t pid;
	unsigned long id;
	bool authed;
};

struct sessions {
	struct session s[SESSIONS_MAX];
	int n;
};

static void drop(struct sessions *ss, int i)
{
	close(ss->s[i].fd);
	ss->n--;
	memmove(&ss->s[i], &ss->s[i + 1], (size_t)(ss->n - i) * sizeof(ss->s[0]));
}

static void reap(struct sessions *ss)
{
	struct pollfd pfd;
	char c;
	int i = 0;

	while (i < ss->n) {
		pfd = (struct pollfd){ .fd = ss->s[i].fd, .events = POLLIN };
		if (poll(&pfd, 1, 0) == 1 && read(ss->s[i].fd, &c, 1) == 1) {
			ss->s[i].authed = true;
			continue;	/* and look again: it may have ended too */
		}
		if (pfd.revents)
			drop(ss, i);
		else
			i++;
	}
}

/* Full: the oldest session whose client has not shown the key yet makes
 * room (clients without the key cannot keep others out); if every one
 * has, the newcomer is refused. */
static bool make_room(struct sessions *ss, int ctl, unsigned long id)
{
	char who[64];
	int i;

	for (i = 0; i < ss->n && ss->s[i].authed; i++)
		;
	if (i < ss->n) {
		warnx("session %lu dropped: not authenticated yet, and session %lu needs its room "
		      "(--max-sessions)", ss->s[i].id, id);
		kill(ss->s[i].pid, SIGKILL);
		drop(ss, i);
		return true;
	}
	who_is(ctl, who);
	warnx("session %lu from %s refused: %d sessions in progress (--max-sessions)",
	      id, who, ss->n);
	return false;
}

int cmd_passd(int argc, char **argv)
{
	uint8_t key[TCPCP_PASS_KEY_LEN];
	struct sigaction sa = { .sa_handler = SIG_IGN, .sa_flags = SA_NOCLDWAIT };
	static struct sessions ss;
	unsigned long id = 0;
	struct args a;
	int l, ctl, status, i, done[2];
	pid_t pid;

	parse(argc, argv, &a);
	if (tcpcp_pass_key_load(a.key, key))
		die("%s", tcpcp_strerror());
	l = listen_on(a.listen);
	if (l < 0)
		die("cannot listen on %s: %s", a.listen, strerror(-l));
	if (!a.once)
		sigaction(SIGCHLD, &sa, NULL);	/* handlers reap themselves */
	fprintf(stderr, "%s: listening on %s\n", prog, a.listen);
	for (double kept = 0;;) {
		ctl = accept_next(l);
		keep_gate(l, &kept);
		reap(&ss);
		if (ss.n >= a.max_sessions && !make_room(&ss, ctl, id)) {
			close(ctl);
			id++;
			continue;
		}
		if (pipe2(done, O_CLOEXEC))
			die("pipe: %s", strerror(errno));
		pid = fork();
		if (pid < 0)
			die("fork: %s", strerror(errno));
		if (!pid) {
			close(l);
			close(done[0]);
			for (i = 0; i < ss.n; i++)
				close(ss.s[i].fd);
			session(&a, key, ctl, id, done[1]);
		}
		close(done[1]);
		ss.s[ss.n++] = (struct session){ .fd = done[0], .pid = pid, .id = id };
		close(ctl);
		id++;
		if (a.once) {
			waitpid(pid, &status, 0);
			return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
		}
	}
}
