/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The ICI image: framing, protobuf encoding and validation.
 *
 * Validation is the first line of defence of the paper's section 7.1: an
 * image may come from anywhere, so every field that reaches the kernel is
 * checked against what TCP and the repair interface allow before any
 * socket is touched.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/tcp.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define TCP_MAX_WSCALE	14	/* RFC 7323 2.3 */
#define TCP_MIN_MSS	88	/* the kernel's floor for TCP_MAXSEG */
#define TCP_MAX_MSS	65495	/* 64 KiB minus IPv4 and TCP headers */

/* A framed image's buffer for a @plen byte payload, its header written:
 * the payload goes at TCPCP_HDR_LEN. */
void *tcpcp_image_alloc(size_t plen, size_t *len)
{
	uint32_t be = htonl((uint32_t)plen);
	uint8_t *buf;

	if (plen > TCPCP_MAX_PAYLOAD) {
		tcpcp_fail(EFBIG, "ICI of %zu bytes exceeds the %u byte limit",
			   plen, TCPCP_MAX_PAYLOAD);
		return NULL;
	}
	buf = malloc(TCPCP_HDR_LEN + plen);
	if (!buf) {
		tcpcp_fail(ENOMEM, "out of memory for a %zu byte ICI", plen);
		return NULL;
	}
	memcpy(buf, TCPCP_MAGIC, 4);
	memcpy(buf + 4, &be, 4);
	*len = TCPCP_HDR_LEN + plen;
	return buf;
}

void *tcpcp_image_encode(const TcpcpIci *ici, size_t *len)
{
	uint8_t *buf = tcpcp_image_alloc(tcpcp_ici__get_packed_size(ici), len);

	if (buf)
		tcpcp_ici__pack(ici, buf + TCPCP_HDR_LEN);
	return buf;
}

/* @avail: bytes known to be readable at @buf, or SIZE_MAX when the caller
 * passed a bare pointer (the paper's API) and we must trust the header. */
int tcpcp_image_payload_len(const void *buf, size_t avail, size_t *len)
{
	uint32_t be;

	if (!buf)
		return tcpcp_fail(EINVAL, "ICI pointer is NULL");
	if (avail < TCPCP_HDR_LEN)
		return tcpcp_fail(EINVAL, "ICI truncated: %zu bytes, header needs %d",
				  avail, TCPCP_HDR_LEN);
	if (memcmp(buf, TCPCP_MAGIC, 4))
		return tcpcp_fail(EINVAL, "not an ICI image (bad magic)");
	memcpy(&be, (const uint8_t *)buf + 4, 4);
	*len = ntohl(be);
	if (*len > TCPCP_MAX_PAYLOAD)
		return tcpcp_fail(EINVAL, "ICI claims %zu bytes, limit is %u",
				  *len, TCPCP_MAX_PAYLOAD);
	if (avail != SIZE_MAX && avail - TCPCP_HDR_LEN != *len)
		return tcpcp_fail(EINVAL, "ICI truncated or padded: header says %zu payload bytes, have %zu",
				  *len, avail - TCPCP_HDR_LEN);
	return 0;
}

TcpcpIci *tcpcp_image_decode(const void *buf, size_t avail)
{
	TcpcpIci *ici;
	size_t len;

	if (tcpcp_image_payload_len(buf, avail, &len))
		return NULL;
	ici = tcpcp_ici__unpack(NULL, len, (const uint8_t *)buf + TCPCP_HDR_LEN);
	if (!ici) {
		tcpcp_fail(EINVAL, "ICI payload is not a valid protobuf tcpcp_ici");
		return NULL;
	}
	if (tcpcp_ici_check(ici)) {
		int err = errno;

		tcpcp_ici__free_unpacked(ici, NULL);
		errno = err;
		return NULL;
	}
	return ici;
}

static int check_endpoint(const char *name, const TcpcpEndpoint *ep,
			  bool port_may_be_zero)
{
	if (ep->family != AF_INET && ep->family != AF_INET6)
		return tcpcp_fail(EINVAL, "ICI %s.family %u is neither AF_INET nor AF_INET6",
				  name, ep->family);
	if (ep->addr.len != (ep->family == AF_INET ? 4u : 16u))
		return tcpcp_fail(EINVAL, "ICI %s.addr has %zu bytes, family needs %u",
				  name, ep->addr.len, ep->family == AF_INET ? 4 : 16);
	if (ep->port > 65535 || (!ep->port && !port_may_be_zero))
		return tcpcp_fail(EINVAL, "ICI %s.port %u out of range", name, ep->port);
	return 0;
}

/* Sequence numbers wrap: "a <= b" means b is at most 2^31 ahead of a. */
static bool seq_le(uint32_t a, uint32_t b)
{
	return (int32_t)(b - a) >= 0;
}

/* write_seq and rcv_nxt count the FINs the state implies (fin.c); the
 * queues do not. */
static int check_seq(const TcpcpIci *ici)
{
	struct tcpcp_fins f = tcpcp_fins_of(ici->state);
	uint32_t fin_out = f.out && !f.out_acked, data_end = ici->rcv_nxt - f.in;

	if (!seq_le(ici->snd_una, ici->snd_nxt) || !seq_le(ici->snd_nxt, ici->write_seq) ||
	    (uint32_t)(ici->write_seq - ici->snd_una) < fin_out)
		return tcpcp_fail(EINVAL, "ICI send sequence out of order: snd_una %u, snd_nxt %u, write_seq %u",
				  ici->snd_una, ici->snd_nxt, ici->write_seq);
	if (ici->sendq.len != (uint32_t)(ici->write_seq - ici->snd_una - fin_out))
		return tcpcp_fail(EINVAL, "ICI sendq has %zu bytes, write_seq - snd_una%s is %u",
				  ici->sendq.len, fin_out ? " - FIN" : "",
				  ici->write_seq - ici->snd_una - fin_out);
	if (!seq_le(ici->copied_seq, data_end))
		return tcpcp_fail(EINVAL, "ICI copied_seq %u is after rcv_nxt%s %u",
				  ici->copied_seq, f.in ? " - FIN" : "", data_end);
	if (ici->recvq.len != (uint32_t)(data_end - ici->copied_seq))
		return tcpcp_fail(EINVAL, "ICI recvq has %zu bytes, rcv_nxt%s - copied_seq is %u",
				  ici->recvq.len, f.in ? " - FIN" : "", data_end - ici->copied_seq);
	return 0;
}

/* The same rules tcp_repair_set_window() enforces, plus RFC 7323's bound
 * on a scaled window, so a bad window is refused here with a reason. */
static int check_window(const TcpcpIci *ici)
{
	const TcpcpWindow *w = ici->window;
	const TcpcpOptions *o = ici->options;
	uint64_t wmax = 65535ull << (o->wscale ? o->snd_wscale : 0);

	if (w->max_window < w->snd_wnd)
		return tcpcp_fail(EINVAL, "ICI window.max_window %u is below snd_wnd %u",
				  w->max_window, w->snd_wnd);
	if (w->snd_wnd > wmax)
		return tcpcp_fail(EINVAL, "ICI window.snd_wnd %u exceeds what snd_wscale %u allows",
				  w->snd_wnd, o->snd_wscale);
	if (!seq_le(w->snd_wl1, ici->rcv_nxt + w->rcv_wnd))
		return tcpcp_fail(EINVAL, "ICI window.snd_wl1 %u is after rcv_nxt + rcv_wnd",
				  w->snd_wl1);
	if (!seq_le(w->rcv_wup, ici->rcv_nxt))
		return tcpcp_fail(EINVAL, "ICI window.rcv_wup %u is after rcv_nxt %u",
				  w->rcv_wup, ici->rcv_nxt);
	if (w->rcv_wnd > TCPCP_MAX_PAYLOAD)
		return tcpcp_fail(EINVAL, "ICI window.rcv_wnd %u is implausibly large", w->rcv_wnd);
	return 0;
}

static int check_options(const TcpcpOptions *o)
{
	if (o->mss_clamp < TCP_MIN_MSS || o->mss_clamp > TCP_MAX_MSS)
		return tcpcp_fail(EINVAL, "ICI options.mss_clamp %u outside %d..%d",
				  o->mss_clamp, TCP_MIN_MSS, TCP_MAX_MSS);
	if (o->rcv_mss > TCP_MAX_MSS)
		return tcpcp_fail(EINVAL, "ICI options.rcv_mss %u above %d",
				  o->rcv_mss, TCP_MAX_MSS);
	if (o->snd_wscale > TCP_MAX_WSCALE || o->rcv_wscale > TCP_MAX_WSCALE)
		return tcpcp_fail(EINVAL, "ICI window scale %u/%u exceeds %d",
				  o->snd_wscale, o->rcv_wscale, TCP_MAX_WSCALE);
	if (!o->wscale && (o->snd_wscale || o->rcv_wscale))
		return tcpcp_fail(EINVAL, "ICI has window scale factors but wscale is off");
	return 0;
}

static int check_sockopts(const TcpcpSockopts *so)
{
	if (!so)
		return 0;
	if (so->congestion && strnlen(so->congestion, TCPCP_CA_NAME_MAX) >= TCPCP_CA_NAME_MAX)
		return tcpcp_fail(EINVAL, "ICI sockopts.congestion name too long");
	if (so->has_tos && so->tos > 255)
		return tcpcp_fail(EINVAL, "ICI sockopts.tos %u above 255", so->tos);
	if (so->has_ttl && (so->ttl < 1 || so->ttl > 255))
		return tcpcp_fail(EINVAL, "ICI sockopts.ttl %u outside 1..255", so->ttl);
	if ((so->has_sndbuf && so->sndbuf > TCPCP_MAX_PAYLOAD) ||
	    (so->has_rcvbuf && so->rcvbuf > TCPCP_MAX_PAYLOAD))
		return tcpcp_fail(EINVAL, "ICI socket buffer size above %u", TCPCP_MAX_PAYLOAD);
	if (so->has_keepidle && (so->keepidle < 1 || so->keepidle > 32767))
		return tcpcp_fail(EINVAL, "ICI sockopts.keepidle %u outside 1..32767", so->keepidle);
	if (so->has_keepintvl && (so->keepintvl < 1 || so->keepintvl > 32767))
		return tcpcp_fail(EINVAL, "ICI sockopts.keepintvl %u outside 1..32767", so->keepintvl);
	if (so->has_keepcnt && (so->keepcnt < 1 || so->keepcnt > 127))
		return tcpcp_fail(EINVAL, "ICI sockopts.keepcnt %u outside 1..127", so->keepcnt);
	return 0;
}

/* Unknown fields are kept (a newer minor adds optional ones) and written
 * back by re-encoding; protobuf-c accepts an overlong tag for field 0,
 * which no encoder may emit, so such an image could never be rewritten. */
static int check_unknown(const char *name, const ProtobufCMessage *m)
{
	if (!m)
		return 0;
	for (unsigned int i = 0; i < m->n_unknown_fields; i++)
		if (m->unknown_fields[i].tag == 0)
			return tcpcp_fail(EINVAL, "ICI %s has a field numbered 0", name);
	return 0;
}

static int check_all_unknown(const TcpcpIci *ici)
{
	int err;

	if ((err = check_unknown("tcpcp_ici", &ici->base)) ||
	    (err = check_unknown("local", &ici->local->base)) ||
	    (err = check_unknown("peer", &ici->peer->base)) ||
	    (err = check_unknown("options", &ici->options->base)) ||
	    (err = check_unknown("window", &ici->window->base)) ||
	    (err = check_unknown("sockopts", (const ProtobufCMessage *)ici->sockopts)) ||
	    (err = check_unknown("congestion", (const ProtobufCMessage *)ici->congestion)))
		return err;
	return 0;
}

int tcpcp_ici_check(const TcpcpIci *ici)
{
	int err;

	if ((err = check_all_unknown(ici)))
		return err;

	if (ici->major != TCPCP_ICI_MAJOR)
		return tcpcp_fail(EPROTONOSUPPORT, "ICI format version %u.%u not supported (this is %d.%d)",
				  ici->major, ici->minor, TCPCP_ICI_MAJOR, TCPCP_ICI_MINOR);
	if ((err = check_endpoint("local", ici->local, true)) ||
	    (err = check_endpoint("peer", ici->peer, false)))
		return err;
	if (ici->local->family != ici->peer->family)
		return tcpcp_fail(EINVAL, "ICI local and peer address families differ");
	if (ici->state > 255 || !tcpcp_state_passable((int)ici->state))
		return tcpcp_fail(EINVAL, "ICI state %u: only ESTABLISHED or half-closed connections can be recreated",
				  ici->state);
	if ((err = check_options(ici->options)) || (err = check_seq(ici)) ||
	    (err = check_window(ici)) || (err = check_sockopts(ici->sockopts)))
		return err;
	return 0;
}

TCPCP_EXPORT int tcpcp_validate(const void *buf, size_t len)
{
	TcpcpIci *ici = tcpcp_image_decode(buf, len);

	if (!ici)
		return -1;
	tcpcp_ici__free_unpacked(ici, NULL);
	return 0;
}

TCPCP_EXPORT int tcpcp_size(const void *buf)
{
	size_t len = 0;

	if (tcpcp_image_payload_len(buf, SIZE_MAX, &len))
		return -1;
	return (int)(TCPCP_HDR_LEN + len);
}
