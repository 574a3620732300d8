/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef TCPCP_CLI_H
#define TCPCP_CLI_H

#include <stdbool.h>
#include <stddef.h>

/* Exit codes, documented in `tcpcp --help`. */
#define EXIT_OK		0
#define EXIT_FAIL	1	/* the operation failed; the connection is as it was */
#define EXIT_USAGE	2	/* bad command line */

extern const char *prog;

void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* target.c: a socket of another process, by pid and fd number. */
int target_fd(const char *pid, const char *fd);

#include "freeze.h"

/* imgfile.c */
void *image_read(const char *path, size_t *len);
struct tcpcp_image;
struct tcpcp_image *image_load(const char *path);
struct image_out {
	const char *path;
	char tmp[4096];
	int fd;
	bool nosync;	/* no fsync: an image that can be made again */
};
int image_open(struct image_out *o, const char *path);
int image_commit(struct image_out *o, const void *buf, size_t len);
void image_abort(struct image_out *o);

int cmd_get(int argc, char **argv);
int cmd_release(int argc, char **argv);
int cmd_close(int argc, char **argv);
int cmd_activate(int argc, char **argv);
int cmd_create(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_edit(int argc, char **argv);
int cmd_gate(int argc, char **argv);
int cmd_probe(int argc, char **argv);
/* passd/: live passing, also run as tcpcp-pass and tcpcp-passd. */
int cmd_pass(int argc, char **argv);
int cmd_passd(int argc, char **argv);
int cmd_standby(int argc, char **argv);

#endif
