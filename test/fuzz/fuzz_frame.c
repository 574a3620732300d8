// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libFuzzer target: pass-protocol frames as a destination receives them
 * (lib/pass-frame.c), over a socketpair.  The first input byte picks who
 * is sending:
 *
 *   even  a client without the key: the bytes go to the socket as they
 *         are, and every outcome must be a refusal with a one-line
 *         message, reading no more than the header before the tags fail;
 *   odd   a client with the key: the rest is a body, framed here with
 *         valid tags (the labels of pass-frame.c, repeated on purpose:
 *         a change to the wire format must change this file too), so
 *         that protobuf-c's decoding of pass messages is fuzzed.
 *
 *     make fuzz && build-fuzz/fuzz-frame -max_total_time=60 NEW_DIR test/fuzz/corpus-frame
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pass.h"

static const uint8_t key[TCPCP_PASS_KEY_LEN] = { 0x7c, 0x9c, 1, 2, 3 };

static void check_message(void)
{
	const char *msg = tcpcp_strerror();

	if (!msg || !*msg || strchr(msg, '\n'))
		abort();
}

/* The origin's tags: role 0, sequence 0 (pass-frame.c, frame_mac). */
static void tag(const char *label, size_t label_len, const uint8_t hdr[4],
		const uint8_t *body, size_t len, uint8_t out[TCPCP_MAC_LEN])
{
	uint8_t role = 0, seq[8] = { 0 };
	struct iovec iov[5] = {
		{ (void *)label, label_len }, { &role, 1 }, { seq, 8 }, { (void *)hdr, 4 },
		{ (void *)body, len },
	};

	if (tcpcp_mac(key, iov, body ? 5 : 4, out))
		abort();
}

static void send_framed(int fd, const uint8_t *body, size_t len)
{
	static const char mac_label[] = "tcpcp-pass-2", len_label[] = "tcpcp-pass-2-length";
	uint8_t hdr[4], htag[TCPCP_MAC_LEN], btag[TCPCP_MAC_LEN];
	uint32_t be = htonl((uint32_t)len);

	memcpy(hdr, &be, 4);
	tag(len_label, sizeof(len_label), hdr, NULL, 0, htag);
	tag(mac_label, sizeof(mac_label), hdr, body ? body : (const uint8_t *)"", len, btag);
	if (write(fd, hdr, 4) != 4 || write(fd, htag, sizeof(htag)) != sizeof(htag) ||
	    (len && write(fd, body, len) != (ssize_t)len) ||
	    write(fd, btag, sizeof(btag)) != sizeof(btag))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tcpcp_pass p = { .role = TCPCP_PASS_DEST, .timeout_ms = 1000 };
	TcpcpPassMsg *m;
	int sv[2];

	if (size < 1 || size > 65536)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		abort();
	memcpy(p.key, key, sizeof(key));
	p.fd = sv[1];
	if (data[0] & 1)
		send_framed(sv[0], data + 1, size - 1);
	else if (size > 1 && write(sv[0], data + 1, size - 1) != (ssize_t)(size - 1))
		abort();
	close(sv[0]);		/* the rest reads as EOF, not a wait */
	m = tcpcp_frame_recv(&p, p.timeout_ms, "fuzzing");
	if (!m)
		check_message();
	else if (!(data[0] & 1) && size < 1 + 4 + 2 * TCPCP_MAC_LEN)
		abort();	/* accepted without the key */
	else
		tcpcp_pass_msg__free_unpacked(m, NULL);
	close(sv[1]);
	return 0;
}
