/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef TCPCP_PASSD_SESSIONS_H
#define TCPCP_PASSD_SESSIONS_H

#include <stdbool.h>
#include <stddef.h>

#define SESSIONS_MAX	1024	/* what --max-sessions may say */

/* Accept control connections on @l for ever (or one, @once: then its
 * exit status), each in a child that runs @run(@arg, ctl, id, told):
 * @told is the pipe end to write a byte to once the client has shown the
 * key.  @run may return; the child exits then. */
int serve_sessions(int l, int max_sessions, bool once,
		   void (*run)(void *arg, int ctl, unsigned long id, int told), void *arg);
/* Who is at the other end of @ctl, for the log. */
void who_is(int ctl, char who[64]);
/* Hand the taken socket @s to @cmd as fd 3 (TCPCP_FD=3), with the
 * application @state in a file of @state_dir (TCPCP_STATE_FILE; {state}
 * and {id} in @cmd's arguments become its path and @id).  Never returns. */
void run_handler(char **cmd, const char *state_dir, int s, const void *state, size_t len,
		 unsigned long id) __attribute__((noreturn));

#endif
