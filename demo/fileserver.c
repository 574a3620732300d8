/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tcpcp-fileserver: a static HTTP file server that sheds a large download
 * mid-transfer (paper section 1): after --pass-after bytes of a body it
 * passes the connection to another tcpcp-fileserver with the application
 * state "PATH\nOFFSET\n", and that one sends the rest.  OFFSET counts the
 * body bytes the kernel accepted; those not yet acknowledged travel in the
 * ICI's send queue, so the client's byte stream has no gap or overlap.
 *
 *   tcpcp-fileserver --root DIR --key FILE [--listen ADDR:PORT]
 *                    [--ctl ADDR:PORT] [--pass-to CTLADDR:PORT
 *                    --pass-after BYTES [--switch-to S] [--switch-back S]]
 *
 * --listen serves clients, --ctl takes passed downloads; both may be set.
 *
 * Fail-over (paper section 6, docs/failover.md): with --checkpoint-dir
 * every download is checkpointed as it goes, every --checkpoint-ms (10),
 * into DIR/PORT.img (PORT: the client's), with the same state.  When this
 * host dies, a standby resurrects the connection from the last one
 * (`tcpcp probe --resurrect`) and goes on with
 *
 *   tcpcp create IMG --activate -- tcpcp-fileserver --root DIR
 *                    --resume IMG --skip N [--checkpoint-dir DIR]
 *
 * which reads PATH and OFFSET from the image and sends the body from
 * OFFSET + N (N, the probe's skip, is negative when the client lacks
 * bytes written before the checkpoint).  With --standby CTLADDR:PORT
 * (and --key) each download sends its checkpoints to a `tcpcp standby`
 * instead, beats every --beat-ms (100) while it waits to write, and says
 * bye at its end; the standby takes over by itself:
 *
 *   tcpcp standby --listen CTLADDR:PORT --key FILE --takeover CMD --
 *         tcpcp-fileserver --root DIR --resume {image} --skip {skip}
 *
 * It takes uploads too (PUT, into the file under --root): with
 * checkpoints, each chunk is written before the checkpoint that counts
 * it, and the connection's ACKs are clamped to what the standby holds
 * (tcpcp_ckpt_clamp()); the answer (201) goes only once the body is in.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ici.pb-c.h"

#include "demo.h"

const char *prog = "tcpcp-fileserver";

#define CHUNK	(64 * 1024)

struct cfg {
	const char *root, *key_file, *listen, *ctl, *pass_to;
	const char *ckpt_dir, *resume, *standby;
	long long pass_after, skip;
	unsigned int ckpt_ms, beat_ms;
	struct tcpcp_pass_send_opts o;
	uint8_t key[TCPCP_PASS_KEY_LEN];
};

static void usage(void)
{
	fputs("usage: tcpcp-fileserver --root DIR --key FILE [--listen ADDR:PORT] [--ctl ADDR:PORT]\n"
	      "           [--pass-to CTLADDR:PORT --pass-after BYTES [--switch-to S] [--switch-back S]]\n"
	      "           [--checkpoint-dir DIR | --standby CTLADDR:PORT [--beat-ms MS]]\n"
	      "           [--checkpoint-ms MS]\n"
	      "       tcpcp-fileserver --root DIR --resume IMG --skip N [--checkpoint-dir DIR]\n"
	      "                        (socket on fd 3, e.g. from `tcpcp create IMG --activate --`)\n",
	      stderr);
	exit(2);
}

/* true: the connection went elsewhere */
static bool shed(struct cfg *c, int s, const char *path, long long off)
{
	char state[1200];
	int n = snprintf(state, sizeof(state), "%s\n%lld\n", path, off);

	if (demo_pass(s, c->pass_to, c->key, state, (size_t)n, &c->o) < 0)
		return false;
	fprintf(stderr, "%s: passed %s at offset %lld to %s\n", prog, path, off, c->pass_to);
	return true;
}

/* Checkpoints of one download: where they go, and when the next is due. */
struct ckpt {
	struct tcpcp_ckpt *h;
	struct tcpcp_pass *sb;	/* the standby's session */
	int ctl;
	char file[1100];
	uint64_t due_ns, hdr;	/* ... and no earlier than the header is acknowledged */
	bool clamp, pending;	/* ACKs clamped; a checkpoint not yet known safe */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Before anything is written (tcpcp_ckpt_new() needs nothing unsent). */
static void ckpt_start(struct cfg *c, struct ckpt *k, int s, uint64_t hdr)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	unsigned int port;

	memset(k, 0, sizeof(*k));
	k->ctl = -1;
	if (!c->ckpt_dir && !c->standby)
		return;
	if (c->standby) {
		k->ctl = connect_to(c->standby, DEMO_TIMEOUT_MS);
		if (k->ctl < 0)
			die("cannot reach the standby at %s: %s", c->standby, strerror(-k->ctl));
		k->sb = tcpcp_pass_open(k->ctl, TCPCP_PASS_ORIGIN, c->key, DEMO_TIMEOUT_MS);
		if (!k->sb)
			die("standby %s: %s", c->standby, tcpcp_strerror());
	}
	if (getpeername(s, (struct sockaddr *)&ss, &len))
		die("getpeername: %s", strerror(errno));
	port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					     : ((struct sockaddr_in6 *)&ss)->sin6_port);
	if (c->ckpt_dir)
		snprintf(k->file, sizeof(k->file), "%s/%u.img", c->ckpt_dir, port);
	k->h = tcpcp_ckpt_new(s);
	if (!k->h)
		die("checkpoints: %s", tcpcp_strerror());
	k->hdr = hdr;
}

/* The header must be acknowledged before the first checkpoint: a client
 * then never lacks header bytes, only body bytes we can send again. */
static bool header_acked(int s, uint64_t hdr)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	return !getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &len) && ti.tcpi_bytes_acked >= hdr;
}

/* The latest checkpoint is safe once the standby's host has it (the
 * control connection has nothing unacknowledged) or it is on disk. */
static bool latest_safe(const struct ckpt *k)
{
	int outq;

	return !k->sb || (!ioctl(k->ctl, SIOCOUTQ, &outq) && !outq);
}

static void ckpt_take(struct cfg *c, struct ckpt *k, int s, const char *state)
{
	char tmp[1200];
	uint64_t now = now_ns();
	size_t len;
	void *img;

	/* Uploads: the clamp moves up to what the standby holds, and the
	 * next checkpoint waits for that (a new one every 10 ms would keep
	 * the control connection from ever being all acknowledged). */
	if (k->clamp && k->pending) {
		if (!latest_safe(k))
			return;
		if (tcpcp_ckpt_clamp(k->h, s))
			die("clamp: %s", tcpcp_strerror());
		k->pending = false;
	}
	if (!k->h || now < k->due_ns || (k->hdr && !header_acked(s, k->hdr)))
		return;
	k->hdr = 0;
	k->due_ns = now + (uint64_t)c->ckpt_ms * 1000000ull;
	img = tcpcp_checkpoint(k->h, s, state, strlen(state), &len);
	if (!img)
		die("checkpoint: %s", tcpcp_strerror());
	if (k->sb && tcpcp_ckpt_send(k->sb, img, len))
		die("checkpoint to the standby: %s", tcpcp_strerror());
	/* A standby must never read half a checkpoint: rename a whole one. */
	snprintf(tmp, sizeof(tmp), "%s.tmp", k->file);
	if (k->file[0] && (write_file(tmp, img, len) || rename(tmp, k->file)))
		die("cannot write %s: %s", k->file, strerror(errno));
	free(img);
	k->pending = true;
}

static void ckpt_get(struct cfg *c, struct ckpt *k, int s, const char *path, long long off)
{
	char state[1200];

	snprintf(state, sizeof(state), "%s\n%lld\n", path, off);
	ckpt_take(c, k, s, state);
}

/* Until @s takes more, the standby hears from us every --beat-ms. */
static void wait_writable(struct cfg *c, struct ckpt *k, int s)
{
	struct pollfd p = { .fd = s, .events = POLLOUT };

	while (k->sb && poll(&p, 1, (int)c->beat_ms) == 0)
		if (tcpcp_ckpt_beat(k->sb))
			die("standby: %s", tcpcp_strerror());
}

/* Until the client has acknowledged every byte, keep checkpointing. */
static void drain(struct cfg *c, struct ckpt *k, int s, const char *path, long long off)
{
	int outq;

	while (k->h && !ioctl(s, SIOCOUTQ, &outq) && outq > 0) {
		ckpt_get(c, k, s, path, off);
		if (k->sb && tcpcp_ckpt_beat(k->sb))
			die("standby: %s", tcpcp_strerror());
		poll(NULL, 0, (int)(c->ckpt_ms < c->beat_ms ? c->ckpt_ms : c->beat_ms));
	}
}

/* The download is over: the standby lets it go, and the session ends. */
static void ckpt_end(struct ckpt *k, int s)
{
	if (k->sb && (tcpcp_ckpt_forget(k->sb, s) || tcpcp_ckpt_bye(k->sb)))
		warnx("standby: %s", tcpcp_strerror());
	tcpcp_pass_free(k->sb);
	if (k->ctl >= 0)
		close(k->ctl);
	tcpcp_ckpt_free(k->h);
	memset(k, 0, sizeof(*k));
	k->ctl = -1;
}

static void send_body(struct cfg *c, int s, int fd, const char *path, long long off,
		      bool may_pass, struct ckpt *k)
{
	static char buf[CHUNK];
	ssize_t n, sent;

	for (;;) {
		ckpt_get(c, k, s, path, off);
		if (may_pass && off >= c->pass_after) {
			if (shed(c, s, path, off))
				return;
			may_pass = false;	/* released: we carry on */
		}
		n = pread(fd, buf, sizeof(buf), off);
		if (n <= 0)
			break;
		wait_writable(c, k, s);
		sent = send(s, buf, (size_t)n, MSG_NOSIGNAL);
		if (sent < 0 && errno == EINTR)
			continue;
		if (sent < 0) {
			warnx("%s: send at offset %lld: %s", path, off, strerror(errno));
			ckpt_end(k, s);
			close(s);
			return;
		}
		off += sent;
	}
	/* Everything is queued: checkpointed until the client has it all,
	 * then let go. */
	drain(c, k, s, path, off);
	ckpt_end(k, s);
	demo_finish(s);
}

/* PUT: the body into the file from @off on, checkpointed as it goes
 * ("PUT PATH\nOFFSET\nLENGTH\n": what is in the file; the image holds
 * what is still in the socket), then the answer. */
static void ckpt_put(struct cfg *c, struct ckpt *k, int s, const char *path, long long off,
		     long long len)
{
	char state[1200];

	snprintf(state, sizeof(state), "PUT %s\n%lld\n%lld\n", path, off, len);
	ckpt_take(c, k, s, state);
}

static void receive_body(struct cfg *c, int s, int fd, const char *path, long long off,
			 long long len, struct ckpt *k)
{
	static char buf[CHUNK];
	struct pollfd p = { .fd = s, .events = POLLIN };
	ssize_t n;

	while (off < len) {
		ckpt_put(c, k, s, path, off, len);
		if (poll(&p, 1, (int)(c->ckpt_ms ? c->ckpt_ms : 1000)) == 0) {
			if (k->sb && tcpcp_ckpt_beat(k->sb))
				die("standby: %s", tcpcp_strerror());
			continue;
		}
		n = recv(s, buf, (size_t)(len - off < CHUNK ? len - off : CHUNK), MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			warnx("%s: upload cut at offset %lld: %s", path, off,
			      n ? strerror(errno) : "EOF");
			ckpt_end(k, s);
			close(s);
			return;
		}
		if (pwrite(fd, buf, (size_t)n, off) != n)
			die("%s: cannot write at %lld: %s", path, off, strerror(errno));
		off += n;
	}
	/* The body is in the file: the last checkpoint says so, and the
	 * answer is written only after it (a standby resends it whole). */
	k->due_ns = 0;
	ckpt_put(c, k, s, path, off, len);
	if (http_header(s, 201, "Created", 0, NULL) < 0)
		warnx("%s: the answer: %s", path, strerror(errno));
	drain(c, k, s, path, off);
	ckpt_end(k, s);
	demo_finish(s);
}

static void serve_upload(struct cfg *c, int s, const char *path, long long len)
{
	struct ckpt k;
	int fd = open_under_as(c->root, path, O_WRONLY | O_CREAT | O_TRUNC);

	if (fd < 0) {
		http_header(s, 403, "Forbidden", 0, NULL);
		demo_finish(s);
		return;
	}
	ckpt_start(c, &k, s, 0);
	if (k.h) {
		/* From now on nothing is acknowledged that a standby lacks. */
		if (tcpcp_ckpt_clamp(k.h, s))
			die("clamp: %s", tcpcp_strerror());
		fprintf(stderr, "%s: acknowledgments clamped (%s)\n", prog,
			tcpcp_ckpt_clamp_how(k.h));
		k.clamp = true;
	}
	receive_body(c, s, fd, path, 0, len, &k);
	close(fd);
}

static void serve_client(struct cfg *c, int s)
{
	char path[1024], method[8];
	long long length;
	struct stat st;
	struct ckpt k;
	int fd, hdr;

	if (http_read(s, method, path, sizeof(path), &length)) {
		demo_finish(s);
		return;
	}
	if (!strcmp(method, "PUT")) {
		serve_upload(c, s, path, length);
		return;
	}
	fd = open_under(c->root, path);
	if (fd < 0 || fstat(fd, &st)) {
		http_header(s, 404, "Not Found", 0, NULL);
		demo_finish(s);
		return;
	}
	ckpt_start(c, &k, s, 1);
	hdr = http_header(s, 200, "OK", (long long)st.st_size, NULL);
	if (hdr > 0) {
		k.hdr = (uint64_t)hdr;
		send_body(c, s, fd, path, 0, c->pass_to != NULL, &k);
	} else {
		ckpt_end(&k, s);
	}
	close(fd);
}

struct download {
	const char *root;
	char path[1024];
	long long off;
	int fd;
};

/* Refuse before the endpoint exists, so that the origin keeps serving:
 * once activated, a download we cannot continue could only be cut. */
static int check_download(void *arg, const void *state, size_t len, const char **why)
{
	struct download *d = arg;
	char text[1100];

	if (!len) {
		*why = "no download state";
		return -1;
	}
	snprintf(text, sizeof(text), "%.*s", (int)(len < sizeof(text) ? len : sizeof(text) - 1),
		 (const char *)state);
	if (sscanf(text, "%1023[^\n]\n%lld", d->path, &d->off) != 2 || d->off < 0) {
		*why = "malformed download state";
		return -1;
	}
	d->fd = open_under(d->root, d->path);
	if (d->fd < 0) {
		*why = "the file is not here";
		return -1;
	}
	return 0;
}

static void take_download(struct cfg *c, int ctl)
{
	struct download d = { .root = c->root, .fd = -1 };
	struct tcpcp_pass_recv_opts o = { .size = sizeof(o), .check = check_download, .arg = &d };
	char *state = NULL;
	int s;

	s = demo_take(ctl, c->key, &state, &o);
	if (s >= 0) {
		struct ckpt k;

		fprintf(stderr, "%s: continuing %s at offset %lld\n", prog, d.path, d.off);
		ckpt_start(c, &k, s, 0);
		send_body(c, s, d.fd, d.path, d.off, false, &k);
	}
	if (d.fd >= 0)
		close(d.fd);
	free(state);
}

/* An upload goes on: the rest of the body (the image's receive queue
 * first, then what the peer sends again from where our ACKs stopped),
 * or, if it was all in, the answer from where the client's copy ends. */
static int resume_upload(struct cfg *c, int s, struct tcpcp_image *im, const TcpcpIci *ici)
{
	char text[1200], path[1024], h[512];
	long long off, len;
	struct ckpt k;
	int fd, n;

	snprintf(text, sizeof(text), "%.*s", (int)(ici->app_state.len < sizeof(text) ?
						  ici->app_state.len : sizeof(text) - 1),
		 (const char *)ici->app_state.data);
	tcpcp_image_free(im);
	if (sscanf(text, "PUT %1023[^\n]\n%lld\n%lld", path, &off, &len) != 3 || off < 0 ||
	    off > len)
		die("%s: malformed upload state", c->resume);
	fd = open_under_as(c->root, path, O_WRONLY);
	if (fd < 0)
		die("%s: %s", path, strerror(-fd));
	fprintf(stderr, "%s: resuming the upload of %s at offset %lld of %lld, skip %+lld\n",
		prog, path, off, len, c->skip);
	if (off < len) {
		if (c->skip)
			die("%s: skip %+lld in the middle of an upload: we had written nothing",
			    path, c->skip);
		ckpt_start(c, &k, s, 0);
		receive_body(c, s, fd, path, off, len, &k);
		close(fd);
		return 0;
	}
	/* All in: the answer, less what the client already has of it. */
	n = http_header_str(h, sizeof(h), 201, "Created", 0, NULL);
	if (c->skip < 0 || c->skip > n)
		die("%s: skip %+lld outside the %d-byte answer", path, c->skip, n);
	if (send_all(s, h + c->skip, (size_t)(n - c->skip)))
		warnx("%s: the answer: %s", path, strerror(errno));
	demo_finish(s);
	close(fd);
	return 0;
}

/* A standby's take-over: the download of checkpoint @c->resume goes on
 * over the resurrected connection @s from its offset plus the skip. */
static int resume(struct cfg *c, int s)
{
	struct download d = { .root = c->root, .fd = -1 };
	struct tcpcp_image *im;
	const TcpcpIci *ici;
	struct stat st;
	struct ckpt k;
	const char *why = NULL;
	size_t len;
	void *img;

	img = read_file(c->resume, &len);
	if (!img)
		die("cannot read %s: %s", c->resume, strerror(errno));
	im = tcpcp_image_read(img, len);
	if (!im)
		die("%s: %s", c->resume, tcpcp_strerror());
	ici = tcpcp_image_ici(im);
	if (ici->has_app_state && ici->app_state.len > 4 && !memcmp(ici->app_state.data, "PUT ", 4))
		return resume_upload(c, s, im, ici);
	if (!ici->has_app_state ||
	    check_download(&d, ici->app_state.data, ici->app_state.len, &why))
		die("%s: %s", c->resume, why ? why : "no download state");
	tcpcp_image_free(im);
	free(img);
	if (fstat(d.fd, &st) || d.off + c->skip < 0 || d.off + c->skip > st.st_size)
		die("%s: offset %lld%+lld lies outside the file", d.path, d.off, c->skip);
	fprintf(stderr, "%s: resuming %s at offset %lld%+lld\n", prog, d.path, d.off, c->skip);
	ckpt_start(c, &k, s, 0);
	send_body(c, s, d.fd, d.path, d.off + c->skip, false, &k);
	close(d.fd);
	return 0;
}

static void parse(int argc, char **argv, struct cfg *c)
{
	static const struct option lo[] = {
		{ "root", required_argument, NULL, 'r' },
		{ "key", required_argument, NULL, 'k' },
		{ "listen", required_argument, NULL, 'l' },
		{ "ctl", required_argument, NULL, 'c' },
		{ "pass-to", required_argument, NULL, 'p' },
		{ "pass-after", required_argument, NULL, 'a' },
		{ "switch-to", required_argument, NULL, 't' },
		{ "switch-back", required_argument, NULL, 'b' },
		{ "checkpoint-dir", required_argument, NULL, 'd' },
		{ "checkpoint-ms", required_argument, NULL, 'm' },
		{ "resume", required_argument, NULL, 'R' },
		{ "skip", required_argument, NULL, 's' },
		{ "standby", required_argument, NULL, 'S' },
		{ "beat-ms", required_argument, NULL, 'B' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int o;

	while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (o) {
		case 'r': c->root = optarg; break;
		case 'k': c->key_file = optarg; break;
		case 'l': c->listen = optarg; break;
		case 'c': c->ctl = optarg; break;
		case 'p': c->pass_to = optarg; break;
		case 'a': c->pass_after = atoll(optarg); break;
		case 'd': c->ckpt_dir = optarg; break;
		case 'm': c->ckpt_ms = (unsigned int)atoi(optarg); break;
		case 'R': c->resume = optarg; break;
		case 's': c->skip = atoll(optarg); break;
		case 'S': c->standby = optarg; break;
		case 'B': c->beat_ms = (unsigned int)atoi(optarg); break;
		case 't':
		case 'b':
			*(o == 't' ? &c->o.to : &c->o.back) = switch_new_or_die(optarg);
			break;
		default: usage();
		}
	}
	if (optind != argc || !c->root || (c->resume ? c->listen || c->ctl || c->pass_to :
					    !c->key_file || (!c->listen && !c->ctl)))
		usage();
	if ((c->ckpt_dir || c->standby) && !c->ckpt_ms)
		c->ckpt_ms = 10;
	if (!c->beat_ms)
		c->beat_ms = 100;
}

static int listener(const char *addr)
{
	int l;

	if (!addr)
		return -1;
	l = listen_on(addr);
	if (l < 0)
		die("cannot listen on %s: %s", addr, strerror(-l));
	return l;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = SIG_IGN, .sa_flags = SA_NOCLDWAIT };
	struct cfg c = { .o = { .size = sizeof(c.o), .linger_s = 60 } };
	struct pollfd pfd[2];
	int i, s;

	parse(argc, argv, &c);
	if (c.key_file && tcpcp_pass_key_load(c.key_file, c.key))
		die("%s", tcpcp_strerror());
	if (c.resume)
		return resume(&c, 3);
	pfd[0] = (struct pollfd){ .fd = listener(c.listen), .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = listener(c.ctl), .events = POLLIN };
	sigaction(SIGCHLD, &sa, NULL);
	fprintf(stderr, "%s: ready\n", prog);
	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll: %s", strerror(errno));
		}
		for (i = 0; i < 2; i++) {
			if (!(pfd[i].revents & POLLIN))
				continue;
			s = accept4(pfd[i].fd, NULL, NULL, SOCK_CLOEXEC);
			if (s < 0)
				continue;
			if (fork() == 0) {
				close(pfd[0].fd);
				close(pfd[1].fd);
				if (i == 0)
					serve_client(&c, s);
				else
					take_download(&c, s);
				exit(0);
			}
			close(s);
		}
	}
}
