/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The pass protocol (docs/pass.md): greeting, then the two phases.
 *
 *   origin                         destination
 *   HELLO(n_o)          ------>    (psk MAC)
 *                       <------    WELCOME(n_o, n_d)   (psk MAC)
 *   -- session key = HMAC(psk, label | n_o | n_d); every later frame --
 *   OFFER(ici, state)   ------>    tcpcp_create_ex()
 *                       <------    CREATED
 *   switch traffic
 *   ACTIVATE            ------>    tcpcp_activate_ex()
 *                       <------    ACTIVE
 *   tcpcp_close()
 *
 * Until the origin sends ACTIVATE, any failure (ABORT, EOF, timeout, bad
 * MAC) rolls back: the origin switches traffic back and releases, the
 * destination drops its gated socket.  Sending ACTIVATE is the commit
 * point: without ACTIVE the origin cannot tell whether the destination
 * activated, and a second live endpoint would corrupt the stream while a
 * lost one only ends it, so the origin closes (TCPCP_PASS_UNCONFIRMED).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pass.h"

/* A destination that gave up drops the 4-tuple for this long, so that
 * segments reaching it before the origin switched back get no RST. */
#define DEST_LINGER_S	10

static const char session_label[] = "tcpcp-pass-session-1";

static void msg_init(TcpcpPassMsg *m, TcpcpPassMsg__Type kind)
{
	tcpcp_pass_msg__init(m);
	m->kind = kind;
}

static int derive_session_key(struct tcpcp_pass *p, const uint8_t *n_o, const uint8_t *n_d)
{
	struct iovec iov[3] = {
		{ (void *)session_label, sizeof(session_label) },
		{ (void *)n_o, TCPCP_NONCE_LEN },
		{ (void *)n_d, TCPCP_NONCE_LEN },
	};
	uint8_t k[TCPCP_MAC_LEN];
	int err;

	err = tcpcp_mac(p->key, iov, 3, k);
	memcpy(p->key, k, sizeof(p->key));
	OPENSSL_cleanse(k, sizeof(k));
	return err;
}

static bool nonce_ok(const ProtobufCBinaryData *b, bool has)
{
	return has && b->len == TCPCP_NONCE_LEN;
}

static int greet_as_origin(struct tcpcp_pass *p)
{
	uint8_t n_o[TCPCP_NONCE_LEN];
	TcpcpPassMsg m, *r;
	int err;

	if (RAND_bytes(n_o, sizeof(n_o)) != 1)
		return tcpcp_fail(EIO, "no random numbers from OpenSSL");
	msg_init(&m, TCPCP_PASS_MSG__TYPE__HELLO);
	m.has_nonce_origin = true;
	m.nonce_origin = (ProtobufCBinaryData){ sizeof(n_o), n_o };
	if ((err = tcpcp_frame_send(p, &m)))
		return err;
	r = tcpcp_frame_recv(p, p->timeout_ms, "authenticating (do the keys match?)");
	if (!r)
		return -errno;
	if (r->kind != TCPCP_PASS_MSG__TYPE__WELCOME ||
	    !nonce_ok(&r->nonce_origin, r->has_nonce_origin) ||
	    !nonce_ok(&r->nonce_dest, r->has_nonce_dest) ||
	    CRYPTO_memcmp(r->nonce_origin.data, n_o, sizeof(n_o)))
		err = tcpcp_fail(EACCES, "control connection: authentication failed: "
				 "the destination did not answer our challenge");
	else
		err = derive_session_key(p, n_o, r->nonce_dest.data);
	tcpcp_pass_msg__free_unpacked(r, NULL);
	return err;
}

/* The HELLO may be a replay; the session key, fresh from our nonce,
 * makes the origin prove itself with its first real message. */
static int greet_as_dest(struct tcpcp_pass *p)
{
	uint8_t n_o[TCPCP_NONCE_LEN], n_d[TCPCP_NONCE_LEN];
	TcpcpPassMsg m, *r;
	int err;

	r = tcpcp_frame_recv(p, p->timeout_ms, "authenticating");
	if (!r)
		return -errno;
	if (r->kind != TCPCP_PASS_MSG__TYPE__HELLO ||
	    !nonce_ok(&r->nonce_origin, r->has_nonce_origin)) {
		tcpcp_pass_msg__free_unpacked(r, NULL);
		return tcpcp_fail(EPROTO, "control connection: the origin did not start with a greeting");
	}
	memcpy(n_o, r->nonce_origin.data, sizeof(n_o));
	tcpcp_pass_msg__free_unpacked(r, NULL);
	if (RAND_bytes(n_d, sizeof(n_d)) != 1)
		return tcpcp_fail(EIO, "no random numbers from OpenSSL");
	msg_init(&m, TCPCP_PASS_MSG__TYPE__WELCOME);
	m.has_nonce_origin = m.has_nonce_dest = true;
	m.nonce_origin = (ProtobufCBinaryData){ sizeof(n_o), n_o };
	m.nonce_dest = (ProtobufCBinaryData){ sizeof(n_d), n_d };
	if ((err = tcpcp_frame_send(p, &m)))
		return err;
	return derive_session_key(p, n_o, n_d);
}

TCPCP_EXPORT struct tcpcp_pass *tcpcp_pass_open(int ctl, enum tcpcp_pass_role role,
						const uint8_t key[TCPCP_PASS_KEY_LEN],
						int timeout_ms)
{
	struct tcpcp_pass *p;
	int err;

	tcpcp_clear_error();
	if (role != TCPCP_PASS_ORIGIN && role != TCPCP_PASS_DEST) {
		tcpcp_fail(EINVAL, "unknown pass role %d", role);
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		tcpcp_fail(ENOMEM, "out of memory");
		return NULL;
	}
	/* Request and answer, each one frame: nothing to coalesce. */
	setsockopt(ctl, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	p->fd = ctl;
	p->role = role;
	p->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
	memcpy(p->key, key, sizeof(p->key));
	err = role == TCPCP_PASS_ORIGIN ? greet_as_origin(p) : greet_as_dest(p);
	if (err) {
		tcpcp_pass_free(p);
		errno = -err;
		return NULL;
	}
	return p;
}

TCPCP_EXPORT void tcpcp_pass_free(struct tcpcp_pass *p)
{
	if (!p)
		return;
	OPENSSL_cleanse(p, sizeof(*p));
	free(p);
}

static void send_abort(struct tcpcp_pass *p, const char *why)
{
	TcpcpPassMsg m;

	msg_init(&m, TCPCP_PASS_MSG__TYPE__ABORT);
	m.error = (char *)why;
	tcpcp_frame_send(p, &m);	/* best effort: the pass is lost anyway */
}

/* The next message, which must be @want; ABORT becomes an error that
 * carries the other side's reason. */
static TcpcpPassMsg *expect(struct tcpcp_pass *p, TcpcpPassMsg__Type want, const char *what)
{
	TcpcpPassMsg *r = tcpcp_frame_recv(p, p->timeout_ms, what);
	const char *who = p->role == TCPCP_PASS_ORIGIN ? "destination" : "origin";

	if (!r || r->kind == want)
		return r;
	if (r->kind == TCPCP_PASS_MSG__TYPE__ABORT)
		tcpcp_fail(ECANCELED, "the %s gave up: %s", who,
			   r->error && *r->error ? r->error : "no reason given");
	else
		tcpcp_fail(EPROTO, "control connection: unexpected message %d from the %s "
			   "while %s", r->kind, who, what);
	tcpcp_pass_msg__free_unpacked(r, NULL);
	return NULL;
}

/* Keep the first failure's message: it is the one that names the cause.
 * Whatever else goes wrong on the way back is appended to it. */
static int rollback(struct tcpcp_pass *p, int s, const struct tcpcp_pass_send_opts *o,
		    bool switched)
{
	char why[512], back[300] = "";
	int err = errno ? errno : EIO;

	snprintf(why, sizeof(why), "%s", tcpcp_strerror());
	send_abort(p, why);
	if (switched && o->back && tcpcp_switch_run(o->back, s))
		snprintf(back, sizeof(back), "; switching traffic back failed: %s",
			 tcpcp_strerror());
	if (tcpcp_release(s)) {
		tcpcp_fail(EIO, "%s%s; releasing the connection failed too: %s", why, back,
			   tcpcp_strerror());
		return -1;
	}
	tcpcp_fail(err, "%s%s", why, back);
	return -1;
}

static int offer(struct tcpcp_pass *p, const void *ici, size_t ici_len,
		 const void *state, size_t state_len, bool carry)
{
	TcpcpPassMsg m, *r;

	msg_init(&m, TCPCP_PASS_MSG__TYPE__OFFER);
	m.has_ici = m.has_state = true;
	m.has_congestion_carry = m.congestion_carry = carry;
	m.ici = (ProtobufCBinaryData){ ici_len, (uint8_t *)ici };
	m.state = (ProtobufCBinaryData){ state_len, (uint8_t *)state };
	if (tcpcp_frame_send(p, &m))
		return -1;
	r = expect(p, TCPCP_PASS_MSG__TYPE__CREATED, "waiting for the endpoint to be created");
	if (!r)
		return -1;
	tcpcp_pass_msg__free_unpacked(r, NULL);
	return 0;
}

/* The last chance to roll back: a destination that died or gave up
 * while we switched has closed the control connection or said ABORT.
 * 1: it claims to be active already, so it must not be given a twin. */
static int still_there(struct tcpcp_pass *p)
{
	TcpcpPassMsg *r;

	if (!tcpcp_frame_pending(p))
		return 0;
	r = expect(p, TCPCP_PASS_MSG__TYPE__ACTIVE, "switching traffic");
	if (!r)
		return -1;
	tcpcp_pass_msg__free_unpacked(r, NULL);
	return 1;
}

/* tcpcp_close() fails only when the gate cannot be set to linger; it then
 * keeps dropping the 4-tuple for good, and a socket in repair mode closes
 * without a word, so the caller's fd goes in any case. */
static void close_silently(int s, unsigned int linger_s)
{
	if (tcpcp_close(s, linger_s))
		close(s);
}

TCPCP_EXPORT int tcpcp_pass_send(struct tcpcp_pass *p, int s, const void *ici, size_t ici_len,
				 const void *state, size_t state_len,
				 const struct tcpcp_pass_send_opts *o)
{
	struct tcpcp_pass_send_opts copy = { .linger_s = 60 };
	TcpcpPassMsg m, *r;

	tcpcp_clear_error();
	errno = 0;
	/* Refused options roll back too: @s is isolated, and -1 promises it
	 * continues here. */
	if (o && tcpcp_opts_copy(&copy, sizeof(copy), o, "tcpcp_pass_send_opts"))
		return rollback(p, s, &copy, false);
	o = &copy;
	if (p->role != TCPCP_PASS_ORIGIN) {
		tcpcp_fail(EINVAL, "tcpcp_pass_send() on a destination's session");
		return rollback(p, s, o, false);
	}
	if (tcpcp_validate(ici, ici_len) || offer(p, ici, ici_len, state, state_len,
					       o->congestion == TCPCP_CONGESTION_CARRY))
		return rollback(p, s, o, false);
	if (o->to && tcpcp_switch_run(o->to, s))
		return rollback(p, s, o, true);	/* it may have half worked */
	switch (still_there(p)) {
	case 0:
		break;
	case 1:
		close_silently(s, o->linger_s);
		tcpcp_fail(EPROTO, "the destination activated before it was told to; "
			   "the connection was left to it");
		return TCPCP_PASS_UNCONFIRMED;
	default:
		return rollback(p, s, o, true);
	}
	msg_init(&m, TCPCP_PASS_MSG__TYPE__ACTIVATE);
	/* A failed send means the destination reset the control connection
	 * before it could read ACTIVATE: it cannot have activated. */
	if (tcpcp_frame_send(p, &m))
		return rollback(p, s, o, true);
	r = expect(p, TCPCP_PASS_MSG__TYPE__ACTIVE, "waiting for the activation");
	if (!r && errno == ECANCELED)
		return rollback(p, s, o, true);	/* it said it did not activate */
	close_silently(s, o->linger_s);
	if (!r) {
		tcpcp_fail(ETIMEDOUT, "the destination did not confirm the activation; "
			   "the connection was left to it");
		return TCPCP_PASS_UNCONFIRMED;
	}
	tcpcp_pass_msg__free_unpacked(r, NULL);
	tcpcp_clear_error();
	return TCPCP_PASS_DONE;
}

/* Destination side. */

static void discard(struct tcpcp_pass *p, int s, const char *why)
{
	char msg[512];
	int err = errno ? errno : EIO;

	snprintf(msg, sizeof(msg), "%s", tcpcp_strerror());
	if (why)
		send_abort(p, why);
	/* Still in repair mode and gated: closing sends nothing. */
	if (tcpcp_close(s, DEST_LINGER_S))
		close(s);
	tcpcp_fail(err, "%s", msg);
}

/* The application's veto comes first: refusing costs nothing yet. */
static int check_state(struct tcpcp_pass *p, const struct tcpcp_pass_recv_opts *o,
		       const TcpcpPassMsg *r)
{
	const char *why = NULL;

	if (!r->has_ici) {
		tcpcp_fail(EPROTO, "control connection: the offer holds no ICI");
		send_abort(p, tcpcp_strerror());
		return -1;
	}
	if (!o->check || !o->check(o->arg, r->state.data, r->has_state ? r->state.len : 0, &why))
		return 0;
	tcpcp_fail(ECANCELED, "the application refused the connection: %s",
		   why ? why : "no reason given");
	send_abort(p, tcpcp_strerror());
	return -1;
}

static int take_offer(struct tcpcp_pass *p, const struct tcpcp_pass_recv_opts *o,
		      TcpcpPassMsg *r, void **state, size_t *state_len)
{
	struct tcpcp_create_opts create = TCPCP_CREATE_OPTS_INIT;
	TcpcpPassMsg m;
	int s;

	if (check_state(p, o, r))
		return -1;
	if (o->create && tcpcp_opts_copy(&create, sizeof(create), o->create,
					 "tcpcp_create_opts")) {
		send_abort(p, tcpcp_strerror());
		return -1;
	}
	if (r->has_congestion_carry && r->congestion_carry)
		create.congestion = TCPCP_CONGESTION_CARRY;	/* policy permitting */
	s = tcpcp_create_ex(r->ici.data, r->ici.len, &create);
	if (s < 0) {
		send_abort(p, tcpcp_strerror());
		return -1;
	}
	*state_len = r->has_state ? r->state.len : 0;
	*state = malloc(*state_len + 1);
	if (!*state) {
		tcpcp_fail(ENOMEM, "out of memory for the application state");
		discard(p, s, tcpcp_strerror());
		return -1;
	}
	if (*state_len)
		memcpy(*state, r->state.data, *state_len);
	((char *)*state)[*state_len] = '\0';	/* text states need no copy */
	msg_init(&m, TCPCP_PASS_MSG__TYPE__CREATED);
	if (tcpcp_frame_send(p, &m))
		goto fail;
	return s;
fail:
	discard(p, s, NULL);
	free(*state);
	*state = NULL;
	return -1;
}

static int activate(struct tcpcp_pass *p, int s, const TcpcpPassMsg *offer_msg)
{
	TcpcpPassMsg m, *r;

	r = expect(p, TCPCP_PASS_MSG__TYPE__ACTIVATE, "waiting for the traffic switch");
	if (!r) {
		discard(p, s, NULL);
		return -1;
	}
	tcpcp_pass_msg__free_unpacked(r, NULL);
	if (tcpcp_activate_ex(s, offer_msg->ici.data, offer_msg->ici.len)) {
		discard(p, s, tcpcp_strerror());
		return -1;
	}
	msg_init(&m, TCPCP_PASS_MSG__TYPE__ACTIVE);
	tcpcp_frame_send(p, &m);	/* ours now, whether or not it arrives */
	return 0;
}

TCPCP_EXPORT int tcpcp_pass_recv(struct tcpcp_pass *p, const struct tcpcp_pass_recv_opts *o,
				 void **state, size_t *state_len)
{
	struct tcpcp_pass_recv_opts copy;
	TcpcpPassMsg *r;
	int s;

	tcpcp_clear_error();
	errno = 0;
	*state = NULL;
	*state_len = 0;
	if (tcpcp_opts_copy(&copy, sizeof(copy), o, "tcpcp_pass_recv_opts"))
		return -1;
	if (p->role != TCPCP_PASS_DEST) {
		tcpcp_fail(EINVAL, "tcpcp_pass_recv() on an origin's session");
		return -1;
	}
	r = expect(p, TCPCP_PASS_MSG__TYPE__OFFER, "waiting for an offer");
	if (!r)
		return -1;
	s = take_offer(p, &copy, r, state, state_len);
	if (s >= 0 && activate(p, s, r)) {
		free(*state);
		*state = NULL;
		*state_len = 0;
		s = -1;
	}
	tcpcp_pass_msg__free_unpacked(r, NULL);
	return s;
}
