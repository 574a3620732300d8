/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Connections named the way a user finds them in ss(8) output. */
#include <stdio.h>
#include <sys/socket.h>

#include <tcpcp.h>

#include "plugin.h"

void sock_name(int s, char *buf, size_t len)
{
	struct tcpcp_ends e;

	if (tcpcp_ends_of(s, &e) || tcpcp_ends_str(&e, buf, len))
		snprintf(buf, len, "(unconnected)");
}

int image_ends(const void *buf, size_t len, struct tcpcp_ends *e)
{
	struct tcpcp_image *img = tcpcp_image_read(buf, len);
	int err;

	if (!img)
		return -1;
	err = tcpcp_image_ends(img, &e->local, &e->peer);
	tcpcp_image_free(img);
	return err;
}
