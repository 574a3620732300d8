/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tcpcp probe: where the peers of checkpointed connections stand now
 * (tcpcp_probe()), one JSON line per image, with how far each side got
 * since the checkpoint: what a standby needs before it resurrects them.
 * With --resurrect DIR, each answered checkpoint brought up to its peer
 * (tcpcp_resurrect()) goes to DIR under its own name, ready for `tcpcp
 * create`, and its line says how many bytes the application must skip;
 * with --reset-refused the peer of a checkpoint that cannot be
 * resurrected (too old, too far) is reset at its exact rcv_nxt
 * (tcpcp_reset_peer()), so it does not retransmit into the void.
 */
#include <getopt.h>
#include <inttypes.h>
#include <string.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "ici.pb-c.h"
#include "tcpcp.h"
#include "tcpcp-cli.h"

#define PROBE_TIMEOUT_MS	3000

/* DIR/basename(@path): the resurrected image; its skip, or -1 (and with
 * @reset the refused connection's peer reset). */
static int resurrect_one(const char *dir, const char *path, const void *img, size_t len,
			 const struct tcpcp_peer_view *v, int64_t *skip, bool reset)
{
	const char *base = strrchr(path, '/');
	struct image_out o;
	char out[4096];
	size_t olen;
	void *buf;

	base = base ? base + 1 : path;
	if (snprintf(out, sizeof(out), "%s/%s", dir, base) >= (int)sizeof(out))
		return fail("%s/%s: path too long", dir, base), -1;
	buf = tcpcp_resurrect(img, len, v, skip, &olen);
	if (!buf) {
		char why[512];

		snprintf(why, sizeof(why), "%s", tcpcp_strerror());
		if (reset && tcpcp_reset_peer(-1, img, len, v))
			return fail("%s: %s; resetting the peer failed too: %s", path, why,
				    tcpcp_strerror()), -1;
		return fail("%s: %s%s", path, why, reset ? "; the peer was reset" : ""), -1;
	}
	/* Used at once by `tcpcp create`; after a crash the checkpoint is
	 * there to resurrect from again: no fsync (0.8 ms an image here). */
	if (image_open(&o, out) || ((o.nosync = true), image_commit(&o, buf, olen))) {
		free(buf);
		return -1;
	}
	free(buf);
	return 0;
}

static void print_view(const char *path, const void *img, size_t len,
		       const struct tcpcp_peer_view *v, const int64_t *skip)
{
	struct tcpcp_image *im = tcpcp_image_read(img, len);
	const TcpcpIci *ici = im ? tcpcp_image_ici(im) : NULL;

	printf("{\"image\": \"%s\", \"answered\": %s", path, v->answered ? "true" : "false");
	if (v->answered && ici) {
		printf(", \"snd_nxt\": %u, \"rcv_nxt\": %u, \"window\": %u", v->snd_nxt, v->rcv_nxt,
		       v->window);
		/* Since the checkpoint: our bytes the peer got beyond its
		 * snd_una, and the peer's sent beyond its rcv_nxt. */
		printf(", \"acked_since\": %u, \"sent_since\": %u",
		       v->rcv_nxt - (ici->has_unqueued_una ? ici->unqueued_una : ici->snd_una),
		       v->snd_nxt - ici->rcv_nxt);
		if (v->has_ts)
			printf(", \"tsval\": %u, \"tsecr\": %u", v->tsval, v->tsecr);
		if (skip)
			printf(", \"skip\": %" PRId64, *skip);
	}
	printf("}\n");
	tcpcp_image_free(im);
}

int cmd_probe(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "timeout", 1, NULL, 't' },
		{ "resurrect", 1, NULL, 'r' },
		{ "reset-refused", 0, NULL, 'R' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = NULL;
	bool reset = false;
	int64_t skip;
	unsigned long timeout = PROBE_TIMEOUT_MS;
	struct tcpcp_peer_view *v;
	const void **img;
	size_t *len, n, i;
	int c, got, rc = EXIT_OK;
	char *end;

	while ((c = getopt_long(argc, argv, "+", lo, NULL)) != -1) {
		switch (c) {
		case 't':
			timeout = strtoul(optarg, &end, 10);
			if (*end || !*optarg || timeout == 0 || timeout > 600000)
				die_usage("probe: --timeout takes milliseconds, 1 to 600000");
			break;
		case 'r':
			dir = optarg;
			break;
		case 'R':
			reset = true;
			break;
		default:
			die_usage("probe: unknown option");
		}
	}
	if (optind >= argc)
		die_usage("probe: no image file given");
	n = (size_t)(argc - optind);
	img = calloc(n, sizeof(*img));
	len = calloc(n, sizeof(*len));
	v = calloc(n, sizeof(*v));
	if (!img || !len || !v)
		return fail("out of memory");
	for (i = 0; i < n; i++) {
		struct tcpcp_image *im;

		img[i] = image_read(argv[optind + (int)i], &len[i]);
		if (!img[i]) {
			rc = EXIT_FAIL;
			goto out;
		}
		/* Checked here to name the file; tcpcp_probe() checks again. */
		im = tcpcp_image_read(img[i], len[i]);
		if (!im) {
			rc = fail("%s: %s", argv[optind + (int)i], tcpcp_strerror());
			goto out;
		}
		tcpcp_image_free(im);
	}
	got = tcpcp_probe(-1, img, len, n, v, (unsigned int)timeout);
	if (got < 0) {
		rc = fail("%s", tcpcp_strerror());
		goto out;
	}
	for (i = 0; i < n; i++) {
		const char *path = argv[optind + (int)i];
		bool ok = dir && v[i].answered;

		if (ok && resurrect_one(dir, path, img[i], len[i], &v[i], &skip, reset)) {
			rc = EXIT_FAIL;
			ok = false;
		}
		print_view(path, img[i], len[i], &v[i], ok ? &skip : NULL);
	}
	if ((size_t)got < n)
		rc = fail("%zu of %zu peer(s) did not answer within %lu ms", n - (size_t)got, n,
			  timeout);
out:
	for (i = 0; i < n; i++)
		free((void *)img[i]);
	free(img);
	free(len);
	free(v);
	return rc;
}
