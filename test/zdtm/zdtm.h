/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A tiny zdtm-like harness for TCP connection tests under CRIU.
 *
 * A test program (the process that gets dumped) listens on one or more
 * addresses, takes --conns connections from tcpcp-zdtm-peer, sets up its
 * state, writes --ready, then runs until its connections are complete and
 * verified.  It prints "PASS" or "FAIL: reason" and exits 0 only on PASS.
 * The driver dumps and restores it in between, and sends SIGUSR1 to both
 * sides once the restore is over: a side "holding" its reads (so that data
 * sits unread in the queues during the checkpoint) starts reading then.
 *
 * Stream: byte i of direction d of connection c is a pure function of
 * (seed, d, c, i), so either side verifies every byte it receives.  The
 * peer opens each connection with an 8-byte header: the connection index.
 */
#ifndef ZDTM_H
#define ZDTM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

enum dir { C2S = 0, S2C = 1 };	/* client (peer) to server (test) and back */

struct zconn {
	int fd;
	uint32_t idx;		/* the peer's connection index */
	bool have_idx;
	uint8_t hdr[8];
	unsigned int hdr_off;
	uint64_t tx_off, rx_off;	/* stream offsets */
	uint64_t tx_total, rx_total;
	bool tx_shut, rx_eof;
	bool fin_early;		/* our FIN as soon as our stream is out */
	enum dir tx_dir;
};

struct zopts {
	const char *addr[4];	/* --listen or --connect, repeatable */
	int naddr;
	const char *source[4];	/* --source: local address for the i-th --connect */
	int nsource;
	unsigned int conns;	/* in all, spread over the addresses */
	uint64_t bytes_c2s, bytes_s2c;
	uint64_t seed;
	uint64_t rate;		/* bytes/s per direction, shared by all connections; 0: no limit */
	bool hold;		/* no reads before SIGUSR1 */
	bool fin_early;		/* half-close: the peer's FIN first on even
				 * connections, the server's on odd ones */
	const char *ready;
	unsigned int timeout_s;
};

extern volatile int zdtm_go;		/* SIGUSR1 seen */

void zdtm_parse(int argc, char **argv, struct zopts *o, const char *usage_extra);
void zdtm_signals(void);
void zdtm_nofile(unsigned int need);
void zdtm_ready(const struct zopts *o);
__attribute__((noreturn, format(printf, 1, 2))) void zdtm_fail(const char *fmt, ...);
__attribute__((noreturn)) void zdtm_pass(void);

socklen_t zdtm_sockaddr(const char *s, struct sockaddr_storage *ss);
int zdtm_listen(const char *addr);
int zdtm_connect(const char *addr, const char *source);
/* The peer side: --conns connections over the --connect addresses. */
void zdtm_connect_all(struct zconn *c, const struct zopts *o, bool server);

/* Drive all connections until complete; returns only on success. */
void zdtm_run(struct zconn *c, unsigned int n, const struct zopts *o, bool server);
/* Move queued data in one step without blocking: fill send queues, and
 * (unless holding) drain receive queues. */
void zdtm_pump(struct zconn *c, unsigned int n, const struct zopts *o, bool server, bool may_read);
void zdtm_conn_init(struct zconn *c, int fd, uint32_t idx, const struct zopts *o, bool server);
/* Send our FIN if it is due (both directions through, or fin_early). */
void zdtm_maybe_shut(struct zconn *c);
void zdtm_accept_all(int *lfd, int nl, struct zconn *c, const struct zopts *o);

#endif
