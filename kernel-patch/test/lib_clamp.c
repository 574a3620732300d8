// SPDX-License-Identifier: GPL-2.0
/*
 * libtcpcp's acknowledgment clamp on a kernel with TCP_ACK_HOLD
 * (kernel-patch/series/0002-...).  Why: the library must find the
 * option and use it instead of its BPF program, and the promise is about
 * the wire: a receiver that checkpoints (tcpcp_checkpoint()) and moves
 * the clamp (tcpcp_ckpt_clamp()) every 64 KiB never acknowledges a byte
 * beyond its latest checkpoint, and the stream still arrives intact.
 * The same through tcpcp_clamp_fds(), the batch the CRIU plugin uses.
 * Linked against the project's libtcpcp (initramfs.sh builds it with the
 * library's shared objects in the image).  On a kernel without the option
 * it reports "stock path", and fails with --expect-patched.  It also
 * checks that the checkpoints carry ts_recent (0001), read by the library
 * where the kernel has TCP_REPAIR_TS_RECENT.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/if_ether.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <tcpcp.h>
#include <ici.pb-c.h>

#define TCP_ACK_HOLD 48
#define TCP_ACK_RELEASE 49

#define STREAM_BYTES (16 << 20)
#define CKPT_EVERY 65536

#define TEST_NAME "lib_clamp"
#include "guest.h"
#include "wire.h"

static int with_ts_recent, checkpoints;

/* A checkpoint with @total (bytes read) as the state, then the clamp.
 * 1: the peer has closed (CLOSE_WAIT), checkpoints end there. */
static int checkpoint(struct tcpcp_ckpt *c, int r, uint32_t total)
{
	size_t len;
	void *img = tcpcp_checkpoint(c, r, &total, sizeof(total), &len);
	struct tcpcp_image *im = img ? tcpcp_image_read(img, len) : NULL;
	const TcpcpIci *ici = im ? tcpcp_image_ici(im) : NULL;

	checkpoints += !!ici;
	with_ts_recent += ici && ici->has_ts_recent;
	tcpcp_image_free(im);

	if (!img && errno == EOPNOTSUPP)
		return 1;
	if (!img || tcpcp_ckpt_clamp(c, r)) {
		printf("FAIL " TEST_NAME ".setup: checkpoint or clamp at %u: %s\n", total,
		       tcpcp_strerror());
		return -1;
	}
	free(img);
	return 0;
}

/*
 * A 16 MB stream into r, clamped from the start and moved every 64 KiB:
 * through tcpcp_checkpoint() + tcpcp_ckpt_clamp() (@fds 0, an application
 * that checkpoints itself) or tcpcp_clamp_fds() at the bytes read (@fds 1,
 * as the CRIU plugin clamps after a dump).  Checks named @p.x.
 */
static void clamp_stream(struct wire *w, int fds, const char *p)
{
	static unsigned char buf[65536];
	uint32_t base, released = 0, total = 0, allowed, mode = 0, ack;
	int s, r, st, bad = 0, wrong_release = 0, closed = 0;
	struct tcpcp_ckpt *c = NULL;
	char d[400], name[64];
	pid_t pid;
	ssize_t k;

	make_pair(w, &s, &r);
	if (!fds && !(c = tcpcp_ckpt_new(r))) {
		printf("FAIL " TEST_NAME ".setup: tcpcp_ckpt_new: %s\n", tcpcp_strerror());
		exit(1);
	}
	if (get_int(r, TCP_ACK_RELEASE, &base))	/* rcv_nxt: nothing came yet */
		die("get TCP_ACK_RELEASE");
	/* Clamped from the start, as a fail-over primary is. */
	ack = base;
	if (fds ? tcpcp_clamp_fds(&r, &ack, 1) : checkpoint(c, r, 0)) {
		printf("FAIL " TEST_NAME ".setup: first clamp: %s\n", tcpcp_strerror());
		exit(1);
	}
	pid = spawn_writer(s, r, STREAM_BYTES);
	for (;;) {
		k = read_pattern(r, buf, sizeof(buf), &total, &bad);
		if (k <= 0)
			break;
		if (total - released >= CKPT_EVERY && !closed) {
			ack = base + total;
			closed = fds ? 0 : checkpoint(c, r, total);
			if (closed < 0 || (fds && tcpcp_clamp_fds(&r, &ack, 1))) {
				printf("FAIL " TEST_NAME ".setup: clamp at %u: %s\n", total,
				       tcpcp_strerror());
				exit(1);
			}
			if (closed)
				continue;
			released = total;
			/* The kernel clamps the release to what was read. */
			if (get_int(r, TCP_ACK_RELEASE, &allowed))
				die("get TCP_ACK_RELEASE");
			if (allowed != base + released && !wrong_release++)
				printf("INFO " TEST_NAME ".%s.first_wrong_release: read %u, the "
				       "kernel allows %d\n", p, released, (int)(allowed - base));
		}
		drain(w, base + released);
	}
	get_int(r, TCP_ACK_HOLD, &mode);
	if (fds) {
		snprintf(d, sizeof(d), "TCP_ACK_HOLD reads %u", mode);
		snprintf(name, sizeof(name), "%s.library_uses_ack_hold", p);
		result(mode == 2, name, d);
	} else {
		const char *how = tcpcp_ckpt_clamp_how(c);

		snprintf(d, sizeof(d), "tcpcp_ckpt_clamp_how() says %s, TCP_ACK_HOLD reads %u",
			 how ? how : "(null)", mode);
		snprintf(name, sizeof(name), "%s.library_uses_ack_hold", p);
		result(how && !strcmp(how, "TCP_ACK_HOLD") && mode == 2, name, d);
		snprintf(d, sizeof(d), "%d of %d checkpoints", with_ts_recent, checkpoints);
		snprintf(name, sizeof(name), "%s.checkpoints_carry_ts_recent", p);
		result(checkpoints && with_ts_recent == checkpoints, name, d);
	}
	snprintf(d, sizeof(d), "%u of %u bytes, %d wrong", total, STREAM_BYTES, bad);
	snprintf(name, sizeof(name), "%s.stream_intact", p);
	result(total == STREAM_BYTES && !bad, name, d);
	snprintf(d, sizeof(d), "%d receiver segments (%d captured late), %d with an ACK above "
		 "the latest checkpoint (highest %d over), %d right edge back%s, %d SACK",
		 w->n, w->late, w->above, w->above ? (int)(w->worst - base - released) : 0,
		 w->edge_back, w->back, w->sack);
	snprintf(name, sizeof(name), "%s.no_ack_beyond_checkpoint", p);
	result(w->n && !w->above && !w->edge_back && !w->sack, name, d);
	snprintf(d, sizeof(d), "%d of %u releases not at the bytes read (the last at %u)",
		 wrong_release, released / CKPT_EVERY, released);
	snprintf(name, sizeof(name), "%s.release_at_checkpoint", p);
	result(!wrong_release, name, d);
	tcpcp_ckpt_free(c);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	close(r);
}

int main(int argc, char **argv)
{
	int expect_patched = argc > 1 && !strcmp(argv[1], "--expect-patched");
	int lfd, stock, rcvbuf = 32 << 20;
	struct wire w = { 0 };
	uint32_t v;

	lfd = private_lo();
	stock = stock_path(lfd, TCP_ACK_HOLD, "TCP_ACK_HOLD", expect_patched, &v);
	close(lfd);
	if (stock >= 0)
		return stock;
	w.pkt = socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_IP));
	if (w.pkt < 0)
		die("socket(AF_PACKET)");
	setsockopt(w.pkt, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
	clamp_stream(&w, 0, "ckpt");
	clamp_stream(&w, 1, "fds");
	return failures ? 1 : 0;
}
