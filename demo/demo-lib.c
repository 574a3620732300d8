/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What the demo programs share: one pass in each direction, and HTTP. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "demo.h"

int demo_pass(int s, const char *to, const uint8_t *key, const void *state,
	      size_t state_len, const struct tcpcp_pass_send_opts *o)
{
	struct tcpcp_pass *p;
	double t_isolate;
	size_t ici_len;
	void *ici;
	int ctl, ret = -1;

	ctl = connect_to(to, DEMO_TIMEOUT_MS);
	if (ctl < 0) {
		warnx("pass to %s: cannot connect: %s", to, strerror(-ctl));
		return -1;
	}
	p = tcpcp_pass_open(ctl, TCPCP_PASS_ORIGIN, key, DEMO_TIMEOUT_MS);
	if (!p) {
		warnx("pass to %s: %s", to, tcpcp_strerror());
		goto out;
	}
	t_isolate = now_real();
	ici = tcpcp_get_ex(s, &ici_len);
	if (!ici) {
		warnx("pass to %s: %s", to, tcpcp_strerror());
		goto out;
	}
	ret = tcpcp_pass_send(p, s, ici, ici_len, state, state_len, o);
	/* For bench/: wall clock, comparable with the peer's capture. */
	if (getenv("TCPCP_DEMO_TIMES"))
		fprintf(stderr, "%s: pass times isolated=%.6f done=%.6f result=%d\n", prog,
			t_isolate, now_real(), ret);
	if (ret)
		warnx("pass to %s: %s%s", to, tcpcp_strerror(),
		      ret < 0 ? "; the connection continues here" : "");
	free(ici);
out:
	tcpcp_pass_free(p);
	close(ctl);
	return ret;
}

int demo_take(int ctl, const uint8_t *key, char **state,
	      const struct tcpcp_pass_recv_opts *o)
{
	struct tcpcp_pass *p;
	size_t len;
	int s;

	p = tcpcp_pass_open(ctl, TCPCP_PASS_DEST, key, DEMO_TIMEOUT_MS);
	if (!p) {
		warnx("control connection refused: %s", tcpcp_strerror());
		return -1;
	}
	s = tcpcp_pass_recv(p, o, (void **)state, &len);
	if (s < 0)
		warnx("not passed: %s", tcpcp_strerror());
	tcpcp_pass_free(p);
	return s;
}

/* Reads up to the blank line and no further: whatever the client sends
 * next must stay in the socket, for whoever serves it.  The method (GET
 * or PUT) and, for PUT, the body's length (Content-Length). */
int http_read(int s, char method[8], char *path, size_t len, long long *length)
{
	char buf[4096], *h;
	struct pollfd pfd = { .fd = s, .events = POLLIN };
	size_t n = 0;
	ssize_t r;

	while (n < sizeof(buf) - 1) {
		if (poll(&pfd, 1, DEMO_TIMEOUT_MS) != 1)
			return -ETIMEDOUT;
		r = recv(s, buf + n, 1, 0);
		if (r <= 0)
			return r ? -errno : -ECONNRESET;
		n++;
		buf[n] = '\0';
		if (n >= 4 && !strcmp(buf + n - 4, "\r\n\r\n"))
			break;
		if (n >= 2 && !strcmp(buf + n - 2, "\n\n"))
			break;
	}
	*length = -1;
	h = strcasestr(buf, "\ncontent-length:");
	if (h)
		*length = atoll(h + 16);
	if (sscanf(buf, "%7s %4095s", method, buf) != 2 ||
	    (strcmp(method, "GET") && (strcmp(method, "PUT") || *length < 0)) ||
	    strlen(buf) >= len)
		return -EINVAL;
	snprintf(path, len, "%s", buf);
	return 0;
}

int http_read_request(int s, char *path, size_t len)
{
	char method[8];
	long long length;
	int err = http_read(s, method, path, len, &length);

	return err ? err : strcmp(method, "GET") ? -EINVAL : 0;
}

int send_all(int s, const void *buf, size_t len)
{
	const char *b = buf;
	ssize_t n;

	while (len) {
		n = send(s, b, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

int http_header_str(char *h, size_t len, int code, const char *reason, long long length,
		    const char *extra)
{
	return snprintf(h, len, "HTTP/1.1 %d %s\r\nContent-Length: %lld\r\n"
			"Connection: close\r\n%s\r\n", code, reason, length, extra ? extra : "");
}

int http_header(int s, int code, const char *reason, long long length, const char *extra)
{
	char h[512];
	int n = http_header_str(h, sizeof(h), code, reason, length, extra);

	return send_all(s, h, (size_t)n) ?: n;
}

int open_under(const char *root, const char *path)
{
	return open_under_as(root, path, O_RDONLY);
}

int open_under_as(const char *root, const char *path, int flags)
{
	int dir, fd;

	while (*path == '/')
		path++;
	if (!*path || strstr(path, ".."))
		return -EACCES;
	dir = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return -errno;
	fd = openat(dir, path, flags | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		fd = -errno;
	close(dir);
	return fd;
}

/* Ends like any server: our FIN after the data, then the client's. */
void demo_finish(int s)
{
	char buf[512];

	shutdown(s, SHUT_WR);
	while (recv(s, buf, sizeof(buf), 0) > 0)
		;
	close(s);
}

void *read_file(const char *path, size_t *len)
{
	struct stat st;
	void *buf = NULL;
	ssize_t n;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) || st.st_size > DEMO_FILE_MAX) {
		err = errno ? errno : EFBIG;
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	err = ENOMEM;
	if (!buf)
		goto out;
	n = read(fd, buf, (size_t)st.st_size);
	err = n < 0 ? errno : EIO;
	if (n != st.st_size) {
		free(buf);
		buf = NULL;
		goto out;
	}
	*len = (size_t)n;
	err = 0;
out:
	close(fd);
	errno = err;
	return buf;
}

int write_file(const char *path, const void *buf, size_t len)
{
	int fd, err = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (write(fd, buf, len) != (ssize_t)len)
		err = errno ? errno : EIO;
	if (close(fd) && !err)
		err = errno;
	errno = err;
	return err ? -1 : 0;
}
