/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The live half of a checkpoint (images/ici.proto, tcpcp_ici_live),
 * written by hand: byte for byte what tcpcp_ici_live__pack() writes.
 *
 * Why not protobuf-c here, when every other image and every decode goes
 * through it: a checkpoint is taken every few milliseconds between the
 * application's own work, which evicts protobuf-c's generic packer from
 * the caches each time; that packer then walks the descriptor tables
 * twice (size, then pack).  On a connection that streams 64 KB writes
 * with a checkpoint every 10 ms, making the image took 5.4-6.4 µs (p50)
 * of a 15-17 µs checkpoint, and 3.0-3.7 µs with this writer, malloc()
 * included (bench/README.md, session 14).
 *
 * Canonical proto2 wire format, as protobuf-c writes it: fields in
 * ascending number, required ones always, optional scalars and bytes when
 * their has_ flag is set, optional messages when not NULL, varints of the
 * fewest bytes.  test/fuzz/fuzz_live.c fills every field the generated
 * descriptors list (so a field added to the proto and not here is
 * caught) and compares the two writers' bytes.
 */
#include <string.h>

#include "internal.h"

enum { WT_VARINT = 0, WT_LEN = 2 };

/* tcpcp_window, tcpcp_congestion and tcpcp_ici_live field numbers. */
enum { WIN_SND_WL1 = 1, WIN_SND_WND, WIN_MAX_WINDOW, WIN_RCV_WND, WIN_RCV_WUP };
enum {
	CG_SND_CWND = 1, CG_SND_SSTHRESH, CG_SRTT_US, CG_RTTVAR_US, CG_RTO_US,
	CG_PACING_RATE, CG_DELIVERY_RATE, CG_REORDERING,
};
enum {
	L_SND_UNA = 7, L_SND_NXT = 8, L_WRITE_SEQ = 9, L_RCV_NXT = 10, L_COPIED_SEQ = 11,
	L_WINDOW = 12, L_TIMESTAMP = 13, L_TS_RECENT = 14, L_SENDQ = 15, L_RECVQ = 16,
	L_CONGESTION = 18, L_CAPTURE_REALTIME_NS = 19, L_UNQUEUED_UNA = 21, L_APP_STATE = 22,
};

/* Where the bytes go; with p NULL they are only counted. */
struct pbw {
	uint8_t *p;
	size_t n;
};

static void varint(struct pbw *w, uint64_t v)
{
	for (; v >= 0x80; v >>= 7, w->n++)
		if (w->p)
			w->p[w->n] = (uint8_t)v | 0x80;
	if (w->p)
		w->p[w->n] = (uint8_t)v;
	w->n++;
}

static void u64(struct pbw *w, unsigned int field, uint64_t v)
{
	varint(w, field << 3 | WT_VARINT);
	varint(w, v);
}

static void opt_u64(struct pbw *w, unsigned int field, bool has, uint64_t v)
{
	if (has)
		u64(w, field, v);
}

static void bytes(struct pbw *w, unsigned int field, const ProtobufCBinaryData *b)
{
	varint(w, field << 3 | WT_LEN);
	varint(w, b->len);
	if (w->p && b->len)
		memcpy(w->p + w->n, b->data, b->len);
	w->n += b->len;
}

static void window(struct pbw *w, const TcpcpWindow *m)
{
	u64(w, WIN_SND_WL1, m->snd_wl1);
	u64(w, WIN_SND_WND, m->snd_wnd);
	u64(w, WIN_MAX_WINDOW, m->max_window);
	u64(w, WIN_RCV_WND, m->rcv_wnd);
	u64(w, WIN_RCV_WUP, m->rcv_wup);
}

static void congestion(struct pbw *w, const TcpcpCongestion *m)
{
	opt_u64(w, CG_SND_CWND, m->has_snd_cwnd, m->snd_cwnd);
	opt_u64(w, CG_SND_SSTHRESH, m->has_snd_ssthresh, m->snd_ssthresh);
	opt_u64(w, CG_SRTT_US, m->has_srtt_us, m->srtt_us);
	opt_u64(w, CG_RTTVAR_US, m->has_rttvar_us, m->rttvar_us);
	opt_u64(w, CG_RTO_US, m->has_rto_us, m->rto_us);
	opt_u64(w, CG_PACING_RATE, m->has_pacing_rate, m->pacing_rate);
	opt_u64(w, CG_DELIVERY_RATE, m->has_delivery_rate, m->delivery_rate);
	opt_u64(w, CG_REORDERING, m->has_reordering, m->reordering);
}

/* A length-delimited submessage: its length first, so it is counted
 * before it is written (and only counted when @w counts). */
#define SUBMESSAGE(w, field, fn, m) do {				\
	struct pbw sub = { NULL, 0 };					\
									\
	fn(&sub, m);							\
	varint(w, (field) << 3 | WT_LEN);				\
	varint(w, sub.n);						\
	if ((w)->p) {							\
		sub.p = (w)->p + (w)->n;				\
		sub.n = 0;						\
		fn(&sub, m);						\
	}								\
	(w)->n += sub.n;						\
} while (0)

size_t tcpcp_live_pack(const TcpcpIciLive *l, uint8_t *out)
{
	struct pbw w = { out, 0 };

	u64(&w, L_SND_UNA, l->snd_una);
	u64(&w, L_SND_NXT, l->snd_nxt);
	u64(&w, L_WRITE_SEQ, l->write_seq);
	u64(&w, L_RCV_NXT, l->rcv_nxt);
	u64(&w, L_COPIED_SEQ, l->copied_seq);
	SUBMESSAGE(&w, L_WINDOW, window, l->window);
	opt_u64(&w, L_TIMESTAMP, l->has_timestamp, l->timestamp);
	opt_u64(&w, L_TS_RECENT, l->has_ts_recent, l->ts_recent);
	bytes(&w, L_SENDQ, &l->sendq);
	bytes(&w, L_RECVQ, &l->recvq);
	if (l->congestion)
		SUBMESSAGE(&w, L_CONGESTION, congestion, l->congestion);
	u64(&w, L_CAPTURE_REALTIME_NS, l->capture_realtime_ns);
	opt_u64(&w, L_UNQUEUED_UNA, l->has_unqueued_una, l->unqueued_una);
	if (l->has_app_state)
		bytes(&w, L_APP_STATE, &l->app_state);
	return w.n;
}
