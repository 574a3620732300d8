/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef TCPCP_DEMO_H
#define TCPCP_DEMO_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "tcpcp.h"

#define DEMO_TIMEOUT_MS	5000

/* Pass @s to the destination at @to (tcpcp_pass_recv() there): the
 * control connection is authenticated before @s is isolated.  Returns
 * tcpcp_pass_send()'s result; -1: @s is ours again. */
int demo_pass(int s, const char *to, const uint8_t *key, const void *state,
	      size_t state_len, const struct tcpcp_pass_send_opts *o);
/* Take a connection offered on the accepted control connection @ctl;
 * @o (may be NULL) can refuse it by its state before it is created. */
int demo_take(int ctl, const uint8_t *key, char **state,
	      const struct tcpcp_pass_recv_opts *o);

/* HTTP, as little as a demo needs. */
int http_read_request(int s, char *path, size_t len);	/* GET only */
int http_read(int s, char method[8], char *path, size_t len, long long *length);
int send_all(int s, const void *buf, size_t len);
/* The header's text in @h; its length. */
int http_header_str(char *h, size_t len, int code, const char *reason, long long length,
		    const char *extra);
/* Its length, or -errno. */
int http_header(int s, int code, const char *reason, long long length, const char *extra);
/* Close a served connection as a server does: our FIN, then the client's. */
void demo_finish(int s);
/* The file under @root for @path, refusing anything that climbs out. */
int open_under(const char *root, const char *path);
/* The same, opened with @flags (e.g. O_WRONLY | O_CREAT for an upload). */
int open_under_as(const char *root, const char *path, int flags);

/* A whole small file (at most DEMO_FILE_MAX), malloc'd; NULL + errno. */
#define DEMO_FILE_MAX	(64 << 20)
void *read_file(const char *path, size_t *len);
/* @path created or truncated with @buf; -1 + errno. */
int write_file(const char *path, const void *buf, size_t len);

#endif
