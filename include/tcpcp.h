/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libtcpcp: pass one end of an established TCP connection to another host.
 *
 * The origin takes the Internal Connection Information (ICI) of a socket
 * with tcpcp_get(), which isolates the connection: from then on nothing
 * from the peer is processed and nothing is sent to it.  The destination
 * recreates the endpoint with tcpcp_create() and, once traffic reaches it,
 * starts it with tcpcp_activate().  If the pass fails, tcpcp_release() on
 * the origin undoes the isolation and the connection continues there.
 *
 * Errors: functions return -1 (or NULL) with errno set; tcpcp_strerror()
 * gives a one-line description of the last failure in this thread.
 */
#ifndef TCPCP_H
#define TCPCP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TCPCP_ICI_MAJOR 1
#define TCPCP_ICI_MINOR 2

/* The paper's API (section 3.2). */

/* Isolate @s and return its ICI, malloc'd (free with free()).  Nothing
 * else may use @s meanwhile: in repair mode the kernel accepts a send()
 * into whichever queue is being read.  `tcpcp get` stops the owner.
 * On NULL the connection is as it was: not isolated, not in repair mode. */
void *tcpcp_get(int s);
/* Size in bytes of an ICI returned by tcpcp_get(), or -1 (bad header). */
int tcpcp_size(const void *ici);
/* Upper bound of the ICI size of @s right now, or -1; @s is untouched. */
int tcpcp_maxicisize(int s);
/* Recreate the endpoint described by @ici (same local port); returns a
 * socket that is neither sending nor receiving until tcpcp_activate().
 * On -1 nothing is left: no socket, no gate entry, nothing sent. */
int tcpcp_create(const void *ici);
/* Let the recreated endpoint run: it sends queued data or a window probe.
 * On -1 it is still gated and in repair mode (closing it sends nothing);
 * the call may be repeated. */
int tcpcp_activate(int s);

/* Rollback on the origin: undo tcpcp_get()'s isolation.  Idempotent; on
 * -1 (@s not a TCP socket, the gate unreachable) @s is as it was. */
int tcpcp_release(int s);
/* Close an isolated origin socket without a word to the peer.  Segments
 * for the connection that still reach this host are dropped for
 * @linger_s seconds rather than answered with a reset.  Refused (-1, @s
 * still open and as it was) for a socket that is not isolated: closing
 * it would end the connection. */
int tcpcp_close(int s, unsigned int linger_s);

/* Port selection at the destination (paper section 2.1). */
enum tcpcp_port_mode {
	TCPCP_PORT_SAME = 0,	/* the origin's local port */
	TCPCP_PORT_BOUND,	/* @s is already bound: keep its address */
	TCPCP_PORT_ANY,		/* any free port */
};

/* Option structures grow at their end.  Each starts with its size: set
 * .size = sizeof(struct ...) (or use the _INIT macro).  A library older
 * than the program takes the members it knows and refuses (E2BIG) only
 * if the program set one it does not; a newer library gives the members
 * the program does not know their zero defaults.  A NULL pointer means
 * all defaults. */
struct tcpcp_create_opts {
	size_t size;
	enum tcpcp_port_mode port_mode;
	int s;				/* TCPCP_PORT_BOUND: the bound socket */
	const struct sockaddr *local;	/* NULL: the ICI's local address */
	socklen_t local_len;		/* port of @local ignored unless BOUND */
	int transparent;		/* IP_TRANSPARENT for a foreign address */
	int keep_timestamp;		/* don't advance TSval by transit time */
	/* TCPCP_CONGESTION_CARRY: start with the congestion window the ICI
	 * recorded, not the initial one.  Only valid on a path like the
	 * origin's, so a host allows it in tcpcp.conf ("congestion-carry
	 * yes"); refused otherwise, before anything is created. */
	enum tcpcp_congestion { TCPCP_CONGESTION_FRESH, TCPCP_CONGESTION_CARRY } congestion;
	/* Resynchronise on resurrection (kernel-patch/ 0003): the peer's
	 * first ACK beyond the image's snd_nxt is taken, not dropped, and the
	 * connection moves on to it; tcpcp_resync_skip() says how far.  For
	 * an image older than the connection, instead of tcpcp_probe() and
	 * tcpcp_resurrect().  Fails (ENOPROTOOPT) on a kernel without it. */
	int resync;
};
#define TCPCP_CREATE_OPTS_INIT { .size = sizeof(struct tcpcp_create_opts) }

/* tcpcp_create() with options and the image's length; the same on -1. */
int tcpcp_create_ex(const void *ici, size_t len,
		    const struct tcpcp_create_opts *opts);

/* tcpcp_create_ex() on a socket the caller already has, e.g. one whose
 * fd number must not change (a restored process's).  @s must be a TCP
 * socket in CLOSE state; opts->s is ignored, and TCPCP_PORT_BOUND means
 * @s is already bound.  Returns 0; on failure @s is left in repair mode
 * (closing it sends nothing) and the caller still owns it. */
int tcpcp_create_on(int s, const void *ici, size_t len,
		    const struct tcpcp_create_opts *opts);

/* The gate of the network namespace of socket @s (-1: the caller's), a
 * BPF map behind netfilter programs that tcpcp shares between processes
 * and removes with its last entry.  Entries: how many 4-tuples it drops
 * now (0 if there is none), or -1.  Flush: remove it, entries and all,
 * so every connection it held flows again (an administrator's cleanup
 * after a crash, and the tests'); 0 if there was none. */
long tcpcp_gate_entries(int s);
/* Close or open the gate for the connections of the sockets @s[0..n-1],
 * all in one network namespace, in one batch: no repair mode, no state
 * read.  For a caller that stops the owners and reads the state itself
 * (the CRIU plugin), or that isolates many connections at once.  Close
 * is all or nothing: on -1 no connection was gated (EXDEV: the sockets
 * are in more than one namespace).  Opening a connection that is not
 * gated is no error; on -1 some may be open, the rest still gated.
 * Setup and unload: -1 leaves things as they were. */
int tcpcp_gate_close_fds(const int *s, size_t n);
/* Keep the gate's hooks in the network namespace of socket @s (-1: the
 * caller's) attached for @secs even while it drops nothing (0: stop),
 * for a process that takes connections there often (a destination
 * daemon): each create + activate then skips attaching and detaching
 * them, 0.1-0.2 ms together.  Renew before the time runs out; after a
 * crash it runs out, and the next gate call on the host detaches them. */
int tcpcp_gate_keep(int s, unsigned int secs);
int tcpcp_gate_open_fds(const int *s, size_t n);

/* A connection's two ends, as getsockname() and getpeername() give them;
 * an IPv4-mapped IPv6 address stands for its IPv4 one. */
struct tcpcp_ends {
	struct sockaddr_storage local, peer;
};
/* The ends of connected socket @s. */
int tcpcp_ends_of(int s, struct tcpcp_ends *e);
/* "10.0.0.1:80 -> 10.0.0.2:4000" ("[::1]:80 -> [::1]:4000"), for
 * messages; -1 if @len is too small for it. */
int tcpcp_ends_str(const struct tcpcp_ends *e, char *buf, size_t len);

/* The gate by 4-tuple, for a caller that holds no socket per connection
 * when it must act (the CRIU plugin gates a frozen tree's connections
 * before CRIU touches them, and at restore before they exist): the
 * connections @e[0..n-1] of the network namespace of socket @s (-1: the caller's), in one
 * batch.  Close: for good with @secs 0 (until opened), else for @secs at
 * most, so that a caller that dies midway leaves nothing that drops for
 * good (and so a closed connection lingers); closing a gated connection
 * again sets its new time.  All or nothing, as tcpcp_gate_close_fds().
 * Open: as tcpcp_gate_open_fds(), then @opened(@arg) unless NULL, before
 * the namespace's hooks go with its last entry: e.g. every connection
 * leaves repair mode there (tcpcp_activate_ungated()). */
int tcpcp_gate_close_ends(int s, const struct tcpcp_ends *e, size_t n, unsigned int secs);
int tcpcp_gate_open_ends(int s, const struct tcpcp_ends *e, size_t n,
			 void (*opened)(void *arg), void *arg);

/* The steps of a pass without the gate, for a caller that gates by
 * 4-tuple itself (above).  Capture: the ICI of @s, which the caller has
 * put in repair mode (TCP_REPAIR) and gated; @s stays so, also on NULL.
 * Create: tcpcp_create_on() for an ICI whose ends the caller has gated.
 * Activate: tcpcp_activate_ex() once the caller has opened the gate. */
void *tcpcp_capture(int s, size_t *len);
int tcpcp_create_gated(int s, const void *ici, size_t len,
		       const struct tcpcp_create_opts *opts);
int tcpcp_activate_ungated(int s, const void *ici, size_t len);
/* Congestion carry-over (TCPCP_CONGESTION_CARRY) for connections rebuilt
 * without it and still in repair mode: @s[i] gets the window and the
 * slow-start threshold of @ici[i] (@len[i] bytes), a few system calls
 * each (the CRIU plugin's restore).  Refused, and nothing done, unless
 * the host allows it; with @n 0 that check alone. */
int tcpcp_carry_fds(const int *s, const void *const *ici, const size_t *len, size_t n);

/* Fail-over (paper section 6): where the peer of a checkpointed
 * connection stands now.  It is sent, from the network namespace of
 * socket @s (-1: the caller's), a pure ACK far outside its window, and a
 * Linux peer answers with a duplicate ACK that tells its snd_nxt (how far
 * it has sent), its rcv_nxt (how far it has our bytes), its window and,
 * with timestamps, its clock and the last TSval of ours it accepted.  The
 * answers are read before netfilter (a packet socket) while the gate,
 * closed for the connections for 60 s, keeps them from our own TCP.  All
 * @n checkpoints (ICIs @imgs[i] of @lens[i] bytes) at once, asked again
 * every 600 ms (peers rate-limit such answers) for @timeout_ms at most.
 * Returns how many answered (@views[i].answered), -1 on error.  Needs
 * CAP_NET_ADMIN and CAP_NET_RAW. */
struct tcpcp_peer_view {
	int answered;
	uint32_t snd_nxt;		/* its SEQ: the next byte it will send */
	uint32_t rcv_nxt;		/* its ACK: our bytes it has, up to here */
	uint16_t window;		/* its window field, not scaled */
	int has_ts;
	uint32_t tsval, tsecr;		/* its clock; the last TSval of ours it took */
};
int tcpcp_probe(int s, const void *const *imgs, const size_t *lens, size_t n,
		struct tcpcp_peer_view *views, unsigned int timeout_ms);
/* The checkpoint @ckpt (@len bytes) brought up to the peer's view @v: an
 * ICI (malloc'd, *@out_len bytes) whose first byte to send is the first
 * the peer still wants.  *@skip says where the application goes on from
 * its checkpointed state: positive, the peer already has that many bytes
 * past it, not to be written again; 0, the checkpoint's queue covers what
 * the peer lacks; negative (a tcpcp_checkpoint(), which holds no send
 * queue), the peer lacks the last -skip bytes the application had written
 * by then, to be written again.  NULL if the peer stands 2^31 bytes or
 * more from it either way or behind what it had acknowledged, if it is
 * older than a maximum segment lifetime (2 min), or for a half-closed
 * connection. */
void *tcpcp_resurrect(const void *ckpt, size_t len, const struct tcpcp_peer_view *v,
		      int64_t *skip, size_t *out_len);
/* Give the connection of checkpoint @ckpt up cleanly, after its peer
 * answered the probe with @v: a reset at exactly the peer's rcv_nxt,
 * which it accepts, sent from the network namespace of socket @s (-1:
 * the caller's).  For a checkpoint tcpcp_resurrect() refused, so that
 * the peer does not retransmit into the void until its timeouts.  Needs
 * CAP_NET_RAW. */
int tcpcp_reset_peer(int s, const void *ckpt, size_t len, const struct tcpcp_peer_view *v);
/* After a create with opts.resync and the activation (whose window probe
 * makes the peer answer): how many bytes the peer had acknowledged beyond
 * the image's write_seq (the skip, >= 0), once its ACK came; if none came
 * beyond snd_nxt within @wait_ms (the peer had no more than the image),
 * the option is disarmed and 0 returned.  Wait at least a round trip.
 * -1 on error. */
int64_t tcpcp_resync_skip(int s, unsigned int wait_ms);
/* For a program that cannot be told the skip (restored by CRIU from an
 * image older than its connection): the next @n bytes written to @s
 * (established) are dropped before TCP queues them, and every write
 * still reports all its bytes written.  A BPF sk_msg program on a
 * sockhash, loaded for the host on first use (CAP_BPF, CAP_NET_ADMIN);
 * the socket leaves the sockhash when closed.  tcpcp_skip_left(): how
 * many are still to drop (0 once done or never set), -1 on error. */
int tcpcp_skip_output(int s, uint64_t n);
int64_t tcpcp_skip_left(int s);

/* Checkpoints of a live connection, taken by its owner at its own
 * consistency points: the connection is neither isolated nor stopped,
 * and a checkpoint costs microseconds.  New: the first, in repair mode
 * for the time of one read (no window probe, SO_REUSEADDR kept); refused
 * (EAGAIN) while @s has bytes not yet sent, so call it before writing.
 * Then tcpcp_checkpoint() as often as wanted: an ICI (malloc'd, *@len
 * bytes) for tcpcp_probe() and tcpcp_resurrect() that carries @state
 * (@state_len bytes, the application's own, e.g. a file offset) and the
 * receive queue, but not the send queue: the application must be able to
 * write again, from @state, what the peer had not acknowledged (the
 * negative skip above).  No other thread may use @s meanwhile. */
struct tcpcp_ckpt;
struct tcpcp_ckpt *tcpcp_ckpt_new(int s);
void *tcpcp_checkpoint(struct tcpcp_ckpt *c, int s, const void *state, size_t state_len,
		       size_t *len);
void tcpcp_ckpt_free(struct tcpcp_ckpt *c);
/* The acknowledgment clamp: from now on @s acknowledges the peer's bytes
 * no further than the latest checkpoint's rcv_nxt (what a standby would
 * hold), so that none the peer will not send again is lost with this
 * host.  Call it when the latest checkpoint is safe at the standby; each
 * call moves the clamp up to it, and tells the peer with one ACK.  Where
 * the kernel has TCP_ACK_HOLD (kernel-patch/) the kernel holds them back;
 * on a stock kernel the first call loads a tc egress program on every
 * interface of @s's network namespace (CAP_NET_ADMIN, CAP_BPF,
 * CAP_NET_RAW); it stays there. */
int tcpcp_ckpt_clamp(struct tcpcp_ckpt *c, int s);
/* How the clamp holds the acknowledgments back: "TCP_ACK_HOLD" (a kernel
 * with kernel-patch/'s 0002: the kernel itself, released at each call,
 * no tc program, no announcing ACK from a raw socket), "BPF" (a stock
 * kernel: the tc program), or NULL before the first tcpcp_ckpt_clamp(). */
const char *tcpcp_ckpt_clamp_how(const struct tcpcp_ckpt *c);
/* The same for sockets checkpointed another way (a CRIU dump with the
 * plugin): @s[i] acknowledges no further than sequence number @ack[i]
 * (the rcv_nxt its image holds).  Not announced: the next segment each
 * sends (leaving repair mode sends a window probe) carries it. */
int tcpcp_clamp_fds(const int *s, const uint32_t *ack, size_t n);

/* Whether the connection of socket @s can be passed in its TCP state:
 * 1 (established or half-closed); 0 (not, listening and closed sockets
 * included: *@state, unless @state is NULL, names the state, e.g.
 * "SYN_SENT"); -1 (not a TCP socket). */
int tcpcp_passable(int s, const char **state);
int tcpcp_gate_flush(int s);
/* The gate's objects are pinned in a BPF file system at /run/tcpcp/bpf,
 * which tcpcp mounts on first use, except in a private mount namespace
 * (`ip netns exec`), where a mount would vanish with the process: call
 * this once in the host's (`tcpcp gate setup`, e.g. at boot). */
int tcpcp_gate_setup(void);
/* The programs behind every gate are loaded once for the host and stay
 * pinned, attached nowhere, so that the next gate is set up in
 * microseconds; this unpins them, and fails while any namespace still
 * has a gate. */
int tcpcp_gate_unload(void);

/* Explicitly sized ICI access, for images read from files.  Validate:
 * 0 if tcpcp_create_ex() would accept the image's fields, else -1 with
 * the first field it refuses named. */
void *tcpcp_get_ex(int s, size_t *len);
int tcpcp_validate(const void *ici, size_t len);

/* An image as an object, to read or rewrite without recreating anything
 * (`tcpcp edit`, a restore under another address).  Read: decoded and
 * validated, or NULL with the cause.  Ends: the connection's local and
 * peer addresses and ports (either pointer may be NULL).  Set ends: a new
 * address and, unless its port is 0, port for either end (NULL: keep it);
 * the family must stay, and on -1 the image is unchanged.  Write: the
 * image encoded again (malloc'd), validated first, or NULL. */
struct tcpcp_image;
struct tcpcp_image *tcpcp_image_read(const void *buf, size_t len);
int tcpcp_image_ends(const struct tcpcp_image *img, struct sockaddr_storage *local,
		     struct sockaddr_storage *peer);
int tcpcp_image_set_ends(struct tcpcp_image *img, const struct sockaddr *local,
			 const struct sockaddr *peer);
void *tcpcp_image_write(const struct tcpcp_image *img, size_t *len);
void tcpcp_image_free(struct tcpcp_image *img);
/* Every field, as images/ici.proto defines them (installed as
 * share/tcpcp/ici.proto), in the structure protoc-c generates from it:
 * for a program that shows them all, like `crit show`.  Valid until
 * tcpcp_image_free(). */
struct TcpcpIci;
const struct TcpcpIci *tcpcp_image_ici(const struct tcpcp_image *img);

/* tcpcp_activate() that also puts back what leaving repair mode resets
 * (SO_REUSEADDR), taken from the image the socket was created from.  On
 * -1 as tcpcp_activate(), or, if only the socket option failed, active. */
int tcpcp_activate_ex(int s, const void *ici, size_t len);

/*
 * Live passing between hosts (docs/pass.md).  A control connection joins
 * origin and destination; tcpcp_pass_open() authenticates it with a
 * pre-shared key, then the origin offers the ICI and its application
 * state with tcpcp_pass_send() and the destination takes them with
 * tcpcp_pass_recv().  Every message carries a MAC under a key fresh for
 * the session, so a third host can neither inject nor replay one.
 */
#define TCPCP_PASS_KEY_LEN	32

struct tcpcp_pass;	/* one authenticated control session */
struct tcpcp_switch;	/* one traffic switching step */

enum tcpcp_pass_role {
	TCPCP_PASS_ORIGIN = 0,
	TCPCP_PASS_DEST,
};

/* A key file holds 64 hex digits (whitespace around them is ignored);
 * refused (-1, and @key holds nothing of it) if others may read it or
 * it holds anything else. */
int tcpcp_pass_key_load(const char *path, uint8_t key[TCPCP_PASS_KEY_LEN]);

/* Authenticate the connected stream socket @ctl (the caller keeps owning
 * it); @timeout_ms bounds every wait for the other side.  NULL if the
 * other side is not a peer with the key, is silent or goes away; no
 * connection has been touched then. */
struct tcpcp_pass *tcpcp_pass_open(int ctl, enum tcpcp_pass_role role,
				   const uint8_t key[TCPCP_PASS_KEY_LEN],
				   int timeout_ms);
void tcpcp_pass_free(struct tcpcp_pass *p);

struct tcpcp_pass_send_opts {
	size_t size;
	const struct tcpcp_switch *to;		/* NULL: someone else switches */
	const struct tcpcp_switch *back;	/* undoes @to on rollback */
	unsigned int linger_s;			/* for tcpcp_close(); NULL opts: 60 */
	/* TCPCP_CONGESTION_CARRY: ask the destination to start with the
	 * ICI's window; it refuses the pass unless its host allows that. */
	enum tcpcp_congestion congestion;
};
#define TCPCP_PASS_SEND_OPTS_INIT { .size = sizeof(struct tcpcp_pass_send_opts) }

/* Results of tcpcp_pass_send() besides -1 (not passed: @s was released
 * and the connection continues here). */
#define TCPCP_PASS_DONE		0	/* destination active, @s closed */
#define TCPCP_PASS_UNCONFIRMED	1	/* activation sent, no answer: @s closed */

/* Origin: @s was isolated by tcpcp_get_ex(), which gave @ici.  On -1 the
 * pass is rolled back: traffic switched back (@o->back), @s released,
 * the connection continues here, and tcpcp_strerror() says why. */
int tcpcp_pass_send(struct tcpcp_pass *p, int s, const void *ici, size_t ici_len,
		    const void *state, size_t state_len,
		    const struct tcpcp_pass_send_opts *o);

struct tcpcp_pass_recv_opts {
	size_t size;
	const struct tcpcp_create_opts *create;	/* NULL: the defaults */
	/* Sees the application state before anything is created; nonzero
	 * refuses the pass (the origin keeps the connection) and *why, if
	 * set, is the reason the origin reports. */
	int (*check)(void *arg, const void *state, size_t len, const char **why);
	void *arg;
};
#define TCPCP_PASS_RECV_OPTS_INIT { .size = sizeof(struct tcpcp_pass_recv_opts) }

/* Destination: returns the active socket and the origin's application
 * state (malloc'd and NUL-terminated, free with free()), or -1 with
 * nothing left behind.  @o may be NULL. */
int tcpcp_pass_recv(struct tcpcp_pass *p, const struct tcpcp_pass_recv_opts *o,
		    void **state, size_t *state_len);

/* Fail-over with a standby (`tcpcp standby`, docs/failover.md).  The
 * primary's application opens a control session to the standby
 * (tcpcp_pass_open() as TCPCP_PASS_ORIGIN) and sends each connection's
 * latest checkpoint (tcpcp_checkpoint()), FORGETs a connection that
 * ended (named by its socket @s), beats while it has nothing else to say
 * and says BYE when it stops on purpose.  The standby takes over the
 * session's connections when it breaks or falls silent without a BYE. */
int tcpcp_ckpt_send(struct tcpcp_pass *p, const void *img, size_t len);
int tcpcp_ckpt_forget(struct tcpcp_pass *p, int s);
int tcpcp_ckpt_beat(struct tcpcp_pass *p);
int tcpcp_ckpt_bye(struct tcpcp_pass *p);

/* "10.0.0.1:80 -> 10.0.0.2:4000" at most, IPv6 with its brackets. */
#define TCPCP_CONN_LEN	112
struct tcpcp_ckpt_msg {
	enum { TCPCP_CKPT_IMAGE = 1, TCPCP_CKPT_FORGET, TCPCP_CKPT_BEAT, TCPCP_CKPT_BYE } kind;
	void *img;			/* IMAGE: malloc'd, the caller's to free */
	size_t len;
	char conn[TCPCP_CONN_LEN];	/* IMAGE, FORGET: tcpcp_ends_str() of its ends */
};
/* The standby's side (TCPCP_PASS_DEST): the next message within
 * @timeout_ms, an image checked before it is handed over.  -1 when the
 * primary closed the session, was silent (ETIMEDOUT) or sent something
 * else; then nothing is allocated. */
int tcpcp_ckpt_recv(struct tcpcp_pass *p, int timeout_ms, struct tcpcp_ckpt_msg *m);

/* Traffic switching steps (paper section 2.2, step 8), from a spec:
 *   route:NETNS:VIA        route the connection's local address via VIA
 *   flow:NETNS:MARK        mark only this 4-tuple (0: unmark) at a gateway
 *   arp:NETNS:IFNAME:MAC   gratuitous ARP / unsolicited NA: local addr at MAC
 * NETNS is a name under /run/netns, a path, or "-" for our own.  NULL on
 * a bad spec.  (The tcpcp command's exec:COMMAND is its own: the library
 * runs no commands.) */
struct tcpcp_switch *tcpcp_switch_new(const char *spec);
/* A step that is the caller's function: @fn(@arg, s, why, len) gets the
 * connection's socket, returns 0 when traffic is switched, or nonzero
 * with a reason written to @why (at most @len bytes, NUL-terminated),
 * which becomes tcpcp_strerror()'s line.  NULL if out of memory. */
struct tcpcp_switch *tcpcp_switch_call(int (*fn)(void *arg, int s, char *why, size_t len),
				       void *arg);
/* Run the step for the connection of @s: 0, or -1 with the cause. */
int tcpcp_switch_run(const struct tcpcp_switch *sw, int s);
void tcpcp_switch_free(struct tcpcp_switch *sw);

/* One line naming the cause of this thread's last failure. */
const char *tcpcp_strerror(void);

#ifdef __cplusplus
}
#endif

#endif
