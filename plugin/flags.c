/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Which CRIU dump flags the plugin can serve, read from CRIU's command line.
 *
 * No hook tells a plugin CRIU's options, and only some of them matter:
 *   --tcp-established  CRIU puts each connection in repair mode, keeps it so
 *                      while it kills the tasks (a silent close) and takes it
 *                      out again when the tasks run on (a failed dump, a failed
 *                      post-dump script, --leave-running).  exit(DUMP) reads
 *                      which of the two happened from that repair mode.
 *   --tcp-close        CRIU leaves the sockets alone at dump: nothing would tell
 *                      the plugin whether the tasks die or run on.  Refused.
 *   --network-lock     skip: the plugin's gate is the only lock (the fast way).
 *                      nftables: CRIU locks each connection again (two
 *                      nftables transactions each) and its table stays on
 *                      this host after a move; served, with a warning.
 *                      iptables (CRIU's default): a restore with --tcp-close
 *                      never removes CRIU's rules, so the restored connection
 *                      would stay cut off on this host.  Refused.
 * Options given through RPC or a configuration file are not visible here:
 * then nothing is refused and the observation at exit still holds.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plugin.h"

#define CMDLINE_MAX (64 << 10)

struct criu_flags {
	bool dump, tcp_established, tcp_close;
	const char *lock;		/* NULL: CRIU's default, iptables */
};

static char *read_cmdline(size_t *len)
{
	char *buf = malloc(CMDLINE_MAX);
	ssize_t n = -1;
	int fd;

	fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	if (buf && fd >= 0)
		n = read(fd, buf, CMDLINE_MAX - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

/* "--name", "--name=value" or "--name value": the value, "" or NULL. */
static const char *long_opt(const char *arg, const char *next, const char *name)
{
	size_t n = strlen(name);

	if (strncmp(arg, "--", 2) || strncmp(arg + 2, name, n))
		return NULL;
	if (arg[2 + n] == '=')
		return arg + 3 + n;
	if (arg[2 + n])
		return NULL;
	return next ? next : "";
}

static void parse(const char *buf, size_t len, struct criu_flags *f)
{
	const char *p = buf, *end = buf + len, *v;

	for (; p < end; p += strlen(p) + 1) {
		const char *next = p + strlen(p) + 1 < end ? p + strlen(p) + 1 : NULL;

		if (!strcmp(p, "dump"))
			f->dump = true;
		else if (!strcmp(p, "--tcp-established"))
			f->tcp_established = true;
		else if (!strcmp(p, "--tcp-close"))
			f->tcp_close = true;
		else if ((v = long_opt(p, next, "network-lock")))
			f->lock = v;
	}
}

/* 0 if the plugin can serve this dump of @n connections, else -1 after
 * one line in CRIU's log saying what to change. */
int flags_check(size_t n)
{
	struct criu_flags f = { 0 };
	const char *why = NULL;
	size_t len;
	char *buf;

	buf = read_cmdline(&len);
	if (buf)
		parse(buf, len, &f);
	if (!f.dump) {
		pr_warn("CRIU's options are not on its command line (RPC?): not checked; "
			"dump with --tcp-established --network-lock skip\n");
		free(buf);
		return 0;
	}
	if (f.tcp_close)
		why = "--tcp-close at dump leaves the sockets alone, so the plugin cannot tell "
		      "whether the tasks die or run on";
	else if (!f.tcp_established)
		why = "without --tcp-established CRIU refuses established connections";
	else if (!f.lock || !strcmp(f.lock, "iptables"))
		why = "with the iptables network lock (CRIU's default) a restore with --tcp-close "
		      "never removes CRIU's rules for these connections";
	if (why)
		pr_err("refusing to dump %zu TCP connection(s): %s; dump with --tcp-established "
		       "--network-lock skip\n", n, why);
	else if (strcmp(f.lock, "skip") && strcmp(f.lock, "none"))
		pr_warn("--network-lock %s: CRIU locks each connection again behind the plugin's "
			"gate (slower) and its table stays on this host after a move; "
			"--network-lock skip is enough\n", f.lock);
	free(buf);
	return why ? -1 : 0;
}
