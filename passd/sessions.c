/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the two daemons that take connections share (tcpcp passd, the
 * destination of live passes; tcpcp standby, restore/, the standby of
 * fail-over): control sessions accepted and each run in a child, so a
 * slow or hostile client holds up no other, and the handler a taken
 * connection is handed to.
 *
 * Bounds, against clients without the key: at most max_sessions
 * sessions are in progress at once.  When they are, a newcomer takes the
 * room of the oldest session whose client has not shown the key yet
 * (killed, with a line in the log), so clients without the key cannot
 * keep others out; it is refused only when all of them have.  Each
 * session holds a pipe's write end, close-on-exec: a byte says it is
 * authenticated, EOF that its handler started or it ended.
 */
#include <errno.h>
#include <fcntl.h>
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
#include "tcpcp.h"

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

void run_handler(char **cmd, const char *state_dir, int s, const void *state, size_t len,
		 unsigned long id)
{
	char path[4096], **argv;
	int i, n;

	snprintf(path, sizeof(path), "%s/%s.%d.%d.%lu.state", state_dir, prog, (int)getppid(),
		 (int)getpid(), id);
	write_state(path, state, len);
	for (n = 0; cmd[n]; n++)
		;
	argv = calloc((size_t)n + 1, sizeof(*argv));
	if (!argv)
		die("out of memory");
	for (i = 0; i < n; i++)
		argv[i] = subst(cmd[i], path, id);
	/* dup2() clears close-on-exec; a socket already on 3 keeps it. */
	if (s == 3 ? fcntl(s, F_SETFD, 0) : dup2(s, 3) < 0 || close(s))
		die("cannot put the socket on fd 3: %s", strerror(errno));
	setenv("TCPCP_FD", "3", 1);
	setenv("TCPCP_STATE_FILE", path, 1);
	execvp(argv[0], argv);
	die("cannot run %s: %s", argv[0], strerror(errno));
}

/* Who is at the other end of @ctl, for the log. */
void who_is(int ctl, char who[64])
{
	struct sockaddr_storage from;
	socklen_t flen = sizeof(from);

	if (getpeername(ctl, (struct sockaddr *)&from, &flen))
		snprintf(who, 64, "?");
	else
		sockaddr_str(&from, who, 64);
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


int serve_sessions(int l, int max_sessions, bool once,
		   void (*run)(void *arg, int ctl, unsigned long id, int told), void *arg)
{
	struct sigaction sa = { .sa_handler = SIG_IGN, .sa_flags = SA_NOCLDWAIT };
	static struct sessions ss;
	unsigned long id = 0;
	int ctl, status, i, done[2];
	pid_t pid;

	if (!once)
		sigaction(SIGCHLD, &sa, NULL);	/* handlers reap themselves */
	for (double kept = 0;;) {
		ctl = accept_next(l);
		keep_gate(l, &kept);
		reap(&ss);
		if (ss.n >= max_sessions && !make_room(&ss, ctl, id)) {
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
			run(arg, ctl, id, done[1]);
			_exit(0);
		}
		close(done[1]);
		ss.s[ss.n++] = (struct session){ .fd = done[0], .pid = pid, .id = id };
		close(ctl);
		id++;
		if (once) {
			waitpid(pid, &status, 0);
			return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
		}
	}
}
