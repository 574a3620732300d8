/* SPDX-License-Identifier: GPL-2.0-or-later */
/* tcpcp: take, inspect and recreate TCP connection endpoints. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
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
	"         [--transparent] [--keep-timestamp] [--congestion fresh|carry]\n"
	"         [--activate] [--fd-number N] -- COMMAND [ARGS...]\n"
	"                                  recreate the endpoint and exec COMMAND with it\n"
	"                                  as fd N (3); TCPCP_FD names it.  Without\n"
	"                                  --activate, COMMAND or `tcpcp activate`\n"
	"                                  starts it once traffic reaches this host.\n"
	"                                  carry: the ICI's congestion window, not the\n"
	"                                  initial one (needs congestion-carry yes in\n"
	"                                  /etc/tcpcp.conf)\n"
	"  activate --pid PID --fd FD [--image FILE]\n"
	"                                  let a recreated endpoint send and receive\n"
	"Anywhere:\n"
	"  show FILE [--json]              print an ICI image, like `crit show`\n"
	"  edit [--local ADDR] [--local-port PORT] [--peer ADDR] [--peer-port PORT]\n"
	"       [--only-local ADDR] [--only-port PORT] FILE...\n"
	"                                  rewrite addresses/ports of images (e.g. CRIU's\n"
	"                                  tcpcp-*.img) for a restore behind NAT\n"
	"  gate [status|flush|setup|unload] the BPF gate of this network namespace\n"
	"  gate close [--secs N] FILE...   drop the connections of these images here\n"
	"                                  for N seconds (60), e.g. before taking over\n"
	"Fail-over (standby; also as tcpcp-standby):\n"
	"  probe [--timeout MS] [--resurrect DIR [--reset-refused]] FILE...\n"
	"                                  ask the peers of checkpointed connections where\n"
	"                                  they stand now: one JSON line each (their\n"
	"                                  snd_nxt, rcv_nxt, window, clock); exit 1 if\n"
	"                                  one did not answer within MS (3000).  DIR:\n"
	"                                  write each image brought up to its peer there,\n"
	"                                  for `tcpcp create`; \"skip\" says how many bytes\n"
	"                                  past the checkpoint the application must skip;\n"
	"                                  --reset-refused: reset the peers of those that\n"
	"                                  cannot be resurrected\n"
	"  standby --listen ADDR:PORT --key FILE ... -- COMMAND [ARGS...]\n"
	"                                  keep the checkpoints primaries send; when one\n"
	"                                  dies, resurrect its connections, run COMMAND\n"
	"                                  with each\n"
	"Live passing of a running program (also as tcpcp-pass, tcpcp-passd):\n"
	"  pass --to ADDR:PORT --key FILE --pid PID --fd FD ...\n"
	"                                  pass it to the tcpcp passd at ADDR:PORT\n"
	"  passd --listen ADDR:PORT --key FILE ... -- COMMAND [ARGS...]\n"
	"                                  take passed connections, run COMMAND with each\n"
	"\n"
	"Every command answers --help; tcpcp --version prints the version.\n"
	"\n"
	"Exit status: 0 success; 1 the operation failed and the connection was left as\n"
	"it was (the message names the cause); 2 bad command line.\n"
	"Taking or creating a connection needs CAP_NET_ADMIN in its network namespace.\n";

void die_usage(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try '%s --help'.\n", prog);
	exit(EXIT_USAGE);
}

int fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
	return EXIT_FAIL;
}

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const char *prog;	/* its messages' name, if not "tcpcp" */
} commands[] = {
	{ "get", cmd_get, NULL },
	{ "release", cmd_release, NULL },
	{ "close", cmd_close, NULL },
	{ "create", cmd_create, NULL },
	{ "activate", cmd_activate, NULL },
	{ "show", cmd_show, NULL },
	{ "edit", cmd_edit, NULL },
	{ "gate", cmd_gate, NULL },
	{ "probe", cmd_probe, NULL },
	{ "pass", cmd_pass, "tcpcp-pass" },
	{ "passd", cmd_passd, "tcpcp-passd" },
	{ "standby", cmd_standby, "tcpcp-standby" },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/* tcpcp-pass and tcpcp-passd are links to tcpcp: the name says which. */
static int by_name(int argc, char **argv)
{
	const char *base = strrchr(argv[0], '/');
	size_t i;

	base = base ? base + 1 : argv[0];
	for (i = 0; i < NCOMMANDS; i++)
		if (commands[i].prog && !strcmp(base, commands[i].prog)) {
			prog = commands[i].prog;
			return commands[i].fn(argc, argv);
		}
	return -1;
}

/* `tcpcp COMMAND --help`: the command's lines of the usage above (its
 * own line and the more deeply indented ones after it), one source for
 * both. */
static int command_help(const char *name)
{
	const char *line = usage, *next;
	size_t n = strlen(name);
	bool in = false, first = true;

	for (; *line; line = next) {
		next = strchr(line, '\n');
		next = next ? next + 1 : line + strlen(line);
		if (!strncmp(line, "  ", 2) && line[2] != ' ')
			in = !strncmp(line + 2, name, n) && line[2 + n] == ' ';
		else if (strncmp(line, "   ", 3))
			in = false;
		if (in && first)
			printf("Usage: tcpcp %.*s", (int)(next - line - 2), line + 2);
		else if (in)	/* shifted as far as the first line was */
			printf("%11s%.*s", "", (int)(next - line), line);
		first = first && !in;
	}
	return EXIT_OK;
}

static bool wants_help(int argc, char **argv)
{
	return argc > 2 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"));
}

int main(int argc, char **argv)
{
	size_t i;
	int ret;

	if (argc > 0 && (ret = by_name(argc, argv)) >= 0)
		return ret;
	if (argc < 2)
		die_usage("missing command");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		fputs(usage, stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("tcpcp %s\n", TCPCP_VERSION);
		return EXIT_OK;
	}
	for (i = 0; i < NCOMMANDS; i++)
		if (!strcmp(argv[1], commands[i].name)) {
			if (commands[i].prog)
				prog = commands[i].prog;
			else if (wants_help(argc, argv) && strcmp(argv[1], "gate"))
				return command_help(argv[1]);
			return commands[i].fn(argc - 1, argv + 1);
		}
	die_usage("unknown command '%s'", argv[1]);
}
