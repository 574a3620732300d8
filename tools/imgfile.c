/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tcpcp-cli.h"

/* Well above any real ICI (queues are bounded by socket buffers) and
 * the library's own limit; stops a hostile file from eating memory. */
#define IMAGE_MAX ((size_t)1 << 30)

void *image_read(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t got = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fail("cannot open image %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (size_t)st.st_size > IMAGE_MAX) {
		fail("image %s is not a regular file of at most %zu bytes", path, IMAGE_MAX);
		goto out;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		fail("out of memory reading %s", path);
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n <= 0) {
			fail("cannot read image %s: %s", path, n ? strerror(errno) : "file shrank");
			free(buf);
			buf = NULL;
			goto out;
		}
		got += (size_t)n;
	}
	*len = got;
out:
	close(fd);
	return buf;
}

/* Write to a temporary file beside the target and rename it into place:
 * a reader never sees half an image, and a crash leaves the old one. */
int image_write(const char *path, const void *buf, size_t len)
{
	char tmp[4096];
	const uint8_t *p = buf;
	int fd, n;

	n = snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return fail("image path too long: %s", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail("cannot create %s: %s", tmp, strerror(errno));
	while (len) {
		ssize_t w = write(fd, p, len);

		if (w < 0)
			goto err;
		p += w;
		len -= (size_t)w;
	}
	if (fsync(fd))
		goto err;
	if (close(fd)) {
		fd = -1;
		goto err;
	}
	if (rename(tmp, path)) {
		fd = -1;
		goto err;
	}
	return 0;
err:
	n = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return fail("cannot write image %s: %s", path, strerror(n));
}
