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
#include <string.h>

#include "tcpcp.h"
#include "tcpcp-cli.h"

static const char usage[] =
	"Usage: tcpcp gate [status|flush|setup|unload]\n"
	"\n"
	"  status   print how many connections the gate of this network namespace\n"
	"           drops (default)\n"
	"  flush    remove the gate of this network namespace: every connection it\n"
	"           held flows again\n"
	"  setup    mount tcpcp's BPF file system (/run/tcpcp/bpf) here; needed once\n"
	"           before tcpcp runs in private mount namespaces (ip netns exec)\n"
	"  unload   unpin the host's gate programs (kept loaded between uses);\n"
	"           refused while any network namespace has a gate\n";

int cmd_gate(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "status";
	long n;

	if (!strcmp(what, "--help") || !strcmp(what, "-h")) {
		fputs(usage, stdout);
		return EXIT_OK;
	}
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
