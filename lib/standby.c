/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Checkpoints sent to a standby (paper section 6): the messages of a
 * fail-over session, on the pass protocol's authenticated control
 * connection (pass.c greets, pass-frame.c frames).  The primary's
 * application sends each connection's latest checkpoint, says when a
 * connection ended, and beats while it has nothing else to say; the
 * standby (`tcpcp standby`, restore/) keeps the latest per connection and
 * takes over when the session breaks or falls silent without a BYE.
 *
 * Connections are named by tcpcp_ends_str() of their ends, which both
 * sides compute alike: from the socket at the primary, from the image at
 * the standby.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pass.h"

static int send_kind(struct tcpcp_pass *p, TcpcpPassMsg *m, TcpcpPassMsg__Type kind)
{
	tcpcp_clear_error();
	if (!p)
		return tcpcp_fail(EINVAL, "no control session"), -1;
	if (p->role != TCPCP_PASS_ORIGIN)
		return tcpcp_fail(EINVAL, "only a primary (TCPCP_PASS_ORIGIN) sends checkpoints"), -1;
	m->kind = kind;
	return tcpcp_frame_send(p, m) ? -1 : 0;
}

TCPCP_EXPORT int tcpcp_ckpt_send(struct tcpcp_pass *p, const void *img, size_t len)
{
	TcpcpPassMsg m;

	tcpcp_pass_msg__init(&m);
	if (!img || !len)
		return tcpcp_fail(EINVAL, "tcpcp_ckpt_send: no checkpoint"), -1;
	m.has_ici = true;
	m.ici = (ProtobufCBinaryData){ len, (uint8_t *)img };
	return send_kind(p, &m, TCPCP_PASS_MSG__TYPE__CHECKPOINT);
}

TCPCP_EXPORT int tcpcp_ckpt_forget(struct tcpcp_pass *p, int s)
{
	struct tcpcp_ends e;
	char conn[TCPCP_CONN_LEN];
	TcpcpPassMsg m;

	tcpcp_clear_error();
	if (tcpcp_ends_of(s, &e) || tcpcp_ends_str(&e, conn, sizeof(conn)))
		return -1;
	tcpcp_pass_msg__init(&m);
	m.conn = conn;
	return send_kind(p, &m, TCPCP_PASS_MSG__TYPE__FORGET);
}

TCPCP_EXPORT int tcpcp_ckpt_beat(struct tcpcp_pass *p)
{
	TcpcpPassMsg m;

	tcpcp_pass_msg__init(&m);
	return send_kind(p, &m, TCPCP_PASS_MSG__TYPE__BEAT);
}

TCPCP_EXPORT int tcpcp_ckpt_bye(struct tcpcp_pass *p)
{
	TcpcpPassMsg m;

	tcpcp_pass_msg__init(&m);
	return send_kind(p, &m, TCPCP_PASS_MSG__TYPE__BYE);
}

/* The name of the connection in image @img, for a checkpoint. */
static int conn_of(const void *img, size_t len, char *conn)
{
	struct tcpcp_image *im = tcpcp_image_read(img, len);
	struct tcpcp_ends e;
	int err = 0;

	if (!im)
		return -errno;
	if (tcpcp_image_ends(im, &e.local, &e.peer) || tcpcp_ends_str(&e, conn, TCPCP_CONN_LEN))
		err = -errno;
	tcpcp_image_free(im);
	return err;
}

static int take(const TcpcpPassMsg *r, struct tcpcp_ckpt_msg *m)
{
	switch (r->kind) {
	case TCPCP_PASS_MSG__TYPE__CHECKPOINT:
		if (!r->has_ici || !r->ici.len)
			return tcpcp_fail(EBADMSG, "a checkpoint message without a checkpoint");
		/* Checked here, so that a standby never keeps what it could
		 * not recreate. */
		if (conn_of(r->ici.data, r->ici.len, m->conn))
			return -errno;
		m->img = malloc(r->ici.len);
		if (!m->img)
			return tcpcp_fail(ENOMEM, "out of memory for a %zu byte checkpoint",
					  r->ici.len);
		memcpy(m->img, r->ici.data, r->ici.len);
		m->len = r->ici.len;
		m->kind = TCPCP_CKPT_IMAGE;
		return 0;
	case TCPCP_PASS_MSG__TYPE__FORGET:
		if (!r->conn || strlen(r->conn) >= TCPCP_CONN_LEN)
			return tcpcp_fail(EBADMSG, "a forget message without a connection");
		strcpy(m->conn, r->conn);
		m->kind = TCPCP_CKPT_FORGET;
		return 0;
	case TCPCP_PASS_MSG__TYPE__BEAT:
		m->kind = TCPCP_CKPT_BEAT;
		return 0;
	case TCPCP_PASS_MSG__TYPE__BYE:
		m->kind = TCPCP_CKPT_BYE;
		return 0;
	default:
		return tcpcp_fail(EBADMSG, "the primary sent a message of kind %d, not a checkpoint's",
				  (int)r->kind);
	}
}

TCPCP_EXPORT int tcpcp_ckpt_recv(struct tcpcp_pass *p, int timeout_ms, struct tcpcp_ckpt_msg *m)
{
	TcpcpPassMsg *r;
	int err;

	tcpcp_clear_error();
	if (!p || !m)
		return tcpcp_fail(EINVAL, "tcpcp_ckpt_recv: missing argument"), -1;
	if (p->role != TCPCP_PASS_DEST)
		return tcpcp_fail(EINVAL, "only a standby (TCPCP_PASS_DEST) receives checkpoints"), -1;
	memset(m, 0, sizeof(*m));
	r = tcpcp_frame_recv(p, timeout_ms, "waiting for the primary");
	if (!r)
		return -1;
	err = take(r, m);
	tcpcp_pass_msg__free_unpacked(r, NULL);
	return err ? -1 : 0;
}
