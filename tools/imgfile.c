/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tcpcp.h"
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

/* A temporary file beside the target, renamed into place by
 * image_commit(): a reader never sees half an image, and a crash leaves
 * the old one.  Opened before the connection is touched, so that a bad
 * path fails while nothing has happened yet. */
int image_open(struct image_out *o, const char *path)
{
	int n;

	o->path = path;
	o->fd = -1;
	o->nosync = false;
	n = snprintf(o->tmp, sizeof(o->tmp), "%s.tmp.%d", path, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(o->tmp))
		return fail("image path too long: %s", path);
	o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (o->fd < 0)
		return fail("cannot create image %s: %s", o->tmp, strerror(errno));
	return 0;
}

/* Returns 0, or an errno value with the temporary file removed. */
int image_commit(struct image_out *o, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	int err = 0;

	while (len) {
		ssize_t w = write(o->fd, p, len);

		if (w < 0) {
			err = errno;
			goto out;
		}
		p += w;
		len -= (size_t)w;
	}
	if (!o->nosync && fsync(o->fd))
		err = errno;
out:
	if (close(o->fd) && !err)
		err = errno;
	o->fd = -1;
	if (!err && rename(o->tmp, o->path))
		err = errno;
	if (err)
		unlink(o->tmp);
	return err;
}

void image_abort(struct image_out *o)
{
	if (o->fd < 0)
		return;
	close(o->fd);
	o->fd = -1;
	unlink(o->tmp);
}

/* An image file, read, decoded and validated; NULL after saying why. */
struct tcpcp_image *image_load(const char *path)
{
	struct tcpcp_image *img;
	size_t len;
	void *buf;

	buf = image_read(path, &len);
	if (!buf)
		return NULL;
	img = tcpcp_image_read(buf, len);
	free(buf);
	if (!img)
		fail("%s: %s", path, tcpcp_strerror());
	return img;
}
