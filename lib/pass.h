/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TCPCP_PASS_H
#define TCPCP_PASS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "internal.h"
#include "pass.pb-c.h"

#define TCPCP_MAC_LEN		32
#define TCPCP_NONCE_LEN		32
/* An ICI (bounded in image.c) plus application state. */
#define TCPCP_FRAME_MAX		(TCPCP_MAX_PAYLOAD + (64u << 20))

struct tcpcp_pass {
	int fd;
	enum tcpcp_pass_role role;
	int timeout_ms;
	uint8_t key[TCPCP_PASS_KEY_LEN];	/* psk, then the session key */
	uint64_t tx_seq, rx_seq;
};

/* pass-frame.c */
int tcpcp_mac(const uint8_t *key, const struct iovec *iov, int n, uint8_t out[TCPCP_MAC_LEN]);
int tcpcp_frame_send(struct tcpcp_pass *p, const TcpcpPassMsg *m);
TcpcpPassMsg *tcpcp_frame_recv(struct tcpcp_pass *p, int timeout_ms, const char *what);
bool tcpcp_frame_pending(struct tcpcp_pass *p);

#endif
