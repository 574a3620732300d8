/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Commands that act on a live socket of a process: get, release, close,
 * activate. */
#include <errno.h>
#include <getopt.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tcpcp.h"
#include "tcpcp-cli.h"

struct target_args {
	const char *pid, *fd, *out, *image;
	unsigned int linger;
};

static void parse(int argc, char **argv, struct target_args *a, const char *extra)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "fd", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ "linger", required_argument, NULL, 'l' },
		{ "image", required_argument, NULL, 'i' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	a->linger = 60;
	optind = 1;
	while ((c = getopt_long(argc, argv, "p:f:o:", opts, NULL)) != -1) {
		if (c != 'p' && c != 'f' && (c == '?' || !extra || !strchr(extra, c)))
			die_usage("%s: unexpected option", argv[0]);
		switch (c) {
		case 'p': a->pid = optarg; break;
		case 'f': a->fd = optarg; break;
		case 'o': a->out = optarg; break;
		case 'i': a->image = optarg; break;
		case 'l':
			a->linger = (unsigned int)strtoul(optarg, &end, 10);
			if (*end || end == optarg)
				die_usage("--linger takes a number of seconds");
			break;
		}
	}
	if (optind != argc)
		die_usage("%s: unexpected argument '%s'", argv[0], argv[optind]);
}

int cmd_get(int argc, char **argv)
{
	struct target_args a = { 0 };
	static struct frozen frozen;
	struct image_out img;
	void *ici = NULL;
	size_t len;
	int s, err, ret = EXIT_FAIL;

	parse(argc, argv, &a, "o");
	if (!a.out)
		die_usage("get: -o FILE is required");
	if ((s = target_fd(a.pid, a.fd)) < 0)
		return EXIT_FAIL;
	if (image_open(&img, a.out))
		goto out;
	if ((err = freeze(&frozen, (pid_t)atol(a.pid)))) {
		image_abort(&img);
		fail("cannot stop process %s to take its socket: %s", a.pid,
		     err == -EPERM ? "it is being traced, or ptrace is not allowed (CAP_SYS_PTRACE)" :
		     err == -EAGAIN ? "it keeps creating threads" : strerror(-err));
		goto out;
	}
	ici = tcpcp_get_ex(s, &len);
	thaw(&frozen);
	if (!ici) {
		image_abort(&img);
		ret = fail("get: %s", tcpcp_strerror());
		goto out;
	}
	err = image_commit(&img, ici, len);
	if (!err) {
		ret = EXIT_OK;
		goto out;
	}
	/* No image, no pass: give the connection back. */
	if (tcpcp_release(s))
		fail("cannot write image %s: %s; releasing the connection failed too: %s",
		     a.out, strerror(err), tcpcp_strerror());
	else
		fail("cannot write image %s: %s; the connection was released and continues here",
		     a.out, strerror(err));
out:
	free(ici);
	close(s);
	return ret;
}

static int on_target(int argc, char **argv, const char *extra,
		     int (*op)(int s, const struct target_args *a))
{
	struct target_args a = { 0 };
	int s, ret = EXIT_OK;

	parse(argc, argv, &a, extra);
	if ((s = target_fd(a.pid, a.fd)) < 0)
		return EXIT_FAIL;
	if (op(s, &a))
		ret = fail("%s: %s", argv[0], tcpcp_strerror());
	close(s);
	return ret;
}

static int do_release(int s, const struct target_args *a)
{
	(void)a;
	return tcpcp_release(s);
}

/* Our copy of the fd is what tcpcp_close() closes; the process keeps its
 * own, in repair mode, so whenever it closes it, nothing is sent. */
static int do_close(int s, const struct target_args *a)
{
	int dup_s = dup(s);

	if (dup_s < 0)
		return -1;
	return tcpcp_close(dup_s, a->linger);
}

static int do_activate(int s, const struct target_args *a)
{
	size_t len = 0;
	void *img = NULL;
	int ret;

	if (a->image && !(img = image_read(a->image, &len)))
		return -1;
	ret = tcpcp_activate_ex(s, img, len);
	free(img);
	return ret;
}

int cmd_release(int argc, char **argv)
{
	return on_target(argc, argv, NULL, do_release);
}

int cmd_close(int argc, char **argv)
{
	return on_target(argc, argv, "l", do_close);
}

int cmd_activate(int argc, char **argv)
{
	return on_target(argc, argv, "i", do_activate);
}
