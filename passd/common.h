/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef TCPCP_PASSD_COMMON_H
#define TCPCP_PASSD_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

extern const char *prog;

/* "PROG: message" on stderr: every line the tools print about a failure. */
void vsay(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* --help (status 0: stdout) or a bad command line (stderr), then exit. */
void usage_exit(const char *text, int status) __attribute__((noreturn));

/* ADDR:PORT, IPv6 in brackets. */
int parse_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *len);
int connect_to(const char *hostport, int timeout_ms);
int listen_on(const char *hostport);
/* The next connection on listener @l; retries what a signal or a client
 * that gave up interrupts, dies on anything else. */
int accept_next(int l);
/* An IPv4 or IPv6 address and port: "a.b.c.d:p" or "[v6]:p". */
void sockaddr_str(const struct sockaddr_storage *ss, char *buf, size_t len);
/* Its address bytes (4 or 16) and its port, in host order. */
void *sockaddr_addr(const struct sockaddr_storage *ss);
uint16_t sockaddr_port(const struct sockaddr_storage *ss);
void sockaddr_set_port(struct sockaddr_storage *ss, uint16_t port);
double now_real(void);
/* A switch step from a spec: tcpcp_switch_new()'s, or exec:COMMAND (the
 * spec must outlive the step).  NULL for NULL; exits 2 on a bad one. */
struct tcpcp_switch;
struct tcpcp_switch *switch_new_or_die(const char *spec);
/* For a daemon that takes passed connections: the gate's hooks in the
 * namespace of socket @s stay attached between passes (tcpcp_gate_keep,
 * for a minute, renewed when *@kept, the last time, is half a minute
 * old).  Failing, a pass only costs more: a warning, nothing else. */
void keep_gate(int s, double *kept);
/* --congestion fresh|carry: TCPCP_CONGESTION_*, or -1 for anything else. */
int parse_congestion(const char *s);

#endif
