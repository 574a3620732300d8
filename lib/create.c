/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Recreating an endpoint from its ICI (paper section 2, steps 6-7).
 *
 * The steps follow what the repair interface demands, in its order:
 * sequence numbers only while the socket is still CLOSE, connect() to
 * become ESTABLISHED without a handshake, TCP_REPAIR_OPTIONS before the
 * first byte is queued, the queues, then the window (its checks use the
 * restored rcv_nxt).  The gate is closed before connect() hashes the
 * socket, so nothing is received or sent until tcpcp_activate().
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/capability.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define TCPOPT_MAXSEG		2
#define TCPOPT_WINDOW		3
#define TCPOPT_SACK_PERM	4
#define TCPOPT_TIMESTAMP	8

static int setint(int s, int level, int opt, int val, const char *name)
{
	if (!setsockopt(s, level, opt, &val, sizeof(val)))
		return 0;
	return tcpcp_fail(errno, "setting %s: %s", name, strerror(errno));
}

/* Before connect, or the restored MSS starts at the default.  The kernel
 * takes at most MAX_TCP_WINDOW (32767) here; larger clamps (loopback's
 * 65483) come back through TCP_REPAIR_OPTIONS alone. */
#define TCPCP_MAX_USER_MSS 32767

static int set_user_mss(int s, uint32_t mss)
{
	if (mss > TCPCP_MAX_USER_MSS)
		return 0;
	return setint(s, IPPROTO_TCP, TCP_MAXSEG, (int)mss, "TCP_MAXSEG");
}

static void addr_str(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	const void *a = ss->ss_family == AF_INET ?
		(const void *)&((const struct sockaddr_in *)ss)->sin_addr :
		(const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;

	inet_ntop(ss->ss_family, a, buf, len);
}

static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

/* Paper section 2.1: the origin's port, a caller-bound socket, or any
 * free port (also chosen when the image's port was cleared to 0). */
static int bind_local(int s, const TcpcpIci *ici, const struct tcpcp_create_opts *o)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char a[INET6_ADDRSTRLEN];

	if (o->port_mode == TCPCP_PORT_BOUND) {
		len = sizeof(ss);
		if (getsockname(s, (struct sockaddr *)&ss, &len) || ss.ss_family != ici->local->family)
			return tcpcp_fail(EINVAL, "the bound socket's family does not match the ICI");
		if (!(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					      : ((struct sockaddr_in6 *)&ss)->sin6_port))
			return tcpcp_fail(EINVAL, "port mode \"bound\" but fd %d is not bound", s);
		return 0;
	}
	if (o->local) {
		if (o->local_len > sizeof(ss) || o->local->sa_family != ici->local->family)
			return tcpcp_fail(EINVAL, "the local address override is not of the ICI's family");
		memset(&ss, 0, sizeof(ss));
		memcpy(&ss, o->local, o->local_len);
		len = o->local_len;
		set_port(&ss, (uint16_t)ici->local->port);
	} else {
		tcpcp_sockaddr_from_endpoint(ici->local, &ss, &len);
	}
	if (o->port_mode == TCPCP_PORT_ANY)
		set_port(&ss, 0);
	if (o->transparent) {
		int lvl = ss.ss_family == AF_INET ? IPPROTO_IP : IPPROTO_IPV6;
		int opt = ss.ss_family == AF_INET ? IP_TRANSPARENT : IPV6_TRANSPARENT;

		if (setint(s, lvl, opt, 1, "IP_TRANSPARENT"))
			return -errno;
	}
	if (!bind(s, (struct sockaddr *)&ss, len))
		return 0;
	addr_str(&ss, a, sizeof(a));
	if (errno == EADDRNOTAVAIL)
		return tcpcp_fail(EADDRNOTAVAIL, "local address %s is not on this host (move it here, or override it, or use transparent mode)", a);
	if (errno == EADDRINUSE)
		return tcpcp_fail(EADDRINUSE, "local port %u on %s is already in use",
				  ici->local->port, a);
	return tcpcp_fail(errno, "bind to %s: %s", a, strerror(errno));
}

/* Where the queues start.  An acknowledged FIN of ours is past snd_una:
 * the send sequence starts before it, and fin.c puts it back. */
static int set_seqs(int s, const TcpcpIci *ici)
{
	uint32_t snd = ici->snd_una - tcpcp_fins_of(ici->state).out_acked;

	if (tcpcp_repair_queue(s, TCP_RECV_QUEUE) ||
	    setint(s, IPPROTO_TCP, TCP_QUEUE_SEQ, (int)ici->copied_seq, "receive TCP_QUEUE_SEQ") ||
	    tcpcp_repair_queue(s, TCP_SEND_QUEUE) ||
	    setint(s, IPPROTO_TCP, TCP_QUEUE_SEQ, (int)snd, "send TCP_QUEUE_SEQ"))
		return -errno;
	return 0;
}

static int connect_peer(int s, const TcpcpIci *ici)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char a[INET6_ADDRSTRLEN];

	tcpcp_sockaddr_from_endpoint(ici->peer, &ss, &len);
	/* In repair mode connect() sends no SYN: it hashes the socket and
	 * moves it to ESTABLISHED with the sequence numbers set above. */
	if (!connect(s, (struct sockaddr *)&ss, len))
		return 0;
	addr_str(&ss, a, sizeof(a));
	if (errno == EADDRNOTAVAIL || errno == EADDRINUSE)
		return tcpcp_fail(errno, "a connection to %s port %u from this local address and port already exists here",
				  a, ici->peer->port);
	return tcpcp_fail(errno, "connect (repair) to %s port %u: %s", a, ici->peer->port,
			  strerror(errno));
}

static int set_options(int s, const TcpcpOptions *o)
{
	struct tcp_repair_opt opts[4];
	int n = 0;

	opts[n].opt_code = TCPOPT_MAXSEG;
	opts[n++].opt_val = o->mss_clamp;
	if (o->wscale) {
		opts[n].opt_code = TCPOPT_WINDOW;
		opts[n++].opt_val = o->snd_wscale | (o->rcv_wscale << 16);
	}
	if (o->sack) {
		opts[n].opt_code = TCPOPT_SACK_PERM;
		opts[n++].opt_val = 0;
	}
	if (o->timestamps) {
		opts[n].opt_code = TCPOPT_TIMESTAMP;
		opts[n++].opt_val = 0;
	}
	if (!setsockopt(s, IPPROTO_TCP, TCP_REPAIR_OPTIONS, opts, (socklen_t)(n * sizeof(opts[0]))))
		return 0;
	return tcpcp_fail(errno, "TCP_REPAIR_OPTIONS refused: %s", strerror(errno));
}

/* TCP_TIMESTAMP's value, later by @ticks of its own (bit 0 flags
 * microsecond ticks, so only an even number is added, rounded up; at
 * most a quarter of the clock's range, so that it never looks older). */
uint32_t tcpcp_ts_later(uint32_t ts, uint64_t ticks)
{
	if (ticks > INT32_MAX / 2)
		ticks = INT32_MAX / 2;
	ticks = (ticks + 1) & ~1ull;
	return ((ts & ~1u) + (uint32_t)ticks) | (ts & 1);
}

/* CLOCK_MONOTONIC in nanoseconds: the clock TCP timestamps run on
 * (tcp_clock_ns()), and the one every timeout of the library counts. */
uint64_t tcpcp_now_ns(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

uint64_t tcpcp_ts_tick_ns(uint32_t ts)
{
	return (ts & 1) ? 1000 : 1000000;
}

/* Paper sections 4.5 and 6.1: the peer's PAWS drops segments whose TSval
 * went backwards, so the clock resumes where the origin's stood plus the
 * time the connection spent in transit (wall clocks assumed in sync).
 * Bit 0 of the opaque value flags microsecond resolution and was cleared
 * from the reading, so the clock may be one tick ahead of it: step two. */
static uint32_t advance_timestamp(const TcpcpIci *ici, bool keep)
{
	struct timespec now;
	uint64_t now_ns, ticks = 0;

	clock_gettime(CLOCK_REALTIME, &now);
	now_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	if (!keep && now_ns > ici->capture_realtime_ns)
		ticks = (now_ns - ici->capture_realtime_ns) / tcpcp_ts_tick_ns(ici->timestamp);
	return tcpcp_ts_later(ici->timestamp, ticks) + 2;
}

static int send_all(int s, const uint8_t *buf, size_t len, const char *what)
{
	while (len) {
		ssize_t n = send(s, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n <= 0)
			return tcpcp_fail(n ? errno : EIO, "refilling the %s queue: %s", what,
					  n ? strerror(errno) : "no progress");
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Until the peer's FIN is replayed rcv_nxt stands one before the origin's,
 * and the kernel refuses an rcv_wup after rcv_nxt: move the window's left
 * edge back by one, keeping its right edge where it was. */
static int set_window(int s, const TcpcpWindow *w, bool fin_in)
{
	struct tcp_repair_window trw = {
		.snd_wl1 = w->snd_wl1, .snd_wnd = w->snd_wnd, .max_window = w->max_window,
		.rcv_wnd = w->rcv_wnd + fin_in, .rcv_wup = w->rcv_wup - fin_in,
	};

	if (!setsockopt(s, IPPROTO_TCP, TCP_REPAIR_WINDOW, &trw, sizeof(trw)))
		return 0;
	return tcpcp_fail(errno, "TCP_REPAIR_WINDOW refused: %s", strerror(errno));
}

/* Bytes the origin sent are queued in repair mode, which marks them sent
 * without transmitting (they await an ACK or a retransmission).  Bytes it
 * never sent must stay unsent, so they are queued with repair off: the
 * closed gate makes the transmission attempt fail and TCP keeps them.
 * A sent FIN counts in snd_nxt but is no byte of the queue. */
static int fill_queues(int s, const TcpcpIci *ici)
{
	size_t sent = (uint32_t)(ici->snd_nxt - ici->snd_una);

	if (sent > ici->sendq.len)
		sent = ici->sendq.len;

	if (tcpcp_repair_queue(s, TCP_RECV_QUEUE) ||
	    send_all(s, ici->recvq.data, ici->recvq.len, "receive") ||
	    tcpcp_repair_queue(s, TCP_SEND_QUEUE) ||
	    send_all(s, ici->sendq.data, sent, "send") ||
	    set_window(s, ici->window, tcpcp_fins_of(ici->state).in))
		return -errno;
	if (ici->sendq.len > sent &&
	    (tcpcp_repair(s, TCP_REPAIR_OFF_NO_WP) ||
	     send_all(s, ici->sendq.data + sent, ici->sendq.len - sent, "unsent") ||
	     tcpcp_repair(s, TCP_REPAIR_ON)))
		return -errno;
	return tcpcp_repair_queue(s, TCP_NO_QUEUE);
}

/* The origin's buffer sizes, or larger: queues must fit into the buffers
 * before they are refilled, whatever the image says about the sizes.
 * getsockopt reported the doubled value the kernel keeps; setsockopt
 * doubles what it is given. */
static int size_buffers(int s, const TcpcpIci *ici)
{
	const TcpcpSockopts *so = ici->sockopts;
	size_t snd = ici->sendq.len * 2 + 65536, rcv = ici->recvq.len * 2 + 65536;

	if (so && so->has_sndbuf && so->sndbuf > snd)
		snd = so->sndbuf;
	if (so && so->has_rcvbuf && so->rcvbuf > rcv)
		rcv = so->rcvbuf;
	if (setint(s, SOL_SOCKET, SO_SNDBUFFORCE, (int)(snd / 2), "SO_SNDBUFFORCE") ||
	    setint(s, SOL_SOCKET, SO_RCVBUFFORCE, (int)(rcv / 2), "SO_RCVBUFFORCE"))
		return -errno;
	return 0;
}

/* Field @i (0-based) of a sysctl of this netns, 0 if unreadable. */
static unsigned long long sysctl_field(const char *name, int i)
{
	unsigned long long v[3] = { 0, 0, 0 };
	char path[96];
	FILE *f;
	int n;

	snprintf(path, sizeof(path), "/proc/sys/net/%s", name);
	f = fopen(path, "re");
	if (!f)
		return 0;
	n = fscanf(f, "%llu %llu %llu", &v[0], &v[1], &v[2]);
	fclose(f);
	return n > i ? v[i] : 0;
}

/* Paper section 7.1: an image may come from anywhere, and size_buffers()
 * forces the buffers to hold its queues.  So no queue may be larger than
 * this host lets any connection hold, by autotuning (tcp_wmem's maximum)
 * or by SO_SNDBUF (wmem_max, doubled as the kernel doubles it); hosts
 * that pass bigger queues raise these on the destination too. */
static int check_queue_limit(size_t len, const char *queue, const char *tcp, const char *core)
{
	char tcp_name[32], core_name[32];
	unsigned long long a, b, limit;

	/* Below what the sysctls' own floors allow (wmem_max and rmem_max
	 * are at least SOCK_MIN_SNDBUF and SOCK_MIN_RCVBUF, over 2 KB, and
	 * doubled): no need to read them, 4 files and 16 system calls. */
	if (len <= 4096)
		return 0;
	snprintf(tcp_name, sizeof(tcp_name), "ipv4/%s", tcp);
	snprintf(core_name, sizeof(core_name), "core/%s", core);
	a = sysctl_field(tcp_name, 2);
	b = 2 * sysctl_field(core_name, 0);
	limit = a > b ? a : b;
	if (!limit || len <= limit)
		return 0;
	return tcpcp_fail(ENOBUFS, "ICI %s queue of %zu bytes exceeds this host's limit of %llu bytes (net.ipv4.%s, net.core.%s)",
			  queue, len, limit, tcp, core);
}

static int check_queue_limits(const TcpcpIci *ici)
{
	int err;

	if ((err = check_queue_limit(ici->sendq.len, "send", "tcp_wmem", "wmem_max")) ||
	    (err = check_queue_limit(ici->recvq.len, "receive", "tcp_rmem", "rmem_max")))
		return err;
	return 0;
}

static bool is_wildcard(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

static int gate_tuple(int s, const TcpcpIci *ici, struct tcpcp_tuple *t)
{
	struct sockaddr_storage l, p;
	socklen_t len = sizeof(l);

	if (getsockname(s, (struct sockaddr *)&l, &len))
		return tcpcp_fail(errno, "getsockname: %s", strerror(errno));
	/* A caller-bound socket may have a wildcard address; the route will
	 * have to pick the ICI's, as the peer knows no other. */
	if (is_wildcard(&l)) {
		uint16_t port = ntohs(l.ss_family == AF_INET ? ((struct sockaddr_in *)&l)->sin_port
							    : ((struct sockaddr_in6 *)&l)->sin6_port);

		tcpcp_sockaddr_from_endpoint(ici->local, &l, &len);
		set_port(&l, port);
	}
	tcpcp_sockaddr_from_endpoint(ici->peer, &p, &len);
	tcpcp_tuple_from_sockaddrs(&l, &p, t);
	return tcpcp_gate_close(s, t);
}

static int build(int s, const TcpcpIci *ici, const struct tcpcp_create_opts *o,
		 bool pregated, struct tcpcp_tuple *t, bool *gated)
{
	int err;

	if ((err = tcpcp_repair(s, TCP_REPAIR_ON)) ||
	    (err = tcpcp_sockopts_restore_early(s, ici->local->family, ici->sockopts)) ||
	    (err = size_buffers(s, ici)) ||
	    (err = set_seqs(s, ici)) ||
	    (err = bind_local(s, ici, o)) ||
	    (err = set_user_mss(s, ici->options->mss_clamp)))
		return err;
	/* Gate before connect() hashes the socket: from then on it would
	 * see the peer's segments before its queues are back.  Unless the
	 * caller gated the ICI's 4-tuple already (the CRIU plugin does it
	 * for all connections at once). */
	if (!pregated) {
		if ((err = gate_tuple(s, ici, t)))
			return err;
		*gated = true;
	}
	if ((err = connect_peer(s, ici)))
		return err;
	if ((err = set_options(s, ici->options)))
		return err;
	if (ici->options->timestamps && ici->has_timestamp &&
	    (err = setint(s, IPPROTO_TCP, TCP_TIMESTAMP,
			  (int)advance_timestamp(ici, o->keep_timestamp), "TCP_TIMESTAMP")))
		return err;
	/* The peer's last TSval, where both kernels have the option
	 * (kernel-patch/ 0001): PAWS holds from the first segment.  Without
	 * it ts_recent starts at 0 and the peer's next segment sets it. */
	if (ici->options->timestamps && ici->has_ts_recent &&
	    setsockopt(s, IPPROTO_TCP, TCPCP_TCP_REPAIR_TS_RECENT, &ici->ts_recent,
		       sizeof(ici->ts_recent)) && errno != ENOPROTOOPT)
		return tcpcp_fail(errno, "TCP_REPAIR_TS_RECENT: %s", strerror(errno));
	if ((err = fill_queues(s, ici)) || (err = tcpcp_fins_restore(s, ici)) ||
	    (err = tcpcp_sockopts_restore_late(s, ici->local->family, ici->sockopts)))
		return err;
	/* Armed in repair mode, as the kernel wants: the peer's answer to
	 * the activation's window probe may acknowledge bytes the image
	 * never sent. */
	if (o->resync && setint(s, IPPROTO_TCP, TCPCP_TCP_REPAIR_RESYNC, 1, "TCP_REPAIR_RESYNC"))
		return errno == ENOPROTOOPT ?
		       tcpcp_fail(ENOPROTOOPT, "the kernel has no TCP_REPAIR_RESYNC "
				  "(kernel-patch/ 0003): resurrect with a probe instead") : -errno;
	return 0;
}

/* The one recreate path.  @s is ours to close on failure only if @own;
 * a caller's socket is left in repair mode, which makes closing it
 * silent.  @pregated: the caller gated the ICI's 4-tuple already (the
 * CRIU plugin gates all connections in one transaction). */
static int create_on(int s, bool own, bool pregated, const void *img, size_t len,
		     const struct tcpcp_create_opts *o)
{
	struct tcpcp_tuple t;
	bool gated = false;
	TcpcpIci *ici;
	int err;

	ici = tcpcp_image_decode(img, len);
	if (!ici)
		return -1;
	if (tcpcp_need_create_caps() || check_queue_limits(ici) ||
	    (o->congestion == TCPCP_CONGESTION_CARRY && tcpcp_need_carry_policy()))
		goto fail;
	if (s < 0) {
		s = socket((int)ici->local->family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
		if (s < 0) {
			tcpcp_fail(errno, "socket: %s", strerror(errno));
			goto fail;
		}
	}
	if (build(s, ici, o, pregated, &t, &gated))
		goto fail;
	/* Still in repair mode and gated: nothing has been sent. */
	if (o->congestion == TCPCP_CONGESTION_CARRY && tcpcp_carry(s, ici))
		goto fail;
	tcpcp_ici__free_unpacked(ici, NULL);
	return s;
fail:
	err = errno;
	if (gated)
		tcpcp_gate_open(s, &t);
	if (s >= 0 && own)
		close(s);
	tcpcp_ici__free_unpacked(ici, NULL);
	errno = err;
	return -1;
}

TCPCP_EXPORT int tcpcp_create_ex(const void *img, size_t len, const struct tcpcp_create_opts *opts)
{
	struct tcpcp_create_opts o;

	tcpcp_clear_error();
	if (tcpcp_opts_copy(&o, sizeof(o), opts, "tcpcp_create_opts"))
		return -1;
	if (o.port_mode == TCPCP_PORT_BOUND)
		return create_on(o.s, false, false, img, len, &o);
	return create_on(-1, true, false, img, len, &o);
}

static int rebuild_on(int s, bool pregated, const void *img, size_t len,
		      const struct tcpcp_create_opts *opts)
{
	struct tcpcp_create_opts copy, *o = &copy;
	int state = -1;

	tcpcp_clear_error();
	if (tcpcp_opts_copy(&copy, sizeof(copy), opts, "tcpcp_create_opts"))
		return -1;
	/* Only a socket in CLOSE (never connected, or disconnected) can take
	 * the repair sequence; the check names anything else. */
	if (!tcpcp_check_tcp_socket(s, &state) ||
	    (state >= 0 && state != TCPCP_ST_CLOSE)) {
		tcpcp_fail(EISCONN, "fd %d is not an unconnected TCP socket (state %d)", s, state);
		return -1;
	}
	if (state < 0)
		return -1;
	tcpcp_clear_error();
	return create_on(s, false, pregated, img, len, o) < 0 ? -1 : 0;
}

TCPCP_EXPORT int tcpcp_create_on(int s, const void *img, size_t len,
				 const struct tcpcp_create_opts *opts)
{
	return rebuild_on(s, false, img, len, opts);
}

TCPCP_EXPORT int tcpcp_create_gated(int s, const void *img, size_t len,
				    const struct tcpcp_create_opts *opts)
{
	return rebuild_on(s, true, img, len, opts);
}

TCPCP_EXPORT int tcpcp_create(const void *img)
{
	int size = tcpcp_size(img);

	if (size < 0)
		return -1;
	return tcpcp_create_ex(img, (size_t)size, NULL);
}
