/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tcpcp-worker: a farm member for tcpcp-dispatcher.  It takes passed
 * connections on its control address; the application state is the
 * request path, and the worker answers it with the file under --root.
 *
 *   tcpcp-worker --ctl ADDR:PORT --key FILE --name NAME --root DIR
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "demo.h"

const char *prog = "tcpcp-worker";

static void usage(void)
{
	fputs("usage: tcpcp-worker --ctl ADDR:PORT --key FILE --name NAME --root DIR\n", stderr);
	exit(2);
}

static void answer(int s, const char *path, const char *root, const char *name)
{
	char extra[128], buf[65536];
	struct stat st;
	ssize_t n;
	int fd;

	snprintf(extra, sizeof(extra), "X-Worker: %s\r\n", name);
	fd = open_under(root, path);
	if (fd < 0 || fstat(fd, &st)) {
		const char msg[] = "404 Not Found\n";

		http_header(s, 404, "Not Found", sizeof(msg) - 1, extra);
		send_all(s, msg, sizeof(msg) - 1);
	} else if (http_header(s, 200, "OK", (long long)st.st_size, extra) > 0) {
		while ((n = read(fd, buf, sizeof(buf))) > 0 && !send_all(s, buf, (size_t)n))
			;
	}
	if (fd >= 0)
		close(fd);
	demo_finish(s);
}

struct job {
	int s;
	char *path;
	const char *root, *name;
};

static void *answer_job(void *arg)
{
	struct job *j = arg;

	fprintf(stderr, "%s %s: serving %s\n", prog, j->name, j->path);
	answer(j->s, j->path, j->root, j->name);
	free(j->path);
	free(j);
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "ctl", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },
		{ "name", required_argument, NULL, 'n' },
		{ "root", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	const char *ctl_addr = NULL, *key_file = NULL, *name = "worker", *root = ".";
	uint8_t key[TCPCP_PASS_KEY_LEN];
	char *path;
	int c, l, ctl, s;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'c': ctl_addr = optarg; break;
		case 'k': key_file = optarg; break;
		case 'n': name = optarg; break;
		case 'r': root = optarg; break;
		default: usage();
		}
	}
	if (!ctl_addr || !key_file || optind != argc)
		usage();
	if (tcpcp_pass_key_load(key_file, key))
		die("%s", tcpcp_strerror());
	l = listen_on(ctl_addr);
	if (l < 0)
		die("cannot listen on %s: %s", ctl_addr, strerror(-l));
	fprintf(stderr, "%s %s: taking connections on %s\n", prog, name, ctl_addr);
	/* The pass happens here, the answer in a thread: a child forked per
	 * pass would take it with a cold copy of this process, its first
	 * writes to each page faulting, and one forked after the pass would
	 * put the fork before the first byte of the answer (0.2-0.5 ms more
	 * per pass either way, here).  Passes are therefore taken one at a
	 * time, each bounded by the protocol's timeouts. */
	for (double kept = 0;;) {
		struct job *j;
		pthread_t t;

		ctl = accept_next(l);
		keep_gate(l, &kept);
		s = demo_take(ctl, key, &path, NULL);
		close(ctl);
		if (s < 0)
			continue;
		j = malloc(sizeof(*j));
		if (!j) {
			demo_finish(s);
			free(path);
			continue;
		}
		*j = (struct job){ s, path, root, name };
		if (pthread_create(&t, NULL, answer_job, j)) {
			demo_finish(s);
			free(path);
			free(j);
			continue;
		}
		pthread_detach(t);
	}
}
