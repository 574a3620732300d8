/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tcpcp gate: look at or remove the gate of this network namespace.
 * The gate removes itself with its last entry; `flush` is for what a
 * crashed process left behind (an entry nobody will open again keeps
 * dropping that connection, and keeps the namespace alive after
 * `ip netns del`), and for test suites that clean up after themselves.
 * Built on the public header alone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tcpcp.h"
#include "tcpcp-cli.h"

static const char usage[] =
	"Usage: tcpcp gate [status|flush|setup|unload]\n"
	"       tcpcp gate close [--secs N] FILE...\n"
	"\n"
	"  status   print how many connections the gate of this network namespace\n"
	"           drops (default)\n"
	"  flush    remove the gate of this network namespace: every connection it\n"
	"           held flows again\n"
	"  setup    mount tcpcp's BPF file system (/run/tcpcp/bpf) here; needed once\n"
	"           before tcpcp runs in private mount namespaces (ip netns exec)\n"
	"  unload   unpin the host's gate programs (kept loaded between uses, and\n"
	"           attached in an empty namespace of tcpcp's: docs/gate.md, the\n"
	"           anchor); refused while any network namespace has a gate\n"
	"  close    drop the connections of these ICI images here for N seconds\n"
	"           (60): a standby's first step, before the service address moves\n"
	"           to it, so that no segment of a peer's meets a host without the\n"
	"           connection and draws a RST\n";

#define CLOSE_SECS_DEFAULT	60

/* `gate close`: each image's 4-tuple, in one batch. */
static int gate_close(int argc, char **argv)
{
	unsigned long secs = CLOSE_SECS_DEFAULT;
	struct tcpcp_ends *e;
	int i = 2, n, rc = EXIT_OK;
	char *end;

	if (i < argc && !strcmp(argv[i], "--secs")) {
		if (i + 1 >= argc)
			die_usage("gate close: --secs needs a value");
		secs = strtoul(argv[i + 1], &end, 10);
		if (*end || !*argv[i + 1] || secs == 0 || secs > 86400)
			die_usage("gate close: --secs takes 1 to 86400");
		i += 2;
	}
	if (i >= argc)
		die_usage("gate close: no image file given");
	n = argc - i;
	e = calloc((size_t)n, sizeof(*e));
	if (!e)
		return fail("out of memory");
	for (int k = 0; k < n && rc == EXIT_OK; k++) {
		struct tcpcp_image *img = image_load(argv[i + k]);

		if (!img)
			rc = EXIT_FAIL;
		else
			tcpcp_image_ends(img, &e[k].local, &e[k].peer);
		tcpcp_image_free(img);
	}
	if (rc == EXIT_OK && tcpcp_gate_close_ends(-1, e, (size_t)n, (unsigned int)secs))
		rc = fail("%s", tcpcp_strerror());
	free(e);
	return rc;
}

int cmd_gate(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "status";
	const char *last = argv[argc - 1];
	long n;

	/* `gate --help`, and any action's (`gate close --help`). */
	if (!strcmp(last, "--help") || !strcmp(last, "-h")) {
		fputs(usage, stdout);
		return EXIT_OK;
	}
	if (!strcmp(what, "close"))
		return gate_close(argc, argv);
	if (argc > 2)
		die_usage("gate takes one word");
	if (!strcmp(what, "flush"))
		return tcpcp_gate_flush(-1) ? fail("%s", tcpcp_strerror()) : EXIT_OK;
	if (!strcmp(what, "setup"))
		return tcpcp_gate_setup() ? fail("%s", tcpcp_strerror()) : EXIT_OK;
	if (!strcmp(what, "unload"))
		return tcpcp_gate_unload() ? fail("%s", tcpcp_strerror()) : EXIT_OK;
	if (strcmp(what, "status"))
		die_usage("gate: unknown action '%s'", what);
	n = tcpcp_gate_entries(-1);
	if (n < 0)
		return fail("%s", tcpcp_strerror());
	printf("%ld\n", n);
	return EXIT_OK;
}
