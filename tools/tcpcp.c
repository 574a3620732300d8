/* SPDX-License-Identifier: GPL-2.0-or-later */
/* tcpcp: take, inspect and recreate TCP connection endpoints. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tcpcp-cli.h"

const char *prog = "tcpcp";

static const char usage[] =
	"Usage: tcpcp COMMAND [OPTIONS]\n"
	"\n"
	"Pass one end of an established TCP connection to another host.\n"
	"\n"
	"On the origin:\n"
	"  get --pid PID --fd FD -o FILE   isolate the connection on fd FD of process PID\n"
	"                                  and write its ICI image to FILE (atomically)\n"
	"  release --pid PID --fd FD       roll back: undo the isolation, the connection\n"
	"                                  continues at the origin\n"
	"  close --pid PID --fd FD [--linger SECONDS]\n"
	"                                  the pass succeeded: keep dropping the\n"
	"                                  connection's segments here for SECONDS (60)\n"
	"                                  so that closing the fd never resets the peer\n"
	"On the destination:\n"
	"  create FILE [--port-mode same|any|bound:PORT] [--local ADDR]\n"
	"         [--transparent] [--keep-timestamp] [--activate] [--fd-number N]\n"
	"         -- COMMAND [ARGS...]\n"
	"                                  recreate the endpoint and exec COMMAND with it\n"
	"                                  as fd N (3); TCPCP_FD names it.  Without\n"
	"                                  --activate, COMMAND or `tcpcp activate`\n"
	"                                  starts it once traffic reaches this host\n"
	"  activate --pid PID --fd FD [--image FILE]\n"
	"                                  let a recreated endpoint send and receive\n"
	"Anywhere:\n"
	"  show FILE [--json]              print an ICI image, like `crit show`\n"
	"  edit [--local ADDR] [--local-port PORT] [--peer ADDR] [--peer-port PORT]\n"
	"       [--only-local ADDR] [--only-port PORT] FILE...\n"
	"                                  rewrite addresses/ports of images (e.g. CRIU's\n"
	"                                  tcpcp-*.img) for a restore behind NAT\n"
	"\n"
	"Exit status: 0 success; 1 the operation failed and the connection was left as\n"
	"it was (the message names the cause); 2 bad command line.\n"
	"Taking or creating a connection needs CAP_NET_ADMIN in its network namespace.\n";

static void say(const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void die_usage(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	say(fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try '%s --help'.\n", prog);
	exit(EXIT_USAGE);
}

int fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	say(fmt, ap);
	va_end(ap);
	return EXIT_FAIL;
}

static const struct {
	const char *name;
	int (*fn)(int, char **);
} commands[] = {
	{ "get", cmd_get },
	{ "release", cmd_release },
	{ "close", cmd_close },
	{ "create", cmd_create },
	{ "activate", cmd_activate },
	{ "show", cmd_show },
	{ "edit", cmd_edit },
	{ "gate", cmd_gate },
};

int main(int argc, char **argv)
{
	size_t i;

	if (argc < 2)
		die_usage("missing command");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		fputs(usage, stdout);
		return EXIT_OK;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	die_usage("unknown command '%s'", argv[1]);
}
