/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tcpcp show: an ICI image for humans (like `crit show`) or, with --json,
 * for scripts.  The JSON is written by hand: the schema is flat and
 * small, and it saves a dependency for one command.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ici.pb-c.h"	/* images/ici.proto: the fields, public as the schema is */
#include "tcpcp.h"
#include "tcpcp-cli.h"

static void addr(const TcpcpEndpoint *ep, char *buf, size_t len)
{
	inet_ntop((int)ep->family, ep->addr.data, buf, (socklen_t)len);
}

static void json_endpoint(const char *name, const TcpcpEndpoint *ep)
{
	char a[INET6_ADDRSTRLEN];

	addr(ep, a, sizeof(a));
	printf("\"%s\": {\"family\": \"%s\", \"addr\": \"%s\", \"port\": %u}",
	       name, ep->family == AF_INET ? "ipv4" : "ipv6", a, ep->port);
}

/* Only the congestion name is a free-form string; keep it JSON-safe. */
static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++)
		if (*s >= 0x20 && *s != '"' && *s != '\\' && (unsigned char)*s < 0x7f)
			putchar(*s);
	putchar('"');
}

#define J_OPT(so, f) do {						\
		if ((so)->has_##f)					\
			printf("%s\"" #f "\": %llu", first ? "" : ", ",	\
			       (unsigned long long)(so)->f), first = false; \
	} while (0)
#define J_BOOL(so, f) do {						\
		if ((so)->has_##f)					\
			printf("%s\"" #f "\": %s", first ? "" : ", ",	\
			       (so)->f ? "true" : "false"), first = false; \
	} while (0)

static void json_sockopts(const TcpcpSockopts *so)
{
	bool first = true;

	printf("\"sockopts\": {");
	J_BOOL(so, nodelay); J_BOOL(so, keepalive); J_OPT(so, keepidle);
	J_OPT(so, keepintvl); J_OPT(so, keepcnt); J_OPT(so, user_timeout);
	J_OPT(so, sndbuf); J_OPT(so, rcvbuf); J_BOOL(so, sndbuf_locked);
	J_BOOL(so, rcvbuf_locked); J_OPT(so, tos); J_OPT(so, ttl);
	J_OPT(so, mark); J_OPT(so, notsent_lowat); J_BOOL(so, reuseaddr);
	J_BOOL(so, reuseport); J_OPT(so, priority); J_OPT(so, window_clamp);
	if (so->congestion) {
		printf("%s\"congestion\": ", first ? "" : ", ");
		json_string(so->congestion);
	}
	printf("}");
}

static void json_congestion(const TcpcpCongestion *c)
{
	bool first = true;

	printf("\"congestion\": {");
	J_OPT(c, snd_cwnd); J_OPT(c, snd_ssthresh); J_OPT(c, srtt_us);
	J_OPT(c, rttvar_us); J_OPT(c, rto_us); J_OPT(c, pacing_rate);
	J_OPT(c, delivery_rate); J_OPT(c, reordering);
	printf("}");
}

static void show_json(const TcpcpIci *ici)
{
	const TcpcpOptions *o = ici->options;
	const TcpcpWindow *w = ici->window;

	printf("{\"version\": \"%u.%u\", ", ici->major, ici->minor);
	json_endpoint("local", ici->local);
	printf(", ");
	json_endpoint("peer", ici->peer);
	printf(", \"state\": %u", ici->state);
	printf(", \"options\": {\"mss_clamp\": %u, \"rcv_mss\": %u, \"sack\": %s, "
	       "\"timestamps\": %s, \"wscale\": %s, \"snd_wscale\": %u, \"rcv_wscale\": %u}",
	       o->mss_clamp, o->rcv_mss, o->sack ? "true" : "false",
	       o->timestamps ? "true" : "false", o->wscale ? "true" : "false",
	       o->snd_wscale, o->rcv_wscale);
	printf(", \"snd_una\": %u, \"snd_nxt\": %u, \"write_seq\": %u, \"rcv_nxt\": %u, "
	       "\"copied_seq\": %u", ici->snd_una, ici->snd_nxt, ici->write_seq,
	       ici->rcv_nxt, ici->copied_seq);
	printf(", \"window\": {\"snd_wl1\": %u, \"snd_wnd\": %u, \"max_window\": %u, "
	       "\"rcv_wnd\": %u, \"rcv_wup\": %u}",
	       w->snd_wl1, w->snd_wnd, w->max_window, w->rcv_wnd, w->rcv_wup);
	if (ici->has_timestamp)
		printf(", \"timestamp\": %u", ici->timestamp);
	if (ici->has_ts_recent)
		printf(", \"ts_recent\": %u", ici->ts_recent);
	printf(", \"sendq_len\": %zu, \"sendq_unsent\": %u, \"recvq_len\": %zu",
	       ici->sendq.len, ici->write_seq - ici->snd_nxt, ici->recvq.len);
	printf(", \"capture_realtime_ns\": %llu", (unsigned long long)ici->capture_realtime_ns);
	if (ici->has_unqueued_una)
		printf(", \"unqueued_una\": %u", ici->unqueued_una);
	if (ici->has_app_state)
		printf(", \"app_state_len\": %zu", ici->app_state.len);
	if (ici->sockopts) {
		printf(", ");
		json_sockopts(ici->sockopts);
	}
	if (ici->congestion) {
		printf(", ");
		json_congestion(ici->congestion);
	}
	printf("}\n");
}

/* The kernel's TCP state numbers (include/net/tcp_states.h). */
static const char *state_name(unsigned int st)
{
	static const char *const names[] = {
		[1] = "established", [2] = "syn-sent", [3] = "syn-recv",
		[4] = "fin-wait-1", [5] = "fin-wait-2", [6] = "time-wait",
		[7] = "close", [8] = "close-wait", [9] = "last-ack",
		[10] = "listen", [11] = "closing",
	};

	return st < sizeof(names) / sizeof(names[0]) && names[st] ? names[st] : "unknown";
}

static void show_text(const TcpcpIci *ici)
{
	const TcpcpOptions *o = ici->options;
	const TcpcpWindow *w = ici->window;
	char l[INET6_ADDRSTRLEN], p[INET6_ADDRSTRLEN];

	addr(ici->local, l, sizeof(l));
	addr(ici->peer, p, sizeof(p));
	printf("ICI %u.%u%s%s\n", ici->major, ici->minor,
	       ici->origin_host ? " from " : "", ici->origin_host ? ici->origin_host : "");
	printf("  connection  %s port %u -> %s port %u, %s\n",
	       l, ici->local->port, p, ici->peer->port, state_name(ici->state));
	printf("  options     mss %u, rcv_mss %u, sack %s, timestamps %s, wscale %s (snd %u, rcv %u)\n",
	       o->mss_clamp, o->rcv_mss, o->sack ? "on" : "off",
	       o->timestamps ? "on" : "off", o->wscale ? "on" : "off",
	       o->snd_wscale, o->rcv_wscale);
	printf("  send        snd_una %u, snd_nxt %u, write_seq %u: %zu bytes queued, %u never sent\n",
	       ici->snd_una, ici->snd_nxt, ici->write_seq, ici->sendq.len,
	       ici->write_seq - ici->snd_nxt);
	if (ici->has_unqueued_una)
		printf("  checkpoint  snd_una was %u: %u bytes not held, written again by the application\n",
		       ici->unqueued_una, ici->write_seq - ici->unqueued_una);
	if (ici->has_app_state)
		printf("  app state   %zu bytes\n", ici->app_state.len);
	printf("  receive     copied_seq %u, rcv_nxt %u: %zu bytes unread\n",
	       ici->copied_seq, ici->rcv_nxt, ici->recvq.len);
	printf("  window      snd_wl1 %u, snd_wnd %u, max_window %u, rcv_wnd %u, rcv_wup %u\n",
	       w->snd_wl1, w->snd_wnd, w->max_window, w->rcv_wnd, w->rcv_wup);
	if (ici->has_timestamp)
		printf("  timestamp   %u (%s clock)\n", ici->timestamp,
		       ici->timestamp & 1 ? "usec" : "msec");
	if (ici->has_ts_recent)
		printf("  ts_recent   %u (the peer's last TSval; TCP_REPAIR_TS_RECENT)\n",
		       ici->ts_recent);
	else if (ici->has_timestamp)
		printf("  ts_recent   not captured (kernel without TCP_REPAIR_TS_RECENT, kernel-patch/ 0001)\n");
	if (ici->congestion && ici->congestion->has_snd_cwnd)
		printf("  congestion  cwnd %u, ssthresh %u, srtt %u us, rttvar %u us, rto %u us\n",
		       ici->congestion->snd_cwnd, ici->congestion->snd_ssthresh,
		       ici->congestion->srtt_us, ici->congestion->rttvar_us,
		       ici->congestion->rto_us);
	if (ici->sockopts && ici->sockopts->congestion)
		printf("  algorithm   %s\n", ici->sockopts->congestion);
}

int cmd_show(int argc, char **argv)
{
	const char *path = NULL;
	bool json = false;
	struct tcpcp_image *img;
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (argv[i][0] == '-' || path)
			die_usage("show: unexpected argument '%s'", argv[i]);
		else
			path = argv[i];
	}
	if (!path)
		die_usage("show: image FILE is required");
	img = image_load(path);
	if (!img)
		return EXIT_FAIL;
	if (json)
		show_json(tcpcp_image_ici(img));
	else
		show_text(tcpcp_image_ici(img));
	tcpcp_image_free(img);
	return EXIT_OK;
}
