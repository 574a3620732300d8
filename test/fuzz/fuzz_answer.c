// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libFuzzer target: a packet as the network gives it to `tcpcp probe`
 * (lib/probe.c, tcpcp_probe_answer()), which reads every packet of the
 * standby's namespace while it waits for the peers' answers.  Two
 * connections are waited for, one IPv4 and one IPv6, as the seeds'
 * answers name them; whatever the bytes, nothing is read outside the
 * packet, and an answer is taken only for a connection it names.
 *
 *     make fuzz && build-fuzz/fuzz-answer -max_total_time=60 NEW_DIR test/fuzz/corpus-answer
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tcpcp_tuple t[2];
	struct tcpcp_peer_view v[2];
	/* The IPv4 one waits for the D-SACK of its probe at seq 1000. */
	struct tcpcp_probe_want w[2] = { { true, 1000 }, { false, 0 } };
	uint8_t *pkt;

	memset(t, 0, sizeof(t));
	memset(v, 0, sizeof(v));
	t[0].family = AF_INET;
	inet_pton(AF_INET, "10.77.9.1", &t[0].local);
	inet_pton(AF_INET, "10.77.1.2", &t[0].peer);
	t[0].lport = 5001;
	t[0].pport = 40000;
	t[1].family = AF_INET6;
	inet_pton(AF_INET6, "fd77:9::1", &t[1].local);
	inet_pton(AF_INET6, "fd77:1::2", &t[1].peer);
	t[1].lport = 5001;
	t[1].pport = 40000;
	/* A copy of exactly @size bytes: ASan sees any read past it. */
	pkt = malloc(size ? size : 1);
	if (!pkt)
		return 0;
	memcpy(pkt, data, size);
	tcpcp_probe_answer(pkt, size, t, w, 2, v);
	if (v[0].answered && v[1].answered)
		abort();		/* one packet, one connection */
	if ((v[0].answered || v[1].answered) && size < 40)
		abort();		/* shorter than IPv4 + TCP headers */
	free(pkt);
	return 0;
}
