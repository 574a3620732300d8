/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tcpcp-pass: pass a live connection of another process to a destination
 * running tcpcp-passd (or any tcpcp_pass_recv() caller).
 *
 *   tcpcp-pass --to ADDR:PORT --key FILE --pid PID --fd FD
 *              [--state-file FILE | --state TEXT] [--switch-to SPEC]
 *              [--switch-back SPEC] [--linger S] [--timeout MS]
 *
 * The control connection is authenticated before the connection is
 * touched, so a wrong key or an absent destination leaves it as it was.
 * --state-file waits for the process to write its application state once
 * it notices the isolation (tcpcp-traffic's --state-out).
 * Exit: 0 passed, 1 not passed (the connection continues here), 2 usage,
 * 3 passed but not confirmed.  stdout: one JSON line with timestamps.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "tcpcp-cli.h"
#include "tcpcp.h"

struct args {
	const char *to, *key, *state_file, *state, *sw_to, *sw_back, *pid_s, *fd_s;
	long pid;
	unsigned int linger;
	int timeout_ms;
	enum tcpcp_congestion congestion;
};

static const char usage_text[] =
	"usage: tcpcp pass --to ADDR:PORT --key FILE --pid PID --fd FD\n"
	"                  [--state-file FILE | --state TEXT]\n"
	"                  [--switch-to SPEC] [--switch-back SPEC]\n"
	"                  [--linger SECONDS] [--timeout MS] [--congestion fresh|carry]\n"
	"(also as tcpcp-pass)  Pass the connection on fd FD of process PID to the\n"
	"tcpcp passd at ADDR:PORT; prints {\"result\": passed|released|unconfirmed}.\n"
	"--congestion carry asks the destination to start with the connection's\n"
	"window; it refuses unless its tcpcp.conf says congestion-carry yes.\n"
	"Exit status: 0 passed; 1 released, it continues here; 3 unconfirmed.\n";

static __attribute__((noreturn)) void usage(int status)
{
	usage_exit(usage_text, status);
}

static void parse(int argc, char **argv, struct args *a)
{
	static const struct option lo[] = {
		{ "to", required_argument, NULL, 't' },
		{ "key", required_argument, NULL, 'k' },
		{ "pid", required_argument, NULL, 'p' },
		{ "fd", required_argument, NULL, 'f' },
		{ "state-file", required_argument, NULL, 'S' },
		{ "state", required_argument, NULL, 's' },
		{ "switch-to", required_argument, NULL, 'w' },
		{ "switch-back", required_argument, NULL, 'b' },
		{ "linger", required_argument, NULL, 'l' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "congestion", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*a = (struct args){ .linger = 60, .timeout_ms = 5000 };
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 't': a->to = optarg; break;
		case 'k': a->key = optarg; break;
		case 'p': a->pid_s = optarg; break;
		case 'f': a->fd_s = optarg; break;
		case 'S': a->state_file = optarg; break;
		case 's': a->state = optarg; break;
		case 'w': a->sw_to = optarg; break;
		case 'b': a->sw_back = optarg; break;
		case 'l': a->linger = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 'T': a->timeout_ms = atoi(optarg); break;
		case 'c':
			if ((c = parse_congestion(optarg)) < 0)
				usage(EXIT_USAGE);
			a->congestion = (enum tcpcp_congestion)c;
			break;
		case 'h': usage(EXIT_OK);
		default: usage(EXIT_USAGE);
		}
	}
	if (optind != argc || !a->to || !a->key || !a->pid_s || !a->fd_s ||
	    (a->state && a->state_file))
		usage(EXIT_USAGE);
	a->pid = strtol(a->pid_s, NULL, 10);	/* target_fd() checks it */
}

/* The process writes its state (atomically) once it sees the isolation;
 * looked for every millisecond, as the connection waits meanwhile.  The
 * file is removed before the isolation (forget_state()): one left by an
 * earlier attempt that rolled back would describe an older offset. */
static void forget_state(const char *path)
{
	if (path && unlink(path) && errno != ENOENT)
		die("cannot remove the old application state %s: %s", path, strerror(errno));
}

static char *wait_state(const char *path, int timeout_ms, size_t *len)
{
	struct timespec nap = { 0, 1000 * 1000 };
	char *buf = NULL;
	struct stat st;
	int fd, i;
	ssize_t n;

	for (i = 0; i < timeout_ms && stat(path, &st); i++)
		nanosleep(&nap, NULL);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) || !(buf = malloc((size_t)st.st_size + 1)) ||
	    (n = read(fd, buf, (size_t)st.st_size)) != st.st_size) {
		if (fd >= 0)
			close(fd);
		free(buf);
		return NULL;
	}
	close(fd);
	*len = (size_t)n;
	return buf;
}


int cmd_pass(int argc, char **argv)
{
	uint8_t key[TCPCP_PASS_KEY_LEN];
	struct tcpcp_pass_send_opts so = TCPCP_PASS_SEND_OPTS_INIT;
	struct frozen frozen;
	struct tcpcp_pass *p;
	size_t ici_len, state_len = 0;
	char *state = NULL;
	double t_isolate, t_done;
	int ctl, s, ret;
	struct args a;
	void *ici;

	parse(argc, argv, &a);
	so.to = switch_new_or_die(a.sw_to);
	so.back = switch_new_or_die(a.sw_back);
	so.linger_s = a.linger;
	so.congestion = a.congestion;
	if (tcpcp_pass_key_load(a.key, key))
		die("%s", tcpcp_strerror());
	s = target_fd(a.pid_s, a.fd_s);
	if (s < 0)
		return EXIT_FAIL;
	ctl = connect_to(a.to, a.timeout_ms);
	if (ctl < 0)
		die("cannot reach the destination %s: %s", a.to, strerror(-ctl));
	p = tcpcp_pass_open(ctl, TCPCP_PASS_ORIGIN, key, a.timeout_ms);
	if (!p)
		die("%s", tcpcp_strerror());
	forget_state(a.state_file);
	if ((ret = freeze(&frozen, (pid_t)a.pid)))
		die("cannot stop process %ld while taking its connection: %s", a.pid,
		    strerror(-ret));
	t_isolate = now_real();
	ici = tcpcp_get_ex(s, &ici_len);
	thaw(&frozen);
	if (!ici)
		die("%s", tcpcp_strerror());
	if (a.state) {
		state = strdup(a.state);
		state_len = strlen(a.state);
	} else if (a.state_file && !(state = wait_state(a.state_file, a.timeout_ms, &state_len))) {
		/* Refuse to pass without it: the far side could not continue. */
		if (tcpcp_release(s))
			die("no application state in %s, and release failed: %s",
			    a.state_file, tcpcp_strerror());
		die("no application state in %s; the connection was released", a.state_file);
	}
	ret = tcpcp_pass_send(p, s, ici, ici_len, state, state_len, &so);
	t_done = now_real();
	if (ret < 0)
		fprintf(stderr, "%s: %s; the connection was released and continues here\n",
			prog, tcpcp_strerror());
	else if (ret == TCPCP_PASS_UNCONFIRMED)
		fprintf(stderr, "%s: %s\n", prog, tcpcp_strerror());
	printf("{\"result\": \"%s\", \"isolated\": %.6f, \"done\": %.6f}\n",
	       ret < 0 ? "released" : ret ? "unconfirmed" : "passed", t_isolate, t_done);
	tcpcp_pass_free(p);
	tcpcp_switch_free((struct tcpcp_switch *)so.to);
	tcpcp_switch_free((struct tcpcp_switch *)so.back);
	free(ici);
	free(state);
	close(ctl);
	return ret < 0 ? 1 : ret ? 3 : 0;
}
