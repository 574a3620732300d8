/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Helpers shared by tcpcp-pass and tcpcp-passd. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "tcpcp.h"

void vsay(const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
	exit(1);
}

void warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
}

void usage_exit(const char *text, int status)
{
	fputs(text, status ? stderr : stdout);
	exit(status);
}

int parse_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in6 *s6 = (void *)ss;
	struct sockaddr_in *s4 = (void *)ss;
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(s, ':');
	char *end;
	unsigned long port;
	size_t hl;

	if (!colon)
		return -EINVAL;
	port = strtoul(colon + 1, &end, 10);
	hl = (size_t)(colon - s);
	if (*end || port > 65535 || hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
		host[hl - 1] = '\0';
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*s6);
		return inet_pton(AF_INET6, host + 1, &s6->sin6_addr) == 1 ? 0 : -EINVAL;
	}
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	*len = sizeof(*s4);
	return inet_pton(AF_INET, host, &s4->sin_addr) == 1 ? 0 : -EINVAL;
}

int connect_to(const char *hostport, int timeout_ms)
{
	struct sockaddr_storage ss;
	struct pollfd pfd;
	socklen_t len;
	int s, err = 0;

	if (parse_hostport(hostport, &ss, &len))
		die("'%s' is not ADDR:PORT", hostport);
	s = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		return -errno;
	if (connect(s, (struct sockaddr *)&ss, len) && errno != EINPROGRESS)
		err = -errno;
	if (!err) {
		pfd = (struct pollfd){ .fd = s, .events = POLLOUT };
		if (poll(&pfd, 1, timeout_ms) != 1) {
			err = -ETIMEDOUT;
		} else {
			len = sizeof(err);
			getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
			err = -err;
		}
	}
	if (err) {
		close(s);
		return err;
	}
	return s;
}

int listen_on(const char *hostport)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int s, one = 1;

	if (parse_hostport(hostport, &ss, &len))
		die("'%s' is not ADDR:PORT", hostport);
	s = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s, (struct sockaddr *)&ss, len) || listen(s, 128)) {
		int err = -errno;

		close(s);
		return err;
	}
	return s;
}

int accept_next(int l)
{
	int s;

	while ((s = accept4(l, NULL, NULL, SOCK_CLOEXEC)) < 0)
		if (errno != EINTR && errno != ECONNABORTED)
			die("accept: %s", strerror(errno));
	return s;
}

void *sockaddr_addr(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ? (void *)&((struct sockaddr_in *)ss)->sin_addr :
		(void *)&((struct sockaddr_in6 *)ss)->sin6_addr;
}

uint16_t sockaddr_port(const struct sockaddr_storage *ss)
{
	return ntohs(ss->ss_family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port :
		     ((const struct sockaddr_in6 *)ss)->sin6_port);
}

void sockaddr_set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

void sockaddr_str(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";

	inet_ntop(ss->ss_family, sockaddr_addr(ss), a, sizeof(a));
	snprintf(buf, len, ss->ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", a, sockaddr_port(ss));
}

double now_real(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* exec:COMMAND: /bin/sh -c COMMAND with the connection's 4-tuple in the
 * environment, for whatever the library's mechanisms do not cover.  Run
 * here rather than in the library, which starts no processes. */
static void setenv_end(const struct sockaddr_storage *ss, const char *addr_var,
		       const char *port_var)
{
	char buf[INET6_ADDRSTRLEN], pbuf[8];

	inet_ntop(ss->ss_family, sockaddr_addr(ss), buf, sizeof(buf));
	snprintf(pbuf, sizeof(pbuf), "%u", sockaddr_port(ss));
	setenv(addr_var, buf, 1);
	setenv(port_var, pbuf, 1);
}

static int run_exec(void *arg, int s, char *why, size_t len)
{
	const char *cmd = arg;
	struct sockaddr_storage l, p;
	socklen_t ll = sizeof(l), pl = sizeof(p);
	int status;
	pid_t pid;

	if (getsockname(s, (struct sockaddr *)&l, &ll) || getpeername(s, (struct sockaddr *)&p, &pl)) {
		snprintf(why, len, "exec: the connection's addresses: %s", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(why, len, "exec: fork: %s", strerror(errno));
		return -1;
	}
	if (!pid) {
		setenv_end(&l, "TCPCP_LOCAL_ADDR", "TCPCP_LOCAL_PORT");
		setenv_end(&p, "TCPCP_PEER_ADDR", "TCPCP_PEER_PORT");
		setenv("TCPCP_FAMILY", l.ss_family == AF_INET ? "4" : "6", 1);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			snprintf(why, len, "exec: waitpid: %s", strerror(errno));
			return -1;
		}
	if (WIFEXITED(status) && !WEXITSTATUS(status))
		return 0;
	snprintf(why, len, "switch command '%s' failed (%s %d)", cmd,
		 WIFEXITED(status) ? "exit" : "signal",
		 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	return -1;
}

struct tcpcp_switch *switch_new_or_die(const char *spec)
{
	struct tcpcp_switch *sw;

	if (!spec)
		return NULL;
	if (!strncmp(spec, "exec:", 5)) {
		if (!spec[5]) {
			fprintf(stderr, "%s: exec: needs a command\n", prog);
			exit(2);
		}
		sw = tcpcp_switch_call(run_exec, (void *)(spec + 5));
	} else {
		sw = tcpcp_switch_new(spec);
	}
	if (!sw) {
		fprintf(stderr, "%s: %s\n", prog, tcpcp_strerror());
		exit(2);
	}
	return sw;
}

int parse_congestion(const char *s)
{
	if (!strcmp(s, "fresh"))
		return TCPCP_CONGESTION_FRESH;
	if (!strcmp(s, "carry"))
		return TCPCP_CONGESTION_CARRY;
	return -1;
}

#define KEEP_S	60

void keep_gate(int s, double *kept)
{
	if (now_real() - *kept < KEEP_S / 2)
		return;
	if (tcpcp_gate_keep(s, KEEP_S))
		warnx("the gate's hooks come and go with each pass: %s", tcpcp_strerror());
	*kept = now_real();
}
