/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tcpcp standby: the standby of fail-over (paper section 6).  Primaries'
 * applications open control sessions to it (the pass protocol's greeting
 * under the shared key) and send each connection's latest checkpoint
 * (tcpcp_ckpt_send(), lib/standby.c).  It keeps them in memory, and with
 * --dir also as files (DIR/<connection>.img, whole ones only).  When a
 * session breaks, or stays silent for --timeout, without a BYE, the
 * primary is taken for dead and its connections are taken over, in one
 * batch:
 *
 *   1. gated here, before the address moves (the peer's segments must not
 *      meet a host without the connection: a RST);
 *   2. --takeover CMD (/bin/sh -c), e.g. a route or an address moved;
 *   3. their peers probed, all at once (tcpcp_probe());
 *   4. each checkpoint brought up to its peer (tcpcp_resurrect()), the
 *      endpoint recreated and activated;
 *   5. COMMAND run with each, as tcpcp passd does: the socket on fd 3
 *      (TCPCP_FD=3), the application's state in a file (TCPCP_STATE_FILE,
 *      {state}), the resurrected image (TCPCP_IMAGE) and the skip
 *      (TCPCP_SKIP, {skip}: bytes past the state the peer has, negative
 *      for bytes the application must write again), TCPCP_IMAGE ({image})
 *      the resurrected image, its state included.
 *
 * A connection whose peer does not answer is given up with one line in
 * the log; one that cannot be resurrected (a checkpoint too old, a peer
 * too far from it) too, and its peer is reset at the sequence number it
 * accepts (tcpcp_reset_peer()), so that it does not retransmit into a
 * host that drops it until its own timeouts.  Each session runs in a child of
 * its own (passd/sessions.c), so one primary's takeover holds up no other
 * session.  There is no fencing: a primary that is only slow past
 * --timeout and comes back sends alongside the standby; pick --timeout
 * above the primary's longest pause between messages, and let the
 * takeover command cut the primary's path.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "sessions.h"
#include "tcpcp-cli.h"
#include "tcpcp.h"
#include "ici.pb-c.h"

#define GATE_S		60	/* how long a taken-over connection stays gated at most */

struct args {
	const char *listen, *key, *dir, *state_dir, *takeover;
	int timeout_ms, probe_ms, max_sessions, once;
	char **cmd;
	uint8_t psk[TCPCP_PASS_KEY_LEN];
};

struct conn {
	char name[TCPCP_CONN_LEN];
	void *img;
	size_t len;
};

struct held {
	struct conn *c;
	size_t n, cap;
};

static const char usage_text[] =
	"usage: tcpcp standby --listen ADDR:PORT --key FILE [--timeout MS] [--dir DIR]\n"
	"                     [--takeover CMD] [--probe-timeout MS] [--state-dir DIR]\n"
	"                     [--max-sessions N] [--once] -- COMMAND [ARGS...]\n"
	"Keep the checkpoints primaries send (tcpcp_ckpt_send()).  When a primary's\n"
	"session breaks or is silent for MS (--timeout, 1000) without saying bye,\n"
	"take its connections over: gate them here, run CMD (sh -c; e.g. move the\n"
	"address), probe their peers (--probe-timeout, 3000), resurrect each and run\n"
	"COMMAND with it: fd 3 (TCPCP_FD=3), the state in the file {state}\n"
	"(TCPCP_STATE_FILE), the image {image} (TCPCP_IMAGE), and {skip}\n"
	"(TCPCP_SKIP): bytes past the\n"
	"state the peer has (negative: to write again).  --dir: keep each checkpoint\n"
	"there too.  --once: one session, then exit.\n";

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
		{ "dir", required_argument, NULL, 'd' },
		{ "takeover", required_argument, NULL, 't' },
		{ "probe-timeout", required_argument, NULL, 'p' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "max-sessions", required_argument, NULL, 'm' },
		{ "once", no_argument, NULL, '1' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*a = (struct args){ .timeout_ms = 1000, .probe_ms = 3000, .state_dir = "/tmp",
			    .max_sessions = 16 };
	while ((c = getopt_long(argc, argv, "+", lo, NULL)) != -1) {
		switch (c) {
		case 'l': a->listen = optarg; break;
		case 'k': a->key = optarg; break;
		case 'T': a->timeout_ms = atoi(optarg); break;
		case 'd': a->dir = optarg; break;
		case 't': a->takeover = optarg; break;
		case 'p': a->probe_ms = atoi(optarg); break;
		case 's': a->state_dir = optarg; break;
		case 'm': a->max_sessions = atoi(optarg); break;
		case '1': a->once = 1; break;
		case 'h': usage(EXIT_OK);
		default: usage(EXIT_USAGE);
		}
	}
	if (!a->listen || !a->key || optind >= argc)
		usage(EXIT_USAGE);
	if (a->timeout_ms < 1 || a->probe_ms < 1)
		die("--timeout and --probe-timeout must be positive numbers of milliseconds");
	if (a->max_sessions < 1 || a->max_sessions > SESSIONS_MAX)
		die("--max-sessions must be 1 to %d", SESSIONS_MAX);
	a->cmd = argv + optind;
}

/* DIR/<connection>.img for @name: its punctuation made file-name safe. */
static void file_of(const char *dir, const char *name, char *path, size_t len)
{
	size_t n = (size_t)snprintf(path, len, "%s/", dir), i;

	for (i = 0; name[i] && n + 5 < len; i++)
		path[n++] = (name[i] == ' ' || name[i] == '>' || name[i] == '/') ? '_' : name[i];
	snprintf(path + n, len - n, ".img");
}

/* A whole image or none (tools/imgfile.c: written aside, renamed over),
 * without fsync: the primary sends the next one within milliseconds.
 * On failure one line says why. */
static int write_whole(const char *path, const void *buf, size_t len)
{
	struct image_out o;
	int err;

	if (image_open(&o, path))
		return -1;
	o.nosync = true;
	err = image_commit(&o, buf, len);
	if (err)
		warnx("cannot write %s: %s", path, strerror(err));
	return err ? -1 : 0;
}

static struct conn *find(struct held *h, const char *name)
{
	for (size_t i = 0; i < h->n; i++)
		if (!strcmp(h->c[i].name, name))
			return &h->c[i];
	return NULL;
}

static void keep(const struct args *a, struct held *h, struct tcpcp_ckpt_msg *m)
{
	struct conn *c = find(h, m->conn);
	char path[4096];

	if (!c) {
		if (h->n == h->cap) {
			h->cap = h->cap ? 2 * h->cap : 16;
			h->c = realloc(h->c, h->cap * sizeof(*h->c));
			if (!h->c)
				die("out of memory for %zu checkpoints", h->cap);
		}
		c = &h->c[h->n++];
		snprintf(c->name, sizeof(c->name), "%s", m->conn);
		c->img = NULL;
	}
	free(c->img);
	c->img = m->img;
	c->len = m->len;
	m->img = NULL;
	if (a->dir) {
		file_of(a->dir, c->name, path, sizeof(path));
		write_whole(path, c->img, c->len);	/* in memory all the same */
	}
}

static void forget(const struct args *a, struct held *h, const char *name)
{
	struct conn *c = find(h, name);
	char path[4096];

	if (!c)
		return;
	if (a->dir) {
		file_of(a->dir, c->name, path, sizeof(path));
		unlink(path);
	}
	free(c->img);
	*c = h->c[--h->n];
}

static void drop_all(struct held *h)
{
	for (size_t i = 0; i < h->n; i++)
		free(h->c[i].img);
	free(h->c);
	h->c = NULL;
	h->n = h->cap = 0;
}

/* The shell command of --takeover, waited for. */
static int run_takeover(const char *cmd)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (!pid) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) && !WEXITSTATUS(status) ? 0 : -1;
}

/* @arg with every @key replaced by @val (malloc'd), or @arg itself. */
static char *subst_one(char *arg, const char *key, const char *val)
{
	char *at = strstr(arg, key), *n;

	if (!at)
		return arg;
	n = malloc(strlen(arg) + strlen(val) + 1);
	if (!n)
		die("out of memory");
	sprintf(n, "%.*s%s%s", (int)(at - arg), arg, val, at + strlen(key));
	return subst_one(n, key, val);
}

/* Step 5 for one connection: COMMAND runs with it, in a process of its
 * own; @s is closed here. */
static void hand_over(const struct args *a, int s, const void *img, size_t len, int64_t skip,
		      unsigned long id)
{
	struct tcpcp_image *im = tcpcp_image_read(img, len);
	const TcpcpIci *ici = im ? tcpcp_image_ici(im) : NULL;
	char path[4096], num[32];
	pid_t pid;

	if (!ici)
		die("the resurrected image: %s", tcpcp_strerror());
	snprintf(path, sizeof(path), "%s/tcpcp-standby.%d.%lu.img", a->state_dir, (int)getpid(),
		 id);
	if (write_whole(path, img, len))
		exit(EXIT_FAIL);
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (!pid) {
		char **argv = a->cmd;	/* this child's copy of the pointers */

		snprintf(num, sizeof(num), "%" PRId64, skip);
		setenv("TCPCP_SKIP", num, 1);
		setenv("TCPCP_IMAGE", path, 1);
		/* {skip} and {image} are ours; {state} and {id}, the handler's. */
		for (int i = 0; argv[i]; i++) {
			argv[i] = subst_one(argv[i], "{skip}", num);
			argv[i] = subst_one(argv[i], "{image}", path);
		}
		run_handler(argv, a->state_dir, s, ici->has_app_state ? ici->app_state.data : NULL,
			    ici->has_app_state ? ici->app_state.len : 0, id);
	}
	tcpcp_image_free(im);
	close(s);
}

/* A connection not resurrected: its peer, which answered, is reset at
 * the sequence number it accepts, rather than left retransmitting. */
static void give_up(const char *name, const void *img, size_t len, const struct tcpcp_peer_view *v)
{
	char why[512];

	snprintf(why, sizeof(why), "%s", tcpcp_strerror());
	if (tcpcp_reset_peer(-1, img, len, v))
		warnx("%s: %s: given up, and resetting the peer failed: %s", name, why,
		      tcpcp_strerror());
	else
		warnx("%s: %s: given up, the peer reset", name, why);
}

/* Steps 3 and 4 for the answered ones, then 5. */
static size_t resurrect_all(const struct args *a, struct held *h, const void **imgs,
			    const size_t *lens, const struct tcpcp_peer_view *v)
{
	size_t i, up = 0, rlen;
	int64_t skip;
	void *res;
	int s;

	for (i = 0; i < h->n; i++) {
		if (!v[i].answered) {
			warnx("%s: the peer did not answer: given up", h->c[i].name);
			continue;
		}
		res = tcpcp_resurrect(imgs[i], lens[i], &v[i], &skip, &rlen);
		if (!res) {
			give_up(h->c[i].name, imgs[i], lens[i], &v[i]);
			continue;
		}
		s = tcpcp_create_ex(res, rlen, NULL);
		if (s < 0 || tcpcp_activate_ex(s, res, rlen)) {
			/* Closing a socket still in repair mode sends nothing. */
			if (s >= 0)
				close(s);
			give_up(h->c[i].name, imgs[i], lens[i], &v[i]);
			free(res);
			continue;
		}
		warnx("%s: resurrected, skip %" PRId64 ", running %s", h->c[i].name, skip,
		      a->cmd[0]);
		hand_over(a, s, res, rlen, skip, i);
		free(res);
		up++;
	}
	return up;
}

static void take_over(const struct args *a, struct held *h, const char *who, const char *why)
{
	struct tcpcp_ends *e;
	struct tcpcp_peer_view *v;
	const void **imgs;
	size_t *lens, i, up;

	warnx("primary %s: %s: taking over %zu connection(s)", who, why, h->n);
	if (!h->n)
		return;
	e = calloc(h->n, sizeof(*e));
	v = calloc(h->n, sizeof(*v));
	imgs = calloc(h->n, sizeof(*imgs));
	lens = calloc(h->n, sizeof(*lens));
	if (!e || !v || !imgs || !lens)
		die("out of memory");
	for (i = 0; i < h->n; i++) {
		struct tcpcp_image *im = tcpcp_image_read(h->c[i].img, h->c[i].len);

		if (!im || tcpcp_image_ends(im, &e[i].local, &e[i].peer))
			die("%s: %s", h->c[i].name, tcpcp_strerror());
		tcpcp_image_free(im);
		imgs[i] = h->c[i].img;
		lens[i] = h->c[i].len;
	}
	if (tcpcp_gate_close_ends(-1, e, h->n, GATE_S))
		die("cannot gate the connections here: %s", tcpcp_strerror());
	if (a->takeover && run_takeover(a->takeover))
		warnx("--takeover '%s' failed; probing all the same", a->takeover);
	if (tcpcp_probe(-1, imgs, lens, h->n, v, (unsigned int)a->probe_ms) < 0)
		die("probing the peers: %s", tcpcp_strerror());
	up = resurrect_all(a, h, imgs, lens, v);
	warnx("primary %s: %zu of %zu connection(s) resurrected", who, up, h->n);
	free(e);
	free(v);
	free(imgs);
	free(lens);
}

/* Only silence or a broken connection says the primary died. */
static bool primary_gone(int err)
{
	return err == ETIMEDOUT || err == ECONNRESET || err == EPIPE || err == ENOTCONN ||
	       err == ECONNABORTED || err == EHOSTUNREACH || err == ENETUNREACH ||
	       err == EHOSTDOWN || err == ENETDOWN;
}

/* One primary's session, in a child of its own. */
static void standby_session(void *arg, int ctl, unsigned long id, int told)
{
	const struct args *a = arg;
	struct held h = { 0 };
	struct tcpcp_ckpt_msg m;
	struct tcpcp_pass *p;
	bool authed = false;
	char who[64];

	who_is(ctl, who);
	p = tcpcp_pass_open(ctl, TCPCP_PASS_DEST, a->psk, a->timeout_ms);
	if (!p)
		die("session %lu from %s refused: %s", id, who, tcpcp_strerror());
	for (;;) {
		if (tcpcp_ckpt_recv(p, a->timeout_ms, &m)) {
			if (primary_gone(errno) && authed)
				break;
			tcpcp_pass_free(p);
			drop_all(&h);
			if (!authed)	/* a replayed greeting, or no key: nothing taken */
				die("session %lu from %s: %s", id, who, tcpcp_strerror());
			if (errno == EACCES)	/* someone else's frame: no primary to judge */
				die("session %lu from %s ended, nothing taken over: %s", id, who,
				    tcpcp_strerror());
			/* The frame was whole and authentic, its content not: the
			 * primary lives, and its next checkpoint will do. */
			warnx("primary %s: %s: ignored", who, tcpcp_strerror());
			continue;
		}
		if (!authed && write(told, "A", 1) != 1)
			die("session %lu: cannot tell the daemon: %s", id, strerror(errno));
		authed = true;
		if (m.kind == TCPCP_CKPT_IMAGE)
			keep(a, &h, &m);
		else if (m.kind == TCPCP_CKPT_FORGET)
			forget(a, &h, m.conn);
		else if (m.kind == TCPCP_CKPT_BYE) {
			warnx("primary %s: bye (%zu connection(s) let go)", who, h.n);
			break;
		}
	}
	if (m.kind != TCPCP_CKPT_BYE)
		take_over(a, &h, who, tcpcp_strerror());
	tcpcp_pass_free(p);
	drop_all(&h);
}

int cmd_standby(int argc, char **argv)
{
	struct args a;
	int l;

	parse(argc, argv, &a);
	if (tcpcp_pass_key_load(a.key, a.psk))
		die("%s", tcpcp_strerror());
	if (a.dir && mkdir(a.dir, 0700) && errno != EEXIST)
		die("cannot make %s: %s", a.dir, strerror(errno));
	l = listen_on(a.listen);
	if (l < 0)
		die("cannot listen on %s: %s", a.listen, strerror(-l));
	fprintf(stderr, "%s: listening on %s\n", prog, a.listen);
	return serve_sessions(l, a.max_sessions, a.once, standby_session, &a);
}
