/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The steps that end a pass: activate at the destination (paper step 9),
 * release at the origin when a pass fails, and the silent close.
 */
#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static int repairing(int s, bool *on)
{
	socklen_t len = sizeof(int);
	int v = 0;

	if (getsockopt(s, IPPROTO_TCP, TCP_REPAIR, &v, &len))
		return tcpcp_fail(errno, "fd %d: %s", s, strerror(errno));
	*on = v != 0;
	return 0;
}

static int isolated_socket(int s, struct tcpcp_tuple *t, bool *on)
{
	int state;

	if (tcpcp_check_tcp_socket(s, &state) || tcpcp_tuple_from_socket(s, t) ||
	    repairing(s, on))
		return -errno;
	return 0;
}

static int repair_off(int s)
{
	return tcpcp_repair(s, TCP_REPAIR_OFF);
}

/* Leaving repair mode with TCP_REPAIR_OFF sends a window probe (paper
 * step 10): the peer answers with an ACK that tells us how far it got
 * and restarts the flow in both directions. */
static int resume(int s, const struct tcpcp_tuple *t, bool on)
{
	return on ? tcpcp_gate_open_then(s, t, repair_off) : tcpcp_gate_open(s, t);
}

static int activate(int s, const void *img, size_t len, bool gated)
{
	struct tcpcp_tuple t;
	TcpcpIci *ici = NULL;
	bool on;
	int err;

	tcpcp_clear_error();
	if (img && !(ici = tcpcp_image_decode(img, len)))
		return -1;
	err = isolated_socket(s, &t, &on);
	if (!err && !on)
		err = tcpcp_fail(EINVAL, "fd %d is not a recreated connection awaiting activation", s);
	if (!err && gated)
		err = resume(s, &t, on);
	else if (!err)
		err = tcpcp_repair(s, TCP_REPAIR_OFF);
	if (!err && ici)
		err = tcpcp_sockopts_restore_reuse(s, ici->sockopts);
	if (ici)
		tcpcp_ici__free_unpacked(ici, NULL);
	return err ? -1 : 0;
}

TCPCP_EXPORT int tcpcp_activate_ex(int s, const void *img, size_t len)
{
	return activate(s, img, len, true);
}

TCPCP_EXPORT int tcpcp_activate_ungated(int s, const void *img, size_t len)
{
	return activate(s, img, len, false);
}

TCPCP_EXPORT int tcpcp_activate(int s)
{
	return tcpcp_activate_ex(s, NULL, 0);
}

/* Rollback: the ICI was taken but the pass failed, so the origin carries
 * on.  Idempotent, so a retrying caller cannot make things worse. */
TCPCP_EXPORT int tcpcp_release(int s)
{
	struct tcpcp_tuple t;
	bool on;

	tcpcp_clear_error();
	if (isolated_socket(s, &t, &on) || resume(s, &t, on))
		return -1;
	return 0;
}

TCPCP_EXPORT int tcpcp_close(int s, unsigned int linger_s)
{
	struct tcpcp_tuple t;
	bool on;

	tcpcp_clear_error();
	if (isolated_socket(s, &t, &on))
		return -1;
	/* Out of repair mode the kernel would send a FIN or RST. */
	if (!on) {
		tcpcp_fail(EINVAL, "fd %d is not isolated: closing it would end the connection", s);
		return -1;
	}
	if (tcpcp_gate_linger(s, &t, linger_s))
		return -1;
	close(s);
	return 0;
}
