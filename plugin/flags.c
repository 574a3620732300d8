/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Which CRIU dump flags the plugin can serve, and what CRIU does with the
 * tasks after the dump.
 *
 * No hook tells a plugin CRIU's options, and only some of them matter:
 *   --tcp-close        CRIU leaves the sockets to the plugin: it neither
 *                      repairs nor locks them, so the plugin's gate and
 *                      repair mode are all there is (the fast way, and the
 *                      one a single configuration file serves at dump and
 *                      restore: CRIU's restore needs --tcp-close anyway).
 *   --tcp-established  without --tcp-close: CRIU repairs each socket again
 *                      and dumps it (its own images stay complete), locks
 *                      it with its network-lock method, and takes it out of
 *                      repair mode when the tasks run on.
 *   --network-lock     matters only with --tcp-established alone:
 *                      skip: the plugin's gate is the only lock.
 *                      nftables: CRIU locks each connection again (two
 *                      nftables transactions each) and its table stays on
 *                      this host after a move; served, with a warning.
 *                      iptables (CRIU's default): a restore with --tcp-close
 *                      never removes CRIU's rules, so the restored connection
 *                      would stay cut off on this host.  Refused.
 * They are read from CRIU's command line.  Options given through RPC (runc,
 * podman) or a configuration file are not visible there; then nothing is
 * refused, and what happens to the tasks is read from CRIU itself.
 *
 * Kill or resume: opts.final_state, the first member of CRIU's struct
 * cr_options from 3.x to today (criu/include/cr_options.h), exported by the
 * criu binary (linked -rdynamic so that plugins find print_on_level).  Its
 * values are compel's task states, part of compel's API.  A dump that fails,
 * or a post-dump script that fails, resumes the tasks whatever it says.
 */
#include <dlfcn.h>
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

int criu_final_state(void)
{
	const int *opts = dlsym(RTLD_DEFAULT, "opts");

	if (!opts || *opts < CRIU_TASK_ALIVE || *opts > CRIU_TASK_STOPPED)
		return -1;
	return *opts;
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
		pr_info("CRIU's options came over RPC or in a configuration file: not checked "
			"(what serves: tcp-close, see docs/containers.md)\n");
		free(buf);
		return 0;
	}
	if (f.tcp_close)
		goto out;	/* CRIU leaves the sockets to us */
	if (!f.tcp_established)
		why = "without --tcp-established or --tcp-close CRIU refuses established "
		      "connections";
	else if (!f.lock || !strcmp(f.lock, "iptables"))
		why = "with --tcp-established and the iptables network lock (CRIU's default) a "
		      "restore with --tcp-close never removes CRIU's rules for these connections";
	if (why)
		pr_err("refusing to dump %zu TCP connection(s): %s; dump with --tcp-close, or "
		       "--tcp-established --network-lock skip\n", n, why);
	else if (strcmp(f.lock, "skip") && strcmp(f.lock, "none"))
		pr_warn("--network-lock %s: CRIU locks each connection again behind the plugin's "
			"gate (slower) and its table stays on this host after a move; "
			"--network-lock skip is enough\n", f.lock);
out:
	free(buf);
	return why ? -1 : 0;
}

/* criu/external.c: the value of --external KEY:VALUE, NULL for a bare
 * KEY, ERR_PTR(-ENOENT) if not given; exported like print_on_level. */
bool criu_netns_external(ino_t ns)
{
	char *(*lookup)(char *key) = (char *(*)(char *))dlsym(RTLD_DEFAULT,
							       "external_lookup_by_key");
	char key[64];
	char *v;

	if (!lookup)
		return true;	/* cannot say: leave the namespace as it is */
	snprintf(key, sizeof(key), "net[%lu]", (unsigned long)ns);
	v = lookup(key);
	return (unsigned long)v < (unsigned long)-4095;	/* !IS_ERR(v) */
}

int env_switch(const char *name, const char *on_word, const char *off_word,
	       const char *what, bool *on)
{
	const char *v = getenv(name);

	*on = v && !strcmp(v, on_word);
	if (v && !*on && strcmp(v, off_word)) {
		pr_err("%s is \"%s\": %s (%s) or %s\n", name, v, on_word, what, off_word);
		return -1;
	}
	return 0;
}
