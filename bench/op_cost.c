// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * op_cost: what one tcpcp_get() and one tcpcp_create() + tcpcp_activate()
 * cost, in microseconds, on N loopback connections in this process.
 *
 *     op_cost N none|get|all|all-warm|all-carry [close-wait]
 *
 * none: only set up N connections; get: also take each server end and
 * close it silently; all: also recreate and activate each one, then check
 * that one byte still crosses each recreated connection both ways.
 * all-warm: the same while one more connection of the namespace stays
 * gated, as a namespace with passes in flight or lingering origins has
 * it: the gate's hooks stay attached, where "all" attaches and detaches
 * them for each connection (its gate empties after each activation).
 * all-carry: "all" with congestion carry-over (TCPCP_CONGESTION_CARRY; the
 * caller's tcpcp.conf must allow it), the congestion control that sets
 * the window and threshold selected and left again on each connection.
 * close-wait: the client has shut down its side first, so each server end
 * is half-closed and its create replays the client's FIN (lib/fin.c); the
 * check is then one byte to the client and the EOF at the server.
 * Syscall counts come from running it under `strace -c -f` in each mode
 * and subtracting (bench/op_cost.sh does that).  Run it in a network
 * namespace of its own: it loads the gate into that namespace.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <tcpcp.h>

struct conn {
	int client, server;
	void *ici;
	size_t len;
};

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int die(const char *what)
{
	fprintf(stderr, "op_cost: %s: %s\n", what, tcpcp_strerror());
	exit(1);
}

static int tcp_state(int s)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	return getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &len) ? -1 : ti.tcpi_state;
}

/* The client's FIN must also be acknowledged before the server end is
 * taken: else the client retransmits it while the old end is gone and
 * the new one not yet there (one host here, and no lingering gate), and
 * that segment draws a RST. */
static void half_close(struct conn *c, int n)
{
	struct timespec ms = { 0, 1000000 };
	char b;

	for (int i = 0; i < n; i++) {
		int tries = 0;

		if (shutdown(c[i].client, SHUT_WR) || read(c[i].server, &b, 1) != 0) {
			perror("op_cost: half-close");
			exit(1);
		}
		while (tcp_state(c[i].client) != TCP_FIN_WAIT2 && tries++ < 1000)
			nanosleep(&ms, NULL);
	}
}

static void setup(struct conn *c, int n)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0);

	if (l < 0 || bind(l, (void *)&a, sizeof(a)) || listen(l, n) ||
	    getsockname(l, (void *)&a, &alen)) {
		perror("op_cost: listener");
		exit(1);
	}
	for (int i = 0; i < n; i++) {
		c[i].client = socket(AF_INET, SOCK_STREAM, 0);
		if (c[i].client < 0 || connect(c[i].client, (void *)&a, sizeof(a))) {
			perror("op_cost: connect");
			exit(1);
		}
		c[i].server = accept(l, NULL, NULL);
		if (c[i].server < 0) {
			perror("op_cost: accept");
			exit(1);
		}
	}
	close(l);
}

static double take_all(struct conn *c, int n)
{
	double t = now_us();

	for (int i = 0; i < n; i++) {
		c[i].ici = tcpcp_get_ex(c[i].server, &c[i].len);
		if (!c[i].ici)
			die("tcpcp_get");
	}
	t = now_us() - t;
	for (int i = 0; i < n; i++)
		if (tcpcp_close(c[i].server, 0))
			die("tcpcp_close");
	return t;
}

static double recreate_all(struct conn *c, int n, bool carry)
{
	struct tcpcp_create_opts o = TCPCP_CREATE_OPTS_INIT;
	double t = now_us();

	o.congestion = carry ? TCPCP_CONGESTION_CARRY : TCPCP_CONGESTION_FRESH;
	for (int i = 0; i < n; i++) {
		c[i].server = tcpcp_create_ex(c[i].ici, c[i].len, &o);
		if (c[i].server < 0 || tcpcp_activate_ex(c[i].server, c[i].ici, c[i].len))
			die("tcpcp_create/activate");
	}
	return now_us() - t;
}

/* A cost is only worth reporting for connections that still work. */
static void check_all(struct conn *c, int n, bool half_closed)
{
	char b;

	for (int i = 0; i < n; i++) {
		if (write(c[i].server, "s", 1) != 1 || read(c[i].client, &b, 1) != 1 || b != 's' ||
		    (half_closed ? read(c[i].server, &b, 1) != 0 :
		     write(c[i].client, "c", 1) != 1 || read(c[i].server, &b, 1) != 1 || b != 'c')) {
			fprintf(stderr, "op_cost: connection %d broken after the pass\n", i);
			exit(1);
		}
	}
}

int main(int argc, char **argv)
{
	struct conn *c;
	double get_us = 0, create_us = 0;
	size_t bytes = 0;
	bool half_closed = argc == 4 && !strcmp(argv[3], "close-wait");
	bool warm = argc >= 3 && !strcmp(argv[2], "all-warm");
	bool carry = argc >= 3 && !strcmp(argv[2], "all-carry");
	int n;

	if (argc < 3 || argc > 4 || (argc == 4 && !half_closed) || (n = atoi(argv[1])) <= 0) {
		fputs("usage: op_cost N none|get|all|all-warm|all-carry [close-wait]\n", stderr);
		return 2;
	}
	c = calloc((size_t)n + 1, sizeof(*c));
	if (!c)
		return 1;
	setup(c, n + warm);	/* the warm one is c[n] */
	if (half_closed)
		half_close(c, n);
	if (strcmp(argv[2], "none")) {
		get_us = take_all(c, n);
		for (int i = 0; i < n; i++)
			bytes += c[i].len;
	}
	if (!strcmp(argv[2], "all") || warm || carry) {
		if (warm && tcpcp_gate_close_fds(&c[n].server, 1))
			die("gating the warm connection");
		create_us = recreate_all(c, n, carry);
		if (warm && tcpcp_gate_open_fds(&c[n].server, 1))
			die("releasing the warm connection");
		check_all(c, n, half_closed);
	}
	printf("{\"n\": %d, \"get_us\": %.1f, \"create_activate_us\": %.1f, \"ici_bytes\": %.1f}\n",
	       n, get_us / n, create_us / n, (double)bytes / n);
	for (int i = 0; i <= n; i++)
		free(c[i].ici);
	free(c);
	return 0;
}
