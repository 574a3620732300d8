/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Frames of the pass protocol: BE u32 body length, an HMAC-SHA256 tag
 * over (length label, sender role, sequence number, length), the
 * protobuf body, and an HMAC-SHA256 tag over (label, sender role,
 * sequence number, length, body).  The sequence number is implicit, one
 * counter per direction, so a replayed, dropped or reordered frame fails
 * its MAC.  The key is the pre-shared key for the greeting and a
 * per-session key afterwards (pass.c).
 *
 * Why the length has a tag of its own: the body is read into memory
 * before its tag can be checked, and the length says how much.  Checked
 * first, it lets no one without the key make a receiver allocate or wait
 * for more than a header: 36 bytes, whatever length they claim.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pass.h"

/* -2: the length's own tag; a -1 peer fails the first tag, "bad MAC". */
static const char mac_label[] = "tcpcp-pass-2";
static const char len_label[] = "tcpcp-pass-2-length";

int tcpcp_mac(const uint8_t *key, const struct iovec *iov, int n, uint8_t out[TCPCP_MAC_LEN])
{
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	EVP_MAC_CTX *ctx = NULL;
	EVP_MAC *mac;
	size_t len = 0;
	int i, err = -EIO;

	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (!mac || !(ctx = EVP_MAC_CTX_new(mac)))
		goto out;
	if (!EVP_MAC_init(ctx, key, TCPCP_PASS_KEY_LEN, params))
		goto out;
	for (i = 0; i < n; i++)
		if (!EVP_MAC_update(ctx, iov[i].iov_base, iov[i].iov_len))
			goto out;
	if (EVP_MAC_final(ctx, out, &len, TCPCP_MAC_LEN) && len == TCPCP_MAC_LEN)
		err = 0;
out:
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	if (err)
		return tcpcp_fail(EIO, "HMAC-SHA256 is not available from OpenSSL");
	return 0;
}

/* The body's tag, or with @body NULL the length's (another label). */
static int frame_mac(const uint8_t *key, uint8_t role, uint64_t seq,
		     const uint8_t hdr[4], const void *body, size_t len, uint8_t *tag)
{
	uint8_t seqb[8];
	struct iovec iov[5] = {
		{ body ? (void *)mac_label : (void *)len_label,
		  body ? sizeof(mac_label) : sizeof(len_label) },
		{ &role, 1 },
		{ seqb, 8 },
		{ (void *)hdr, 4 },
		{ (void *)body, len },
	};
	int i;

	for (i = 0; i < 8; i++)
		seqb[i] = (uint8_t)(seq >> (56 - 8 * i));
	return tcpcp_mac(key, iov, body ? 5 : 4, tag);
}

static int64_t now_ms(void)
{
	return (int64_t)(tcpcp_now_ns() / 1000000);
}

/* Wait for @events until @deadline (ms, CLOCK_MONOTONIC). */
static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int64_t left;
	int n;

	for (;;) {
		left = deadline - now_ms();
		if (left < 0)
			left = 0;
		n = poll(&pfd, 1, (int)left);
		if (n > 0)
			return 0;
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

/* Reads, or with @n_iov > 1 writes an iovec array: a frame leaves in one
 * write, so Nagle never holds its tail back for a delayed ACK. */
static int io_full(struct tcpcp_pass *p, struct iovec *iov, int n_iov, bool tx, int64_t deadline)
{
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n_iov };
	ssize_t n;
	int err;

	while (mh.msg_iovlen) {
		err = wait_fd(p->fd, tx ? POLLOUT : POLLIN, deadline);
		if (err)
			return err;
		n = tx ? sendmsg(p->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT)
		       : recvmsg(p->fd, &mh, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ECONNRESET;	/* EOF: the other side is gone */
		while (mh.msg_iovlen && (size_t)n >= mh.msg_iov->iov_len) {
			n -= (ssize_t)mh.msg_iov->iov_len;
			mh.msg_iov++;
			mh.msg_iovlen--;
		}
		if (mh.msg_iovlen) {
			mh.msg_iov->iov_base = (uint8_t *)mh.msg_iov->iov_base + n;
			mh.msg_iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

static int read_full(struct tcpcp_pass *p, void *buf, size_t len, int64_t deadline)
{
	struct iovec iov = { buf, len };

	return len ? io_full(p, &iov, 1, false, deadline) : 0;
}

static const char *peer_name(const struct tcpcp_pass *p)
{
	return p->role == TCPCP_PASS_ORIGIN ? "destination" : "origin";
}

static int io_fail(const struct tcpcp_pass *p, int err, const char *what)
{
	if (err == -ECONNRESET)
		return tcpcp_fail(ECONNRESET, "control connection: the %s closed it while %s",
				  peer_name(p), what);
	if (err == -ETIMEDOUT)
		return tcpcp_fail(ETIMEDOUT, "control connection: no answer from the %s "
				  "within %d ms while %s", peer_name(p), p->timeout_ms, what);
	return tcpcp_fail(-err, "control connection: %s while %s", strerror(-err), what);
}

int tcpcp_frame_send(struct tcpcp_pass *p, const TcpcpPassMsg *m)
{
	uint8_t hdr[4], htag[TCPCP_MAC_LEN], tag[TCPCP_MAC_LEN];
	int64_t deadline = now_ms() + p->timeout_ms;
	size_t len = tcpcp_pass_msg__get_packed_size(m);
	uint8_t *body;
	uint32_t be;
	int err;

	if (len > TCPCP_FRAME_MAX)
		return tcpcp_fail(EMSGSIZE, "control message of %zu bytes is too large", len);
	body = malloc(len ? len : 1);
	if (!body)
		return tcpcp_fail(ENOMEM, "out of memory for a control message");
	tcpcp_pass_msg__pack(m, body);
	be = htonl((uint32_t)len);
	memcpy(hdr, &be, 4);
	err = frame_mac(p->key, (uint8_t)p->role, p->tx_seq, hdr, NULL, 0, htag);
	if (!err)
		err = frame_mac(p->key, (uint8_t)p->role, p->tx_seq, hdr, body, len, tag);
	if (!err) {
		struct iovec iov[4] = {
			{ hdr, 4 }, { htag, sizeof(htag) }, { body, len }, { tag, sizeof(tag) },
		};

		if ((err = io_full(p, iov, 4, true, deadline)))
			err = io_fail(p, err, "sending");
	}
	p->tx_seq++;
	free(body);
	return err;
}

static void bad_mac(const struct tcpcp_pass *p)
{
	tcpcp_fail(EACCES, "control connection: authentication failed: the %s's message "
		   "has a bad MAC (different key, replay, corruption or another tcpcp version)",
		   peer_name(p));
}

/* The message, or NULL with the error set.  @what names the step for it. */
TcpcpPassMsg *tcpcp_frame_recv(struct tcpcp_pass *p, int timeout_ms, const char *what)
{
	uint8_t hdr[4], tag[TCPCP_MAC_LEN], want[TCPCP_MAC_LEN];
	int64_t deadline = now_ms() + timeout_ms;
	TcpcpPassMsg *m = NULL;
	uint8_t *body = NULL;
	uint32_t len;
	int err;

	if ((err = read_full(p, hdr, 4, deadline)) ||
	    (err = read_full(p, tag, sizeof(tag), deadline))) {
		io_fail(p, err, what);
		return NULL;
	}
	/* The length is trusted only once its tag is right. */
	if (frame_mac(p->key, (uint8_t)!p->role, p->rx_seq, hdr, NULL, 0, want))
		return NULL;
	if (CRYPTO_memcmp(tag, want, sizeof(want))) {
		bad_mac(p);
		return NULL;
	}
	memcpy(&len, hdr, 4);
	len = ntohl(len);
	if (len > TCPCP_FRAME_MAX) {
		tcpcp_fail(EBADMSG, "control connection: a %u-byte message from the %s "
			   "(corrupt or not tcpcp)", len, peer_name(p));
		return NULL;
	}
	body = malloc(len ? len : 1);
	if (!body) {
		tcpcp_fail(ENOMEM, "out of memory for a control message");
		return NULL;
	}
	if ((err = read_full(p, body, len, deadline)) ||
	    (err = read_full(p, tag, sizeof(tag), deadline))) {
		io_fail(p, err, what);
		goto out;
	}
	if (frame_mac(p->key, (uint8_t)!p->role, p->rx_seq, hdr, body, len, want))
		goto out;
	if (CRYPTO_memcmp(tag, want, sizeof(want))) {
		bad_mac(p);
		goto out;
	}
	p->rx_seq++;
	m = tcpcp_pass_msg__unpack(NULL, len, body);
	if (!m)
		tcpcp_fail(EBADMSG, "control connection: undecodable message from the %s",
			   peer_name(p));
out:
	free(body);
	return m;
}

/* Has the other side closed the connection or sent something?  Used
 * just before the point of no return. */
bool tcpcp_frame_pending(struct tcpcp_pass *p)
{
	struct pollfd pfd = { .fd = p->fd, .events = POLLIN };

	return poll(&pfd, 1, 0) != 0;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

TCPCP_EXPORT int tcpcp_pass_key_load(const char *path, uint8_t key[TCPCP_PASS_KEY_LEN])
{
	char buf[2 * TCPCP_PASS_KEY_LEN + 64], *b;
	struct stat st;
	ssize_t n = -1;
	size_t i;
	int fd, err = 0;

	tcpcp_clear_error();
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		tcpcp_fail(errno, "key file %s: %s", path, strerror(errno));
		return -1;
	}
	/* Whoever reads the key can push connections to our destinations. */
	if (fstat(fd, &st) || (st.st_mode & 077))
		err = tcpcp_fail(EPERM, "key file %s is accessible to other users "
				 "(chmod 600 it)", path);
	else if ((n = read(fd, buf, sizeof(buf) - 1)) < 0)
		err = tcpcp_fail(errno, "key file %s: %s", path, strerror(errno));
	close(fd);
	if (err)
		return -1;
	buf[n] = '\0';
	b = buf + strspn(buf, " \t\r\n");
	for (i = 0; i < TCPCP_PASS_KEY_LEN; i++) {
		int hi = hexval(b[2 * i]), lo = hi < 0 ? -1 : hexval(b[2 * i + 1]);

		if (hi < 0 || lo < 0)
			break;
		key[i] = (uint8_t)(hi << 4 | lo);
	}
	if (i < TCPCP_PASS_KEY_LEN || b[2 * i + strspn(b + 2 * i, " \t\r\n")]) {
		OPENSSL_cleanse(key, TCPCP_PASS_KEY_LEN);
		OPENSSL_cleanse(buf, sizeof(buf));
		tcpcp_fail(EINVAL, "key file %s: expected 64 hex digits", path);
		return -1;
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
}
