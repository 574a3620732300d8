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
#define TCPCP_ICI_MINOR 0

/* The paper's API (section 3.2). */

/* Isolate @s and return its ICI, malloc'd (free with free()). */
void *tcpcp_get(int s);
/* Size in bytes of an ICI returned by tcpcp_get(), or -1. */
int tcpcp_size(const void *ici);
/* Upper bound of the ICI size of @s right now, or -1. */
int tcpcp_maxicisize(int s);
/* Recreate the endpoint described by @ici (same local port); returns a
 * socket that is neither sending nor receiving until tcpcp_activate(). */
int tcpcp_create(const void *ici);
/* Let the recreated endpoint run: it sends queued data or a window probe. */
int tcpcp_activate(int s);

/* Rollback on the origin: undo tcpcp_get()'s isolation. */
int tcpcp_release(int s);
/* Close an isolated origin socket without a word to the peer.  Segments
 * for the connection that still reach this host are dropped for
 * @linger_s seconds rather than answered with a reset. */
int tcpcp_close(int s, unsigned int linger_s);

/* Port selection at the destination (paper section 2.1). */
enum tcpcp_port_mode {
	TCPCP_PORT_SAME = 0,	/* the origin's local port */
	TCPCP_PORT_BOUND,	/* @s is already bound: keep its address */
	TCPCP_PORT_ANY,		/* any free port */
};

struct tcpcp_create_opts {
	enum tcpcp_port_mode port_mode;
	int s;				/* TCPCP_PORT_BOUND: the bound socket */
	const struct sockaddr *local;	/* NULL: the ICI's local address */
	socklen_t local_len;		/* port of @local ignored unless BOUND */
	int transparent;		/* IP_TRANSPARENT for a foreign address */
	int keep_timestamp;		/* don't advance TSval by transit time */
};

int tcpcp_create_ex(const void *ici, size_t len,
		    const struct tcpcp_create_opts *opts);

/* Recreate the endpoint on @s, an existing TCP socket in CLOSE state that
 * was never connected (or was reset with connect(AF_UNSPEC)), e.g. one a
 * checkpoint/restore tool created in its place: the process keeps its fd.
 * opts->s is ignored; port_mode BOUND keeps @s's bound address.  Returns 0,
 * or -1 with @s unusable and left to the caller. */
int tcpcp_create_on(int s, const void *ici, size_t len,
		    const struct tcpcp_create_opts *opts);

/* Explicitly sized ICI access, for images read from files. */
void *tcpcp_get_ex(int s, size_t *len);
int tcpcp_validate(const void *ici, size_t len);

/* tcpcp_activate() that also puts back what leaving repair mode resets
 * (SO_REUSEADDR), taken from the image the socket was created from. */
int tcpcp_activate_ex(int s, const void *ici, size_t len);

/* One line naming the cause of this thread's last failure. */
const char *tcpcp_strerror(void);

#ifdef __cplusplus
}
#endif

#endif
