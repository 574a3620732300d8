/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TCPCP_INTERNAL_H
#define TCPCP_INTERNAL_H

#include <limits.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "tcpcp.h"
#include "ici.pb-c.h"
#include "bpf/gate.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71	/* Linux 5.14 */
#endif

/* Kernel values that no user header exports cleanly beside <linux/tcp.h>
 * (include/net/tcp_states.h). */
#define TCPCP_ST_ESTABLISHED	1
#define TCPCP_ST_FIN_WAIT1	4
#define TCPCP_ST_FIN_WAIT2	5
#define TCPCP_ST_CLOSE		7
#define TCPCP_ST_CLOSE_WAIT	8
#define TCPCP_ST_LAST_ACK	9
#define TCPCP_ST_CLOSING	11
#define TCPCP_CA_NAME_MAX	16
/* kernel-patch/ 0001: the peer's last TSval (get anywhere, set in repair
 * mode); a stock kernel answers ENOPROTOOPT. */
#define TCPCP_TCP_REPAIR_TS_RECENT	47
/* kernel-patch/ 0002: acknowledge only what the application released
 * (mode 2) after checkpointing; ENOPROTOOPT on a stock kernel. */
#define TCPCP_TCP_ACK_HOLD		48
#define TCPCP_TCP_ACK_RELEASE		49
#define TCPCP_ACK_HOLD_RELEASED		2
/* kernel-patch/ 0003: the first ACK beyond snd_nxt accepted after a
 * restore; getsockopt: -1 while armed, else the skip. */
#define TCPCP_TCP_REPAIR_RESYNC		50
int tcpcp_ts_recent_read(int s, uint32_t *val);

#define TCPCP_EXPORT __attribute__((visibility("default")))

/* Image framing: magic + big-endian payload length, then the protobuf.
 * The paper's tcpcp_size() takes a bare pointer, so the ICI must carry
 * its own length. */
#define TCPCP_MAGIC		"TCPI"
#define TCPCP_HDR_LEN		8
/* Queues are bounded by the kernel's buffer limits; 1 GiB is far above
 * any sane tcp_wmem/tcp_rmem and keeps a hostile length from making us
 * allocate the address space. */
#define TCPCP_MAX_PAYLOAD	(1u << 30)

/* The 4-tuple as seen from the local end. */
struct tcpcp_tuple {
	int family;			/* AF_INET or AF_INET6 on the wire */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} local, peer;
	uint16_t lport, pport;		/* host order */
};

/* error.c: -errno internally, a message for the edge. */
int tcpcp_fail(int err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void tcpcp_clear_error(void);
/* Option structures that grow (tcpcp.h): copy the caller's into @ours. */
int tcpcp_opts_copy(void *ours, size_t size, const void *theirs, const char *what);

/* capture.c: TCP_TIMESTAMP's value @ts moved past the latest TSval a
 * socket paced at @rate bytes/s may already have sent (checkpoint.c). */
uint32_t tcpcp_ts_past_pacing(uint32_t ts, uint64_t rate);

/* image.c */
void *tcpcp_image_alloc(size_t plen, size_t *len);
void *tcpcp_image_encode(const TcpcpIci *ici, size_t *len);
TcpcpIci *tcpcp_image_decode(const void *buf, size_t len);
int tcpcp_image_payload_len(const void *buf, size_t avail, size_t *len);
/* live-pack.c: @l as tcpcp_ici_live__pack() writes it, into @out (NULL:
 * only counted); returns the length. */
size_t tcpcp_live_pack(const TcpcpIciLive *l, uint8_t *out);
int tcpcp_ici_check(const TcpcpIci *ici);

/* tuple.c */
int tcpcp_tuple_from_socket(int s, struct tcpcp_tuple *t);
void tcpcp_tuple_from_sockaddrs(const struct sockaddr_storage *l,
				const struct sockaddr_storage *p, struct tcpcp_tuple *t);
int tcpcp_sockaddr_from_endpoint(const TcpcpEndpoint *ep,
				 struct sockaddr_storage *ss, socklen_t *len);
void tcpcp_tuple_str(const struct tcpcp_tuple *t, char *buf, size_t len);

/* bpf.c: the one loader of tcpcp's BPF objects, pinned per network
 * namespace and shared by every process.  open() takes a lock that
 * close() drops: keep them short. */
struct tcpcp_bpf {
	char dir[PATH_MAX];	/* this namespace's folder in it */
	int lock;		/* flock on the root */
	int gate;		/* the gate map */
	uint64_t cookie;	/* the namespace's */
};
enum tcpcp_bpf_mode {
	TCPCP_BPF_USE,		/* the gate map; -ENOENT (no message) if none */
	TCPCP_BPF_CREATE,	/* loaded for the host first if need be */
	TCPCP_BPF_LOCK,		/* only name the folder and lock */
};
int tcpcp_bpf_open(int s, enum tcpcp_bpf_mode mode, struct tcpcp_bpf *b);
/* Between open (CREATE) and close: attach the namespace's hooks. */
#define TCPCP_BPF_V4	1u
#define TCPCP_BPF_V6	2u
int tcpcp_bpf_attach(struct tcpcp_bpf *b, int s, unsigned int families);
void tcpcp_bpf_close(struct tcpcp_bpf *b);
/* Between open and close: detach the namespace's hooks. */
void tcpcp_bpf_detach(struct tcpcp_bpf *b);
/* isolate.c: the namespace @netns has no entry that drops. */
bool tcpcp_bpf_gate_idle(int gate, uint64_t netns);
/* The congestion carry-over's socket-storage map, its congestion
 * control registered for the host on first use; the fd the caller's. */
int tcpcp_bpf_carry_open(int *map);
/* The acknowledgment clamp's program and socket-storage map, the same. */
int tcpcp_bpf_clamp_open(int *map, int *prog);
/* The output skip's socket-storage map and (unless @socks is NULL) the
 * sockhash its sk_msg program is attached to, the same. */
int tcpcp_bpf_skip_open(int *map, int *socks);
/* @fn(@arg) with libbpf's messages kept from stderr (the library never
 * prints; e.g. the kernel's "Exclusivity flag on" for a clsact qdisc
 * that is there already). */
int tcpcp_bpf_hushed(int (*fn)(void *arg), void *arg);
/* carry.c: the ICI's congestion window and threshold on @s (repair
 * mode, gated). */
int tcpcp_carry(int s, const TcpcpIci *ici);
/* Mount tcpcp's bpffs here, even in a private mount namespace. */
int tcpcp_bpf_setup(void);
/* Unpin the host's programs; refused while a namespace has a gate. */
int tcpcp_bpf_unload(void);

/* isolate.c: the per-netns BPF gate that keeps a connection silent. */
int tcpcp_gate_close(int s, const struct tcpcp_tuple *t);
int tcpcp_gate_open(int s, const struct tcpcp_tuple *t);
/* Open, and call @opened(s) as soon as the gate is open. */
int tcpcp_gate_open_then(int s, const struct tcpcp_tuple *t, int (*opened)(int s));
int tcpcp_gate_linger(int s, const struct tcpcp_tuple *t, unsigned int secs);
int tcpcp_gate_close_many(int s, const struct tcpcp_tuple *t, size_t n);
int tcpcp_gate_open_many(int s, const struct tcpcp_tuple *t, size_t n);
/* The gate map's key for @t in namespace @netns (also carry.c's). */
struct tcpcp_gate_key;
void tcpcp_gate_key_of(const struct tcpcp_tuple *t, uint64_t netns, struct tcpcp_gate_key *k);
/* The 4-tuples of sockets @s[0..n-1] (malloc'd), checked as TCP sockets
 * of one network namespace, whose cookie goes to @netns if not NULL. */
int tcpcp_tuples_of_fds(const int *s, size_t n, struct tcpcp_tuple **t, uint64_t *netns);
/* Lingering for @secs (0: opened at once). */
int tcpcp_gate_linger_many(int s, const struct tcpcp_tuple *t, size_t n, unsigned int secs);

/* create.c: TCP_TIMESTAMP's opaque value, later by @ticks, and its tick. */
uint32_t tcpcp_ts_later(uint32_t ts, uint64_t ticks);
uint64_t tcpcp_ts_tick_ns(uint32_t ts);
uint64_t tcpcp_now_ns(void);
/* fin.c: half-closed connections.  A FIN takes a sequence number but no
 * byte of a queue; which FINs a state implies: */
struct tcpcp_fins {
	bool out;		/* ours is queued or sent (write_seq counts it) */
	bool out_acked;		/* ... and the peer acknowledged it (snd_una too) */
	bool in;		/* the peer's arrived (rcv_nxt counts it) */
};
/* Segments tcpcp injects pass its own closed gate with this mark. */
#define TCPCP_INJECT_MARK	TCPCP_GATE_INJECT_MARK
bool tcpcp_state_passable(int state);
struct tcpcp_fins tcpcp_fins_of(uint32_t state);
int tcpcp_fins_restore(int s, const TcpcpIci *ici);

/* netns.c: run @fn(@arg) in the network namespace of socket @s (or of the
 * namespace fd @ns), on a thread of its own unless it is ours. */
int tcpcp_netns_run(int s, int (*fn)(void *), void *arg);
/* @s itself, or (@s < 0) a socket of the caller's namespace, which
 * *@own then holds for the caller to close; -1 on failure. */
int tcpcp_any_socket(int s, int *own);

/* segment.c: a segment of @t without payload, on a raw socket of the
 * netns of @s, marked past the gate; @why names the step in errors. */
struct tcpcp_segment {
	bool to_peer;			/* from our address; else from the peer's */
	uint32_t seq, ack;
	uint16_t window;		/* as the header carries it */
	bool fin;
	bool ts;			/* with a timestamp option */
	uint32_t tsval, tsecr;
	bool one_byte;			/* a byte of payload (a zero) */
	bool rst;			/* a reset (with ACK, as the kernel's own) */
};
int tcpcp_segment_send(int s, const struct tcpcp_tuple *t, const struct tcpcp_segment *g,
		       const char *why);
/* The same in steps, for many segments: a marked raw socket of @family in
 * the netns of @s (an fd, or -errno), and a segment sent on it. */
int tcpcp_segment_raw(int s, int family, const char *why);
int tcpcp_segment_send_on(int raw, const struct tcpcp_tuple *t, const struct tcpcp_segment *g,
			  const char *why);

/* probe.c: a packet read off the network, the answer for which of the
 * connections @t[0..n-1] (then @v[i] filled in), if any.  A connection
 * with @dsack[i] set takes only an answer that reports its probe's byte
 * at that sequence number as a duplicate (a D-SACK block). */
struct tcpcp_probe_want {
	bool dsack;
	uint32_t seq;
};
void tcpcp_probe_answer(const uint8_t *pkt, size_t len, const struct tcpcp_tuple *t,
			const struct tcpcp_probe_want *w, size_t n, struct tcpcp_peer_view *v);
int tcpcp_netns_run_at(int ns, int (*fn)(void *), void *arg);
/* The SO_NETNS_COOKIE of @s's namespace. */
int tcpcp_netns_cookie(int s, uint64_t *cookie);

/* repair.c: thin wrappers with the kernel's names. */
int tcpcp_repair(int s, int mode);
int tcpcp_repair_queue(int s, int q);
int tcpcp_check_tcp_socket(int s, int *state);
const char *tcpcp_state_name(int state);
int tcpcp_tcp_state(int s);		/* TCP_INFO's state, -1 if none */

/* sockopts.c */
int tcpcp_sockopts_save(int s, int family, TcpcpSockopts *so);
int tcpcp_sockopts_restore_early(int s, int family, const TcpcpSockopts *so);
int tcpcp_sockopts_restore_late(int s, int family, const TcpcpSockopts *so);
int tcpcp_sockopts_restore_reuse(int s, const TcpcpSockopts *so);
void tcpcp_sockopts_free(TcpcpSockopts *so);

/* caps.c */
int tcpcp_need_cap(int cap, const char *why);
int tcpcp_need_create_caps(void);
/* caps.c: the host lets TCP_ACK_HOLD clamp (tcpcp.conf: "ack-hold no"
 * keeps the BPF clamp). */
bool tcpcp_ack_hold_allowed(void);
int tcpcp_need_carry_policy(void);

#endif
